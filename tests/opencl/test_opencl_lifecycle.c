/* Lifecycle of the OpenCL backend:
 *  - 200 rounds of context, buffers, rotation (accumulate, observe, finalize), compress and decode,
 *    destroyed again, must leave no OpenCL object alive (the backend's live-object counters) and
 *    no extra reference on any cl_context (queried before the last release);
 *  - the counters themselves must see a held buffer and a held context (or the test is void);
 *  - a second context loads its kernels from the on-disk binary cache instead of compiling;
 *  - a kernel that does not compile yields RK_ERR_KERNEL_BUILD with the compiler's log;
 *  - with "--expect-unavailable" (run under an empty ICD vendor directory) the backend reports
 *    itself unavailable, not failed.
 * Usage: test_opencl_lifecycle CACHE_DIR [ROUNDS (200)] | --expect-unavailable | --list */
#define _POSIX_C_SOURCE 200809L /* setenv, mkdtemp */
#include "ocl_debug.h"
#include "ocl_internal.h"
#include "prng.h"
#include "rk_test.h"
#include "rotatek.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { B = 2, HQ = 4, HKV = 2, D = 32, R = 8, T = 48, W = 4 };

static uint64_t seed = 99;

static void counts(rk_opencl_counts *c) { rk_opencl_debug_counts(c); }

static long live_total(const rk_opencl_counts *c) {
    return c->contexts + c->queues + c->mem_objects + c->programs + c->kernels + c->events;
}

static rk_buffer *upload_f32(rk_context *ctx, const float *x, size_t n) {
    rk_buffer *b = NULL;
    CHECK(rk_buffer_alloc(ctx, n * 4, &b) == RK_OK, "alloc: %s", rk_context_last_error(ctx));
    if (b) CHECK(rk_buffer_upload(b, 0, x, n * 4) == RK_OK, "upload");
    return b;
}

/* One full round on a fresh context; writes the decode output to out[B*HQ*D]. */
static void one_round(int with_moments, float *out) {
    static float keys[B * HKV * T * D], q_obs[B * HQ * W * D], q[B * HQ * D];
    for (size_t i = 0; i < sizeof keys / 4; i++) keys[i] = (float)rk_normal(&seed);
    for (size_t i = 0; i < sizeof q_obs / 4; i++) q_obs[i] = (float)rk_normal(&seed);
    for (size_t i = 0; i < sizeof q / 4; i++) q[i] = (float)rk_normal(&seed);
    rk_context *ctx = NULL;
    CHECK(rk_context_create("opencl", 0, NULL, &ctx) == RK_OK, "context");
    if (!ctx) return;
    rk_buffer *kb = upload_f32(ctx, keys, sizeof keys / 4);
    rk_buffer *ob = upload_f32(ctx, q_obs, sizeof q_obs / 4);
    rk_buffer *qb = upload_f32(ctx, q, sizeof q / 4);
    rk_buffer *cache = NULL, *outb = NULL;
    CHECK(rk_buffer_alloc(ctx, (size_t)B * HKV * T * R * 4, &cache) == RK_OK, "alloc cache");
    CHECK(rk_buffer_alloc(ctx, (size_t)B * HQ * D * 4, &outb) == RK_OK, "alloc out");
    rk_tensor tk, to, tq, tc, tout;
    rk_tensor_init(&tk, kb, 0, RK_F32, B, HKV, T, D, RK_LAYOUT_BHTC);
    rk_tensor_init(&to, ob, 0, RK_F32, B, HQ, W, D, RK_LAYOUT_BHTC);
    rk_tensor_init(&tq, qb, 0, RK_F32, B, HQ, 1, D, RK_LAYOUT_BHTC);
    rk_tensor_init(&tc, cache, 0, RK_F32, B, HKV, T, R, RK_LAYOUT_BHTC);
    rk_tensor_init(&tout, outb, 0, RK_F32, B, HQ, 1, D, RK_LAYOUT_BHTC);

    rk_rotation_config cfg;
    rk_rotation_config_init(&cfg);
    cfg.n_seq = B; cfg.n_kv_heads = HKV; cfg.n_q_heads = HQ; cfg.head_dim = D; cfg.rank = R;
    rk_rotation *rot = NULL;
    CHECK(rk_rotation_create(ctx, &cfg, &rot) == RK_OK, "rotation");
    if (with_moments) {
        CHECK(rk_rotation_accumulate(rot, &tk, NULL) == RK_OK, "accumulate: %s",
              rk_context_last_error(ctx));
        CHECK(rk_rotation_observe(rot, &to, NULL) == RK_OK, "observe");
        CHECK(rk_rotation_finalize(rot) == RK_OK, "finalize: %s", rk_context_last_error(ctx));
        CHECK(rk_compress(ctx, rot, &tk, &tc, 0) == RK_OK, "compress: %s", rk_context_last_error(ctx));
    } else {
        static float Rm[B * HKV * D * R], dmu[B * HKV * D];
        for (size_t i = 0; i < sizeof Rm / 4; i++) Rm[i] = (float)(rk_normal(&seed) * 0.2);
        CHECK(rk_rotation_set_basis(rot, Rm, dmu) == RK_OK, "set_basis");
        static float zeros[B * HKV * T * R];
        CHECK(rk_buffer_upload(cache, 0, zeros, sizeof zeros) == RK_OK, "clear cache");
    }
    rk_seq_info seqs[B] = {{T, 8, 30}, {T - 5, 0, 10}};
    rk_decode_args a;
    rk_decode_args_init(&a);
    a.q = &tq; a.k_full = &tk; a.k_span = &tc; a.v = &tk; a.rot = rot; a.seqs = seqs; a.out = &tout;
    CHECK(rk_decode_sparse(ctx, &a) == RK_OK, "decode: %s", rk_context_last_error(ctx));
    CHECK(rk_decode_dense(ctx, &a) == RK_OK, "dense decode: %s", rk_context_last_error(ctx));
    if (out) CHECK(rk_buffer_download(outb, 0, out, (size_t)B * HQ * D * 4) == RK_OK, "download");

    rk_opencl_counts inside;
    counts(&inside);
    CHECK(inside.contexts >= 1 && inside.mem_objects >= 7 && inside.kernels >= 2,
          "objects in use are counted (contexts %ld, mem %ld, kernels %ld)", inside.contexts,
          inside.mem_objects, inside.kernels);
    rk_rotation_destroy(rot);
    rk_buffer_free(kb); rk_buffer_free(ob); rk_buffer_free(qb); rk_buffer_free(cache);
    rk_buffer_free(outb);
    rk_context_destroy(ctx);
}

static void test_cache(const char *dir) {
    setenv("RK_OPENCL_CACHE_DIR", dir, 1);
    rk_opencl_counts c0, c1, c2;
    float out1[B * HQ * D], out2[B * HQ * D];
    counts(&c0);
    uint64_t s = seed;
    one_round(0, out1);
    counts(&c1);
    CHECK(c1.source_builds > c0.source_builds && c1.cache_stores > c0.cache_stores,
          "first context compiles and stores (builds %ld -> %ld, stores %ld -> %ld)",
          c0.source_builds, c1.source_builds, c0.cache_stores, c1.cache_stores);
    seed = s; /* same inputs */
    one_round(0, out2);
    counts(&c2);
    CHECK(c2.source_builds == c1.source_builds, "second context compiled %ld programs",
          c2.source_builds - c1.source_builds);
    CHECK(c2.binary_loads - c1.binary_loads == c1.cache_stores - c0.cache_stores,
          "second context loads every stored binary (%ld loads, %ld stored)",
          c2.binary_loads - c1.binary_loads, c1.cache_stores - c0.cache_stores);
    CHECK(memcmp(out1, out2, sizeof out1) == 0, "cached kernels give identical results");
    /* off really means off */
    setenv("RK_OPENCL_CACHE_DIR", "off", 1);
    one_round(0, NULL);
    rk_opencl_counts c3;
    counts(&c3);
    CHECK(c3.binary_loads == c2.binary_loads && c3.source_builds > c2.source_builds,
          "RK_OPENCL_CACHE_DIR=off compiles from source");
    setenv("RK_OPENCL_CACHE_DIR", dir, 1);
}

/* RK_OPENCL_PROFILE keeps an event per command until the next synchronize: the results must not
 * change and every event must be released with the context (its report goes to stderr). */
static void test_profile(void) {
    float plain[B * HQ * D], profiled[B * HQ * D];
    uint64_t s = seed;
    one_round(0, plain);
    seed = s;
    setenv("RK_OPENCL_PROFILE", "1", 1);
    one_round(0, profiled);
    unsetenv("RK_OPENCL_PROFILE");
    rk_opencl_counts now;
    counts(&now);
    CHECK(memcmp(plain, profiled, sizeof plain) == 0, "profiling leaves the results unchanged");
    CHECK(live_total(&now) == 0, "a profiled context leaves %ld objects (events %ld)",
          live_total(&now), now.events);
}

static void test_lifecycle(int rounds) {
    rk_opencl_counts base, now;
    counts(&base);
    CHECK(live_total(&base) == 0, "objects alive before the loop: %ld", live_total(&base));
    for (int i = 0; i < rounds; i++) {
        one_round(i % 25 == 0, NULL); /* moments use CLBlast, whose first GEMM compiles slowly */
        counts(&now);
        if (live_total(&now) != 0 || now.context_ref_leaks != base.context_ref_leaks) {
            CHECK(0, "round %d left contexts %ld queues %ld mem %ld programs %ld kernels %ld "
                  "events %ld, context ref leaks %ld", i, now.contexts, now.queues,
                  now.mem_objects, now.programs, now.kernels, now.events,
                  now.context_ref_leaks - base.context_ref_leaks);
            break;
        }
    }
    CHECK(live_total(&now) == 0 && now.context_ref_leaks == base.context_ref_leaks,
          "%d rounds leak nothing", rounds);
}

/* The detectors must be able to fire: a held buffer and an extra cl_context reference. */
static void test_detectors(void) {
    rk_opencl_counts a, b;
    rk_context *ctx = NULL;
    CHECK(rk_context_create("opencl", 0, NULL, &ctx) == RK_OK, "context");
    if (!ctx) return;
    counts(&a);
    rk_buffer *buf = NULL;
    CHECK(rk_buffer_alloc(ctx, 4096, &buf) == RK_OK, "alloc");
    counts(&b);
    CHECK(b.mem_objects == a.mem_objects + 1, "a live buffer is counted");
    rk_buffer_free(buf);
    counts(&b);
    CHECK(b.mem_objects == a.mem_objects, "a freed buffer is uncounted");
    cl_context held = rk_ocl(ctx)->context;
    clRetainContext(held);
    rk_context_destroy(ctx);
    counts(&b);
    CHECK(b.context_ref_leaks == a.context_ref_leaks + 1, "an extra context reference is seen");
    clReleaseContext(held);
}

static void test_build_error(void) {
    rk_context *ctx = NULL;
    CHECK(rk_context_create("opencl", 0, NULL, &ctx) == RK_OK, "context");
    if (!ctx) return;
    rk_opencl_counts a, b;
    counts(&a);
    CHECK_STATUS(rk_opencl_debug_build(ctx, "kernel void ok(global float *x) { x[0] = rk_ld1(x, 1); }",
                                       NULL), RK_OK, ctx);
    CHECK_STATUS(rk_opencl_debug_build(ctx, "kernel void broken(global float *x) {\n"
                                            "    x[0] = rk_no_such_symbol;\n}\n", NULL),
                 RK_ERR_KERNEL_BUILD, ctx);
    const char *msg = rk_context_last_error(ctx);
    CHECK(strstr(msg, "RK_ERR_KERNEL_BUILD") && strstr(msg, "rk_no_such_symbol"),
          "the message carries the build log: %s", msg);
    CHECK_STATUS(rk_opencl_debug_build(ctx, "kernel void ok(global float *x) { x[0] = 1; }",
                                       "-D RK_DT=0 -cl-no-such-option"), RK_ERR_KERNEL_BUILD, ctx);
    counts(&b);
    CHECK(b.programs == a.programs, "failed builds release their programs");
    rk_context_destroy(ctx);
}

static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[2048];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        remove(path);
    }
    closedir(d);
    rmdir(dir);
}

int main(int argc, char **argv) {
    size_t n = 0;
    rk_status st = rk_device_count("opencl", &n);
    if (argc > 1 && strcmp(argv[1], "--list") == 0) { /* diagnostics: the devices we see */
        printf("opencl devices: %zu (%s)\n", n, rk_status_name(st));
        for (size_t i = 0; i < n; i++) {
            char name[512];
            if (rk_device_name("opencl", i, name, sizeof name) == RK_OK) printf("  %zu: %s\n", i, name);
        }
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--expect-unavailable") == 0) {
        CHECK(st == RK_ERR_BACKEND_UNAVAILABLE && n == 0, "device_count: %s, %zu devices",
              rk_status_name(st), n);
        rk_context *ctx = NULL;
        CHECK(rk_context_create("opencl", 0, NULL, &ctx) == RK_ERR_BACKEND_UNAVAILABLE && !ctx,
              "context_create reports the backend unavailable");
        return rk_test_done("test_opencl_lifecycle (unavailable)");
    }
    if (st == RK_ERR_BACKEND_UNAVAILABLE) {
        printf("test_opencl_lifecycle: no OpenCL device, skipped\n");
        return 77;
    }
    rk_context *none = NULL;
    CHECK(rk_context_create("opencl", n, NULL, &none) == RK_ERR_DEVICE_NOT_FOUND && !none,
          "device index past the end");

    const char *parent = argc > 1 ? argv[1] : "/tmp";
    char dir[1024];
    mkdir(parent, 0755);
    snprintf(dir, sizeof dir, "%s/run-XXXXXX", parent);
    CHECK(mkdtemp(dir) != NULL, "cache directory under %s", parent);
    test_cache(dir);
    test_profile();
    test_detectors();
    test_build_error();
    test_lifecycle(argc > 2 && atoi(argv[2]) > 0 ? atoi(argv[2]) : 200);
    remove_dir(dir);
    return rk_test_done("test_opencl_lifecycle");
}
