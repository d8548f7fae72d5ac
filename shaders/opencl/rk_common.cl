/* Storage helpers shared by every RotateK OpenCL program (OpenCL C 1.2).
 *
 * RK_DT picks the element type of the tensors a program reads and writes: 0 f32, 1 f16, 2 bf16.
 * Arithmetic is always f32. f16 goes through vload_half/vstore_half, which need no cl_khr_fp16
 * (PoCL and the NVIDIA driver both lack it); bf16 is plain bit work on ushort.
 * RK_ALIGNED=1 promises that every 4-element load starts on a 4-element boundary, so loads can be
 * single wide transactions instead of the element-aligned vloadn the compiler must split. */
#ifndef RK_DT
#error "RK_DT must be defined"
#endif
#ifndef RK_ALIGNED
#define RK_ALIGNED 0
#endif

#if RK_DT == 0
typedef float rk_elem;
#elif RK_DT == 1
typedef half rk_elem;
#elif RK_DT == 2
typedef ushort rk_elem;
#else
#error "unknown RK_DT"
#endif

inline float rk_bf16_to_float(ushort u) { return as_float((uint)u << 16); }

inline float4 rk_bf16x4_to_float4(ushort4 u) { return as_float4(convert_uint4(u) << 16); }

/* Round to nearest even, NaN stays a (quiet) NaN: the same rule as core/half.h. */
inline ushort rk_float_to_bf16(float f) {
    uint u = as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (ushort)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (ushort)(u >> 16);
}

inline float rk_ld1(global const rk_elem *p, long i) {
#if RK_DT == 0
    return p[i];
#elif RK_DT == 1
    return vload_half(0, p + i);
#else
    return rk_bf16_to_float(p[i]);
#endif
}

inline float4 rk_ld4(global const rk_elem *p, long i) {
#if RK_DT == 0
#if RK_ALIGNED
    return *(global const float4 *)(p + i);
#else
    return vload4(0, p + i);
#endif
#elif RK_DT == 1
#if RK_ALIGNED
    return vloada_half4(0, p + i);
#else
    return vload_half4(0, p + i);
#endif
#else
#if RK_ALIGNED
    return rk_bf16x4_to_float4(*(global const ushort4 *)(p + i));
#else
    return rk_bf16x4_to_float4(vload4(0, p + i));
#endif
#endif
}

/* Eight elements, element-aligned (used where alignment is unknown; CPUs do not mind). */
inline float8 rk_ld8(global const rk_elem *p, long i) {
#if RK_DT == 0
    return vload8(0, p + i);
#elif RK_DT == 1
    return vload_half8(0, p + i);
#else
    return as_float8(convert_uint8(vload8(0, p + i)) << 16);
#endif
}

inline void rk_st1(global rk_elem *p, long i, float v) {
#if RK_DT == 0
    p[i] = v;
#elif RK_DT == 1
    vstore_half_rte(v, 0, p + i);
#else
    p[i] = rk_float_to_bf16(v);
#endif
}
