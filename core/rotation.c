/* Rotation state: accumulate span moments and observed queries, fit each head's basis. */
#include "rotation.h"
#include "pca.h"
#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rk_rotation_config_init(rk_rotation_config *cfg) {
    if (!cfg) return;
    memset(cfg, 0, sizeof *cfg);
    cfg->struct_size = sizeof *cfg;
    cfg->n_seq = 1;
    cfg->n_kv_heads = 1;
    cfg->n_q_heads = 1;
    cfg->head_dim = 128;
    cfg->rank = 32;
    cfg->budget = 0;
    cfg->rank_multiple = 8;
    cfg->method = RK_METHOD_PCA_QWEIGHTED;
    cfg->solver = RK_SOLVER_EXACT;
    cfg->subspace_iters = 6;
    cfg->ridge = 1e-6;
    cfg->qnorm_floor = 0.05;
    cfg->seed = 0x5eed;
}

static rk_status rk_rotation_check_config(rk_context *ctx, const rk_rotation_config *c) {
    if (c->struct_size != sizeof *c)
        return rk_fail(ctx, RK_ERR_INVALID_ARG, "rk_rotation_config.struct_size is %u, expected %zu"
                       " (call rk_rotation_config_init)", c->struct_size, sizeof *c);
    if (c->n_seq <= 0 || c->n_kv_heads <= 0 || c->n_q_heads <= 0 || c->head_dim <= 0)
        return rk_fail(ctx, RK_ERR_INVALID_ARG, "n_seq, n_kv_heads, n_q_heads, head_dim must be > 0"
                       " (got %d, %d, %d, %d)", c->n_seq, c->n_kv_heads, c->n_q_heads, c->head_dim);
    if (c->n_q_heads % c->n_kv_heads != 0)
        return rk_fail(ctx, RK_ERR_HEAD_MISMATCH, "%d query heads are not a multiple of %d KV heads",
                       c->n_q_heads, c->n_kv_heads);
    if (c->rank <= 0 || c->rank > c->head_dim)
        return rk_fail(ctx, RK_ERR_INVALID_RANK, "rank %d outside [1, head_dim %d]", c->rank,
                       c->head_dim);
    if ((unsigned)c->method > RK_METHOD_RANDOM)
        return rk_fail(ctx, RK_ERR_INVALID_ARG, "unknown method %d", (int)c->method);
    if ((unsigned)c->solver > RK_SOLVER_SUBSPACE)
        return rk_fail(ctx, RK_ERR_INVALID_ARG, "unknown solver %d", (int)c->solver);
    if (c->subspace_iters < 1 || c->subspace_iters > 1000)
        return rk_fail(ctx, RK_ERR_INVALID_ARG, "subspace_iters %d outside [1, 1000]",
                       c->subspace_iters);
    if (!(c->ridge >= 0 && c->ridge < 1) || !(c->qnorm_floor >= 0 && c->qnorm_floor <= 1))
        return rk_fail(ctx, RK_ERR_INVALID_ARG, "ridge must be in [0, 1) and qnorm_floor in [0, 1]");
    if (c->budget != 0) {
        if (c->rank_multiple <= 0 || c->rank % c->rank_multiple != 0)
            return rk_fail(ctx, RK_ERR_INVALID_ARG, "rank %d must be a positive multiple of "
                           "rank_multiple %d under a budget", c->rank, c->rank_multiple);
        if (c->budget < c->n_kv_heads * c->rank_multiple || c->budget > c->n_kv_heads * c->rank)
            return rk_fail(ctx, RK_ERR_INVALID_ARG, "budget %d outside [%d, %d] (heads × multiple,"
                           " heads × rank)", c->budget, c->n_kv_heads * c->rank_multiple,
                           c->n_kv_heads * c->rank);
    }
    return RK_OK;
}

rk_status rk_rotation_create(rk_context *ctx, const rk_rotation_config *cfg, rk_rotation **out) {
    if (!ctx || !cfg || !out) return rk_fail(ctx, RK_ERR_NULL_ARG, "rk_rotation_create: NULL argument");
    *out = NULL;
    rk_status st = rk_rotation_check_config(ctx, cfg);
    if (st != RK_OK) return st;
    rk_rotation *rot = calloc(1, sizeof *rot);
    if (!rot) return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "rotation state");
    rot->ctx = ctx;
    rot->cfg = *cfg;
    size_t nh = (size_t)cfg->n_seq * cfg->n_kv_heads, d = (size_t)cfg->head_dim, r = (size_t)cfg->rank;
    rot->n_heads = (int)nh;
    rot->count = calloc(nh, sizeof(int64_t));
    rot->q_count = calloc(nh, sizeof(int64_t));
    rot->mean = calloc(nh * d, sizeof(double));
    rot->scatter = calloc(nh * d * d, sizeof(double));
    rot->q_sumsq = calloc(nh * d, sizeof(double));
    rot->R = calloc(nh * d * r, sizeof(float));
    rot->dmu = calloc(nh * d, sizeof(float));
    rot->ranks = calloc(nh, sizeof(int32_t));
    rot->spectrum = calloc(nh * d, sizeof(double));
    if (!rot->count || !rot->q_count || !rot->mean || !rot->scatter || !rot->q_sumsq || !rot->R ||
        !rot->dmu || !rot->ranks || !rot->spectrum) {
        rk_rotation_destroy(rot);
        return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "rotation state for %zu heads, d %zu", nh, d);
    }
    st = rk_buffer_alloc(ctx, nh * d * r * sizeof(float), &rot->R_dev);
    if (st == RK_OK) st = rk_buffer_alloc(ctx, nh * d * sizeof(float), &rot->dmu_dev);
    if (st != RK_OK) {
        rk_rotation_destroy(rot);
        return st;
    }
    *out = rot;
    return RK_OK;
}

void rk_rotation_destroy(rk_rotation *rot) {
    if (!rot) return;
    rk_buffer_free(rot->R_dev);
    rk_buffer_free(rot->dmu_dev);
    free(rot->count); free(rot->q_count); free(rot->mean); free(rot->scatter); free(rot->q_sumsq);
    free(rot->R); free(rot->dmu); free(rot->ranks); free(rot->spectrum);
    free(rot);
}

/* RK_ROTATION_PROFILE=1 (tuning): host time of each part of accumulate and finalize, to stderr */
static int rk_rotation_profile(void) {
    const char *e = getenv("RK_ROTATION_PROFILE");
    return e && e[0] == '1';
}

static rk_status rk_check_lengths(rk_context *ctx, const int32_t *n_tokens, int n, int64_t cap,
                                  int32_t *resolved) {
    for (int b = 0; b < n; b++) {
        int64_t t = n_tokens ? n_tokens[b] : cap;
        if (t < 0 || t > cap)
            return rk_fail(ctx, RK_ERR_OUT_OF_RANGE, "n_tokens[%d] = %lld outside [0, %lld]", b,
                           (long long)t, (long long)cap);
        resolved[b] = (int32_t)t;
    }
    return RK_OK;
}

rk_status rk_rotation_accumulate(rk_rotation *rot, const rk_tensor *keys, const int32_t *n_tokens) {
    if (!rot) return RK_ERR_NULL_ARG;
    rk_context *ctx = rot->ctx;
    const rk_rotation_config *c = &rot->cfg;
    if (rot->final)
        return rk_fail(ctx, RK_ERR_BAD_STATE, "rotation already finalized; create a new one");
    const int64_t want[4] = {c->n_seq, c->n_kv_heads, RK_ANY, c->head_dim};
    rk_status st = rk_tensor_check(ctx, keys, "keys", RK_ANY, want);
    if (st != RK_OK) return st;
    if (keys->dtype == RK_I32) return rk_fail(ctx, RK_ERR_DTYPE_MISMATCH, "keys must be f32/f16/bf16");

    size_t nh = (size_t)rot->n_heads, d = (size_t)c->head_dim;
    const int prof = rk_rotation_profile();
    double t0 = prof ? rk_now_seconds() : 0.0, t1 = 0.0, t2 = 0.0;
    rot->moments_id = 0;
    uint64_t dev_id = 0;
    /* Before any keys, a chunk's moments are the heads' moments: the backend writes them in
     * place (no scratch, no merge), and a failure clears them again. */
    int in_place = 1;
    for (size_t h = 0; h < nh; h++) in_place &= rot->count[h] == 0;
    int32_t *lens = malloc(sizeof(int32_t) * (size_t)c->n_seq);
    double *mean = in_place ? rot->mean : malloc(sizeof(double) * nh * d);
    double *scatter = in_place ? rot->scatter : malloc(sizeof(double) * nh * d * d);
    if (!lens || !mean || !scatter) {
        st = rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "accumulate scratch");
        goto done;
    }
    st = rk_check_lengths(ctx, n_tokens, c->n_seq, keys->ne[2], lens);
    if (st != RK_OK) goto done;
    rk_op_moments op = {keys, lens, c->n_seq, c->n_kv_heads, c->head_dim, mean, scatter, &dev_id};
    st = ctx->be->moments(ctx, &op);
    if (st != RK_OK) goto done;
    if (prof) t1 = rk_now_seconds();
    for (size_t h = 0; h < nh; h++) {
        int64_t nb = lens[h / (size_t)c->n_kv_heads];
        if (nb == 0) continue;
        if (!rk_all_finite_f64(mean + h * d, d) || !rk_all_finite_f64(scatter + h * d * d, d * d)) {
            st = rk_fail(ctx, RK_ERR_NON_FINITE, "keys of sequence %zu, KV head %zu contain NaN or "
                         "Inf; nothing was accumulated", h / (size_t)c->n_kv_heads,
                         h % (size_t)c->n_kv_heads);
            goto done;
        }
    }
    if (prof) t2 = rk_now_seconds();
    /* the backend's device copy equals the moments only when they were written in place */
    if (in_place) rot->moments_id = dev_id;
    /* Merge chunk moments (Chan et al.): stable for any chunking. */
    for (size_t h = 0; h < nh; h++) {
        int64_t na = rot->count[h], nb = lens[h / (size_t)c->n_kv_heads];
        if (in_place) { /* a head without keys keeps zero moments */
            if (nb == 0) {
                memset(rot->mean + h * d, 0, sizeof(double) * d);
                memset(rot->scatter + h * d * d, 0, sizeof(double) * d * d);
            }
            rot->count[h] = nb;
            continue;
        }
        if (nb == 0) continue;
        double n = (double)(na + nb), fa = (double)na * (double)nb / n;
        double *ma = rot->mean + h * d, *Sa = rot->scatter + h * d * d;
        const double *mb = mean + h * d, *Sb = scatter + h * d * d;
        for (size_t i = 0; i < d; i++)
            for (size_t j = 0; j < d; j++)
                Sa[i * d + j] += Sb[i * d + j] + (mb[i] - ma[i]) * (mb[j] - ma[j]) * fa;
        for (size_t i = 0; i < d; i++) ma[i] += (mb[i] - ma[i]) * ((double)nb / n);
        rot->count[h] = na + nb;
    }
done:
    if (in_place && st != RK_OK) {
        memset(rot->mean, 0, sizeof(double) * nh * d);
        memset(rot->scatter, 0, sizeof(double) * nh * d * d);
        rot->moments_id = 0;
    }
    free(lens);
    if (!in_place) {
        free(mean);
        free(scatter);
    }
    if (prof && st == RK_OK) {
        double t3 = rk_now_seconds();
        fprintf(stderr, "rk_rotation accumulate us: moments %.1f, checks %.1f, merge %.1f\n",
                (t1 - t0) * 1e6, (t2 - t1) * 1e6, (t3 - t2) * 1e6);
    }
    return st;
}

/* Host default of rk_op_qsumsq: read the window as f32 and sum per (b, query head). */
static rk_status rk_qsumsq_host(rk_context *ctx, const rk_op_qsumsq *op) {
    const rk_tensor *queries = op->queries;
    size_t W = (size_t)queries->ne[2], d = (size_t)op->d, n = (size_t)op->B * op->Hq;
    float *q = malloc(sizeof(float) * n * W * d);
    if (!q) return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "observe scratch");
    rk_status st = rk_tensor_read_f32(ctx, queries, q);
    for (size_t bh = 0; bh < n && st == RK_OK; bh++) {
        const float *qh = q + bh * W * d;
        double *acc = op->sumsq + bh * d;
        memset(acc, 0, sizeof(double) * d);
        for (int t = 0; t < op->n_tokens[bh / (size_t)op->Hq]; t++)
            for (size_t i = 0; i < d; i++) acc[i] += (double)qh[t * d + i] * qh[t * d + i];
    }
    free(q);
    return st;
}

rk_status rk_rotation_observe(rk_rotation *rot, const rk_tensor *queries, const int32_t *n_tokens) {
    if (!rot) return RK_ERR_NULL_ARG;
    rk_context *ctx = rot->ctx;
    const rk_rotation_config *c = &rot->cfg;
    if (rot->final)
        return rk_fail(ctx, RK_ERR_BAD_STATE, "rotation already finalized; create a new one");
    const int64_t want[4] = {c->n_seq, c->n_q_heads, RK_ANY, c->head_dim};
    rk_status st = rk_tensor_check(ctx, queries, "queries", RK_ANY, want);
    if (st != RK_OK) return st;
    if (queries->dtype == RK_I32) return rk_fail(ctx, RK_ERR_DTYPE_MISMATCH, "queries must be float");
    size_t d = (size_t)c->head_dim, hq = (size_t)c->n_q_heads;
    int32_t *lens = malloc(sizeof(int32_t) * (size_t)c->n_seq);
    double *sums = malloc(sizeof(double) * (size_t)c->n_seq * hq * d);
    if (!lens || !sums) {
        st = rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "observe scratch");
        goto done;
    }
    st = rk_check_lengths(ctx, n_tokens, c->n_seq, queries->ne[2], lens);
    if (st != RK_OK) goto done;
    /* a backend sums on the device: only the sums travel, not the window */
    rk_op_qsumsq op = {queries, lens, c->n_seq, (int)hq, c->head_dim, sums};
    st = ctx->be->qsumsq ? ctx->be->qsumsq(ctx, &op) : rk_qsumsq_host(ctx, &op);
    if (st != RK_OK) goto done;
    /* Σ q² is finite exactly when the rows are (a float squared cannot overflow a double) */
    for (int b = 0; b < c->n_seq; b++)
        for (size_t h = 0; h < hq; h++)
            if (!rk_all_finite_f64(sums + ((size_t)b * hq + h) * d, d)) {
                st = rk_fail(ctx, RK_ERR_NON_FINITE, "queries of sequence %d, head %zu contain NaN "
                             "or Inf; nothing was observed", b, h);
                goto done;
            }
    size_t group = hq / (size_t)c->n_kv_heads;
    for (int b = 0; b < c->n_seq; b++)
        for (size_t h = 0; h < hq; h++) {
            size_t head = (size_t)b * (size_t)c->n_kv_heads + h / group;
            const double *s = sums + ((size_t)b * hq + h) * d;
            for (size_t i = 0; i < d; i++) rot->q_sumsq[head * d + i] += s[i];
            rot->q_count[head] += lens[b];
        }
done:
    free(lens); free(sums);
    return st;
}

const double *rk_rotation_qms(const rk_rotation *rot, int head, double *scratch) {
    if (rot->q_count[head] == 0) return NULL;
    size_t d = (size_t)rot->cfg.head_dim;
    for (size_t i = 0; i < d; i++)
        scratch[i] = rot->q_sumsq[(size_t)head * d + i] / (double)rot->q_count[head];
    return scratch;
}

/* Fit one head: R [d][rank] (columns past the head's rank zero), spectrum [d]. */
static rk_status rk_fit_head(rk_rotation *rot, int h, double *C, double *qms_buf, double *R) {
    const rk_rotation_config *c = &rot->cfg;
    int d = c->head_dim, r = c->rank;
    double *spec = rot->spectrum + (size_t)h * d;
    const double *mean = rot->mean + (size_t)h * d;
    const double *qms = rk_rotation_qms(rot, h, qms_buf);
    double n = (double)rot->count[h];
    for (int i = 0; i < d * d; i++) C[i] = rot->scatter[(size_t)h * d * d + i] / n;
    memset(spec, 0, sizeof(double) * (size_t)d);
    switch (c->method) {
    case RK_METHOD_THINK: {
        /* mean(K²) per channel = variance + mean² */
        double *k2 = malloc(sizeof(double) * (size_t)d);
        if (!k2) return RK_ERR_OUT_OF_MEMORY;
        for (int i = 0; i < d; i++) k2[i] = C[i * d + i] + mean[i] * mean[i];
        rk_pca_think(qms, k2, d, r, spec, R);
        free(k2);
        return RK_OK;
    }
    case RK_METHOD_RANDOM:
        return rk_pca_random_basis(c->seed + (uint64_t)h, d, r, R);
    case RK_METHOD_PCA_QWEIGHTED:
    case RK_METHOD_PCA_PLAIN:
        rk_pca_weight(C, c->method == RK_METHOD_PCA_QWEIGHTED ? qms : NULL, d, c->qnorm_floor,
                      c->ridge);
        if (c->solver == RK_SOLVER_EXACT) return rk_pca_exact(C, d, r, spec, R);
        return rk_pca_subspace(C, d, r, c->subspace_iters, c->seed + (uint64_t)h, spec, R);
    }
    return RK_ERR_INVALID_ARG;
}

/* RK_SOLVER_SUBSPACE on a backend that fits on the device: every head with keys in one call.
 * *out gets R [n][d][rank] of the n heads with keys in head order (slot[h]: head h's index
 * there, -1 without keys) and the spectra are filled; RK_ERR_UNSUPPORTED (and *out NULL) when
 * the host should fit instead. The backend weights the covariances (rk_op_rotation_fit): the
 * core sends the scatter it holds, the weights and the ridge. */
static rk_status rk_fit_on_device(rk_rotation *rot, double **out, int *slot) {
    const rk_rotation_config *c = &rot->cfg;
    rk_context *ctx = rot->ctx;
    *out = NULL;
    if (c->solver != RK_SOLVER_SUBSPACE || !ctx->be->rotation_fit ||
        (c->method != RK_METHOD_PCA_QWEIGHTED && c->method != RK_METHOD_PCA_PLAIN))
        return RK_ERR_UNSUPPORTED;
    const int d = c->head_dim, r = c->rank, p = rk_pca_subspace_width(d, r);
    const size_t dd = (size_t)d * d, dr = (size_t)d * r;
    int n = 0;
    for (int h = 0; h < rot->n_heads; h++) n += rot->count[h] > 0;
    /* R | evals | w | scale | add | qms | sort scratch */
    double *R = malloc(sizeof(double) * ((size_t)n * (dr + (size_t)r + (size_t)d + 2) + 2 * (size_t)d));
    int *heads = malloc(sizeof(int) * (size_t)n);
    uint64_t *seeds = malloc(sizeof(uint64_t) * (size_t)n);
    if (!R || !heads || !seeds) {
        free(R); free(heads); free(seeds);
        return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "device fit scratch");
    }
    double *ev = R + (size_t)n * dr, *w = ev + (size_t)n * r, *scale = w + (size_t)n * d;
    double *add = scale + n, *qms = add + n, *sorted = qms + d;
    for (int h = 0, k = 0; h < rot->n_heads; h++) {
        slot[h] = -1;
        if (rot->count[h] == 0) continue;
        /* rk_pca_weight's arithmetic on C = S / n: w_i w_j, then the ridge from the trace */
        const double *S = rot->scatter + (size_t)h * dd, inv_n = 1.0 / (double)rot->count[h];
        double *wk = w + (size_t)k * d, trace = 0.0;
        /* no query observed (only PCA_PLAIN gets here so): unweighted, as rk_pca_weight(NULL) */
        const double *qh = c->method == RK_METHOD_PCA_QWEIGHTED ? rk_rotation_qms(rot, h, qms) : NULL;
        if (qh) rk_pca_weights(qh, d, c->qnorm_floor, wk, sorted);
        else
            for (int i = 0; i < d; i++) wk[i] = 1.0;
        for (int i = 0; i < d; i++) trace += S[(size_t)i * d + i] * inv_n * (wk[i] * wk[i]);
        scale[k] = inv_n;
        add[k] = rk_pca_ridge(trace, d, c->ridge);
        seeds[k] = c->seed + (uint64_t)h; /* the host solver's start */
        slot[h] = k;
        heads[k++] = h;
    }
    rk_op_rotation_fit op = {rot->scatter, rot->moments_id, heads, w, scale, add, seeds, R, ev,
                             n, d, r, p, c->subspace_iters};
    rk_status st = ctx->be->rotation_fit(ctx, &op);
    for (int k = 0; k < n && st == RK_OK; k++) {
        double *spec = rot->spectrum + (size_t)heads[k] * d;
        memset(spec, 0, sizeof(double) * (size_t)d);
        memcpy(spec, ev + (size_t)k * r, sizeof(double) * (size_t)r);
    }
    free(heads); free(seeds);
    if (st == RK_OK) *out = R;
    else free(R);
    return st;
}

rk_status rk_rotation_finalize(rk_rotation *rot) {
    if (!rot) return RK_ERR_NULL_ARG;
    rk_context *ctx = rot->ctx;
    const rk_rotation_config *c = &rot->cfg;
    if (rot->final) return rk_fail(ctx, RK_ERR_BAD_STATE, "rotation already finalized");
    int any = 0;
    for (int h = 0; h < rot->n_heads; h++) any |= rot->count[h] > 0;
    if (!any) return rk_fail(ctx, RK_ERR_BAD_STATE, "no keys accumulated; call rk_rotation_accumulate");
    int needs_q = c->method == RK_METHOD_PCA_QWEIGHTED || c->method == RK_METHOD_THINK;
    for (int h = 0; needs_q && h < rot->n_heads; h++)
        if (rot->count[h] > 0 && rot->q_count[h] == 0)
            return rk_fail(ctx, RK_ERR_BAD_STATE, "method needs observed queries (sequence %d, KV "
                           "head %d has none): call rk_rotation_observe or use RK_METHOD_PCA_PLAIN",
                           h / c->n_kv_heads, h % c->n_kv_heads);
    size_t d = (size_t)c->head_dim, r = (size_t)c->rank;
    const int prof = rk_rotation_profile();
    double t0 = prof ? rk_now_seconds() : 0.0;
    double *dev_R = NULL;
    int *slot = malloc(sizeof(int) * (size_t)rot->n_heads);
    if (!slot) return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "finalize scratch");
    rk_status st = rk_fit_on_device(rot, &dev_R, slot);
    if (st == RK_ERR_UNSUPPORTED) st = RK_OK; /* fit on the host below; other errors: the
                                               * backend recorded why */
    double t1 = prof ? rk_now_seconds() : 0.0;
    /* C [d][d] only for a host fit */
    const size_t c_n = dev_R ? 0 : d * d;
    double *C = malloc(sizeof(double) * (c_n + d * r + 2 * d));
    if (!C) {
        free(slot);
        free(dev_R);
        return st != RK_OK ? st : rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "finalize scratch");
    }
    double *R = C + c_n, *qms = R + d * r, *dmu = qms + d;
    for (int h = 0; h < rot->n_heads && st == RK_OK; h++) {
        rot->ranks[h] = c->rank;
        const double *Rh = R; /* this head's basis */
        if (rot->count[h] == 0) { /* a sequence with no span: identity columns, no correction */
            memset(R, 0, sizeof(double) * d * r);
            for (size_t j = 0; j < r; j++) R[j * r + j] = 1.0;
            memset(dmu, 0, sizeof(double) * d);
        } else {
            if (dev_R) Rh = dev_R + (size_t)slot[h] * d * r;
            else st = rk_fit_head(rot, h, C, qms, R);
            if (st != RK_OK) {
                st = rk_fail(ctx, st, "basis fit failed for sequence %d, KV head %d",
                             h / c->n_kv_heads, h % c->n_kv_heads);
                break;
            }
            if (c->method == RK_METHOD_THINK) memset(dmu, 0, sizeof(double) * d);
            else rk_pca_mean_correction(rot->mean + (size_t)h * d, Rh, (int)d, (int)r, dmu);
        }
        for (size_t i = 0; i < d * r; i++) rot->R[(size_t)h * d * r + i] = (float)Rh[i];
        for (size_t i = 0; i < d; i++) rot->dmu[(size_t)h * d + i] = (float)dmu[i];
    }
    if (st == RK_OK && c->budget > 0) {
        /* Re-rank per sequence, zero the dropped columns, recompute δμ for the kept ones. */
        for (int b = 0; b < c->n_seq && st == RK_OK; b++) {
            int32_t *ranks = rot->ranks + (size_t)b * c->n_kv_heads;
            st = rk_budget_allocate(rot->spectrum + (size_t)b * c->n_kv_heads * d, c->n_kv_heads,
                                    (int)d, c->budget, c->rank_multiple, c->rank, ranks);
            for (int g = 0; g < c->n_kv_heads && st == RK_OK; g++) {
                size_t h = (size_t)b * c->n_kv_heads + g;
                float *Rh = rot->R + h * d * r;
                for (size_t i = 0; i < d; i++)
                    for (size_t j = (size_t)ranks[g]; j < r; j++) Rh[i * r + j] = 0.0f;
                if (c->method != RK_METHOD_THINK && rot->count[h] > 0) {
                    for (size_t i = 0; i < d * r; i++) R[i] = Rh[i];
                    rk_pca_mean_correction(rot->mean + h * d, R, (int)d, (int)r, dmu);
                    for (size_t i = 0; i < d; i++) rot->dmu[h * d + i] = (float)dmu[i];
                }
            }
        }
        if (st != RK_OK) st = rk_fail(ctx, st, "budget allocation failed");
    }
    free(C);
    free(dev_R);
    free(slot);
    if (st != RK_OK) return st;
    double t2 = prof ? rk_now_seconds() : 0.0;
    st = rk_buffer_upload(rot->R_dev, 0, rot->R, (size_t)rot->n_heads * d * r * sizeof(float));
    if (st == RK_OK) st = rk_buffer_upload(rot->dmu_dev, 0, rot->dmu, (size_t)rot->n_heads * d * sizeof(float));
    if (st == RK_OK) rot->final = 1;
    if (prof && st == RK_OK)
        fprintf(stderr, "rk_rotation finalize us: fit %.1f, bases %.1f, upload %.1f\n", (t1 - t0) * 1e6,
                (t2 - t1) * 1e6, (rk_now_seconds() - t2) * 1e6);
    return st;
}

static rk_status rk_rotation_need_final(const rk_rotation *rot) {
    if (!rot->final)
        return rk_fail(rot->ctx, RK_ERR_BAD_STATE, "rotation not finalized (rk_rotation_finalize "
                       "or rk_rotation_set_basis first)");
    return RK_OK;
}

rk_status rk_rotation_get_basis(const rk_rotation *rot, float *R, float *dmu) {
    if (!rot || (!R && !dmu)) return rot ? rk_fail(rot->ctx, RK_ERR_NULL_ARG, "R and dmu both NULL") : RK_ERR_NULL_ARG;
    rk_status st = rk_rotation_need_final(rot);
    if (st != RK_OK) return st;
    size_t nh = (size_t)rot->n_heads, d = (size_t)rot->cfg.head_dim, r = (size_t)rot->cfg.rank;
    if (R) memcpy(R, rot->R, nh * d * r * sizeof(float));
    if (dmu) memcpy(dmu, rot->dmu, nh * d * sizeof(float));
    return RK_OK;
}

rk_status rk_rotation_get_ranks(const rk_rotation *rot, int32_t *ranks) {
    if (!rot || !ranks) return rot ? rk_fail(rot->ctx, RK_ERR_NULL_ARG, "ranks is NULL") : RK_ERR_NULL_ARG;
    rk_status st = rk_rotation_need_final(rot);
    if (st == RK_OK) memcpy(ranks, rot->ranks, sizeof(int32_t) * (size_t)rot->n_heads);
    return st;
}

rk_status rk_rotation_get_spectrum(const rk_rotation *rot, double *eigenvalues) {
    if (!rot || !eigenvalues) return rot ? rk_fail(rot->ctx, RK_ERR_NULL_ARG, "eigenvalues is NULL") : RK_ERR_NULL_ARG;
    rk_status st = rk_rotation_need_final(rot);
    if (st == RK_OK)
        memcpy(eigenvalues, rot->spectrum, sizeof(double) * (size_t)rot->n_heads * rot->cfg.head_dim);
    return st;
}

rk_status rk_rotation_get_moments(const rk_rotation *rot, double *mean, double *cov) {
    if (!rot || (!mean && !cov)) return rot ? rk_fail(rot->ctx, RK_ERR_NULL_ARG, "mean and cov both NULL") : RK_ERR_NULL_ARG;
    size_t nh = (size_t)rot->n_heads, d = (size_t)rot->cfg.head_dim;
    for (size_t h = 0; h < nh; h++) {
        double n = rot->count[h] > 0 ? (double)rot->count[h] : 1.0;
        if (mean) memcpy(mean + h * d, rot->mean + h * d, sizeof(double) * d);
        if (cov)
            for (size_t i = 0; i < d * d; i++) cov[h * d * d + i] = rot->scatter[h * d * d + i] / n;
    }
    return RK_OK;
}

rk_status rk_rotation_set_basis(rk_rotation *rot, const float *R, const float *dmu) {
    if (!rot || !R || !dmu) return rot ? rk_fail(rot->ctx, RK_ERR_NULL_ARG, "R or dmu is NULL") : RK_ERR_NULL_ARG;
    size_t nh = (size_t)rot->n_heads, d = (size_t)rot->cfg.head_dim, r = (size_t)rot->cfg.rank;
    if (!rk_all_finite_f32(R, nh * d * r) || !rk_all_finite_f32(dmu, nh * d))
        return rk_fail(rot->ctx, RK_ERR_NON_FINITE, "R or dmu contains NaN or Inf");
    rk_status st = rk_buffer_upload(rot->R_dev, 0, R, nh * d * r * sizeof(float));
    if (st == RK_OK) st = rk_buffer_upload(rot->dmu_dev, 0, dmu, nh * d * sizeof(float));
    if (st != RK_OK) return st;
    memcpy(rot->R, R, nh * d * r * sizeof(float));
    memcpy(rot->dmu, dmu, nh * d * sizeof(float));
    for (size_t h = 0; h < nh; h++) rot->ranks[h] = (int32_t)r;
    memset(rot->spectrum, 0, sizeof(double) * nh * d);
    rot->final = 1;
    return RK_OK;
}
