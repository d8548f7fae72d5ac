/* Contexts, library-owned buffers, error messages and host dtype conversion. */
#include "backend.h"
#include "half.h"
#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

rk_status rk_fail(rk_context *ctx, rk_status status, const char *fmt, ...) {
    if (ctx) {
        va_list ap;
        va_start(ap, fmt);
        int n = snprintf(ctx->last_error, sizeof ctx->last_error, "%s: ", rk_status_name(status));
        if (n < 0 || (size_t)n >= sizeof ctx->last_error) n = 0;
        vsnprintf(ctx->last_error + n, sizeof ctx->last_error - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return status;
}

void rk_context_options_init(rk_context_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->n_threads = 0;
    o->check_finite = 1;
}

static int rk_online_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

rk_status rk_context_create(const char *backend, size_t device_index,
                            const rk_context_options *opts, rk_context **out) {
    if (!backend || !out) return RK_ERR_NULL_ARG;
    *out = NULL;
    rk_context_options o;
    rk_context_options_init(&o);
    if (opts) {
        if (opts->struct_size < sizeof(uint32_t) + sizeof(int) || opts->struct_size > sizeof o)
            return RK_ERR_INVALID_ARG;
        memcpy(&o, opts, opts->struct_size);
        if (o.n_threads < 0) return RK_ERR_INVALID_ARG;
    }
    const rk_backend_iface *be = rk_backend_find(backend);
    if (!be) return rk_backend_is_known(backend) ? RK_ERR_BACKEND_NOT_BUILT : RK_ERR_INVALID_ARG;
    size_t n = 0;
    rk_status st = be->device_count(&n);
    if (st != RK_OK) return st;
    if (device_index >= n) return RK_ERR_DEVICE_NOT_FOUND;

    rk_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return RK_ERR_OUT_OF_MEMORY;
    ctx->be = be;
    ctx->device_index = device_index;
    ctx->n_threads = o.n_threads > 0 ? o.n_threads : rk_online_cores();
    ctx->check_finite = o.check_finite != 0;
    st = be->context_init(ctx);
    if (st != RK_OK) {
        free(ctx);
        return st;
    }
    *out = ctx;
    return RK_OK;
}

void rk_context_destroy(rk_context *ctx) {
    if (!ctx) return;
    ctx->be->context_free(ctx);
    free(ctx);
}

const char *rk_context_last_error(const rk_context *ctx) { return ctx ? ctx->last_error : ""; }

const char *rk_context_backend(const rk_context *ctx) { return ctx ? ctx->be->name : NULL; }

rk_status rk_context_device_description(const rk_context *ctx, char *buf, size_t buf_len) {
    if (!ctx || !buf) return RK_ERR_NULL_ARG;
    if (buf_len == 0) return RK_ERR_INVALID_ARG;
    return ctx->be->device_name(ctx->device_index, buf, buf_len);
}

rk_status rk_context_synchronize(rk_context *ctx) {
    if (!ctx) return RK_ERR_NULL_ARG;
    return ctx->be->synchronize(ctx);
}

/* ---- buffers ---------------------------------------------------------------------------- */

rk_status rk_buffer_alloc(rk_context *ctx, size_t bytes, rk_buffer **out) {
    if (!ctx || !out) return RK_ERR_NULL_ARG;
    *out = NULL;
    if (bytes == 0) return rk_fail(ctx, RK_ERR_INVALID_ARG, "buffer size must be > 0");
    rk_buffer *b = calloc(1, sizeof *b);
    if (!b) return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "host allocation of a buffer handle");
    rk_status st = ctx->be->buffer_alloc(ctx, bytes, &b->handle);
    if (st != RK_OK) {
        free(b);
        if (ctx->last_error[0] == '\0' || st == RK_ERR_OUT_OF_MEMORY)
            return rk_fail(ctx, st, "%s: allocating %zu bytes", ctx->be->name, bytes);
        return st;
    }
    b->ctx = ctx;
    b->size = bytes;
    *out = b;
    return RK_OK;
}

void rk_buffer_free(rk_buffer *buf) {
    if (!buf) return;
    buf->ctx->be->buffer_free(buf->ctx, buf->handle);
    free(buf);
}

size_t rk_buffer_size(const rk_buffer *buf) { return buf ? buf->size : 0; }

static rk_status rk_buffer_check_range(const rk_buffer *buf, size_t offset, size_t bytes) {
    if (offset > buf->size || bytes > buf->size - offset)
        return rk_fail(buf->ctx, RK_ERR_OUT_OF_RANGE,
                       "range [%zu, %zu) exceeds the buffer's %zu bytes", offset, offset + bytes,
                       buf->size);
    return RK_OK;
}

rk_status rk_buffer_upload(rk_buffer *buf, size_t offset, const void *src, size_t bytes) {
    if (!buf || (!src && bytes)) return RK_ERR_NULL_ARG;
    rk_status st = rk_buffer_check_range(buf, offset, bytes);
    if (st != RK_OK || bytes == 0) return st;
    return buf->ctx->be->buffer_upload(buf->ctx, buf->handle, offset, src, bytes);
}

rk_status rk_buffer_download(const rk_buffer *buf, size_t offset, void *dst, size_t bytes) {
    if (!buf || (!dst && bytes)) return RK_ERR_NULL_ARG;
    rk_status st = rk_buffer_check_range(buf, offset, bytes);
    if (st != RK_OK || bytes == 0) return st;
    return buf->ctx->be->buffer_download(buf->ctx, buf->handle, offset, dst, bytes);
}

/* ---- host conversion ---------------------------------------------------------------------- */

rk_status rk_convert_from_f32(rk_dtype dst_type, void *dst, const float *src, size_t count) {
    if ((!dst || !src) && count) return RK_ERR_NULL_ARG;
    switch (dst_type) {
    case RK_F32: memcpy(dst, src, count * sizeof(float)); return RK_OK;
    case RK_F16:
        for (size_t i = 0; i < count; i++) ((uint16_t *)dst)[i] = rk_f32_to_f16(src[i]);
        return RK_OK;
    case RK_BF16:
        for (size_t i = 0; i < count; i++) ((uint16_t *)dst)[i] = rk_f32_to_bf16(src[i]);
        return RK_OK;
    case RK_I32: break;
    }
    return RK_ERR_DTYPE_MISMATCH;
}

rk_status rk_convert_to_f32(rk_dtype src_type, float *dst, const void *src, size_t count) {
    if ((!dst || !src) && count) return RK_ERR_NULL_ARG;
    switch (src_type) {
    case RK_F32: memcpy(dst, src, count * sizeof(float)); return RK_OK;
    case RK_F16:
        for (size_t i = 0; i < count; i++) dst[i] = rk_f16_to_f32(((const uint16_t *)src)[i]);
        return RK_OK;
    case RK_BF16:
        for (size_t i = 0; i < count; i++) dst[i] = rk_bf16_to_f32(((const uint16_t *)src)[i]);
        return RK_OK;
    case RK_I32: break;
    }
    return RK_ERR_DTYPE_MISMATCH;
}
