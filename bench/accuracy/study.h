/* The accuracy study's engine: one method on one layer's Queries, Keys and Values, scored
 * against dense attention. Every attention output scored here comes from the library's decode
 * (rk_decode_sparse / rk_decode_dense / rk_decode_spark); the attention weights behind the KL
 * and top-k metrics are rebuilt on the host from what the library stored (k̂ = k̃ Rᵀ + δμ, or the
 * SparK values), and that rebuild is checked against the library's output (lib_host_diff).
 *
 * Encoder use: every query position of a layer is scored as one decode query over all the
 * layer's keys. The T queries of KV head h ride as the T query heads of one GQA group
 * (q [1][H·T][1][d]), so one decode call serves a whole layer. */
#ifndef RK_ACC_STUDY_H
#define RK_ACC_STUDY_H

#include "rotatek.h"

typedef enum acc_method {
    ACC_DENSE = 0,          /* dense decode: the storage dtype's rounding alone */
    ACC_ROTATEK_QW,         /* RotateK, query-weighted PCA, exact solver */
    ACC_ROTATEK_QW_FAST,    /* RotateK, query-weighted PCA, subspace solver */
    ACC_ROTATEK_PLAIN,      /* RotateK, plain PCA, exact solver */
    ACC_ROTATEK_PLAIN_FAST, /* RotateK, plain PCA, subspace solver */
    ACC_THINK,              /* head-wise channel selection, no rotation */
    ACC_SPARK,              /* token-wise unstructured channels + per-token fill */
    ACC_RANDOM,             /* random orthogonal rotation + head-wise mask (ablation) */
    ACC_TOKENS_ONLY,        /* SnapKV-style token selection, full Keys */
    ACC_TOKENS_JOINT,       /* SnapKV-style token selection + RotateK (q-weighted) Keys */
    ACC_METHOD_COUNT
} acc_method;

const char *acc_method_name(acc_method m);  /* "rotatek-qw", "think", ... */
int acc_method_from_name(const char *name); /* -1 if unknown */
int acc_method_drops_tokens(acc_method m);
int acc_method_prunes_channels(acc_method m);

/* One (sequence, layer): q, k [H][T][d], v [H][T][dv], host float32. */
typedef struct acc_layer {
    int H, T, d, dv;
    const float *q, *k, *v;
} acc_layer;

typedef struct acc_options {
    rk_context *ctx;
    rk_dtype dtype;     /* storage of Q, K, V and the caches */
    int span_begin;     /* pruned span = tokens [span_begin, T - span_tail) */
    int span_tail;
    int topk;           /* k of the top-k overlap */
    int window;         /* observation window: the last `window` queries (0 = all) */
    int pool;           /* SnapKV max-pool kernel over token scores (odd, 1 = none) */
    int joint_rank;     /* Key channels kept by ACC_TOKENS_JOINT */
} acc_options;
void acc_options_init(acc_options *o, rk_context *ctx);

/* Dense attention of a layer in double: p [H][T][T], out [H][T][dv]. */
typedef struct acc_reference {
    double *p, *out;
} acc_reference;
int acc_reference_init(acc_reference *ref, const acc_layer *L);
void acc_reference_free(acc_reference *ref);

/* Per head, averaged over the layer's T queries. kl is NaN for methods that drop tokens
 * (the dense distribution has mass where theirs has none): dropped_mass tells that story. */
typedef struct acc_metrics {
    double rel_err;       /* ||o - o_dense|| / ||o_dense|| of the library's output */
    double kl;            /* KL(p_dense || p_method) */
    double topk;          /* |topk(p_dense) ∩ topk(p_method)| / k */
    double dropped_mass;  /* dense attention mass on dropped tokens */
    double lib_host_diff; /* max relative gap: library output vs host rebuild from its caches */
} acc_metrics;

/* One method on one layer. rank: Key channels kept per head (channel methods; ignored by
 * ACC_DENSE and ACC_TOKENS_ONLY); keep: span tokens kept (token methods). per_head [H] out
 * (NULL: no metrics); lib_out [H][T][dv] receives the library's attention output (may be NULL).
 * ref may be NULL only when per_head is NULL and the method keeps every token. On failure
 * returns the status and writes the library's message into err. */
rk_status acc_run(const acc_options *o, const acc_layer *L, const acc_reference *ref,
                  acc_method m, int rank, int keep, acc_metrics *per_head, float *lib_out,
                  char *err, int err_len);

/* Cache bytes of the span (Keys + Values) relative to the dense cache, per span token, as the
 * library lays them out (storage dtype es bytes; SparK indices int32, fill f32). The per-head
 * basis (d·r + d floats) is not included: it is amortised over the span. */
double acc_kv_bytes_fraction(acc_method m, int d, int dv, int rank, int keep, int span_len,
                             int es);

/* RoPE (rotate-half pairs (i, i + d/2), θ_i = base^(-2i/d), position = token index) applied
 * in place to x [H][T][d]. */
void acc_apply_rope(float *x, int H, int T, int d, double base);

#endif
