/* The HIP backend has no sources of its own: its code is backends/cuda/rk_cuda.cu compiled by
 * hipcc (see CMakeLists.txt). This file only gives the object library a C translation unit. */
typedef int rk_hip_backend_is_built_from_the_cuda_sources;
