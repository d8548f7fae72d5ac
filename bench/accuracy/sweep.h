/* The whole study over a data set: every method at every Key ratio, token-only vs joint pruning
 * at every KV budget, per layer and head, averaged over the data set's sequences. */
#ifndef RK_ACC_SWEEP_H
#define RK_ACC_SWEEP_H

#include "npy.h"
#include "study.h"

#include <stdio.h>

#define ACC_MAX_POINTS 16

typedef struct acc_study_config {
    const char *name, *data_dir, *command, *backend;
    double rope_base; /* 0 = none */
    double ratios[ACC_MAX_POINTS];
    int n_ratios;
    double budgets[ACC_MAX_POINTS];
    int n_budgets;
    int use[ACC_METHOD_COUNT]; /* channel methods to run */
} acc_study_config;
void acc_study_config_init(acc_study_config *c);

/* Views into loaded arrays [S][L][H][T][d]. */
typedef struct acc_dataset {
    int S, L, H, T, d, dv;
    const float *q, *k, *v;
} acc_dataset;
int acc_dataset_view(const acc_npy *q, const acc_npy *k, const acc_npy *v, int max_seqs,
                     acc_dataset *ds);

typedef struct acc_point {
    acc_method method;
    double key_ratio;  /* Key channels kept / d (1 when Keys stay full width) */
    double budget;     /* the KV budget this point was matched to (token study), else 0 */
    int rank, keep;    /* channels per head, span tokens kept */
    double kv_bytes;   /* span KV bytes / dense span KV bytes */
    acc_metrics *m;    /* [L][H], averaged over sequences */
} acc_point;

typedef struct acc_study {
    acc_study_config cfg;
    acc_options opt;
    acc_dataset ds;
    int span_len;
    int n_points;
    acc_point points[ACC_METHOD_COUNT * ACC_MAX_POINTS + 1];
} acc_study;

/* 0 on success; messages go to stderr. */
int acc_study_run(const acc_study_config *cfg, const acc_options *opt, const acc_dataset *ds,
                  acc_study *out);
void acc_study_free(acc_study *s);

/* Mean of one metric over the layers (all when layer < 0) and heads of a point; NaN values
 * are skipped (NaN if all are). */
typedef enum acc_field { ACC_REL_ERR, ACC_KL, ACC_TOPK, ACC_DROPPED, ACC_LIB_GAP } acc_field;
double acc_point_mean(const acc_study *s, const acc_point *p, acc_field f, int layer);
/* The point of a method at a Key ratio (channel study) or budget (token study); NULL if absent. */
const acc_point *acc_study_find(const acc_study *s, acc_method m, double key_ratio, double budget);

void acc_report_markdown(const acc_study *s, FILE *out);
void acc_report_json(const acc_study *s, FILE *out);

#endif
