/* Entry points for bench/capture/e2e_minilm.py (ctypes): the study's methods applied to one
 * layer at a time, returning the library's attention output, so the model's forward pass runs on
 * exactly what rk-accuracy measures. */
#include "study.h"

#include <stdio.h>
#include <string.h>

#if defined(__GNUC__)
#define ACC_PY_API __attribute__((visibility("default")))
#else
#define ACC_PY_API
#endif

ACC_PY_API void *acc_py_open(const char *backend, int threads) {
    rk_context_options co;
    rk_context_options_init(&co);
    co.n_threads = threads;
    rk_context *ctx = NULL;
    return rk_context_create(backend, 0, &co, &ctx) == RK_OK ? ctx : NULL;
}

ACC_PY_API void acc_py_close(void *ctx) { rk_context_destroy(ctx); }

ACC_PY_API int acc_py_method(const char *name) { return acc_method_from_name(name); }

/* out [H][T][dv]. rank: Key channels (channel methods); keep: span tokens (token methods); the
 * span is [span_begin, T - span_tail). Returns an rk_status; err gets the message. */
ACC_PY_API int acc_py_attend(void *ctx, int dtype, int method, int rank, int keep, int span_begin,
                             int span_tail, int H, int T, int d, int dv, const float *q,
                             const float *k, const float *v, float *out, char *err, int err_len) {
    if (!ctx || method < 0 || method >= ACC_METHOD_COUNT) {
        snprintf(err, (size_t)err_len, "bad context or method");
        return RK_ERR_INVALID_ARG;
    }
    acc_options o;
    acc_options_init(&o, ctx);
    o.dtype = (rk_dtype)dtype;
    o.span_begin = span_begin;
    o.span_tail = span_tail;
    acc_layer L = {H, T, d, dv, q, k, v};
    acc_reference ref = {NULL, NULL}, *pref = NULL;
    if (acc_method_drops_tokens((acc_method)method)) { /* token scores need dense attention */
        if (acc_reference_init(&ref, &L) != 0) {
            snprintf(err, (size_t)err_len, "out of memory");
            return RK_ERR_OUT_OF_MEMORY;
        }
        pref = &ref;
    }
    rk_status st = acc_run(&o, &L, pref, (acc_method)method, rank, keep, NULL, out, err, err_len);
    acc_reference_free(&ref);
    return st;
}
