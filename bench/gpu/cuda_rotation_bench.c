/* cuda_rotation_bench: the rotation step of one layer through the public API -- span-key
 * covariance (rk_rotation_accumulate), observation window (rk_rotation_observe), top-r basis
 * (rk_rotation_finalize with RK_SOLVER_SUBSPACE: fitted on the device when the backend has a
 * rotation_fit), compression of the span (rk_compress) -- timed end to end, and its basis checked
 * against the LAPACKE reference (RK_SOLVER_EXACT) and against the host subspace solver (same
 * start, same iterations) on the cpu backend. Exit 1 when the device basis is farther from the
 * exact one than the host subspace solver's (by more than 1e-3 rad).
 *
 *   cuda_rotation_bench [--backend cuda] [--tokens 8192] [--hkv 4] [--hq 28] [--d 128] [--r 32]
 *                       [--reps 20] [--dtype f16]
 * Prints a summary and one JSON line. */
#include "pca.h"
#include "bench_util.h"
#include "rotatek.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>




#define CK(expr) bu_check((expr), ctx, #expr)

/* ‖A Aᵀ − B Bᵀ‖_F / √2 for orthonormal A, B [d][r]: the norm of the sines of the principal
 * angles, without the acos that floors rk_pca_max_angle near sqrt(float eps) for f32 bases. */
static double subspace_distance(const double *A, const double *B, int d, int r) {
    double s = 0;
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double x = 0;
            for (int k = 0; k < r; k++) x += A[i * r + k] * A[j * r + k] - B[i * r + k] * B[j * r + k];
            s += x * x;
        }
    return sqrt(s / 2);
}

typedef struct cfg_t {
    const char *backend;
    int tokens, hkv, hq, d, r, reps;
    rk_dtype dt;
} cfg_t;

/* Keys with a decaying spectrum in a random basis, per head: k = μ + Σ_c σ_c z_c q_c. */
static void make_keys(const cfg_t *c, float *keys, float *queries) {
    uint64_t s = 0xfeedull;
    int d = c->d;
    double *Q = malloc(sizeof(double) * d * d);
    for (int h = 0; h < c->hkv; h++) {
        for (int i = 0; i < d * d; i++) Q[i] = bu_normal(&s) / sqrt((double)d);
        double mu[1024];
        for (int i = 0; i < d; i++) mu[i] = 0.5 * bu_normal(&s);
        for (int t = 0; t < c->tokens; t++) {
            float *k = keys + ((size_t)h * c->tokens + t) * d;
            for (int i = 0; i < d; i++) k[i] = (float)mu[i];
            for (int comp = 0; comp < d; comp++) {
                double a = bu_normal(&s) * 3.0 * pow(0.93, comp);
                for (int i = 0; i < d; i++) k[i] += (float)(a * Q[comp * d + i]);
            }
        }
    }
    for (size_t i = 0; i < (size_t)c->hq * 32 * d; i++) queries[i] = (float)(bu_normal(&s) * (1.0 + (i % d) / 64.0));
    free(Q);
}

typedef struct fit_out {
    float *R;
    double times[5]; /* accumulate, observe, finalize, compress, total (median, us) */
} fit_out;

static void run(rk_context *ctx, const cfg_t *c, rk_solver solver, const float *keys_f,
                const float *q_f, int reps, fit_out *out) {
    size_t es = rk_dtype_size(c->dt);
    size_t nk = (size_t)c->hkv * c->tokens * c->d, nq = (size_t)c->hq * 32 * c->d;
    void *raw = malloc(nk * es > nq * es ? nk * es : nq * es);
    rk_buffer *kb, *qb, *cb;
    CK(rk_buffer_alloc(ctx, nk * es, &kb));
    CK(rk_buffer_alloc(ctx, nq * es, &qb));
    CK(rk_buffer_alloc(ctx, (size_t)c->hkv * c->tokens * c->r * es, &cb));
    CK(rk_convert_from_f32(c->dt, raw, keys_f, nk));
    CK(rk_buffer_upload(kb, 0, raw, nk * es));
    CK(rk_convert_from_f32(c->dt, raw, q_f, nq));
    CK(rk_buffer_upload(qb, 0, raw, nq * es));
    free(raw);
    rk_tensor kt, qt, ct;
    CK(rk_tensor_init(&kt, kb, 0, c->dt, 1, c->hkv, c->tokens, c->d, RK_LAYOUT_BHTC));
    CK(rk_tensor_init(&qt, qb, 0, c->dt, 1, c->hq, 32, c->d, RK_LAYOUT_BHTC));
    CK(rk_tensor_init(&ct, cb, 0, c->dt, 1, c->hkv, c->tokens, c->r, RK_LAYOUT_BHTC));
    rk_rotation_config cfg;
    rk_rotation_config_init(&cfg);
    cfg.n_seq = 1; cfg.n_kv_heads = c->hkv; cfg.n_q_heads = c->hq; cfg.head_dim = c->d;
    cfg.rank = c->r; cfg.solver = solver; cfg.method = RK_METHOD_PCA_QWEIGHTED;
    double *t = malloc(sizeof(double) * 5 * (size_t)reps);
    out->R = malloc(sizeof(float) * c->hkv * c->d * c->r);
    for (int it = -2; it < reps; it++) { /* two warm-ups */
        rk_rotation *rot = NULL;
        CK(rk_rotation_create(ctx, &cfg, &rot));
        CK(rk_context_synchronize(ctx));
        double t0 = bu_now();
        CK(rk_rotation_accumulate(rot, &kt, NULL));
        double t1 = bu_now();
        CK(rk_rotation_observe(rot, &qt, NULL));
        double t2 = bu_now();
        CK(rk_rotation_finalize(rot));
        double t3 = bu_now();
        CK(rk_compress(ctx, rot, &kt, &ct, 0));
        CK(rk_context_synchronize(ctx));
        double t4 = bu_now();
        if (it >= 0) {
            double ph[5] = {t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0};
            for (int k = 0; k < 5; k++) t[k * reps + it] = ph[k] * 1e6;
        }
        if (it == reps - 1) CK(rk_rotation_get_basis(rot, out->R, NULL));
        rk_rotation_destroy(rot);
    }
    for (int k = 0; k < 5; k++) {
        out->times[k] = bu_median(t + k * reps, reps);
    }
    free(t);
    rk_buffer_free(kb); rk_buffer_free(qb); rk_buffer_free(cb);
}

int main(int argc, char **argv) {
    cfg_t c = {"cuda", 8192, 4, 28, 128, 32, 20, RK_F16};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--backend")) c.backend = argv[i + 1];
        else if (!strcmp(argv[i], "--tokens")) c.tokens = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--hkv")) c.hkv = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--hq")) c.hq = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--d")) c.d = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--r")) c.r = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) c.reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dtype")) c.dt = !strcmp(argv[i + 1], "bf16") ? RK_BF16 : !strcmp(argv[i + 1], "f32") ? RK_F32 : RK_F16;
        else { fprintf(stderr, "unknown flag %s\n", argv[i]); return 2; }
    }
    rk_context *ctx = NULL;
    rk_context_options o;
    rk_context_options_init(&o);
    o.check_finite = 0;
    rk_status st = rk_context_create(c.backend, 0, &o, &ctx);
    if (st != RK_OK) {
        printf("SKIP: backend %s: %s\n", c.backend, rk_status_name(st));
        return 77;
    }
    float *keys = malloc(sizeof(float) * c.hkv * c.tokens * c.d);
    float *queries = malloc(sizeof(float) * c.hq * 32 * c.d);
    make_keys(&c, keys, queries);

    fit_out dev, exact, host;
    run(ctx, &c, RK_SOLVER_SUBSPACE, keys, queries, c.reps, &dev);
    run(ctx, &c, RK_SOLVER_EXACT, keys, queries, c.reps / 4 > 2 ? c.reps / 4 : 2, &exact);
    rk_context *cpu = NULL;
    {
        rk_context *saved = ctx;
        ctx = NULL;
        CK(rk_context_create("cpu", 0, &o, &cpu));
        ctx = cpu;
        run(cpu, &c, RK_SOLVER_SUBSPACE, keys, queries, 2, &host);
        ctx = saved;
    }
    /* compare bases per head: principal angles, and energy captured of the weighted covariance
     * is implied by the angle to the exact basis */
    double max_dev_host = 0, max_dev_exact = 0, max_host_exact = 0;
    size_t dr = (size_t)c.d * c.r;
    double *A = malloc(sizeof(double) * dr), *B = malloc(sizeof(double) * dr), *E = malloc(sizeof(double) * dr);
    for (int h = 0; h < c.hkv; h++) {
        for (size_t i = 0; i < dr; i++) {
            A[i] = dev.R[h * dr + i];
            B[i] = host.R[h * dr + i];
            E[i] = exact.R[h * dr + i];
        }
        double a1 = subspace_distance(A, B, c.d, c.r), a2 = rk_pca_max_angle(A, E, c.d, c.r);
        double a3 = rk_pca_max_angle(B, E, c.d, c.r);
        if (!(a1 <= max_dev_host)) max_dev_host = a1;
        if (!(a2 <= max_dev_exact)) max_dev_exact = a2;
        if (!(a3 <= max_host_exact)) max_host_exact = a3;
    }
    char name[256];
    rk_context_device_description(ctx, name, sizeof name);
    printf("rotation step, %s: 1 sequence, %d KV / %d query heads, %d span tokens, d %d, r %d, %s\n",
           name, c.hkv, c.hq, c.tokens, c.d, c.r, rk_dtype_name(c.dt));
    printf("%-28s %10s %10s %10s %10s %10s\n", "median us", "accumulate", "observe", "finalize",
           "compress", "total");
    printf("%-28s %10.1f %10.1f %10.1f %10.1f %10.1f\n", "device subspace fit", dev.times[0],
           dev.times[1], dev.times[2], dev.times[3], dev.times[4]);
    printf("%-28s %10.1f %10.1f %10.1f %10.1f %10.1f\n", "host LAPACKE dsyevd fit", exact.times[0],
           exact.times[1], exact.times[2], exact.times[3], exact.times[4]);
    printf("subspace distance device vs host subspace solver %.2e; largest principal angle (rad) "
           "device vs exact %.2e, host subspace vs exact %.2e\n", max_dev_host, max_dev_exact, max_host_exact);
    /* the device solver must be as good as the host one (rounding differs: f32 products, two
     * products per orthonormalization), not bitwise equal to it */
    int ok = max_dev_exact <= max_host_exact + 1e-3;
    printf("{\"bench\":\"rotation\",\"device\":\"%s\",\"tokens\":%d,\"hkv\":%d,\"hq\":%d,\"d\":%d,\"r\":%d,"
           "\"dtype\":\"%s\",\"device_fit_us\":{\"accumulate\":%.1f,\"observe\":%.1f,\"finalize\":%.1f,"
           "\"compress\":%.1f,\"total\":%.1f},\"exact_fit_total_us\":%.1f,\"distance_device_host\":%.3e,"
           "\"angle_device_exact\":%.3e,\"angle_host_exact\":%.3e,\"ok\":%s}\n",
           name, c.tokens, c.hkv, c.hq, c.d, c.r, rk_dtype_name(c.dt), dev.times[0], dev.times[1],
           dev.times[2], dev.times[3], dev.times[4], exact.times[4], max_dev_host, max_dev_exact,
           max_host_exact, ok ? "true" : "false");
    free(A); free(B); free(E); free(dev.R); free(exact.R); free(host.R); free(keys); free(queries);
    rk_context_destroy(cpu);
    rk_context_destroy(ctx);
    return ok ? 0 : 1;
}
