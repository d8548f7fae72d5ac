/* The RK_SOLVER_SUBSPACE basis fit on the device (rk_op_rotation_fit): one block per head, the
 * whole fit in shared memory, the algorithm of core/pca.c's rk_pca_subspace:
 *   C = (S / n) w_i w_j + ridge (rk_pca_weight's arithmetic; weights and ridge from the core);
 *   V = V0; repeat iters: V = orth(C·V);   orth = CholeskyQR2 (span as the host's orth(V0) start)
 *   Rayleigh-Ritz: H = Vᵀ C V, eigenpairs by one-sided Jacobi, R = V·E (top r, sorted, signs
 *   fixed).
 * Precision: C and V are held as f32 for the products C·V (the only d²-sized work); Gram
 * matrices, the inverse Cholesky factors, H and the Jacobi rotations are f64 (the Jacobi angles
 * f32), so the CholeskyQR of an ill-conditioned C·V stays stable. */
#ifndef RK_CUDA_SUBSPACE_CUH
#define RK_CUDA_SUBSPACE_CUH

#include "common.cuh"

#include <time.h>

#if !defined(RK_HIP) /* AMD parts have 64 KB of LDS per block: the host fits there */

#define RK_FIT_THREADS 512
#define RK_FIT_SWEEPS 16   /* Jacobi sweeps at most (quadratic convergence: usually 4 or 5) */
#define RK_FIT_PMAX 72     /* subspace width: the registers of rk_fit_orth and rk_fit_jacobi1 */
#define RK_FIT_PROF 16     /* tuning checkpoints of head 0 (RK_CUDA_FIT_PROFILE) */
#define RK_FIT_JLANES 16   /* one-sided Jacobi: lanes per column pair */
#define RK_FIT_JROWS ((RK_FIT_PMAX + RK_FIT_JLANES - 1) / RK_FIT_JLANES)
#define RK_FIT_EOWN ((RK_FIT_PMAX * RK_FIT_PMAX + RK_FIT_THREADS - 1) / RK_FIT_THREADS)
/* one-sided Jacobi: a sweep whose largest |cos| between two columns stays below this is the
 * last (quadratic convergence leaves ~1e-8 of the norms after it) */
#define RK_FIT_JSTOP 1e-4

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

/* Shared-memory carve-up (bytes), identical on host and device. C rows hold whole float4s and
 * V rows a multiple of 8 floats (zero padded); W and G rows have an odd stride of
 * doubles (conflict-free column walks). After the Rayleigh-Ritz product C's region holds R [d][r]
 * f64. */
struct rk_fit_layout {
    int ldc, ldv, ldw;
    size_t c_off, v_off, w_off, g_off, aux_off, bytes;
};

static __host__ __device__ inline rk_fit_layout rk_fit_layout_of(int d, int p) {
    rk_fit_layout L;
    L.ldc = (d + 3) / 4 * 4;
    L.ldv = (p + 7) / 8 * 8;
    L.ldw = p | 1;
    L.c_off = 0;
    L.v_off = L.c_off + (size_t)d * L.ldc * sizeof(float);
    L.w_off = L.v_off + (size_t)d * L.ldv * sizeof(float);
    L.g_off = L.w_off + (size_t)d * L.ldw * sizeof(double);
    L.aux_off = L.g_off + (size_t)p * L.ldw * sizeof(double);
    L.bytes = L.aux_off + (size_t)(5 * p + 8) * sizeof(double); /* see rk_fit_kernel's aux */
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
                else if (ia[u] >= ib[v]) {
                    G[(size_t)ia[u] * ldg + ib[v]] = s[u][v];
                    if (ia[u] > ib[v]) G[(size_t)ib[v] * ldg + ia[u]] = 0.0; /* rk_fit_orth's L⁻¹ */
                }
            }
    }
}

/* One CholeskyQR pass on W [d][p] (stride ldw) through an explicit inverse factor: G = WᵀW =
 * L Lᵀ, W <- W L⁻ᵀ, *fail set when G is not positive definite. L = Lu D^½ (Lu unit lower) by
 * right-looking elimination over the block, one barrier per column: step j reads only column j
 * of G and writes only columns > j, where the lower triangle holds the trailing Schur
 * complement and the upper triangle Lu⁻¹ transposed (G[k][a] = (Lu⁻¹)[a][k], k < a; the Gram
 * product left it zero). Both updates are the same rank-1 formula. Then W L⁻ᵀ is a product with
 * the unit upper triangle, each row of W by four threads that own interleaved outputs, scaled by
 * isd[a] = D_a^-½. No serial chain but the p barriers: the solve's p dependent steps and the
 * warp's Cholesky go. Ends synchronized. */
static __device__ void rk_fit_orth(double *W, double *G, double *isd, int d, int p, int ldw,
                                   int *fail, long long *tp = NULL) {
    const int tid = threadIdx.x;
    rk_fit_cross<double, false, 4, 8>(W, ldw, W, ldw, G, ldw, d, p);
    int own[RK_FIT_EOWN]; /* this thread's entries (row << 8 | column) of the p×p grid, -1 past it */
#pragma unroll
    for (int u = 0; u < RK_FIT_EOWN; u++) {
        const int e = tid + u * RK_FIT_THREADS;
        own[u] = e < p * p ? (e / p) << 8 | (e % p) : -1;
    }
    __syncthreads();
    if (tp) tp[0] = clock64();
    for (int j = 0; j < p; j++) {
        const double piv = G[(size_t)j * ldw + j];
        if (!(piv > 0.0) || !isfinite(piv)) { /* block-uniform */
            if (tid == 0) *fail = 1;
            break;
        }
        const double rj = rsqrt(piv), ip = rj * rj;
        if (tid == 0) isd[j] = rj;
        const double *gj = G + j; /* column j: gj[x * ldw] */
#pragma unroll
        for (int u = 0; u < RK_FIT_EOWN; u++) {
            if (own[u] < 0) break;
            const int r = own[u] >> 8, c = own[u] & 255;
            if (c <= j) continue;
            if (r == j) G[(size_t)j * ldw + c] = -gj[(size_t)c * ldw] * ip;
            else if (r >= c || r < j)
                G[(size_t)r * ldw + c] -= gj[(size_t)r * ldw] * gj[(size_t)c * ldw] * ip;
        }
        __syncthreads();
    }
    __syncthreads();
    if (tp) tp[1] = clock64();
    if (*fail) return;
    /* W[i][a] <- (W[i][a] + Σ_{k<a} W[i][k] G[k][a]) isd[a]; thread q of a row owns a ≡ q (mod 4) */
    const int row = tid / 4, q4 = tid % 4;
    double y[RK_FIT_PMAX / 4];
#pragma unroll
    for (int v = 0; v < RK_FIT_PMAX / 4; v++) y[v] = 0.0;
    if (row < d) {
        const double *wr = W + (size_t)row * ldw;
        for (int k = 0; k < p; k++) {
            const double x = wr[k];
            const double *gk = G + (size_t)k * ldw;
#pragma unroll
            for (int v = 0; v < RK_FIT_PMAX / 4; v++) {
                if (4 * v >= p) break;        /* uniform */
                if (4 * v + 3 < k) continue;  /* uniform: outputs left of the diagonal */
                const int a = 4 * v + q4;
                if (a == k) y[v] += x;
                else if (a > k && a < p) y[v] = fma(x, gk[a], y[v]);
            }
        }
    }
    __syncwarp(); /* the row's four threads have read it */
    if (row < d)
#pragma unroll
        for (int v = 0; v < RK_FIT_PMAX / 4; v++) {
            if (4 * v >= p) break;
            const int a = 4 * v + q4;
            if (a < p) W[(size_t)row * ldw + a] = y[v] * isd[a];
        }
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

/* Rayleigh-Ritz eigensolver: one-sided (Hestenes) Jacobi on A = H, symmetric positive definite
 * (C is, by the ridge): rotate pairs of columns of A = H·J until they are orthogonal. Then
 * (HJ)ᵀ(HJ) = Jᵀ H² J is diagonal, so J holds H's eigenvectors and A's columns are λ_a times
 * them: E = A's columns normalized, λ_a their norms, and J is never formed. Only columns move
 * (the two-sided form also rotates rows), so a pair is local: row a of G holds column a of A
 * (H is symmetric), 16 lanes read a pair's two rows, reduce the three dot products by shuffles,
 * rotate in registers and write back. A round's pairs are disjoint (circle method): one barrier
 * per round. Angles in f32 (the relative cosine and ζ are O(1) after scaling by 1/‖a_i‖‖a_j‖),
 * c to f64 by Newton steps, so every rotation is orthogonal to f64 rounding. Stops after a sweep
 * whose largest cosine stayed below RK_FIT_JSTOP. more[]: RK_FIT_SWEEPS zeroed flags. */
static __device__ int rk_fit_jacobi1(double *G, int p, int ldw, int *more) {
    const int tid = threadIdx.x, grp = tid / RK_FIT_JLANES, gl = tid % RK_FIT_JLANES;
    const unsigned gmask = 0xffffu << (tid % 32 & 16);
    const int m = p + (p & 1), pairs = m / 2, ngrp = RK_FIT_THREADS / RK_FIT_JLANES;
    int sweeps = 0;
    for (int sweep = 0; sweep < RK_FIT_SWEEPS; sweep++) {
        for (int t = 0; t < m - 1; t++) {
            for (int k = grp; k < pairs; k += ngrp) {
                int i, j;
                rk_fit_pair(t, k, m, &i, &j);
                if (j >= p) continue; /* group-uniform */
                double x[RK_FIT_JROWS], y[RK_FIT_JROWS], al = 0.0, be = 0.0, ga = 0.0;
#pragma unroll
                for (int u = 0; u < RK_FIT_JROWS; u++) {
                    const int e = gl + RK_FIT_JLANES * u;
                    x[u] = e < p ? G[(size_t)i * ldw + e] : 0.0;
                    y[u] = e < p ? G[(size_t)j * ldw + e] : 0.0;
                    al = fma(x[u], x[u], al);
                    be = fma(y[u], y[u], be);
                    ga = fma(x[u], y[u], ga);
                }
                /* xor butterflies: every lane of the group ends with bitwise the same sums */
#pragma unroll
                for (int o = RK_FIT_JLANES / 2; o > 0; o >>= 1) {
                    al += __shfl_xor_sync(gmask, al, o);
                    be += __shfl_xor_sync(gmask, be, o);
                    ga += __shfl_xor_sync(gmask, ga, o);
                }
                const double rn = rsqrt(al * be), rel = fabs(ga) * rn;
                if (rel >= RK_FIT_JSTOP && gl == 0) atomicOr(more + sweep, 1);
                if (!(rel > 1e-15)) continue;
                /* t = sgn(ζ) / (|ζ| + sqrt(ζ² + 1)), ζ = (β - α) / 2γ; c = 1 / sqrt(1 + t²) */
                const float zf = (float)((be - al) * rn) / (2.0f * (float)(ga * rn));
                const double tt = (zf >= 0.0f ? 1.0f : -1.0f) / (fabsf(zf) + sqrtf(fmaf(zf, zf, 1.0f)));
                const double xx = fma(tt, tt, 1.0);
                double c = (double)rsqrtf((float)xx);
                c = c * fma(-0.5 * xx, c * c, 1.5);
                c = c * fma(-0.5 * xx, c * c, 1.5);
                const double s = tt * c;
#pragma unroll
                for (int u = 0; u < RK_FIT_JROWS; u++) {
                    const int e = gl + RK_FIT_JLANES * u;
                    if (e < p) {
                        G[(size_t)i * ldw + e] = c * x[u] - s * y[u];
                        G[(size_t)j * ldw + e] = s * x[u] + c * y[u];
                    }
                }
            }
            __syncthreads();
        }
        sweeps = sweep + 1;
        if (!more[sweep]) break; /* block-uniform: read after the round's barrier */
    }
    return sweeps;
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
    /* aux: isd [p] (D^-½ of the elimination), nrm, inrm, sgn [p], order [p] ints */
    double *aux = (double *)(rk_fit_smem + L.aux_off);
    double *isd = aux, *nrm = aux + p, *inrm = aux + 2 * p, *sgn = aux + 3 * p;
    int *order = (int *)(aux + 4 * p);
    __shared__ int fail, jac_more[RK_FIT_SWEEPS];
    if (tid == 0) fail = 0;
    if (tid < RK_FIT_SWEEPS) jac_more[tid] = 0;
    long long t_start = clock64(), t_cload = 0, t_loaded = 0, t_first = 0, t_iters = 0, t_h = 0;
    long long t_jac = 0, t_order = 0;
    long long t_it2[5] = {0, 0, 0, 0, 0}; /* first pass: start, C·V, Gram, elimination, product done */
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
        rk_fit_orth(W, G, isd, d, p, L.ldw, &fail, first && tid == 0 ? t_it2 + 2 : NULL);
        if (!fail && it > q.iters) rk_fit_orth(W, G, isd, d, p, L.ldw, &fail);
        if (!fail) rk_fit_store_v(W, V, d, p, L);
        if (first) t_first = clock64();
    }
    t_iters = clock64();
    if (fail) {
        if (tid == 0) q.status[head] = 1;
        return;
    }

    /* Rayleigh-Ritz: H = Vᵀ (C V) in G, symmetrized; its eigenpairs by one-sided Jacobi */
    rk_fit_cv(C, V, W, d, p, L);
    __syncthreads();
    rk_fit_cross<float, true, 2, 2>(V, L.ldv, W, L.ldw, G, L.ldw, d, p);
    __syncthreads();
    t_h = clock64();
    sweeps_done = rk_fit_jacobi1(G, p, L.ldw, jac_more);
    t_jac = clock64();
    /* Ritz values: the norms of A's columns (rows of G) */
    for (int a = tid; a < p; a += RK_FIT_THREADS) {
        const double *ga = G + (size_t)a * L.ldw;
        double s0 = 0.0, s1 = 0.0;
        int k = 0;
        for (; k + 1 < p; k += 2) {
            s0 = fma(ga[k], ga[k], s0);
            s1 = fma(ga[k + 1], ga[k + 1], s1);
        }
        if (k < p) s0 = fma(ga[k], ga[k], s0);
        nrm[a] = sqrt(s0 + s1);
        inrm[a] = 1.0 / nrm[a];
    }
    __syncthreads();
    /* order: the column holding the k-th largest Ritz value */
    for (int a = tid; a < p; a += RK_FIT_THREADS) {
        const double la = nrm[a];
        int rank = 0;
        for (int b = 0; b < p; b++) {
            const double lb = nrm[b];
            rank += lb > la || (lb == la && b < a);
        }
        if (rank < r) {
            order[rank] = a;
            q.evals[(size_t)head * r + rank] = la;
        }
    }
    __syncthreads();
    /* E [p][r] (W's region; W is done): the normalized columns in order */
    double *E = W;
    for (int e = tid; e < p * r; e += RK_FIT_THREADS) {
        const int k = e / r, a = order[e % r];
        E[e] = G[(size_t)a * L.ldw + k] * inrm[a];
    }
    __syncthreads();
    t_order = clock64();
    /* R = V·E into C's region (C is done), eight columns of a row per thread */
    double *Rs = (double *)(rk_fit_smem + L.c_off);
    const int nb8 = (r + 7) / 8;
    for (int e = tid; e < d * nb8; e += RK_FIT_THREADS) {
        const int i = e / nb8, j0 = (e % nb8) * 8;
        const float *v = V + (size_t)i * L.ldv;
        double acc[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
        for (int k = 0; k < p; k++) {
            const double vk = v[k];
            const double *ek = E + (size_t)k * r + j0;
#pragma unroll
            for (int u = 0; u < 8; u++)
                if (j0 + u < r) acc[u] = fma(vk, ek[u], acc[u]);
        }
#pragma unroll
        for (int u = 0; u < 8; u++)
            if (j0 + u < r) Rs[(size_t)i * r + j0 + u] = acc[u];
    }
    __syncthreads();
    /* signs: a warp per column, the largest-magnitude entry (first on ties) > 0 */
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
        if (lane == 0) sgn[j] = Rs[(size_t)best_i * r + j] < 0.0 ? -1.0 : 1.0;
    }
    __syncthreads();
    double *Rg = q.R + (size_t)head * d * r;
    for (int e = tid; e < d * r; e += RK_FIT_THREADS) Rg[e] = sgn[e % r] * Rs[e];
    if (tid == 0) q.status[head] = 0;
    if (q.prof && head == 0 && tid == 0) {
        const long long t_end = clock64();
        const long long v[RK_FIT_PROF] = {0, t_loaded - t_start, t_first - t_loaded, t_iters - t_first,
                                          t_h - t_iters, t_jac - t_h, t_end - t_jac, sweeps_done,
                                          t_it2[1] - t_it2[0], t_it2[2] - t_it2[1], t_it2[3] - t_it2[2],
                                          t_it2[4] - t_it2[3], t_cload - t_start, t_order - t_jac,
                                          0, 0};
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
    /* d <= 128: four threads per row of W in rk_fit_orth's product; p <= 72: its outputs and
     * the Jacobi rows per lane; R [d][r] f64 in C's region */
    if (d > RK_FIT_THREADS / 4 || p > RK_FIT_PMAX || r > p ||
        (size_t)r * sizeof(double) > (size_t)L.ldc * sizeof(float) ||
        L.bytes > (size_t)optin || g->warp_size != 32)
        return rk_fail(ctx, RK_ERR_UNSUPPORTED, RK_BACKEND_NAME ": no device fit for d %d, width %d"
                       " (%zu bytes of shared memory)", d, p, L.bytes);
    const int profile = getenv("RK_CUDA_FIT_PROFILE") != NULL; /* tuning: phase cycles to stderr */
    double h0 = profile ? rk_fit_now() : 0.0, h1 = 0.0, h2 = 0.0, h3 = 0.0;
    /* the moments op left S on the device (in place) unless another one ran since */
    const int s_on_dev = op->moments_id != 0 && op->moments_id == g->mom_id;
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
            fprintf(stderr, "rk_fit cycles: load %lld (C %lld), first pass (2 products + "
                    "orth) %lld, the other %d products + orth %lld, RR product %lld, Jacobi %lld (%lld "
                    "sweeps), R %lld (order %lld); first pass: 2 C.V %lld, Gram %lld, elimination "
                    "%lld, product %lld\n", v[1], v[12], v[2], op->iters - 2, v[3], v[4], v[5],
                    v[7], v[6], v[13], v[8], v[9], v[10], v[11]);
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
