/* Every op of the OpenCL backend against core/reference.h on random data, for f32, f16 and bf16:
 * sparse and dense decode (GQA groups of 1 to 9, spans at the start, middle and end, forced and
 * automatic splits, token-major and offset views, widths that are not multiples of 4), span
 * moments (chunked, ragged lengths) and compression (CLBlast and kernel paths, row offsets,
 * untouched neighbours). Inputs are rounded to the dtype first, so the reference sees exactly
 * the stored values. Run with RK_OPENCL_TUNE=serial=0,... to exercise the GPU kernel shape. */
#include "ocl_debug.h"
#include "prng.h"
#include "reference.h"
#include "rk_test.h"
#include "rotatek.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static rk_context *ctx;
static uint64_t seed = 7;

static const rk_dtype dtypes[] = {RK_F32, RK_F16, RK_BF16};

/* Relative error allowed in outputs stored in each dtype (NMSE; the rounding of the output
 * dominates for 16-bit types, f32 arithmetic for f32). */
static double tol_nmse(rk_dtype t) { return t == RK_F32 ? 1e-10 : t == RK_F16 ? 2e-7 : 1e-5; }

static double nmse(const float *x, const double *ref, size_t n) {
    double e = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        double dlt = (double)x[i] - ref[i];
        e += dlt * dlt;
        r += ref[i] * ref[i];
    }
    return r > 0 ? e / r : e; /* NaN propagates and fails the comparison */
}

static void fill_normal(float *x, size_t n, double scale, double offset) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(rk_normal(&seed) * scale + offset);
}

/* Round host floats to what the dtype stores. */
static void round_to(rk_dtype t, float *x, size_t n) {
    if (t == RK_F32) return;
    uint16_t *tmp = malloc(n * 2);
    rk_convert_from_f32(t, tmp, x, n);
    rk_convert_to_f32(t, x, tmp, n);
    free(tmp);
}

/* A device tensor holding dense host data [B][H][T][C] in a given layout, at `pad` elements into
 * its own buffer. */
typedef struct dev_tensor {
    rk_buffer *buf;
    rk_tensor t;
} dev_tensor;

static dev_tensor make_tensor(rk_dtype dt, const float *host, int B, int H, int T, int C,
                              rk_layout layout, int pad) {
    dev_tensor d = {0};
    size_t es = rk_dtype_size(dt), n = (size_t)B * H * T * C;
    rk_status st = rk_buffer_alloc(ctx, (n + (size_t)pad + 8) * es, &d.buf);
    CHECK(st == RK_OK, "alloc: %s", rk_context_last_error(ctx));
    if (st != RK_OK) return d;
    rk_tensor_init(&d.t, d.buf, (size_t)pad * es, dt, B, H, T, C, layout);
    if (!host) return d;
    float *perm = malloc(n * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++)
                for (int c = 0; c < C; c++)
                    perm[b * d.t.nb[0] + h * d.t.nb[1] + t * d.t.nb[2] + c] =
                        host[(((size_t)b * H + h) * T + t) * C + c];
    void *raw = malloc(n * es);
    rk_convert_from_f32(dt, raw, perm, n);
    st = rk_buffer_upload(d.buf, (size_t)pad * es, raw, n * es);
    CHECK(st == RK_OK, "upload: %s", rk_context_last_error(ctx));
    free(raw);
    free(perm);
    return d;
}

/* Dense host copy [B][H][T][C] of a device view. */
static void read_tensor(const dev_tensor *d, float *host) {
    size_t es = rk_dtype_size(d->t.dtype), n = (size_t)(d->t.ne[0] * d->t.ne[1] * d->t.ne[2] * d->t.ne[3]);
    unsigned char *raw = malloc(n * es);
    float *perm = malloc(n * sizeof(float));
    rk_status st = rk_buffer_download(d->t.buf, d->t.offset, raw, n * es);
    CHECK(st == RK_OK, "download: %s", rk_context_last_error(ctx));
    rk_convert_to_f32(d->t.dtype, perm, raw, n);
    int64_t B = d->t.ne[0], H = d->t.ne[1], T = d->t.ne[2], C = d->t.ne[3];
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < T; t++)
                for (int64_t c = 0; c < C; c++)
                    host[((b * H + h) * T + t) * C + c] =
                        perm[b * d->t.nb[0] + h * d->t.nb[1] + t * d->t.nb[2] + c];
    free(raw);
    free(perm);
}

static void free_tensor(dev_tensor *d) { rk_buffer_free(d->buf); d->buf = NULL; }

/* ---- decode ----------------------------------------------------------------------------------- */

typedef struct decode_case {
    const char *name;
    int B, Hq, Hkv, d, dv, r, T;
    rk_seq_info seqs[20];
    rk_layout layout;
    int pad;     /* elements before each tensor: 2 makes every row start misaligned */
    int n_split; /* 0 = backend's choice */
    double ramp; /* key rows scaled by 1 + ramp·row/T: logits whose range grows along the
                    sequence, so running maxima must be raised and sums rescaled many times */
} decode_case;

static const decode_case decode_cases[] = {
    {"gqa4-d128-r64", 2, 8, 2, 128, 128, 64, 300, {{300, 40, 200}, {123, 0, 60}}, RK_LAYOUT_BHTC, 0, 0, 0.0},
    {"gqa7-split5", 1, 7, 1, 64, 64, 16, 1000, {{1000, 500, 400}}, RK_LAYOUT_BHTC, 0, 5, 0.0},
    {"mha-token-major", 3, 4, 4, 96, 40, 20, 77, {{77, 10, 30}, {1, 0, 0}, {50, 49, 1}},
     RK_LAYOUT_BTHC, 0, 0, 0.0},
    {"gqa9-odd-widths-misaligned", 1, 18, 2, 36, 6, 6, 50, {{50, 0, 50}}, RK_LAYOUT_BHTC, 2, 3, 0.0},
    {"scalar-widths", 2, 4, 2, 10, 8, 3, 40, {{40, 5, 20}, {33, 33, 0}}, RK_LAYOUT_BTHC, 1, 0, 0.0},
    {"many-splits", 1, 2, 1, 32, 32, 8, 257, {{257, 1, 255}}, RK_LAYOUT_BHTC, 0, 64, 0.0},
    {"rising-logits", 2, 6, 2, 64, 64, 32, 700, {{700, 100, 300}, {650, 0, 0}}, RK_LAYOUT_BHTC,
     0, 1, 40.0},
    {"rising-logits-split", 1, 4, 1, 64, 32, 16, 600, {{600, 200, 200}}, RK_LAYOUT_BHTC, 0, 0, 25.0},
    /* 128-channel rows and 5-8 query heads per KV head: the tensor-core warp shape on NVIDIA
     * (16-bit, and f32 through split TF32), rising logits and partial tiles in every segment;
     * r 8 leaves most of each lane's key chunks past the row */
    {"gqa7-d128-r64-ramp", 2, 14, 2, 128, 128, 64, 613, {{613, 80, 500}, {301, 17, 200}},
     RK_LAYOUT_BHTC, 0, 3, 12.0},
    {"gqa8-d128-r8-token-major", 1, 8, 1, 128, 128, 8, 450, {{450, 3, 430}}, RK_LAYOUT_BTHC, 0, 0,
     0.0},
    /* more sequences than the kernels take by value (RK_OCL_SEQ_INLINE): the uploaded table */
    {"ragged-20-seqs", 20, 4, 2, 64, 64, 16, 96,
     {{96, 10, 50}, {1, 0, 0}, {50, 0, 50}, {96, 0, 0}, {70, 20, 40}, {33, 3, 30}, {96, 95, 1},
      {2, 0, 2}, {80, 40, 40}, {64, 0, 64}, {17, 1, 10}, {96, 48, 48}, {5, 0, 5}, {60, 30, 0},
      {90, 10, 70}, {45, 44, 1}, {12, 2, 8}, {96, 0, 96}, {30, 0, 20}, {77, 7, 70}},
     RK_LAYOUT_BHTC, 0, 0, 0.0},
};

static void run_decode_case(const decode_case *c, rk_dtype dt) {
    const int B = c->B, Hq = c->Hq, Hkv = c->Hkv, d = c->d, dv = c->dv, r = c->r, T = c->T;
    size_t nq = (size_t)B * Hq * d, nkf = (size_t)B * Hkv * T * d, nks = (size_t)B * Hkv * T * r;
    size_t nv = (size_t)B * Hkv * T * dv, nR = (size_t)B * Hkv * d * r, ndmu = (size_t)B * Hkv * d;
    float *q = malloc(nq * 4), *kf = malloc(nkf * 4), *ks = malloc(nks * 4), *v = malloc(nv * 4);
    float *R = malloc(nR * 4), *dmu = malloc(ndmu * 4);
    fill_normal(q, nq, 1.0, 0.0);
    fill_normal(kf, nkf, 1.0, 0.2);
    fill_normal(ks, nks, sqrt((double)d / r), 0.0);
    fill_normal(v, nv, 1.0, 0.0);
    fill_normal(R, nR, 1.0 / sqrt((double)d), 0.0);
    fill_normal(dmu, ndmu, 0.5, 0.0);
    for (size_t row = 0; row < (size_t)B * Hkv * T; row++) {
        double f = 1.0 + c->ramp * (double)(row % (size_t)T) / T;
        for (int i = 0; i < d; i++) kf[row * d + i] *= (float)f;
        for (int i = 0; i < r; i++) ks[row * r + i] *= (float)f;
    }
    round_to(dt, q, nq);
    round_to(dt, kf, nkf);
    round_to(dt, ks, nks);
    round_to(dt, v, nv);

    dev_tensor tq = make_tensor(dt, q, B, Hq, 1, d, c->layout, c->pad);
    dev_tensor tkf = make_tensor(dt, kf, B, Hkv, T, d, c->layout, c->pad);
    dev_tensor tks = make_tensor(dt, ks, B, Hkv, T, r, c->layout, c->pad);
    dev_tensor tv = make_tensor(dt, v, B, Hkv, T, dv, c->layout, c->pad);
    dev_tensor tout = make_tensor(dt, NULL, B, Hq, 1, dv, c->layout, c->pad);
    dev_tensor tlse = make_tensor(RK_F32, NULL, B, Hq, 1, 1, RK_LAYOUT_BHTC, 0);

    rk_rotation_config cfg;
    rk_rotation_config_init(&cfg);
    cfg.n_seq = B; cfg.n_kv_heads = Hkv; cfg.n_q_heads = Hq; cfg.head_dim = d; cfg.rank = r;
    rk_rotation *rot = NULL;
    CHECK(rk_rotation_create(ctx, &cfg, &rot) == RK_OK, "rotation: %s", rk_context_last_error(ctx));
    CHECK(rk_rotation_set_basis(rot, R, dmu) == RK_OK, "set_basis: %s", rk_context_last_error(ctx));

    double *ref_out = malloc(sizeof(double) * B * Hq * dv), *ref_lse = malloc(sizeof(double) * B * Hq);
    float *out = malloc(sizeof(float) * B * Hq * dv), *lse = malloc(sizeof(float) * B * Hq);
    for (int dense = 0; dense <= 1; dense++) {
        rk_decode_args a;
        rk_decode_args_init(&a);
        a.q = &tq.t; a.k_full = &tkf.t; a.k_span = &tks.t; a.v = &tv.t; a.rot = rot;
        a.seqs = c->seqs; a.out = &tout.t; a.lse = &tlse.t; a.n_split = c->n_split;
        rk_status st = dense ? rk_decode_dense(ctx, &a) : rk_decode_sparse(ctx, &a);
        CHECK(st == RK_OK, "%s %s %s: %s", c->name, rk_dtype_name(dt), dense ? "dense" : "sparse",
              rk_context_last_error(ctx));
        read_tensor(&tout, out);
        read_tensor(&tlse, lse);
        rk_ref_batch in = {B, Hq, Hkv, d, dv, r, T, T, T, q, kf, ks, v, R, dmu, c->seqs, 0.0};
        rk_ref_decode_batch(&in, dense, ref_out, ref_lse);
        double e = nmse(out, ref_out, (size_t)B * Hq * dv), le = 0;
        for (int i = 0; i < B * Hq; i++) {
            double x = fabs((double)lse[i] - ref_lse[i]);
            le = x > le || isnan(x) ? x : le;
        }
        CHECK(e <= tol_nmse(dt), "%s %s %s: out nmse %.3g > %.3g", c->name, rk_dtype_name(dt),
              dense ? "dense" : "sparse", e, tol_nmse(dt));
        CHECK(le <= 2e-5 * (1 + log((double)T)), "%s %s %s: lse max error %.3g", c->name,
              rk_dtype_name(dt), dense ? "dense" : "sparse", le);
    }
    rk_rotation_destroy(rot);
    free_tensor(&tq); free_tensor(&tkf); free_tensor(&tks); free_tensor(&tv);
    free_tensor(&tout); free_tensor(&tlse);
    free(q); free(kf); free(ks); free(v); free(R); free(dmu);
    free(ref_out); free(ref_lse); free(out); free(lse);
}

/* ---- moments ---------------------------------------------------------------------------------- */

static void run_moments(rk_dtype dt, rk_layout layout) {
    enum { B = 2, H = 2, D = 64, T = 700, CHUNK = 300 };
    const int32_t lens_total[B] = {700, 333};
    size_t n = (size_t)B * H * T * D;
    float *k = malloc(n * 4);
    fill_normal(k, n, 1.5, 3.0); /* a large mean: the centering must not cancel */
    for (size_t i = 0; i < n; i += D + 1) k[i] += 10.0f;
    round_to(dt, k, n);
    dev_tensor tk = make_tensor(dt, k, B, H, T, D, layout, 0);
    rk_rotation_config cfg;
    rk_rotation_config_init(&cfg);
    cfg.n_seq = B; cfg.n_kv_heads = H; cfg.n_q_heads = H; cfg.head_dim = D; cfg.rank = 8;
    rk_rotation *rot = NULL;
    CHECK(rk_rotation_create(ctx, &cfg, &rot) == RK_OK, "rotation: %s", rk_context_last_error(ctx));
    for (int t0 = 0; t0 < T; t0 += CHUNK) {
        rk_tensor chunk = tk.t;
        int rows = T - t0 < CHUNK ? T - t0 : CHUNK;
        chunk.offset += (size_t)t0 * chunk.nb[2] * rk_dtype_size(dt);
        chunk.ne[2] = rows;
        int32_t lens[B];
        for (int b = 0; b < B; b++) {
            int left = lens_total[b] - t0;
            lens[b] = left < 0 ? 0 : left > rows ? rows : left;
        }
        CHECK(rk_rotation_accumulate(rot, &chunk, lens) == RK_OK, "accumulate %s: %s",
              rk_dtype_name(dt), rk_context_last_error(ctx));
    }
    double *mean = malloc(sizeof(double) * B * H * D), *cov = malloc(sizeof(double) * B * H * D * D);
    double *kd = malloc(sizeof(double) * T * D), rm[D], *rc = malloc(sizeof(double) * D * D);
    CHECK(rk_rotation_get_moments(rot, mean, cov) == RK_OK, "get_moments");
    for (int h = 0; h < B * H; h++) {
        int len = lens_total[h / H];
        for (size_t i = 0; i < (size_t)len * D; i++) kd[i] = k[(size_t)h * T * D + i];
        rk_ref_moments(kd, len, D, rm, rc);
        float fm[D], *fc = malloc(sizeof(float) * D * D);
        for (int i = 0; i < D; i++) fm[i] = (float)mean[h * D + i];
        for (int i = 0; i < D * D; i++) fc[i] = (float)cov[(size_t)h * D * D + i];
        double em = nmse(fm, rm, D), ec = nmse(fc, rc, (size_t)D * D);
        CHECK(em <= 1e-11 && ec <= 1e-10, "moments %s head %d: mean nmse %.3g, cov nmse %.3g",
              rk_dtype_name(dt), h, em, ec);
        free(fc);
    }
    rk_rotation_destroy(rot);
    free_tensor(&tk);
    free(k); free(mean); free(cov); free(kd); free(rc);
}

/* ---- compress --------------------------------------------------------------------------------- */

static void run_compress(rk_dtype dt, rk_layout layout) {
    enum { B = 2, H = 3, D = 64, R = 24, T = 37, CAP = 50, OFF = 9 };
    size_t nk = (size_t)B * H * T * D, nR = (size_t)B * H * D * R, nc = (size_t)B * H * CAP * R;
    float *k = malloc(nk * 4), *Rm = malloc(nR * 4), *dmu = calloc((size_t)B * H * D, 4);
    float *sentinel = malloc(nc * 4), *got = malloc(nc * 4);
    fill_normal(k, nk, 1.0, 0.5);
    fill_normal(Rm, nR, 0.2, 0.0);
    for (size_t i = 0; i < nc; i++) sentinel[i] = (float)(i % 7) - 3.0f;
    round_to(dt, k, nk);
    dev_tensor tk = make_tensor(dt, k, B, H, T, D, layout, 0);
    dev_tensor tc = make_tensor(dt, sentinel, B, H, CAP, R, layout, 0);
    rk_rotation_config cfg;
    rk_rotation_config_init(&cfg);
    cfg.n_seq = B; cfg.n_kv_heads = H; cfg.n_q_heads = H; cfg.head_dim = D; cfg.rank = R;
    rk_rotation *rot = NULL;
    CHECK(rk_rotation_create(ctx, &cfg, &rot) == RK_OK, "rotation: %s", rk_context_last_error(ctx));
    CHECK(rk_rotation_set_basis(rot, Rm, dmu) == RK_OK, "set_basis");
    CHECK(rk_compress(ctx, rot, &tk.t, &tc.t, OFF) == RK_OK, "compress %s: %s", rk_dtype_name(dt),
          rk_context_last_error(ctx));
    read_tensor(&tc, got);
    double *kd = malloc(sizeof(double) * T * D), *Rd = malloc(sizeof(double) * D * R);
    double *ref = malloc(sizeof(double) * T * R);
    float *row = malloc(sizeof(float) * T * R);
    int untouched = 1;
    for (int h = 0; h < B * H; h++) {
        for (int i = 0; i < T * D; i++) kd[i] = k[(size_t)h * T * D + i];
        for (int i = 0; i < D * R; i++) Rd[i] = Rm[(size_t)h * D * R + i];
        rk_ref_compress(kd, Rd, T, D, R, ref);
        memcpy(row, got + ((size_t)h * CAP + OFF) * R, sizeof(float) * T * R);
        double e = nmse(row, ref, (size_t)T * R);
        CHECK(e <= tol_nmse(dt), "compress %s %s head %d: nmse %.3g", rk_dtype_name(dt),
              layout == RK_LAYOUT_BHTC ? "bhtc" : "bthc", h, e);
        for (int t = 0; t < CAP; t++)
            if (t < OFF || t >= OFF + T)
                for (int j = 0; j < R; j++) {
                    size_t i = ((size_t)h * CAP + t) * R + j;
                    untouched &= got[i] == sentinel[i];
                }
    }
    CHECK(untouched, "compress %s wrote outside its rows", rk_dtype_name(dt));
    rk_rotation_destroy(rot);
    free_tensor(&tk); free_tensor(&tc);
    free(k); free(Rm); free(dmu); free(sentinel); free(got); free(kd); free(Rd); free(ref); free(row);
}

int main(void) {
    size_t n = 0;
    rk_status st = rk_device_count("opencl", &n);
    if (st == RK_ERR_BACKEND_UNAVAILABLE) {
        printf("test_opencl_ops: no OpenCL device, skipped\n");
        return 77;
    }
    CHECK(st == RK_OK && n > 0, "device_count: %s", rk_status_name(st));
    CHECK(rk_context_create("opencl", 0, NULL, &ctx) == RK_OK, "context");
    if (!ctx) return rk_test_done("test_opencl_ops");
    char desc[512], params[256];
    rk_context_device_description(ctx, desc, sizeof desc);
    rk_opencl_debug_params(ctx, params, sizeof params);
    printf("device: %s\nparams: %s\n", desc, params);

    for (size_t i = 0; i < sizeof decode_cases / sizeof decode_cases[0]; i++)
        for (size_t t = 0; t < 3; t++) run_decode_case(&decode_cases[i], dtypes[t]);
    for (size_t t = 0; t < 3; t++) {
        run_moments(dtypes[t], t == 1 ? RK_LAYOUT_BTHC : RK_LAYOUT_BHTC);
        run_compress(dtypes[t], RK_LAYOUT_BHTC);
        run_compress(dtypes[t], RK_LAYOUT_BTHC);
    }
    double gbps = 0;
    CHECK(rk_measure_read_bandwidth(ctx, (size_t)64 << 20, 3, &gbps) == RK_OK && gbps > 0,
          "read probe: %s", rk_context_last_error(ctx));
    printf("read probe: %.1f GB/s\n", gbps);
    rk_context_destroy(ctx);
    return rk_test_done("test_opencl_ops");
}
