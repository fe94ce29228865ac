//! Standard Gumbel noise for Gumbel-top-k.

use crate::twin::fmath::ln_normal;
use crate::twin::philox::{u01, Purpose, TaskStream};

/// `G = -ln(-ln U)` ([`crate::twin::fmath::ln`]) with U from word 0 of the task's [`Purpose::Gumbel`] block 0.
#[inline(always)]
pub fn sample_gumbel(stream: &TaskStream) -> f32 {
    let w = stream.block(Purpose::Gumbel, 0);
    // u01 is in [2^-24, 1), so both logarithms see positive normal arguments.
    -ln_normal(-ln_normal(u01(w[0])))
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
