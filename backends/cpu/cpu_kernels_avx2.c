/* AVX2/FMA/F16C decode block kernels, chosen at context creation when the CPU has all three
 * (cpu_backend.c). Every function carries the target attribute, so the rest of the library
 * stays baseline x86-64 and runs anywhere.
 *
 * The kernels are written once per dtype and query-head count and instantiated through
 * always_inline helpers taking both as constants: the accumulators then live in registers and
 * the dtype test folds away. Work per element is f16/bf16 -> f32 on load, f32 FMAs. */
#include "cpu_convert.h"
#include "cpu_internal.h"

#if RK_CPU_X86
#include <immintrin.h>

#define RK_AVX2 __attribute__((target("avx2,fma,f16c")))
#define RK_AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c")))

static inline size_t rk_esize(rk_dtype dt) { return dt == RK_F32 ? 4 : 2; }

/* 8 consecutive elements of dt at p, as f32. */
RK_AVX2_INLINE __m256 ld8(const void *p, rk_dtype dt) {
    if (dt == RK_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    if (dt == RK_BF16)
        return _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
    return _mm256_loadu_ps((const float *)p);
}

/* Round-to-nearest-even f32 -> bf16 of 8 lanes (NaN stays a quiet NaN, as core/half.h). */
RK_AVX2_INLINE __m128i bf16_round8(__m256 x) {
    __m256i u = _mm256_castps_si256(x);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb), 16);
    __m256i qnan = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
    __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    r = _mm256_blendv_epi8(r, qnan, nan);
    __m256i packed = _mm256_packus_epi32(r, r); /* in-lane: [r0..3 r0..3 | r4..7 r4..7] */
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
}

RK_AVX2_INLINE void st8(void *p, rk_dtype dt, __m256 x) {
    if (dt == RK_F16)
        _mm_storeu_si128((__m128i *)p, _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    else if (dt == RK_BF16)
        _mm_storeu_si128((__m128i *)p, bf16_round8(x));
    else
        _mm256_storeu_ps((float *)p, x);
}

/* exp of 8 lanes (Cephes expf polynomial, about 2 ulp) for x <= 88, which softmax arguments
 * (<= 0) always are; below ln(FLT_MIN) it is exactly 0, whatever the reduction made of such
 * lanes, so exp(-inf) = 0 for the first block's rescale; NaN propagates. */
RK_AVX2_INLINE __m256 exp8(__m256 x) {
    const __m256 under = _mm256_cmp_ps(x, _mm256_set1_ps(-87.33654475f), _CMP_LT_OQ);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

/* Lane h of the result = the sum of the 8 lanes of a[h]. */
RK_AVX2_INLINE __m256 hsum8x8(const __m256 a[8]) {
    __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
    __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
    __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

/* ---- row conversions ---------------------------------------------------------------------- */

RK_AVX2_INLINE void load_row_dt(float *dst, const void *src, rk_dtype dt, int64_t n) {
    const char *s = (const char *)src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, ld8(s + i * rk_esize(dt), dt));
    for (; i < n; i++) dst[i] = rk_cpu_load1(src, dt, i);
}

static RK_AVX2 void load_row_avx2(float *dst, const void *src, rk_dtype dt, int64_t n) {
    if (dt == RK_F16) load_row_dt(dst, src, RK_F16, n);
    else if (dt == RK_BF16) load_row_dt(dst, src, RK_BF16, n);
    else load_row_dt(dst, src, RK_F32, n);
}

RK_AVX2_INLINE void store_row_dt(void *dst, rk_dtype dt, const float *src, int64_t n) {
    char *d = (char *)dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) st8(d + i * rk_esize(dt), dt, _mm256_loadu_ps(src + i));
    for (; i < n; i++) rk_cpu_store1(dst, dt, i, src[i]);
}

static RK_AVX2 void store_row_avx2(void *dst, rk_dtype dt, const float *src, int64_t n) {
    if (dt == RK_F16) store_row_dt(dst, RK_F16, src, n);
    else if (dt == RK_BF16) store_row_dt(dst, RK_BF16, src, n);
    else store_row_dt(dst, RK_F32, src, n);
}

/* ---- logits: one token row against NH query heads --------------------------------------------
 * Vectorized along channels; the NH partial sums are reduced together by one hadd tree. With
 * few heads, U interleaved accumulator sets keep enough FMAs in flight. */
RK_AVX2_INLINE void scores_nh(const float *q, int64_t qs, const void *k, rk_dtype dt, int64_t ks,
                              int w, int n, float *S, const int NH) {
    const int U = NH <= 2 ? 4 : NH <= 4 ? 2 : 1; /* NH * U <= 8 */
    const size_t es = rk_esize(dt);
    for (int t = 0; t < n; t++) {
        const char *kr = (const char *)k + (size_t)(t * ks) * es;
        __m256 a[8];
#pragma GCC unroll 8
        for (int h = 0; h < 8; h++) a[h] = _mm256_setzero_ps();
        int c = 0;
        for (; c + 8 * U <= w; c += 8 * U) {
#pragma GCC unroll 4
            for (int u = 0; u < U; u++) {
                __m256 kv = ld8(kr + (size_t)(c + 8 * u) * es, dt);
#pragma GCC unroll 8
                for (int h = 0; h < NH; h++)
                    a[u * NH + h] = _mm256_fmadd_ps(_mm256_loadu_ps(q + h * qs + c + 8 * u), kv, a[u * NH + h]);
            }
        }
        for (; c + 8 <= w; c += 8) {
            __m256 kv = ld8(kr + (size_t)c * es, dt);
#pragma GCC unroll 8
            for (int h = 0; h < NH; h++)
                a[h] = _mm256_fmadd_ps(_mm256_loadu_ps(q + h * qs + c), kv, a[h]);
        }
#pragma GCC unroll 4
        for (int u = 1; u < U; u++) {
#pragma GCC unroll 8
            for (int h = 0; h < NH; h++) {
                a[h] = _mm256_add_ps(a[h], a[u * NH + h]);
                a[u * NH + h] = _mm256_setzero_ps();
            }
        }
        float *s = S + (size_t)t * RK_CPU_HT;
        _mm256_storeu_ps(s, hsum8x8(a));
        for (; c < w; c++) {
            float kc = rk_cpu_load1(kr, dt, c);
            for (int h = 0; h < NH; h++) s[h] += q[h * qs + c] * kc;
        }
    }
}

RK_AVX2_INLINE void scores_dt(const float *q, int64_t qs, int nh, const void *k, rk_dtype dt,
                              int64_t ks, int w, int n, float *S) {
    switch (nh) {
    case 1: scores_nh(q, qs, k, dt, ks, w, n, S, 1); break;
    case 2: scores_nh(q, qs, k, dt, ks, w, n, S, 2); break;
    case 3: scores_nh(q, qs, k, dt, ks, w, n, S, 3); break;
    case 4: scores_nh(q, qs, k, dt, ks, w, n, S, 4); break;
    case 5: scores_nh(q, qs, k, dt, ks, w, n, S, 5); break;
    case 6: scores_nh(q, qs, k, dt, ks, w, n, S, 6); break;
    case 7: scores_nh(q, qs, k, dt, ks, w, n, S, 7); break;
    default: scores_nh(q, qs, k, dt, ks, w, n, S, 8); break;
    }
}

static RK_AVX2 void scores_avx2(const float *q, int64_t qs, int nh, const void *k, rk_dtype dt,
                                int64_t ks, int w, int n, float *S) {
    if (dt == RK_F16) scores_dt(q, qs, nh, k, RK_F16, ks, w, n, S);
    else if (dt == RK_BF16) scores_dt(q, qs, nh, k, RK_BF16, ks, w, n, S);
    else scores_dt(q, qs, nh, k, RK_F32, ks, w, n, S);
}

/* ---- online softmax on one block ------------------------------------------------------------ */
static RK_AVX2 void softmax_avx2(float *S, int n, const float *bias, float scale, float *m,
                                 float *l, float *alpha) {
    const __m256 b = _mm256_loadu_ps(bias), sc = _mm256_set1_ps(scale);
    const __m256 m_old = _mm256_loadu_ps(m);
    __m256 m_new = m_old;
    for (int t = 0; t < n; t++) {
        __m256 x = _mm256_mul_ps(_mm256_add_ps(_mm256_loadu_ps(S + t * RK_CPU_HT), b), sc);
        _mm256_storeu_ps(S + t * RK_CPU_HT, x);
        m_new = _mm256_max_ps(m_new, x);
    }
    __m256 a = exp8(_mm256_sub_ps(m_old, m_new));
    __m256 sum = _mm256_mul_ps(_mm256_loadu_ps(l), a);
    for (int t = 0; t < n; t++) {
        __m256 p = exp8(_mm256_sub_ps(_mm256_loadu_ps(S + t * RK_CPU_HT), m_new));
        _mm256_storeu_ps(S + t * RK_CPU_HT, p);
        sum = _mm256_add_ps(sum, p);
    }
    _mm256_storeu_ps(m, m_new);
    _mm256_storeu_ps(l, sum);
    _mm256_storeu_ps(alpha, a);
}

/* ---- probabilities times Values ---------------------------------------------------------------
 * Column strips of CC vectors stay in registers for all NH heads while the block's tokens stream
 * by: each V element is loaded and converted once per block and used by every head. */
RK_AVX2_INLINE void pv_strip(const float *P, const char *v, rk_dtype dt, int64_t vs, int dv,
                             int n, const float *alpha, float *acc, int c, const int NH,
                             const int CC) {
    const size_t es = rk_esize(dt);
    __m256 o[12];
#pragma GCC unroll 8
    for (int h = 0; h < NH; h++) {
        __m256 al = _mm256_broadcast_ss(alpha + h);
#pragma GCC unroll 4
        for (int j = 0; j < CC; j++)
            o[j * NH + h] = _mm256_mul_ps(_mm256_loadu_ps(acc + (size_t)h * dv + c + 8 * j), al);
    }
    for (int t = 0; t < n; t++) {
        const char *vr = v + (size_t)(t * vs + c) * es;
        __m256 vv[4];
#pragma GCC unroll 4
        for (int j = 0; j < CC; j++) vv[j] = ld8(vr + (size_t)(8 * j) * es, dt);
#pragma GCC unroll 8
        for (int h = 0; h < NH; h++) {
            __m256 p = _mm256_broadcast_ss(P + t * RK_CPU_HT + h);
#pragma GCC unroll 4
            for (int j = 0; j < CC; j++) o[j * NH + h] = _mm256_fmadd_ps(p, vv[j], o[j * NH + h]);
        }
    }
#pragma GCC unroll 8
    for (int h = 0; h < NH; h++)
#pragma GCC unroll 4
        for (int j = 0; j < CC; j++) _mm256_storeu_ps(acc + (size_t)h * dv + c + 8 * j, o[j * NH + h]);
}

RK_AVX2_INLINE void pv_nh(const float *P, const void *v, rk_dtype dt, int64_t vs, int dv, int n,
                          const float *alpha, float *acc, const int NH) {
    const int CC = NH <= 2 ? 4 : NH <= 6 ? 2 : 1; /* NH * CC <= 12 accumulators */
    const char *vb = (const char *)v;
    int c = 0;
    for (; c + 8 * CC <= dv; c += 8 * CC) pv_strip(P, vb, dt, vs, dv, n, alpha, acc, c, NH, CC);
    for (; c + 8 <= dv; c += 8) pv_strip(P, vb, dt, vs, dv, n, alpha, acc, c, NH, 1);
    for (; c < dv; c++)
        for (int h = 0; h < NH; h++) {
            float o = acc[(size_t)h * dv + c] * alpha[h];
            for (int t = 0; t < n; t++) o += P[t * RK_CPU_HT + h] * rk_cpu_load1(vb + (size_t)(t * vs) * rk_esize(dt), dt, c);
            acc[(size_t)h * dv + c] = o;
        }
}

RK_AVX2_INLINE void pv_dt(const float *P, int nh, const void *v, rk_dtype dt, int64_t vs, int dv,
                          int n, const float *alpha, float *acc) {
    switch (nh) {
    case 1: pv_nh(P, v, dt, vs, dv, n, alpha, acc, 1); break;
    case 2: pv_nh(P, v, dt, vs, dv, n, alpha, acc, 2); break;
    case 3: pv_nh(P, v, dt, vs, dv, n, alpha, acc, 3); break;
    case 4: pv_nh(P, v, dt, vs, dv, n, alpha, acc, 4); break;
    case 5: pv_nh(P, v, dt, vs, dv, n, alpha, acc, 5); break;
    case 6: pv_nh(P, v, dt, vs, dv, n, alpha, acc, 6); break;
    case 7: pv_nh(P, v, dt, vs, dv, n, alpha, acc, 7); break;
    default: pv_nh(P, v, dt, vs, dv, n, alpha, acc, 8); break;
    }
}

static RK_AVX2 void pv_avx2(const float *P, int nh, const void *v, rk_dtype dt, int64_t vs,
                            int dv, int n, const float *alpha, float *acc) {
    if (dt == RK_F16) pv_dt(P, nh, v, RK_F16, vs, dv, n, alpha, acc);
    else if (dt == RK_BF16) pv_dt(P, nh, v, RK_BF16, vs, dv, n, alpha, acc);
    else pv_dt(P, nh, v, RK_F32, vs, dv, n, alpha, acc);
}

const rk_cpu_kernels rk_cpu_kernels_avx2 = {
    "avx2+fma+f16c", load_row_avx2, store_row_avx2, scores_avx2, softmax_avx2, pv_avx2,
};

#endif /* RK_CPU_X86 */
