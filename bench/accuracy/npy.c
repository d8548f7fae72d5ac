/* .npy format 1.0/2.0/3.0: magic, version, header length, a Python dict literal, raw data. */
#include "npy.h"

#include "rotatek.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int acc_npy_fail(char *err, int err_len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, (size_t)err_len, fmt, ap);
    va_end(ap);
    return -1;
}

/* The quoted value after 'key': in the header dict, copied into val. */
static int acc_npy_field(const char *hdr, const char *key, char *val, size_t val_len) {
    const char *p = strstr(hdr, key);
    if (!p) return -1;
    p = strchr(p + strlen(key), ':');
    if (!p) return -1;
    p++;
    while (*p == ' ') p++;
    size_t n = 0;
    if (*p == '\'' || *p == '"') {
        char quote = *p++;
        while (p[n] && p[n] != quote) n++;
    } else if (*p == '(') {
        while (p[n] && p[n] != ')') n++;
        n++;
    } else {
        while (p[n] && p[n] != ',' && p[n] != '}') n++;
    }
    if (n + 1 > val_len) return -1;
    memcpy(val, p, n);
    val[n] = '\0';
    return 0;
}

int acc_npy_load(const char *path, acc_npy *out, char *err, int err_len) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return acc_npy_fail(err, err_len, "cannot open %s", path);
    unsigned char pre[12];
    char *hdr = NULL;
    void *raw = NULL;
    int rc = -1;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        acc_npy_fail(err, err_len, "%s is not a .npy file", path);
        goto done;
    }
    size_t hlen;
    if (pre[6] == 1) {
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    } else {
        if (fread(pre + 10, 1, 2, f) != 2) goto truncated;
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    }
    hdr = malloc(hlen + 1);
    if (!hdr || fread(hdr, 1, hlen, f) != hlen) goto truncated;
    hdr[hlen] = '\0';

    char descr[16], order[16], shape[256];
    if (acc_npy_field(hdr, "'descr'", descr, sizeof descr) ||
        acc_npy_field(hdr, "'fortran_order'", order, sizeof order) ||
        acc_npy_field(hdr, "'shape'", shape, sizeof shape)) {
        acc_npy_fail(err, err_len, "%s: unreadable header", path);
        goto done;
    }
    rk_dtype dtype;
    if (strcmp(descr, "<f4") == 0) dtype = RK_F32;
    else if (strcmp(descr, "<f2") == 0) dtype = RK_F16;
    else {
        acc_npy_fail(err, err_len, "%s: dtype %s (want <f4 or <f2)", path, descr);
        goto done;
    }
    if (strncmp(order, "False", 5) != 0) {
        acc_npy_fail(err, err_len, "%s: Fortran order is not supported", path);
        goto done;
    }
    out->count = 1;
    for (char *p = shape + 1; *p && *p != ')';) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p) break;
        if (out->ndim == ACC_NPY_MAX_DIMS || v < 0) {
            acc_npy_fail(err, err_len, "%s: shape %s not supported", path, shape);
            goto done;
        }
        out->shape[out->ndim++] = v;
        out->count *= v;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    size_t es = rk_dtype_size(dtype), n = (size_t)out->count;
    raw = malloc(n * es + 1);
    out->data = malloc(n * sizeof(float) + 1);
    if (!raw || !out->data) {
        acc_npy_fail(err, err_len, "%s: out of memory for %zu elements", path, n);
        goto done;
    }
    if (fread(raw, es, n, f) != n) goto truncated;
    if (rk_convert_to_f32(dtype, out->data, raw, n) != RK_OK) {
        acc_npy_fail(err, err_len, "%s: conversion failed", path);
        goto done;
    }
    rc = 0;
    goto done;
truncated:
    acc_npy_fail(err, err_len, "%s is truncated", path);
done:
    if (rc != 0) acc_npy_free(out);
    free(hdr);
    free(raw);
    fclose(f);
    return rc;
}

void acc_npy_free(acc_npy *a) {
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}
