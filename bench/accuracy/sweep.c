/* See sweep.h: the list of (method, ratio/budget) points and the loop over sequences and layers. */
#include "sweep.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void acc_study_config_init(acc_study_config *c) {
    static const double ratios[] = {0.25, 0.375, 0.5, 0.75};
    /* up to 0.625: with 25% of Key channels and full Values the joint method then keeps every
     * token (0.625 = (d/4 + dv) / (d + dv) for dv = d) */
    static const double budgets[] = {0.15, 0.25, 0.35, 0.45, 0.55, 0.625};
    memset(c, 0, sizeof *c);
    c->backend = "cpu";
    c->n_ratios = 4;
    memcpy(c->ratios, ratios, sizeof ratios);
    c->n_budgets = 6;
    memcpy(c->budgets, budgets, sizeof budgets);
    for (int m = 0; m < ACC_METHOD_COUNT; m++) c->use[m] = 1;
}

int acc_dataset_view(const acc_npy *q, const acc_npy *k, const acc_npy *v, int max_seqs,
                     acc_dataset *ds) {
    const acc_npy *a[3] = {q, k, v};
    int64_t shape[3][5];
    for (int i = 0; i < 3; i++) {
        int n = a[i]->ndim;
        if (n < 3 || n > 5) return -1;
        for (int j = 0; j < 5; j++) shape[i][j] = j < 5 - n ? 1 : a[i]->shape[j - (5 - n)];
    }
    for (int j = 0; j < 4; j++)
        if (shape[0][j] != shape[1][j] || shape[0][j] != shape[2][j]) return -1;
    if (shape[0][4] != shape[1][4]) return -1;
    ds->S = (int)shape[0][0];
    if (max_seqs > 0 && max_seqs < ds->S) ds->S = max_seqs;
    ds->L = (int)shape[0][1];
    ds->H = (int)shape[0][2];
    ds->T = (int)shape[0][3];
    ds->d = (int)shape[0][4];
    ds->dv = (int)shape[2][4];
    ds->q = q->data;
    ds->k = k->data;
    ds->v = v->data;
    return 0;
}

static acc_point *acc_add_point(acc_study *s, acc_method m, double key_ratio, double budget,
                                int rank, int keep) {
    acc_point *p = &s->points[s->n_points++];
    const acc_dataset *ds = &s->ds;
    p->method = m;
    p->key_ratio = key_ratio;
    p->budget = budget;
    p->rank = rank;
    p->keep = keep;
    p->kv_bytes = acc_kv_bytes_fraction(m, ds->d, ds->dv, rank, keep, s->span_len,
                                        (int)rk_dtype_size(s->opt.dtype));
    p->m = calloc((size_t)ds->L * ds->H, sizeof(acc_metrics));
    return p;
}

static int acc_round_int(double x) { return (int)floor(x + 0.5); }

int acc_study_run(const acc_study_config *cfg, const acc_options *opt, const acc_dataset *ds,
                  acc_study *s) {
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    s->opt = *opt;
    s->ds = *ds;
    s->span_len = ds->T - opt->span_begin - opt->span_tail;
    const int d = ds->d, S = s->span_len;
    if (S < 2) {
        fprintf(stderr, "rk-accuracy: span of %d tokens is too short\n", S);
        return -1;
    }
    acc_add_point(s, ACC_DENSE, 1.0, 0, d, S);
    for (int m = ACC_ROTATEK_QW; m <= ACC_RANDOM; m++) {
        if (!cfg->use[m]) continue;
        for (int i = 0; i < cfg->n_ratios; i++) {
            int rank = acc_round_int(cfg->ratios[i] * d);
            if (rank < 1) rank = 1;
            acc_add_point(s, (acc_method)m, (double)rank / d, 0, rank, S);
        }
    }
    /* Matched KV bytes: tokens-only keeps β of the span, joint keeps β / f with f its per-token
     * cost (Keys at joint_rank, full Values). */
    int jr = opt->joint_rank > 0 ? opt->joint_rank : d / 4;
    double f = acc_kv_bytes_fraction(ACC_TOKENS_JOINT, d, ds->dv, jr, S, S,
                                     (int)rk_dtype_size(opt->dtype));
    for (int i = 0; i < cfg->n_budgets; i++) {
        double b = cfg->budgets[i];
        int keep_t = acc_round_int(b * S), keep_j = acc_round_int((b / f < 1 ? b / f : 1) * S);
        if (keep_t < 1) keep_t = 1;
        if (keep_j < 1) keep_j = 1;
        if (cfg->use[ACC_TOKENS_ONLY]) acc_add_point(s, ACC_TOKENS_ONLY, 1.0, b, d, keep_t);
        if (cfg->use[ACC_TOKENS_JOINT])
            acc_add_point(s, ACC_TOKENS_JOINT, (double)jr / d, b, jr, keep_j);
    }
    for (int p = 0; p < s->n_points; p++)
        if (!s->points[p].m) {
            fprintf(stderr, "rk-accuracy: out of memory\n");
            return -1;
        }

    const size_t nqk = (size_t)ds->H * ds->T * d, nv = (size_t)ds->H * ds->T * ds->dv;
    float *q = malloc(sizeof(float) * nqk), *k = malloc(sizeof(float) * nqk);
    acc_metrics *per_head = malloc(sizeof(acc_metrics) * (size_t)ds->H);
    if (!q || !k || !per_head) {
        free(q); free(k); free(per_head);
        fprintf(stderr, "rk-accuracy: out of memory\n");
        return -1;
    }
    int rc = 0;
    for (int seq = 0; seq < ds->S && rc == 0; seq++)
        for (int l = 0; l < ds->L && rc == 0; l++) {
            size_t at = (size_t)seq * ds->L + l;
            memcpy(q, ds->q + at * nqk, sizeof(float) * nqk);
            memcpy(k, ds->k + at * nqk, sizeof(float) * nqk);
            if (cfg->rope_base > 0) {
                acc_apply_rope(q, ds->H, ds->T, d, cfg->rope_base);
                acc_apply_rope(k, ds->H, ds->T, d, cfg->rope_base);
            }
            acc_layer L = {ds->H, ds->T, d, ds->dv, q, k, ds->v + at * nv};
            acc_reference ref;
            if (acc_reference_init(&ref, &L) != 0) {
                fprintf(stderr, "rk-accuracy: out of memory\n");
                rc = -1;
                break;
            }
            for (int p = 0; p < s->n_points && rc == 0; p++) {
                acc_point *pt = &s->points[p];
                char err[1024];
                rk_status st = acc_run(opt, &L, &ref, pt->method, pt->rank, pt->keep, per_head,
                                       NULL, err, sizeof err);
                if (st != RK_OK) {
                    fprintf(stderr, "rk-accuracy: sequence %d layer %d: %s\n", seq, l, err);
                    rc = -1;
                    break;
                }
                for (int h = 0; h < ds->H; h++) {
                    acc_metrics *dst = &pt->m[(size_t)l * ds->H + h], *src = &per_head[h];
                    dst->rel_err += src->rel_err / ds->S;
                    dst->kl += src->kl / ds->S;
                    dst->topk += src->topk / ds->S;
                    dst->dropped_mass += src->dropped_mass / ds->S;
                    if (src->lib_host_diff > dst->lib_host_diff) dst->lib_host_diff = src->lib_host_diff;
                }
            }
            acc_reference_free(&ref);
            if (l + 1 == ds->L) fprintf(stderr, "rk-accuracy: sequence %d/%d done\n", seq + 1, ds->S);
        }
    free(q);
    free(k);
    free(per_head);
    return rc;
}

void acc_study_free(acc_study *s) {
    for (int p = 0; p < s->n_points; p++) free(s->points[p].m);
    s->n_points = 0;
}

static double acc_field_of(const acc_metrics *m, acc_field f) {
    switch (f) {
    case ACC_REL_ERR: return m->rel_err;
    case ACC_KL: return m->kl;
    case ACC_TOPK: return m->topk;
    case ACC_DROPPED: return m->dropped_mass;
    case ACC_LIB_GAP: return m->lib_host_diff;
    }
    return NAN;
}

double acc_point_mean(const acc_study *s, const acc_point *p, acc_field f, int layer) {
    double sum = 0;
    int n = 0;
    for (int l = 0; l < s->ds.L; l++) {
        if (layer >= 0 && l != layer) continue;
        for (int h = 0; h < s->ds.H; h++) {
            double x = acc_field_of(&p->m[(size_t)l * s->ds.H + h], f);
            if (isnan(x)) continue;
            sum += x;
            n++;
        }
    }
    return n ? sum / n : NAN;
}

const acc_point *acc_study_find(const acc_study *s, acc_method m, double key_ratio, double budget) {
    for (int i = 0; i < s->n_points; i++) {
        const acc_point *p = &s->points[i];
        if (p->method != m) continue;
        if (acc_method_drops_tokens(m) ? fabs(p->budget - budget) < 1e-9
                                       : (m == ACC_DENSE || fabs(p->key_ratio - key_ratio) < 0.02))
            return p;
    }
    return NULL;
}
