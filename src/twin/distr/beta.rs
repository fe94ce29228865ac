//! Beta variates as a ratio of Gammas: `X = G_a / (G_a + G_b)`, computed as `1 / (1 + G_b / G_a)` when
//! both shapes are at least 1, and in log space, `1 / (1 + exp(ln G_b - ln G_a))`, when either is
//! below 1 (its Gamma is boosted in log space), which stays exact at the ends of [0, 1] where
//! `G_a / (G_a + G_b)` would be 0/0.
//!
//! The sampler is [`Beta`], a `rand` [`Distribution`]; [`sample_beta`], the task stream's draw, takes both
//! Gammas' first attempts from one block (purpose `First`) and goes on, for a Gamma that needs more,
//! with its own purpose's attempt blocks.

use rand::distr::Distribution;
use rand::{Rng, RngCore};

use crate::twin::distr::gamma::{gamma_boost, mt_attempt, mt_constants, sample_gamma_mt, sample_unboosted, LogGamma};
use crate::twin::distr::normal::box_muller_scaled_pair;
use crate::twin::fmath::{exp, ln_normal};
use crate::twin::philox::{Purpose, TaskStream};

/// Beta(alpha, beta) in f32, as a `rand` [`Distribution`]: `G_a / (G_a + G_b)` from two Gamma draws, in
/// linear space when both shapes are at least 1 ([`beta_linear`] of two [`crate::twin::distr::Gamma`]
/// draws), else in log space ([`beta_from_logs`] of two [`LogGamma`] draws).
///
/// The shapes should be positive and finite (they are not checked: other values give what the kernels
/// give, with bounded work). Each Gamma reads its words as [`crate::twin::distr::Gamma`] documents (below
/// 1 a boost block of four words, then attempt blocks of four). [`Distribution::sample`] reads `G_a`'s
/// words, then `G_b`'s, from the one `rng`; [`Beta::sample_split`] reads each from its own stream. The
/// task stream's draw, [`sample_beta`], has the same law and reads its words differently: both Gammas'
/// first attempts from one shared block, so that a typical draw costs one block and one Box–Muller pair,
/// not two.
///
/// ```
/// use bots::rng::Beta;
/// use bots::rng::Philox;
/// use rand::{distr::Distribution, SeedableRng};
///
/// let beta = Beta::new(2.0, 5.0);
/// let xs: Vec<f32> = beta.sample_iter(Philox::seed_from_u64(42)).take(10_000).collect();
/// let mean = xs.iter().sum::<f32>() / 10_000.0;
/// assert!((mean - 2.0 / 7.0).abs() < 0.01);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Beta {
    /// The first shape (of `G_a`, the numerator's Gamma).
    pub alpha: f32,
    /// The second shape (of `G_b`).
    pub beta: f32,
}

impl Beta {
    /// Beta(`alpha`, `beta`).
    #[inline(always)]
    pub const fn new(alpha: f32, beta: f32) -> Beta {
        Beta { alpha, beta }
    }

    /// The draw with `G_a`'s words from `rng_alpha` and `G_b`'s from `rng_beta` (each read as
    /// [`crate::twin::distr::Gamma`] documents).
    #[inline(always)]
    pub fn sample_split<RA, RB>(&self, rng_alpha: &mut RA, rng_beta: &mut RB) -> f32
    where
        RA: RngCore + ?Sized,
        RB: RngCore + ?Sized,
    {
        let (alpha, beta) = (self.alpha, self.beta);
        if beta_in_linear_space(alpha, beta) {
            let ga = sample_unboosted(alpha, rng_alpha);
            let gb = sample_unboosted(beta, rng_beta);
            beta_linear(ga, gb)
        } else {
            let la = LogGamma::new(alpha).sample(rng_alpha);
            let lb = LogGamma::new(beta).sample(rng_beta);
            beta_from_logs(la, lb)
        }
    }
}

impl Distribution<f32> for Beta {
    /// [`Beta::sample_split`] with both Gammas from `rng`, `G_a`'s words first.
    #[inline(always)]
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f32 {
        let (alpha, beta) = (self.alpha, self.beta);
        if beta_in_linear_space(alpha, beta) {
            let ga = sample_unboosted(alpha, rng);
            let gb = sample_unboosted(beta, rng);
            beta_linear(ga, gb)
        } else {
            let la = LogGamma::new(alpha).sample(rng);
            let lb = LogGamma::new(beta).sample(rng);
            beta_from_logs(la, lb)
        }
    }
}

/// A draw of Beta(alpha, beta) from the task's stream, the kernels' (both modes' layout): block 0 of
/// purpose `First` holds both Gammas' first attempts (words 0 and 1: one Box–Muller pair, `z_alpha = r
/// cos`, `z_beta = r sin`, each scaled by its own Gamma's `c`, [`box_muller_scaled_pair`]; words 2 and 3:
/// their acceptance uniforms). A Gamma whose first attempt rejects is drawn whole from its own purpose
/// (`GammaAlpha`, `GammaBeta`: [`sample_gamma_mt`], attempt blocks 1..), whose words are independent of
/// the first block's, so every attempt is a fresh (z, u) pair and the rejection sampler's law is
/// [`Beta`]'s. Below shape 1 the Gamma is of shape + 1 and the boost reads block 0 of its own purpose
/// ([`beta_log`]).
///
/// ```
/// use bots::rng::TaskStream;
/// let x = bots::__private::twin::distr::sample_beta(0.01, 0.01, &TaskStream::new(42, 0, 7));
/// assert!((0.0..=1.0).contains(&x));
/// ```
#[inline(always)]
pub fn sample_beta(alpha: f32, beta: f32, stream: &TaskStream) -> f32 {
    let (da, qa) = mt_constants(alpha);
    let (db, qb) = mt_constants(beta);
    let w = stream.block(Purpose::First, 0);
    let (xa, xb) = box_muller_scaled_pair(w[0], w[1], qa, qb);
    let ga = mt_attempt(da, xa, w[2]).unwrap_or_else(|| sample_gamma_mt(alpha, stream, Purpose::GammaAlpha));
    let gb = mt_attempt(db, xb, w[3]).unwrap_or_else(|| sample_gamma_mt(beta, stream, Purpose::GammaBeta));
    if beta_in_linear_space(alpha, beta) {
        beta_linear(ga, gb)
    } else {
        beta_log(alpha, beta, ga, gb, stream)
    }
}

/// Whether the Beta draw of these shapes is [`beta_linear`] (both at least 1: neither Gamma is boosted)
/// rather than [`beta_log`].
#[inline(always)]
pub fn beta_in_linear_space(alpha: f32, beta: f32) -> bool {
    alpha >= 1.0 && beta >= 1.0
}

/// The Beta draw from two unboosted Gammas (both shapes at least 1): `1 / (1 + G_b / G_a)`. `G_a` is a
/// positive normal, so the ratio is finite or +inf (giving 0).
#[inline(always)]
pub fn beta_linear(ga: f32, gb: f32) -> f32 {
    1.0 / (1.0 + gb / ga)
}

/// The Beta draw when a shape is below 1: both Gammas to log space, boosted where their shape is below
/// 1, then `1 / (1 + exp(ln G_b - ln G_a))`.
#[inline(always)]
pub fn beta_log(alpha: f32, beta: f32, ga: f32, gb: f32, stream: &TaskStream) -> f32 {
    let la = gamma_boost(alpha, ln_normal(ga), stream, Purpose::GammaAlpha);
    let lb = gamma_boost(beta, ln_normal(gb), stream, Purpose::GammaBeta);
    beta_from_logs(la, lb)
}

/// `1 / (1 + exp(ln G_b - ln G_a))`.
#[inline(always)]
pub fn beta_from_logs(la: f32, lb: f32) -> f32 {
    1.0 / (1.0 + exp(lb - la))
}

#[cfg(test)]
mod tests {
    use super::*;
    use statrs::distribution::{Beta, ContinuousCDF};

    const SHAPES: &[(f64, f64)] = &[
        (0.01, 0.01),
        (0.01, 1.0),
        (0.1, 0.5),
        (0.5, 0.5),
        (1.0, 1.0),
        (1.0, 30.0),
        (2.0, 5.0),
        (20.0, 3.0),
        (160.0, 1.0),
        (1e4, 1e4),
        (1e4, 10.0),
        (0.05, 1e4),
    ];

    fn draws(a: f64, b: f64, n: u32, seed: u64) -> Vec<f64> {
        (0..n).map(|i| sample_beta(a as f32, b as f32, &TaskStream::new(seed, 3, i)) as f64).collect()
    }

    /// Mean and variance within 5 standard errors for n = 2^16 draws:
    /// sd(mean) = sqrt(V/n); sd(sample var) = sqrt((mu4 - V^2)/n) with the Beta's fourth central moment.
    #[test]
    fn mean_and_variance() {
        let n = 1u32 << 16;
        for &(a, b) in SHAPES {
            let xs = draws(a, b, n, 21);
            let len = n as f64;
            let m = a / (a + b);
            let v = a * b / ((a + b).powi(2) * (a + b + 1.0));
            let kurt_ex = 6.0 * ((a - b).powi(2) * (a + b + 1.0) - a * b * (a + b + 2.0))
                / (a * b * (a + b + 2.0) * (a + b + 3.0));
            let mu4 = (kurt_ex + 3.0) * v * v;
            let mean = xs.iter().sum::<f64>() / len;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / len;
            // f32 resolution adds ~1e-7 of bias; negligible against these bounds except at the
            // extremes, where it is added explicitly.
            assert!((mean - m).abs() < 5.0 * (v / len).sqrt() + 1e-6, "Beta({a},{b}) mean {mean} vs {m}");
            assert!((var - v).abs() < 5.0 * ((mu4 - v * v) / len).sqrt() + 1e-6, "Beta({a},{b}) var {var} vs {v}");
            assert!(xs.iter().all(|x| (0.0..=1.0).contains(x)));
        }
    }

    /// Kolmogorov–Smirnov against the regularized incomplete beta function. With n = 2^15 draws the
    /// 0.1% critical value is 1.95/sqrt(n) (asymptotic Kolmogorov distribution).
    ///
    /// The statistic is taken over the distinct draws in [1e-30, 1 - 1e-5]: a supremum over a subset
    /// of points is at most the full one, so the critical value stays valid (conservative). Outside
    /// that range f32 cannot represent the draws (Beta(0.01, 0.01) puts ~18% of its mass below the
    /// smallest f32), so the ends are pooled rather than compared point by point: every draw still
    /// counts in the empirical CDF.
    #[test]
    fn kolmogorov_smirnov() {
        let n = 1u32 << 15;
        let crit = 1.949_6 / (n as f64).sqrt();
        for &(a, b) in SHAPES {
            let mut xs = draws(a, b, n, 77);
            xs.sort_by(|x, y| x.partial_cmp(y).unwrap());
            let dist = Beta::new(a, b).unwrap();
            let len = n as f64;
            let mut d = 0.0f64;
            let mut i = 0;
            while i < xs.len() {
                let x = xs[i];
                let mut j = i;
                while j < xs.len() && xs[j] == x {
                    j += 1;
                }
                if (1e-30..=1.0 - 1e-5).contains(&x) {
                    let f = dist.cdf(x);
                    d = d.max((f - i as f64 / len).abs()).max((j as f64 / len - f).abs());
                }
                i = j;
            }
            assert!(d < crit, "Beta({a},{b}): KS D = {d} >= {crit}");
        }
    }

    /// Beta(0.01, 0.01) puts about half its mass near each end; it must not collapse to one side
    /// or to NaN (pytorch#15738).
    #[test]
    fn tiny_parameters_do_not_collapse() {
        let xs = draws(0.01, 0.01, 20_000, 5);
        let low = xs.iter().filter(|&&x| x < 0.5).count() as f64 / 20_000.0;
        assert!((low - 0.5).abs() < 5.0 * (0.25f64 / 20_000.0).sqrt(), "share below 1/2: {low}");
        assert!(xs.iter().all(|x| x.is_finite()));
    }
}
