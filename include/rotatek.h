/*
 * RotateK — rotation-aligned Key channel pruning and sparse-channel decode attention.
 *
 * Public C API. Conventions:
 *  - every public name starts with rk_ / RK_;
 *  - every call returns an rk_status (RK_OK == 0); rk_status_string() names it and
 *    rk_context_last_error() gives the detailed message of the last failing call on a context;
 *  - handles are opaque, created and destroyed in pairs; destroy/free functions accept NULL;
 *  - no global mutable state: two contexts may be used from two threads at once. One context
 *    must not be used from two threads at the same time.
 *
 * Tensor layout (see rk_tensor): four logical dims [batch][heads][tokens][channels], channels
 * contiguous, the other three strides free (so [b][h][t][c] and token-major [b][t][h][c] are both
 * views). Keys and Queries have head dim d, Values dv (independent), pruned Keys r.
 *
 * Sparse decode, per sequence b and query head h (KV head g = h / (Hq/Hkv)):
 *   logit(span token i)  = ((q·R_bg)·k̃_i + q·δμ_bg) * scale      i in [0, span_len)
 *   logit(other token j) =  (q·k_j) * scale                         j in [0, seq_len - span_len)
 *   out = softmax(logits) · V  (V holds all seq_len tokens in position order)
 * with scale = 1/sqrt(d) by default, k̃ = k·R (uncentered), δμ = μ(I - R Rᵀ).
 * k_full holds the tokens outside the span compacted in position order: the token at position p
 * is row p if p < span_begin, row p - span_len otherwise.
 */
#ifndef ROTATEK_H
#define ROTATEK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(RK_SHARED_BUILD)
#define RK_API __declspec(dllexport)
#elif defined(__GNUC__)
#define RK_API __attribute__((visibility("default")))
#else
#define RK_API
#endif

/* ---- version ------------------------------------------------------------------------------ */
#define RK_VERSION_MAJOR 0
#define RK_VERSION_MINOR 1
#define RK_VERSION_PATCH 0
#define RK_VERSION_NUMBER (RK_VERSION_MAJOR * 10000 + RK_VERSION_MINOR * 100 + RK_VERSION_PATCH)
#define RK_VERSION_STRING "0.1.0"

/* Library version at run time; compare with RK_VERSION_NUMBER to catch header/library skew. */
RK_API unsigned rk_version(void);
RK_API const char *rk_version_string(void);

/* ---- status ------------------------------------------------------------------------------- */
/* X-macro table: one source for the enum, the names and the sentences. Grouped by range:
 * 1xx caller errors, 2xx unsupported/unavailable, 3xx backend and runtime failures. */
#define RK_STATUS_TABLE(X)                                                                       \
    X(RK_OK, 0, "success")                                                                       \
    X(RK_ERR_NULL_ARG, 100, "a required pointer argument is NULL")                               \
    X(RK_ERR_INVALID_ARG, 101, "an argument has an invalid value")                               \
    X(RK_ERR_INVALID_RANK, 102, "rank r must satisfy 0 < r <= head dim")                         \
    X(RK_ERR_HEAD_MISMATCH, 103, "query heads must be a positive multiple of KV heads")          \
    X(RK_ERR_SHAPE_MISMATCH, 104, "tensor shapes do not agree")                                  \
    X(RK_ERR_DTYPE_MISMATCH, 105, "tensor dtypes do not agree or are not allowed here")          \
    X(RK_ERR_OUT_OF_RANGE, 106, "a length or offset exceeds the capacity of its tensor/buffer")  \
    X(RK_ERR_NON_FINITE, 107, "an input contains NaN or infinity")                               \
    X(RK_ERR_BAD_STATE, 108, "the object is not in the state this call needs")                   \
    X(RK_ERR_BAD_LAYOUT, 109, "tensor layout not supported (channels must be contiguous)")       \
    X(RK_ERR_WRONG_CONTEXT, 110, "objects belong to different contexts")                         \
    X(RK_ERR_UNSUPPORTED, 200, "operation not supported by this backend")                        \
    X(RK_ERR_BACKEND_NOT_BUILT, 201, "backend not compiled into this library")                   \
    X(RK_ERR_BACKEND_UNAVAILABLE, 202, "backend compiled in but no usable device/runtime found") \
    X(RK_ERR_DEVICE_NOT_FOUND, 203, "no device with that index")                                 \
    X(RK_ERR_OUT_OF_MEMORY, 300, "memory allocation failed")                                     \
    X(RK_ERR_BACKEND_FAILURE, 301, "the backend runtime reported an error")                      \
    X(RK_ERR_KERNEL_BUILD, 302, "a device kernel failed to compile")                             \
    X(RK_ERR_NUMERICAL, 303, "a numerical routine failed to converge")

typedef enum rk_status {
#define RK_X_ENUM(name, value, text) name = value,
    RK_STATUS_TABLE(RK_X_ENUM)
#undef RK_X_ENUM
} rk_status;

/* Short name ("RK_ERR_NULL_ARG") and one sentence; never NULL, also for unknown values. */
RK_API const char *rk_status_name(rk_status s);
RK_API const char *rk_status_string(rk_status s);

/* ---- dtypes and tensors ------------------------------------------------------------------- */
/* Storage types. Arithmetic is f32 (device backends) or f64 (reference) whatever the storage.
 * RK_I32 is only for index tensors (SparK baseline). */
typedef enum rk_dtype { RK_F32 = 0, RK_F16 = 1, RK_BF16 = 2, RK_I32 = 3 } rk_dtype;
RK_API size_t rk_dtype_size(rk_dtype t);   /* 0 for an unknown dtype */
RK_API const char *rk_dtype_name(rk_dtype t);

typedef struct rk_context rk_context;
typedef struct rk_buffer rk_buffer;
typedef struct rk_rotation rk_rotation;

/* A view into a device buffer. ne = extents [batch][heads][tokens][channels]; nb = strides in
 * elements for the same dims; nb[3] must be 1. offset is in bytes from the buffer's start. */
typedef struct rk_tensor {
    rk_buffer *buf;
    size_t offset;
    rk_dtype dtype;
    int64_t ne[4];
    int64_t nb[4];
} rk_tensor;

typedef enum rk_layout {
    RK_LAYOUT_BHTC = 0, /* [batch][heads][tokens][channels] */
    RK_LAYOUT_BTHC = 1  /* token-major: [batch][tokens][heads][channels] */
} rk_layout;

/* Fill a dense tensor view of the given layout. Checks the extents are positive. */
RK_API rk_status rk_tensor_init(rk_tensor *t, rk_buffer *buf, size_t offset, rk_dtype dtype,
                                int64_t batch, int64_t heads, int64_t tokens, int64_t channels,
                                rk_layout layout);
/* Bytes spanned by a view, from its first to one past its last element. */
RK_API rk_status rk_tensor_span_bytes(const rk_tensor *t, size_t *bytes);

/* ---- backends, devices, contexts ---------------------------------------------------------- */
/* Backends compiled in, by index (order: cpu, opencl, vulkan, cuda, hip). */
RK_API size_t rk_backend_count(void);
RK_API const char *rk_backend_name(size_t index); /* NULL past the end */
/* Number of usable devices of a backend. RK_ERR_BACKEND_NOT_BUILT if not compiled in;
 * RK_ERR_BACKEND_UNAVAILABLE (with *count = 0) if compiled in but no runtime/device exists. */
RK_API rk_status rk_device_count(const char *backend, size_t *count);
RK_API rk_status rk_device_name(const char *backend, size_t index, char *buf, size_t buf_len);

typedef struct rk_context_options {
    uint32_t struct_size; /* sizeof(rk_context_options): lets the struct grow compatibly */
    int n_threads;        /* CPU backend worker threads; 0 = all cores */
    int check_finite;     /* 1 (default): scan outputs and report RK_ERR_NON_FINITE when inputs
                             carried NaN/Inf. 0: skip the scan (no host sync; benchmarks). */
} rk_context_options;
RK_API void rk_context_options_init(rk_context_options *o);

RK_API rk_status rk_context_create(const char *backend, size_t device_index,
                                   const rk_context_options *opts /* NULL = defaults */,
                                   rk_context **out);
RK_API void rk_context_destroy(rk_context *ctx);
/* Detailed message of the last failing call made with this context ("" if none). */
RK_API const char *rk_context_last_error(const rk_context *ctx);
RK_API const char *rk_context_backend(const rk_context *ctx);
RK_API rk_status rk_context_device_description(const rk_context *ctx, char *buf, size_t buf_len);
/* Waits for all work queued on the context. Operations may be asynchronous until this or a
 * download returns. */
RK_API rk_status rk_context_synchronize(rk_context *ctx);

/* ---- buffers (device memory owned by the library) ----------------------------------------- */
RK_API rk_status rk_buffer_alloc(rk_context *ctx, size_t bytes, rk_buffer **out);
RK_API void rk_buffer_free(rk_buffer *buf);
RK_API size_t rk_buffer_size(const rk_buffer *buf);
RK_API rk_status rk_buffer_upload(rk_buffer *buf, size_t offset, const void *src, size_t bytes);
RK_API rk_status rk_buffer_download(const rk_buffer *buf, size_t offset, void *dst, size_t bytes);
/* Convert host floats into a dtype (round to nearest even) and back; count elements. */
RK_API rk_status rk_convert_from_f32(rk_dtype dst_type, void *dst, const float *src, size_t count);
RK_API rk_status rk_convert_to_f32(rk_dtype src_type, float *dst, const void *src, size_t count);

/* ---- rotation state (one layer; per sequence and KV head) --------------------------------- */
typedef enum rk_method {
    RK_METHOD_PCA_QWEIGHTED = 0, /* the method: covariance weighted by query channel norms */
    RK_METHOD_PCA_PLAIN = 1,     /* unweighted PCA */
    RK_METHOD_THINK = 2,         /* no rotation: keep the r channels with largest mean(Q²)·mean(K²) */
    RK_METHOD_RANDOM = 3         /* ablation: random orthogonal basis (seeded), same mean correction */
} rk_method;

typedef enum rk_solver {
    RK_SOLVER_EXACT = 0,   /* LAPACKE dsyevd on the host: the reference */
    RK_SOLVER_SUBSPACE = 1 /* top-r subspace iteration with Cholesky-QR; device backends may run it */
} rk_solver;

typedef struct rk_rotation_config {
    uint32_t struct_size; /* sizeof(rk_rotation_config) */
    int n_seq;            /* sequences in the batch */
    int n_kv_heads;
    int n_q_heads;        /* multiple of n_kv_heads */
    int head_dim;         /* d */
    int rank;             /* r kept per head (uniform); also the storage width of pruned Keys */
    int budget;           /* 0: every head keeps `rank`. >0: total channels over the heads of one
                             sequence, spread by spectra, each head <= rank, stored width rank with
                             unused columns of R zero */
    int rank_multiple;    /* per-head ranks under a budget are rounded to this (default 8) */
    rk_method method;
    rk_solver solver;
    int subspace_iters;   /* iterations of the subspace solver (default 6) */
    double ridge;         /* added to the diagonal as ridge * trace/d (default 1e-6) */
    double qnorm_floor;   /* query channel norms floored at this fraction of their median (0.05) */
    uint64_t seed;        /* RK_METHOD_RANDOM and the subspace solver's start (default 0x5eed) */
} rk_rotation_config;
RK_API void rk_rotation_config_init(rk_rotation_config *cfg); /* defaults: d 128, r 32 */

RK_API rk_status rk_rotation_create(rk_context *ctx, const rk_rotation_config *cfg,
                                    rk_rotation **out);
RK_API void rk_rotation_destroy(rk_rotation *rot);
/* Add a chunk of the pruned span's post-RoPE Keys: keys [n_seq][n_kv_heads][T][d]. n_tokens
 * (may be NULL = T for all) gives per sequence how many of the T rows are valid. Repeatable. */
RK_API rk_status rk_rotation_accumulate(rk_rotation *rot, const rk_tensor *keys,
                                        const int32_t *n_tokens);
/* Add the observation window's queries: q [n_seq][n_q_heads][W][d] (the last 32 prefill queries
 * by default). Repeatable; query channel mean squares are averaged over the GQA group. */
RK_API rk_status rk_rotation_observe(rk_rotation *rot, const rk_tensor *queries,
                                     const int32_t *n_tokens);
/* Compute R (d×rank, orthonormal columns sorted by eigenvalue, each column's largest-magnitude
 * entry positive) and δμ for every (sequence, KV head). */
RK_API rk_status rk_rotation_finalize(rk_rotation *rot);
/* Host copies: R as [n_seq][n_kv_heads][d][rank] f32, δμ as [n_seq][n_kv_heads][d] f32,
 * ranks as [n_seq][n_kv_heads], eigenvalues [n_seq][n_kv_heads][d] descending (double). */
RK_API rk_status rk_rotation_get_basis(const rk_rotation *rot, float *R, float *dmu);
RK_API rk_status rk_rotation_get_ranks(const rk_rotation *rot, int32_t *ranks);
RK_API rk_status rk_rotation_get_spectrum(const rk_rotation *rot, double *eigenvalues);
/* Span statistics after accumulate: mean [n_seq][n_kv][d], covariance [n_seq][n_kv][d][d]. */
RK_API rk_status rk_rotation_get_moments(const rk_rotation *rot, double *mean, double *cov);
/* Install a basis computed elsewhere (same layouts as get_basis); marks the rotation final. */
RK_API rk_status rk_rotation_set_basis(rk_rotation *rot, const float *R, const float *dmu);

/* ---- compress and decode ------------------------------------------------------------------ */
/* Write keys·R (uncentered) of keys [n_seq][n_kv][T][d] into kcache [n_seq][n_kv][Tcap][rank]
 * at token rows [token_offset, token_offset+T). Same dtype for both. */
RK_API rk_status rk_compress(rk_context *ctx, const rk_rotation *rot, const rk_tensor *keys,
                             rk_tensor *kcache, int64_t token_offset);

/* Per sequence: tokens in the cache, and where the pruned span sits among them. */
typedef struct rk_seq_info {
    int32_t seq_len;    /* all tokens of the sequence (span included) */
    int32_t span_begin; /* position of the first pruned token */
    int32_t span_len;   /* pruned tokens; 0 = none */
} rk_seq_info;

typedef struct rk_decode_args {
    uint32_t struct_size;    /* sizeof(rk_decode_args) */
    const rk_tensor *q;      /* [B][Hq][1][d] */
    const rk_tensor *k_full; /* [B][Hkv][Tf][d]: tokens outside the span, compacted */
    const rk_tensor *k_span; /* [B][Hkv][Ts][rank]: pruned Keys (sparse decode only) */
    const rk_tensor *v;      /* [B][Hkv][T][dv]: all tokens in position order */
    const rk_rotation *rot;  /* R, δμ (sparse decode only) */
    const rk_seq_info *seqs; /* host array of B entries */
    rk_tensor *out;          /* [B][Hq][1][dv] */
    rk_tensor *lse;          /* optional [B][Hq][1][1] f32: natural-log sum of exp(logits) */
    float scale;             /* 0 = 1/sqrt(d) */
    int n_split;             /* token splits; 0 = the backend chooses */
} rk_decode_args;
RK_API void rk_decode_args_init(rk_decode_args *a);

RK_API rk_status rk_decode_sparse(rk_context *ctx, const rk_decode_args *args);
/* Baseline: span_len ignored, every token read from k_full ([B][Hkv][T][d], position order). */
RK_API rk_status rk_decode_dense(rk_context *ctx, const rk_decode_args *args);

/* ---- token-wise unstructured baseline (SparK-style) --------------------------------------- */
/* Each span token keeps its own top-r channels by qnorm_c·k_c² (qnorm: channel RMS of rot's
 * observed queries), stored as values [B][Hkv][Tcap][r] (dtype of keys), indices
 * [B][Hkv][Tcap][r] (RK_I32, ascending channel order) and fill [B][Hkv][Tcap][1] (RK_F32): the
 * token's mean of its pruned values, which decode restores for every dropped channel. */
RK_API rk_status rk_spark_compress(rk_context *ctx, const rk_rotation *rot, const rk_tensor *keys,
                                   rk_tensor *values, rk_tensor *indices, rk_tensor *fill,
                                   int64_t token_offset);
/* As rk_decode_sparse with k_span replaced by the three SparK tensors; rot supplies nothing but
 * shapes. */
RK_API rk_status rk_decode_spark(rk_context *ctx, const rk_decode_args *args,
                                 const rk_tensor *values, const rk_tensor *indices,
                                 const rk_tensor *fill);

/* ---- diagnostics ---------------------------------------------------------------------------- */
/* Achievable read bandwidth of the context's device in GB/s (1e9 bytes/s): the median of `reps`
 * timed read-and-reduce passes over a library buffer of `bytes`. RK_ERR_UNSUPPORTED when the
 * backend has no probe. For benchmarks: compare achieved GB/s with this, measured in one run. */
RK_API rk_status rk_measure_read_bandwidth(rk_context *ctx, size_t bytes, int reps, double *gbps);

#ifdef __cplusplus
}
#endif
#endif /* ROTATEK_H */
