//! Soak test: many steps on a large pool, checking that alpha and beta stay finite, positive and
//! inside the effective-sample-size bounds derived below, and that memory stays flat.
//!
//! Full run (10^5 steps on 10^6 tasks; hours on 2 cores):
//!
//! ```text
//! cargo test --test soak -- --ignored --nocapture
//! ```
//!
//! Scaled runs set `BOTS_SOAK_TASKS`, `BOTS_SOAK_STEPS` and `BOTS_SOAK_CHECK_EVERY` (the state is read
//! back and checked every that many steps, and at the end). `soak_small` runs with every `cargo test`.
//!
//! # The bounds (derived from §4 of BOTS-ALGORITHM.md, not tuned)
//! With pass-rate evidence every task's `S = alpha + beta` follows
//! `S' = (1-lambda)·S + lambda·S0 + c`, where `S0 = alpha0 + beta0` is its prior and
//! `c = (1-rho)·(s_bar + f_bar) + rho·n·(p + 1 - p)` is `m` for a selected task and `rho·m` for any
//! other. Starting from `S_0 = S0` (a fresh pool starts at its prior) and writing
//! `G_t = sum_{j<t} (1-lambda)^j` (`= (1 - (1-lambda)^t)/lambda`, or `t` when lambda = 0):
//!
//! `S0 + rho·m·G_t  <=  S_t  <=  S0 + m·G_t`,
//!
//! tending to `[S0 + rho·m/lambda, S0 + m/lambda]`: the spec's `[rho·m/lambda, m/lambda]` plus the
//! prior, 18 to 162 with the defaults (the spec's numbers include S0 = 2; its formula leaves it out).
//!
//! At the last check two more facts are derived and asserted, so the test sees both ends: the B
//! tasks just updated have `S >= (1-lambda)·L_{t-1} + lambda·S0 + m`; and with `w = (N-1)/B` steps at
//! least one task went unselected for the last w steps, so `min S <= S0 + rho·m/lambda +
//! (1-lambda)^w·m/lambda`. Separately `alpha_t >= alpha0` and `beta_t >= beta0`
//! (induction: `alpha' >= (1-lambda)·alpha0 + lambda·alpha0` as every other term is >= 0).
//!
//! Rounding: each update of alpha (or beta) is 7 f32 operations on nonnegative terms, so it adds a
//! relative error of at most 7u (u = 2^-24) of the new value; the error then decays by (1-lambda)
//! per step. So the accumulated absolute error is at most `7u·S_max·G_t` per parameter, and the
//! check allows `2·7u·S_max·G_t` on S = alpha + beta (and 7u·S_max·G_t on alpha, beta alone).

use bots::{Backend, Config, CpuPool, Evidence, Features};

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Resident set size in bytes, from /proc/self/statm (second field, in pages).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm (Linux only)");
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("statm field 2");
    pages * 4096
}

fn hash01(a: u64, b: u64) -> f32 {
    let mut x = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    (x >> 40) as f32 / (1u64 << 24) as f32
}

struct SoakReport {
    checks: usize,
    rss_warm: u64,
    rss_max: u64,
    rss_end: u64,
    s_min: f64,
    s_max: f64,
    final_min: f64,
    final_max: f64,
}

fn soak(n: usize, steps: usize, check_every: usize) -> SoakReport {
    let cfg = Config::default(); // bots.yaml: B = 32, m = 16, lambda = 0.1, rho = 0.1, tau = 0
    let weak: Vec<f32> = (0..n).map(|k| 0.7 * hash01(k as u64, 1)).collect();
    let strong: Vec<f32> = (0..n).map(|k| (weak[k] + 0.3 * hash01(k as u64, 2)).min(1.0)).collect();
    let truth: Vec<f32> = (0..n).map(|k| weak[k] + 0.5 * (strong[k] - weak[k])).collect();
    let mut pool = CpuPool::new(cfg.clone(), n, Some(Features::from_f32(&weak, &strong).unwrap())).unwrap();
    drop((weak, strong));

    let (lambda, rho, m) = (cfg.lambda as f64, cfg.rho as f64, cfg.m as f64);
    let (a0, b0) = (cfg.prior_alpha as f64, cfg.prior_beta as f64);
    let s0 = a0 + b0;
    let u = 1.0 / (1u64 << 24) as f64;
    let mut g = 0.0f64; // G_t
    let mut report = SoakReport {
        checks: 0,
        rss_warm: 0,
        rss_max: 0,
        rss_end: 0,
        s_min: f64::MAX,
        s_max: 0.0,
        final_min: 0.0,
        final_max: 0.0,
    };
    let keys_bytes = (n * 8) as u64; // the largest per-step transient buffer (selection keys)

    // The allowed growth: one leaked selection-key buffer, but never below 1 MiB. Below that the
    // allocator moves RSS by itself (glibc's arena grew by 40 KiB between two checks of this test on
    // the H100 machine's libc, bench/results/h100-2026-12-06-191a81b/tests.log). 1 MiB still catches
    // any leak of more than 1 MiB / steps bytes a step (about 700 bytes at soak_small's 1500 steps).
    let rss_slack = keys_bytes.max(1 << 20);
    let mut batch_ids: Vec<u32> = Vec::new();
    for t in 1..=steps {
        let tasks = pool.select_batch().unwrap();
        assert_eq!(tasks.len(), cfg.batch);
        batch_ids.clear();
        batch_ids.extend(&tasks);
        // m Bernoulli rollouts of the task's true pass rate, as a count of successes.
        let rates: Vec<f32> = tasks
            .iter()
            .map(|&k| {
                (0..cfg.m).filter(|&i| hash01(((t as u64) << 32) | k as u64, i as u64 + 3) < truth[k as usize]).count()
                    as f32
                    / m as f32
            })
            .collect();
        pool.update(&Evidence::pass_rates(tasks, rates)).unwrap();
        g = 1.0 + (1.0 - lambda) * g;

        if t % check_every == 0 || t == steps {
            let st = pool.to_host().unwrap();
            let lo = s0 + rho * m * g;
            let hi = s0 + m * g;
            let tol = 2.0 * 7.0 * u * hi * g;
            let tol1 = 7.0 * u * hi * g;
            for k in 0..n {
                let (a, b) = (st.alpha[k] as f64, st.beta[k] as f64);
                assert!(a.is_finite() && b.is_finite() && a > 0.0 && b > 0.0, "step {t}, task {k}: ({a}, {b})");
                assert!(
                    a >= a0 - tol1 && b >= b0 - tol1,
                    "step {t}, task {k}: ({a}, {b}) below the prior ({a0}, {b0})"
                );
                let s = a + b;
                assert!(
                    s >= lo - tol && s <= hi + tol,
                    "step {t}, task {k}: alpha+beta = {s} outside [{lo}, {hi}] ± {tol}"
                );
                report.s_min = report.s_min.min(s);
                report.s_max = report.s_max.max(s);
            }
            assert_eq!(st.globals.step, t as u64);
            if t == steps {
                let (mut fmin, mut fmax) = (f64::MAX, 0.0f64);
                for k in 0..n {
                    let s = st.alpha[k] as f64 + st.beta[k] as f64;
                    fmin = fmin.min(s);
                    fmax = fmax.max(s);
                }
                let g_prev = (g - 1.0) / (1.0 - lambda).max(f64::MIN_POSITIVE);
                let just_updated = (1.0 - lambda) * (s0 + rho * m * g_prev) + lambda * s0 + m;
                assert!(
                    fmax >= just_updated - tol,
                    "max alpha+beta {fmax} < {just_updated}: the batch got no explicit evidence?"
                );
                let w = ((n - 1) / cfg.batch).min(steps) as i32;
                let idle = s0 + rho * m * g + (1.0 - lambda).powi(w) * m * g;
                assert!(fmin <= idle + tol, "min alpha+beta {fmin} > {idle}: no task relaxes toward the lower bound?");
                report.final_min = fmin;
                report.final_max = fmax;
            }
            drop(st);
            let rss = rss_bytes();
            report.checks += 1;
            if report.checks == 1 {
                report.rss_warm = rss;
            }
            report.rss_max = report.rss_max.max(rss);
            report.rss_end = rss;
            // Flat memory: after the first check (which has allocated every per-step buffer once),
            // RSS may not grow by as much as one leaked selection-key buffer over the whole run
            // (with the 1 MiB floor above).
            assert!(
                report.checks == 1 || rss < report.rss_warm + rss_slack,
                "step {t}: RSS {rss} grew from {} by >= {rss_slack} bytes",
                report.rss_warm
            );
        }
    }
    eprintln!(
        "soak: N = {n}, {steps} steps, {} checks; alpha+beta in [{:.4}, {:.4}] over all checks, [{:.4}, {:.4}] at the end (bounds at the end [{:.4}, {:.4}]); RSS warm {} MiB, max {} MiB, end {} MiB",
        report.checks,
        report.s_min,
        report.s_max,
        report.final_min,
        report.final_max,
        s0 + rho * m * g,
        s0 + m * g,
        report.rss_warm >> 20,
        report.rss_max >> 20,
        report.rss_end >> 20
    );
    report
}

#[test]
fn soak_small() {
    let r = soak(4000, 1500, 100);
    assert_eq!(r.checks, 15);
    assert!(r.final_min <= r.final_max);
}

#[test]
#[ignore = "soak: 10^5 steps on 10^6 tasks; scale with BOTS_SOAK_TASKS / BOTS_SOAK_STEPS / BOTS_SOAK_CHECK_EVERY"]
fn soak_full() {
    let n = env_usize("BOTS_SOAK_TASKS", 1_000_000);
    let steps = env_usize("BOTS_SOAK_STEPS", 100_000);
    let every = env_usize("BOTS_SOAK_CHECK_EVERY", 1000).max(1);
    let r = soak(n, steps, every);
    assert!(r.checks >= 1);
}
