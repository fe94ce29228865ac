//! Standard normal pairs by Box–Muller: [`box_muller`] of two words, and [`StandardNormal`], a `rand`
//! [`Distribution`] of it.

use rand::distr::Distribution;
use rand::Rng;

use crate::twin::fmath::{ln_normal, sincos_2pi};
use crate::twin::philox::u01;

/// The standard normal distribution N(0, 1) in f32 by Box–Muller, as a `rand` [`Distribution`] of the
/// pair `(f32, f32)` (two independent values, [`box_muller`] of the next two words of the `rng`) and of
/// one `f32` (the pair's first value, `r cos 2πu2`; both words are read, the sine half is dropped).
///
/// ```
/// use bots::__private::twin::distr::box_muller;
/// use bots::rng::StandardNormal;
/// use bots::rng::{Purpose, TaskStream};
/// use rand::distr::Distribution;
///
/// let s = TaskStream::new(3, 0, 1);
/// let w = s.block(Purpose::User, 0);
/// let mut rng = s.rng(Purpose::User, 0);
/// let pair: (f32, f32) = StandardNormal.sample(&mut rng);
/// assert_eq!(pair, box_muller(w[0], w[1]));
/// let z: f32 = StandardNormal.sample(&mut rng);
/// assert_eq!(z, box_muller(w[2], w[3]).0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StandardNormal;

impl Distribution<(f32, f32)> for StandardNormal {
    #[inline(always)]
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> (f32, f32) {
        let w0 = rng.next_u32();
        let w1 = rng.next_u32();
        box_muller(w0, w1)
    }
}

impl Distribution<f32> for StandardNormal {
    #[inline(always)]
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f32 {
        <Self as Distribution<(f32, f32)>>::sample(self, rng).0
    }
}

/// Two independent N(0, 1) values from two uniform words:
/// `r = sqrt(-2 ln u1)`, `(r cos 2πu2, r sin 2πu2)`, with the bit-reproducible `ln` and `sincos_2pi` of
/// the crate's `twin::fmath` (the kernels compute the same bits).
///
/// ```
/// let (z0, z1) = bots::__private::twin::distr::box_muller(0x1234_5678, 0x9abc_def0);
/// assert!(z0.is_finite() && z1.is_finite());
/// ```
#[inline(always)]
pub fn box_muller(w0: u32, w1: u32) -> (f32, f32) {
    // q = 1: the product by 1 is exact, so these are the unscaled values.
    box_muller_scaled(w0, w1, 1.0)
}

/// [`box_muller`]'s pair times `sqrt(q)`, with one square root: `s·(cos 2πu2, sin 2πu2)`,
/// `s = sqrt(-2 ln u1 · q)`. The Gamma sampler's `x = c·z` with `q = c² = 1/(9d)`.
///
/// ```
/// let (x0, x1) = bots::__private::twin::distr::normal::box_muller_scaled(0x1234_5678, 0x9abc_def0, 0.25);
/// let (z0, z1) = bots::__private::twin::distr::box_muller(0x1234_5678, 0x9abc_def0);
/// assert!((x0 - 0.5 * z0).abs() < 1e-6 && (x1 - 0.5 * z1).abs() < 1e-6);
/// ```
#[inline(always)]
pub fn box_muller_scaled(w0: u32, w1: u32, q: f32) -> (f32, f32) {
    let s = (-2.0 * ln_normal(u01(w0)) * q).sqrt();
    let (sn, cs) = sincos_2pi(u01(w1));
    (s * cs, s * sn)
}

/// [`box_muller_scaled`] with a scale for each value of the pair: `(sqrt(-2 ln u1 · qa) cos 2πu2,
/// sqrt(-2 ln u1 · qb) sin 2πu2)`, each the bits [`box_muller_scaled`] gives for that value with its own
/// scale (the same logarithm and `sincos` once). The two Gammas' first attempts of a Beta draw.
///
/// ```
/// use bots::__private::twin::distr::normal::{box_muller_scaled, box_muller_scaled_pair};
/// let (w0, w1) = (0x1234_5678, 0x9abc_def0);
/// let (xa, xb) = box_muller_scaled_pair(w0, w1, 0.25, 0.04);
/// assert_eq!((xa, xb), (box_muller_scaled(w0, w1, 0.25).0, box_muller_scaled(w0, w1, 0.04).1));
/// ```
#[inline(always)]
pub fn box_muller_scaled_pair(w0: u32, w1: u32, qa: f32, qb: f32) -> (f32, f32) {
    let r = -2.0 * ln_normal(u01(w0));
    let (sn, cs) = sincos_2pi(u01(w1));
    ((r * qa).sqrt() * cs, (r * qb).sqrt() * sn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twin::philox::{Purpose, TaskStream};

    /// Mean, variance and the tail mass beyond 2 sigma of 2^18 values against N(0,1), within 5
    /// standard errors.
    #[test]
    fn moments_and_tails() {
        let n = 1u32 << 17;
        let mut xs = Vec::with_capacity(2 * n as usize);
        for i in 0..n {
            let w = TaskStream::new(3, 0, i).block(Purpose::User, 0);
            let (a, b) = box_muller(w[0], w[1]);
            xs.push(a as f64);
            xs.push(b as f64);
        }
        let len = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / len;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / len;
        assert!(mean.abs() < 5.0 / len.sqrt(), "mean {mean}");
        // Var of the sample variance of N(0,1) is 2/n.
        assert!((var - 1.0).abs() < 5.0 * (2.0 / len).sqrt(), "var {var}");
        let p = 0.045_500_263_9; // P(|Z| > 2)
        let tail = xs.iter().filter(|x| x.abs() > 2.0).count() as f64 / len;
        assert!((tail - p).abs() < 5.0 * (p * (1.0 - p) / len).sqrt(), "tail {tail}");
    }
}
