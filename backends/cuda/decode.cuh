/* Decode attention kernels: sparse-channel (span tokens scored in the pruned basis) and dense.
 *
 * Grid (split, KV head × head chunk, sequence); 128-thread blocks (256 for the tensor-core path on
 * small grids, template NT). A block reads its token range
 * of one KV head once and serves a chunk of up to GT query heads of that GQA group from it.
 * Warps take TILE-token tiles round-robin; per tile every lane issues all its 16-byte loads of V
 * and (on hot tiles) K before using any, so a warp keeps a whole tile of bytes in flight.
 * Online softmax runs in the log2 domain (scale·log2e folded into q) with f32 accumulation; on the
 * tensor-core path the K dot is transposed (heads × tokens) so each lane's logits are already the
 * P fragment of the P·V MMA and the softmax runs in registers.
 * Splits over tokens leave (max, sum, acc) partials that rk_decode_combine merges, one block per
 * (sequence, query head), every split's loads in flight at once.
 *
 * rk_decode_vec is the fast path (16-byte aligned rows whose widths are supported multiples of
 * 16 bytes); rk_decode_any serves every other shape one query head and one token at a time. */
#ifndef RK_CUDA_DECODE_CUH
#define RK_CUDA_DECODE_CUH

#include "common.cuh"

#include <math.h>

/* Tensor-core P·V for GQA groups of 8 (CUDA, sm_80+, 16-bit V rows of 128 channels): per 16-token
 * tile one mma.m16n8k16 per 16 channels, A = Vᵀ (channels × tokens, pairs of tokens packed with
 * byte permutes straight from the 16-byte loads), B = P (tokens × the 8 heads), C = f32. */
#if defined(RK_HIP)
#define RK_HAVE_MMA 0
#else
#define RK_HAVE_MMA 1
#include <cuda_bf16.h>
#endif

template <int DT>
static __device__ __forceinline__ unsigned rk_pack_p(float lo, float hi) {
#if RK_HAVE_MMA
    if (DT == DT_BF16) {
        __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
        unsigned u;
        memcpy(&u, &v, 4);
        return u;
    }
    __half2 v = __floats2half2_rn(lo, hi);
    unsigned u;
    memcpy(&u, &v, 4);
    return u;
#else
    return 0u;
#endif
}

/* x rounded to the 16-bit storage type and back: the hi part of a hi/lo split */
template <int DT>
static __device__ __forceinline__ float rk_round16(float x) {
#if RK_HAVE_MMA
    if (DT == DT_BF16) return __bfloat162float(__float2bfloat16_rn(x));
    return __half2float(__float2half_rn(x));
#else
    return x;
#endif
}

template <int DT>
static __device__ __forceinline__ void rk_mma16816(float *c, unsigned a0, unsigned a1, unsigned a2,
                                                   unsigned a3, unsigned b0, unsigned b1) {
#if RK_HAVE_MMA && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    if (DT == DT_BF16)
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
                     "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
    else
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, "
                     "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#endif
}

/* Programmatic dependent launch (sm_90, see rk_dec_launch): a decode kernel may be resident
 * before the previous kernel of the stream has finished, so it first waits for that kernel and
 * its memory, then lets the next kernel launch at once (it will wait in turn). This hides the
 * launch gaps between the decode, its combine and the next decode. No-ops elsewhere. */
static __device__ __forceinline__ void rk_pdl_wait() {
#if !defined(RK_HIP) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

static __device__ __forceinline__ void rk_pdl_trigger() {
#if !defined(RK_HIP) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

static __device__ __forceinline__ void rk_pdl_enter() {
    rk_pdl_wait();
    rk_pdl_trigger();
}

/* Trace builds (-DRK_DEC_TRACE, CUDA): per-warp clock64 stamps of the decode's phases into
 * p.trace (host: RK_CUDA_DEC_TRACE, see rk_cuda.cu). Compiled out otherwise. */
#if defined(RK_DEC_TRACE) && !defined(RK_HIP)
#define RK_TRACE 1
static __device__ __forceinline__ unsigned long long rk_clk() {
    unsigned long long v;
    asm volatile("mov.u64 %0, %%clock64;" : "=l"(v)::"memory");
    return v;
}
static __device__ __forceinline__ unsigned long long rk_gtimer() {
    unsigned long long v;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(v)::"memory");
    return v;
}
#define RK_TR_REC 16 /* u64 per warp record */
#define RK_TR_COMBINE_OFF (8192 * RK_TR_REC)
#define RK_TR_WORDS (RK_TR_COMBINE_OFF + 4096 * 8)
#else
#define RK_TRACE 0
#endif

/* Fragments of the tensor-core K dot (m16n8k16, lane g = lane / 4, q = lane % 4), one k-step of
 * 16 channels each. A: 4-byte pairs at this lane's column of rows g (r0) and g + 8 (r8); a row not
 * taken reads as zero. B: one head's query pairs (channels 2q, 2q + 1 and 2q + 8, 2q + 9 of qh)
 * as a 16-bit hi part (b[0], b[1]) and its residual lo part (b[2], b[3]): C += A·B_hi + A·B_lo
 * keeps f32-grade logits. */
static __device__ __forceinline__ void rk_kfrag(const char *r0, const char *r8, bool t0, bool t8,
                                                int ks, unsigned *a) {
    a[0] = t0 ? *(const unsigned *)(r0 + 32 * ks) : 0u;
    a[1] = t8 ? *(const unsigned *)(r8 + 32 * ks) : 0u;
    a[2] = t0 ? *(const unsigned *)(r0 + 32 * ks + 16) : 0u;
    a[3] = t8 ? *(const unsigned *)(r8 + 32 * ks + 16) : 0u;
}

template <int DT>
static __device__ __forceinline__ void rk_qfrag_hilo(const float *qh, bool live, unsigned *b) {
    float x[4], hi[4];
#pragma unroll
    for (int e = 0; e < 4; e++) {
        x[e] = live ? qh[(e & 1) + 8 * (e >> 1)] : 0.0f;
        hi[e] = rk_round16<DT>(x[e]);
    }
    b[0] = rk_pack_p<DT>(hi[0], hi[1]);
    b[1] = rk_pack_p<DT>(hi[2], hi[3]);
    b[2] = rk_pack_p<DT>(x[0] - hi[0], x[1] - hi[1]);
    b[3] = rk_pack_p<DT>(x[2] - hi[2], x[3] - hi[3]);
}

template <int DT>
static __device__ __forceinline__ void rk_mma_hilo(float *c, const unsigned *a, const unsigned *b) {
    rk_mma16816<DT>(c, a[0], a[1], a[2], a[3], b[0], b[1]);
    rk_mma16816<DT>(c, a[0], a[1], a[2], a[3], b[2], b[3]);
}

#define RK_DEC_INLINE_SEQS 64 /* sequence table passed in the kernel parameters up to this B */
#define RK_DEC_MAX_SPLITS 256
/* floats of R staged per thread and pass of the prologue's projection: 4096 at 128 threads,
 * 8192 at 256, so r 64 (d 128) takes one pass there (B1 T4096 r 64 13.5 -> 13.0 us,
 * bench/results/cuda/v10/qchunk); a per-thread constant keeps the register preload the same */
#define RK_QPROJ_PER_THREAD 32
#define RK_QPROJ_OUT 16     /* q·R outputs per thread: gt · r <= 16 · 128 */

struct rk_dec_seq {
    int len, begin, span;
};

struct rk_dec_params {
    const char *q, *kf, *ks, *v;
    char *out;
    float *lse;
    long long q_b, q_h, kf_b, kf_h, kf_t, ks_b, ks_h, ks_t, v_b, v_h, v_t, o_b, o_h, l_b, l_h;
    const float *R, *dmu;       /* [B][Hkv][d][r], [B][Hkv][d] (sparse) */
    const rk_dec_seq *seq_dev;  /* device copy when B > RK_DEC_INLINE_SEQS */
    int B, Hq, Hkv, G, d, dv, r, sparse;
    int q_vec;                  /* q rows are 16-byte chunks: vector loads */
    int gt;                     /* query heads per block (chunk width) */
    int hc;                     /* head chunks per KV head */
    float qscale;               /* scale · log2(e) */
    int n_split, split_len;
    float *part;                /* [B][Hq][S][dv] partial accumulators */
    float *part_ml;             /* [B][Hq][S] partial log2-sum-exp (M + log2 L) */
    int early;                  /* PDL: read inputs before griddepcontrol.wait (rk_decode_vec) */
    unsigned long long *trace;  /* RK_DEC_TRACE builds: phase stamps of one decode, else NULL */
    rk_dec_seq seq[RK_DEC_INLINE_SEQS];
};

/* Shared-memory carve-up, identical on host (sizing) and device (pointers). Floats. The
 * prologue's stage (a chunk of R, then δμ) overlaps the tile buffers from logit on. */
struct rk_dec_smem {
    float *q, *qr, *bias, *logit, *p, *alpha, *m, *l, *acc, *stage;
};

static __host__ __device__ inline int rk_dec_stage_rows(int d, int r, int nt) {
    const int chunk = RK_QPROJ_PER_THREAD * nt;
    return d < chunk / r ? d : chunk / r;
}

/* R chunk, δμ, then the projection's per-slice partial sums [slices][gt][r] */
static __host__ __device__ inline size_t rk_dec_stage_floats(int gt, int d, int r, int nt) {
    if (r <= 0) return 0;
    const int ns = r < nt ? nt / r : 1;
    return (size_t)rk_dec_stage_rows(d, r, nt) * r + d + (size_t)ns * gt * r;
}

/* q, q·R and bias; rounded to 16 bytes so the stage after it takes 16-byte stores */
static __host__ __device__ inline size_t rk_dec_front_floats(int gt, int d, int r) {
    return ((size_t)gt * d + (size_t)gt * r + gt + 3) & ~(size_t)3;
}

static __host__ __device__ inline size_t rk_dec_smem_floats(int gt, int d, int r, int dv, int nw,
                                                            int tile, int nt) {
    const size_t tiles = 2 * (size_t)nw * gt * tile + 3 * (size_t)nw * gt + (size_t)nw * gt * dv;
    const size_t stage = rk_dec_stage_floats(gt, d, r, nt);
    return rk_dec_front_floats(gt, d, r) + (tiles > stage ? tiles : stage);
}

static __device__ inline rk_dec_smem rk_dec_carve(float *base, int gt, int d, int r, int dv,
                                                  int nw, int tile) {
    rk_dec_smem s;
    s.q = base;
    s.qr = s.q + gt * d;
    s.bias = s.qr + gt * r;
    s.logit = base + rk_dec_front_floats(gt, d, r); /* [nw][gt][tile] */
    s.p = s.logit + nw * gt * tile; /* [nw][tile][gt] */
    s.alpha = s.p + nw * gt * tile; /* [nw][gt] */
    s.m = s.alpha + nw * gt;
    s.l = s.m + nw * gt;
    s.acc = s.l + nw * gt;       /* [nw][gt][dv] */
    s.stage = s.logit;
    return s;
}

static __device__ inline rk_dec_seq rk_dec_seq_of(const rk_dec_params &p, int b) {
    return p.B <= RK_DEC_INLINE_SEQS ? p.seq[b] : p.seq_dev[b];
}

/* One 16-byte chunk of q (zeros where !live), scaled, into dst [16 / element size]. */
template <int DT>
static __device__ __forceinline__ void rk_store_q_chunk(float *dst, const uint4 &raw, bool live,
                                                        float qscale) {
    constexpr int VE = 16 / rk_dt<DT>::size;
    float v[VE];
    if (live) {
        rk_unpack16<DT>(raw, v);
    } else {
#pragma unroll
        for (int e = 0; e < VE; e++) v[e] = 0.0f;
    }
#pragma unroll
    for (int e = 0; e < VE; e += 4)
        *(float4 *)(dst + e) = make_float4(v[e] * qscale, v[e + 1] * qscale, v[e + 2] * qscale, v[e + 3] * qscale);
}

/* q of heads h0 .. h0 + rows - 1 (scaled; zero past nh) into dst [rows][d]. Rows of 16-byte
 * chunks (p.q_vec) take one vector load per chunk, usually one per thread; otherwise every
 * scalar load of a thread is in flight together (host keeps rows · d <= RK_Q_MAX · RK_THREADS). */
#define RK_Q_MAX 16
template <int DT, int NT = RK_THREADS>
static __device__ __forceinline__ void rk_load_q(const rk_dec_params &p, float *dst, int b, int h0,
                                                 int nh, int rows) {
    constexpr int ESZ = rk_dt<DT>::size, VE = 16 / ESZ;
    const char *qb = p.q + (size_t)(b * p.q_b) * ESZ;
    if (p.q_vec) {
        const int cph = p.d / VE; /* chunks per head row */
        for (int i = threadIdx.x; i < rows * cph; i += NT) {
            const int h = i / cph, c = (i - h * cph) * VE;
            uint4 raw = make_uint4(0u, 0u, 0u, 0u);
            if (h < nh) raw = *(const uint4 *)(qb + ((long long)(h0 + h) * p.q_h + c) * ESZ);
            rk_store_q_chunk<DT>(dst + h * p.d + c, raw, h < nh, p.qscale);
        }
        return;
    }
    float t[RK_Q_MAX];
#pragma unroll
    for (int k = 0; k < RK_Q_MAX; k++) {
        const int i = threadIdx.x + k * NT, h = i / p.d;
        t[k] = i < rows * p.d && h < nh ? rk_load<DT>(qb, (long long)(h0 + h) * p.q_h + i % p.d) : 0.0f;
    }
#pragma unroll
    for (int k = 0; k < RK_Q_MAX; k++) {
        const int i = threadIdx.x + k * NT;
        if (i < rows * p.d) dst[i] = t[k] * p.qscale;
    }
}

/* Copy n floats of global memory into shared memory, every load of a thread in flight before
 * the first store (16-byte loads when src and n allow). */
template <int NT = RK_THREADS>
static __device__ __forceinline__ void rk_stage_floats(float *dst, const float *src, int n) {
    const int tid = threadIdx.x;
    if (n % 4 == 0 && (((size_t)src | (size_t)dst) & 15) == 0) {
        const float4 *s4 = (const float4 *)src;
        for (int i0 = tid; i0 < n / 4; i0 += 8 * NT) {
            float4 t[8];
#pragma unroll
            for (int u = 0; u < 8; u++) {
                const int i = i0 + u * NT;
                t[u] = i < n / 4 ? s4[i] : make_float4(0.f, 0.f, 0.f, 0.f);
            }
#pragma unroll
            for (int u = 0; u < 8; u++)
                if (i0 + u * NT < n / 4) ((float4 *)dst)[i0 + u * NT] = t[u];
        }
        return;
    }
    for (int i0 = tid; i0 < n; i0 += 8 * NT) {
        float t[8];
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const int i = i0 + u * NT;
            t[u] = i < n ? src[i] : 0.0f;
        }
#pragma unroll
        for (int u = 0; u < 8; u++)
            if (i0 + u * NT < n) dst[i0 + u * NT] = t[u];
    }
}

/* The prologue's loads in one round trip where the shapes allow (uniform test): R's first chunk
 * (float4s), δμ (one float per thread) and q (one 16-byte chunk per thread) all go out before any
 * shared-memory store. Issued as three helper calls, each store waited for its own loads (the
 * compiler may not move a global load above a shared store through generic pointers), so these
 * were three serial L2 round trips. false: take the general path. */
template <int DT, int GT, int NT>
static __device__ __forceinline__ bool rk_dec_prologue_loads(const rk_dec_params &p, const rk_dec_smem &sm,
                                                            int b, int h0, int nh, const float *R,
                                                            const float *dmu, int n_stage, float *sdmu) {
    constexpr int ESZ = rk_dt<DT>::size, VE = 16 / ESZ, RU = RK_QPROJ_PER_THREAD / 4;
    const int tid = threadIdx.x, d = p.d, cph = d / VE;
    if (!(p.q_vec && GT * cph <= NT && d <= NT && n_stage % 4 == 0 && n_stage / 4 <= RU * NT &&
          ((size_t)R & 15) == 0))
        return false;
    float4 rt[RU];
#pragma unroll
    for (int u = 0; u < RU; u++) {
        const int i = tid + u * NT;
        rt[u] = i < n_stage / 4 ? ((const float4 *)R)[i] : make_float4(0.f, 0.f, 0.f, 0.f);
    }
    const float dm = tid < d ? dmu[tid] : 0.0f;
    const int h = tid / cph, c = (tid - h * cph) * VE;
    const bool qlive = tid < GT * cph && h < nh;
    uint4 qv = make_uint4(0u, 0u, 0u, 0u);
    if (qlive) qv = *(const uint4 *)(p.q + ((size_t)(b * p.q_b) + (long long)(h0 + h) * p.q_h + c) * ESZ);
#pragma unroll
    for (int u = 0; u < RU; u++)
        if (tid + u * NT < n_stage / 4) ((float4 *)sm.stage)[tid + u * NT] = rt[u];
    if (tid < d) sdmu[tid] = dm;
    if (tid < GT * cph) rk_store_q_chunk<DT>(sm.q + h * d + c, qv, qlive, p.qscale);
    return true;
}

/* q of the block's heads into shared memory (scaled; zero rows past the group), and for sparse
 * decode their q·R and q·δμ. R is staged through shared memory RK_QPROJ_PER_THREAD · NT floats at a time;
 * the first chunk's loads, δμ's and q's are in flight together, so a block pays about one L2
 * round trip for the projection (R stays in L2 after a head's first block). Computing it here
 * instead of in a projection pass saves a launch. Thread t owns column j = t % r of a slice of
 * the rows (t / r) for all GT heads: one R load feeds GT independent FMA chains, and the slices'
 * partial sums meet in shared memory. At batch 1 every warp runs this once, so its instruction
 * count is a fixed part of the decode's latency. */
template <int DT, int GT, int NT = RK_THREADS>
static __device__ void rk_dec_prologue(const rk_dec_params &p, const rk_dec_smem &sm, int b,
                                       int g, int h0, int nh, bool need_span) {
    const int tid = threadIdx.x, lane = tid % RK_WARP, warp = tid / RK_WARP, d = p.d, r = p.r;
    if (!need_span) {
        rk_load_q<DT, NT>(p, sm.q, b, h0, nh, GT);
        __syncthreads();
        return;
    }
    const size_t bg = (size_t)b * p.Hkv + g;
    const float *R = p.R + bg * d * r, *dmu = p.dmu + bg * d;
    const int rows = rk_dec_stage_rows(d, r, NT);
    const int ns = r < NT ? NT / r : 1; /* row slices */
    float *sdmu = sm.stage + rows * r, *red = sdmu + d;  /* red [ns][GT][r] */
    if (!rk_dec_prologue_loads<DT, GT, NT>(p, sm, b, h0, nh, R, dmu, rows * r, sdmu)) {
        for (int i = tid; i < d; i += NT) sdmu[i] = dmu[i];
        rk_stage_floats<NT>(sm.stage, R, rows * r);
        rk_load_q<DT, NT>(p, sm.q, b, h0, nh, GT);
    }
    const int sl = tid / r;
    for (int j0 = 0; j0 < r; j0 += NT) { /* r > NT: columns in passes */
        const int j = j0 + tid % r;
        float acc[GT];
#pragma unroll
        for (int h = 0; h < GT; h++) acc[h] = 0.0f;
        for (int c0 = 0; c0 < d; c0 += rows) {
            const int n_rows = min(rows, d - c0), per = (n_rows + ns - 1) / ns;
            if (c0 > 0) {
                __syncthreads(); /* previous chunk consumed */
                rk_stage_floats<NT>(sm.stage, R + (size_t)c0 * r, n_rows * r);
            }
            __syncthreads();
            if (sl < ns && j < r) {
                const int ca = sl * per, cb = min(n_rows, ca + per);
                int c = ca;
                if ((d & 3) == 0 && ((c0 + ca) & 3) == 0)
                    for (; c + 3 < cb; c += 4) {
                        const float r0 = sm.stage[c * r + j], r1 = sm.stage[(c + 1) * r + j];
                        const float r2 = sm.stage[(c + 2) * r + j], r3 = sm.stage[(c + 3) * r + j];
#pragma unroll
                        for (int h = 0; h < GT; h++) {
                            const float4 q = *(const float4 *)(sm.q + h * d + c0 + c);
                            acc[h] += q.x * r0 + q.y * r1 + q.z * r2 + q.w * r3;
                        }
                    }
                for (; c < cb; c++) {
                    const float rv = sm.stage[c * r + j];
#pragma unroll
                    for (int h = 0; h < GT; h++) acc[h] += sm.q[h * d + c0 + c] * rv;
                }
            }
        }
        if (sl < ns && j < r)
#pragma unroll
            for (int h = 0; h < GT; h++) red[(sl * GT + h) * r + j] = acc[h];
        __syncthreads();
        for (int o = tid; o < GT * r; o += NT) {
            const int jj = o % r;
            if (jj < j0 || jj >= j0 + NT) continue;
            float a = 0.0f;
            for (int k = 0; k < ns; k++) a += red[k * GT * r + o];
            sm.qr[o] = a; /* zero past the group: those q rows are zero */
        }
        __syncthreads();
    }
    for (int h = warp; h < GT; h += (NT / RK_WARP)) {
        float a = 0.0f;
        for (int c = lane; c < d; c += RK_WARP) a += sm.q[h * d + c] * sdmu[c];
        a = rk_warp_sum(a);
        if (lane == 0) sm.bias[h] = a;
    }
    __syncthreads(); /* the stage overlaps the tile buffers */
}

/* Logits of tokens [p0, p0 + n) of one tile, one token at a time across the warp: the path for
 * tiles that mix token kinds or run past the range end. Writes lg[h * tile + i]. */
template <int DT, int GT>
static __device__ void rk_dec_logits_slow(const rk_dec_params &p, const rk_dec_smem &sm,
                                          const rk_dec_seq &s, int b, int g, int p0, int n,
                                          int tile, float *lg) {
    const int lane = threadIdx.x % RK_WARP;
    const int esz = rk_dt<DT>::size;
    for (int i = 0; i < tile; i++) {
        const int pos = p0 + i;
        if (i >= n) {
            if (lane < GT) lg[lane * tile + i] = -INFINITY;
            continue;
        }
        const bool in_span = p.sparse && pos >= s.begin && pos < s.begin + s.span;
        const char *row;
        const float *qv;
        int w;
        if (in_span) {
            row = p.ks + (size_t)(b * p.ks_b + g * p.ks_h + (long long)(pos - s.begin) * p.ks_t) * esz;
            qv = sm.qr;
            w = p.r;
        } else {
            long long fr = pos < s.begin ? pos : pos - s.span;
            row = p.kf + (size_t)(b * p.kf_b + g * p.kf_h + fr * p.kf_t) * esz;
            qv = sm.q;
            w = p.d;
        }
        float part[GT];
#pragma unroll
        for (int h = 0; h < GT; h++) part[h] = 0.0f;
        for (int c = lane; c < w; c += RK_WARP) {
            float k = rk_load<DT>(row, c);
#pragma unroll
            for (int h = 0; h < GT; h++) part[h] += qv[h * w + c] * k;
        }
#pragma unroll
        for (int h = 0; h < GT; h++) part[h] = rk_warp_sum(part[h]);
        if (lane == 0)
#pragma unroll
            for (int h = 0; h < GT; h++) lg[h * tile + i] = part[h] + (in_span ? sm.bias[h] : 0.0f);
    }
}

/* Logits of a tile that mixes token kinds or runs past the range end, on the vector path: the
 * tile's rows as (token, 16-byte chunk) items, four per lane in flight, each row's dot reduced
 * over the chm lanes that hold it (chm = chunks of a full-width row, a power of two dividing the
 * warp; span rows use their first chunks). Writes lg[h * tile + i], -inf past n. */
template <int DT, int GT>
static __device__ void rk_dec_logits_mixed(const rk_dec_params &p, const rk_dec_smem &sm,
                                           const rk_dec_seq &s, int b, int g, int p0, int n,
                                           int tile, int chm, float *lg) {
    constexpr int ESZ = rk_dt<DT>::size, VE = 16 / ESZ;
    const int lane = threadIdx.x % RK_WARP, total = tile * chm;
    for (int base = 0; base < total; base += 4 * RK_WARP) {
        uint4 kv[4];
#pragma unroll
        for (int u = 0; u < 4; u++) {
            const int f = base + u * RK_WARP + lane, tok = f / chm, ch = f % chm, pos = p0 + tok;
            kv[u] = make_uint4(0u, 0u, 0u, 0u);
            if (f < total && tok < n) {
                const char *row;
                int w;
                if (p.sparse && pos >= s.begin && pos < s.begin + s.span) {
                    row = p.ks + (size_t)(b * p.ks_b + g * p.ks_h + (long long)(pos - s.begin) * p.ks_t) * ESZ;
                    w = p.r;
                } else {
                    const long long fr = pos < s.begin ? pos : pos - s.span;
                    row = p.kf + (size_t)(b * p.kf_b + g * p.kf_h + fr * p.kf_t) * ESZ;
                    w = p.d;
                }
                if (ch * VE < w) kv[u] = *(const uint4 *)(row + ch * 16);
            }
        }
#pragma unroll
        for (int u = 0; u < 4; u++) {
            if (base + u * RK_WARP >= total) break; /* warp-uniform */
            const int f = base + u * RK_WARP + lane, tok = f / chm, ch = f % chm, pos = p0 + tok;
            const bool in_span = p.sparse && pos >= s.begin && pos < s.begin + s.span;
            const float *qv = in_span ? sm.qr : sm.q;
            const int w = in_span ? p.r : p.d, c0 = ch * VE;
            float k[VE], part[GT];
            rk_unpack16<DT>(kv[u], k);
#pragma unroll
            for (int h = 0; h < GT; h++) {
                float a = 0.0f;
                if (c0 < w)
#pragma unroll
                    for (int e = 0; e < VE; e += 4) { /* rows are 16-byte chunks: so are q's */
                        const float4 q4 = *(const float4 *)(qv + h * w + c0 + e);
                        a += q4.x * k[e] + q4.y * k[e + 1] + q4.z * k[e + 2] + q4.w * k[e + 3];
                    }
                part[h] = a;
            }
            for (int o = chm / 2; o > 0; o >>= 1)
#pragma unroll
                for (int h = 0; h < GT; h++) part[h] += __shfl_xor_sync(0xffffffffu, part[h], o);
            if (ch == 0)
#pragma unroll
                for (int h = 0; h < GT; h++)
                    lg[h * tile + tok] = tok < n ? part[h] + (in_span ? sm.bias[h] : 0.0f) : -INFINITY;
        }
    }
}

/* Transposed tensor-core K dot (GQA 8, 16-bit): C = A·B with A = the 8 heads' query (rows 0-7:
 * the 16-bit hi part, rows 8-15: the residual lo part) and B = Kᵀ (channels × 8 tokens), one MMA per
 * k-step and 8-token half. Lane (g, q) gets the logits of head g for tokens 2q, 2q+1 (half 0) and
 * 2q+8, 2q+9 (half 1) as c[0] + c[2], c[1] + c[3]: the B-fragment layout of P in the P·V MMA, so
 * the softmax runs in registers (quad shuffles) with no shared-memory round trip. The K fragments
 * are the 4-byte pairs rk_kfrag loads (rows g and g + 8). */
template <int DT>
static __device__ __forceinline__ void rk_qfrag_t(const float *qh, bool live, unsigned *a) {
    unsigned b[4];
    rk_qfrag_hilo<DT>(qh, live, b); /* hi(2q), hi(2q+8), lo(2q), lo(2q+8) */
    a[0] = b[0]; a[1] = b[2]; a[2] = b[1]; a[3] = b[3];
}

template <int DT>
static __device__ __forceinline__ void rk_mma_t(float *c0, float *c1, const unsigned *a, const unsigned *k) {
    rk_mma16816<DT>(c0, a[0], a[1], a[2], a[3], k[0], k[2]);
    rk_mma16816<DT>(c1, a[0], a[1], a[2], a[3], k[1], k[3]);
}

/* Logits (transposed layout, x[4]) of a tile that mixes span rows, full-width rows and rows past
 * the range end (GQA 8, 16-bit, d a multiple of 16): each B fragment holds only token columns of
 * its kind (zeros elsewhere), so one accumulator pair sums the span tokens' (q·R)·(k·R) from the
 * lane's q·R fragments aq and the full tokens' q·k, whose fragments are built from shared memory
 * here (hi/lo as in the hot path). Tokens past t1 get -inf. */
/* KB: full-width k-steps of a mixed tile in flight together (8: all of d 128) */
template <int DT, int KSTEPS, int KB>
static __device__ void rk_dec_logits_mma_mixed(const rk_dec_params &p, const rk_dec_smem &sm,
                                               const rk_dec_seq &s, int b, int g, int p0, int t1,
                                               const unsigned (*aq)[4], float hb, float *x) {
    constexpr int ESZ = rk_dt<DT>::size;
    const int lane = threadIdx.x % RK_WARP, mg = lane / 4, mq = lane % 4;
    const char *row[2];
    bool span[2], full[2];
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const int pos = p0 + mg + 8 * i;
        span[i] = pos < t1 && p.sparse && pos >= s.begin && pos < s.begin + s.span;
        full[i] = pos < t1 && !span[i];
        if (span[i]) {
            row[i] = p.ks + (size_t)(b * p.ks_b + g * p.ks_h + (long long)(pos - s.begin) * p.ks_t) * ESZ;
        } else {
            const long long fr = pos < s.begin ? pos : pos - s.span;
            row[i] = p.kf + (size_t)(b * p.kf_b + g * p.kf_h + fr * p.kf_t) * ESZ;
        }
        row[i] += 4 * mq;
    }
    /* the first KB full-width k-steps and the span fragments (KB at a time) are loaded together:
     * from HBM each dependent batch of loads is a round trip, and at batch 1 the blocks holding
     * mixed tiles are the critical path. The span MMAs run while the full rows are in flight. */
    const bool any_span = p.sparse && __any_sync(0xffffffffu, span[0] || span[1]);
    const bool any_full = __any_sync(0xffffffffu, full[0] || full[1]);
    float c0[4] = {0.0f, 0.0f, 0.0f, 0.0f}, c1[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    auto span_mmas = [&]() {
        if (!any_span) return;
#pragma unroll
        for (int k0 = 0; k0 < KSTEPS; k0 += KB) {
            unsigned as[KB][4];
#pragma unroll
            for (int u = 0; u < KB && k0 + u < KSTEPS; u++)
                rk_kfrag(row[0], row[1], span[0], span[1], k0 + u, as[u]);
#pragma unroll
            for (int u = 0; u < KB && k0 + u < KSTEPS; u++) rk_mma_t<DT>(c0, c1, aq[k0 + u], as[u]);
        }
    };
    const int full_steps = any_full ? p.d / 16 : 0;
    const float *qh = sm.q + mg * p.d + 2 * mq;
    if (full_steps == 0) span_mmas();
    for (int f0 = 0; f0 < full_steps; f0 += KB) {
        unsigned af[KB][4];
#pragma unroll
        for (int u = 0; u < KB; u++)
            if (f0 + u < full_steps) rk_kfrag(row[0], row[1], full[0], full[1], f0 + u, af[u]);
        if (f0 == 0) span_mmas();
#pragma unroll
        for (int u = 0; u < KB; u++)
            if (f0 + u < full_steps) {
                unsigned qf[4];
                rk_qfrag_t<DT>(qh + 16 * (f0 + u), true, qf);
                rk_mma_t<DT>(c0, c1, qf, af[u]);
            }
    }
    const float v[4] = {c0[0] + c0[2], c0[1] + c0[3], c1[0] + c1[2], c1[1] + c1[3]};
#pragma unroll
    for (int e = 0; e < 4; e++) {
        const int pos = p0 + 2 * mq + (e & 1) + 8 * (e >> 1);
        const bool sp = pos < t1 && p.sparse && pos >= s.begin && pos < s.begin + s.span;
        x[e] = pos >= t1 ? -INFINITY : sp ? v[e] + hb : v[e];
    }
}

/* Combine the warps' (m, l, acc) of this block; with one split write the output, otherwise a
 * partial for rk_decode_combine: the normalized output of the split's tokens and its log2-sum-exp
 * M + log2 L (so the combine needs no second round trip for weights). Each head's (max, sum) and
 * the warps' weights are found once, then every thread merges channels with one weighted sum over
 * the warps. */
template <int DT, int NT = RK_THREADS, int MAXIT = 0>
static __device__ void rk_dec_finish(const rk_dec_params &p, const rk_dec_smem &sm,
                                     const rk_dec_seq &s, int b, int h0, int nh, int gt,
                                     int split, bool nonempty, bool early = false) {
    const int tid = threadIdx.x;
    const int S = p.n_split, dv = p.dv;
    __syncthreads();
    if (!nonempty) return;
    float *fac = sm.alpha, *Lh = sm.p; /* free once the token loop is over */
    float ml = 0.0f;                   /* tid < nh: this head's lse (S 1) or log2-sum-exp */
    if (tid < nh) {
        float M = -INFINITY, L = 0.0f;
        for (int w = 0; w < (NT / RK_WARP); w++) M = fmaxf(M, sm.m[w * gt + tid]);
        for (int w = 0; w < (NT / RK_WARP); w++) {
            const float l = sm.l[w * gt + tid]; /* 0: the warp saw no token */
            const float f = l > 0.0f ? exp2f(sm.m[w * gt + tid] - M) : 0.0f;
            fac[w * gt + tid] = f;
            L += l * f;
        }
        Lh[tid] = L > 0.0f ? 1.0f / L : 0.0f; /* 1 / L from here on */
        ml = S == 1 ? (M + log2f(L)) * RK_LN2 : L > 0.0f ? M + log2f(L) : -INFINITY;
    }
    auto store_ml = [&]() {
        if (tid < nh) {
            const int hq = h0 + tid;
            if (S == 1) {
                if (p.lse) p.lse[b * p.l_b + hq * p.l_h] = ml;
            } else {
                p.part_ml[((size_t)b * p.Hq + hq) * S + split] = ml;
            }
        }
    };
    __syncthreads();
    if constexpr (MAXIT > 0) {
        /* fast path (dv fixed at compile time): the items' sums first, then (early decodes:
         * after the wait for the previous kernel) every global store */
        float Av[MAXIT];
        int h = tid / dv, c = tid % dv;
#pragma unroll
        for (int it = 0; it < MAXIT; it++) {
            float A = 0.0f;
            if (h < nh) {
#pragma unroll
                for (int w = 0; w < (NT / RK_WARP); w++) A += sm.acc[(w * gt + h) * dv + c] * fac[w * gt + h];
                A *= Lh[h];
            }
            Av[it] = A;
            for (c += NT; c >= dv; c -= dv) h++;
        }
        if (early) rk_pdl_enter();
        store_ml();
        h = tid / dv;
        c = tid % dv;
#pragma unroll
        for (int it = 0; it < MAXIT; it++) {
            if (h < nh) {
                const int hq = h0 + h;
                if (S == 1) rk_store<DT>(p.out, (long long)b * p.o_b + (long long)hq * p.o_h + c, Av[it]);
                else p.part[(((size_t)b * p.Hq + hq) * S + split) * dv + c] = Av[it];
            }
            for (c += NT; c >= dv; c -= dv) h++;
        }
        return;
    }
    if (early) rk_pdl_enter();
    store_ml();
    /* (head, channel) items, NT at a time (h, c advance without a division) */
    for (int h = tid / dv, c = tid % dv; h < nh;) {
        const int hq = h0 + h;
        const float inv = Lh[h];
        float A = 0.0f;
#pragma unroll
        for (int w = 0; w < (NT / RK_WARP); w++) A += sm.acc[(w * gt + h) * dv + c] * fac[w * gt + h];
        if (S == 1) rk_store<DT>(p.out, (long long)b * p.o_b + (long long)hq * p.o_h + c, A * inv);
        else p.part[(((size_t)b * p.Hq + hq) * S + split) * dv + c] = A * inv;
        for (c += NT; c >= dv; c -= dv) h++;
    }
}

/* Merge the split partials of one (sequence, query head) in one round trip: 4 threads per 4
 * channels take a quarter of the splits each and load their partials and log2-sum-exps together,
 * RK_COMB_U splits per thread in flight (passes beyond that fold in online); the quarter's lanes
 * then share the max, the weights' sum and the weighted sums by shuffles. Grid B · Hq. */
#define RK_COMB_U 12
template <int DT>
__global__ void __launch_bounds__(RK_THREADS) rk_decode_combine(const rk_dec_params p) {
#if RK_TRACE
    unsigned long long *trc = p.trace && threadIdx.x == 0 ? p.trace + RK_TR_COMBINE_OFF + (size_t)blockIdx.x * 8 : NULL;
    if (trc) { trc[0] = rk_gtimer(); trc[3] = rk_clk(); }
#endif
    rk_pdl_enter();
#if RK_TRACE
    if (trc) { trc[1] = rk_gtimer(); trc[4] = rk_clk(); }
#endif
    const int tid = threadIdx.x;
    const int b = blockIdx.x / p.Hq, hq = blockIdx.x % p.Hq, S = p.n_split, dv = p.dv;
    const rk_dec_seq s = rk_dec_seq_of(p, b);
    const int n_valid = (s.len + p.split_len - 1) / p.split_len;
    const size_t base = ((size_t)b * p.Hq + hq) * S;
    const float *src = p.part + base * dv, *lse2 = p.part_ml + base;
    const long long o = (long long)b * p.o_b + (long long)hq * p.o_h;
    const bool vec = dv % 4 == 0;
    const int q4 = vec ? tid % 4 : 0, stride = vec ? 4 : 1; /* this thread's share of the splits */
    const int items = vec ? dv / 4 : dv, per = vec ? 4 : 1, step = vec ? RK_THREADS / 4 : RK_THREADS;
    for (int it0 = 0; it0 < items; it0 += step) {
        const int item = it0 + tid / stride;
        const bool live = item < items; /* every lane of a quarter runs the shuffles */
        float M = -INFINITY, L = 0.0f, a[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int j0 = q4; j0 < n_valid; j0 += stride * RK_COMB_U) {
            float x[RK_COMB_U][4], e[RK_COMB_U];
#pragma unroll
            for (int u = 0; u < RK_COMB_U; u++) {
                const int j = j0 + stride * u;
                const bool ok = live && j < n_valid;
                e[u] = ok ? lse2[j] : -INFINITY;
                const float *px = src + (size_t)j * dv + item * per;
                if (vec) {
                    const float4 v = ok ? *(const float4 *)px : make_float4(0.f, 0.f, 0.f, 0.f);
                    x[u][0] = v.x; x[u][1] = v.y; x[u][2] = v.z; x[u][3] = v.w;
                } else {
                    x[u][0] = ok ? px[0] : 0.0f;
                    x[u][1] = x[u][2] = x[u][3] = 0.0f;
                }
            }
            float m = M;
#pragma unroll
            for (int u = 0; u < RK_COMB_U; u++) m = fmaxf(m, e[u]);
            const float f = m == -INFINITY ? 0.0f : exp2f(M - m); /* rescale earlier passes */
            L *= f;
#pragma unroll
            for (int c = 0; c < 4; c++) a[c] *= f;
#pragma unroll
            for (int u = 0; u < RK_COMB_U; u++) {
                const float w = e[u] == -INFINITY ? 0.0f : exp2f(e[u] - m);
                L += w;
#pragma unroll
                for (int c = 0; c < 4; c++) a[c] += w * x[u][c];
            }
            M = m;
        }
        if (vec) { /* the quarter's lanes: one max, then rescaled sums */
            float m = M;
#pragma unroll
            for (int k = 1; k < 4; k <<= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, k));
            const float f = M == -INFINITY ? 0.0f : exp2f(M - m);
            L *= f;
#pragma unroll
            for (int c = 0; c < 4; c++) a[c] *= f;
#pragma unroll
            for (int k = 1; k < 4; k <<= 1) {
                L += __shfl_xor_sync(0xffffffffu, L, k);
#pragma unroll
                for (int c = 0; c < 4; c++) a[c] += __shfl_xor_sync(0xffffffffu, a[c], k);
            }
            M = m;
        }
        if (live && q4 == 0) {
            const float inv = 1.0f / L;
            for (int c = 0; c < per; c++) rk_store<DT>(p.out, o + item * per + c, a[c] * inv);
            if (item == 0 && p.lse) p.lse[b * p.l_b + hq * p.l_h] = (M + log2f(L)) * RK_LN2;
        }
    }
#if RK_TRACE
    if (trc) { trc[2] = rk_gtimer(); trc[5] = rk_clk(); }
#endif
}

/* Fast path. KC / VC: 16-byte chunks per hot K row (r for sparse, d for dense) and per V row.
 * The hot query slice lives in registers (QS = 1 would read it from shared memory instead: fewer
 * registers, measured no faster; see NOTES.md). PF = 1 (tensor-core path only): a warp issues its
 * first tile's loads before the prologue and each next tile's before computing the current one,
 * so the projection and every tile overlap a load round trip; the second register set costs the
 * 3-blocks/SM budget, so the host takes it for dense decode and for sparse decode only with
 * 128-byte K rows on small grids (be_decode). NT: threads per block; 256 (one block per SM) for
 * the tensor-core path on grids of a few (sequence, KV head) units (be_decode). */
template <int DT, int GT, int KC, int VC, int QS = 0, int PF = 0, int NT = RK_THREADS>
__global__ void __launch_bounds__(NT, (RK_HAVE_MMA && GT == 8 && DT != DT_F32 && VC == 16 && !PF && NT == RK_THREADS) ? 3 : 1)
    rk_decode_vec(const rk_dec_params p) {
#if RK_TRACE
    unsigned long long *trw = p.trace ? p.trace + ((size_t)((blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x) * (NT / RK_WARP) + threadIdx.x / RK_WARP) * RK_TR_REC : NULL;
    unsigned long long tr_tile[4] = {0, 0, 0, 0}, tr_mixed = 0, tr_nt = 0, tr_nm = 0;
    if (trw && threadIdx.x % RK_WARP == 0) {
        trw[0] = rk_gtimer();
        trw[1] = rk_clk();
    }
#endif
    /* early (host rule in be_decode): the previous kernel of the stream writes none of this
     * decode's inputs, so only the writes (finish) wait for it; the loads and math overlap it.
     * The next kernel is let in only after the wait either way: the kernels before the previous
     * one have then finished, so only the previous one can still be running beside our loads. */
    if (!p.early) rk_pdl_enter();
#if RK_TRACE
    if (trw && threadIdx.x % RK_WARP == 0) trw[2] = rk_clk();
#endif
    constexpr int ESZ = rk_dt<DT>::size;
    constexpr int VE = 16 / ESZ;             /* elements per 16-byte chunk */
    constexpr int TILE = RK_WARP / 2;        /* tokens per warp tile */
    constexpr int KTPP = RK_WARP / KC;       /* tokens per K load pass */
    constexpr int VTPP = RK_WARP / VC;
    constexpr int KSLOTS = TILE / KTPP;      /* K loads per lane per tile */
    constexpr int VSLOTS = TILE / VTPP;
    constexpr int LPH = (RK_WARP / GT) < TILE ? (RK_WARP / GT) : TILE; /* softmax lanes per head */
    constexpr int TPL = TILE / LPH;          /* softmax tokens per lane */
    static_assert(KTPP >= 1 && KSLOTS >= 1 && VTPP >= 1 && VSLOTS >= 1, "unsupported widths");
    /* tensor-core P·V: lane (g = lane / 4, q = lane % 4) loads tokens 2q, 2q+1, 2q+8, 2q+9 at
     * chunks g and g + 8; it accumulates channels (g + 8u) · 8 + 2w (+1) for heads 2q, 2q+1 */
    constexpr bool MMA = RK_HAVE_MMA && GT == 8 && DT != DT_F32 && VC == 16 && RK_WARP == 32;
    /* tensor-core K dot too (MMA): A = the tile's K rows (tokens × 16 channels per k-step, 4-byte
     * pairs loaded straight into fragments), B = q·R (or q) of head g as a 16-bit hi part plus
     * the residual lo part (two MMAs: logits keep f32-grade precision), C = tokens × heads */
    constexpr int KSTEPS = KC * VE / 16;
    constexpr bool QSX = QS || MMA; /* no FFMA query slice in registers on the MMA path */
    /* full-width k-steps of a mixed tile loaded together: all of d 128 where registers allow */
    constexpr int mixed_kb = PF || NT > RK_THREADS ? (KSTEPS >= 8 ? 4 : 8) : KSTEPS >= 4 ? 2 : 4;

    extern __shared__ float rk_smem[];
    const int tid = threadIdx.x, lane = tid % RK_WARP, warp = tid / RK_WARP;
    const int b = blockIdx.z, g = blockIdx.y / p.hc, chunk = blockIdx.y % p.hc, split = blockIdx.x;
    const int h0 = g * p.G + chunk * GT, nh = min(GT, p.G - chunk * GT);
    const rk_dec_seq s = rk_dec_seq_of(p, b);
    const int t0 = split * p.split_len, t1 = min(t0 + p.split_len, s.len);
    constexpr int NW = NT / RK_WARP;
    const rk_dec_smem sm = rk_dec_carve(rk_smem, GT, p.d, p.r, p.dv, NW, TILE);
    const bool nonempty = t0 < t1;
    static_assert(!PF || MMA, "prefetch is a tensor-core path variant");
    if (nonempty) {
        const bool need_span = p.sparse && s.span > 0 && s.begin < t1 && s.begin + s.span > t0;
        const int mg = lane / 4, mq = lane % 4;
        const char *kbase = p.sparse ? p.ks + (size_t)(b * p.ks_b + g * p.ks_h) * ESZ
                                     : p.kf + (size_t)(b * p.kf_b + g * p.kf_h) * ESZ;
        const long long kt = p.sparse ? p.ks_t : p.kf_t;
        const int hot_lo = p.sparse ? s.begin : 0, hot_hi = p.sparse ? s.begin + s.span : s.len;
        /* V of tile p0 (every load in flight before any use); on the tensor-core path's hot
         * tiles its K fragments */
        auto k_loads = [&](int p0, unsigned (*ka)[4]) {
            const char *k0 = kbase + (size_t)(p0 - hot_lo + mg) * kt * ESZ + 4 * mq;
            const char *k8 = k0 + (size_t)8 * kt * ESZ;
#pragma unroll
            for (int ks = 0; ks < KSTEPS; ks++) rk_kfrag(k0, k8, true, true, ks, ka[ks]);
        };
        auto is_hot = [&](int p0) { return p0 >= hot_lo && p0 + TILE <= hot_hi && p0 + TILE <= t1; };
        auto v_loads = [&](int p0, uint4 *vb) {
#pragma unroll
            for (int sl = 0; sl < VSLOTS; sl++) {
                int pos;
                const char *vrow;
                if (MMA) { /* slot = token index tk (2q, 2q+1, 2q+8, 2q+9) × chunk slot u (g, g+8) */
                    const int tk = sl >> 1, u = sl & 1;
                    pos = p0 + 2 * mq + (tk & 1) + 8 * (tk >> 1);
                    vrow = p.v + (size_t)(b * p.v_b + g * p.v_h) * ESZ + (mg + 8 * u) * 16;
                } else {
                    pos = p0 + sl * VTPP + lane / VC;
                    vrow = p.v + (size_t)(b * p.v_b + g * p.v_h) * ESZ + (lane % VC) * 16;
                }
                vb[sl] = pos < t1 ? *(const uint4 *)(vrow + (size_t)pos * p.v_t * ESZ)
                                  : make_uint4(0u, 0u, 0u, 0u);
            }
        };
        /* PF: the whole tile, K with V */
        auto tile_loads = [&](int p0, uint4 *vb, unsigned (*ka)[4]) {
            v_loads(p0, vb);
            if (MMA && is_hot(p0)) k_loads(p0, ka);
        };
        constexpr int NB = PF ? 2 : 1; /* register sets: current tile, next tile */
        uint4 vbuf[NB][VSLOTS];
        unsigned kbuf[NB][MMA ? KSTEPS : 1][4];
        const int p_first = t0 + warp * TILE, p_step = NW * TILE;
        if (PF && p_first < t1) tile_loads(p_first, vbuf[0], kbuf[0]);
        rk_dec_prologue<DT, GT, NT>(p, sm, b, g, h0, nh, need_span);
#if RK_TRACE
        if (trw && lane == 0) trw[3] = rk_clk();
#endif

        /* this lane's slice of the hot query: heads × one 16-byte chunk of channels */
        const float *hot_q = p.sparse ? sm.qr : sm.q;
        const int hot_w = KC * VE, kchunk = lane % KC;
        float qx[QSX ? 1 : GT][VE], hb[GT];
#pragma unroll
        for (int h = 0; h < GT; h++) {
            hb[h] = need_span ? sm.bias[h] : 0.0f;
            if (!QSX)
#pragma unroll
                for (int e = 0; e < VE; e++) qx[QSX ? 0 : h][e] = need_span || !p.sparse ? hot_q[h * hot_w + kchunk * VE + e] : 0.0f;
        }
        const float *qs = hot_q + kchunk * VE; /* QS: this lane's chunk, head stride hot_w */
        float acc[MMA ? 1 : GT][VE];   /* FFMA path: heads × this lane's chunk */
        float accm[MMA ? 8 : 1][4];    /* MMA path: 8 channel blocks × (2 channels × 2 heads) */
#pragma unroll
        for (int h = 0; h < (MMA ? 1 : GT); h++)
#pragma unroll
            for (int e = 0; e < VE; e++) acc[h][e] = 0.0f;
#pragma unroll
        for (int mb = 0; mb < (MMA ? 8 : 1); mb++)
#pragma unroll
            for (int e = 0; e < 4; e++) accm[mb][e] = 0.0f;
        unsigned bq[MMA ? KSTEPS : 1][4]; /* MMA: A fragments of head mg's hot query (rk_qfrag_t) */
        float hbg = 0.0f;                   /* MMA: bias of head mg */
        if (MMA) {
            const bool live = need_span || !p.sparse;
#pragma unroll
            for (int ks = 0; ks < KSTEPS; ks++)
                rk_qfrag_t<DT>(hot_q + mg * hot_w + 16 * ks + 2 * mq, live, bq[ks]);
            if (need_span) hbg = sm.bias[mg % GT];
        }
        float m_run = -INFINITY, l_run = 0.0f;
        const int sm_head = lane / LPH, sm_j = lane % LPH;
        float *lg = sm.logit + warp * GT * TILE;
        float *pw = sm.p + warp * TILE * GT;

        for (int p0 = p_first; p0 < t1; p0 += p_step) {
#if RK_TRACE
            const unsigned long long tr_a = rk_clk();
            unsigned long long tr_b = 0, tr_c = 0;
#endif
            uint4 *vb = vbuf[0];
            unsigned (*ka)[4] = kbuf[0];
            if (PF) { /* the next tile's loads go out before this tile's math */
                if (p0 + p_step < t1) tile_loads(p0 + p_step, vbuf[NB - 1], kbuf[NB - 1]);
            } else {
                v_loads(p0, vb);
            }
            const bool hot = is_hot(p0);
            if constexpr (MMA) {
                /* logits of head mg, tokens 2mq, 2mq + 1, 2mq + 8, 2mq + 9 in registers */
                float xr[4];
                if (hot) {
                    if (!PF) k_loads(p0, ka); /* K registers live only across the dot */
                    float c0[4] = {0.0f, 0.0f, 0.0f, 0.0f}, c1[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
                    for (int ks = 0; ks < KSTEPS; ks++) rk_mma_t<DT>(c0, c1, bq[ks], ka[ks]);
                    xr[0] = c0[0] + c0[2] + hbg;
                    xr[1] = c0[1] + c0[3] + hbg;
                    xr[2] = c1[0] + c1[2] + hbg;
                    xr[3] = c1[1] + c1[3] + hbg;
                } else if (p.d % 16 == 0) {
                    rk_dec_logits_mma_mixed<DT, KSTEPS, mixed_kb>(p, sm, s, b, g, p0, t1, bq, hbg, xr);
                } else {
                    rk_dec_logits_mixed<DT, GT>(p, sm, s, b, g, p0, min(TILE, t1 - p0), TILE,
                                                p.d * ESZ / 16, lg);
                    __syncwarp();
#pragma unroll
                    for (int e = 0; e < 4; e++) xr[e] = lg[mg * TILE + 2 * mq + (e & 1) + 8 * (e >> 1)];
                    __syncwarp();
                }
#if RK_TRACE
                tr_b = rk_clk();
                if (hot) { tr_tile[0] += tr_b - tr_a; tr_nt++; } else { tr_mixed += tr_b - tr_a; tr_nm++; }
#endif
                /* online softmax of head mg over its quad (4 lanes × 4 tokens) */
                float mx = fmaxf(fmaxf(xr[0], xr[1]), fmaxf(xr[2], xr[3]));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                const float m_new = fmaxf(m_run, mx); /* finite: a tile holds a valid token */
                const float alpha = exp2f(m_run - m_new);
                float pr[4];
#pragma unroll
                for (int e = 0; e < 4; e++) pr[e] = exp2f(xr[e] - m_new);
                float sum = (pr[0] + pr[1]) + (pr[2] + pr[3]);
                sum += __shfl_xor_sync(0xffffffffu, sum, 1);
                sum += __shfl_xor_sync(0xffffffffu, sum, 2);
                l_run = l_run * alpha + sum;
                m_run = m_new;
#if RK_TRACE
                tr_c = rk_clk();
                tr_tile[1] += tr_c - tr_b;
#endif
                /* alpha of heads 2q, 2q + 1 (the C columns of this lane) from their quads */
                const float a0 = __shfl_sync(0xffffffffu, alpha, 8 * mq), a1 = __shfl_sync(0xffffffffu, alpha, 8 * mq + 4);
#pragma unroll
                for (int mb = 0; mb < 8; mb++) {
                    accm[mb][0] *= a0; accm[mb][1] *= a1; accm[mb][2] *= a0; accm[mb][3] *= a1;
                }
                /* B = P: tokens (2q, 2q+1) and (2q+8, 2q+9) of head g, this lane's own */
                const unsigned b0 = rk_pack_p<DT>(pr[0], pr[1]);
                const unsigned b1 = rk_pack_p<DT>(pr[2], pr[3]);
#pragma unroll
                for (int u = 0; u < 2; u++)
#pragma unroll
                    for (int w = 0; w < 4; w++) {
                        const unsigned *t0 = (const unsigned *)&vb[0 * 2 + u], *t1w = (const unsigned *)&vb[1 * 2 + u];
                        const unsigned *t8 = (const unsigned *)&vb[2 * 2 + u], *t9 = (const unsigned *)&vb[3 * 2 + u];
                        rk_mma16816<DT>(accm[u * 4 + w], __byte_perm(t0[w], t1w[w], 0x5410),
                                        __byte_perm(t0[w], t1w[w], 0x7632), __byte_perm(t8[w], t9[w], 0x5410),
                                        __byte_perm(t8[w], t9[w], 0x7632), b0, b1);
                    }
            } else { /* FFMA path */
                if (hot) {
                    const char *kb = kbase + (size_t)(p0 - hot_lo) * kt * ESZ + kchunk * 16;
                    uint4 kr[KSLOTS];
#pragma unroll
                    for (int sl = 0; sl < KSLOTS; sl++)
                        kr[sl] = *(const uint4 *)(kb + (size_t)(sl * KTPP + lane / KC) * kt * ESZ);
#pragma unroll
                    for (int sl = 0; sl < KSLOTS; sl++) {
                        float kv[VE];
                        rk_unpack16<DT>(kr[sl], kv);
                        float part[GT];
#pragma unroll
                        for (int h = 0; h < GT; h++) {
                            float a = 0.0f;
                            if (QSX) {
                                const float4 *q4 = (const float4 *)(qs + h * hot_w);
#pragma unroll
                                for (int e = 0; e < VE / 4; e++) {
                                    const float4 w = q4[e];
                                    a += w.x * kv[4 * e] + w.y * kv[4 * e + 1] + w.z * kv[4 * e + 2] + w.w * kv[4 * e + 3];
                                }
                            } else {
#pragma unroll
                                for (int e = 0; e < VE; e++) a += qx[QSX ? 0 : h][e] * kv[e];
                            }
                            part[h] = a;
                        }
#pragma unroll
                        for (int o = KC / 2; o > 0; o >>= 1)
#pragma unroll
                            for (int h = 0; h < GT; h++) part[h] += __shfl_xor_sync(0xffffffffu, part[h], o);
                        if (kchunk == 0) {
                            const int tok = sl * KTPP + lane / KC;
#pragma unroll
                            for (int h = 0; h < GT; h++) lg[h * TILE + tok] = part[h] + hb[h];
                        }
                    }
                } else {
                    rk_dec_logits_mixed<DT, GT>(p, sm, s, b, g, p0, min(TILE, t1 - p0), TILE,
                                                p.d * ESZ / 16, lg);
                }
                __syncwarp();
#if RK_TRACE
                tr_b = rk_clk();
                if (hot) { tr_tile[0] += tr_b - tr_a; tr_nt++; } else { tr_mixed += tr_b - tr_a; tr_nm++; }
#endif
                /* online softmax: LPH lanes per head, TPL tokens each */
                {
                    const int hh = sm_head < GT ? sm_head : GT - 1;
                    float x[TPL], mx = -INFINITY;
#pragma unroll
                    for (int i = 0; i < TPL; i++) {
                        x[i] = lg[hh * TILE + sm_j * TPL + i];
                        mx = fmaxf(mx, x[i]);
                    }
#pragma unroll
                    for (int o = LPH / 2; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
                    const float m_new = fmaxf(m_run, mx); /* finite: a tile holds a valid token */
                    const float alpha = exp2f(m_run - m_new);
                    float sum = 0.0f;
#pragma unroll
                    for (int i = 0; i < TPL; i++) {
                        float pr = exp2f(x[i] - m_new);
                        sum += pr;
                        if (sm_head < GT) pw[(sm_j * TPL + i) * GT + hh] = pr;
                    }
#pragma unroll
                    for (int o = LPH / 2; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
                    l_run = l_run * alpha + sum;
                    m_run = m_new;
                    if (sm_head < GT && sm_j == 0) sm.alpha[warp * GT + hh] = alpha;
                }
                __syncwarp();
#if RK_TRACE
                tr_c = rk_clk();
                tr_tile[1] += tr_c - tr_b;
#endif
#pragma unroll
                for (int h = 0; h < (MMA ? 1 : GT); h++) {
                    const float a = sm.alpha[warp * GT + h];
#pragma unroll
                    for (int e = 0; e < VE; e++) acc[h][e] *= a;
                }
#pragma unroll
                for (int sl = 0; sl < VSLOTS; sl++) {
                    float vv[VE];
                    rk_unpack16<DT>(vb[sl], vv);
                    const float *pt = pw + (sl * VTPP + lane / VC) * GT;
#pragma unroll
                    for (int h = 0; h < (MMA ? 1 : GT); h++) {
                        const float ph = pt[h];
#pragma unroll
                        for (int e = 0; e < VE; e++) acc[h][e] += ph * vv[e];
                    }
                }
            }
            if (PF) { /* the next tile's registers become the current ones */
#pragma unroll
                for (int sl = 0; sl < VSLOTS; sl++) vbuf[0][sl] = vbuf[NB - 1][sl];
#pragma unroll
                for (int ks = 0; ks < (MMA ? KSTEPS : 1); ks++)
#pragma unroll
                    for (int e = 0; e < 4; e++) kbuf[0][ks][e] = kbuf[NB - 1][ks][e];
            }
            __syncwarp();
#if RK_TRACE
            tr_tile[2] += rk_clk() - tr_c;
#endif
        }
#if RK_TRACE
        if (trw && lane == 0) {
            trw[4] = rk_clk();
            trw[7] = tr_nt; trw[8] = tr_tile[0]; trw[9] = tr_tile[1]; trw[10] = tr_tile[2];
            trw[11] = tr_nm; trw[12] = tr_mixed;
        }
#endif

        /* fold the token sub-groups of the warp, then publish this warp's state */
        if (MMA) {
#pragma unroll
            for (int mb = 0; mb < 8; mb++) {
                const int ch = (mg + 8 * (mb >> 2)) * 8 + 2 * (mb & 3);
                float *a0 = sm.acc + (warp * GT + 2 * mq) * p.dv, *a1 = a0 + p.dv;
                a0[ch] = accm[mb][0]; a1[ch] = accm[mb][1]; a0[ch + 1] = accm[mb][2]; a1[ch + 1] = accm[mb][3];
            }
        } else {
#pragma unroll
            for (int o = VC; o < RK_WARP; o <<= 1)
#pragma unroll
                for (int h = 0; h < (MMA ? 1 : GT); h++)
#pragma unroll
                    for (int e = 0; e < VE; e++) acc[h][e] += __shfl_xor_sync(0xffffffffu, acc[h][e], o);
            if (lane < VC)
#pragma unroll
                for (int h = 0; h < (MMA ? 1 : GT); h++)
#pragma unroll
                    for (int e = 0; e < VE; e++) sm.acc[(warp * GT + h) * p.dv + lane * VE + e] = acc[h][e];
        }
        if (sm_head < GT && sm_j == 0) {
            sm.m[warp * GT + sm_head] = m_run;
            sm.l[warp * GT + sm_head] = l_run;
        }
    }
#if RK_TRACE
    if (trw && threadIdx.x % RK_WARP == 0) trw[13] = rk_clk();
#endif
    /* early: the finish waits for the previous kernel (rk_pdl_enter) right before its first
     * global store, once the block's own merge is done */
    constexpr int DVC = VC * 16 / ESZ; /* dv on this path (V rows of VC chunks) */
    rk_dec_finish<DT, NT, (GT * DVC + NT - 1) / NT>(p, sm, s, b, h0, nh, GT, split, nonempty, p.early);
#if RK_TRACE
    if (trw && threadIdx.x % RK_WARP == 0) {
        unsigned smid;
        asm volatile("mov.u32 %0, %%smid;" : "=r"(smid));
        trw[5] = rk_clk();
        trw[6] = rk_gtimer();
        trw[14] = smid;
    }
#endif
}

/* Generic path: one query head per block (gt = 1), one token at a time per warp, scalar loads. */
template <int DT>
__global__ void __launch_bounds__(RK_THREADS) rk_decode_any(const rk_dec_params p) {
    constexpr int TILE = RK_WARP / 2;
    rk_pdl_enter();
    extern __shared__ float rk_smem[];
    const int tid = threadIdx.x, lane = tid % RK_WARP, warp = tid / RK_WARP;
    const int b = blockIdx.z, g = blockIdx.y / p.hc, h0 = g * p.G + blockIdx.y % p.hc;
    const int split = blockIdx.x;
    const rk_dec_seq s = rk_dec_seq_of(p, b);
    const int t0 = split * p.split_len, t1 = min(t0 + p.split_len, s.len);
    const rk_dec_smem sm = rk_dec_carve(rk_smem, 1, p.d, p.r, p.dv, RK_NWARPS, TILE);
    const bool nonempty = t0 < t1;
    if (nonempty) {
        const bool need_span = p.sparse && s.span > 0 && s.begin < t1 && s.begin + s.span > t0;
        rk_dec_prologue<DT, 1>(p, sm, b, g, h0, 1, need_span);
        float *acc = sm.acc + warp * p.dv;
        for (int c = lane; c < p.dv; c += RK_WARP) acc[c] = 0.0f;
        float *lg = sm.logit + warp * TILE;
        const char *vbase = p.v + (size_t)(b * p.v_b + g * p.v_h) * rk_dt<DT>::size;
        float m_run = -INFINITY, l_run = 0.0f;
        for (int pos = t0 + warp; pos < t1; pos += RK_NWARPS) {
            rk_dec_logits_slow<DT, 1>(p, sm, s, b, g, pos, 1, 1, lg);
            __syncwarp();
            const float x = lg[0];
            const float m_new = fmaxf(m_run, x);
            const float alpha = exp2f(m_run - m_new), pr = exp2f(x - m_new);
            l_run = l_run * alpha + pr;
            m_run = m_new;
            const char *vrow = vbase + (size_t)pos * p.v_t * rk_dt<DT>::size;
            for (int c = lane; c < p.dv; c += RK_WARP) acc[c] = acc[c] * alpha + pr * rk_load<DT>(vrow, c);
            __syncwarp();
        }
        if (lane == 0) {
            sm.m[warp] = m_run;
            sm.l[warp] = l_run;
        }
    }
    rk_dec_finish<DT>(p, sm, s, b, h0, 1, 1, split, nonempty);
}

#endif
