/* Double-precision reference math (see reference.h). Written for clarity, not speed. */
#include "reference.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void rk_ref_moments(const double *keys, int T, int d, double *mean, double *cov) {
    for (int i = 0; i < d; i++) {
        double s = 0;
        for (int t = 0; t < T; t++) s += keys[(size_t)t * d + i];
        mean[i] = T > 0 ? s / T : 0;
    }
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double s = 0;
            for (int t = 0; t < T; t++)
                s += (keys[(size_t)t * d + i] - mean[i]) * (keys[(size_t)t * d + j] - mean[j]);
            cov[(size_t)i * d + j] = T > 0 ? s / T : 0;
        }
}

void rk_ref_compress(const double *keys, const double *R, int T, int d, int r, double *out) {
    for (int t = 0; t < T; t++)
        for (int j = 0; j < r; j++) {
            double s = 0;
            for (int i = 0; i < d; i++) s += keys[(size_t)t * d + i] * R[(size_t)i * r + j];
            out[(size_t)t * r + j] = s;
        }
}

/* Row of V for the t-th token in position order; full-width keys are compacted around the span. */
static void rk_ref_softmax_sum(const double *logits, const double *v, int n, int dv, double *out,
                               double *lse) {
    double m = -INFINITY;
    for (int t = 0; t < n; t++) m = logits[t] > m ? logits[t] : m;
    double l = 0;
    for (int c = 0; c < dv; c++) out[c] = 0;
    for (int t = 0; t < n; t++) {
        double p = exp(logits[t] - m);
        l += p;
        for (int c = 0; c < dv; c++) out[c] += p * v[(size_t)t * dv + c];
    }
    for (int c = 0; c < dv; c++) out[c] /= l;
    *lse = m + log(l);
}

static double rk_dot(const double *a, const double *b, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Logits of the tokens outside the span, placed at their positions. */
static void rk_ref_full_logits(const double *q, const double *k_full, int d, rk_seq_info s,
                               double scale, double *logits) {
    for (int p = 0, j = 0; p < s.seq_len; p++) {
        if (p >= s.span_begin && p < s.span_begin + s.span_len) continue;
        logits[p] = rk_dot(q, k_full + (size_t)j * d, d) * scale;
        j++;
    }
}

void rk_ref_decode_head(const double *q, const double *k_full, const double *k_span,
                        const double *R, const double *dmu, const double *v, int d, int r, int dv,
                        rk_seq_info s, double scale, double *out, double *lse) {
    double *logits = malloc(sizeof(double) * ((size_t)s.seq_len + (size_t)r + 1));
    if (!logits) { *lse = NAN; return; }
    double *qr = logits + s.seq_len;
    rk_ref_full_logits(q, k_full, d, s, scale, logits);
    if (s.span_len > 0) {
        for (int j = 0; j < r; j++) {
            double acc = 0;
            for (int i = 0; i < d; i++) acc += q[i] * R[(size_t)i * r + j];
            qr[j] = acc;
        }
        double qm = rk_dot(q, dmu, d);
        for (int i = 0; i < s.span_len; i++)
            logits[s.span_begin + i] = (rk_dot(qr, k_span + (size_t)i * r, r) + qm) * scale;
    }
    rk_ref_softmax_sum(logits, v, s.seq_len, dv, out, lse);
    free(logits);
}

void rk_ref_spark_token(const double *k, const double *qnorm, int d, int r, double *vals,
                        int32_t *idx, double *fill) {
    unsigned char *keep = calloc((size_t)d, 1);
    if (!keep) return;
    for (int j = 0; j < r; j++) {
        int best = -1;
        double best_s = 0;
        for (int c = 0; c < d; c++) {
            if (keep[c]) continue;
            double sc = qnorm[c] * k[c] * k[c];
            if (best < 0 || sc > best_s) { best = c; best_s = sc; }
        }
        keep[best] = 1;
    }
    double dropped = 0;
    for (int c = 0, j = 0; c < d; c++) {
        if (keep[c]) { vals[j] = k[c]; idx[j] = c; j++; }
        else dropped += k[c];
    }
    *fill = r < d ? dropped / (d - r) : 0;
    free(keep);
}

void rk_ref_decode_spark_head(const double *q, const double *k_full, const double *vals,
                              const int32_t *idx, const double *fill, const double *v, int d,
                              int r, int dv, rk_seq_info s, double scale, double *out,
                              double *lse) {
    double *logits = malloc(sizeof(double) * ((size_t)s.seq_len + (size_t)d));
    if (!logits) { *lse = NAN; return; }
    double *k = logits + s.seq_len;
    rk_ref_full_logits(q, k_full, d, s, scale, logits);
    for (int i = 0; i < s.span_len; i++) {
        for (int c = 0; c < d; c++) k[c] = fill[i];
        for (int j = 0; j < r; j++) k[idx[(size_t)i * r + j]] = vals[(size_t)i * r + j];
        logits[s.span_begin + i] = rk_dot(q, k, d) * scale;
    }
    rk_ref_softmax_sum(logits, v, s.seq_len, dv, out, lse);
    free(logits);
}

static double *rk_ref_widen(const float *x, size_t n) {
    double *y = malloc(sizeof(double) * (n ? n : 1));
    if (y)
        for (size_t i = 0; i < n; i++) y[i] = x[i];
    return y;
}

void rk_ref_decode_batch(const rk_ref_batch *in, int dense, double *out, double *lse) {
    int B = in->B, Hq = in->Hq, Hkv = in->Hkv, d = in->d, dv = in->dv, r = in->r;
    int group = Hq / Hkv;
    double scale = in->scale > 0 ? in->scale : 1.0 / sqrt((double)d);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < Hq; h++) {
            int g = h / group;
            size_t bg = (size_t)b * Hkv + g;
            rk_seq_info s = in->seqs[b];
            if (dense) { s.span_begin = 0; s.span_len = 0; }
            double *q = rk_ref_widen(in->q + ((size_t)b * Hq + h) * d, (size_t)d);
            double *kf = rk_ref_widen(in->k_full + bg * in->Tf * d, (size_t)in->Tf * d);
            double *v = rk_ref_widen(in->v + bg * in->T * dv, (size_t)in->T * dv);
            double *ks = NULL, *R = NULL, *dmu = NULL;
            if (!dense) {
                ks = rk_ref_widen(in->k_span + bg * in->Ts * r, (size_t)in->Ts * r);
                R = rk_ref_widen(in->R + bg * d * r, (size_t)d * r);
                dmu = rk_ref_widen(in->dmu + bg * d, (size_t)d);
            }
            rk_ref_decode_head(q, kf, ks, R, dmu, v, d, r, dv, s, scale,
                               out + ((size_t)b * Hq + h) * dv, lse + (size_t)b * Hq + h);
            free(q); free(kf); free(v); free(ks); free(R); free(dmu);
        }
}
