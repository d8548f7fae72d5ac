/* cuda_check: the GPU backends' kernels against the double-precision reference (core/reference.h)
 * on shapes chosen to reach every code path: GQA groups 1..16 (head chunks), the vector fast path
 * and the generic fallback (odd widths, misaligned views), token-major strides, full-width tokens
 * before and after the span, sequences without a span, forced and automatic token splits, the
 * sequence table past the inline limit, lse; moments and compress. Fresh random inputs per case,
 * outputs poisoned with NaN before each run. Prints one line per check; exit 1 on any failure.
 *
 *   cuda_check [--backend cuda] [--seed N] [--quick]
 * --quick: a few small cases per path (for compute-sanitizer, which runs kernels far slower). */
#include "pca.h"
#include "reference.h"
#include "rotatek.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *g_backend = "cuda";
static uint64_t g_seed = 0x1234abcdull;
static int g_failures = 0, g_checks = 0, g_quick = 0;

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double uni(uint64_t *s) { return (double)(splitmix(s) >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0; }

#define CHECK_RK(expr)                                                                       \
    do {                                                                                     \
        rk_status st_ = (expr);                                                              \
        if (st_ != RK_OK) {                                                                  \
            fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #expr,               \
                    rk_status_name(st_), ctx ? rk_context_last_error(ctx) : "");             \
            exit(2);                                                                         \
        }                                                                                    \
    } while (0)

static void report(const char *what, const char *dt, double err, double tol) {
    int ok = err <= tol; /* NaN fails */
    g_checks++;
    if (!ok) g_failures++;
    printf("%-4s %-58s %-5s err %.3e (tol %.1e)\n", ok ? "ok" : "FAIL", what, dt, err, tol);
}

/* A device tensor holding host floats rounded to the dtype; `stored` gets the rounded values
 * back (what the reference must see), in dense [b][h][t][c] order. */
typedef struct dev_tensor {
    rk_buffer *buf;
    rk_tensor t;
    float *stored;
} dev_tensor;

static void make_tensor(rk_context *ctx, dev_tensor *x, rk_dtype dt, int B, int H, int T, int C,
                        rk_layout layout, size_t pad_offset, uint64_t *rng, double scale, double bias) {
    size_t n = (size_t)B * H * T * C, esz = rk_dtype_size(dt);
    size_t bytes = n * esz + pad_offset + 64;
    CHECK_RK(rk_buffer_alloc(ctx, bytes, &x->buf));
    CHECK_RK(rk_tensor_init(&x->t, x->buf, pad_offset, dt, B, H, T, C, layout));
    float *dense = malloc(n * sizeof(float));
    x->stored = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) dense[i] = (float)(bias + scale * uni(rng));
    /* scatter into the layout's element order */
    void *raw = calloc(1, bytes);
    float *lay = malloc(n * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++)
                for (int c = 0; c < C; c++) {
                    size_t src = (((size_t)b * H + h) * T + t) * C + c;
                    size_t dst = (size_t)(b * x->t.nb[0] + h * x->t.nb[1] + t * x->t.nb[2] + c);
                    lay[dst] = dense[src];
                }
    CHECK_RK(rk_convert_from_f32(dt, (char *)raw + pad_offset, lay, n));
    CHECK_RK(rk_buffer_upload(x->buf, 0, raw, bytes));
    float *back = malloc(n * sizeof(float));
    CHECK_RK(rk_convert_to_f32(dt, back, (char *)raw + pad_offset, n));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++)
                for (int c = 0; c < C; c++) {
                    size_t dst = (((size_t)b * H + h) * T + t) * C + c;
                    size_t src = (size_t)(b * x->t.nb[0] + h * x->t.nb[1] + t * x->t.nb[2] + c);
                    x->stored[dst] = back[src];
                }
    free(dense); free(raw); free(lay); free(back);
}

static void poison(rk_context *ctx, dev_tensor *x) {
    size_t bytes = rk_buffer_size(x->buf);
    unsigned char *nan = malloc(bytes);
    memset(nan, 0xff, bytes); /* NaN in every float format */
    CHECK_RK(rk_buffer_upload(x->buf, 0, nan, bytes));
    free(nan);
}

static void read_dense(rk_context *ctx, dev_tensor *x, float *out) {
    size_t bytes = rk_buffer_size(x->buf), esz = rk_dtype_size(x->t.dtype);
    unsigned char *raw = malloc(bytes);
    CHECK_RK(rk_buffer_download(x->buf, 0, raw, bytes));
    const rk_tensor *t = &x->t;
    for (int b = 0; b < t->ne[0]; b++)
        for (int h = 0; h < t->ne[1]; h++)
            for (int k = 0; k < t->ne[2]; k++)
                for (int c = 0; c < t->ne[3]; c++) {
                    size_t e = (size_t)(b * t->nb[0] + h * t->nb[1] + k * t->nb[2] + c);
                    size_t dst = (((size_t)b * t->ne[1] + h) * t->ne[2] + k) * t->ne[3] + c;
                    CHECK_RK(rk_convert_to_f32(t->dtype, out + dst, raw + t->offset + e * esz, 1));
                }
    free(raw);
}

static void free_tensor(dev_tensor *x) {
    rk_buffer_free(x->buf);
    free(x->stored);
    memset(x, 0, sizeof *x);
}

static double rel_err(const float *x, const double *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)x[i] - ref[i];
        num += e * e;
        den += ref[i] * ref[i];
        if (!isfinite(x[i])) return NAN;
    }
    return sqrt(num / (den > 0 ? den : 1));
}

static const char *dt_name(rk_dtype dt) { return rk_dtype_name(dt); }
static double out_tol(rk_dtype dt) { return dt == RK_F32 ? 2e-5 : dt == RK_F16 ? 1.5e-3 : 1e-2; }

/* Random orthonormal columns R [d][r] (Gram-Schmidt) and a small δμ, per head. */
static void random_basis(uint64_t *rng, int heads, int d, int r, float *R, float *dmu) {
    double *col = malloc(sizeof(double) * (size_t)d * r);
    for (int h = 0; h < heads; h++) {
        for (int j = 0; j < r; j++) {
            double *v = col + (size_t)j * d;
            for (int i = 0; i < d; i++) v[i] = uni(rng);
            for (int pass = 0; pass < 2; pass++)
                for (int k = 0; k < j; k++) {
                    double dot = 0;
                    for (int i = 0; i < d; i++) dot += v[i] * col[(size_t)k * d + i];
                    for (int i = 0; i < d; i++) v[i] -= dot * col[(size_t)k * d + i];
                }
            double nrm = 0;
            for (int i = 0; i < d; i++) nrm += v[i] * v[i];
            nrm = sqrt(nrm);
            for (int i = 0; i < d; i++) v[i] /= nrm;
        }
        for (int i = 0; i < d; i++)
            for (int j = 0; j < r; j++) R[((size_t)h * d + i) * r + j] = (float)col[(size_t)j * d + i];
        for (int i = 0; i < d; i++) dmu[(size_t)h * d + i] = (float)(0.3 * uni(rng));
    }
    free(col);
}

typedef struct dec_case {
    const char *name;
    int B, Hq, Hkv, d, dv, r;
    rk_layout layout;
    int pad; /* every view starts this many elements into its buffer: 1 breaks 16-byte rows */
    int n_split;
    int span_mode; /* 0: sink+span+recent, 1: whole sequence is span, 2: mixed incl. no span */
    int max_len;
    double logit_scale; /* larger: peakier softmax */
} dec_case;

static void seq_layout(const dec_case *c, int b, uint64_t *rng, rk_seq_info *s) {
    int len = c->max_len - (b % 3) * (c->max_len / 5);
    if (len < 1) len = 1;
    s->seq_len = len;
    int mode = c->span_mode == 2 ? b % 3 : c->span_mode;
    if (mode == 0) {
        int sink = 4 + (int)(splitmix(rng) % 37);
        int recent = 5 + (int)(splitmix(rng) % 43);
        if (sink + recent >= len) { sink = len / 4; recent = len / 4; }
        s->span_begin = sink;
        s->span_len = len - sink - recent;
    } else if (mode == 1) {
        s->span_begin = 0;
        s->span_len = len;
    } else {
        s->span_begin = 0;
        s->span_len = 0;
    }
}

static void run_decode_case(rk_context *ctx, const dec_case *c, rk_dtype dt, int sparse) {
    uint64_t rng = g_seed ^ (uint64_t)(uintptr_t)c->name ^ ((uint64_t)dt << 40) ^ ((uint64_t)sparse << 50);
    rk_seq_info *seqs = malloc(sizeof(rk_seq_info) * (size_t)c->B);
    int max_full = 1, max_span = 1;
    for (int b = 0; b < c->B; b++) {
        seq_layout(c, b, &rng, &seqs[b]);
        int full = sparse ? seqs[b].seq_len - seqs[b].span_len : seqs[b].seq_len;
        if (full > max_full) max_full = full;
        if (seqs[b].span_len > max_span) max_span = seqs[b].span_len;
    }
    const int T = c->max_len;
    const size_t pad = (size_t)c->pad * rk_dtype_size(dt);
    dev_tensor q, kf, ks, v, out, lse;
    memset(&ks, 0, sizeof ks);
    make_tensor(ctx, &q, dt, c->B, c->Hq, 1, c->d, RK_LAYOUT_BHTC, pad, &rng, c->logit_scale, 0);
    make_tensor(ctx, &kf, dt, c->B, c->Hkv, max_full, c->d, c->layout, pad, &rng, 1.0, 0.1);
    if (sparse) make_tensor(ctx, &ks, dt, c->B, c->Hkv, max_span, c->r, c->layout, pad, &rng, 2.0, 0.0);
    make_tensor(ctx, &v, dt, c->B, c->Hkv, T, c->dv, c->layout, pad, &rng, 1.0, 0.2);
    make_tensor(ctx, &out, dt, c->B, c->Hq, 1, c->dv, RK_LAYOUT_BHTC, pad, &rng, 0, 0);
    make_tensor(ctx, &lse, RK_F32, c->B, c->Hq, 1, 1, RK_LAYOUT_BHTC, 0, &rng, 0, 0);

    rk_rotation *rot = NULL;
    size_t nh = (size_t)c->B * c->Hkv;
    float *R = malloc(sizeof(float) * nh * c->d * (c->r ? c->r : 1));
    float *dmu = malloc(sizeof(float) * nh * c->d);
    if (sparse) {
        rk_rotation_config cfg;
        rk_rotation_config_init(&cfg);
        cfg.n_seq = c->B; cfg.n_kv_heads = c->Hkv; cfg.n_q_heads = c->Hq;
        cfg.head_dim = c->d; cfg.rank = c->r;
        CHECK_RK(rk_rotation_create(ctx, &cfg, &rot));
        random_basis(&rng, (int)nh, c->d, c->r, R, dmu);
        CHECK_RK(rk_rotation_set_basis(rot, R, dmu));
    }
    rk_decode_args a;
    rk_decode_args_init(&a);
    a.q = &q.t; a.k_full = &kf.t; a.k_span = sparse ? &ks.t : NULL; a.v = &v.t;
    a.rot = rot; a.seqs = seqs; a.out = &out.t; a.lse = &lse.t; a.n_split = c->n_split;

    poison(ctx, &out);
    poison(ctx, &lse);
    CHECK_RK(sparse ? rk_decode_sparse(ctx, &a) : rk_decode_dense(ctx, &a));
    size_t n_out = (size_t)c->B * c->Hq * c->dv, n_lse = (size_t)c->B * c->Hq;
    float *got = malloc(sizeof(float) * n_out), *got_lse = malloc(sizeof(float) * n_lse);
    read_dense(ctx, &out, got);
    read_dense(ctx, &lse, got_lse);

    rk_ref_batch in = {c->B, c->Hq, c->Hkv, c->d, c->dv, c->r, max_full, max_span, T,
                       q.stored, kf.stored, sparse ? ks.stored : NULL, v.stored, R, dmu, seqs, 0.0};
    double *ref = malloc(sizeof(double) * n_out), *ref_lse = malloc(sizeof(double) * n_lse);
    rk_ref_decode_batch(&in, !sparse, ref, ref_lse);
    double lse_err = 0;
    for (size_t i = 0; i < n_lse; i++) {
        double e = fabs((double)got_lse[i] - ref_lse[i]) / (1.0 + fabs(ref_lse[i]));
        if (!(e <= lse_err)) lse_err = isnan(e) ? NAN : e;
        if (isnan(lse_err)) break;
    }
    char what[160];
    snprintf(what, sizeof what, "%s %s out", sparse ? "sparse" : "dense", c->name);
    report(what, dt_name(dt), rel_err(got, ref, n_out), out_tol(dt));
    snprintf(what, sizeof what, "%s %s lse", sparse ? "sparse" : "dense", c->name);
    report(what, dt_name(dt), lse_err, 2e-5);

    free(got); free(got_lse); free(ref); free(ref_lse); free(R); free(dmu); free(seqs);
    rk_rotation_destroy(rot);
    free_tensor(&q); free_tensor(&kf); free_tensor(&v); free_tensor(&out); free_tensor(&lse);
    if (sparse) free_tensor(&ks);
}

static void run_prefill(rk_context *ctx, rk_dtype dt, int B, int H, int T, int d, int r, double bias) {
    uint64_t rng = g_seed ^ 0x77ull ^ ((uint64_t)dt << 20) ^ ((uint64_t)d << 30);
    dev_tensor keys;
    make_tensor(ctx, &keys, dt, B, H, T, d, RK_LAYOUT_BHTC, 0, &rng, 1.0, bias);
    /* anisotropic keys so the covariance has structure */
    int32_t *n_tok = malloc(sizeof(int32_t) * (size_t)B);
    for (int b = 0; b < B; b++) n_tok[b] = T - (b * T) / (2 * B);
    rk_rotation_config cfg;
    rk_rotation_config_init(&cfg);
    cfg.n_seq = B; cfg.n_kv_heads = H; cfg.n_q_heads = H; cfg.head_dim = d; cfg.rank = r;
    cfg.method = RK_METHOD_PCA_PLAIN;
    rk_rotation *rot = NULL;
    CHECK_RK(rk_rotation_create(ctx, &cfg, &rot));
    CHECK_RK(rk_rotation_accumulate(rot, &keys.t, n_tok));
    size_t nh = (size_t)B * H;
    double *mean = malloc(sizeof(double) * nh * d), *cov = malloc(sizeof(double) * nh * d * d);
    double *rmean = malloc(sizeof(double) * d), *rcov = malloc(sizeof(double) * d * d);
    double *kd = malloc(sizeof(double) * (size_t)T * d);
    CHECK_RK(rk_rotation_get_moments(rot, mean, cov));
    double em = 0, ec_num = 0, ec_den = 0, em_den = 0;
    for (size_t h = 0; h < nh; h++) {
        int b = (int)(h / H), n = n_tok[b];
        for (size_t i = 0; i < (size_t)n * d; i++) kd[i] = keys.stored[h * (size_t)T * d + i];
        rk_ref_moments(kd, n, d, rmean, rcov);
        for (int i = 0; i < d; i++) {
            em += (mean[h * d + i] - rmean[i]) * (mean[h * d + i] - rmean[i]);
            em_den += rmean[i] * rmean[i];
        }
        for (int i = 0; i < d * d; i++) {
            double e = cov[h * d * d + i] - rcov[i];
            ec_num += e * e;
            ec_den += rcov[i] * rcov[i];
        }
    }
    char what[160];
    snprintf(what, sizeof what, "moments B%d H%d T%d d%d mean(bias %.0f)", B, H, T, d, bias);
    report(what, dt_name(dt), sqrt(em / (em_den > 0 ? em_den : 1)), 1e-6);
    snprintf(what, sizeof what, "moments B%d H%d T%d d%d covariance", B, H, T, d);
    report(what, dt_name(dt), sqrt(ec_num / ec_den), 1e-5);

    /* compress against the reference with the basis the rotation holds */
    CHECK_RK(rk_rotation_finalize(rot));
    float *R = malloc(sizeof(float) * nh * d * r), *dmu = malloc(sizeof(float) * nh * d);
    CHECK_RK(rk_rotation_get_basis(rot, R, dmu));
    const int off = 37, cap = T + off + 5;
    dev_tensor cache;
    make_tensor(ctx, &cache, dt, B, H, cap, r, RK_LAYOUT_BHTC, 0, &rng, 0, 0);
    poison(ctx, &cache);
    CHECK_RK(rk_compress(ctx, rot, &keys.t, &cache.t, off));
    float *got = malloc(sizeof(float) * nh * cap * r);
    read_dense(ctx, &cache, got);
    double *Rd = malloc(sizeof(double) * d * r), *ref = malloc(sizeof(double) * (size_t)T * r);
    double num = 0, den = 0;
    int nan_outside = 1;
    for (size_t h = 0; h < nh; h++) {
        for (size_t i = 0; i < (size_t)T * d; i++) kd[i] = keys.stored[h * (size_t)T * d + i];
        for (int i = 0; i < d * r; i++) Rd[i] = R[h * d * r + i];
        rk_ref_compress(kd, Rd, T, d, r, ref);
        for (int t = 0; t < T; t++)
            for (int j = 0; j < r; j++) {
                double e = got[(h * cap + off + t) * r + j] - ref[(size_t)t * r + j];
                num += e * e;
                den += ref[(size_t)t * r + j] * ref[(size_t)t * r + j];
            }
        /* rows outside [off, off+T) must be untouched (still poisoned) */
        for (int t = 0; t < cap; t++)
            if (t < off || t >= off + T) nan_outside &= isnan(got[(h * cap + t) * r]);
    }
    snprintf(what, sizeof what, "compress B%d H%d T%d d%d r%d at row %d", B, H, T, d, r, off);
    report(what, dt_name(dt), nan_outside ? sqrt(num / den) : NAN, out_tol(dt));
    free(got); free(Rd); free(ref); free(R); free(dmu); free_tensor(&cache);
    free(mean); free(cov); free(rmean); free(rcov); free(kd); free(n_tok);
    rk_rotation_destroy(rot);
    free_tensor(&keys);
}

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

/* RK_SOLVER_SUBSPACE fitted by the backend (rotation_fit) against the same solver on the host
 * (cpu backend: same start, same iterations): bases by largest principal angle, Ritz values by
 * relative difference. Keys with a decaying spectrum so the subspace is well defined. */
static void run_fit(rk_context *ctx, int B, int H, int T, int d, int r) {
    uint64_t rng = g_seed ^ 0x5151ull ^ ((uint64_t)d << 8);
    size_t n = (size_t)B * H * T * d;
    float *keys = malloc(sizeof(float) * n), *qs = malloc(sizeof(float) * (size_t)B * H * 4 * d);
    for (size_t row = 0; row < n / d; row++)
        for (int i = 0; i < d; i++) keys[row * d + i] = (float)(uni(&rng) * pow(0.9, i % 64) + 0.2);
    for (size_t i = 0; i < (size_t)B * H * 4 * d; i++) qs[i] = (float)(1.0 + 0.5 * uni(&rng));
    float *R[2];
    double *ev[2];
    const char *backends[2] = {g_backend, "cpu"};
    for (int k = 0; k < 2; k++) {
        rk_context *c2 = k == 0 ? ctx : NULL;
        if (k == 1) {
            rk_context_options o;
            rk_context_options_init(&o);
            CHECK_RK(rk_context_create(backends[1], 0, &o, &c2));
        }
        rk_buffer *kb, *qb;
        CHECK_RK(rk_buffer_alloc(c2, n * 4, &kb));
        CHECK_RK(rk_buffer_alloc(c2, (size_t)B * H * 4 * d * 4, &qb));
        CHECK_RK(rk_buffer_upload(kb, 0, keys, n * 4));
        CHECK_RK(rk_buffer_upload(qb, 0, qs, (size_t)B * H * 4 * d * 4));
        rk_tensor kt, qt;
        CHECK_RK(rk_tensor_init(&kt, kb, 0, RK_F32, B, H, T, d, RK_LAYOUT_BHTC));
        CHECK_RK(rk_tensor_init(&qt, qb, 0, RK_F32, B, H, 4, d, RK_LAYOUT_BHTC));
        rk_rotation_config cfg;
        rk_rotation_config_init(&cfg);
        cfg.n_seq = B; cfg.n_kv_heads = H; cfg.n_q_heads = H; cfg.head_dim = d; cfg.rank = r;
        cfg.solver = RK_SOLVER_SUBSPACE;
        rk_rotation *rot = NULL;
        CHECK_RK(rk_rotation_create(c2, &cfg, &rot));
        CHECK_RK(rk_rotation_accumulate(rot, &kt, NULL));
        CHECK_RK(rk_rotation_observe(rot, &qt, NULL));
        CHECK_RK(rk_rotation_finalize(rot));
        R[k] = malloc(sizeof(float) * (size_t)B * H * d * r);
        ev[k] = malloc(sizeof(double) * (size_t)B * H * d);
        CHECK_RK(rk_rotation_get_basis(rot, R[k], NULL));
        CHECK_RK(rk_rotation_get_spectrum(rot, ev[k]));
        rk_rotation_destroy(rot);
        rk_buffer_free(kb); rk_buffer_free(qb);
        if (k == 1) rk_context_destroy(c2);
    }
    double angle = 0, ev_err = 0;
    double *A = malloc(sizeof(double) * d * r), *Bm = malloc(sizeof(double) * d * r);
    for (int h = 0; h < B * H; h++) {
        for (int i = 0; i < d * r; i++) {
            A[i] = R[0][(size_t)h * d * r + i];
            Bm[i] = R[1][(size_t)h * d * r + i];
        }
        double a = subspace_distance(A, Bm, d, r);
        if (!(a <= angle)) angle = a;
        for (int j = 0; j < r; j++) {
            double e = fabs(ev[0][(size_t)h * d + j] - ev[1][(size_t)h * d + j]) / fabs(ev[1][(size_t)h * d]);
            if (!(e <= ev_err)) ev_err = e;
        }
    }
    char what[160];
    snprintf(what, sizeof what, "subspace fit B%d H%d d%d r%d: distance to host solver", B, H, d, r);
    report(what, "f32", angle, 1e-4);
    snprintf(what, sizeof what, "subspace fit B%d H%d d%d r%d: Ritz values", B, H, d, r);
    report(what, "f32", ev_err, 1e-5);
    free(A); free(Bm); free(keys); free(qs);
    for (int k = 0; k < 2; k++) { free(R[k]); free(ev[k]); }
}

/* Back-to-back sparse decodes on a context without finite checks, so each decode follows a
 * decode on the stream: the CUDA backend then loads and computes before the previous kernel has
 * finished (its writes wait). Two decodes with different queries alternate, A B A B (a race on
 * the split partials would mix them); then a decode whose query is the previous decode's output
 * (the backend must see the alias and wait before reading it). */
static void run_back_to_back(rk_context *ctx, rk_dtype dt, int n_split) {
    const int B = 2, Hq = 28, Hkv = 4, d = 128, r = 32, T = 1000;
    uint64_t rng = g_seed ^ 0xb2bull ^ ((uint64_t)dt << 40) ^ ((uint64_t)n_split << 48);
    rk_seq_info seqs[2];
    dec_case c = {"b2b", B, Hq, Hkv, d, d, r, RK_LAYOUT_BHTC, 0, n_split, 0, T, 1.0};
    int max_full = 1, max_span = 1;
    for (int b = 0; b < B; b++) {
        seq_layout(&c, b, &rng, &seqs[b]);
        if (seqs[b].seq_len - seqs[b].span_len > max_full) max_full = seqs[b].seq_len - seqs[b].span_len;
        if (seqs[b].span_len > max_span) max_span = seqs[b].span_len;
    }
    dev_tensor q[2], kf, ks, v, out[2], lse[2];
    for (int i = 0; i < 2; i++) make_tensor(ctx, &q[i], dt, B, Hq, 1, d, RK_LAYOUT_BHTC, 0, &rng, 1.0, 0);
    make_tensor(ctx, &kf, dt, B, Hkv, max_full, d, RK_LAYOUT_BHTC, 0, &rng, 1.0, 0.1);
    make_tensor(ctx, &ks, dt, B, Hkv, max_span, r, RK_LAYOUT_BHTC, 0, &rng, 2.0, 0.0);
    make_tensor(ctx, &v, dt, B, Hkv, T, d, RK_LAYOUT_BHTC, 0, &rng, 1.0, 0.2);
    for (int i = 0; i < 2; i++) {
        make_tensor(ctx, &out[i], dt, B, Hq, 1, d, RK_LAYOUT_BHTC, 0, &rng, 0, 0);
        make_tensor(ctx, &lse[i], RK_F32, B, Hq, 1, 1, RK_LAYOUT_BHTC, 0, &rng, 0, 0);
    }
    rk_rotation *rot = NULL;
    rk_rotation_config cfg;
    rk_rotation_config_init(&cfg);
    cfg.n_seq = B; cfg.n_kv_heads = Hkv; cfg.n_q_heads = Hq; cfg.head_dim = d; cfg.rank = r;
    CHECK_RK(rk_rotation_create(ctx, &cfg, &rot));
    float *R = malloc(sizeof(float) * B * Hkv * d * r), *dmu = malloc(sizeof(float) * B * Hkv * d);
    random_basis(&rng, B * Hkv, d, r, R, dmu);
    CHECK_RK(rk_rotation_set_basis(rot, R, dmu));
    rk_decode_args a[2];
    for (int i = 0; i < 2; i++) {
        rk_decode_args_init(&a[i]);
        a[i].q = &q[i].t; a[i].k_full = &kf.t; a[i].k_span = &ks.t; a[i].v = &v.t; a[i].rot = rot;
        a[i].seqs = seqs; a[i].out = &out[i].t; a[i].lse = &lse[i].t; a[i].n_split = n_split;
    }
    const size_t n_out = (size_t)B * Hq * d, n_lse = (size_t)B * Hq;
    float *got = malloc(sizeof(float) * n_out), *got_lse = malloc(sizeof(float) * n_lse);
    double *ref = malloc(sizeof(double) * n_out), *ref_lse = malloc(sizeof(double) * n_lse);
    rk_ref_batch in = {B, Hq, Hkv, d, d, r, max_full, max_span, T, NULL, kf.stored, ks.stored, v.stored,
                       R, dmu, seqs, 0.0};
    char what[160];
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < 2; i++) { poison(ctx, &out[i]); poison(ctx, &lse[i]); }
        float *qb = NULL;
        if (pass == 0) {
            for (int k = 0; k < 4; k++) CHECK_RK(rk_decode_sparse(ctx, &a[k % 2]));
        } else { /* A, then a decode reading A's output as its query */
            rk_decode_args chain = a[1];
            chain.q = &out[0].t;
            CHECK_RK(rk_decode_sparse(ctx, &a[0]));
            CHECK_RK(rk_decode_sparse(ctx, &chain));
            qb = malloc(sizeof(float) * n_out);
            read_dense(ctx, &out[0], qb);
        }
        for (int i = 0; i < 2; i++) {
            read_dense(ctx, &out[i], got);
            read_dense(ctx, &lse[i], got_lse);
            in.q = pass == 1 && i == 1 ? qb : q[i].stored;
            rk_ref_decode_batch(&in, 0, ref, ref_lse);
            double lse_err = 0;
            for (size_t j = 0; j < n_lse; j++) {
                double e = fabs((double)got_lse[j] - ref_lse[j]) / (1.0 + fabs(ref_lse[j]));
                if (!(e <= lse_err)) lse_err = isnan(e) ? NAN : e;
                if (isnan(lse_err)) break;
            }
            snprintf(what, sizeof what, "back-to-back %s split %d decode %d", pass ? "chained" : "A B A B",
                     n_split, i);
            report(what, dt_name(dt), rel_err(got, ref, n_out) + lse_err, out_tol(dt));
        }
        free(qb);
    }
    free(got); free(got_lse); free(ref); free(ref_lse); free(R); free(dmu);
    rk_rotation_destroy(rot);
    for (int i = 0; i < 2; i++) { free_tensor(&q[i]); free_tensor(&out[i]); free_tensor(&lse[i]); }
    free_tensor(&kf); free_tensor(&ks); free_tensor(&v);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--backend") && i + 1 < argc) g_backend = argv[++i];
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) g_seed = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--quick")) g_quick = 1;
        else { fprintf(stderr, "usage: cuda_check [--backend cuda] [--seed N] [--quick]\n"); return 2; }
    }
    rk_context *ctx = NULL;
    size_t n_dev = 0;
    rk_status st = rk_device_count(g_backend, &n_dev);
    if (st != RK_OK || n_dev == 0) {
        printf("SKIP: backend %s has no device (%s)\n", g_backend, rk_status_name(st));
        return 77;
    }
    rk_context_options o;
    rk_context_options_init(&o);
    CHECK_RK(rk_context_create(g_backend, 0, &o, &ctx));
    char name[256];
    CHECK_RK(rk_context_device_description(ctx, name, sizeof name));
    printf("backend %s: %s\n", g_backend, name);

    const dec_case cases[] = {
        /* name               B  Hq Hkv  d  dv   r  layout          pad split mode len  scale */
        {"g7 r32 sink+recent", 2, 28, 4, 128, 128, 32, RK_LAYOUT_BHTC, 0, 0, 0, 1000, 1.0},
        {"g7 r32 split7", 2, 28, 4, 128, 128, 32, RK_LAYOUT_BHTC, 0, 7, 0, 1000, 1.0},
        {"g7 r64 peaky split3", 3, 28, 4, 128, 128, 64, RK_LAYOUT_BHTC, 0, 3, 0, 777, 4.0},
        {"g1 r32 token-major", 2, 8, 8, 128, 128, 32, RK_LAYOUT_BTHC, 0, 0, 0, 600, 1.0},
        {"g2 r16", 1, 8, 4, 128, 128, 16, RK_LAYOUT_BHTC, 0, 5, 0, 300, 1.0},
        {"g4 r128 whole-span", 2, 16, 4, 128, 128, 128, RK_LAYOUT_BHTC, 0, 0, 1, 400, 1.0},
        {"g8 r32 mixed spans", 3, 32, 4, 128, 128, 32, RK_LAYOUT_BHTC, 0, 0, 2, 500, 1.0},
        {"g16 (2 chunks) r32", 2, 32, 2, 128, 128, 32, RK_LAYOUT_BHTC, 0, 4, 0, 333, 1.0},
        {"fallback d64 dv48 r8 g3", 2, 6, 2, 64, 48, 8, RK_LAYOUT_BHTC, 0, 0, 0, 250, 1.0},
        {"fallback misaligned g7", 2, 28, 4, 128, 128, 32, RK_LAYOUT_BHTC, 1, 3, 0, 300, 1.0},
        {"B70 seq table", 70, 4, 2, 128, 128, 32, RK_LAYOUT_BHTC, 0, 2, 2, 100, 1.0},
        {"short seqs", 3, 8, 2, 128, 128, 32, RK_LAYOUT_BHTC, 0, 0, 0, 9, 1.0},
        {"long 20000 auto split", 1, 28, 4, 128, 128, 32, RK_LAYOUT_BHTC, 0, 0, 0, 20000, 1.0},
    };
    const rk_dtype dts[] = {RK_F32, RK_F16, RK_BF16};
    const size_t n_cases = sizeof cases / sizeof cases[0];
    for (size_t di = 0; di < 3; di++)
        for (size_t i = 0; i < n_cases; i++) {
            /* quick: f16 only, and not the long or wide-batch cases */
            if (g_quick && (dts[di] != RK_F16 || cases[i].max_len > 1000 || cases[i].B > 8)) continue;
            run_decode_case(ctx, &cases[i], dts[di], 1);
            run_decode_case(ctx, &cases[i], dts[di], 0);
        }
    for (size_t di = 0; di < 3; di++) {
        if (g_quick && dts[di] != RK_F16) continue;
        run_prefill(ctx, dts[di], 2, 4, 300, 128, 32, 0.0);
        run_prefill(ctx, dts[di], 1, 2, 1000, 96, 24, 5.0); /* d not a tile multiple; offset mean */
    }
    {
        rk_context *ctx2 = NULL;
        rk_context_options o2;
        rk_context_options_init(&o2);
        o2.check_finite = 0;
        CHECK_RK(rk_context_create(g_backend, 0, &o2, &ctx2));
        for (size_t di = 0; di < 3; di++) {
            if (g_quick && dts[di] != RK_F16) continue;
            run_back_to_back(ctx2, dts[di], 0);
            run_back_to_back(ctx2, dts[di], 7);
        }
        rk_context_destroy(ctx2);
    }
    run_fit(ctx, 2, 3, 700, 64, 16);
    run_fit(ctx, 1, 2, 2000, 128, 64);
    if (!g_quick) run_fit(ctx, 1, 4, 8192, 128, 32);
    rk_context_destroy(ctx);
    printf("%d of %d checks passed\n", g_checks - g_failures, g_checks);
    return g_failures ? 1 : 0;
}
