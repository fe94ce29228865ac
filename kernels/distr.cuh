// Box-Muller, Marsaglia-Tsang Gamma, Beta (linear or log space), Gumbel: the device twins of src/twin/distr/*.rs, with the
// same block/word consumption and the same arithmetic order. Built with --fmad=false (no contraction, as
// in Rust); every transcendental is from fmath.cuh (the twin of src/twin/fmath.rs, IEEE + - * / and
// correctly rounded sqrtf only, never libdevice's logf/expf/sinf or the __ intrinsics), so results agree
// with the CPU bit for bit.
#pragma once
#include "abi.cuh"
#include "philox.cuh"
#include "fmath.cuh"


// Box-Muller's pair times sqrt(q), with one square root (src/twin/distr/normal.rs box_muller_scaled).
__device__ __forceinline__ void box_muller_scaled(uint32_t w0, uint32_t w1, float q, float* x0, float* x1) {
    const float s = sqrtf(-2.0f * bots_ln(u01(w0)) * q);
    float sn, cs;
    bots_sincos_2pi(u01(w1), &sn, &cs);
    *x0 = s * cs;
    *x1 = s * sn;
}

// The Marsaglia-Tsang pieces of src/twin/distr/gamma.rs (mt_constants, mt_squeeze, mt_exact, mt_value), same
// order. Constants: d = a - 1/3 and q = c^2 = 1/(9d), a = shape (or shape + 1 below 1, the boost).
__device__ __forceinline__ void mt_constants(float shape, float* d, float* q) {
    const float a = shape < 1.0f ? shape + 1.0f : shape;
    *d = a - 1.0f / 3.0f;
    *q = 1.0f / (9.0f * *d);
}

// Squeeze: u < 1 - k d x^4 (k = 3/4, 3/2 below 0; never below -1/2) implies the exact test.
__device__ __forceinline__ bool mt_squeeze(float d, float x, float u) {
    const float x2 = x * x;
    const float k = x < 0.0f ? 1.5f : 0.75f;
    return (x >= -0.5f) & (u < 1.0f - k * d * (x2 * x2));
}

__device__ __forceinline__ bool mt_exact(float d, float x, float u) {
    const float l = 3.0f * bots_ln1p(x);
    return bots_ln(u) < d * (l - 3.0f * x + 1.5f * x * x - x * x * x);
}

// d (1 + x)^3, the value of an accepted draw, clamped to f32::MAX (src/twin/distr/gamma.rs mt_value).
__device__ __forceinline__ float mt_value(float d, float x) {
    const float y = 1.0f + x;
    const float v = d * (y * y * y);
    const float f32_max = 3.40282347e38f;  // f32::MAX; the select is Rust's f32::min (NaN gives the max)
    return v < f32_max ? v : f32_max;
}

// G ~ Gamma(a), a = shape (or shape + 1 below 1), linear (src/twin/distr/gamma.rs sample_gamma_mt: blocks 1..
// hold two attempts each; d if every block rejects).
__device__ __forceinline__ float sample_gamma_mt(float shape, const TaskStream& st, uint32_t purpose) {
    float d, q;
    mt_constants(shape, &d, &q);  // q = c^2: x = c z comes from box_muller_scaled
    for (uint32_t blk = 1; blk <= BOTS_MAX_GAMMA_BLOCKS; ++blk) {
        const uint4 w = st.block(purpose, blk);
        float xs[2];
        box_muller_scaled(w.x, w.y, q, &xs[0], &xs[1]);
        const uint32_t us[2] = {w.z, w.w};
#pragma unroll
        for (int j = 0; j < 2; ++j) {
            const float x = xs[j];
            if (x <= -1.0f) continue;
            const float u = u01(us[j]);
            if (mt_squeeze(d, x, u) || mt_exact(d, x, u)) return mt_value(d, x);
        }
    }
    // Out of blocks (probability below 0.05^128): the mode-like value d keeps the work bounded.
    return d;
}

// ln G(shape) from ln G(shape + 1) below 1: + ln(U)/shape, U from block 0 word 0 (gamma_boost).
__device__ __forceinline__ float gamma_boost(float shape, float log_g, const TaskStream& st, uint32_t purpose) {
    if (shape < 1.0f) {
        const uint4 w = st.block(purpose, 0);
        return log_g + bots_ln(u01(w.x)) / shape;
    }
    return log_g;
}

// src/twin/distr/beta.rs sample_beta: 1 / (1 + G_b / G_a) when both shapes are at least 1, else in log space
// (boosted Gammas), 1 / (1 + exp(ln G_b - ln G_a)).
// Whether the draw is in linear space: both shapes at least 1, neither Gamma boosted (beta_in_linear_space).
__device__ __forceinline__ bool beta_in_linear_space(float alpha, float beta) {
    return alpha >= 1.0f && beta >= 1.0f;
}

__device__ __forceinline__ float sample_beta(float alpha, float beta, const TaskStream& st) {
    const float ga = sample_gamma_mt(alpha, st, PURPOSE_GAMMA_ALPHA);
    const float gb = sample_gamma_mt(beta, st, PURPOSE_GAMMA_BETA);
    if (beta_in_linear_space(alpha, beta)) return 1.0f / (1.0f + gb / ga);
    const float la = gamma_boost(alpha, bots_ln(ga), st, PURPOSE_GAMMA_ALPHA);
    const float lb = gamma_boost(beta, bots_ln(gb), st, PURPOSE_GAMMA_BETA);
    return 1.0f / (1.0f + bots_exp(lb - la));
}

__device__ __forceinline__ float sample_gumbel(const TaskStream& st) {
    const uint4 w = st.block(PURPOSE_GUMBEL, 0);
    return -bots_ln(-bots_ln(u01(w.x)));
}
