// A tiny host emulation of the CUDA features the kernels use, so kernels/bots.cu compiles with g++ and
// runs on the CPU: each block's threads are std::threads (blocks run one after another), __shared__ is
// `static`, __syncthreads is a std::barrier. For checking kernel logic without a GPU
// (scripts/emu/run.sh); not a performance or memory-model model of a GPU.
#pragma once
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#define BOTS_HOST_EMU 1
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

struct uint4 { uint32_t x, y, z, w; };
struct uint2 { uint32_t x, y; };
struct dim3 { uint32_t x = 1, y = 1, z = 1; };
inline uint4 make_uint4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) { return {a, b, c, d}; }
inline uint2 make_uint2(uint32_t a, uint32_t b) { return {a, b}; }

inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
inline std::barrier<>* emu_barrier = nullptr;
inline void __syncthreads() { emu_barrier->arrive_and_wait(); }

inline uint32_t __umulhi(uint32_t a, uint32_t b) { return (uint32_t)(((uint64_t)a * b) >> 32); }
inline uint32_t __float_as_uint(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
using std::isfinite;

template <class T> T atomicAdd(T* p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
template <class T> T atomicOr(T* p, T v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }
template <class T> T atomicAnd(T* p, T v) { return __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST); }
template <class T> T atomicMin(T* p, T v) {
    T old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
    while (v < old && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {}
    return old;
}

inline float bots_emu_half_to_float(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float f;
    if (e == 0) f = std::ldexp((float)m, -24);
    else if (e == 31) f = m ? NAN : INFINITY;
    else f = std::ldexp((float)(m | 0x400), (int)e - 25);
    return sign ? -f : f;
}

// Runs kernel `f` on a grid of `grid` blocks of `block` threads.
template <class F, class... A> void emu_launch(uint32_t grid, uint32_t block, F f, A... args) {
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    for (uint32_t b = 0; b < grid; ++b) {
        std::barrier<> bar((std::ptrdiff_t)block);
        emu_barrier = &bar;
        std::vector<std::thread> ts;
        ts.reserve(block);
        for (uint32_t t = 0; t < block; ++t)
            ts.emplace_back([&, b, t] {
                threadIdx = {t, 1, 1};
                blockIdx = {b, 1, 1};
                f(args...);
                bar.arrive_and_drop();
            });
        for (auto& th : ts) th.join();
    }
}
