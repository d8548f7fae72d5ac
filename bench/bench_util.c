#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "bench_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double bu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bu_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bu_median(double *x, int n) {
    qsort(x, (size_t)n, sizeof(double), bu_cmp);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

static uint64_t bu_splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double bu_uniform(uint64_t *state) {
    return (double)(bu_splitmix(state) >> 11) * (1.0 / 9007199254740992.0);
}

double bu_normal(uint64_t *state) {
    double u1 = 1.0 - bu_uniform(state); /* (0, 1]: the log stays finite */
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * bu_uniform(state));
}

void bu_fill_uniform(float *x, size_t n, uint64_t seed, float scale) {
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) x[i] = scale * (float)(2.0 * bu_uniform(&s) - 1.0);
}

rk_status bu_fill_buffer(rk_buffer *buf, size_t offset, size_t bytes, rk_dtype dt, uint64_t seed) {
    enum { CHUNK = 16 << 20 };
    /* one chunk of values repeated; no more than the buffer needs (small caches are many) */
    const size_t chunk = bytes < CHUNK ? (bytes + 15) & ~(size_t)15 : CHUNK;
    size_t es = rk_dtype_size(dt), n = chunk / es;
    float *f = malloc(n * sizeof(float));
    unsigned char *raw = malloc(chunk);
    rk_status st = (f && raw) ? RK_OK : RK_ERR_OUT_OF_MEMORY;
    if (st == RK_OK) {
        bu_fill_uniform(f, n, seed, 1.0f);
        st = rk_convert_from_f32(dt, raw, f, n);
    }
    for (size_t done = 0; done < bytes && st == RK_OK; done += chunk)
        st = rk_buffer_upload(buf, offset + done, raw, bytes - done < chunk ? bytes - done : chunk);
    free(f);
    free(raw);
    return st;
}

int bu_parse_dtype(const char *s) {
    if (!strcmp(s, "f32")) return RK_F32;
    if (!strcmp(s, "f16")) return RK_F16;
    if (!strcmp(s, "bf16")) return RK_BF16;
    return -1;
}

void bu_check(rk_status st, rk_context *ctx, const char *what) {
    if (st == RK_OK) return;
    fprintf(stderr, "%s failed: %s (%s)\n", what, rk_status_name(st),
            ctx && rk_context_last_error(ctx)[0] ? rk_context_last_error(ctx) : rk_status_string(st));
    exit(2);
}
