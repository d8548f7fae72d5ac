/* Minimal .npy reader: little-endian float32/float16, C order, any rank up to 8. */
#ifndef RK_ACC_NPY_H
#define RK_ACC_NPY_H

#include <stdint.h>

#define ACC_NPY_MAX_DIMS 8

typedef struct acc_npy {
    int ndim;
    int64_t shape[ACC_NPY_MAX_DIMS];
    int64_t count; /* product of the shape */
    float *data;   /* converted to float32; free with acc_npy_free */
} acc_npy;

/* 0 on success; on failure writes a sentence into err (err_len bytes) and returns -1. */
int acc_npy_load(const char *path, acc_npy *out, char *err, int err_len);
void acc_npy_free(acc_npy *a);

#endif
