/* Prefill kernels: span-key moments (chunk mean + centered scatter per head) and compression
 * kcache = keys · R. Both run once per layer; they are compute-light and bounded by one read of
 * the keys. */
#ifndef RK_CUDA_PREFILL_CUH
#define RK_CUDA_PREFILL_CUH

#include "common.cuh"

#define RK_MOM_TILE 64    /* scatter output tile edge */
#define RK_MOM_SUB 32     /* tokens staged in shared memory at a time */

struct rk_keys_view {
    const char *base;
    long long nb_b, nb_h, nb_t;
    int H, T, d;
};

/* One pass over the keys: per (token chunk, head, tile pair I <= J) the f32 partials of
 * Σ (k - s)(k - s)ᵀ over RK_MOM_TILE² outputs (4×4 per thread) and, on diagonal pairs, the column
 * sums Σ (k - s), around the shift s = the head's first key (a sample keeps k - s at the scale
 * of the spread, so f32 partials lose nothing to a large mean). rk_moments_reduce finishes. */
template <int DT>
__global__ void __launch_bounds__(256) rk_moments_partial(rk_keys_view k, const int *n_tokens,
                                                          int chunk, int pairs, float *part_s,
                                                          float *part_m) {
    __shared__ __align__(16) float xs[RK_MOM_SUB][2 * RK_MOM_TILE];
    __shared__ float shift[2 * RK_MOM_TILE];
    const int bh = blockIdx.y, b = bh / k.H, h = bh % k.H, BH = gridDim.y;
    const int n = n_tokens[b];
    int I = 0, J = blockIdx.z; /* blockIdx.z enumerates the pairs I <= J */
    const int nt = (k.d + RK_MOM_TILE - 1) / RK_MOM_TILE;
    while (J >= nt - I) { J -= nt - I; I++; }
    J += I;
    const int i0 = I * RK_MOM_TILE, j0 = J * RK_MOM_TILE;
    const int t_lo = blockIdx.x * chunk, t_hi = min(t_lo + chunk, n);
    if (t_lo >= t_hi) return; /* the reduction reads only chunks below n */
    const int tid = threadIdx.x;
    const char *kb = k.base + (size_t)(b * k.nb_b + h * k.nb_h) * rk_dt<DT>::size;
    if (tid < 2 * RK_MOM_TILE) {
        const int col = tid < RK_MOM_TILE ? i0 + tid : j0 + tid - RK_MOM_TILE;
        shift[tid] = col < k.d ? rk_load<DT>(kb, col) : 0.0f;
    }
    const int ti = (tid / 16) * 4, tj = (tid % 16) * 4;
    float acc[4][4] = {}, colsum = 0.0f;
    constexpr int PER = RK_MOM_SUB * 2 * RK_MOM_TILE / 256;
    for (int t0 = t_lo; t0 < t_hi; t0 += RK_MOM_SUB) {
        float x[PER]; /* the sub-chunk's loads in flight together */
#pragma unroll
        for (int u = 0; u < PER; u++) {
            const int e = tid + u * 256, t = e / (2 * RK_MOM_TILE), c = e % (2 * RK_MOM_TILE);
            const int col = c < RK_MOM_TILE ? i0 + c : j0 + c - RK_MOM_TILE;
            x[u] = t0 + t < t_hi && col < k.d ? rk_load<DT>(kb, (long long)(t0 + t) * k.nb_t + col) : 0.0f;
        }
        __syncthreads(); /* previous sub-chunk consumed; shift stored */
#pragma unroll
        for (int u = 0; u < PER; u++) {
            const int e = tid + u * 256, t = e / (2 * RK_MOM_TILE), c = e % (2 * RK_MOM_TILE);
            xs[t][c] = t0 + t < t_hi ? x[u] - shift[c] : 0.0f;
        }
        __syncthreads();
#pragma unroll 4
        for (int t = 0; t < RK_MOM_SUB; t++) {
            const float4 a4 = *(const float4 *)&xs[t][ti];
            const float4 b4 = *(const float4 *)&xs[t][RK_MOM_TILE + tj];
            const float a[4] = {a4.x, a4.y, a4.z, a4.w}, bv[4] = {b4.x, b4.y, b4.z, b4.w};
#pragma unroll
            for (int u = 0; u < 4; u++)
#pragma unroll
                for (int v = 0; v < 4; v++) acc[u][v] += a[u] * bv[v];
        }
        if (I == J && tid < RK_MOM_TILE)
            for (int t = 0; t < RK_MOM_SUB; t++) colsum += xs[t][tid];
    }
    float *ps = part_s + (((size_t)blockIdx.x * BH + bh) * pairs + blockIdx.z) * RK_MOM_TILE * RK_MOM_TILE;
#pragma unroll
    for (int u = 0; u < 4; u++)
        *(float4 *)&ps[(ti + u) * RK_MOM_TILE + tj] = make_float4(acc[u][0], acc[u][1], acc[u][2], acc[u][3]);
    if (I == J && tid < RK_MOM_TILE && i0 + tid < k.d)
        part_m[((size_t)blockIdx.x * BH + bh) * k.d + i0 + tid] = colsum;
}

/* Sum the chunks' partials in double and remove the shift: mean = s + δ, scatter = Σ(k-s)(k-s)ᵀ
 * - n δδᵀ with δ = Σ(k - s) / n; full symmetric [B·H][d][d]. Grid (B·H, row blocks of 8). */
template <int DT>
__global__ void __launch_bounds__(256) rk_moments_reduce(rk_keys_view k, const int *n_tokens,
                                                         int chunk, int pairs, const float *part_s,
                                                         const float *part_m, double *mean,
                                                         double *scatter) {
    extern __shared__ double delta[]; /* [d] */
    const int bh = blockIdx.x, b = bh / k.H, h = bh % k.H, BH = gridDim.x, d = k.d;
    const int n = n_tokens[b], nc = (n + chunk - 1) / chunk;
    const int nt = (d + RK_MOM_TILE - 1) / RK_MOM_TILE;
    const char *kb = k.base + (size_t)(b * k.nb_b + h * k.nb_h) * rk_dt<DT>::size;
    for (int c = threadIdx.x; c < d; c += 256) {
        double sm = 0.0;
        for (int ch = 0; ch < nc; ch++) sm += part_m[((size_t)ch * BH + bh) * d + c];
        delta[c] = n > 0 ? sm / n : 0.0;
        if (blockIdx.y == 0) mean[(size_t)bh * d + c] = n > 0 ? (double)rk_load<DT>(kb, c) + delta[c] : 0.0;
    }
    __syncthreads();
    const int row0 = blockIdx.y * 8;
    for (int e = threadIdx.x; e < 8 * d; e += 256) {
        const int i = row0 + e / d, j = e % d;
        if (i >= d) break;
        double v = 0.0;
        if (n > 0) {
            int I = i / RK_MOM_TILE, J = j / RK_MOM_TILE, li = i % RK_MOM_TILE, lj = j % RK_MOM_TILE;
            if (I > J) { int t = I; I = J; J = t; t = li; li = lj; lj = t; }
            const int pair = I * nt - I * (I - 1) / 2 + (J - I);
            const float *src = part_s + ((size_t)bh * pairs + pair) * RK_MOM_TILE * RK_MOM_TILE +
                               li * RK_MOM_TILE + lj;
            const size_t stride = (size_t)BH * pairs * RK_MOM_TILE * RK_MOM_TILE;
            double s0 = 0.0, s1 = 0.0;
            int ch = 0;
            for (; ch + 1 < nc; ch += 2) {
                s0 += src[(size_t)ch * stride];
                s1 += src[(size_t)(ch + 1) * stride];
            }
            if (ch < nc) s0 += src[(size_t)ch * stride];
            v = s0 + s1 - n * delta[i] * delta[j];
        }
        scatter[((size_t)bh * d + i) * d + j] = v;
    }
}


/* The observation window's Σ q² per channel: a block per (b, query head), a thread per channel
 * (each row read coalesced), f64 sums over the first n_tokens[b] rows. */
template <int DT>
__global__ void __launch_bounds__(128) rk_qsumsq_kernel(rk_keys_view q, const int *n_tokens,
                                                        double *sums) {
    const int bh = blockIdx.x, b = bh / q.H, h = bh % q.H, n = n_tokens[b];
    const char *qb = q.base + (size_t)(b * q.nb_b + h * q.nb_h) * rk_dt<DT>::size;
    for (int c = threadIdx.x; c < q.d; c += blockDim.x) {
        double s = 0.0;
        for (int t = 0; t < n; t++) {
            const double x = rk_load<DT>(qb, (long long)t * q.nb_t + c);
            s += x * x;
        }
        sums[(size_t)bh * q.d + c] = s;
    }
}

/* Compress, tiled: 32 tokens of one head staged as f32 with 16-byte loads, R [d][r] staged, each
 * thread one column j for 32 · r / 128 tokens (r divides 128, r <= 64, d % 8 == 0, rows 16-byte
 * aligned). */
#define RK_CMP_TT 32
template <int DT>
__global__ void __launch_bounds__(RK_THREADS) rk_compress_tiled(rk_keys_view k, char *cache,
                                                                long long c_b, long long c_h,
                                                                long long c_t, long long off,
                                                                const float *R, int r) {
    extern __shared__ __align__(16) float rk_cmp_smem[];
    constexpr int ESZ = rk_dt<DT>::size, VE = 16 / ESZ;
    const int d = k.d, bh = blockIdx.y, b = bh / k.H, h = bh % k.H, t0 = blockIdx.x * RK_CMP_TT;
    const int tid = threadIdx.x;
    float *xs = rk_cmp_smem, *Rs = rk_cmp_smem + RK_CMP_TT * d;
    const char *kb = k.base + (size_t)(b * k.nb_b + h * k.nb_h) * ESZ;
    const int row_chunks = d / VE, n_chunks = RK_CMP_TT * row_chunks;
    for (int e0 = tid; e0 < n_chunks; e0 += 4 * RK_THREADS) {
        uint4 v[4];
#pragma unroll
        for (int u = 0; u < 4; u++) {
            const int e = e0 + u * RK_THREADS, t = e / row_chunks, c = e % row_chunks;
            v[u] = e < n_chunks && t0 + t < k.T
                       ? *(const uint4 *)(kb + ((size_t)(t0 + t) * k.nb_t) * ESZ + (size_t)c * 16)
                       : make_uint4(0u, 0u, 0u, 0u);
        }
#pragma unroll
        for (int u = 0; u < 4; u++) {
            const int e = e0 + u * RK_THREADS;
            if (e < n_chunks) rk_unpack16<DT>(v[u], xs + (size_t)e * VE);
        }
    }
    const float4 *R4 = (const float4 *)(R + (size_t)bh * d * r);
    for (int e0 = tid; e0 < d * r / 4; e0 += 4 * RK_THREADS) {
        float4 v[4];
#pragma unroll
        for (int u = 0; u < 4; u++) v[u] = e0 + u * RK_THREADS < d * r / 4 ? R4[e0 + u * RK_THREADS] : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
        for (int u = 0; u < 4; u++)
            if (e0 + u * RK_THREADS < d * r / 4) ((float4 *)Rs)[e0 + u * RK_THREADS] = v[u];
    }
    __syncthreads();
    const int j = tid % r, groups = RK_THREADS / r, per = RK_CMP_TT / groups, tg = tid / r;
    float acc[16];
#pragma unroll
    for (int g = 0; g < 16; g++) acc[g] = 0.0f;
    for (int c = 0; c < d; c += 4) {
        const float r0 = Rs[(c + 0) * r + j], r1 = Rs[(c + 1) * r + j];
        const float r2 = Rs[(c + 2) * r + j], r3 = Rs[(c + 3) * r + j];
#pragma unroll
        for (int g = 0; g < 16; g++) {
            if (g >= per) break;
            const float4 x = *(const float4 *)&xs[(tg + g * groups) * d + c];
            acc[g] += x.x * r0 + x.y * r1 + x.z * r2 + x.w * r3;
        }
    }
    char *cb = cache + (size_t)(b * c_b + h * c_h) * ESZ;
#pragma unroll
    for (int g = 0; g < 16; g++) {
        const int t = tg + g * groups;
        if (g < per && t0 + t < k.T) rk_store<DT>(cb, (off + t0 + t) * c_t + j, acc[g]);
    }
}

/* kcache rows [off, off + T) = keys · R per head; R f32 [B·H][d][r]. A tile of tokens is staged
 * in shared memory as f32; each thread produces outputs of one column j for several tokens. */
template <int DT>
__global__ void __launch_bounds__(RK_THREADS) rk_compress_kernel(rk_keys_view k, char *cache,
                                                                 long long c_b, long long c_h,
                                                                 long long c_t, long long off,
                                                                 const float *R, int r, int tt) {
    extern __shared__ float xs[]; /* [tt][d] */
    const int bh = blockIdx.y, b = bh / k.H, h = bh % k.H;
    const int t0 = blockIdx.x * tt, d = k.d;
    const char *kb = k.base + (size_t)(b * k.nb_b + h * k.nb_h) * rk_dt<DT>::size;
    for (int e = threadIdx.x; e < tt * d; e += RK_THREADS) {
        int t = e / d, c = e % d;
        xs[e] = t0 + t < k.T ? rk_load<DT>(kb, (long long)(t0 + t) * k.nb_t + c) : 0.0f;
    }
    __syncthreads();
    const float *Rh = R + (size_t)bh * d * r;
    char *cb = cache + (size_t)(b * c_b + h * c_h) * rk_dt<DT>::size;
    for (int o = threadIdx.x; o < tt * r; o += RK_THREADS) {
        int t = o / r, j = o % r;
        if (t0 + t >= k.T) continue;
        const float *x = xs + t * d;
        float a0 = 0.0f, a1 = 0.0f;
        int c = 0;
        for (; c + 1 < d; c += 2) {
            a0 += x[c] * Rh[(size_t)c * r + j];
            a1 += x[c + 1] * Rh[(size_t)(c + 1) * r + j];
        }
        if (c < d) a0 += x[c] * Rh[(size_t)c * r + j];
        rk_store<DT>(cb, (off + t0 + t) * c_t + j, a0 + a1);
    }
}

#endif
