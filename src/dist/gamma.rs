//! Gamma variates in log space: Marsaglia–Tsang (2000) with the `shape < 1` boost
//! `G(a) = G(a + 1) · U^(1/a)`, returning `ln G` so that tiny shapes do not underflow to 0
//! (the failure of torch's sampler for Beta(0.01, 0.01), pytorch#15738).

use crate::dist::fmath::{ln_1p_moderate, ln_normal};
use crate::rng::{u01, Purpose, TaskStream};
use crate::dist::normal::box_muller;

/// Block budget of the rejection loop: each block is two attempts, each accepted with probability
/// at least 0.95 for shapes of 1 or more, so running out has probability below 0.05^128. The fallback
/// (the mode-like value `d`) keeps the kernel's work bounded whatever the input.
pub const MAX_GAMMA_BLOCKS: u32 = crate::abi::MAX_GAMMA_BLOCKS;

/// `ln X` for `X ~ Gamma(shape, 1)`, drawn from the `purpose` blocks of `stream`.
///
/// Block 0 word 0 is the boost uniform (used only when `shape < 1`); blocks 1.. each hold two
/// attempts: words 0, 1 give two normals by Box–Muller, words 2, 3 the two acceptance uniforms.
/// The acceptance test is the squeeze `u < 1 - 0.0331 z^4` first, then
/// `ln u < z^2/2 + d (1 - v + ln v)` with `v = (1 + c z)^3`, evaluated as
/// `d · (3 ln1p(cz) - 3cz - 3(cz)^2 - (cz)^3)` so large shapes keep their precision. Logarithms are
/// [`crate::dist::fmath`]'s, bit for bit those of the kernels (the domain forms `ln_normal` and
/// `ln_1p_moderate`: every argument here is in their domain, given a positive finite `shape`).
///
/// ```
/// use bots::rng::{Purpose, TaskStream};
/// let lg = bots::dist::sample_log_gamma(0.01, &TaskStream::new(1, 0, 0), Purpose::GammaAlpha);
/// assert!(lg.is_finite() && lg < 0.0); // Gamma(0.01) is almost always far below 1
/// ```
#[inline(always)]
pub fn sample_log_gamma(shape: f32, stream: &TaskStream, purpose: Purpose) -> f32 {
    let boost = shape < 1.0;
    let a = if boost { shape + 1.0 } else { shape };
    let d = a - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    let ln_d = ln_normal(d);
    let mut log_g = ln_d;
    'blocks: for block in 1..=MAX_GAMMA_BLOCKS {
        let w = stream.block(purpose, block);
        let (z0, z1) = box_muller(w[0], w[1]);
        for (z, uw) in [(z0, w[2]), (z1, w[3])] {
            let x = c * z;
            if x <= -1.0 {
                continue;
            }
            let u = u01(uw);
            let z2 = z * z;
            if u < 1.0 - 0.0331 * (z2 * z2) {
                log_g = ln_d + 3.0 * ln_1p_moderate(x);
                break 'blocks;
            }
            let l = 3.0 * ln_1p_moderate(x);
            if ln_normal(u) < 0.5 * z2 + d * (l - 3.0 * x - 3.0 * x * x - x * x * x) {
                log_g = ln_d + l;
                break 'blocks;
            }
        }
    }
    if boost {
        let w = stream.block(purpose, 0);
        log_g += ln_normal(u01(w[0])) / shape;
    }
    log_g
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

    #[test]
    fn tiny_shape_stays_finite_in_log_space() {
        for i in 0..10_000 {
            let lg = sample_log_gamma(1e-3, &TaskStream::new(5, 1, i), Purpose::GammaBeta);
            assert!(lg.is_finite(), "task {i}: {lg}");
        }
    }
}
