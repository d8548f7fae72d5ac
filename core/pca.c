/* Basis fitting per head (see pca.h). Small dense matrices (d <= a few hundred): plain loops
 * for products, LAPACKE for the eigen- and Cholesky factorizations. */
#include "pca.h"
#include "prng.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int rk_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void rk_pca_weights(const double *qms, int d, double floor_frac, double *w, double *scratch) {
    for (int i = 0; i < d; i++) w[i] = sqrt(qms[i] > 0 ? qms[i] : 0);
    memcpy(scratch, w, sizeof(double) * (size_t)d);
    qsort(scratch, (size_t)d, sizeof(double), rk_cmp_double);
    double median = (d % 2) ? scratch[d / 2] : 0.5 * (scratch[d / 2 - 1] + scratch[d / 2]);
    double floor_w = floor_frac * median;
    for (int i = 0; i < d; i++)
        if (w[i] < floor_w) w[i] = floor_w;
}

double rk_pca_ridge(double trace, int d, double ridge) { return ridge * (trace > 0 ? trace / d : 1.0); }

void rk_pca_weight(double *C, const double *qms, int d, double floor_frac, double ridge) {
    if (qms) {
        double *w = malloc(sizeof(double) * (size_t)d * 2);
        if (w) {
            rk_pca_weights(qms, d, floor_frac, w, w + d);
            for (int i = 0; i < d; i++)
                for (int j = 0; j < d; j++) C[i * d + j] *= w[i] * w[j];
            free(w);
        }
    }
    double trace = 0;
    for (int i = 0; i < d; i++) trace += C[i * d + i];
    double add = rk_pca_ridge(trace, d, ridge);
    for (int i = 0; i < d; i++) C[i * d + i] += add;
}

void rk_pca_fix_signs(double *R, int d, int r) {
    for (int j = 0; j < r; j++) {
        int best = 0;
        for (int i = 1; i < d; i++)
            if (fabs(R[i * r + j]) > fabs(R[best * r + j])) best = i;
        if (R[best * r + j] < 0)
            for (int i = 0; i < d; i++) R[i * r + j] = -R[i * r + j];
    }
}

/* Eigen-decompose the symmetric n×n A (overwritten by eigenvectors, columns, ascending). */
static rk_status rk_syevd(double *A, int n, double *w) {
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', n, A, n, w);
    return info == 0 ? RK_OK : RK_ERR_NUMERICAL;
}

rk_status rk_pca_exact(const double *C, int d, int r, double *evals, double *R) {
    double *A = malloc(sizeof(double) * (size_t)d * (d + 1));
    if (!A) return RK_ERR_OUT_OF_MEMORY;
    double *w = A + (size_t)d * d;
    memcpy(A, C, sizeof(double) * (size_t)d * d);
    rk_status st = rk_syevd(A, d, w);
    if (st == RK_OK) {
        for (int k = 0; k < d; k++) evals[k] = w[d - 1 - k];
        for (int i = 0; i < d; i++)
            for (int j = 0; j < r; j++) R[i * r + j] = A[i * d + (d - 1 - j)];
        rk_pca_fix_signs(R, d, r);
    }
    free(A);
    return st;
}

int rk_pca_subspace_width(int d, int r) { return r + 8 <= d ? r + 8 : d; }

void rk_pca_random_start(uint64_t seed, int d, int p, double *V) {
    uint64_t s = seed;
    for (int i = 0; i < d * p; i++) V[i] = rk_normal(&s);
}

/* One CholeskyQR pass: G = WᵀW = LLᵀ, W <- W L⁻ᵀ. Returns nonzero if G is not positive definite. */
static int rk_cholqr_pass(double *W, int d, int p, double *G) {
    for (int a = 0; a < p; a++)
        for (int b = 0; b <= a; b++) {
            double s = 0;
            for (int i = 0; i < d; i++) s += W[i * p + a] * W[i * p + b];
            G[a * p + b] = G[b * p + a] = s;
        }
    if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', p, G, p) != 0) return 1;
    /* Each row x of W solves x = y Lᵀ, i.e. L yᵀ = xᵀ: forward substitution. */
    for (int i = 0; i < d; i++) {
        double *x = W + (size_t)i * p;
        for (int a = 0; a < p; a++) {
            double s = x[a];
            for (int b = 0; b < a; b++) s -= G[a * p + b] * x[b];
            x[a] = s / G[a * p + a];
        }
    }
    return 0;
}

/* Orthonormalize W [d][p]: CholeskyQR2; Householder QR only if the Gram matrix is singular. */
static rk_status rk_orthonormalize(double *W, int d, int p, double *G) {
    if (rk_cholqr_pass(W, d, p, G) == 0 && rk_cholqr_pass(W, d, p, G) == 0) return RK_OK;
    double *tau = malloc(sizeof(double) * (size_t)p);
    if (!tau) return RK_ERR_OUT_OF_MEMORY;
    lapack_int info = LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, d, p, W, p, tau);
    if (info == 0) info = LAPACKE_dorgqr(LAPACK_ROW_MAJOR, d, p, p, W, p, tau);
    free(tau);
    return info == 0 ? RK_OK : RK_ERR_NUMERICAL;
}

static void rk_matmul_sym(const double *C, const double *V, int d, int p, double *W) {
    for (int i = 0; i < d; i++) {
        double *w = W + (size_t)i * p;
        for (int a = 0; a < p; a++) w[a] = 0;
        for (int k = 0; k < d; k++) {
            double c = C[i * d + k];
            const double *v = V + (size_t)k * p;
            for (int a = 0; a < p; a++) w[a] += c * v[a];
        }
    }
}

rk_status rk_pca_subspace_iterate(const double *C, int d, int p, int iters, double *V) {
    double *W = malloc(sizeof(double) * ((size_t)d * p + (size_t)p * p));
    if (!W) return RK_ERR_OUT_OF_MEMORY;
    double *G = W + (size_t)d * p;
    rk_status st = rk_orthonormalize(V, d, p, G);
    for (int it = 0; it < iters && st == RK_OK; it++) {
        rk_matmul_sym(C, V, d, p, W);
        st = rk_orthonormalize(W, d, p, G);
        memcpy(V, W, sizeof(double) * (size_t)d * p);
    }
    free(W);
    return st;
}

rk_status rk_pca_rayleigh_ritz(const double *C, const double *V, int d, int p, int r,
                               double *evals, double *R) {
    double *W = malloc(sizeof(double) * ((size_t)d * p + (size_t)p * p + p));
    if (!W) return RK_ERR_OUT_OF_MEMORY;
    double *H = W + (size_t)d * p, *w = H + (size_t)p * p;
    rk_matmul_sym(C, V, d, p, W);
    for (int a = 0; a < p; a++)
        for (int b = 0; b < p; b++) {
            double s = 0;
            for (int i = 0; i < d; i++) s += V[i * p + a] * W[i * p + b];
            H[a * p + b] = s;
        }
    for (int a = 0; a < p; a++) /* symmetrize rounding */
        for (int b = 0; b < a; b++) H[a * p + b] = H[b * p + a] = 0.5 * (H[a * p + b] + H[b * p + a]);
    rk_status st = rk_syevd(H, p, w);
    if (st == RK_OK) {
        for (int j = 0; j < r; j++) {
            int col = p - 1 - j;
            evals[j] = w[col];
            for (int i = 0; i < d; i++) {
                double s = 0;
                for (int a = 0; a < p; a++) s += V[i * p + a] * H[a * p + col];
                R[i * r + j] = s;
            }
        }
        rk_pca_fix_signs(R, d, r);
    }
    free(W);
    return st;
}

rk_status rk_pca_subspace(const double *C, int d, int r, int iters, uint64_t seed, double *evals,
                          double *R) {
    int p = rk_pca_subspace_width(d, r);
    double *V = malloc(sizeof(double) * (size_t)d * p);
    if (!V) return RK_ERR_OUT_OF_MEMORY;
    rk_pca_random_start(seed, d, p, V);
    rk_status st = rk_pca_subspace_iterate(C, d, p, iters, V);
    if (st == RK_OK) st = rk_pca_rayleigh_ritz(C, V, d, p, r, evals, R);
    free(V);
    return st;
}

void rk_pca_think(const double *qms, const double *k2, int d, int r, double *scores, double *R) {
    memset(R, 0, sizeof(double) * (size_t)d * r);
    unsigned char *taken = calloc((size_t)d, 1);
    for (int j = 0; j < r; j++) {
        int best = -1;
        double best_s = 0;
        for (int c = 0; c < d; c++) {
            if (taken && taken[c]) continue;
            double s = (qms ? qms[c] : 1.0) * k2[c];
            if (best < 0 || s > best_s) { best = c; best_s = s; }
        }
        if (taken) taken[best] = 1;
        R[best * r + j] = 1.0;
        if (scores) scores[j] = best_s;
    }
    free(taken);
}

rk_status rk_pca_random_basis(uint64_t seed, int d, int r, double *R) {
    double *A = malloc(sizeof(double) * ((size_t)d * d + d));
    if (!A) return RK_ERR_OUT_OF_MEMORY;
    double *tau = A + (size_t)d * d;
    rk_pca_random_start(seed, d, d, A);
    lapack_int info = LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, d, d, A, d, tau);
    if (info == 0) info = LAPACKE_dorgqr(LAPACK_ROW_MAJOR, d, d, d, A, d, tau);
    if (info == 0) {
        for (int i = 0; i < d; i++)
            for (int j = 0; j < r; j++) R[i * r + j] = A[i * d + j];
        rk_pca_fix_signs(R, d, r);
    }
    free(A);
    return info == 0 ? RK_OK : RK_ERR_NUMERICAL;
}

void rk_pca_mean_correction(const double *mu, const double *R, int d, int r, double *dmu) {
    for (int i = 0; i < d; i++) dmu[i] = mu[i];
    for (int j = 0; j < r; j++) {
        double proj = 0;
        for (int i = 0; i < d; i++) proj += mu[i] * R[i * r + j];
        for (int i = 0; i < d; i++) dmu[i] -= proj * R[i * r + j];
    }
}

double rk_pca_max_angle(const double *A, const double *B, int d, int r) {
    double *M = malloc(sizeof(double) * ((size_t)r * r * 2 + r));
    if (!M) return NAN;
    double *S = M + (size_t)r * r, *w = S + (size_t)r * r;
    for (int a = 0; a < r; a++)
        for (int b = 0; b < r; b++) {
            double s = 0;
            for (int i = 0; i < d; i++) s += A[i * r + a] * B[i * r + b];
            M[a * r + b] = s;
        }
    for (int a = 0; a < r; a++)
        for (int b = 0; b < r; b++) {
            double s = 0;
            for (int k = 0; k < r; k++) s += M[k * r + a] * M[k * r + b];
            S[a * r + b] = s;
        }
    double angle = NAN;
    if (rk_syevd(S, r, w) == RK_OK) {
        double c2 = w[0] < 0 ? 0 : (w[0] > 1 ? 1 : w[0]);
        angle = acos(sqrt(c2));
    }
    free(M);
    return angle;
}

double rk_pca_captured(const double *C, const double *R, int d, int r) {
    double total = 0;
    for (int j = 0; j < r; j++)
        for (int i = 0; i < d; i++) {
            double s = 0;
            for (int k = 0; k < d; k++) s += C[i * d + k] * R[k * r + j];
            total += R[i * r + j] * s;
        }
    return total;
}
