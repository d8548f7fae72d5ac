/* Internal state and helpers of the OpenCL backend (not installed, not part of the API). */
#ifndef RK_OCL_INTERNAL_H
#define RK_OCL_INTERNAL_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#ifdef __APPLE__
#include <OpenCL/opencl.h>
#else
#include <CL/cl.h>
#endif

#include "backend.h"

/* ---- per-device tuning (ocl_params.c) --------------------------------------------------------- */
typedef struct rk_ocl_params {
    const char *entry;     /* name of the table row that matched (reported by benchmarks) */
    int serial;            /* 1: decode walks contiguous token chunks per work-item (CPU) */
    int wg;                /* tiled decode: work-group size (power of two) */
    int kcp;               /* tiled decode: most work-items sharing one key row (power of two) */
    int passes;            /* tiled decode: key rows per work-item and tile */
    int vprefetch;         /* tiled decode: load a tile's values before scoring it (1) or after */
    int maxrreg;           /* NVIDIA only: -cl-nv-maxrregcount (0 = the compiler's choice) */
    int warp;              /* GPU decode: warp-private tiles with shuffles (NVIDIA, inline PTX) */
    int tile;              /* warp decode: tokens per warp tile (power of two) */
    int mma;               /* warp decode: P·V on tensor cores where the shape allows */
    int prefetch;          /* warp decode: next tile's loads issued before the current tile */
    int gh_max;            /* query heads one work-group serves */
    int groups_per_cu;     /* split policy: aim for this many work-groups per compute unit */
    int min_split_tokens;  /* split policy: never give a split fewer tokens than this */
    int max_split;         /* split policy: upper bound on splits */
    int seq_inline;        /* decode: batches up to this size (<= RK_OCL_SEQ_INLINE) pass their
                            * sequence table by value instead of uploading it */
    int groups_mma;        /* split policy: groups_per_cu for the tensor-core warp shape (0: same) */
} rk_ocl_params;

typedef struct rk_ocl_device_info {
    cl_platform_id platform;
    cl_device_id device;
    cl_device_type type;
    char name[256], vendor[256], version[256], driver[256], platform_name[256];
    cl_uint compute_units;
    size_t max_wg;
    cl_ulong local_mem, max_alloc, global_mem;
    int nv_compiler_options; /* cl_nv_compiler_options: -cl-nv-maxrregcount is accepted */
    int ptx;                 /* NVIDIA GPU: kernels may use inline PTX (warp shuffles) */
} rk_ocl_device_info;

/* Look up the parameter row for a device; RK_OPENCL_TUNE="wg=128,kcp=16,..." overrides fields. */
void rk_ocl_params_for(const rk_ocl_device_info *dev, rk_ocl_params *out);

/* ---- programs (ocl_program.c) ------------------------------------------------------------------ */
enum { RK_OCL_SRC_PREFILL, RK_OCL_SRC_DECODE, RK_OCL_SRC_COUNT };
#define RK_OCL_MAX_KERNELS 4

typedef struct rk_ocl_program {
    struct rk_ocl_program *next;
    int source;            /* RK_OCL_SRC_* */
    char *options;
    cl_program program;
    const char *kernel_names[RK_OCL_MAX_KERNELS];
    cl_kernel kernels[RK_OCL_MAX_KERNELS];
} rk_ocl_program;

/* ---- per-context state (ocl_context.c) ------------------------------------------------------- */
enum {
    RK_OCL_SCR_SEQS,     /* decode: int4 per sequence */
    RK_OCL_SCR_QPROJ,    /* decode: q·R and q·δμ */
    RK_OCL_SCR_PART_ML,  /* decode: per-split max and sum */
    RK_OCL_SCR_PART_ACC, /* decode: per-split weighted value sums */
    RK_OCL_SCR_NTOK,     /* moments: valid rows per sequence */
    RK_OCL_SCR_MEAN,     /* moments: f32 means */
    RK_OCL_SCR_CENTER,   /* moments: centered keys */
    RK_OCL_SCR_GRAM,     /* moments: f32 scatter matrices */
    RK_OCL_SCR_SINK,     /* read probe: the value it never stores */
    RK_OCL_SCR_COUNT
};

#define RK_OCL_STAGING_SLOTS 4

/* Host copies for small non-blocking uploads: a slot is reused only after its write completed,
 * so decode calls never wait for the device just to pass their sequence table. */
typedef struct rk_ocl_staging {
    void *host;
    size_t cap;
    cl_event done;
} rk_ocl_staging;

/* The decode kernels' by-value sequence table (rk_seq_tab in rk_decode.cl). */
#define RK_OCL_SEQ_INLINE 16
typedef struct rk_ocl_seq_tab {
    cl_int4 s[RK_OCL_SEQ_INLINE];
} rk_ocl_seq_tab;

/* ---- RK_OPENCL_PROFILE timing (ocl_profile.c) ------------------------------------------------ */
typedef struct rk_ocl_profile rk_ocl_profile;
rk_ocl_profile *rk_ocl_profile_new(void); /* NULL unless RK_OPENCL_PROFILE is set */
/* An event slot for the next command named `name` (NULL when profiling is off); after the
 * enqueue succeeded, rk_ocl_profile_commit keeps it. */
cl_event *rk_ocl_profile_slot(rk_ocl_profile *p, const char *name);
void rk_ocl_profile_commit(rk_ocl_profile *p);
void rk_ocl_profile_flush(rk_ocl_profile *p);
void rk_ocl_profile_free(rk_ocl_profile *p, const char *device); /* prints the totals */
void rk_ocl_profile_host(rk_ocl_profile *p, const char *name, double seconds);

typedef struct rk_ocl_ctx {
    rk_ocl_device_info dev;
    rk_ocl_params params;
    cl_context context;
    cl_command_queue queue;
    rk_ocl_program *programs;
    cl_mem scratch[RK_OCL_SCR_COUNT];
    size_t scratch_size[RK_OCL_SCR_COUNT];
    rk_ocl_staging staging[RK_OCL_STAGING_SLOTS];
    unsigned staging_next;
    int used_clblast;      /* CLBlast kept programs on our cl_context: clear them on free */
    char cache_dir[1024];  /* "" = disk cache off */
    rk_ocl_profile *profile; /* RK_OPENCL_PROFILE */
} rk_ocl_ctx;

static inline rk_ocl_ctx *rk_ocl(rk_context *ctx) { return (rk_ocl_ctx *)ctx->impl; }

/* ---- errors and object accounting (ocl_device.c) ----------------------------------------------- */
const char *rk_ocl_error_name(cl_int err);
/* Map an OpenCL error to a status, record "what: CL_ERROR_NAME (code)" on ctx; RK_OK for
 * CL_SUCCESS. Allocation failures become RK_ERR_OUT_OF_MEMORY. */
rk_status rk_ocl_fail(rk_context *ctx, cl_int err, const char *what);
#define RK_OCL_TRY(ctx, call, what)                                                          \
    do {                                                                                     \
        cl_int rk_err_ = (call);                                                             \
        if (rk_err_ != CL_SUCCESS) return rk_ocl_fail((ctx), rk_err_, (what));               \
    } while (0)

/* Enumerate (platform, device) pairs in platform order. index past the end -> CL_INVALID_VALUE
 * with *count set; count may be NULL. */
cl_int rk_ocl_find_device(size_t index, size_t *count, cl_platform_id *platform,
                          cl_device_id *device);
void rk_ocl_query_device(cl_platform_id platform, cl_device_id device, rk_ocl_device_info *out);

/* Live-object accounting for the leak tests (ocl_debug.h reads it). */
enum {
    RK_OCL_OBJ_CONTEXT, RK_OCL_OBJ_QUEUE, RK_OCL_OBJ_MEM, RK_OCL_OBJ_PROGRAM, RK_OCL_OBJ_KERNEL,
    RK_OCL_OBJ_EVENT, RK_OCL_OBJ_KINDS
};
enum {
    RK_OCL_EVT_SOURCE_BUILD, RK_OCL_EVT_BINARY_LOAD, RK_OCL_EVT_CACHE_STORE,
    RK_OCL_EVT_CONTEXT_REF_LEAK, RK_OCL_EVT_KINDS
};
void rk_ocl_count_live(int kind, int delta);
void rk_ocl_count_event(int kind);

/* ---- context helpers (ocl_context.c) --------------------------------------------------------- */
cl_mem rk_ocl_mem(const rk_buffer *buf);
rk_status rk_ocl_create_buffer(rk_context *ctx, size_t bytes, cl_mem *out);
void rk_ocl_release_mem(cl_mem mem);
/* A scratch buffer of at least `bytes`, kept until the context is freed (grown on demand). */
rk_status rk_ocl_scratch(rk_context *ctx, int slot, size_t bytes, cl_mem *out);
/* Non-blocking upload of a small host array (copied first, so src may be freed at once). */
rk_status rk_ocl_upload_small(rk_context *ctx, cl_mem dst, const void *src, size_t bytes);

/* ---- programs (ocl_program.c) ---------------------------------------------------------------- */
/* The kernel `name` of source `source` built with `options` (cached in the context, and as a
 * device binary on disk). */
rk_status rk_ocl_kernel(rk_context *ctx, int source, const char *options, const char *name,
                        cl_kernel *out);
void rk_ocl_free_programs(rk_ocl_ctx *oc);
/* Build arbitrary source (no caching): the build-error test hook. */
rk_status rk_ocl_build_source(rk_context *ctx, const char **sources, size_t n_sources,
                              const char *options, cl_program *out);

/* Set kernel arguments from a list: RK_OCL_ARG(x) expands to its size and address. */
typedef struct rk_ocl_arg { size_t size; const void *ptr; } rk_ocl_arg;
#define RK_OCL_ARG(x) ((rk_ocl_arg){sizeof(x), &(x)})
rk_status rk_ocl_set_args(rk_context *ctx, cl_kernel k, const char *name, const rk_ocl_arg *args,
                          int n);
rk_status rk_ocl_launch(rk_context *ctx, cl_kernel k, const char *name, cl_uint dims,
                        const size_t *global, const size_t *local);

/* ---- operations (ocl_prefill.c, ocl_decode.c) ------------------------------------------------ */
rk_status rk_ocl_moments(rk_context *ctx, const rk_op_moments *op);
rk_status rk_ocl_compress(rk_context *ctx, const rk_op_compress *op);
rk_status rk_ocl_read_probe(rk_context *ctx, void *handle, size_t bytes);
rk_status rk_ocl_decode(rk_context *ctx, const rk_op_decode *op);
void rk_ocl_release_clblast(rk_ocl_ctx *oc);

/* Element offset and strides of a view, as the kernels take them. */
typedef struct rk_ocl_view { cl_long off, sb, sh, st; } rk_ocl_view;
static inline rk_ocl_view rk_ocl_view_of(const rk_tensor *t) {
    rk_ocl_view v = {(cl_long)(t->offset / rk_dtype_size(t->dtype)), t->nb[0], t->nb[1], t->nb[2]};
    return v;
}

#endif
