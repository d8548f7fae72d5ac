/* Device read-bandwidth probe (rk_measure_read_bandwidth): the denominator of every benchmark's
 * "fraction of bandwidth" figure. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "backend.h"

#include <stdlib.h>
#include <time.h>

double rk_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int rk_cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double rk_median_inplace(double *v, size_t n) {
    qsort(v, n, sizeof(double), rk_cmp_d);
    return v[n / 2];
}

rk_status rk_measure_read_bandwidth(rk_context *ctx, size_t bytes, int reps, double *gbps) {
    if (!ctx || !gbps) return RK_ERR_NULL_ARG;
    *gbps = 0;
    if (bytes < 4096 || reps < 1 || reps > 10000)
        return rk_fail(ctx, RK_ERR_INVALID_ARG, "probe needs bytes >= 4096 and reps in [1, 10000]");
    if (!ctx->be->read_probe)
        return rk_fail(ctx, RK_ERR_UNSUPPORTED, "%s backend has no bandwidth probe", ctx->be->name);
    rk_buffer *buf = NULL;
    rk_status st = rk_buffer_alloc(ctx, bytes, &buf);
    if (st != RK_OK) return st;
    /* Fill once so the pages exist and the device reads real data, not zero-page mappings. */
    unsigned char *host = malloc(1 << 20);
    if (!host) { rk_buffer_free(buf); return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "probe staging"); }
    for (size_t i = 0; i < (1u << 20); i++) host[i] = (unsigned char)(i * 131u + 7u);
    for (size_t off = 0; off < bytes && st == RK_OK; off += (1u << 20))
        st = rk_buffer_upload(buf, off, host, bytes - off < (1u << 20) ? bytes - off : (1u << 20));
    free(host);
    double *t = malloc(sizeof(double) * (size_t)reps);
    if (!t) st = rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "probe timings");
    if (st == RK_OK) st = ctx->be->read_probe(ctx, buf->handle, bytes); /* warm-up */
    if (st == RK_OK) st = ctx->be->synchronize(ctx);
    for (int i = 0; i < reps && st == RK_OK; i++) {
        double t0 = rk_now_seconds();
        st = ctx->be->read_probe(ctx, buf->handle, bytes);
        if (st == RK_OK) st = ctx->be->synchronize(ctx);
        t[i] = rk_now_seconds() - t0;
    }
    if (st == RK_OK) {
        *gbps = (double)bytes / rk_median_inplace(t, (size_t)reps) / 1e9;
    }
    free(t);
    rk_buffer_free(buf);
    return st;
}
