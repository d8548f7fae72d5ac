/* Test-vector cases: manifest.json (cJSON) plus one .npy per array (see tc_case.h). */
#include "tc_case.h"

#include <cJSON.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const tc_names[TC_N_ARRAYS] = {
    "keys", "values", "obs_queries", "query", "ref_mean", "ref_cov", "ref_qms", "ref_R",
    "ref_dmu", "ref_eigenvalues", "ref_kspan", "ref_out_sparse", "ref_lse_sparse",
    "ref_out_dense", "ref_lse_dense", "ref_spark_values", "ref_spark_indices", "ref_spark_fill",
    "ref_out_spark", "ref_lse_spark"};

const char *tc_array_name(tc_array_id id) { return (unsigned)id < TC_N_ARRAYS ? tc_names[id] : "?"; }

tc_npy_type tc_array_type(tc_array_id id) {
    if (id <= TC_QUERY) return TC_NPY_F4;
    return id == TC_REF_SPARK_INDICES ? TC_NPY_I4 : TC_NPY_F8;
}

int tc_array_lapack_derived(tc_array_id id) {
    switch (id) {
    case TC_REF_R: case TC_REF_DMU: case TC_REF_EIGENVALUES: case TC_REF_KSPAN:
    case TC_REF_OUT_SPARSE: case TC_REF_LSE_SPARSE:
        return 1;
    default:
        return 0;
    }
}

static int tc_shape(int64_t *s, int n, ...) {
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) s[i] = va_arg(ap, int);
    va_end(ap);
    return n;
}

int tc_array_shape(const tc_case *c, tc_array_id id, int64_t s[TC_NPY_MAX_DIMS]) {
    switch (id) {
    case TC_KEYS: return tc_shape(s, 4, c->B, c->Hkv, c->T, c->d);
    case TC_VALUES: return tc_shape(s, 4, c->B, c->Hkv, c->T, c->dv);
    case TC_OBS_QUERIES: return tc_shape(s, 4, c->B, c->Hq, c->W, c->d);
    case TC_QUERY: return tc_shape(s, 4, c->B, c->Hq, 1, c->d);
    case TC_REF_MEAN: case TC_REF_QMS: case TC_REF_DMU: case TC_REF_EIGENVALUES:
        return tc_shape(s, 3, c->B, c->Hkv, c->d);
    case TC_REF_COV: return tc_shape(s, 4, c->B, c->Hkv, c->d, c->d);
    case TC_REF_R: return tc_shape(s, 4, c->B, c->Hkv, c->d, c->r);
    case TC_REF_KSPAN: case TC_REF_SPARK_VALUES: case TC_REF_SPARK_INDICES:
        return tc_shape(s, 4, c->B, c->Hkv, c->S, c->r);
    case TC_REF_SPARK_FILL: return tc_shape(s, 3, c->B, c->Hkv, c->S);
    case TC_REF_OUT_SPARSE: case TC_REF_OUT_DENSE: case TC_REF_OUT_SPARK:
        return tc_shape(s, 3, c->B, c->Hq, c->dv);
    case TC_REF_LSE_SPARSE: case TC_REF_LSE_DENSE: case TC_REF_LSE_SPARK:
        return tc_shape(s, 2, c->B, c->Hq);
    case TC_N_ARRAYS: break;
    }
    return 0;
}

int tc_case_full_capacity(const tc_case *c) {
    int f = 1;
    for (int b = 0; b < c->B; b++)
        if (c->seqs[b].seq_len - c->seqs[b].span_len > f) f = c->seqs[b].seq_len - c->seqs[b].span_len;
    return f;
}

void tc_case_split_keys(const tc_case *c, float *span, float *full) {
    const float *keys = tc_f32(c, TC_KEYS);
    size_t d = (size_t)c->d, nh = (size_t)c->B * c->Hkv, F = (size_t)tc_case_full_capacity(c);
    memset(span, 0, sizeof(float) * nh * c->S * d);
    memset(full, 0, sizeof(float) * nh * F * d);
    for (int b = 0; b < c->B; b++)
        for (int g = 0; g < c->Hkv; g++) {
            size_t bg = (size_t)b * c->Hkv + g;
            tc_seq s = c->seqs[b];
            const float *src = keys + bg * c->T * d;
            for (int p = 0, j = 0; p < s.seq_len; p++) {
                float *dst = (p >= s.span_begin && p < s.span_begin + s.span_len)
                                 ? span + (bg * c->S + (size_t)(p - s.span_begin)) * d
                                 : full + (bg * F + (size_t)j++) * d;
                memcpy(dst, src + (size_t)p * d, sizeof(float) * d);
            }
        }
}

static int tc_err(char *err, size_t err_len, const char *fmt, ...) {
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return 1;
}

/* ---- writing ------------------------------------------------------------------------------ */

static void tc_add_hex(cJSON *o, const char *key, uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "0x%016" PRIx64, v);
    cJSON_AddStringToObject(o, key, buf);
}

char *tc_case_manifest(const tc_case *c) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    cJSON_AddStringToObject(root, "format", TC_CASE_FORMAT);
    cJSON_AddNumberToObject(root, "version", TC_CASE_VERSION);
    cJSON_AddStringToObject(root, "name", c->name);
    cJSON_AddStringToObject(root, "description", c->description);
    tc_add_hex(root, "seed", c->seed);
    cJSON *dims = cJSON_AddObjectToObject(root, "dims");
    cJSON_AddNumberToObject(dims, "B", c->B);
    cJSON_AddNumberToObject(dims, "Hq", c->Hq);
    cJSON_AddNumberToObject(dims, "Hkv", c->Hkv);
    cJSON_AddNumberToObject(dims, "d", c->d);
    cJSON_AddNumberToObject(dims, "dv", c->dv);
    cJSON_AddNumberToObject(dims, "r", c->r);
    cJSON_AddNumberToObject(dims, "T", c->T);
    cJSON_AddNumberToObject(dims, "S", c->S);
    cJSON_AddNumberToObject(dims, "W", c->W);
    cJSON *seqs = cJSON_AddArrayToObject(root, "seqs");
    for (int b = 0; b < c->B; b++) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddNumberToObject(s, "seq_len", c->seqs[b].seq_len);
        cJSON_AddNumberToObject(s, "span_begin", c->seqs[b].span_begin);
        cJSON_AddNumberToObject(s, "span_len", c->seqs[b].span_len);
        cJSON_AddNumberToObject(s, "obs_len", c->seqs[b].obs_len);
        cJSON_AddItemToArray(seqs, s);
    }
    cJSON *rope = cJSON_AddObjectToObject(root, "rope");
    cJSON_AddNumberToObject(rope, "base", c->rope_base);
    cJSON_AddStringToObject(rope, "convention", "rotate_half");
    cJSON_AddNumberToObject(root, "scale", c->scale);
    cJSON *rot = cJSON_AddObjectToObject(root, "rotation");
    cJSON_AddStringToObject(rot, "method", c->method);
    cJSON_AddStringToObject(rot, "solver", "exact");
    cJSON_AddNumberToObject(rot, "ridge", c->ridge);
    cJSON_AddNumberToObject(rot, "qnorm_floor", c->qnorm_floor);
    cJSON_AddNumberToObject(rot, "subspace_iters", c->subspace_iters);
    tc_add_hex(rot, "seed", c->solver_seed);
    if (c->generator_json) {
        cJSON *gen = cJSON_Parse(c->generator_json);
        if (gen) cJSON_AddItemToObject(root, "generator", gen);
    }
    cJSON *files = cJSON_AddObjectToObject(root, "files");
    for (int id = 0; id < TC_N_ARRAYS; id++) {
        cJSON *f = cJSON_CreateObject();
        char file[64];
        snprintf(file, sizeof file, "%s.npy", tc_names[id]);
        cJSON_AddStringToObject(f, "file", file);
        cJSON_AddStringToObject(f, "dtype", tc_npy_descr(tc_array_type((tc_array_id)id)));
        int64_t shape[TC_NPY_MAX_DIMS];
        int n = tc_array_shape(c, (tc_array_id)id, shape);
        cJSON *sh = cJSON_AddArrayToObject(f, "shape");
        for (int i = 0; i < n; i++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)shape[i]));
        cJSON_AddItemToObject(files, tc_names[id], f);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

int tc_case_write(const char *dir, const tc_case *c, char *err, size_t err_len) {
    char path[1024];
    char *text = tc_case_manifest(c);
    if (!text) return tc_err(err, err_len, "cannot build the manifest");
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    FILE *f = fopen(path, "wb");
    int ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f) != 0) ok = 0;
    free(text);
    if (!ok) return tc_err(err, err_len, "%s: write failed", path);
    for (int id = 0; id < TC_N_ARRAYS; id++) {
        int64_t shape[TC_NPY_MAX_DIMS];
        int n = tc_array_shape(c, (tc_array_id)id, shape);
        snprintf(path, sizeof path, "%s/%s.npy", dir, tc_names[id]);
        if (tc_npy_write(path, tc_array_type((tc_array_id)id), n, shape, c->arr[id].data, err, err_len))
            return 1;
    }
    return 0;
}

/* ---- reading ------------------------------------------------------------------------------ */

static int tc_get_int(const cJSON *o, const char *key, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble) return 1;
    *out = (int)v->valuedouble;
    return 0;
}

static int tc_get_double(const cJSON *o, const char *key, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) return 1;
    *out = v->valuedouble;
    return 0;
}

static int tc_get_string(const cJSON *o, const char *key, char *out, size_t len) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= len) return 1;
    strcpy(out, v->valuestring);
    return 0;
}

static int tc_get_hex(const cJSON *o, const char *key, uint64_t *out) {
    char buf[32], *end = NULL;
    if (tc_get_string(o, key, buf, sizeof buf)) return 1;
    *out = strtoull(buf, &end, 16);
    return end == buf || *end != '\0';
}

static char *tc_slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *text = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (text = malloc((size_t)n + 1)) != NULL) {
        if (fread(text, 1, (size_t)n, f) == (size_t)n) {
            text[n] = '\0';
        } else {
            free(text);
            text = NULL;
        }
    }
    fclose(f);
    return text;
}

static int tc_parse_manifest(const cJSON *root, tc_case *c, char *err, size_t err_len) {
    char format[64];
    int version = 0;
    if (tc_get_string(root, "format", format, sizeof format) || strcmp(format, TC_CASE_FORMAT) != 0 ||
        tc_get_int(root, "version", &version) || version != TC_CASE_VERSION)
        return tc_err(err, err_len, "not a %s version %d manifest", TC_CASE_FORMAT, TC_CASE_VERSION);
    if (tc_get_string(root, "name", c->name, sizeof c->name) ||
        tc_get_string(root, "description", c->description, sizeof c->description) ||
        tc_get_hex(root, "seed", &c->seed))
        return tc_err(err, err_len, "name, description or seed missing");
    const cJSON *dims = cJSON_GetObjectItemCaseSensitive(root, "dims");
    if (tc_get_int(dims, "B", &c->B) || tc_get_int(dims, "Hq", &c->Hq) ||
        tc_get_int(dims, "Hkv", &c->Hkv) || tc_get_int(dims, "d", &c->d) ||
        tc_get_int(dims, "dv", &c->dv) || tc_get_int(dims, "r", &c->r) ||
        tc_get_int(dims, "T", &c->T) || tc_get_int(dims, "S", &c->S) || tc_get_int(dims, "W", &c->W))
        return tc_err(err, err_len, "dims incomplete");
    if (c->B < 1 || c->Hkv < 1 || c->Hq < c->Hkv || c->Hq % c->Hkv || c->d < 1 || c->dv < 1 ||
        c->r < 1 || c->r > c->d || c->T < 1 || c->S < 1 || c->W < 1)
        return tc_err(err, err_len, "dims out of range");
    const cJSON *seqs = cJSON_GetObjectItemCaseSensitive(root, "seqs");
    if (!cJSON_IsArray(seqs) || cJSON_GetArraySize(seqs) != c->B)
        return tc_err(err, err_len, "seqs must list B = %d sequences", c->B);
    c->seqs = calloc((size_t)c->B, sizeof *c->seqs);
    if (!c->seqs) return tc_err(err, err_len, "out of memory");
    for (int b = 0; b < c->B; b++) {
        const cJSON *s = cJSON_GetArrayItem(seqs, b);
        int v[4];
        if (tc_get_int(s, "seq_len", &v[0]) || tc_get_int(s, "span_begin", &v[1]) ||
            tc_get_int(s, "span_len", &v[2]) || tc_get_int(s, "obs_len", &v[3]))
            return tc_err(err, err_len, "seqs[%d] incomplete", b);
        if (v[0] < 1 || v[0] > c->T || v[1] < 0 || v[2] < 0 || v[1] + v[2] > v[0] || v[2] > c->S ||
            v[3] < 0 || v[3] > c->W || v[3] > v[0])
            return tc_err(err, err_len, "seqs[%d] out of range", b);
        c->seqs[b] = (tc_seq){v[0], v[1], v[2], v[3]};
    }
    const cJSON *rope = cJSON_GetObjectItemCaseSensitive(root, "rope");
    const cJSON *rot = cJSON_GetObjectItemCaseSensitive(root, "rotation");
    if (tc_get_double(rope, "base", &c->rope_base) || tc_get_double(root, "scale", &c->scale) ||
        tc_get_string(rot, "method", c->method, sizeof c->method) ||
        tc_get_double(rot, "ridge", &c->ridge) || tc_get_double(rot, "qnorm_floor", &c->qnorm_floor) ||
        tc_get_int(rot, "subspace_iters", &c->subspace_iters) || tc_get_hex(rot, "seed", &c->solver_seed))
        return tc_err(err, err_len, "rope, scale or rotation incomplete");
    const cJSON *gen = cJSON_GetObjectItemCaseSensitive(root, "generator");
    if (gen) c->generator_json = cJSON_PrintUnformatted(gen);
    return 0;
}

int tc_case_load(const char *dir, tc_case *c, char *err, size_t err_len) {
    memset(c, 0, sizeof *c);
    char path[1024];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    char *text = tc_slurp(path);
    if (!text) return tc_err(err, err_len, "%s: cannot read", path);
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) return tc_err(err, err_len, "%s: invalid JSON", path);
    char msg[256];
    int rc = tc_parse_manifest(root, c, msg, sizeof msg);
    if (rc) tc_err(err, err_len, "%s: %s", path, msg);
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(root, "files");
    for (int id = 0; id < TC_N_ARRAYS && rc == 0; id++) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(files, tc_names[id]);
        char file[128];
        if (tc_get_string(f, "file", file, sizeof file) || strchr(file, '/')) {
            rc = tc_err(err, err_len, "%s: files.%s.file missing or not a plain name", path, tc_names[id]);
            break;
        }
        snprintf(path, sizeof path, "%s/%s", dir, file);
        if ((rc = tc_npy_read(path, &c->arr[id], err, err_len)) != 0) break;
        int64_t want[TC_NPY_MAX_DIMS];
        int n = tc_array_shape(c, (tc_array_id)id, want);
        const tc_npy *a = &c->arr[id];
        if (a->type != tc_array_type((tc_array_id)id) || a->ndim != n ||
            memcmp(a->shape, want, sizeof(int64_t) * (size_t)n) != 0)
            rc = tc_err(err, err_len, "%s: dtype or shape differs from the manifest's dims", path);
    }
    cJSON_Delete(root);
    if (rc) tc_case_free(c);
    return rc;
}

void tc_case_free(tc_case *c) {
    if (!c) return;
    for (int id = 0; id < TC_N_ARRAYS; id++) tc_npy_free(&c->arr[id]);
    free(c->seqs);
    free(c->generator_json);
    c->seqs = NULL;
    c->generator_json = NULL;
}

void tc_case_rotation_config(const tc_case *c, rk_solver solver, rk_rotation_config *cfg) {
    rk_rotation_config_init(cfg);
    cfg->n_seq = c->B;
    cfg->n_kv_heads = c->Hkv;
    cfg->n_q_heads = c->Hq;
    cfg->head_dim = c->d;
    cfg->rank = c->r;
    cfg->method = RK_METHOD_PCA_QWEIGHTED;
    cfg->solver = solver;
    cfg->ridge = c->ridge;
    cfg->qnorm_floor = c->qnorm_floor;
    cfg->subspace_iters = c->subspace_iters;
    cfg->seed = c->solver_seed;
}
