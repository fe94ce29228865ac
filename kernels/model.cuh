// The model formulas (layouts and constants: abi.cuh, generated from src/abi.rs): the
// device twins of src/select (score_task, score_key), src/evidence (batch_row, interpolate) and
// src/update (update_task, apply_pending_task).
#pragma once
#include "abi.cuh"
#include "distr.cuh"

// f16 -> f32 (exact), without cuda_fp16.h (which needs the CCCL headers). F16-form features are the raw
// bits of IEEE binary16 (Rust half::f16).
__device__ __forceinline__ float half_to_float(uint16_t h) {
#ifdef BOTS_HOST_EMU
    return bots_emu_half_to_float(h);  // scripts/emu: the kernels compiled for the host
#else
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#endif
}

// Feature k of one column in the pool's form (BOTS_FEATURES_* of abi.cuh, from src/abi.rs): the value
// pool::Features::get returns. The host uploads each column in the form it passes, n values long (any
// other form reads nothing and gives 0).
__device__ __forceinline__ float load_feature(const void* col, uint32_t form, unsigned long long k) {
    if (form == BOTS_FEATURES_F32) return ((const float*)col)[k];
    if (form == BOTS_FEATURES_F16) return half_to_float(((const uint16_t*)col)[k]);
    return 0.0f;
}

// True when the kernels have features to read: a known form and both columns.
__device__ __forceinline__ bool has_features(uint32_t form, const void* fw, const void* fs) {
    return (form == BOTS_FEATURES_F16 || form == BOTS_FEATURES_F32) && fw != nullptr && fs != nullptr;
}

__device__ __forceinline__ float score_task(const Params& p, float alpha, float beta, unsigned long long step, uint32_t task) {
    const TaskStream st(p.seed, step, task);
    const float p_hat = p.do_sample ? sample_beta(alpha, beta, st) : alpha / (alpha + beta);
    const float s = -fabsf(p.target - p_hat);
    if (p.tau > 0.0f) return s / p.tau + sample_gumbel(st);
    return s;
}

__device__ __forceinline__ unsigned long long score_key(float score, uint32_t task) {
    if (score == 0.0f) score = 0.0f;
    const uint32_t bits = __float_as_uint(score);
    const uint32_t ordered = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
    return ((unsigned long long)ordered << 32) | (unsigned long long)(~task);
}

__device__ __forceinline__ float interpolate(float mu, float fw, float fs) {
    float v = fw + mu * (fs - fw);
    if (v < 0.0f) v = 0.0f;
    if (v > 1.0f) v = 1.0f;
    return v;
}

__device__ __forceinline__ void update_task(float alpha, float beta, float alpha0, float beta0, float lambda, float rho,
                                            float s_bar, float f_bar, float n, float p, float* out_a, float* out_b) {
    const float keep = 1.0f - lambda;
    const float expl = 1.0f - rho;
    *out_a = keep * alpha + lambda * alpha0 + expl * s_bar + rho * n * p;
    *out_b = keep * beta + lambda * beta0 + expl * f_bar + rho * n * (1.0f - p);
}

__device__ __forceinline__ void task_prior(const Params& p, const float* alpha0, const float* beta0,
                                           unsigned long long k, float* a0, float* b0) {
    if (alpha0 != nullptr && beta0 != nullptr) {
        *a0 = alpha0[k];
        *b0 = beta0[k];
    } else {
        *a0 = p.alpha0;
        *b0 = p.beta0;
    }
}

// The pool-wide part of a pending update for task k (apply_pending_task), on its alpha and beta already
// loaded into `a` and `b`: stores the new values and leaves them in `a`, `b`, so a caller that goes on
// with the task (update_sample_score) does not load what it just stored.
__device__ __forceinline__ void apply_pending_task(const Params& p, float* __restrict__ alpha, float* __restrict__ beta,
                                                   const float* alpha0, const float* beta0, const void* fw,
                                                   const void* fs, float mu, uint32_t mu_set, float rho,
                                                   unsigned long long k, float& a, float& b) {
    if (a < 0.0f) {
        a = -a;
        alpha[k] = a;
        return;
    }
    float pt = 0.0f;
    if (has_features(p.feature_form, fw, fs) && mu_set)
        pt = interpolate(mu, load_feature(fw, p.feature_form, k), load_feature(fs, p.feature_form, k));
    float a0, b0;
    task_prior(p, alpha0, beta0, k, &a0, &b0);
    float na, nb;
    update_task(a, b, a0, b0, p.lambda, rho, 0.0f, 0.0f, p.m, pt, &na, &nb);
    a = na;
    b = nb;
    alpha[k] = na;
    beta[k] = nb;
}

// One reported outcome to (s_bar, f_bar, n, r), or an error code (batch_row). counts != 0: s/f counts.
__device__ __forceinline__ uint32_t batch_row(const float* rates, const float* succ, const float* fail, uint32_t counts,
                                              float m, unsigned long long i, float* s_bar, float* f_bar, float* n, float* r) {
    if (!counts) {
        const float x = rates[i];
        if (!(x >= 0.0f && x <= 1.0f)) return ERR_PASS_RATE;
        *s_bar = m * x;
        *f_bar = m * (1.0f - x);
        *n = m;
        *r = x;
        return 0;
    }
    const float s = succ[i], f = fail[i];
    if (!(isfinite(s) && isfinite(f))) return ERR_NOT_FINITE;
    if (s < 0.0f || f < 0.0f) return ERR_NEGATIVE;
    const float t = s + f;
    if (t <= 0.0f) return ERR_EMPTY;
    if (t > m) return ERR_TOO_MANY;
    *s_bar = s;
    *f_bar = f;
    *n = t;
    *r = s / t;
    return 0;
}

// Radix digits of the 64-bit keys, most significant first: 11, 11, 11, 11, 10, 10 bits.
// 53, 42, 31, 20, 10, 0: arithmetic, not a table (a runtime index into a local array costs stack).
__device__ __forceinline__ uint32_t radix_shift(int pass) {
    return pass < 4 ? 53u - 11u * (uint32_t)pass : 10u * (uint32_t)(5 - pass);
}
__device__ __forceinline__ uint32_t radix_bits(int pass) { return pass < 4 ? 11u : 10u; }
