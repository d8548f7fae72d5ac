/* Span-key moments per (sequence, KV head): the chunk mean, then the centered scatter
 * Σ (k - m)(k - m)ᵀ, both in double (two passes: no uncentered sums that cancel).
 *
 * The scatter is a rank-update over row blocks: centered rows are staged in double, and a 4x8
 * register tile of the output accumulates over the block's rows. Work items are (head, band of
 * RK_MOM_BAND output rows); each band computes its upper part, a last pass mirrors it. */
#include "cpu_internal.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define RK_MOM_ROWS 64 /* key rows staged per block */
#define RK_MOM_BAND 32 /* scatter rows per work item */

/* Sband[i - i0][j] += Σ_t X[t][i] X[t][j] for i in [i0, i1), j in [j0, ld); bounds multiples of
 * the 4x8 tile, X rows ld doubles with zero padding past d. */
static inline __attribute__((always_inline)) void rk_scatter_band(const double *X, int ld, int n,
                                                                  int i0, int i1, int j0,
                                                                  double *Sband) {
    for (int i = i0; i < i1; i += 4)
        for (int j = j0; j < ld; j += 8) {
            double acc[4][8] = {{0}};
            for (int t = 0; t < n; t++) {
                const double *x = X + (size_t)t * ld;
#pragma GCC unroll 4
                for (int ii = 0; ii < 4; ii++) {
                    const double xi = x[i + ii];
#pragma omp simd
                    for (int jj = 0; jj < 8; jj++) acc[ii][jj] += xi * x[j + jj];
                }
            }
            for (int ii = 0; ii < 4; ii++)
                for (int jj = 0; jj < 8; jj++) Sband[(size_t)(i - i0 + ii) * ld + j + jj] += acc[ii][jj];
        }
}

static void rk_scatter_band_generic(const double *X, int ld, int n, int i0, int i1, int j0, double *S) {
    rk_scatter_band(X, ld, n, i0, i1, j0, S);
}

#if RK_CPU_X86
__attribute__((target("avx2,fma"))) static void rk_scatter_band_avx2(const double *X, int ld, int n,
                                                                     int i0, int i1, int j0, double *S) {
    rk_scatter_band(X, ld, n, i0, i1, j0, S);
}
#endif

typedef void (*rk_scatter_fn)(const double *, int, int, int, int, int, double *);

/* Mean of head bh's n valid rows into mean[d]; row is a float scratch of d. */
static void rk_head_mean(const rk_cpu_kernels *k, const rk_op_moments *op, int64_t bh, int n,
                         float *row, double *mean) {
    const int64_t b = bh / op->H, h = bh % op->H;
    for (int c = 0; c < op->d; c++) mean[c] = 0.0;
    for (int t = 0; t < n; t++) {
        k->load_row(row, rk_cpu_at(op->keys, b, h, t), op->keys->dtype, op->d);
#pragma omp simd
        for (int c = 0; c < op->d; c++) mean[c] += row[c];
    }
    for (int c = 0; c < op->d; c++) mean[c] = n > 0 ? mean[c] / n : 0.0;
}

rk_status rk_cpu_moments(rk_context *ctx, const rk_op_moments *op) {
    const rk_cpu_context *cc = rk_cpu_ctx(ctx);
    const rk_cpu_kernels *k = cc->k;
    rk_scatter_fn band_fn = rk_scatter_band_generic;
#if RK_CPU_X86
    if (cc->use_avx2) band_fn = rk_scatter_band_avx2;
#endif
    const int d = op->d, ld = (int)rk_cpu_round_up((size_t)d, 8);
    const int64_t heads = (int64_t)op->B * op->H, bands = (ld + RK_MOM_BAND - 1) / RK_MOM_BAND;
    const int64_t items = heads * bands;
    int threads = ctx->n_threads < items ? ctx->n_threads : (int)items;
#ifndef _OPENMP
    threads = 1;
#endif
    /* per thread: staged rows X [ROWS][ld], band [BAND][ld], one f32 row */
    const size_t per_thread = rk_cpu_round_up(sizeof(double) * (size_t)ld * (RK_MOM_ROWS + RK_MOM_BAND) +
                                              sizeof(float) * (size_t)ld, RK_CPU_ALIGN);
    char *scratch = rk_cpu_scratch(ctx, per_thread * (size_t)threads);
    if (!scratch) return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "cpu moments scratch");

#pragma omp parallel num_threads(threads)
    {
#ifdef _OPENMP
        char *mine = scratch + per_thread * (size_t)omp_get_thread_num();
#else
        char *mine = scratch;
#endif
        double *X = (double *)mine, *band = X + (size_t)ld * RK_MOM_ROWS;
        float *row = (float *)(band + (size_t)ld * RK_MOM_BAND);

#pragma omp for schedule(dynamic, 1)
        for (int64_t bh = 0; bh < heads; bh++)
            rk_head_mean(k, op, bh, op->n_tokens[bh / op->H], row, op->mean + (size_t)bh * d);

#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < items; it++) {
            const int64_t bh = it / bands, b = bh / op->H, h = bh % op->H;
            const int i0 = (int)(it % bands) * RK_MOM_BAND;
            const int i1 = i0 + RK_MOM_BAND < ld ? i0 + RK_MOM_BAND : ld;
            const int n = op->n_tokens[b];
            const double *mean = op->mean + (size_t)bh * d;
            memset(band, 0, sizeof(double) * (size_t)ld * RK_MOM_BAND);
            for (int t0 = 0; t0 < n; t0 += RK_MOM_ROWS) {
                const int rows = n - t0 < RK_MOM_ROWS ? n - t0 : RK_MOM_ROWS;
                for (int t = 0; t < rows; t++) {
                    double *x = X + (size_t)t * ld;
                    k->load_row(row, rk_cpu_at(op->keys, b, h, t0 + t), op->keys->dtype, d);
                    for (int c = 0; c < d; c++) x[c] = (double)row[c] - mean[c];
                    for (int c = d; c < ld; c++) x[c] = 0.0;
                }
                band_fn(X, ld, rows, i0, i1, i0, band);
            }
            double *S = op->scatter + (size_t)bh * d * d;
            for (int i = i0; i < i1 && i < d; i++)
                memcpy(S + (size_t)i * d + i0, band + (size_t)(i - i0) * ld + i0, sizeof(double) * (size_t)(d - i0));
        }

        /* lower part of each band = the upper part of an earlier band */
#pragma omp for schedule(static)
        for (int64_t bh = 0; bh < heads; bh++) {
            double *S = op->scatter + (size_t)bh * d * d;
            for (int i = RK_MOM_BAND; i < d; i++)
                for (int j = 0; j < i / RK_MOM_BAND * RK_MOM_BAND; j++) S[(size_t)i * d + j] = S[(size_t)j * d + i];
        }
    }
    return RK_OK;
}
