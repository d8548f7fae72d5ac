/* Tensor views: construction, validation, host readback. */
#include "tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

rk_status rk_tensor_init(rk_tensor *t, rk_buffer *buf, size_t offset, rk_dtype dtype,
                         int64_t batch, int64_t heads, int64_t tokens, int64_t channels,
                         rk_layout layout) {
    if (!t) return RK_ERR_NULL_ARG;
    memset(t, 0, sizeof *t);
    if (rk_dtype_size(dtype) == 0) return RK_ERR_DTYPE_MISMATCH;
    if (batch <= 0 || heads <= 0 || tokens <= 0 || channels <= 0) return RK_ERR_INVALID_ARG;
    t->buf = buf;
    t->offset = offset;
    t->dtype = dtype;
    t->ne[0] = batch; t->ne[1] = heads; t->ne[2] = tokens; t->ne[3] = channels;
    t->nb[3] = 1;
    if (layout == RK_LAYOUT_BHTC) {
        t->nb[2] = channels;
        t->nb[1] = tokens * channels;
        t->nb[0] = heads * tokens * channels;
    } else if (layout == RK_LAYOUT_BTHC) {
        t->nb[1] = channels;
        t->nb[2] = heads * channels;
        t->nb[0] = tokens * heads * channels;
    } else {
        return RK_ERR_INVALID_ARG;
    }
    return RK_OK;
}

rk_status rk_tensor_span_bytes(const rk_tensor *t, size_t *bytes) {
    if (!t || !bytes) return RK_ERR_NULL_ARG;
    size_t es = rk_dtype_size(t->dtype);
    if (es == 0) return RK_ERR_DTYPE_MISMATCH;
    int64_t last = 0;
    for (int i = 0; i < 4; i++) {
        if (t->ne[i] <= 0 || t->nb[i] < 0) return RK_ERR_INVALID_ARG;
        last += (t->ne[i] - 1) * t->nb[i];
    }
    *bytes = (size_t)(last + 1) * es;
    return RK_OK;
}

static const char *const rk_dim_names[4] = {"batch", "heads", "tokens", "channels"};

rk_status rk_tensor_check(rk_context *ctx, const rk_tensor *t, const char *name, int want_dtype,
                          const int64_t want[4]) {
    if (!t) return rk_fail(ctx, RK_ERR_NULL_ARG, "tensor '%s' is NULL", name);
    if (!t->buf) return rk_fail(ctx, RK_ERR_NULL_ARG, "tensor '%s' has no buffer", name);
    if (t->buf->ctx != ctx)
        return rk_fail(ctx, RK_ERR_WRONG_CONTEXT, "tensor '%s' lives on another context", name);
    if (rk_dtype_size(t->dtype) == 0)
        return rk_fail(ctx, RK_ERR_DTYPE_MISMATCH, "tensor '%s' has unknown dtype %d", name,
                       (int)t->dtype);
    if (want_dtype != RK_ANY && (int)t->dtype != want_dtype)
        return rk_fail(ctx, RK_ERR_DTYPE_MISMATCH, "tensor '%s' is %s, expected %s", name,
                       rk_dtype_name(t->dtype), rk_dtype_name((rk_dtype)want_dtype));
    for (int i = 0; i < 4; i++) {
        if (t->ne[i] <= 0)
            return rk_fail(ctx, RK_ERR_SHAPE_MISMATCH, "tensor '%s': %s extent %lld must be > 0",
                           name, rk_dim_names[i], (long long)t->ne[i]);
        if (want && want[i] != RK_ANY && t->ne[i] != want[i])
            return rk_fail(ctx, RK_ERR_SHAPE_MISMATCH, "tensor '%s': %s extent is %lld, expected %lld",
                           name, rk_dim_names[i], (long long)t->ne[i], (long long)want[i]);
        if (t->nb[i] < 0)
            return rk_fail(ctx, RK_ERR_BAD_LAYOUT, "tensor '%s': negative %s stride", name,
                           rk_dim_names[i]);
    }
    if (t->nb[3] != 1)
        return rk_fail(ctx, RK_ERR_BAD_LAYOUT, "tensor '%s': channel stride is %lld, must be 1",
                       name, (long long)t->nb[3]);
    size_t span = 0;
    rk_tensor_span_bytes(t, &span);
    if (t->offset > t->buf->size || span > t->buf->size - t->offset)
        return rk_fail(ctx, RK_ERR_OUT_OF_RANGE,
                       "tensor '%s' spans bytes [%zu, %zu) of a %zu-byte buffer", name, t->offset,
                       t->offset + span, t->buf->size);
    if (t->offset % rk_dtype_size(t->dtype) != 0)
        return rk_fail(ctx, RK_ERR_BAD_LAYOUT, "tensor '%s': offset %zu not aligned to its dtype",
                       name, t->offset);
    return RK_OK;
}

rk_status rk_tensor_read_f32(rk_context *ctx, const rk_tensor *t, float *dst) {
    size_t span = 0, es = rk_dtype_size(t->dtype);
    rk_tensor_span_bytes(t, &span);
    unsigned char *raw = malloc(span);
    if (!raw) return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "host staging of %zu bytes", span);
    rk_status st = rk_buffer_download(t->buf, t->offset, raw, span);
    if (st == RK_OK) {
        size_t k = 0;
        for (int64_t b = 0; b < t->ne[0]; b++)
            for (int64_t h = 0; h < t->ne[1]; h++)
                for (int64_t i = 0; i < t->ne[2]; i++, k += (size_t)t->ne[3]) {
                    size_t off = (size_t)(b * t->nb[0] + h * t->nb[1] + i * t->nb[2]) * es;
                    st = rk_convert_to_f32(t->dtype, dst + k, raw + off, (size_t)t->ne[3]);
                    if (st != RK_OK) goto done;
                }
    }
done:
    free(raw);
    return st;
}

int rk_all_finite_f32(const float *x, size_t count) {
    for (size_t i = 0; i < count; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

int rk_all_finite_f64(const double *x, size_t count) {
    for (size_t i = 0; i < count; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}
