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
#include "emu_pool.h"

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
    e.alloc_digits(n);
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
