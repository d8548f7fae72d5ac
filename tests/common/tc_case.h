/* One shared test-vector case: its manifest.json and its .npy arrays (the format is documented
 * in tests/vectors/README.md). rk-vecgen writes cases, rk-conformance and other tests read them. */
#ifndef TC_CASE_H
#define TC_CASE_H

#include "rotatek.h"
#include "tc_npy.h"

#include <stddef.h>
#include <stdint.h>

#define TC_CASE_FORMAT "rotatek-test-vectors"
#define TC_CASE_VERSION 1

typedef struct tc_seq {
    int32_t seq_len;    /* tokens of the sequence, span included */
    int32_t span_begin; /* position of the first pruned token */
    int32_t span_len;   /* pruned tokens; 0 = none */
    int32_t obs_len;    /* valid rows of the observation window (<= W) */
} tc_seq;

/* Every array of a case, in manifest order. Inputs are <f4, references <f8 (indices <i4). */
typedef enum tc_array_id {
    TC_KEYS,             /* [B][Hkv][T][d]   all tokens in position order, rows >= seq_len zero */
    TC_VALUES,           /* [B][Hkv][T][dv]  position order, rows >= seq_len zero */
    TC_OBS_QUERIES,      /* [B][Hq][W][d]    row j: position seq_len - obs_len + j */
    TC_QUERY,            /* [B][Hq][1][d]    decode query at position seq_len */
    TC_REF_MEAN,         /* [B][Hkv][d]      span key mean */
    TC_REF_COV,          /* [B][Hkv][d][d]   span key population covariance */
    TC_REF_QMS,          /* [B][Hkv][d]      mean q^2 per channel over the group's observed rows */
    TC_REF_R,            /* [B][Hkv][d][r]   exact-solver basis (f32 values) */
    TC_REF_DMU,          /* [B][Hkv][d]      mean correction (f32 values) */
    TC_REF_EIGENVALUES,  /* [B][Hkv][d]      spectrum of the weighted covariance, descending */
    TC_REF_KSPAN,        /* [B][Hkv][S][r]   span keys · R; rows >= span_len zero */
    TC_REF_OUT_SPARSE,   /* [B][Hq][dv] */
    TC_REF_LSE_SPARSE,   /* [B][Hq] */
    TC_REF_OUT_DENSE,    /* [B][Hq][dv] */
    TC_REF_LSE_DENSE,    /* [B][Hq] */
    TC_REF_SPARK_VALUES, /* [B][Hkv][S][r]   kept channel values, ascending channel order */
    TC_REF_SPARK_INDICES,/* [B][Hkv][S][r]   <i4 */
    TC_REF_SPARK_FILL,   /* [B][Hkv][S]      mean of the dropped values */
    TC_REF_OUT_SPARK,    /* [B][Hq][dv] */
    TC_REF_LSE_SPARK,    /* [B][Hq] */
    TC_N_ARRAYS
} tc_array_id;

typedef struct tc_case {
    char name[64];
    char description[256];
    uint64_t seed;          /* generator seed */
    int B, Hq, Hkv, d, dv, r;
    int T, S, W;            /* token capacities: max seq_len, max span_len (>= 1), window */
    tc_seq *seqs;           /* B entries */
    double rope_base;
    double scale;           /* softmax scale used by the references (1/sqrt(d)) */
    /* rotation config of the references */
    char method[32];        /* "pca_qweighted" */
    double ridge, qnorm_floor;
    int subspace_iters;
    uint64_t solver_seed;
    tc_npy arr[TC_N_ARRAYS];
    char *generator_json;   /* the model parameters as JSON text (opaque to readers) */
} tc_case;

const char *tc_array_name(tc_array_id id);      /* "keys", "ref_R", ... (file = name + ".npy") */
tc_npy_type tc_array_type(tc_array_id id);
/* Refs that pass through LAPACK (the eigen-solver) and everything computed from them: the
 * regeneration check compares these within a tolerance instead of bit-for-bit. */
int tc_array_lapack_derived(tc_array_id id);
/* Expected shape of an array from the case's dimensions. */
int tc_array_shape(const tc_case *c, tc_array_id id, int64_t shape[TC_NPY_MAX_DIMS]);

/* Max over sequences of seq_len - span_len (>= 1): capacity of compacted full-width keys. */
int tc_case_full_capacity(const tc_case *c);
/* Cut the position-ordered keys into span keys [B][Hkv][S][d] (rows >= span_len zero) and the
 * full-width keys outside the span, compacted in position order [B][Hkv][F][d] (F from
 * tc_case_full_capacity; rows past each sequence's count zero). Both zeroed here first. */
void tc_case_split_keys(const tc_case *c, float *span, float *full);

/* Load dir/manifest.json and every array, checking dtypes and shapes. 0 on success. */
int tc_case_load(const char *dir, tc_case *c, char *err, size_t err_len);
/* Write dir/manifest.json and every array (dir must exist). 0 on success. */
int tc_case_write(const char *dir, const tc_case *c, char *err, size_t err_len);
/* The manifest text tc_case_write writes (malloc'd; NULL on failure). */
char *tc_case_manifest(const tc_case *c);
void tc_case_free(tc_case *c);
/* The rotation configuration a case's references were made with (q-weighted PCA, the case's
 * shapes, ridge, floor, iterations and seed), for the given solver: the one mapping shared by the
 * generator and the checker. */
void tc_case_rotation_config(const tc_case *c, rk_solver solver, rk_rotation_config *cfg);

static inline const float *tc_f32(const tc_case *c, tc_array_id id) { return (const float *)c->arr[id].data; }
static inline const double *tc_f64(const tc_case *c, tc_array_id id) { return (const double *)c->arr[id].data; }
static inline const int32_t *tc_i32(const tc_case *c, tc_array_id id) { return (const int32_t *)c->arr[id].data; }

#endif
