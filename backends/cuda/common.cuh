/* Shared pieces of the CUDA backend (also compiled as HIP through vendors/hip.h): the vendor
 * switch, the per-context state, dtype conversions and error reporting. */
#ifndef RK_CUDA_COMMON_CUH
#define RK_CUDA_COMMON_CUH

#if defined(RK_HIP)
#include "vendors/hip.h"
#define RK_BACKEND_NAME "hip"
#define RK_BACKEND_SYMBOL rk_backend_hip
#else
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#define RK_WARP 32
#define RK_BACKEND_NAME "cuda"
#define RK_BACKEND_SYMBOL rk_backend_cuda
#endif

#include "backend.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Every kernel runs 128-thread blocks: 4 warps on NVIDIA and RDNA, 2 wavefronts on CDNA. */
#define RK_THREADS 128
#define RK_NWARPS (RK_THREADS / RK_WARP)
#define RK_LOG2E 1.4426950408889634f
#define RK_LN2 0.6931471805599453f

/* Storage dtypes as template arguments (same values as rk_dtype). */
enum { DT_F32 = 0, DT_F16 = 1, DT_BF16 = 2 };

typedef struct rk_gpu_ctx {
    int device;
    cudaStream_t stream;
    int sm_count;
    int warp_size;
    size_t smem_per_block;   /* default dynamic shared memory limit per block */
    int pdl;                 /* programmatic dependent launch of decode kernels (sm_90+) */
    int prefetch;            /* decode tile prefetch variant: -1 the host rule (be_decode), 0 off, 1 on */
    int early;               /* decode loads before griddepcontrol.wait: -1 the host rule, 0 off, 1 on */
    int dec_nt;              /* decode block size: 0 the host rule, 128 or 256 forced */
    /* the last work enqueued on the stream was a decode writing these buffers (be_decode; any
     * other entry point clears it in rk_gpu_enter) */
    int dec_prev_valid;
    const void *dec_prev_out, *dec_prev_lse;
    /* RK_DEC_TRACE builds: stamps of the trace_at-th sparse decode (RK_CUDA_DEC_TRACE) */
    unsigned long long *trace;
    int trace_at, n_sparse_dec, trace_grid[5];
    /* decode split workspace, grown on demand */
    float *partials;
    size_t partials_bytes;
    /* resident blocks per SM of decode kernels, asked once per (kernel, shared memory) */
    struct {
        const void *fn;
        size_t smem;
        int blocks;
    } occupancy[32];
    int n_occupancy;
    /* moments / subspace scratch */
    void *scratch;
    size_t scratch_bytes;
    /* the last moments op's mean and scatter (f64, [BH][d] then [BH][d][d] at mom_scatter
     * doubles): the fit reads the scatter here when the core passes mom_id (rk_op_moments.
     * device_id), instead of uploading the copy the core downloaded. mom_id changes with every
     * moments op, so a stale id never matches. */
    void *mom;
    size_t mom_bytes, mom_scatter;
    uint64_t mom_id;
    /* pinned host staging of the prefill ops' transfers (pageable copies cost ~4x more) */
    void *stage;
    size_t stage_bytes;
} rk_gpu_ctx;

static inline rk_gpu_ctx *rk_gpu(rk_context *ctx) { return (rk_gpu_ctx *)ctx->impl; }

/* Map a runtime error to a status and record it; RK_OK when e is cudaSuccess. */
static rk_status rk_gpu_check(rk_context *ctx, cudaError_t e, const char *what) {
    if (e == cudaSuccess) return RK_OK;
    rk_status st = e == cudaErrorMemoryAllocation ? RK_ERR_OUT_OF_MEMORY : RK_ERR_BACKEND_FAILURE;
    (void)cudaGetLastError(); /* clear a sticky launch error so the next call starts clean */
    return rk_fail(ctx, st, RK_BACKEND_NAME ": %s: %s (%s)", what, cudaGetErrorName(e),
                   cudaGetErrorString(e));
}

/* Device address of element (b, h, t, 0) of a view. */
static inline char *rk_gpu_ptr(const rk_tensor *t) { return (char *)t->buf->handle + t->offset; }

/* Grow a device workspace to at least `bytes` (contents not kept). zero: clear new memory. */
static rk_status rk_gpu_reserve(rk_context *ctx, void **ptr, size_t *cap, size_t bytes, int zero) {
    if (bytes <= *cap) return RK_OK;
    rk_gpu_ctx *g = rk_gpu(ctx);
    rk_status st = rk_gpu_check(ctx, cudaStreamSynchronize(g->stream), "workspace sync");
    if (st != RK_OK) return st;
    if (*ptr) (void)cudaFree(*ptr);
    *ptr = NULL;
    *cap = 0;
    void *p = NULL;
    st = rk_gpu_check(ctx, cudaMalloc(&p, bytes), "workspace allocation");
    if (st != RK_OK) return st;
    if (zero) {
        st = rk_gpu_check(ctx, cudaMemsetAsync(p, 0, bytes, g->stream), "workspace clear");
        if (st != RK_OK) {
            (void)cudaFree(p);
            return st;
        }
    }
    *ptr = p;
    *cap = bytes;
    return RK_OK;
}

/* Grow the context's pinned host staging to at least `bytes` (contents not kept). */
static rk_status rk_gpu_stage(rk_context *ctx, size_t bytes) {
    rk_gpu_ctx *g = rk_gpu(ctx);
    if (bytes <= g->stage_bytes) return RK_OK;
    rk_status st = rk_gpu_check(ctx, cudaStreamSynchronize(g->stream), "staging sync");
    if (st != RK_OK) return st;
    if (g->stage) (void)cudaFreeHost(g->stage);
    g->stage = NULL;
    g->stage_bytes = 0;
    st = rk_gpu_check(ctx, cudaMallocHost(&g->stage, bytes), "pinned staging allocation");
    if (st == RK_OK) g->stage_bytes = bytes;
    return st;
}

/* ---- dtype conversion on the device ------------------------------------------------------ */

template <int DT> struct rk_dt;
template <> struct rk_dt<DT_F32> { static const int size = 4; };
template <> struct rk_dt<DT_F16> { static const int size = 2; };
template <> struct rk_dt<DT_BF16> { static const int size = 2; };

static __device__ __forceinline__ float rk_h2f(unsigned short u) {
    __half h;
    memcpy(&h, &u, 2);
    return __half2float(h);
}

static __device__ __forceinline__ float rk_bf2f(unsigned short u) {
    return __uint_as_float((unsigned)u << 16);
}

/* Two packed 16-bit values to floats. */
template <int DT>
static __device__ __forceinline__ void rk_unpack2(unsigned w, float &lo, float &hi) {
    if (DT == DT_F16) {
        lo = rk_h2f((unsigned short)(w & 0xffffu));
        hi = rk_h2f((unsigned short)(w >> 16));
    } else {
        lo = __uint_as_float(w << 16);
        hi = __uint_as_float(w & 0xffff0000u);
    }
}

/* 16 bytes of storage to 16 / sizeof(T) floats. */
template <int DT>
static __device__ __forceinline__ void rk_unpack16(const uint4 &u, float *f) {
    if (DT == DT_F32) {
        f[0] = __uint_as_float(u.x); f[1] = __uint_as_float(u.y);
        f[2] = __uint_as_float(u.z); f[3] = __uint_as_float(u.w);
    } else {
        rk_unpack2<DT>(u.x, f[0], f[1]); rk_unpack2<DT>(u.y, f[2], f[3]);
        rk_unpack2<DT>(u.z, f[4], f[5]); rk_unpack2<DT>(u.w, f[6], f[7]);
    }
}

template <int DT>
static __device__ __forceinline__ float rk_load(const char *base, long long i) {
    if (DT == DT_F32) return ((const float *)base)[i];
    unsigned short u = ((const unsigned short *)base)[i];
    return DT == DT_F16 ? rk_h2f(u) : rk_bf2f(u);
}

/* Round to nearest even, NaN kept quiet (matches core/half.h). */
static __device__ __forceinline__ unsigned short rk_f2bf(float f) {
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}

static __device__ __forceinline__ unsigned short rk_f2h(float f) {
    __half h = __float2half_rn(f);
    unsigned short u;
    memcpy(&u, &h, 2);
    return u;
}

template <int DT>
static __device__ __forceinline__ void rk_store(char *base, long long i, float v) {
    if (DT == DT_F32) ((float *)base)[i] = v;
    else ((unsigned short *)base)[i] = DT == DT_F16 ? rk_f2h(v) : rk_f2bf(v);
}

static __device__ __forceinline__ float rk_warp_sum(float v) {
    for (int o = RK_WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

#endif
