/* The CPU backend's table: one device (the host), buffers in aligned host memory, kernels picked
 * once per context from what the CPU supports. */
#include "cpu_internal.h"

#if RK_CPU_X86 && defined(__GNUC__)
#include <cpuid.h>
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int rk_cpu_online_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static rk_status rk_cpu_device_count(size_t *count) {
    *count = 1;
    return RK_OK;
}

static rk_status rk_cpu_device_name(size_t index, char *buf, size_t buf_len) {
    (void)index;
    snprintf(buf, buf_len, "host CPU (%d threads)", rk_cpu_online_cores());
    return RK_OK;
}

/* AVX2, FMA and F16C in the CPU, and YMM state enabled by the OS (cpuid + xgetbv: works with
 * GCC and Clang alike, where __builtin_cpu_supports lacks "f16c" on older Clang). */
static int rk_cpu_has_avx2(void) {
#if RK_CPU_X86 && defined(__GNUC__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const unsigned fma = 1u << 12, osxsave = 1u << 27, avx = 1u << 28, f16c = 1u << 29;
    if ((c & (fma | osxsave | avx | f16c)) != (fma | osxsave | avx | f16c)) return 0;
    unsigned xcr0_lo, xcr0_hi;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    if ((xcr0_lo & 6u) != 6u) return 0; /* XMM and YMM state */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b & (1u << 5)) != 0; /* AVX2 */
#else
    return 0;
#endif
}

/* RK_CPU_ISA=generic forces the portable kernels (to test them on a machine with AVX2). */
static rk_status rk_cpu_context_init(rk_context *ctx) {
    rk_cpu_context *c = calloc(1, sizeof *c);
    if (!c) return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "cpu context");
    const char *isa = getenv("RK_CPU_ISA");
    int want_generic = isa && strcmp(isa, "generic") == 0;
    c->k = &rk_cpu_kernels_generic;
#if RK_CPU_X86
    if (!want_generic && rk_cpu_has_avx2()) {
        c->use_avx2 = 1;
        c->k = &rk_cpu_kernels_avx2;
    }
#else
    (void)want_generic;
#endif
    ctx->impl = c;
    return RK_OK;
}

static void rk_cpu_context_free(rk_context *ctx) {
    rk_cpu_context *c = rk_cpu_ctx(ctx);
    if (!c) return;
    free(c->scratch);
    free(c);
    ctx->impl = NULL;
}

void *rk_cpu_scratch(rk_context *ctx, size_t bytes) {
    rk_cpu_context *c = rk_cpu_ctx(ctx);
    if (bytes <= c->scratch_size) return c->scratch;
    free(c->scratch);
    c->scratch_size = 0;
    c->scratch = aligned_alloc(RK_CPU_ALIGN, rk_cpu_round_up(bytes, RK_CPU_ALIGN));
    if (c->scratch) c->scratch_size = bytes;
    return c->scratch;
}

/* Work is synchronous: every op returns when its results are in memory. */
static rk_status rk_cpu_synchronize(rk_context *ctx) {
    (void)ctx;
    return RK_OK;
}

static rk_status rk_cpu_buffer_alloc(rk_context *ctx, size_t bytes, void **handle) {
    void *p = aligned_alloc(RK_CPU_ALIGN, rk_cpu_round_up(bytes, RK_CPU_ALIGN));
    if (!p) return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "cpu: allocating %zu bytes", bytes);
    *handle = p;
    return RK_OK;
}

static void rk_cpu_buffer_free(rk_context *ctx, void *handle) {
    (void)ctx;
    free(handle);
}

static rk_status rk_cpu_buffer_upload(rk_context *ctx, void *handle, size_t offset,
                                      const void *src, size_t bytes) {
    (void)ctx;
    memcpy((char *)handle + offset, src, bytes);
    return RK_OK;
}

static rk_status rk_cpu_buffer_download(rk_context *ctx, void *handle, size_t offset, void *dst,
                                        size_t bytes) {
    (void)ctx;
    memcpy(dst, (const char *)handle + offset, bytes);
    return RK_OK;
}

const rk_backend_iface rk_backend_cpu = {
    .name = "cpu",
    .device_count = rk_cpu_device_count,
    .device_name = rk_cpu_device_name,
    .context_init = rk_cpu_context_init,
    .context_free = rk_cpu_context_free,
    .synchronize = rk_cpu_synchronize,
    .buffer_alloc = rk_cpu_buffer_alloc,
    .buffer_free = rk_cpu_buffer_free,
    .buffer_upload = rk_cpu_buffer_upload,
    .buffer_download = rk_cpu_buffer_download,
    .moments = rk_cpu_moments,
    .compress = rk_cpu_compress,
    .decode = rk_cpu_decode,
    .subspace = NULL, /* the core's host solver already runs on this CPU */
    .spark_compress = rk_cpu_spark_compress,
    .spark_decode = rk_cpu_spark_decode,
    .read_probe = rk_cpu_read_probe,
};
