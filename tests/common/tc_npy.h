/* Strict NumPy .npy reader/writer for the shared test vectors.
 *
 * Only what the vectors use: little-endian <f4, <f8, <i4, C order, format versions 1.0 and 2.0
 * on read (1.0 on write), at most TC_NPY_MAX_DIMS dimensions. Anything else is rejected with a
 * message, never guessed at: a vector file that reads must mean exactly what its header says. */
#ifndef TC_NPY_H
#define TC_NPY_H

#include <stddef.h>
#include <stdint.h>

#define TC_NPY_MAX_DIMS 8

typedef enum tc_npy_type { TC_NPY_F4 = 0, TC_NPY_F8 = 1, TC_NPY_I4 = 2 } tc_npy_type;

typedef struct tc_npy {
    tc_npy_type type;
    int ndim;
    int64_t shape[TC_NPY_MAX_DIMS];
    size_t count; /* product of shape (1 for 0-d) */
    void *data;   /* host-endian elements, count of them */
} tc_npy;

size_t tc_npy_type_size(tc_npy_type t);
const char *tc_npy_descr(tc_npy_type t); /* "<f4", "<f8", "<i4" */

/* Read a whole file. Returns 0 on success; on failure nonzero and a message in err. */
int tc_npy_read(const char *path, tc_npy *out, char *err, size_t err_len);

/* Write data (host-endian) as a version 1.0 file; header padded so the data starts at a
 * multiple of 64 bytes, as NumPy does. Returns 0 on success. */
int tc_npy_write(const char *path, tc_npy_type type, int ndim, const int64_t *shape,
                 const void *data, char *err, size_t err_len);

void tc_npy_free(tc_npy *a);

#endif
