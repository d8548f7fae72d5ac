/* Status names/sentences, version, dtype facts, host dtype conversion. */
#include "half.h"
#include "rk_test.h"
#include "rotatek.h"

#include <string.h>

int main(void) {
    CHECK(rk_version() == RK_VERSION_NUMBER, "header %d vs library %u", RK_VERSION_NUMBER, rk_version());
    CHECK(strcmp(rk_version_string(), RK_VERSION_STRING) == 0, "%s", rk_version_string());
#define RK_X_CHECK(name, value, text)                                             \
    CHECK(strcmp(rk_status_name(name), #name) == 0, "%s", rk_status_name(name)); \
    CHECK(strcmp(rk_status_string(name), text) == 0, "%s", rk_status_string(name));
    RK_STATUS_TABLE(RK_X_CHECK)
#undef RK_X_CHECK
    CHECK(strcmp(rk_status_name((rk_status)12345), "RK_ERR_UNKNOWN") == 0, "unknown name");
    CHECK(rk_dtype_size(RK_F16) == 2 && rk_dtype_size(RK_BF16) == 2 && rk_dtype_size(RK_F32) == 4 &&
              rk_dtype_size((rk_dtype)9) == 0, "dtype sizes");

    /* IEEE facts: 1.0 = 0x3c00 (f16) = 0x3f80 (bf16); 65504 is f16's max; ties round to even. */
    CHECK(rk_f32_to_f16(1.0f) == 0x3c00, "f16(1)");
    CHECK(rk_f32_to_f16(65504.0f) == 0x7bff && rk_f32_to_f16(65520.0f) == 0x7c00, "f16 max/overflow");
    CHECK(rk_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00, "f16 tie to even (down)");
    CHECK(rk_f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02, "f16 tie to even (up)");
    CHECK(rk_f16_to_f32(0x0001) == 5.9604644775390625e-8f, "f16 smallest subnormal");
    CHECK(rk_f32_to_f16(5.9604644775390625e-8f) == 0x0001, "to f16 subnormal");
    CHECK(rk_f32_to_bf16(1.0f) == 0x3f80 && rk_bf16_to_f32(0x3f80) == 1.0f, "bf16(1)");
    CHECK(rk_f32_to_bf16(1.0f + 1.0f / 256) == 0x3f80, "bf16 tie to even");
    CHECK(isnan(rk_f16_to_f32(rk_f32_to_f16(NAN))) && isnan(rk_bf16_to_f32(rk_f32_to_bf16(NAN))), "NaN");
    /* every f16 value survives a round trip through f32 */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = rk_f16_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        if (rk_f32_to_f16(f) != h) bad++;
    }
    CHECK(bad == 0, "%d f16 values did not round-trip", bad);

    float src[3] = {0.5f, -2.25f, 3.0f}, back[3];
    uint16_t half[3];
    CHECK(rk_convert_from_f32(RK_BF16, half, src, 3) == RK_OK, "convert");
    CHECK(rk_convert_to_f32(RK_BF16, back, half, 3) == RK_OK && back[1] == -2.25f, "convert back");
    CHECK(rk_convert_from_f32(RK_I32, half, src, 3) == RK_ERR_DTYPE_MISMATCH, "i32 not a float");
    CHECK(rk_convert_from_f32(RK_F16, NULL, src, 3) == RK_ERR_NULL_ARG, "NULL dst");
    return rk_test_done("test_status");
}
