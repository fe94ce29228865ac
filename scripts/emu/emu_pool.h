// The kernels compiled for the host (cuda_shim.h), driven through the launch sequence of src/backend/cuda/:
// a pool's buffers and its select / update verbs (Emu), shared by emu_main.cpp (the bit-for-bit diff against
// the CPU twin) and fast_stats.cpp (the fast kernels' statistical check). `fast` launches the fast entries
// (update_sample_score_fast, radix_filter_fast), as the CUDA backend does in KernelMode::Fast.
#pragma once
#include "cuda_shim.h"
#include "../../kernels/bots.cu"
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>


static uint16_t f2h_exact(float v) {  // v = j/64 in [0, 1]: exact in f16
    if (v == 0.0f) return 0;
    int e;
    float m = std::frexp(v, &e);  // v = m * 2^e, m in [0.5, 1)
    uint32_t mant = (uint32_t)std::ldexp(m, 11) & 0x3ff;
    return (uint16_t)(((e - 1 + 15) << 10) | mant);
}

// The scenario's neighbour graph, row t: L = min(1 + 5t mod K, n - 1) ids, distinct and != t, drawn by
// linear probing from (t·2654435761 + s·40503 + 12345) mod n, the first attempt of every fourth slot
// from the 8 lowest ids instead (hubs); weights (100 - 7s - t mod 5)/100, strictly decreasing in s, so
// the rows are canonical as given (Neighbours::from_lists keeps them). Twin: scripts/emu/twin graph_rows.
static void graph_rows(unsigned long long n, uint32_t K, std::vector<uint32_t>& ids, std::vector<float>& w) {
    ids.assign(n * K, BOTS_NO_NEIGHBOUR);
    w.assign(n * K, 0.0f);
    for (unsigned long long t = 0; t < n; ++t) {
        const unsigned long long L = std::min<unsigned long long>(1 + (t * 5) % K, n - 1);
        for (unsigned long long s = 0; s < L; ++s) {
            const unsigned long long base = t * 2654435761ull + s * 40503ull + 12345ull;
            for (unsigned long long a = 0;; ++a) {
                const unsigned long long j = (a == 0 && (t + s) % 4 == 0) ? base % std::min<unsigned long long>(n, 8) : (base + a) % n;
                bool taken = j == t;
                for (unsigned long long q = 0; q < s; ++q) taken = taken || ids[t * K + q] == (uint32_t)j;
                if (taken) continue;
                ids[t * K + s] = (uint32_t)j;
                w[t * K + s] = (float)(100 - 7 * s - t % 5) / 100.0f;
                break;
            }
        }
    }
}

struct Emu {
    Params p{};
    // The neighbour graph (empty: none): rows, reverse CSR (Neighbours::with_reverse), claims, touched list,
    // batch lookup.
    std::vector<uint32_t> nbr_ids, rev_ids, claim, touched;
    std::vector<float> nbr_w;
    std::vector<unsigned long long> rev_off, hash;
    std::vector<float> alpha, beta, a0, b0;
    std::vector<uint16_t> f16;  // the C feature columns back to back, in one of the two forms
    std::vector<uint16_t> digit_store;
    uint16_t* digits = nullptr;  // n digits inside digit_store (alloc_digits)
    std::vector<float> f32;
    std::vector<uint32_t> bitmap, hist, out_tasks;
    // The fused pass's deferred draws, one bit per task (all clear between passes, as cudaMalloc'd zeros).
    std::vector<uint32_t> defer;
    std::vector<unsigned long long> cand, out_keys;
    Scalars sc{};
    unsigned long long cand_cap;
    bool pending = false;
    uint32_t G = 3, B = 64;  // small grids: exercise the grid-stride loops
    bool fast = false;       // KernelMode::Fast: the fast entries of the two sampling kernels

    float* A0() { return a0.empty() ? nullptr : a0.data(); }
    float* B0() { return b0.empty() ? nullptr : b0.data(); }
    // The feature columns in the form Params::feature_form says.
    const void* FEAT() { return p.feature_form == BOTS_FEATURES_F32 ? (const void*)f32.data() : p.feature_form == BOTS_FEATURES_F16 ? (const void*)f16.data() : nullptr; }

    // The digit cache starts n % 8 digits past a 16-byte boundary, so the pool scan's partial first chunk
    // runs too (a GPU buffer starts 256-byte aligned, the emulated driver's 8-byte aligned). Every __ldg
    // (the scan's 16-byte loads of the digits, the pending update's feature loads) must read inside the
    // digits or the feature columns (read_ranges, refreshed at every launch by D()).
    void alloc_digits(unsigned long long n) {
        digit_store.assign(n + 16, 0);
        digits = reinterpret_cast<uint16_t*>(((uintptr_t)digit_store.data() + 15) & ~(uintptr_t)15) + n % 8;
        digits_n = n;
        emu_read_ok = [](unsigned long long p, size_t bytes) {
            for (int i = 0; i < 2; ++i)
                if (p >= readable[i][0] && p + bytes <= readable[i][1]) return true;
            return false;
        };
    }
    unsigned long long digits_n = 0;
    static inline uintptr_t readable[2][2] = {};
    void read_ranges() {
        readable[0][0] = (uintptr_t)digits;
        readable[0][1] = (uintptr_t)(digits + digits_n);
        const bool f32_form = p.feature_form == BOTS_FEATURES_F32;
        const uintptr_t f = (uintptr_t)FEAT();
        readable[1][0] = f;
        readable[1][1] = f == 0 ? 0 : f + (f32_form ? f32.size() * 4 : f16.size() * 2);
    }

    // The pool's buffers as the kernels take them (out_keys: the verb's own, sized by select()).
    Pool D() {
        read_ranges();
        // Params::philox_keys: the round keys of p.seed, as the host computes them (twin::philox::round_keys).
        const TaskStream keys(p.seed, 0, 0);
        for (int i = 0; i < 20; ++i) p.philox_keys[i] = keys.rk[i];
        defer.resize((p.n + 31) / 32, 0u);
        Pool d{alpha.data(), beta.data(), A0(), B0(), FEAT(), &sc, digits, bitmap.data(), hist.data(),
               cand.data(), out_keys.data()};
        if (!nbr_ids.empty())
            d = Pool{alpha.data(), beta.data(), A0(), B0(), FEAT(), &sc, digits, bitmap.data(), hist.data(),
                     cand.data(), out_keys.data(), nbr_ids.data(), nbr_w.data(), rev_off.data(), rev_ids.data(),
                     claim.data(), touched.data(), hash.data()};
        d.defer = defer.data();
        return d;
    }

    // Uploads a graph of K slots per row for batches of up to `cap` tasks (CudaPool's DeviceGraph::upload).
    void set_graph(uint32_t K, float eta, unsigned long long cap) {
        const unsigned long long n = p.n;
        graph_rows(n, K, nbr_ids, nbr_w);
        rev_off.assign(n + 1, 0);
        for (auto j : nbr_ids) if (j != BOTS_NO_NEIGHBOUR) rev_off[j + 1] += 1;
        for (unsigned long long i = 0; i < n; ++i) rev_off[i + 1] += rev_off[i];
        std::vector<unsigned long long> fill(rev_off.begin(), rev_off.end() - 1);
        rev_ids.assign(std::max<unsigned long long>(rev_off[n], 1), 0);
        for (unsigned long long c = 0; c < nbr_ids.size(); ++c)
            if (nbr_ids[c] != BOTS_NO_NEIGHBOUR) rev_ids[fill[nbr_ids[c]]++] = (uint32_t)(c / K);
        unsigned long long max_in = 0;
        for (unsigned long long i = 0; i < n; ++i) max_in = std::max(max_in, rev_off[i + 1] - rev_off[i]);
        cap = std::min(std::max<unsigned long long>(cap, 1), n);
        const unsigned long long tcap = std::max<unsigned long long>(1, std::min(n, cap * max_in));
        unsigned long long slots = 1;
        while (slots < 2 * cap) slots <<= 1;
        claim.assign((n + 31) / 32, 0);
        touched.assign(tcap, 0xffffffffu);
        hash.assign(slots, BOTS_HASH_EMPTY);
        p.nbr_k = K;
        p.eta = eta;
        p.nbr_max_in = (uint32_t)max_in;
        p.nbr_touched_cap = tcap;
        p.nbr_hash_slots = slots;
    }

    void flush() {
        if (!pending) return;
        emu_launch(G, B, apply_pending, p, D());
        emu_launch(1, 1, clear_pending, D());
        pending = false;
    }

    std::vector<uint32_t> select(unsigned long long k) {
        unsigned long long pow2 = 1;
        while (pow2 < k) pow2 <<= 1;
        out_keys.assign(std::max<unsigned long long>(pow2, 1), 0xdeadbeefull);
        out_tasks.assign(k, 0xffffffffu);
        const Pool d = D();
        emu_launch(G, B, select_init, d, k, out_keys.data(), pow2);
        const bool own_prior = A0() != nullptr && B0() != nullptr;  // as the host picks the entry
        emu_launch(G, B, fast ? (own_prior ? update_sample_score_fast_prior : update_sample_score_fast)
                              : (own_prior ? update_sample_score_prior : update_sample_score), p, d);
        emu_launch(G, B, fast ? finish_deferred_fast : finish_deferred, p, d);
        pending = false;
        for (int pass = 0; pass < 6; ++pass) {
            emu_launch(1, 1024, radix_find_bin, d, pass, cand_cap);
            emu_launch(G, B, fast ? radix_filter_fast : radix_filter, p, d, cand_cap, out_keys.data(), k, pass);
        }
        if (sc.n_out != k) { fprintf(stderr, "n_out %llu != k %llu\n", sc.n_out, k); exit(2); }
        if (pow2 > 1) {
            if (pow2 <= 2048) emu_launch(1, 1024, bitonic_sort_block, out_keys.data(), (uint32_t)pow2);
            else
                for (unsigned long long size = 2; size <= pow2; size <<= 1)
                    for (unsigned long long j = size >> 1; j > 0; j >>= 1) emu_launch(G, B, bitonic_step, out_keys.data(), pow2, size, j);
        }
        emu_launch(G, B, keys_to_tasks, d, k, out_tasks.data());
        return out_tasks;
    }

    void update(const std::vector<uint32_t>& t, const std::vector<float>& a, const std::vector<float>& b, bool counts) {
        flush();
        unsigned long long len = t.size();
        const float* r = counts ? nullptr : a.data();
        const float* s = counts ? a.data() : nullptr;
        const float* f = counts ? b.data() : nullptr;
        const Pool d = D();
        const Batch bt{t.data(), r, s, f, len, (uint32_t)counts, 0};
        emu_launch(G, B, batch_validate, p, d, bt);
        emu_launch(1, 256, batch_reduce, p, d, bt);
        emu_launch(G, B, batch_scatter, p, d, bt);
        if (p.nbr_k) {
            emu_launch(G, B, nbr_push, p, d, bt);
            emu_launch(G, B, nbr_pull_apply, p, d, bt);
            emu_launch(G, B, nbr_clear, p, d);
        }
        emu_launch(1, 1, batch_finish, d);
        pending = true;
    }
};
