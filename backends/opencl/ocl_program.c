/* Kernel programs: built from the embedded sources with -D options, kept per context, and cached
 * across contexts and processes as device binaries on disk.
 *
 * The disk cache replaces a process-wide program table (the API allows no global mutable state):
 * a file per (platform, device, driver, options, source) under $RK_OPENCL_CACHE_DIR, else
 * $XDG_CACHE_HOME/rotatek/opencl, else $HOME/.cache/rotatek/opencl; RK_OPENCL_CACHE_DIR=off turns
 * it off. Files are written to a temporary name and renamed, so concurrent writers are safe, and
 * each file repeats its full key, so a hash collision or a stale file only costs a rebuild. */
#define _POSIX_C_SOURCE 200809L /* mkdir, getpid */
#include "ocl_debug.h"
#include "ocl_internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern const unsigned char rk_ocl_src_common[], rk_ocl_src_prefill[], rk_ocl_src_decode[];
extern const size_t rk_ocl_src_common_size, rk_ocl_src_prefill_size, rk_ocl_src_decode_size;

static const char *rk_ocl_source_text(int source) {
    return (const char *)(source == RK_OCL_SRC_PREFILL ? rk_ocl_src_prefill : rk_ocl_src_decode);
}

static uint64_t rk_fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}
#define RK_FNV_SEED 0xcbf29ce484222325ull

/* ---- build ------------------------------------------------------------------------------------ */

static rk_status rk_ocl_build_failed(rk_context *ctx, cl_program prog, cl_int err,
                                     const char *options) {
    rk_ocl_ctx *oc = rk_ocl(ctx);
    size_t len = 0;
    char *log = NULL;
    if (clGetProgramBuildInfo(prog, oc->dev.device, CL_PROGRAM_BUILD_LOG, 0, NULL, &len) ==
            CL_SUCCESS && len > 0 && (log = malloc(len + 1)) != NULL) {
        if (clGetProgramBuildInfo(prog, oc->dev.device, CL_PROGRAM_BUILD_LOG, len, log, NULL) !=
            CL_SUCCESS)
            len = 0;
        log[len] = '\0';
    }
    rk_status st = rk_fail(ctx, RK_ERR_KERNEL_BUILD, "opencl: clBuildProgram: %s (%d); log: %s "
                           "[options: %s]", rk_ocl_error_name(err), (int)err,
                           log && log[0] ? log : "(empty)", options);
    free(log);
    return st;
}

/* RK_OPENCL_VERBOSE=1: print every successful build's log to stderr, with NVIDIA's ptxas report
 * (registers, spills) asked for where the driver takes -cl-nv-verbose. A diagnostic for tuning. */
static void rk_ocl_print_log(const rk_ocl_ctx *oc, cl_program prog, const char *options) {
    size_t len = 0;
    char *log = NULL;
    if (clGetProgramBuildInfo(prog, oc->dev.device, CL_PROGRAM_BUILD_LOG, 0, NULL, &len) !=
            CL_SUCCESS || (log = calloc(len + 1, 1)) == NULL)
        return;
    if (clGetProgramBuildInfo(prog, oc->dev.device, CL_PROGRAM_BUILD_LOG, len, log, NULL) ==
        CL_SUCCESS)
        fprintf(stderr, "[rotatek opencl] build [%s]:\n%s\n", options, log);
    free(log);
}

rk_status rk_ocl_build_source(rk_context *ctx, const char **sources, size_t n_sources,
                              const char *options, cl_program *out) {
    rk_ocl_ctx *oc = rk_ocl(ctx);
    cl_int err = CL_SUCCESS;
    *out = NULL;
    const char *verbose_env = getenv("RK_OPENCL_VERBOSE");
    const int verbose = verbose_env && verbose_env[0] == '1';
    char *opts = malloc(strlen(options) + 24);
    if (!opts) return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "opencl: build options");
    strcpy(opts, options);
    if (verbose && oc->dev.nv_compiler_options) strcat(opts, " -cl-nv-verbose");
    cl_program prog = clCreateProgramWithSource(oc->context, (cl_uint)n_sources, sources, NULL,
                                                &err);
    if (err != CL_SUCCESS) {
        free(opts);
        return rk_ocl_fail(ctx, err, "clCreateProgramWithSource");
    }
    rk_ocl_count_live(RK_OCL_OBJ_PROGRAM, 1);
    err = clBuildProgram(prog, 1, &oc->dev.device, opts, NULL, NULL);
    if (err == CL_SUCCESS && verbose) rk_ocl_print_log(oc, prog, opts);
    free(opts);
    if (err != CL_SUCCESS) {
        rk_status st = err == CL_BUILD_PROGRAM_FAILURE || err == CL_COMPILE_PROGRAM_FAILURE ||
                               err == CL_INVALID_BUILD_OPTIONS
                           ? rk_ocl_build_failed(ctx, prog, err, options)
                           : rk_ocl_fail(ctx, err, "clBuildProgram");
        clReleaseProgram(prog);
        rk_ocl_count_live(RK_OCL_OBJ_PROGRAM, -1);
        return st;
    }
    rk_ocl_count_event(RK_OCL_EVT_SOURCE_BUILD);
    *out = prog;
    return RK_OK;
}

rk_status rk_opencl_debug_build(rk_context *ctx, const char *source, const char *options) {
    if (!ctx || !source) return RK_ERR_NULL_ARG;
    if (!ctx->impl || ctx->be != &rk_backend_opencl) return RK_ERR_INVALID_ARG;
    const char *srcs[2] = {(const char *)rk_ocl_src_common, source};
    cl_program prog = NULL;
    rk_status st = rk_ocl_build_source(ctx, srcs, 2, options ? options : "-D RK_DT=0", &prog);
    if (prog) {
        clReleaseProgram(prog);
        rk_ocl_count_live(RK_OCL_OBJ_PROGRAM, -1);
    }
    return st;
}

/* ---- disk cache ------------------------------------------------------------------------------- */

#define RK_OCL_CACHE_MAGIC "RKCLBIN1"

/* Everything a binary depends on; the file name is its hash, the file repeats it in full. */
static char *rk_ocl_cache_key(const rk_ocl_ctx *oc, int source, const char *options) {
    const char *src = rk_ocl_source_text(source);
    uint64_t h = rk_fnv1a(RK_FNV_SEED, rk_ocl_src_common, rk_ocl_src_common_size);
    h = rk_fnv1a(h, src, strlen(src));
    size_t len = strlen(oc->dev.platform_name) + strlen(oc->dev.name) + strlen(oc->dev.version) +
                 strlen(oc->dev.driver) + strlen(options) + 96;
    char *key = malloc(len);
    if (key)
        snprintf(key, len, "rotatek-opencl 1\n%s\n%s\n%s\n%s\n%s\nsource %016llx\n",
                 oc->dev.platform_name, oc->dev.name, oc->dev.version, oc->dev.driver, options,
                 (unsigned long long)h);
    return key;
}

static void rk_ocl_cache_path(const rk_ocl_ctx *oc, const char *key, char *path, size_t len) {
    snprintf(path, len, "%s/%016llx.bin", oc->cache_dir,
             (unsigned long long)rk_fnv1a(RK_FNV_SEED, key, strlen(key)));
}

/* The cached binary for key, or NULL (missing, unreadable, or another key). */
static unsigned char *rk_ocl_cache_read(const rk_ocl_ctx *oc, const char *key, size_t *size) {
    char path[1100];
    rk_ocl_cache_path(oc, key, path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *bin = NULL;
    char magic[8];
    uint32_t klen = 0;
    uint64_t blen = 0;
    size_t want = strlen(key);
    char *stored = NULL;
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, RK_OCL_CACHE_MAGIC, 8) != 0) goto done;
    if (fread(&klen, sizeof klen, 1, f) != 1 || klen != want) goto done;
    stored = malloc(want + 1);
    if (!stored || fread(stored, 1, want, f) != want || memcmp(stored, key, want) != 0) goto done;
    if (fread(&blen, sizeof blen, 1, f) != 1 || blen == 0 || blen > ((uint64_t)1 << 30)) goto done;
    bin = malloc((size_t)blen);
    if (bin && fread(bin, 1, (size_t)blen, f) != blen) {
        free(bin);
        bin = NULL;
    }
    *size = (size_t)blen;
done:
    free(stored);
    fclose(f);
    return bin;
}

static int rk_ocl_mkdirs(const char *dir) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* Best effort: a cache that cannot be written only costs the next context a rebuild. */
static void rk_ocl_cache_write(const rk_ocl_ctx *oc, const char *key, cl_program prog) {
    size_t size = 0;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL) != CL_SUCCESS ||
        size == 0)
        return;
    unsigned char *bin = malloc(size);
    if (!bin) return;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL) != CL_SUCCESS ||
        rk_ocl_mkdirs(oc->cache_dir) != 0) {
        free(bin);
        return;
    }
    char path[1100], tmp[1200];
    rk_ocl_cache_path(oc, key, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.%ld.%p.tmp", path, (long)getpid(), (const void *)oc);
    FILE *f = fopen(tmp, "wb");
    if (f) {
        uint32_t klen = (uint32_t)strlen(key);
        uint64_t blen = size;
        int ok = fwrite(RK_OCL_CACHE_MAGIC, 1, 8, f) == 8 && fwrite(&klen, sizeof klen, 1, f) == 1 &&
                 fwrite(key, 1, klen, f) == klen && fwrite(&blen, sizeof blen, 1, f) == 1 &&
                 fwrite(bin, 1, size, f) == size;
        ok = fclose(f) == 0 && ok;
        if (ok && rename(tmp, path) == 0)
            rk_ocl_count_event(RK_OCL_EVT_CACHE_STORE);
        else
            remove(tmp);
    }
    free(bin);
}

static cl_program rk_ocl_load_binary(rk_ocl_ctx *oc, const unsigned char *bin, size_t size,
                                     const char *options) {
    cl_int err = CL_SUCCESS, bin_status = CL_SUCCESS;
    cl_program prog = clCreateProgramWithBinary(oc->context, 1, &oc->dev.device, &size, &bin,
                                                &bin_status, &err);
    if (err != CL_SUCCESS || bin_status != CL_SUCCESS) {
        if (prog) clReleaseProgram(prog);
        return NULL;
    }
    if (clBuildProgram(prog, 1, &oc->dev.device, options, NULL, NULL) != CL_SUCCESS) {
        clReleaseProgram(prog);
        return NULL;
    }
    rk_ocl_count_live(RK_OCL_OBJ_PROGRAM, 1);
    rk_ocl_count_event(RK_OCL_EVT_BINARY_LOAD);
    return prog;
}

static rk_status rk_ocl_get_program(rk_context *ctx, int source, const char *options,
                                    cl_program *out) {
    rk_ocl_ctx *oc = rk_ocl(ctx);
    char *key = NULL;
    *out = NULL;
    if (oc->cache_dir[0]) {
        key = rk_ocl_cache_key(oc, source, options);
        size_t size = 0;
        unsigned char *bin = key ? rk_ocl_cache_read(oc, key, &size) : NULL;
        if (bin) {
            *out = rk_ocl_load_binary(oc, bin, size, options);
            free(bin);
        }
    }
    rk_status st = RK_OK;
    if (!*out) {
        const char *srcs[2] = {(const char *)rk_ocl_src_common, rk_ocl_source_text(source)};
        st = rk_ocl_build_source(ctx, srcs, 2, options, out);
        if (st == RK_OK && key) rk_ocl_cache_write(oc, key, *out);
    }
    free(key);
    return st;
}

/* ---- per-context table ------------------------------------------------------------------------ */

rk_status rk_ocl_kernel(rk_context *ctx, int source, const char *options, const char *name,
                        cl_kernel *out) {
    rk_ocl_ctx *oc = rk_ocl(ctx);
    rk_ocl_program *p = oc->programs;
    while (p && !(p->source == source && strcmp(p->options, options) == 0)) p = p->next;
    if (!p) {
        p = calloc(1, sizeof *p);
        if (p) p->options = malloc(strlen(options) + 1);
        if (!p || !p->options) {
            if (p) free(p);
            return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "opencl: program table entry");
        }
        strcpy(p->options, options);
        p->source = source;
        rk_status st = rk_ocl_get_program(ctx, source, options, &p->program);
        if (st != RK_OK) {
            free(p->options);
            free(p);
            return st;
        }
        p->next = oc->programs;
        oc->programs = p;
    }
    int i = 0;
    for (; i < RK_OCL_MAX_KERNELS && p->kernel_names[i]; i++)
        if (strcmp(p->kernel_names[i], name) == 0) {
            *out = p->kernels[i];
            return RK_OK;
        }
    if (i == RK_OCL_MAX_KERNELS)
        return rk_fail(ctx, RK_ERR_BACKEND_FAILURE, "opencl: too many kernels in one program");
    cl_int err = CL_SUCCESS;
    cl_kernel k = clCreateKernel(p->program, name, &err);
    if (err != CL_SUCCESS) return rk_ocl_fail(ctx, err, name);
    rk_ocl_count_live(RK_OCL_OBJ_KERNEL, 1);
    p->kernel_names[i] = name; /* callers pass string literals */
    p->kernels[i] = k;
    *out = k;
    return RK_OK;
}

void rk_ocl_free_programs(rk_ocl_ctx *oc) {
    while (oc->programs) {
        rk_ocl_program *p = oc->programs;
        oc->programs = p->next;
        for (int i = 0; i < RK_OCL_MAX_KERNELS && p->kernel_names[i]; i++) {
            clReleaseKernel(p->kernels[i]);
            rk_ocl_count_live(RK_OCL_OBJ_KERNEL, -1);
        }
        clReleaseProgram(p->program);
        rk_ocl_count_live(RK_OCL_OBJ_PROGRAM, -1);
        free(p->options);
        free(p);
    }
}

rk_status rk_ocl_set_args(rk_context *ctx, cl_kernel k, const char *name, const rk_ocl_arg *args,
                          int n) {
    for (int i = 0; i < n; i++) {
        cl_int err = clSetKernelArg(k, (cl_uint)i, args[i].size, args[i].ptr);
        if (err != CL_SUCCESS) {
            char what[128];
            snprintf(what, sizeof what, "clSetKernelArg(%s, %d)", name, i);
            return rk_ocl_fail(ctx, err, what);
        }
    }
    return RK_OK;
}

rk_status rk_ocl_launch(rk_context *ctx, cl_kernel k, const char *name, cl_uint dims,
                        const size_t *global, const size_t *local) {
    for (cl_uint i = 0; i < dims; i++)
        if (global[i] == 0) return RK_OK; /* nothing to do */
    rk_ocl_ctx *oc = rk_ocl(ctx);
    cl_event *ev = rk_ocl_profile_slot(oc->profile, name);
    cl_int err = clEnqueueNDRangeKernel(oc->queue, k, dims, NULL, global, local, 0, NULL, ev);
    if (err == CL_SUCCESS && ev) rk_ocl_profile_commit(oc->profile);
    if (err != CL_SUCCESS) {
        char what[128];
        snprintf(what, sizeof what, "clEnqueueNDRangeKernel(%s)", name);
        return rk_ocl_fail(ctx, err, what);
    }
    return RK_OK;
}
