/* The RK_SOLVER_SUBSPACE basis fit on the device (rk_op_rotation_fit): one block per head, the
 * whole fit in shared memory, the algorithm of core/pca.c's rk_pca_subspace:
 *   C = (S / n) w_i w_j + ridge (rk_pca_weight's arithmetic; weights and ridge from the core);
 *   V = V0; repeat iters: V = orth(C·V);   orth = CholeskyQR2 (span as the host's orth(V0) start)
 *   Rayleigh-Ritz: H = Vᵀ C V, eigenpairs by cyclic Jacobi, R = V·E (top r, sorted, signs fixed).
 * Precision: C and V are held as f32 for the products C·V (the only d²-sized work); Gram
 * matrices, Cholesky, triangular solves, H and the Jacobi rotations are f64 (the Jacobi angles
 * f32), so the CholeskyQR of an ill-conditioned C·V stays stable. */
#ifndef RK_CUDA_SUBSPACE_CUH
#define RK_CUDA_SUBSPACE_CUH

#include "common.cuh"

#include <time.h>

#if !defined(RK_HIP) /* AMD parts have 64 KB of LDS per block: the host fits there */

#define RK_FIT_THREADS 512
#define RK_FIT_SWEEPS 16   /* Jacobi sweeps at most (quadratic convergence: usually 3 to 6) */
#define RK_FIT_ITEMS 8     /* Jacobi 2×2 blocks and E column pairs per thread: p <= 72 */
#define RK_FIT_PMAX 72     /* subspace width: Jacobi items, and Cholesky rows per lane below */
#define RK_FIT_LROWS ((RK_FIT_PMAX + 31) / 32)
#define RK_FIT_PROF 16     /* tuning checkpoints of head 0 (RK_CUDA_FIT_PROFILE) */

struct rk_fit_params {
    const double *S;        /* scatter of head k at S + s_index[k] * d * d */
    const int *s_index;
    const double *w;        /* [n][d]: C_ij = (S_ij * scale) * (w_i * w_j) + add δ_ij */
    const double *scale, *add;
    const unsigned long long *seeds;
    double *R, *evals;
    int *status;            /* [n]: 0 fine, 1 Gram matrix not positive definite */
    long long *prof;        /* NULL, or RK_FIT_PROF clock64 checkpoints of head 0 (tuning) */
    int n, d, r, p, iters;
};

/* Shared-memory carve-up (bytes), identical on host and device. C and V rows hold whole float4s
 * (zero padded); W and G rows have an odd stride of doubles (conflict-free column walks). After
 * the Rayleigh-Ritz product C's region holds R [d][r] f64. */
struct rk_fit_layout {
    int ldc, ldv, ldw;
    size_t c_off, v_off, w_off, g_off, aux_off, bytes;
};

static __host__ __device__ inline rk_fit_layout rk_fit_layout_of(int d, int p) {
    rk_fit_layout L;
    L.ldc = (d + 3) / 4 * 4;
    L.ldv = (p + 3) / 4 * 4;
    L.ldw = p | 1;
    L.c_off = 0;
    L.v_off = L.c_off + (size_t)d * L.ldc * sizeof(float);
    L.w_off = L.v_off + (size_t)d * L.ldv * sizeof(float);
    L.g_off = L.w_off + (size_t)d * L.ldw * sizeof(double);
    L.aux_off = L.g_off + (size_t)p * L.ldw * sizeof(double);
    L.bytes = L.aux_off + (size_t)(3 * p + 8) * sizeof(double); /* Jacobi (c, s), order, inv_diag */
    return L;
}

/* W = C·V with f32 operands; W stored f64. C is symmetric, so a thread's 4 output rows at k are
 * one float4 of C's row k, and its 4 columns one float4 of V's row k: 2 loads feed 16 FMAs. */
static __device__ void rk_fit_cv(const float *C, const float *V, double *W, int d, int p,
                                 const rk_fit_layout &L) {
    const int ng = (p + 3) / 4, items = (d + 3) / 4 * ng;
    for (int e = threadIdx.x; e < items; e += RK_FIT_THREADS) {
        const int i0 = (e / ng) * 4, a0 = (e % ng) * 4;
        const float4 *cp = (const float4 *)(C + i0), *vp = (const float4 *)(V + a0);
        float acc[4][4] = {};
#pragma unroll 4
        for (int k = 0; k < d; k++) {
            const float4 c = cp[(size_t)k * (L.ldc / 4)], v = vp[(size_t)k * (L.ldv / 4)];
            const float cr[4] = {c.x, c.y, c.z, c.w}, vr[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
            for (int r = 0; r < 4; r++)
#pragma unroll
                for (int u = 0; u < 4; u++) acc[r][u] += cr[r] * vr[u];
        }
#pragma unroll
        for (int r = 0; r < 4; r++)
#pragma unroll
            for (int u = 0; u < 4; u++)
                if (i0 + r < d && a0 + u < p) W[(size_t)(i0 + r) * L.ldw + a0 + u] = acc[r][u];
    }
}

/* G = Xᵀ Y over d rows in BS×BS blocks of G, SPLIT adjacent lanes per block taking interleaved
 * rows (conflict-free with the odd row stride) and summing by shuffles. SYM false: the Gram
 * matrix (X == Y), lower triangle only. SYM true: G = (XᵀY + YᵀX) / 2, both triangles. Every
 * thread runs the same number of rounds (the shuffles need the whole warp). Shared-memory
 * bandwidth bounds this: a BS×BS block does BS² FMAs per 2 BS loads. */
template <typename TX, bool SYM, int BS, int SPLIT>
static __device__ void rk_fit_cross(const TX *X, int ldx, const double *Y, int ldy, double *G,
                                    int ldg, int d, int p) {
    const int pb = (p + BS - 1) / BS, items = pb * (pb + 1) / 2 * SPLIT;
    const int part = threadIdx.x % SPLIT;
    for (int e0 = 0; e0 < items; e0 += RK_FIT_THREADS) {
        const int e = e0 + (int)threadIdx.x, blk = e / SPLIT;
        int A = (int)((sqrtf(8.0f * blk + 1.0f) - 1.0f) * 0.5f); /* blk = A(A+1)/2 + B, B <= A */
        while ((A + 1) * (A + 2) / 2 <= blk) A++;
        while (A * (A + 1) / 2 > blk) A--;
        const int B = blk - A * (A + 1) / 2;
        int ia[BS], ib[BS]; /* clamped at p - 1: the extra entries repeat real ones */
#pragma unroll
        for (int u = 0; u < BS; u++) {
            ia[u] = min(BS * A + u, p - 1);
            ib[u] = min(BS * B + u, p - 1);
        }
        double s[BS][BS] = {}, t[BS][BS] = {};
        if (e < items)
            for (int i = part; i < d; i += SPLIT) {
                const TX *x = X + (size_t)i * ldx;
                const double *y = Y + (size_t)i * ldy;
                double xa[BS], yb[BS];
#pragma unroll
                for (int u = 0; u < BS; u++) { xa[u] = x[ia[u]]; yb[u] = y[ib[u]]; }
#pragma unroll
                for (int u = 0; u < BS; u++)
#pragma unroll
                    for (int v = 0; v < BS; v++) s[u][v] += xa[u] * yb[v];
                if (SYM) {
                    double xb[BS], ya[BS];
#pragma unroll
                    for (int u = 0; u < BS; u++) { xb[u] = x[ib[u]]; ya[u] = y[ia[u]]; }
#pragma unroll
                    for (int u = 0; u < BS; u++)
#pragma unroll
                        for (int v = 0; v < BS; v++) t[u][v] += xb[v] * ya[u];
                }
            }
#pragma unroll
        for (int o = 1; o < SPLIT; o <<= 1)
#pragma unroll
            for (int u = 0; u < BS; u++)
#pragma unroll
                for (int v = 0; v < BS; v++) {
                    s[u][v] += __shfl_xor_sync(0xffffffffu, s[u][v], o);
                    if (SYM) t[u][v] += __shfl_xor_sync(0xffffffffu, t[u][v], o);
                }
        if (e >= items || part) continue;
#pragma unroll
        for (int u = 0; u < BS; u++)
#pragma unroll
            for (int v = 0; v < BS; v++) {
                if (SYM)
                    G[(size_t)ia[u] * ldg + ib[v]] = G[(size_t)ib[v] * ldg + ia[u]] = 0.5 * (s[u][v] + t[u][v]);
                else if (ia[u] >= ib[v])
                    G[(size_t)ia[u] * ldg + ib[v]] = s[u][v];
            }
    }
}

/* One CholeskyQR pass on W [d][p] (stride ldw): G = WᵀW = LLᵀ, W <- W L⁻ᵀ. *fail set when G is
 * not positive definite. The Gram matrix over the block; L (in G's lower triangle, 1/L_jj in
 * inv_diag) in warp 0, left-looking: column j is one dot product per row, lane-owned rows, one
 * shuffle and one reciprocal square root on the chain; then each row of W solves y Lᵀ = w in
 * place, four threads per row (a thread owns the entries it reads back). Ends synchronized. */
static __device__ void rk_fit_cholqr(double *W, double *G, double *inv_diag, int d, int p, int ldw,
                                     int *fail, long long *tp = NULL) {
    const int tid = threadIdx.x;
    rk_fit_cross<double, false, 4, 8>(W, ldw, W, ldw, G, ldw, d, p);
    __syncthreads();
    if (tp) tp[0] = clock64();
    if (tid < 32) {
        const int lane = tid;
        int bad = 0;
        for (int j = 0; j < p; j++) {
            const double *lj = G + (size_t)j * ldw;
            double sv[RK_FIT_LROWS];
#pragma unroll
            for (int u = 0; u < RK_FIT_LROWS; u++) {
                const int i = lane + 32 * u;
                sv[u] = 0.0;
                if (i < j || i >= p) continue;
                const double *li = G + (size_t)i * ldw;
                double s0 = li[j], s1 = 0.0, s2 = 0.0, s3 = 0.0;
                int k = 0;
                for (; k + 4 <= j; k += 4) {
                    s0 -= li[k] * lj[k]; s1 -= li[k + 1] * lj[k + 1];
                    s2 -= li[k + 2] * lj[k + 2]; s3 -= li[k + 3] * lj[k + 3];
                }
                for (; k < j; k++) s0 -= li[k] * lj[k];
                sv[u] = (s0 + s1) + (s2 + s3);
            }
            double mine = sv[0];
#pragma unroll
            for (int u = 1; u < RK_FIT_LROWS; u++)
                if (j / 32 == u) mine = sv[u];
            const double sjj = __shfl_sync(0xffffffffu, mine, j % 32);
            bad = !(sjj > 0.0) || !isfinite(sjj); /* warp-uniform */
            if (bad) break;
            const double rjj = rsqrt(sjj);
#pragma unroll
            for (int u = 0; u < RK_FIT_LROWS; u++) {
                const int i = lane + 32 * u;
                if (i > j && i < p) G[(size_t)i * ldw + j] = sv[u] * rjj;
            }
            if (lane == j % 32) {
                G[(size_t)j * ldw + j] = sjj * rjj;
                inv_diag[j] = rjj;
            }
            __syncwarp();
        }
        if (bad && lane == 0) *fail = 1;
    }
    __syncthreads();
    if (tp) tp[1] = clock64();
    if (*fail) return;
    /* y[a] = (w[a] - Σ_{b<a} y[b] L[a][b]) / L[a][a]; thread q of a row keeps its y[b], b ≡ q
     * (mod 4), in registers (unrolled: static indices), so only L is read from shared memory */
    const int row = tid / 4, q4 = tid % 4;
    double *w = W + (size_t)row * ldw; /* rows past d only join the shuffles */
    double y[RK_FIT_PMAX / 4] = {};
#pragma unroll
    for (int a = 0; a < RK_FIT_PMAX; a++) {
        if (a >= p) break;
        const double *la = G + (size_t)a * ldw;
        double s0 = 0.0, s1 = 0.0;
#pragma unroll
        for (int v = 0; v <= a / 4; v++) {
            if (4 * v + q4 >= a) continue;
            if (v & 1) s1 += y[v] * la[4 * v + q4];
            else s0 += y[v] * la[4 * v + q4];
        }
        double s = s0 + s1;
        s += __shfl_xor_sync(0xffffffffu, s, 1);
        s += __shfl_xor_sync(0xffffffffu, s, 2);
        if (q4 == (a & 3)) y[a / 4] = ((row < d ? w[a] : 0.0) - s) * inv_diag[a];
    }
    if (row < d)
#pragma unroll
        for (int v = 0; v < RK_FIT_PMAX / 4; v++)
            if (4 * v + q4 < p) w[4 * v + q4] = y[v];
    __syncthreads();
    if (tp) tp[2] = clock64();
}

/* V (f32, zero-padded to ldv columns) = W. */
static __device__ void rk_fit_store_v(const double *W, float *V, int d, int p, const rk_fit_layout &L) {
    for (int e = threadIdx.x; e < d * L.ldv; e += RK_FIT_THREADS) {
        const int i = e / L.ldv, a = e % L.ldv;
        V[e] = a < p ? (float)W[(size_t)i * L.ldw + a] : 0.0f;
    }
    __syncthreads();
}

/* The k-th (0-based) uniform of SplitMix64 seeded with `seed`: top 53 bits, as core/prng.h. */
static __device__ inline double rk_fit_uniform(unsigned long long seed, unsigned long long k) {
    unsigned long long z = seed + (k + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* Pairs of round t of the circle method over m (even) indices: pair k of the round. */
static __device__ inline void rk_fit_pair(int t, int k, int m, int *i, int *j) {
    int a = t, b = m - 1;
    if (k != 0) {
        a = t + k;
        if (a >= m - 1) a -= m - 1;
        b = t - k;
        if (b < 0) b += m - 1;
    }
    *i = a < b ? a : b;
    *j = a < b ? b : a;
}

__global__ void __launch_bounds__(RK_FIT_THREADS) rk_fit_kernel(const rk_fit_params q) {
    extern __shared__ __align__(16) unsigned char rk_fit_smem[];
    const int head = blockIdx.x, d = q.d, p = q.p, r = q.r, tid = threadIdx.x;
    const int lane = tid % 32, warp = tid / 32;
    const rk_fit_layout L = rk_fit_layout_of(d, p);
    float *C = (float *)(rk_fit_smem + L.c_off);
    float *V = (float *)(rk_fit_smem + L.v_off);
    double *W = (double *)(rk_fit_smem + L.w_off);
    double *G = (double *)(rk_fit_smem + L.g_off);
    double *cs = (double *)(rk_fit_smem + L.aux_off); /* Jacobi (c, s) per pair */
    __shared__ int fail;
    __shared__ double off_norm, diag_norm;
    if (tid == 0) fail = 0;
    long long t_start = clock64(), t_cload = 0, t_loaded = 0, t_first = 0, t_iters = 0, t_h = 0, t_jac = 0;
    long long t_it2[5] = {0, 0, 0, 0, 0}; /* first pass: start, C·V, Gram, Cholesky, solve done */
    int sweeps_done = 0;
    /* C = (S / n) w_i w_j + ridge δ_ij in f64 as rk_pca_weight (no contraction), then f32 */
    const double *Sg = q.S + (size_t)q.s_index[head] * d * d, *wk = q.w + (size_t)head * d;
    const double sc = q.scale[head], ad = q.add[head];
    for (int e0 = tid; e0 < d * L.ldc; e0 += 8 * RK_FIT_THREADS) { /* eight loads in flight */
        double x[8];
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const int e = e0 + u * RK_FIT_THREADS, i = e / L.ldc, j = e % L.ldc;
            x[u] = e < d * L.ldc && j < d ? Sg[(size_t)i * d + j] : 0.0;
        }
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const int e = e0 + u * RK_FIT_THREADS, i = e / L.ldc, j = e % L.ldc;
            if (e >= d * L.ldc) break;
            double c = 0.0;
            if (j < d) c = __dadd_rn(__dmul_rn(__dmul_rn(x[u], sc), __dmul_rn(wk[i], wk[j])), i == j ? ad : 0.0);
            C[e] = (float)c;
        }
    }
    t_cload = clock64();
    /* the start V0 = rk_pca_random_start(seed, d, p) (core/prng.h): element e is the e-th
     * Box-Muller normal of the seed's SplitMix64 stream, i.e. draws 2e and 2e + 1 */
    const unsigned long long seed = q.seeds[head];
    for (int e = tid; e < d * p; e += RK_FIT_THREADS) {
        const double u1 = 1.0 - rk_fit_uniform(seed, 2ull * e), u2 = rk_fit_uniform(seed, 2ull * e + 1);
        W[(size_t)(e / p) * L.ldw + e % p] = sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
    }
    __syncthreads();
    t_loaded = clock64();

    /* subspace iteration. The iterates carry a span, and span(C·C·V) = span(C·orth(C·V)): two
     * products per CholeskyQR pass (the condition number grows by λ1/λp per product, which f64
     * CholeskyQR absorbs; a breakdown falls back to the host solver). The Gaussian start is well
     * conditioned, so it enters unorthonormalized (same span as the host's orth(V0)). The final
     * basis gets CholeskyQR2. */
    double *inv_diag = cs + 2 * ((p + 1) / 2) + 2 + (p + 1) / 2; /* past the Jacobi and order scratch */
    rk_fit_store_v(W, V, d, p, L);
    for (int it = 1; it <= q.iters && !fail;) {
        const int steps = q.iters - it >= 1 ? 2 : 1;
        const bool first = it == 1;
        if (first) t_it2[0] = clock64();
        rk_fit_cv(C, V, W, d, p, L);
        __syncthreads();
        if (steps == 2) {
            rk_fit_store_v(W, V, d, p, L);
            rk_fit_cv(C, V, W, d, p, L);
            __syncthreads();
        }
        if (first) t_it2[1] = clock64();
        it += steps;
        rk_fit_cholqr(W, G, inv_diag, d, p, L.ldw, &fail, first && tid == 0 ? t_it2 + 2 : NULL);
        if (!fail && it > q.iters) rk_fit_cholqr(W, G, inv_diag, d, p, L.ldw, &fail);
        if (!fail) rk_fit_store_v(W, V, d, p, L);
        if (first) t_first = clock64();
    }
    t_iters = clock64();
    if (fail) {
        if (tid == 0) q.status[head] = 1;
        return;
    }

    /* Rayleigh-Ritz: H = Vᵀ (C V) in G, symmetrized; E (eigenvectors) in W */
    rk_fit_cv(C, V, W, d, p, L);
    __syncthreads();
    rk_fit_cross<float, true, 2, 2>(V, L.ldv, W, L.ldw, G, L.ldw, d, p);
    __syncthreads();
    for (int e = tid; e < p * p; e += RK_FIT_THREADS)
        W[(size_t)(e / p) * L.ldw + e % p] = (e / p == e % p) ? 1.0 : 0.0;
    __syncthreads();
    t_h = clock64();

    /* cyclic Jacobi, circle-method rounds of m/2 disjoint pairs (a pair with index p is idle).
     * A round's rotations touch disjoint 2×2 blocks of H (and pairs of columns of E), so each
     * thread updates its blocks in place: two barriers per round. */
    const int m = p + (p & 1), pairs = m / 2, n_items = pairs * pairs + p * pairs;
    int item_x[RK_FIT_ITEMS], item_y[RK_FIT_ITEMS]; /* this thread's blocks, fixed across rounds */
#pragma unroll
    for (int u = 0; u < RK_FIT_ITEMS; u++) {
        const int e = tid + u * RK_FIT_THREADS, e2 = e - pairs * pairs;
        item_x[u] = e < pairs * pairs ? e / pairs : e2 / pairs;
        item_y[u] = e < pairs * pairs ? e % pairs : e2 % pairs;
    }
    for (int sweep = 0; sweep < RK_FIT_SWEEPS; sweep++) {
        if (tid == 0) { off_norm = 0.0; diag_norm = 0.0; }
        __syncthreads();
        double off = 0.0, dia = 0.0;
        for (int e = tid; e < p * p; e += RK_FIT_THREADS) {
            const double h = G[(size_t)(e / p) * L.ldw + e % p];
            if (e / p == e % p) dia += h * h;
            else off += h * h;
        }
        for (int o = 16; o > 0; o >>= 1) {
            off += __shfl_xor_sync(0xffffffffu, off, o);
            dia += __shfl_xor_sync(0xffffffffu, dia, o);
        }
        if (lane == 0) { atomicAdd(&off_norm, off); atomicAdd(&diag_norm, dia); }
        __syncthreads();
        if (!(off_norm > 1e-16 * diag_norm)) break; /* block-uniform; off-diagonal below 1e-8 */
        sweeps_done = sweep + 1;
        for (int t = 0; t < m - 1; t++) {
            for (int k = tid; k < pairs; k += RK_FIT_THREADS) {
                int i, j;
                rk_fit_pair(t, k, m, &i, &j);
                double c = 1.0, s = 0.0;
                if (j < p) {
                    /* t = sgn(θ) / (|θ| + sqrt(θ² + 1)), θ = (h_jj - h_ii) / (2 h_ij), in f32: no f64
                     * divide or square root on the round's critical path. c = 1/sqrt(1 + t²) to
                     * f64 (two Newton steps), so the rotation is orthogonal to f64 rounding; the
                     * f32 angle only leaves h_ij at ~1e-7 of itself, which later sweeps remove. */
                    const float hf = (float)G[(size_t)i * L.ldw + j];
                    if (hf != 0.0f) {
                        const float th = (float)(G[(size_t)j * L.ldw + j] - G[(size_t)i * L.ldw + i]) / (2.0f * hf);
                        const double tt = (th >= 0.0f ? 1.0f : -1.0f) / (fabsf(th) + sqrtf(fmaf(th, th, 1.0f)));
                        const double x = fma(tt, tt, 1.0);
                        double y = (double)rsqrtf((float)x);
                        y = y * fma(-0.5 * x, y * y, 1.5);
                        y = y * fma(-0.5 * x, y * y, 1.5);
                        c = y;
                        s = tt * y;
                    }
                }
                cs[2 * k] = c;
                cs[2 * k + 1] = s;
            }
            __syncthreads();
            /* H <- Pᵀ H P on 2×2 blocks (pair A rows, pair B columns); E <- E P on column pairs */
#pragma unroll
            for (int u = 0; u < RK_FIT_ITEMS; u++) {
                const int e = tid + u * RK_FIT_THREADS;
                if (e >= n_items) break;
                if (e < pairs * pairs) {
                    const int A = item_x[u], B = item_y[u];
                    int ia, ja, ib, jb;
                    rk_fit_pair(t, A, m, &ia, &ja);
                    rk_fit_pair(t, B, m, &ib, &jb);
                    const double ca = cs[2 * A], sa = cs[2 * A + 1], cb = cs[2 * B], sb = cs[2 * B + 1];
                    const bool va = ja < p, vb = jb < p;
                    double h00 = G[(size_t)ia * L.ldw + ib];
                    double h01 = vb ? G[(size_t)ia * L.ldw + jb] : 0.0;
                    double h10 = va ? G[(size_t)ja * L.ldw + ib] : 0.0;
                    double h11 = va && vb ? G[(size_t)ja * L.ldw + jb] : 0.0;
                    /* columns: [x_i, x_j] <- [c x_i - s x_j, s x_i + c x_j] */
                    double t0 = cb * h00 - sb * h01, t1 = sb * h00 + cb * h01;
                    double t2 = cb * h10 - sb * h11, t3 = sb * h10 + cb * h11;
                    /* rows, the same map */
                    h00 = ca * t0 - sa * t2; h10 = sa * t0 + ca * t2;
                    h01 = ca * t1 - sa * t3; h11 = sa * t1 + ca * t3;
                    G[(size_t)ia * L.ldw + ib] = h00;
                    if (vb) G[(size_t)ia * L.ldw + jb] = h01;
                    if (va) G[(size_t)ja * L.ldw + ib] = h10;
                    if (va && vb) G[(size_t)ja * L.ldw + jb] = h11;
                } else {
                    const int row = item_x[u], B = item_y[u];
                    int ib, jb;
                    rk_fit_pair(t, B, m, &ib, &jb);
                    if (jb >= p) continue;
                    const double cb = cs[2 * B], sb = cs[2 * B + 1];
                    const double xi = W[(size_t)row * L.ldw + ib], xj = W[(size_t)row * L.ldw + jb];
                    W[(size_t)row * L.ldw + ib] = cb * xi - sb * xj;
                    W[(size_t)row * L.ldw + jb] = sb * xi + cb * xj;
                }
            }
            __syncthreads();
        }
    }

    t_jac = clock64();
    /* order: the column of E holding the k-th largest Ritz value */
    int *order = (int *)(cs + 2 * pairs + 2);
    for (int a = tid; a < p; a += RK_FIT_THREADS) {
        const double la = G[(size_t)a * L.ldw + a];
        int rank = 0;
        for (int b = 0; b < p; b++) {
            const double lb = G[(size_t)b * L.ldw + b];
            rank += lb > la || (lb == la && b < a);
        }
        if (rank < r) {
            order[rank] = a;
            q.evals[(size_t)head * r + rank] = la;
        }
    }
    __syncthreads();
    /* R = V·E[:, order] into C's region (C is done), then a warp per column fixes the sign: the
     * largest-magnitude entry (first on ties) > 0 */
    double *Rs = (double *)(rk_fit_smem + L.c_off);
    for (int e = tid; e < d * r; e += RK_FIT_THREADS) {
        const int i = e / r, col = order[e % r];
        const float *v = V + (size_t)i * L.ldv;
        double s0 = 0.0, s1 = 0.0;
        int a = 0;
        for (; a + 1 < p; a += 2) {
            s0 += (double)v[a] * W[(size_t)a * L.ldw + col];
            s1 += (double)v[a + 1] * W[(size_t)(a + 1) * L.ldw + col];
        }
        if (a < p) s0 += (double)v[a] * W[(size_t)a * L.ldw + col];
        Rs[e] = s0 + s1;
    }
    __syncthreads();
    double *Rg = q.R + (size_t)head * d * r;
    for (int j = warp; j < r; j += RK_FIT_THREADS / 32) {
        double best = -1.0;
        int best_i = d;
        for (int i = lane; i < d; i += 32) {
            const double x = fabs(Rs[(size_t)i * r + j]);
            if (x > best) { best = x; best_i = i; }
        }
        for (int o = 16; o > 0; o >>= 1) {
            const double ob = __shfl_xor_sync(0xffffffffu, best, o);
            const int oi = __shfl_xor_sync(0xffffffffu, best_i, o);
            if (ob > best || (ob == best && oi < best_i)) { best = ob; best_i = oi; }
        }
        const double sign = Rs[(size_t)best_i * r + j] < 0.0 ? -1.0 : 1.0;
        for (int i = lane; i < d; i += 32) Rg[(size_t)i * r + j] = sign * Rs[(size_t)i * r + j];
    }
    if (tid == 0) q.status[head] = 0;
    if (q.prof && head == 0 && tid == 0) {
        const long long t_end = clock64();
        const long long v[RK_FIT_PROF] = {0, t_loaded - t_start, t_first - t_loaded, t_iters - t_first,
                                          t_h - t_iters, t_jac - t_h, t_end - t_jac, sweeps_done,
                                          t_it2[1] - t_it2[0], t_it2[2] - t_it2[1], t_it2[3] - t_it2[2],
                                          t_it2[4] - t_it2[3], t_cload - t_start, 0, 0, 0};
        for (int k = 0; k < RK_FIT_PROF; k++) q.prof[k] = v[k];
    }
}

/* Seconds on a monotonic clock for the tuning profile (not rk_now_seconds: the static CUDA
 * archive links after the core's, which would then have to pull in its probe). */
static double rk_fit_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Host entry: RK_ERR_UNSUPPORTED when the fit does not fit one block's shared memory. */
static rk_status rk_gpu_rotation_fit(rk_context *ctx, const rk_op_rotation_fit *op) {
    rk_status st = rk_gpu_check(ctx, cudaSetDevice(rk_gpu(ctx)->device), "cudaSetDevice");
    if (st != RK_OK) return st;
    rk_gpu_ctx *g = rk_gpu(ctx);
    const int d = op->d, p = op->p, r = op->r, n = op->n;
    const rk_fit_layout L = rk_fit_layout_of(d, p);
    int optin = 0;
    cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, g->device);
    const int pairs = (p + 1) / 2;
    /* d <= 128: four threads per row of W in the solve; p <= 72: Cholesky rows per lane and
     * Jacobi items per thread; R [d][r] f64 in C's region */
    if (d > RK_FIT_THREADS / 4 || p > RK_FIT_PMAX || r > p ||
        pairs * pairs + p * pairs > RK_FIT_ITEMS * RK_FIT_THREADS ||
        (size_t)r * sizeof(double) > (size_t)L.ldc * sizeof(float) ||
        L.bytes > (size_t)optin || g->warp_size != 32)
        return rk_fail(ctx, RK_ERR_UNSUPPORTED, RK_BACKEND_NAME ": no device fit for d %d, width %d"
                       " (%zu bytes of shared memory)", d, p, L.bytes);
    const int profile = getenv("RK_CUDA_FIT_PROFILE") != NULL; /* tuning: phase cycles to stderr */
    double h0 = profile ? rk_fit_now() : 0.0, h1 = 0.0, h2 = 0.0, h3 = 0.0;
    /* the moments op left S on the device (in place) unless another one ran since */
    const int s_on_dev = op->moments_id != 0 && op->moments_id == g->mom_id &&
                         !getenv("RK_CUDA_FIT_UPLOAD"); /* tuning: A/B of the upload */
    const size_t dd = (size_t)d * d, c_n = s_on_dev ? 0 : (size_t)n * dd, r_n = (size_t)n * d * r;
    /* device and staging: seeds | s_index | scale | add | w | S (unless on the device), one
     * upload; R | evals | status, one download; then the profile */
    const size_t head_n = 4 * (size_t)n + (size_t)n * d;
    const size_t up_bytes = (head_n + c_n) * sizeof(double), down_bytes = (r_n + (size_t)n * r + n) * sizeof(double);
    st = rk_gpu_reserve(ctx, &g->scratch, &g->scratch_bytes, up_bytes + down_bytes + RK_FIT_PROF * sizeof(long long), 0);
    if (st == RK_OK) st = rk_gpu_stage(ctx, up_bytes > down_bytes ? up_bytes : down_bytes);
    if (st != RK_OK) return st;
    unsigned long long *seeds = (unsigned long long *)g->scratch;
    int *s_index = (int *)(seeds + n);
    double *scale = (double *)(seeds + 2 * n), *add = scale + n, *w = add + n, *S = w + (size_t)n * d;
    double *R = S + c_n, *ev = R + r_n;
    int *status = (int *)(ev + (size_t)n * r);
    long long *prof = (long long *)(ev + (size_t)n * r + n);
    unsigned long long *hs = (unsigned long long *)g->stage;
    int *hi = (int *)(hs + n);
    double *hd = (double *)(hs + 2 * n);
    memcpy(hs, op->seeds, (size_t)n * sizeof(uint64_t));
    for (int k = 0; k < n; k++) hi[k] = s_on_dev ? op->heads[k] : k;
    memcpy(hd, op->scale, (size_t)n * sizeof(double));
    memcpy(hd + n, op->add, (size_t)n * sizeof(double));
    memcpy(hd + 2 * n, op->w, (size_t)n * d * sizeof(double));
    for (size_t k = 0; k < (size_t)n && !s_on_dev; k++)
        memcpy(hd + 2 * (size_t)n + (size_t)n * d + k * dd, op->S + (size_t)op->heads[k] * dd, dd * sizeof(double));
    if (profile) h1 = rk_fit_now();
    st = rk_gpu_check(ctx, cudaMemcpyAsync(seeds, g->stage, up_bytes, cudaMemcpyHostToDevice, g->stream), "upload fit inputs");
    if (st == RK_OK)
        st = rk_gpu_check(ctx, cudaFuncSetAttribute(rk_fit_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                    (int)L.bytes), "fit shared memory");
    if (st != RK_OK) return st;
    const double *S_dev = s_on_dev ? (const double *)g->mom + g->mom_scatter : S;
    rk_fit_params q = {S_dev, s_index, w, scale, add, seeds, R, ev, status, profile ? prof : NULL,
                       n, d, r, p, op->iters};
    cudaEvent_t e0 = NULL, e1 = NULL;
    if (profile && cudaEventCreate(&e0) == cudaSuccess && cudaEventCreate(&e1) == cudaSuccess)
        (void)cudaEventRecord(e0, g->stream);
    rk_fit_kernel<<<n, RK_FIT_THREADS, L.bytes, g->stream>>>(q);
    if ((st = rk_gpu_check(ctx, cudaGetLastError(), "fit kernel")) != RK_OK) return st;
    if (e1) (void)cudaEventRecord(e1, g->stream);
    /* the staging is free again once the upload has run (stream order) */
    st = rk_gpu_check(ctx, cudaMemcpyAsync(g->stage, R, down_bytes, cudaMemcpyDeviceToHost, g->stream), "download R");
    if (profile) h2 = rk_fit_now();
    if (st == RK_OK) st = rk_gpu_check(ctx, cudaStreamSynchronize(g->stream), "fit sync");
    if (st != RK_OK) return st;
    if (profile) h3 = rk_fit_now();
    const double *out = (const double *)g->stage;
    memcpy(op->R, out, r_n * sizeof(double));
    memcpy(op->evals, out + r_n, (size_t)n * r * sizeof(double));
    const int *host_status = (const int *)(out + r_n + (size_t)n * r);
    if (profile) {
        long long v[RK_FIT_PROF];
        float kms = 0.0f;
        if (e1) (void)cudaEventElapsedTime(&kms, e0, e1);
        if (e0) (void)cudaEventDestroy(e0);
        if (e1) (void)cudaEventDestroy(e1);
        const double h4 = rk_fit_now();
        if (cudaMemcpy(v, prof, sizeof v, cudaMemcpyDeviceToHost) == cudaSuccess)
            fprintf(stderr, "rk_fit cycles: load %lld (C %lld), first pass (2 products + CholeskyQR) "
                    "%lld, the other %d products + CholeskyQR %lld, RR product %lld, Jacobi %lld (%lld "
                    "sweeps), R %lld; first pass: 2 C.V %lld, Gram %lld, Cholesky %lld, solve %lld\n",
                    v[1], v[12], v[2], op->iters - 2, v[3], v[4], v[5], v[7], v[6], v[8], v[9], v[10],
                    v[11]);
        fprintf(stderr, "rk_fit host us: stage %.1f, enqueue %.1f, wait %.1f, copy out %.1f; kernel "
                "%.1f us (events); S %s\n", (h1 - h0) * 1e6, (h2 - h1) * 1e6, (h3 - h2) * 1e6,
                (h4 - h3) * 1e6, kms * 1e3, s_on_dev ? "on the device" : "uploaded");
    }
    /* CholeskyQR broke down (rank-deficient iterate): the host solver has a Householder fallback */
    for (int k = 0; k < n && st == RK_OK; k++)
        if (host_status[k] != 0)
            st = rk_fail(ctx, RK_ERR_UNSUPPORTED, RK_BACKEND_NAME ": head %d: Gram matrix of the "
                         "subspace iteration is not positive definite; fitting on the host", k);
    return st;
}
#define RK_GPU_ROTATION_FIT rk_gpu_rotation_fit
#else
#define RK_GPU_ROTATION_FIT NULL
#endif

#endif
