/* Decode attention on the CPU: the fused sparse kernel of the method, the dense baseline and the
 * SparK baseline share one driver.
 *
 * Work items are (sequence b, KV head g, token split). An item reads each K and V row of its
 * range once, in blocks of RK_CPU_TB tokens, and serves all Hq/Hkv query heads of the group from
 * that block (heads in tiles of RK_CPU_HT, so larger groups reuse the block from L1). Per head it
 * keeps an online softmax (running max m, sum l, accumulator acc[dv]) in f32. With several
 * splits the items leave (m, l, acc) behind and a second pass merges them (log-sum-exp). */
#include "cpu_convert.h"
#include "cpu_internal.h"

#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* How the tokens of a range are scored. */
typedef enum { RK_SEG_FULL, RK_SEG_ROTATED, RK_SEG_SPARK } rk_seg_kind;

typedef struct rk_decode_plan {
    const rk_op_decode *op;
    const rk_op_spark_decode *spark; /* non-NULL: span tokens come from the SparK tensors */
    const rk_cpu_kernels *k;
    int group, n_tiles, n_split;
    size_t thread_floats;            /* scratch floats per thread */
    float *thread_scratch;
    float *part_acc;                 /* [item][group][dv] when n_split > 1 */
    float *part_ml;                  /* [item][group][2]: running max and sum */
} rk_decode_plan;

/* One thread's working set, carved from its scratch region. */
typedef struct rk_decode_ws {
    float *q;     /* [n_tiles][HT][d] queries as f32 */
    float *qr;    /* [n_tiles][HT][r] q·R (rotated span) */
    float *bias;  /* [n_tiles][HT] q·δμ (rotated span) */
    float *zero;  /* [HT] */
    float *m, *l; /* [n_tiles][HT] */
    float *acc;   /* [n_tiles][HT][dv] */
    float *S;     /* [TB][HT] logits, then probabilities */
    float *alpha; /* [HT] */
    float *kb;    /* [TB][d] SparK span rows rebuilt at full width */
} rk_decode_ws;

static size_t rk_pad16(size_t n) { return rk_cpu_round_up(n, RK_CPU_ALIGN / sizeof(float)); }

/* Carves ws out of base (or only counts floats when base is NULL). */
static size_t rk_decode_ws_carve(const rk_decode_plan *pl, float *base, rk_decode_ws *ws) {
    const rk_op_decode *op = pl->op;
    size_t tiles = (size_t)pl->n_tiles * RK_CPU_HT, off = 0;
    float **slots[] = {&ws->q, &ws->qr, &ws->bias, &ws->zero, &ws->m, &ws->l, &ws->acc, &ws->S,
                       &ws->alpha, &ws->kb};
    size_t sizes[] = {tiles * op->d, tiles * (op->r > 0 ? op->r : 1), tiles, RK_CPU_HT, tiles,
                      tiles, tiles * op->dv, (size_t)RK_CPU_TB * RK_CPU_HT, RK_CPU_HT,
                      pl->spark ? (size_t)RK_CPU_TB * op->d : 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (base) *slots[i] = base + off;
        off += rk_pad16(sizes[i]);
    }
    return off;
}

/* Tokens per split of a sequence; long splits are whole blocks so no block is cut short. */
static int64_t rk_split_chunk(int64_t seq_len, int n_split) {
    int64_t c = (seq_len + n_split - 1) / n_split;
    return c >= 8 * RK_CPU_TB ? (int64_t)rk_cpu_round_up((size_t)c, RK_CPU_TB) : c;
}

static int rk_tile_heads(const rk_decode_plan *pl, int tile) {
    int rest = pl->group - tile * RK_CPU_HT;
    return rest < RK_CPU_HT ? rest : RK_CPU_HT;
}

/* q·R and q·δμ of the item's heads, once per item. */
static void rk_rotate_queries(const rk_decode_plan *pl, int64_t bg, rk_decode_ws *ws) {
    const rk_op_decode *op = pl->op;
    const int d = op->d, r = op->r;
    const float *R = (const float *)op->R->handle + (size_t)bg * d * r;
    const float *dmu = (const float *)op->dmu->handle + (size_t)bg * d;
    for (int i = 0; i < pl->n_tiles * RK_CPU_HT; i++) {
        const float *q = ws->q + (size_t)i * d;
        float *qr = ws->qr + (size_t)i * r, qm = 0.0f;
        for (int j = 0; j < r; j++) qr[j] = 0.0f;
        for (int c = 0; c < d; c++) {
            const float qc = q[c], *Rc = R + (size_t)c * r;
#pragma omp simd
            for (int j = 0; j < r; j++) qr[j] += qc * Rc[j];
            qm += qc * dmu[c];
        }
        ws->bias[i] = qm;
    }
}

/* Demand-loads one byte of every cache line of rows [0, n), in address order, before the kernels
 * walk the block column strip by column strip. Measured on the Zen 4 host with K/V in DRAM: dense
 * decode 10-25% faster, sparse up to 10%; software prefetch of the next block was slower. */
static void rk_touch_rows(const char *base, int n, int64_t stride_bytes, size_t row_bytes) {
    unsigned acc = 0;
    for (int t = 0; t < n; t++) {
        const volatile unsigned char *row = (const volatile unsigned char *)(base + t * stride_bytes);
        for (size_t o = 0; o < row_bytes; o += 64) acc += row[o];
        acc += row[row_bytes - 1]; /* the row's last line when it does not start on a line */
    }
    volatile unsigned sink = acc;
    (void)sink;
}

/* Scores, softmax and PV for positions [p0, p1) whose K rows are row (p - row_shift) of the
 * segment's source. */
static void rk_decode_range(const rk_decode_plan *pl, rk_decode_ws *ws, int64_t b, int64_t g,
                            rk_seg_kind kind, int64_t p0, int64_t p1, int64_t row_shift) {
    if (p0 >= p1) return;
    const rk_op_decode *op = pl->op;
    const rk_cpu_kernels *k = pl->k;
    const rk_dtype dt = op->v->dtype;
    const size_t es = rk_dtype_size(dt);
    const char *vbase = rk_cpu_at(op->v, b, g, 0);
    const int64_t vs = op->v->nb[2];
    const rk_tensor *ksrc = kind == RK_SEG_ROTATED ? op->k_span : op->k_full;
    const char *kbase = kind == RK_SEG_SPARK ? NULL : rk_cpu_at(ksrc, b, g, 0);
    const int64_t ks_src = kind == RK_SEG_SPARK ? 0 : ksrc->nb[2];
    const int w = kind == RK_SEG_ROTATED ? op->r : op->d;
    const float *qbase = kind == RK_SEG_ROTATED ? ws->qr : ws->q;
    for (int64_t p = p0; p < p1; p += RK_CPU_TB) {
        const int n = (int)(p1 - p < RK_CPU_TB ? p1 - p : RK_CPU_TB);
        const void *kp;
        rk_dtype kdt = dt;
        int64_t ks = ks_src;
        if (kind == RK_SEG_SPARK) {
            rk_cpu_spark_rebuild(k, pl->spark, b, g, p - row_shift, n, op->d, ws->kb);
            kp = ws->kb;
            kdt = RK_F32;
            ks = op->d;
        } else {
            kp = kbase + (size_t)((p - row_shift) * ks) * es;
        }
        const void *vp = vbase + (size_t)(p * vs) * es;
        if (kind != RK_SEG_SPARK) rk_touch_rows(kp, n, (int64_t)(ks * es), (size_t)w * es);
        rk_touch_rows(vp, n, (int64_t)(vs * es), (size_t)op->dv * es);
        for (int tile = 0; tile < pl->n_tiles; tile++) {
            const int nh = rk_tile_heads(pl, tile);
            const size_t th = (size_t)tile * RK_CPU_HT;
            const float *bias = kind == RK_SEG_ROTATED ? ws->bias + th : ws->zero;
            k->scores(qbase + th * w, w, nh, kp, kdt, ks, w, n, ws->S);
            k->softmax(ws->S, n, bias, op->scale, ws->m + th, ws->l + th, ws->alpha);
            k->pv(ws->S, nh, vp, dt, vs, op->dv, n, ws->alpha, ws->acc + th * op->dv);
        }
    }
}

static void rk_decode_item(const rk_decode_plan *pl, int64_t item, rk_decode_ws *ws) {
    const rk_op_decode *op = pl->op;
    const int64_t s = item % pl->n_split, bg = item / pl->n_split;
    const int64_t b = bg / op->Hkv, g = bg % op->Hkv;
    const rk_seq_info si = op->seqs[b];
    const int64_t chunk = rk_split_chunk(si.seq_len, pl->n_split);
    const int64_t t0 = s * chunk, t1 = t0 + chunk < si.seq_len ? t0 + chunk : si.seq_len;
    const int64_t sb = si.span_begin, se = (int64_t)si.span_begin + si.span_len;
    const int d = op->d, dv = op->dv;
    const size_t tiles = (size_t)pl->n_tiles * RK_CPU_HT;

    for (size_t i = 0; i < tiles; i++) {
        ws->m[i] = -INFINITY;
        ws->l[i] = 0.0f;
    }
    memset(ws->acc, 0, sizeof(float) * tiles * dv);
    if (t0 < t1) {
        memset(ws->q, 0, sizeof(float) * tiles * d);
        for (int hl = 0; hl < pl->group; hl++)
            pl->k->load_row(ws->q + (size_t)hl * d, rk_cpu_at(op->q, b, g * pl->group + hl, 0),
                            op->q->dtype, d);
        const int span_here = si.span_len > 0 && t0 < se && sb < t1;
        if (span_here && !pl->spark) rk_rotate_queries(pl, bg, ws);
        rk_decode_range(pl, ws, b, g, RK_SEG_FULL, t0, t1 < sb ? t1 : sb, 0);
        rk_decode_range(pl, ws, b, g, pl->spark ? RK_SEG_SPARK : RK_SEG_ROTATED,
                        t0 > sb ? t0 : sb, t1 < se ? t1 : se, sb);
        rk_decode_range(pl, ws, b, g, RK_SEG_FULL, t0 > se ? t0 : se, t1, si.span_len);
    }

    for (int hl = 0; hl < pl->group; hl++) {
        float *acc = ws->acc + (size_t)hl * dv;
        if (pl->n_split > 1) {
            const size_t slot = (size_t)item * pl->group + hl;
            memcpy(pl->part_acc + slot * dv, acc, sizeof(float) * dv);
            pl->part_ml[slot * 2] = ws->m[hl];
            pl->part_ml[slot * 2 + 1] = ws->l[hl];
            continue;
        }
        const int64_t hq = g * pl->group + hl;
        const float inv = 1.0f / ws->l[hl];
        for (int c = 0; c < dv; c++) acc[c] *= inv;
        pl->k->store_row(rk_cpu_at(op->out, b, hq, 0), op->out->dtype, acc, dv);
        if (op->lse) *(float *)rk_cpu_at(op->lse, b, hq, 0) = ws->m[hl] + logf(ws->l[hl]);
    }
}

/* Merge the splits of query head (b, hq): rescale each to the common max, add, normalize. */
static void rk_decode_combine(const rk_decode_plan *pl, int64_t bh, rk_decode_ws *ws) {
    const rk_op_decode *op = pl->op;
    const int64_t b = bh / op->Hq, hq = bh % op->Hq, g = hq / pl->group, hl = hq % pl->group;
    const int dv = op->dv;
    const size_t first = (size_t)(b * op->Hkv + g) * pl->n_split;
    float M = -INFINITY, L = 0.0f, *o = ws->acc;
    for (int s = 0; s < pl->n_split; s++) {
        const float ms = pl->part_ml[((first + s) * pl->group + hl) * 2];
        M = ms > M ? ms : M;
    }
    memset(o, 0, sizeof(float) * dv);
    for (int s = 0; s < pl->n_split; s++) {
        const size_t slot = (first + s) * pl->group + hl;
        const float ls = pl->part_ml[slot * 2 + 1];
        if (!(ls > 0.0f)) continue; /* empty split */
        const float wgt = expf(pl->part_ml[slot * 2] - M), *a = pl->part_acc + slot * dv;
        L += ls * wgt;
#pragma omp simd
        for (int c = 0; c < dv; c++) o[c] += wgt * a[c];
    }
    const float inv = 1.0f / L;
    for (int c = 0; c < dv; c++) o[c] *= inv;
    pl->k->store_row(rk_cpu_at(op->out, b, hq, 0), op->out->dtype, o, dv);
    if (op->lse) *(float *)rk_cpu_at(op->lse, b, hq, 0) = M + logf(L);
}

/* Splits per (b, g) when the caller leaves it open: enough items for every thread to get
 * several (dynamic scheduling evens out ragged lengths), but no split under 256 tokens. */
static int rk_choose_splits(const rk_op_decode *op, int threads) {
    if (op->n_split > 0) return op->n_split < op->max_seq_len ? op->n_split : op->max_seq_len;
    const int64_t heads = (int64_t)op->B * op->Hkv;
    int64_t want = (4 * (int64_t)threads + heads - 1) / heads;
    int64_t by_len = op->max_seq_len / 256;
    int64_t n = want < by_len ? want : by_len;
    return n < 1 ? 1 : (int)n;
}

rk_status rk_cpu_decode_run(rk_context *ctx, const rk_op_decode *op, const rk_op_spark_decode *spark) {
    rk_decode_plan pl = {0};
    pl.op = op;
    pl.spark = spark;
    pl.k = rk_cpu_ctx(ctx)->k;
    pl.group = op->Hq / op->Hkv;
    pl.n_tiles = (pl.group + RK_CPU_HT - 1) / RK_CPU_HT;
    pl.n_split = rk_choose_splits(op, ctx->n_threads);
    const int64_t items = (int64_t)op->B * op->Hkv * pl.n_split;
    int threads = ctx->n_threads < items ? ctx->n_threads : (int)items;
#ifndef _OPENMP
    threads = 1;
#endif
    rk_decode_ws probe;
    pl.thread_floats = rk_decode_ws_carve(&pl, NULL, &probe);
    size_t part_floats = pl.n_split > 1 ? (size_t)items * pl.group * ((size_t)op->dv + 2) : 0;
    float *scratch = rk_cpu_scratch(ctx, sizeof(float) * (pl.thread_floats * threads + rk_pad16(part_floats)));
    if (!scratch) return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "cpu decode scratch");
    pl.thread_scratch = scratch;
    pl.part_acc = scratch + pl.thread_floats * threads;
    pl.part_ml = pl.part_acc + (size_t)items * pl.group * op->dv;

#pragma omp parallel num_threads(threads)
    {
#ifdef _OPENMP
        const int tid = omp_get_thread_num();
#else
        const int tid = 0;
#endif
        rk_decode_ws ws;
        rk_decode_ws_carve(&pl, pl.thread_scratch + pl.thread_floats * tid, &ws);
        for (int i = 0; i < RK_CPU_HT; i++) ws.zero[i] = 0.0f;
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < items; it++) rk_decode_item(&pl, it, &ws);
        if (pl.n_split > 1) {
#pragma omp for schedule(static)
            for (int64_t bh = 0; bh < (int64_t)op->B * op->Hq; bh++) rk_decode_combine(&pl, bh, &ws);
        }
    }
    return RK_OK;
}

rk_status rk_cpu_decode(rk_context *ctx, const rk_op_decode *op) {
    return rk_cpu_decode_run(ctx, op, NULL);
}
