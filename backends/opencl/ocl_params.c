/* Per-device kernel parameters: a table keyed by device type and vendor, most specific row
 * first, with a default per device type (CLBlast's database does the same at larger scale).
 * RK_OPENCL_TUNE="wg=128,kcp=16,passes=2,vpre=0,maxrreg=96,gh=8,groups=8,minsplit=64,maxsplit=512,
 * serial=0,warp=1,tile=16,mma=1,pref=0,seqinl=16,mgroups=2"
 * overrides fields of the chosen row, for tuning runs. */
#include "ocl_debug.h"
#include "ocl_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rk_ocl_param_row {
    cl_device_type type;  /* CL_DEVICE_TYPE_ALL matches any */
    const char *vendor;   /* substring of the device vendor or platform name; NULL = any */
    rk_ocl_params p;
} rk_ocl_param_row;

static const rk_ocl_param_row rk_ocl_param_table[] = {
    /* GPUs want coalesced loads: 8 work-items per key row, 32 value work-items per row. NVIDIA
     * takes the warp shape instead (wg = 4 warps, 16-token warp tiles, tensor-core q·K and P·V;
     * inline PTX); wg=64,pref=1 is faster at G = 7 but slower at G = 4 (bench/results/opencl).
     * The tensor-core shape (8-head groups; 16-bit, or f32 through split TF32) fills the device
     * with 2 work-groups per CU (4 where key rows load in two rounds), the others with 8, and no
     * split is shorter than 256 tokens (bench/results/opencl/fourth and fifth: each the faster
     * choice on its shapes). */
    {CL_DEVICE_TYPE_GPU, "NVIDIA",
      {.entry = "nvidia-gpu", .serial = 0, .wg = 128, .kcp = 8, .passes = 1, .vprefetch = 1,
       .maxrreg = 0, .warp = 1, .tile = 16, .mma = 1, .prefetch = 0, .gh_max = 8,
       .groups_per_cu = 8, .min_split_tokens = 256, .max_split = 1024, .seq_inline = 16,
       .groups_mma = 2}},
    {CL_DEVICE_TYPE_GPU, "Advanced Micro Devices",
      {.entry = "amd-gpu", .serial = 0, .wg = 256, .kcp = 8, .passes = 1, .vprefetch = 1,
       .maxrreg = 0, .warp = 0, .tile = 16, .mma = 0, .prefetch = 0, .gh_max = 8,
       .groups_per_cu = 8, .min_split_tokens = 64, .max_split = 1024, .seq_inline = 16,
       .groups_mma = 0}},
    {CL_DEVICE_TYPE_GPU, "Intel",
      {.entry = "intel-gpu", .serial = 0, .wg = 128, .kcp = 8, .passes = 1, .vprefetch = 1,
       .maxrreg = 0, .warp = 0, .tile = 16, .mma = 0, .prefetch = 0, .gh_max = 8,
       .groups_per_cu = 8, .min_split_tokens = 64, .max_split = 512, .seq_inline = 16,
       .groups_mma = 0}},
    {CL_DEVICE_TYPE_GPU, NULL,
      {.entry = "gpu", .serial = 0, .wg = 128, .kcp = 8, .passes = 1, .vprefetch = 1,
       .maxrreg = 0, .warp = 0, .tile = 16, .mma = 0, .prefetch = 0, .gh_max = 8,
       .groups_per_cu = 4, .min_split_tokens = 64, .max_split = 512, .seq_inline = 16,
       .groups_mma = 0}},
    {CL_DEVICE_TYPE_ACCELERATOR, NULL,
      {.entry = "accelerator", .serial = 0, .wg = 128, .kcp = 8, .passes = 1, .vprefetch = 1,
       .maxrreg = 0, .warp = 0, .tile = 16, .mma = 0, .prefetch = 0, .gh_max = 8,
       .groups_per_cu = 4, .min_split_tokens = 64, .max_split = 512, .seq_inline = 16,
       .groups_mma = 0}},
    /* CPUs (PoCL, Intel's CPU runtime) want one contiguous chunk per work-item: a few chunks
     * per core for balance, each long enough to stream. */
    {CL_DEVICE_TYPE_CPU, NULL,
      {.entry = "cpu", .serial = 1, .wg = 1, .kcp = 1, .passes = 1, .vprefetch = 1, .maxrreg = 0,
       .warp = 0, .tile = 16, .mma = 0, .prefetch = 0, .gh_max = 16, .groups_per_cu = 4,
       .min_split_tokens = 512, .max_split = 256, .seq_inline = 16, .groups_mma = 0}},
    {CL_DEVICE_TYPE_ALL, NULL,
      {.entry = "default", .serial = 0, .wg = 64, .kcp = 4, .passes = 1, .vprefetch = 1,
       .maxrreg = 0, .warp = 0, .tile = 16, .mma = 0, .prefetch = 0, .gh_max = 8,
       .groups_per_cu = 4, .min_split_tokens = 64, .max_split = 256, .seq_inline = 16,
       .groups_mma = 0}},
};

static int rk_ocl_row_matches(const rk_ocl_param_row *row, const rk_ocl_device_info *dev) {
    if (row->type != CL_DEVICE_TYPE_ALL && !(dev->type & row->type)) return 0;
    if (!row->vendor) return 1;
    return strstr(dev->vendor, row->vendor) || strstr(dev->platform_name, row->vendor);
}

static int rk_ocl_pow2_floor(int x) {
    int p = 1;
    while (p * 2 <= x) p *= 2;
    return p;
}

static void rk_ocl_apply_tune(const char *spec, rk_ocl_params *p) {
    static const struct { const char *key; size_t off; } fields[] = {
        {"serial", offsetof(rk_ocl_params, serial)},
        {"wg", offsetof(rk_ocl_params, wg)},
        {"kcp", offsetof(rk_ocl_params, kcp)},
        {"passes", offsetof(rk_ocl_params, passes)},
        {"vpre", offsetof(rk_ocl_params, vprefetch)},
        {"maxrreg", offsetof(rk_ocl_params, maxrreg)},
        {"warp", offsetof(rk_ocl_params, warp)},
        {"tile", offsetof(rk_ocl_params, tile)},
        {"mma", offsetof(rk_ocl_params, mma)},
        {"pref", offsetof(rk_ocl_params, prefetch)},
        {"seqinl", offsetof(rk_ocl_params, seq_inline)},
        {"gh", offsetof(rk_ocl_params, gh_max)},
        {"groups", offsetof(rk_ocl_params, groups_per_cu)},
        {"mgroups", offsetof(rk_ocl_params, groups_mma)},
        {"minsplit", offsetof(rk_ocl_params, min_split_tokens)},
        {"maxsplit", offsetof(rk_ocl_params, max_split)},
    };
    while (spec && *spec) {
        const char *eq = strchr(spec, '='), *end = strchr(spec, ',');
        if (!end) end = spec + strlen(spec);
        if (eq && eq < end) {
            for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
                if (strlen(fields[i].key) == (size_t)(eq - spec) &&
                    strncmp(spec, fields[i].key, (size_t)(eq - spec)) == 0) {
                    int v = atoi(eq + 1);
                    if (v >= 0) *(int *)((char *)p + fields[i].off) = v;
                }
        }
        spec = *end ? end + 1 : end;
    }
}

void rk_ocl_params_for(const rk_ocl_device_info *dev, rk_ocl_params *out) {
    size_t n = sizeof rk_ocl_param_table / sizeof rk_ocl_param_table[0];
    *out = rk_ocl_param_table[n - 1].p;
    for (size_t i = 0; i < n; i++)
        if (rk_ocl_row_matches(&rk_ocl_param_table[i], dev)) {
            *out = rk_ocl_param_table[i].p;
            break;
        }
    rk_ocl_apply_tune(getenv("RK_OPENCL_TUNE"), out);
    /* keep the shape legal whatever the table or the override said */
    int max_wg = dev->max_wg < 1024 ? (int)dev->max_wg : 1024;
    out->serial = out->serial != 0;
    out->wg = rk_ocl_pow2_floor(out->wg < 1 ? 1 : (out->wg > max_wg ? max_wg : out->wg));
    out->kcp = rk_ocl_pow2_floor(out->kcp < 1 ? 1 : (out->kcp > out->wg ? out->wg : out->kcp));
    if (out->passes < 1) out->passes = 1;
    if (out->passes > 8) out->passes = 8;
    out->vprefetch = out->vprefetch != 0;
    if (!dev->nv_compiler_options || out->maxrreg < 16) out->maxrreg = 0;
    out->warp = out->warp != 0;
    out->mma = out->mma != 0;
    out->prefetch = out->prefetch != 0;
    out->tile = rk_ocl_pow2_floor(out->tile < 1 ? 1 : (out->tile > 64 ? 64 : out->tile));
    if (out->gh_max < 1) out->gh_max = 1;
    if (out->groups_per_cu < 1) out->groups_per_cu = 1;
    if (out->groups_mma < 1) out->groups_mma = out->groups_per_cu;
    if (out->min_split_tokens < 1) out->min_split_tokens = 1;
    if (out->max_split < 1) out->max_split = 1;
    if (out->seq_inline > RK_OCL_SEQ_INLINE) out->seq_inline = RK_OCL_SEQ_INLINE;
}

rk_status rk_opencl_debug_params(rk_context *ctx, char *buf, size_t len) {
    if (!ctx || !buf || len == 0) return RK_ERR_NULL_ARG;
    if (!ctx->impl || ctx->be != &rk_backend_opencl) return RK_ERR_INVALID_ARG;
    const rk_ocl_params *p = &rk_ocl(ctx)->params;
    snprintf(buf, len, "%s: serial=%d,wg=%d,kcp=%d,passes=%d,vpre=%d,maxrreg=%d,warp=%d,tile=%d,"
             "mma=%d,pref=%d,seqinl=%d,gh=%d,groups=%d,mgroups=%d,minsplit=%d,maxsplit=%d", p->entry,
             p->serial, p->wg, p->kcp, p->passes, p->vprefetch, p->maxrreg, p->warp, p->tile, p->mma,
             p->prefetch, p->seq_inline, p->gh_max, p->groups_per_cu, p->groups_mma, p->min_split_tokens,
             p->max_split);
    return RK_OK;
}
