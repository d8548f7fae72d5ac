/* Devices, error mapping and live-object accounting of the OpenCL backend. */
#include "ocl_debug.h"
#include "ocl_internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *rk_ocl_error_name(cl_int err) {
    switch (err) {
#define RK_CL_ERR(x) case x: return #x;
    RK_CL_ERR(CL_SUCCESS)
    RK_CL_ERR(CL_DEVICE_NOT_FOUND)
    RK_CL_ERR(CL_DEVICE_NOT_AVAILABLE)
    RK_CL_ERR(CL_COMPILER_NOT_AVAILABLE)
    RK_CL_ERR(CL_MEM_OBJECT_ALLOCATION_FAILURE)
    RK_CL_ERR(CL_OUT_OF_RESOURCES)
    RK_CL_ERR(CL_OUT_OF_HOST_MEMORY)
    RK_CL_ERR(CL_PROFILING_INFO_NOT_AVAILABLE)
    RK_CL_ERR(CL_MEM_COPY_OVERLAP)
    RK_CL_ERR(CL_IMAGE_FORMAT_MISMATCH)
    RK_CL_ERR(CL_IMAGE_FORMAT_NOT_SUPPORTED)
    RK_CL_ERR(CL_BUILD_PROGRAM_FAILURE)
    RK_CL_ERR(CL_MAP_FAILURE)
    RK_CL_ERR(CL_MISALIGNED_SUB_BUFFER_OFFSET)
    RK_CL_ERR(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
    RK_CL_ERR(CL_COMPILE_PROGRAM_FAILURE)
    RK_CL_ERR(CL_LINKER_NOT_AVAILABLE)
    RK_CL_ERR(CL_LINK_PROGRAM_FAILURE)
    RK_CL_ERR(CL_INVALID_VALUE)
    RK_CL_ERR(CL_INVALID_DEVICE_TYPE)
    RK_CL_ERR(CL_INVALID_PLATFORM)
    RK_CL_ERR(CL_INVALID_DEVICE)
    RK_CL_ERR(CL_INVALID_CONTEXT)
    RK_CL_ERR(CL_INVALID_QUEUE_PROPERTIES)
    RK_CL_ERR(CL_INVALID_COMMAND_QUEUE)
    RK_CL_ERR(CL_INVALID_HOST_PTR)
    RK_CL_ERR(CL_INVALID_MEM_OBJECT)
    RK_CL_ERR(CL_INVALID_BINARY)
    RK_CL_ERR(CL_INVALID_BUILD_OPTIONS)
    RK_CL_ERR(CL_INVALID_PROGRAM)
    RK_CL_ERR(CL_INVALID_PROGRAM_EXECUTABLE)
    RK_CL_ERR(CL_INVALID_KERNEL_NAME)
    RK_CL_ERR(CL_INVALID_KERNEL_DEFINITION)
    RK_CL_ERR(CL_INVALID_KERNEL)
    RK_CL_ERR(CL_INVALID_ARG_INDEX)
    RK_CL_ERR(CL_INVALID_ARG_VALUE)
    RK_CL_ERR(CL_INVALID_ARG_SIZE)
    RK_CL_ERR(CL_INVALID_KERNEL_ARGS)
    RK_CL_ERR(CL_INVALID_WORK_DIMENSION)
    RK_CL_ERR(CL_INVALID_WORK_GROUP_SIZE)
    RK_CL_ERR(CL_INVALID_WORK_ITEM_SIZE)
    RK_CL_ERR(CL_INVALID_GLOBAL_OFFSET)
    RK_CL_ERR(CL_INVALID_EVENT_WAIT_LIST)
    RK_CL_ERR(CL_INVALID_EVENT)
    RK_CL_ERR(CL_INVALID_OPERATION)
    RK_CL_ERR(CL_INVALID_BUFFER_SIZE)
    RK_CL_ERR(CL_INVALID_GLOBAL_WORK_SIZE)
    RK_CL_ERR(CL_INVALID_PROPERTY)
#undef RK_CL_ERR
    case -1001: return "CL_PLATFORM_NOT_FOUND_KHR";
    default: return "unknown OpenCL error";
    }
}

rk_status rk_ocl_fail(rk_context *ctx, cl_int err, const char *what) {
    if (err == CL_SUCCESS) return RK_OK;
    rk_status st = RK_ERR_BACKEND_FAILURE;
    if (err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_RESOURCES ||
        err == CL_OUT_OF_HOST_MEMORY || err == CL_INVALID_BUFFER_SIZE)
        st = RK_ERR_OUT_OF_MEMORY;
    else if (err == CL_BUILD_PROGRAM_FAILURE || err == CL_COMPILE_PROGRAM_FAILURE)
        st = RK_ERR_KERNEL_BUILD;
    return rk_fail(ctx, st, "opencl: %s: %s (%d)", what, rk_ocl_error_name(err), (int)err);
}

static void rk_ocl_lower(char *s) {
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z') *s = (char)(*s - 'A' + 'a');
}

/* RK_OPENCL_PLATFORM=<text>: only platforms whose name or vendor contains <text> (any case)
 * take part in device enumeration, whatever ICD loader and vendor files the system has. */
static int rk_ocl_platform_selected(cl_platform_id p) {
    const char *env = getenv("RK_OPENCL_PLATFORM");
    if (!env || !env[0]) return 1;
    char want[256], text[256];
    snprintf(want, sizeof want, "%s", env);
    rk_ocl_lower(want);
    static const cl_platform_info fields[] = {CL_PLATFORM_NAME, CL_PLATFORM_VENDOR};
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
        memset(text, 0, sizeof text);
        if (clGetPlatformInfo(p, fields[f], sizeof text - 1, text, NULL) != CL_SUCCESS) continue;
        rk_ocl_lower(text);
        if (strstr(text, want)) return 1;
    }
    return 0;
}

cl_int rk_ocl_find_device(size_t index, size_t *count, cl_platform_id *platform,
                          cl_device_id *device) {
    cl_uint n_plat = 0;
    cl_int err = clGetPlatformIDs(0, NULL, &n_plat);
    if (count) *count = 0;
    if (err != CL_SUCCESS || n_plat == 0) return err != CL_SUCCESS ? err : CL_DEVICE_NOT_FOUND;
    cl_platform_id *plats = malloc(sizeof *plats * n_plat);
    if (!plats) return CL_OUT_OF_HOST_MEMORY;
    err = clGetPlatformIDs(n_plat, plats, NULL);
    size_t seen = 0;
    int found = 0;
    for (cl_uint p = 0; err == CL_SUCCESS && p < n_plat; p++) {
        cl_uint n_dev = 0;
        if (!rk_ocl_platform_selected(plats[p])) continue;
        /* a platform without devices answers CL_DEVICE_NOT_FOUND: skip it, not an error */
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &n_dev) != CL_SUCCESS) continue;
        if (!found && index < seen + n_dev) {
            cl_device_id *devs = malloc(sizeof *devs * n_dev);
            if (!devs) { err = CL_OUT_OF_HOST_MEMORY; break; }
            err = clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, n_dev, devs, NULL);
            if (err == CL_SUCCESS) {
                if (platform) *platform = plats[p];
                if (device) *device = devs[index - seen];
                found = 1;
            }
            free(devs);
        }
        seen += n_dev;
    }
    free(plats);
    if (count) *count = seen;
    if (err != CL_SUCCESS) return err;
    return found ? CL_SUCCESS : (seen ? CL_INVALID_VALUE : CL_DEVICE_NOT_FOUND);
}

static void rk_ocl_info_str(cl_device_id d, cl_device_info what, char *buf, size_t len) {
    buf[0] = '\0';
    if (clGetDeviceInfo(d, what, len, buf, NULL) != CL_SUCCESS) buf[0] = '\0';
    buf[len - 1] = '\0';
}

void rk_ocl_query_device(cl_platform_id platform, cl_device_id device, rk_ocl_device_info *o) {
    memset(o, 0, sizeof *o);
    o->platform = platform;
    o->device = device;
    rk_ocl_info_str(device, CL_DEVICE_NAME, o->name, sizeof o->name);
    rk_ocl_info_str(device, CL_DEVICE_VENDOR, o->vendor, sizeof o->vendor);
    rk_ocl_info_str(device, CL_DEVICE_VERSION, o->version, sizeof o->version);
    rk_ocl_info_str(device, CL_DRIVER_VERSION, o->driver, sizeof o->driver);
    if (clGetPlatformInfo(platform, CL_PLATFORM_NAME, sizeof o->platform_name, o->platform_name,
                          NULL) != CL_SUCCESS)
        o->platform_name[0] = '\0';
    o->platform_name[sizeof o->platform_name - 1] = '\0';
    clGetDeviceInfo(device, CL_DEVICE_TYPE, sizeof o->type, &o->type, NULL);
    clGetDeviceInfo(device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof o->compute_units,
                    &o->compute_units, NULL);
    clGetDeviceInfo(device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof o->max_wg, &o->max_wg, NULL);
    clGetDeviceInfo(device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof o->local_mem, &o->local_mem, NULL);
    clGetDeviceInfo(device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof o->max_alloc, &o->max_alloc, NULL);
    clGetDeviceInfo(device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof o->global_mem, &o->global_mem, NULL);
    size_t ext_len = 0;
    char *ext = NULL;
    if (clGetDeviceInfo(device, CL_DEVICE_EXTENSIONS, 0, NULL, &ext_len) == CL_SUCCESS &&
        (ext = calloc(ext_len + 1, 1)) != NULL &&
        clGetDeviceInfo(device, CL_DEVICE_EXTENSIONS, ext_len, ext, NULL) == CL_SUCCESS)
        o->nv_compiler_options = strstr(ext, "cl_nv_compiler_options") != NULL;
    free(ext);
    o->ptx = (o->type & CL_DEVICE_TYPE_GPU) && strstr(o->vendor, "NVIDIA") != NULL;
    if (o->compute_units == 0) o->compute_units = 1;
    if (o->max_wg == 0) o->max_wg = 1;
}

/* ---- accounting ------------------------------------------------------------------------------
 * Process-wide atomic counters: diagnostics only, nothing reads them to decide behaviour, and
 * atomics keep two contexts on two threads safe. */
static atomic_long rk_ocl_live[RK_OCL_OBJ_KINDS];
static atomic_long rk_ocl_events[RK_OCL_EVT_KINDS];

void rk_ocl_count_live(int kind, int delta) { atomic_fetch_add(&rk_ocl_live[kind], delta); }
void rk_ocl_count_event(int kind) { atomic_fetch_add(&rk_ocl_events[kind], 1); }

void rk_opencl_debug_counts(rk_opencl_counts *out) {
    out->contexts = atomic_load(&rk_ocl_live[RK_OCL_OBJ_CONTEXT]);
    out->queues = atomic_load(&rk_ocl_live[RK_OCL_OBJ_QUEUE]);
    out->mem_objects = atomic_load(&rk_ocl_live[RK_OCL_OBJ_MEM]);
    out->programs = atomic_load(&rk_ocl_live[RK_OCL_OBJ_PROGRAM]);
    out->kernels = atomic_load(&rk_ocl_live[RK_OCL_OBJ_KERNEL]);
    out->events = atomic_load(&rk_ocl_live[RK_OCL_OBJ_EVENT]);
    out->source_builds = atomic_load(&rk_ocl_events[RK_OCL_EVT_SOURCE_BUILD]);
    out->binary_loads = atomic_load(&rk_ocl_events[RK_OCL_EVT_BINARY_LOAD]);
    out->cache_stores = atomic_load(&rk_ocl_events[RK_OCL_EVT_CACHE_STORE]);
    out->context_ref_leaks = atomic_load(&rk_ocl_events[RK_OCL_EVT_CONTEXT_REF_LEAK]);
}
