/* rk-bench: sparse-channel vs dense decode latency on one backend and shape.
 *
 * Each mode allocates its own caches (several copies when small, so repeated runs do not just
 * measure the device's cache), runs warm-up decodes, then times batches of decodes between
 * synchronizations; the figure is the median per-decode time. Bytes moved count every cache
 * byte the decode must read once plus q and out; GB/s is compared with the device's read
 * bandwidth measured in the same run (rk_measure_read_bandwidth). */
#include "bench_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bench_cfg {
    const char *backend;
    int device, hq, hkv, d, dv, r, batch, tokens, full_tokens, warmup, iters, inner, threads, split;
    rk_dtype dtype;
    double rotate_mb, probe_mb;
    int json, dense_first;
} bench_cfg;

typedef struct mode_result {
    double us, bytes, gbps;
} mode_result;

static void usage(void) {
    printf("usage: rk-bench [--backend cpu] [--device 0] [--hq 28] [--hkv 4] [--d 128] [--dv D]\n"
           "                [--r 32] [--batch 1] [--tokens 16384] [--full-tokens 80] [--dtype f16]\n"
           "                [--warmup 3] [--iters 15] [--inner 0(auto)] [--threads 0] [--split 0]\n"
           "                [--rotate-mb 256] [--probe-mb 512 (0: skip)] [--json] [--dense-first]\n"
           "  --tokens: pruned (span) tokens per sequence; --full-tokens: full-width tokens beside\n"
           "  them (prompt + text), half before the span and half after.\n");
}

static int parse(int argc, char **argv, bench_cfg *c) {
    *c = (bench_cfg){"cpu", 0, 28, 4, 128, 0, 32, 1, 16384, 80, 3, 15, 0, 0, 0, RK_F16, 256, 512, 0, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define INT_FLAG(name, field) if (!strcmp(a, name) && v) { c->field = atoi(v); i++; continue; }
        INT_FLAG("--device", device) INT_FLAG("--hq", hq) INT_FLAG("--hkv", hkv) INT_FLAG("--d", d)
        INT_FLAG("--dv", dv) INT_FLAG("--r", r) INT_FLAG("--batch", batch) INT_FLAG("--tokens", tokens)
        INT_FLAG("--full-tokens", full_tokens) INT_FLAG("--warmup", warmup) INT_FLAG("--iters", iters)
        INT_FLAG("--inner", inner) INT_FLAG("--threads", threads) INT_FLAG("--split", split)
#undef INT_FLAG
        if (!strcmp(a, "--backend") && v) { c->backend = v; i++; continue; }
        if (!strcmp(a, "--rotate-mb") && v) { c->rotate_mb = atof(v); i++; continue; }
        if (!strcmp(a, "--probe-mb") && v) { c->probe_mb = atof(v); i++; continue; }
        if (!strcmp(a, "--dtype") && v) {
            int t = bu_parse_dtype(v);
            if (t < 0) { fprintf(stderr, "unknown dtype %s\n", v); return 0; }
            c->dtype = (rk_dtype)t; i++; continue;
        }
        if (!strcmp(a, "--json")) { c->json = 1; continue; }
        if (!strcmp(a, "--dense-first")) { c->dense_first = 1; continue; }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); exit(0); }
        fprintf(stderr, "unknown or incomplete flag %s\n", a);
        usage();
        return 0;
    }
    if (c->dv == 0) c->dv = c->d;
    if (c->hq <= 0 || c->hkv <= 0 || c->d <= 0 || c->r <= 0 || c->batch <= 0 || c->tokens < 0 ||
        c->full_tokens < 0 || c->tokens + c->full_tokens <= 0 || c->iters <= 0 || c->warmup < 0) {
        fprintf(stderr, "invalid shape or counts\n");
        return 0;
    }
    return 1;
}

/* One cache set: the tensors a decode reads. */
typedef struct cache_set {
    rk_buffer *kf, *ks, *v;
    rk_tensor kft, kst, vt;
} cache_set;

static double set_bytes(const bench_cfg *c, int sparse) {
    double es = (double)rk_dtype_size(c->dtype), bh = (double)c->batch * c->hkv;
    int all = c->tokens + c->full_tokens;
    double k = sparse ? (double)c->tokens * c->r + (double)c->full_tokens * c->d : (double)all * c->d;
    return bh * es * (k + (double)all * c->dv);
}

static mode_result run_mode(rk_context *ctx, const bench_cfg *c, int sparse, rk_rotation *rot) {
    int all = c->tokens + c->full_tokens;
    size_t es = rk_dtype_size(c->dtype);
    double per_set = set_bytes(c, sparse);
    int nsets = (int)ceil(c->rotate_mb * 1e6 / per_set);
    nsets = nsets < 1 ? 1 : nsets > 32 ? 32 : nsets;
    cache_set *sets = calloc((size_t)nsets, sizeof *sets);
    rk_buffer *qb = NULL, *ob = NULL;
    rk_tensor qt, ot;
    bu_check(rk_buffer_alloc(ctx, (size_t)c->batch * c->hq * c->d * es, &qb), ctx, "alloc q");
    bu_check(rk_buffer_alloc(ctx, (size_t)c->batch * c->hq * c->dv * es, &ob), ctx, "alloc out");
    bu_check(bu_fill_buffer(qb, 0, (size_t)c->batch * c->hq * c->d * es, c->dtype, 1), ctx, "fill q");
    rk_tensor_init(&qt, qb, 0, c->dtype, c->batch, c->hq, 1, c->d, RK_LAYOUT_BHTC);
    rk_tensor_init(&ot, ob, 0, c->dtype, c->batch, c->hq, 1, c->dv, RK_LAYOUT_BHTC);
    int kf_tokens = sparse ? c->full_tokens : all;
    for (int s = 0; s < nsets; s++) {
        cache_set *cs = &sets[s];
        size_t kf_bytes = (size_t)c->batch * c->hkv * (kf_tokens > 0 ? kf_tokens : 1) * c->d * es;
        size_t v_bytes = (size_t)c->batch * c->hkv * all * c->dv * es;
        bu_check(rk_buffer_alloc(ctx, kf_bytes, &cs->kf), ctx, "alloc k_full");
        bu_check(rk_buffer_alloc(ctx, v_bytes, &cs->v), ctx, "alloc v");
        bu_check(bu_fill_buffer(cs->kf, 0, kf_bytes, c->dtype, 2 + s), ctx, "fill k");
        bu_check(bu_fill_buffer(cs->v, 0, v_bytes, c->dtype, 3 + s), ctx, "fill v");
        rk_tensor_init(&cs->kft, cs->kf, 0, c->dtype, c->batch, c->hkv, kf_tokens > 0 ? kf_tokens : 1,
                       c->d, RK_LAYOUT_BHTC);
        rk_tensor_init(&cs->vt, cs->v, 0, c->dtype, c->batch, c->hkv, all, c->dv, RK_LAYOUT_BHTC);
        if (sparse && c->tokens > 0) {
            size_t ks_bytes = (size_t)c->batch * c->hkv * c->tokens * c->r * es;
            bu_check(rk_buffer_alloc(ctx, ks_bytes, &cs->ks), ctx, "alloc k_span");
            bu_check(bu_fill_buffer(cs->ks, 0, ks_bytes, c->dtype, 4 + s), ctx, "fill k_span");
            rk_tensor_init(&cs->kst, cs->ks, 0, c->dtype, c->batch, c->hkv, c->tokens, c->r,
                           RK_LAYOUT_BHTC);
        }
    }
    rk_seq_info *seqs = malloc(sizeof(rk_seq_info) * (size_t)c->batch);
    for (int b = 0; b < c->batch; b++)
        seqs[b] = (rk_seq_info){all, sparse ? c->full_tokens / 2 : 0, sparse ? c->tokens : 0};
    rk_decode_args a;
    rk_decode_args_init(&a);
    a.q = &qt; a.out = &ot; a.rot = rot; a.seqs = seqs; a.n_split = c->split;

    /* Decodes per timed batch: enough that a batch lasts ~2 ms (host sync overhead amortized). */
    int inner = c->inner;
    int total_sets_used = 0;
    double per_iter_us[1000];
    int iters = c->iters > 1000 ? 1000 : c->iters;
    for (int phase = 0; phase < 2; phase++) {
        int reps = phase == 0 ? c->warmup + 1 : iters;
        for (int it = 0; it < reps; it++) {
            int n = inner > 0 ? inner : 1;
            double t0 = bu_now();
            for (int k = 0; k < n; k++) {
                cache_set *cs = &sets[total_sets_used++ % nsets];
                a.k_full = &cs->kft; a.v = &cs->vt; a.k_span = sparse && c->tokens > 0 ? &cs->kst : NULL;
                bu_check(sparse ? rk_decode_sparse(ctx, &a) : rk_decode_dense(ctx, &a), ctx, "decode");
            }
            bu_check(rk_context_synchronize(ctx), ctx, "synchronize");
            double dt = (bu_now() - t0) / n;
            /* calibrate from the last warm-up: the first one pays module loading, and a batch
             * sized by it (1 decode) measured launch-plus-sync latency, not decode time */
            if (phase == 0 && c->inner <= 0) {
                int want = (int)(2e-3 / (dt > 1e-9 ? dt : 1e-9));
                inner = want < 1 ? 1 : want > 2000 ? 2000 : want;
            }
            if (phase == 1) per_iter_us[it] = dt * 1e6;
        }
    }
    mode_result res;
    res.us = bu_median(per_iter_us, iters);
    res.bytes = per_set + (double)c->batch * c->hq * (c->d + c->dv) * es;
    res.gbps = res.bytes / (res.us * 1e-6) / 1e9;
    for (int s = 0; s < nsets; s++) {
        rk_buffer_free(sets[s].kf); rk_buffer_free(sets[s].ks); rk_buffer_free(sets[s].v);
    }
    free(sets); free(seqs);
    rk_buffer_free(qb); rk_buffer_free(ob);
    return res;
}

static rk_rotation *make_rotation(rk_context *ctx, const bench_cfg *c) {
    rk_rotation_config cfg;
    rk_rotation_config_init(&cfg);
    cfg.n_seq = c->batch; cfg.n_kv_heads = c->hkv; cfg.n_q_heads = c->hq; cfg.head_dim = c->d;
    cfg.rank = c->r;
    rk_rotation *rot = NULL;
    bu_check(rk_rotation_create(ctx, &cfg, &rot), ctx, "rotation");
    size_t nh = (size_t)c->batch * c->hkv;
    float *R = calloc(nh * c->d * c->r, sizeof(float)), *dmu = malloc(nh * c->d * sizeof(float));
    /* Any basis times the same: unit columns plus a small random mean correction. */
    for (size_t h = 0; h < nh; h++)
        for (int j = 0; j < c->r; j++) R[h * c->d * c->r + (size_t)j * c->r + j] = 1.0f;
    bu_fill_uniform(dmu, nh * c->d, 5, 0.1f);
    bu_check(rk_rotation_set_basis(rot, R, dmu), ctx, "set basis");
    free(R); free(dmu);
    return rot;
}

int main(int argc, char **argv) {
    bench_cfg c;
    if (!parse(argc, argv, &c)) return 2;
    rk_context_options o;
    rk_context_options_init(&o);
    o.n_threads = c.threads;
    o.check_finite = 0; /* no host scan inside the timed region */
    rk_context *ctx = NULL;
    rk_status st = rk_context_create(c.backend, (size_t)c.device, &o, &ctx);
    if (st != RK_OK) {
        fprintf(stderr, "backend %s device %d: %s (%s)\n", c.backend, c.device, rk_status_name(st),
                rk_status_string(st));
        return st == RK_ERR_BACKEND_UNAVAILABLE || st == RK_ERR_BACKEND_NOT_BUILT ? 77 : 2;
    }
    char dev[256];
    rk_context_device_description(ctx, dev, sizeof dev);
    double bw = 0;
    if (c.probe_mb > 0) {
        st = rk_measure_read_bandwidth(ctx, (size_t)(c.probe_mb * 1e6), 9, &bw);
        if (st != RK_OK) bw = 0;
    }
    rk_rotation *rot = make_rotation(ctx, &c);
    mode_result sp, de; /* --dense-first: the other order (warm-up effects of the first mode) */
    if (c.dense_first) {
        de = run_mode(ctx, &c, 0, rot);
        sp = run_mode(ctx, &c, 1, rot);
    } else {
        sp = run_mode(ctx, &c, 1, rot);
        de = run_mode(ctx, &c, 0, rot);
    }
    double byte_ratio = sp.bytes / de.bytes, time_ratio = sp.us / de.us;
    double span_mb = (double)c.batch * c.hkv * c.tokens * c.r * rk_dtype_size(c.dtype) / 1e6;
    if (c.json) {
        printf("{\"backend\":\"%s\",\"device\":\"%s\",\"dtype\":\"%s\",\"hq\":%d,\"hkv\":%d,\"d\":%d,"
               "\"dv\":%d,\"r\":%d,\"batch\":%d,\"tokens\":%d,\"full_tokens\":%d,"
               "\"sparse_us\":%.3f,\"dense_us\":%.3f,\"sparse_bytes\":%.0f,\"dense_bytes\":%.0f,"
               "\"sparse_gbps\":%.2f,\"dense_gbps\":%.2f,\"device_read_gbps\":%.2f,"
               "\"sparse_bw_fraction\":%.4f,\"dense_bw_fraction\":%.4f,\"time_ratio\":%.4f,"
               "\"byte_ratio\":%.4f,\"pruned_cache_mb\":%.2f}\n",
               c.backend, dev, rk_dtype_name(c.dtype), c.hq, c.hkv, c.d, c.dv, c.r, c.batch, c.tokens,
               c.full_tokens, sp.us, de.us, sp.bytes, de.bytes, sp.gbps, de.gbps, bw,
               bw > 0 ? sp.gbps / bw : 0, bw > 0 ? de.gbps / bw : 0, time_ratio, byte_ratio, span_mb);
    } else {
        printf("backend %s (%s), %s, heads %d/%d, d %d, dv %d, r %d, batch %d, %d pruned + %d full tokens\n",
               c.backend, dev, rk_dtype_name(c.dtype), c.hq, c.hkv, c.d, c.dv, c.r, c.batch, c.tokens,
               c.full_tokens);
        printf("device read bandwidth (probe): %.1f GB/s\n", bw);
        printf("%-7s %12s %12s %10s %9s\n", "mode", "median us", "MB moved", "GB/s", "of bw");
        printf("%-7s %12.2f %12.2f %10.1f %8.1f%%\n", "sparse", sp.us, sp.bytes / 1e6, sp.gbps,
               bw > 0 ? 100 * sp.gbps / bw : 0);
        printf("%-7s %12.2f %12.2f %10.1f %8.1f%%\n", "dense", de.us, de.bytes / 1e6, de.gbps,
               bw > 0 ? 100 * de.gbps / bw : 0);
        printf("sparse/dense time %.3f   byte ratio %.3f   (time/bytes %.3f)\n", time_ratio, byte_ratio,
               time_ratio / byte_ratio);
    }
    rk_rotation_destroy(rot);
    rk_context_destroy(ctx);
    return 0;
}
