// Philox4x32-10 and the task-stream layout: the device twin of src/twin/philox.rs.
//
// key = [seed lo, seed hi]; counter = [task, (purpose << 24) | block, step lo, step hi].
#pragma once
#include <stdint.h>
#include "abi.cuh"    // BOTS_PHILOX_* and BOTS_PURPOSE_*, declared in src/abi.rs
#include "fmath.cuh"  // bots_u2f

enum BotsPurpose : uint32_t {
    PURPOSE_GAMMA_ALPHA = BOTS_PURPOSE_GAMMA_ALPHA,
    PURPOSE_GAMMA_BETA = BOTS_PURPOSE_GAMMA_BETA,
    PURPOSE_GUMBEL = BOTS_PURPOSE_GUMBEL,
    PURPOSE_USER = BOTS_PURPOSE_USER,
    PURPOSE_FIRST = BOTS_PURPOSE_FIRST,
};

// Philox4x32-10 with its round keys given: rk[2r], rk[2r + 1] in round r (src/twin/philox.rs round_keys).
__device__ __forceinline__ uint4 philox4x32_10(uint4 ctr, const uint32_t* rk) {
#pragma unroll
    for (int r = 0; r < 10; ++r) {
        const uint32_t hi0 = __umulhi(BOTS_PHILOX_M0, ctr.x), lo0 = BOTS_PHILOX_M0 * ctr.x;
        const uint32_t hi1 = __umulhi(BOTS_PHILOX_M1, ctr.z), lo1 = BOTS_PHILOX_M1 * ctr.z;
        ctr = make_uint4(hi1 ^ ctr.y ^ rk[2 * r], lo1, hi0 ^ ctr.w ^ rk[2 * r + 1], lo0);
    }
    return ctr;
}

// The random words of one task at one step (TaskStream in Rust).
struct TaskStream {
    uint32_t rk[20];  // the round keys of the seed
    uint32_t task;
    unsigned long long step;

    // From the round keys the host computed (Params::philox_keys): in a kernel, operands from the
    // parameter bank, neither registers held through the task loop nor recomputed per block.
    __device__ __forceinline__ TaskStream(const uint32_t (&keys)[20], unsigned long long step_, uint32_t task_)
        : task(task_), step(step_) {
#pragma unroll
        for (int i = 0; i < 20; ++i) rk[i] = keys[i];
    }

    // From the seed (key [seed lo, seed hi], + r (W0, W1) in round r).
    __device__ __forceinline__ TaskStream(unsigned long long seed, unsigned long long step_, uint32_t task_)
        : task(task_), step(step_) {
        uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
#pragma unroll
        for (int r = 0; r < 10; ++r) {
            if (r > 0) {
                k0 += BOTS_PHILOX_W0;
                k1 += BOTS_PHILOX_W1;
            }
            rk[2 * r] = k0;
            rk[2 * r + 1] = k1;
        }
    }

    // Block `block` (< 2^24) of `purpose`.
    __device__ __forceinline__ uint4 block(uint32_t purpose, uint32_t blk) const {
        return philox4x32_10(make_uint4(task, (purpose << 24) | blk, (uint32_t)step, (uint32_t)(step >> 32)), rk);
    }
};

// A word to a uniform float in the open interval (0, 1): ((x >> 9) + 0.5) * 2^-23, exact in f32.
__device__ __forceinline__ float u01(uint32_t x) {
    // ((x >> 9) + 0.5) 2^-23, exactly, as 1.m - (1 - 2^-24) (src/twin/philox.rs u01).
    return bots_u2f((x >> 9) | 0x3f800000u) - (1.0f - 1.0f / 16777216.0f);
}
