/* Host conversions between f32 and the 16-bit storage types, round to nearest even.
 * Header-only so the CPU backend inlines them in its inner loops. */
#ifndef RK_CORE_HALF_H
#define RK_CORE_HALF_H

#include <stdint.h>
#include <string.h>

static inline uint32_t rk_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float rk_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static inline float rk_bf16_to_f32(uint16_t h) { return rk_bits_f32((uint32_t)h << 16); }

static inline uint16_t rk_f32_to_bf16(float f) {
    uint32_t u = rk_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float rk_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1fu) return rk_bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0) return rk_bits_f32(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return rk_bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

static inline uint16_t rk_f32_to_f16(float f) {
    uint32_t u = rk_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);           /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);          /* overflow -> inf */
    if (a < 0x38800000u) {                                             /* subnormal or zero */
        float v = rk_bits_f32(a) * 16777216.0f;                        /* scale by 2^24 */
        /* round to nearest even integer (default FP rounding mode) */
        float r = v + 8388608.0f; r -= 8388608.0f;
        return (uint16_t)(sign | (uint16_t)r);
    }
    uint32_t exp = (a >> 23) - 112u, man = a & 0x7fffffu;
    uint32_t h = (exp << 10) | (man >> 13);
    uint32_t rest = man & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

#endif
