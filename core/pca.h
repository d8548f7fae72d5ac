/* Per-head basis fitting: the weighted covariance, the two eigen-solvers with one contract,
 * and the baseline bases (ThinK selection, random orthogonal). Host, double precision. All
 * matrices row-major; R is [d][r] with orthonormal columns. */
#ifndef RK_CORE_PCA_H
#define RK_CORE_PCA_H
#include "rotatek.h"

/* w_c = sqrt(qms_c) floored at floor_frac * median(w); Cw = diag(w) C diag(w), in place.
 * qms NULL leaves C unweighted. Then adds ridge * trace(Cw) / d to the diagonal. */
void rk_pca_weight(double *C, const double *qms, int d, double floor_frac, double ridge);
/* Its two parts, for fits that weight elsewhere (a backend's rotation_fit): the weights w [d]
 * (scratch [d]), and the ridge added to the diagonal given trace(Cw). */
void rk_pca_weights(const double *qms, int d, double floor_frac, double *w, double *scratch);
double rk_pca_ridge(double trace, int d, double ridge);

/* Exact: all eigenpairs via LAPACKE_dsyevd; evals [d] descending, R [d][r] the top r columns
 * with the sign convention applied. C is not modified. */
rk_status rk_pca_exact(const double *C, int d, int r, double *evals, double *R);

/* Top-r subspace iteration (oversampled by up to 8 columns), CholeskyQR2 orthonormalisation,
 * then Rayleigh-Ritz so columns are eigenvector estimates sorted descending with the sign
 * convention. V0 is the start [d][r+p] (NULL: seeded gaussian). evals [r] Ritz values. */
rk_status rk_pca_subspace(const double *C, int d, int r, int iters, uint64_t seed, double *evals,
                          double *R);
/* Columns the subspace solver iterates on: r plus oversampling, at most d. */
int rk_pca_subspace_width(int d, int r);
/* The iteration alone, starting from V [d][p] (in/out); used by the core default and by tests
 * to check a device backend's `subspace` op. */
rk_status rk_pca_subspace_iterate(const double *C, int d, int p, int iters, double *V);
/* Rayleigh-Ritz on an orthonormal V [d][p]: writes the top r Ritz vectors to R and values. */
rk_status rk_pca_rayleigh_ritz(const double *C, const double *V, int d, int p, int r,
                               double *evals, double *R);
/* Seeded gaussian start [d][p] (SplitMix64 + Box-Muller). */
void rk_pca_random_start(uint64_t seed, int d, int p, double *V);

/* Sign convention: each column's entry of largest magnitude (first one on ties) is positive. */
void rk_pca_fix_signs(double *R, int d, int r);

/* ThinK: the r channels with the largest qms_c * k2_c (ties: lower channel first), as unit
 * columns of R in descending score order; scores [r] out. */
void rk_pca_think(const double *qms, const double *k2, int d, int r, double *scores, double *R);

/* Random orthogonal basis (seeded gaussian + QR), first r columns, sign convention applied. */
rk_status rk_pca_random_basis(uint64_t seed, int d, int r, double *R);

/* δμ = μ - (μ R) Rᵀ. */
void rk_pca_mean_correction(const double *mu, const double *R, int d, int r, double *dmu);

/* Diagnostics for tests: largest principal angle (radians) between span(A) and span(B), both
 * [d][r] orthonormal; energy captured trace(RᵀCR). */
double rk_pca_max_angle(const double *A, const double *B, int d, int r);
double rk_pca_captured(const double *C, const double *R, int d, int r);

/* Global budget: spread `budget` channels over n heads by their spectra (evals [n][stride],
 * descending), each head between `multiple` and `cap` in steps of `multiple`, greedily by the
 * energy of the next step. ranks [n] out. */
rk_status rk_budget_allocate(const double *evals, int n, int stride, int budget, int multiple,
                             int cap, int32_t *ranks);

#endif
