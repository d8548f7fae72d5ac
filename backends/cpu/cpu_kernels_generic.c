/* Portable decode block kernels: plain C the compiler can vectorize on any target. Used when the
 * CPU lacks AVX2/FMA/F16C (or RK_CPU_ISA=generic) and as the behaviour the AVX2 kernels match. */
#include "cpu_convert.h"
#include "cpu_internal.h"


static void load_row_generic(float *dst, const void *src, rk_dtype dt, int64_t n) {
    rk_cpu_load_row_portable(dst, src, dt, n);
}

static void store_row_generic(void *dst, rk_dtype dt, const float *src, int64_t n) {
    rk_cpu_store_row_portable(dst, dt, src, n);
}

/* Rows are converted in chunks of RK_CHUNK channels into stack buffers. */
#define RK_CHUNK 64

static void scores_generic(const float *q, int64_t q_stride, int nh, const void *k, rk_dtype dt,
                           int64_t k_stride, int w, int n, float *S) {
    float krow[RK_CHUNK];
    const size_t es = rk_dtype_size(dt);
    for (int t = 0; t < n; t++) {
        const char *row = (const char *)k + (size_t)(t * k_stride) * es;
        float *s = S + (size_t)t * RK_CPU_HT;
        for (int h = 0; h < RK_CPU_HT; h++) s[h] = 0.0f;
        for (int c0 = 0; c0 < w; c0 += RK_CHUNK) {
            const int nc = w - c0 < RK_CHUNK ? w - c0 : RK_CHUNK;
            rk_cpu_load_row_portable(krow, row + (size_t)c0 * es, dt, nc);
            for (int h = 0; h < nh; h++) {
                const float *qh = q + h * q_stride + c0;
                float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
                for (int c = 0; c < nc; c++) acc += qh[c] * krow[c];
                s[h] += acc;
            }
        }
    }
}

/* expf by the range reduction and polynomial of the AVX2 kernel, in plain C so the softmax
 * loops vectorize (libm's expf would not): about 2 ulp; exactly 0 below ln(FLT_MIN), so
 * exp(-inf) = 0; NaN stays NaN. */
static inline float rk_exp_portable(float x) {
    const float lo = -87.33654475f;
    const int is_nan = x != x;
    float xc = is_nan ? 0.0f : x < lo ? lo : x > 88.0f ? 88.0f : x;
    const float y = xc * 1.44269504088896341f + 0.5f;
    int n = (int)y;
    n -= (float)n > y; /* floor */
    const float nf = (float)n;
    float r = xc - nf * 0.693359375f;
    r = r + nf * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + (r + 1.0f);
    const float e = rk_bits_f32((uint32_t)(n + 127) << 23);
    return is_nan ? x : x < lo ? 0.0f : p * e;
}

static void softmax_generic(float *S, int n, const float *bias, float scale, float *m, float *l,
                            float *alpha) {
    float m_new[RK_CPU_HT], sum[RK_CPU_HT];
    for (int h = 0; h < RK_CPU_HT; h++) m_new[h] = m[h];
    for (int t = 0; t < n; t++) {
        float *s = S + (size_t)t * RK_CPU_HT;
#pragma omp simd
        for (int h = 0; h < RK_CPU_HT; h++) {
            const float x = (s[h] + bias[h]) * scale;
            s[h] = x;
            m_new[h] = x > m_new[h] ? x : m_new[h];
        }
    }
#pragma omp simd
    for (int h = 0; h < RK_CPU_HT; h++) {
        alpha[h] = rk_exp_portable(m[h] - m_new[h]); /* m = -inf before the first block: 0 */
        sum[h] = l[h] * alpha[h];
        m[h] = m_new[h];
    }
    for (int t = 0; t < n; t++) {
        float *s = S + (size_t)t * RK_CPU_HT;
#pragma omp simd
        for (int h = 0; h < RK_CPU_HT; h++) {
            const float p = rk_exp_portable(s[h] - m_new[h]);
            s[h] = p;
            sum[h] += p;
        }
    }
    for (int h = 0; h < RK_CPU_HT; h++) l[h] = sum[h];
}

/* The block's V rows are converted once per RK_CHUNK columns; each head then accumulates a
 * 16-column strip in locals (registers) over the block's tokens. */
static void pv_generic(const float *P, int nh, const void *v, rk_dtype dt, int64_t v_stride,
                       int dv, int n, const float *alpha, float *acc) {
    float vb[RK_CPU_TB * RK_CHUNK];
    const size_t es = rk_dtype_size(dt);
    for (int c0 = 0; c0 < dv; c0 += RK_CHUNK) {
        const int nc = dv - c0 < RK_CHUNK ? dv - c0 : RK_CHUNK;
        for (int t = 0; t < n; t++)
            rk_cpu_load_row_portable(vb + t * RK_CHUNK, (const char *)v + (size_t)(t * v_stride + c0) * es, dt, nc);
        for (int h = 0; h < nh; h++) {
            float *o = acc + (size_t)h * dv + c0;
            int c = 0;
            for (; c + 16 <= nc; c += 16) {
                float strip[16];
#pragma omp simd
                for (int j = 0; j < 16; j++) strip[j] = o[c + j] * alpha[h];
                for (int t = 0; t < n; t++) {
                    const float p = P[t * RK_CPU_HT + h];
                    const float *vr = vb + t * RK_CHUNK + c;
#pragma omp simd
                    for (int j = 0; j < 16; j++) strip[j] += p * vr[j];
                }
                for (int j = 0; j < 16; j++) o[c + j] = strip[j];
            }
            for (; c < nc; c++) {
                float x = o[c] * alpha[h];
                for (int t = 0; t < n; t++) x += P[t * RK_CPU_HT + h] * vb[t * RK_CHUNK + c];
                o[c] = x;
            }
        }
    }
}

const rk_cpu_kernels rk_cpu_kernels_generic = {
    "generic", load_row_generic, store_row_generic, scores_generic, softmax_generic, pv_generic,
};
