/* The backends compiled in, in a fixed order. A const table: no global mutable state. */
#include "backend.h"
#include "registry.h"

#include <string.h>

static const rk_backend_iface *const rk_backends[] = {
#ifdef RK_HAVE_CPU
    &rk_backend_cpu,
#endif
#ifdef RK_HAVE_OPENCL
    &rk_backend_opencl,
#endif
#ifdef RK_HAVE_VULKAN
    &rk_backend_vulkan,
#endif
#ifdef RK_HAVE_CUDA
    &rk_backend_cuda,
#endif
#ifdef RK_HAVE_HIP
    &rk_backend_hip,
#endif
    NULL};

static const char *const rk_known_backends[] = {"cpu", "opencl", "vulkan", "cuda", "hip"};

size_t rk_backend_count(void) { return sizeof(rk_backends) / sizeof(rk_backends[0]) - 1; }

const char *rk_backend_name(size_t index) {
    return index < rk_backend_count() ? rk_backends[index]->name : NULL;
}

const rk_backend_iface *rk_backend_find(const char *name) {
    for (size_t i = 0; i < rk_backend_count(); i++)
        if (strcmp(rk_backends[i]->name, name) == 0) return rk_backends[i];
    return NULL;
}

int rk_backend_is_known(const char *name) {
    for (size_t i = 0; i < sizeof(rk_known_backends) / sizeof(rk_known_backends[0]); i++)
        if (strcmp(rk_known_backends[i], name) == 0) return 1;
    return 0;
}

rk_status rk_device_count(const char *backend, size_t *count) {
    if (!backend || !count) return RK_ERR_NULL_ARG;
    *count = 0;
    const rk_backend_iface *be = rk_backend_find(backend);
    if (!be) return rk_backend_is_known(backend) ? RK_ERR_BACKEND_NOT_BUILT : RK_ERR_INVALID_ARG;
    return be->device_count(count);
}

rk_status rk_device_name(const char *backend, size_t index, char *buf, size_t buf_len) {
    if (!backend || !buf) return RK_ERR_NULL_ARG;
    if (buf_len == 0) return RK_ERR_INVALID_ARG;
    buf[0] = '\0';
    size_t n = 0;
    rk_status st = rk_device_count(backend, &n);
    if (st != RK_OK) return st;
    if (index >= n) return RK_ERR_DEVICE_NOT_FOUND;
    return rk_backend_find(backend)->device_name(index, buf, buf_len);
}
