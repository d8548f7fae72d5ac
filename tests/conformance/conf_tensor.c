/* Sentinel-guarded device tensors (see conf_tensor.h). */
#include "conf_tensor.h"

#include <stdlib.h>
#include <string.h>

#define CONF_GUARD_BYTES 256 /* before and after the view */

static const unsigned char conf_sentinel[4] = {0xEF, 0xBE, 0xAD, 0xDE};

static void conf_fill_sentinel(unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = conf_sentinel[i % 4];
}

rk_status conf_tensor_create(rk_context *ctx, conf_tensor *ct, rk_dtype dtype, int64_t B,
                             int64_t H, int64_t T, int64_t C, int padded) {
    memset(ct, 0, sizeof *ct);
    rk_tensor *t = &ct->t;
    t->dtype = dtype;
    t->ne[0] = B; t->ne[1] = H; t->ne[2] = T; t->ne[3] = C;
    t->nb[3] = 1;
    t->nb[2] = C + (padded ? 3 : 0);
    t->nb[1] = T * t->nb[2] + (padded ? 5 : 0);
    t->nb[0] = H * t->nb[1] + (padded ? 7 : 0);
    t->offset = CONF_GUARD_BYTES;
    size_t span = 0;
    rk_status st = rk_tensor_span_bytes(t, &span);
    if (st != RK_OK) return st;
    ct->size = CONF_GUARD_BYTES + span + CONF_GUARD_BYTES;
    st = rk_buffer_alloc(ctx, ct->size, &ct->buf);
    t->buf = ct->buf;
    return st;
}

void conf_tensor_destroy(conf_tensor *ct) {
    rk_buffer_free(ct->buf);
    memset(ct, 0, sizeof *ct);
}

static size_t conf_row_offset(const rk_tensor *t, int64_t b, int64_t h, int64_t i) {
    return t->offset + (size_t)(b * t->nb[0] + h * t->nb[1] + i * t->nb[2]) * rk_dtype_size(t->dtype);
}

rk_status conf_tensor_upload(conf_tensor *ct, const void *src) {
    const rk_tensor *t = &ct->t;
    unsigned char *host = malloc(ct->size);
    if (!host) return RK_ERR_OUT_OF_MEMORY;
    conf_fill_sentinel(host, ct->size);
    size_t es = rk_dtype_size(t->dtype), C = (size_t)t->ne[3], k = 0;
    rk_status st = RK_OK;
    for (int64_t b = 0; src && b < t->ne[0] && st == RK_OK; b++)
        for (int64_t h = 0; h < t->ne[1] && st == RK_OK; h++)
            for (int64_t i = 0; i < t->ne[2] && st == RK_OK; i++, k += C) {
                unsigned char *dst = host + conf_row_offset(t, b, h, i);
                if (t->dtype == RK_I32) memcpy(dst, (const int32_t *)src + k, C * es);
                else st = rk_convert_from_f32(t->dtype, dst, (const float *)src + k, C);
            }
    if (st == RK_OK) st = rk_buffer_upload(ct->buf, 0, host, ct->size);
    free(host);
    return st;
}

rk_status conf_tensor_download(const conf_tensor *ct, int64_t t0, int64_t t1, void *dst) {
    const rk_tensor *t = &ct->t;
    unsigned char *host = malloc(ct->size);
    if (!host) return RK_ERR_OUT_OF_MEMORY;
    rk_status st = rk_buffer_download(ct->buf, 0, host, ct->size);
    size_t es = rk_dtype_size(t->dtype), C = (size_t)t->ne[3], k = 0;
    for (int64_t b = 0; b < t->ne[0] && st == RK_OK; b++)
        for (int64_t h = 0; h < t->ne[1] && st == RK_OK; h++)
            for (int64_t i = t0; i < t1 && st == RK_OK; i++, k += C) {
                const unsigned char *src = host + conf_row_offset(t, b, h, i);
                if (t->dtype == RK_I32) memcpy((int32_t *)dst + k, src, C * es);
                else st = rk_convert_to_f32(t->dtype, (float *)dst + k, src, C);
            }
    free(host);
    return st;
}

long conf_tensor_guard_violation(const conf_tensor *ct, int64_t t0, int64_t t1) {
    const rk_tensor *t = &ct->t;
    unsigned char *host = malloc(ct->size), *allowed = calloc(ct->size, 1);
    long where = -2;
    if (host && allowed && rk_buffer_download(ct->buf, 0, host, ct->size) == RK_OK) {
        size_t row = (size_t)t->ne[3] * rk_dtype_size(t->dtype);
        for (int64_t b = 0; b < t->ne[0]; b++)
            for (int64_t h = 0; h < t->ne[1]; h++)
                for (int64_t i = t0; i < t1; i++) memset(allowed + conf_row_offset(t, b, h, i), 1, row);
        where = -1;
        for (size_t i = 0; i < ct->size; i++)
            if (!allowed[i] && host[i] != conf_sentinel[i % 4]) {
                where = (long)i;
                break;
            }
    }
    free(host);
    free(allowed);
    return where;
}
