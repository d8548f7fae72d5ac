/* Read-bandwidth probe: every thread sums its contiguous share of the buffer with independent
 * accumulators (one chain per vector lane group), so the loads, not the adds, set the pace. */
#include "cpu_internal.h"

#include <stdint.h>

rk_status rk_cpu_read_probe(rk_context *ctx, void *handle, size_t bytes) {
    const uint64_t *p = handle;
    int64_t n = (int64_t)(bytes / sizeof(uint64_t));
    uint64_t total = 0;
#pragma omp parallel for num_threads(ctx->n_threads) reduction(+ : total) schedule(static)
    for (int64_t chunk = 0; chunk < n; chunk += 4096) {
        uint64_t acc[8] = {0};
        int64_t end = chunk + 4096 < n ? chunk + 4096 : n;
        int64_t i = chunk;
        for (; i + 8 <= end; i += 8)
            for (int k = 0; k < 8; k++) acc[k] += p[i + k];
        for (; i < end; i++) acc[0] += p[i];
        for (int k = 0; k < 8; k++) total += acc[k];
    }
    volatile uint64_t sink = total; /* the sum must exist: nothing is optimized away */
    (void)sink;
    return RK_OK;
}
