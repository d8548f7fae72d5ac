#include "tc_stats.h"

#include <math.h>

static double tc_normalize(double sse, double energy) {
    if (isnan(sse)) return NAN;
    return energy > 0 ? sse / energy : sse;
}

double tc_nmse_f32(const float *x, const double *ref, size_t n) {
    double sse = 0, energy = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)x[i] - ref[i];
        sse += isfinite(x[i]) ? e * e : NAN;
        energy += ref[i] * ref[i];
    }
    return tc_normalize(sse, energy);
}

double tc_nmse_f64(const double *x, const double *ref, size_t n) {
    return tc_normalize(tc_sse_f64(x, ref, n), tc_energy_f64(ref, n));
}

double tc_sse_f64(const double *x, const double *ref, size_t n) {
    double sse = 0;
    for (size_t i = 0; i < n; i++) {
        double e = x[i] - ref[i];
        sse += isfinite(x[i]) ? e * e : NAN;
    }
    return sse;
}

double tc_energy_f64(const double *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i] * x[i];
    return s;
}

double tc_max_abs_f32(const float *x, const double *ref, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) return NAN;
        double e = fabs((double)x[i] - ref[i]);
        if (e > m) m = e;
    }
    return m;
}

double tc_max_abs_f64(const double *x, const double *ref, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) return NAN;
        double e = fabs(x[i] - ref[i]);
        if (e > m) m = e;
    }
    return m;
}
