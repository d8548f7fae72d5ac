/* Contexts are independent: two threads, each with its own context, run the same fit + compress +
 * decode concurrently and must get bit-identical results to a serial run. */
#include "rk_test.h"
#include "rotatek.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { B = 1, HQ = 4, HKV = 2, D = 32, R = 8, T = 300, ROUNDS = 20 };

static float keys[B * HKV * T * D], vals[B * HKV * T * D], q[B * HQ * D];

typedef struct job {
    float out[B * HQ * D];
    rk_status st;
} job;

static rk_status run_once(float *out) {
    rk_context *ctx = NULL;
    rk_context_options o;
    rk_context_options_init(&o);
    o.n_threads = 1;
    rk_status st = rk_context_create("cpu", 0, &o, &ctx);
    if (st != RK_OK) return st;
    rk_buffer *kb = NULL, *vb = NULL, *qb = NULL, *cb = NULL, *ob = NULL;
    rk_rotation *rot = NULL;
    rk_rotation_config cfg;
    rk_rotation_config_init(&cfg);
    cfg.n_seq = B; cfg.n_kv_heads = HKV; cfg.n_q_heads = HQ; cfg.head_dim = D; cfg.rank = R;
    cfg.method = RK_METHOD_PCA_PLAIN;
    rk_tensor kt, vt, qt, ct, ot;
    if ((st = rk_buffer_alloc(ctx, sizeof keys, &kb)) || (st = rk_buffer_alloc(ctx, sizeof vals, &vb)) ||
        (st = rk_buffer_alloc(ctx, sizeof q, &qb)) || (st = rk_buffer_alloc(ctx, B * HKV * T * R * 4, &cb)) ||
        (st = rk_buffer_alloc(ctx, sizeof q, &ob)))
        goto done;
    rk_buffer_upload(kb, 0, keys, sizeof keys);
    rk_buffer_upload(vb, 0, vals, sizeof vals);
    rk_buffer_upload(qb, 0, q, sizeof q);
    rk_tensor_init(&kt, kb, 0, RK_F32, B, HKV, T, D, RK_LAYOUT_BHTC);
    rk_tensor_init(&vt, vb, 0, RK_F32, B, HKV, T, D, RK_LAYOUT_BHTC);
    rk_tensor_init(&qt, qb, 0, RK_F32, B, HQ, 1, D, RK_LAYOUT_BHTC);
    rk_tensor_init(&ct, cb, 0, RK_F32, B, HKV, T, R, RK_LAYOUT_BHTC);
    rk_tensor_init(&ot, ob, 0, RK_F32, B, HQ, 1, D, RK_LAYOUT_BHTC);
    if ((st = rk_rotation_create(ctx, &cfg, &rot)) || (st = rk_rotation_accumulate(rot, &kt, NULL)) ||
        (st = rk_rotation_finalize(rot)) || (st = rk_compress(ctx, rot, &kt, &ct, 0)))
        goto done;
    rk_seq_info s = {T, 10, T - 20};
    rk_decode_args a;
    rk_decode_args_init(&a);
    a.q = &qt; a.k_full = &kt; a.k_span = &ct; a.v = &vt; a.rot = rot; a.seqs = &s; a.out = &ot;
    if ((st = rk_decode_sparse(ctx, &a))) goto done;
    st = rk_buffer_download(ob, 0, out, sizeof q);
done:
    rk_rotation_destroy(rot);
    rk_buffer_free(kb); rk_buffer_free(vb); rk_buffer_free(qb); rk_buffer_free(cb); rk_buffer_free(ob);
    rk_context_destroy(ctx);
    return st;
}

static void *worker(void *arg) {
    job *j = arg;
    for (int i = 0; i < ROUNDS && j->st == RK_OK; i++) j->st = run_once(j->out);
    return NULL;
}

int main(void) {
    for (size_t i = 0; i < sizeof keys / 4; i++) keys[i] = (float)sin(0.37 * i) + 0.1f * (float)(i % 7);
    for (size_t i = 0; i < sizeof vals / 4; i++) vals[i] = (float)cos(0.11 * i);
    for (size_t i = 0; i < sizeof q / 4; i++) q[i] = (float)sin(1.3 * i);
    float serial[B * HQ * D];
    CHECK(run_once(serial) == RK_OK, "serial run");
    job jobs[2] = {{{0}, RK_OK}, {{0}, RK_OK}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, worker, &jobs[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        CHECK(jobs[i].st == RK_OK, "thread %d: %s", i, rk_status_name(jobs[i].st));
        CHECK(memcmp(jobs[i].out, serial, sizeof serial) == 0, "thread %d result differs from serial", i);
    }
    return rk_test_done("test_threads");
}
