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
// - Warp intrinsics (__ballot_sync, __shfl_sync, __shfl_up_sync, __reduce_or_sync, __syncwarp) are real collectives: a lane waits at
//   the call until every lane its mask names has reached the same call (source line) with the same mask,
//   then each gets the result from the values all of them brought. A mask that leaves out the calling
//   lane, names a lane the block does not have, or disagrees between lanes is an error; so is a named
//   lane that returns or waits at another call (a __syncthreads or another intrinsic) instead.
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

// Aligned as CUDA's vector types are (a misaligned vector load faults on a GPU; __ldg checks it here).
struct alignas(16) uint4 { uint32_t x, y, z, w; };
struct alignas(8) uint2 { uint32_t x, y; };
struct dim3 { uint32_t x = 1, y = 1, z = 1; };
inline uint4 make_uint4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) { return {a, b, c, d}; }
inline uint2 make_uint2(uint32_t a, uint32_t b) { return {a, b}; }

// Set by the scheduler before every switch into a fiber (all fibers share one OS thread).
inline dim3 threadIdx, blockIdx, blockDim, gridDim;

extern "C" char __start_bots_shared[], __stop_bots_shared[];

namespace emu {

enum class State { Runnable, AtBarrier, AtWarp, Done };

struct Fiber {
    ucontext_t ctx;   // first entry only
    jmp_buf jb;       // every later switch (no signal-mask system call, unlike swapcontext)
    bool started = false;
    uint32_t tid = 0;
    State state = State::Runnable;
    int site = 0;
    // At a warp intrinsic: its mask and this lane's value; on release, every named lane's value.
    uint32_t warp_mask = 0;
    uint64_t warp_val = 0;
    uint64_t warp_vals[32] = {};
};

struct Runtime {
    jmp_buf sched;
    ucontext_t blank;  // a getcontext() result, copied for every fiber
    std::vector<Fiber> fibers;
    char* stacks = nullptr;
    Fiber* cur = nullptr;
    std::mt19937_64 rng;
    const std::function<void()>* body = nullptr;
    std::string fiber_err;  // set by a fiber that found an error (it then stops, as if returned)
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

// Lane `f` has arrived at a warp intrinsic. When every lane its mask names is there too, at the same
// call with the same mask, all of them get the values and run on. Returns "" or what went wrong.
inline std::string warp_arrive(Fiber* f, uint32_t block, std::vector<Fiber*>& runnable) {
    Runtime& r = rt();
    const uint32_t warp0 = f->tid & ~31u;
    const uint32_t lanes = std::min<uint32_t>(32, block - warp0);
    const std::string where = "warp intrinsic at line " + std::to_string(f->site) + " (thread " + std::to_string(f->tid) + ")";
    if (lanes < 32 && (f->warp_mask >> lanes) != 0) return where + ": the mask names lanes the block does not have";
    for (uint32_t l = 0; l < lanes; ++l) {
        if (!((f->warp_mask >> l) & 1)) continue;
        const Fiber& o = r.fibers[warp0 + l];
        if (o.state == State::Done) return where + ": lane " + std::to_string(l) + " named in the mask has returned";
        if (o.state == State::AtBarrier) return where + ": lane " + std::to_string(l) + " named in the mask waits at __syncthreads (line " + std::to_string(o.site) + ")";
        if (o.state == State::AtWarp && (o.site != f->site || o.warp_mask != f->warp_mask))
            return where + ": lane " + std::to_string(l) + " named in the mask waits at another warp intrinsic call (line " + std::to_string(o.site) + ") or with another mask";
        if (o.state != State::AtWarp) return "";  // still running: it will arrive (or fail above later)
    }
    uint64_t vals[32] = {};
    for (uint32_t l = 0; l < lanes; ++l)
        if ((f->warp_mask >> l) & 1) vals[l] = r.fibers[warp0 + l].warp_val;
    for (uint32_t l = 0; l < lanes; ++l) {
        if (!((f->warp_mask >> l) & 1)) continue;
        Fiber& o = r.fibers[warp0 + l];
        std::memcpy(o.warp_vals, vals, sizeof vals);
        o.state = State::Runnable;
        runnable.push_back(&o);
    }
    return "";
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
                if (!r.fiber_err.empty()) {
                    err = "block " + std::to_string(b) + ": " + r.fiber_err;
                    r.fiber_err.clear();
                    break;
                }
                if (f->state != State::Runnable) {
                    runnable[i] = runnable.back();
                    runnable.pop_back();
                }
                if (f->state == State::AtWarp) {
                    err = warp_arrive(f, block, runnable);
                    if (!err.empty()) { err = "block " + std::to_string(b) + ": " + err; break; }
                }
                if (f->state == State::Done) {  // a lane that returns can strand its warp's waiting lanes
                    for (uint32_t l = f->tid & ~31u; l < std::min<uint32_t>((f->tid & ~31u) + 32, block) && err.empty(); ++l) {
                        Fiber& o = r.fibers[l];
                        if (o.state == State::AtWarp && ((o.warp_mask >> (f->tid & 31)) & 1))
                            err = "block " + std::to_string(b) + ": thread " + std::to_string(f->tid) +
                                  " returned while lane " + std::to_string(l & 31) + " waits for it at the warp intrinsic at line " +
                                  std::to_string(o.site);
                    }
                    if (!err.empty()) break;
                }
            }
            if (!err.empty()) break;
            int site = -1;
            uint32_t waiting = 0, done = 0, first_done = 0;
            for (uint32_t t = 0; t < block; ++t) {
                const Fiber& f = r.fibers[t];
                if (f.state == State::AtWarp) {
                    err = "thread " + std::to_string(t) + " of block " + std::to_string(b) +
                          " waits at the warp intrinsic at line " + std::to_string(f.site) + " for lanes that never came";
                } else if (f.state == State::AtBarrier) {
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

// A warp collective: this lane brings `v`, waits for the lanes `mask` names, returns every lane's value.
inline const uint64_t* emu_warp_exchange(int site, uint32_t mask, uint64_t v) {
    emu::Runtime& r = emu::rt();
    emu::Fiber* f = r.cur;
    if (!((mask >> (f->tid & 31)) & 1)) {
        r.fiber_err = "thread " + std::to_string(f->tid) + " calls a warp intrinsic at line " + std::to_string(site) +
                      " with a mask (0x" + [&] { char b[16]; std::snprintf(b, sizeof b, "%x", mask); return std::string(b); }() +
                      ") that leaves out its own lane";
        f->state = emu::State::Done;
        emu::switch_out();
    }
    f->state = emu::State::AtWarp;
    f->site = site;
    f->warp_mask = mask;
    f->warp_val = v;
    emu::switch_out();
    return f->warp_vals;
}

inline uint32_t emu_ballot_sync(int site, uint32_t mask, int pred) {
    const uint64_t* v = emu_warp_exchange(site, mask, pred != 0);
    uint32_t out = 0;
    for (uint32_t l = 0; l < 32; ++l)
        if (((mask >> l) & 1) && v[l]) out |= 1u << l;
    return out;
}

template <class T> T emu_shfl_sync(int site, uint32_t mask, T var, int src) {
    static_assert(sizeof(T) <= 8, "__shfl_sync of a type wider than 64 bits");
    uint64_t bits = 0;
    std::memcpy(&bits, &var, sizeof(T));
    const uint64_t* v = emu_warp_exchange(site, mask, bits);
    const uint32_t l = (uint32_t)src & 31;
    if (!((mask >> l) & 1)) {
        emu::rt().fiber_err = "__shfl_sync at line " + std::to_string(site) + " reads lane " + std::to_string(l) + ", which its mask leaves out";
        emu::rt().cur->state = emu::State::Done;
        emu::switch_out();
    }
    T out;
    std::memcpy(&out, &v[l], sizeof(T));
    return out;
}

// Lane l gets `var` of lane l - delta, or its own when l < delta (lanes the mask names).
template <class T> T emu_shfl_up_sync(int site, uint32_t mask, T var, uint32_t delta) {
    static_assert(sizeof(T) <= 8, "__shfl_up_sync of a type wider than 64 bits");
    uint64_t bits = 0;
    std::memcpy(&bits, &var, sizeof(T));
    const uint64_t* v = emu_warp_exchange(site, mask, bits);
    const uint32_t l = emu::rt().cur->tid & 31;
    if (l < delta) return var;
    if (!((mask >> (l - delta)) & 1)) {
        emu::rt().fiber_err = "__shfl_up_sync at line " + std::to_string(site) + " reads lane " + std::to_string(l - delta) + ", which its mask leaves out";
        emu::rt().cur->state = emu::State::Done;
        emu::switch_out();
    }
    T out;
    std::memcpy(&out, &v[l - delta], sizeof(T));
    return out;
}

inline uint32_t emu_reduce_or_sync(int site, uint32_t mask, uint32_t value) {
    const uint64_t* v = emu_warp_exchange(site, mask, value);
    uint32_t out = 0;
    for (uint32_t l = 0; l < 32; ++l)
        if ((mask >> l) & 1) out |= (uint32_t)v[l];
    return out;
}

// Set by the emulated driver: whether [p, p + bytes) lies inside one live device buffer.
inline bool (*emu_read_ok)(unsigned long long p, size_t bytes) = nullptr;

// A load through the read-only cache. Checked as a GPU would fault: aligned to its size, and (under the
// emulated driver) wholly inside one device buffer, which also catches a vector load that reads past the
// end into an allocation's alignment slack (the guard page only catches the next page).
template <class T> T __ldg(const T* p) {
    emu::Runtime& r = emu::rt();
    const uintptr_t a = (uintptr_t)p;
    const char* why = a % alignof(T) != 0                              ? "misaligned"
                      : (emu_read_ok && !emu_read_ok(a, sizeof(T))) ? "outside a device buffer"
                                                                     : nullptr;
    if (why != nullptr) {
        char b[160];
        std::snprintf(b, sizeof b, "thread %u: __ldg of %zu bytes at 0x%llx: %s", r.cur ? r.cur->tid : 0u, sizeof(T),
                      (unsigned long long)a, why);
        r.fiber_err = b;
        if (r.cur != nullptr) {
            r.cur->state = emu::State::Done;
            emu::switch_out();
        }
    }
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

#define __ballot_sync(mask, pred) emu_ballot_sync(__LINE__, (mask), (pred))
#define __reduce_or_sync(mask, value) emu_reduce_or_sync(__LINE__, (mask), (value))
#define __shfl_sync(mask, var, src) emu_shfl_sync(__LINE__, (mask), (var), (src))
#define __shfl_up_sync(mask, var, delta) emu_shfl_up_sync(__LINE__, (mask), (var), (delta))
// Every lane of the warp waits for the others (a collective with the full mask, as __syncwarp()'s default).
#define __syncwarp() ((void)emu_warp_exchange(__LINE__, 0xffffffffu, 0))
inline int __popc(uint32_t x) { return __builtin_popcount(x); }
inline int __ffs(uint32_t x) { return __builtin_ffs((int)x); }

inline uint32_t __umulhi(uint32_t a, uint32_t b) { return (uint32_t)(((uint64_t)a * b) >> 32); }
inline uint32_t __float_as_uint(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
using std::isfinite;

template <class T> T atomicAdd(T* p, T v) { emu::maybe_yield(); T o = *p; *p = o + v; return o; }
template <class T> T atomicOr(T* p, T v) { emu::maybe_yield(); T o = *p; *p = o | v; return o; }
template <class T> T atomicAnd(T* p, T v) { emu::maybe_yield(); T o = *p; *p = o & v; return o; }
template <class T> T atomicMin(T* p, T v) { emu::maybe_yield(); T o = *p; if (v < o) *p = v; return o; }
template <class T> T atomicCAS(T* p, T cmp, T v) { emu::maybe_yield(); T o = *p; if (o == cmp) *p = v; return o; }

// Stand-ins for the approximate intrinsics of the fast kernels (kernels/fmath.cuh's fast section,
// KernelMode::Fast): libm, each perturbed by about its documented error bound, in the direction that
// breaks careless code (ln 1 > 0, |sin|, |cos| and exp a little too large), so the emulators check the fast
// draws' distributions with errors as large as the hardware's, not with libm's near-exact values.
// __fdividef returns 0 for a divisor beyond 2^126, as the hardware's does.
inline float emu_up(float v, float rel) { return v + std::fabs(v) * rel; }
inline float __logf(float x) {
    const float l = std::log(x);
    return (x >= 0.5f && x <= 2.0f) ? l + 0x1p-22f : emu_up(l, 0x1p-22f);
}
inline float __expf(float x) { return emu_up(std::exp(x), 0x1p-21f); }
inline void __sincosf(float x, float* s, float* c) {
    *s = std::sin(x);
    *c = std::cos(x);
    *s += *s < 0.0f ? -0x1p-22f : 0x1p-22f;
    *c += *c < 0.0f ? -0x1p-22f : 0x1p-22f;
}
inline float __fdividef(float a, float b) { return std::fabs(b) > 0x1p126f ? 0.0f : emu_up(a / b, 0x1p-22f); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float rsqrtf(float x) { return emu_up(1.0f / std::sqrt(x), 0x1p-22f); }
inline float bots_emu_rcp_approx(float x) {
    const float r = 1.0f / x;
    return std::fabs(r) < 0x1p-126f ? 0.0f : emu_up(r, 0x1p-23f);  // flushes subnormal results (.ftz)
}

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
