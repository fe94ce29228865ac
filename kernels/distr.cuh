// Box-Muller, Marsaglia-Tsang Gamma, Beta (linear or log space), Gumbel: the device twins of src/twin/distr/*.rs, with the
// same block/word consumption and the same arithmetic order. Built with --fmad=false (no contraction, as
// in Rust); every transcendental is from fmath.cuh (the twin of src/twin/fmath.rs, IEEE + - * / and
// correctly rounded sqrtf only, never libdevice's logf/expf/sinf or the __ intrinsics), so results agree
// with the CPU bit for bit. The fast draws at the end (KernelMode::Fast only) are the exception.
#pragma once
#include "abi.cuh"
#include "philox.cuh"
#include "fmath.cuh"


// Box-Muller's pair with a scale for each value (src/twin/distr/normal.rs box_muller_scaled_pair): each the
// bits box_muller_scaled gives for that value with its own q; the logarithm and sincos once.
__device__ __forceinline__ void box_muller_scaled_pair(uint32_t w0, uint32_t w1, float qa, float qb, float* xa, float* xb) {
    const float r = -2.0f * bots_ln_normal(u01(w0));
    float sn, cs;
    bots_sincos_2pi(u01(w1), &sn, &cs);
    *xa = sqrtf(r * qa) * cs;
    *xb = sqrtf(r * qb) * sn;
}

// Box-Muller's pair times sqrt(q), with one square root (src/twin/distr/normal.rs box_muller_scaled).
__device__ __forceinline__ void box_muller_scaled(uint32_t w0, uint32_t w1, float q, float* x0, float* x1) {
    const float s = sqrtf(-2.0f * bots_ln_normal(u01(w0)) * q);
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
    const float l = 3.0f * bots_ln1p_moderate(x);
    return bots_ln_normal(u) < d * (l - 3.0f * x + 1.5f * x * x - x * x * x);
}

// d (1 + x)^3, the value of an accepted draw, clamped to f32::MAX (src/twin/distr/gamma.rs mt_value).
__device__ __forceinline__ float mt_value(float d, float x) {
    const float y = 1.0f + x;
    const float v = d * (y * y * y);
    const float f32_max = 3.40282347e38f;  // f32::MAX; the select is Rust's f32::min (NaN gives the max)
    return v < f32_max ? v : f32_max;
}

// G ~ Gamma(a), a = shape (or shape + 1 below 1), linear (src/twin/distr/gamma.rs sample_gamma_mt: blocks 1..
// hold two attempts each; d if every block rejects). In a Beta draw, the Gamma whose first attempt (from
// the shared block of PURPOSE_FIRST) rejected.
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

// One Gamma's first attempt of a Beta draw (src/twin/distr/gamma.rs mt_attempt): true and *g = d (1 + x)^3
// when accepted. FIRST: the squeeze only (false also when the exact test would have decided).
template <bool FIRST>
__device__ __forceinline__ bool mt_first_attempt(float d, float x, uint32_t uw, float* g) {
    if (x <= -1.0f) return false;
    const float u = u01(uw);
    if (mt_squeeze(d, x, u) || (!FIRST && mt_exact(d, x, u))) {
        *g = mt_value(d, x);
        return true;
    }
    return false;
}

// ln G(shape) from ln G(shape + 1) below 1: + ln(U)/shape, U from block 0 word 0 (gamma_boost).
__device__ __forceinline__ float gamma_boost(float shape, float log_g, const TaskStream& st, uint32_t purpose) {
    if (shape < 1.0f) {
        const uint4 w = st.block(purpose, 0);
        return log_g + bots_ln_normal(u01(w.x)) / shape;
    }
    return log_g;
}

// src/twin/distr/beta.rs sample_beta: 1 / (1 + G_b / G_a) when both shapes are at least 1, else in log space
// (boosted Gammas), 1 / (1 + exp(ln G_b - ln G_a)).
// Whether the draw is in linear space: both shapes at least 1, neither Gamma boosted (beta_in_linear_space).
__device__ __forceinline__ bool beta_in_linear_space(float alpha, float beta) {
    return alpha >= 1.0f && beta >= 1.0f;
}

// src/twin/distr/beta.rs sample_beta: both Gammas' first attempts from block 0 of PURPOSE_FIRST (one
// Box-Muller pair, z_alpha = r cos and z_beta = r sin, each scaled by its own c; w.z, w.w their
// uniforms); a Gamma whose first attempt rejects is drawn whole from its own purpose (sample_gamma_mt,
// blocks 1..). *out and true. FIRST: the first attempts only, accepted by the squeeze: false when either
// needs more (its exact test, or another attempt), which the caller finishes later with FIRST = false
// (the same words from the start: the same bits).
template <bool FIRST>
__device__ __forceinline__ bool sample_beta(float alpha, float beta, const TaskStream& st, float* out) {
    float da, qa, db, qb;
    mt_constants(alpha, &da, &qa);
    mt_constants(beta, &db, &qb);
    const uint4 w = st.block(PURPOSE_FIRST, 0);
    float xa, xb;
    box_muller_scaled_pair(w.x, w.y, qa, qb, &xa, &xb);
    float ga, gb;
    if (!mt_first_attempt<FIRST>(da, xa, w.z, &ga)) {
        if (FIRST) return false;
        ga = sample_gamma_mt(alpha, st, PURPOSE_GAMMA_ALPHA);
    }
    if (!mt_first_attempt<FIRST>(db, xb, w.w, &gb)) {
        if (FIRST) return false;
        gb = sample_gamma_mt(beta, st, PURPOSE_GAMMA_BETA);
    }
    if (beta_in_linear_space(alpha, beta)) {
        *out = 1.0f / (1.0f + gb / ga);
        return true;
    }
    const float la = gamma_boost(alpha, bots_ln_normal(ga), st, PURPOSE_GAMMA_ALPHA);
    const float lb = gamma_boost(beta, bots_ln_normal(gb), st, PURPOSE_GAMMA_BETA);
    *out = 1.0f / (1.0f + bots_exp(lb - la));
    return true;
}

__device__ __forceinline__ float sample_gumbel(const TaskStream& st) {
    const uint4 w = st.block(PURPOSE_GUMBEL, 0);
    return -bots_ln_normal(-bots_ln_normal(u01(w.x)));
}

// ---------------------------------------------------------------------------------------------------
// Fast mode (KernelMode::Fast: update_sample_score_fast and radix_filter_fast only). The same
// distributions as above, not the same bits: explicit FMA, the approximate functions of fmath.cuh's fast
// section (lg2, ex2, sin, cos, rsqrt and rcp .approx: __logf, __expf, __sincosf, rsqrtf; __fdividef), and one
// Philox block for the first attempt of both Gammas. Contract (docs of bots::KernelMode): every draw has the distribution of the
// exact draw up to the approximations' error, far below what a statistical test of 10^6 draws can see.
//
// Words: block 0 of PURPOSE_FIRST gives (w.x, w.y) -> one Box-Muller pair (z_alpha = r cos, z_beta = r sin:
// independent standard normals), w.z -> u_alpha, w.w -> u_beta. A Gamma whose first attempt rejects goes
// on with the attempt blocks 1.. of its exact-mode purpose (two attempts each, as sample_gamma_mt), whose
// words are independent of PURPOSE_FIRST's; below shape 1 the boost's uniform is block 0 word 0 of the
// exact-mode purpose, as gamma_boost. Every attempt is a fresh independent (z, u) pair, so rejection
// sampling stays exact in distribution whichever stream an attempt came from.
//
// Marsaglia-Tsang with approximate functions. The squeeze u < 1 - k d x^4 is a sufficient condition for
// acceptance, computed with ordinary rounding (an ulp-level bias at the boundary). The exact test
// ln u < d (3 ln(1 + x) - 3x + 1.5 x^2 - x^3) uses __logf twice: its threshold is off by at most
// delta = (3d + 1) 2^-21.41 + 2^-24 (3d) (lg2.approx's absolute error on [0.5, 2], the rounding of 1 + x),
// and since ln U has density e^t <= 1, an attempt's acceptance changes by at most min(delta, P(the exact
// test is reached | x) = k d x^4). Over z ~ N(0, 1) with x = z / sqrt(9d): E[min(1.3e-6 d, (1.5 z^4 / 81) / d)]
// <= about 1e-4 at its worst (d near 100), 2e-6 at d = 2/3 and 4e-6 at d = 10^4: a total-variation error
// of the accepted draw below 1e-4, against a KS critical value of 2e-3 at 10^6 draws.

// d = a - 1/3 and c = 1/sqrt(9d) (a = shape, or shape + 1 below 1): x = c z.
__device__ __forceinline__ void mt_constants_fast(float shape, float* d, float* c) {
    const float a = shape < 1.0f ? shape + 1.0f : shape;
    *d = a - 1.0f / 3.0f;
    *c = bots_rsqrt_approx(9.0f * *d);
}

// One Marsaglia-Tsang attempt on the normal z and uniform u: true and *g = d (1 + x)^3 when accepted.
// x <= -1 (1 + x <= 0, outside the support) rejects without a test of its own: the squeeze needs
// x >= -1/2, and the exact test's ln(1 + x) is NaN (lg2.approx of a negative) or -inf (of 0, or of a
// subnormal flushed to 0), so its comparison is false.
__device__ __forceinline__ bool mt_attempt_fast(float d, float c, float z, float u, float* g) {
    const float x = c * z;
    const float x2 = x * x;
    const float k = x < 0.0f ? 1.5f : 0.75f;
    bool ok = (x >= -0.5f) & (u < __fmaf_rn(-k * d, x2 * x2, 1.0f));
    if (!ok) ok = bots_ln_approx(u) < d * __fmaf_rn(x, __fmaf_rn(x, 1.5f - x, -3.0f), 3.0f * bots_ln_approx(1.0f + x));
    if (ok) {
        const float y = 1.0f + x;
        const float v = d * (y * y * y);
        *g = v < 3.40282347e38f ? v : 3.40282347e38f;  // as mt_value
    }
    return ok;
}

// Box-Muller's pair for the words (w0, w1): r cos(theta), r sin(theta), theta uniform on (-pi, pi) (the
// range of __sincosf's accuracy; the pair's law is the same as on (0, 2 pi)).
__device__ __forceinline__ void box_muller_fast(uint32_t w0, uint32_t w1, float* z0, float* z1) {
    const float r = bots_sqrt_approx(-2.0f * bots_ln_approx(u01(w0)));
    float sn, cs;
    bots_sincos_approx(__fmaf_rn(u01(w1), 6.28318530718f, -3.14159265359f), &sn, &cs);
    *z0 = r * cs;
    *z1 = r * sn;
}

// ln G(shape) from ln G(shape + 1) below 1 (gamma_boost's uniform): - (-ln U) / shape.
__device__ __forceinline__ float gamma_boost_fast(float shape, float log_g, const TaskStream& st, uint32_t purpose) {
    if (shape < 1.0f) return log_g - __fdividef(bots_neg_ln_approx(u01(st.block(purpose, 0).x)), shape);
    return log_g;
}

// Beta(alpha, beta) as sample_beta, fast: the first attempts of both Gammas from one block, the retries of
// either in one loop (a warp runs the loop as often as its worst lane needs a block, not once per Gamma).
// *out and true; FIRST: the first attempts only, false when either rejects (the caller finishes the
// draw later with FIRST = false, which starts over on the same words).
template <bool FIRST>
__device__ __forceinline__ bool sample_beta_fast(float alpha, float beta, const TaskStream& st, float* out) {
    float da, ca, db, cb;
    mt_constants_fast(alpha, &da, &ca);
    mt_constants_fast(beta, &db, &cb);
    const uint4 w = st.block(PURPOSE_FIRST, 0);
    float za, zb;
    box_muller_fast(w.x, w.y, &za, &zb);
    float ga = da, gb = db;  // d: the value when every block rejects (as sample_gamma_mt)
    bool need_a = !mt_attempt_fast(da, ca, za, u01(w.z), &ga);
    bool need_b = !mt_attempt_fast(db, cb, zb, u01(w.w), &gb);
    if (FIRST && (need_a || need_b)) return false;
    uint32_t blk_a = 1, blk_b = 1;
    while (need_a || need_b) {
        const bool for_a = need_a;
        const uint32_t blk = for_a ? blk_a : blk_b;
        if (blk > BOTS_MAX_GAMMA_BLOCKS) {  // out of blocks (probability below 0.05^128): keep d
            if (for_a) need_a = false; else need_b = false;
            continue;
        }
        if (for_a) ++blk_a; else ++blk_b;
        const float d = for_a ? da : db, c = for_a ? ca : cb;
        const uint4 v = st.block(for_a ? PURPOSE_GAMMA_ALPHA : PURPOSE_GAMMA_BETA, blk);
        float z0, z1, g;
        box_muller_fast(v.x, v.y, &z0, &z1);
        bool ok = mt_attempt_fast(d, c, z0, u01(v.z), &g);
        if (!ok) ok = mt_attempt_fast(d, c, z1, u01(v.w), &g);  // the block's second attempt
        if (ok) {
            if (for_a) { ga = g; need_a = false; } else { gb = g; need_b = false; }
        }
    }
    // The approximate reciprocal of a value just above 1 may come out a little above 1: clamped to [0, 1].
    if (beta_in_linear_space(alpha, beta)) {
        *out = fminf(bots_rcp_approx(1.0f + gb * bots_rcp_approx(ga)), 1.0f);
        return true;
    }
    const float la = gamma_boost_fast(alpha, bots_ln_approx(ga), st, PURPOSE_GAMMA_ALPHA);
    const float lb = gamma_boost_fast(beta, bots_ln_approx(gb), st, PURPOSE_GAMMA_BETA);
    *out = fminf(bots_rcp_approx(1.0f + bots_exp_approx(lb - la)), 1.0f);
    return true;
}

// Gumbel noise, fast: -ln(-ln U), the inner -ln accurate near U = 1 (the Gumbel's upper tail, which decides a
// Gumbel-top-k selection).
__device__ __forceinline__ float sample_gumbel_fast(const TaskStream& st) {
    const uint4 w = st.block(PURPOSE_GUMBEL, 0);
    return -bots_ln_approx(bots_neg_ln_approx(u01(w.x)));
}
