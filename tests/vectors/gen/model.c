/* Synthetic Keys, Queries and Values (see model.h and tests/vectors/README.md, which states the
 * same formulas and draw order: keep the two in step). */
#include "model.h"

#include "tc_rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { VG_STREAM_HEAD = 1, VG_STREAM_QHEAD = 2, VG_STREAM_KEYS = 3, VG_STREAM_VALUES = 4,
       VG_STREAM_QUERIES = 5 };

static uint64_t vg_stream(uint64_t kind, int b, int head) {
    return kind << 32 | (uint64_t)b << 16 | (uint64_t)head;
}

vg_model vg_model_default(int d, int r) {
    vg_model m;
    m.span_rank = r + 4 < d ? r + 4 : d;
    m.text_rank = d / 8 > 4 ? d / 8 : 4;
    m.query_rank = 4;
    m.n_outliers = d >= 64 ? 4 : 2;
    m.span_strength = 2.0;
    m.key_noise = 0.3;
    m.query_noise = 0.5;
    m.ar_rho = 0.6;
    return m;
}

char *vg_model_json(const vg_model *m) {
    char *s = malloc(512);
    if (s)
        snprintf(s, 512,
                 "{\"model\":\"lowrank_rope_v1\",\"span_rank\":%d,\"text_rank\":%d,"
                 "\"query_rank\":%d,\"n_outliers\":%d,\"span_strength\":%.17g,"
                 "\"key_noise\":%.17g,\"query_noise\":%.17g,\"ar_rho\":%.17g}",
                 m->span_rank, m->text_rank, m->query_rank, m->n_outliers, m->span_strength,
                 m->key_noise, m->query_noise, m->ar_rho);
    return s;
}

/* Channel energy profile: low-frequency RoPE channels (large i) carry more, as in real models. */
static double vg_profile(int c, int d) {
    int half = d / 2, i = c % half;
    return 0.25 + pow(half > 1 ? (double)i / (half - 1) : 1.0, 1.5);
}

/* U [d][L]: gaussian columns shaped by the profile, then modified Gram-Schmidt. */
static void vg_basis(tc_rng *rng, int d, int L, double *U) {
    for (int c = 0; c < d; c++)
        for (int l = 0; l < L; l++) U[c * L + l] = tc_rng_normal(rng) * vg_profile(c, d);
    for (int l = 0; l < L; l++) {
        for (int k = 0; k < l; k++) {
            double dot = 0;
            for (int c = 0; c < d; c++) dot += U[c * L + k] * U[c * L + l];
            for (int c = 0; c < d; c++) U[c * L + l] -= dot * U[c * L + k];
        }
        double norm = 0;
        for (int c = 0; c < d; c++) norm += U[c * L + l] * U[c * L + l];
        norm = sqrt(norm);
        for (int c = 0; c < d; c++) U[c * L + l] /= norm;
    }
}

/* Rotate-half RoPE at position p: pairs (i, i + d/2), theta_i = base^(-2i/d). */
static void vg_rope(double *x, int d, double base, int p) {
    int half = d / 2;
    for (int i = 0; i < half; i++) {
        double theta = pow(base, -2.0 * i / d), a = p * theta;
        double cs = cos(a), sn = sin(a), x0 = x[i], x1 = x[i + half];
        x[i] = x0 * cs - x1 * sn;
        x[i + half] = x1 * cs + x0 * sn;
    }
}

/* Per KV head, shared by every sequence: outlier channels and both modalities' mean and basis. */
typedef struct vg_head {
    int *outlier;          /* [n_outliers] channels */
    double *outlier_mag;   /* [n_outliers] signed magnitudes */
    double *mu[2], *U[2];  /* [0] span (image) keys, [1] the other keys */
    int L[2];
    double strength[2];
} vg_head;

static void vg_head_free(vg_head *h) {
    free(h->outlier); free(h->outlier_mag);
    for (int m = 0; m < 2; m++) { free(h->mu[m]); free(h->U[m]); }
}

static int vg_head_make(const vg_model *m, const tc_case *c, int g, vg_head *h) {
    int d = c->d, half = d / 2, quarter = half / 4 > 0 ? half / 4 : 1;
    memset(h, 0, sizeof *h);
    h->L[0] = m->span_rank;
    h->L[1] = m->text_rank < d ? m->text_rank : d;
    h->strength[0] = m->span_strength;
    h->strength[1] = 0.8 * m->span_strength;
    h->outlier = calloc((size_t)m->n_outliers + 1, sizeof(int));
    h->outlier_mag = calloc((size_t)m->n_outliers + 1, sizeof(double));
    for (int k = 0; k < 2; k++) {
        h->mu[k] = calloc((size_t)d, sizeof(double));
        h->U[k] = calloc((size_t)d * h->L[k], sizeof(double));
        if (!h->mu[k] || !h->U[k]) return 1;
    }
    if (!h->outlier || !h->outlier_mag) return 1;
    tc_rng rng = tc_rng_init(c->seed, vg_stream(VG_STREAM_HEAD, 0, g));
    /* outliers: distinct channels among the lowest-frequency quarter of the pairs */
    for (int k = 0; k < m->n_outliers;) {
        int i = half - quarter + (int)(tc_rng_uniform(&rng) * quarter);
        int ch = i + (tc_rng_uniform(&rng) < 0.5 ? 0 : half);
        int taken = 0;
        for (int j = 0; j < k; j++) taken |= h->outlier[j] == ch;
        if (taken) continue;
        h->outlier[k++] = ch;
    }
    for (int k = 0; k < m->n_outliers; k++) {
        double mag = 4.0 + 2.0 * tc_rng_uniform(&rng);
        h->outlier_mag[k] = tc_rng_uniform(&rng) < 0.5 ? -mag : mag;
    }
    for (int ch = 0; ch < d; ch++) h->mu[0][ch] = 0.5 * vg_profile(ch, d) * tc_rng_normal(&rng);
    for (int ch = 0; ch < d; ch++)
        h->mu[1][ch] = h->mu[0][ch] + 0.3 * vg_profile(ch, d) * tc_rng_normal(&rng);
    for (int k = 0; k < m->n_outliers; k++) {
        h->mu[0][h->outlier[k]] += h->outlier_mag[k];
        h->mu[1][h->outlier[k]] += h->outlier_mag[k];
    }
    vg_basis(&rng, d, h->L[0], h->U[0]);
    vg_basis(&rng, d, h->L[1], h->U[1]);
    return 0;
}

/* Keys of sequence b, KV head g: [T][d] rows for positions [0, seq_len). */
static int vg_keys(const vg_model *m, const tc_case *c, const vg_head *h, int b, int g, float *out) {
    int d = c->d;
    tc_seq s = c->seqs[b];
    double rho = m->ar_rho, innov = sqrt(1.0 - rho * rho);
    double *a[2], *k = malloc(sizeof(double) * (size_t)d);
    a[0] = malloc(sizeof(double) * (size_t)h->L[0]);
    a[1] = malloc(sizeof(double) * (size_t)h->L[1]);
    if (!k || !a[0] || !a[1]) { free(k); free(a[0]); free(a[1]); return 1; }
    tc_rng rng = tc_rng_init(c->seed, vg_stream(VG_STREAM_KEYS, b, g));
    for (int md = 0; md < 2; md++)
        for (int l = 0; l < h->L[md]; l++) a[md][l] = tc_rng_normal(&rng);
    for (int p = 0; p < s.seq_len; p++) {
        int md = (p >= s.span_begin && p < s.span_begin + s.span_len) ? 0 : 1, L = h->L[md];
        for (int l = 0; l < L; l++) a[md][l] = rho * a[md][l] + innov * tc_rng_normal(&rng);
        double gain = exp(0.25 * tc_rng_normal(&rng)); /* token magnitude */
        for (int ch = 0; ch < d; ch++) {
            double importance = exp(0.35 * tc_rng_normal(&rng)); /* token-dependent channel weight */
            double noise = m->key_noise * vg_profile(ch, d) * importance * tc_rng_normal(&rng);
            double low = 0;
            for (int l = 0; l < L; l++)
                low += h->strength[md] * (1.0 - 0.7 * l / L) * a[md][l] * h->U[md][ch * L + l];
            k[ch] = h->mu[md][ch] + gain * low + noise;
        }
        vg_rope(k, d, c->rope_base, p);
        for (int ch = 0; ch < d; ch++) out[(size_t)p * d + ch] = (float)k[ch];
    }
    free(k); free(a[0]); free(a[1]);
    return 0;
}

/* Queries of sequence b, query head hq: the obs_len window rows, then the decode query. */
static int vg_queries(const vg_model *m, const tc_case *c, const vg_head *kv, int b, int hq,
                      float *window, float *decode) {
    int d = c->d, L = m->query_rank;
    tc_seq s = c->seqs[b];
    double rho = m->ar_rho, innov = sqrt(1.0 - rho * rho);
    double *U = malloc(sizeof(double) * (size_t)d * L), *mu = malloc(sizeof(double) * (size_t)d);
    double *coef = malloc(sizeof(double) * (size_t)L), *q = malloc(sizeof(double) * (size_t)d);
    if (!U || !mu || !coef || !q) { free(U); free(mu); free(coef); free(q); return 1; }
    tc_rng feat = tc_rng_init(c->seed, vg_stream(VG_STREAM_QHEAD, 0, hq));
    vg_basis(&feat, d, L, U);
    for (int ch = 0; ch < d; ch++) mu[ch] = 0.3 * vg_profile(ch, d) * tc_rng_normal(&feat);
    for (int k = 0; k < m->n_outliers; k++) /* queries lean on the key outliers' channels too */
        mu[kv->outlier[k]] += (kv->outlier_mag[k] > 0 ? 1.0 : -1.0) * (1.0 + tc_rng_uniform(&feat));
    tc_rng rng = tc_rng_init(c->seed, vg_stream(VG_STREAM_QUERIES, b, hq));
    for (int l = 0; l < L; l++) coef[l] = tc_rng_normal(&rng);
    for (int j = 0; j <= s.obs_len; j++) {
        int pos = s.seq_len - s.obs_len + j;
        for (int l = 0; l < L; l++) coef[l] = rho * coef[l] + innov * tc_rng_normal(&rng);
        for (int ch = 0; ch < d; ch++) {
            double low = 0;
            for (int l = 0; l < L; l++) low += 1.5 * (1.0 - 0.5 * l / L) * coef[l] * U[ch * L + l];
            q[ch] = mu[ch] + low + m->query_noise * vg_profile(ch, d) * tc_rng_normal(&rng);
        }
        vg_rope(q, d, c->rope_base, pos);
        float *dst = j < s.obs_len ? window + (size_t)j * d : decode;
        for (int ch = 0; ch < d; ch++) dst[ch] = (float)q[ch];
    }
    free(U); free(mu); free(coef); free(q);
    return 0;
}

static int vg_alloc(tc_case *c, tc_array_id id) {
    int64_t shape[TC_NPY_MAX_DIMS];
    int n = tc_array_shape(c, id, shape);
    tc_npy *a = &c->arr[id];
    a->type = tc_array_type(id);
    a->ndim = n;
    a->count = 1;
    for (int i = 0; i < n; i++) { a->shape[i] = shape[i]; a->count *= (size_t)shape[i]; }
    a->data = calloc(a->count, tc_npy_type_size(a->type));
    return a->data == NULL;
}

int vg_model_generate(const vg_model *m, tc_case *c) {
    if (c->d % 2 || c->d < 4 || m->span_rank < 1 || m->span_rank > c->d) return 1;
    for (int id = TC_KEYS; id <= TC_QUERY; id++)
        if (vg_alloc(c, (tc_array_id)id)) return 1;
    float *keys = c->arr[TC_KEYS].data, *vals = c->arr[TC_VALUES].data;
    float *obs = c->arr[TC_OBS_QUERIES].data, *query = c->arr[TC_QUERY].data;
    int group = c->Hq / c->Hkv, rc = 0;
    for (int g = 0; g < c->Hkv && rc == 0; g++) {
        vg_head head;
        rc = vg_head_make(m, c, g, &head);
        for (int b = 0; b < c->B && rc == 0; b++) {
            size_t bg = (size_t)b * c->Hkv + g;
            rc = vg_keys(m, c, &head, b, g, keys + bg * c->T * c->d);
            tc_rng rng = tc_rng_init(c->seed, vg_stream(VG_STREAM_VALUES, b, g));
            float *v = vals + bg * c->T * c->dv;
            for (int p = 0; p < c->seqs[b].seq_len; p++)
                for (int ch = 0; ch < c->dv; ch++) v[(size_t)p * c->dv + ch] = (float)tc_rng_normal(&rng);
            for (int hq = g * group; hq < (g + 1) * group && rc == 0; hq++) {
                size_t bh = (size_t)b * c->Hq + hq;
                rc = vg_queries(m, c, &head, b, hq, obs + bh * c->W * c->d, query + bh * c->d);
            }
        }
        vg_head_free(&head);
    }
    return rc;
}
