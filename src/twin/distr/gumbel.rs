//! Standard Gumbel noise for Gumbel-top-k: [`Gumbel`], a `rand` [`Distribution`], and [`sample_gumbel`],
//! the task stream's draw of it.

use rand::distr::Distribution;
use rand::Rng;

use crate::twin::fmath::ln_normal;
use crate::twin::philox::{u01, Purpose, TaskStream};

/// The standard Gumbel distribution (location 0, scale 1) in f32, as a `rand` [`Distribution`]:
/// `G = -ln(-ln U)` ([`crate::twin::fmath::ln`]) with U = [`u01`] of one word of the `rng`.
///
/// ```
/// use bots::__private::twin::distr::sample_gumbel;
/// use bots::rng::Gumbel;
/// use bots::rng::{Philox, Purpose, TaskStream};
/// use rand::{distr::Distribution, SeedableRng};
///
/// let mean = Gumbel.sample_iter(Philox::seed_from_u64(5)).take(10_000).sum::<f32>() / 10_000.0;
/// assert!((mean - 0.5772).abs() < 0.05);
///
/// let s = TaskStream::new(5, 1, 2);
/// assert_eq!(Gumbel.sample(&mut s.rng(Purpose::Gumbel, 0)), sample_gumbel(&s));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gumbel;

impl Distribution<f32> for Gumbel {
    #[inline(always)]
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f32 {
        // u01 is in [2^-24, 1), so both logarithms see positive normal arguments.
        -ln_normal(-ln_normal(u01(rng.next_u32())))
    }
}

/// `G = -ln(-ln U)` ([`crate::twin::fmath::ln`]) with U from word 0 of the task's [`Purpose::Gumbel`] block 0:
/// [`Gumbel`] drawn from [`TaskStream::rng`]`(Purpose::Gumbel, 0)`.
#[inline(always)]
pub fn sample_gumbel(stream: &TaskStream) -> f32 {
    Gumbel.sample(&mut stream.rng(Purpose::Gumbel, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mean (Euler–Mascheroni) and variance (pi^2/6) of 2^18 draws, within 5 standard errors.
    #[test]
    fn moments() {
        let n = 1u32 << 18;
        let xs: Vec<f64> = (0..n).map(|i| sample_gumbel(&TaskStream::new(9, 4, i)) as f64).collect();
        let len = n as f64;
        let mean = xs.iter().sum::<f64>() / len;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / len;
        let pi2_6 = std::f64::consts::PI.powi(2) / 6.0;
        assert!((mean - 0.577_215_664_9).abs() < 5.0 * (pi2_6 / len).sqrt(), "mean {mean}");
        // Var of the sample variance: (mu4 - sigma^4)/n, Gumbel excess kurtosis 12/5.
        let sd_var = ((2.0 + 2.4) * pi2_6 * pi2_6 / len).sqrt();
        assert!((var - pi2_6).abs() < 5.0 * sd_var, "var {var}");
    }
}
