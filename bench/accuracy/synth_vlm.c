/* rk-synth-vlm: the second data set of the accuracy study. Draws VLM-like Queries, Keys and
 * Values from the shared test-vector model (tests/vectors/gen/model.c, formulas in
 * tests/vectors/README.md: a low-rank image-token block with its own mean and basis, text
 * tokens around it, outlier channels, token-to-token correlation, RoPE) and writes them in
 * rk-accuracy's layout:
 *
 *   rk-synth-vlm OUTDIR [--seqs 4] [--heads 8] [--d 128] [--tokens 384] [--image-begin 32]
 *                       [--image-len 256] [--rope-base 10000] [--seed 2026]
 *   OUTDIR/{q,k,v}.npy  float32 [seq][1][head][token][d]
 *
 * One query head per KV head. The model gives queries for an observation window and one decode
 * query; the window here covers the whole sequence, so query row t sits at position t + 1 and
 * every row is scored as a decode query over all the keys. */
#include "model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int write_array(const char *dir, const char *name, const float *data, const int64_t *shape) {
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    if (tc_npy_write(path, TC_NPY_F4, 5, shape, data, err, sizeof err) != 0) {
        fprintf(stderr, "rk-synth-vlm: %s\n", err);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: rk-synth-vlm OUTDIR [--seqs N] [--heads H] [--d D] [--tokens T]"
                        " [--image-begin P] [--image-len N] [--rope-base B] [--seed S]\n");
        return 2;
    }
    const char *dir = argv[1];
    int seqs = 4, heads = 8, d = 128, T = 384, image_begin = 32, image_len = 256;
    double rope_base = 10000;
    unsigned long long seed = 2026;
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--seqs")) seqs = atoi(v);
        else if (!strcmp(a, "--heads")) heads = atoi(v);
        else if (!strcmp(a, "--d")) d = atoi(v);
        else if (!strcmp(a, "--tokens")) T = atoi(v);
        else if (!strcmp(a, "--image-begin")) image_begin = atoi(v);
        else if (!strcmp(a, "--image-len")) image_len = atoi(v);
        else if (!strcmp(a, "--rope-base")) rope_base = atof(v);
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
        else {
            fprintf(stderr, "rk-synth-vlm: unknown option %s\n", a);
            return 2;
        }
    }
    if (seqs < 1 || heads < 1 || d < 4 || d % 2 || T < 3 || image_begin < 0 || image_len < 1 ||
        image_begin + image_len > T) {
        fprintf(stderr, "rk-synth-vlm: inconsistent sizes\n");
        return 2;
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "rk-synth-vlm: cannot create %s\n", dir);
        return 1;
    }

    tc_case c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "synthetic-vlm");
    c.seed = seed;
    c.B = seqs;
    c.Hq = c.Hkv = heads;
    c.d = c.dv = d;
    c.r = d / 4;
    c.T = T;
    c.S = image_len;
    c.W = T - 1;
    c.rope_base = rope_base;
    c.seqs = calloc((size_t)seqs, sizeof(tc_seq));
    if (!c.seqs) return 1;
    for (int b = 0; b < seqs; b++) c.seqs[b] = (tc_seq){T, image_begin, image_len, T - 1};
    vg_model m = vg_model_default(d, c.r);
    if (vg_model_generate(&m, &c) != 0) {
        fprintf(stderr, "rk-synth-vlm: generation failed\n");
        return 1;
    }
    /* Queries: the window's T - 1 rows then the decode query, per (sequence, head). */
    size_t row = (size_t)d, per_head = (size_t)T * d;
    float *q = malloc(sizeof(float) * (size_t)seqs * heads * per_head);
    if (!q) return 1;
    const float *obs = c.arr[TC_OBS_QUERIES].data, *dec = c.arr[TC_QUERY].data;
    for (size_t bh = 0; bh < (size_t)seqs * heads; bh++) {
        memcpy(q + bh * per_head, obs + bh * (size_t)(T - 1) * row, sizeof(float) * (T - 1) * row);
        memcpy(q + bh * per_head + (size_t)(T - 1) * row, dec + bh * row, sizeof(float) * row);
    }
    const int64_t shape[5] = {seqs, 1, heads, T, d};
    int rc = write_array(dir, "q", q, shape) || write_array(dir, "k", c.arr[TC_KEYS].data, shape) ||
             write_array(dir, "v", c.arr[TC_VALUES].data, shape);
    char *json = vg_model_json(&m);
    printf("rk-synth-vlm: wrote %s: %d seqs x %d heads x %d tokens x d %d, image tokens [%d, %d), "
           "RoPE base %g, seed %llu, model %s\n", dir, seqs, heads, T, d, image_begin,
           image_begin + image_len, rope_base, seed, json ? json : "");
    free(json);
    free(q);
    tc_case_free(&c);
    return rc;
}
