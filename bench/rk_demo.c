/* rk-demo: one VLM-shaped attention layer end to end on every backend present.
 *
 * A synthetic layer (28 query heads, 4 KV heads, head dim 128; 40 prompt tokens, 6,000 image
 * tokens, 40 question tokens, then decoded tokens) whose Keys are built like post-RoPE Keys:
 * a per-head mean with outlier channels, a decaying spectrum of token-dependent directions
 * shared by 64-token image blocks, noise, then RoPE (base 10000, rotate-half). Queries share the
 * Keys' directions. Prefill fits R on the image span (q-weighted PCA over the last 32 queries),
 * prunes the span's Keys to 32 of 128 channels, then each decode step appends a full-width token
 * and compares the sparse decode with the dense one. ThinK at the same r is shown for contrast. */
#include "bench_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { HQ = 28, HKV = 4, D = 128, PROMPT = 40, QUESTION = 40, STEPS = 8, OBS = 32, BLOCK = 64 };

typedef struct layer {
    int n_img, r, T; /* T = all tokens incl. decode steps */
    float *k, *v, *q; /* k, v [HKV][T][D]; q [HQ][T][D] (one query per position) */
} layer;


/* Orthonormal rows U[D][D] by Gram-Schmidt on gaussian rows. */
static void random_basis(uint64_t *s, double *U) {
    for (int i = 0; i < D; i++) {
        double *u = U + i * D;
        for (int c = 0; c < D; c++) u[c] = bu_normal(s);
        for (int pass = 0; pass < 2; pass++)
            for (int j = 0; j < i; j++) {
                double dot = 0;
                for (int c = 0; c < D; c++) dot += u[c] * U[j * D + c];
                for (int c = 0; c < D; c++) u[c] -= dot * U[j * D + c];
            }
        double n = 0;
        for (int c = 0; c < D; c++) n += u[c] * u[c];
        for (int c = 0; c < D; c++) u[c] /= sqrt(n);
    }
}

static void rope(float *x, int pos) {
    for (int i = 0; i < D / 2; i++) {
        double th = pos * pow(10000.0, -2.0 * i / D), c = cos(th), s = sin(th);
        double a = x[i], b = x[i + D / 2];
        x[i] = (float)(a * c - b * s);
        x[i + D / 2] = (float)(a * s + b * c);
    }
}

static void make_layer(layer *L, int n_img, int r) {
    L->n_img = n_img; L->r = r;
    L->T = PROMPT + n_img + QUESTION + STEPS;
    L->k = malloc(sizeof(float) * HKV * L->T * D);
    L->v = malloc(sizeof(float) * HKV * L->T * D);
    L->q = malloc(sizeof(float) * HQ * L->T * D);
    uint64_t s = 2026;
    double *U = malloc(sizeof(double) * D * D), mu[D], z[D], block_z[D];
    for (int g = 0; g < HKV; g++) {
        random_basis(&s, U);
        for (int c = 0; c < D; c++) mu[c] = 0.3 * bu_normal(&s);
        mu[(7 + 13 * g) % D] = 6.0; mu[(70 + 5 * g) % D] = -5.0; /* outlier channels */
        for (int t = 0; t < L->T; t++) {
            int img = t >= PROMPT && t < PROMPT + n_img;
            if (img && (t - PROMPT) % BLOCK == 0)
                for (int j = 0; j < D; j++) block_z[j] = bu_normal(&s);
            float *k = L->k + ((size_t)g * L->T + t) * D;
            for (int j = 0; j < D; j++) {
                double sigma = 2.5 * exp(-j / 6.0);
                z[j] = sigma * (img ? 0.7 * block_z[j] + 0.7 * bu_normal(&s) : bu_normal(&s));
            }
            for (int c = 0; c < D; c++) {
                double x = mu[c] + 0.05 * bu_normal(&s);
                for (int j = 0; j < 24; j++) x += z[j] * U[j * D + c];
                k[c] = (float)x;
            }
            rope(k, t);
            float *v = L->v + ((size_t)g * L->T + t) * D;
            for (int c = 0; c < D; c++) v[c] = (float)bu_normal(&s);
            for (int hq = g * (HQ / HKV); hq < (g + 1) * (HQ / HKV); hq++) {
                float *q = L->q + ((size_t)hq * L->T + t) * D;
                double w[24];
                for (int j = 0; j < 24; j++) w[j] = 0.6 * bu_normal(&s) * exp(-j / 10.0);
                for (int c = 0; c < D; c++) {
                    double x = 0.2 * bu_normal(&s);
                    for (int j = 0; j < 24; j++) x += w[j] * U[j * D + c];
                    q[c] = (float)x;
                }
                rope(q, t);
            }
        }
    }
    free(U);
}

static rk_buffer *upload(rk_context *ctx, const float *x, size_t n, rk_dtype dt) {
    rk_buffer *b = NULL;
    size_t es = rk_dtype_size(dt);
    void *raw = malloc(n * es);
    bu_check(rk_convert_from_f32(dt, raw, x, n), ctx, "convert");
    bu_check(rk_buffer_alloc(ctx, n * es, &b), ctx, "alloc");
    bu_check(rk_buffer_upload(b, 0, raw, n * es), ctx, "upload");
    free(raw);
    return b;
}

/* Gather rows [t0, t0+n) of a [H][T][D] array into a dense [H][n][D] array. */
static float *rows(const float *x, int H, int T, int t0, int n) {
    float *y = malloc(sizeof(float) * (size_t)H * n * D);
    for (int h = 0; h < H; h++) memcpy(y + (size_t)h * n * D, x + ((size_t)h * T + t0) * D, sizeof(float) * n * D);
    return y;
}

typedef struct run_result {
    double prefill_ms, sparse_us, dense_us, err_rotatek, err_think;
} run_result;

static double rel_err(const float *a, const float *b, size_t n) {
    double e = 0, r = 0;
    for (size_t i = 0; i < n; i++) { e += (a[i] - (double)b[i]) * (a[i] - (double)b[i]); r += (double)b[i] * b[i]; }
    return sqrt(e / r);
}

/* Fit + compress for one method; returns prefill seconds. */
static double prefill(rk_context *ctx, const layer *L, rk_method method, rk_dtype dt, rk_rotation **rot_out,
                      rk_buffer **ks_out, rk_tensor *kst) {
    rk_rotation_config cfg;
    rk_rotation_config_init(&cfg);
    cfg.n_seq = 1; cfg.n_kv_heads = HKV; cfg.n_q_heads = HQ; cfg.head_dim = D; cfg.rank = L->r;
    cfg.method = method;
    float *span = rows(L->k, HKV, L->T, PROMPT, L->n_img);
    float *obs = rows(L->q, HQ, L->T, PROMPT + L->n_img + QUESTION - OBS, OBS);
    rk_buffer *sb = upload(ctx, span, (size_t)HKV * L->n_img * D, dt), *ob = upload(ctx, obs, (size_t)HQ * OBS * D, dt);
    double t0 = bu_now();
    rk_rotation *rot = NULL;
    bu_check(rk_rotation_create(ctx, &cfg, &rot), ctx, "rotation");
    for (int c0 = 0; c0 < L->n_img; c0 += 1024) { /* chunked prefill */
        rk_tensor kt;
        rk_tensor_init(&kt, sb, 0, dt, 1, HKV, L->n_img, D, RK_LAYOUT_BHTC);
        kt.offset = (size_t)c0 * D * rk_dtype_size(dt);
        kt.ne[2] = L->n_img - c0 < 1024 ? L->n_img - c0 : 1024;
        bu_check(rk_rotation_accumulate(rot, &kt, NULL), ctx, "accumulate");
    }
    rk_tensor qt;
    rk_tensor_init(&qt, ob, 0, dt, 1, HQ, OBS, D, RK_LAYOUT_BHTC);
    bu_check(rk_rotation_observe(rot, &qt, NULL), ctx, "observe");
    bu_check(rk_rotation_finalize(rot), ctx, "finalize");
    bu_check(rk_buffer_alloc(ctx, (size_t)HKV * L->n_img * L->r * rk_dtype_size(dt), ks_out), ctx, "alloc");
    rk_tensor_init(kst, *ks_out, 0, dt, 1, HKV, L->n_img, L->r, RK_LAYOUT_BHTC);
    rk_tensor kt;
    rk_tensor_init(&kt, sb, 0, dt, 1, HKV, L->n_img, D, RK_LAYOUT_BHTC);
    bu_check(rk_compress(ctx, rot, &kt, kst, 0), ctx, "compress");
    bu_check(rk_context_synchronize(ctx), ctx, "sync");
    double dt_s = bu_now() - t0;
    rk_buffer_free(sb); rk_buffer_free(ob); free(span); free(obs);
    *rot_out = rot;
    return dt_s;
}

static run_result run_backend(const char *backend, const layer *L, rk_dtype dt) {
    run_result res = {0};
    rk_context_options o;
    rk_context_options_init(&o);
    o.check_finite = 0;
    rk_context *ctx = NULL;
    bu_check(rk_context_create(backend, 0, &o, &ctx), NULL, backend);
    int n_full_max = PROMPT + QUESTION + STEPS, T = L->T;
    /* Full-width Keys outside the span (compacted) and all Keys (dense baseline), all Values. */
    float *kfull = malloc(sizeof(float) * HKV * n_full_max * D);
    for (int g = 0; g < HKV; g++)
        for (int t = 0, j = 0; t < T; t++) {
            if (t >= PROMPT && t < PROMPT + L->n_img) continue;
            memcpy(kfull + ((size_t)g * n_full_max + j++) * D, L->k + ((size_t)g * T + t) * D, sizeof(float) * D);
        }
    rk_buffer *kfb = upload(ctx, kfull, (size_t)HKV * n_full_max * D, dt);
    rk_buffer *kab = upload(ctx, L->k, (size_t)HKV * T * D, dt), *vb = upload(ctx, L->v, (size_t)HKV * T * D, dt);
    rk_tensor kft, kat, vt, qt, ot, ot2;
    rk_tensor_init(&kft, kfb, 0, dt, 1, HKV, n_full_max, D, RK_LAYOUT_BHTC);
    rk_tensor_init(&kat, kab, 0, dt, 1, HKV, T, D, RK_LAYOUT_BHTC);
    rk_tensor_init(&vt, vb, 0, dt, 1, HKV, T, D, RK_LAYOUT_BHTC);
    rk_buffer *qb = NULL, *ob = NULL, *ob2 = NULL;
    bu_check(rk_buffer_alloc(ctx, HQ * D * rk_dtype_size(dt), &qb), ctx, "alloc");
    bu_check(rk_buffer_alloc(ctx, HQ * D * rk_dtype_size(dt), &ob), ctx, "alloc");
    bu_check(rk_buffer_alloc(ctx, HQ * D * rk_dtype_size(dt), &ob2), ctx, "alloc");
    rk_tensor_init(&qt, qb, 0, dt, 1, HQ, 1, D, RK_LAYOUT_BHTC);
    rk_tensor_init(&ot, ob, 0, dt, 1, HQ, 1, D, RK_LAYOUT_BHTC);
    rk_tensor_init(&ot2, ob2, 0, dt, 1, HQ, 1, D, RK_LAYOUT_BHTC);

    double err_sum[2] = {0, 0};
    for (int m = 0; m < 2; m++) {
        rk_rotation *rot = NULL;
        rk_buffer *ksb = NULL;
        rk_tensor kst;
        double pf = prefill(ctx, L, m == 0 ? RK_METHOD_PCA_QWEIGHTED : RK_METHOD_THINK, dt, &rot, &ksb, &kst);
        if (m == 0) res.prefill_ms = pf * 1e3;
        double ts[STEPS * 5], td[STEPS * 5];
        int nt = 0;
        for (int s = 0; s < STEPS; s++) {
            int len = PROMPT + L->n_img + QUESTION + s + 1; /* the new token is cached first */
            float q[HQ * D], o1[HQ * D], o2[HQ * D];
            for (int h = 0; h < HQ; h++) memcpy(q + h * D, L->q + ((size_t)h * T + len - 1) * D, sizeof(float) * D);
            uint16_t raw[HQ * D * 2];
            rk_convert_from_f32(dt, raw, q, HQ * D);
            rk_buffer_upload(qb, 0, raw, HQ * D * rk_dtype_size(dt));
            rk_seq_info sp = {len, PROMPT, L->n_img}, de = {len, 0, 0};
            rk_decode_args a;
            rk_decode_args_init(&a);
            a.q = &qt; a.k_full = &kft; a.k_span = &kst; a.v = &vt; a.rot = rot; a.seqs = &sp; a.out = &ot;
            rk_decode_args b = a;
            b.k_full = &kat; b.seqs = &de; b.out = &ot2; b.rot = NULL; b.k_span = NULL;
            for (int rep = 0; rep < 5; rep++) {
                double t0 = bu_now();
                bu_check(rk_decode_sparse(ctx, &a), ctx, "sparse decode");
                bu_check(rk_context_synchronize(ctx), ctx, "sync");
                double t1 = bu_now();
                bu_check(rk_decode_dense(ctx, &b), ctx, "dense decode");
                bu_check(rk_context_synchronize(ctx), ctx, "sync");
                ts[nt] = t1 - t0; td[nt++] = bu_now() - t1;
            }
            rk_buffer_download(ob, 0, raw, HQ * D * rk_dtype_size(dt));
            rk_convert_to_f32(dt, o1, raw, HQ * D);
            rk_buffer_download(ob2, 0, raw, HQ * D * rk_dtype_size(dt));
            rk_convert_to_f32(dt, o2, raw, HQ * D);
            err_sum[m] += rel_err(o1, o2, HQ * D) / STEPS;
        }
        if (m == 0) { res.sparse_us = bu_median(ts, nt) * 1e6; res.dense_us = bu_median(td, nt) * 1e6; }
        rk_buffer_free(ksb);
        rk_rotation_destroy(rot);
    }
    res.err_rotatek = err_sum[0];
    res.err_think = err_sum[1];
    rk_buffer_free(kfb); rk_buffer_free(kab); rk_buffer_free(vb);
    rk_buffer_free(qb); rk_buffer_free(ob); rk_buffer_free(ob2);
    free(kfull);
    rk_context_destroy(ctx);
    return res;
}

int main(int argc, char **argv) {
    int n_img = 6000, r = 32;
    rk_dtype dt = RK_F16;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--image-tokens") && i + 1 < argc) n_img = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--r") && i + 1 < argc) r = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--backend") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) dt = (rk_dtype)bu_parse_dtype(argv[++i]);
        else { fprintf(stderr, "usage: rk-demo [--image-tokens 6000] [--r 32] [--dtype f16] [--backend NAME]\n"); return 2; }
    }
    if ((int)dt < 0 || n_img < 1 || r < 1 || r > D) { fprintf(stderr, "bad arguments\n"); return 2; }
    printf("RotateK %s demo: one VLM layer, %d query / %d KV heads, d %d, %d prompt + %d image + %d question tokens, "
           "%d decode steps, %s\n", rk_version_string(), HQ, HKV, D, PROMPT, n_img, QUESTION, STEPS, rk_dtype_name(dt));
    layer L;
    make_layer(&L, n_img, r);
    double es = (double)rk_dtype_size(dt), tok = PROMPT + n_img + QUESTION;
    double dense_kv = 2 * tok * D * HKV * es;
    double sparse_kv = ((tok - n_img) * D + (double)n_img * r + tok * D) * HKV * es + HKV * (D * r + D) * 4.0;
    printf("KV cache: dense %.2f MB, pruned %.2f MB (image Keys %d -> %d channels): %.1f%% of KV bytes saved, "
           "%.1f%% of Key bytes\n", dense_kv / 1e6, sparse_kv / 1e6, D, r, 100 * (1 - sparse_kv / dense_kv),
           100 * (1 - ((tok - n_img) * D + (double)n_img * r + (D * r + D) * 2.0) / (tok * D)));
    printf("\n%-8s %-34s %12s %12s %12s %10s %14s %14s\n", "backend", "device", "prefill ms", "sparse us",
           "dense us", "ratio", "err RotateK", "err ThinK");
    int ran = 0;
    for (size_t i = 0; i < rk_backend_count(); i++) {
        const char *be = rk_backend_name(i);
        size_t n = 0;
        if (only && strcmp(only, be)) continue;
        if (rk_device_count(be, &n) != RK_OK || n == 0) {
            printf("%-8s %-34s\n", be, "(no device: skipped)");
            continue;
        }
        char dev[256];
        rk_device_name(be, 0, dev, sizeof dev);
        run_result res = run_backend(be, &L, dt);
        printf("%-8s %-34.34s %12.2f %12.1f %12.1f %10.3f %14.4f %14.4f\n", be, dev, res.prefill_ms, res.sparse_us,
               res.dense_us, res.sparse_us / res.dense_us, res.err_rotatek, res.err_think);
        ran++;
    }
    printf("\nerr = mean over decode steps of ||o - o_dense|| / ||o_dense|| (attention output, all heads); "
           "ratio = sparse / dense decode time (byte ratio %.3f)\n", (double)(r + D) / (2.0 * D));
    free(L.k); free(L.v); free(L.q);
    return ran ? 0 : 1;
}
