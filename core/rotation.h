/* The rotation state of one layer (see rotatek.h, rk_rotation_*). */
#ifndef RK_CORE_ROTATION_H
#define RK_CORE_ROTATION_H
#include "backend.h"

struct rk_rotation {
    rk_context *ctx;
    rk_rotation_config cfg;
    int n_heads;          /* n_seq * n_kv_heads */
    /* span key moments per head, merged across chunks in double */
    int64_t *count;       /* [n_heads] */
    double *mean;         /* [n_heads][d] */
    double *scatter;      /* [n_heads][d][d]: Σ (k - mean)(k - mean)ᵀ */
    uint64_t moments_id;  /* nonzero: the backend holds a device copy of these (rk_op_moments) */
    /* observation window: Σ q² per channel over the window and the group's query heads */
    int64_t *q_count;     /* [n_heads] */
    double *q_sumsq;      /* [n_heads][d] */
    /* result */
    int final;
    float *R;             /* host [n_heads][d][rank] */
    float *dmu;           /* host [n_heads][d] */
    int32_t *ranks;       /* [n_heads] */
    double *spectrum;     /* [n_heads][d], descending; zeros past what the solver found */
    rk_buffer *R_dev, *dmu_dev;
};

/* qms [d]: the mean of q² per channel of head (b, g); NULL if no query was observed. */
const double *rk_rotation_qms(const rk_rotation *rot, int head, double *scratch);

#endif
