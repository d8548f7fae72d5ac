/* cuda_latency: where a small decode's time goes. For one shape, sparse and dense:
 *   enqueue  host time per rk_decode_* call with no synchronization (the API's host overhead),
 *   stream   time per call of 200 back-to-back calls plus one synchronization (what rk-bench sees),
 *   single   one call plus synchronization, median of 50 (latency of an isolated decode).
 *
 *   cuda_latency [--backend cuda] [--hq 28] [--hkv 4] [--batch 1] [--tokens 4096] [--r 32]
 *                [--random 1]   (rk-bench's data: uniform in [-1, 1) and a random δμ)
 */
#include "bench_util.h"
#include "rotatek.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define CK(expr) bu_check((expr), ctx, #expr)

static int random_fill; /* --random: rk-bench's values instead of small positive ones */

static rk_buffer *filled(rk_context *ctx, size_t elems, uint64_t seed) {
    if (random_fill) {
        rk_buffer *b = NULL;
        CK(rk_buffer_alloc(ctx, elems * 2, &b));
        CK(bu_fill_buffer(b, 0, elems * 2, RK_F16, seed));
        return b;
    }
    uint16_t *h = malloc(elems * 2);
    for (size_t i = 0; i < elems; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        h[i] = (uint16_t)(0x3000u + ((seed >> 33) & 0x7ffu)); /* f16 in [0.125, 0.25) */
    }
    rk_buffer *b = NULL;
    CK(rk_buffer_alloc(ctx, elems * 2, &b));
    CK(rk_buffer_upload(b, 0, h, elems * 2));
    free(h);
    return b;
}

int main(int argc, char **argv) {
    const char *backend = "cuda";
    int hq = 28, hkv = 4, B = 1, T = 4096, r = 32, d = 128, full = 80;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--backend")) backend = argv[i + 1];
        else if (!strcmp(argv[i], "--hq")) hq = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--hkv")) hkv = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) B = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tokens")) T = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--r")) r = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--random")) random_fill = atoi(argv[i + 1]);
        else { fprintf(stderr, "unknown flag %s\n", argv[i]); return 2; }
    }
    rk_context *ctx = NULL;
    rk_context_options o;
    rk_context_options_init(&o);
    o.check_finite = 0;
    if (rk_context_create(backend, 0, &o, &ctx) != RK_OK) {
        printf("SKIP: no %s device\n", backend);
        return 77;
    }
    const int all = T + full;
    rk_buffer *qb = filled(ctx, (size_t)B * hq * d, 1), *ob = filled(ctx, (size_t)B * hq * d, 2);
    rk_buffer *kfb = filled(ctx, (size_t)B * hkv * all * d, 3), *vb = filled(ctx, (size_t)B * hkv * all * d, 4);
    rk_buffer *ksb = filled(ctx, (size_t)B * hkv * T * r, 5);
    rk_tensor q, out, kf_dense, kf_sparse, ks, v;
    CK(rk_tensor_init(&q, qb, 0, RK_F16, B, hq, 1, d, RK_LAYOUT_BHTC));
    CK(rk_tensor_init(&out, ob, 0, RK_F16, B, hq, 1, d, RK_LAYOUT_BHTC));
    CK(rk_tensor_init(&kf_dense, kfb, 0, RK_F16, B, hkv, all, d, RK_LAYOUT_BHTC));
    CK(rk_tensor_init(&kf_sparse, kfb, 0, RK_F16, B, hkv, full, d, RK_LAYOUT_BHTC));
    CK(rk_tensor_init(&ks, ksb, 0, RK_F16, B, hkv, T, r, RK_LAYOUT_BHTC));
    CK(rk_tensor_init(&v, vb, 0, RK_F16, B, hkv, all, d, RK_LAYOUT_BHTC));
    rk_rotation_config cfg;
    rk_rotation_config_init(&cfg);
    cfg.n_seq = B; cfg.n_kv_heads = hkv; cfg.n_q_heads = hq; cfg.head_dim = d; cfg.rank = r;
    rk_rotation *rot = NULL;
    CK(rk_rotation_create(ctx, &cfg, &rot));
    float *R = calloc((size_t)B * hkv * d * r, sizeof(float)), *dmu = calloc((size_t)B * hkv * d, sizeof(float));
    for (int h = 0; h < B * hkv; h++)
        for (int j = 0; j < r; j++) R[((size_t)h * d + j) * r + j] = 1.0f;
    if (random_fill) bu_fill_uniform(dmu, (size_t)B * hkv * d, 5, 0.1f);
    CK(rk_rotation_set_basis(rot, R, dmu));
    rk_seq_info *seqs = malloc(sizeof(rk_seq_info) * (size_t)B);
    printf("%s, heads %d/%d, batch %d, %d span + %d full tokens, r %d, f16\n", backend, hq, hkv, B, T, full, r);
    printf("%-7s %12s %12s %12s\n", "mode", "enqueue us", "stream us", "single us");
    for (int sparse = 1; sparse >= 0; sparse--) {
        for (int b = 0; b < B; b++) seqs[b] = (rk_seq_info){all, sparse ? full / 2 : 0, sparse ? T : 0};
        rk_decode_args a;
        rk_decode_args_init(&a);
        a.q = &q; a.out = &out; a.v = &v; a.seqs = seqs;
        a.k_full = sparse ? &kf_sparse : &kf_dense;
        a.k_span = sparse ? &ks : NULL;
        a.rot = sparse ? rot : NULL;
        rk_status (*fn)(rk_context *, const rk_decode_args *) = sparse ? rk_decode_sparse : rk_decode_dense;
        for (int i = 0; i < 20; i++) CK(fn(ctx, &a));
        CK(rk_context_synchronize(ctx));
        const int n = 200;
        double t0 = bu_now();
        for (int i = 0; i < n; i++) CK(fn(ctx, &a));
        double t1 = bu_now();
        CK(rk_context_synchronize(ctx));
        double t2 = bu_now();
        double single[50];
        for (int i = 0; i < 50; i++) {
            double s0 = bu_now();
            CK(fn(ctx, &a));
            CK(rk_context_synchronize(ctx));
            single[i] = (bu_now() - s0) * 1e6;
        }

        printf("%-7s %12.2f %12.2f %12.2f\n", sparse ? "sparse" : "dense", (t1 - t0) / n * 1e6,
               (t2 - t0) / n * 1e6, bu_median(single, 50));
    }
    rk_rotation_destroy(rot);
    rk_buffer_free(qb); rk_buffer_free(ob); rk_buffer_free(kfb); rk_buffer_free(vb); rk_buffer_free(ksb);
    free(R); free(dmu); free(seqs);
    rk_context_destroy(ctx);
    return 0;
}
