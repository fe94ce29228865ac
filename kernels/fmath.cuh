// Bit-reproducible f32 ln, ln1p, exp and sincos(2*pi*u): the device twin of src/twin/fmath.rs, written
// expression for expression the same (same constants, same operation order), from IEEE + - * / (correctly
// rounded with nvcc's defaults -prec-div=true; built with --fmad=false so nothing is contracted), integer
// and bit operations, comparisons and selects only. So GPU and CPU get the same bits, and the host
// emulator (scripts/emu) checks the device arithmetic exactly. Accuracy: <= 2 ulp (measured <= 1.31 ulp;
// see src/twin/fmath.rs and docs/BENCHMARKS.md).
#pragma once
#include <stdint.h>

#ifdef BOTS_HOST_EMU
#include <cstring>
__device__ __forceinline__ uint32_t bots_f2u(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
__device__ __forceinline__ float bots_u2f(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
#else
__device__ __forceinline__ uint32_t bots_f2u(float f) { return __float_as_uint(f); }
__device__ __forceinline__ float bots_u2f(uint32_t u) { return __uint_as_float(u); }
#endif

#define BOTS_F32_INF bots_u2f(0x7f800000u)
#define BOTS_F32_NAN bots_u2f(0x7fc00000u)

#define BOTS_LN2_HI 6.931381226e-1f
#define BOTS_LN2_LO 9.058000614e-6f
#define BOTS_LG1 6.666666269e-1f
#define BOTS_LG2 4.000097215e-1f
#define BOTS_LG3 2.849878669e-1f
#define BOTS_LG4 2.427907884e-1f

__device__ __forceinline__ float bots_log_core(float f, float hfsq) {
    const float s = f / (2.0f + f);
    const float z = s * s;
    const float w = z * z;
    const float t1 = w * (BOTS_LG2 + w * BOTS_LG4);
    const float t2 = z * (BOTS_LG1 + w * BOTS_LG3);
    const float r = t2 + t1;
    return s * (hfsq + r);
}

// ln(xs) + kb ln 2 for a positive normal xs (fmath.rs ln_reduced: the shared body of bots_ln and bots_ln_normal).
__device__ __forceinline__ float bots_ln_reduced(float xs, int32_t kb) {
    const uint32_t ix = bots_f2u(xs) + (0x3f800000u - 0x3f3504f3u);
    const int32_t k = kb + (int32_t)(ix >> 23) - 0x7f;
    const float m = bots_u2f((ix & 0x007fffffu) + 0x3f3504f3u);
    const float f = m - 1.0f;
    const float hfsq = 0.5f * f * f;
    const float dk = (float)k;
    return bots_log_core(f, hfsq) + dk * BOTS_LN2_LO - hfsq + f + dk * BOTS_LN2_HI;
}

__device__ __forceinline__ float bots_ln(float x) {
    const bool sub = bots_f2u(x) < 0x00800000u;
    const float xs = sub ? x * 33554432.0f : x;
    float y = bots_ln_reduced(xs, sub ? -25 : 0);
    y = (x == BOTS_F32_INF) ? x : y;
    y = (x == 0.0f) ? -BOTS_F32_INF : y;
    return (x < 0.0f || x != x) ? BOTS_F32_NAN : y;
}

// bots_ln for a positive normal finite x, bit for bit, without the selects for the other cases (fmath.rs
// ln_normal): every uniform of u01, every Gamma value, every -ln of a uniform, where the samplers call it.
__device__ __forceinline__ float bots_ln_normal(float x) { return bots_ln_reduced(x, 0); }

// The shared body of bots_ln1p (GENERAL: any x) and bots_ln1p_moderate (x in (-1, 2^24)) (fmath.rs ln_1p_body).
template <bool GENERAL>
__device__ __forceinline__ float bots_ln1p_body(float x) {
    const uint32_t hx = bots_f2u(x);
    const float u = 1.0f + x;
    const uint32_t iu = bots_f2u(u) + (0x3f800000u - 0x3f3504f3u);
    const int32_t ku = (int32_t)(iu >> 23) - 0x7f;
    float c = (ku >= 2) ? 1.0f - (u - x) : x - (u - 1.0f);
    c = c / u;
    c = (!GENERAL || ku < 25) ? c : 0.0f;
    const float fu = bots_u2f((iu & 0x007fffffu) + 0x3f3504f3u) - 1.0f;
    const bool near = hx < 0x3ed413d0u || (hx >= 0x80000000u && hx <= 0xbe95f619u);
    const int32_t k = near ? 0 : ku;
    c = near ? 0.0f : c;
    const float f = near ? x : fu;
    const float hfsq = 0.5f * f * f;
    const float dk = (float)k;
    const float y = bots_log_core(f, hfsq) + (dk * BOTS_LN2_LO + c) - hfsq + f + dk * BOTS_LN2_HI;
    return ((hx << 1) < (0x33800000u << 1)) ? x : y;
}

__device__ __forceinline__ float bots_ln1p(float x) {
    float y = bots_ln1p_body<true>(x);
    y = (x == BOTS_F32_INF) ? x : y;
    y = (x == -1.0f) ? -BOTS_F32_INF : y;
    return (x < -1.0f || x != x) ? BOTS_F32_NAN : y;
}

// bots_ln1p for -1 < x < 2^24, bit for bit, without the selects for the other cases (fmath.rs
// ln_1p_moderate): the Marsaglia-Tsang argument x = c z of the exact test.
__device__ __forceinline__ float bots_ln1p_moderate(float x) { return bots_ln1p_body<false>(x); }

#define BOTS_INV_LN2 1.442695022f
#define BOTS_E_LN2_HI 6.931457520e-1f
#define BOTS_E_LN2_LO 1.428606765e-6f
#define BOTS_P1 1.666666269e-1f
#define BOTS_P2 -2.766733291e-3f
#define BOTS_ROUND 12582912.0f
#define BOTS_ROUND_BITS 0x4b400000

__device__ __forceinline__ float bots_pow2i(int32_t k) {
    return bots_u2f((uint32_t)(k + 127) << 23);
}

__device__ __forceinline__ float bots_exp(float x) {
    float xc = (x > 100.0f) ? 100.0f : x;
    xc = (xc < -110.0f) ? -110.0f : xc;
    const float t = xc * BOTS_INV_LN2 + BOTS_ROUND;
    const int32_t k = (int32_t)(bots_f2u(t) - (uint32_t)BOTS_ROUND_BITS);
    const float kf = t - BOTS_ROUND;
    const float hi = xc - kf * BOTS_E_LN2_HI;
    const float lo = kf * BOTS_E_LN2_LO;
    const float r = hi - lo;
    const float rr = r * r;
    const float c = r - rr * (BOTS_P1 + rr * BOTS_P2);
    const float y = 1.0f + (r * c / (2.0f - c) - lo + hi);
    const int32_t k1 = k >> 1;
    const int32_t k2 = k - k1;
    return y * bots_pow2i(k1) * bots_pow2i(k2);
}

#define BOTS_TAU_HI 6.28125f
#define BOTS_TAU_LO 1.935307169e-3f
#define BOTS_S1 -1.666665461e-1f
#define BOTS_S2 8.332160874e-3f
#define BOTS_S3 -1.951529589e-4f
#define BOTS_C1 4.166664568e-2f
#define BOTS_C2 -1.388731625e-3f
#define BOTS_C3 2.443315712e-5f

// (sin 2*pi*u, cos 2*pi*u) for u in [0, 1).
__device__ __forceinline__ void bots_sincos_2pi(float u, float* sn_out, float* cs_out) {
    const float t = u * 4.0f + BOTS_ROUND;
    int32_t q = (int32_t)(bots_f2u(t) - (uint32_t)BOTS_ROUND_BITS);
    const float r = u - (t - BOTS_ROUND) * 0.25f;
    const float r_hi = bots_u2f(bots_f2u(r) & 0xfffff000u);
    const float r_lo = r - r_hi;
    const float th_hi = r_hi * BOTS_TAU_HI;
    const float th_lo = r_lo * BOTS_TAU_HI + r * BOTS_TAU_LO;
    const float th = th_hi + th_lo;
    const float z = th * th;
    const float s = th_hi + (th_lo + th * z * (BOTS_S1 + z * (BOTS_S2 + z * BOTS_S3)));
    const float c = z * z * (BOTS_C1 + z * (BOTS_C2 + z * BOTS_C3)) - 0.5f * z + 1.0f;
    q = q & 3;
    float sn = (q & 1) ? c : s;
    float cs = (q & 1) ? s : c;
    sn = (q >= 2) ? -sn : sn;
    cs = (q == 1 || q == 2) ? -cs : cs;
    *sn_out = sn;
    *cs_out = cs;
}

// ---------------------------------------------------------------------------------------------------
// Fast mode (KernelMode::Fast, the `*_fast` kernel entries only): the hardware's approximate functions,
// used by distr.cuh's fast draws and nowhere in the exact entries. On the GPU they are the CUDA
// intrinsics (MUFU instructions: __logf and __expf absolute error <= 2^-21.41 on [0.5, 2] and about 2 ulp
// relative elsewhere, __sincosf <= 2^-21.41 absolute on [-pi, pi], rsqrtf and rcp.approx <= 1 ulp-ish);
// in the host emulators, cuda_shim.h's stand-ins (libm perturbed by the documented error). Nothing here
// is bit-reproducible with the CPU; the fast draws keep the distributions (docs: KernelMode).
// On the GPU the .ftz forms (one MUFU instruction each, no subnormal fix-up): every operand the fast draws
// pass is 0 or normal (uniforms >= 2^-24, 1 + x >= 2^-24 in an attempt that can accept, Gamma values >=
// d (2^-24)^3, 9d >= 6), and a subnormal result is flushed (an exp or a reciprocal below 2^-126, where the
// Beta draw is 0 or 1 anyway). The one other operand: 1 + x <= 0 of an attempt outside the support
// (mt_attempt_fast), whose logarithm is NaN or -inf, and which therefore rejects.
#ifdef BOTS_HOST_EMU
__device__ __forceinline__ float bots_rcp_approx(float x) { return bots_emu_rcp_approx(x); }
__device__ __forceinline__ float bots_ln_approx(float x) { return __logf(x); }
__device__ __forceinline__ float bots_exp_approx(float x) { return __expf(x); }
__device__ __forceinline__ float bots_rsqrt_approx(float x) { return rsqrtf(x); }
__device__ __forceinline__ void bots_sincos_approx(float x, float* s, float* c) { __sincosf(x, s, c); }
#else
// 1/x (rcp.approx: max error 1 ulp).
__device__ __forceinline__ float bots_rcp_approx(float x) {
    float r;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
    return r;
}
// ln x = lg2(x) ln 2: __logf's arithmetic (absolute error <= 2^-21.41 on [0.5, 2], else ~2 ulp relative).
__device__ __forceinline__ float bots_ln_approx(float x) {
    float r;
    asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
    return r * 0.693147182f;
}
// e^x = 2^(x log2 e): __expf's arithmetic (max error 2 + floor(|1.16 x|) ulp, CUDA's bound).
__device__ __forceinline__ float bots_exp_approx(float x) {
    float r;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x * 1.44269502f));
    return r;
}
// 1/sqrt(x) (rsqrt.approx: max relative error about 2^-22.9).
__device__ __forceinline__ float bots_rsqrt_approx(float x) {
    float r;
    asm("rsqrt.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
    return r;
}
// sin x, cos x for x in [-pi, pi] (sin/cos.approx: absolute error <= 2^-21.41 there), as __sincosf.
__device__ __forceinline__ void bots_sincos_approx(float x, float* s, float* c) {
    asm("sin.approx.ftz.f32 %0, %1;" : "=f"(*s) : "f"(x));
    asm("cos.approx.ftz.f32 %0, %1;" : "=f"(*c) : "f"(x));
}
#endif

// sqrt(x) for x >= 0 as x * rsqrt(x) (0 for x = 0, where rsqrt is inf).
__device__ __forceinline__ float bots_sqrt_approx(float x) { return x > 0.0f ? x * bots_rsqrt_approx(x) : 0.0f; }

// -ln(u) for u in (0, 1), an Exp(1) variate with its relative accuracy kept near u = 1 (where __logf's
// absolute error would swamp it): 1 - u is exact there (Sterbenz) and -ln(1 - v) = v + v^2/2 + v^3/3 +
// v^4/4 (relative error < v^4/5 <= 3e-6 for v < 1/16); elsewhere -__logf(u) (relative error below 6e-6).
__device__ __forceinline__ float bots_neg_ln_approx(float u) {
    const float v = 1.0f - u;
    const float series = v * __fmaf_rn(v, __fmaf_rn(v, __fmaf_rn(v, 0.25f, 1.0f / 3.0f), 0.5f), 1.0f);
    return v < 0.0625f ? series : -bots_ln_approx(u);
}
