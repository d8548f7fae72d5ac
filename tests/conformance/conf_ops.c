/* The per-op checks (see conf_ops.h). Every op gets its inputs rounded to the dtype under test
 * and is compared with the case's stored double-precision reference. */
#include "conf_ops.h"

#include "conf_tensor.h"
#include "pca.h"
#include "tc_stats.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define CONF_TOKEN_OFFSET 3 /* compress rows land here, so rows before it must stay untouched */

typedef struct conf_run {
    conf_report *rep;
    rk_context *ctx;
    const char *backend;
    const tc_case *c;
    rk_dtype dt;
    int F;                 /* capacity of the compacted full-width keys */
    float *span, *full;    /* [B][Hkv][S][d], [B][Hkv][F][d] */
    float *R, *dmu, *kspan;/* the stored references as f32 */
} conf_run;

/* ---- rows --------------------------------------------------------------------------------- */

static void conf_row(conf_run *run, const char *op, const char *metric, double value,
                     double threshold, conf_outcome outcome, const char *fmt, ...) {
    conf_result r;
    memset(&r, 0, sizeof r);
    snprintf(r.backend, sizeof r.backend, "%s", run->backend);
    snprintf(r.case_name, sizeof r.case_name, "%s", run->c->name);
    snprintf(r.dtype, sizeof r.dtype, "%s", rk_dtype_name(run->dt));
    snprintf(r.op, sizeof r.op, "%s", op);
    snprintf(r.metric, sizeof r.metric, "%s", metric);
    r.value = value;
    r.threshold = threshold;
    r.outcome = outcome;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r.note, sizeof r.note, fmt, ap);
        va_end(ap);
    }
    conf_report_add(run->rep, &r);
}

/* A measured error against the threshold of `key` ("decode.out"), shown as `shown`; NaN fails. */
static void conf_measure_as(conf_run *run, const char *op, const char *key, const char *shown,
                            double value, const char *note) {
    double thr = conf_threshold(key, run->dt);
    conf_row(run, op, shown, value, thr, value <= thr ? CONF_PASS : CONF_FAIL, note ? "%s" : NULL, note);
}

static void conf_measure(conf_run *run, const char *op, const char *family, const char *metric,
                         double value, const char *note) {
    char key[64];
    snprintf(key, sizeof key, "%s.%s", family, metric);
    conf_measure_as(run, op, key, metric, value, note);
}

/* An API call that did not return RK_OK: unsupported is its own outcome, anything else fails. */
static void conf_status(conf_run *run, const char *op, const char *call, rk_status st) {
    if (st == RK_ERR_UNSUPPORTED)
        conf_row(run, op, "-", NAN, 0, CONF_UNSUPPORTED, "%s", rk_context_last_error(run->ctx));
    else
        conf_row(run, op, "-", NAN, 0, CONF_FAIL, "%s returned %s: %s", call, rk_status_name(st),
                 rk_context_last_error(run->ctx));
}

static void conf_guard(conf_run *run, const char *op, const char *what, const conf_tensor *t,
                       int64_t t0, int64_t t1) {
    long at = conf_tensor_guard_violation(t, t0, t1);
    if (at == -1) conf_row(run, op, "guard", 0, 0, CONF_PASS, NULL);
    else if (at == -2) conf_row(run, op, "guard", NAN, 0, CONF_FAIL, "%s: buffer download failed", what);
    else conf_row(run, op, "guard", 1, 0, CONF_FAIL, "%s: sentinel byte %ld of %zu overwritten", what, at, t->size);
}

/* ---- shared setup ------------------------------------------------------------------------- */

static rk_status conf_rotation(conf_run *run, rk_solver solver, rk_rotation **rot) {
    const tc_case *c = run->c;
    rk_rotation_config cfg;
    tc_case_rotation_config(c, solver, &cfg);
    return rk_rotation_create(run->ctx, &cfg, rot);
}

/* Observe the window's queries as f32 whatever the dtype: the query weights are host state, and
 * rounding them would move SparK's channel choice off the reference for no kernel's fault. */
static rk_status conf_observe(conf_run *run, rk_rotation *rot) {
    const tc_case *c = run->c;
    conf_tensor q;
    rk_status st = conf_tensor_create(run->ctx, &q, RK_F32, c->B, c->Hq, c->W, c->d, 0);
    int32_t *lens = malloc(sizeof(int32_t) * (size_t)c->B);
    if (!lens) st = RK_ERR_OUT_OF_MEMORY;
    for (int b = 0; st == RK_OK && b < c->B; b++) lens[b] = c->seqs[b].obs_len;
    if (st == RK_OK) st = conf_tensor_upload(&q, tc_f32(c, TC_OBS_QUERIES));
    if (st == RK_OK) st = rk_rotation_observe(rot, &q.t, lens);
    free(lens);
    conf_tensor_destroy(&q);
    return st;
}

/* ---- moments and basis fits -------------------------------------------------------------- */

/* Accumulate the span keys in `chunks` row ranges of one tensor (views with an offset). */
static rk_status conf_accumulate(conf_run *run, rk_rotation *rot, int chunks) {
    const tc_case *c = run->c;
    conf_tensor k;
    rk_status st = conf_tensor_create(run->ctx, &k, run->dt, c->B, c->Hkv, c->S, c->d, 0);
    int32_t *lens = malloc(sizeof(int32_t) * (size_t)c->B);
    if (!lens) st = RK_ERR_OUT_OF_MEMORY;
    if (st == RK_OK) st = conf_tensor_upload(&k, run->span);
    if (chunks > c->S) chunks = c->S;
    for (int i = 0; i < chunks && st == RK_OK; i++) {
        int t0 = c->S * i / chunks, t1 = c->S * (i + 1) / chunks; /* uneven when S % chunks */
        rk_tensor view = k.t;
        view.offset += (size_t)(t0 * view.nb[2]) * rk_dtype_size(view.dtype);
        view.ne[2] = t1 - t0;
        for (int b = 0; b < c->B; b++) {
            int n = c->seqs[b].span_len - t0;
            lens[b] = n < 0 ? 0 : n > t1 - t0 ? t1 - t0 : n;
        }
        st = rk_rotation_accumulate(rot, &view, lens);
    }
    free(lens);
    conf_tensor_destroy(&k);
    return st;
}

static void conf_check_moments(conf_run *run, rk_rotation *rot) {
    const tc_case *c = run->c;
    size_t nh = (size_t)c->B * c->Hkv, d = (size_t)c->d;
    double *mean = malloc(sizeof(double) * nh * d), *cov = malloc(sizeof(double) * nh * d * d);
    rk_status st = mean && cov ? rk_rotation_get_moments(rot, mean, cov) : RK_ERR_OUT_OF_MEMORY;
    if (st != RK_OK) {
        conf_status(run, "moments", "rk_rotation_get_moments", st);
    } else {
        double worst_mean = 0, worst_cov = 0;
        for (size_t h = 0; h < nh; h++) {
            if (c->seqs[h / (size_t)c->Hkv].span_len == 0) continue;
            double em = tc_nmse_f64(mean + h * d, tc_f64(c, TC_REF_MEAN) + h * d, d);
            double ec = tc_nmse_f64(cov + h * d * d, tc_f64(c, TC_REF_COV) + h * d * d, d * d);
            worst_mean = isnan(em) || em > worst_mean ? em : worst_mean;
            worst_cov = isnan(ec) || ec > worst_cov ? ec : worst_cov;
        }
        conf_measure(run, "moments", "moments", "mean", worst_mean, "worst head; 3 chunks");
        conf_measure(run, "moments", "moments", "cov", worst_cov, "worst head; 3 chunks");
    }
    free(mean);
    free(cov);
}

static void conf_check_exact_basis(conf_run *run, const float *R, const float *dmu, const double *eig) {
    const tc_case *c = run->c;
    size_t nh = (size_t)c->B * c->Hkv, d = (size_t)c->d, r = (size_t)c->r;
    double worst_R = 0, worst_orth = 0, worst_dmu = 0, worst_eig = 0, signs = 0;
    for (size_t h = 0; h < nh; h++) {
        const float *Rh = R + h * d * r;
        const double *Rref = tc_f64(c, TC_REF_R) + h * d * r;
        double sse = 0, energy = 0;
        for (size_t j = 0; j < r; j++) {
            double dot = 0;
            size_t big = 0;
            for (size_t i = 0; i < d; i++) {
                dot += Rh[i * r + j] * Rref[i * r + j];
                if (fabsf(Rh[i * r + j]) > fabsf(Rh[big * r + j])) big = i;
            }
            signs += !(Rh[big * r + j] > 0);
            double s = dot < 0 ? -1 : 1; /* compare columns up to sign; the convention is checked apart */
            for (size_t i = 0; i < d; i++) {
                double e = s * Rh[i * r + j] - Rref[i * r + j];
                sse += e * e;
                energy += Rref[i * r + j] * Rref[i * r + j];
            }
            for (size_t k = 0; k <= j; k++) {
                double g = 0;
                for (size_t i = 0; i < d; i++) g += (double)Rh[i * r + j] * Rh[i * r + k];
                g = fabs(g - (j == k ? 1.0 : 0.0));
                worst_orth = isnan(g) || g > worst_orth ? g : worst_orth;
            }
        }
        double eR = isfinite(sse) ? sse / energy : NAN;
        worst_R = isnan(eR) || eR > worst_R ? eR : worst_R;
        double mu2 = tc_energy_f64(tc_f64(c, TC_REF_MEAN) + h * d, d);
        double sse_dmu = 0;
        for (size_t i = 0; i < d; i++) {
            double e = dmu[h * d + i] - tc_f64(c, TC_REF_DMU)[h * d + i];
            sse_dmu += isfinite(dmu[h * d + i]) ? e * e : NAN;
        }
        double eD = mu2 > 0 ? sse_dmu / mu2 : sse_dmu;
        worst_dmu = isnan(eD) || eD > worst_dmu ? eD : worst_dmu;
        if (c->seqs[h / (size_t)c->Hkv].span_len > 0) {
            double eE = tc_nmse_f64(eig + h * d, tc_f64(c, TC_REF_EIGENVALUES) + h * d, d);
            worst_eig = isnan(eE) || eE > worst_eig ? eE : worst_eig;
        }
    }
    conf_measure(run, "fit_exact", "fit", "R", worst_R, "worst head; columns sign-aligned");
    conf_measure(run, "fit_exact", "fit", "orth", worst_orth, "max |R'R - I|");
    conf_measure(run, "fit_exact", "fit", "signs", signs, "columns whose largest entry is not positive");
    conf_measure(run, "fit_exact", "fit", "dmu", worst_dmu, "worst head; sum (dmu-ref)^2 / sum mu^2");
    conf_measure(run, "fit_exact", "fit", "eig", worst_eig, "worst head");
    if (c->r == c->d) {
        double resid = 0, mu2 = 0;
        for (size_t i = 0; i < nh * d; i++) {
            resid += (double)dmu[i] * dmu[i];
            mu2 += tc_f64(c, TC_REF_MEAN)[i] * tc_f64(c, TC_REF_MEAN)[i];
        }
        conf_measure(run, "fit_exact", "fit", "dmu0", mu2 > 0 ? resid / mu2 : resid,
                     "r = d: sum dmu^2 / sum mu^2 must vanish");
    }
}

/* moments (3 chunks) and the exact fit on the same rotation. */
static void conf_op_moments_fit_exact(conf_run *run) {
    const tc_case *c = run->c;
    size_t nh = (size_t)c->B * c->Hkv, d = (size_t)c->d, r = (size_t)c->r;
    rk_rotation *rot = NULL;
    rk_status st = conf_rotation(run, RK_SOLVER_EXACT, &rot);
    if (st == RK_OK) st = conf_accumulate(run, rot, 3);
    if (st != RK_OK) {
        conf_status(run, "moments", "rk_rotation_accumulate", st);
        conf_row(run, "fit_exact", "-", NAN, 0, CONF_FAIL, "no moments to fit");
        rk_rotation_destroy(rot);
        return;
    }
    conf_check_moments(run, rot);
    float *R = malloc(sizeof(float) * nh * d * r), *dmu = malloc(sizeof(float) * nh * d);
    double *eig = malloc(sizeof(double) * nh * d);
    if (!R || !dmu || !eig) st = RK_ERR_OUT_OF_MEMORY;
    if (st == RK_OK) st = conf_observe(run, rot);
    if (st == RK_OK) st = rk_rotation_finalize(rot);
    if (st == RK_OK) st = rk_rotation_get_basis(rot, R, dmu);
    if (st == RK_OK) st = rk_rotation_get_spectrum(rot, eig);
    if (st != RK_OK) conf_status(run, "fit_exact", "observe/finalize/get_basis", st);
    else conf_check_exact_basis(run, R, dmu, eig);
    free(R); free(dmu); free(eig);
    rk_rotation_destroy(rot);
}

static void conf_op_fit_subspace(conf_run *run) {
    const tc_case *c = run->c;
    size_t nh = (size_t)c->B * c->Hkv, d = (size_t)c->d, r = (size_t)c->r;
    rk_rotation *rot = NULL;
    float *R = malloc(sizeof(float) * nh * d * r), *dmu = malloc(sizeof(float) * nh * d);
    double *Rs = malloc(sizeof(double) * d * r), *Cw = malloc(sizeof(double) * d * d);
    rk_status st = R && dmu && Rs && Cw ? conf_rotation(run, RK_SOLVER_SUBSPACE, &rot) : RK_ERR_OUT_OF_MEMORY;
    if (st == RK_OK) st = conf_accumulate(run, rot, 1);
    if (st == RK_OK) st = conf_observe(run, rot);
    if (st == RK_OK) st = rk_rotation_finalize(rot);
    if (st == RK_OK) st = rk_rotation_get_basis(rot, R, dmu);
    if (st != RK_OK) {
        conf_status(run, "fit_subspace", "rk_rotation_finalize (subspace)", st);
    } else {
        double worst_angle = 0, worst_short = 0;
        for (size_t h = 0; h < nh; h++) {
            if (c->seqs[h / (size_t)c->Hkv].span_len == 0) continue;
            const double *Rref = tc_f64(c, TC_REF_R) + h * d * r;
            for (size_t i = 0; i < d * r; i++) Rs[i] = R[h * d * r + i];
            double angle = rk_pca_max_angle(Rs, Rref, (int)d, (int)r);
            /* captured energy in the weighted covariance the exact solver decomposed */
            memcpy(Cw, tc_f64(c, TC_REF_COV) + h * d * d, sizeof(double) * d * d);
            rk_pca_weight(Cw, tc_f64(c, TC_REF_QMS) + h * d, (int)d, c->qnorm_floor, c->ridge);
            double shortfall = 1.0 - rk_pca_captured(Cw, Rs, (int)d, (int)r) /
                                         rk_pca_captured(Cw, Rref, (int)d, (int)r);
            worst_angle = isnan(angle) || angle > worst_angle ? angle : worst_angle;
            worst_short = isnan(shortfall) || shortfall > worst_short ? shortfall : worst_short;
        }
        conf_measure(run, "fit_subspace", "subspace", "angle", worst_angle,
                     "largest principal angle to the exact subspace (rad), worst head");
        conf_measure(run, "fit_subspace", "subspace", "energy", worst_short,
                     "1 - captured/captured_exact, worst head");
    }
    free(R); free(dmu); free(Rs); free(Cw);
    rk_rotation_destroy(rot);
}

/* ---- compress ----------------------------------------------------------------------------- */

static void conf_op_compress(conf_run *run) {
    const tc_case *c = run->c;
    size_t nh = (size_t)c->B * c->Hkv;
    int64_t cap = CONF_TOKEN_OFFSET + c->S + 2;
    rk_rotation *rot = NULL;
    conf_tensor k, kc;
    memset(&k, 0, sizeof k);
    memset(&kc, 0, sizeof kc);
    float *got = malloc(sizeof(float) * nh * c->S * c->r);
    rk_status st = got ? conf_rotation(run, RK_SOLVER_EXACT, &rot) : RK_ERR_OUT_OF_MEMORY;
    if (st == RK_OK) st = rk_rotation_set_basis(rot, run->R, run->dmu);
    if (st == RK_OK) st = conf_tensor_create(run->ctx, &k, run->dt, c->B, c->Hkv, c->S, c->d, 0);
    if (st == RK_OK) st = conf_tensor_create(run->ctx, &kc, run->dt, c->B, c->Hkv, cap, c->r, 1);
    if (st == RK_OK) st = conf_tensor_upload(&k, run->span);
    if (st == RK_OK) st = conf_tensor_upload(&kc, NULL);
    if (st != RK_OK) {
        conf_status(run, "compress", "setup", st);
        goto done;
    }
    st = rk_compress(run->ctx, rot, &k.t, &kc.t, CONF_TOKEN_OFFSET);
    if (st != RK_OK) {
        conf_status(run, "compress", "rk_compress", st);
        goto done;
    }
    st = conf_tensor_download(&kc, CONF_TOKEN_OFFSET, CONF_TOKEN_OFFSET + c->S, got);
    if (st != RK_OK) {
        conf_status(run, "compress", "download", st);
        goto done;
    }
    conf_measure(run, "compress", "compress", "out",
                 tc_nmse_f32(got, tc_f64(c, TC_REF_KSPAN), nh * c->S * c->r), "rows at token offset 3");
    conf_guard(run, "compress", "kcache", &kc, CONF_TOKEN_OFFSET, CONF_TOKEN_OFFSET + c->S);
done:
    free(got);
    conf_tensor_destroy(&k);
    conf_tensor_destroy(&kc);
    rk_rotation_destroy(rot);
}

/* ---- decode (sparse, dense, SparK) -------------------------------------------------------- */

typedef enum conf_decode_kind { CONF_SPARSE, CONF_DENSE, CONF_SPARK } conf_decode_kind;

typedef struct conf_decode_inputs {
    conf_tensor q, k_full, k_span, v, spark_idx, spark_fill;
    rk_rotation *rot;
    rk_seq_info *seqs;
} conf_decode_inputs;

static void conf_decode_inputs_free(conf_decode_inputs *in) {
    conf_tensor_destroy(&in->q);
    conf_tensor_destroy(&in->k_full);
    conf_tensor_destroy(&in->k_span);
    conf_tensor_destroy(&in->v);
    conf_tensor_destroy(&in->spark_idx);
    conf_tensor_destroy(&in->spark_fill);
    rk_rotation_destroy(in->rot);
    free(in->seqs);
}

static rk_status conf_decode_setup(conf_run *run, conf_decode_kind kind, conf_decode_inputs *in) {
    const tc_case *c = run->c;
    rk_context *ctx = run->ctx;
    size_t n_span = (size_t)c->B * c->Hkv * c->S * c->r;
    memset(in, 0, sizeof *in);
    in->seqs = malloc(sizeof(rk_seq_info) * (size_t)c->B);
    float *vals = malloc(sizeof(float) * n_span), *fill = malloc(sizeof(float) * (n_span / c->r));
    rk_status st = in->seqs && vals && fill ? RK_OK : RK_ERR_OUT_OF_MEMORY;
    for (int b = 0; st == RK_OK && b < c->B; b++)
        in->seqs[b] = (rk_seq_info){c->seqs[b].seq_len, c->seqs[b].span_begin, c->seqs[b].span_len};
    if (st == RK_OK) st = conf_tensor_create(ctx, &in->q, run->dt, c->B, c->Hq, 1, c->d, 0);
    if (st == RK_OK) st = conf_tensor_upload(&in->q, tc_f32(c, TC_QUERY));
    if (st == RK_OK) st = conf_tensor_create(ctx, &in->v, run->dt, c->B, c->Hkv, c->T, c->dv, 0);
    if (st == RK_OK) st = conf_tensor_upload(&in->v, tc_f32(c, TC_VALUES));
    if (kind == CONF_DENSE) {
        if (st == RK_OK) st = conf_tensor_create(ctx, &in->k_full, run->dt, c->B, c->Hkv, c->T, c->d, 0);
        if (st == RK_OK) st = conf_tensor_upload(&in->k_full, tc_f32(c, TC_KEYS));
    } else {
        if (st == RK_OK) st = conf_tensor_create(ctx, &in->k_full, run->dt, c->B, c->Hkv, run->F, c->d, 0);
        if (st == RK_OK) st = conf_tensor_upload(&in->k_full, run->full);
        if (st == RK_OK) st = conf_rotation(run, RK_SOLVER_EXACT, &in->rot);
        if (st == RK_OK) st = rk_rotation_set_basis(in->rot, run->R, run->dmu);
        if (st == RK_OK) st = conf_tensor_create(ctx, &in->k_span, run->dt, c->B, c->Hkv, c->S, c->r, 0);
    }
    if (kind == CONF_SPARSE && st == RK_OK) st = conf_tensor_upload(&in->k_span, run->kspan);
    if (kind == CONF_SPARK && st == RK_OK) {
        for (size_t i = 0; i < n_span; i++) vals[i] = (float)tc_f64(c, TC_REF_SPARK_VALUES)[i];
        for (size_t i = 0; i < n_span / c->r; i++) fill[i] = (float)tc_f64(c, TC_REF_SPARK_FILL)[i];
        st = conf_tensor_upload(&in->k_span, vals);
        if (st == RK_OK) st = conf_tensor_create(ctx, &in->spark_idx, RK_I32, c->B, c->Hkv, c->S, c->r, 0);
        if (st == RK_OK) st = conf_tensor_upload(&in->spark_idx, tc_i32(c, TC_REF_SPARK_INDICES));
        if (st == RK_OK) st = conf_tensor_create(ctx, &in->spark_fill, RK_F32, c->B, c->Hkv, c->S, 1, 0);
        if (st == RK_OK) st = conf_tensor_upload(&in->spark_fill, fill);
    }
    free(vals);
    free(fill);
    return st;
}

static void conf_decode_once(conf_run *run, conf_decode_kind kind, conf_decode_inputs *in, int split) {
    static const char *const names[] = {"decode_sparse", "decode_dense", "spark_decode"};
    const tc_case *c = run->c;
    char op[40];
    snprintf(op, sizeof op, split ? "%s/split=%d" : "%s/split=auto", names[kind], split);
    size_t n_out = (size_t)c->B * c->Hq * c->dv, n_lse = (size_t)c->B * c->Hq;
    conf_tensor out, lse;
    float *got = malloc(sizeof(float) * (n_out + n_lse));
    rk_status st = got ? conf_tensor_create(run->ctx, &out, run->dt, c->B, c->Hq, 1, c->dv, 1) : RK_ERR_OUT_OF_MEMORY;
    if (st == RK_OK) st = conf_tensor_create(run->ctx, &lse, RK_F32, c->B, c->Hq, 1, 1, 1);
    if (st == RK_OK) st = conf_tensor_upload(&out, NULL);
    if (st == RK_OK) st = conf_tensor_upload(&lse, NULL);
    if (st != RK_OK) {
        conf_status(run, op, "setup", st);
        free(got);
        return;
    }
    rk_decode_args a;
    rk_decode_args_init(&a);
    a.q = &in->q.t;
    a.k_full = &in->k_full.t;
    a.k_span = kind == CONF_SPARSE ? &in->k_span.t : NULL;
    a.v = &in->v.t;
    a.rot = in->rot;
    a.seqs = in->seqs;
    a.out = &out.t;
    a.lse = &lse.t;
    a.n_split = split;
    const char *call = kind == CONF_SPARSE ? "rk_decode_sparse" : kind == CONF_DENSE ? "rk_decode_dense" : "rk_decode_spark";
    st = kind == CONF_SPARSE ? rk_decode_sparse(run->ctx, &a)
       : kind == CONF_DENSE  ? rk_decode_dense(run->ctx, &a)
                             : rk_decode_spark(run->ctx, &a, &in->k_span.t, &in->spark_idx.t, &in->spark_fill.t);
    if (st == RK_OK) st = conf_tensor_download(&out, 0, 1, got);
    if (st == RK_OK) st = conf_tensor_download(&lse, 0, 1, got + n_out);
    if (st != RK_OK) {
        conf_status(run, op, call, st);
    } else {
        tc_array_id ro = kind == CONF_SPARSE ? TC_REF_OUT_SPARSE : kind == CONF_DENSE ? TC_REF_OUT_DENSE : TC_REF_OUT_SPARK;
        tc_array_id rl = kind == CONF_SPARSE ? TC_REF_LSE_SPARSE : kind == CONF_DENSE ? TC_REF_LSE_DENSE : TC_REF_LSE_SPARK;
        conf_measure(run, op, "decode", "out", tc_nmse_f32(got, tc_f64(c, ro), n_out), NULL);
        conf_measure(run, op, "decode", "lse", tc_max_abs_f32(got + n_out, tc_f64(c, rl), n_lse), "max abs");
        if (kind == CONF_SPARSE && c->r == c->d) /* a full-rank rotation changes no logit */
            conf_measure_as(run, op, "decode.out", "out~dense",
                            tc_nmse_f32(got, tc_f64(c, TC_REF_OUT_DENSE), n_out),
                            "r = d: against the dense reference");
        conf_guard(run, op, "out", &out, 0, 1);
        conf_guard(run, op, "lse", &lse, 0, 1);
    }
    free(got);
    conf_tensor_destroy(&out);
    conf_tensor_destroy(&lse);
}

static void conf_op_decode(conf_run *run, conf_decode_kind kind) {
    static const char *const names[] = {"decode_sparse", "decode_dense", "spark_decode"};
    conf_decode_inputs in;
    rk_status st = conf_decode_setup(run, kind, &in);
    if (st != RK_OK) {
        conf_status(run, names[kind], "setup", st);
    } else {
        static const int splits[] = {1, 3, 0};
        for (int i = 0; i < 3; i++) conf_decode_once(run, kind, &in, splits[i]);
    }
    conf_decode_inputs_free(&in);
}

/* ---- SparK compress ----------------------------------------------------------------------- */

/* Rebuild one token's key from its kept channels; NaN where an index is out of range. */
static void conf_spark_rebuild(const float *vals, const int32_t *idx, double fill, int d, int r, double *k) {
    for (int i = 0; i < d; i++) k[i] = fill;
    for (int j = 0; j < r; j++) {
        if (idx[j] < 0 || idx[j] >= d) { k[0] = NAN; continue; }
        k[idx[j]] = vals[j];
    }
}

static void conf_spark_compare(conf_run *run, const char *op, const float *vals, const int32_t *idx,
                               const float *fill) {
    const tc_case *c = run->c;
    int d = c->d, r = c->r;
    double *k = malloc(sizeof(double) * (size_t)d * 2), *kref = k ? k + d : NULL;
    float *rv = malloc(sizeof(float) * (size_t)r);
    if (!k || !rv) { free(k); free(rv); return; }
    double sse = 0, energy = 0, fsse = 0, fenergy = 0, slots = 0, differ = 0;
    for (int b = 0; b < c->B; b++)
        for (int g = 0; g < c->Hkv; g++)
            for (int t = 0; t < c->seqs[b].span_len; t++) {
                size_t row = ((size_t)b * c->Hkv + g) * c->S + t;
                const double *refv = tc_f64(c, TC_REF_SPARK_VALUES) + row * r;
                const int32_t *refi = tc_i32(c, TC_REF_SPARK_INDICES) + row * r;
                double reff = tc_f64(c, TC_REF_SPARK_FILL)[row];
                for (int j = 0; j < r; j++) {
                    rv[j] = (float)refv[j];
                    differ += idx[row * r + j] != refi[j];
                }
                slots += r;
                conf_spark_rebuild(vals + row * r, idx + row * r, fill[row], d, r, k);
                for (int i = 0; i < d; i++) kref[i] = reff;
                for (int j = 0; j < r; j++) kref[refi[j]] = refv[j];
                sse += tc_sse_f64(k, kref, (size_t)d);
                energy += tc_energy_f64(kref, (size_t)d);
                double fe = (double)fill[row] - reff;
                fsse += isfinite(fill[row]) ? fe * fe : NAN;
                fenergy += tc_energy_f64(kref, (size_t)d) / d; /* fill can vanish: scale by the key */
            }
    conf_measure(run, op, "spark", "keys", energy > 0 ? sse / energy : sse, "rebuilt span keys, NMSE");
    conf_measure(run, op, "spark", "indices", slots > 0 ? differ / slots : 0, "share of kept channels that differ");
    conf_measure(run, op, "spark", "fill", fenergy > 0 ? fsse / fenergy : fsse,
                 "sum (fill-ref)^2 / sum mean-square of the rebuilt key");
    free(k);
    free(rv);
}

static void conf_op_spark_compress(conf_run *run) {
    const tc_case *c = run->c;
    const char *op = "spark_compress";
    size_t rows = (size_t)c->B * c->Hkv * c->S;
    int64_t cap = CONF_TOKEN_OFFSET + c->S + 2, t0 = CONF_TOKEN_OFFSET, t1 = CONF_TOKEN_OFFSET + c->S;
    rk_rotation *rot = NULL;
    conf_tensor k, vals, idx, fill;
    memset(&k, 0, sizeof k); memset(&vals, 0, sizeof vals);
    memset(&idx, 0, sizeof idx); memset(&fill, 0, sizeof fill);
    float *gv = malloc(sizeof(float) * rows * c->r), *gf = malloc(sizeof(float) * rows);
    int32_t *gi = malloc(sizeof(int32_t) * rows * c->r);
    rk_status st = gv && gf && gi ? conf_rotation(run, RK_SOLVER_EXACT, &rot) : RK_ERR_OUT_OF_MEMORY;
    if (st == RK_OK) st = conf_observe(run, rot);
    if (st == RK_OK) st = conf_tensor_create(run->ctx, &k, run->dt, c->B, c->Hkv, c->S, c->d, 0);
    if (st == RK_OK) st = conf_tensor_upload(&k, run->span);
    if (st == RK_OK) st = conf_tensor_create(run->ctx, &vals, run->dt, c->B, c->Hkv, cap, c->r, 1);
    if (st == RK_OK) st = conf_tensor_create(run->ctx, &idx, RK_I32, c->B, c->Hkv, cap, c->r, 1);
    if (st == RK_OK) st = conf_tensor_create(run->ctx, &fill, RK_F32, c->B, c->Hkv, cap, 1, 1);
    if (st == RK_OK) st = conf_tensor_upload(&vals, NULL);
    if (st == RK_OK) st = conf_tensor_upload(&idx, NULL);
    if (st == RK_OK) st = conf_tensor_upload(&fill, NULL);
    if (st != RK_OK) {
        conf_status(run, op, "setup", st);
        goto done;
    }
    st = rk_spark_compress(run->ctx, rot, &k.t, &vals.t, &idx.t, &fill.t, CONF_TOKEN_OFFSET);
    if (st == RK_OK) st = conf_tensor_download(&vals, t0, t1, gv);
    if (st == RK_OK) st = conf_tensor_download(&idx, t0, t1, gi);
    if (st == RK_OK) st = conf_tensor_download(&fill, t0, t1, gf);
    if (st != RK_OK) {
        conf_status(run, op, "rk_spark_compress", st);
        goto done;
    }
    conf_spark_compare(run, op, gv, gi, gf);
    conf_guard(run, op, "values", &vals, t0, t1);
    conf_guard(run, op, "indices", &idx, t0, t1);
    conf_guard(run, op, "fill", &fill, t0, t1);
done:
    free(gv); free(gf); free(gi);
    conf_tensor_destroy(&k); conf_tensor_destroy(&vals);
    conf_tensor_destroy(&idx); conf_tensor_destroy(&fill);
    rk_rotation_destroy(rot);
}

/* ---- one case ----------------------------------------------------------------------------- */

void conf_run_case(conf_report *rep, rk_context *ctx, const char *backend, const tc_case *c,
                   rk_dtype dtype) {
    conf_run run = {rep, ctx, backend, c, dtype, tc_case_full_capacity(c), NULL, NULL, NULL, NULL, NULL};
    size_t nh = (size_t)c->B * c->Hkv, d = (size_t)c->d, r = (size_t)c->r;
    run.span = malloc(sizeof(float) * nh * c->S * d);
    run.full = malloc(sizeof(float) * nh * run.F * d);
    run.R = malloc(sizeof(float) * nh * d * r);
    run.dmu = malloc(sizeof(float) * nh * d);
    run.kspan = malloc(sizeof(float) * nh * c->S * r);
    if (!run.span || !run.full || !run.R || !run.dmu || !run.kspan) {
        conf_row(&run, "setup", "-", NAN, 0, CONF_FAIL, "out of memory");
    } else {
        tc_case_split_keys(c, run.span, run.full);
        /* R and δμ are stored as f32 values widened to f8: converting back is exact */
        for (size_t i = 0; i < nh * d * r; i++) run.R[i] = (float)tc_f64(c, TC_REF_R)[i];
        for (size_t i = 0; i < nh * d; i++) run.dmu[i] = (float)tc_f64(c, TC_REF_DMU)[i];
        for (size_t i = 0; i < nh * c->S * r; i++) run.kspan[i] = (float)tc_f64(c, TC_REF_KSPAN)[i];
        conf_op_moments_fit_exact(&run);
        conf_op_fit_subspace(&run);
        conf_op_compress(&run);
        conf_op_decode(&run, CONF_SPARSE);
        conf_op_decode(&run, CONF_DENSE);
        conf_op_spark_compress(&run);
        conf_op_decode(&run, CONF_SPARK);
    }
    free(run.span); free(run.full); free(run.R); free(run.dmu); free(run.kspan);
}
