/* The OpenCL backend's function table: devices, contexts, buffers, scratch and small uploads. */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include "ocl_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- devices ---------------------------------------------------------------------------------- */

static rk_status rk_ocl_device_count(size_t *count) {
    rk_ocl_find_device(0, count, NULL, NULL); /* sets *count whatever it returns */
    return *count ? RK_OK : RK_ERR_BACKEND_UNAVAILABLE; /* no ICD, no platform or no device */
}

static rk_status rk_ocl_device_name(size_t index, char *buf, size_t buf_len) {
    cl_platform_id plat;
    cl_device_id dev;
    size_t count = 0;
    if (rk_ocl_find_device(index, &count, &plat, &dev) != CL_SUCCESS)
        return count ? RK_ERR_DEVICE_NOT_FOUND : RK_ERR_BACKEND_UNAVAILABLE;
    rk_ocl_device_info info;
    rk_ocl_query_device(plat, dev, &info);
    snprintf(buf, buf_len, "%s (%s, %s)", info.name, info.platform_name, info.driver);
    return RK_OK;
}

/* ---- contexts --------------------------------------------------------------------------------- */

static void rk_ocl_resolve_cache_dir(char *dir, size_t len) {
    const char *env = getenv("RK_OPENCL_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    dir[0] = '\0';
    if (env && env[0]) {
        if (strcmp(env, "off") != 0) snprintf(dir, len, "%s", env);
    } else if (xdg && xdg[0]) {
        snprintf(dir, len, "%s/rotatek/opencl", xdg);
    } else if (home && home[0]) {
        snprintf(dir, len, "%s/.cache/rotatek/opencl", home);
    }
}

static void rk_ocl_context_free(rk_context *ctx);

static rk_status rk_ocl_context_init(rk_context *ctx) {
    rk_ocl_ctx *oc = calloc(1, sizeof *oc);
    if (!oc) return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "opencl: context state");
    ctx->impl = oc;
    cl_platform_id plat;
    cl_device_id dev;
    size_t count = 0;
    cl_int err = rk_ocl_find_device(ctx->device_index, &count, &plat, &dev);
    if (err != CL_SUCCESS) {
        rk_ocl_context_free(ctx);
        return count ? RK_ERR_DEVICE_NOT_FOUND : RK_ERR_BACKEND_UNAVAILABLE;
    }
    rk_ocl_query_device(plat, dev, &oc->dev);
    rk_ocl_params_for(&oc->dev, &oc->params);
    rk_ocl_resolve_cache_dir(oc->cache_dir, sizeof oc->cache_dir);

    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)plat, 0};
    oc->context = clCreateContext(props, 1, &dev, NULL, NULL, &err);
    if (err != CL_SUCCESS) {
        oc->context = NULL;
        rk_status st = rk_ocl_fail(ctx, err, "clCreateContext");
        rk_ocl_context_free(ctx);
        return st;
    }
    rk_ocl_count_live(RK_OCL_OBJ_CONTEXT, 1);
    oc->profile = rk_ocl_profile_new();
    oc->queue = clCreateCommandQueue(oc->context, dev, oc->profile ? CL_QUEUE_PROFILING_ENABLE : 0,
                                     &err);
    if (err != CL_SUCCESS) {
        oc->queue = NULL;
        rk_status st = rk_ocl_fail(ctx, err, "clCreateCommandQueue");
        rk_ocl_context_free(ctx);
        return st;
    }
    rk_ocl_count_live(RK_OCL_OBJ_QUEUE, 1);
    return RK_OK;
}

/* Debug aid: every object made on a context retains it, so more than one reference left once
 * ours are gone means something (ours or a library's) still holds it. Runtimes drop their own
 * references to finished commands asynchronously (PoCL does), so give them a moment. */
static cl_uint rk_ocl_context_refs_settle(cl_context context) {
    cl_uint refs = 0;
    for (int tries = 0; tries < 100; tries++) {
        if (clGetContextInfo(context, CL_CONTEXT_REFERENCE_COUNT, sizeof refs, &refs, NULL) !=
            CL_SUCCESS)
            return 1; /* cannot tell: do not report */
        if (refs == 1) break;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    return refs;
}

static void rk_ocl_context_free(rk_context *ctx) {
    rk_ocl_ctx *oc = rk_ocl(ctx);
    if (!oc) return;
    if (oc->queue) clFinish(oc->queue);
    rk_ocl_profile_free(oc->profile, oc->dev.name);
    for (int i = 0; i < RK_OCL_STAGING_SLOTS; i++) {
        if (oc->staging[i].done) {
            clWaitForEvents(1, &oc->staging[i].done);
            clReleaseEvent(oc->staging[i].done);
            rk_ocl_count_live(RK_OCL_OBJ_EVENT, -1);
        }
        free(oc->staging[i].host);
    }
    for (int i = 0; i < RK_OCL_SCR_COUNT; i++) rk_ocl_release_mem(oc->scratch[i]);
    rk_ocl_free_programs(oc);
    if (oc->queue) {
        clReleaseCommandQueue(oc->queue);
        rk_ocl_count_live(RK_OCL_OBJ_QUEUE, -1);
    }
    if (oc->context) {
        if (oc->used_clblast) rk_ocl_release_clblast(oc);
        if (rk_ocl_context_refs_settle(oc->context) != 1)
            rk_ocl_count_event(RK_OCL_EVT_CONTEXT_REF_LEAK);
        clReleaseContext(oc->context);
        rk_ocl_count_live(RK_OCL_OBJ_CONTEXT, -1);
    }
    free(oc);
    ctx->impl = NULL;
}

static rk_status rk_ocl_synchronize(rk_context *ctx) {
    RK_OCL_TRY(ctx, clFinish(rk_ocl(ctx)->queue), "clFinish");
    rk_ocl_profile_flush(rk_ocl(ctx)->profile);
    return RK_OK;
}

/* ---- buffers ---------------------------------------------------------------------------------- */

cl_mem rk_ocl_mem(const rk_buffer *buf) { return (cl_mem)buf->handle; }

rk_status rk_ocl_create_buffer(rk_context *ctx, size_t bytes, cl_mem *out) {
    rk_ocl_ctx *oc = rk_ocl(ctx);
    *out = NULL;
    if (bytes > oc->dev.max_alloc)
        return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "opencl: %zu bytes exceed the device's largest "
                       "allocation (%llu bytes)", bytes, (unsigned long long)oc->dev.max_alloc);
    cl_int err = CL_SUCCESS;
    cl_mem mem = clCreateBuffer(oc->context, CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (err != CL_SUCCESS) return rk_ocl_fail(ctx, err, "clCreateBuffer");
    rk_ocl_count_live(RK_OCL_OBJ_MEM, 1);
    *out = mem;
    return RK_OK;
}

void rk_ocl_release_mem(cl_mem mem) {
    if (!mem) return;
    clReleaseMemObject(mem);
    rk_ocl_count_live(RK_OCL_OBJ_MEM, -1);
}

static rk_status rk_ocl_buffer_alloc(rk_context *ctx, size_t bytes, void **handle) {
    cl_mem mem = NULL;
    rk_status st = rk_ocl_create_buffer(ctx, bytes, &mem);
    *handle = mem;
    return st;
}

static void rk_ocl_buffer_free(rk_context *ctx, void *handle) { rk_ocl_release_mem(handle); }

static rk_status rk_ocl_buffer_upload(rk_context *ctx, void *handle, size_t offset,
                                      const void *src, size_t bytes) {
    RK_OCL_TRY(ctx, clEnqueueWriteBuffer(rk_ocl(ctx)->queue, handle, CL_TRUE, offset, bytes, src, 0,
                                         NULL, NULL), "clEnqueueWriteBuffer");
    return RK_OK;
}

static rk_status rk_ocl_buffer_download(rk_context *ctx, void *handle, size_t offset, void *dst,
                                        size_t bytes) {
    RK_OCL_TRY(ctx, clEnqueueReadBuffer(rk_ocl(ctx)->queue, handle, CL_TRUE, offset, bytes, dst, 0,
                                        NULL, NULL), "clEnqueueReadBuffer");
    return RK_OK;
}

rk_status rk_ocl_scratch(rk_context *ctx, int slot, size_t bytes, cl_mem *out) {
    rk_ocl_ctx *oc = rk_ocl(ctx);
    if (bytes == 0) bytes = 16;
    if (oc->scratch[slot] && oc->scratch_size[slot] >= bytes) {
        *out = oc->scratch[slot];
        return RK_OK;
    }
    /* Released objects live on until the queued commands that use them finish. */
    rk_ocl_release_mem(oc->scratch[slot]);
    oc->scratch[slot] = NULL;
    oc->scratch_size[slot] = 0;
    size_t grown = bytes + bytes / 4;
    rk_status st = rk_ocl_create_buffer(ctx, grown, &oc->scratch[slot]);
    if (st != RK_OK) return st;
    oc->scratch_size[slot] = grown;
    *out = oc->scratch[slot];
    return RK_OK;
}

rk_status rk_ocl_upload_small(rk_context *ctx, cl_mem dst, const void *src, size_t bytes) {
    rk_ocl_ctx *oc = rk_ocl(ctx);
    rk_ocl_staging *s = &oc->staging[oc->staging_next++ % RK_OCL_STAGING_SLOTS];
    if (s->done) {
        cl_int err = clWaitForEvents(1, &s->done);
        clReleaseEvent(s->done);
        rk_ocl_count_live(RK_OCL_OBJ_EVENT, -1);
        s->done = NULL;
        if (err != CL_SUCCESS) return rk_ocl_fail(ctx, err, "clWaitForEvents (staging)");
    }
    if (s->cap < bytes) {
        void *p = realloc(s->host, bytes);
        if (!p) return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "opencl: staging of %zu bytes", bytes);
        s->host = p;
        s->cap = bytes;
    }
    memcpy(s->host, src, bytes);
    cl_int err = clEnqueueWriteBuffer(oc->queue, dst, CL_FALSE, 0, bytes, s->host, 0, NULL,
                                      &s->done);
    if (err != CL_SUCCESS) {
        s->done = NULL;
        return rk_ocl_fail(ctx, err, "clEnqueueWriteBuffer (staging)");
    }
    rk_ocl_count_live(RK_OCL_OBJ_EVENT, 1);
    cl_event *pe = rk_ocl_profile_slot(oc->profile, "upload");
    if (pe && clRetainEvent(s->done) == CL_SUCCESS) {
        *pe = s->done;
        rk_ocl_profile_commit(oc->profile);
    }
    return RK_OK;
}

const rk_backend_iface rk_backend_opencl = {
    .name = "opencl",
    .device_count = rk_ocl_device_count,
    .device_name = rk_ocl_device_name,
    .context_init = rk_ocl_context_init,
    .context_free = rk_ocl_context_free,
    .synchronize = rk_ocl_synchronize,
    .buffer_alloc = rk_ocl_buffer_alloc,
    .buffer_free = rk_ocl_buffer_free,
    .buffer_upload = rk_ocl_buffer_upload,
    .buffer_download = rk_ocl_buffer_download,
    .moments = rk_ocl_moments,
    .compress = rk_ocl_compress,
    .decode = rk_ocl_decode,
    .subspace = NULL,
    .read_probe = rk_ocl_read_probe,
    .spark_compress = NULL,
    .spark_decode = NULL,
};
