/* SplitMix64 stream and Box-Muller normals: the library's only randomness (seeded starts of the
 * subspace solver, RK_METHOD_RANDOM). Deterministic on every platform. */
#ifndef RK_CORE_PRNG_H
#define RK_CORE_PRNG_H
#include <math.h>
#include <stdint.h>

static inline uint64_t rk_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1) from the top 53 bits. */
static inline double rk_uniform(uint64_t *state) {
    return (double)(rk_splitmix64(state) >> 11) * (1.0 / 9007199254740992.0);
}

/* One standard normal per call (the cosine branch of Box-Muller; two uniforms each). */
static inline double rk_normal(uint64_t *state) {
    double u1 = 1.0 - rk_uniform(state); /* (0, 1] so the log is finite */
    double u2 = rk_uniform(state);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}
#endif
