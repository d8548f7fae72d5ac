/* Spread a global channel budget across heads by their spectra (see pca.h). */
#include "pca.h"

rk_status rk_budget_allocate(const double *evals, int n, int stride, int budget, int multiple,
                             int cap, int32_t *ranks) {
    if (n <= 0 || multiple <= 0 || cap < multiple) return RK_ERR_INVALID_ARG;
    int units = budget / multiple;
    if (units < n || units > n * (cap / multiple)) return RK_ERR_INVALID_ARG;
    for (int h = 0; h < n; h++) ranks[h] = multiple;
    for (int u = n; u < units; u++) {
        int best = -1;
        double best_gain = -1;
        for (int h = 0; h < n; h++) {
            if (ranks[h] + multiple > cap) continue;
            double gain = 0;
            for (int k = ranks[h]; k < ranks[h] + multiple && k < stride; k++)
                gain += evals[(size_t)h * stride + k];
            if (gain > best_gain) { best_gain = gain; best = h; }
        }
        if (best < 0) break;
        ranks[best] += multiple;
    }
    return RK_OK;
}
