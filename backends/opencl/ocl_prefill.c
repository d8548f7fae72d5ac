/* Prefill operations: span moments (own mean/centering kernels + CLBlast Gram products), key
 * compression (CLBlast for f32 views it accepts, an own kernel otherwise) and the read probe. */
#include "ocl_internal.h"

#include <clblast_c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest centered copy materialised at once; bigger prefills go a few heads at a time. */
#define RK_OCL_CENTER_BYTES ((size_t)256 << 20)

static rk_status rk_ocl_clblast_fail(rk_context *ctx, CLBlastStatusCode s, const char *what) {
    if (s > -1000) return rk_ocl_fail(ctx, (cl_int)s, what); /* an OpenCL error passed through */
    return rk_fail(ctx, RK_ERR_BACKEND_FAILURE, "opencl: %s: CLBlast status %d", what, (int)s);
}

void rk_ocl_release_clblast(rk_ocl_ctx *oc) {
    /* CLBlast keeps its compiled programs per cl_context in a process-wide cache without
     * per-context eviction, and each retains our context: clearing is the only way to let the
     * context go. Other live contexts rebuild (or reload) CLBlast kernels on their next GEMM. */
    CLBlastClearCache();
    oc->used_clblast = 0;
}

static void rk_ocl_dtype_options(rk_dtype t, char *buf, size_t len) {
    snprintf(buf, len, "-D RK_DT=%d", t == RK_F32 ? 0 : t == RK_F16 ? 1 : 2);
}

/* ---- moments ---------------------------------------------------------------------------------- */

/* scatter[bh] = Xᵀ X over the n valid centered rows of one head (row-major X, n × d). */
static rk_status rk_ocl_gram(rk_context *ctx, cl_mem x, size_t x_off, int n, int d, cl_mem gram,
                             size_t g_off) {
    rk_ocl_ctx *oc = rk_ocl(ctx);
    oc->used_clblast = 1;
    CLBlastStatusCode s = CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeYes,
                                       CLBlastTransposeNo, (size_t)d, (size_t)d, (size_t)n, 1.0f,
                                       x, x_off, (size_t)d, x, x_off, (size_t)d, 0.0f, gram, g_off,
                                       (size_t)d, &oc->queue, NULL);
    return s == CLBlastSuccess ? RK_OK : rk_ocl_clblast_fail(ctx, s, "CLBlastSgemm (moments)");
}

rk_status rk_ocl_moments(rk_context *ctx, const rk_op_moments *op) {
    rk_ocl_ctx *oc = rk_ocl(ctx);
    const int B = op->B, H = op->H, d = op->d;
    const size_t nh = (size_t)B * H, dd = (size_t)d * d;
    int rows = 0;
    for (int b = 0; b < B; b++) rows = op->n_tokens[b] > rows ? op->n_tokens[b] : rows;
    memset(op->mean, 0, sizeof(double) * nh * d);
    memset(op->scatter, 0, sizeof(double) * nh * dd);
    if (rows == 0) return RK_OK;

    char opts[64];
    rk_ocl_dtype_options(op->keys->dtype, opts, sizeof opts);
    cl_kernel k_mean, k_center;
    cl_mem ntok, mean, center, gram;
    rk_status st;
    if ((st = rk_ocl_kernel(ctx, RK_OCL_SRC_PREFILL, opts, "rk_mean", &k_mean)) != RK_OK ||
        (st = rk_ocl_kernel(ctx, RK_OCL_SRC_PREFILL, opts, "rk_center", &k_center)) != RK_OK)
        return st;
    const size_t head_bytes = (size_t)rows * d * sizeof(float);
    size_t limit = oc->dev.max_alloc < RK_OCL_CENTER_BYTES ? oc->dev.max_alloc : RK_OCL_CENTER_BYTES;
    size_t per_pass = head_bytes >= limit ? 1 : limit / head_bytes;
    if (per_pass > nh) per_pass = nh;
    if ((st = rk_ocl_scratch(ctx, RK_OCL_SCR_NTOK, sizeof(cl_int) * B, &ntok)) != RK_OK ||
        (st = rk_ocl_scratch(ctx, RK_OCL_SCR_MEAN, sizeof(float) * nh * d, &mean)) != RK_OK ||
        (st = rk_ocl_scratch(ctx, RK_OCL_SCR_CENTER, head_bytes * per_pass, &center)) != RK_OK ||
        (st = rk_ocl_scratch(ctx, RK_OCL_SCR_GRAM, sizeof(float) * nh * dd, &gram)) != RK_OK ||
        (st = rk_ocl_upload_small(ctx, ntok, op->n_tokens, sizeof(cl_int) * B)) != RK_OK)
        return st;

    const rk_ocl_view kv = rk_ocl_view_of(op->keys);
    const cl_mem keys = rk_ocl_mem(op->keys->buf);
    const rk_ocl_arg mean_args[] = {RK_OCL_ARG(keys), RK_OCL_ARG(kv.off), RK_OCL_ARG(kv.sb),
                                    RK_OCL_ARG(kv.sh), RK_OCL_ARG(kv.st), RK_OCL_ARG(ntok),
                                    RK_OCL_ARG(H), RK_OCL_ARG(d), RK_OCL_ARG(mean)};
    const size_t g_mean[3] = {(size_t)d, (size_t)H, (size_t)B};
    if ((st = rk_ocl_set_args(ctx, k_mean, "rk_mean", mean_args, 9)) != RK_OK ||
        (st = rk_ocl_launch(ctx, k_mean, "rk_mean", 3, g_mean, NULL)) != RK_OK)
        return st;

    for (size_t bh0 = 0; bh0 < nh; bh0 += per_pass) {
        const size_t n_pass = nh - bh0 < per_pass ? nh - bh0 : per_pass;
        const int first = (int)bh0;
        const rk_ocl_arg args[] = {RK_OCL_ARG(keys), RK_OCL_ARG(kv.off), RK_OCL_ARG(kv.sb),
                                   RK_OCL_ARG(kv.sh), RK_OCL_ARG(kv.st), RK_OCL_ARG(ntok),
                                   RK_OCL_ARG(H), RK_OCL_ARG(d), RK_OCL_ARG(rows),
                                   RK_OCL_ARG(first), RK_OCL_ARG(mean), RK_OCL_ARG(center)};
        const size_t g_center[3] = {(size_t)d, (size_t)rows, n_pass};
        if ((st = rk_ocl_set_args(ctx, k_center, "rk_center", args, 12)) != RK_OK ||
            (st = rk_ocl_launch(ctx, k_center, "rk_center", 3, g_center, NULL)) != RK_OK)
            return st;
        for (size_t i = 0; i < n_pass; i++) {
            const int n = op->n_tokens[(bh0 + i) / (size_t)H];
            if (n > 0 && (st = rk_ocl_gram(ctx, center, i * (size_t)rows * d, n, d, gram,
                                           (bh0 + i) * dd)) != RK_OK)
                return st;
        }
    }

    /* f32 results to the host's doubles; heads without rows stay zero */
    float *host = malloc(sizeof(float) * (nh * dd > nh * d ? nh * dd : nh * d));
    if (!host) return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "opencl: moments readback");
    cl_int err = clEnqueueReadBuffer(oc->queue, mean, CL_TRUE, 0, sizeof(float) * nh * d, host, 0,
                                     NULL, NULL);
    if (err == CL_SUCCESS)
        for (size_t i = 0; i < nh * d; i++) op->mean[i] = host[i];
    if (err == CL_SUCCESS)
        err = clEnqueueReadBuffer(oc->queue, gram, CL_TRUE, 0, sizeof(float) * nh * dd, host, 0,
                                  NULL, NULL);
    if (err == CL_SUCCESS)
        for (size_t h = 0; h < nh; h++)
            if (op->n_tokens[h / (size_t)H] > 0)
                for (size_t i = 0; i < dd; i++) op->scatter[h * dd + i] = host[h * dd + i];
    free(host);
    return rk_ocl_fail(ctx, err, "clEnqueueReadBuffer (moments)");
}

/* ---- compress --------------------------------------------------------------------------------- */

/* CLBlast takes row-major operands whose row stride covers the row (one-row views may have any
 * token stride: give them the dense one). */
static int rk_ocl_gemm_ld(const rk_tensor *t, int T, int width, size_t *ld) {
    if (T == 1) {
        *ld = (size_t)width;
        return 1;
    }
    *ld = (size_t)t->nb[2];
    return t->nb[2] >= width;
}

rk_status rk_ocl_compress(rk_context *ctx, const rk_op_compress *op) {
    rk_ocl_ctx *oc = rk_ocl(ctx);
    const rk_ocl_view kv = rk_ocl_view_of(op->keys);
    rk_ocl_view cv = rk_ocl_view_of(op->kcache);
    cv.off += op->token_offset * cv.st;
    const cl_mem keys = rk_ocl_mem(op->keys->buf), kc = rk_ocl_mem(op->kcache->buf),
                 R = rk_ocl_mem(op->R);
    size_t lda = 0, ldc = 0;
    if (op->keys->dtype == RK_F32 && rk_ocl_gemm_ld(op->keys, op->T, op->d, &lda) &&
        rk_ocl_gemm_ld(op->kcache, op->T, op->r, &ldc)) {
        oc->used_clblast = 1;
        for (int b = 0; b < op->B; b++)
            for (int h = 0; h < op->H; h++) {
                size_t a_off = (size_t)(kv.off + b * kv.sb + h * kv.sh);
                size_t c_off = (size_t)(cv.off + b * cv.sb + h * cv.sh);
                size_t r_off = ((size_t)b * op->H + h) * op->d * op->r;
                CLBlastStatusCode s = CLBlastSgemm(
                    CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeNo, (size_t)op->T,
                    (size_t)op->r, (size_t)op->d, 1.0f, keys, a_off, lda, R, r_off, (size_t)op->r,
                    0.0f, kc, c_off, ldc, &oc->queue, NULL);
                if (s != CLBlastSuccess) return rk_ocl_clblast_fail(ctx, s, "CLBlastSgemm (compress)");
            }
        return RK_OK;
    }
    char opts[64];
    rk_ocl_dtype_options(op->keys->dtype, opts, sizeof opts);
    cl_kernel k;
    rk_status st = rk_ocl_kernel(ctx, RK_OCL_SRC_PREFILL, opts, "rk_compress", &k);
    if (st != RK_OK) return st;
    const rk_ocl_arg args[] = {RK_OCL_ARG(keys), RK_OCL_ARG(kv.off), RK_OCL_ARG(kv.sb),
                               RK_OCL_ARG(kv.sh), RK_OCL_ARG(kv.st), RK_OCL_ARG(R),
                               RK_OCL_ARG(kc), RK_OCL_ARG(cv.off), RK_OCL_ARG(cv.sb),
                               RK_OCL_ARG(cv.sh), RK_OCL_ARG(cv.st), RK_OCL_ARG(op->H),
                               RK_OCL_ARG(op->d), RK_OCL_ARG(op->r)};
    const size_t global[3] = {(size_t)op->r, (size_t)op->T, (size_t)op->B * op->H};
    if ((st = rk_ocl_set_args(ctx, k, "rk_compress", args, 14)) != RK_OK) return st;
    return rk_ocl_launch(ctx, k, "rk_compress", 3, global, NULL);
}

/* ---- read probe ------------------------------------------------------------------------------- */

rk_status rk_ocl_read_probe(rk_context *ctx, void *handle, size_t bytes) {
    rk_ocl_ctx *oc = rk_ocl(ctx);
    cl_kernel k;
    cl_mem sink;
    rk_status st;
    if ((st = rk_ocl_kernel(ctx, RK_OCL_SRC_PREFILL, "-D RK_DT=0", "rk_probe", &k)) != RK_OK ||
        (st = rk_ocl_scratch(ctx, RK_OCL_SCR_SINK, 16, &sink)) != RK_OK)
        return st;
    const cl_mem buf = handle;
    const cl_long n16 = (cl_long)(bytes / 16); /* a tail under 16 bytes is not read */
    size_t global, local_size = 0;
    cl_long chunk;
    if (oc->params.serial) {
        global = (size_t)oc->dev.compute_units * 4;
        chunk = (n16 + (cl_long)global - 1) / (cl_long)global;
    } else {
        local_size = (size_t)oc->params.wg;
        global = (size_t)oc->dev.compute_units * 8 * local_size;
        chunk = 0;
    }
    const cl_uint never = 0x9e3779b9u ^ (cl_uint)bytes;
    const rk_ocl_arg args[] = {RK_OCL_ARG(buf), RK_OCL_ARG(n16), RK_OCL_ARG(chunk),
                               RK_OCL_ARG(never), RK_OCL_ARG(sink)};
    if ((st = rk_ocl_set_args(ctx, k, "rk_probe", args, 5)) != RK_OK) return st;
    return rk_ocl_launch(ctx, k, "rk_probe", 1, &global, local_size ? &local_size : NULL);
}
