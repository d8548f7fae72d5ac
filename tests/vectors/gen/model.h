/* The synthetic Key/Query/Value model of the test vectors (formulas: tests/vectors/README.md).
 * Fills the four input arrays of a case from its dims, seqs and seed. */
#ifndef RK_VECGEN_MODEL_H
#define RK_VECGEN_MODEL_H

#include "tc_case.h"

typedef struct vg_model {
    int span_rank;        /* L: structured components of span (image) keys */
    int text_rank;        /* structured components of the other keys */
    int query_rank;       /* structured components of queries */
    int n_outliers;       /* large-magnitude key channels per KV head */
    double span_strength; /* s_0 of the span components */
    double key_noise;     /* sigma of the key noise */
    double query_noise;
    double ar_rho;        /* token-to-token correlation of the component coefficients */
} vg_model;

/* Defaults for a head dim d and rank r. */
vg_model vg_model_default(int d, int r);
/* The parameters as JSON text (malloc'd), stored in the manifest's "generator". */
char *vg_model_json(const vg_model *m);

/* Allocates and fills c->arr[TC_KEYS, TC_VALUES, TC_OBS_QUERIES, TC_QUERY]. 0 on success. */
int vg_model_generate(const vg_model *m, tc_case *c);

#endif
