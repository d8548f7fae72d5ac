/* Prefill-side kernels: span moments (mean, centering for the CLBlast Gram product), compression
 * of 16-bit keys, and the read-bandwidth probe. Needs rk_common.cl first.
 *
 * Views are passed as (element offset, batch stride, head stride, token stride); channels are
 * contiguous. Sequence b has n_tokens[b] valid rows. */

/* mean[b][h][c] over the valid rows. Kahan-compensated: prefill chunks can hold tens of
 * thousands of rows, where a plain f32 running sum drifts. */
kernel void rk_mean(global const rk_elem *k, long off, long sb, long sh, long st,
                    global const int *n_tokens, int H, int d, global float *mean) {
    const int c = get_global_id(0), h = get_global_id(1), b = get_global_id(2);
    const int n = n_tokens[b];
    global const rk_elem *base = k + off + b * sb + h * sh;
    float sum = 0.0f, comp = 0.0f;
    for (int t = 0; t < n; t++) {
        float y = rk_ld1(base, (long)t * st + c) - comp;
        float s = sum + y;
        comp = (s - sum) - y;
        sum = s;
    }
    mean[((long)b * H + h) * d + c] = n > 0 ? sum / (float)n : 0.0f;
}

/* x[i][t][c] = k - mean for the valid rows of head bh0 + i (heads numbered b*H + h): the dense
 * f32 operand of the Gram product, made a few heads at a time. */
kernel void rk_center(global const rk_elem *k, long off, long sb, long sh, long st,
                      global const int *n_tokens, int H, int d, int rows, int bh0,
                      global const float *mean, global float *x) {
    const int c = get_global_id(0), t = get_global_id(1), i = get_global_id(2);
    const int bh = bh0 + i, b = bh / H, h = bh % H;
    if (t >= n_tokens[b]) return;
    float kv = rk_ld1(k, off + b * sb + h * sh + (long)t * st + c);
    x[((long)i * rows + t) * d + c] = kv - mean[(long)bh * d + c];
}

/* out[b][h][t][j] = Σ_c k[b][h][t][c] · R[b][h][c][j], f32 accumulation, one output per work-item.
 * Used for 16-bit keys (CLBlast has no half GEMM here) and for f32 views CLBlast cannot take. */
kernel void rk_compress(global const rk_elem *k, long k_off, long k_sb, long k_sh, long k_st,
                        global const float *R, global rk_elem *out, long o_off, long o_sb,
                        long o_sh, long o_st, int H, int d, int r) {
    const int j = get_global_id(0), t = get_global_id(1), bh = get_global_id(2);
    const int b = bh / H, h = bh % H;
    global const rk_elem *row = k + k_off + b * k_sb + h * k_sh + (long)t * k_st;
    global const float *Rh = R + (long)bh * d * r + j;
    float s = 0.0f;
    for (int c = 0; c < d; c++) s = fma(rk_ld1(row, c), Rh[(long)c * r], s);
    rk_st1(out, o_off + b * o_sb + h * o_sh + (long)t * o_st + j, s);
}

/* Read n16 16-byte words once. chunk > 0: work-item i reads the contiguous words
 * [i*chunk, (i+1)*chunk) (CPU devices); chunk == 0: a grid-stride loop (GPUs, coalesced).
 * The sum is stored only if it equals `never`, which the host makes impossible to predict, so
 * the compiler must perform every load. */
kernel void rk_probe(global const uint4 *p, long n16, long chunk, uint never,
                     global uint *sink) {
    const long gid = get_global_id(0), gsz = get_global_size(0);
    uint4 acc = (uint4)(0u);
    if (chunk > 0) {
        long lo = gid * chunk, hi = min(lo + chunk, n16);
        for (long i = lo; i < hi; i++) acc += p[i];
    } else {
        for (long i = gid; i < n16; i += gsz) acc += p[i];
    }
    uint s = acc.x ^ acc.y ^ acc.z ^ acc.w;
    if (s == never) sink[0] = (uint)gid;
}
