/* HIP vendor header: lets the CUDA backend's .cu sources compile with hipcc (HIP 5.2) unchanged.
 * Maps the cuda* runtime names the backend uses to hip*, and the *_sync warp intrinsics to the
 * non-sync forms HIP 5.2 has (AMD wavefronts execute in lockstep, so the mask is implied). */
#ifndef RK_CUDA_VENDOR_HIP_H
#define RK_CUDA_VENDOR_HIP_H

#include <hip/hip_fp16.h>
#include <hip/hip_runtime.h>

#define cudaError_t hipError_t
#define cudaSuccess hipSuccess
#define cudaErrorNoDevice hipErrorNoDevice
#define cudaErrorInsufficientDriver hipErrorInsufficientDriver
#define cudaErrorMemoryAllocation hipErrorOutOfMemory
#define cudaGetErrorString hipGetErrorString
#define cudaGetErrorName hipGetErrorName
#define cudaGetLastError hipGetLastError
#define cudaGetDeviceCount hipGetDeviceCount
#define cudaGetDeviceProperties hipGetDeviceProperties
#define cudaDeviceProp hipDeviceProp_t
#define cudaSetDevice hipSetDevice
#define cudaGetDevice hipGetDevice
#define cudaDeviceGetAttribute hipDeviceGetAttribute
#define cudaDevAttrMultiProcessorCount hipDeviceAttributeMultiprocessorCount
#define cudaDevAttrMaxSharedMemoryPerBlockOptin hipDeviceAttributeSharedMemPerBlockOptin
#define cudaStream_t hipStream_t
#define cudaStreamCreateWithFlags hipStreamCreateWithFlags
#define cudaStreamNonBlocking hipStreamNonBlocking
#define cudaStreamDestroy hipStreamDestroy
#define cudaStreamSynchronize hipStreamSynchronize
#define cudaMalloc hipMalloc
#define cudaFree hipFree
#define cudaMallocHost(p, n) hipHostMalloc(p, n, 0)
#define cudaFreeHost hipHostFree
#define cudaMemcpy hipMemcpy
#define cudaMemcpyAsync hipMemcpyAsync
#define cudaMemsetAsync hipMemsetAsync
#define cudaMemcpyHostToDevice hipMemcpyHostToDevice
#define cudaMemcpyDeviceToHost hipMemcpyDeviceToHost
#define cudaMemcpyDeviceToDevice hipMemcpyDeviceToDevice
#define cudaFuncSetAttribute hipFuncSetAttribute
#define cudaFuncAttributeMaxDynamicSharedMemorySize hipFuncAttributeMaxDynamicSharedMemorySize
#define cudaOccupancyMaxActiveBlocksPerMultiprocessor hipOccupancyMaxActiveBlocksPerMultiprocessor
#define cudaEvent_t hipEvent_t
#define cudaEventCreateWithFlags hipEventCreateWithFlags
#define cudaEventDisableTiming hipEventDisableTiming
#define cudaEventRecord hipEventRecord
#define cudaEventSynchronize hipEventSynchronize
#define cudaEventDestroy hipEventDestroy

#define __shfl_sync(mask, var, lane) __shfl(var, lane)
#define __shfl_xor_sync(mask, var, lane_mask) __shfl_xor(var, lane_mask)
#define __shfl_down_sync(mask, var, delta) __shfl_down(var, delta)
#define __any_sync(mask, pred) __any(pred)
#define __syncwarp() __builtin_amdgcn_wave_barrier()

/* Wavefront width of the target being compiled: 64 on CDNA (gfx90a), 32 on RDNA (gfx1030).
 * The host pass sees a placeholder; host code reads the width from the device properties. */
#if defined(__AMDGCN_WAVEFRONT_SIZE)
#define RK_WARP __AMDGCN_WAVEFRONT_SIZE
#else
#define RK_WARP 64
#endif

#endif
