// The fast kernels' statistical check (KernelMode::Fast): the REAL fast device code of kernels/distr.cuh and
// kernels/bots.cu compiled for the host, with cuda_shim.h's stand-ins for the approximate intrinsics (libm
// perturbed by about the hardware's error bounds). Fast draws are not the CPU's bits, so instead of a diff:
//
// 1. Beta draws (sample_beta_fast, the function update_sample_score_fast calls), N = 2^20 per shape pair
//    over {0.01, 0.1, 1, 10, 100, 10^4}, Beta(0.01, 0.01) included, one task stream each (seed, step 3,
//    task i): the mean within 5 standard errors of a/(a+b) (SE = sqrt(V/N), V the Beta variance), the
//    variance within 5 standard errors of V (SE = sqrt((mu4 - V^2)/N), mu4 the true 4th central moment from
//    the raw moments prod (a+i)/(a+b+i)), each plus the f32 resolution of the draws (2^-20 relative: 1e-6
//    on the mean, 2 sigma 1e-6 on the variance); and the one-sample Kolmogorov-Smirnov statistic against
//    the regularized incomplete beta below the alpha = 1e-3 critical value 1.9495/sqrt(N) (asymptotic
//    Kolmogorov distribution), taken over the distinct draws in [1e-30, 1 - 1e-5], as the CPU twin's test
//    (src/twin/distr/beta.rs): f32 cannot represent the extreme ends, which are pooled (a supremum over
//    fewer points: the critical value stays valid).
// 2. Gumbel noise (sample_gumbel_fast): KS against exp(-exp(-x)), and the upper tail P(G > 7) =
//    1 - exp(-e^-7) within 5 binomial standard errors (the tail decides a Gumbel-top-k selection).
// 3. A fast pool end to end (emu_pool.h with fast = true: update_sample_score_fast, radix_filter_fast and
//    the batch kernels), select + update for 25 steps at tau 0 and 0.3: k distinct ids < n every step, no
//    device error.
// 4. The selection's statistics: one pool state (fixed alpha, beta), S = 200 selections of k = 64 at steps
//    100.. (independent draws: the step is part of every counter) in exact and in fast mode. Per selection
//    M = the mean over the selected tasks of |alpha/(alpha + beta) - target|; the S values of each mode are
//    i.i.d., so the two means must agree within 5 standard errors of their difference,
//    5 sqrt(s_e^2/S + s_f^2/S) (sample variances).
// Exit status 0 when every check passes; each check prints one line.
#include "emu_pool.h"

#include <cmath>
#include <random>

static int failures = 0;

static void check(bool ok, const char* fmt, double a, double b, double c, const char* what) {
    std::printf("%s: ", ok ? "ok" : "FAILED");
    std::printf(fmt, a, b, c);
    std::printf(" (%s)\n", what);
    if (!ok) ++failures;
}

// Continued fraction of the incomplete beta (Numerical Recipes' betacf, modified Lentz), long double.
static long double betacf(long double a, long double b, long double x) {
    const long double tiny = 1e-4000L;
    long double c = 1.0L, d = 1.0L - (a + b) * x / (a + 1.0L);
    if (std::fabs(d) < tiny) d = tiny;
    d = 1.0L / d;
    long double h = d;
    for (int m = 1; m < 100000; ++m) {
        const long double m2 = 2.0L * m;
        long double aa = m * (b - m) * x / ((a + m2 - 1.0L) * (a + m2));
        d = 1.0L + aa * d;
        if (std::fabs(d) < tiny) d = tiny;
        c = 1.0L + aa / c;
        if (std::fabs(c) < tiny) c = tiny;
        d = 1.0L / d;
        h *= d * c;
        aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0L));
        d = 1.0L + aa * d;
        if (std::fabs(d) < tiny) d = tiny;
        c = 1.0L + aa / c;
        if (std::fabs(c) < tiny) c = tiny;
        d = 1.0L / d;
        const long double del = d * c;
        h *= del;
        if (std::fabs(del - 1.0L) < 1e-17L) break;
    }
    return h;
}

// The regularized incomplete beta I_x(a, b), the Beta(a, b) CDF.
static double beta_cdf(double a, double b, double x) {
    if (x <= 0.0) return 0.0;
    if (x >= 1.0) return 1.0;
    const long double A = a, B = b, X = x;
    const long double lbt = std::lgamma(A + B) - std::lgamma(A) - std::lgamma(B) + A * std::log(X) + B * std::log1p(-X);
    if (X < (A + 1.0L) / (A + B + 2.0L)) return (double)(std::exp(lbt) * betacf(A, B, X) / A);
    return (double)(1.0L - std::exp(lbt) * betacf(B, A, 1.0L - X) / B);
}

// sup |F_n - F| over the distinct sorted draws in [lo, hi] (every draw counts in F_n).
template <class F> static double ks_one_sample(std::vector<double>& xs, double lo, double hi, F cdf) {
    std::sort(xs.begin(), xs.end());
    const double len = (double)xs.size();
    double d = 0.0;
    for (size_t i = 0; i < xs.size();) {
        size_t j = i;
        while (j < xs.size() && xs[j] == xs[i]) ++j;
        if (xs[i] >= lo && xs[i] <= hi) {
            const double f = cdf(xs[i]);
            d = std::max(d, std::max(std::fabs(f - (double)i / len), std::fabs((double)j / len - f)));
        }
        i = j;
    }
    return d;
}

static const size_t N = 1u << 20;
static const double KS_CRIT = 1.9495 / std::sqrt((double)N);  // alpha = 1e-3, asymptotic

static void beta_draws() {
    const double shapes[][2] = {{0.01, 0.01}, {0.01, 1.0}, {0.1, 0.1}, {0.1, 10.0}, {1.0, 1.0}, {1.0, 100.0},
                                {10.0, 0.1},  {10.0, 10.0}, {100.0, 1e4}, {1e4, 1e4}, {1e4, 0.01}, {1.0, 1e4}};
    uint64_t seed = 1000;
    for (const auto& s : shapes) {
        const double a = s[0], b = s[1];
        std::vector<double> xs(N);
        bool in_range = true;
        for (size_t i = 0; i < N; ++i) {
            float x;
            sample_beta_fast<false>((float)a, (float)b, TaskStream(seed, 3, (uint32_t)i), &x);
            in_range = in_range && x >= 0.0f && x <= 1.0f;
            xs[i] = x;
        }
        ++seed;
        // Raw moments E[X^k] = prod_{i<k} (a + i)/(a + b + i), central ones from them (long double).
        long double raw[5] = {1.0L};
        for (int k = 1; k <= 4; ++k) raw[k] = raw[k - 1] * ((long double)a + k - 1) / ((long double)a + b + k - 1);
        const long double m = raw[1];
        const long double v = raw[2] - m * m;
        const long double mu4 = raw[4] - 4 * m * raw[3] + 6 * m * m * raw[2] - 3 * m * m * m * m;
        long double sum = 0.0L;
        for (double x : xs) sum += x;
        const long double mean = sum / N;
        long double ss = 0.0L;
        for (double x : xs) ss += (x - mean) * (x - mean);
        const long double var = ss / N;
        const double se_m = std::sqrt((double)(v / N)), se_v = std::sqrt((double)((mu4 - v * v) / N));
        char what[96];
        std::snprintf(what, sizeof what, "Beta(%g, %g): mean, 5 se + 1e-6", a, b);
        check(in_range && std::fabs((double)(mean - m)) < 5 * se_m + 1e-6, "mean %.7f vs %.7f, |diff| / se = %.2f",
              (double)mean, (double)m, std::fabs((double)(mean - m)) / se_m, what);
        std::snprintf(what, sizeof what, "Beta(%g, %g): variance, 5 se + 2 sigma 1e-6", a, b);
        check(std::fabs((double)(var - v)) < 5 * se_v + 2e-6 * std::sqrt((double)v) + 1e-12,
              "variance %.4e vs %.4e, |diff| / se = %.2f", (double)var, (double)v, std::fabs((double)(var - v)) / se_v, what);
        const double d = ks_one_sample(xs, 1e-30, 1.0 - 1e-5, [&](double x) { return beta_cdf(a, b, x); });
        std::snprintf(what, sizeof what, "Beta(%g, %g): KS over [1e-30, 1 - 1e-5]", a, b);
        check(d < KS_CRIT, "D = %.5f, critical %.5f%.0f", d, KS_CRIT, 0.0, what);
    }
}

static void gumbel_draws() {
    std::vector<double> xs(N);
    size_t tail = 0;
    for (size_t i = 0; i < N; ++i) {
        xs[i] = sample_gumbel_fast(TaskStream(77, 5, (uint32_t)i));
        tail += xs[i] > 7.0;
    }
    const double p = -std::expm1(-std::exp(-7.0));
    const double se = std::sqrt(p * (1 - p) / N);
    check(std::fabs((double)tail / N - p) < 5 * se, "P(G > 7) = %.3e vs %.3e, |diff| / se = %.2f", (double)tail / N, p,
          std::fabs((double)tail / N - p) / se, "Gumbel upper tail, 5 se");
    const double d = ks_one_sample(xs, -INFINITY, INFINITY, [](double x) { return std::exp(-std::exp(-x)); });
    check(d < KS_CRIT, "D = %.5f, critical %.5f%.0f", d, KS_CRIT, 0.0, "Gumbel: KS");
}

// A pool of n tasks with features (f32, two columns) and the constant prior.
static Emu make_pool(unsigned long long n, float tau, bool fast) {
    Emu e;
    e.fast = fast;
    e.p = Params{7, n, 0.1f, 16.0f, 0.5f, tau, 0.9f, 1.0f, 1.0f, 1u, 0u, BOTS_FEATURES_F32, 2u, 0};
    for (uint32_t col = 0; col < 2; ++col)
        for (unsigned long long t = 0; t < n; ++t) e.f32.push_back(std::min(1.0f, (float)((t * 37) % 11) / 10.0f + 0.1f * col));
    e.alpha.assign(n, 1.0f);
    e.beta.assign(n, 1.0f);
    e.alloc_digits(n);
    e.bitmap.assign((n + 31) / 32, 0);
    e.hist.assign(7 * 2048, 0);
    e.cand_cap = std::min<unsigned long long>(n, 256);
    e.cand.assign(2 * e.cand_cap, 0);
    e.sc.rho = 0.1f;
    e.sc.batch_err = BOTS_NO_ERROR;
    return e;
}

static bool distinct_in_range(const std::vector<uint32_t>& ids, unsigned long long n) {
    std::vector<uint32_t> s = ids;
    std::sort(s.begin(), s.end());
    return std::adjacent_find(s.begin(), s.end()) == s.end() && (s.empty() || s.back() < n);
}

static void pool_loop(float tau) {
    const unsigned long long n = 2000;
    const unsigned k = 32;
    Emu e = make_pool(n, tau, true);
    std::mt19937_64 rng(11);
    bool ok = true;
    unsigned steps = 0;
    for (; steps < 25 && ok; ++steps) {
        const auto sel = e.select(k);
        ok = sel.size() == k && distinct_in_range(sel, n);
        std::vector<float> a, b;
        for (auto t : sel) {
            std::binomial_distribution<int> bin(16, (double)((t * 37) % 101) / 100.0);
            a.push_back((float)bin(rng) / 16.0f);
        }
        e.update(sel, a, b, false);
        ok = ok && e.sc.err_code == 0;
    }
    char what[80];
    std::snprintf(what, sizeof what, "fast pool, select + update, n = 2000, k = 32, tau = %g", tau);
    check(ok, "%.0f of 25 steps: k distinct ids < n, no device error%.0f%.0f", (double)steps, 0.0, 0.0, what);
}

static void selection_statistic() {
    const unsigned long long n = 2000;
    const unsigned k = 64, S = 200;
    std::vector<float> alpha(n), beta(n);
    for (unsigned long long t = 0; t < n; ++t) {
        alpha[t] = t % 10 == 0 ? 0.3f : 1.0f + (float)((t * 7) % 23);
        beta[t] = t % 15 == 0 ? 0.05f : 1.0f + (float)((t * 11) % 19);
    }
    double mean[2], var[2];
    bool ok = true;
    for (int mode = 0; mode < 2; ++mode) {
        Emu e = make_pool(n, 0.0f, mode == 1);
        e.alpha = alpha;
        e.beta = beta;
        std::vector<double> ms;
        for (unsigned s = 0; s < S; ++s) {
            e.sc.step = 100 + s;
            const auto sel = e.select(k);
            ok = ok && sel.size() == k && distinct_in_range(sel, n) && e.sc.err_code == 0;
            double m = 0.0;
            for (auto t : sel) m += std::fabs((double)alpha[t] / ((double)alpha[t] + beta[t]) - 0.5);
            ms.push_back(m / k);
        }
        double sum = 0.0, ss = 0.0;
        for (double m : ms) sum += m;
        mean[mode] = sum / S;
        for (double m : ms) ss += (m - mean[mode]) * (m - mean[mode]);
        var[mode] = ss / (S - 1);
    }
    check(ok, "%.0f selections of k = %.0f per mode%.0f: distinct ids < n", (double)S, (double)k, 0.0,
          "selection statistic: ids");
    const double se = std::sqrt(var[0] / S + var[1] / S);
    check(std::fabs(mean[1] - mean[0]) < 5 * se, "mean |mu - target| of the selected: fast %.5f, exact %.5f, |diff| / se = %.2f",
          mean[1], mean[0], std::fabs(mean[1] - mean[0]) / se, "selection statistic, 5 se of the difference");
}

int main() {
    beta_draws();
    gumbel_draws();
    pool_loop(0.0f);
    pool_loop(0.3f);
    selection_statistic();
    std::printf("%s\n", failures ? "fast stats: FAILED" : "fast stats: all passed");
    return failures ? 1 : 0;
}
