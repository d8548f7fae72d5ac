/* Private declarations of the CPU backend: per-context state, the kernel table chosen at context
 * creation (AVX2/FMA/F16C or portable), and the operations. */
#ifndef RK_CPU_INTERNAL_H
#define RK_CPU_INTERNAL_H

#include "backend.h"

#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#define RK_CPU_X86 1
#else
#define RK_CPU_X86 0
#endif

#define RK_CPU_ALIGN 64 /* buffers and scratch: one cache line, and enough for any vector load */
#define RK_CPU_HT 8     /* query heads per tile: one 8-lane f32 vector holds a token's logits */
/* Tokens per decode block: its K/V rows stay in L1 across head tiles. 16 ran dense decode from
 * DRAM 20-30% faster than 32 on the Zen 4 host (one thread), at equal speed in cache. */
#define RK_CPU_TB 16

/* Block kernels of the decode and the row conversions. Logits and probabilities are laid out
 * [token][RK_CPU_HT] so the softmax runs on one vector per token whatever the group size. */
typedef struct rk_cpu_kernels {
    const char *isa;
    /* dst[i] = (float)src[i], i < n */
    void (*load_row)(float *dst, const void *src, rk_dtype dt, int64_t n);
    /* dst[i] = src[i] in dt, round to nearest even, i < n */
    void (*store_row)(void *dst, rk_dtype dt, const float *src, int64_t n);
    /* S[t][h] = q[h]·k[t] (w channels) for t < n, h < nh; S[t][h >= nh] = 0. q rows are
     * q_stride floats apart, k rows k_stride elements of dt apart. */
    void (*scores)(const float *q, int64_t q_stride, int nh, const void *k, rk_dtype dt,
                   int64_t k_stride, int w, int n, float *S);
    /* One online-softmax step on a block: logits x = (S + bias) * scale; updates the running max
     * m and sum l (RK_CPU_HT lanes), writes P = exp(x - m_new) over S and alpha = exp(m_old -
     * m_new) (the factor by which the old accumulators must shrink). */
    void (*softmax)(float *S, int n, const float *bias, float scale, float *m, float *l,
                    float *alpha);
    /* acc[h][:] = acc[h][:] * alpha[h] + Σ_t P[t][h] v[t][:] for h < nh (dv channels; acc rows
     * dv floats apart). */
    void (*pv)(const float *P, int nh, const void *v, rk_dtype dt, int64_t v_stride, int dv,
               int n, const float *alpha, float *acc);
} rk_cpu_kernels;

extern const rk_cpu_kernels rk_cpu_kernels_generic;
#if RK_CPU_X86
extern const rk_cpu_kernels rk_cpu_kernels_avx2;
#endif

typedef struct rk_cpu_context {
    const rk_cpu_kernels *k;
    int use_avx2;   /* moments/compress pick their AVX2 builds from this too */
    void *scratch;  /* grown on demand; a context is used by one thread at a time */
    size_t scratch_size;
} rk_cpu_context;

static inline rk_cpu_context *rk_cpu_ctx(rk_context *ctx) { return (rk_cpu_context *)ctx->impl; }

/* Scratch of at least bytes (RK_CPU_ALIGN aligned), valid until the next call; NULL on OOM. */
void *rk_cpu_scratch(rk_context *ctx, size_t bytes);

static inline size_t rk_cpu_round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

/* Host address of element (b, h, t, 0) of a view. */
static inline void *rk_cpu_at(const rk_tensor *t, int64_t b, int64_t h, int64_t tok) {
    return (char *)t->buf->handle + rk_tensor_offset(t, b, h, tok, 0);
}

rk_status rk_cpu_moments(rk_context *ctx, const rk_op_moments *op);
rk_status rk_cpu_compress(rk_context *ctx, const rk_op_compress *op);
rk_status rk_cpu_decode(rk_context *ctx, const rk_op_decode *op);
rk_status rk_cpu_spark_compress(rk_context *ctx, const rk_op_spark_compress *op);
rk_status rk_cpu_spark_decode(rk_context *ctx, const rk_op_spark_decode *op);
rk_status rk_cpu_read_probe(rk_context *ctx, void *handle, size_t bytes);

/* The decode driver shared by the rotated, dense and SparK paths (cpu_decode.c). */
rk_status rk_cpu_decode_run(rk_context *ctx, const rk_op_decode *op, const rk_op_spark_decode *spark);

/* SparK span rows [row0, row0 + n) of (b, g) rebuilt at full width d into dst [n][d]. */
void rk_cpu_spark_rebuild(const rk_cpu_kernels *k, const rk_op_spark_decode *op, int64_t b,
                          int64_t g, int64_t row0, int n, int d, float *dst);

#endif
