/* The per-op checks of rk-conformance: each runs one operation through the public API on one
 * case and dtype, and adds its rows (error vs threshold, sentinel guards) to the report. */
#ifndef RK_CONF_OPS_H
#define RK_CONF_OPS_H

#include "conf_report.h"
#include "rotatek.h"
#include "tc_case.h"

/* Runs every op of one case in one dtype on ctx. */
void conf_run_case(conf_report *rep, rk_context *ctx, const char *backend, const tc_case *c,
                   rk_dtype dtype);

/* The threshold of a metric ("decode.out", ...) for a storage dtype (tests/vectors/README.md). */
double conf_threshold(const char *metric, rk_dtype dtype);

#endif
