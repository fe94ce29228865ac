//! Counter-based randomness: Philox4x32-10 (Salmon et al., SC'11), written once and used by the CPU
//! backend exactly as `kernels/philox.cuh` uses it on the GPU.
//!
//! Stream layout (the same on every backend and every thread count):
//! - key = the 64-bit seed, `[seed as u32, (seed >> 32) as u32]`;
//! - counter = `[task, (purpose << 24) | block, step as u32, (step >> 32) as u32]`.
//!
//! So draw `block` of `purpose` for task k at step t is a pure function of (seed, t, k): the map
//! from (seed, step, task, purpose, block) to (key, counter) is injective for tasks < 2^32 and blocks
//! < 2^24. Purposes are listed in [`Purpose`].

/// Philox4x32 multipliers and Weyl key increments (Random123).
pub(crate) const M0: u32 = 0xD251_1F53;
pub(crate) const M1: u32 = 0xCD9E_8D57;
pub(crate) const W0: u32 = 0x9E37_79B9;
pub(crate) const W1: u32 = 0xBB67_AE85;

#[inline(always)]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = (a as u64) * (b as u64);
    ((p >> 32) as u32, p as u32)
}

/// One Philox4x32 block with `rounds` rounds (10 is the standard, "Philox4x32-10").
#[inline(always)]
pub fn philox4x32_r(mut ctr: [u32; 4], mut key: [u32; 2], rounds: u32) -> [u32; 4] {
    for r in 0..rounds {
        if r > 0 {
            key[0] = key[0].wrapping_add(W0);
            key[1] = key[1].wrapping_add(W1);
        }
        let (hi0, lo0) = mulhilo(M0, ctr[0]);
        let (hi1, lo1) = mulhilo(M1, ctr[2]);
        ctr = [hi1 ^ ctr[1] ^ key[0], lo1, hi0 ^ ctr[3] ^ key[1], lo0];
    }
    ctr
}

/// Philox4x32-10: four independent uniform 32-bit words from a 128-bit counter and a 64-bit key.
///
/// ```
/// assert_eq!(bots::twin::philox::philox4x32_10([0; 4], [0; 2]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
/// ```
#[inline(always)]
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    philox4x32_r(ctr, key, 10)
}

/// What a block of random words is used for; part of the counter, so draws for different purposes
/// never overlap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Purpose {
    /// The Gamma(alpha) draw of the Beta sample.
    GammaAlpha = 0,
    /// The Gamma(beta) draw of the Beta sample.
    GammaBeta = 1,
    /// The Gumbel noise of Gumbel-top-k (tau > 0).
    Gumbel = 2,
    /// Free for callers (the simulator's rollouts use it).
    User = 3,
}

/// The Philox key of a seed: `[seed as u32, (seed >> 32) as u32]`.
#[inline(always)]
pub fn seed_key(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

/// The random words of one task at one step: a cheap handle that computes blocks on demand.
#[derive(Clone, Copy, Debug)]
pub struct TaskStream {
    key: [u32; 2],
    task: u32,
    step: u64,
}

impl TaskStream {
    /// The stream of `task` at `step` under `seed`.
    #[inline(always)]
    pub fn new(seed: u64, step: u64, task: u32) -> Self {
        TaskStream { key: seed_key(seed), task, step }
    }

    /// Block `block` (< 2^24) of `purpose`: four uniform 32-bit words.
    #[inline(always)]
    pub fn block(&self, purpose: Purpose, block: u32) -> [u32; 4] {
        debug_assert!(block < (1 << 24));
        let ctr = [self.task, ((purpose as u32) << 24) | block, self.step as u32, (self.step >> 32) as u32];
        philox4x32_10(ctr, self.key)
    }
}

/// A 32-bit word to a uniform f32 in the open interval (0, 1): `((x >> 9) + 0.5) · 2^-23`, exact in
/// f32 (24 significant bits). Never 0 or 1, so `ln` and `ln(-ln)` are finite.
///
/// Computed as `1.m - (1 - 2^-24)`, with `1.m` the f32 whose mantissa is `x >> 9`: the difference is
/// the exact value above (an odd multiple of 2^-24 below 1, representable), so the subtraction is exact;
/// three integer/float operations and no int-to-float conversion.
#[inline(always)]
pub fn u01(x: u32) -> f32 {
    f32::from_bits((x >> 9) | 0x3f80_0000) - (1.0 - 1.0 / 16_777_216.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors of Random123 (`kat_vectors`, philox4x32 with 10 rounds).
    #[test]
    fn random123_known_answers() {
        assert_eq!(philox4x32_10([0; 4], [0; 2]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
        assert_eq!(philox4x32_10([u32::MAX; 4], [u32::MAX; 2]), [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
        assert_eq!(
            philox4x32_10([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    /// Random123's 7-round vector, checking the round structure separately from the round count.
    #[test]
    fn random123_seven_rounds() {
        assert_eq!(philox4x32_r([0; 4], [0; 2], 7), [0x5f6fb709, 0x0d893f64, 0x4f121f81, 0x4f730a48]);
    }

    #[test]
    fn u01_is_the_exact_grid() {
        for m in 0..1u32 << 23 {
            let want = ((m as f64) + 0.5) / 8_388_608.0;
            assert_eq!(u01(m << 9) as f64, want, "m = {m}");
            assert_eq!(u01((m << 9) | 0x1ff), u01(m << 9));
        }
    }

    #[test]
    fn u01_is_open_interval() {
        assert_eq!(u01(0), 0.5 / 8_388_608.0);
        assert_eq!(u01(u32::MAX), 1.0 - 0.5 / 8_388_608.0);
        assert!(u01(u32::MAX) < 1.0);
        assert_eq!(u01(0x8000_0000), 0.5 + 0.5 / 8_388_608.0);
    }

    #[test]
    fn streams_are_distinct_and_reproducible() {
        let a = TaskStream::new(1, 2, 3);
        assert_eq!(a.block(Purpose::GammaAlpha, 0), TaskStream::new(1, 2, 3).block(Purpose::GammaAlpha, 0));
        let others = [
            TaskStream::new(2, 2, 3).block(Purpose::GammaAlpha, 0),
            TaskStream::new(1, 3, 3).block(Purpose::GammaAlpha, 0),
            TaskStream::new(1, 2, 4).block(Purpose::GammaAlpha, 0),
            a.block(Purpose::GammaBeta, 0),
            a.block(Purpose::GammaAlpha, 1),
            TaskStream::new(1 << 32 | 1, 2, 3).block(Purpose::GammaAlpha, 0),
            TaskStream::new(1, 2 | 1 << 32, 3).block(Purpose::GammaAlpha, 0),
        ];
        for o in others {
            assert_ne!(o, a.block(Purpose::GammaAlpha, 0));
        }
    }

    /// Monobit and byte-frequency checks over 2^20 words: the bounds are 5 standard deviations.
    #[test]
    fn words_look_uniform() {
        let n_blocks = 1 << 18;
        let mut ones = 0u64;
        let mut bytes = [0u64; 256];
        for i in 0..n_blocks {
            for w in TaskStream::new(7, 0, i).block(Purpose::User, 0) {
                ones += w.count_ones() as u64;
                for b in w.to_le_bytes() {
                    bytes[b as usize] += 1;
                }
            }
        }
        let bits = (n_blocks as f64) * 128.0;
        let sd = (bits * 0.25).sqrt();
        assert!(((ones as f64) - bits / 2.0).abs() < 5.0 * sd);
        // chi-square with 255 degrees of freedom: mean 255, sd sqrt(510) ~ 22.6
        let total = (n_blocks as f64) * 16.0;
        let expect = total / 256.0;
        let chi2: f64 = bytes.iter().map(|&c| (c as f64 - expect).powi(2) / expect).sum();
        assert!(chi2 < 255.0 + 5.0 * 22.6, "chi2 = {chi2}");
    }
}
