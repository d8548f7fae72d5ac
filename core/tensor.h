/* Tensor view validation and host access used by the core's entry points. */
#ifndef RK_CORE_TENSOR_H
#define RK_CORE_TENSOR_H
#include "backend.h"

#define RK_ANY (-1) /* wildcard for an expected extent or dtype */

/* Checks that t is a usable view on ctx: non-NULL, its buffer on ctx, dtype == want_dtype (unless
 * RK_ANY), extents equal to want[] where want[i] != RK_ANY, channels contiguous, and every
 * element inside the buffer. name is used in the message. */
rk_status rk_tensor_check(rk_context *ctx, const rk_tensor *t, const char *name, int want_dtype,
                          const int64_t want[4]);

/* Download the view into dense host floats [ne0][ne1][ne2][ne3] (converted to f32). */
rk_status rk_tensor_read_f32(rk_context *ctx, const rk_tensor *t, float *dst);

/* 1 if all count floats are finite. */
int rk_all_finite_f32(const float *x, size_t count);
int rk_all_finite_f64(const double *x, size_t count);

#endif
