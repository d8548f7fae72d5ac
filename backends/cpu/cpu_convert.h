/* Portable element conversions between the storage dtypes and f32 (round to nearest even on
 * the way out). The AVX2 kernels carry their own vector forms; these serve the portable kernels
 * and the scalar tails. */
#ifndef RK_CPU_CONVERT_H
#define RK_CPU_CONVERT_H

#include "half.h"
#include "rotatek.h"

#include <stdint.h>

static inline float rk_cpu_load1(const void *src, rk_dtype dt, int64_t i) {
    switch (dt) {
    case RK_F16: return rk_f16_to_f32(((const uint16_t *)src)[i]);
    case RK_BF16: return rk_bf16_to_f32(((const uint16_t *)src)[i]);
    default: return ((const float *)src)[i];
    }
}

static inline void rk_cpu_store1(void *dst, rk_dtype dt, int64_t i, float x) {
    switch (dt) {
    case RK_F16: ((uint16_t *)dst)[i] = rk_f32_to_f16(x); break;
    case RK_BF16: ((uint16_t *)dst)[i] = rk_f32_to_bf16(x); break;
    default: ((float *)dst)[i] = x; break;
    }
}

/* f16 -> f32 without branches, so row loops vectorize on any target: exponent and mantissa are
 * shifted into float position and rescaled by 2^-112 (inf/NaN come through as well); a subnormal
 * half m·2^-24 is built as the float 0.5 + m·2^-24 minus 0.5. Equal to rk_f16_to_f32 bit for bit
 * except that signaling NaNs come out quiet. */
static inline float rk_cpu_f16_to_f32_branchless(uint16_t h) {
    const uint32_t w = (uint32_t)h << 16, sign = w & 0x80000000u, two_w = w + w;
    const float normal = rk_bits_f32((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
    const float subnormal = rk_bits_f32((two_w >> 17) | (126u << 23)) - 0.5f;
    const uint32_t mag = two_w < (1u << 27) ? rk_f32_bits(subnormal) : rk_f32_bits(normal);
    return rk_bits_f32(sign | mag);
}

/* Row loops with the dtype switch hoisted, so each loop is a plain conversion the compiler can
 * vectorize (bf16 is a shift). */
static inline void rk_cpu_load_row_portable(float *dst, const void *src, rk_dtype dt, int64_t n) {
    if (dt == RK_F32) {
        const float *s = (const float *)src;
        for (int64_t i = 0; i < n; i++) dst[i] = s[i];
    } else if (dt == RK_BF16) {
        const uint16_t *s = (const uint16_t *)src;
        for (int64_t i = 0; i < n; i++) dst[i] = rk_bf16_to_f32(s[i]);
    } else {
        const uint16_t *s = (const uint16_t *)src;
        for (int64_t i = 0; i < n; i++) dst[i] = rk_cpu_f16_to_f32_branchless(s[i]);
    }
}

static inline void rk_cpu_store_row_portable(void *dst, rk_dtype dt, const float *src, int64_t n) {
    if (dt == RK_F32) {
        float *d = (float *)dst;
        for (int64_t i = 0; i < n; i++) d[i] = src[i];
    } else if (dt == RK_BF16) {
        uint16_t *d = (uint16_t *)dst;
        for (int64_t i = 0; i < n; i++) d[i] = rk_f32_to_bf16(src[i]);
    } else {
        uint16_t *d = (uint16_t *)dst;
        for (int64_t i = 0; i < n; i++) d[i] = rk_f32_to_f16(src[i]);
    }
}

#endif
