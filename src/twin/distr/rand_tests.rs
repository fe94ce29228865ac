//! The samplers through `rand`'s traits: bit for bit the counter-based path they replaced (kept below as
//! [`reference`], a verbatim copy of the functions before they called the `Distribution` impls, block
//! reads counted), the documented word layout, and a statistical cross-check against `rand_distr` (same
//! distributions, not the same bits).

use std::ops::RangeInclusive;

use rand::distr::Distribution;
use rand::{RngCore, SeedableRng};

use super::beta::{beta_from_logs, beta_linear, beta_log};
use super::gamma::{first_block, gamma_boost, gamma_from_attempt1, mt_attempt, mt_constants, sample_gamma_mt};
use super::normal::{box_muller_scaled, box_muller_scaled_pair};
use super::{box_muller, sample_beta, sample_gumbel, sample_log_gamma, Beta, Gamma, Gumbel, LogGamma, StandardNormal};
use crate::twin::fmath::{exp, ln_normal};
use crate::twin::philox::{u01, Philox, Purpose, TaskStream};

/// The counter-based samplers as they were before the `Distribution` impls (reading
/// [`TaskStream::block`] directly), with a count of the attempt blocks read past block 1.
mod reference {
    use std::cell::Cell;

    use super::super::gamma::{mt_constants, mt_exact, mt_squeeze, mt_value, MAX_GAMMA_BLOCKS};
    use super::super::normal::box_muller_scaled;
    use crate::twin::fmath::{exp, ln_normal, sincos_2pi};
    use crate::twin::philox::{u01, Purpose, TaskStream};

    thread_local! {
        /// Beta draws' first attempts (of the shared block) that rejected, on this thread.
        pub static FIRST_REJECTED: Cell<u64> = const { Cell::new(0) };
        /// Attempt blocks read past block 1 on this thread (the rejection loop's coverage).
        pub static LATE_BLOCKS: Cell<u64> = const { Cell::new(0) };
        /// Second attempts of block 1 tried on this thread.
        pub static SECOND_ATTEMPTS: Cell<u64> = const { Cell::new(0) };
    }

    fn mt_attempt(d: f32, x: f32, uw: u32) -> Option<f32> {
        if x <= -1.0 {
            return None;
        }
        let u = u01(uw);
        (mt_squeeze(d, x, u) || mt_exact(d, x, u)).then(|| mt_value(d, x))
    }

    pub fn sample_gamma_mt(shape: f32, stream: &TaskStream, purpose: Purpose) -> f32 {
        let (d, q) = mt_constants(shape);
        let w = stream.block(purpose, 1);
        let (x0, x1) = box_muller_scaled(w[0], w[1], q);
        match mt_attempt(d, x0, w[2]) {
            Some(g) => g,
            None => gamma_from_attempt1(d, q, x1, w[3], stream, purpose),
        }
    }

    pub fn sample_log_gamma(shape: f32, stream: &TaskStream, purpose: Purpose) -> f32 {
        gamma_boost(shape, ln_normal(sample_gamma_mt(shape, stream, purpose)), stream, purpose)
    }

    pub fn gamma_from_attempt1(d: f32, q: f32, x1: f32, w3: u32, stream: &TaskStream, purpose: Purpose) -> f32 {
        SECOND_ATTEMPTS.with(|c| c.set(c.get() + 1));
        if let Some(g) = mt_attempt(d, x1, w3) {
            return g;
        }
        for block in 2..=MAX_GAMMA_BLOCKS {
            LATE_BLOCKS.with(|c| c.set(c.get() + 1));
            let w = stream.block(purpose, block);
            let (x0, x1) = box_muller_scaled(w[0], w[1], q);
            for (x, uw) in [(x0, w[2]), (x1, w[3])] {
                if let Some(g) = mt_attempt(d, x, uw) {
                    return g;
                }
            }
        }
        d
    }

    pub fn gamma_boost(shape: f32, log_g: f32, stream: &TaskStream, purpose: Purpose) -> f32 {
        if shape < 1.0 {
            let w = stream.block(purpose, 0);
            log_g + ln_normal(u01(w[0])) / shape
        } else {
            log_g
        }
    }

    /// The Beta draw of the task stream: both first attempts from block 0 of `First` (one Box–Muller
    /// pair: `r = -2 ln u0`, `x_a = sqrt(r q_a) cos`, `x_b = sqrt(r q_b) sin`; uniforms words 2 and 3),
    /// a Gamma whose first attempt rejects drawn whole from its own purpose.
    pub fn sample_beta(alpha: f32, beta: f32, stream: &TaskStream) -> f32 {
        let (da, qa) = mt_constants(alpha);
        let (db, qb) = mt_constants(beta);
        let w = stream.block(Purpose::First, 0);
        let r = -2.0 * ln_normal(u01(w[0]));
        let (sn, cs) = sincos_2pi(u01(w[1]));
        let (xa, xb) = ((r * qa).sqrt() * cs, (r * qb).sqrt() * sn);
        let whole = |shape: f32, purpose: Purpose| {
            FIRST_REJECTED.with(|c| c.set(c.get() + 1));
            sample_gamma_mt(shape, stream, purpose)
        };
        let ga = mt_attempt(da, xa, w[2]).unwrap_or_else(|| whole(alpha, Purpose::GammaAlpha));
        let gb = mt_attempt(db, xb, w[3]).unwrap_or_else(|| whole(beta, Purpose::GammaBeta));
        if alpha >= 1.0 && beta >= 1.0 {
            1.0 / (1.0 + gb / ga)
        } else {
            let la = gamma_boost(alpha, ln_normal(ga), stream, Purpose::GammaAlpha);
            let lb = gamma_boost(beta, ln_normal(gb), stream, Purpose::GammaBeta);
            1.0 / (1.0 + exp(lb - la))
        }
    }

    pub fn sample_gumbel(stream: &TaskStream) -> f32 {
        let w = stream.block(Purpose::Gumbel, 0);
        -ln_normal(-ln_normal(u01(w[0])))
    }
}

/// A small SplitMix64, to pick test inputs (not a stream under test).
fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Shapes to test bits on: a fixed list across the branches (below 1, exactly 1, just above, large;
/// the near-1 ones reject most often), then log-uniform ones over 1e-3..1e5 as the lane tests draw.
fn shapes(n: usize, x: &mut u64) -> Vec<f32> {
    let mut v =
        vec![1e-3, 0.01, 0.1, 0.5, 0.999_999_9, 1.0, 1.000_000_1, 1.01, 1.2, 2.0, 5.5, 30.0, 160.0, 1e4, 1e6, 1e30];
    while v.len() < n {
        v.push(10f32.powf(-3.0 + 8.0 * u01(splitmix(x) as u32)));
    }
    v
}

/// A random task stream (seed, step, task all drawn, step sometimes above 2^32).
fn stream(x: &mut u64) -> TaskStream {
    let seed = splitmix(x);
    let r = splitmix(x);
    let step = if r & 1 == 0 { r >> 40 } else { r };
    TaskStream::new(seed, step, splitmix(x) as u32)
}

/// `sample_beta` against the reference, bit for bit: every pair of 64 shapes (4096 pairs) on 64 random
/// task streams each, 262144 draws, with the rejection loop reached (first attempts rejected, second
/// attempts and blocks past 1 counted in the reference).
#[test]
fn beta_bits_equal_the_counter_based_reference() {
    let mut x = 17u64;
    let sh = shapes(64, &mut x);
    reference::FIRST_REJECTED.with(|c| c.set(0));
    reference::LATE_BLOCKS.with(|c| c.set(0));
    reference::SECOND_ATTEMPTS.with(|c| c.set(0));
    let mut draws = 0u64;
    for &a in &sh {
        for &b in &sh {
            for _ in 0..64 {
                let s = stream(&mut x);
                let want = reference::sample_beta(a, b, &s);
                let got = sample_beta(a, b, &s);
                assert_eq!(got.to_bits(), want.to_bits(), "Beta({a}, {b}) at {s:?}: {got} vs {want}");
                draws += 1;
            }
        }
    }
    let first = reference::FIRST_REJECTED.with(|c| c.get());
    let second = reference::SECOND_ATTEMPTS.with(|c| c.get());
    let late = reference::LATE_BLOCKS.with(|c| c.get());
    eprintln!(
        "beta bits: {draws} draws equal; {first} first attempts rejected, {second} second attempts, {late} blocks past 1"
    );
    assert!(
        first > 1000 && second > 100 && late > 10,
        "the rejection loop was not exercised: {first} / {second} / {late}"
    );
}

/// `Gamma`, `LogGamma` and the counter-based Gamma functions against the reference, bit for bit, on 256
/// shapes × 256 task streams: `LogGamma` from block `first_block(shape)` is `sample_log_gamma`; `Gamma`
/// from there is `sample_gamma_mt` for shapes of 1 or more and `exp` of the log draw below;
/// `gamma_from_attempt1` (the lane code's continuation) and `gamma_boost` are unchanged.
#[test]
fn gamma_bits_equal_the_counter_based_reference() {
    let mut x = 5u64;
    let purposes = [Purpose::GammaAlpha, Purpose::GammaBeta, Purpose::Gumbel, Purpose::User];
    for shape in shapes(256, &mut x) {
        for i in 0..256 {
            let s = stream(&mut x);
            let p = purposes[i % 4];
            let lg = reference::sample_log_gamma(shape, &s, p);
            let g = reference::sample_gamma_mt(shape, &s, p);
            let what = format!("shape {shape} {p:?} at {s:?}");
            let first = first_block(shape);
            assert_eq!(LogGamma::new(shape).sample(&mut Philox::at(&s, p, first)).to_bits(), lg.to_bits(), "{what}");
            assert_eq!(sample_log_gamma(shape, &s, p).to_bits(), lg.to_bits(), "{what}");
            assert_eq!(sample_gamma_mt(shape, &s, p).to_bits(), g.to_bits(), "{what}");
            let want = if shape < 1.0 { exp(lg) } else { g };
            assert_eq!(Gamma::new(shape).sample(&mut s.rng(p, first)).to_bits(), want.to_bits(), "{what}");
            let (d, q) = mt_constants(shape);
            let w = s.block(p, 1);
            let (_, x1) = box_muller_scaled(w[0], w[1], q);
            assert_eq!(
                gamma_from_attempt1(d, q, x1, w[3], &s, p).to_bits(),
                reference::gamma_from_attempt1(d, q, x1, w[3], &s, p).to_bits(),
                "{what}"
            );
            let log_g = ln_normal(g);
            assert_eq!(
                gamma_boost(shape, log_g, &s, p).to_bits(),
                reference::gamma_boost(shape, log_g, &s, p).to_bits()
            );
        }
    }
}

/// `Gumbel` and `sample_gumbel` against the reference, and `StandardNormal` against `box_muller` of the
/// block's words, on 2^16 task streams.
#[test]
fn gumbel_and_normal_bits_equal_the_word_functions() {
    let mut x = 9u64;
    for _ in 0..1 << 16 {
        let s = stream(&mut x);
        let want = reference::sample_gumbel(&s);
        assert_eq!(sample_gumbel(&s).to_bits(), want.to_bits());
        assert_eq!(Gumbel.sample(&mut s.rng(Purpose::Gumbel, 0)).to_bits(), want.to_bits());
        let w = s.block(Purpose::User, 4);
        let mut rng = s.rng(Purpose::User, 4);
        let pair: (f32, f32) = StandardNormal.sample(&mut rng);
        let one: f32 = StandardNormal.sample(&mut rng);
        let (z0, z1) = box_muller(w[0], w[1]);
        assert_eq!((pair.0.to_bits(), pair.1.to_bits()), (z0.to_bits(), z1.to_bits()));
        assert_eq!(one.to_bits(), box_muller(w[2], w[3]).0.to_bits());
        assert_eq!(rng.next_u32(), s.block(Purpose::User, 5)[0]);
    }
}

/// An `RngCore` that counts the words read through it.
struct Counting<R> {
    inner: R,
    words: u64,
}

impl<R: RngCore> RngCore for Counting<R> {
    fn next_u32(&mut self) -> u32 {
        self.words += 1;
        self.inner.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.words += 2;
        self.inner.next_u64()
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.words += dst.len().div_ceil(4) as u64;
        self.inner.fill_bytes(dst)
    }
}

/// The documented layout: a Gamma draw reads four words of boost block below 1, then whole attempt
/// blocks up to the accepted one (so a `Philox` from block `first_block(shape)` stops at a block boundary,
/// and its next word is the block after the accepted attempt's); the single-stream `Beta` reads `G_a`'s
/// words then `G_b`'s, and equals the two Gamma draws from one stream in turn.
#[test]
fn word_layout_of_the_sequential_draws() {
    let mut x = 123u64;
    let sh = shapes(48, &mut x);
    for &a in &sh {
        for i in 0..64u32 {
            let s = TaskStream::new(3, 1, i);
            // The reference's attempt blocks: block 1 and those past it.
            reference::LATE_BLOCKS.with(|c| c.set(0));
            let _ = reference::sample_gamma_mt(a, &s, Purpose::User);
            let attempt_blocks = 1 + reference::LATE_BLOCKS.with(|c| c.get());
            let boost_blocks = (a < 1.0) as u64;
            for log in [false, true] {
                let mut rng = Counting { inner: s.rng(Purpose::User, first_block(a)), words: 0 };
                let _ = if log { LogGamma::new(a).sample(&mut rng) } else { Gamma::new(a).sample(&mut rng) };
                assert_eq!(rng.words, 4 * (boost_blocks + attempt_blocks), "shape {a}, task {i}");
                assert_eq!(rng.inner.next_u32(), s.block(Purpose::User, 1 + attempt_blocks as u32)[0]);
            }
        }
        for &b in sh.iter().step_by(5) {
            let mut one = Philox::seed_from_u64(a.to_bits() as u64 ^ (b.to_bits() as u64) << 32);
            let mut two = one.clone();
            let got = Beta::new(a, b).sample(&mut one);
            let want = if a >= 1.0 && b >= 1.0 {
                let ga = Gamma::new(a).sample(&mut two);
                beta_linear(ga, Gamma::new(b).sample(&mut two))
            } else {
                let la = LogGamma::new(a).sample(&mut two);
                beta_from_logs(la, LogGamma::new(b).sample(&mut two))
            };
            assert_eq!(got.to_bits(), want.to_bits(), "Beta({a}, {b})");
            assert_eq!(one, two, "Beta({a}, {b}): streams end apart");
        }
    }
    // beta_log (the log-space combination of two already-drawn Gammas) is the task stream draw's log
    // branch: its Gammas from the shared block's first attempts, else drawn whole.
    let s = TaskStream::new(8, 0, 0);
    for (a, b) in [(0.5f32, 3.0f32), (4.0, 0.01), (0.2, 0.3)] {
        let ((da, qa), (db, qb)) = (mt_constants(a), mt_constants(b));
        let w = s.block(Purpose::First, 0);
        let (xa, xb) = box_muller_scaled_pair(w[0], w[1], qa, qb);
        let ga = mt_attempt(da, xa, w[2]).unwrap_or_else(|| sample_gamma_mt(a, &s, Purpose::GammaAlpha));
        let gb = mt_attempt(db, xb, w[3]).unwrap_or_else(|| sample_gamma_mt(b, &s, Purpose::GammaBeta));
        assert_eq!(beta_log(a, b, ga, gb, &s).to_bits(), sample_beta(a, b, &s).to_bits());
    }
}

/// The two-sample Kolmogorov–Smirnov statistic `sup |F_x - F_y|` over the points of `range`, evaluated
/// after each distinct value of the pooled sample (all copies of a tied value consumed on both sides);
/// every draw counts in the empirical CDFs, inside the range or not.
fn ks_two_sample(mut xs: Vec<f64>, mut ys: Vec<f64>, range: RangeInclusive<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    ys.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (n, m) = (xs.len() as f64, ys.len() as f64);
    let (mut i, mut j, mut d) = (0usize, 0usize, 0f64);
    while i < xs.len() || j < ys.len() {
        let v = match (xs.get(i), ys.get(j)) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => unreachable!(),
        };
        while i < xs.len() && xs[i] == v {
            i += 1;
        }
        while j < ys.len() && ys[j] == v {
            j += 1;
        }
        if range.contains(&v) {
            d = d.max((i as f64 / n - j as f64 / m).abs());
        }
    }
    d
}

/// The two-sample KS critical value at level `alpha` (asymptotic): `c(α) sqrt((n + m)/(n m))` with
/// `c(α) = sqrt(-ln(α/2)/2)`. Conservative for the ties that f32 rounding makes.
fn ks_critical(alpha: f64, n: usize, m: usize) -> f64 {
    let (n, m) = (n as f64, m as f64);
    (-(alpha / 2.0).ln() / 2.0).sqrt() * ((n + m) / (n * m)).sqrt()
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// KS level per comparison, and sample sizes (both samples).
const KS_ALPHA: f64 = 1e-4;
const KS_N: usize = 1 << 16;

/// Our Beta against `rand_distr::Beta` (0.5, f64, rounded to f32; driven by our `Philox` through
/// `SeedableRng`): for each shape pair, 2^16 draws of ours through the `Distribution` impl from one
/// sequential `Philox`, 2^16 of ours from the counter-based path (tasks 0..2^16 at one step), 2^16 of
/// rand_distr's; each of ours must pass the two-sample KS test against rand_distr's at level 1e-4
/// (D < 2.2253·sqrt(2/2^16) = 0.01229), and its mean must be within 5 standard errors of rand_distr's,
/// `5 sqrt(V (1/n + 1/m))` with V the Beta variance.
///
/// The statistic is taken over the points of [1e-35, 1 - 1e-6] (a supremum over fewer points, so the
/// critical value stays valid): at the very ends the two f32 roundings differ, not the distributions.
/// Ours is `1 / (1 + exp(ln G_b - ln G_a))`, which is 0 once the `exp` overflows (x below ~2.9e-39,
/// where rand_distr's rounded draws are still subnormals) and 1 once `1 + e` rounds to 1 (x within
/// 2^-24 of 1, where rounding to nearest gives 1 only within 2^-25); Beta(0.01, 0.01) has 3% of its
/// mass in the first gap and 0.5% in the second.
#[test]
fn beta_matches_rand_distr() {
    let shapes: &[(f64, f64)] = &[
        (0.01, 0.01),
        (0.1, 2.0),
        (0.3, 40.0),
        (0.5, 0.5),
        (1.0, 1.0),
        (2.0, 5.0),
        (30.0, 3.0),
        (1.0, 0.2),
        (1e3, 1e3),
    ];
    let crit = ks_critical(KS_ALPHA, KS_N, KS_N);
    for (k, &(a, b)) in shapes.iter().enumerate() {
        let k = k as u64;
        let theirs_dist = rand_distr::Beta::new(a, b).unwrap();
        let mut rng = Philox::seed_from_u64(1000 + k);
        let theirs: Vec<f64> = (0..KS_N).map(|_| theirs_dist.sample(&mut rng) as f32 as f64).collect();
        assert!(theirs.iter().all(|x| (0.0..=1.0).contains(x)), "rand_distr Beta({a}, {b}) left [0, 1]");
        let ours = Beta::new(a as f32, b as f32);
        let mut rng = Philox::seed_from_u64(2000 + k);
        let sequential: Vec<f64> = (0..KS_N).map(|_| ours.sample(&mut rng) as f64).collect();
        let tasks: Vec<f64> = (0..KS_N as u32)
            .map(|i| sample_beta(a as f32, b as f32, &TaskStream::new(3000 + k, 7, i)) as f64)
            .collect();
        let v = a * b / ((a + b).powi(2) * (a + b + 1.0));
        let se = (v * 2.0 / KS_N as f64).sqrt();
        for (name, xs) in [("sequential", sequential), ("task streams", tasks)] {
            let dm = (mean(&xs) - mean(&theirs)).abs();
            let d = ks_two_sample(xs, theirs.clone(), 1e-35..=1.0 - 1e-6);
            eprintln!(
                "Beta({a}, {b}) {name}: KS D = {d:.5} (critical {crit:.5}), |mean diff| = {dm:.2e} ({:.2} se)",
                dm / se
            );
            assert!(d < crit, "Beta({a}, {b}) {name}: KS D = {d} >= {crit}");
            assert!(dm < 5.0 * se, "Beta({a}, {b}) {name}: means differ by {dm} >= 5 se = {}", 5.0 * se);
        }
    }
}

/// The other samplers against rand_distr's, the same way (one sequential `Philox` each, rand_distr's
/// draws rounded to f32): `Gamma` (shapes 0.05 to 50) against `rand_distr::Gamma`, `Gumbel` against
/// `rand_distr::Gumbel(0, 1)`, `StandardNormal` against `rand_distr::StandardNormal`.
#[test]
fn gamma_gumbel_normal_match_rand_distr() {
    let crit = ks_critical(KS_ALPHA, KS_N, KS_N);
    let check = |name: &str, ours: Vec<f64>, theirs: Vec<f64>, var: f64| {
        let se = (var * 2.0 / KS_N as f64).sqrt();
        let dm = (mean(&ours) - mean(&theirs)).abs();
        let d = ks_two_sample(ours, theirs, f64::NEG_INFINITY..=f64::INFINITY);
        eprintln!("{name}: KS D = {d:.5} (critical {crit:.5}), |mean diff| = {dm:.2e} ({:.2} se)", dm / se);
        assert!(d < crit, "{name}: KS D = {d} >= {crit}");
        assert!(dm < 5.0 * se, "{name}: means differ by {dm} >= 5 se");
    };
    for (k, shape) in [0.05f64, 0.5, 1.0, 3.5, 50.0].into_iter().enumerate() {
        let k = k as u64;
        let mut rng = Philox::seed_from_u64(4000 + k);
        let theirs_dist = rand_distr::Gamma::new(shape, 1.0).unwrap();
        let theirs = (0..KS_N).map(|_| theirs_dist.sample(&mut rng) as f32 as f64).collect();
        let mut rng = Philox::seed_from_u64(5000 + k);
        let ours = (0..KS_N).map(|_| Gamma::new(shape as f32).sample(&mut rng) as f64).collect();
        check(&format!("Gamma({shape})"), ours, theirs, shape);
    }
    let mut rng = Philox::seed_from_u64(6000);
    let theirs_dist = rand_distr::Gumbel::new(0.0f64, 1.0).unwrap();
    let theirs = (0..KS_N).map(|_| theirs_dist.sample(&mut rng) as f32 as f64).collect();
    let mut rng = Philox::seed_from_u64(6001);
    let ours = (0..KS_N).map(|_| Gumbel.sample(&mut rng) as f64).collect();
    check("Gumbel", ours, theirs, std::f64::consts::PI.powi(2) / 6.0);
    let mut rng = Philox::seed_from_u64(7000);
    let theirs = (0..KS_N).map(|_| Distribution::<f64>::sample(&rand_distr::StandardNormal, &mut rng) as f32 as f64);
    let mut rng = Philox::seed_from_u64(7001);
    let ours = (0..KS_N / 2).flat_map(|_| {
        let (z0, z1): (f32, f32) = StandardNormal.sample(&mut rng);
        [z0 as f64, z1 as f64]
    });
    check("StandardNormal", ours.collect(), theirs.collect(), 1.0);
}

/// Times the scalar path through the traits against the reference (run with
/// `cargo test --release --lib rand_tests::timing -- --ignored --nocapture`): Beta draws over the lane
/// tests' shape mix, linear-space Beta draws, Gamma and log-Gamma draws, and Gumbel draws, ns per draw
/// (including a dynamic call), the best of the rounds, each round running every variant in turn.
/// `BOTS_TIMING_N` (draws, 2^20), `BOTS_TIMING_ROUNDS` (15) and `BOTS_TIMING_ONLY` (a substring of the
/// variants' names) change the defaults, e.g. for an instruction count under `valgrind --tool=callgrind`.
#[test]
#[ignore = "timing, run by hand"]
fn timing_scalar_path_against_reference() {
    use std::hint::black_box;
    use std::time::Instant;
    let env = |name: &str, default: u32| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (n, rounds) = (env("BOTS_TIMING_N", 1 << 20), env("BOTS_TIMING_ROUNDS", 15));
    let only = std::env::var("BOTS_TIMING_ONLY").unwrap_or_default();
    let mut x = 1u64;
    let mut log_uniform = || 10f32.powf(-3.0 + 8.0 * u01(splitmix(&mut x) as u32));
    let mixed: Vec<(f32, f32)> = (0..n).map(|_| (log_uniform(), log_uniform())).collect();
    let linear: Vec<(f32, f32)> = (0..n).map(|i| (1.0 + (i % 97) as f32, 1.0 + (i % 89) as f32 * 3.0)).collect();
    let seed = 42;
    let st = |i: u32| TaskStream::new(seed, 3, i);
    let (m, l) = (&mixed, &linear);
    let p = Purpose::GammaAlpha;
    type Variant<'a> = (&'static str, Box<dyn Fn(u32) -> f32 + 'a>);
    let mut variants: Vec<Variant> = vec![
        ("beta mixed, reference", Box::new(|i| reference::sample_beta(m[i as usize].0, m[i as usize].1, &st(i)))),
        ("beta mixed, through rand", Box::new(|i| sample_beta(m[i as usize].0, m[i as usize].1, &st(i)))),
        ("beta linear, reference", Box::new(|i| reference::sample_beta(l[i as usize].0, l[i as usize].1, &st(i)))),
        ("beta linear, through rand", Box::new(|i| sample_beta(l[i as usize].0, l[i as usize].1, &st(i)))),
        ("log gamma mixed, reference", Box::new(|i| reference::sample_log_gamma(m[i as usize].0, &st(i), p))),
        ("log gamma mixed, through rand", Box::new(|i| sample_log_gamma(m[i as usize].0, &st(i), p))),
        ("gamma linear, reference", Box::new(|i| reference::sample_gamma_mt(l[i as usize].0, &st(i), p))),
        ("gamma linear, through rand", Box::new(|i| Gamma::new(l[i as usize].0).sample(&mut st(i).rng(p, 1)))),
        ("gumbel, reference", Box::new(|i| reference::sample_gumbel(&st(i)))),
        ("gumbel, through rand", Box::new(|i| sample_gumbel(&st(i)))),
    ];
    variants.retain(|(name, _)| name.contains(only.as_str()));
    let mut best = vec![f64::INFINITY; variants.len()];
    for _ in 0..rounds {
        for (k, (_, f)) in variants.iter().enumerate() {
            let t = Instant::now();
            let mut acc = 0f32;
            for i in 0..n {
                acc += f(black_box(i));
            }
            black_box(acc);
            best[k] = best[k].min(t.elapsed().as_secs_f64() * 1e9 / n as f64);
        }
    }
    for ((name, _), b) in variants.iter().zip(best) {
        eprintln!("{name}: {b:.2} ns/draw");
    }
}
