/* Reference outputs (see refs.h). Every reference decode reads its inputs as f32, exactly as a
 * backend gets them, so the stored outputs are the exact answer for the stored inputs. */
#include "refs.h"

#include "reference.h"
#include "rotatek.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int vg_fail(char *err, size_t err_len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return 1;
}

static void *vg_alloc(tc_case *c, tc_array_id id) {
    int64_t shape[TC_NPY_MAX_DIMS];
    int n = tc_array_shape(c, id, shape);
    tc_npy *a = &c->arr[id];
    a->type = tc_array_type(id);
    a->ndim = n;
    a->count = 1;
    for (int i = 0; i < n; i++) { a->shape[i] = shape[i]; a->count *= (size_t)shape[i]; }
    a->data = calloc(a->count, tc_npy_type_size(a->type));
    return a->data;
}

static void vg_widen(const float *x, size_t n, double *y) {
    for (size_t i = 0; i < n; i++) y[i] = x[i];
}

/* Mean q^2 per channel of each (b, g) over the group's query heads and observed rows, summed in
 * the order heads, rows, channels (the order the library's observe uses). */
static void vg_qms(const tc_case *c, double *qms) {
    const float *obs = tc_f32(c, TC_OBS_QUERIES);
    int group = c->Hq / c->Hkv, d = c->d;
    for (int b = 0; b < c->B; b++)
        for (int g = 0; g < c->Hkv; g++) {
            double *acc = qms + ((size_t)b * c->Hkv + g) * d;
            int n = c->seqs[b].obs_len;
            for (int h = g * group; h < (g + 1) * group; h++) {
                const float *q = obs + ((size_t)b * c->Hq + h) * c->W * d;
                for (int t = 0; t < n; t++)
                    for (int i = 0; i < d; i++) acc[i] += (double)q[t * d + i] * q[t * d + i];
            }
            for (int i = 0; i < d; i++) acc[i] = n > 0 ? acc[i] / ((double)group * n) : 0.0;
        }
}

/* R, δμ and the spectrum from the exact solver, through the public API on the CPU backend. */
static int vg_fit(tc_case *c, const float *span, char *err, size_t err_len) {
    rk_context_options o;
    rk_context_options_init(&o);
    o.n_threads = 1; /* one fixed summation order */
    rk_context *ctx = NULL;
    rk_rotation *rot = NULL;
    rk_buffer *kbuf = NULL, *qbuf = NULL;
    int32_t *lens = malloc(sizeof(int32_t) * (size_t)c->B * 2);
    size_t nh = (size_t)c->B * c->Hkv, d = (size_t)c->d, r = (size_t)c->r;
    float *R = malloc(sizeof(float) * nh * d * r), *dmu = malloc(sizeof(float) * nh * d);
    double *mean = malloc(sizeof(double) * nh * d), *cov = malloc(sizeof(double) * nh * d * d);
    int rc = 1;
    if (!lens || !R || !dmu || !mean || !cov) {
        vg_fail(err, err_len, "out of memory");
        goto done;
    }
    rk_status st = rk_context_create("cpu", 0, &o, &ctx);
    rk_rotation_config cfg;
    tc_case_rotation_config(c, RK_SOLVER_EXACT, &cfg);
    size_t kbytes = nh * c->S * d * sizeof(float), qbytes = c->arr[TC_OBS_QUERIES].count * sizeof(float);
    if (st == RK_OK) st = rk_rotation_create(ctx, &cfg, &rot);
    if (st == RK_OK) st = rk_buffer_alloc(ctx, kbytes, &kbuf);
    if (st == RK_OK) st = rk_buffer_alloc(ctx, qbytes, &qbuf);
    if (st == RK_OK) st = rk_buffer_upload(kbuf, 0, span, kbytes);
    if (st == RK_OK) st = rk_buffer_upload(qbuf, 0, tc_f32(c, TC_OBS_QUERIES), qbytes);
    rk_tensor kt, qt;
    if (st == RK_OK) st = rk_tensor_init(&kt, kbuf, 0, RK_F32, c->B, c->Hkv, c->S, c->d, RK_LAYOUT_BHTC);
    if (st == RK_OK) st = rk_tensor_init(&qt, qbuf, 0, RK_F32, c->B, c->Hq, c->W, c->d, RK_LAYOUT_BHTC);
    for (int b = 0; b < c->B; b++) {
        lens[b] = c->seqs[b].span_len;
        lens[c->B + b] = c->seqs[b].obs_len;
    }
    if (st == RK_OK) st = rk_rotation_accumulate(rot, &kt, lens);
    if (st == RK_OK) st = rk_rotation_observe(rot, &qt, lens + c->B);
    if (st == RK_OK) st = rk_rotation_finalize(rot);
    if (st == RK_OK) st = rk_rotation_get_basis(rot, R, dmu);
    if (st == RK_OK) st = rk_rotation_get_spectrum(rot, vg_alloc(c, TC_REF_EIGENVALUES));
    if (st == RK_OK) st = rk_rotation_get_moments(rot, mean, cov);
    if (st != RK_OK) {
        vg_fail(err, err_len, "rotation on the cpu backend: %s (%s)", rk_status_name(st),
                ctx ? rk_context_last_error(ctx) : "no context");
        goto done;
    }
    /* The backend's moments feed the solver: they must agree with the reference moments. */
    double worst = 0;
    for (size_t i = 0; i < nh * d * d; i++) {
        double ref = tc_f64(c, TC_REF_COV)[i], e = fabs(cov[i] - ref) / (fabs(ref) + 1e-30);
        if (fabs(ref) > 1e-12 && e > worst) worst = e;
    }
    if (worst > 1e-9) {
        vg_fail(err, err_len, "cpu backend moments differ from rk_ref_moments by %.3g (relative)", worst);
        goto done;
    }
    double *Rd = vg_alloc(c, TC_REF_R), *dmud = vg_alloc(c, TC_REF_DMU);
    if (!Rd || !dmud) {
        vg_fail(err, err_len, "out of memory");
        goto done;
    }
    vg_widen(R, nh * d * r, Rd);
    vg_widen(dmu, nh * d, dmud);
    rc = 0;
done:
    rk_buffer_free(kbuf);
    rk_buffer_free(qbuf);
    rk_rotation_destroy(rot);
    rk_context_destroy(ctx);
    free(lens); free(R); free(dmu); free(mean); free(cov);
    return rc;
}

static void vg_moments(tc_case *c, const float *span, double *scratch) {
    double *mean = vg_alloc(c, TC_REF_MEAN), *cov = vg_alloc(c, TC_REF_COV);
    int d = c->d;
    for (int b = 0; b < c->B; b++)
        for (int g = 0; g < c->Hkv; g++) {
            size_t bg = (size_t)b * c->Hkv + g;
            int n = c->seqs[b].span_len;
            vg_widen(span + bg * c->S * d, (size_t)n * d, scratch);
            rk_ref_moments(scratch, n, d, mean + bg * d, cov + bg * d * d);
        }
}

/* k_span = span keys · R over all S rows (padding rows are zero keys, so zero). */
static void vg_compress(tc_case *c, const float *span, double *scratch) {
    double *out = vg_alloc(c, TC_REF_KSPAN);
    int d = c->d, r = c->r;
    for (size_t bg = 0; bg < (size_t)c->B * c->Hkv; bg++) {
        vg_widen(span + bg * c->S * d, (size_t)c->S * d, scratch);
        rk_ref_compress(scratch, tc_f64(c, TC_REF_R) + bg * d * r, c->S, d, r, out + bg * c->S * r);
    }
}

/* SparK selection of every span row with qnorm = sqrt(qms); padding rows select from a zero key. */
static void vg_spark(tc_case *c, const float *span, double *scratch) {
    double *vals = vg_alloc(c, TC_REF_SPARK_VALUES), *fill = vg_alloc(c, TC_REF_SPARK_FILL);
    int32_t *idx = vg_alloc(c, TC_REF_SPARK_INDICES);
    int d = c->d, r = c->r;
    double *qnorm = scratch + d;
    for (size_t bg = 0; bg < (size_t)c->B * c->Hkv; bg++) {
        for (int i = 0; i < d; i++) qnorm[i] = sqrt(tc_f64(c, TC_REF_QMS)[bg * d + i]);
        for (int t = 0; t < c->S; t++) {
            size_t row = bg * c->S + t;
            vg_widen(span + row * d, (size_t)d, scratch);
            rk_ref_spark_token(scratch, qnorm, d, r, vals + row * r, idx + row * r, fill + row);
        }
    }
}

static int vg_decode(tc_case *c, const float *full, int F, char *err, size_t err_len) {
    size_t nh = (size_t)c->B * c->Hkv, d = (size_t)c->d, r = (size_t)c->r;
    float *kspan = malloc(sizeof(float) * nh * c->S * r), *R = malloc(sizeof(float) * nh * d * r);
    float *dmu = malloc(sizeof(float) * nh * d);
    if (!kspan || !R || !dmu) { free(kspan); free(R); free(dmu); return vg_fail(err, err_len, "out of memory"); }
    /* the decode inputs are f32: round the compressed keys as a backend would receive them */
    for (size_t i = 0; i < nh * c->S * r; i++) kspan[i] = (float)tc_f64(c, TC_REF_KSPAN)[i];
    for (size_t i = 0; i < nh * d * r; i++) R[i] = (float)tc_f64(c, TC_REF_R)[i];
    for (size_t i = 0; i < nh * d; i++) dmu[i] = (float)tc_f64(c, TC_REF_DMU)[i];
    rk_seq_info *seqs = malloc(sizeof(rk_seq_info) * (size_t)c->B);
    if (!seqs) { free(kspan); free(R); free(dmu); return vg_fail(err, err_len, "out of memory"); }
    for (int b = 0; b < c->B; b++)
        seqs[b] = (rk_seq_info){c->seqs[b].seq_len, c->seqs[b].span_begin, c->seqs[b].span_len};
    rk_ref_batch in = {c->B, c->Hq, c->Hkv, c->d, c->dv, c->r, F, c->S, c->T,
                       tc_f32(c, TC_QUERY), full, kspan, tc_f32(c, TC_VALUES), R, dmu, seqs, c->scale};
    rk_ref_decode_batch(&in, 0, vg_alloc(c, TC_REF_OUT_SPARSE), vg_alloc(c, TC_REF_LSE_SPARSE));
    rk_ref_batch dense = in;
    dense.k_full = tc_f32(c, TC_KEYS);
    dense.Tf = c->T;
    rk_ref_decode_batch(&dense, 1, vg_alloc(c, TC_REF_OUT_DENSE), vg_alloc(c, TC_REF_LSE_DENSE));
    free(kspan); free(R); free(dmu); free(seqs);
    return 0;
}

/* SparK decode: the stored values are rounded to f32 first (the API keeps fill as f32 and the
 * values in the keys' dtype). */
static int vg_decode_spark(tc_case *c, const float *full, int F, char *err, size_t err_len) {
    int d = c->d, dv = c->dv, r = c->r, group = c->Hq / c->Hkv;
    size_t cap = (size_t)(c->T > F ? c->T : F) * (d > dv ? d : dv) + (size_t)c->S * (r + 1) + (size_t)d;
    double *buf = malloc(sizeof(double) * cap * 2);
    if (!buf) return vg_fail(err, err_len, "out of memory");
    double *out = vg_alloc(c, TC_REF_OUT_SPARK), *lse = vg_alloc(c, TC_REF_LSE_SPARK);
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->Hq; h++) {
            size_t bg = (size_t)b * c->Hkv + h / group, bh = (size_t)b * c->Hq + h;
            double *q = buf, *kf = q + d, *v = kf + (size_t)F * d, *vals = v + (size_t)c->T * dv;
            double *fill = vals + (size_t)c->S * r;
            vg_widen(tc_f32(c, TC_QUERY) + bh * d, (size_t)d, q);
            vg_widen(full + bg * F * d, (size_t)F * d, kf);
            vg_widen(tc_f32(c, TC_VALUES) + bg * c->T * dv, (size_t)c->T * dv, v);
            for (size_t i = 0; i < (size_t)c->S * r; i++)
                vals[i] = (float)tc_f64(c, TC_REF_SPARK_VALUES)[bg * c->S * r + i];
            for (int t = 0; t < c->S; t++) fill[t] = (float)tc_f64(c, TC_REF_SPARK_FILL)[bg * c->S + t];
            rk_seq_info s = {c->seqs[b].seq_len, c->seqs[b].span_begin, c->seqs[b].span_len};
            rk_ref_decode_spark_head(q, kf, vals, tc_i32(c, TC_REF_SPARK_INDICES) + bg * c->S * r, fill,
                                     v, d, r, dv, s, c->scale, out + bh * dv, lse + bh);
        }
    free(buf);
    return 0;
}

int vg_refs_compute(tc_case *c, char *err, size_t err_len) {
    int F = tc_case_full_capacity(c), rc = 1;
    size_t nh = (size_t)c->B * c->Hkv, d = (size_t)c->d;
    float *span = calloc(nh * c->S * d, sizeof(float)), *full = calloc(nh * (size_t)F * d, sizeof(float));
    double *scratch = malloc(sizeof(double) * ((size_t)c->S * d + 2 * d));
    if (!span || !full || !scratch) {
        vg_fail(err, err_len, "out of memory");
        goto done;
    }
    tc_case_split_keys(c, span, full);
    vg_moments(c, span, scratch);
    vg_qms(c, vg_alloc(c, TC_REF_QMS));
    if (vg_fit(c, span, err, err_len)) goto done;
    vg_compress(c, span, scratch);
    vg_spark(c, span, scratch);
    if (vg_decode(c, full, F, err, err_len)) goto done;
    if (vg_decode_spark(c, full, F, err, err_len)) goto done;
    for (int id = TC_REF_MEAN; id < TC_N_ARRAYS; id++)
        if (!c->arr[id].data) {
            vg_fail(err, err_len, "out of memory");
            goto done;
        }
    rc = 0;
done:
    free(span); free(full); free(scratch);
    return rc;
}
