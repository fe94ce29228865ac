// A small host emulation of the CUDA features the kernels use, so kernels/bots.cu compiles with g++ and
// runs on the CPU. Used by the kernel emulator (scripts/emu/run.sh) and by the emulated CUDA driver
// (scripts/emu-driver), which runs the crate's real host code on it.
//
// Execution model, chosen to expose what a GPU can do and a sequential CPU run would hide:
// - The threads of a block are fibers (ucontext), interleaved at every __syncthreads() and at random
//   points before atomics, in an order drawn afresh each time from a seeded generator; blocks run one
//   after another in a shuffled order. A kernel that is only right in one thread order fails sooner or
//   later; a failing order is replayed by setting BOTS_EMU_SEED.
// - __syncthreads() checks that every thread of the block reached the same barrier (source line): a
//   divergent barrier, or a thread that returns while others wait at a barrier, is an error.
// - __shared__ variables live in one ELF section, poisoned with a fresh random byte before each block,
//   so a read before the block wrote it shows up as garbage (NaN, huge counts) instead of a lucky 0.
// Not a performance or memory-ordering model of a GPU: a fiber runs until it yields, so races that
// need two threads inside one instruction are not found.
#pragma once
#include <setjmp.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#define BOTS_HOST_EMU 1
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static __attribute__((section("bots_shared")))
#define __launch_bounds__(...)
#define __syncthreads() emu_syncthreads(__LINE__)

struct uint4 { uint32_t x, y, z, w; };
struct uint2 { uint32_t x, y; };
struct dim3 { uint32_t x = 1, y = 1, z = 1; };
inline uint4 make_uint4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) { return {a, b, c, d}; }
inline uint2 make_uint2(uint32_t a, uint32_t b) { return {a, b}; }

// Set by the scheduler before every switch into a fiber (all fibers share one OS thread).
inline dim3 threadIdx, blockIdx, blockDim, gridDim;

extern "C" char __start_bots_shared[], __stop_bots_shared[];

namespace emu {

enum class State { Runnable, AtBarrier, Done };

struct Fiber {
    ucontext_t ctx;   // first entry only
    jmp_buf jb;       // every later switch (no signal-mask system call, unlike swapcontext)
    bool started = false;
    uint32_t tid = 0;
    State state = State::Runnable;
    int site = 0;
};

struct Runtime {
    jmp_buf sched;
    ucontext_t blank;  // a getcontext() result, copied for every fiber
    std::vector<Fiber> fibers;
    char* stacks = nullptr;
    Fiber* cur = nullptr;
    std::mt19937_64 rng;
    const std::function<void()>* body = nullptr;
    static constexpr size_t kStack = 128 * 1024;  // per thread, with a guard page below
    static constexpr uint32_t kMaxThreads = 1024;

    Runtime() {
        const char* s = std::getenv("BOTS_EMU_SEED");
        rng.seed(s ? std::strtoull(s, nullptr, 0) : 0x5eed);
        const size_t total = kStack * kMaxThreads;
        void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) { std::perror("emu: fiber stacks"); std::abort(); }
        stacks = (char*)p;
        for (uint32_t i = 0; i < kMaxThreads; ++i) mprotect(stacks + i * kStack, 4096, PROT_NONE);
        fibers.resize(kMaxThreads);
        getcontext(&blank);
    }
};

inline Runtime& rt() {
    static Runtime r;
    return r;
}

inline void fiber_main() {
    Runtime& r = rt();
    (*r.body)();
    r.cur->state = State::Done;
    _longjmp(r.sched, 1);  // never returns here
}

// From a fiber back to the scheduler.
inline void switch_out() {
    Runtime& r = rt();
    if (_setjmp(r.cur->jb) == 0) _longjmp(r.sched, 1);
}

// From the scheduler into fiber f (first entry through its ucontext).
inline void switch_in(Fiber* f) {
    Runtime& r = rt();
    if (_setjmp(r.sched) == 0) {
        if (f->started) _longjmp(f->jb, 1);
        f->started = true;
        setcontext(&f->ctx);
    }
}

// Before an atomic: sometimes let another thread of the block run first.
inline void maybe_yield() {
    Runtime& r = rt();
    if (r.cur != nullptr && (r.rng() & 3) == 0) switch_out();
}

// Runs `body` as a grid of `grid` blocks of `block` threads. Returns "" or what went wrong.
inline std::string run(uint32_t grid, uint32_t block, const std::function<void()>& body) {
    Runtime& r = rt();
    if (block == 0 || block > Runtime::kMaxThreads) return "block size " + std::to_string(block) + " is not in 1..1024";
    if (grid == 0) return "empty grid";
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    r.body = &body;
    std::vector<uint32_t> blocks(grid);
    for (uint32_t b = 0; b < grid; ++b) blocks[b] = b;
    std::shuffle(blocks.begin(), blocks.end(), r.rng);
    std::vector<Fiber*> runnable;
    runnable.reserve(block);
    const size_t shared_len = (size_t)(__stop_bots_shared - __start_bots_shared);
    std::string err;
    for (uint32_t b : blocks) {
        std::memset(__start_bots_shared, (int)(r.rng() & 0xff), shared_len);
        runnable.clear();
        for (uint32_t t = 0; t < block; ++t) {
            Fiber& f = r.fibers[t];
            f.tid = t;
            f.state = State::Runnable;
            f.site = 0;
            f.started = false;
            f.ctx = r.blank;
            f.ctx.uc_mcontext.fpregs = &f.ctx.__fpregs_mem;  // the copy must not point into `blank`
            f.ctx.uc_stack.ss_sp = r.stacks + t * Runtime::kStack + 4096;
            f.ctx.uc_stack.ss_size = Runtime::kStack - 4096;
            f.ctx.uc_link = nullptr;
            makecontext(&f.ctx, fiber_main, 0);
            runnable.push_back(&f);
        }
        for (;;) {
            while (!runnable.empty()) {
                const size_t i = (size_t)(r.rng() % runnable.size());
                Fiber* f = runnable[i];
                r.cur = f;
                threadIdx = {f->tid, 1, 1};
                blockIdx = {b, 1, 1};
                switch_in(f);
                r.cur = nullptr;
                if (f->state != State::Runnable) {
                    runnable[i] = runnable.back();
                    runnable.pop_back();
                }
            }
            int site = -1;
            uint32_t waiting = 0, done = 0, first_done = 0;
            for (uint32_t t = 0; t < block; ++t) {
                const Fiber& f = r.fibers[t];
                if (f.state == State::AtBarrier) {
                    if (waiting == 0) site = f.site;
                    else if (f.site != site) {
                        err = "divergent __syncthreads in block " + std::to_string(b) + ": thread " + std::to_string(t) +
                              " waits at line " + std::to_string(f.site) + ", others at line " + std::to_string(site);
                    }
                    ++waiting;
                } else if (f.state == State::Done) {
                    if (done++ == 0) first_done = t;
                }
            }
            if (waiting == 0) break;
            if (err.empty() && done > 0) {
                err = "thread " + std::to_string(first_done) + " of block " + std::to_string(b) + " returned while " +
                      std::to_string(waiting) + " threads wait at __syncthreads (line " + std::to_string(site) + ")";
            }
            if (!err.empty()) break;
            for (uint32_t t = 0; t < block; ++t) {
                r.fibers[t].state = State::Runnable;
                runnable.push_back(&r.fibers[t]);
            }
            std::shuffle(runnable.begin(), runnable.end(), r.rng);
        }
        if (!err.empty()) break;  // the block's fibers are abandoned: they hold no resources
    }
    r.body = nullptr;
    return err;
}

}  // namespace emu

inline void emu_syncthreads(int site) {
    emu::Runtime& r = emu::rt();
    r.cur->state = emu::State::AtBarrier;
    r.cur->site = site;
    emu::switch_out();
}

inline uint32_t __umulhi(uint32_t a, uint32_t b) { return (uint32_t)(((uint64_t)a * b) >> 32); }
inline uint32_t __float_as_uint(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
using std::isfinite;

template <class T> T atomicAdd(T* p, T v) { emu::maybe_yield(); T o = *p; *p = o + v; return o; }
template <class T> T atomicOr(T* p, T v) { emu::maybe_yield(); T o = *p; *p = o | v; return o; }
template <class T> T atomicAnd(T* p, T v) { emu::maybe_yield(); T o = *p; *p = o & v; return o; }
template <class T> T atomicMin(T* p, T v) { emu::maybe_yield(); T o = *p; if (v < o) *p = v; return o; }
template <class T> T atomicCAS(T* p, T cmp, T v) { emu::maybe_yield(); T o = *p; if (o == cmp) *p = v; return o; }

inline float bots_emu_half_to_float(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float f;
    if (e == 0) f = std::ldexp((float)m, -24);
    else if (e == 31) f = m ? NAN : INFINITY;
    else f = std::ldexp((float)(m | 0x400), (int)e - 25);
    return sign ? -f : f;
}

// Runs kernel `f` on a grid of `grid` blocks of `block` threads; a barrier error ends the program.
template <class F, class... A> void emu_launch(uint32_t grid, uint32_t block, F f, A... args) {
    const std::function<void()> body = [&] { f(args...); };
    const std::string err = emu::run(grid, block, body);
    if (!err.empty()) {
        std::fprintf(stderr, "emu: %s\n", err.c_str());
        std::exit(3);
    }
}
