/* The CUDA backend (compiled as the HIP backend too, with -DRK_HIP): devices, contexts, buffers
 * and the op entry points that launch the kernels of decode.cuh, prefill.cuh and subspace.cuh.
 * One stream per context; uploads and downloads are ordered on it and synchronous for the
 * caller. Host code is C-style; templates only pick kernel variants. */
#include "common.cuh"
#include "decode.cuh"
#include "prefill.cuh"
#include "subspace.cuh"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__HIP_DEVICE_COMPILE__)
/* hipcc's device pass drops the host-only backend table below, leaving its functions unused. */
#pragma clang diagnostic ignored "-Wunused-function"
#endif

/* ---- devices ------------------------------------------------------------------------------ */

static rk_status be_device_count(size_t *count) {
    *count = 0;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        /* no driver (CUDA error 35 on machines without a GPU), no device, or a broken runtime:
         * all mean this backend cannot run here */
        (void)cudaGetLastError();
        return RK_ERR_BACKEND_UNAVAILABLE;
    }
    if (n <= 0) return RK_ERR_BACKEND_UNAVAILABLE;
    *count = (size_t)n;
    return RK_OK;
}

static rk_status be_device_name(size_t index, char *buf, size_t buf_len) {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, (int)index) != cudaSuccess) {
        (void)cudaGetLastError();
        return RK_ERR_BACKEND_FAILURE;
    }
    snprintf(buf, buf_len, "%s (cc %d.%d, %d SMs, %.1f GiB)", prop.name, prop.major, prop.minor,
             prop.multiProcessorCount, (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    return RK_OK;
}

/* Make the context's device current for this host thread (contexts may use different devices). */
static rk_status rk_gpu_enter(rk_context *ctx) {
    rk_gpu(ctx)->dec_prev_valid = 0; /* whatever this call enqueues is no decode (be_decode) */
    return rk_gpu_check(ctx, cudaSetDevice(rk_gpu(ctx)->device), "cudaSetDevice");
}

static void be_context_free(rk_context *ctx) {
    rk_gpu_ctx *g = rk_gpu(ctx);
    if (!g) return;
    /* teardown: errors cannot be reported any more, and the memory goes with the process */
    (void)cudaSetDevice(g->device);
    if (g->stream) (void)cudaStreamSynchronize(g->stream);
#if RK_TRACE
    if (g->trace) {
        const size_t words = RK_TR_WORDS;
        unsigned long long *h = (unsigned long long *)malloc(words * 8);
        const char *path = getenv("RK_CUDA_DEC_TRACE_FILE");
        FILE *f = fopen(path ? path : "rk_dec_trace.txt", "w");
        if (h && f && cudaMemcpy(h, g->trace, words * 8, cudaMemcpyDeviceToHost) == cudaSuccess) {
            fprintf(f, "# S %d gy %d B %d nt %d combine %d\n", g->trace_grid[0], g->trace_grid[1],
                    g->trace_grid[2], g->trace_grid[3], g->trace_grid[4]);
            const int nwarps = g->trace_grid[0] * g->trace_grid[1] * g->trace_grid[2] * (g->trace_grid[3] / 32);
            for (int i = 0; i < nwarps && i < 8192; i++) {
                fprintf(f, "W %d", i);
                for (int k = 0; k < RK_TR_REC; k++) fprintf(f, " %llu", h[(size_t)i * RK_TR_REC + k]);
                fprintf(f, "\n");
            }
            for (int i = 0; i < g->trace_grid[4] && i < 4096; i++) {
                fprintf(f, "C %d", i);
                for (int k = 0; k < 8; k++) fprintf(f, " %llu", h[RK_TR_COMBINE_OFF + (size_t)i * 8 + k]);
                fprintf(f, "\n");
            }
        }
        if (f) fclose(f);
        free(h);
        (void)cudaFree(g->trace);
    }
#endif
    (void)cudaFree(g->partials);
    (void)cudaFree(g->scratch);
    (void)cudaFree(g->mom);
    if (g->stage) (void)cudaFreeHost(g->stage);
    if (g->stream) (void)cudaStreamDestroy(g->stream);
    (void)cudaGetLastError();
    free(g);
    ctx->impl = NULL;
}

static rk_status be_context_init(rk_context *ctx) {
    rk_gpu_ctx *g = (rk_gpu_ctx *)calloc(1, sizeof *g);
    if (!g) return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "backend context");
    ctx->impl = g;
    g->device = (int)ctx->device_index;
    rk_status st = rk_gpu_enter(ctx);
    cudaDeviceProp prop;
    if (st == RK_OK) st = rk_gpu_check(ctx, cudaGetDeviceProperties(&prop, g->device), "device properties");
    if (st == RK_OK)
        st = rk_gpu_check(ctx, cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking), "stream");
    if (st != RK_OK) {
        be_context_free(ctx);
        return st;
    }
    g->sm_count = prop.multiProcessorCount;
    g->warp_size = prop.warpSize;
    g->smem_per_block = prop.sharedMemPerBlock;
    /* RK_CUDA_PDL=0 turns programmatic dependent launch off (A/B timing of the launch gaps) */
    const char *pdl = getenv("RK_CUDA_PDL");
    g->pdl = prop.major >= 9 && !(pdl && pdl[0] == '0');
    /* RK_CUDA_PREFETCH=0/1 forces the decode's prefetch variant off/on (A/B timing) */
    const char *pf = getenv("RK_CUDA_PREFETCH");
    g->prefetch = pf && (pf[0] == '0' || pf[0] == '1') ? pf[0] - '0' : -1;
    /* RK_CUDA_EARLY=0/1 forces a decode's loads before the stream wait off/on where allowed */
    const char *ea = getenv("RK_CUDA_EARLY");
    g->early = ea && (ea[0] == '0' || ea[0] == '1') ? ea[0] - '0' : -1;
    /* RK_CUDA_DEC_NT=128/256 forces the decode's block size where a kernel of that size exists */
    const char *nt = getenv("RK_CUDA_DEC_NT");
    g->dec_nt = nt ? atoi(nt) : 0;
#if RK_TRACE
    const char *tr = getenv("RK_CUDA_DEC_TRACE");
    g->trace_at = tr ? atoi(tr) : 0;
    if (g->trace_at > 0 && cudaMalloc((void **)&g->trace, (size_t)RK_TR_WORDS * 8) == cudaSuccess)
        (void)cudaMemset(g->trace, 0, (size_t)RK_TR_WORDS * 8);
#endif

    if (g->warp_size != 32 && g->warp_size != 64) {
        be_context_free(ctx);
        return rk_fail(ctx, RK_ERR_BACKEND_UNAVAILABLE, "unsupported warp size %d", prop.warpSize);
    }
    return RK_OK;
}

static rk_status be_synchronize(rk_context *ctx) {
    rk_status st = rk_gpu_enter(ctx);
    if (st != RK_OK) return st;
    return rk_gpu_check(ctx, cudaStreamSynchronize(rk_gpu(ctx)->stream), "synchronize");
}

/* ---- buffers ------------------------------------------------------------------------------ */

static rk_status be_buffer_alloc(rk_context *ctx, size_t bytes, void **handle) {
    rk_status st = rk_gpu_enter(ctx);
    if (st != RK_OK) return st;
    void *p = NULL;
    st = rk_gpu_check(ctx, cudaMalloc(&p, bytes), "cudaMalloc");
    if (st == RK_OK) *handle = p;
    return st;
}

static void be_buffer_free(rk_context *ctx, void *handle) {
    if (rk_gpu_enter(ctx) != RK_OK) return;
    /* the stream may still read the buffer */
    (void)cudaStreamSynchronize(rk_gpu(ctx)->stream);
    (void)cudaFree(handle);
}

static rk_status be_buffer_upload(rk_context *ctx, void *handle, size_t offset, const void *src,
                                  size_t bytes) {
    rk_status st = rk_gpu_enter(ctx);
    if (st != RK_OK) return st;
    cudaStream_t s = rk_gpu(ctx)->stream;
    st = rk_gpu_check(ctx, cudaMemcpyAsync((char *)handle + offset, src, bytes,
                                           cudaMemcpyHostToDevice, s), "upload");
    if (st == RK_OK) st = rk_gpu_check(ctx, cudaStreamSynchronize(s), "upload sync");
    return st;
}

static rk_status be_buffer_download(rk_context *ctx, void *handle, size_t offset, void *dst,
                                    size_t bytes) {
    rk_status st = rk_gpu_enter(ctx);
    if (st != RK_OK) return st;
    cudaStream_t s = rk_gpu(ctx)->stream;
    st = rk_gpu_check(ctx, cudaMemcpyAsync(dst, (const char *)handle + offset, bytes,
                                           cudaMemcpyDeviceToHost, s), "download");
    if (st == RK_OK) st = rk_gpu_check(ctx, cudaStreamSynchronize(s), "download sync");
    return st;
}

static rk_status rk_gpu_launched(rk_context *ctx, const char *what) {
    return rk_gpu_check(ctx, cudaGetLastError(), what);
}

static rk_keys_view rk_keys_of(const rk_tensor *t) {
    rk_keys_view k;
    k.base = rk_gpu_ptr(t);
    k.nb_b = t->nb[0];
    k.nb_h = t->nb[1];
    k.nb_t = t->nb[2];
    k.H = (int)t->ne[1];
    k.T = (int)t->ne[2];
    k.d = (int)t->ne[3];
    return k;
}

/* ---- moments -------------------------------------------------------------------------------- */

template <int DT>
static void rk_launch_moments(rk_keys_view k, const int *n_dev, int BH, int chunk, int pairs,
                              float *part_s, float *part_m, double *mean, double *scatter,
                              cudaStream_t s) {
    dim3 g1((k.T + chunk - 1) / chunk, BH, pairs);
    rk_moments_partial<DT><<<g1, 256, 0, s>>>(k, n_dev, chunk, pairs, part_s, part_m);
    dim3 g2(BH, (k.d + 7) / 8);
    rk_moments_reduce<DT><<<g2, 256, (size_t)k.d * sizeof(double), s>>>(k, n_dev, chunk, pairs, part_s,
                                                                       part_m, mean, scatter);
}

static rk_status be_moments(rk_context *ctx, const rk_op_moments *op) {
    rk_status st = rk_gpu_enter(ctx);
    if (st != RK_OK) return st;
    rk_gpu_ctx *g = rk_gpu(ctx);
    g->mom_id++; /* from here on the device copy is not the previous op's any more */
    const int B = op->B, H = op->H, d = op->d, BH = B * H;
    rk_keys_view k = rk_keys_of(op->keys);
    /* token chunks: about two blocks per SM over (chunk, head, tile pair) */
    const int nt = (d + RK_MOM_TILE - 1) / RK_MOM_TILE, pairs = nt * (nt + 1) / 2;
    const int want = (2 * g->sm_count + BH * pairs - 1) / (BH * pairs);
    int chunk = (k.T + want - 1) / want;
    chunk = (chunk + RK_MOM_SUB - 1) / RK_MOM_SUB * RK_MOM_SUB;
    const int n_chunks = (k.T + chunk - 1) / chunk;
    const size_t n_bytes = ((size_t)B * sizeof(int) + 15) / 16 * 16;
    const size_t ps_n = (size_t)n_chunks * BH * pairs * RK_MOM_TILE * RK_MOM_TILE;
    const size_t pm_n = (size_t)n_chunks * BH * d;
    const size_t mean_n = (size_t)BH * d, sc_n = (size_t)BH * d * d;
    st = rk_gpu_reserve(ctx, &g->scratch, &g->scratch_bytes, n_bytes + (ps_n + pm_n) * sizeof(float), 0);
    if (st == RK_OK) st = rk_gpu_reserve(ctx, &g->mom, &g->mom_bytes, (mean_n + sc_n) * sizeof(double), 0);
    if (st != RK_OK) return st;
    int *n_dev = (int *)g->scratch;
    float *part_s = (float *)((char *)g->scratch + n_bytes), *part_m = part_s + ps_n;
    double *mean = (double *)g->mom, *scatter = mean + mean_n;
    st = rk_gpu_check(ctx, cudaMemcpyAsync(n_dev, op->n_tokens, (size_t)B * sizeof(int),
                                           cudaMemcpyHostToDevice, g->stream), "upload lengths");
    if (st != RK_OK) return st;
    switch (op->keys->dtype) {
    case RK_F32: rk_launch_moments<DT_F32>(k, n_dev, BH, chunk, pairs, part_s, part_m, mean, scatter, g->stream); break;
    case RK_F16: rk_launch_moments<DT_F16>(k, n_dev, BH, chunk, pairs, part_s, part_m, mean, scatter, g->stream); break;
    default: rk_launch_moments<DT_BF16>(k, n_dev, BH, chunk, pairs, part_s, part_m, mean, scatter, g->stream); break;
    }
    if ((st = rk_gpu_launched(ctx, "moments kernels")) != RK_OK) return st;
    /* mean and scatter are adjacent: one download through the pinned staging */
    const size_t out_bytes = (mean_n + sc_n) * sizeof(double);
    if ((st = rk_gpu_stage(ctx, out_bytes)) != RK_OK) return st;
    st = rk_gpu_check(ctx, cudaMemcpyAsync(g->stage, mean, out_bytes, cudaMemcpyDeviceToHost, g->stream),
                      "download moments");
    if (st == RK_OK) st = rk_gpu_check(ctx, cudaStreamSynchronize(g->stream), "moments sync");
    if (st == RK_OK) {
        memcpy(op->mean, g->stage, mean_n * sizeof(double));
        memcpy(op->scatter, (const double *)g->stage + mean_n, sc_n * sizeof(double));
        g->mom_scatter = mean_n;
        if (op->device_id) *op->device_id = g->mom_id;
    }
    return st;
}

static rk_status be_qsumsq(rk_context *ctx, const rk_op_qsumsq *op) {
    rk_status st = rk_gpu_enter(ctx);
    if (st != RK_OK) return st;
    rk_gpu_ctx *g = rk_gpu(ctx);
    const int BH = op->B * op->Hq;
    const size_t n_bytes = ((size_t)op->B * sizeof(int) + 15) / 16 * 16;
    const size_t out_bytes = (size_t)BH * op->d * sizeof(double);
    st = rk_gpu_reserve(ctx, &g->scratch, &g->scratch_bytes, n_bytes + out_bytes, 0);
    if (st == RK_OK) st = rk_gpu_stage(ctx, out_bytes);
    if (st != RK_OK) return st;
    int *n_dev = (int *)g->scratch;
    double *sums = (double *)((char *)g->scratch + n_bytes);
    st = rk_gpu_check(ctx, cudaMemcpyAsync(n_dev, op->n_tokens, (size_t)op->B * sizeof(int),
                                           cudaMemcpyHostToDevice, g->stream), "upload lengths");
    if (st != RK_OK) return st;
    rk_keys_view q = rk_keys_of(op->queries);
    switch (op->queries->dtype) {
    case RK_F32: rk_qsumsq_kernel<DT_F32><<<BH, 128, 0, g->stream>>>(q, n_dev, sums); break;
    case RK_F16: rk_qsumsq_kernel<DT_F16><<<BH, 128, 0, g->stream>>>(q, n_dev, sums); break;
    default: rk_qsumsq_kernel<DT_BF16><<<BH, 128, 0, g->stream>>>(q, n_dev, sums); break;
    }
    if ((st = rk_gpu_launched(ctx, "qsumsq kernel")) != RK_OK) return st;
    st = rk_gpu_check(ctx, cudaMemcpyAsync(g->stage, sums, out_bytes, cudaMemcpyDeviceToHost, g->stream),
                      "download qsumsq");
    if (st == RK_OK) st = rk_gpu_check(ctx, cudaStreamSynchronize(g->stream), "qsumsq sync");
    if (st == RK_OK) memcpy(op->sumsq, g->stage, out_bytes);
    return st;
}

/* Rows of a view start on 16-byte boundaries. */
static int rk_rows_aligned16(const rk_tensor *t) {
    const size_t esz = rk_dtype_size(t->dtype);
    return (size_t)rk_gpu_ptr(t) % 16 == 0 && (size_t)(t->nb[0] * esz) % 16 == 0 &&
           (size_t)(t->nb[1] * esz) % 16 == 0 && (size_t)(t->nb[2] * esz) % 16 == 0;
}

/* ---- compress ------------------------------------------------------------------------------- */

static rk_status be_compress(rk_context *ctx, const rk_op_compress *op) {
    rk_status st = rk_gpu_enter(ctx);
    if (st != RK_OK) return st;
    rk_gpu_ctx *g = rk_gpu(ctx);
    rk_keys_view k = rk_keys_of(op->keys);
    const rk_tensor *c = op->kcache;
    const float *R = (const float *)op->R->handle;
    char *cb = rk_gpu_ptr(c);
    const size_t esz = rk_dtype_size(op->keys->dtype);
    const size_t tiled_smem = ((size_t)RK_CMP_TT * op->d + (size_t)op->d * op->r) * sizeof(float);
    if (op->r % 4 == 0 && RK_THREADS % op->r == 0 && op->r <= 64 && (op->d * esz) % 16 == 0 &&
        rk_rows_aligned16(op->keys) && tiled_smem <= g->smem_per_block) {
        dim3 grid((op->T + RK_CMP_TT - 1) / RK_CMP_TT, op->B * op->H);
        switch (op->keys->dtype) {
        case RK_F32: rk_compress_tiled<DT_F32><<<grid, RK_THREADS, tiled_smem, g->stream>>>(k, cb, c->nb[0], c->nb[1], c->nb[2], op->token_offset, R, op->r); break;
        case RK_F16: rk_compress_tiled<DT_F16><<<grid, RK_THREADS, tiled_smem, g->stream>>>(k, cb, c->nb[0], c->nb[1], c->nb[2], op->token_offset, R, op->r); break;
        default: rk_compress_tiled<DT_BF16><<<grid, RK_THREADS, tiled_smem, g->stream>>>(k, cb, c->nb[0], c->nb[1], c->nb[2], op->token_offset, R, op->r); break;
        }
        return rk_gpu_launched(ctx, "compress kernel");
    }
    int tt = 8192 / op->d;
    tt = tt < 1 ? 1 : (tt > 64 ? 64 : tt);
    const size_t smem = (size_t)tt * op->d * sizeof(float);
    if (smem > g->smem_per_block)
        return rk_fail(ctx, RK_ERR_UNSUPPORTED, RK_BACKEND_NAME ": head dim %d too large", op->d);
    dim3 grid((op->T + tt - 1) / tt, op->B * op->H);
    switch (op->keys->dtype) {
    case RK_F32:
        rk_compress_kernel<DT_F32><<<grid, RK_THREADS, smem, g->stream>>>(k, cb, c->nb[0], c->nb[1], c->nb[2], op->token_offset, R, op->r, tt);
        break;
    case RK_F16:
        rk_compress_kernel<DT_F16><<<grid, RK_THREADS, smem, g->stream>>>(k, cb, c->nb[0], c->nb[1], c->nb[2], op->token_offset, R, op->r, tt);
        break;
    default:
        rk_compress_kernel<DT_BF16><<<grid, RK_THREADS, smem, g->stream>>>(k, cb, c->nb[0], c->nb[1], c->nb[2], op->token_offset, R, op->r, tt);
        break;
    }
    return rk_gpu_launched(ctx, "compress kernel");
}

/* ---- decode --------------------------------------------------------------------------------- */

typedef void (*rk_dec_fn)(const rk_dec_params);

/* Fast-path variants: V rows of 128 channels (16 chunks of 16-bit values, 32 of f32); hot K
 * rows of 2..16 chunks at 16 bits (r or d = 16..128) and 4..32 chunks at f32 (16..128). Other
 * shapes take rk_decode_any. PF = 1: the prefetch variant of the tensor-core path. */
template <int DT, int GT, int PF = 0>
static rk_dec_fn rk_dec_pick_kc(int kc, int vc) {
    constexpr int VCF = DT == DT_F32 ? 32 : 16, K0 = DT == DT_F32 ? 4 : 2;
    if (vc != VCF) return NULL;
    switch (kc / K0) {
    case 1: return kc == K0 ? rk_decode_vec<DT, GT, K0, VCF, 0, PF> : NULL;
    case 2: return kc == 2 * K0 ? rk_decode_vec<DT, GT, 2 * K0, VCF, 0, PF> : NULL;
    case 4: return kc == 4 * K0 ? rk_decode_vec<DT, GT, 4 * K0, VCF, 0, PF> : NULL;
    case 8: return kc == 8 * K0 ? rk_decode_vec<DT, GT, 8 * K0, VCF, 0, PF> : NULL;
    default: return NULL;
    }
}

/* The prefetch variant exists for the tensor-core path only: GQA 8, 16-bit. */
template <int DT>
static rk_dec_fn rk_dec_pick_prefetch(int gt, int kc, int vc) {
    if constexpr (RK_HAVE_MMA && DT != DT_F32) {
        if (gt == 8) return rk_dec_pick_kc<DT, 8, 1>(kc, vc);
    }
    (void)gt; (void)kc; (void)vc;
    return NULL;
}

/* 256-thread blocks (NT 256) for grids too small to fill the device with 128-thread ones: the
 * tensor-core path only (GQA 8, 16-bit, CUDA). */
template <int DT>
static rk_dec_fn rk_dec_pick_wide(int gt, int kc, int vc) {
    if constexpr (RK_HAVE_MMA && DT != DT_F32) {
        if (gt == 8 && vc == 16) switch (kc) {
            case 2: return rk_decode_vec<DT, 8, 2, 16, 0, 0, 256>;
            case 4: return rk_decode_vec<DT, 8, 4, 16, 0, 0, 256>;
            case 8: return rk_decode_vec<DT, 8, 8, 16, 0, 0, 256>;
            case 16: return rk_decode_vec<DT, 8, 16, 16, 0, 0, 256>;
            default: break;
            }
    }
    (void)gt; (void)kc; (void)vc;
    return NULL;
}

template <int DT>
static rk_dec_fn rk_dec_pick(int gt, int kc, int vc) {
    switch (gt) {
    case 1: return rk_dec_pick_kc<DT, 1>(kc, vc);
    case 2: return rk_dec_pick_kc<DT, 2>(kc, vc);
    case 4: return rk_dec_pick_kc<DT, 4>(kc, vc);
    case 8: return rk_dec_pick_kc<DT, 8>(kc, vc);
    default: return NULL;
    }
}

/* Token splits: the fewest that fill the resident block slots of the device (or every split the
 * sequence allows, at RK_DEC_MIN_SPLIT tokens each), preferring counts that leave no partial
 * last wave. */
#define RK_DEC_MIN_SPLIT 128
static int rk_dec_choose_splits(int units, int slots, int max_len) {
    int s_max = (max_len + RK_DEC_MIN_SPLIT - 1) / RK_DEC_MIN_SPLIT;
    if (s_max > RK_DEC_MAX_SPLITS) s_max = RK_DEC_MAX_SPLITS;
    if (s_max < 1) s_max = 1;
    int s_lo = slots / units;
    if (s_lo < 1) s_lo = 1;
    if (s_lo >= s_max) return s_max;
    int best = s_lo;
    double best_eff = 0;
    for (int s = s_lo; s <= s_max; s++) {
        long n = (long)units * s;
        long waves = (n + slots - 1) / slots;
        double eff = (double)n / (double)(waves * slots);
        if (eff >= 0.9) return s;
        if (eff > best_eff) { best_eff = eff; best = s; }
    }
    return best;
}

/* Resident blocks per SM of a kernel (cached: the query costs more than a small decode). */
static int rk_gpu_occupancy(rk_gpu_ctx *g, const void *fn, size_t smem, int threads) {
    for (int i = 0; i < g->n_occupancy; i++)
        if (g->occupancy[i].fn == fn && g->occupancy[i].smem == smem) return g->occupancy[i].blocks;
    int occ = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, (rk_dec_fn)fn, threads, smem) != cudaSuccess || occ < 1) {
        (void)cudaGetLastError();
        occ = 1;
    }
    const int max_entries = (int)(sizeof g->occupancy / sizeof g->occupancy[0]);
    int slot = g->n_occupancy < max_entries ? g->n_occupancy++ : 0;
    g->occupancy[slot].fn = fn;
    g->occupancy[slot].smem = smem;
    g->occupancy[slot].blocks = occ;
    return occ;
}

/* Launch a decode-phase kernel, with programmatic stream serialization where the device has it
 * (rk_pdl_enter): its blocks may become resident while the previous kernel finishes. */
static rk_status rk_dec_launch(rk_context *ctx, rk_dec_fn fn, dim3 grid, int threads, size_t smem,
                               const rk_dec_params &p, const char *what) {
    rk_gpu_ctx *g = rk_gpu(ctx);
#if !defined(RK_HIP)
    if (g->pdl) {
        cudaLaunchAttribute attr = {};
        attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr.val.programmaticStreamSerializationAllowed = 1;
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = grid;
        cfg.blockDim = dim3(threads);
        cfg.dynamicSmemBytes = smem;
        cfg.stream = g->stream;
        cfg.attrs = &attr;
        cfg.numAttrs = 1;
        return rk_gpu_check(ctx, cudaLaunchKernelEx(&cfg, fn, p), what);
    }
#endif
    fn<<<grid, threads, smem, g->stream>>>(p);
    return rk_gpu_launched(ctx, what);
}

static rk_status be_decode(rk_context *ctx, const rk_op_decode *op) {
    rk_gpu_ctx *g = rk_gpu(ctx);
    /* the stream's last work, before rk_gpu_enter forgets it */
    const int prev_valid = g->dec_prev_valid;
    const void *prev_out = g->dec_prev_out, *prev_lse = g->dec_prev_lse;
    rk_status st = rk_gpu_enter(ctx);
    if (st != RK_OK) return st;
    const int dt = (int)op->q->dtype;
    const size_t esz = rk_dtype_size(op->q->dtype);
    rk_dec_params p;
    memset(&p, 0, sizeof p);
    p.q = rk_gpu_ptr(op->q);
    p.kf = rk_gpu_ptr(op->k_full);
    p.ks = op->k_span ? rk_gpu_ptr(op->k_span) : NULL;
    p.v = rk_gpu_ptr(op->v);
    p.out = rk_gpu_ptr(op->out);
    p.lse = op->lse ? (float *)rk_gpu_ptr(op->lse) : NULL;
    p.q_b = op->q->nb[0]; p.q_h = op->q->nb[1];
    p.kf_b = op->k_full->nb[0]; p.kf_h = op->k_full->nb[1]; p.kf_t = op->k_full->nb[2];
    if (op->k_span) { p.ks_b = op->k_span->nb[0]; p.ks_h = op->k_span->nb[1]; p.ks_t = op->k_span->nb[2]; }
    p.v_b = op->v->nb[0]; p.v_h = op->v->nb[1]; p.v_t = op->v->nb[2];
    p.o_b = op->out->nb[0]; p.o_h = op->out->nb[1];
    if (op->lse) { p.l_b = op->lse->nb[0]; p.l_h = op->lse->nb[1]; }
    p.R = op->sparse ? (const float *)op->R->handle : NULL;
    p.dmu = op->sparse ? (const float *)op->dmu->handle : NULL;
    p.B = op->B; p.Hq = op->Hq; p.Hkv = op->Hkv; p.G = op->Hq / op->Hkv;
    p.d = op->d; p.dv = op->dv; p.r = op->sparse ? op->r : 0; p.sparse = op->sparse;
    p.qscale = op->scale * RK_LOG2E;
    p.q_vec = rk_rows_aligned16(op->q) && (op->d * esz) % 16 == 0;

    /* pick the kernel: fast path when the hot K rows and V rows are 16-byte vectors */
    const rk_tensor *hot = op->sparse ? op->k_span : op->k_full;
    const int hot_w = op->sparse ? op->r : op->d;
    /* full-width rows are read as 16-byte chunks too (mixed tiles): their chunk count must be a
     * power of two the warp divides into */
    const int chf = (int)(op->d * esz / 16);
    const int vec_ok = (hot_w * esz) % 16 == 0 && (op->dv * esz) % 16 == 0 && (op->d * esz) % 16 == 0 &&
                       chf <= 32 && (chf & (chf - 1)) == 0 && (!hot || rk_rows_aligned16(hot)) &&
                       rk_rows_aligned16(op->k_full) && rk_rows_aligned16(op->v);
    int gt = p.G <= 1 ? 1 : p.G <= 2 ? 2 : p.G <= 4 ? 4 : 8;
    /* q and q·R of a block's heads are staged with RK_Q_MAX loads per thread */
    const int q_cap = RK_Q_MAX * RK_THREADS;
    while (gt > 1 && (gt * p.d > q_cap || gt * (p.r + 1) > q_cap)) gt /= 2;
    if (p.d > q_cap || p.r + 1 > q_cap)
        return rk_fail(ctx, RK_ERR_UNSUPPORTED, RK_BACKEND_NAME ": head dim %d too large", p.d);
    rk_dec_fn fn = NULL, fn_pf = NULL, fn_wide = NULL;
    if (vec_ok) {
        const int kc = (int)(hot_w * esz / 16), vc = (int)(op->dv * esz / 16);
        fn = dt == RK_F32 ? rk_dec_pick<DT_F32>(gt, kc, vc)
           : dt == RK_F16 ? rk_dec_pick<DT_F16>(gt, kc, vc) : rk_dec_pick<DT_BF16>(gt, kc, vc);
        if (fn && g->prefetch != 0)
            fn_pf = dt == RK_F16 ? rk_dec_pick_prefetch<DT_F16>(gt, kc, vc)
                  : dt == RK_BF16 ? rk_dec_pick_prefetch<DT_BF16>(gt, kc, vc) : NULL;
        if (fn && g->dec_nt != 128)
            fn_wide = dt == RK_F16 ? rk_dec_pick_wide<DT_F16>(gt, kc, vc)
                    : dt == RK_BF16 ? rk_dec_pick_wide<DT_BF16>(gt, kc, vc) : NULL;
    }
    if (!fn) {
        gt = 1;
        fn = dt == RK_F32 ? rk_decode_any<DT_F32> : dt == RK_F16 ? rk_decode_any<DT_F16> : rk_decode_any<DT_BF16>;
    }
    p.gt = gt;
    p.hc = (p.G + gt - 1) / gt;

    const int tile = g->warp_size / 2;
    int threads = RK_THREADS;
    size_t smem_max = rk_dec_smem_floats(gt, p.d, p.r, p.dv, RK_THREADS / g->warp_size, tile, RK_THREADS) * sizeof(float);
    if (smem_max > g->smem_per_block)
        return rk_fail(ctx, RK_ERR_UNSUPPORTED, RK_BACKEND_NAME ": decode shapes need %zu bytes of "
                       "shared memory (d %d, dv %d, r %d)", smem_max, p.d, p.dv, p.r);
    const int units = op->B * op->Hkv * p.hc;
    int S = op->n_split;
    /* the prefetch variant holds two tiles per warp in flight at 2 blocks/SM instead of one at 3:
     * measured faster for dense decode at every size (8 KB tiles); for sparse only with 128-byte
     * K rows (r 64 at 16 bits) on grids of fewer (sequence, KV head) units than half the SMs:
     * batch 1 and 8 gain 3-7 %, the 64-byte rows lose 1-5 %
     * (bench/results/cuda/v7/grid/prefetch_sparse_ab.txt); since v9 at any grid size: with the
     * v8 kernels batch 32 gains too (28/4 B32 T4096 r64 91.4 -> 87.4 us, bench/results/cuda/v9) */
    /* v10: 64-byte K rows (r 32 at 16 bits) too: with the v8 kernels the prefetch variant wins
     * there as well (28/4 B32 T4096 r32 76.6 -> 74.4 us, B8 T16384 73.5 -> 70.4, B8 T65536 and
     * B32 T16384/T65536 -1 %; bench/results/cuda/v10) */
    const int krow = hot_w * (int)esz;
    const bool pf_sparse = krow >= 64;
    if (fn_pf && (g->prefetch == 1 || (g->prefetch < 0 && (!op->sparse || pf_sparse)))) fn = fn_pf;
    /* 256-thread blocks (one per SM) on grids of at most sm_count / 8 (sequence, KV head) units
     * (28/4 at batch 1..4): the same block count as 128-thread ones there (one wave), half the
     * tiles and half the prologue work per warp, two warps per scheduler. The prefetch variant
     * loses 1.5 us at T4096 there and gains < 2 % at T65536 (v8 run 2): the plain kernel.
     * v9: also sparse decodes with 128-byte K rows on grids of at most sm_count / 4 units and
     * short sequences (28/4 batch 8, r 64, <= 8192 tokens): 4 splits of 8 warps instead of 8
     * prefetch-variant splits of 4 (B8 T4096 r64 33.9 -> 32.0 us, bench/results/cuda/v9).
     * v10: 64-byte K rows too (28/4 B8 T4096 r32 30.0 -> 26.9 us, bench/results/cuda/v10).
     * RK_CUDA_DEC_NT=128/256 forces the size. */
    const bool wide_mid = op->sparse && krow >= 64 && 4 * units <= g->sm_count &&
                          op->max_seq_len <= 8192;
    if (fn_wide && (g->dec_nt == 256 || (g->dec_nt == 0 && (8 * units <= g->sm_count || wide_mid)))) {
        const size_t sw = rk_dec_smem_floats(gt, p.d, p.r, p.dv, 256 / g->warp_size, tile, 256) * sizeof(float);
        if (sw <= g->smem_per_block) {
            fn = fn_wide;
            threads = 256;
            smem_max = sw;
        }
    }
    if (S <= 0) S = rk_dec_choose_splits(units, rk_gpu_occupancy(g, (const void *)fn, smem_max, threads) * g->sm_count,
                                         op->max_seq_len);
    if (S > RK_DEC_MAX_SPLITS) S = RK_DEC_MAX_SPLITS;
    int split_len = (op->max_seq_len + S - 1) / S;
    split_len = (split_len + tile - 1) / tile * tile;
    S = (op->max_seq_len + split_len - 1) / split_len;
    p.n_split = S;
    p.split_len = split_len;
    const size_t smem = smem_max;

    if (S > 1) {
        const size_t slots = (size_t)op->B * op->Hq * S;
        st = rk_gpu_reserve(ctx, (void **)&g->partials, &g->partials_bytes,
                            slots * ((size_t)p.dv + 2) * sizeof(float), 0);
        if (st != RK_OK) return st;
        p.part = g->partials;
        p.part_ml = g->partials + slots * p.dv;
    }
    if (op->B <= RK_DEC_INLINE_SEQS) {
        for (int b = 0; b < op->B; b++) {
            p.seq[b].len = op->seqs[b].seq_len;
            p.seq[b].begin = op->seqs[b].span_begin;
            p.seq[b].span = op->seqs[b].span_len;
        }
    } else {
        /* staged behind the partials; pageable-to-device copies are staged before returning */
        const size_t bytes = sizeof(rk_dec_seq) * (size_t)op->B;
        rk_dec_seq *host = (rk_dec_seq *)malloc(bytes);
        if (!host) return rk_fail(ctx, RK_ERR_OUT_OF_MEMORY, "decode sequence table");
        for (int b = 0; b < op->B; b++) {
            host[b].len = op->seqs[b].seq_len;
            host[b].begin = op->seqs[b].span_begin;
            host[b].span = op->seqs[b].span_len;
        }
        st = rk_gpu_reserve(ctx, &g->scratch, &g->scratch_bytes, bytes, 0);
        if (st == RK_OK)
            st = rk_gpu_check(ctx, cudaMemcpyAsync(g->scratch, host, bytes, cudaMemcpyHostToDevice,
                                                   g->stream), "upload sequence table");
        free(host);
        if (st != RK_OK) return st;
        p.seq_dev = (const rk_dec_seq *)g->scratch;
    }
    if (p.sparse && (size_t)gt * p.r > (size_t)RK_QPROJ_OUT * RK_THREADS)
        return rk_fail(ctx, RK_ERR_UNSUPPORTED, RK_BACKEND_NAME ": rank %d too large", p.r);
    /* early: the stream's previous work is a decode (nothing else enqueued since) whose outputs
     * are none of this decode's inputs, so this decode may load and compute before that work
     * ends and only its writes wait (rk_decode_vec). The sequence table upload (B > inline)
     * would sit between the two: not then. */
    const void *ins[6] = {op->q->buf->handle, op->k_full->buf->handle, op->k_span ? op->k_span->buf->handle : NULL,
                          op->v->buf->handle, op->R ? op->R->handle : NULL, op->dmu ? op->dmu->handle : NULL};
    bool alias = false;
    for (int i = 0; i < 6; i++) alias = alias || (ins[i] && (ins[i] == prev_out || ins[i] == prev_lse));
    p.early = g->pdl && prev_valid && !alias && op->B <= RK_DEC_INLINE_SEQS && g->early != 0;
#if RK_TRACE
    if (op->sparse && g->trace && ++g->n_sparse_dec == g->trace_at) {
        p.trace = g->trace;
        g->trace_grid[0] = S; g->trace_grid[1] = op->Hkv * p.hc; g->trace_grid[2] = op->B;
        g->trace_grid[3] = fn == rk_decode_any<DT_F32> || fn == rk_decode_any<DT_F16> || fn == rk_decode_any<DT_BF16> ? 0 : threads;
        g->trace_grid[4] = S > 1 ? op->B * op->Hq : 0;
    }
#endif
    if ((st = rk_dec_launch(ctx, fn, dim3(S, op->Hkv * p.hc, op->B), threads, smem, p, "decode kernel")) != RK_OK)
        return st;
    if (S > 1) {
        rk_dec_fn combine = dt == RK_F32 ? rk_decode_combine<DT_F32>
                          : dt == RK_F16 ? rk_decode_combine<DT_F16> : rk_decode_combine<DT_BF16>;
        if ((st = rk_dec_launch(ctx, combine, dim3(op->B * op->Hq), RK_THREADS, 0, p, "decode combine kernel")) != RK_OK)
            return st;
    }
    g->dec_prev_valid = 1;
    g->dec_prev_out = op->out->buf->handle;
    g->dec_prev_lse = op->lse ? op->lse->buf->handle : NULL;
    return RK_OK;
}

/* ---- bandwidth probe ------------------------------------------------------------------------ */

/* Read every 16-byte word once (grid-stride, several loads in flight per thread) and fold it
 * into one word the device keeps, so the reads cannot be optimized away. */
__global__ void __launch_bounds__(256) rk_read_probe_kernel(const uint4 *src, size_t n16,
                                                            const unsigned char *tail, int n_tail,
                                                            unsigned *sink) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    unsigned acc = 0;
    for (; i + 3 * stride < n16; i += 4 * stride) {
        uint4 a = src[i], b = src[i + stride], c = src[i + 2 * stride], d = src[i + 3 * stride];
        acc ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
    }
    for (; i < n16; i += stride) {
        uint4 a = src[i];
        acc ^= a.x ^ a.y ^ a.z ^ a.w;
    }
    if (blockIdx.x == 0 && (int)threadIdx.x < n_tail) acc ^= tail[threadIdx.x];
    if (acc == 0x9e3779b9u) atomicAdd(sink, 1u); /* data-dependent and almost never taken */
}

static rk_status be_read_probe(rk_context *ctx, void *handle, size_t bytes) {
    rk_status st = rk_gpu_enter(ctx);
    if (st != RK_OK) return st;
    rk_gpu_ctx *g = rk_gpu(ctx);
    st = rk_gpu_reserve(ctx, &g->scratch, &g->scratch_bytes, 16, 1);
    if (st != RK_OK) return st;
    const size_t n16 = bytes / 16;
    const int blocks = 8 * g->sm_count;
    rk_read_probe_kernel<<<blocks, 256, 0, g->stream>>>((const uint4 *)handle, n16,
                                                          (const unsigned char *)handle + n16 * 16,
                                                          (int)(bytes % 16), (unsigned *)g->scratch);
    return rk_gpu_launched(ctx, "read probe kernel");
}

/* ---- the table ------------------------------------------------------------------------------ */

/* Host only: under HIP, clang would also emit this constant for the device and pull in the host
 * functions it points to. */
#if !defined(__HIP_DEVICE_COMPILE__)
const rk_backend_iface RK_BACKEND_SYMBOL = {
    .name = RK_BACKEND_NAME,
    .device_count = be_device_count,
    .device_name = be_device_name,
    .context_init = be_context_init,
    .context_free = be_context_free,
    .synchronize = be_synchronize,
    .buffer_alloc = be_buffer_alloc,
    .buffer_free = be_buffer_free,
    .buffer_upload = be_buffer_upload,
    .buffer_download = be_buffer_download,
    .moments = be_moments,
    .compress = be_compress,
    .decode = be_decode,
    .subspace = NULL, /* rotation_fit covers the device solver, Rayleigh-Ritz included */
    .read_probe = be_read_probe,
    .spark_compress = NULL,
    .spark_decode = NULL,
    .rotation_fit = RK_GPU_ROTATION_FIT,
    .qsumsq = be_qsumsq,
};
#endif
