// Drives kernels/bots.cu compiled for the host (cuda_shim.h) through the launch sequence of
// src/backend/cuda/, on a deterministic scenario, and prints what it selected and the final state in
// the format of scripts/emu/twin (the CPU backend on the same scenario); run.sh diffs the two.
//
// usage: emu N BATCH STEPS TAU DO_SAMPLE RHO ADAPTIVE FEATURES COUNTS PRIOR_STRENGTH(-1 = none) [nbr=K:ETA] [K...]
// FEATURES: 0 none, 1 f16 (multiples of 1/64), 2 f32 (multiples of 1/10: not f16 values), each with two
// columns; FORM:C for C columns (e.g. 1:3, 2:5): column c of task t is min(1, w + x_c), w and x_c as
// below (not monotone in c: the batch ladder's first-bracket rule is exercised too).
// nbr=K:ETA: a neighbour graph of K slots per row (graph_rows, the same rows as the twin's) and
// neighbour_weight ETA; the neighbour kernels run after batch_scatter, as src/backend/cuda/launch.rs.
#include "cuda_shim.h"
#include "../../kernels/bots.cu"
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

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
    std::vector<uint16_t> f16, digits;  // the C feature columns back to back, in one of the two forms
    std::vector<float> f32;
    std::vector<uint32_t> bitmap, hist, out_tasks;
    std::vector<unsigned long long> cand, out_keys;
    Scalars sc{};
    unsigned long long cand_cap;
    bool pending = false;
    uint32_t G = 3, B = 64;  // small grids: exercise the grid-stride loops

    float* A0() { return a0.empty() ? nullptr : a0.data(); }
    float* B0() { return b0.empty() ? nullptr : b0.data(); }
    // The feature columns in the form Params::feature_form says.
    const void* FEAT() { return p.feature_form == BOTS_FEATURES_F32 ? (const void*)f32.data() : p.feature_form == BOTS_FEATURES_F16 ? (const void*)f16.data() : nullptr; }

    // The pool's buffers as the kernels take them (out_keys: the verb's own, sized by select()).
    Pool D() {
        if (nbr_ids.empty())
            return Pool{alpha.data(), beta.data(), A0(), B0(), FEAT(), &sc, digits.data(), bitmap.data(), hist.data(),
                        cand.data(), out_keys.data()};
        return Pool{alpha.data(), beta.data(), A0(), B0(), FEAT(), &sc, digits.data(), bitmap.data(), hist.data(),
                    cand.data(), out_keys.data(), nbr_ids.data(), nbr_w.data(), rev_off.data(), rev_ids.data(),
                    claim.data(), touched.data(), hash.data()};
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
        emu_launch(G, B, update_sample_score, p, d);
        pending = false;
        for (int pass = 0; pass < 6; ++pass) {
            emu_launch(1, 1024, radix_find_bin, d, pass, cand_cap);
            emu_launch(G, B, radix_filter, p, d, cand_cap, out_keys.data(), k, pass);
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

static unsigned bits(float f) { return __float_as_uint(f); }

int main(int argc, char** argv) {
    if (argc < 11) { fprintf(stderr, "usage: see emu_main.cpp\n"); return 1; }
    const unsigned long long n = strtoull(argv[1], 0, 10);
    const unsigned batch = atoi(argv[2]), steps = atoi(argv[3]);
    const float tau = atof(argv[4]);
    const int do_sample = atoi(argv[5]);
    const float rho = atof(argv[6]);
    const int adaptive = atoi(argv[7]), features = atoi(argv[8]), counts = atoi(argv[9]);
    const char* colon = strchr(argv[8], ':');
    const uint32_t C = features == 0 ? 0u : colon ? (uint32_t)atoi(colon + 1) : 2u;
    if (features != 0 && (C < 1 || C > BOTS_MAX_FEATURE_COLUMNS)) { fprintf(stderr, "bad column count\n"); return 1; }
    const float c = atof(argv[10]);
    std::vector<unsigned long long> ks;
    uint32_t nbr_k = 0;
    float eta = 0.0f;
    for (int i = 11; i < argc; ++i) {
        if (strncmp(argv[i], "nbr=", 4) == 0) {
            nbr_k = (uint32_t)atoi(argv[i] + 4);
            const char* c2 = strchr(argv[i], ':');
            eta = c2 ? (float)atof(c2 + 1) : 0.5f;
            if (nbr_k < 1 || nbr_k > 13) { fprintf(stderr, "nbr=K:ETA needs K in 1..=13\n"); return 1; }
            continue;
        }
        ks.push_back(strtoull(argv[i], 0, 10));
    }
    Emu e;
    e.p = Params{7, n, 0.1f, 16.0f, 0.5f, tau, 0.9f, 1.0f, 1.0f, (uint32_t)do_sample, (uint32_t)adaptive, (uint32_t)features, C, 0};
    for (uint32_t col = 0; col < C; ++col) {
        for (unsigned long long t = 0; features == 1 && t < n; ++t) {
            const float w = (float)((t * 37) % 65) / 64.0f;
            e.f16.push_back(f2h_exact(std::min(1.0f, w + (float)((t * 11 * col) % 33) / 64.0f)));
        }
        for (unsigned long long t = 0; features == 2 && t < n; ++t) {
            const float w = (float)((t * 37) % 11) / 10.0f;
            e.f32.push_back(std::min(1.0f, w + (float)((t * 11 * col) % 7) / 10.0f));
        }
    }
    e.alpha.assign(n, 1.0f);
    e.beta.assign(n, 1.0f);
    if (c >= 0.0f) {
        for (unsigned long long t = 0; t < n; ++t) {
            const float fs = C ? load_feature(e.FEAT(), e.p.feature_form, n, C - 1, t) : 0.0f;  // the strongest column
            e.a0.push_back(1.0f + c * fs);
            e.b0.push_back(1.0f + c * (1.0f - fs));
        }
        e.alpha = e.a0;
        e.beta = e.b0;
    }
    e.digits.assign(n, 0);
    e.bitmap.assign((n + 31) / 32, 0);
    e.hist.assign(7 * 2048, 0);
    e.cand_cap = std::min<unsigned long long>(n, std::max<unsigned long long>(8, 2 * batch));  // tiny: exercise pool-mode passes
    e.cand.assign(2 * e.cand_cap, 0);
    e.sc.rho = rho;
    e.sc.batch_err = BOTS_NO_ERROR;
    if (nbr_k) e.set_graph(nbr_k, eta, std::max<unsigned long long>(batch, 4));  // 4: the invalid batches below
    for (unsigned s = 0; s < steps; ++s) {
        std::vector<uint32_t> sel = e.select(batch);
        printf("SEL %u k=%u", s, batch);
        for (auto t : sel) printf(" %u", t);
        printf("\n");
        if (s % 5 == 0)
            for (auto k : ks) {
                if (k < 1 || k > n) continue;
                auto o = e.select(k);
                printf("SEL %u k=%llu", s, k);
                for (auto t : o) printf(" %u", t);
                printf("\n");
            }
        std::vector<float> a, b;
        for (auto t : sel) {
            if (counts) {
                const unsigned nk = 1 + (t * 3 + s) % 16, sk = (t * 5 + s * 11) % (nk + 1);
                a.push_back((float)sk);
                b.push_back((float)(nk - sk));
            } else {
                a.push_back((float)((t * 7 + s * 13) % 17) / 16.0f);
            }
        }
        e.update(sel, a, b, counts);
        if (e.sc.err_code) { fprintf(stderr, "device error %u at %u\n", e.sc.err_code, e.sc.err_pos); return 3; }
    }
    e.flush();
    // Invalid batches: each must set the expected error code and change nothing (checked bit for bit).
    if (n >= 4) {
        const float m = 16.0f;
        struct Bad { const char* what; std::vector<uint32_t> t; std::vector<float> a, b; bool counts; uint32_t code; };
        std::vector<Bad> bad = {
            {"out of range", {1, (uint32_t)n, 2}, {1, 1, 1}, {1, 1, 1}, true, ERR_OUT_OF_RANGE},
            {"max id", {0xffffffffu}, {1}, {1}, true, ERR_OUT_OF_RANGE},
            {"duplicate", {3, 1, 3}, {1, 1, 1}, {1, 1, 1}, true, ERR_DUPLICATE},
            {"NaN count", {1, 2}, {1, NAN}, {1, 1}, true, ERR_NOT_FINITE},
            {"negative", {1, 2}, {1, 1}, {-1, 1}, true, ERR_NEGATIVE},
            {"empty", {1, 2}, {0, 1}, {0, 1}, true, ERR_EMPTY},
            {"too many", {1, 2}, {m, 1}, {1, 1}, true, ERR_TOO_MANY},
            {"rate", {1, 2}, {0.5f, 1.5f}, {}, false, ERR_PASS_RATE},
            {"NaN rate", {1, 2}, {NAN, 0.5f}, {}, false, ERR_PASS_RATE},
        };
        for (auto& x : bad) {
            const auto a = e.alpha, b = e.beta;
            const Scalars before = e.sc;
            e.update(x.t, x.a, x.b, x.counts);
            e.flush();
            bool same = a == e.alpha && b == e.beta && before.step == e.sc.step && bits(before.mu) == bits(e.sc.mu) &&
                        before.mu_set == e.sc.mu_set && bits(before.rho) == bits(e.sc.rho) && e.sc.pending == 0;
            for (auto w : e.bitmap) same = same && w == 0;
            for (auto w : e.claim) same = same && w == 0;
            for (auto h : e.hash) same = same && h == BOTS_HASH_EMPTY;
            same = same && e.sc.n_touched == 0;
            if (!same || e.sc.err_code != x.code || e.sc.batch_err != BOTS_NO_ERROR) {
                fprintf(stderr, "invalid batch '%s': state changed or code %u != %u\n", x.what, e.sc.err_code, x.code);
                return 5;
            }
            emu_launch(1, 1, clear_error, e.D());
        }
        fprintf(stderr, "invalid batches: %zu rejected, state unchanged\n", bad.size());
    }
    printf("GLOBALS step=%llu mu=%s%08x rho=%08x\n", e.sc.step, e.sc.mu_set ? "" : "none:", bits(e.sc.mu), bits(e.sc.rho));
    for (unsigned long long t = 0; t < n; ++t) printf("T %llu %08x %08x\n", t, bits(e.alpha[t]), bits(e.beta[t]));
    // The bitmap must be clean after every batch (and the claims, the batch lookup and the touched count).
    for (auto w : e.bitmap) if (w) { fprintf(stderr, "bitmap not cleared\n"); return 4; }
    for (auto w : e.claim) if (w) { fprintf(stderr, "claim bitmap not cleared\n"); return 4; }
    for (auto h : e.hash) if (h != BOTS_HASH_EMPTY) { fprintf(stderr, "batch lookup not emptied\n"); return 4; }
    if (e.sc.n_touched) { fprintf(stderr, "touched count not reset\n"); return 4; }
    return 0;
}
