/* The RK_SOLVER_SUBSPACE basis fit on the device (rk_op_rotation_fit): one block per head, the
 * whole fit in shared memory, the same algorithm as core/pca.c's rk_pca_subspace:
 *   V = orth(V0); repeat iters: V = orth(C·V);   orth = CholeskyQR2
 *   Rayleigh-Ritz: H = Vᵀ C V, eigenpairs by cyclic Jacobi, R = V·E (top r, sorted, signs fixed).
 * Precision: C and V are held as f32 for the products C·V (the only d²-sized work); Gram
 * matrices, Cholesky, triangular solves, H and Jacobi are f64, so the CholeskyQR of an
 * ill-conditioned C·V stays stable. */
#ifndef RK_CUDA_SUBSPACE_CUH
#define RK_CUDA_SUBSPACE_CUH

#include "common.cuh"

#if !defined(RK_HIP) /* AMD parts have 64 KB of LDS per block: the host fits there */

#define RK_FIT_THREADS 512
#define RK_FIT_SWEEPS 16   /* Jacobi sweeps at most (quadratic convergence: usually 3 to 6) */
#define RK_FIT_ITEMS 8     /* Jacobi 2×2 blocks and E column pairs per thread: p <= 72 */
#define RK_FIT_ROWQ 18     /* columns per thread in W L⁻ᵀ (4 threads per row): p <= 72 */
#define RK_FIT_PROF 12     /* tuning checkpoints of head 0 (RK_CUDA_FIT_PROFILE) */

struct rk_fit_params {
    const double *C;
    const unsigned long long *seeds;
    double *R, *evals;
    int *status;            /* [n]: 0 fine, 1 Gram matrix not positive definite */
    long long *prof;        /* NULL, or RK_FIT_PROF clock64 checkpoints of head 0 (tuning) */
    int n, d, r, p, iters;
};

/* Shared-memory carve-up (bytes), identical on host and device. */
struct rk_fit_layout {
    int ldc, ldw;           /* row strides: C f32 (d + 1), W/V f64 (odd, for banks) */
    size_t c_off, v_off, w_off, g_off, aux_off, bytes;
};

static __host__ __device__ inline rk_fit_layout rk_fit_layout_of(int d, int p) {
    rk_fit_layout L;
    L.ldc = d + 1;
    L.ldw = p | 1;
    L.c_off = 0;
    L.v_off = L.c_off + (size_t)d * L.ldc * sizeof(float);
    L.v_off = (L.v_off + 15) / 16 * 16;
    L.w_off = L.v_off + (size_t)d * p * sizeof(float);
    L.w_off = (L.w_off + 15) / 16 * 16;
    L.g_off = L.w_off + (size_t)d * L.ldw * sizeof(double);
    L.aux_off = L.g_off + (size_t)p * L.ldw * sizeof(double);
    L.bytes = L.aux_off + (size_t)(3 * p + 8) * sizeof(double); /* Jacobi (c, s), order, inv_diag */
    return L;
}

/* W = C·V with f32 operands; W stored f64. Thread: 4 rows × every tpq-th column (4 C loads and
 * one V load per column feed 4 FMAs each). */
#define RK_FIT_CV_COLS 8
static __device__ void rk_fit_cv(const float *C, const float *V, double *W, int d, int p, int ldc,
                                 int ldw) {
    const int quads = (d + 3) / 4, tpq = RK_FIT_THREADS / quads, tid = threadIdx.x;
    const int i0 = (tid / tpq) * 4, a0 = tid % tpq;
    if (i0 >= d) return;
    const int ncols = (p - a0 + tpq - 1) / tpq;
    float acc[4][RK_FIT_CV_COLS];
#pragma unroll
    for (int r = 0; r < 4; r++)
#pragma unroll
        for (int u = 0; u < RK_FIT_CV_COLS; u++) acc[r][u] = 0.0f;
    const float *c0 = C + (size_t)min(i0, d - 1) * ldc, *c1 = C + (size_t)min(i0 + 1, d - 1) * ldc;
    const float *c2 = C + (size_t)min(i0 + 2, d - 1) * ldc, *c3 = C + (size_t)min(i0 + 3, d - 1) * ldc;
    for (int k = 0; k < d; k++) {
        const float x0 = c0[k], x1 = c1[k], x2 = c2[k], x3 = c3[k];
        const float *vk = V + (size_t)k * p + a0;
#pragma unroll
        for (int u = 0; u < RK_FIT_CV_COLS; u++) {
            if (u >= ncols) break;
            const float v = vk[u * tpq];
            acc[0][u] += x0 * v; acc[1][u] += x1 * v; acc[2][u] += x2 * v; acc[3][u] += x3 * v;
        }
    }
#pragma unroll
    for (int u = 0; u < RK_FIT_CV_COLS; u++) {
        if (u >= ncols) break;
        const int a = a0 + u * tpq;
#pragma unroll
        for (int r = 0; r < 4; r++)
            if (i0 + r < d) W[(size_t)(i0 + r) * ldw + a] = acc[r][u];
    }
}

/* One CholeskyQR pass on W [d][p] (stride ldw): G = WᵀW = LLᵀ, W <- W L⁻ᵀ. *fail set when G is
 * not positive definite. Three barriers: the Gram matrix over the block; the Cholesky factor
 * and its inverse in warp 0 (lane-owned rows, warp-synchronous); then each row of W multiplied
 * in place. The inverse goes to the upper triangle of G (Linv[i][c] at G[c][i]) and its
 * diagonal to inv_diag. Ends synchronized. */
static __device__ void rk_fit_cholqr(double *W, double *G, double *inv_diag, int d, int p, int ldw,
                                     int *fail, long long *tp = NULL) {
    const int tid = threadIdx.x, pb = (p + 1) / 2;
    for (int e = tid; e < pb * pb; e += RK_FIT_THREADS) {
        const int A = e / pb, B = e % pb;
        if (B > A) continue;
        const int a0 = 2 * A, b0 = 2 * B, a1 = min(a0 + 1, p - 1), b1 = min(b0 + 1, p - 1);
        double s00 = 0.0, s01 = 0.0, s10 = 0.0, s11 = 0.0;
        for (int i = 0; i < d; i++) {
            const double *w = W + (size_t)i * ldw;
            const double x0 = w[a0], x1 = w[a1], y0 = w[b0], y1 = w[b1];
            s00 += x0 * y0; s01 += x0 * y1; s10 += x1 * y0; s11 += x1 * y1;
        }
        G[(size_t)a0 * ldw + b0] = s00;
        if (a1 != a0) G[(size_t)a1 * ldw + b0] = s10;
        if (b1 != b0 && b1 <= a0) G[(size_t)a0 * ldw + b1] = s01;
        if (a1 != a0 && b1 != b0) G[(size_t)a1 * ldw + b1] = s11;
    }
    __syncthreads();
    if (tp && tid == 0) tp[0] = clock64();
    if (tid < 32) {
        const int lane = tid;
        int bad = 0;
        for (int j = 0; j < p && !bad; j++) {
            const double gjj = G[(size_t)j * ldw + j];
            bad = !(gjj > 0.0) || !isfinite(gjj); /* warp-uniform */
            if (bad) break;
            const double ljj = sqrt(gjj), rjj = 1.0 / ljj; /* one divide per column */
            for (int i = j + 1 + lane; i < p; i += 32) G[(size_t)i * ldw + j] *= rjj;
            __syncwarp();
            for (int i = j + 1 + lane; i < p; i += 32) {
                const double lij = G[(size_t)i * ldw + j];
                double *gi = G + (size_t)i * ldw;
                int k = j + 1;
                for (; k + 3 <= i; k += 4) { /* loads first: the updates are independent */
                    const double l0 = G[(size_t)k * ldw + j], l1 = G[(size_t)(k + 1) * ldw + j];
                    const double l2 = G[(size_t)(k + 2) * ldw + j], l3 = G[(size_t)(k + 3) * ldw + j];
                    const double g0 = gi[k], g1 = gi[k + 1], g2 = gi[k + 2], g3 = gi[k + 3];
                    gi[k] = g0 - lij * l0; gi[k + 1] = g1 - lij * l1;
                    gi[k + 2] = g2 - lij * l2; gi[k + 3] = g3 - lij * l3;
                }
                for (; k <= i; k++) gi[k] -= lij * G[(size_t)k * ldw + j];
            }
            if (lane == 0) {
                G[(size_t)j * ldw + j] = ljj;
                inv_diag[j] = rjj;
            }
            __syncwarp();
        }
        if (bad) {
            if (lane == 0) *fail = 1;
        } else {
            /* Linv row by row: Linv[i][c] = -(Σ_{c<=k<i} L[i][k] Linv[k][c]) / L[i][i] */
            for (int i = 0; i < p; i++) {
                const double rii = inv_diag[i];
                for (int c = lane; c < i; c += 32) {
                    double s0 = 0.0, s1 = 0.0;
                    int k = c;
                    for (; k + 1 < i; k += 2) {
                        s0 += G[(size_t)i * ldw + k] * (k == c ? inv_diag[c] : G[(size_t)c * ldw + k]);
                        s1 += G[(size_t)i * ldw + k + 1] * G[(size_t)c * ldw + k + 1];
                    }
                    if (k < i) s0 += G[(size_t)i * ldw + k] * (k == c ? inv_diag[c] : G[(size_t)c * ldw + k]);
                    G[(size_t)c * ldw + i] = -(s0 + s1) * rii;
                }
                __syncwarp();
            }
        }
    }
    __syncthreads();
    if (tp && tid == 0) tp[1] = clock64();
    if (*fail) return;
    /* w[a] <- Σ_{b <= a} Linv[a][b] w[b]: 4 threads per row, each a strided quarter of the
     * columns, written back after the whole row has been read */
    const int row = tid / 4, qtr = tid % 4;
    double out[RK_FIT_ROWQ];
#pragma unroll
    for (int u = 0; u < RK_FIT_ROWQ; u++) {
        const int a = qtr + 4 * u;
        out[u] = 0.0;
        if (row >= d || a >= p) continue;
        const double *w = W + (size_t)row * ldw;
        double s0 = w[a] * inv_diag[a], s1 = 0.0;
        int bb = 0;
        for (; bb + 1 < a; bb += 2) {
            s0 += w[bb] * G[(size_t)bb * ldw + a];
            s1 += w[bb + 1] * G[(size_t)(bb + 1) * ldw + a];
        }
        if (bb < a) s0 += w[bb] * G[(size_t)bb * ldw + a];
        out[u] = s0 + s1;
    }
    __syncthreads();
#pragma unroll
    for (int u = 0; u < RK_FIT_ROWQ; u++) {
        const int a = qtr + 4 * u;
        if (row < d && a < p) W[(size_t)row * ldw + a] = out[u];
    }
    __syncthreads();
}

static __device__ void rk_fit_store_v(const double *W, float *V, int d, int p, int ldw) {
    for (int e = threadIdx.x; e < d * p; e += RK_FIT_THREADS)
        V[e] = (float)W[(size_t)(e / p) * ldw + e % p];
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
    long long t_start = clock64(), t_loaded = 0, t_first = 0, t_iters = 0, t_h = 0, t_jac = 0;
    long long t_it2[4] = {0, 0, 0, 0}; /* iteration 2: start, C·V done, Gram done, Cholesky done */
    int sweeps_done = 0;
    const double *Cg = q.C + (size_t)head * d * d;
    for (int e0 = tid; e0 < d * d; e0 += 8 * RK_FIT_THREADS) { /* eight loads in flight */
        double x[8];
#pragma unroll
        for (int u = 0; u < 8; u++) x[u] = e0 + u * RK_FIT_THREADS < d * d ? Cg[e0 + u * RK_FIT_THREADS] : 0.0;
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const int e = e0 + u * RK_FIT_THREADS;
            if (e < d * d) C[(size_t)(e / d) * L.ldc + e % d] = (float)x[u];
        }
    }
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
     * CholeskyQR absorbs; a breakdown falls back to the host solver). The final basis gets
     * CholeskyQR2. */
    double *inv_diag = cs + 2 * ((p + 1) / 2) + 2 + (p + 1) / 2; /* past the Jacobi and order scratch */
    rk_fit_cholqr(W, G, inv_diag, d, p, L.ldw, &fail); /* a Gaussian start is well conditioned */
    if (!fail) rk_fit_store_v(W, V, d, p, L.ldw);
    for (int it = 1; it <= q.iters && !fail;) {
        const int steps = q.iters - it >= 1 ? 2 : 1;
        if (it == 1) t_it2[0] = clock64();
        rk_fit_cv(C, V, W, d, p, L.ldc, L.ldw);
        __syncthreads();
        if (steps == 2) {
            rk_fit_store_v(W, V, d, p, L.ldw);
            rk_fit_cv(C, V, W, d, p, L.ldc, L.ldw);
            __syncthreads();
        }
        if (it == 1) t_it2[1] = clock64();
        it += steps;
        rk_fit_cholqr(W, G, inv_diag, d, p, L.ldw, &fail, it == 3 && tid == 0 ? t_it2 + 2 : NULL);
        if (!fail && it > q.iters) rk_fit_cholqr(W, G, inv_diag, d, p, L.ldw, &fail);
        if (!fail) rk_fit_store_v(W, V, d, p, L.ldw);
        if (it == 3) t_first = clock64();
    }
    t_iters = clock64();
    if (fail) {
        if (tid == 0) q.status[head] = 1;
        return;
    }

    /* Rayleigh-Ritz: H = Vᵀ (C V) in G, symmetrized; E (eigenvectors) in W */
    rk_fit_cv(C, V, W, d, p, L.ldc, L.ldw);
    __syncthreads();
    for (int e = tid; e < p * p; e += RK_FIT_THREADS) {
        const int a = e / p, b = e % p;
        if (b > a) continue;
        double s_ab = 0.0, s_ba = 0.0;
        for (int i = 0; i < d; i++) {
            s_ab += (double)V[(size_t)i * p + a] * W[(size_t)i * L.ldw + b];
            s_ba += (double)V[(size_t)i * p + b] * W[(size_t)i * L.ldw + a];
        }
        G[(size_t)a * L.ldw + b] = G[(size_t)b * L.ldw + a] = 0.5 * (s_ab + s_ba);
    }
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
        if (!(off_norm > 1e-20 * diag_norm)) break; /* block-uniform; off-diagonal below 1e-10 */
        sweeps_done = sweep + 1;
        for (int t = 0; t < m - 1; t++) {
            for (int k = tid; k < pairs; k += RK_FIT_THREADS) {
                int i, j;
                rk_fit_pair(t, k, m, &i, &j);
                double c = 1.0, s = 0.0;
                if (j < p) {
                    const double hij = G[(size_t)i * L.ldw + j];
                    if (hij != 0.0) {
                        /* t = sgn(θ) / (|θ| + sqrt(θ² + 1)), θ = (h_jj - h_ii) / (2 h_ij), written with
                         * one divide: t = 2 h_ij sgn(δ) / (|δ| + sqrt(δ² + 4 h_ij²)), δ = h_jj - h_ii */
                        const double dl = G[(size_t)j * L.ldw + j] - G[(size_t)i * L.ldw + i];
                        const double tt = (dl >= 0 ? 2.0 : -2.0) * hij / (fabs(dl) + sqrt(dl * dl + 4.0 * hij * hij));
                        c = rsqrt(tt * tt + 1.0);
                        s = tt * c;
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
    /* R = V·E[:, order], a warp per column; sign: the largest-magnitude entry (first on ties) > 0 */
    double *Rg = q.R + (size_t)head * d * r;
    for (int j = warp; j < r; j += RK_FIT_THREADS / 32) {
        const int col = order[j];
        double best = -1.0;
        int best_i = d;
        for (int i = lane; i < d; i += 32) {
            double s = 0.0;
            for (int a = 0; a < p; a++) s += (double)V[(size_t)i * p + a] * W[(size_t)a * L.ldw + col];
            Rg[(size_t)i * r + j] = s;
            if (fabs(s) > best) { best = fabs(s); best_i = i; }
        }
        for (int o = 16; o > 0; o >>= 1) {
            const double ob = __shfl_xor_sync(0xffffffffu, best, o);
            const int oi = __shfl_xor_sync(0xffffffffu, best_i, o);
            if (ob > best || (ob == best && oi < best_i)) { best = ob; best_i = oi; }
        }
        __syncwarp();
        const double sign = Rg[(size_t)best_i * r + j] < 0.0 ? -1.0 : 1.0;
        __syncwarp();
        if (sign < 0.0)
            for (int i = lane; i < d; i += 32) Rg[(size_t)i * r + j] = -Rg[(size_t)i * r + j];
    }
    if (tid == 0) q.status[head] = 0;
    if (q.prof && head == 0 && tid == 0) {
        const long long t_end = clock64();
        const long long v[RK_FIT_PROF] = {0, t_loaded - t_start, t_first - t_loaded, t_iters - t_first,
                                          t_h - t_iters, t_jac - t_h, t_end - t_jac, sweeps_done,
                                          t_it2[1] - t_it2[0], t_it2[2] - t_it2[1], t_it2[3] - t_it2[2], 0};
        for (int k = 0; k < RK_FIT_PROF; k++) q.prof[k] = v[k];
    }
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
    /* d <= 128: four threads per row of W; p <= 72: per-thread column and Jacobi item budgets */
    if (d > RK_FIT_THREADS / 4 || p > RK_FIT_CV_COLS * (RK_FIT_THREADS / ((d + 3) / 4)) ||
        p > 4 * RK_FIT_ROWQ || r > p ||
        pairs * pairs + p * pairs > RK_FIT_ITEMS * RK_FIT_THREADS ||
        L.bytes > (size_t)optin || g->warp_size != 32)
        return rk_fail(ctx, RK_ERR_UNSUPPORTED, RK_BACKEND_NAME ": no device fit for d %d, width %d"
                       " (%zu bytes of shared memory)", d, p, L.bytes);
    const size_t c_n = (size_t)n * d * d, r_n = (size_t)n * d * r;
    const int profile = getenv("RK_CUDA_FIT_PROFILE") != NULL; /* tuning: phase cycles to stderr */
    const size_t bytes = (c_n + r_n + (size_t)n * r + (size_t)n + RK_FIT_PROF) * sizeof(double) + (size_t)n * sizeof(int);
    st = rk_gpu_reserve(ctx, &g->scratch, &g->scratch_bytes, bytes, 0);
    if (st != RK_OK) return st;
    double *C = (double *)g->scratch, *R = C + c_n, *ev = R + r_n;
    unsigned long long *seeds = (unsigned long long *)(ev + (size_t)n * r);
    long long *prof = (long long *)(seeds + n);
    int *status = (int *)(prof + RK_FIT_PROF);
    st = rk_gpu_check(ctx, cudaMemcpyAsync(C, op->C, c_n * sizeof(double), cudaMemcpyHostToDevice, g->stream), "upload C");
    if (st == RK_OK)
        st = rk_gpu_check(ctx, cudaMemcpyAsync(seeds, op->seeds, (size_t)n * sizeof(uint64_t), cudaMemcpyHostToDevice, g->stream), "upload seeds");
    if (st == RK_OK)
        st = rk_gpu_check(ctx, cudaFuncSetAttribute(rk_fit_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                    (int)L.bytes), "fit shared memory");
    if (st != RK_OK) return st;
    rk_fit_params q = {C, seeds, R, ev, status, profile ? prof : NULL, n, d, r, p, op->iters};
    rk_fit_kernel<<<n, RK_FIT_THREADS, L.bytes, g->stream>>>(q);
    if ((st = rk_gpu_check(ctx, cudaGetLastError(), "fit kernel")) != RK_OK) return st;
    int *host_status = (int *)malloc(sizeof(int) * (size_t)n);
    if (!host_status) return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "fit status");
    st = rk_gpu_check(ctx, cudaMemcpyAsync(op->R, R, r_n * sizeof(double), cudaMemcpyDeviceToHost, g->stream), "download R");
    if (st == RK_OK)
        st = rk_gpu_check(ctx, cudaMemcpyAsync(op->evals, ev, (size_t)n * r * sizeof(double), cudaMemcpyDeviceToHost, g->stream), "download evals");
    if (st == RK_OK)
        st = rk_gpu_check(ctx, cudaMemcpyAsync(host_status, status, (size_t)n * sizeof(int), cudaMemcpyDeviceToHost, g->stream), "download status");
    if (st == RK_OK) st = rk_gpu_check(ctx, cudaStreamSynchronize(g->stream), "fit sync");
    if (st == RK_OK && profile) {
        long long v[RK_FIT_PROF];
        if (cudaMemcpy(v, prof, sizeof v, cudaMemcpyDeviceToHost) == cudaSuccess)
            fprintf(stderr, "rk_fit cycles: start + first 2 products %lld, the other %d products %lld, "
                    "RR product %lld, Jacobi %lld (%lld sweeps), R %lld; first pass: 2 C.V %lld, Gram "
                    "%lld, Cholesky+inverse %lld\n", v[1] + v[2], op->iters - 2, v[3], v[4], v[5], v[7],
                    v[6], v[8], v[9], v[10]);
    }
    /* CholeskyQR broke down (rank-deficient iterate): the host solver has a Householder fallback */
    for (int k = 0; k < n && st == RK_OK; k++)
        if (host_status[k] != 0)
            st = rk_fail(ctx, RK_ERR_UNSUPPORTED, RK_BACKEND_NAME ": head %d: Gram matrix of the "
                         "subspace iteration is not positive definite; fitting on the host", k);
    free(host_status);
    return st;
}
#define RK_GPU_ROTATION_FIT rk_gpu_rotation_fit
#else
#define RK_GPU_ROTATION_FIT NULL
#endif

#endif
