/* The cuda backend's code is rk_cuda.cu, archived as rk_cuda_kernels (see CMakeLists.txt); this
 * file only gives the object library that the top level links a C translation unit. */
typedef int rk_cuda_backend_lives_in_rk_cuda_cu;
