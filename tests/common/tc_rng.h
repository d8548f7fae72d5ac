/* The test vectors' random numbers. Part of the vector format: these formulas are frozen so
 * anyone can regenerate the same tensors in any language (tests/vectors/README.md). They are
 * deliberately not the library's core/prng.h, which may change without changing the vectors.
 *
 *   state_0      = seed XOR (0x9E3779B97F4A7C15 * (stream + 1))          (mod 2^64)
 *   next():        state += 0x9E3779B97F4A7C15
 *                  z = state
 *                  z = (z XOR (z >> 30)) * 0xBF58476D1CE4E5B9
 *                  z = (z XOR (z >> 27)) * 0x94D049BB133111EB
 *                  return z XOR (z >> 31)                                    (SplitMix64)
 *   uniform():     (next() >> 11) * 2^-53                                    in [0, 1)
 *   normal():      u1 = 1 - uniform(); u2 = uniform()                        u1 in (0, 1]
 *                  return sqrt(-2 ln u1) * cos(2 pi u2)                      (Box-Muller, cos only)
 */
#ifndef TC_RNG_H
#define TC_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct tc_rng {
    uint64_t state;
} tc_rng;

static inline tc_rng tc_rng_init(uint64_t seed, uint64_t stream) {
    tc_rng r = {seed ^ (0x9E3779B97F4A7C15ull * (stream + 1))};
    return r;
}

static inline uint64_t tc_rng_next(tc_rng *r) {
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline double tc_rng_uniform(tc_rng *r) {
    return (double)(tc_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static inline double tc_rng_normal(tc_rng *r) {
    double u1 = 1.0 - tc_rng_uniform(r);
    double u2 = tc_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

#endif
