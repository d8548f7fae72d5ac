/* Core basis fitting on matrices with known eigen-structure: exact solver, subspace solver and
 * the bound between them, weighting, sign convention, ThinK, random bases, budgets. */
#include "pca.h"
#include "prng.h"
#include "rk_test.h"

#include <stdlib.h>
#include <string.h>

enum { D = 64 };

/* C = Q diag(lambda) Qᵀ with a seeded random orthogonal Q [D][D]. */
static void make_cov(uint64_t seed, const double *lambda, double *Q, double *C) {
    rk_pca_random_basis(seed, D, D, Q);
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            double s = 0;
            for (int k = 0; k < D; k++) s += Q[i * D + k] * lambda[k] * Q[j * D + k];
            C[i * D + j] = s;
        }
}

static double ortho_error(const double *R, int d, int r) {
    double worst = 0;
    for (int a = 0; a < r; a++)
        for (int b = 0; b < r; b++) {
            double s = 0;
            for (int i = 0; i < d; i++) s += R[i * r + a] * R[i * r + b];
            double e = fabs(s - (a == b));
            worst = e > worst ? e : worst;
        }
    return worst;
}

static void test_exact(void) {
    double lambda[D], Q[D * D], C[D * D], evals[D], R[D * 16];
    for (int k = 0; k < D; k++) lambda[k] = 100.0 / (1 + k); /* distinct, descending */
    make_cov(11, lambda, Q, C);
    CHECK(rk_pca_exact(C, D, 16, evals, R) == RK_OK, "exact solver");
    double worst = 0;
    for (int k = 0; k < D; k++) worst = fmax(worst, fabs(evals[k] - lambda[k]) / lambda[k]);
    CHECK(worst < 1e-10, "eigenvalues off by %.3g", worst);
    CHECK(ortho_error(R, D, 16) < 1e-12, "orthonormality %.3g", ortho_error(R, D, 16));
    /* each column equals ±Q's column; the sign convention makes the largest entry positive */
    for (int j = 0; j < 16; j++) {
        double dot = 0, maxabs = 0, at_max = 0;
        for (int i = 0; i < D; i++) {
            dot += R[i * 16 + j] * Q[i * D + j];
            if (fabs(R[i * 16 + j]) > maxabs) { maxabs = fabs(R[i * 16 + j]); at_max = R[i * 16 + j]; }
        }
        CHECK(fabs(fabs(dot) - 1) < 1e-10, "column %d |dot| = %.12f", j, fabs(dot));
        CHECK(at_max > 0, "column %d sign convention", j);
    }
}

static void test_subspace(void) {
    /* Power-law spectrum k^-1.5 (like real Key covariances) at d 64, r 16. */
    double lambda[D], Q[D * D], C[D * D], ev_exact[D], ev_fast[16], Re[D * 16], Rf[D * 16];
    for (int k = 0; k < D; k++) lambda[k] = pow(1.0 + k, -1.5);
    make_cov(7, lambda, Q, C);
    rk_pca_exact(C, D, 16, ev_exact, Re);
    CHECK(rk_pca_subspace(C, D, 16, 6, 1, ev_fast, Rf) == RK_OK, "subspace solver");
    CHECK(ortho_error(Rf, D, 16) < 1e-12, "subspace orthonormality %.3g", ortho_error(Rf, D, 16));
    double angle = rk_pca_max_angle(Re, Rf, D, 16);
    double energy = rk_pca_captured(C, Rf, D, 16) / rk_pca_captured(C, Re, D, 16);
    printf("subspace (6 iterations, k^-1.5 spectrum): max angle %.4f rad, energy ratio %.6f\n",
           angle, energy);
    /* The stated contract of the fast solver at its default 6 iterations. */
    CHECK(energy > 0.999, "captured energy ratio %.6f", energy);
    CHECK(angle < 0.05, "max principal angle %.4f", angle);
    /* More iterations converge to the exact subspace, so the bound is not a tolerance of a bug. */
    CHECK(rk_pca_subspace(C, D, 16, 200, 1, ev_fast, Rf) == RK_OK, "long subspace run");
    angle = rk_pca_max_angle(Re, Rf, D, 16);
    CHECK(angle < 1e-6, "converged angle %.3g", angle);
    double worst = 0;
    for (int k = 0; k < 16; k++) worst = fmax(worst, fabs(ev_fast[k] - ev_exact[k]) / ev_exact[k]);
    CHECK(worst < 1e-9, "Ritz values off by %.3g", worst);
    /* A clear gap (like an outlier-dominated head) converges within the default iterations. */
    for (int k = 0; k < D; k++) lambda[k] = k < 16 ? 10.0 / (1 + k) : 0.01 / (1 + k);
    make_cov(5, lambda, Q, C);
    rk_pca_exact(C, D, 16, ev_exact, Re);
    rk_pca_subspace(C, D, 16, 6, 1, ev_fast, Rf);
    angle = rk_pca_max_angle(Re, Rf, D, 16);
    CHECK(angle < 1e-6, "gapped spectrum angle %.3g", angle);
}

static void test_weight_and_mean(void) {
    double C[9] = {4, 1, 0, 1, 9, 2, 0, 2, 16}, qms[3] = {1, 4, 0}, W[9];
    memcpy(W, C, sizeof C);
    rk_pca_weight(W, qms, 3, 0.25, 0.0);
    /* w = sqrt(qms) = (1, 2, 0); median 1, floor 0.25 -> w3 = 0.25 */
    double w[3] = {1, 2, 0.25};
    double worst = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) worst = fmax(worst, fabs(W[i * 3 + j] - w[i] * w[j] * C[i * 3 + j]));
    CHECK(worst < 1e-15, "weighted covariance off by %.3g", worst);
    memcpy(W, C, sizeof C);
    rk_pca_weight(W, NULL, 3, 0.25, 0.1);
    CHECK(fabs(W[0] - (4 + 0.1 * 29.0 / 3)) < 1e-12 && W[1] == 1, "ridge = 0.1 * trace / d");

    double R[D * 8], mu[D], dmu[D];
    uint64_t s = 3;
    rk_pca_random_basis(2, D, 8, R);
    for (int i = 0; i < D; i++) mu[i] = rk_normal(&s);
    rk_pca_mean_correction(mu, R, D, 8, dmu);
    double along = 0;
    for (int j = 0; j < 8; j++) {
        double p = 0;
        for (int i = 0; i < D; i++) p += dmu[i] * R[i * 8 + j];
        along = fmax(along, fabs(p));
    }
    CHECK(along < 1e-12, "dmu must be orthogonal to span(R): %.3g", along);
    double Rfull[D * D];
    rk_pca_random_basis(2, D, D, Rfull);
    rk_pca_mean_correction(mu, Rfull, D, D, dmu);
    double norm = 0;
    for (int i = 0; i < D; i++) norm = fmax(norm, fabs(dmu[i]));
    CHECK(norm < 1e-12, "dmu vanishes at r = d: %.3g", norm);
    CHECK(ortho_error(Rfull, D, D) < 1e-12, "random basis orthonormal");
}

static void test_think_and_budget(void) {
    double qms[6] = {1, 1, 4, 1, 0.1, 1}, k2[6] = {1, 5, 1, 3, 100, 2}, R[6 * 3], sc[3];
    rk_pca_think(qms, k2, 6, 3, sc, R);
    /* scores 1, 5, 4, 3, 10, 2 -> channels 4, 1, 2 */
    CHECK(R[4 * 3 + 0] == 1 && R[1 * 3 + 1] == 1 && R[2 * 3 + 2] == 1, "ThinK picks 4, 1, 2");
    CHECK(sc[0] == 10 && sc[1] == 5 && sc[2] == 4, "ThinK scores");

    enum { H = 3, S = 32 };
    double ev[H * S];
    for (int k = 0; k < S; k++) {
        ev[0 * S + k] = 100.0 / (1 + k);      /* broad spectrum: wants channels */
        ev[1 * S + k] = k < 8 ? 50.0 : 1e-6;  /* rank 8 */
        ev[2 * S + k] = 10.0 / (1 + k * k);
    }
    int32_t ranks[H];
    CHECK(rk_budget_allocate(ev, H, S, 48, 8, 32, ranks) == RK_OK, "budget");
    CHECK(ranks[0] + ranks[1] + ranks[2] == 48, "budget total %d", ranks[0] + ranks[1] + ranks[2]);
    CHECK(ranks[0] % 8 == 0 && ranks[1] % 8 == 0 && ranks[2] % 8 == 0, "multiples of 8");
    CHECK(ranks[1] == 8 && ranks[0] > ranks[2], "ranks %d %d %d", ranks[0], ranks[1], ranks[2]);
    CHECK(rk_budget_allocate(ev, H, S, 16, 8, 32, ranks) == RK_ERR_INVALID_ARG, "budget below heads×8");
    CHECK(rk_budget_allocate(ev, H, S, 200, 8, 32, ranks) == RK_ERR_INVALID_ARG, "budget above cap");
}

int main(void) {
    test_exact();
    test_subspace();
    test_weight_and_mean();
    test_think_and_budget();
    return rk_test_done("test_pca");
}
