/* SparK-style token-wise baseline: each span token keeps its own top-r channels by
 * qnorm_c * k_c^2; decode rebuilds the dropped channels from the token's fill value and scores
 * at full width through the same decode driver as the method. */
#include "cpu_convert.h"
#include "cpu_internal.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define RK_SPARK_ROWS 64 /* tokens per work item */

/* Channel a ranks before b: larger score, ties to the lower channel (as the reference). */
static inline int rk_spark_before(const double *score, int a, int b) {
    return score[a] > score[b] || (score[a] == score[b] && a < b);
}

/* Reorders order[0, n) so that its first r entries are the r best channels (quickselect; it
 * terminates and keeps exactly r even if scores hold NaN). */
static void rk_spark_select(int *order, int n, int r, const double *score) {
    int lo = 0, hi = n - 1, k = r - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2, tmp;
        tmp = order[mid]; order[mid] = order[hi]; order[hi] = tmp;
        const int pivot = order[hi];
        int store = lo;
        for (int i = lo; i < hi; i++)
            if (rk_spark_before(score, order[i], pivot)) {
                tmp = order[i]; order[i] = order[store]; order[store] = tmp;
                store++;
            }
        order[hi] = order[store];
        order[store] = pivot;
        if (k < store) hi = store - 1;
        else if (k > store) lo = store + 1;
        else break;
    }
}

/* One token: select, then write values (the key's own bits), ascending indices and fill. */
static void rk_spark_token(const rk_op_spark_compress *op, int64_t b, int64_t h, int64_t t,
                           double *score, int *order, unsigned char *keep) {
    const int d = op->d, r = op->r;
    const rk_dtype dt = op->keys->dtype;
    const size_t es = rk_dtype_size(dt);
    const char *k = rk_cpu_at(op->keys, b, h, t);
    const double *qn = op->qnorm + (size_t)(b * op->H + h) * d;
    const int64_t row = op->token_offset + t;
    char *vals = rk_cpu_at(op->values, b, h, row);
    int32_t *idx = (int32_t *)rk_cpu_at(op->indices, b, h, row);
    float *fill = (float *)rk_cpu_at(op->fill, b, h, row);

    for (int c = 0; c < d; c++) {
        const double x = rk_cpu_load1(k, dt, c);
        score[c] = qn[c] * x * x;
        order[c] = c;
        keep[c] = 0;
    }
    if (r < d) rk_spark_select(order, d, r, score);
    for (int j = 0; j < r; j++) keep[order[j]] = 1;
    double dropped = 0.0;
    for (int c = 0, j = 0; c < d; c++) {
        if (keep[c]) {
            memcpy(vals + (size_t)j * es, k + (size_t)c * es, es);
            idx[j++] = c;
        } else {
            dropped += rk_cpu_load1(k, dt, c);
        }
    }
    *fill = r < d ? (float)(dropped / (d - r)) : 0.0f;
}

rk_status rk_cpu_spark_compress(rk_context *ctx, const rk_op_spark_compress *op) {
    const int64_t blocks = ((int64_t)op->T + RK_SPARK_ROWS - 1) / RK_SPARK_ROWS;
    const int64_t items = (int64_t)op->B * op->H * blocks;
    int threads = ctx->n_threads < items ? ctx->n_threads : (int)items;
#ifndef _OPENMP
    threads = 1;
#endif
    const size_t per_thread = rk_cpu_round_up((size_t)op->d * (sizeof(double) + sizeof(int) + 1), RK_CPU_ALIGN);
    char *scratch = rk_cpu_scratch(ctx, per_thread * (size_t)threads);
    if (!scratch) return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "cpu SparK scratch");

#pragma omp parallel num_threads(threads)
    {
#ifdef _OPENMP
        char *mine = scratch + per_thread * (size_t)omp_get_thread_num();
#else
        char *mine = scratch;
#endif
        double *score = (double *)mine;
        int *order = (int *)(score + op->d);
        unsigned char *keep = (unsigned char *)(order + op->d);
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < items; it++) {
            const int64_t bh = it / blocks, t0 = it % blocks * RK_SPARK_ROWS;
            const int64_t t1 = t0 + RK_SPARK_ROWS < op->T ? t0 + RK_SPARK_ROWS : op->T;
            for (int64_t t = t0; t < t1; t++)
                rk_spark_token(op, bh / op->H, bh % op->H, t, score, order, keep);
        }
    }
    return RK_OK;
}

void rk_cpu_spark_rebuild(const rk_cpu_kernels *k, const rk_op_spark_decode *op, int64_t b,
                          int64_t g, int64_t row0, int n, int d, float *dst) {
    const int r = op->base.r;
    const rk_dtype dt = op->values->dtype;
    float vals[128]; /* kept values converted in slices of this many */
    const int slice = (int)(sizeof vals / sizeof vals[0]);
    for (int t = 0; t < n; t++) {
        float *row = dst + (size_t)t * d;
        const float f = *(const float *)rk_cpu_at(op->fill, b, g, row0 + t);
        for (int c = 0; c < d; c++) row[c] = f;
        const char *v = rk_cpu_at(op->values, b, g, row0 + t);
        const int32_t *idx = (const int32_t *)rk_cpu_at(op->indices, b, g, row0 + t);
        for (int j0 = 0; j0 < r; j0 += slice) {
            const int m = r - j0 < slice ? r - j0 : slice;
            k->load_row(vals, v + (size_t)j0 * rk_dtype_size(dt), dt, m);
            for (int j = 0; j < m; j++) {
                const int32_t c = idx[j0 + j];
                if (c >= 0 && c < d) row[c] = vals[j]; /* indices are data: never write outside */
            }
        }
    }
}

rk_status rk_cpu_spark_decode(rk_context *ctx, const rk_op_spark_decode *op) {
    return rk_cpu_decode_run(ctx, &op->base, op);
}
