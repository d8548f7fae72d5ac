/* Sparse-channel and dense decode: q·R projection (sparse), one partial per token split and
 * group of query heads, then the combine. Kernel shapes come from the device's parameter row. */
#include "ocl_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int rk_pow2_floor(int x) {
    int p = 1;
    while (p * 2 <= x) p *= 2;
    return p;
}

static int rk_min(int a, int b) { return a < b ? a : b; }

/* The compile-time shape of one decode program. */
typedef struct rk_ocl_decode_shape {
    int serial, aligned, G, GH, wg, kv_f, kcp_f, kv_s, kcp_s, vv, vcp, passes, vprefetch, maxrreg;
    int warps, mma, prefetch, tile, kc_f, kc_s, vc, gp; /* rk_decode.cl's RK_WARPS section */
} rk_ocl_decode_shape;

/* Local memory the tiled kernel declares (mirrors the arrays in rk_decode.cl). */
static size_t rk_ocl_tiled_local_bytes(const rk_ocl_decode_shape *s, int D, int DV, int R) {
    size_t tile_f = (size_t)(s->wg / s->kcp_f) * s->passes, tile_s = 0, scr_s = 0;
    if (R > 0) {
        tile_s = (size_t)(s->wg / s->kcp_s) * s->passes;
        scr_s = tile_s * (size_t)(s->kcp_s + 1);
    }
    size_t scr_f = tile_f * (size_t)(s->kcp_f + 1);
    size_t tile = tile_f > tile_s ? tile_f : tile_s, scr = scr_f > scr_s ? scr_f : scr_s;
    size_t vs = (size_t)(s->wg / s->vcp), gh = (size_t)s->GH;
    /* qf, qs, bias_f/_s, scratch, logits, ls, red, mref_l and raise */
    size_t floats = gh * D + gh * (R > 0 ? R : 1) + 2 * gh + gh * scr + gh * tile + gh * vs +
                    vs * DV + 2 * gh;
    return floats * sizeof(float);
}

static int rk_ocl_view_aligned(const rk_tensor *t, int vec) {
    rk_ocl_view v = rk_ocl_view_of(t);
    return v.off % vec == 0 && v.sb % vec == 0 && v.sh % vec == 0 && v.st % vec == 0;
}

/* 16-byte chunks in a row of n elements of op's dtype: a power of two up to a warp, else 0. */
static int rk_ocl_row_chunks(const rk_op_decode *op, int n) {
    const int bytes = n * (int)rk_dtype_size(op->q->dtype), c = bytes / 16;
    return bytes % 16 == 0 && c >= 1 && c <= 32 && (c & (c - 1)) == 0 ? c : 0;
}

/* The warp shape (NVIDIA: inline PTX), where rows split into whole 16-byte chunks, start on 16
 * bytes, and a value row is at least as wide as a full key row (itself at least as wide as a
 * pruned one). Returns 0 where the shape does not apply. */
static int rk_ocl_choose_warp_shape(const rk_ocl_ctx *oc, const rk_op_decode *op,
                                    rk_ocl_decode_shape *s) {
    const rk_ocl_params *p = &oc->params;
    const int vec = 16 / (int)rk_dtype_size(op->q->dtype);
    s->kc_f = rk_ocl_row_chunks(op, op->d);
    s->kc_s = op->r > 0 ? rk_ocl_row_chunks(op, op->r) : s->kc_f;
    s->vc = rk_ocl_row_chunks(op, op->dv);
    if (!p->warp || !oc->dev.ptx || !s->kc_f || !s->kc_s || !s->vc || s->vc < s->kc_f ||
        s->kc_s > s->kc_f || !rk_ocl_view_aligned(op->k_full, vec) ||
        !rk_ocl_view_aligned(op->v, vec) ||
        (op->r > 0 && op->k_span && !rk_ocl_view_aligned(op->k_span, vec)))
        return 0;
    s->warps = 1;
    s->wg = rk_min(32, p->wg / 32 > 0 ? p->wg / 32 : 1) * 32;
    /* a tile holds at least one load pass of the narrowest key row and, where it can, at most
     * eight 16-byte loads per lane of the widest row (registers) */
    const int tile_min = 32 / rk_min(s->kc_f, s->kc_s), tile_max = 256 / s->vc;
    s->tile = rk_min(p->tile, tile_max);
    if (s->tile < tile_min) s->tile = tile_min;
    s->gp = 1;
    while (s->gp < s->GH) s->gp *= 2;
    /* tensor-core q·K and P·V: 8 heads, 16-token tiles, value rows of 128 channels (256 bytes
     * of 16-bit values, or 512 bytes of f32 through split TF32) */
    s->prefetch = p->prefetch;
    s->mma = p->mma && s->gp == 8 && s->vc == (op->q->dtype == RK_F32 ? 32 : 16) && p->tile >= 16;
    if (s->mma) s->tile = 16;
    if (s->mma && op->q->dtype == RK_F32) s->prefetch = 0; /* the TF32 path has no prefetch variant */
    /* local memory (mirrors rk_decode.cl): q, q·R, biases, then the warps' partials */
    const size_t q_floats = (size_t)s->gp * (op->d + (op->r > 0 ? op->r : 0) + 2);
    while (s->wg > 32 && (q_floats + (size_t)(s->wg / 32) * s->gp * (op->dv + 2)) * sizeof(float) >
                             oc->dev.local_mem)
        s->wg /= 2;
    return 1;
}

static void rk_ocl_choose_shape(const rk_ocl_ctx *oc, const rk_op_decode *op,
                                rk_ocl_decode_shape *s) {
    const rk_ocl_params *p = &oc->params;
    memset(s, 0, sizeof *s);
    s->G = op->Hq / op->Hkv;
    s->GH = rk_min(s->G, p->gh_max);
    s->serial = p->serial;
    if (s->serial) return;
    s->maxrreg = p->maxrreg;
    if (rk_ocl_choose_warp_shape(oc, op, s)) return;
    s->wg = p->wg;
    s->passes = p->passes;
    s->vprefetch = p->vprefetch;
    s->kv_f = op->d % 4 == 0 ? 4 : 1;
    s->kcp_f = rk_min(p->kcp, rk_pow2_floor(op->d / s->kv_f));
    if (op->r > 0) {
        s->kv_s = op->r % 4 == 0 ? 4 : 1;
        s->kcp_s = rk_min(p->kcp, rk_pow2_floor(op->r / s->kv_s));
    }
    s->vv = op->dv % 4 == 0 ? 4 : 1;
    s->vcp = rk_min(s->wg, rk_pow2_floor(op->dv / s->vv));
    /* wide loads need every row start on a 4-element boundary (buffers themselves are aligned) */
    s->aligned = (s->kv_f == 4 && rk_ocl_view_aligned(op->k_full, 4)) || s->kv_f == 1;
    if (op->r > 0 && op->k_span)
        s->aligned = s->aligned && (s->kv_s == 1 || rk_ocl_view_aligned(op->k_span, 4));
    s->aligned = s->aligned && (s->vv == 1 || rk_ocl_view_aligned(op->v, 4));
    while (s->GH > 1 && rk_ocl_tiled_local_bytes(s, op->d, op->dv, op->r) > oc->dev.local_mem)
        s->GH--;
}

static void rk_ocl_decode_options(const rk_ocl_decode_shape *s, const rk_op_decode *op, char *buf,
                                  size_t len) {
    const rk_dtype t = op->q->dtype;
    int n = snprintf(buf, len, "-D RK_DT=%d -D RK_D=%d -D RK_DV=%d -D RK_R=%d -D RK_G=%d "
                     "-D RK_GH=%d -D RK_SERIAL=%d", t == RK_F32 ? 0 : t == RK_F16 ? 1 : 2, op->d,
                     op->dv, op->r, s->G, s->GH, s->serial);
    if (s->warps && n > 0 && (size_t)n < len)
        n += snprintf(buf + n, len - (size_t)n, " -D RK_WARPS=1 -D RK_MMA=%d -D RK_PREFETCH=%d "
                      "-D RK_NW=%d -D RK_TILE=%d -D RK_KC_F=%d -D RK_KC_S=%d -D RK_VC=%d -D RK_GP=%d",
                      s->mma, s->prefetch, s->wg / 32, s->tile, s->kc_f, s->kc_s, s->vc, s->gp);
    else if (!s->serial && n > 0 && (size_t)n < len)
        n += snprintf(buf + n, len - (size_t)n, " -D RK_WARPS=0 -D RK_ALIGNED=%d -D RK_WG=%d -D RK_KV_F=%d "
                      "-D RK_KCP_F=%d -D RK_KV_S=%d -D RK_KCP_S=%d -D RK_VV=%d -D RK_VCP=%d "
                      "-D RK_PASSES=%d -D RK_VPREFETCH=%d", s->aligned, s->wg, s->kv_f, s->kcp_f,
                      s->kv_s ? s->kv_s : 1, s->kcp_s ? s->kcp_s : 1, s->vv, s->vcp, s->passes,
                      s->vprefetch);
    if (!s->serial && s->maxrreg > 0 && n > 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, " -cl-nv-maxrregcount=%d", s->maxrreg);
}

/* Splits: the caller's count, or enough work-groups to fill the device while keeping every
 * split at least min_split_tokens long. Returns the split count and sets the chunk length. */
static int rk_ocl_choose_splits(const rk_ocl_ctx *oc, const rk_op_decode *op, int groups,
                                int granule, int per_cu, int *chunk) {
    const int T = op->max_seq_len;
    int ns = op->n_split;
    if (ns <= 0) {
        const rk_ocl_params *p = &oc->params;
        long target = (long)oc->dev.compute_units * per_cu;
        ns = (int)((target + groups - 1) / groups);
        ns = rk_min(ns, (T + p->min_split_tokens - 1) / p->min_split_tokens);
        ns = rk_min(ns, p->max_split);
    }
    ns = ns < 1 ? 1 : rk_min(ns, T);
    int c = (T + ns - 1) / ns;
    if (op->n_split <= 0) c = (c + granule - 1) / granule * granule; /* whole tiles per split */
    *chunk = c;
    return (T + c - 1) / c;
}

static rk_status rk_ocl_decode_enqueue(rk_context *ctx, const rk_op_decode *op) {
    rk_ocl_ctx *oc = rk_ocl(ctx);
    rk_ocl_decode_shape shape;
    rk_ocl_choose_shape(oc, op, &shape);
    char opts[512];
    rk_ocl_decode_options(&shape, op, opts, sizeof opts);

    const int B = op->B, Hq = op->Hq, Hkv = op->Hkv, R = op->r, DV = op->dv;
    const int head_chunks = (shape.G + shape.GH - 1) / shape.GH;
    const int granule = shape.serial ? 16 : shape.warps ? shape.tile
                                                        : (shape.wg / shape.kcp_f) * shape.passes;
    /* work-groups per CU to aim for: the tensor-core shape takes fewer, twice as many where its
     * key rows load in two rounds (f32 rows of 128 channels: half the loads in flight per warp;
     * bench/results/opencl/fifth) */
    const rk_ocl_params *p = &oc->params;
    const int per_cu = !shape.mma ? p->groups_per_cu : shape.kc_s > 16 ? 2 * p->groups_mma
                                                                       : p->groups_mma;
    int chunk = 0;
    const int ns = rk_ocl_choose_splits(oc, op, B * Hkv * head_chunks, granule, per_cu, &chunk);

    cl_kernel k_part, k_comb, k_qproj = NULL;
    /* q·R: the warp shape computes it once per KV head, other shapes a work-item per output */
    const char *qproj_name = shape.warps ? "rk_qproj_group" : "rk_qproj";
    cl_mem seqs, qproj, part_ml, part_acc;
    rk_status st;
    if ((st = rk_ocl_kernel(ctx, RK_OCL_SRC_DECODE, opts, "rk_decode_part", &k_part)) != RK_OK ||
        (st = rk_ocl_kernel(ctx, RK_OCL_SRC_DECODE, opts, "rk_combine", &k_comb)) != RK_OK ||
        (R > 0 && (st = rk_ocl_kernel(ctx, RK_OCL_SRC_DECODE, opts, qproj_name, &k_qproj)) != RK_OK))
        return st;
    const size_t n_part = (size_t)B * Hq * ns;
    if ((st = rk_ocl_scratch(ctx, RK_OCL_SCR_SEQS, sizeof(cl_int4) * B, &seqs)) != RK_OK ||
        (st = rk_ocl_scratch(ctx, RK_OCL_SCR_QPROJ, sizeof(float) * B * Hq * (R + 1), &qproj)) != RK_OK ||
        (st = rk_ocl_scratch(ctx, RK_OCL_SCR_PART_ML, sizeof(float) * 2 * n_part, &part_ml)) != RK_OK ||
        (st = rk_ocl_scratch(ctx, RK_OCL_SCR_PART_ACC, sizeof(float) * DV * n_part, &part_acc)) != RK_OK)
        return st;

    /* the sequence table: by value in the kernel arguments when it fits, else uploaded */
    rk_ocl_seq_tab inl;
    memset(&inl, 0, sizeof inl);
    const cl_int seq_inline = B <= rk_min(RK_OCL_SEQ_INLINE, oc->params.seq_inline);
    cl_int4 *tab = seq_inline ? inl.s : malloc(sizeof(cl_int4) * B);
    if (!tab) return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "opencl: sequence table");
    for (int b = 0; b < B; b++) {
        tab[b].s[0] = op->seqs[b].seq_len;
        tab[b].s[1] = op->seqs[b].span_begin;
        tab[b].s[2] = op->seqs[b].span_len;
        tab[b].s[3] = 0;
    }
    if (!seq_inline) {
        st = rk_ocl_upload_small(ctx, seqs, tab, sizeof(cl_int4) * B);
        free(tab);
        if (st != RK_OK) return st;
    }

    const rk_ocl_view qv = rk_ocl_view_of(op->q), fv = rk_ocl_view_of(op->k_full),
                      vv = rk_ocl_view_of(op->v);
    const rk_ocl_view sv = op->k_span ? rk_ocl_view_of(op->k_span) : (rk_ocl_view){0, 0, 0, 0};
    const cl_mem q = rk_ocl_mem(op->q->buf), kf = rk_ocl_mem(op->k_full->buf),
                 v = rk_ocl_mem(op->v->buf);
    const cl_mem ks = op->k_span ? rk_ocl_mem(op->k_span->buf) : kf; /* unused when dense */

    if (R > 0) {
        const cl_mem Rm = rk_ocl_mem(op->R), dmu = rk_ocl_mem(op->dmu);
        const rk_ocl_arg args[] = {RK_OCL_ARG(q), RK_OCL_ARG(qv.off), RK_OCL_ARG(qv.sb),
                                   RK_OCL_ARG(qv.sh), RK_OCL_ARG(Rm), RK_OCL_ARG(dmu),
                                   RK_OCL_ARG(Hq), RK_OCL_ARG(Hkv), RK_OCL_ARG(qproj)};
        /* rk_qproj_group: a work-group per (sequence, KV head, head chunk) */
        const size_t g_item[3] = {(size_t)R + 1, (size_t)Hq, (size_t)B};
        const size_t g_group[3] = {(size_t)shape.wg, (size_t)Hkv * head_chunks, (size_t)B};
        const size_t l_group[3] = {(size_t)shape.wg, 1, 1};
        if ((st = rk_ocl_set_args(ctx, k_qproj, qproj_name, args, 9)) != RK_OK ||
            (st = rk_ocl_launch(ctx, k_qproj, qproj_name, 3, shape.warps ? g_group : g_item,
                                shape.warps ? l_group : NULL)) != RK_OK)
            return st;
    }

    const float scale = op->scale;
    const rk_ocl_arg part_args[] = {
        RK_OCL_ARG(q),     RK_OCL_ARG(qv.off), RK_OCL_ARG(qv.sb), RK_OCL_ARG(qv.sh),
        RK_OCL_ARG(kf),    RK_OCL_ARG(fv.off), RK_OCL_ARG(fv.sb), RK_OCL_ARG(fv.sh),
        RK_OCL_ARG(fv.st), RK_OCL_ARG(ks),     RK_OCL_ARG(sv.off), RK_OCL_ARG(sv.sb),
        RK_OCL_ARG(sv.sh), RK_OCL_ARG(sv.st),  RK_OCL_ARG(v),     RK_OCL_ARG(vv.off),
        RK_OCL_ARG(vv.sb), RK_OCL_ARG(vv.sh),  RK_OCL_ARG(vv.st), RK_OCL_ARG(qproj),
        RK_OCL_ARG(seqs),  RK_OCL_ARG(inl),    RK_OCL_ARG(seq_inline), RK_OCL_ARG(Hq),
        RK_OCL_ARG(Hkv),   RK_OCL_ARG(ns),     RK_OCL_ARG(chunk), RK_OCL_ARG(scale),
        RK_OCL_ARG(part_ml), RK_OCL_ARG(part_acc)};
    if ((st = rk_ocl_set_args(ctx, k_part, "rk_decode_part", part_args, 30)) != RK_OK) return st;
    const size_t wg = shape.serial ? 1 : (size_t)shape.wg;
    const size_t g_part[3] = {(size_t)ns * wg, (size_t)Hkv * head_chunks, (size_t)B};
    const size_t l_part[3] = {wg, 1, 1};
    /* names tell sparse from dense apart in errors and in RK_OPENCL_PROFILE's totals */
    const char *part_name = R > 0 ? "rk_decode_part (sparse)" : "rk_decode_part (dense)";
    if ((st = rk_ocl_launch(ctx, k_part, part_name, 3, g_part, l_part)) != RK_OK) return st;

    const rk_ocl_view ov = rk_ocl_view_of(op->out);
    const rk_ocl_view lv = op->lse ? rk_ocl_view_of(op->lse) : (rk_ocl_view){0, 0, 0, 0};
    const cl_mem out = rk_ocl_mem(op->out->buf), lse = op->lse ? rk_ocl_mem(op->lse->buf) : part_ml;
    const int has_lse = op->lse != NULL;
    const rk_ocl_arg comb_args[] = {
        RK_OCL_ARG(part_ml), RK_OCL_ARG(part_acc), RK_OCL_ARG(ns),     RK_OCL_ARG(Hq),
        RK_OCL_ARG(out),     RK_OCL_ARG(ov.off),   RK_OCL_ARG(ov.sb),  RK_OCL_ARG(ov.sh),
        RK_OCL_ARG(lse),     RK_OCL_ARG(lv.off),   RK_OCL_ARG(lv.sb),  RK_OCL_ARG(lv.sh),
        RK_OCL_ARG(has_lse)};
    /* an explicit work-group along the channels: left to the runtime, a 3-D range may get tiny
     * work-groups */
    size_t l0 = 1;
    while (l0 * 2 <= 256 && l0 * 2 <= oc->dev.max_wg && DV % (int)(l0 * 2) == 0) l0 *= 2;
    const size_t g_comb[3] = {(size_t)DV, (size_t)Hq, (size_t)B}, l_comb[3] = {l0, 1, 1};
    if ((st = rk_ocl_set_args(ctx, k_comb, "rk_combine", comb_args, 13)) != RK_OK) return st;
    return rk_ocl_launch(ctx, k_comb, R > 0 ? "rk_combine (sparse)" : "rk_combine (dense)", 3, g_comb,
                         l_comb);
}

rk_status rk_ocl_decode(rk_context *ctx, const rk_op_decode *op) {
    rk_ocl_ctx *oc = rk_ocl(ctx);
    const double t0 = oc->profile ? rk_now_seconds() : 0.0;
    rk_status st = rk_ocl_decode_enqueue(ctx, op);
    if (oc->profile) rk_ocl_profile_host(oc->profile, "decode (host)", rk_now_seconds() - t0);
    return st;
}
