/* RK_OPENCL_PROFILE=1: a tuning aid. The context's queue records device timestamps; every
 * kernel and small upload the backend enqueues keeps its event until the next synchronize, which
 * folds the finished commands into per-name totals: count, device time, and the idle gap between
 * the previous command's end and this one's start (the launch overhead the device sees). The
 * totals go to stderr when the context is freed. Off, it costs one branch per enqueue. */
#include "ocl_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RK_OCL_PROF_PENDING 4096
#define RK_OCL_PROF_NAMES 16

#define RK_OCL_PROF_HOST 4096 /* host samples kept for the median */

typedef struct rk_ocl_prof_stat {
    const char *name;
    long count, gaps;
    double busy_ns, gap_ns;
    double *host;  /* host samples in s (rk_ocl_profile_host): reported as a median */
    int n_host;
} rk_ocl_prof_stat;

struct rk_ocl_profile {
    const char *names[RK_OCL_PROF_PENDING];
    cl_event events[RK_OCL_PROF_PENDING];
    int n_pending;
    rk_ocl_prof_stat stats[RK_OCL_PROF_NAMES];
    int n_stats;
};

rk_ocl_profile *rk_ocl_profile_new(void) {
    const char *env = getenv("RK_OPENCL_PROFILE");
    if (!env || !*env || strcmp(env, "0") == 0) return NULL;
    return calloc(1, sizeof(rk_ocl_profile));
}

static rk_ocl_prof_stat *rk_ocl_prof_stat_of(rk_ocl_profile *p, const char *name) {
    for (int i = 0; i < p->n_stats; i++)
        if (strcmp(p->stats[i].name, name) == 0) return &p->stats[i];
    if (p->n_stats == RK_OCL_PROF_NAMES) return &p->stats[RK_OCL_PROF_NAMES - 1];
    rk_ocl_prof_stat *s = &p->stats[p->n_stats++];
    s->name = name;
    return s;
}

/* Fold every pending command (waits for them). The first command of a batch has no gap: before
 * it the device waited for the host, which is not a launch cost. */
void rk_ocl_profile_flush(rk_ocl_profile *p) {
    if (!p || p->n_pending == 0) return;
    clWaitForEvents((cl_uint)p->n_pending, p->events);
    cl_ulong prev_end = 0;
    for (int i = 0; i < p->n_pending; i++) {
        cl_ulong t0 = 0, t1 = 0;
        rk_ocl_prof_stat *s = rk_ocl_prof_stat_of(p, p->names[i]);
        if (clGetEventProfilingInfo(p->events[i], CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL) ==
                CL_SUCCESS &&
            clGetEventProfilingInfo(p->events[i], CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL) ==
                CL_SUCCESS) {
            s->count++;
            s->busy_ns += (double)(t1 - t0);
            if (i > 0 && t0 >= prev_end) {
                s->gaps++;
                s->gap_ns += (double)(t0 - prev_end);
            }
            prev_end = t1;
        }
        clReleaseEvent(p->events[i]);
        rk_ocl_count_live(RK_OCL_OBJ_EVENT, -1);
    }
    p->n_pending = 0;
}

cl_event *rk_ocl_profile_slot(rk_ocl_profile *p, const char *name) {
    if (!p) return NULL;
    if (p->n_pending == RK_OCL_PROF_PENDING) rk_ocl_profile_flush(p);
    p->names[p->n_pending] = name;
    return &p->events[p->n_pending];
}

void rk_ocl_profile_commit(rk_ocl_profile *p) {
    if (!p) return;
    p->n_pending++;
    rk_ocl_count_live(RK_OCL_OBJ_EVENT, 1);
}

/* Host time of one call (s), reported as the median in the device-time column (a mean would
 * carry the first call's program build). */
void rk_ocl_profile_host(rk_ocl_profile *p, const char *name, double seconds) {
    if (!p) return;
    rk_ocl_prof_stat *s = rk_ocl_prof_stat_of(p, name);
    if (!s->host && !(s->host = malloc(sizeof(double) * RK_OCL_PROF_HOST))) return;
    if (s->n_host < RK_OCL_PROF_HOST) s->host[s->n_host++] = seconds * 1e9;
    s->count++;
}

void rk_ocl_profile_free(rk_ocl_profile *p, const char *device) {
    if (!p) return;
    rk_ocl_profile_flush(p);
    fprintf(stderr, "rotatek opencl profile (%s): command, count, mean device us (host: median), "
                    "mean gap us\n",
            device);
    for (int i = 0; i < p->n_stats; i++) {
        rk_ocl_prof_stat *s = &p->stats[i];
        double t = s->count ? s->busy_ns / s->count : 0.0;
        if (s->n_host) t = rk_median_inplace(s->host, (size_t)s->n_host);
        fprintf(stderr, "  %-24s %8ld %10.2f %10.2f\n", s->name, s->count, t / 1e3,
                s->gaps ? s->gap_ns / s->gaps / 1e3 : 0.0);
        free(s->host);
    }
    free(p);
}
