//! Gamma variates: Marsaglia–Tsang (2000) in linear space ([`sample_gamma_mt`], of `shape`, or of
//! `shape + 1` below 1), and `ln G` with the `shape < 1` boost `G(a) = G(a + 1) · U^(1/a)` applied in
//! log space ([`sample_log_gamma`]), so that tiny shapes do not underflow to 0 (the failure of torch's
//! sampler for Beta(0.01, 0.01), pytorch#15738).
//!
//! The samplers are `rand` [`Distribution`]s, [`Gamma`] and [`LogGamma`], reading words one after another
//! from any [`RngCore`]; the counter-based functions ([`sample_log_gamma`], [`sample_gamma_mt`],
//! [`gamma_from_attempt1`], [`gamma_boost`]) run the same code on a [`crate::twin::philox::Philox`]
//! positioned at the task stream's blocks, so both give the kernels' bits.

use rand::distr::Distribution;
use rand::{Rng, RngCore};

use crate::twin::distr::normal::box_muller_scaled;
use crate::twin::fmath::{exp, ln_1p_moderate, ln_normal};
use crate::twin::philox::{u01, Purpose, TaskStream};

/// Block budget of the rejection loop: each block is two attempts, each accepted with probability
/// at least 0.95 for shapes of 1 or more, so running out has probability below 0.05^128. The fallback
/// (the mode-like value `d`) keeps the kernel's work bounded whatever the input.
pub const MAX_GAMMA_BLOCKS: u32 = crate::abi::MAX_GAMMA_BLOCKS;

/// The Marsaglia–Tsang constants of a shape: `d = a - 1/3` and `q = c² = 1/(9d)`, with `a = shape`, or
/// `shape + 1` below 1 (the boost). An attempt's `x = c·z` comes from [`box_muller_scaled`] with `q`.
#[inline(always)]
pub fn mt_constants(shape: f32) -> (f32, f32) {
    let a = if shape < 1.0 { shape + 1.0 } else { shape };
    let d = a - 1.0 / 3.0;
    (d, 1.0 / (9.0 * d))
}

/// The squeeze of one attempt with `x = c·z` (for `x > -1`): true only where the exact test
/// [`mt_exact`] accepts, and for all but a few percent of attempts at `d` near 1 (fewer as `d` grows).
///
/// The exact test is `ln u < 3d·R(x)` with `R(x) = ln(1+x) - x + x²/2 - x³/3` (the usual
/// `z²/2 + d(1 - v + ln v)`, `v = (1+x)³`, rewritten with `z² = 9d·x²`). `R(x) >= -x⁴/4` for `x >= 0`
/// (its derivative is `x⁴/(1+x)` past the `x⁴/4` term), and `R(x) >= -x⁴/(4(1+x)) >= -x⁴/2` on
/// `[-1/2, 0)` (the tail of `-Σ|x|^n/n` is at most `|x|⁴/4 · Σ|x|^j`); with `ln u <= u - 1`,
/// `u < 1 - k·d·x⁴` (`k` = 3/4, or 3/2 below 0) implies the exact test. Below -1/2 it never accepts.
/// (This replaces Marsaglia and Tsang's `u < 1 - 0.0331 z⁴`, which it contains for every `d >= 2/3`:
/// their failure rate is about 10% at every shape, this one's about `0.04/d`.)
#[inline(always)]
pub fn mt_squeeze(d: f32, x: f32, u: f32) -> bool {
    (x >= -0.5) & (u < squeeze_bound(d, x))
}

/// The squeeze's bound on `u`, `1 - k·d·x⁴` (see [`mt_squeeze`]).
#[inline(always)]
fn squeeze_bound(d: f32, x: f32) -> f32 {
    let x2 = x * x;
    let k = if x < 0.0 { 1.5 } else { 0.75 };
    1.0 - k * d * (x2 * x2)
}

/// The exact acceptance test of one attempt (for `x = c·z > -1`): `ln u < 3d·R(x)`, evaluated as
/// `d · (3 ln1p(x) - 3x + 1.5x² - x³)` (see [`mt_squeeze`]).
#[inline(always)]
pub fn mt_exact(d: f32, x: f32, u: f32) -> bool {
    let l = 3.0 * ln_1p_moderate(x);
    ln_normal(u) < d * (l - 3.0 * x + 1.5 * x * x - x * x * x)
}

/// `d·v`, `v = (1+x)³`: the value of an accepted draw, clamped to the largest f32 (shapes above ~10^36
/// would overflow it). Always a positive normal (`1 + x >= 2^-24` and `d > 2/3` where `x > -1`), so its
/// logarithm is [`ln_normal`]'s.
#[inline(always)]
pub fn mt_value(d: f32, x: f32) -> f32 {
    let y = 1.0 + x;
    (d * (y * y * y)).min(f32::MAX)
}

/// One Marsaglia–Tsang attempt from `x = c·z` and a uniform word: the draw if accepted.
#[inline(always)]
pub fn mt_attempt(d: f32, x: f32, uw: u32) -> Option<f32> {
    if x <= -1.0 {
        return None;
    }
    let u = u01(uw);
    (mt_squeeze(d, x, u) || mt_exact(d, x, u)).then(|| mt_value(d, x))
}

/// Four consecutive words of `rng`: one block of a [`crate::twin::philox::Philox`] read from a block
/// boundary.
#[inline(always)]
fn next_block<R: RngCore + ?Sized>(rng: &mut R) -> [u32; 4] {
    [rng.next_u32(), rng.next_u32(), rng.next_u32(), rng.next_u32()]
}

/// The block of a purpose where a Gamma draw of `shape` starts reading on the task stream: 0 below 1
/// (the boost block, then the attempts from block 1), 1 otherwise (the attempts). [`Gamma`] and [`LogGamma`]
/// drawn from [`TaskStream::rng`]`(purpose, first_block(shape))` read the counter-based path's blocks.
///
/// ```
/// use bots::rng::first_block;
/// assert_eq!((first_block(0.5), first_block(1.0), first_block(7.0)), (0, 1, 1));
/// ```
#[inline(always)]
pub fn first_block(shape: f32) -> u32 {
    if shape < 1.0 {
        0
    } else {
        1
    }
}

/// `ln G(shape) = ln G(shape + 1) + ln(U)/shape`, U from the word `w`.
#[inline(always)]
fn boost(shape: f32, log_g: f32, w: u32) -> f32 {
    log_g + ln_normal(u01(w)) / shape
}

/// The Marsaglia–Tsang draw of `shape` (`shape + 1` below 1, before any boost) from the attempt blocks
/// read next from `rng`: block after block, two attempts each (see [`sample_gamma_mt`]).
#[inline(always)]
fn mt_draw<R: RngCore + ?Sized>(shape: f32, rng: &mut R) -> f32 {
    let (d, q) = mt_constants(shape);
    let w = next_block(rng);
    let (x0, x1) = box_muller_scaled(w[0], w[1], q);
    match mt_attempt(d, x0, w[2]) {
        Some(g) => g,
        None => mt_from_attempt1(d, q, x1, w[3], rng),
    }
}

/// The rest of [`mt_draw`] once the first attempt has rejected: attempt 1 of the first attempt block
/// (its `x1` and word `w3` given), then the blocks read next from `rng`, up to [`MAX_GAMMA_BLOCKS`] in
/// all.
#[inline(never)]
fn mt_from_attempt1<R: RngCore + ?Sized>(d: f32, q: f32, x1: f32, w3: u32, rng: &mut R) -> f32 {
    if let Some(g) = mt_attempt(d, x1, w3) {
        return g;
    }
    for _ in 2..=MAX_GAMMA_BLOCKS {
        let w = next_block(rng);
        let (x0, x1) = box_muller_scaled(w[0], w[1], q);
        for (x, uw) in [(x0, w[2]), (x1, w[3])] {
            if let Some(g) = mt_attempt(d, x, uw) {
                return g;
            }
        }
    }
    d
}

/// [`Gamma`]'s draw for `shape >= 1` (the attempts only), which [`crate::twin::distr::Beta`] uses in
/// linear space.
#[inline(always)]
pub(crate) fn sample_unboosted<R: RngCore + ?Sized>(shape: f32, rng: &mut R) -> f32 {
    mt_draw(shape, rng)
}

/// `X ~ Gamma(shape, 1)` in f32, as a `rand` [`Distribution`]: Marsaglia–Tsang for `shape >= 1`, and
/// `exp` of [`LogGamma`]'s draw below 1 (which underflows to 0 where `X` is below the smallest f32, as
/// it is for most draws of tiny shapes: use [`LogGamma`] there).
///
/// The shape should be positive and finite (it is not checked: other values give what the kernels give,
/// with bounded work). Words read, in order, four at a time:
/// 1. below 1 only, the boost block: its word 0 is the boost uniform (words 1 to 3 are unused);
/// 2. attempt blocks, at most [`MAX_GAMMA_BLOCKS`]: words 0 and 1 give two normals by Box–Muller,
///    words 2 and 3 their acceptance uniforms (see [`sample_gamma_mt`]); reading stops after the
///    accepted attempt's block.
///
/// So from a [`crate::twin::philox::Philox`] positioned at block [`first_block`]`(shape)` of a purpose
/// (0 below 1, else 1) it reads the blocks the counter-based path reads (block 0 for the boost, blocks
/// 1.. for the attempts), and for `shape >= 1` it is [`sample_gamma_mt`] bit for bit.
///
/// ```
/// use bots::__private::twin::distr::gamma::sample_gamma_mt;
/// use bots::rng::{first_block, Gamma};
/// use bots::rng::{Philox, Purpose, TaskStream};
/// use rand::{distr::Distribution, SeedableRng};
///
/// let g = Gamma::new(2.5);
/// let mut rng = Philox::seed_from_u64(1);
/// let mean = (0..10_000).map(|_| g.sample(&mut rng)).sum::<f32>() / 10_000.0;
/// assert!((mean - 2.5).abs() < 0.1);
///
/// let s = TaskStream::new(1, 2, 3);
/// let mut rng = s.rng(Purpose::GammaBeta, first_block(2.5));
/// assert_eq!(g.sample(&mut rng), sample_gamma_mt(2.5, &s, Purpose::GammaBeta));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gamma {
    /// The shape `a` (the scale is 1).
    pub shape: f32,
}

impl Gamma {
    /// Gamma(`shape`, 1).
    #[inline(always)]
    pub const fn new(shape: f32) -> Gamma {
        Gamma { shape }
    }
}

impl Distribution<f32> for Gamma {
    #[inline(always)]
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f32 {
        if self.shape < 1.0 {
            exp(LogGamma::new(self.shape).sample(rng))
        } else {
            sample_unboosted(self.shape, rng)
        }
    }
}

/// `ln X` for `X ~ Gamma(shape, 1)`, as a `rand` [`Distribution`]: `ln` of the Marsaglia–Tsang draw, then,
/// below 1, the boost `G(a) = G(a + 1) · U^(1/a)` in log space, so tiny shapes do not underflow.
///
/// The same words as [`Gamma`] (below 1 the boost block, then attempt blocks); from a
/// [`crate::twin::philox::Philox`] positioned at block [`first_block`]`(shape)` of a purpose it is
/// [`sample_log_gamma`] bit for bit (which is this draw on such a stream).
///
/// ```
/// use bots::rng::first_block;
/// use bots::__private::twin::distr::sample_log_gamma;
/// use bots::rng::LogGamma;
/// use bots::rng::{Purpose, TaskStream};
/// use rand::distr::Distribution;
///
/// let s = TaskStream::new(1, 0, 0);
/// let lg = LogGamma::new(0.01).sample(&mut s.rng(Purpose::GammaAlpha, first_block(0.01)));
/// assert_eq!(lg, sample_log_gamma(0.01, &s, Purpose::GammaAlpha));
/// assert!(lg.is_finite() && lg < -10.0); // Gamma(0.01) is almost always far below 1
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogGamma {
    /// The shape `a` of the Gamma(`a`, 1) whose logarithm is drawn.
    pub shape: f32,
}

impl LogGamma {
    /// `ln` of Gamma(`shape`, 1).
    #[inline(always)]
    pub const fn new(shape: f32) -> LogGamma {
        LogGamma { shape }
    }
}

impl Distribution<f32> for LogGamma {
    #[inline(always)]
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f32 {
        let shape = self.shape;
        if shape < 1.0 {
            let w = next_block(rng)[0];
            boost(shape, ln_normal(mt_draw(shape, rng)), w)
        } else {
            ln_normal(mt_draw(shape, rng))
        }
    }
}

/// `G ~ Gamma(a, 1)` for `a = shape`, or `shape + 1` below 1 (before the boost), in linear space: the
/// Marsaglia–Tsang draw from the `purpose` blocks of `stream`.
///
/// Blocks 1.. each hold two attempts: words 0, 1 give `x = c·z` for two normals `z` by Box–Muller
/// ([`box_muller_scaled`]), words 2, 3 the two acceptance uniforms. An attempt with `x <= -1` rejects;
/// otherwise [`mt_squeeze`] then [`mt_exact`] decide, and an accepted attempt gives [`mt_value`] (`d` if
/// every block rejects). Logarithms are `fmath`'s, bit for bit those of the kernels (the
/// domain forms `ln_normal` and `ln_1p_moderate`: every argument here is in their domain, given a
/// positive finite `shape`).
///
/// The attempts of [`Gamma`] and [`LogGamma`], read from [`TaskStream::rng`]`(purpose, 1)`.
#[inline(always)]
pub fn sample_gamma_mt(shape: f32, stream: &TaskStream, purpose: Purpose) -> f32 {
    mt_draw(shape, &mut stream.rng(purpose, 1))
}

/// `ln X` for `X ~ Gamma(shape, 1)`: `ln` of [`sample_gamma_mt`], then, below 1, the boost
/// `G(a) = G(a + 1) · U^(1/a)` in log space ([`gamma_boost`], block 0 word 0), so tiny shapes do not
/// underflow. It is [`LogGamma`] drawn from [`TaskStream::rng`]`(purpose, `[`first_block`]`(shape))`.
///
/// ```
/// use bots::rng::{Purpose, TaskStream};
/// let lg = bots::__private::twin::distr::sample_log_gamma(0.01, &TaskStream::new(1, 0, 0), Purpose::GammaAlpha);
/// assert!(lg.is_finite() && lg < 0.0); // Gamma(0.01) is almost always far below 1
/// ```
#[inline(always)]
pub fn sample_log_gamma(shape: f32, stream: &TaskStream, purpose: Purpose) -> f32 {
    LogGamma::new(shape).sample(&mut stream.rng(purpose, first_block(shape)))
}

/// The rest of [`sample_gamma_mt`] once the first attempt has rejected: attempt 1 of block 1 (its `x1`
/// and word `w3` given), then blocks 2.. . Nothing in the crate calls it since the Beta draw's first
/// attempts moved to a shared block (the lane code calls [`sample_gamma_mt`] whole); `rand_tests` still
/// checks it against the reference.
#[inline]
pub fn gamma_from_attempt1(d: f32, q: f32, x1: f32, w3: u32, stream: &TaskStream, purpose: Purpose) -> f32 {
    mt_from_attempt1(d, q, x1, w3, &mut stream.rng(purpose, 2))
}

/// `ln G(shape)` from `ln G(shape + 1)` below 1: `+ ln(U)/shape`, U from block 0 word 0.
#[inline(always)]
pub fn gamma_boost(shape: f32, log_g: f32, stream: &TaskStream, purpose: Purpose) -> f32 {
    if shape < 1.0 {
        boost(shape, log_g, stream.rng(purpose, 0).next_u32())
    } else {
        log_g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// E[G] = a and Var[G] = a; checked on exp(ln G) for 2^16 draws within 5 standard errors
    /// (Var of the sample variance of Gamma(a) is (mu4 - a^2)/n with mu4 = 3a^2 + 6a).
    #[test]
    fn moments_across_shapes() {
        let n = 1u32 << 16;
        for &a in &[0.05f32, 0.5, 1.0, 2.5, 30.0, 1000.0] {
            let xs: Vec<f64> = (0..n)
                .map(|i| sample_log_gamma(a, &TaskStream::new(11, 0, i), Purpose::GammaAlpha).exp() as f64)
                .collect();
            let len = n as f64;
            let a = a as f64;
            let mean = xs.iter().sum::<f64>() / len;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / len;
            assert!((mean - a).abs() < 5.0 * (a / len).sqrt(), "a={a} mean {mean}");
            let mu4 = 3.0 * a * a + 6.0 * a;
            assert!((var - a).abs() < 5.0 * ((mu4 - a * a) / len).sqrt(), "a={a} var {var}");
        }
    }

    /// `R(x) = ln(1+x) - x + x²/2 - x³/3` in f64 (its series below 0.01, where the direct form cancels).
    fn r_f64(x: f64) -> f64 {
        if x.abs() < 0.01 {
            (4..16).map(|n| if n % 2 == 0 { -1.0 } else { 1.0 } * x.powi(n) / n as f64).sum()
        } else {
            x.ln_1p() - x + x * x / 2.0 - x * x * x / 3.0
        }
    }

    /// The squeeze never accepts what the exact test (in f64) rejects: for shapes from the smallest `d`
    /// (2/3) to 10^6 and a dense sweep of `x` over (-1, 2.4], the largest `u01` value the squeeze accepts
    /// satisfies `ln u < 3d·R(x)`.
    #[test]
    fn squeeze_lies_inside_the_exact_test() {
        let u01_below = |t: f32| -> Option<f32> {
            // u01 outputs are (m + 1/2)·2^-23: the largest one below t.
            let m = ((t as f64) * 8_388_608.0 - 0.5).ceil() - 1.0;
            (m >= 0.0).then(|| ((m.min(8_388_607.0) + 0.5) / 8_388_608.0) as f32)
        };
        let mut checked = 0u32;
        for shape in [1.0f32, 1.2, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 100.0, 1e3, 1e4, 1e6, 0.5, 0.01] {
            let (d, _) = mt_constants(shape);
            for i in 1..20_000 {
                let x = -1.0 + 3.4 * (i as f32) / 20_000.0;
                // The squeeze's threshold as it computes it, then the largest u01 output below it
                // (one step further down if rounding puts that one outside).
                let Some(mut u) = u01_below(squeeze_bound(d, x)) else { continue };
                if !mt_squeeze(d, x, u) {
                    match u01_below(u) {
                        Some(v) if mt_squeeze(d, x, v) => u = v,
                        _ => continue,
                    }
                }
                let exact = 3.0 * d as f64 * r_f64(x as f64);
                assert!((u as f64).ln() < exact, "d {d}, x {x}, u {u}: ln u {} >= {exact}", (u as f64).ln());
                checked += 1;
            }
        }
        assert!(checked > 50_000, "only {checked} accepting points checked");
    }

    #[test]
    fn tiny_shape_stays_finite_in_log_space() {
        for i in 0..10_000 {
            let lg = sample_log_gamma(1e-3, &TaskStream::new(5, 1, i), Purpose::GammaBeta);
            assert!(lg.is_finite(), "task {i}: {lg}");
        }
    }
}
