/* rk-vecgen: writes the shared test vectors (tests/vectors/cases/<name>/), or regenerates them in
 * memory and checks them against a directory (--verify): bit-for-bit, except the arrays that go
 * through LAPACK, which must agree within 1e-12 of their scale. */
#include "model.h"
#include "refs.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct vg_case_def {
    const char *name, *description;
    uint64_t seed;
    int B, Hq, Hkv, d, dv, r;
    tc_seq seqs[4];
} vg_case_def;

/* seqs: {seq_len, span_begin, span_len, obs_len} */
static const vg_case_def vg_cases[] = {
    {"gqa_small", "GQA 4:2, two sequences with spans at different positions", 0x5001,
     2, 4, 2, 32, 32, 8, {{96, 8, 64, 16}, {80, 4, 56, 16}}},
    {"vlm_like", "one image span of 192 tokens between 16 prompt and 24 text tokens", 0x5002,
     1, 4, 1, 128, 128, 32, {{232, 16, 192, 32}}},
    {"ragged_batch", "three sequences of odd lengths and span positions (one at 0), dv != d, GQA 3:1",
     0x5003, 3, 3, 1, 64, 48, 16, {{57, 5, 40, 16}, {45, 0, 29, 12}, {72, 41, 24, 16}}},
    {"full_rank", "r = d: sparse decode equals dense decode and the mean correction vanishes", 0x5004,
     1, 2, 1, 32, 32, 32, {{64, 8, 48, 16}}},
    {"no_span_token", "a batch where the second sequence has no pruned span", 0x5005,
     2, 4, 2, 32, 32, 8, {{56, 8, 40, 16}, {40, 0, 0, 16}}},
};
#define VG_N_CASES (sizeof vg_cases / sizeof vg_cases[0])

static int vg_build(const vg_case_def *def, tc_case *c, char *err, size_t err_len) {
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", def->name);
    snprintf(c->description, sizeof c->description, "%s", def->description);
    c->seed = def->seed;
    c->B = def->B; c->Hq = def->Hq; c->Hkv = def->Hkv; c->d = def->d; c->dv = def->dv; c->r = def->r;
    c->seqs = calloc((size_t)c->B, sizeof *c->seqs);
    if (!c->seqs) return 1;
    c->T = c->S = c->W = 1;
    for (int b = 0; b < c->B; b++) {
        c->seqs[b] = def->seqs[b];
        if (def->seqs[b].seq_len > c->T) c->T = def->seqs[b].seq_len;
        if (def->seqs[b].span_len > c->S) c->S = def->seqs[b].span_len;
        if (def->seqs[b].obs_len > c->W) c->W = def->seqs[b].obs_len;
    }
    c->rope_base = 10000.0;
    c->scale = 1.0 / sqrt((double)c->d);
    snprintf(c->method, sizeof c->method, "pca_qweighted");
    c->ridge = 1e-6;
    c->qnorm_floor = 0.05;
    c->subspace_iters = 6;
    c->solver_seed = 0x5eed;
    vg_model m = vg_model_default(c->d, c->r);
    c->generator_json = vg_model_json(&m);
    if (!c->generator_json || vg_model_generate(&m, c)) {
        snprintf(err, err_len, "%s: input generation failed", def->name);
        return 1;
    }
    return vg_refs_compute(c, err, err_len);
}

/* Diagnostics the thresholds rely on: eigen-gaps of the top r+1 and softmax spread. */
static void vg_summary(const tc_case *c) {
    double min_gap = INFINITY;
    for (int b = 0; b < c->B; b++) {
        if (c->seqs[b].span_len == 0) continue;
        for (int g = 0; g < c->Hkv; g++) {
            const double *ev = tc_f64(c, TC_REF_EIGENVALUES) + ((size_t)b * c->Hkv + g) * c->d;
            int top = c->r < c->d ? c->r + 1 : c->d;
            for (int j = 0; j + 1 < top; j++) {
                double gap = (ev[j] - ev[j + 1]) / ev[0];
                if (gap < min_gap) min_gap = gap;
            }
        }
    }
    printf("%-14s B=%d Hq=%d Hkv=%d d=%d dv=%d r=%d T=%d S=%d  min eigen-gap/l0 (top r+1) %.3g\n",
           c->name, c->B, c->Hq, c->Hkv, c->d, c->dv, c->r, c->T, c->S, min_gap);
}

static int vg_mkdir(const char *path) { return mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : 1; }

static char *vg_read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *text = malloc(cap);
    while (text) {
        n += fread(text + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        char *grown = realloc(text, cap *= 2);
        if (!grown) { free(text); text = NULL; }
        else text = grown;
    }
    fclose(f);
    if (text) text[n] = '\0';
    return text;
}

static int vg_compare(const tc_case *fresh, const char *dir) {
    char err[512];
    tc_case old;
    if (tc_case_load(dir, &old, err, sizeof err)) {
        fprintf(stderr, "verify %s: %s\n", fresh->name, err);
        return 1;
    }
    int bad = 0;
    char path[1100];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    char *m_fresh = tc_case_manifest(fresh), *m_old = vg_read_text(path);
    size_t n = m_fresh ? strlen(m_fresh) : 0;
    if (!m_fresh || !m_old || strncmp(m_fresh, m_old, n) != 0 || strcmp(m_old + n, "\n") != 0) {
        fprintf(stderr, "verify %s: manifest.json differs from the one rk-vecgen writes\n", fresh->name);
        bad = 1;
    }
    free(m_fresh);
    free(m_old);
    for (int id = 0; id < TC_N_ARRAYS; id++) {
        const tc_npy *a = &fresh->arr[id], *o = &old.arr[id];
        size_t es = tc_npy_type_size(a->type);
        if (a->count != o->count || a->type != o->type) {
            fprintf(stderr, "verify %s: %s has another shape or dtype\n", fresh->name, tc_array_name(id));
            bad = 1;
            continue;
        }
        if (memcmp(a->data, o->data, a->count * es) == 0) continue;
        if (!tc_array_lapack_derived((tc_array_id)id)) {
            fprintf(stderr, "verify %s: %s differs (must be bit-for-bit)\n", fresh->name, tc_array_name(id));
            bad = 1;
            continue;
        }
        const double *x = a->data, *y = o->data;
        double scale = 1, worst = 0;
        for (size_t i = 0; i < a->count; i++) scale = fabs(y[i]) > scale ? fabs(y[i]) : scale;
        for (size_t i = 0; i < a->count; i++) {
            double e = fabs(x[i] - y[i]);
            worst = (e > worst || isnan(e)) ? e : worst;
        }
        if (!(worst <= 1e-12 * scale)) {
            fprintf(stderr, "verify %s: %s differs by %.3g (allowed %.3g)\n", fresh->name,
                    tc_array_name(id), worst, 1e-12 * scale);
            bad = 1;
        }
    }
    tc_case_free(&old);
    if (!bad) printf("verify %s: ok\n", fresh->name);
    return bad;
}

static void vg_usage(void) {
    fprintf(stderr, "usage: rk-vecgen (--out DIR | --verify DIR) [--case NAME]\n"
                    "  --out DIR     write every case to DIR/<name>/\n"
                    "  --verify DIR  regenerate and compare with DIR/<name>/ (exit 1 on a difference)\n");
}

int main(int argc, char **argv) {
    const char *out = NULL, *verify = NULL, *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) out = argv[++i];
        else if (strcmp(argv[i], "--verify") == 0 && i + 1 < argc) verify = argv[++i];
        else if (strcmp(argv[i], "--case") == 0 && i + 1 < argc) only = argv[++i];
        else { vg_usage(); return 2; }
    }
    if (!out == !verify) { vg_usage(); return 2; }
    const char *root = out ? out : verify;
    if (out && vg_mkdir(out)) { fprintf(stderr, "cannot create %s\n", out); return 1; }
    int failed = 0, matched = 0;
    for (size_t k = 0; k < VG_N_CASES; k++) {
        if (only && strcmp(only, vg_cases[k].name) != 0) continue;
        matched++;
        char err[512], dir[1024];
        tc_case c;
        if (vg_build(&vg_cases[k], &c, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            tc_case_free(&c);
            failed = 1;
            continue;
        }
        snprintf(dir, sizeof dir, "%s/%s", root, c.name);
        if (out) {
            vg_summary(&c);
            if (vg_mkdir(dir) || tc_case_write(dir, &c, err, sizeof err)) {
                fprintf(stderr, "%s: %s\n", c.name, err);
                failed = 1;
            }
        } else {
            failed |= vg_compare(&c, dir);
        }
        tc_case_free(&c);
    }
    if (only && !matched) { fprintf(stderr, "no case named %s\n", only); return 2; }
    return failed;
}
