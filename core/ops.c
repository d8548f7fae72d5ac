/* Public compress / decode / SparK entry points: validate, then hand a resolved op descriptor to
 * the context's backend; optionally scan the outputs for non-finite values. */
#include "rotation.h"
#include "tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void rk_decode_args_init(rk_decode_args *a) {
    if (!a) return;
    memset(a, 0, sizeof *a);
    a->struct_size = sizeof *a;
}

static int rk_is_float(rk_dtype t) { return t == RK_F32 || t == RK_F16 || t == RK_BF16; }

static rk_status rk_check_rotation(rk_context *ctx, const rk_rotation *rot) {
    if (!rot) return rk_fail(ctx, RK_ERR_NULL_ARG, "rotation is NULL");
    if (rot->ctx != ctx) return rk_fail(ctx, RK_ERR_WRONG_CONTEXT, "rotation lives on another context");
    return RK_OK;
}

/* Scan a written region (a view) for NaN/Inf when the context asks for it. */
static rk_status rk_check_output(rk_context *ctx, const rk_tensor *t, const char *what) {
    if (!ctx->check_finite) return RK_OK;
    size_t n = (size_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
    float *host = malloc(n * sizeof(float));
    if (!host) return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "finite check of %s", what);
    rk_status st = rk_tensor_read_f32(ctx, t, host);
    if (st == RK_OK && !rk_all_finite_f32(host, n))
        st = rk_fail(ctx, RK_ERR_NON_FINITE, "%s contains NaN or Inf: an input carried non-finite "
                     "values (or overflowed its dtype)", what);
    free(host);
    return st;
}

/* The rows [offset, offset+T) of a cache view. */
static rk_tensor rk_rows(const rk_tensor *t, int64_t offset, int64_t T) {
    rk_tensor v = *t;
    v.offset += (size_t)(offset * t->nb[2]) * rk_dtype_size(t->dtype);
    v.ne[2] = T;
    return v;
}

rk_status rk_compress(rk_context *ctx, const rk_rotation *rot, const rk_tensor *keys,
                      rk_tensor *kcache, int64_t token_offset) {
    if (!ctx) return RK_ERR_NULL_ARG;
    rk_status st = rk_check_rotation(ctx, rot);
    if (st != RK_OK) return st;
    if (!rot->final) return rk_fail(ctx, RK_ERR_BAD_STATE, "rotation not finalized");
    const rk_rotation_config *c = &rot->cfg;
    const int64_t wk[4] = {c->n_seq, c->n_kv_heads, RK_ANY, c->head_dim};
    if ((st = rk_tensor_check(ctx, keys, "keys", RK_ANY, wk)) != RK_OK) return st;
    if (!rk_is_float(keys->dtype)) return rk_fail(ctx, RK_ERR_DTYPE_MISMATCH, "keys must be float");
    const int64_t wc[4] = {c->n_seq, c->n_kv_heads, RK_ANY, c->rank};
    if ((st = rk_tensor_check(ctx, kcache, "kcache", keys->dtype, wc)) != RK_OK) return st;
    if (token_offset < 0 || token_offset + keys->ne[2] > kcache->ne[2])
        return rk_fail(ctx, RK_ERR_OUT_OF_RANGE, "rows [%lld, %lld) exceed the cache's %lld tokens",
                       (long long)token_offset, (long long)(token_offset + keys->ne[2]),
                       (long long)kcache->ne[2]);
    rk_op_compress op = {keys, kcache, rot->R_dev, token_offset, c->n_seq, c->n_kv_heads,
                         (int)keys->ne[2], c->head_dim, c->rank};
    st = ctx->be->compress(ctx, &op);
    if (st != RK_OK) return st;
    rk_tensor written = rk_rows(kcache, token_offset, keys->ne[2]);
    return rk_check_output(ctx, &written, "compressed keys");
}

/* Validate rk_decode_args and resolve an rk_op_decode. sparse: span tokens come from k_span. */
static rk_status rk_decode_prepare(rk_context *ctx, const rk_decode_args *a, int sparse,
                                   rk_op_decode *op) {
    if (!a) return rk_fail(ctx, RK_ERR_NULL_ARG, "decode args are NULL");
    if (a->struct_size != sizeof *a)
        return rk_fail(ctx, RK_ERR_INVALID_ARG, "rk_decode_args.struct_size is %u, expected %zu "
                       "(call rk_decode_args_init)", a->struct_size, sizeof *a);
    if (!a->q || !a->k_full || !a->v || !a->out || !a->seqs)
        return rk_fail(ctx, RK_ERR_NULL_ARG, "q, k_full, v, out and seqs are required");
    rk_status st;
    if ((st = rk_tensor_check(ctx, a->q, "q", RK_ANY, NULL)) != RK_OK) return st;
    rk_dtype dt = a->q->dtype;
    if (!rk_is_float(dt)) return rk_fail(ctx, RK_ERR_DTYPE_MISMATCH, "q must be f32/f16/bf16");
    int64_t B = a->q->ne[0], Hq = a->q->ne[1], d = a->q->ne[3];
    if (a->q->ne[2] != 1)
        return rk_fail(ctx, RK_ERR_SHAPE_MISMATCH, "q must hold one token per head (got %lld)",
                       (long long)a->q->ne[2]);
    if ((st = rk_tensor_check(ctx, a->k_full, "k_full", dt, (const int64_t[4]){B, RK_ANY, RK_ANY, d})) != RK_OK)
        return st;
    int64_t Hkv = a->k_full->ne[1];
    if (Hq % Hkv != 0)
        return rk_fail(ctx, RK_ERR_HEAD_MISMATCH, "%lld query heads are not a multiple of %lld KV heads",
                       (long long)Hq, (long long)Hkv);
    if ((st = rk_tensor_check(ctx, a->v, "v", dt, (const int64_t[4]){B, Hkv, RK_ANY, RK_ANY})) != RK_OK)
        return st;
    int64_t dv = a->v->ne[3];
    if ((st = rk_tensor_check(ctx, a->out, "out", dt, (const int64_t[4]){B, Hq, 1, dv})) != RK_OK)
        return st;
    if (a->lse && (st = rk_tensor_check(ctx, a->lse, "lse", RK_F32, (const int64_t[4]){B, Hq, 1, 1})) != RK_OK)
        return st;
    int64_t r = 0;
    if (sparse) {
        if ((st = rk_check_rotation(ctx, a->rot)) != RK_OK) return st;
        const rk_rotation_config *c = &a->rot->cfg;
        if (!a->rot->final) return rk_fail(ctx, RK_ERR_BAD_STATE, "rotation not finalized");
        if (c->n_seq != B || c->n_kv_heads != Hkv || c->head_dim != d)
            return rk_fail(ctx, RK_ERR_SHAPE_MISMATCH, "rotation is for %d sequences, %d KV heads, d %d;"
                           " tensors have %lld, %lld, %lld", c->n_seq, c->n_kv_heads, c->head_dim,
                           (long long)B, (long long)Hkv, (long long)d);
        r = c->rank;
        if (a->k_span && (st = rk_tensor_check(ctx, a->k_span, "k_span", dt,
                                               (const int64_t[4]){B, Hkv, RK_ANY, r})) != RK_OK)
            return st;
    }
    if (!(a->scale >= 0 && isfinite(a->scale)))
        return rk_fail(ctx, RK_ERR_INVALID_ARG, "scale must be finite and >= 0 (0 = 1/sqrt(d))");
    if (a->n_split < 0) return rk_fail(ctx, RK_ERR_INVALID_ARG, "n_split must be >= 0");
    int max_len = 0;
    for (int64_t b = 0; b < B; b++) {
        rk_seq_info s = a->seqs[b];
        if (!sparse) s.span_len = 0;
        if (s.seq_len < 1)
            return rk_fail(ctx, RK_ERR_INVALID_ARG, "seqs[%lld].seq_len = %d: need at least one token",
                           (long long)b, s.seq_len);
        if (s.seq_len > a->v->ne[2])
            return rk_fail(ctx, RK_ERR_OUT_OF_RANGE, "seqs[%lld].seq_len = %d exceeds v's %lld tokens",
                           (long long)b, s.seq_len, (long long)a->v->ne[2]);
        if (s.span_len < 0 || s.span_begin < 0 || (int64_t)s.span_begin + s.span_len > s.seq_len)
            return rk_fail(ctx, RK_ERR_OUT_OF_RANGE, "seqs[%lld]: span [%d, %d+%d) is not inside [0, %d)",
                           (long long)b, s.span_begin, s.span_begin, s.span_len, s.seq_len);
        if (s.span_len > 0 && !a->k_span)
            return rk_fail(ctx, RK_ERR_NULL_ARG, "seqs[%lld] has a span but k_span is NULL", (long long)b);
        if (s.span_len > 0 && s.span_len > a->k_span->ne[2])
            return rk_fail(ctx, RK_ERR_OUT_OF_RANGE, "seqs[%lld].span_len = %d exceeds k_span's %lld tokens",
                           (long long)b, s.span_len, (long long)a->k_span->ne[2]);
        if (s.seq_len - s.span_len > a->k_full->ne[2])
            return rk_fail(ctx, RK_ERR_OUT_OF_RANGE, "seqs[%lld]: %d full-width tokens exceed k_full's %lld",
                           (long long)b, s.seq_len - s.span_len, (long long)a->k_full->ne[2]);
        if (s.seq_len > max_len) max_len = s.seq_len;
    }
    memset(op, 0, sizeof *op);
    op->sparse = sparse;
    op->B = (int)B; op->Hq = (int)Hq; op->Hkv = (int)Hkv; op->d = (int)d; op->dv = (int)dv;
    op->r = (int)r;
    op->q = a->q; op->k_full = a->k_full; op->k_span = sparse ? a->k_span : NULL; op->v = a->v;
    op->out = a->out; op->lse = a->lse;
    op->R = sparse ? a->rot->R_dev : NULL;
    op->dmu = sparse ? a->rot->dmu_dev : NULL;
    op->seqs = a->seqs;
    op->max_seq_len = max_len;
    op->scale = a->scale > 0 ? a->scale : (float)(1.0 / sqrt((double)d));
    op->n_split = a->n_split;
    return RK_OK;
}

static rk_status rk_decode_finish(rk_context *ctx, const rk_decode_args *a) {
    rk_status st = rk_check_output(ctx, a->out, "attention output");
    if (st == RK_OK && a->lse) st = rk_check_output(ctx, a->lse, "lse");
    return st;
}

/* Dense decode ignores spans: pass a copy of seqs with span_len 0 so backends see one contract. */
static rk_status rk_decode_run(rk_context *ctx, const rk_decode_args *a, int sparse) {
    if (!ctx) return RK_ERR_NULL_ARG;
    rk_op_decode op;
    rk_status st = rk_decode_prepare(ctx, a, sparse, &op);
    if (st != RK_OK) return st;
    rk_seq_info *dense_seqs = NULL;
    if (!sparse) {
        dense_seqs = malloc(sizeof(rk_seq_info) * (size_t)op.B);
        if (!dense_seqs) return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "decode scratch");
        for (int b = 0; b < op.B; b++) {
            dense_seqs[b] = a->seqs[b];
            dense_seqs[b].span_begin = 0;
            dense_seqs[b].span_len = 0;
        }
        op.seqs = dense_seqs;
    }
    st = ctx->be->decode(ctx, &op);
    free(dense_seqs);
    return st == RK_OK ? rk_decode_finish(ctx, a) : st;
}

rk_status rk_decode_sparse(rk_context *ctx, const rk_decode_args *args) {
    return rk_decode_run(ctx, args, 1);
}

rk_status rk_decode_dense(rk_context *ctx, const rk_decode_args *args) {
    return rk_decode_run(ctx, args, 0);
}

/* ---- SparK-style baseline ------------------------------------------------------------------- */

rk_status rk_spark_compress(rk_context *ctx, const rk_rotation *rot, const rk_tensor *keys,
                            rk_tensor *values, rk_tensor *indices, rk_tensor *fill,
                            int64_t token_offset) {
    if (!ctx) return RK_ERR_NULL_ARG;
    rk_status st = rk_check_rotation(ctx, rot);
    if (st != RK_OK) return st;
    if (!ctx->be->spark_compress)
        return rk_fail(ctx, RK_ERR_UNSUPPORTED, "%s backend has no SparK baseline", ctx->be->name);
    const rk_rotation_config *c = &rot->cfg;
    const int64_t wk[4] = {c->n_seq, c->n_kv_heads, RK_ANY, c->head_dim};
    if ((st = rk_tensor_check(ctx, keys, "keys", RK_ANY, wk)) != RK_OK) return st;
    if (!rk_is_float(keys->dtype)) return rk_fail(ctx, RK_ERR_DTYPE_MISMATCH, "keys must be float");
    const int64_t wv[4] = {c->n_seq, c->n_kv_heads, RK_ANY, c->rank};
    if ((st = rk_tensor_check(ctx, values, "values", keys->dtype, wv)) != RK_OK) return st;
    if ((st = rk_tensor_check(ctx, indices, "indices", RK_I32,
                              (const int64_t[4]){c->n_seq, c->n_kv_heads, values->ne[2], c->rank})) != RK_OK)
        return st;
    if ((st = rk_tensor_check(ctx, fill, "fill", RK_F32,
                              (const int64_t[4]){c->n_seq, c->n_kv_heads, values->ne[2], 1})) != RK_OK)
        return st;
    if (token_offset < 0 || token_offset + keys->ne[2] > values->ne[2])
        return rk_fail(ctx, RK_ERR_OUT_OF_RANGE, "rows [%lld, %lld) exceed the cache's %lld tokens",
                       (long long)token_offset, (long long)(token_offset + keys->ne[2]),
                       (long long)values->ne[2]);
    size_t nh = (size_t)rot->n_heads, d = (size_t)c->head_dim;
    double *qnorm = malloc(sizeof(double) * nh * d);
    if (!qnorm) return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "spark scratch");
    for (size_t h = 0; h < nh; h++) {
        if (rot->q_count[h] == 0) {
            free(qnorm);
            return rk_fail(ctx, RK_ERR_BAD_STATE, "SparK needs observed queries (rk_rotation_observe)");
        }
        for (size_t i = 0; i < d; i++)
            qnorm[h * d + i] = sqrt(rot->q_sumsq[h * d + i] / (double)rot->q_count[h]);
    }
    rk_op_spark_compress op = {keys, values, indices, fill, qnorm, token_offset, c->n_seq,
                               c->n_kv_heads, (int)keys->ne[2], c->head_dim, c->rank};
    st = ctx->be->spark_compress(ctx, &op);
    free(qnorm);
    if (st != RK_OK) return st;
    rk_tensor written = rk_rows(values, token_offset, keys->ne[2]);
    return rk_check_output(ctx, &written, "SparK values");
}

rk_status rk_decode_spark(rk_context *ctx, const rk_decode_args *args, const rk_tensor *values,
                          const rk_tensor *indices, const rk_tensor *fill) {
    if (!ctx) return RK_ERR_NULL_ARG;
    if (!ctx->be->spark_decode)
        return rk_fail(ctx, RK_ERR_UNSUPPORTED, "%s backend has no SparK baseline", ctx->be->name);
    if (!args || !values || !indices || !fill)
        return rk_fail(ctx, RK_ERR_NULL_ARG, "args, values, indices and fill are required");
    rk_op_spark_decode op;
    rk_decode_args a = *args;
    a.k_span = values; /* validated as the span cache: [B][Hkv][Ts][rank], q's dtype */
    rk_status st = rk_decode_prepare(ctx, &a, 1, &op.base);
    if (st != RK_OK) return st;
    const int64_t ws[4] = {op.base.B, op.base.Hkv, values->ne[2], op.base.r};
    if ((st = rk_tensor_check(ctx, indices, "indices", RK_I32, ws)) != RK_OK) return st;
    const int64_t wf[4] = {op.base.B, op.base.Hkv, values->ne[2], 1};
    if ((st = rk_tensor_check(ctx, fill, "fill", RK_F32, wf)) != RK_OK) return st;
    op.values = values; op.indices = indices; op.fill = fill;
    op.base.k_span = NULL;
    st = ctx->be->spark_decode(ctx, &op);
    return st == RK_OK ? rk_decode_finish(ctx, &a) : st;
}
