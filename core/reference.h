/* The double-precision reference: the single source of truth for every kernel's math.
 * Tests, rk-conformance and the vector generator compare against these functions; backends
 * never call them. Arrays are dense, row-major, in the layouts named per argument. */
#ifndef RK_CORE_REFERENCE_H
#define RK_CORE_REFERENCE_H

#include "rotatek.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Mean [d] and population covariance [d][d] of keys [T][d]. */
void rk_ref_moments(const double *keys, int T, int d, double *mean, double *cov);

/* out [T][r] = keys [T][d] · R [d][r]. */
void rk_ref_compress(const double *keys, const double *R, int T, int d, int r, double *out);

/* Sparse decode of one (sequence, query head). q [d]; k_full [seq_len - span_len][d] compacted;
 * k_span [span_len][r]; R [d][r]; dmu [d]; v [seq_len][dv] in position order. Writes out [dv]
 * and *lse (natural log of the sum of exp(logits)). With span_len = 0 it is the dense decode and
 * k_span, R, dmu may be NULL. */
void rk_ref_decode_head(const double *q, const double *k_full, const double *k_span,
                        const double *R, const double *dmu, const double *v, int d, int r, int dv,
                        rk_seq_info s, double scale, double *out, double *lse);

/* SparK-style: keep the r channels of key k [d] with the largest qnorm_c * k_c^2 (ties: lower
 * channel first); vals/idx [r] in ascending channel order; fill = mean of the d - r dropped
 * values (0 when r == d). */
void rk_ref_spark_token(const double *k, const double *qnorm, int d, int r, double *vals,
                        int32_t *idx, double *fill);

/* SparK decode of one (sequence, query head): the span keys are rebuilt from vals/idx/fill
 * ([span_len][r], [span_len][r], [span_len]) and scored at full width. */
void rk_ref_decode_spark_head(const double *q, const double *k_full, const double *vals,
                              const int32_t *idx, const double *fill, const double *v, int d,
                              int r, int dv, rk_seq_info s, double scale, double *out,
                              double *lse);

/* Whole-batch wrappers over dense [B][H][T][C] float tensors, as stored in test vectors.
 * Tf/Ts/T are the token capacities (extents) of k_full, k_span and v. dense != 0 ignores the
 * span (k_full then holds all seq_len tokens). out [B][Hq][dv], lse [B][Hq]. */
typedef struct rk_ref_batch {
    int B, Hq, Hkv, d, dv, r;
    int Tf, Ts, T;
    const float *q, *k_full, *k_span, *v; /* k_span may be NULL when dense */
    const float *R, *dmu;                 /* [B][Hkv][d][r], [B][Hkv][d] */
    const rk_seq_info *seqs;
    double scale;                         /* 0 = 1/sqrt(d) */
} rk_ref_batch;
void rk_ref_decode_batch(const rk_ref_batch *in, int dense, double *out, double *lse);

#ifdef __cplusplus
}
#endif
#endif
