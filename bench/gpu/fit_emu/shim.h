/* Host emulation of the CUDA constructs rk_fit_kernel uses (fit_emu): one pthread per CUDA thread. */
#pragma once
#include <pthread.h>
#include <math.h>
#include <string.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(x)
#define __align__(x)
struct dim3_ { unsigned x, y, z; };
extern thread_local dim3_ threadIdx, blockIdx;
struct float4 { float x, y, z, w; } __attribute__((aligned(16)));
void __syncthreads();
void emu_warp_barrier(unsigned mask);
void *emu_xbuf(int lane);
static inline void __syncwarp(unsigned mask = 0xffffffffu) { emu_warp_barrier(mask); }
template <typename T> static T __shfl_xor_sync(unsigned mask, T v, int o) {
    int lane = threadIdx.x % 32;
    memcpy(emu_xbuf(lane), &v, sizeof v);
    emu_warp_barrier(mask);
    T r; memcpy(&r, emu_xbuf(lane ^ o), sizeof r);
    emu_warp_barrier(mask);
    return r;
}
template <typename T> static T __shfl_sync(unsigned mask, T v, int src) {
    int lane = threadIdx.x % 32;
    memcpy(emu_xbuf(lane), &v, sizeof v);
    emu_warp_barrier(mask);
    T r; memcpy(&r, emu_xbuf(src % 32), sizeof r);
    emu_warp_barrier(mask);
    return r;
}
static inline long long clock64() { return 0; }
static inline int atomicOr(int *p, int v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }
static inline double atomicAdd(double *p, double v) {
    static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&m); double o = *p; *p = o + v; pthread_mutex_unlock(&m); return o;
}
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double __dmul_rn(double a, double b) { volatile double r = a * b; return r; }
static inline double __dadd_rn(double a, double b) { volatile double r = a + b; return r; }
using std::isfinite;
static inline int min(int a, int b) { return a < b ? a : b; }
