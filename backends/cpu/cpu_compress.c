/* kcache rows = keys · R (R f32 [d][r] per head), f32 accumulation, stored in kcache's dtype
 * with round to nearest even. Work items are (head, block of rows); each stages R padded to the
 * 16-column tile so the 4x16 register tile needs no edge code. */
#include "cpu_internal.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define RK_CMP_ROWS 64 /* rows per work item */

/* Y[4][rp] = X[4][d] · Rp[d][rp], rp a multiple of 16. */
static inline __attribute__((always_inline)) void rk_project4(const float *X, const float *Rp,
                                                              int d, int rp, float *Y) {
    for (int j = 0; j < rp; j += 16) {
        float acc[4][16] = {{0}};
        for (int i = 0; i < d; i++) {
            const float *Ri = Rp + (size_t)i * rp + j;
#pragma GCC unroll 4
            for (int rr = 0; rr < 4; rr++) {
                const float xi = X[(size_t)rr * d + i];
#pragma omp simd
                for (int jj = 0; jj < 16; jj++) acc[rr][jj] += xi * Ri[jj];
            }
        }
        for (int rr = 0; rr < 4; rr++) memcpy(Y + (size_t)rr * rp + j, acc[rr], sizeof acc[rr]);
    }
}

static void rk_project4_generic(const float *X, const float *Rp, int d, int rp, float *Y) {
    rk_project4(X, Rp, d, rp, Y);
}

#if RK_CPU_X86
__attribute__((target("avx2,fma"))) static void rk_project4_avx2(const float *X, const float *Rp,
                                                                 int d, int rp, float *Y) {
    rk_project4(X, Rp, d, rp, Y);
}
#endif

rk_status rk_cpu_compress(rk_context *ctx, const rk_op_compress *op) {
    const rk_cpu_context *cc = rk_cpu_ctx(ctx);
    const rk_cpu_kernels *k = cc->k;
    void (*project)(const float *, const float *, int, int, float *) = rk_project4_generic;
#if RK_CPU_X86
    if (cc->use_avx2) project = rk_project4_avx2;
#endif
    const int d = op->d, r = op->r, rp = (int)rk_cpu_round_up((size_t)r, 16);
    const int64_t blocks = ((int64_t)op->T + RK_CMP_ROWS - 1) / RK_CMP_ROWS;
    const int64_t items = (int64_t)op->B * op->H * blocks;
    int threads = ctx->n_threads < items ? ctx->n_threads : (int)items;
#ifndef _OPENMP
    threads = 1;
#endif
    /* per thread: Rp [d][rp], X [4][d], Y [4][rp] */
    const size_t per_thread = rk_cpu_round_up(sizeof(float) * ((size_t)d * rp + 4 * (size_t)d + 4 * (size_t)rp), RK_CPU_ALIGN);
    char *scratch = rk_cpu_scratch(ctx, per_thread * (size_t)threads);
    if (!scratch) return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "cpu compress scratch");
    const float *R_all = (const float *)op->R->handle;
    const rk_dtype kdt = op->keys->dtype, cdt = op->kcache->dtype;

#pragma omp parallel num_threads(threads)
    {
#ifdef _OPENMP
        char *mine = scratch + per_thread * (size_t)omp_get_thread_num();
#else
        char *mine = scratch;
#endif
        float *Rp = (float *)mine, *X = Rp + (size_t)d * rp, *Y = X + 4 * (size_t)d;
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < items; it++) {
            const int64_t bh = it / blocks, b = bh / op->H, h = bh % op->H;
            const int64_t t0 = it % blocks * RK_CMP_ROWS;
            const int64_t t1 = t0 + RK_CMP_ROWS < op->T ? t0 + RK_CMP_ROWS : op->T;
            const float *R = R_all + (size_t)bh * d * r;
            for (int i = 0; i < d; i++) {
                memcpy(Rp + (size_t)i * rp, R + (size_t)i * r, sizeof(float) * r);
                memset(Rp + (size_t)i * rp + r, 0, sizeof(float) * (size_t)(rp - r));
            }
            for (int64_t t = t0; t < t1; t += 4) {
                const int rows = t1 - t < 4 ? (int)(t1 - t) : 4;
                for (int rr = 0; rr < 4; rr++) {
                    if (rr < rows) k->load_row(X + (size_t)rr * d, rk_cpu_at(op->keys, b, h, t + rr), kdt, d);
                    else memset(X + (size_t)rr * d, 0, sizeof(float) * d);
                }
                project(X, Rp, d, rp, Y);
                for (int rr = 0; rr < rows; rr++)
                    k->store_row(rk_cpu_at(op->kcache, b, h, op->token_offset + t + rr), cdt, Y + (size_t)rr * rp, r);
            }
        }
    }
    return RK_OK;
}
