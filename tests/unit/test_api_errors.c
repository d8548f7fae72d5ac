/* Every error path of the public API returns its specific status and a message, never crashes. */
#include "rk_test.h"
#include "rotatek.h"

#include <stdlib.h>
#include <string.h>

enum { B = 2, HQ = 4, HKV = 2, D = 16, DV = 8, R = 4, T = 12 };

static rk_context *ctx;

static rk_buffer *upload_f32(const float *x, size_t n) {
    rk_buffer *b = NULL;
    if (rk_buffer_alloc(ctx, n * sizeof(float), &b) == RK_OK) rk_buffer_upload(b, 0, x, n * sizeof(float));
    return b;
}

static void fill(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * (float)((i * 7919u) % 97) / 97.0f - 0.5f * scale;
}

static void test_handles_and_backends(void) {
    CHECK(rk_context_create(NULL, 0, NULL, &ctx) == RK_ERR_NULL_ARG, "NULL backend");
    CHECK(rk_context_create("cpu", 0, NULL, NULL) == RK_ERR_NULL_ARG, "NULL out");
    rk_context *c = (rk_context *)1;
    CHECK(rk_context_create("nope", 0, NULL, &c) == RK_ERR_INVALID_ARG && c == NULL, "unknown backend");
    CHECK(rk_context_create("cpu", 7, NULL, &c) == RK_ERR_DEVICE_NOT_FOUND, "device index");
    size_t n = 99;
    CHECK(rk_device_count("cpu", &n) == RK_OK && n == 1, "cpu has one device");
    CHECK(rk_device_count("vulkan", &n) == RK_ERR_BACKEND_NOT_BUILT && n == 0, "vulkan not built");
    char name[8];
    CHECK(rk_device_name("cpu", 3, name, sizeof name) == RK_ERR_DEVICE_NOT_FOUND, "device name index");
    rk_context_options o;
    rk_context_options_init(&o);
    o.n_threads = -1;
    CHECK(rk_context_create("cpu", 0, &o, &c) == RK_ERR_INVALID_ARG, "negative threads");
    o.n_threads = 2;
    o.struct_size = 1;
    CHECK(rk_context_create("cpu", 0, &o, &c) == RK_ERR_INVALID_ARG, "bad struct_size");
    /* destroy/free accept NULL */
    rk_context_destroy(NULL);
    rk_buffer_free(NULL);
    rk_rotation_destroy(NULL);
    CHECK(rk_context_synchronize(NULL) == RK_ERR_NULL_ARG, "sync NULL");
    CHECK(strcmp(rk_context_last_error(NULL), "") == 0, "last_error(NULL)");
}

static void test_buffers(void) {
    rk_buffer *b = NULL;
    CHECK_STATUS(rk_buffer_alloc(ctx, 0, &b), RK_ERR_INVALID_ARG, ctx);
    CHECK(strstr(rk_context_last_error(ctx), "RK_ERR_INVALID_ARG") != NULL, "message names status: %s",
          rk_context_last_error(ctx));
    CHECK_STATUS(rk_buffer_alloc(ctx, 64, NULL), RK_ERR_NULL_ARG, ctx);
    CHECK_STATUS(rk_buffer_alloc(ctx, (size_t)1 << 62, &b), RK_ERR_OUT_OF_MEMORY, ctx);
    CHECK_STATUS(rk_buffer_alloc(ctx, 64, &b), RK_OK, ctx);
    char tmp[80] = {0};
    CHECK_STATUS(rk_buffer_upload(b, 60, tmp, 8), RK_ERR_OUT_OF_RANGE, ctx);
    CHECK_STATUS(rk_buffer_download(b, 0, tmp, 80), RK_ERR_OUT_OF_RANGE, ctx);
    CHECK_STATUS(rk_buffer_upload(b, 0, NULL, 8), RK_ERR_NULL_ARG, ctx);
    CHECK(rk_buffer_size(b) == 64, "size");
    rk_tensor t;
    CHECK(rk_tensor_init(&t, b, 0, RK_F32, 1, 1, 0, 4, RK_LAYOUT_BHTC) == RK_ERR_INVALID_ARG, "zero extent");
    CHECK(rk_tensor_init(&t, b, 0, (rk_dtype)7, 1, 1, 1, 4, RK_LAYOUT_BHTC) == RK_ERR_DTYPE_MISMATCH, "dtype");
    rk_buffer_free(b);
}

static void test_rotation_config(void) {
    rk_rotation_config cfg;
    rk_rotation_config_init(&cfg);
    rk_rotation *rot = NULL;
    cfg.n_seq = B; cfg.n_kv_heads = HKV; cfg.n_q_heads = HQ; cfg.head_dim = D; cfg.rank = R;
    cfg.rank = D + 1;
    CHECK_STATUS(rk_rotation_create(ctx, &cfg, &rot), RK_ERR_INVALID_RANK, ctx);
    cfg.rank = 0;
    CHECK_STATUS(rk_rotation_create(ctx, &cfg, &rot), RK_ERR_INVALID_RANK, ctx);
    cfg.rank = R;
    cfg.n_q_heads = 3;
    CHECK_STATUS(rk_rotation_create(ctx, &cfg, &rot), RK_ERR_HEAD_MISMATCH, ctx);
    cfg.n_q_heads = HQ;
    cfg.struct_size = 4;
    CHECK_STATUS(rk_rotation_create(ctx, &cfg, &rot), RK_ERR_INVALID_ARG, ctx);
    rk_rotation_config_init(&cfg);
    cfg.n_seq = B; cfg.n_kv_heads = HKV; cfg.n_q_heads = HQ; cfg.head_dim = D; cfg.rank = 8;
    cfg.budget = 4; /* below heads × multiple */
    CHECK_STATUS(rk_rotation_create(ctx, &cfg, &rot), RK_ERR_INVALID_ARG, ctx);
    CHECK_STATUS(rk_rotation_create(ctx, NULL, &rot), RK_ERR_NULL_ARG, ctx);
    CHECK(rot == NULL, "no object on failure");
}

static void test_rotation_states_and_inputs(void) {
    rk_rotation_config cfg;
    rk_rotation_config_init(&cfg);
    cfg.n_seq = B; cfg.n_kv_heads = HKV; cfg.n_q_heads = HQ; cfg.head_dim = D; cfg.rank = R;
    rk_rotation *rot = NULL;
    CHECK_STATUS(rk_rotation_create(ctx, &cfg, &rot), RK_OK, ctx);
    float R_out[B * HKV * D * R];
    CHECK_STATUS(rk_rotation_get_basis(rot, R_out, NULL), RK_ERR_BAD_STATE, ctx);
    CHECK_STATUS(rk_rotation_finalize(rot), RK_ERR_BAD_STATE, ctx); /* nothing accumulated */

    float keys[B * HKV * T * D];
    fill(keys, B * HKV * T * D, 2.0f);
    rk_buffer *kb = upload_f32(keys, B * HKV * T * D);
    rk_tensor kt;
    rk_tensor_init(&kt, kb, 0, RK_F32, B, HKV, T, D, RK_LAYOUT_BHTC);
    int32_t too_long[B] = {T + 1, 2};
    CHECK_STATUS(rk_rotation_accumulate(rot, &kt, too_long), RK_ERR_OUT_OF_RANGE, ctx);
    rk_tensor wrong = kt;
    wrong.ne[3] = D / 2;
    CHECK_STATUS(rk_rotation_accumulate(rot, &wrong, NULL), RK_ERR_SHAPE_MISMATCH, ctx);
    wrong = kt;
    wrong.ne[2] = T * 4; /* view past the buffer's end */
    CHECK_STATUS(rk_rotation_accumulate(rot, &wrong, NULL), RK_ERR_OUT_OF_RANGE, ctx);
    wrong = kt;
    wrong.nb[3] = 2;
    CHECK_STATUS(rk_rotation_accumulate(rot, &wrong, NULL), RK_ERR_BAD_LAYOUT, ctx);
    CHECK_STATUS(rk_rotation_accumulate(rot, NULL, NULL), RK_ERR_NULL_ARG, ctx);

    float nan_keys[B * HKV * T * D];
    memcpy(nan_keys, keys, sizeof keys);
    nan_keys[5 * D + 3] = NAN;
    rk_buffer *nb = upload_f32(nan_keys, B * HKV * T * D);
    rk_tensor nt = kt;
    nt.buf = nb;
    CHECK_STATUS(rk_rotation_accumulate(rot, &nt, NULL), RK_ERR_NON_FINITE, ctx);

    CHECK_STATUS(rk_rotation_accumulate(rot, &kt, NULL), RK_OK, ctx);
    /* query-weighted PCA without observed queries */
    CHECK_STATUS(rk_rotation_finalize(rot), RK_ERR_BAD_STATE, ctx);
    float q[B * HQ * 3 * D];
    fill(q, B * HQ * 3 * D, 1.0f);
    rk_buffer *qb = upload_f32(q, B * HQ * 3 * D);
    rk_tensor qt;
    rk_tensor_init(&qt, qb, 0, RK_F32, B, HQ, 3, D, RK_LAYOUT_BHTC);
    rk_tensor qwrong = qt;
    qwrong.ne[1] = HKV;
    CHECK_STATUS(rk_rotation_observe(rot, &qwrong, NULL), RK_ERR_SHAPE_MISMATCH, ctx);
    q[7] = INFINITY;
    rk_buffer_upload(qb, 0, q, sizeof q);
    CHECK_STATUS(rk_rotation_observe(rot, &qt, NULL), RK_ERR_NON_FINITE, ctx);
    q[7] = 0.5f;
    rk_buffer_upload(qb, 0, q, sizeof q);
    CHECK_STATUS(rk_rotation_observe(rot, &qt, NULL), RK_OK, ctx);
    CHECK_STATUS(rk_rotation_finalize(rot), RK_OK, ctx);
    CHECK_STATUS(rk_rotation_finalize(rot), RK_ERR_BAD_STATE, ctx);
    CHECK_STATUS(rk_rotation_accumulate(rot, &kt, NULL), RK_ERR_BAD_STATE, ctx);

    /* compress: dtype mismatch, capacity, offset */
    rk_buffer *cb = NULL;
    rk_buffer_alloc(ctx, B * HKV * T * R * sizeof(float), &cb);
    rk_tensor ct;
    rk_tensor_init(&ct, cb, 0, RK_F32, B, HKV, T, R, RK_LAYOUT_BHTC);
    CHECK_STATUS(rk_compress(ctx, rot, &kt, &ct, 1), RK_ERR_OUT_OF_RANGE, ctx);
    CHECK_STATUS(rk_compress(ctx, rot, &kt, &ct, -1), RK_ERR_OUT_OF_RANGE, ctx);
    rk_tensor c16 = ct;
    c16.dtype = RK_F16;
    CHECK_STATUS(rk_compress(ctx, rot, &kt, &c16, 0), RK_ERR_DTYPE_MISMATCH, ctx);
    rk_tensor cwide = ct;
    cwide.ne[3] = R + 1;
    CHECK_STATUS(rk_compress(ctx, rot, &kt, &cwide, 0), RK_ERR_SHAPE_MISMATCH, ctx);
    CHECK_STATUS(rk_compress(ctx, rot, &kt, &ct, 0), RK_OK, ctx);
    CHECK_STATUS(rk_compress(ctx, rot, &nt, &ct, 0), RK_ERR_NON_FINITE, ctx);

    /* a second context's buffers are rejected */
    rk_context *other = NULL;
    rk_context_create("cpu", 0, NULL, &other);
    rk_buffer *ob = NULL;
    rk_buffer_alloc(other, sizeof keys, &ob);
    rk_tensor ot = kt;
    ot.buf = ob;
    CHECK_STATUS(rk_compress(ctx, rot, &ot, &ct, 0), RK_ERR_WRONG_CONTEXT, ctx);
    rk_buffer_free(ob);
    rk_context_destroy(other);

    rk_buffer_free(kb); rk_buffer_free(nb); rk_buffer_free(qb); rk_buffer_free(cb);
    rk_rotation_destroy(rot);
}

static void test_decode_inputs(void) {
    rk_rotation_config cfg;
    rk_rotation_config_init(&cfg);
    cfg.n_seq = B; cfg.n_kv_heads = HKV; cfg.n_q_heads = HQ; cfg.head_dim = D; cfg.rank = R;
    rk_rotation *rot = NULL;
    rk_rotation_create(ctx, &cfg, &rot);
    float Rb[B * HKV * D * R] = {0}, dmu[B * HKV * D] = {0};
    for (int h = 0; h < B * HKV; h++)
        for (int j = 0; j < R; j++) Rb[h * D * R + j * R + j] = 1;
    CHECK_STATUS(rk_rotation_set_basis(rot, Rb, dmu), RK_OK, ctx);

    float q[B * HQ * D], kf[B * HKV * T * D], ks[B * HKV * T * R], v[B * HKV * T * DV];
    fill(q, B * HQ * D, 1); fill(kf, B * HKV * T * D, 1); fill(ks, B * HKV * T * R, 1);
    fill(v, B * HKV * T * DV, 1);
    rk_buffer *qb = upload_f32(q, B * HQ * D), *kfb = upload_f32(kf, B * HKV * T * D);
    rk_buffer *ksb = upload_f32(ks, B * HKV * T * R), *vb = upload_f32(v, B * HKV * T * DV);
    rk_buffer *ob = NULL, *lb = NULL;
    rk_buffer_alloc(ctx, B * HQ * DV * sizeof(float), &ob);
    rk_buffer_alloc(ctx, B * HQ * sizeof(float), &lb);
    rk_tensor qt, kft, kst, vt, ot, lt;
    rk_tensor_init(&qt, qb, 0, RK_F32, B, HQ, 1, D, RK_LAYOUT_BHTC);
    rk_tensor_init(&kft, kfb, 0, RK_F32, B, HKV, T, D, RK_LAYOUT_BHTC);
    rk_tensor_init(&kst, ksb, 0, RK_F32, B, HKV, T, R, RK_LAYOUT_BHTC);
    rk_tensor_init(&vt, vb, 0, RK_F32, B, HKV, T, DV, RK_LAYOUT_BHTC);
    rk_tensor_init(&ot, ob, 0, RK_F32, B, HQ, 1, DV, RK_LAYOUT_BHTC);
    rk_tensor_init(&lt, lb, 0, RK_F32, B, HQ, 1, 1, RK_LAYOUT_BHTC);
    rk_seq_info seqs[B] = {{T, 2, 5}, {T - 1, 0, 0}};
    rk_decode_args a;
    rk_decode_args_init(&a);
    a.q = &qt; a.k_full = &kft; a.k_span = &kst; a.v = &vt; a.rot = rot; a.seqs = seqs;
    a.out = &ot; a.lse = &lt;
    CHECK_STATUS(rk_decode_sparse(ctx, &a), RK_OK, ctx);
    CHECK_STATUS(rk_decode_dense(ctx, &a), RK_OK, ctx);

    rk_decode_args bad = a;
    bad.struct_size = 8;
    CHECK_STATUS(rk_decode_sparse(ctx, &bad), RK_ERR_INVALID_ARG, ctx);
    CHECK_STATUS(rk_decode_sparse(ctx, NULL), RK_ERR_NULL_ARG, ctx);
    CHECK_STATUS(rk_decode_sparse(NULL, &a), RK_ERR_NULL_ARG, NULL);
    bad = a; bad.q = NULL;
    CHECK_STATUS(rk_decode_sparse(ctx, &bad), RK_ERR_NULL_ARG, ctx);
    bad = a; bad.rot = NULL;
    CHECK_STATUS(rk_decode_sparse(ctx, &bad), RK_ERR_NULL_ARG, ctx);
    /* head counts that do not divide */
    rk_tensor q3 = qt;
    q3.ne[1] = 3;
    rk_tensor o3 = ot;
    o3.ne[1] = 3;
    bad = a; bad.q = &q3; bad.out = &o3; bad.lse = NULL;
    CHECK_STATUS(rk_decode_dense(ctx, &bad), RK_ERR_HEAD_MISMATCH, ctx);
    /* mismatched dtypes and shapes */
    rk_tensor v16 = vt;
    v16.dtype = RK_F16;
    bad = a; bad.v = &v16;
    CHECK_STATUS(rk_decode_sparse(ctx, &bad), RK_ERR_DTYPE_MISMATCH, ctx);
    rk_tensor l16 = lt;
    l16.dtype = RK_F16;
    bad = a; bad.lse = &l16;
    CHECK_STATUS(rk_decode_sparse(ctx, &bad), RK_ERR_DTYPE_MISMATCH, ctx);
    rk_tensor ks_wide = kst;
    ks_wide.ne[3] = R * 2;
    ks_wide.ne[2] = T / 2;
    bad = a; bad.k_span = &ks_wide;
    CHECK_STATUS(rk_decode_sparse(ctx, &bad), RK_ERR_SHAPE_MISMATCH, ctx);
    rk_tensor o_wrong = ot;
    o_wrong.ne[3] = DV / 2;
    bad = a; bad.out = &o_wrong;
    CHECK_STATUS(rk_decode_sparse(ctx, &bad), RK_ERR_SHAPE_MISMATCH, ctx);
    /* lengths beyond capacity */
    rk_seq_info s_long[B] = {{T + 1, 0, 2}, {4, 0, 0}};
    bad = a; bad.seqs = s_long;
    CHECK_STATUS(rk_decode_sparse(ctx, &bad), RK_ERR_OUT_OF_RANGE, ctx);
    rk_seq_info s_span[B] = {{T, 8, 5}, {4, 0, 0}};
    bad = a; bad.seqs = s_span;
    CHECK_STATUS(rk_decode_sparse(ctx, &bad), RK_ERR_OUT_OF_RANGE, ctx);
    rk_seq_info s_zero[B] = {{0, 0, 0}, {4, 0, 0}};
    bad = a; bad.seqs = s_zero;
    CHECK_STATUS(rk_decode_sparse(ctx, &bad), RK_ERR_INVALID_ARG, ctx);
    bad = a; bad.n_split = -2;
    CHECK_STATUS(rk_decode_sparse(ctx, &bad), RK_ERR_INVALID_ARG, ctx);
    bad = a; bad.scale = NAN;
    CHECK_STATUS(rk_decode_sparse(ctx, &bad), RK_ERR_INVALID_ARG, ctx);
    /* non-finite inputs */
    q[3] = NAN;
    rk_buffer_upload(qb, 0, q, sizeof q);
    CHECK_STATUS(rk_decode_sparse(ctx, &a), RK_ERR_NON_FINITE, ctx);
    CHECK_STATUS(rk_decode_dense(ctx, &a), RK_ERR_NON_FINITE, ctx);
    /* SparK baseline needs observed queries */
    rk_buffer *ib = NULL, *fb = NULL;
    rk_buffer_alloc(ctx, B * HKV * T * R * 4, &ib);
    rk_buffer_alloc(ctx, B * HKV * T * 4, &fb);
    rk_tensor it, ft;
    rk_tensor_init(&it, ib, 0, RK_I32, B, HKV, T, R, RK_LAYOUT_BHTC);
    rk_tensor_init(&ft, fb, 0, RK_F32, B, HKV, T, 1, RK_LAYOUT_BHTC);
    CHECK_STATUS(rk_spark_compress(ctx, rot, &kft, &kst, &it, &ft, 0), RK_ERR_BAD_STATE, ctx);
    CHECK_STATUS(rk_spark_compress(ctx, rot, &kft, &kst, &kst, &ft, 0), RK_ERR_DTYPE_MISMATCH, ctx);
    CHECK_STATUS(rk_decode_spark(ctx, &a, &kst, NULL, &ft), RK_ERR_NULL_ARG, ctx);

    rk_buffer_free(qb); rk_buffer_free(kfb); rk_buffer_free(ksb); rk_buffer_free(vb);
    rk_buffer_free(ob); rk_buffer_free(lb); rk_buffer_free(ib); rk_buffer_free(fb);
    rk_rotation_destroy(rot);
}

int main(void) {
    test_handles_and_backends();
    CHECK(rk_context_create("cpu", 0, NULL, &ctx) == RK_OK, "cpu context");
    if (!ctx) return rk_test_done("test_api_errors");
    test_buffers();
    test_rotation_config();
    test_rotation_states_and_inputs();
    test_decode_inputs();
    rk_context_destroy(ctx);
    return rk_test_done("test_api_errors");
}
