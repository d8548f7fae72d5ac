/* Strict .npy I/O (see tc_npy.h). The header is parsed as the small Python-literal dict NumPy
 * writes; the payload is copied with a byte swap when the host is big-endian. */
#include "tc_npy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char tc_npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

size_t tc_npy_type_size(tc_npy_type t) { return t == TC_NPY_F8 ? 8 : 4; }

const char *tc_npy_descr(tc_npy_type t) {
    switch (t) {
    case TC_NPY_F4: return "<f4";
    case TC_NPY_F8: return "<f8";
    case TC_NPY_I4: return "<i4";
    }
    return "?";
}

static int tc_fail(char *err, size_t err_len, const char *fmt, ...) {
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return 1;
}

static int tc_host_is_little(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Little-endian file bytes <-> host elements (a swap on big-endian hosts only). */
static void tc_copy_le(void *dst, const void *src, size_t count, size_t elem) {
    memcpy(dst, src, count * elem);
    if (tc_host_is_little()) return;
    unsigned char *p = dst;
    for (size_t i = 0; i < count; i++, p += elem)
        for (size_t a = 0, b = elem - 1; a < b; a++, b--) {
            unsigned char t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

/* ---- header parser ----------------------------------------------------------------------- */

typedef struct tc_cursor {
    const char *p, *end;
} tc_cursor;

static void tc_skip_ws(tc_cursor *c) {
    while (c->p < c->end && *c->p == ' ') c->p++;
}

static int tc_accept(tc_cursor *c, char ch) {
    tc_skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted Python string without escapes (all the keys and descr values NumPy writes). */
static int tc_parse_string(tc_cursor *c, char *out, size_t out_len) {
    tc_skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return 1;
    char quote = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != quote) {
        if (*c->p == '\\' || n + 1 >= out_len) return 1;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end) return 1;
    c->p++;
    out[n] = '\0';
    return 0;
}

static int tc_parse_word(tc_cursor *c, const char *word) {
    tc_skip_ws(c);
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return 1;
    c->p += n;
    return 0;
}

/* "(2, 3)", "(5,)" or "()". */
static int tc_parse_shape(tc_cursor *c, tc_npy *a) {
    if (!tc_accept(c, '(')) return 1;
    a->ndim = 0;
    for (;;) {
        if (tc_accept(c, ')')) return 0;
        tc_skip_ws(c);
        if (c->p >= c->end || *c->p < '0' || *c->p > '9') return 1;
        int64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (v > (INT64_MAX - 9) / 10) return 1;
            v = v * 10 + (*c->p++ - '0');
        }
        if (a->ndim >= TC_NPY_MAX_DIMS) return 1;
        a->shape[a->ndim++] = v;
        if (tc_accept(c, ',')) continue;
        if (tc_accept(c, ')')) return a->ndim == 1 ? 1 : 0; /* "(5)" is an int, not a tuple */
        return 1;
    }
}

static int tc_parse_header(const char *h, size_t len, tc_npy *a, char *err, size_t err_len) {
    tc_cursor c = {h, h + len};
    int have_descr = 0, have_order = 0, have_shape = 0;
    if (!tc_accept(&c, '{')) return tc_fail(err, err_len, "header does not start with '{'");
    for (;;) {
        if (tc_accept(&c, '}')) break;
        char key[32];
        if (tc_parse_string(&c, key, sizeof key) || !tc_accept(&c, ':'))
            return tc_fail(err, err_len, "malformed header key");
        if (strcmp(key, "descr") == 0 && !have_descr) {
            char descr[16];
            if (tc_parse_string(&c, descr, sizeof descr))
                return tc_fail(err, err_len, "malformed descr");
            if (strcmp(descr, "<f4") == 0) a->type = TC_NPY_F4;
            else if (strcmp(descr, "<f8") == 0) a->type = TC_NPY_F8;
            else if (strcmp(descr, "<i4") == 0) a->type = TC_NPY_I4;
            else return tc_fail(err, err_len, "dtype '%s' not supported (need <f4, <f8, <i4)", descr);
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0 && !have_order) {
            if (tc_parse_word(&c, "False") == 0) have_order = 1;
            else return tc_fail(err, err_len, "fortran_order must be False (C order only)");
        } else if (strcmp(key, "shape") == 0 && !have_shape) {
            if (tc_parse_shape(&c, a)) return tc_fail(err, err_len, "malformed shape");
            have_shape = 1;
        } else {
            return tc_fail(err, err_len, "unexpected or repeated header key '%s'", key);
        }
        if (tc_accept(&c, ',')) continue;
        if (tc_accept(&c, '}')) break;
        return tc_fail(err, err_len, "expected ',' or '}' in header");
    }
    if (!have_descr || !have_order || !have_shape)
        return tc_fail(err, err_len, "header lacks descr, fortran_order or shape");
    tc_skip_ws(&c);
    if (c.p != c.end - 1 || *c.p != '\n') return tc_fail(err, err_len, "header must end with spaces and '\\n'");
    return 0;
}

/* ---- read / write -------------------------------------------------------------------------- */

int tc_npy_read(const char *path, tc_npy *out, char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return tc_fail(err, err_len, "%s: cannot open", path);
    unsigned char *buf = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return tc_fail(err, err_len, "%s: cannot size", path);
    }
    buf = malloc((size_t)size + 1);
    int rc = 1;
    if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        tc_fail(err, err_len, "%s: read failed", path);
        goto done;
    }
    size_t n = (size_t)size;
    if (n < 10 || memcmp(buf, tc_npy_magic, 6) != 0) {
        tc_fail(err, err_len, "%s: not a .npy file", path);
        goto done;
    }
    size_t prefix, hlen;
    if (buf[6] == 1 && buf[7] == 0) {
        prefix = 10;
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
    } else if ((buf[6] == 2 || buf[6] == 3) && buf[7] == 0 && n >= 12) {
        prefix = 12;
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
    } else {
        tc_fail(err, err_len, "%s: unsupported format version %u.%u", path, buf[6], buf[7]);
        goto done;
    }
    if (hlen > n - prefix) {
        tc_fail(err, err_len, "%s: truncated header", path);
        goto done;
    }
    char msg[160];
    if (tc_parse_header((const char *)buf + prefix, hlen, out, msg, sizeof msg)) {
        tc_fail(err, err_len, "%s: %s", path, msg);
        goto done;
    }
    out->count = 1;
    for (int i = 0; i < out->ndim; i++) out->count *= (size_t)out->shape[i];
    size_t es = tc_npy_type_size(out->type), payload = n - prefix - hlen;
    if (payload != out->count * es) {
        tc_fail(err, err_len, "%s: payload is %zu bytes, shape needs %zu", path, payload,
                out->count * es);
        goto done;
    }
    out->data = malloc(payload ? payload : 1);
    if (!out->data) {
        tc_fail(err, err_len, "%s: out of memory", path);
        goto done;
    }
    tc_copy_le(out->data, buf + prefix + hlen, out->count, es);
    rc = 0;
done:
    if (rc) tc_npy_free(out);
    free(buf);
    fclose(f);
    return rc;
}

int tc_npy_write(const char *path, tc_npy_type type, int ndim, const int64_t *shape,
                 const void *data, char *err, size_t err_len) {
    if (ndim < 0 || ndim > TC_NPY_MAX_DIMS) return tc_fail(err, err_len, "%s: bad ndim %d", path, ndim);
    char dict[256];
    int len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                       tc_npy_descr(type));
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return tc_fail(err, err_len, "%s: negative extent", path);
        count *= (size_t)shape[i];
        len += snprintf(dict + len, sizeof dict - (size_t)len, i ? ", %lld" : "%lld",
                        (long long)shape[i]);
    }
    len += snprintf(dict + len, sizeof dict - (size_t)len, "%s), }", ndim == 1 ? "," : "");
    size_t total = 10 + (size_t)len + 1; /* + '\n' */
    size_t padded = (total + 63) / 64 * 64, hlen = padded - 10;
    unsigned char head[10 + 256 + 64];
    memcpy(head, tc_npy_magic, 6);
    head[6] = 1;
    head[7] = 0;
    head[8] = (unsigned char)(hlen & 0xff);
    head[9] = (unsigned char)(hlen >> 8);
    memcpy(head + 10, dict, (size_t)len);
    memset(head + 10 + len, ' ', hlen - (size_t)len - 1);
    head[padded - 1] = '\n';

    size_t es = tc_npy_type_size(type);
    unsigned char *payload = malloc(count > 0 ? count * es : 1);
    if (!payload) return tc_fail(err, err_len, "%s: out of memory", path);
    tc_copy_le(payload, data, count, es);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(head, 1, padded, f) == padded &&
             fwrite(payload, 1, count * es, f) == count * es;
    if (f && fclose(f) != 0) ok = 0;
    free(payload);
    return ok ? 0 : tc_fail(err, err_len, "%s: write failed", path);
}

void tc_npy_free(tc_npy *a) {
    if (!a) return;
    free(a->data);
    a->data = NULL;
    a->count = 0;
}
