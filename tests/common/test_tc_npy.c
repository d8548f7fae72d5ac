/* The strict .npy reader/writer: round trips keep shape and bits, and every malformed file the
 * reader must refuse is refused. */
#include "tc_npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define EXPECT(cond, what)                                                    \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "test_tc_npy: %s failed (%s)\n", what, #cond);    \
            failures++;                                                       \
        }                                                                     \
    } while (0)

static void write_raw(const char *path, const char *header, const void *payload, size_t bytes) {
    size_t hlen = strlen(header);
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                             (unsigned char)(hlen >> 8)};
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(pre, 1, 10, f);
    fwrite(header, 1, hlen, f);
    fwrite(payload, 1, bytes, f);
    fclose(f);
}

static int reads(const char *path) {
    tc_npy a;
    char err[256];
    int rc = tc_npy_read(path, &a, err, sizeof err);
    tc_npy_free(&a);
    return rc == 0;
}

int main(void) {
    const char *path = "test_tc_npy.tmp.npy";
    char err[256];

    /* round trips: every dtype, a 1-d and a 4-d shape, values bit-exact */
    const float f4[6] = {1.5f, -0.0f, 3.25e-8f, 7.0f, -2.0f, 1e30f};
    const double f8[3] = {0.1, -1e-300, 123456789.0};
    const int32_t i4[4] = {0, -1, 2147483647, 42};
    const int64_t s4[4] = {1, 2, 3, 1}, s1[1] = {3}, si[2] = {2, 2};
    struct { tc_npy_type t; int nd; const int64_t *shape; const void *data; size_t n; } cases[] = {
        {TC_NPY_F4, 4, s4, f4, 6}, {TC_NPY_F8, 1, s1, f8, 3}, {TC_NPY_I4, 2, si, i4, 4}};
    for (int k = 0; k < 3; k++) {
        tc_npy a;
        EXPECT(tc_npy_write(path, cases[k].t, cases[k].nd, cases[k].shape, cases[k].data, err, sizeof err) == 0, "write");
        EXPECT(tc_npy_read(path, &a, err, sizeof err) == 0, "read back");
        EXPECT(a.type == cases[k].t && a.ndim == cases[k].nd && a.count == cases[k].n, "type, ndim, count");
        EXPECT(a.data && memcmp(a.data, cases[k].data, cases[k].n * tc_npy_type_size(a.type)) == 0, "payload bits");
        for (int i = 0; i < a.ndim && i < cases[k].nd; i++) EXPECT(a.shape[i] == cases[k].shape[i], "shape");
        tc_npy_free(&a);
        FILE *f = fopen(path, "rb");
        unsigned char head[10] = {0};
        EXPECT(f && fread(head, 1, 10, f) == 10, "header bytes");
        if (f) fclose(f);
        EXPECT((10 + (head[8] | head[9] << 8)) % 64 == 0, "data 64-byte aligned");
    }

    /* what NumPy writes for a 1-d float32 array of 2 is accepted, spacing variants too */
    const float two[2] = {1, 2};
    write_raw(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }          \n", two, 8);
    EXPECT(reads(path), "numpy 1-d header");
    write_raw(path, "{\"shape\":(2,),\"fortran_order\":False,\"descr\":\"<f4\"}\n", two, 8);
    EXPECT(reads(path), "reordered keys, double quotes");

    /* refused */
    write_raw(path, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }\n", two, 8);
    EXPECT(!reads(path), "big-endian dtype");
    write_raw(path, "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }\n", two, 4);
    EXPECT(!reads(path), "float16 dtype");
    write_raw(path, "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }\n", two, 8);
    EXPECT(!reads(path), "Fortran order");
    write_raw(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }\n", two, 8);
    EXPECT(!reads(path), "payload shorter than the shape");
    write_raw(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n", two, 8);
    EXPECT(!reads(path), "payload longer than the shape");
    write_raw(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (2), }\n", two, 8);
    EXPECT(!reads(path), "shape that is not a tuple");
    write_raw(path, "{'descr': '<f4', 'fortran_order': False}\n", two, 8);
    EXPECT(!reads(path), "missing shape");
    write_raw(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}\n", two, 8);
    EXPECT(!reads(path), "unknown key");
    write_raw(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", two, 8);
    EXPECT(!reads(path), "header without newline");
    FILE *f = fopen(path, "wb");
    if (f) { fputs("not numpy at all", f); fclose(f); }
    EXPECT(!reads(path), "bad magic");
    EXPECT(!reads("does/not/exist.npy"), "missing file");

    remove(path);
    printf("test_tc_npy: %s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
