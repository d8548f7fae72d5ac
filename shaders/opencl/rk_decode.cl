/* Sparse-channel and dense decode attention (flash-decoding: token splits, then a combine).
 * Needs rk_common.cl first. Defines, all set by the host (backends/opencl/ocl_decode.c):
 *   RK_D, RK_DV      key / value head dims
 *   RK_R             stored width of the pruned span keys; 0 builds the dense decode
 *   RK_G, RK_GH      query heads per KV head; query heads one work-group serves (RK_GH <= RK_G)
 *   RK_SERIAL        1: one work-item walks a contiguous token chunk (CPU devices); 0: tiled
 * tiled shape (GPUs):
 *   RK_WG            work-items per work-group
 *   RK_KV_F/RK_KV_S  key elements per load, full-width / pruned rows (4 or 1)
 *   RK_KCP_F/_S      work-items sharing one key row (power of two dividing RK_WG)
 *   RK_PASSES        key rows per work-item and tile
 *   RK_VV, RK_VCP    value elements per load (4 or 1); work-items sharing one value row
 *   RK_VPREFETCH     1: load a tile's values before scoring it (more loads in flight); 0: after
 *
 * Per sequence b the positions [0, seq_len) fall in three segments: full-width keys before the
 * span (k_full row p), the span (k_span row p - span_begin, logits with q·R and q·δμ), and
 * full-width keys after it (k_full row p - span_len). V is always row p. Split s covers positions
 * [s*chunk, (s+1)*chunk) and leaves (max logit, Σexp, Σexp·v) for the combine kernel. */

#define RK_HEAD_CHUNKS ((RK_G + RK_GH - 1) / RK_GH)

/* Segment seg (0: full-width keys before the span, 1: the span, 2: full-width keys after it) of
 * the split covering positions [p0, p1): (first position, end, shift), reading key row
 * p - shift. Returned as a vector so no private array needs run-time indexing. */
inline int3 rk_segment(int4 s, int p0, int p1, int seg) {
    const int span_end = s.y + s.z;
    p1 = min(p1, s.x);
    if (seg == 0) return (int3)(p0, min(p1, s.y), 0);
    if (seg == 1) return (int3)(max(p0, s.y), min(p1, span_end), s.y);
    return (int3)(max(p0, span_end), p1, s.z);
}

/* q·R and q·δμ per query head: qproj[b][h][0..R) and qproj[b][h][R]. */
#if RK_R > 0
kernel void rk_qproj(global const rk_elem *q, long q_off, long q_sb, long q_sh,
                     global const float *Rm, global const float *dmu, int Hq, int Hkv,
                     global float *qproj) {
    const int j = get_global_id(0), h = get_global_id(1), b = get_global_id(2);
    const int bg = b * Hkv + h / (Hq / Hkv);
    global const rk_elem *qh = q + q_off + b * q_sb + h * q_sh;
    float s = 0.0f;
    if (j < RK_R) {
        global const float *Rc = Rm + (long)bg * RK_D * RK_R + j;
        for (int c = 0; c < RK_D; c++) s = fma(rk_ld1(qh, c), Rc[c * RK_R], s);
    } else {
        global const float *m = dmu + (long)bg * RK_D;
        for (int c = 0; c < RK_D; c++) s = fma(rk_ld1(qh, c), m[c], s);
    }
    qproj[((long)b * Hq + h) * (RK_R + 1) + j] = s;
}
#define RK_QS_LEN RK_R
#else
#define RK_QS_LEN 1
#endif

/* Merge the splits of one (b, h): out = Σ e^(m_s - M) acc_s / Σ e^(m_s - M) l_s. */
kernel void rk_combine(global const float *part_ml, global const float *part_acc, int n_split,
                       int Hq, global rk_elem *out, long o_off, long o_sb, long o_sh,
                       global float *lse, long l_off, long l_sb, long l_sh, int has_lse) {
    const int c = get_global_id(0), h = get_global_id(1), b = get_global_id(2);
    const long base = ((long)b * Hq + h) * n_split;
    float M = -INFINITY;
    for (int s = 0; s < n_split; s++) M = fmax(M, part_ml[2 * (base + s)]);
    float L = 0.0f, o = 0.0f;
    for (int s = 0; s < n_split; s++) {
        float ms = part_ml[2 * (base + s)];
        float w = ms == -INFINITY ? 0.0f : exp(ms - M);
        L = fma(w, part_ml[2 * (base + s) + 1], L);
        o = fma(w, part_acc[(base + s) * RK_DV + c], o);
    }
    rk_st1(out, o_off + b * o_sb + h * o_sh + c, o / L);
    if (has_lse && c == 0) lse[l_off + b * l_sb + h * l_sh] = M + log(L);
}

#define RK_DECODE_ARGS                                                                        \
    global const rk_elem *q, long q_off, long q_sb, long q_sh,                               \
    global const rk_elem *kf, long kf_off, long kf_sb, long kf_sh, long kf_st,               \
    global const rk_elem *ks, long ks_off, long ks_sb, long ks_sh, long ks_st,               \
    global const rk_elem *v, long v_off, long v_sb, long v_sh, long v_st,                    \
    global const float *qproj, global const int4 *seqs, int Hq, int Hkv, int n_split,        \
    int chunk, float scale, global float *part_ml, global float *part_acc

#if RK_SERIAL
/* ---- CPU shape: one work-item, a contiguous token chunk, blocks of RK_NB tokens ------------- */
#define RK_NB 16

/* Private-array helpers with explicit 8-lane vectors: the CPU compiler then emits SIMD code
 * without having to reassociate or prove anything about the loops. */
inline float rk_pdot(const float *a, const float *b, int n) {
    float8 acc = (float8)(0.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) acc = fma(vload8(0, a + i), vload8(0, b + i), acc);
    float s = (acc.s0 + acc.s1) + (acc.s2 + acc.s3) + ((acc.s4 + acc.s5) + (acc.s6 + acc.s7));
    for (; i < n; i++) s = fma(a[i], b[i], s);
    return s;
}

inline void rk_paxpy(float w, const float *x, float *y, int n) { /* y += w·x */
    int i = 0;
    for (; i + 8 <= n; i += 8) vstore8(fma((float8)(w), vload8(0, x + i), vload8(0, y + i)), 0, y + i);
    for (; i < n; i++) y[i] = fma(w, x[i], y[i]);
}

inline void rk_pscale(float a, float *y, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) vstore8(vload8(0, y + i) * a, 0, y + i);
    for (; i < n; i++) y[i] *= a;
}

inline void rk_pload(global const rk_elem *row, float *dst, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) vstore8(rk_ld8(row, i), 0, dst + i);
    for (; i < n; i++) dst[i] = rk_ld1(row, i);
}

kernel void rk_decode_part(RK_DECODE_ARGS) {
    const int split = get_global_id(0), hg = get_global_id(1), b = get_global_id(2);
    const int g = hg / RK_HEAD_CHUNKS, h0 = g * RK_G + (hg % RK_HEAD_CHUNKS) * RK_GH;
    const int nh = min(RK_GH, (g + 1) * RK_G - h0);
    const int4 s = seqs[b];
    (void)Hkv;
    (void)qproj;

    float qf[RK_GH * RK_D], qs[RK_GH * RK_QS_LEN], bias[RK_GH];
    float acc[RK_GH * RK_DV], m[RK_GH], l[RK_GH];
    float krow[RK_D], vrow[RK_DV], logit[RK_GH * RK_NB];
    for (int h = 0; h < RK_GH; h++) {
        const int hq = h0 + min(h, nh - 1); /* masked heads repeat the last real one */
        global const rk_elem *qh = q + q_off + b * q_sb + hq * q_sh;
        for (int c = 0; c < RK_D; c++) qf[h * RK_D + c] = rk_ld1(qh, c);
#if RK_R > 0
        global const float *qp = qproj + ((long)b * Hq + hq) * (RK_R + 1);
        for (int c = 0; c < RK_R; c++) qs[h * RK_R + c] = qp[c];
        bias[h] = qp[RK_R] * scale;
#else
        qs[h] = 0.0f;
        bias[h] = 0.0f;
#endif
        m[h] = -INFINITY;
        l[h] = 0.0f;
        for (int c = 0; c < RK_DV; c++) acc[h * RK_DV + c] = 0.0f;
    }

    global const rk_elem *vh = v + v_off + b * v_sb + g * v_sh;
    for (int seg = 0; seg < 3; seg++) {
        const int span = seg == 1;
#if RK_R == 0
        if (span) continue;
#endif
        const int3 sg = rk_segment(s, split * chunk, (split + 1) * chunk, seg);
        global const rk_elem *kh = span ? ks + ks_off + b * ks_sb + g * ks_sh
                                        : kf + kf_off + b * kf_sb + g * kf_sh;
        const long kst = span ? ks_st : kf_st;
        const int W = span ? RK_QS_LEN : RK_D;
        const float *qw = span ? qs : qf;
        for (int p0 = sg.x; p0 < sg.y; p0 += RK_NB) {
            const int n = min(RK_NB, sg.y - p0);
            for (int t = 0; t < RK_NB; t++) {
                if (t >= n) { /* past the segment: weight exp(-inf) = 0 below */
                    for (int h = 0; h < RK_GH; h++) logit[h * RK_NB + t] = -INFINITY;
                    continue;
                }
                global const rk_elem *row = kh + (long)(p0 + t - sg.z) * kst;
                rk_pload(row, krow, W);
                for (int h = 0; h < RK_GH; h++)
                    logit[h * RK_NB + t] = fma(rk_pdot(qw + h * W, krow, W), scale, bias[h] * span);
            }
            /* one max and one rescale per block; the block's exponentials as one vector op;
             * weights overwrite the logits */
            for (int h = 0; h < RK_GH; h++) {
                const float16 x = vload16(0, logit + h * RK_NB);
                float8 m8 = fmax(x.lo, x.hi);
                float4 m4 = fmax(m8.lo, m8.hi);
                const float bm = fmax(fmax(m4.x, m4.y), fmax(m4.z, m4.w));
                if (bm > m[h]) {
                    const float a = exp(m[h] - bm);
                    l[h] *= a;
                    rk_pscale(a, acc + h * RK_DV, RK_DV);
                    m[h] = bm;
                }
                const float16 w = exp(x - (float16)(m[h]));
                vstore16(w, 0, logit + h * RK_NB);
                float8 s8 = w.lo + w.hi;
                float4 s4 = s8.lo + s8.hi;
                l[h] += (s4.x + s4.y) + (s4.z + s4.w);
            }
            for (int t = 0; t < n; t++) {
                rk_pload(vh + (long)(p0 + t) * v_st, vrow, RK_DV);
                for (int h = 0; h < RK_GH; h++)
                    rk_paxpy(logit[h * RK_NB + t], vrow, acc + h * RK_DV, RK_DV);
            }
        }
    }
    for (int h = 0; h < nh; h++) {
        const long pi = ((long)b * Hq + h0 + h) * n_split + split;
        part_ml[2 * pi] = m[h];
        part_ml[2 * pi + 1] = l[h];
        for (int c = 0; c < RK_DV; c++) part_acc[pi * RK_DV + c] = acc[h * RK_DV + c];
    }
}

#else
/* ---- GPU shape: tiles of key rows scored cooperatively, values accumulated by stripes ------- */
#define RK_TILE_F ((RK_WG / RK_KCP_F) * RK_PASSES)
#if RK_R > 0
#define RK_TILE_S ((RK_WG / RK_KCP_S) * RK_PASSES)
#define RK_TILE_MAX (RK_TILE_F > RK_TILE_S ? RK_TILE_F : RK_TILE_S)
#define RK_SCRATCH_S (RK_TILE_S * (RK_KCP_S + 1))
#else
#define RK_TILE_MAX RK_TILE_F
#define RK_SCRATCH_S 0
#endif
#define RK_SCRATCH_F (RK_TILE_F * (RK_KCP_F + 1))
#define RK_SCRATCH (RK_SCRATCH_F > RK_SCRATCH_S ? RK_SCRATCH_F : RK_SCRATCH_S)
#define RK_VS (RK_WG / RK_VCP)                         /* value stripes */
#define RK_DVC (RK_DV / RK_VV)                         /* value loads per row */
#define RK_NVC ((RK_DVC + RK_VCP - 1) / RK_VCP)        /* value loads per work-item and row */
#define RK_VPT ((RK_TILE_MAX + RK_VS - 1) / RK_VS)     /* value rows per work-item and tile */
#if RK_DVC % RK_VCP == 0
#define RK_VCOL_OK(c) 1 /* every value load of a row lands on a work-item */
#else
#define RK_VCOL_OK(c) ((c) < RK_DVC)
#endif

#if RK_VV == 4
typedef float4 rk_vacc;
#define RK_LDV(p, i) rk_ld4(p, i)
#else
typedef float rk_vacc;
#define RK_LDV(p, i) rk_ld1(p, i)
#endif
#ifndef RK_VPREFETCH
#define RK_VPREFETCH 1
#endif

/* The value rows of a tile that this work-item accumulates: vs, vs + RK_VS, ... */
inline void rk_load_vtile(rk_vacc vbuf[RK_VPT][RK_NVC], global const rk_elem *vh, long v_st,
                          int p0, int n, int vs, int vpart) {
    #pragma unroll
    for (int k = 0; k < RK_VPT; k++) {
        const int t = vs + k * RK_VS;
        global const rk_elem *vr = vh + (long)(p0 + t) * v_st;
        #pragma unroll
        for (int j = 0; j < RK_NVC; j++) {
            const int c = vpart + j * RK_VCP;
            vbuf[k][j] = (rk_vacc)(0.0f);
            if (t < n && RK_VCOL_OK(c)) vbuf[k][j] = RK_LDV(vr, c * RK_VV);
        }
    }
}

/* Partial dot products of a tile: work-item (tok, part) scores rows tok, tok + TOK, ... over the
 * loads part, part + KCP, ... of a W-wide row, and leaves its per-head sums in
 * scratch[h][t][part] (row pitch KCP + 1 keeps the later column reads free of bank conflicts).
 * W, KV, KCP are compile-time constants at every call, so the loops unroll. */
inline void rk_score_tile(global const rk_elem *rows, long st, int n, local const float *qw,
                          const int W, const int KV, const int KCP, local float *scratch) {
    const int TOK = RK_WG / KCP, TILE = TOK * RK_PASSES, NC = W / KV;
    const int NKC = (NC + KCP - 1) / KCP;
    const int lid = get_local_id(0), part = lid % KCP;
    #pragma unroll
    for (int pass = 0; pass < RK_PASSES; pass++) {
        const int t = lid / KCP + pass * TOK;
        float sum[RK_GH];
        #pragma unroll
        for (int h = 0; h < RK_GH; h++) sum[h] = 0.0f;
        if (t < n) {
            global const rk_elem *row = rows + (long)t * st;
            #pragma unroll
            for (int j = 0; j < NKC; j++) {
                const int c = part + j * KCP;
                if (NC % KCP == 0 || c < NC) {
                    if (KV == 4) {
                        const float4 k = rk_ld4(row, c * 4);
                        #pragma unroll
                        for (int h = 0; h < RK_GH; h++)
                            sum[h] += dot(vload4(0, qw + h * W + c * 4), k);
                    } else {
                        const float k = rk_ld1(row, c);
                        #pragma unroll
                        for (int h = 0; h < RK_GH; h++) sum[h] = fma(qw[h * W + c], k, sum[h]);
                    }
                }
            }
        }
        #pragma unroll
        for (int h = 0; h < RK_GH; h++) scratch[(h * TILE + t) * (KCP + 1) + part] = sum[h];
    }
}

/* Float -> int with the same order (for atomic_max on local ints; no NaN reaches it). */
inline int rk_ordered(float x) {
    const int i = as_int(x);
    return i >= 0 ? i : i ^ 0x7fffffff;
}
inline float rk_unordered(int i) { return as_float(i >= 0 ? i : i ^ 0x7fffffff); }

/* The work-group shares one softmax reference per head, mref_l, in local memory. A tile's
 * weights are exp(x - reference), computed once per (head, token); the reference is raised (and
 * every work-item's sums rescaled) only when a logit exceeds it by more than RK_RAISE, so weights
 * stay below e^RK_RAISE and f32 sums cannot overflow. */
#define RK_RAISE 8.0f
#define RK_NO_RAISE (-2147483647 - 1)

/* Logits of the tile: x = (Σ_part scratch[h][t][part]) · scale + bias[h], proposing a raise of
 * the head's reference when x outruns it. */
inline void rk_reduce_tile(local const float *scratch, int n, const int KCP, float scale,
                           local const float *bias, local const float *mref_l,
                           local float *logits, volatile local int *raise) {
    const int TILE = (RK_WG / KCP) * RK_PASSES;
    for (int i = get_local_id(0); i < RK_GH * TILE; i += RK_WG) {
        const int h = i / TILE, t = i % TILE;
        local const float *p = scratch + (h * TILE + t) * (KCP + 1);
        float s = 0.0f;
        #pragma unroll
        for (int k = 0; k < KCP; k++) s += p[k];
        const float x = fma(s, scale, bias[h]);
        logits[h * RK_TILE_MAX + t] = x;
        if (t < n && x > mref_l[h] + RK_RAISE) atomic_max(raise + h, rk_ordered(x));
    }
}

/* Weights in place of the logits, against this tile's (possibly raised) references. */
inline void rk_weights_tile(int n, const int KCP, local const float *mref_l,
                            volatile local const int *raise, local float *logits) {
    const int TILE = (RK_WG / KCP) * RK_PASSES;
    for (int i = get_local_id(0); i < RK_GH * TILE; i += RK_WG) {
        const int h = i / TILE, t = i % TILE;
        const int r = raise[h];
        const float m = r != RK_NO_RAISE ? rk_unordered(r) : mref_l[h];
        local float *x = logits + h * RK_TILE_MAX + t;
        *x = t < n ? exp(*x - m) : 0.0f;
    }
}

kernel __attribute__((reqd_work_group_size(RK_WG, 1, 1))) void rk_decode_part(RK_DECODE_ARGS) {
    const int split = get_group_id(0), hg = get_group_id(1), b = get_group_id(2);
    const int g = hg / RK_HEAD_CHUNKS, h0 = g * RK_G + (hg % RK_HEAD_CHUNKS) * RK_GH;
    const int nh = min(RK_GH, (g + 1) * RK_G - h0);
    const int lid = get_local_id(0), vpart = lid % RK_VCP, vs = lid / RK_VCP;
    const int4 s = seqs[b];
    (void)Hkv;
    (void)qproj;

    local float qf[RK_GH * RK_D], bias_f[RK_GH], bias_s[RK_GH];
#if RK_R > 0
    local float qs[RK_GH * RK_R];
#endif
    local float scratch[RK_GH * RK_SCRATCH], logits[RK_GH * RK_TILE_MAX];
    local float ls[RK_GH * RK_VS], red[RK_VS * RK_DV], mref_l[RK_GH];
    volatile local int raise[RK_GH];

    for (int i = lid; i < RK_GH * RK_D; i += RK_WG) {
        const int hq = h0 + min(i / RK_D, nh - 1); /* masked heads repeat the last real one */
        qf[i] = rk_ld1(q + q_off + b * q_sb + hq * q_sh, i % RK_D);
    }
#if RK_R > 0
    for (int i = lid; i < RK_GH * RK_R; i += RK_WG) {
        const int hq = h0 + min(i / RK_R, nh - 1);
        qs[i] = qproj[((long)b * Hq + hq) * (RK_R + 1) + i % RK_R];
    }
#endif
    for (int h = lid; h < RK_GH; h += RK_WG) {
        bias_f[h] = 0.0f;
#if RK_R > 0
        bias_s[h] = qproj[((long)b * Hq + h0 + min(h, nh - 1)) * (RK_R + 1) + RK_R] * scale;
#else
        bias_s[h] = 0.0f;
#endif
        raise[h] = RK_NO_RAISE;
        mref_l[h] = -INFINITY;
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    float l[RK_GH];
    rk_vacc acc[RK_GH][RK_NVC];
    #pragma unroll
    for (int h = 0; h < RK_GH; h++) {
        l[h] = 0.0f;
        #pragma unroll
        for (int j = 0; j < RK_NVC; j++) acc[h][j] = (rk_vacc)(0.0f);
    }

    global const rk_elem *vh = v + v_off + b * v_sb + g * v_sh;
    for (int seg = 0; seg < 3; seg++) {
        const int span = seg == 1;
#if RK_R == 0
        if (span) continue;
#endif
        const int3 sg = rk_segment(s, split * chunk, (split + 1) * chunk, seg);
        global const rk_elem *kh = span ? ks + ks_off + b * ks_sb + g * ks_sh
                                        : kf + kf_off + b * kf_sb + g * kf_sh;
        const long kst = span ? ks_st : kf_st;
#if RK_R > 0
        const int tile = span ? RK_TILE_S : RK_TILE_F;
#else
        const int tile = RK_TILE_F;
#endif
        for (int p0 = sg.x; p0 < sg.y; p0 += tile) {
            const int n = min(tile, sg.y - p0);
            rk_vacc vbuf[RK_VPT][RK_NVC];
#if RK_VPREFETCH
            rk_load_vtile(vbuf, vh, v_st, p0, n, vs, vpart); /* independent of the logits */
#endif
            global const rk_elem *rows = kh + (long)(p0 - sg.z) * kst;
            /* scores -> logits (+ raise proposals) -> references -> weights: three barriers */
#if RK_R > 0
            if (span) {
                rk_score_tile(rows, kst, n, qs, RK_R, RK_KV_S, RK_KCP_S, scratch);
                barrier(CLK_LOCAL_MEM_FENCE);
                rk_reduce_tile(scratch, n, RK_KCP_S, scale, bias_s, mref_l, logits, raise);
            } else
#endif
            {
                rk_score_tile(rows, kst, n, qf, RK_D, RK_KV_F, RK_KCP_F, scratch);
                barrier(CLK_LOCAL_MEM_FENCE);
                rk_reduce_tile(scratch, n, RK_KCP_F, scale, bias_f, mref_l, logits, raise);
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            #pragma unroll
            for (int h = 0; h < RK_GH; h++) {
                const int r = raise[h];
                if (r != RK_NO_RAISE) { /* the same decision in every work-item */
                    const float a = exp(mref_l[h] - rk_unordered(r));
                    l[h] *= a;
                    #pragma unroll
                    for (int j = 0; j < RK_NVC; j++) acc[h][j] *= a;
                }
            }
#if RK_R > 0
            if (span) rk_weights_tile(n, RK_KCP_S, mref_l, raise, logits);
            else
#endif
                rk_weights_tile(n, RK_KCP_F, mref_l, raise, logits);
            barrier(CLK_LOCAL_MEM_FENCE);
            /* everyone has read `raise` and `mref_l` (before the barrier above): fold the raise
             * in and clear it for the next tile, whose reads come after its own first barrier */
            if (lid < RK_GH && raise[lid] != RK_NO_RAISE) {
                mref_l[lid] = rk_unordered(raise[lid]);
                raise[lid] = RK_NO_RAISE;
            }
#if !RK_VPREFETCH
            rk_load_vtile(vbuf, vh, v_st, p0, n, vs, vpart); /* now: shorter live ranges */
#endif
            #pragma unroll
            for (int k = 0; k < RK_VPT; k++) {
                const int t = vs + k * RK_VS;
                if (t >= n) break;
                #pragma unroll
                for (int h = 0; h < RK_GH; h++) {
                    const float w = logits[h * RK_TILE_MAX + t];
                    l[h] += w;
                    #pragma unroll
                    for (int j = 0; j < RK_NVC; j++) acc[h][j] = fma((rk_vacc)(w), vbuf[k][j], acc[h][j]);
                }
            }
        }
    }

    /* every stripe used the same references: the partial is a plain sum over stripes */
    if (vpart == 0)
        #pragma unroll
        for (int h = 0; h < RK_GH; h++) ls[h * RK_VS + vs] = l[h];
    #pragma unroll
    for (int h = 0; h < RK_GH; h++) {
        barrier(CLK_LOCAL_MEM_FENCE);
        #pragma unroll
        for (int j = 0; j < RK_NVC; j++) {
            const int c = vpart + j * RK_VCP;
            if (RK_VCOL_OK(c)) {
#if RK_VV == 4
                vstore4(acc[h][j], 0, red + vs * RK_DV + c * 4);
#else
                red[vs * RK_DV + c] = acc[h][j];
#endif
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (h < nh) {
            const long pi = ((long)b * Hq + h0 + h) * n_split + split;
            for (int c = lid; c < RK_DV; c += RK_WG) {
                float o = 0.0f;
                #pragma unroll
                for (int i = 0; i < RK_VS; i++) o += red[i * RK_DV + c];
                part_acc[pi * RK_DV + c] = o;
            }
            if (lid == 0) {
                float L = 0.0f;
                #pragma unroll
                for (int i = 0; i < RK_VS; i++) L += ls[h * RK_VS + i];
                part_ml[2 * pi] = mref_l[h];
                part_ml[2 * pi + 1] = L;
            }
        }
    }
}
#endif
