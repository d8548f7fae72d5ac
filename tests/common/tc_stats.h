/* Error measures shared by the tests. NaN anywhere makes the measure NaN, so "err <= threshold"
 * is false and the check fails. */
#ifndef TC_STATS_H
#define TC_STATS_H

#include <stddef.h>

/* sum (x - ref)^2 / sum ref^2. When sum ref^2 == 0 the plain sum (x - ref)^2 is returned. */
double tc_nmse_f32(const float *x, const double *ref, size_t n);
double tc_nmse_f64(const double *x, const double *ref, size_t n);
/* sum (x - ref)^2 / norm2: for quantities that may vanish (δμ), normalized by a related energy. */
double tc_sse_f64(const double *x, const double *ref, size_t n);
double tc_energy_f64(const double *x, size_t n); /* sum x^2 */
/* max |x - ref|; NaN if any x is NaN. */
double tc_max_abs_f32(const float *x, const double *ref, size_t n);
double tc_max_abs_f64(const double *x, const double *ref, size_t n);

#endif
