/* Sparse-channel and dense decode attention (flash-decoding: token splits, then a combine).
 * Needs rk_common.cl first. Defines, all set by the host (backends/opencl/ocl_decode.c):
 *   RK_D, RK_DV      key / value head dims
 *   RK_R             stored width of the pruned span keys; 0 builds the dense decode
 *   RK_G, RK_GH      query heads per KV head; query heads one work-group serves (RK_GH <= RK_G)
 *   RK_SERIAL        1: one work-item walks a contiguous token chunk (CPU devices); 0: tiled
 *   RK_WARPS         1: warp-private tiles with shuffles (defines in that section); 0: tiled
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

/* (seq_len, span_begin, span_len, 0) of up to RK_SEQ_INLINE sequences, passed by value so a
 * decode needs no upload before its kernels (an upload costs the device a copy-engine round
 * trip); larger batches read the seqs buffer instead. Mirrors rk_ocl_seq_tab on the host. */
#define RK_SEQ_INLINE 16
typedef struct rk_seq_tab {
    int4 s[RK_SEQ_INLINE];
} rk_seq_tab;

/* s = entry b, picked with constant indices: a run-time index into a by-value argument may make
 * the compiler copy the whole table to private memory. */
#define RK_SEQ_OF(s, tab, inl, seqs, b)                                                        \
    do {                                                                                       \
        if (!(inl)) {                                                                          \
            s = (seqs)[b];                                                                     \
        } else {                                                                               \
            s = (tab).s[0];                                                                    \
            _Pragma("unroll") for (int i_ = 1; i_ < RK_SEQ_INLINE; i_++) if (i_ == (b)) s = (tab).s[i_]; \
        }                                                                                      \
    } while (0)

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

/* Merge the splits of one (b, h): out = Σ e^(m_s - M) acc_s / Σ e^(m_s - M) l_s, in one online
 * pass (the running maximum rescales what was summed), RK_CMB splits' loads in flight at a time:
 * the merge is a chain of memory latencies, not arithmetic. */
#define RK_CMB 32
kernel void rk_combine(global const float *part_ml, global const float *part_acc, int n_split,
                       int Hq, global rk_elem *out, long o_off, long o_sb, long o_sh,
                       global float *lse, long l_off, long l_sb, long l_sh, int has_lse) {
    const int c = get_global_id(0), h = get_global_id(1), b = get_global_id(2);
    const long base = ((long)b * Hq + h) * n_split;
    float M = -INFINITY, L = 0.0f, o = 0.0f;
    for (int s0 = 0; s0 < n_split; s0 += RK_CMB) {
        float2 ml[RK_CMB];
        float a[RK_CMB];
        #pragma unroll
        for (int u = 0; u < RK_CMB; u++) {
            const int s = s0 + u;
            ml[u] = s < n_split ? vload2(base + s, part_ml) : (float2)(-INFINITY, 0.0f);
            a[u] = s < n_split ? part_acc[(base + s) * RK_DV + c] : 0.0f;
        }
        #pragma unroll
        for (int u = 0; u < RK_CMB; u++) {
            if (ml[u].x == -INFINITY) continue; /* a split with no token */
            if (ml[u].x > M) {
                const float f = exp(M - ml[u].x);
                L *= f;
                o *= f;
                M = ml[u].x;
            }
            const float w = exp(ml[u].x - M);
            L = fma(w, ml[u].y, L);
            o = fma(w, a[u], o);
        }
    }
    rk_st1(out, o_off + b * o_sb + h * o_sh + c, o / L);
    if (has_lse && c == 0) lse[l_off + b * l_sb + h * l_sh] = M + log(L);
}

#define RK_DECODE_ARGS                                                                        \
    global const rk_elem *q, long q_off, long q_sb, long q_sh,                               \
    global const rk_elem *kf, long kf_off, long kf_sb, long kf_sh, long kf_st,               \
    global const rk_elem *ks, long ks_off, long ks_sb, long ks_sh, long ks_st,               \
    global const rk_elem *v, long v_off, long v_sb, long v_sh, long v_st,                    \
    global const float *qproj, global const int4 *seqs, rk_seq_tab seq_tab, int seq_inline,  \
    int Hq, int Hkv, int n_split, int chunk, float scale, global float *part_ml,             \
    global float *part_acc

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
    int4 s;
    RK_SEQ_OF(s, seq_tab, seq_inline, seqs, b);
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

#elif RK_WARPS
/* ---- warp shape (NVIDIA): warp-private tiles, shuffles instead of work-group barriers --------
 * Defines: RK_NW warps (32 work-items) per work-group; RK_TILE tokens per warp tile; RK_KC_F /
 * RK_KC_S / RK_VC 16-byte chunks per full-width key / pruned key / value row (powers of two
 * <= 32, RK_VC >= RK_KC_F >= RK_KC_S); RK_GP = RK_GH rounded up to a power of two (padding heads
 * repeat the last real one); RK_MMA 1: q·K and P·V on tensor cores (RK_GP 8, RK_TILE 16; 16-bit
 * with RK_VC 16, or f32 with RK_VC 32 through split TF32); RK_PREFETCH 1: a warp issues its next
 * tile's loads before working on the current one.
 * Shuffles, conversions and mma are inline PTX, which NVIDIA's OpenCL compiler hands to ptxas;
 * other devices take the tiled shape below.
 *
 * A work-group reads its split of one KV head once for all its query heads. Warps take tiles
 * round robin; a lane issues every 16-byte load of its tile (values, then keys) before using any.
 * Without RK_MMA, each key row's per-head dot products are reduced and scattered over the row's
 * lanes, so a lane ends with RK_GP/KC heads (or shares one head with KC/RK_GP lanes) and no
 * exponential is repeated across a row. Softmax runs in the log2 domain against one reference per
 * head that every lane holding the head keeps identically, raised only when a tile outruns it by
 * RK_RAISE. No work-group barrier runs
 * inside the token loop. */
#define RK_LANES 32
#define RK_RAISE 8.0f
#define RK_LOG2(x) ((x) >= 32 ? 5 : (x) >= 16 ? 4 : (x) >= 8 ? 3 : (x) >= 4 ? 2 : (x) >= 2 ? 1 : 0)
/* private array bounds over both key widths (OpenCL C has no variable-length arrays) */
#if RK_R > 0 && RK_KC_S < RK_KC_F
#define RK_KC_MIN RK_KC_S
#else
#define RK_KC_MIN RK_KC_F
#endif
#define RK_KSL_MAX (RK_TILE * RK_KC_F / RK_LANES)              /* key loads per lane and tile */
#define RK_VSL (RK_TILE * RK_VC / RK_LANES)                    /* value loads per lane and tile */
#define RK_HPL_MAX (RK_GP > RK_KC_MIN ? RK_GP / RK_KC_MIN : 1) /* heads per lane */

/* volatile: a shuffle must stay where all 32 lanes reach it */
inline float rk_shfl_xor(float x, int m) {
    float r;
    asm volatile("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=f"(r) : "f"(x), "r"(m));
    return r;
}
inline float rk_shfl_idx(float x, int src) {
    float r;
    asm volatile("shfl.sync.idx.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=f"(r) : "f"(x), "r"(src));
    return r;
}

/* 16 bytes of a row as floats */
#if RK_DT == 0
#define RK_VE 4
typedef float4 rk_chunk;
inline rk_chunk rk_unpack(uint4 u) { return as_float4(u); }
#elif RK_DT == 2
#define RK_VE 8
typedef float8 rk_chunk;
inline rk_chunk rk_unpack(uint4 u) {
    const uint4 lo = u << 16, hi = u & 0xffff0000u;
    return as_float8((uint8)(lo.x, hi.x, lo.y, hi.y, lo.z, hi.z, lo.w, hi.w));
}
#else
#define RK_VE 8
typedef float8 rk_chunk;
inline float2 rk_half2(uint x) { /* no cl_khr_fp16 on NVIDIA: the conversion in PTX */
    float a, b;
    asm("{.reg .b16 lo, hi;\n\tmov.b32 {lo, hi}, %2;\n\tcvt.f32.f16 %0, lo;\n\tcvt.f32.f16 %1, hi;\n\t}"
        : "=f"(a), "=f"(b) : "r"(x));
    return (float2)(a, b);
}
inline rk_chunk rk_unpack(uint4 u) {
    return (float8)(rk_half2(u.x), rk_half2(u.y), rk_half2(u.z), rk_half2(u.w));
}
#endif

inline float rk_cdot(rk_chunk a, rk_chunk b) {
#if RK_VE == 8
    return dot(a.lo, b.lo) + dot(a.hi, b.hi);
#else
    return dot(a, b);
#endif
}

inline rk_chunk rk_shfl_xor_chunk(rk_chunk a, int m) {
#if RK_VE == 8
    return (float8)(rk_shfl_xor(a.s0, m), rk_shfl_xor(a.s1, m), rk_shfl_xor(a.s2, m),
                    rk_shfl_xor(a.s3, m), rk_shfl_xor(a.s4, m), rk_shfl_xor(a.s5, m),
                    rk_shfl_xor(a.s6, m), rk_shfl_xor(a.s7, m));
#else
    return (float4)(rk_shfl_xor(a.s0, m), rk_shfl_xor(a.s1, m), rk_shfl_xor(a.s2, m),
                    rk_shfl_xor(a.s3, m));
#endif
}

inline uint4 rk_ldchunk(global const rk_elem *row, int chunk) {
    return ((global const uint4 *)row)[chunk]; /* the host checked 16-byte row alignment */
}

#if RK_MMA
/* Both tensor-core paths leave a tile's logits in the mma accumulator layout: lane (g, q) =
 * (lane / 4, lane % 4) holds tokens g, g + 8 × heads 2q, 2q + 1, and its softmax state is that of
 * heads 2q, 2q + 1 (the 8 lanes with the same q keep identical copies). */
typedef float rk_acc[8][4];
#define RK_HST 2    /* heads of softmax state per lane: 2q, 2q + 1 */
#define RK_HLANES 4 /* lanes with distinct states (lanes with equal q share theirs) */

inline void rk_acc_zero(rk_acc acc) {
    #pragma unroll
    for (int mb = 0; mb < 8; mb++) acc[mb][0] = acc[mb][1] = acc[mb][2] = acc[mb][3] = 0.0f;
}

/* The online softmax of one tile: c = q·K of n valid tokens in the layout above, mg = lane / 4.
 * Raises the references where the tile outruns them by RK_RAISE (rescaling acc and l), adds the
 * tile's weights to l and leaves them in w (float4, c's layout). A macro, not a function: NVIDIA's
 * compiler gave the 16-bit kernels more registers with the call (dense 128 -> 130, 11% slower). */
#define RK_MMA_SOFTMAX(w, c, n, mg, hb0, hb1, acc, l, mref)                                       \
    do {                                                                                         \
        const float x0_ = (mg) < (n) ? (c)[0] + (hb0) : -INFINITY;                               \
        const float x1_ = (mg) < (n) ? (c)[1] + (hb1) : -INFINITY;                               \
        const float x2_ = (mg) + 8 < (n) ? (c)[2] + (hb0) : -INFINITY;                           \
        const float x3_ = (mg) + 8 < (n) ? (c)[3] + (hb1) : -INFINITY;                           \
        float tm_[2] = {fmax(x0_, x2_), fmax(x1_, x3_)};                                         \
        _Pragma("unroll") for (int o_ = 4; o_ < RK_LANES; o_ *= 2)                               \
            _Pragma("unroll") for (int j_ = 0; j_ < 2; j_++)                                     \
                tm_[j_] = fmax(tm_[j_], rk_shfl_xor(tm_[j_], o_));                               \
        _Pragma("unroll") for (int j_ = 0; j_ < 2; j_++) if (tm_[j_] > (mref)[j_] + RK_RAISE) {  \
            const float a_ = exp2((mref)[j_] - tm_[j_]);                                         \
            (mref)[j_] = tm_[j_];                                                                \
            (l)[j_] *= a_;                                                                       \
            _Pragma("unroll") for (int mb_ = 0; mb_ < 8; mb_++) {                                \
                (acc)[mb_][j_] *= a_;                                                            \
                (acc)[mb_][2 + j_] *= a_;                                                        \
            }                                                                                    \
        }                                                                                        \
        const float w0_ = exp2(x0_ - (mref)[0]), w2_ = exp2(x2_ - (mref)[0]);                    \
        const float w1_ = exp2(x1_ - (mref)[1]), w3_ = exp2(x3_ - (mref)[1]);                    \
        (l)[0] += w0_ + w2_;                                                                     \
        (l)[1] += w1_ + w3_;                                                                     \
        (w) = (float4)(w0_, w1_, w2_, w3_);                                                      \
    } while (0)

inline uint rk_word(uint4 v, int w) { return w == 0 ? v.x : w == 1 ? v.y : w == 2 ? v.z : v.w; }

#if RK_DT == 0
/* f32 on tensor cores: mma.sync.m16n8k8 with TF32 operands, each f32 operand split into a TF32
 * part and its residual and three products per step (hi·hi + hi·lo + lo·hi), so logits and sums
 * keep f32 grade. The FMA shape was issue-bound here: 8 heads of f32 dot products and P·V per
 * token. A tile is 16 tokens; lane (g, q):
 * - q·K: C = tokens × heads, A = key rows g and g + 8. Step 2i + h takes words 2h (column q) and
 *   2h + 1 (column q + 4) of the lane's chunk q + 4i of each row; B = the query of head g at the
 *   same channels. Keys are loaded RK_TF_KCH chunks per row and lane at a time (full-width rows
 *   in two rounds: registers).
 * - P·V: D = Vᵀ·P + D over 8 channel blocks mb = (u, w): rows g / g + 8 = word w of value chunks
 *   g + 16u / g + 8 + 16u; step s: columns q / q + 4 = tokens q + 8s / q + 4 + 8s. The lane loads
 *   chunks g + 8c of tokens q + 4j (vb[4j + c]). D columns = heads 2q, 2q + 1. */
#define RK_TF_KCH 4
#define RK_MMA1688(c, a0, a1, a2, a3, b0, b1)                                                    \
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "                         \
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"                         \
                 : "+f"((c)[0]), "+f"((c)[1]), "+f"((c)[2]), "+f"((c)[3])                        \
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1))

/* (TF32 part rounded to nearest, residual): the mma ignores the residual's low 13 bits */
inline uint2 rk_tf32_split(uint x) {
    const uint hi = (x + 0x1000u) & 0xffffe000u;
    return (uint2)(hi, as_uint(as_float(x) - as_float(hi)));
}

/* c += A·B in three TF32 products, the small ones first */
inline void rk_mma3(float c[4], uint a0, uint a1, uint a2, uint a3, uint2 b0, uint2 b1) {
    const uint2 x0 = rk_tf32_split(a0), x1 = rk_tf32_split(a1), x2 = rk_tf32_split(a2),
                x3 = rk_tf32_split(a3);
    RK_MMA1688(c, x0.y, x1.y, x2.y, x3.y, b0.x, b1.x);
    RK_MMA1688(c, x0.x, x1.x, x2.x, x3.x, b0.y, b1.y);
    RK_MMA1688(c, x0.x, x1.x, x2.x, x3.x, b0.x, b1.x);
}

inline void rk_tf_load_v(uint4 vb[16], global const rk_elem *vh, long v_st, int p0, int n) {
    const int lane = get_local_id(0) % RK_LANES, mg = lane / 4, mq = lane % 4;
    #pragma unroll
    for (int j = 0; j < 4; j++)
        #pragma unroll
        for (int c = 0; c < 4; c++) {
            const int t = mq + 4 * j;
            vb[4 * j + c] = t < n ? rk_ldchunk(vh + (long)(p0 + t) * v_st, mg + 8 * c) : (uint4)(0u);
        }
}

/* kb[2i + r] = key chunk q + 4(i0 + i) of row g + 8r (zero past the row or the tile) */
inline void rk_tf_load_k(uint4 kb[2 * RK_TF_KCH], global const rk_elem *kh, long kst, int shift,
                         int p0, int n, const int KC, const int i0) {
    const int lane = get_local_id(0) % RK_LANES, mg = lane / 4, mq = lane % 4;
    #pragma unroll
    for (int i = 0; i < RK_TF_KCH; i++)
        #pragma unroll
        for (int r = 0; r < 2; r++) {
            const int t = mg + 8 * r, c = mq + 4 * (i0 + i);
            kb[2 * i + r] = t < n && c < KC ? rk_ldchunk(kh + (long)(p0 + t - shift) * kst, c) : (uint4)(0u);
        }
}

/* Positions [pb, pe) of one segment: key rows kh[(p - shift)·kst], KC chunks wide, scored against
 * qw[h][KC·4] plus bias[h]; value rows vh[p·v_st]. l and mref: heads 2q, 2q + 1 of this lane. */
inline void rk_warp_segment(global const rk_elem *kh, long kst, int shift, global const rk_elem *vh,
                            long v_st, int pb, int pe, local const float *qw, local const float *bias,
                            const int KC, rk_acc acc, float l[2], float mref[2]) {
    const int NCH = (KC + 3) / 4; /* key chunks per row and lane */
    const int lane = get_local_id(0) % RK_LANES, warp = get_local_id(0) / RK_LANES;
    const int mg = lane / 4, mq = lane % 4;
    const float hb0 = bias[2 * mq], hb1 = bias[2 * mq + 1];
    for (int p0 = pb + warp * RK_TILE; p0 < pe; p0 += RK_NW * RK_TILE) {
        const int n = min(RK_TILE, pe - p0);
        uint4 vb[16], kb[2 * RK_TF_KCH];
        rk_tf_load_v(vb, vh, v_st, p0, n);
        rk_tf_load_k(kb, kh, kst, shift, p0, n, KC, 0);

        /* logits: tokens g, g + 8 × heads 2q, 2q + 1 */
        float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        #pragma unroll
        for (int i0 = 0; i0 < NCH; i0 += RK_TF_KCH) {
            if (i0 > 0) rk_tf_load_k(kb, kh, kst, shift, p0, n, KC, i0);
            #pragma unroll
            for (int i = 0; i < RK_TF_KCH; i++)
                #pragma unroll
                for (int h = 0; h < 2; h++) {
                    const int ch = mq + 4 * (i0 + i);
                    /* q's B fragments are read and split again every tile: held for the
                     * segment they would take 64 registers at d 128 (occupancy) */
                    if (i0 + i < NCH) {
                        const float2 bq = ch < KC ? vload2(0, qw + (mg * KC + ch) * 4 + 2 * h) : (float2)(0.0f);
                        rk_mma3(c, rk_word(kb[2 * i], 2 * h), rk_word(kb[2 * i + 1], 2 * h),
                                rk_word(kb[2 * i], 2 * h + 1), rk_word(kb[2 * i + 1], 2 * h + 1),
                                rk_tf32_split(as_uint(bq.x)), rk_tf32_split(as_uint(bq.y)));
                    }
                }
        }
        float4 w;
        RK_MMA_SOFTMAX(w, c, n, mg, hb0, hb1, acc, l, mref);

        /* B of P·V: P[token q + 4(e & 1) + 8(e >> 1)][head g], from the lane holding that token */
        uint2 pb2[4];
        #pragma unroll
        for (int e = 0; e < 4; e++) {
            const int src = 4 * (mq + 4 * (e & 1)) + mg / 2;
            const float ev = rk_shfl_idx(e >> 1 ? w.z : w.x, src), od = rk_shfl_idx(e >> 1 ? w.w : w.y, src);
            pb2[e] = rk_tf32_split(as_uint(mg & 1 ? od : ev));
        }
        #pragma unroll
        for (int u = 0; u < 2; u++)
            #pragma unroll
            for (int wd = 0; wd < 4; wd++)
                #pragma unroll
                for (int st = 0; st < 2; st++)
                    rk_mma3(acc[u * 4 + wd], rk_word(vb[8 * st + 2 * u], wd),
                            rk_word(vb[8 * st + 2 * u + 1], wd), rk_word(vb[8 * st + 4 + 2 * u], wd),
                            rk_word(vb[8 * st + 4 + 2 * u + 1], wd), pb2[2 * st], pb2[2 * st + 1]);
    }
}

/* This warp's partial sums into red[warp][head][channel] */
inline void rk_warp_partial(local float *red, rk_acc acc, int warp) {
    const int lane = get_local_id(0) % RK_LANES, mg = lane / 4, mq = lane % 4;
    local float *r0 = red + (warp * RK_GP + 2 * mq) * RK_DV;
    #pragma unroll
    for (int mb = 0; mb < 8; mb++) {
        const int c0 = 4 * (mg + 16 * (mb >> 2)) + (mb & 3), c8 = c0 + 32;
        r0[c0] = acc[mb][0];
        r0[RK_DV + c0] = acc[mb][1];
        r0[c8] = acc[mb][2];
        r0[RK_DV + c8] = acc[mb][3];
    }
}

#else
/* Both products on tensor cores (mma.sync.m16n8k16, as backends/cuda/decode.cuh), so no lane
 * keeps a query slice of 8 heads in registers (64 of them at d 128; the FMA shape sat at 255).
 * Lane (g, q) = (lane / 4, lane % 4):
 * - q·K: C = tile tokens × heads, A = key rows g and g + 8, B = the query of head g. The lane
 *   loads 16-byte chunks 4i + q of both rows; word w of chunk i feeds k-step 2i + w/2 as the
 *   A word of column pair q (w even) or q + 4 (w odd), and B holds the same channels. B is the
 *   query split into a 16-bit part and its residual (two mma per k-step: f32-grade logits),
 *   packed once per segment. C: tokens g, g + 8 × heads 2q, 2q + 1.
 * - P·V: D = Vᵀ·P + D, one mma per (value chunk slot u, word w): A rows are the word's even
 *   channel (rows g) and odd channel (rows g + 8) of tokens 2q, 2q+1, 2q+8, 2q+9 of chunks g and
 *   g + 8, B = P of those tokens for head g, D columns = heads 2q, 2q+1.
 * So a lane's softmax state is that of heads 2q, 2q + 1. */
#define RK_KCH_MAX ((RK_KC_F + 3) / 4) /* key chunks per row and lane */
inline uint rk_pack_p(float lo, float hi) {
    uint r;
#if RK_DT == 1
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
#else
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
#endif
    return r;
}
inline float2 rk_unpack2(uint x) {
#if RK_DT == 1
    return rk_half2(x);
#else
    return (float2)(as_float(x << 16), as_float(x & 0xffff0000u));
#endif
}
#if RK_DT == 1
#define RK_MMA_OP "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
#else
#define RK_MMA_OP "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
#endif
#define RK_MMA16816(c, a0, a1, a2, a3, b0, b1)                                                   \
    asm volatile(RK_MMA_OP "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"              \
                 : "+f"((c)[0]), "+f"((c)[1]), "+f"((c)[2]), "+f"((c)[3])                        \
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1))
inline uint rk_lo16(uint a, uint b) { return (a & 0xffffu) | (b << 16); }
inline uint rk_hi16(uint a, uint b) { return (a >> 16) | (b & 0xffff0000u); }

/* Loads of the tile at p0 (n valid rows) that this lane uses, all issued before any is used:
 * vb[i] = value chunk g + 8(i & 1) of token 2q + ((i >> 1) & 1) + 8(i >> 2); kb[2i + r] = key
 * chunk 4i + q of row g + 8r (zero past the row: rows of fewer than 4 chunks). */
inline void rk_mma_load(uint4 vb[8], uint4 kb[2 * RK_KCH_MAX], global const rk_elem *kh, long kst,
                        int shift, global const rk_elem *vh, long v_st, int p0, int n, const int KC) {
    const int lane = get_local_id(0) % RK_LANES, mg = lane / 4, mq = lane % 4;
    #pragma unroll
    for (int i = 0; i < 8; i++) {
        const int t = 2 * mq + ((i >> 1) & 1) + 8 * (i >> 2), c = mg + 8 * (i & 1);
        vb[i] = t < n ? rk_ldchunk(vh + (long)(p0 + t) * v_st, c) : (uint4)(0u);
    }
    #pragma unroll
    for (int i = 0; i < (KC + 3) / 4; i++)
        #pragma unroll
        for (int r = 0; r < 2; r++) {
            const int t = mg + 8 * r, c = 4 * i + mq;
            kb[2 * i + r] = t < n && c < KC ? rk_ldchunk(kh + (long)(p0 + t - shift) * kst, c) : (uint4)(0u);
        }
}

/* Positions [pb, pe) of one segment: key rows kh[(p - shift)·kst], KC chunks wide, scored against
 * qw[h][KC·8] plus bias[h]; value rows vh[p·v_st]. l and mref: heads 2q, 2q + 1 of this lane. */
inline void rk_warp_segment(global const rk_elem *kh, long kst, int shift, global const rk_elem *vh,
                            long v_st, int pb, int pe, local const float *qw, local const float *bias,
                            const int KC, rk_acc acc, float l[2], float mref[2]) {
    const int NCH = (KC + 3) / 4;
    const int lane = get_local_id(0) % RK_LANES, warp = get_local_id(0) / RK_LANES;
    const int mg = lane / 4, mq = lane % 4;
    /* B fragments of q·K, k-step 2i + h: channels 8(4i + q) + 4h + {0, 1} and {2, 3} of head g */
    uint bq[2 * RK_KCH_MAX][4];
    #pragma unroll
    for (int i = 0; i < NCH; i++)
        #pragma unroll
        for (int h = 0; h < 2; h++) {
            const int c = 4 * i + mq;
            float x[4];
            #pragma unroll
            for (int e = 0; e < 4; e++) x[e] = c < KC ? qw[mg * KC * 8 + c * 8 + 4 * h + e] : 0.0f;
            const uint hi01 = rk_pack_p(x[0], x[1]), hi23 = rk_pack_p(x[2], x[3]);
            const float2 f01 = rk_unpack2(hi01), f23 = rk_unpack2(hi23);
            bq[2 * i + h][0] = hi01;
            bq[2 * i + h][1] = hi23;
            bq[2 * i + h][2] = rk_pack_p(x[0] - f01.x, x[1] - f01.y);
            bq[2 * i + h][3] = rk_pack_p(x[2] - f23.x, x[3] - f23.y);
        }
    const float hb0 = bias[2 * mq], hb1 = bias[2 * mq + 1];

#if RK_PREFETCH
    uint4 vb[8], kb[2 * RK_KCH_MAX];
    if (pb + warp * RK_TILE < pe)
        rk_mma_load(vb, kb, kh, kst, shift, vh, v_st, pb + warp * RK_TILE,
                    min(RK_TILE, pe - pb - warp * RK_TILE), KC);
#endif
    for (int p0 = pb + warp * RK_TILE; p0 < pe; p0 += RK_NW * RK_TILE) {
        const int n = min(RK_TILE, pe - p0);
        uint4 vcur[8], kcur[2 * RK_KCH_MAX];
#if RK_PREFETCH
        #pragma unroll
        for (int i = 0; i < 8; i++) vcur[i] = vb[i];
        #pragma unroll
        for (int i = 0; i < 2 * NCH; i++) kcur[i] = kb[i];
        const int pn = p0 + RK_NW * RK_TILE;
        if (pn < pe) rk_mma_load(vb, kb, kh, kst, shift, vh, v_st, pn, min(RK_TILE, pe - pn), KC);
#else
        rk_mma_load(vcur, kcur, kh, kst, shift, vh, v_st, p0, n, KC);
#endif

        /* logits: tokens g, g + 8 × heads 2q, 2q + 1 */
        float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        #pragma unroll
        for (int i = 0; i < NCH; i++)
            #pragma unroll
            for (int h = 0; h < 2; h++) {
                const uint a0 = rk_word(kcur[2 * i], 2 * h), a2 = rk_word(kcur[2 * i], 2 * h + 1);
                const uint a1 = rk_word(kcur[2 * i + 1], 2 * h), a3 = rk_word(kcur[2 * i + 1], 2 * h + 1);
                RK_MMA16816(c, a0, a1, a2, a3, bq[2 * i + h][0], bq[2 * i + h][1]);
                RK_MMA16816(c, a0, a1, a2, a3, bq[2 * i + h][2], bq[2 * i + h][3]);
            }
        float4 w;
        RK_MMA_SOFTMAX(w, c, n, mg, hb0, hb1, acc, l, mref);

        /* B of P·V (head g, tokens 2q + (e & 1) + 8(e >> 1)) from the lanes of those tokens */
        float p[4];
        #pragma unroll
        for (int e = 0; e < 4; e++) {
            const int src = 4 * (2 * mq + (e & 1)) + mg / 2;
            const float ev = rk_shfl_idx(e >> 1 ? w.z : w.x, src), od = rk_shfl_idx(e >> 1 ? w.w : w.y, src);
            p[e] = mg & 1 ? od : ev;
        }
        const uint b0 = rk_pack_p(p[0], p[1]), b1 = rk_pack_p(p[2], p[3]);
        #pragma unroll
        for (int u = 0; u < 2; u++)
            #pragma unroll
            for (int wd = 0; wd < 4; wd++) {
                const uint t0 = rk_word(vcur[u], wd), t1 = rk_word(vcur[2 + u], wd);
                const uint t8 = rk_word(vcur[4 + u], wd), t9 = rk_word(vcur[6 + u], wd);
                RK_MMA16816(acc[u * 4 + wd], rk_lo16(t0, t1), rk_hi16(t0, t1), rk_lo16(t8, t9),
                            rk_hi16(t8, t9), b0, b1);
            }
    }
}

inline void rk_warp_partial(local float *red, rk_acc acc, int warp) {
    const int lane = get_local_id(0) % RK_LANES, mg = lane / 4, mq = lane % 4;
    #pragma unroll
    for (int mb = 0; mb < 8; mb++) {
        local float *r0 = red + (warp * RK_GP + 2 * mq) * RK_DV + (mg + 8 * (mb >> 2)) * 8 + 2 * (mb & 3);
        r0[0] = acc[mb][0];
        r0[RK_DV] = acc[mb][1];
        r0[1] = acc[mb][2];
        r0[RK_DV + 1] = acc[mb][3];
    }
}
#endif /* RK_DT */
#else
typedef rk_chunk rk_acc[RK_GP]; /* heads × this lane's value chunk */
#define RK_HST RK_GP /* every lane: every head */
#define RK_HLANES 1

inline void rk_acc_zero(rk_acc acc) {
    #pragma unroll
    for (int h = 0; h < RK_GP; h++) acc[h] = (rk_chunk)(0.0f);
}

/* This warp's partial sums into red[warp][head][channel]: lanes with the same value chunk (other
 * tokens) first add theirs */
inline void rk_warp_partial(local float *red, rk_acc acc, int warp) {
    const int lane = get_local_id(0) % RK_LANES;
    #pragma unroll
    for (int o = RK_VC; o < RK_LANES; o *= 2)
        #pragma unroll
        for (int h = 0; h < RK_GP; h++) acc[h] += rk_shfl_xor_chunk(acc[h], o);
    if (lane < RK_VC)
        #pragma unroll
        for (int h = 0; h < RK_GP; h++) {
#if RK_VE == 8
            vstore8(acc[h], lane, red + (warp * RK_GP + h) * RK_DV);
#else
            vstore4(acc[h], lane, red + (warp * RK_GP + h) * RK_DV);
#endif
        }
}

/* Loads of the tile at p0 (n valid rows) that this lane uses, all issued before any is used. */
inline void rk_warp_load(uint4 vb[RK_VSL], uint4 kb[RK_KSL_MAX], global const rk_elem *kh, long kst,
                         int shift, global const rk_elem *vh, long v_st, int p0, int n, const int KC) {
    const int lane = get_local_id(0) % RK_LANES, KTPP = RK_LANES / KC, KSL = RK_TILE / KTPP;
    #pragma unroll
    for (int i = 0; i < RK_VSL; i++) {
        const int t = i * (RK_LANES / RK_VC) + lane / RK_VC, c = lane % RK_VC;
        vb[i] = t < n ? rk_ldchunk(vh + (long)(p0 + t) * v_st, c) : (uint4)(0u);
    }
    #pragma unroll
    for (int i = 0; i < KSL; i++) {
        const int t = i * KTPP + lane / KC;
        kb[i] = t < n ? rk_ldchunk(kh + (long)(p0 + t - shift) * kst, lane % KC) : (uint4)(0u);
    }
}

/* Positions [pb, pe) of one segment: key rows kh[(p - shift)·kst], KC chunks wide, scored against
 * qw[h][KC·RK_VE] plus bias[h]; value rows vh[p·v_st]. acc, l and mref are per head. KC is a
 * compile-time constant at every call, so every private array index folds to a constant. */
inline void rk_warp_segment(global const rk_elem *kh, long kst, int shift, global const rk_elem *vh,
                            long v_st, int pb, int pe, local const float *qw, local const float *bias,
                            const int KC, rk_acc acc, float l[RK_GP], float mref[RK_GP]) {
    const int KTPP = RK_LANES / KC, KSL = RK_TILE / KTPP;  /* key rows per load pass; passes */
    const int VTPP = RK_LANES / RK_VC;
    const int HPL = RK_GP > KC ? RK_GP / KC : 1;           /* heads per lane after the scatter */
    const int LPH = KC > RK_GP ? KC / RK_GP : 1;           /* lanes sharing one head */
    const int lane = get_local_id(0) % RK_LANES, warp = get_local_id(0) / RK_LANES;
    const int kc = lane % KC, hsel = kc / LPH; /* this lane: chunk kc, heads hsel·HPL + j */
    rk_chunk qx[RK_GP];
    #pragma unroll
    for (int h = 0; h < RK_GP; h++) {
#if RK_VE == 8
        qx[h] = vload8(kc, qw + h * KC * RK_VE);
#else
        qx[h] = vload4(kc, qw + h * KC * RK_VE);
#endif
    }
    float hb[RK_HPL_MAX];
    #pragma unroll
    for (int j = 0; j < HPL; j++) hb[j] = bias[hsel * HPL + j];

#if RK_PREFETCH
    uint4 vb[RK_VSL], kb[RK_KSL_MAX];
    if (pb + warp * RK_TILE < pe)
        rk_warp_load(vb, kb, kh, kst, shift, vh, v_st, pb + warp * RK_TILE,
                     min(RK_TILE, pe - pb - warp * RK_TILE), KC);
#endif
    for (int p0 = pb + warp * RK_TILE; p0 < pe; p0 += RK_NW * RK_TILE) {
        const int n = min(RK_TILE, pe - p0);
        uint4 vcur[RK_VSL], kcur[RK_KSL_MAX];
#if RK_PREFETCH
        #pragma unroll
        for (int i = 0; i < RK_VSL; i++) vcur[i] = vb[i];
        #pragma unroll
        for (int i = 0; i < KSL; i++) kcur[i] = kb[i];
        const int pn = p0 + RK_NW * RK_TILE;
        if (pn < pe) rk_warp_load(vb, kb, kh, kst, shift, vh, v_st, pn, min(RK_TILE, pe - pn), KC);
#else
        rk_warp_load(vcur, kcur, kh, kst, shift, vh, v_st, p0, n, KC);
#endif

        /* logits of this lane's heads; each row's sums reduce-scattered over its KC lanes */
        float x[RK_KSL_MAX][RK_HPL_MAX], tmax[RK_HPL_MAX];
        #pragma unroll
        for (int j = 0; j < HPL; j++) tmax[j] = -INFINITY;
        #pragma unroll
        for (int i = 0; i < KSL; i++) {
            const rk_chunk k = rk_unpack(kcur[i]);
            float part[RK_GP];
            #pragma unroll
            for (int h = 0; h < RK_GP; h++) part[h] = rk_cdot(qx[h], k);
            #pragma unroll
            for (int s = 0; s < RK_LOG2(KC); s++) {
                const int o = KC >> (s + 1), c = s < RK_LOG2(RK_GP) ? RK_GP >> s : 1;
                if (c > 1) { /* keep one half of the heads, hand the other to the partner */
                    const int up = (lane & o) != 0;
                    #pragma unroll
                    for (int e = 0; e < RK_GP / 2; e++)
                        if (e < c / 2) {
                            const float give = up ? part[e] : part[e + c / 2];
                            const float keep = up ? part[e + c / 2] : part[e];
                            part[e] = keep + rk_shfl_xor(give, o);
                        }
                } else {
                    part[0] += rk_shfl_xor(part[0], o);
                }
            }
            const int t = i * KTPP + lane / KC;
            #pragma unroll
            for (int j = 0; j < HPL; j++) {
                x[i][j] = t < n ? part[j] + hb[j] : -INFINITY;
                tmax[j] = fmax(tmax[j], x[i][j]);
            }
        }
        #pragma unroll
        for (int s = RK_LOG2(KC); s < RK_LOG2(RK_LANES); s++)
            #pragma unroll
            for (int j = 0; j < HPL; j++) tmax[j] = fmax(tmax[j], rk_shfl_xor(tmax[j], 1 << s));

        /* every lane learns every head's tile maximum and raises the same references */
        float ref[RK_HPL_MAX];
        #pragma unroll
        for (int h = 0; h < RK_GP; h++) {
            const float tm = rk_shfl_idx(tmax[h % HPL], (h / HPL) * LPH);
            if (tm > mref[h] + RK_RAISE) {
                const float a = exp2(mref[h] - tm);
                mref[h] = tm;
                l[h] *= a;
                acc[h] *= a;
            }
            if (h / HPL == hsel) ref[h % HPL] = mref[h];
        }
        float w[RK_KSL_MAX][RK_HPL_MAX];
        #pragma unroll
        for (int j = 0; j < HPL; j++) {
            float sum = 0.0f;
            #pragma unroll
            for (int i = 0; i < KSL; i++) {
                w[i][j] = exp2(x[i][j] - ref[j]);
                sum += w[i][j];
            }
            /* one lane of the LPH that hold the same weights counts them */
            #pragma unroll
            for (int h = j; h < RK_GP; h += HPL)
                if (h / HPL == hsel && kc % LPH == 0) l[h] += sum;
        }

        /* the weight of token t, head h sits in key pass t / KTPP, lane (t % KTPP)·KC + (h / HPL)·LPH */
        /* a value pass never straddles two key passes */
        #pragma unroll
        for (int i = 0; i < RK_VSL; i++) {
            const int t = i * VTPP + lane / RK_VC, src = (t % KTPP) * KC;
            const rk_chunk val = rk_unpack(vcur[i]);
            #pragma unroll
            for (int h = 0; h < RK_GP; h++) {
                const float wh = rk_shfl_idx(w[i * VTPP / KTPP][h % HPL], src + (h / HPL) * LPH);
                acc[h] = fma((rk_chunk)(wh), val, acc[h]);
            }
        }
    }
}
#endif

#if RK_R > 0
#define RK_WGS (RK_NW * RK_LANES)
#define RK_QSLICES (RK_R < RK_WGS ? RK_WGS / RK_R : 1) /* row slices of the projection */
#define RK_QBATCH 32
#define RK_QMU ((RK_D + RK_WGS - 1) / RK_WGS) /* δμ entries per work-item */
/* q·R and q·δμ of one work-group's heads, once per (sequence, KV head, head chunk) for all the
 * splits that read them: qproj[b][h][0..R) and [R], unscaled as rk_qproj writes them. Work-item
 * t owns column t % R of a slice of the rows for every head, so one load of R feeds RK_GP FMA
 * chains; the slices' sums meet in qred [slices][RK_GP][R]. The loads that do not need q (δμ and
 * the first RK_QBATCH rows of R) are issued with q's: the kernel is a chain of round trips. */
kernel __attribute__((reqd_work_group_size(RK_NW * RK_LANES, 1, 1))) void
rk_qproj_group(global const rk_elem *q, long q_off, long q_sb, long q_sh, global const float *Rm,
               global const float *dmu, int Hq, int Hkv, global float *qproj) {
    const int hg = get_group_id(1), b = get_group_id(2), lid = get_local_id(0);
    const int lane = lid % RK_LANES, warp = lid / RK_LANES;
    const int g = hg / RK_HEAD_CHUNKS, h0 = g * RK_G + (hg % RK_HEAD_CHUNKS) * RK_GH;
    const int nh = min(RK_GH, (g + 1) * RK_G - h0);
    local float qf[RK_GP * RK_D], qs[RK_GP * RK_R], bias[RK_GP], qred[RK_QSLICES * RK_GP * RK_R];
    local float mus[RK_D];
    const long bg = (long)b * Hkv + g;
    global const float *Rb = Rm + bg * RK_D * RK_R, *mu = dmu + bg * RK_D;
    const int rows = (RK_D + RK_QSLICES - 1) / RK_QSLICES;
    float rv[RK_QBATCH], muv[RK_QMU];
    {
        const int j = RK_R < RK_WGS ? lid % RK_R : lid, sl = RK_R < RK_WGS ? lid / RK_R : 0;
        const int c0 = sl * rows, c1 = min(RK_D, (sl + 1) * rows);
        #pragma unroll
        for (int u = 0; u < RK_QBATCH; u++)
            rv[u] = sl < RK_QSLICES && j < RK_R && c0 + u < c1 ? Rb[(c0 + u) * RK_R + j] : 0.0f;
    }
    #pragma unroll
    for (int k = 0; k < RK_QMU; k++) muv[k] = lid + k * RK_WGS < RK_D ? mu[lid + k * RK_WGS] : 0.0f;
    for (int i = lid; i < RK_GP * RK_D; i += RK_WGS)
        qf[i] = rk_ld1(q + q_off + b * q_sb + (h0 + min(i / RK_D, nh - 1)) * q_sh, i % RK_D);
    #pragma unroll
    for (int k = 0; k < RK_QMU; k++)
        if (lid + k * RK_WGS < RK_D) mus[lid + k * RK_WGS] = muv[k];
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int j0 = 0; j0 < RK_R; j0 += RK_WGS) {
        const int j = j0 + (RK_R < RK_WGS ? lid % RK_R : lid), sl = RK_R < RK_WGS ? lid / RK_R : 0;
        if (sl < RK_QSLICES && j < RK_R) {
            float a[RK_GP];
            #pragma unroll
            for (int h = 0; h < RK_GP; h++) a[h] = 0.0f;
            const int c1 = min(RK_D, (sl + 1) * rows);
            /* RK_QBATCH rows of R in flight per round trip (rows past c1 weigh zero); the first
             * batch of the first column block was loaded above */
            for (int c0 = sl * rows; c0 < c1; c0 += RK_QBATCH) {
                if (j0 > 0 || c0 > sl * rows)
                    #pragma unroll
                    for (int u = 0; u < RK_QBATCH; u++)
                        rv[u] = c0 + u < c1 ? Rb[(c0 + u) * RK_R + j] : 0.0f;
                #pragma unroll
                for (int u = 0; u < RK_QBATCH; u++) {
                    const int c = min(c0 + u, RK_D - 1);
                    #pragma unroll
                    for (int h = 0; h < RK_GP; h++) a[h] = fma(qf[h * RK_D + c], rv[u], a[h]);
                }
            }
            #pragma unroll
            for (int h = 0; h < RK_GP; h++) qred[(sl * RK_GP + h) * RK_R + j] = a[h];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int o = lid; o < RK_GP * RK_R; o += RK_WGS) {
            const int jj = o % RK_R;
            if (jj < j0 || jj >= j0 + RK_WGS) continue;
            float sum = 0.0f;
            for (int k = 0; k < RK_QSLICES; k++) sum += qred[k * RK_GP * RK_R + o];
            qs[o] = sum;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (int h = warp; h < RK_GP; h += RK_NW) {
        float sum = 0.0f;
        for (int c = lane; c < RK_D; c += RK_LANES) sum = fma(qf[h * RK_D + c], mus[c], sum);
        #pragma unroll
        for (int o = RK_LANES / 2; o > 0; o /= 2) sum += rk_shfl_xor(sum, o);
        if (lane == 0) bias[h] = sum;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int i = lid; i < nh * (RK_R + 1); i += RK_WGS) {
        const int h = i / (RK_R + 1), j = i % (RK_R + 1);
        qproj[((long)b * Hq + h0 + h) * (RK_R + 1) + j] = j < RK_R ? qs[h * RK_R + j] : bias[h];
    }
}
#endif

kernel __attribute__((reqd_work_group_size(RK_NW * RK_LANES, 1, 1))) void
rk_decode_part(RK_DECODE_ARGS) {
    const int split = get_group_id(0), hg = get_group_id(1), b = get_group_id(2);
    const int g = hg / RK_HEAD_CHUNKS, h0 = g * RK_G + (hg % RK_HEAD_CHUNKS) * RK_GH;
    const int nh = min(RK_GH, (g + 1) * RK_G - h0);
    const int lid = get_local_id(0), lane = lid % RK_LANES, warp = lid / RK_LANES;
    int4 s;
    RK_SEQ_OF(s, seq_tab, seq_inline, seqs, b);
    const float qscale = scale * M_LOG2E_F; /* logits in the log2 domain */
    (void)Hkv;
    (void)qproj;

    local float qf[RK_GP * RK_D], bias_f[RK_GP], bias_s[RK_GP];
#if RK_R > 0
    local float qs[RK_GP * RK_R];
#endif
    local float red[RK_NW * RK_GP * RK_DV], red_ml[2 * RK_NW * RK_GP];

    for (int i = lid; i < RK_GP * RK_D; i += RK_NW * RK_LANES) {
        const int hq = h0 + min(i / RK_D, nh - 1); /* padding heads repeat the last real one */
        qf[i] = rk_ld1(q + q_off + b * q_sb + hq * q_sh, i % RK_D) * qscale;
    }
#if RK_R > 0
    for (int i = lid; i < RK_GP * RK_R; i += RK_NW * RK_LANES) {
        const int hq = h0 + min(i / RK_R, nh - 1);
        qs[i] = qproj[((long)b * Hq + hq) * (RK_R + 1) + i % RK_R] * qscale;
    }
#endif
    for (int h = lid; h < RK_GP; h += RK_NW * RK_LANES) {
        bias_f[h] = 0.0f;
#if RK_R > 0
        bias_s[h] = qproj[((long)b * Hq + h0 + min(h, nh - 1)) * (RK_R + 1) + RK_R] * qscale;
#else
        bias_s[h] = 0.0f;
#endif
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    rk_acc acc;
    float l[RK_HST], mref[RK_HST];
    #pragma unroll
    for (int h = 0; h < RK_HST; h++) {
        l[h] = 0.0f;
        mref[h] = -INFINITY;
    }
#if RK_MMA
    #pragma unroll
    for (int mb = 0; mb < 8; mb++) acc[mb][0] = acc[mb][1] = acc[mb][2] = acc[mb][3] = 0.0f;
#else
    #pragma unroll
    for (int h = 0; h < RK_GP; h++) acc[h] = (rk_chunk)(0.0f);
#endif
    global const rk_elem *vh = v + v_off + b * v_sb + g * v_sh;
    global const rk_elem *kfh = kf + kf_off + b * kf_sb + g * kf_sh;
    const int p0 = split * chunk, p1 = (split + 1) * chunk;
    int3 sg = rk_segment(s, p0, p1, 0);
    rk_warp_segment(kfh, kf_st, sg.z, vh, v_st, sg.x, sg.y, qf, bias_f, RK_KC_F, acc, l, mref);
#if RK_R > 0
    sg = rk_segment(s, p0, p1, 1);
    rk_warp_segment(ks + ks_off + b * ks_sb + g * ks_sh, ks_st, sg.z, vh, v_st, sg.x, sg.y, qs,
                    bias_s, RK_KC_S, acc, l, mref);
#endif
    sg = rk_segment(s, p0, p1, 2);
    rk_warp_segment(kfh, kf_st, sg.z, vh, v_st, sg.x, sg.y, qf, bias_f, RK_KC_F, acc, l, mref);

    /* this warp's partial into local memory, then the warps (each with its own references) */
    rk_warp_partial(red, acc, warp);
    #pragma unroll
    for (int o = RK_HLANES; o < RK_LANES; o *= 2)
        #pragma unroll
        for (int j = 0; j < RK_HST; j++) l[j] += rk_shfl_xor(l[j], o);
    if (lane < RK_HLANES)
        #pragma unroll
        for (int j = 0; j < RK_HST; j++) {
            const int h = lane * RK_HST + j;
            red_ml[2 * (warp * RK_GP + h)] = mref[j];
            red_ml[2 * (warp * RK_GP + h) + 1] = l[j];
        }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int i = lid; i < nh * RK_DV; i += RK_NW * RK_LANES) {
        const int h = i / RK_DV, c = i % RK_DV;
        float M = -INFINITY, L = 0.0f, A = 0.0f;
        for (int w = 0; w < RK_NW; w++) M = fmax(M, red_ml[2 * (w * RK_GP + h)]);
        for (int w = 0; w < RK_NW; w++) {
            const float lw = red_ml[2 * (w * RK_GP + h) + 1];
            const float f = lw > 0.0f ? exp2(red_ml[2 * (w * RK_GP + h)] - M) : 0.0f;
            L = fma(f, lw, L);
            A = fma(f, red[(w * RK_GP + h) * RK_DV + c], A);
        }
        const long pi = ((long)b * Hq + h0 + h) * n_split + split;
        part_acc[pi * RK_DV + c] = A;
        if (c == 0) {
            part_ml[2 * pi] = M * M_LN2_F; /* natural log domain, as the combine expects */
            part_ml[2 * pi + 1] = L;
        }
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
    int4 s;
    RK_SEQ_OF(s, seq_tab, seq_inline, seqs, b);
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
