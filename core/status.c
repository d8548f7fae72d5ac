/* Version, status names and sentences, dtype facts. */
#include "rotatek.h"

unsigned rk_version(void) { return RK_VERSION_NUMBER; }
const char *rk_version_string(void) { return RK_VERSION_STRING; }

const char *rk_status_name(rk_status s) {
    switch (s) {
#define RK_X_NAME(name, value, text) case name: return #name;
        RK_STATUS_TABLE(RK_X_NAME)
#undef RK_X_NAME
    }
    return "RK_ERR_UNKNOWN";
}

const char *rk_status_string(rk_status s) {
    switch (s) {
#define RK_X_TEXT(name, value, text) case name: return text;
        RK_STATUS_TABLE(RK_X_TEXT)
#undef RK_X_TEXT
    }
    return "unknown status code";
}

size_t rk_dtype_size(rk_dtype t) {
    switch (t) {
    case RK_F32: return 4;
    case RK_F16: return 2;
    case RK_BF16: return 2;
    case RK_I32: return 4;
    }
    return 0;
}

const char *rk_dtype_name(rk_dtype t) {
    switch (t) {
    case RK_F32: return "f32";
    case RK_F16: return "f16";
    case RK_BF16: return "bf16";
    case RK_I32: return "i32";
    }
    return "unknown";
}
