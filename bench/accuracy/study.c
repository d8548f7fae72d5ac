/* See study.h. Host buffers are float32 mirrors of what the library stores; the metrics and the
 * host rebuild run in double. */
#include "study.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const acc_names[ACC_METHOD_COUNT] = {
    "dense", "rotatek-qw", "rotatek-qw-fast", "rotatek-plain", "rotatek-plain-fast",
    "think", "spark", "random", "tokens-only", "tokens+rotatek"};

const char *acc_method_name(acc_method m) {
    return (unsigned)m < ACC_METHOD_COUNT ? acc_names[m] : "?";
}

int acc_method_from_name(const char *name) {
    for (int m = 0; m < ACC_METHOD_COUNT; m++)
        if (strcmp(name, acc_names[m]) == 0) return m;
    return -1;
}

int acc_method_drops_tokens(acc_method m) { return m == ACC_TOKENS_ONLY || m == ACC_TOKENS_JOINT; }

int acc_method_prunes_channels(acc_method m) { return m != ACC_DENSE && m != ACC_TOKENS_ONLY; }

void acc_options_init(acc_options *o, rk_context *ctx) {
    memset(o, 0, sizeof *o);
    o->ctx = ctx;
    o->dtype = RK_F16;
    o->span_begin = 1; /* [CLS] and [SEP] stay full width, like a VLM's text tokens */
    o->span_tail = 1;
    o->topk = 8;
    o->window = 0;
    o->pool = 7;
    o->joint_rank = 0; /* 0 = d / 4 */
}

/* ---- dense reference ------------------------------------------------------------------------ */

/* p [n] = softmax(logits [n]) in place. */
static void acc_softmax(double *p, int n) {
    double m = -INFINITY, s = 0;
    for (int j = 0; j < n; j++) m = p[j] > m ? p[j] : m;
    for (int j = 0; j < n; j++) s += (p[j] = exp(p[j] - m));
    for (int j = 0; j < n; j++) p[j] /= s;
}

int acc_reference_init(acc_reference *ref, const acc_layer *L) {
    int H = L->H, T = L->T, d = L->d, dv = L->dv;
    ref->p = malloc(sizeof(double) * (size_t)H * T * T);
    ref->out = calloc((size_t)H * T * dv, sizeof(double));
    if (!ref->p || !ref->out) {
        acc_reference_free(ref);
        return -1;
    }
    double scale = 1.0 / sqrt((double)d);
    for (int h = 0; h < H; h++)
        for (int i = 0; i < T; i++) {
            const float *q = L->q + ((size_t)h * T + i) * d;
            double *p = ref->p + ((size_t)h * T + i) * T, *o = ref->out + ((size_t)h * T + i) * dv;
            for (int j = 0; j < T; j++) {
                const float *k = L->k + ((size_t)h * T + j) * d;
                double s = 0;
                for (int c = 0; c < d; c++) s += (double)q[c] * k[c];
                p[j] = s * scale;
            }
            acc_softmax(p, T);
            for (int j = 0; j < T; j++) {
                const float *v = L->v + ((size_t)h * T + j) * dv;
                for (int c = 0; c < dv; c++) o[c] += p[j] * v[c];
            }
        }
    return 0;
}

void acc_reference_free(acc_reference *ref) {
    free(ref->p);
    free(ref->out);
    ref->p = ref->out = NULL;
}

/* ---- helpers -------------------------------------------------------------------------------- */

void acc_apply_rope(float *x, int H, int T, int d, double base) {
    int half = d / 2;
    for (int h = 0; h < H; h++)
        for (int t = 0; t < T; t++) {
            float *row = x + ((size_t)h * T + t) * d;
            for (int i = 0; i < half; i++) {
                double theta = t * pow(base, -2.0 * i / d);
                double c = cos(theta), s = sin(theta), a = row[i], b = row[i + half];
                row[i] = (float)(a * c - b * s);
                row[i + half] = (float)(a * s + b * c);
            }
        }
}

double acc_kv_bytes_fraction(acc_method m, int d, int dv, int rank, int keep, int span_len,
                             int es) {
    double dense = (double)(d + dv) * es, tokens = (double)keep / span_len;
    switch (m) {
    case ACC_DENSE: return 1.0;
    case ACC_TOKENS_ONLY: return tokens;
    case ACC_TOKENS_JOINT: return tokens * (rank + dv) * es / dense;
    case ACC_SPARK: return ((double)rank * es + rank * 4.0 + 4.0 + (double)dv * es) / dense;
    default: return (double)(rank + dv) * es / dense;
    }
}

/* The storage dtype's rounding of n floats, so host mirrors match the device's data. */
static void acc_round(rk_dtype dt, float *x, size_t n, void *scratch) {
    rk_convert_from_f32(dt, scratch, x, n);
    rk_convert_to_f32(dt, x, scratch, n);
}

/* Library objects of one run, released together. */
typedef struct acc_run_state {
    rk_buffer *bufs[12];
    int n_bufs;
    rk_rotation *rot;
} acc_run_state;

static rk_status acc_upload(rk_context *ctx, acc_run_state *s, rk_dtype dt, const void *host,
                            size_t n, rk_buffer **out) {
    size_t es = rk_dtype_size(dt), bytes = n * es;
    rk_status st = rk_buffer_alloc(ctx, bytes, out);
    if (st != RK_OK) return st;
    s->bufs[s->n_bufs++] = *out;
    if (!host) return RK_OK;
    if (dt == RK_F32 || dt == RK_I32) return rk_buffer_upload(*out, 0, host, bytes);
    void *tmp = malloc(bytes);
    if (!tmp) return RK_ERR_OUT_OF_MEMORY;
    st = rk_convert_from_f32(dt, tmp, host, n);
    if (st == RK_OK) st = rk_buffer_upload(*out, 0, tmp, bytes);
    free(tmp);
    return st;
}

static rk_status acc_download_f32(rk_dtype dt, const rk_buffer *buf, float *dst, size_t n) {
    size_t es = rk_dtype_size(dt);
    void *tmp = malloc(n * es);
    if (!tmp) return RK_ERR_OUT_OF_MEMORY;
    rk_status st = rk_buffer_download(buf, 0, tmp, n * es);
    if (st == RK_OK) st = rk_convert_to_f32(dt, dst, tmp, n);
    free(tmp);
    return st;
}

/* SnapKV-style selection: score span tokens by the dense attention of the window's queries,
 * max-pool the scores over neighbours, keep the `keep` best (ascending positions) per head. */
static rk_status acc_select_tokens(const acc_options *o, const acc_layer *L,
                                   const acc_reference *ref, int sb, int S, int keep,
                                   int *sel /* [H][keep] */) {
    int T = L->T, W = (o->window > 0 && o->window < T) ? o->window : T, rad = o->pool / 2;
    double *score = malloc(sizeof(double) * (size_t)S * 2);
    char *taken = malloc((size_t)S);
    if (!score || !taken) {
        free(score);
        free(taken);
        return RK_ERR_OUT_OF_MEMORY;
    }
    double *pooled = score + S;
    for (int h = 0; h < L->H; h++) {
        for (int j = 0; j < S; j++) {
            double s = 0;
            for (int i = T - W; i < T; i++) s += ref->p[((size_t)h * T + i) * T + sb + j];
            score[j] = s;
        }
        for (int j = 0; j < S; j++) {
            double m = score[j];
            for (int k = j - rad; k <= j + rad; k++)
                if (k >= 0 && k < S && score[k] > m) m = score[k];
            pooled[j] = m + 1e-12 * score[j]; /* raw score breaks ties inside a pooled plateau */
        }
        memset(taken, 0, (size_t)S);
        for (int n = 0; n < keep; n++) {
            int best = -1;
            for (int j = 0; j < S; j++)
                if (!taken[j] && (best < 0 || pooled[j] > pooled[best])) best = j;
            if (best < 0) break;
            taken[best] = 1;
        }
        for (int j = 0, n = 0; j < S; j++)
            if (taken[j]) sel[(size_t)h * keep + n++] = sb + j;
    }
    free(score);
    free(taken);
    return RK_OK;
}

static int acc_top_overlap(const double *a, const double *b, int n, int k, int *ia, int *ib) {
    for (int pass = 0; pass < 2; pass++) {
        const double *x = pass ? b : a;
        int *idx = pass ? ib : ia;
        for (int t = 0; t < k; t++) {
            int best = -1;
            for (int j = 0; j < n; j++) {
                int used = 0;
                for (int u = 0; u < t && !used; u++) used = idx[u] == j;
                if (!used && (best < 0 || x[j] > x[best])) best = j;
            }
            idx[t] = best;
        }
    }
    int common = 0;
    for (int s = 0; s < k; s++)
        for (int t = 0; t < k; t++) common += ia[s] == ib[t];
    return common;
}

#define ACC_TRY(call)                                                                             \
    do {                                                                                          \
        st = (call);                                                                              \
        if (st != RK_OK) goto done;                                                               \
    } while (0)

rk_status acc_run(const acc_options *o, const acc_layer *L, const acc_reference *ref,
                  acc_method m, int rank, int keep, acc_metrics *per_head, float *lib_out,
                  char *err, int err_len) {
    rk_context *ctx = o->ctx;
    const int H = L->H, T = L->T, d = L->d, dv = L->dv;
    const int sb = o->span_begin, S = T - o->span_tail - sb, Tf = T - S;
    const rk_dtype dt = o->dtype;
    const int drops = acc_method_drops_tokens(m), sparse = acc_method_prunes_channels(m);
    const int spark = m == ACC_SPARK;
    if (m == ACC_TOKENS_JOINT) rank = o->joint_rank > 0 ? o->joint_rank : d / 4;
    if (!drops) keep = S;
    err[0] = '\0';
    if (S < 1 || keep < 1 || keep > S || (sparse && (rank < 1 || rank > d)) ||
        (!ref && (per_head || drops))) {
        snprintf(err, (size_t)err_len, "bad run: span %d tokens, keep %d, rank %d of %d", S, keep,
                 rank, d);
        return RK_ERR_INVALID_ARG;
    }
    const int Tk = Tf + keep; /* tokens the decode sees */

    acc_run_state rs = {{0}, 0, NULL};
    rk_status st = RK_OK;
    size_t nq = (size_t)H * T * d, nv = (size_t)H * T * dv;
    float *qr = malloc(sizeof(float) * nq), *kr = malloc(sizeof(float) * nq);
    float *vr = malloc(sizeof(float) * nv), *scratch = malloc(sizeof(float) * (nq + nv));
    int *pos = malloc(sizeof(int) * (size_t)H * Tk), *sel = malloc(sizeof(int) * (size_t)H * keep);
    float *kfull = malloc(sizeof(float) * (size_t)H * Tk * d);
    float *kspan = malloc(sizeof(float) * (size_t)H * S * d);
    float *vk = malloc(sizeof(float) * (size_t)H * Tk * dv);
    float *qobs = malloc(sizeof(float) * nq);
    float *out = malloc(sizeof(float) * (size_t)H * T * dv);
    float *cache = malloc(sizeof(float) * (size_t)H * keep * d);
    int32_t *cidx = malloc(sizeof(int32_t) * (size_t)H * keep * d);
    float *cfill = malloc(sizeof(float) * (size_t)H * keep);
    float *R = malloc(sizeof(float) * (size_t)H * d * d), *dmu = malloc(sizeof(float) * (size_t)H * d);
    double *khat = malloc(sizeof(double) * (size_t)Tk * d), *phat = malloc(sizeof(double) * T);
    double *logit = malloc(sizeof(double) * Tk), *ohost = malloc(sizeof(double) * dv);
    int *ia = malloc(sizeof(int) * T), *ib = malloc(sizeof(int) * T);
    if (!qr || !kr || !vr || !scratch || !pos || !sel || !kfull || !kspan || !vk || !qobs || !out ||
        !cache || !cidx || !cfill || !R || !dmu || !khat || !phat || !logit || !ohost || !ia || !ib) {
        st = RK_ERR_OUT_OF_MEMORY;
        goto done;
    }

    /* Host mirrors of the stored Q, K, V. */
    memcpy(qr, L->q, sizeof(float) * nq);
    memcpy(kr, L->k, sizeof(float) * nq);
    memcpy(vr, L->v, sizeof(float) * nv);
    acc_round(dt, qr, nq, scratch);
    acc_round(dt, kr, nq, scratch);
    acc_round(dt, vr, nv, scratch);

    /* Which tokens each head keeps, in position order; the span's kept rows sit at [sb, sb+keep). */
    if (drops) ACC_TRY(acc_select_tokens(o, L, ref, sb, S, keep, sel));
    for (int h = 0; h < H; h++) {
        int *p = pos + (size_t)h * Tk, n = 0;
        for (int t = 0; t < sb; t++) p[n++] = t;
        for (int j = 0; j < keep; j++) p[n++] = drops ? sel[(size_t)h * keep + j] : sb + j;
        for (int t = sb + S; t < T; t++) p[n++] = t;
    }
    /* k_full: all kept tokens when Keys stay full width, else the tokens outside the span. */
    const int Tkf = sparse ? Tf : Tk; /* rows of k_full per head */
    for (int h = 0; h < H; h++) {
        const int *p = pos + (size_t)h * Tk;
        for (int n = 0, row = 0; n < Tk; n++) {
            int in_span = n >= sb && n < sb + keep;
            if (sparse && in_span) continue;
            memcpy(kfull + ((size_t)h * Tkf + row++) * d, L->k + ((size_t)h * T + p[n]) * d,
                   sizeof(float) * d);
        }
        for (int n = 0; n < Tk; n++)
            memcpy(vk + ((size_t)h * Tk + n) * dv, L->v + ((size_t)h * T + p[n]) * dv,
                   sizeof(float) * dv);
        for (int j = 0; j < S; j++) /* every span token: the basis sees the whole prefill span */
            memcpy(kspan + ((size_t)h * S + j) * d, L->k + ((size_t)h * T + sb + j) * d,
                   sizeof(float) * d);
    }
    int W = (o->window > 0 && o->window < T) ? o->window : T;
    for (size_t i = 0; i < nq; i++) qobs[i] = ((int)(i / (size_t)d % (size_t)T) >= T - W) ? L->q[i] : 0.0f;

    rk_buffer *bq, *bobs, *bkf, *bks, *bkk = NULL, *bv, *bout, *bcache = NULL, *bidx = NULL, *bfill = NULL;
    ACC_TRY(acc_upload(ctx, &rs, dt, L->q, nq, &bq));
    ACC_TRY(acc_upload(ctx, &rs, dt, qobs, nq, &bobs));
    ACC_TRY(acc_upload(ctx, &rs, dt, kfull, (size_t)H * Tkf * d, &bkf));
    ACC_TRY(acc_upload(ctx, &rs, dt, kspan, (size_t)H * S * d, &bks));
    ACC_TRY(acc_upload(ctx, &rs, dt, vk, (size_t)H * Tk * dv, &bv));
    ACC_TRY(acc_upload(ctx, &rs, dt, NULL, (size_t)H * T * dv, &bout));

    rk_tensor tq, tobs, tkf, tks, tkk, tv, tout, tcache, tidx, tfill;
    ACC_TRY(rk_tensor_init(&tq, bq, 0, dt, 1, (int64_t)H * T, 1, d, RK_LAYOUT_BHTC));
    ACC_TRY(rk_tensor_init(&tobs, bobs, 0, dt, 1, (int64_t)H * T, 1, d, RK_LAYOUT_BHTC));
    ACC_TRY(rk_tensor_init(&tkf, bkf, 0, dt, 1, H, Tkf, d, RK_LAYOUT_BHTC));
    ACC_TRY(rk_tensor_init(&tks, bks, 0, dt, 1, H, S, d, RK_LAYOUT_BHTC));
    ACC_TRY(rk_tensor_init(&tv, bv, 0, dt, 1, H, Tk, dv, RK_LAYOUT_BHTC));
    ACC_TRY(rk_tensor_init(&tout, bout, 0, dt, 1, (int64_t)H * T, 1, dv, RK_LAYOUT_BHTC));

    rk_decode_args args;
    rk_decode_args_init(&args);
    rk_seq_info seq = {Tk, sb, sparse ? keep : 0};
    args.q = &tq;
    args.k_full = &tkf;
    args.v = &tv;
    args.seqs = &seq;
    args.out = &tout;

    if (sparse) {
        rk_rotation_config cfg;
        rk_rotation_config_init(&cfg);
        cfg.n_seq = 1;
        cfg.n_kv_heads = H;
        cfg.n_q_heads = H * T;
        cfg.head_dim = d;
        cfg.rank = rank;
        cfg.method = m == ACC_ROTATEK_PLAIN || m == ACC_ROTATEK_PLAIN_FAST ? RK_METHOD_PCA_PLAIN
                     : m == ACC_THINK || m == ACC_SPARK                  ? RK_METHOD_THINK
                     : m == ACC_RANDOM                                   ? RK_METHOD_RANDOM
                                                                         : RK_METHOD_PCA_QWEIGHTED;
        cfg.solver = m == ACC_ROTATEK_QW_FAST || m == ACC_ROTATEK_PLAIN_FAST ? RK_SOLVER_SUBSPACE
                                                                             : RK_SOLVER_EXACT;
        ACC_TRY(rk_rotation_create(ctx, &cfg, &rs.rot));
        ACC_TRY(rk_rotation_accumulate(rs.rot, &tks, NULL));
        ACC_TRY(rk_rotation_observe(rs.rot, &tobs, NULL));
        ACC_TRY(rk_rotation_finalize(rs.rot));
        ACC_TRY(rk_rotation_get_basis(rs.rot, R, dmu));
        args.rot = rs.rot;
        const rk_tensor *to_compress = &tks;
        if (drops) { /* only the kept span tokens enter the cache */
            float *kk = scratch;
            for (int h = 0; h < H; h++)
                for (int j = 0; j < keep; j++)
                    memcpy(kk + ((size_t)h * keep + j) * d,
                           L->k + ((size_t)h * T + sel[(size_t)h * keep + j]) * d, sizeof(float) * d);
            ACC_TRY(acc_upload(ctx, &rs, dt, kk, (size_t)H * keep * d, &bkk));
            ACC_TRY(rk_tensor_init(&tkk, bkk, 0, dt, 1, H, keep, d, RK_LAYOUT_BHTC));
            to_compress = &tkk;
        }
        ACC_TRY(acc_upload(ctx, &rs, dt, NULL, (size_t)H * keep * rank, &bcache));
        ACC_TRY(rk_tensor_init(&tcache, bcache, 0, dt, 1, H, keep, rank, RK_LAYOUT_BHTC));
        if (spark) {
            ACC_TRY(acc_upload(ctx, &rs, RK_I32, NULL, (size_t)H * keep * rank, &bidx));
            ACC_TRY(acc_upload(ctx, &rs, RK_F32, NULL, (size_t)H * keep, &bfill));
            ACC_TRY(rk_tensor_init(&tidx, bidx, 0, RK_I32, 1, H, keep, rank, RK_LAYOUT_BHTC));
            ACC_TRY(rk_tensor_init(&tfill, bfill, 0, RK_F32, 1, H, keep, 1, RK_LAYOUT_BHTC));
            ACC_TRY(rk_spark_compress(ctx, rs.rot, to_compress, &tcache, &tidx, &tfill, 0));
            ACC_TRY(rk_decode_spark(ctx, &args, &tcache, &tidx, &tfill));
            ACC_TRY(rk_buffer_download(bidx, 0, cidx, sizeof(int32_t) * (size_t)H * keep * rank));
            ACC_TRY(rk_buffer_download(bfill, 0, cfill, sizeof(float) * (size_t)H * keep));
        } else {
            ACC_TRY(rk_compress(ctx, rs.rot, to_compress, &tcache, 0));
            args.k_span = &tcache;
            ACC_TRY(rk_decode_sparse(ctx, &args));
        }
        ACC_TRY(acc_download_f32(dt, bcache, cache, (size_t)H * keep * rank));
    } else {
        ACC_TRY(rk_decode_dense(ctx, &args));
    }
    ACC_TRY(rk_context_synchronize(ctx));
    ACC_TRY(acc_download_f32(dt, bout, out, (size_t)H * T * dv));
    if (lib_out) memcpy(lib_out, out, sizeof(float) * (size_t)H * T * dv);
    if (!per_head) goto done;

    /* Host rebuild of what the decode attended to, and the metrics. */
    const double scale = 1.0 / sqrt((double)d);
    const int k = o->topk < T ? o->topk : T;
    for (int h = 0; h < H; h++) {
        const int *p = pos + (size_t)h * Tk;
        for (int n = 0; n < Tk; n++) {
            double *kh = khat + (size_t)n * d;
            int j = n - sb;
            if (sparse && j >= 0 && j < keep) {
                const float *row = cache + ((size_t)h * keep + j) * rank;
                if (spark) {
                    const int32_t *ix = cidx + ((size_t)h * keep + j) * rank;
                    for (int c = 0; c < d; c++) kh[c] = cfill[(size_t)h * keep + j];
                    for (int c = 0; c < rank; c++) kh[ix[c]] = row[c];
                } else {
                    const float *Rh = R + (size_t)h * d * rank;
                    for (int c = 0; c < d; c++) {
                        double s = dmu[(size_t)h * d + c];
                        for (int a = 0; a < rank; a++) s += (double)row[a] * Rh[c * rank + a];
                        kh[c] = s;
                    }
                }
            } else {
                const float *row = kr + ((size_t)h * T + p[n]) * d;
                for (int c = 0; c < d; c++) kh[c] = row[c];
            }
        }
        acc_metrics *mh = per_head + h;
        memset(mh, 0, sizeof *mh);
        for (int i = 0; i < T; i++) {
            const float *q = qr + ((size_t)h * T + i) * d;
            for (int n = 0; n < Tk; n++) {
                double s = 0;
                for (int c = 0; c < d; c++) s += (double)q[c] * khat[(size_t)n * d + c];
                logit[n] = s * scale;
            }
            acc_softmax(logit, Tk);
            memset(phat, 0, sizeof(double) * T);
            memset(ohost, 0, sizeof(double) * dv);
            for (int n = 0; n < Tk; n++) {
                phat[p[n]] = logit[n];
                const float *v = vr + ((size_t)h * T + p[n]) * dv;
                for (int c = 0; c < dv; c++) ohost[c] += logit[n] * v[c];
            }
            const double *pd = ref->p + ((size_t)h * T + i) * T;
            const double *od = ref->out + ((size_t)h * T + i) * dv;
            const float *ol = out + ((size_t)h * T + i) * dv;
            double e2 = 0, n2 = 0, g2 = 0, h2 = 0, kl = 0, lost = 0;
            for (int c = 0; c < dv; c++) {
                e2 += (ol[c] - od[c]) * (ol[c] - od[c]);
                n2 += od[c] * od[c];
                g2 += (ol[c] - ohost[c]) * (ol[c] - ohost[c]);
                h2 += ohost[c] * ohost[c];
            }
            for (int j = 0; j < T; j++) {
                if (phat[j] > 0) kl += pd[j] > 0 ? pd[j] * log(pd[j] / phat[j]) : 0;
                else lost += pd[j];
            }
            mh->rel_err += sqrt(e2 / n2) / T;
            mh->kl += kl / T;
            mh->dropped_mass += lost / T;
            mh->topk += (double)acc_top_overlap(pd, phat, T, k, ia, ib) / k / T;
            double gap = sqrt(g2 / (h2 > 0 ? h2 : 1));
            if (gap > mh->lib_host_diff) mh->lib_host_diff = gap;
        }
        if (drops) mh->kl = NAN;
    }

done:
    if (st != RK_OK && !err[0])
        snprintf(err, (size_t)err_len, "%s: %s (%s)", acc_method_name(m), rk_status_name(st),
                 rk_context_last_error(ctx));
    rk_rotation_destroy(rs.rot);
    for (int i = 0; i < rs.n_bufs; i++) rk_buffer_free(rs.bufs[i]);
    free(qr); free(kr); free(vr); free(scratch); free(pos); free(sel); free(kfull); free(kspan);
    free(vk); free(qobs); free(out); free(cache); free(cidx); free(cfill); free(R); free(dmu);
    free(khat); free(phat); free(logit); free(ohost); free(ia); free(ib);
    return st;
}
