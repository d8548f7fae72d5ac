/* Device tensors for rk-conformance. Every buffer carries sentinel bytes before and after the
 * view, and output views get gaps inside (padded rows, heads, batches): after an operation,
 * every byte outside the elements it was allowed to write must still hold the sentinel. */
#ifndef RK_CONF_TENSOR_H
#define RK_CONF_TENSOR_H

#include "rotatek.h"

#include <stddef.h>
#include <stdint.h>

typedef struct conf_tensor {
    rk_buffer *buf;
    size_t size;    /* bytes of the whole buffer */
    rk_tensor t;
} conf_tensor;

/* padded != 0: gaps between rows, heads and batches (legal strides, nb[3] = 1). */
rk_status conf_tensor_create(rk_context *ctx, conf_tensor *ct, rk_dtype dtype, int64_t B,
                             int64_t H, int64_t T, int64_t C, int padded);
void conf_tensor_destroy(conf_tensor *ct);

/* Fill the whole buffer with the sentinel, then write dense host rows [B][H][T][C] into the
 * view: floats converted to the dtype (round to nearest even), or int32 for RK_I32.
 * src NULL: sentinel only (outputs). */
rk_status conf_tensor_upload(conf_tensor *ct, const void *src);
/* Read rows [t0, t1) of the view as dense f32 (or int32 for RK_I32) [B][H][t1-t0][C]. */
rk_status conf_tensor_download(const conf_tensor *ct, int64_t t0, int64_t t1, void *dst);
/* Byte offset of the first byte outside the elements of rows [t0, t1) that no longer holds
 * the sentinel, -1 if none, -2 on a download failure. */
long conf_tensor_guard_violation(const conf_tensor *ct, int64_t t0, int64_t t1);

#endif
