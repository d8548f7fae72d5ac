/* The private backend interface: one function table per backend (backends/<name>/).
 *
 * The core validates every argument before calling in (shapes, dtypes, ranges, contexts), so a
 * backend may assume its inputs are consistent. Backends report runtime failures with rk_fail(),
 * which records the message on the context. Entries marked OPTIONAL may be NULL: the core then
 * answers RK_ERR_UNSUPPORTED (ops) or supplies a default (noted per entry). */
#ifndef RK_CORE_BACKEND_H
#define RK_CORE_BACKEND_H

#include "rotatek.h"

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RK_ERRMSG_LEN 1024

struct rk_context {
    const struct rk_backend_iface *be;
    void *impl;           /* the backend's per-context state */
    size_t device_index;
    int n_threads;        /* resolved (>= 1) */
    int check_finite;
    char last_error[RK_ERRMSG_LEN];
};

struct rk_buffer {
    rk_context *ctx;
    void *handle;         /* backend handle: host pointer (cpu), cl_mem, device pointer, ... */
    size_t size;
};

/* Record a formatted message on ctx (may be NULL) and return status. */
rk_status rk_fail(rk_context *ctx, rk_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Timing helpers for the probe and backend diagnostics (core/probe.c): a monotonic clock in
 * seconds, and the median (upper of the middle two) of n >= 1 values, which it sorts in place. */
double rk_now_seconds(void);
double rk_median_inplace(double *v, size_t n);

/* Byte offset of element (b, h, t, c) of a view. */
static inline size_t rk_tensor_offset(const rk_tensor *t, int64_t b, int64_t h, int64_t tok,
                                      int64_t c) {
    return t->offset + (size_t)(b * t->nb[0] + h * t->nb[1] + tok * t->nb[2] + c * t->nb[3]) *
                           rk_dtype_size(t->dtype);
}

/* ---- operation descriptors (validated by the core) ---------------------------------------- */

/* Per (b, h): the chunk's mean and centered scatter Σ (k-m)(k-m)ᵀ over its valid rows. The core
 * merges chunks (Chan et al.) in double, so no uncentered sums cancel. */
typedef struct rk_op_moments {
    const rk_tensor *keys;    /* [B][H][T][d] */
    const int32_t *n_tokens;  /* host, B entries (already resolved, never NULL) */
    int B, H, d;
    double *mean;             /* host out [B][H][d] */
    double *scatter;          /* host out [B][H][d][d], full symmetric */
    /* OPTIONAL out (may be NULL; left as set by the core when the backend ignores it): nonzero
     * when the backend keeps a device copy of exactly these moments, an id for
     * rk_op_rotation_fit.moments_id (valid until its next moments op) */
    uint64_t *device_id;
} rk_op_moments;

/* kcache[b][h][off + t][:] = keys[b][h][t][:] · R[b][h]. */
typedef struct rk_op_compress {
    const rk_tensor *keys;    /* [B][H][T][d] */
    rk_tensor *kcache;        /* [B][H][Tcap][r] */
    const rk_buffer *R;       /* device f32 [B][H][d][r] */
    int64_t token_offset;
    int B, H, T, d, r;
} rk_op_compress;

/* Sparse (rot != NULL) or dense decode; see rotatek.h for the math. */
typedef struct rk_op_decode {
    int sparse;
    int B, Hq, Hkv, d, dv, r; /* r = 0 when dense */
    const rk_tensor *q, *k_full, *k_span, *v;
    rk_tensor *out, *lse;     /* lse may be NULL */
    const rk_buffer *R;       /* device f32 [B][Hkv][d][r] (sparse) */
    const rk_buffer *dmu;     /* device f32 [B][Hkv][d]    (sparse) */
    const rk_seq_info *seqs;  /* host, B entries; dense: span_len treated as 0 */
    int max_seq_len;          /* max over seqs of seq_len */
    float scale;              /* resolved (never 0) */
    int n_split;              /* 0 = backend chooses; >0 = requested (tests force combines) */
} rk_op_decode;

typedef struct rk_op_spark_compress {
    const rk_tensor *keys;    /* [B][H][T][d] */
    rk_tensor *values, *indices, *fill;
    const double *qnorm;      /* host [B][H][d]: channel RMS of the group's observed queries */
    int64_t token_offset;
    int B, H, T, d, r;
} rk_op_spark_compress;

typedef struct rk_op_spark_decode {
    rk_op_decode base;        /* base.k_span unused */
    const rk_tensor *values, *indices, *fill;
} rk_op_spark_decode;

/* Batched top-r symmetric eigen-subspace: C [n][d][d] (row-major, symmetric, f64 host) ->
 * V [n][d][r] f64 host, orthonormal columns spanning the dominant subspace (order/sign are
 * fixed afterwards by the core's Rayleigh-Ritz step). */
typedef struct rk_op_subspace {
    const double *C;
    double *V;
    int n, d, r, iters;
    uint64_t seed;
} rk_op_subspace;

/* The whole RK_SOLVER_SUBSPACE fit of n heads on the device: from the start
 * rk_pca_random_start(seeds[k], d, p), `iters` rounds of C·V + CholeskyQR2, then Rayleigh-Ritz.
 * R [n][d][r] out: Ritz vectors sorted by descending Ritz value, sign convention applied (as
 * rk_pca_subspace); evals [n][r] the Ritz values. Fit k's covariance is rk_pca_weight's
 *   C_ij = (S_ij · scale[k]) · (w_i · w_j) + add[k] δ_ij,   S = S_all + heads[k] · d²,  w = w_all + k · d
 * (the backend forms it: the core sends the moments, not a weighted copy). moments_id: nonzero
 * when S_all is also on the device, left by the moments op that answered this id (the backend
 * then reads it there instead of uploading S). All arrays host, f64. RK_ERR_UNSUPPORTED: past
 * the device path (the core then fits on the host). */
typedef struct rk_op_rotation_fit {
    const double *S;
    uint64_t moments_id;
    const int *heads;
    const double *w, *scale, *add;
    const uint64_t *seeds;
    double *R, *evals;
    int n, d, r, p, iters;
} rk_op_rotation_fit;

/* Per (b, query head): Σ q² per channel over the first n_tokens[b] rows of the window, in f64.
 * A NaN or Inf in the rows makes its sums non-finite (the core checks the sums). */
typedef struct rk_op_qsumsq {
    const rk_tensor *queries; /* [B][Hq][W][d] */
    const int32_t *n_tokens;  /* host, B entries (already resolved, never NULL) */
    int B, Hq, d;
    double *sumsq;            /* host out [B][Hq][d] */
} rk_op_qsumsq;

typedef struct rk_backend_iface {
    const char *name;

    /* devices: count returns RK_ERR_BACKEND_UNAVAILABLE with *count = 0 when no runtime/device */
    rk_status (*device_count)(size_t *count);
    rk_status (*device_name)(size_t index, char *buf, size_t buf_len);

    /* context: init stores its state in ctx->impl; free releases everything */
    rk_status (*context_init)(rk_context *ctx);
    void (*context_free)(rk_context *ctx);
    rk_status (*synchronize)(rk_context *ctx);

    /* memory: handles are opaque to the core */
    rk_status (*buffer_alloc)(rk_context *ctx, size_t bytes, void **handle);
    void (*buffer_free)(rk_context *ctx, void *handle);
    rk_status (*buffer_upload)(rk_context *ctx, void *handle, size_t offset, const void *src,
                               size_t bytes);
    rk_status (*buffer_download)(rk_context *ctx, void *handle, size_t offset, void *dst,
                                 size_t bytes);

    /* operations */
    rk_status (*moments)(rk_context *ctx, const rk_op_moments *op);
    rk_status (*compress)(rk_context *ctx, const rk_op_compress *op);
    rk_status (*decode)(rk_context *ctx, const rk_op_decode *op);
    /* OPTIONAL: default is the core's host implementation (core/pca.c) */
    rk_status (*subspace)(rk_context *ctx, const rk_op_subspace *op);
    /* OPTIONAL: read every byte of a buffer once and reduce it to a value the device keeps (so
     * nothing is optimized away); rk_measure_read_bandwidth times it to give benchmarks the
     * device's achievable read bandwidth. */
    rk_status (*read_probe)(rk_context *ctx, void *handle, size_t bytes);
    /* OPTIONAL: baselines */
    rk_status (*spark_compress)(rk_context *ctx, const rk_op_spark_compress *op);
    rk_status (*spark_decode)(rk_context *ctx, const rk_op_spark_decode *op);
    /* OPTIONAL: RK_SOLVER_SUBSPACE fits on the device (default: core/pca.c on the host) */
    rk_status (*rotation_fit)(rk_context *ctx, const rk_op_rotation_fit *op);
    /* OPTIONAL: the observation window's sums on the device (default: download the queries) */
    rk_status (*qsumsq)(rk_context *ctx, const rk_op_qsumsq *op);
} rk_backend_iface;

/* Backends compiled in (core/registry.c). Each backend folder defines one of these. */
extern const rk_backend_iface rk_backend_cpu;
extern const rk_backend_iface rk_backend_opencl;
extern const rk_backend_iface rk_backend_vulkan;
extern const rk_backend_iface rk_backend_cuda;
extern const rk_backend_iface rk_backend_hip;

#ifdef __cplusplus
}
#endif
#endif /* RK_CORE_BACKEND_H */
