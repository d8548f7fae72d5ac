/* Test hooks of the OpenCL backend: internal symbols, reachable only when linking the static
 * library (the shared library hides them). Not part of the API. */
#ifndef RK_OCL_DEBUG_H
#define RK_OCL_DEBUG_H

#include "rotatek.h"

#ifdef __cplusplus
extern "C" {
#endif

/* OpenCL objects the backend holds right now, over all contexts of the process, and how
 * programs were obtained so far. */
typedef struct rk_opencl_counts {
    long contexts, queues, mem_objects, programs, kernels, events;
    long source_builds;     /* clBuildProgram from source */
    long binary_loads;      /* programs loaded from the on-disk binary cache */
    long cache_stores;      /* binaries written to the cache */
    long context_ref_leaks; /* contexts something else still held when we released them */
} rk_opencl_counts;
void rk_opencl_debug_counts(rk_opencl_counts *out);

/* Build `source` (after the common helpers) with `options` on ctx's device, outside every
 * cache, and release it: the path a broken kernel takes. RK_ERR_KERNEL_BUILD with the build log
 * in rk_context_last_error() on failure. ctx must be an "opencl" context. */
rk_status rk_opencl_debug_build(rk_context *ctx, const char *source, const char *options);

/* The parameter row chosen for ctx's device, as "entry: key=value,..." */
rk_status rk_opencl_debug_params(rk_context *ctx, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
