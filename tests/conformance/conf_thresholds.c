/* Pass thresholds per metric and storage dtype. Inputs are rounded to the dtype before the
 * backend sees them while the references come from the f32 inputs, so the f16/bf16 columns are
 * set by that rounding; the f32 column by an f32-accumulating kernel. Each sits about 10x above
 * what a correct kernel measured (tests/vectors/README.md lists the measurements). */
#include "conf_ops.h"

#include <string.h>

typedef struct conf_limit {
    const char *metric;
    double f32, f16, bf16;
} conf_limit;

static const conf_limit conf_limits[] = {
    /* NMSE unless noted */
    {"moments.mean", 1e-10, 1e-6, 1e-4},
    {"moments.cov", 1e-10, 1e-6, 1e-4},
    {"fit.R", 1e-6, 1e-4, 1e-2},           /* columns sign-aligned */
    {"fit.orth", 1e-5, 1e-5, 1e-5},        /* max |RᵀR - I| */
    {"fit.signs", 0, 0, 0},                /* columns breaking the sign convention */
    {"fit.dmu", 1e-7, 5e-6, 3e-4},         /* Σ(δμ - ref)² / Σ μ² */
    {"fit.dmu0", 1e-10, 1e-10, 1e-10},     /* r = d only: Σ δμ² / Σ μ² (δμ must vanish) */
    {"fit.eig", 1e-10, 1e-6, 1e-4},
    {"subspace.angle", 0.1, 0.1, 0.1},     /* radians, largest principal angle */
    {"subspace.energy", 1e-4, 1e-4, 1e-4}, /* 1 - captured(R_sub) / captured(R_exact) */
    {"compress.out", 1e-10, 1e-6, 6e-5},
    {"decode.out", 1e-9, 2e-5, 5e-4},
    {"decode.lse", 1e-4, 1e-2, 8e-2},      /* max |lse - ref| (nats) */
    {"spark.keys", 1e-6, 1e-3, 1e-2},      /* rebuilt span keys */
    {"spark.indices", 1e-3, 2e-2, 6e-2},   /* share of kept channels that differ */
    {"spark.fill", 1e-10, 1e-4, 5e-4},     /* Σ(fill - ref)² / Σ mean-square of the key */
    {"guard", 0, 0, 0},                    /* sentinel bytes overwritten */
};

double conf_threshold(const char *metric, rk_dtype dtype) {
    for (size_t i = 0; i < sizeof conf_limits / sizeof conf_limits[0]; i++)
        if (strcmp(conf_limits[i].metric, metric) == 0)
            return dtype == RK_F16 ? conf_limits[i].f16 : dtype == RK_BF16 ? conf_limits[i].bf16 : conf_limits[i].f32;
    return 0;
}
