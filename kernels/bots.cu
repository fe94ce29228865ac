// BOTS kernels. Every kernel has a CPU twin of the same name (see each comment); host code in
// src/backend/cuda/ launches them on one stream, in the order documented there (mod.rs).
//
// Safety rules followed throughout: every index is bounds-checked against a length passed by the host
// (never trusted from device data), loops are grid-stride with 64-bit indices, and every block reaches
// every __syncthreads().
#include "model.cuh"

#define GRID_STRIDE(i, n) for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; \
                               i < (n); i += (unsigned long long)gridDim.x * blockDim.x)

// ---------------------------------------------------------------------------------------------------
// Fused pass. CPU twin: backend::cpu::update_sample_score (+ select::score_key).
// Applies the pending pool-wide update (if sc->pending), draws each task's sample and score, and builds
// the histogram of the first radix digit of the keys (hist0, 2048 bins, zeroed by select_init). Keys are
// not written; only their top 16 bits go to `digit_cache` (2 bytes/task) so the next pass recomputes
// keys only for tasks that can still be selected. FAST: the fast draws (update_sample_score_fast,
// KernelMode::Fast; distr.cuh), else the CPU's bits (update_sample_score).
//
// The draws are tried here only as far as almost all of them end (score_task<FAST, true>: the first
// attempt of each Gamma, accepted by the squeeze in exact mode, by either test in fast mode); a task whose
// draw needs more (an exact test, another attempt, another block: about 1.5% of tasks, exact, 0.9% fast, in
// `bots bench` after some steps) is deferred: its bit set in `defer` (one word per 32 tasks, all clear
// between passes: finish_deferred clears what it draws) and no digit or histogram count yet. finish_deferred(_fast) draws those whole
// (score_task<FAST, false>, which starts over on the same words and gives what the whole draw here
// would have: the same bits) before radix_find_bin(0) reads the histogram. A rare path in the loop would
// make every warp hold its state, and the warp runs it whenever one of its 32 lanes needs it.
//
// OWN_PRIOR: the pool has a prior per task (d.alpha0, d.beta0: update_sample_score(_fast)_prior); else the
// constant one of Params, which the compiler then folds into the update (no per-task test or load of the
// prior's buffers; the host launches these entries for a pool without them, and they refuse one with).
template <bool FAST, bool OWN_PRIOR>
__device__ __forceinline__ void update_sample_score_body(Params p, Pool d) {
    // Distinct buffers (the host allocates each apart): no store through one is read through another.
    float* __restrict__ const alpha = d.alpha;
    float* __restrict__ const beta = d.beta;
    unsigned short* __restrict__ const digits = d.digits;
    uint32_t* __restrict__ const defer = d.defer;
    const Scalars* const sc = d.scalars;
    if (!OWN_PRIOR && d.alpha0 != nullptr && d.beta0 != nullptr) {  // the host's choice of entry, never
        if (blockIdx.x == 0 && threadIdx.x == 0 && atomicCAS(&d.scalars->err_code, 0u, ERR_INTERNAL) == 0u)
            d.scalars->err_pos = 0xfffffffdu;
        return;
    }
    const float* const alpha0 = OWN_PRIOR ? d.alpha0 : nullptr;
    const float* const beta0 = OWN_PRIOR ? d.beta0 : nullptr;
    __shared__ uint32_t h[BOTS_RADIX_BINS];
    for (uint32_t b = threadIdx.x; b < BOTS_RADIX_BINS; b += blockDim.x) h[b] = 0;
    __syncthreads();
    const uint32_t pending = sc->pending;
    const unsigned long long step = sc->step;
    const float mu = sc->mu;
    const uint32_t mu_set = sc->mu_set;
    const float rho = sc->rho;
    const SegmentColumns cols = segment_columns(p, d.feat, segment(mu, p.n_features), mu_set);
    GRID_STRIDE(k, p.n) {
        float a = alpha[k];
        float b = beta[k];
        if (pending) apply_pending_task(p, alpha, beta, alpha0, beta0, cols, rho, k, a, b);
        float score;
        if (score_task<FAST, true>(p, a, b, step, (uint32_t)k, &score)) {
            const unsigned long long key = score_key(score, (uint32_t)k);
            digits[k] = (unsigned short)(key >> 48);
            atomicAdd(&h[(uint32_t)(key >> 53)], 1u);
        } else {
            atomicOr(&defer[k >> 5], 1u << (uint32_t)(k & 31));  // k < n: word k / 32 < ceil(n / 32)
        }
    }
    __syncthreads();
    for (uint32_t b = threadIdx.x; b < BOTS_RADIX_BINS; b += blockDim.x)
        if (h[b]) atomicAdd(&d.hist[b], h[b]);
}

extern "C" __global__ void __launch_bounds__(256, 4) update_sample_score(Params p, Pool d) {
    update_sample_score_body<false, false>(p, d);
}

extern "C" __global__ void __launch_bounds__(256, 4) update_sample_score_fast(Params p, Pool d) {
    update_sample_score_body<true, false>(p, d);
}

extern "C" __global__ void __launch_bounds__(256, 4) update_sample_score_prior(Params p, Pool d) {
    update_sample_score_body<false, true>(p, d);
}

extern "C" __global__ void __launch_bounds__(256, 4) update_sample_score_fast_prior(Params p, Pool d) {
    update_sample_score_body<true, true>(p, d);
}

// The deferred draws of the fused pass (its `defer` words: bit j of word w is task 32w + j): each drawn
// whole (score_task<FAST, false>), its digit written and counted in hist0 (global atomics: about one task
// in 70), its word cleared. CPU twin: the same backend::cpu::update_sample_score (the draws are the same;
// the CPU has no deferral). A warp takes 32·SPAN consecutive words (lane l the words l, 32 + l, ...),
// gathers their set bits into a queue in shared memory (at most 32·32·SPAN entries, 16-bit offsets into
// the span), then draws them 32 at a time: a warp runs the whole draw once per 32 deferred tasks, not
// once per lane that has one (about 15 in a warp's 1024 tasks, exact; 9, fast). FAST: after
// update_sample_score_fast.
template <bool FAST>
__device__ __forceinline__ void finish_deferred_body(Params p, Pool d) {
    constexpr uint32_t WARPS = 8;  // the host launches 256 threads
    constexpr uint32_t SPAN = 2;   // words per lane and warp iteration
    __shared__ uint16_t queue[WARPS][32 * 32 * SPAN];
    if (blockDim.x % 32u != 0 || blockDim.x > 32u * WARPS) return;  // whole warps, one queue each
    const uint32_t lane = threadIdx.x & 31u;
    uint16_t* const q = queue[threadIdx.x >> 5];
    const unsigned long long step = d.scalars->step;
    const unsigned long long words = (p.n + 31) / 32;
    const unsigned long long spans = (words + 32 * SPAN - 1) / (32 * SPAN);
    const unsigned long long warp0 = ((unsigned long long)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x / 32;
    for (unsigned long long span = warp0; span < spans; span += stride) {  // uniform across the warp
        const unsigned long long w0 = span * 32 * SPAN;
        uint32_t bits[SPAN], count = 0;
#pragma unroll
        for (uint32_t j = 0; j < SPAN; ++j) {
            const unsigned long long w = w0 + j * 32 + lane;
            bits[j] = w < words ? d.defer[w] : 0u;
            if (bits[j] != 0u) d.defer[w] = 0u;  // all clear for the next fused pass
            // The last word's bits past n are never set (the fused pass sets a bit only for a task below
            // n); masked anyway, so no task at or past n is drawn whatever the buffer holds.
            if (w == words - 1 && (p.n & 31u) != 0) bits[j] &= (1u << (p.n & 31u)) - 1u;
            count += __popc(bits[j]);
        }
        // Exclusive prefix sum of the counts over the warp: where this lane's tasks go in the queue.
        uint32_t at = count;
        for (uint32_t o = 1; o < 32; o <<= 1) {
            const uint32_t v = __shfl_up_sync(0xffffffffu, at, o);
            if (lane >= o) at += v;
        }
        const uint32_t total = __shfl_sync(0xffffffffu, at, 31);
        at -= count;
        if (total == 0) continue;  // uniform
#pragma unroll
        for (uint32_t j = 0; j < SPAN; ++j) {
            while (bits[j] != 0u) {  // the task's offset in the span: its word's (j·32 + lane), its bit
                q[at++] = (uint16_t)((j * 32 + lane) * 32 + (uint32_t)(__ffs(bits[j]) - 1));
                bits[j] &= bits[j] - 1;
            }
        }
        __syncwarp();
        for (uint32_t r = lane; r < total; r += 32) {
            const uint32_t task = (uint32_t)(w0 * 32 + q[r]);  // < n <= 2^32 - 1 (masked above)
            float score;
            score_task<FAST, false>(p, d.alpha[task], d.beta[task], step, task, &score);
            const unsigned long long key = score_key(score, task);
            d.digits[task] = (unsigned short)(key >> 48);
            atomicAdd(&d.hist[(uint32_t)(key >> 53)], 1u);
        }
        __syncwarp();
    }
}

extern "C" __global__ void __launch_bounds__(256) finish_deferred(Params p, Pool d) { finish_deferred_body<false>(p, d); }

extern "C" __global__ void __launch_bounds__(256) finish_deferred_fast(Params p, Pool d) { finish_deferred_body<true>(p, d); }

// Pool-wide part of a pending update without sampling (flush before a second update, or before a
// readback). CPU twin: update::apply_pending. clear_pending must follow it.
extern "C" __global__ void apply_pending(Params p, Pool d) {
    const Scalars* const sc = d.scalars;
    if (!sc->pending) return;
    const float mu = sc->mu;
    const uint32_t mu_set = sc->mu_set;
    const float rho = sc->rho;
    const SegmentColumns cols = segment_columns(p, d.feat, segment(mu, p.n_features), mu_set);
    GRID_STRIDE(k, p.n) {
        float a = d.alpha[k];
        float b = d.beta[k];
        apply_pending_task(p, d.alpha, d.beta, d.alpha0, d.beta0, cols, rho, k, a, b);
    }
}

extern "C" __global__ void clear_pending(Pool d) {
    if (blockIdx.x == 0 && threadIdx.x == 0) d.scalars->pending = 0;
}

extern "C" __global__ void clear_error(Pool d) {
    Scalars* const sc = d.scalars;
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        sc->err_code = 0;
        sc->err_pos = 0;
        sc->err_task = 0;
        sc->err_v0 = 0.0f;
        sc->err_v1 = 0.0f;
    }
}

// ---------------------------------------------------------------------------------------------------
// Radix (AIR-top-k style) selection of the k largest keys. CPU twin: select::select_top_k.
//
// select_init; update_sample_score (hist0); then for pass = 0..6: radix_find_bin(pass), radix_filter(pass);
// then the bitonic sort of the k output keys, descending, and keys_to_tasks. Keys are unique (the low
// half is !task), so exactly k keys are written to out_keys.

// Resets the select state, zeroes the 7 histograms and pads out_keys[0..pad_len) with 0 (no valid key
// is 0: it would need task id 2^32 - 1).
extern "C" __global__ void select_init(Pool d, unsigned long long k, unsigned long long* out_keys,
                                       unsigned long long pad_len) {
    Scalars* const sc = d.scalars;
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        sc->prefix = 0;
        sc->k_rem = k;
        sc->set_size = 0;
        sc->n_out = 0;
        sc->cand_cnt[0] = 0;
        sc->cand_cnt[1] = 0;
        sc->done = 0;
        sc->read_buf = 0;
        sc->write_buf = 0;
    }
    GRID_STRIDE(i, (unsigned long long)(BOTS_RADIX_PASSES + 1) * BOTS_RADIX_BINS) d.hist[i] = 0;
    GRID_STRIDE(i, pad_len) out_keys[i] = 0;
}

// One block of 1024 threads. Finds the bin of this pass's digit that holds the k_rem-th largest key of
// the current set (bins scanned from the top), and records it in the select state. Pass 0 also clears
// the pending flag, which update_sample_score has consumed.
extern "C" __global__ void __launch_bounds__(1024) radix_find_bin(Pool d, int pass, unsigned long long cap) {
    __shared__ unsigned long long scan[1024];
    Scalars* const sc = d.scalars;
    if (pass < 0 || pass >= BOTS_RADIX_PASSES) return;
    if (blockDim.x != 1024) return;
    const uint32_t t = threadIdx.x;
    if (pass == 0 && t == 0) sc->pending = 0;
    if (sc->done) return;  // uniform across the block: read before any write to it below
    const uint32_t* hist = d.hist + (unsigned long long)pass * BOTS_RADIX_BINS;
    const uint32_t nb = 1u << radix_bits(pass);
    const unsigned long long k_rem = sc->k_rem;
    const uint32_t r0 = 2 * t, r1 = 2 * t + 1;  // ranks from the top: bin nb - 1 - r
    const unsigned long long c0 = (t < 1024 && r0 < nb) ? hist[nb - 1 - r0] : 0;
    const unsigned long long c1 = (t < 1024 && r1 < nb) ? hist[nb - 1 - r1] : 0;
    const unsigned long long local = c0 + c1;
    if (t < 1024) scan[t] = local;
    __syncthreads();
    for (uint32_t off = 1; off < 1024; off <<= 1) {
        unsigned long long v = 0;
        if (t < 1024 && t >= off) v = scan[t - off];
        __syncthreads();
        if (t < 1024) scan[t] += v;
        __syncthreads();
    }
    if (t >= 1024) return;
    const unsigned long long incl = scan[t];
    const unsigned long long excl = incl - local;
    int found = -1;
    unsigned long long above = 0, size = 0;
    if (excl < k_rem && k_rem <= excl + c0) {
        found = (int)r0; above = excl; size = c0;
    } else if (excl + c0 < k_rem && k_rem <= incl) {
        found = (int)r1; above = excl + c0; size = c1;
    }
    const uint32_t shift = radix_shift(pass);
    if (found >= 0) {
        const unsigned long long b = (unsigned long long)(nb - 1 - (uint32_t)found);
        const unsigned long long rem = k_rem - above;
        sc->prefix |= b << shift;
        sc->k_rem = rem;
        sc->set_size = size;
        const bool done = size == rem;
        sc->done = done ? (uint32_t)pass + 1 : 0;
        sc->read_buf = sc->write_buf;
        sc->write_buf = (!done && size <= cap) ? 1 : 0;
        sc->cand_cnt[(pass + 1) & 1] = 0;
    }
    if (t == 1023 && incl < k_rem) {
        // Fewer keys than k in the set: impossible for consistent input; stop and flag it.
        sc->done = (uint32_t)pass + 1;
        if (sc->err_code == 0) { sc->err_code = ERR_INTERNAL; sc->err_pos = (uint32_t)pass; }
    }
}

// Warp-aggregated slot allocation: one atomicAdd on *counter per warp for the lanes with `want`; a lane's
// slot is the warp's base plus the number of wanting lanes below it. Every lane of the warp calls it (full
// mask). Which warp gets which range depends on the order of the atomics, so callers use the slots only
// as places in an unordered set (the selected keys are sorted afterwards; candidates are a set).
__device__ __forceinline__ unsigned long long warp_slot(unsigned long long* counter, bool want) {
    const uint32_t ballot = __ballot_sync(0xffffffffu, want);
    if (ballot == 0) return 0;  // uniform across the warp
    const uint32_t lane = threadIdx.x & 31u;
    const int leader = __ffs(ballot) - 1;
    unsigned long long base = 0;
    if ((int)lane == leader) base = atomicAdd(counter, (unsigned long long)__popc(ballot));
    base = __shfl_sync(0xffffffffu, base, leader);
    return base + (unsigned long long)__popc(ballot & ((1u << lane) - 1u));
}

__device__ __forceinline__ uint32_t umax32(uint32_t x, uint32_t y) { return x > y ? x : y; }

// Whether each of the two 16-bit digits packed in `w` (low half first) reaches `t`: bit 0 the low one,
// bit 1 the high one.
__device__ __forceinline__ uint32_t digits_reach(uint32_t w, uint32_t t) {
    return (uint32_t)((w & 0xffffu) >= t) | ((uint32_t)((w >> 16) >= t) << 1);
}

// The filter pass: over the current set (the pool, recomputing keys, or the candidate buffer
// cand[pass & 1]), keys whose higher digits match the prefix and whose digit is above the chosen bin
// are final (written to out_keys); keys in the bin are either final too (when the bin completes the
// selection), or counted in the next digit's histogram and appended to cand[(pass + 1) & 1].
//
// The pool scan reads only the 16-bit digit cache and recomputes the key of the rare task whose digit
// reaches the known prefix (about 1 in 2048 at pass 0). A lane takes a chunk of 8 consecutive digits, one
// 16-byte load where the chunk is aligned and wholly in [0, n) (the chunks are aligned to the buffer's
// address, so only the first and the last can be partial: those load digit by digit, in bounds), and
// keeps a mask of its live slots; the warp OR of the masks (__reduce_or_sync: sm_80, the default arch)
// says which of the 8 slots hold a live task in some lane. Live tasks queue in the warp's lanes and are
// placed 32 at a time. FAST: the keys of update_sample_score_fast (radix_filter_fast), else of
// update_sample_score (radix_filter).
template <bool FAST>
__device__ __forceinline__ void radix_filter_body(Params p, Pool d, unsigned long long cap,
                                                  unsigned long long* out_keys, unsigned long long out_cap, int pass) {
    __shared__ uint32_t h[BOTS_RADIX_BINS];
    Scalars* const sc = d.scalars;
    if (pass < 0 || pass >= BOTS_RADIX_PASSES) return;
    if (blockDim.x % 32u != 0) return;  // the loops below run whole warps (the host launches 256)
    const uint32_t done = sc->done;
    if (done != 0 && done != (uint32_t)pass + 1) return;  // finished at an earlier pass (uniform)
    const bool final_pass = done == (uint32_t)pass + 1;
    const bool has_next = pass + 1 < BOTS_RADIX_PASSES;
    for (uint32_t b = threadIdx.x; b < BOTS_RADIX_BINS; b += blockDim.x) h[b] = 0;
    __syncthreads();
    const uint32_t shift = radix_shift(pass);
    const unsigned long long mask = (1ull << radix_bits(pass)) - 1;
    const uint32_t hi_shift = shift + radix_bits(pass);  // 64 for pass 0
    const unsigned long long prefix = sc->prefix;
    const unsigned long long bin = (prefix >> shift) & mask;
    const unsigned long long pre_hi = hi_shift >= 64 ? 0 : (prefix >> hi_shift);
    const uint32_t next_shift = has_next ? radix_shift(pass + 1) : 0;
    const unsigned long long next_mask = has_next ? (1ull << radix_bits(pass + 1)) - 1 : 0;
    const bool from_buf = sc->read_buf != 0;
    const bool to_buf = sc->write_buf != 0 && !final_pass && has_next;
    unsigned long long* dst = d.cand + (unsigned long long)((pass + 1) & 1) * cap;
    // One key of the set (live: in the set and still possible), placed by the warp: every lane of the
    // warp calls it together (the warp-aggregated slot allocations), live element or not.
    auto place = [&](unsigned long long key, bool live) {
        if (hi_shift < 64 && (key >> hi_shift) != pre_hi) live = false;
        const unsigned long long digit = (key >> shift) & mask;
        const bool to_out = live && (digit > bin || (digit == bin && final_pass));
        const bool in_bin = live && digit == bin && !final_pass && has_next;
        if (in_bin) atomicAdd(&h[(uint32_t)((key >> next_shift) & next_mask)], 1u);
        const unsigned long long o = warp_slot(&sc->n_out, to_out);
        if (to_out && o < out_cap) out_keys[o] = key;
        if (to_buf) {  // uniform across the grid
            const unsigned long long slot = warp_slot(&sc->cand_cnt[(pass + 1) & 1], in_bin);
            if (in_bin && slot < cap) dst[slot] = key;
        }
    };
    // Grid-stride over whole warps (the base index is the same for the 32 lanes, so the loop conditions
    // below are uniform across a warp).
    const unsigned long long warp0 = (unsigned long long)blockIdx.x * blockDim.x + (threadIdx.x & ~31u);
    const uint32_t lane = threadIdx.x & 31u;
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    if (from_buf) {
        const unsigned long long* src = d.cand + (unsigned long long)(pass & 1) * cap;
        unsigned long long src_n = sc->cand_cnt[pass & 1];
        if (src_n > cap) src_n = cap;
        for (unsigned long long base = warp0; base < src_n; base += stride) {
            const unsigned long long i = base + lane;
            const bool live = i < src_n;
            place(live ? src[i] : 0, live);
        }
    } else {
        const unsigned short* const digits = d.digits;
        const unsigned long long n = p.n;
        const unsigned long long step = sc->step;
        const uint32_t top16 = (uint32_t)(prefix >> 48);  // known digits only; unknown bits are 0
        // Chunk c holds the tasks c * 8 - a .. c * 8 - a + 7 (those in [0, n)), the c-th 16-byte block from
        // the buffer's address rounded down to 16 (a = the digits before it; cudaMalloc's 256-byte alignment
        // gives a = 0). Chunks [full_lo, full_hi) lie wholly in [0, n): one 16-byte load each; the first and
        // the last chunk may be partial and load digit by digit. A buffer at an odd address (never) has
        // only partial chunks.
        const uintptr_t addr = (uintptr_t)digits;
        const bool odd = (addr & 1u) != 0;
        const unsigned long long a = odd ? 0 : (unsigned long long)((addr & 15u) >> 1);
        const uint4* const blocks = reinterpret_cast<const uint4*>(addr - 2 * a);
        const unsigned long long chunks = (n + a + 7) / 8;
        const unsigned long long full_lo = a != 0 ? 1 : 0, full_hi = odd ? 0 : (n + a) / 8;
        // The live tasks queue up in the warp's lanes (lane q holds the q-th, in `task`) and are placed 32 at a
        // time, so a warp runs the key's recompute (a whole sample) once per 32 live tasks, not once per task.
        // Uniform across the warp: queued, base, todo (the slots some lane holds a live task in), from (the
        // lanes whose task of slot j is still to queue).
        uint32_t queued = 0, live_slots = 0, todo = 0, from = 0, j = 0;
        unsigned long long task = 0, base = warp0, c = 0;  // c: this lane's chunk
        for (;;) {
            // Scan chunks up to one with a live task.
            while ((todo | from) == 0 && base < chunks) {
                c = base + lane;
                base += stride;
                live_slots = 0;  // bit s: task c * 8 - a + s is in [0, n) and its digit reaches top16
                if (c >= full_lo && c < full_hi) {
                    const uint4 v = __ldg(blocks + c);
                    // Moved to the top half of a word, a digit compares as the word does: the largest of the
                    // eight against top16 << 16 first, the slots only then (about 1 lane in 250 at pass 0).
                    const uint32_t hi = umax32(umax32(v.x, v.y), umax32(v.z, v.w));
                    const uint32_t lo = umax32(umax32(v.x << 16, v.y << 16), umax32(v.z << 16, v.w << 16));
                    if (umax32(hi, lo) >= top16 << 16)
                        live_slots = digits_reach(v.x, top16) | digits_reach(v.y, top16) << 2 |
                                     digits_reach(v.z, top16) << 4 | digits_reach(v.w, top16) << 6;
                } else if (c < chunks) {  // the first or the last chunk
                    for (uint32_t s = 0; s < 8; ++s) {
                        const unsigned long long e = c * 8 + s;
                        if (e >= a && e - a < n && digits[e - a] >= top16) live_slots |= 1u << s;
                    }
                }
                todo = __reduce_or_sync(0xffffffffu, live_slots);
            }
            // Queue its live tasks, slot by slot and lane by lane, until the queue is full.
            while ((todo | from) != 0 && queued < 32) {
                if (from == 0) {
                    j = (uint32_t)__ffs(todo) - 1;
                    todo &= todo - 1;
                    from = __ballot_sync(0xffffffffu, (live_slots >> j) & 1u);
                }
                const int src = __ffs(from) - 1;
                from &= from - 1;
                const unsigned long long t = __shfl_sync(0xffffffffu, c * 8 - a + j, src);
                if (lane == queued) task = t;
                queued += 1;
            }
            // Place a full queue, and after the last chunk what is left in it.
            const bool end = (todo | from) == 0 && base >= chunks;
            if (queued == 32 || (end && queued != 0)) {
                const bool live = lane < queued;
                unsigned long long key = 0;
                if (live) {
                    float score;
                    score_task<FAST, false>(p, d.alpha[task], d.beta[task], step, (uint32_t)task, &score);
                    key = score_key(score, (uint32_t)task);
                }
                place(key, live);
                queued = 0;
            }
            if (end) break;
        }
    }
    __syncthreads();
    if (has_next) {
        uint32_t* next = d.hist + (unsigned long long)(pass + 1) * BOTS_RADIX_BINS;
        for (uint32_t b = threadIdx.x; b < BOTS_RADIX_BINS; b += blockDim.x)
            if (h[b]) atomicAdd(&next[b], h[b]);
    }
}

extern "C" __global__ void __launch_bounds__(256, 4) radix_filter(Params p, Pool d, unsigned long long cap,
                                                                unsigned long long* out_keys, unsigned long long out_cap, int pass) {
    radix_filter_body<false>(p, d, cap, out_keys, out_cap, pass);
}

extern "C" __global__ void __launch_bounds__(256, 4) radix_filter_fast(Params p, Pool d, unsigned long long cap,
                                                                     unsigned long long* out_keys, unsigned long long out_cap, int pass) {
    radix_filter_body<true>(p, d, cap, out_keys, out_cap, pass);
}

// Bitonic sort, descending, of a[0..len) with len a power of two <= 2048, in one block of 1024 threads.
extern "C" __global__ void __launch_bounds__(1024) bitonic_sort_block(unsigned long long* a, uint32_t len) {
    __shared__ unsigned long long s[2048];
    if (len > 2048) return;
    for (uint32_t i = threadIdx.x; i < len; i += blockDim.x) s[i] = a[i];
    __syncthreads();
    for (uint32_t size = 2; size <= len; size <<= 1) {
        for (uint32_t j = size >> 1; j > 0; j >>= 1) {
            for (uint32_t i = threadIdx.x; i < len; i += blockDim.x) {
                const uint32_t l = i ^ j;
                if (l > i && l < len) {
                    const unsigned long long x = s[i], y = s[l];
                    const bool desc = (i & size) == 0;
                    if (desc ? (x < y) : (x > y)) { s[i] = y; s[l] = x; }
                }
            }
            __syncthreads();
        }
    }
    for (uint32_t i = threadIdx.x; i < len; i += blockDim.x) a[i] = s[i];
}

// One compare-exchange step (size, j) of a global bitonic sort, descending, of a[0..len), len a power of two.
extern "C" __global__ void bitonic_step(unsigned long long* a, unsigned long long len, unsigned long long size,
                                        unsigned long long j) {
    GRID_STRIDE(i, len) {
        const unsigned long long l = i ^ j;
        if (l > i && l < len) {
            const unsigned long long x = a[i], y = a[l];
            const bool desc = (i & size) == 0;
            if (desc ? (x < y) : (x > y)) { a[i] = y; a[l] = x; }
        }
    }
}

// out[i] = task id of key i (key_task), for i < k. A zero key is padding the radix select did not
// overwrite (fewer than k keys came out, which consistent input never causes): flagged as ERR_INTERNAL.
extern "C" __global__ void keys_to_tasks(Pool d, unsigned long long k, uint32_t* out) {
    const unsigned long long* const keys = d.out_keys;
    Scalars* const sc = d.scalars;
    GRID_STRIDE(i, k) {
        const unsigned long long key = keys[i];
        if (key == 0 && atomicCAS(&sc->err_code, 0u, ERR_INTERNAL) == 0u) sc->err_pos = BOTS_RADIX_PASSES;
        out[i] = ~(uint32_t)key;
    }
}

// ---------------------------------------------------------------------------------------------------
// batch_evidence, on the device. CPU twin: evidence::batch_evidence (+ update::scatter_batch).
// Order: batch_validate (grid), batch_reduce (1 block), batch_scatter (grid), batch_finish (1 thread).
// An invalid batch changes nothing but the sticky error record (and the bitmap, restored by batch_scatter).

// Validates each row: id range, the outcome, and duplicates (a bitmap of n bits, whose bits batch_scatter
// clears again). The smallest key wins, which gives evidence::validate_batch's rule in any thread order:
// a row's range or outcome error, (position << 8 | code), ranks before every repeat, (BOTS_REPEAT_FLAG |
// task << 8 | ERR_DUPLICATE), and among repeats the smallest task id wins (which repeat of a task sees
// the bit set first is a race; that the task is repeated is not).
extern "C" __global__ void batch_validate(Params p, Pool d, Batch b) {
    const uint32_t* const tasks = b.tasks;
    Scalars* const sc = d.scalars;
    GRID_STRIDE(i, b.len) {
        const uint32_t t = tasks[i];
        unsigned long long key = BOTS_NO_ERROR;
        if ((unsigned long long)t >= p.n) {
            key = (i << 8) | ERR_OUT_OF_RANGE;
        } else {
            float s, f, n, r;
            const uint32_t code = batch_row(b.rates, b.succ, b.fail, b.counts, p.m, i, &s, &f, &n, &r);
            const uint32_t bit = 1u << (t & 31);
            const uint32_t old = atomicOr(&d.bitmap[t >> 5], bit);
            // The batch lookup of the neighbour kernels (emptied again by nbr_clear, whatever happens).
            const bool entered = !has_graph(p, d) || batch_hash_insert(d.batch_hash, p.nbr_hash_slots, t, (uint32_t)i);
            if (code) {
                key = (i << 8) | code;
            } else if (old & bit) {
                key = BOTS_REPEAT_FLAG | ((unsigned long long)t << 8) | ERR_DUPLICATE;
            } else if (!entered) {
                key = (i << 8) | ERR_INTERNAL;  // a full lookup: never for a batch the host launches
            }
        }
        if (key != BOTS_NO_ERROR) atomicMin(&sc->batch_err, key);
    }
}

// The sum over the block of each thread's `v`, as a tree over red[0..nt) (red[t] += red[t + off] for
// off = nt/2, ..., 1: the order of evidence::batch_sum's lanes). Every thread of the block calls it and
// gets the sum; red may be reused right after (the first barrier orders the previous reads).
__device__ __forceinline__ double block_sum(double v, double* red, uint32_t t, uint32_t nt) {
    __syncthreads();
    red[t] = v;
    __syncthreads();
    for (uint32_t off = nt >> 1; off > 0; off >>= 1) {
        if (t < off) red[t] += red[t + off];
        __syncthreads();
    }
    return red[0];
}

// One block (any power-of-two size <= 1024; the host uses BATCH_LANES = 256). Reduces the batch in f64:
// thread t adds rows t, t + 256, ..., then a tree, the order of evidence::batch_sum on the CPU; the sum of
// r and then of each of the K feature columns, one at a time. Thread 0 puts R on the batch's ladder of
// column means (ladder_segment; a 0 below the one column of K = 1) and forms mu; then the miss of the
// segment of mu. Writes mu, rho, miss; on a flagged batch, records the error instead and changes nothing.
// CPU twin: evidence::batch_evidence.
extern "C" __global__ void batch_reduce(Params p, Pool d, Batch b) {
    const uint32_t* const tasks = b.tasks;
    const float* const rates = b.rates;
    const float* const succ = b.succ;
    const float* const fail = b.fail;
    const uint32_t counts = b.counts;
    const unsigned long long len = b.len;
    const void* const feat = d.feat;
    Scalars* const sc = d.scalars;
    __shared__ double red[1024];
    // The batch's column sums: sums[0..L), L = K + 1 rungs for K = 1 (the null model's 0 first), else K.
    __shared__ double sums[BOTS_MAX_FEATURE_COLUMNS + 1];
    __shared__ float mu_sh;
    const uint32_t t = threadIdx.x;
    const uint32_t nt = blockDim.x;
    if (nt > 1024 || (nt & (nt - 1)) != 0) return;
    const unsigned long long err = sc->batch_err;
    if (err != BOTS_NO_ERROR) {
        if (t == 0 && sc->err_code == 0) {
            sc->err_code = (uint32_t)(err & 0xff);
            if (err & BOTS_REPEAT_FLAG) {  // a repeated task: no position
                sc->err_task = (uint32_t)(err >> 8);
                sc->err_pos = 0xffffffffu;
                return;
            }
            const unsigned long long pos = err >> 8;
            sc->err_pos = (uint32_t)pos;
            if (pos < len) {
                sc->err_task = tasks[pos];
                sc->err_v0 = counts ? succ[pos] : rates[pos];
                sc->err_v1 = counts ? fail[pos] : 0.0f;
            }
        }
        return;
    }
    if (!has_features(p, feat) || len == 0) return;  // mu, rho unchanged
    const uint32_t K = p.n_features;                  // 1..=BOTS_MAX_FEATURE_COLUMNS (has_features)
    const uint32_t base = K == 1 ? 1u : 0u;           // K = 1: sums[0] is the null model's 0
    double sr = 0.0;
    for (unsigned long long i = t; i < len; i += nt) {
        float s, f, n, r;
        batch_row(rates, succ, fail, counts, p.m, i, &s, &f, &n, &r);  // valid: checked by batch_validate
        sr += (double)r;
    }
    const double R = block_sum(sr, red, t, nt);
    for (uint32_t c = 0; c < K; ++c) {
        double sf = 0.0;
        for (unsigned long long i = t; i < len; i += nt) sf += (double)load_feature(feat, p.feature_form, p.n, c, tasks[i]);
        const double F = block_sum(sf, red, t, nt);
        if (t == 0) sums[base + c] = F;
    }
    if (t == 0) {
        if (base) sums[0] = 0.0;
        const double inv = 1.0 / (double)len;
        const uint32_t e = ladder_segment(R * inv, sums, base + K, inv);
        const double sw = sums[e], ss = sums[e + 1];
        const double x = (R * inv - sw * inv) / (ss * inv - sw * inv + BOTS_MU_EPS);
        const float mu_est = e == 0 ? (float)x : (float)((double)e + x);
        mu_sh = sc->mu_set ? p.gamma * sc->mu + (1.0f - p.gamma) * mu_est : mu_est;
    }
    __syncthreads();
    const float mu = mu_sh;
    const SegmentColumns cols = segment_columns(p, feat, segment(mu, K), 1u);
    double miss = 0.0;
    for (unsigned long long i = t; i < len; i += nt) {
        float s, f, n, r;
        batch_row(rates, succ, fail, counts, p.m, i, &s, &f, &n, &r);
        miss += (double)fabsf(segment_rate(cols, tasks[i]) - r);
    }
    const double M = block_sum(miss, red, t, nt);
    if (t == 0) {
        const double m = M * (1.0 / (double)len);
        sc->mu = mu;
        sc->mu_set = 1;
        if (p.adaptive_rho && m >= BOTS_ADAPTIVE_RHO_MISS) sc->rho = sc->rho / 2.0f;
        sc->miss = (float)m;
        sc->miss_set = 1;
    }
}

// Explicit evidence of each row (update_task with the new rho), marked by storing -alpha; clears the
// row's duplicate bit whatever happened.
extern "C" __global__ void batch_scatter(Params p, Pool d, Batch b) {
    const uint32_t* const tasks = b.tasks;
    const Scalars* const sc = d.scalars;
    const bool ok = sc->batch_err == BOTS_NO_ERROR;
    const float rho = sc->rho;
    GRID_STRIDE(i, b.len) {
        const uint32_t t = tasks[i];
        if ((unsigned long long)t >= p.n) continue;
        if (ok) {
            float s, f, n, r;
            batch_row(b.rates, b.succ, b.fail, b.counts, p.m, i, &s, &f, &n, &r);
            float a0, b0, na, nb;
            task_prior(p, d.alpha0, d.beta0, t, &a0, &b0);
            update_task(d.alpha[t], d.beta[t], a0, b0, p.lambda, rho, s, f, n, r, &na, &nb);
            d.alpha[t] = -na;
            d.beta[t] = nb;
        }
        atomicAnd(&d.bitmap[t >> 5], ~(1u << (t & 31)));
    }
}

// ---------------------------------------------------------------------------------------------------
// Neighbour evidence (docs/EVIDENCE-SOURCES.md §2.3-2.4). CPU twin: update::apply_neighbours.
// Launched after batch_scatter, before batch_finish: nbr_push (over the batch's reverse edges),
// nbr_pull_apply (over the touched list), nbr_clear (over the batch lookup). Each does nothing for a
// flagged batch or a pool without a graph, so the launches never depend on a count read back: a
// captured step replays as it was captured.

// Thread x of len · nbr_max_in takes reverse edge e = x % nbr_max_in of batch row r = x / nbr_max_in:
// the task i with tasks[r] in N(i). A task not itself in the batch is claimed once (its bit in `claim`)
// and appended to `touched` by the thread that claimed it (the list's order depends on thread order;
// each task's update does not).
extern "C" __global__ void nbr_push(Params p, Pool d, Batch b) {
    Scalars* const sc = d.scalars;
    if (!has_graph(p, d) || p.nbr_max_in == 0 || sc->batch_err != BOTS_NO_ERROR) return;
    const unsigned long long per = p.nbr_max_in;
    GRID_STRIDE(x, b.len * per) {
        const unsigned long long r = x / per, e = x % per;
        const uint32_t t = b.tasks[r];
        if ((unsigned long long)t >= p.n) continue;  // never: the batch was validated
        const unsigned long long lo = d.rev_off[t], hi = d.rev_off[t + 1];
        if (hi < lo || e >= hi - lo) continue;  // R(t) is shorter than nbr_max_in
        const uint32_t i = d.rev_ids[lo + e];
        if ((unsigned long long)i >= p.n) continue;  // never: checked ids
        if (batch_lookup(d.batch_hash, p.nbr_hash_slots, i) < b.len) continue;  // a batch task: its own evidence
        const uint32_t bit = 1u << (i & 31);
        if (atomicOr(&d.claim[i >> 5], bit) & bit) continue;  // claimed through another batch task
        const uint32_t slot = atomicAdd(&sc->n_touched, 1u);
        if ((unsigned long long)slot < p.nbr_touched_cap) {
            d.touched[slot] = i;
        } else {  // never: the host sizes the list for len · nbr_max_in tasks (at most n)
            atomicAnd(&d.claim[i >> 5], ~bit);
            if (atomicCAS(&sc->err_code, 0u, ERR_INTERNAL) == 0u) sc->err_pos = 0xfffffffeu;
        }
    }
}

// Each touched task's whole update (update::apply_neighbours): the pending pool-wide part with the NEW
// mu and rho (apply_pending_task), plus c·S and c·F from its batch neighbours (neighbour_sums,
// neighbour_scale), stored marked (-alpha) like a batch task, so the next fused pass only unmarks it.
// Clears the task's claim. Launched over the list's capacity; threads past the count do nothing.
extern "C" __global__ void nbr_pull_apply(Params p, Pool d, Batch b) {
    const Scalars* const sc = d.scalars;
    if (!has_graph(p, d) || sc->batch_err != BOTS_NO_ERROR) return;
    unsigned long long count = sc->n_touched;
    if (count > p.nbr_touched_cap) count = p.nbr_touched_cap;
    const float mu = sc->mu;
    const uint32_t mu_set = sc->mu_set;
    const float rho = sc->rho;
    const SegmentColumns cols = segment_columns(p, d.feat, segment(mu, p.n_features), mu_set);
    GRID_STRIDE(x, count) {
        const uint32_t i = d.touched[x];
        if ((unsigned long long)i >= p.n) continue;  // never: nbr_push wrote ids < n
        float a = d.alpha[i];
        float bt = d.beta[i];
        apply_pending_task(p, d.alpha, d.beta, d.alpha0, d.beta0, cols, rho, i, a, bt);
        float W, S, F;
        neighbour_sums(p, d, b, i, &W, &S, &F);
        const float c = neighbour_scale(p.eta, W);
        d.alpha[i] = -(a + c * S);
        d.beta[i] = bt + c * F;
        atomicAnd(&d.claim[i >> 5], ~(1u << (i & 31)));
    }
}

// Empties the batch lookup and the touched count for the next batch (after every batch, valid or not).
extern "C" __global__ void nbr_clear(Params p, Pool d) {
    if (!has_graph(p, d)) return;
    if (blockIdx.x == 0 && threadIdx.x == 0) d.scalars->n_touched = 0;
    GRID_STRIDE(s, p.nbr_hash_slots) d.batch_hash[s] = BOTS_HASH_EMPTY;
}

// Advances the step and leaves the pool-wide part pending, for a valid batch; resets the batch error.
extern "C" __global__ void batch_finish(Pool d) {
    Scalars* const sc = d.scalars;
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    if (sc->batch_err == BOTS_NO_ERROR) {
        sc->step += 1;
        sc->pending = 1;
    }
    sc->batch_err = BOTS_NO_ERROR;
}
