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
    PURPOSE_FAST = BOTS_PURPOSE_FAST,
};

__device__ __forceinline__ uint4 philox4x32_10(uint4 ctr, uint2 key) {
#pragma unroll
    for (int r = 0; r < 10; ++r) {
        if (r > 0) {
            key.x += BOTS_PHILOX_W0;
            key.y += BOTS_PHILOX_W1;
        }
        const uint32_t hi0 = __umulhi(BOTS_PHILOX_M0, ctr.x), lo0 = BOTS_PHILOX_M0 * ctr.x;
        const uint32_t hi1 = __umulhi(BOTS_PHILOX_M1, ctr.z), lo1 = BOTS_PHILOX_M1 * ctr.z;
        ctr = make_uint4(hi1 ^ ctr.y ^ key.x, lo1, hi0 ^ ctr.w ^ key.y, lo0);
    }
    return ctr;
}

// The random words of one task at one step (TaskStream in Rust).
struct TaskStream {
    uint2 key;
    uint32_t task;
    unsigned long long step;

    __device__ __forceinline__ TaskStream(unsigned long long seed, unsigned long long step_, uint32_t task_)
        : key(make_uint2((uint32_t)seed, (uint32_t)(seed >> 32))), task(task_), step(step_) {}

    // Block `block` (< 2^24) of `purpose`.
    __device__ __forceinline__ uint4 block(uint32_t purpose, uint32_t blk) const {
        return philox4x32_10(make_uint4(task, (purpose << 24) | blk, (uint32_t)step, (uint32_t)(step >> 32)), key);
    }
};

// A word to a uniform float in the open interval (0, 1): ((x >> 9) + 0.5) * 2^-23, exact in f32.
__device__ __forceinline__ float u01(uint32_t x) {
    // ((x >> 9) + 0.5) 2^-23, exactly, as 1.m - (1 - 2^-24) (src/twin/philox.rs u01).
    return bots_u2f((x >> 9) | 0x3f800000u) - (1.0f - 1.0f / 16777216.0f);
}
