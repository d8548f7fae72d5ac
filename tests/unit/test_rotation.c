/* The rotation state through the public API on the CPU backend, checked against the core's
 * double-precision reference: chunked moments, the fitted basis, solver agreement, r = d, budgets,
 * the ThinK and random bases, token-major views. */
#include "pca.h"
#include "prng.h"
#include "reference.h"
#include "rk_test.h"
#include "rotatek.h"

#include <stdlib.h>
#include <string.h>

enum { B = 2, HQ = 4, HKV = 2, D = 32, T = 60, W = 8 };

static rk_context *ctx;
static float keys[B * HKV * T * D], queries[B * HQ * W * D];

/* Keys with a dominant low-rank part, a mean and an outlier channel, like post-RoPE Keys. */
static void make_data(void) {
    uint64_t s = 42;
    for (int h = 0; h < B * HKV; h++) {
        double basis[4][D];
        for (int k = 0; k < 4; k++)
            for (int i = 0; i < D; i++) basis[k][i] = rk_normal(&s);
        for (int t = 0; t < T; t++) {
            double coef[4];
            for (int k = 0; k < 4; k++) coef[k] = rk_normal(&s) * (4.0 - k);
            for (int i = 0; i < D; i++) {
                double x = 0.3 * rk_normal(&s) + 0.5 + (i == 5 ? 6.0 : 0.0);
                for (int k = 0; k < 4; k++) x += coef[k] * basis[k][i];
                keys[((size_t)h * T + t) * D + i] = (float)x;
            }
        }
    }
    for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++)
        queries[i] = (float)(rk_normal(&s) * (1.0 + (i % D) / 8.0));
}

static rk_buffer *upload(const float *x, size_t n) {
    rk_buffer *b = NULL;
    if (rk_buffer_alloc(ctx, n * sizeof(float), &b) == RK_OK) rk_buffer_upload(b, 0, x, n * sizeof(float));
    return b;
}

static rk_rotation *fit(rk_method method, rk_solver solver, int rank, int budget, int chunks) {
    rk_rotation_config cfg;
    rk_rotation_config_init(&cfg);
    cfg.n_seq = B; cfg.n_kv_heads = HKV; cfg.n_q_heads = HQ; cfg.head_dim = D; cfg.rank = rank;
    cfg.method = method; cfg.solver = solver; cfg.budget = budget;
    rk_rotation *rot = NULL;
    if (rk_rotation_create(ctx, &cfg, &rot) != RK_OK) return NULL;
    rk_buffer *kb = upload(keys, sizeof keys / sizeof keys[0]);
    rk_buffer *qb = upload(queries, sizeof queries / sizeof queries[0]);
    int per = T / chunks;
    for (int c = 0; c < chunks; c++) {
        rk_tensor kt;
        rk_tensor_init(&kt, kb, 0, RK_F32, B, HKV, T, D, RK_LAYOUT_BHTC);
        kt.offset = (size_t)c * per * D * sizeof(float);
        kt.ne[2] = c == chunks - 1 ? T - c * per : per;
        CHECK(rk_rotation_accumulate(rot, &kt, NULL) == RK_OK, "accumulate chunk %d: %s", c,
              rk_context_last_error(ctx));
    }
    rk_tensor qt;
    rk_tensor_init(&qt, qb, 0, RK_F32, B, HQ, W, D, RK_LAYOUT_BHTC);
    CHECK(rk_rotation_observe(rot, &qt, NULL) == RK_OK, "observe");
    CHECK(rk_rotation_finalize(rot) == RK_OK, "finalize: %s", rk_context_last_error(ctx));
    rk_buffer_free(kb);
    rk_buffer_free(qb);
    return rot;
}

/* Reference weighted covariance of head h (b, g), built from the raw arrays in double. */
static void reference_head(int h, int weighted, double *mean, double *C) {
    double k[T * D], qms[D] = {0};
    for (int i = 0; i < T * D; i++) k[i] = keys[(size_t)h * T * D + i];
    rk_ref_moments(k, T, D, mean, C);
    int b = h / HKV, g = h % HKV, group = HQ / HKV;
    for (int hq = g * group; hq < (g + 1) * group; hq++)
        for (int t = 0; t < W; t++)
            for (int i = 0; i < D; i++) {
                double x = queries[(((size_t)b * HQ + hq) * W + t) * D + i];
                qms[i] += x * x / (W * group);
            }
    rk_pca_weight(C, weighted ? qms : NULL, D, 0.05, 1e-6);
}

static void test_moments_and_exact(void) {
    rk_rotation *rot = fit(RK_METHOD_PCA_QWEIGHTED, RK_SOLVER_EXACT, 8, 0, 3);
    static double mean[B * HKV * D], cov[B * HKV * D * D];
    CHECK(rk_rotation_get_moments(rot, mean, cov) == RK_OK, "moments");
    static float R[B * HKV * D * 8], dmu[B * HKV * D];
    CHECK(rk_rotation_get_basis(rot, R, dmu) == RK_OK, "basis");
    double worst_m = 0, worst_c = 0, worst_R = 0, worst_dmu = 0, worst_orth = 0;
    for (int h = 0; h < B * HKV; h++) {
        double rm[D], rc[D * D], C[D * D], ev[D], Rref[D * 8], dref[D];
        double k[T * D];
        for (int i = 0; i < T * D; i++) k[i] = keys[(size_t)h * T * D + i];
        rk_ref_moments(k, T, D, rm, rc);
        for (int i = 0; i < D; i++) worst_m = fmax(worst_m, fabs(mean[h * D + i] - rm[i]));
        for (int i = 0; i < D * D; i++) worst_c = fmax(worst_c, fabs(cov[(size_t)h * D * D + i] - rc[i]));
        reference_head(h, 1, rm, C);
        rk_pca_exact(C, D, 8, ev, Rref);
        rk_pca_mean_correction(rm, Rref, D, 8, dref);
        for (int i = 0; i < D * 8; i++) worst_R = fmax(worst_R, fabs(R[(size_t)h * D * 8 + i] - Rref[i]));
        for (int i = 0; i < D; i++) worst_dmu = fmax(worst_dmu, fabs(dmu[h * D + i] - dref[i]));
        for (int a = 0; a < 8; a++)
            for (int c = 0; c < 8; c++) {
                double s = 0;
                for (int i = 0; i < D; i++) s += (double)R[h * D * 8 + i * 8 + a] * R[h * D * 8 + i * 8 + c];
                worst_orth = fmax(worst_orth, fabs(s - (a == c)));
            }
    }
    CHECK(worst_m < 1e-9 && worst_c < 1e-8, "chunked moments off: mean %.3g cov %.3g", worst_m, worst_c);
    CHECK(worst_R < 1e-5, "R differs from the reference by %.3g", worst_R);
    CHECK(worst_dmu < 1e-5, "dmu differs from the reference by %.3g", worst_dmu);
    CHECK(worst_orth < 1e-5, "R orthonormal to %.3g", worst_orth);
    rk_rotation_destroy(rot);
}

static void test_fast_solver(void) {
    rk_rotation *ex = fit(RK_METHOD_PCA_QWEIGHTED, RK_SOLVER_EXACT, 8, 0, 1);
    rk_rotation *fs = fit(RK_METHOD_PCA_QWEIGHTED, RK_SOLVER_SUBSPACE, 8, 0, 1);
    static float Re[B * HKV * D * 8], Rf[B * HKV * D * 8];
    rk_rotation_get_basis(ex, Re, NULL);
    rk_rotation_get_basis(fs, Rf, NULL);
    double worst_angle = 0, worst_energy = 1;
    for (int h = 0; h < B * HKV; h++) {
        double A[D * 8], Bm[D * 8], mean[D], C[D * D];
        for (int i = 0; i < D * 8; i++) { A[i] = Re[h * D * 8 + i]; Bm[i] = Rf[h * D * 8 + i]; }
        reference_head(h, 1, mean, C);
        worst_angle = fmax(worst_angle, rk_pca_max_angle(A, Bm, D, 8));
        worst_energy = fmin(worst_energy, rk_pca_captured(C, Bm, D, 8) / rk_pca_captured(C, A, D, 8));
    }
    printf("fast vs exact solver: max angle %.3g rad, min captured-energy ratio %.6f\n", worst_angle,
           worst_energy);
    CHECK(worst_angle < 0.05 && worst_energy > 0.999, "fast solver bound: angle %.3g energy %.6f",
          worst_angle, worst_energy);
    rk_rotation_destroy(ex);
    rk_rotation_destroy(fs);
}

/* With r = d the sparse decode is the dense one: δμ vanishes and K R Rᵀ = K. */
static void test_full_rank_equals_dense(void) {
    rk_rotation *rot = fit(RK_METHOD_PCA_PLAIN, RK_SOLVER_EXACT, D, 0, 2);
    static float dmu[B * HKV * D];
    rk_rotation_get_basis(rot, NULL, dmu);
    double dmax = 0;
    for (int i = 0; i < B * HKV * D; i++) dmax = fmax(dmax, fabs(dmu[i]));
    CHECK(dmax < 1e-4, "dmu at r = d: %.3g", dmax);

    rk_buffer *kb = upload(keys, sizeof keys / sizeof keys[0]), *cb = NULL, *vb, *qb, *ob, *ob2;
    rk_buffer_alloc(ctx, sizeof keys, &cb);
    rk_tensor kt, ct;
    rk_tensor_init(&kt, kb, 0, RK_F32, B, HKV, T, D, RK_LAYOUT_BHTC);
    rk_tensor_init(&ct, cb, 0, RK_F32, B, HKV, T, D, RK_LAYOUT_BHTC);
    CHECK(rk_compress(ctx, rot, &kt, &ct, 0) == RK_OK, "compress");
    static float v[B * HKV * T * 16], q[B * HQ * D], o1[B * HQ * 16], o2[B * HQ * 16];
    uint64_t s = 9;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) v[i] = (float)rk_normal(&s);
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) q[i] = (float)rk_normal(&s) * 0.3f;
    vb = upload(v, sizeof v / sizeof v[0]);
    qb = upload(q, sizeof q / sizeof q[0]);
    rk_buffer_alloc(ctx, sizeof o1, &ob);
    rk_buffer_alloc(ctx, sizeof o1, &ob2);
    rk_tensor vt, qt, ot, ot2;
    rk_tensor_init(&vt, vb, 0, RK_F32, B, HKV, T, 16, RK_LAYOUT_BHTC);
    rk_tensor_init(&qt, qb, 0, RK_F32, B, HQ, 1, D, RK_LAYOUT_BHTC);
    rk_tensor_init(&ot, ob, 0, RK_F32, B, HQ, 1, 16, RK_LAYOUT_BHTC);
    rk_tensor_init(&ot2, ob2, 0, RK_F32, B, HQ, 1, 16, RK_LAYOUT_BHTC);
    /* The whole sequence is the span for the sparse decode; k_full (unused rows) is the keys. */
    rk_seq_info seqs[B] = {{T, 0, T}, {T, 0, T}};
    rk_decode_args a;
    rk_decode_args_init(&a);
    a.q = &qt; a.k_full = &kt; a.k_span = &ct; a.v = &vt; a.rot = rot; a.seqs = seqs; a.out = &ot;
    CHECK(rk_decode_sparse(ctx, &a) == RK_OK, "sparse: %s", rk_context_last_error(ctx));
    a.out = &ot2;
    CHECK(rk_decode_dense(ctx, &a) == RK_OK, "dense: %s", rk_context_last_error(ctx));
    rk_buffer_download(ob, 0, o1, sizeof o1);
    rk_buffer_download(ob2, 0, o2, sizeof o2);
    double err = 0, ref = 0;
    for (size_t i = 0; i < sizeof o1 / sizeof o1[0]; i++) {
        err += (o1[i] - o2[i]) * (double)(o1[i] - o2[i]);
        ref += (double)o2[i] * o2[i];
    }
    CHECK(err / ref < 1e-10, "sparse at r = d vs dense: nmse %.3g", err / ref);
    rk_buffer_free(kb); rk_buffer_free(cb); rk_buffer_free(vb); rk_buffer_free(qb);
    rk_buffer_free(ob); rk_buffer_free(ob2);
    rk_rotation_destroy(rot);
}

static void test_budget_and_baselines(void) {
    rk_rotation *rot = fit(RK_METHOD_PCA_QWEIGHTED, RK_SOLVER_EXACT, 16, 24, 1);
    int32_t ranks[B * HKV];
    static float R[B * HKV * D * 16];
    CHECK(rk_rotation_get_ranks(rot, ranks) == RK_OK, "ranks");
    rk_rotation_get_basis(rot, R, NULL);
    for (int b = 0; b < B; b++) {
        int total = 0;
        for (int g = 0; g < HKV; g++) {
            int h = b * HKV + g;
            total += ranks[h];
            CHECK(ranks[h] % 8 == 0 && ranks[h] >= 8 && ranks[h] <= 16, "rank %d", ranks[h]);
            double zero = 0;
            for (int i = 0; i < D; i++)
                for (int j = ranks[h]; j < 16; j++) zero = fmax(zero, fabs(R[(size_t)h * D * 16 + i * 16 + j]));
            CHECK(zero == 0, "columns past the rank are zero");
        }
        CHECK(total == 24, "sequence %d uses %d of the 24-channel budget", b, total);
    }
    rk_rotation_destroy(rot);

    rot = fit(RK_METHOD_THINK, RK_SOLVER_EXACT, 8, 0, 1);
    static float Rt[B * HKV * D * 8], dmu[B * HKV * D];
    rk_rotation_get_basis(rot, Rt, dmu);
    int unit_cols = 1;
    for (int h = 0; h < B * HKV; h++)
        for (int j = 0; j < 8; j++) {
            int ones = 0, others = 0;
            for (int i = 0; i < D; i++) {
                float x = Rt[(size_t)h * D * 8 + i * 8 + j];
                ones += x == 1.0f;
                others += x != 0.0f && x != 1.0f;
            }
            unit_cols &= ones == 1 && others == 0;
        }
    CHECK(unit_cols, "ThinK basis is unit columns");
    /* The kept channels are the top 8 of mean(Q²)·mean(K²), recomputed here from the raw data. */
    int same = 1;
    for (int h = 0; h < B * HKV; h++) {
        double score[D], mean[D], C[D * D];
        reference_head(h, 0, mean, C); /* unweighted: C is the covariance (+ ridge) */
        int b = h / HKV, g = h % HKV, group = HQ / HKV;
        for (int i = 0; i < D; i++) {
            double qms = 0, k2 = 0;
            for (int hq = g * group; hq < (g + 1) * group; hq++)
                for (int t = 0; t < W; t++) {
                    double x = queries[(((size_t)b * HQ + hq) * W + t) * D + i];
                    qms += x * x / (W * group);
                }
            for (int t = 0; t < T; t++) {
                double x = keys[((size_t)h * T + t) * D + i];
                k2 += x * x / T;
            }
            score[i] = qms * k2;
        }
        for (int j = 0; j < 8; j++) {
            int best = 0;
            for (int i = 1; i < D; i++)
                if (score[i] > score[best]) best = i;
            same &= Rt[(size_t)h * D * 8 + best * 8 + j] == 1.0f;
            score[best] = -1;
        }
    }
    CHECK(same, "ThinK keeps the top mean(Q²)·mean(K²) channels in score order");
    double dz = 0;
    for (int i = 0; i < B * HKV * D; i++) dz = fmax(dz, fabs(dmu[i]));
    CHECK(dz == 0, "ThinK has no mean correction");
    rk_rotation_destroy(rot);

    rot = fit(RK_METHOD_RANDOM, RK_SOLVER_EXACT, 8, 0, 1);
    rk_rotation_get_basis(rot, Rt, NULL);
    double orth = 0;
    for (int a = 0; a < 8; a++)
        for (int c = 0; c < 8; c++) {
            double s = 0;
            for (int i = 0; i < D; i++) s += (double)Rt[i * 8 + a] * Rt[i * 8 + c];
            orth = fmax(orth, fabs(s - (a == c)));
        }
    CHECK(orth < 1e-5, "random basis orthonormal: %.3g", orth);
    rk_rotation_destroy(rot);
}

/* The same keys as a token-major [b][t][h][c] view give the same moments. */
static void test_token_major(void) {
    static float tm[B * T * HKV * D];
    for (int b = 0; b < B; b++)
        for (int g = 0; g < HKV; g++)
            for (int t = 0; t < T; t++)
                memcpy(&tm[(((size_t)b * T + t) * HKV + g) * D], &keys[(((size_t)b * HKV + g) * T + t) * D],
                       D * sizeof(float));
    rk_rotation_config cfg;
    rk_rotation_config_init(&cfg);
    cfg.n_seq = B; cfg.n_kv_heads = HKV; cfg.n_q_heads = HQ; cfg.head_dim = D; cfg.rank = 8;
    rk_rotation *rot = NULL;
    rk_rotation_create(ctx, &cfg, &rot);
    rk_buffer *kb = upload(tm, sizeof tm / sizeof tm[0]);
    rk_tensor kt;
    rk_tensor_init(&kt, kb, 0, RK_F32, B, HKV, T, D, RK_LAYOUT_BTHC);
    CHECK(rk_rotation_accumulate(rot, &kt, NULL) == RK_OK, "token-major accumulate");
    static double mean[B * HKV * D];
    rk_rotation_get_moments(rot, mean, NULL);
    double worst = 0;
    for (int h = 0; h < B * HKV; h++) {
        double k[T * D], rm[D], rc[D * D];
        for (int i = 0; i < T * D; i++) k[i] = keys[(size_t)h * T * D + i];
        rk_ref_moments(k, T, D, rm, rc);
        for (int i = 0; i < D; i++) worst = fmax(worst, fabs(mean[h * D + i] - rm[i]));
    }
    CHECK(worst < 1e-9, "token-major mean off by %.3g", worst);
    rk_buffer_free(kb);
    rk_rotation_destroy(rot);
}

int main(void) {
    make_data();
    if (rk_context_create("cpu", 0, NULL, &ctx) != RK_OK) {
        CHECK(0, "cpu context");
        return rk_test_done("test_rotation");
    }
    test_moments_and_exact();
    test_fast_solver();
    test_full_rank_equals_dense();
    test_budget_and_baselines();
    test_token_major();
    rk_context_destroy(ctx);
    return rk_test_done("test_rotation");
}
