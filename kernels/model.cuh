// The model formulas (layouts and constants: abi.cuh, generated from src/abi.rs): the
// device twins of src/select (score_task, score_key), src/evidence (batch_row, interpolate, segment, ladder_segment) and
// src/update (update_task, apply_pending_task) and src/neighbours (neighbour_sums, neighbour_scale).
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

// Feature k of column `col` in the pool's form (BOTS_FEATURES_* of abi.cuh, from src/abi.rs): the value
// pool::Features::value returns. `feat` holds the K columns back to back, n values each (column col at
// element col·n); the host uploads exactly K·n values in the form it passes and the callers keep
// col < K and k < n (any other form reads nothing and gives 0).
__device__ __forceinline__ float load_feature(const void* feat, uint32_t form, unsigned long long n, uint32_t col,
                                              unsigned long long k) {
    const unsigned long long i = (unsigned long long)col * n + k;
    if (form == BOTS_FEATURES_F32) return ((const float*)feat)[i];
    if (form == BOTS_FEATURES_F16) return half_to_float(((const uint16_t*)feat)[i]);
    return 0.0f;
}

// True when the kernels have features to read: a known form, 1 to BOTS_MAX_FEATURE_COLUMNS columns and
// the buffer.
__device__ __forceinline__ bool has_features(const Params& p, const void* feat) {
    return (p.feature_form == BOTS_FEATURES_F16 || p.feature_form == BOTS_FEATURES_F32) && p.n_features >= 1 &&
           p.n_features <= BOTS_MAX_FEATURE_COLUMNS && feat != nullptr;
}

// Where a mu falls on the ladder of K feature columns (evidence::Segment): the columns lo (BOTS_NO_COLUMN:
// the null model of K = 1, pass rate 0) and hi that every task interpolates between, at t.
struct Segment {
    uint32_t lo;
    uint32_t hi;
    float t;
};

// The segment of mu on K >= 1 columns (evidence::segment, the same comparisons): j = 0 below 1 (and for
// NaN), K - 2 from K - 1 on, else floor(mu); t = mu - j (exact). Always lo < hi < K, or lo = NO_COLUMN
// and hi = 0.
__device__ __forceinline__ Segment segment(float mu, uint32_t K) {
    if (K <= 1) return Segment{BOTS_NO_COLUMN, 0u, mu};
    const uint32_t last = K - 2;
    uint32_t j;
    if (mu >= (float)(K - 1)) {
        j = last;
    } else if (mu >= 1.0f) {
        j = (uint32_t)floorf(mu);  // in [1, K - 2]: 1 <= mu < K - 1
    } else {
        j = 0;  // mu < 1, or NaN
    }
    return Segment{j, j + 1, mu - (float)j};
}

// The segment e of the batch's ladder of K + 1 or K column sums `sums` (L >= 2 rungs, means sums·inv) that
// the batch mean pass rate r lies on (evidence::ladder_segment): the first segment whose two means bracket
// r, else the end segment nearer to r.
__device__ __forceinline__ uint32_t ladder_segment(double r, const double* sums, uint32_t L, double inv) {
    const uint32_t last = L - 2;
    for (uint32_t e = 0; e <= last; ++e) {
        const double a = sums[e] * inv, b = sums[e + 1] * inv;
        if (fmin(a, b) <= r && r <= fmax(a, b)) return e;
    }
    return fabs(r - sums[0] * inv) <= fabs(r - sums[last + 1] * inv) ? 0u : last;
}

// FAST: the fast draws of distr.cuh (the `*_fast` kernels, KernelMode::Fast); else the exact twin of
// select::score_task. The posterior mean (do_sample off) is the same division in both. *score and true;
// FIRST: the first try of the draws (sample_beta<true>, sample_beta_fast<true>), false when a draw needs
// more; score_task<FAST, false> of the same task then gives what this would have.
template <bool FAST, bool FIRST>
__device__ __forceinline__ bool score_task(const Params& p, float alpha, float beta, unsigned long long step, uint32_t task,
                                           float* score) {
    const TaskStream st(p.philox_keys, step, task);
    float p_hat;
    if (p.do_sample) {
        bool drawn;
        if constexpr (FAST) {
            drawn = sample_beta_fast<FIRST>(alpha, beta, st, &p_hat);
        } else {
            drawn = sample_beta<FIRST>(alpha, beta, st, &p_hat);
        }
        if (!drawn) return false;
    } else {
        p_hat = alpha / (alpha + beta);
    }
    const float s = -fabsf(p.target - p_hat);
    if (p.tau > 0.0f) {
        if constexpr (FAST) {
            *score = __fdividef(s, p.tau) + sample_gumbel_fast(st);
        } else {
            *score = s / p.tau + sample_gumbel(st);
        }
    } else {
        *score = s;
    }
    return true;
}

__device__ __forceinline__ unsigned long long score_key(float score, uint32_t task) {
    if (score == 0.0f) score = 0.0f;
    const uint32_t bits = __float_as_uint(score);
    const uint32_t ordered = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
    return ((unsigned long long)ordered << 32) | (unsigned long long)(~task);
}

// clip(lo + t·(hi - lo), 0, 1) (evidence::interpolate): on a segment's two columns at its t.
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

// The two feature columns that tasks interpolate between on a segment (pool::Features::pair), resolved
// once per launch rather than per task: `lo` and `hi` point at element 0 of the segment's columns in the
// pool's form (`lo` null for the null model of K = 1, value 0); form 0 when there is nothing to
// interpolate (no features, or mu not set: the rate is 0). The same elements as load_feature(feat, form,
// n, col, k) for k < n: column col starts at element col·n of the K·n the host uploads, and seg.lo,
// seg.hi < K.
struct SegmentColumns {
    const void* lo;
    const void* hi;
    uint32_t form;
    float t;
};

__device__ __forceinline__ SegmentColumns segment_columns(const Params& p, const void* feat, const Segment& seg,
                                                          uint32_t mu_set) {
    SegmentColumns c{nullptr, nullptr, 0u, seg.t};
    if (!(has_features(p, feat) && mu_set)) return c;
    const unsigned long long bytes = p.feature_form == BOTS_FEATURES_F16 ? 2ull : 4ull;
    const char* const base = (const char*)feat;
    c.form = p.feature_form;
    c.lo = seg.lo == BOTS_NO_COLUMN ? nullptr : base + (unsigned long long)seg.lo * p.n * bytes;
    c.hi = base + (unsigned long long)seg.hi * p.n * bytes;
    return c;
}

// Task k's predicted rate on the segment: interpolate(t, lo, hi) on its two feature values
// (evidence::interpolate), 0 without features. One warp-uniform test of the form for both loads;
// read-only loads (the features do not change during a launch).
__device__ __forceinline__ float segment_rate(const SegmentColumns& c, unsigned long long k) {
    float lo = 0.0f, hi;
    if (c.form == BOTS_FEATURES_F16) {
        if (c.lo != nullptr) {
            lo = half_to_float(__ldg((const unsigned short*)c.lo + k));
        }
        hi = half_to_float(__ldg((const unsigned short*)c.hi + k));
    } else if (c.form == BOTS_FEATURES_F32) {
        if (c.lo != nullptr) {
            lo = __ldg((const float*)c.lo + k);
        }
        hi = __ldg((const float*)c.hi + k);
    } else {
        return 0.0f;
    }
    return interpolate(c.t, lo, hi);
}

// The pool-wide part of a pending update for task k (apply_pending_task), on its alpha and beta already
// loaded into `a` and `b`: stores the new values and leaves them in `a`, `b`, so a caller that goes on
// with the task (update_sample_score) does not load what it just stored. `cols`: segment_columns of the
// pending mu (segment(mu, p.n_features)), resolved once per launch.
__device__ __forceinline__ void apply_pending_task(const Params& p, float* __restrict__ alpha, float* __restrict__ beta,
                                                   const float* alpha0, const float* beta0, const SegmentColumns& cols,
                                                   float rho, unsigned long long k, float& a, float& b) {
    if (a < 0.0f) {
        a = -a;
        alpha[k] = a;
        return;
    }
    const float pt = segment_rate(cols, k);
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

// ---------------------------------------------------------------------------------------------------
// Neighbour evidence (docs/EVIDENCE-SOURCES.md §2): the device twins of src/neighbours.rs
// (neighbour_sums, neighbour_scale) and the batch lookup the kernels use in place of the CPU's map.

// True when the pool has a neighbour graph to use: every buffer of it, k >= 1 and a batch lookup of a
// power of two slots. The host uploads exactly n·nbr_k row slots, n + 1 offsets, E = rev_off[n] reverse
// ids (each < n), n bits of claims, nbr_touched_cap touched slots and nbr_hash_slots lookup slots.
__device__ __forceinline__ bool has_graph(const Params& p, const Pool& d) {
    return p.nbr_k >= 1 && p.nbr_hash_slots != 0 && (p.nbr_hash_slots & (p.nbr_hash_slots - 1)) == 0 &&
           d.nbr_ids != nullptr && d.nbr_w != nullptr && d.rev_off != nullptr && d.rev_ids != nullptr &&
           d.claim != nullptr && d.touched != nullptr && d.batch_hash != nullptr;
}

// The first slot of a task in the batch lookup (murmur3's fmix32; `slots` a power of two).
__device__ __forceinline__ unsigned long long batch_hash_slot(uint32_t task, unsigned long long slots) {
    uint32_t h = task;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return (unsigned long long)h & (slots - 1);
}

// Enters (task, row) in the batch lookup (linear probing, at most `slots` probes). False when every slot
// is taken (the host sizes the table at twice the largest batch, so never for a batch it launches).
__device__ __forceinline__ bool batch_hash_insert(unsigned long long* hash, unsigned long long slots, uint32_t task,
                                                  uint32_t row) {
    const unsigned long long entry = ((unsigned long long)task << 32) | (unsigned long long)row;
    unsigned long long s = batch_hash_slot(task, slots);
    for (unsigned long long probe = 0; probe < slots; ++probe) {
        if (atomicCAS(&hash[s], (unsigned long long)BOTS_HASH_EMPTY, entry) == BOTS_HASH_EMPTY) return true;
        s = (s + 1) & (slots - 1);
    }
    return false;
}

// The batch row of `task`, or BOTS_HASH_EMPTY when it is not in the batch (at most `slots` probes).
__device__ __forceinline__ unsigned long long batch_lookup(const unsigned long long* hash, unsigned long long slots,
                                                           uint32_t task) {
    unsigned long long s = batch_hash_slot(task, slots);
    for (unsigned long long probe = 0; probe < slots; ++probe) {
        const unsigned long long e = hash[s];
        if (e == BOTS_HASH_EMPTY) break;
        if ((uint32_t)(e >> 32) == task) return e & 0xffffffffull;
        s = (s + 1) & (slots - 1);
    }
    return BOTS_HASH_EMPTY;
}

// One task's neighbour sums over the batch (neighbours::neighbour_sums): W = sum w, S = sum w·s_bar,
// F = sum w·f_bar over its out-neighbours that are in the batch, in row order, in f32 (no FMA:
// --fmad=false). Row i is nbr_ids/nbr_w[i·k .. i·k + k) (i < n, so in bounds); an empty slot ends it.
__device__ __forceinline__ void neighbour_sums(const Params& p, const Pool& d, const Batch& b, unsigned long long i,
                                               float* W, float* S, float* F) {
    const unsigned long long base = i * (unsigned long long)p.nbr_k;
    float w_sum = 0.0f, s_sum = 0.0f, f_sum = 0.0f;
    for (uint32_t slot = 0; slot < p.nbr_k; ++slot) {
        const unsigned long long c = base + slot;  // row order: the order of the sums
        const uint32_t j = d.nbr_ids[c];
        if (j == BOTS_NO_NEIGHBOUR) break;  // empty slots are last
        if ((unsigned long long)j >= p.n) continue;  // never: the host uploads checked rows
        const unsigned long long r = batch_lookup(d.batch_hash, p.nbr_hash_slots, j);
        if (r >= b.len) continue;  // not in the batch
        float sb, fb, nn, rr;
        if (batch_row(b.rates, b.succ, b.fail, b.counts, p.m, r, &sb, &fb, &nn, &rr)) continue;  // valid: never
        const float w = d.nbr_w[c];
        w_sum += w;
        s_sum += w * sb;
        f_sum += w * fb;
    }
    *W = w_sum;
    *S = s_sum;
    *F = f_sum;
}

// The neighbour term's scale c = eta / max(1, W) (neighbours::neighbour_scale).
__device__ __forceinline__ float neighbour_scale(float eta, float w_sum) { return eta / (w_sum > 1.0f ? w_sum : 1.0f); }

// Radix digits of the 64-bit keys, most significant first: 11, 11, 11, 11, 10, 10 bits.
// 53, 42, 31, 20, 10, 0: arithmetic, not a table (a runtime index into a local array costs stack).
__device__ __forceinline__ uint32_t radix_shift(int pass) {
    return pass < 4 ? 53u - 11u * (uint32_t)pass : 10u * (uint32_t)(5 - pass);
}
__device__ __forceinline__ uint32_t radix_bits(int pass) { return pass < 4 ? 11u : 10u; }
