/* Shared helpers of rk-bench and rk-demo: timing, medians, random fills, flag parsing. */
#ifndef RK_BENCH_UTIL_H
#define RK_BENCH_UTIL_H
#include "rotatek.h"

#include <stddef.h>
#include <stdint.h>

double bu_now(void);
double bu_median(double *x, int n); /* sorts x */
/* SplitMix64 stream: uniform in [0, 1) from the top 53 bits; standard normal by Box-Muller. */
double bu_uniform(uint64_t *state);
double bu_normal(uint64_t *state);
/* Deterministic uniform(-1, 1) * scale floats (SplitMix64). */
void bu_fill_uniform(float *x, size_t n, uint64_t seed, float scale);
/* Fill `bytes` of buf from offset with a repeating random pattern of the dtype (fast for GBs). */
rk_status bu_fill_buffer(rk_buffer *buf, size_t offset, size_t bytes, rk_dtype dt, uint64_t seed);
/* Parse "f32"/"f16"/"bf16"; -1 if unknown. */
int bu_parse_dtype(const char *s);
/* Abort with a message naming the status and the context's last error. */
void bu_check(rk_status st, rk_context *ctx, const char *what);
#endif
