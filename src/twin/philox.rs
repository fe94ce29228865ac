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
//!
//! [`TaskStream::block`] reads any block directly (the kernels' access pattern); [`Philox`] reads the
//! same words in sequence through `rand`'s [`RngCore`] and [`SeedableRng`], so the samplers of
//! [`crate::twin::distr`] are `rand` [`Distribution`](rand::distr::Distribution)s drawing the kernels'
//! bits.

use rand::{RngCore, SeedableRng};

/// Philox4x32 multipliers and Weyl key increments (Random123), declared with the kernels' in the ABI.
pub(crate) const M0: u32 = crate::abi::PHILOX_M0;
pub(crate) const M1: u32 = crate::abi::PHILOX_M1;
pub(crate) const W0: u32 = crate::abi::PHILOX_W0;
pub(crate) const W1: u32 = crate::abi::PHILOX_W1;

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
/// assert_eq!(bots::__private::twin::philox::philox4x32_10([0; 4], [0; 2]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
/// ```
#[inline(always)]
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    philox4x32_r(ctr, key, 10)
}

/// The ten round keys of Philox4x32-10 for `seed` (key `[seed lo, seed hi]`, plus `r·(W0, W1)` in
/// round r), flattened `[k0 of round 0, k1 of round 0, k0 of round 1, ...]`: what the kernels take in
/// `Params::philox_keys`, so they read each from the parameter bank rather than derive it.
///
/// ```
/// let k = bots::__private::twin::philox::round_keys(0x0123_4567_89ab_cdef);
/// assert_eq!((k[0], k[1]), (0x89ab_cdef, 0x0123_4567));
/// ```
pub fn round_keys(seed: u64) -> [u32; 20] {
    let mut out = [0u32; 20];
    let mut key = [seed as u32, (seed >> 32) as u32];
    for r in 0..10 {
        if r > 0 {
            key[0] = key[0].wrapping_add(W0);
            key[1] = key[1].wrapping_add(W1);
        }
        out[2 * r] = key[0];
        out[2 * r + 1] = key[1];
    }
    out
}

/// What a block of random words is used for; part of the counter, so draws for different purposes
/// never overlap. The codes are declared in the ABI, with the kernels' (`BOTS_PURPOSE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Purpose {
    /// The Gamma(alpha) draw of the Beta sample.
    GammaAlpha = crate::abi::PURPOSE_GAMMA_ALPHA,
    /// The Gamma(beta) draw of the Beta sample.
    GammaBeta = crate::abi::PURPOSE_GAMMA_BETA,
    /// The Gumbel noise of Gumbel-top-k (tau > 0).
    Gumbel = crate::abi::PURPOSE_GUMBEL,
    /// Free for callers (the simulator's rollouts use it).
    User = crate::abi::PURPOSE_USER,
    /// The Beta draw's first attempts of both Gammas (block 0: a Box–Muller pair and two uniforms).
    First = crate::abi::PURPOSE_FIRST,
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

    /// A sequential [`Philox`] positioned at block `block` (< 2^24) of `purpose`: its words are those of
    /// `self.block(purpose, b)` for `b = block, block + 1, ...`, in order. The same as [`Philox::at`].
    ///
    /// ```
    /// use bots::rng::{Purpose, TaskStream};
    /// use rand::RngCore;
    /// let s = TaskStream::new(7, 3, 11);
    /// let mut rng = s.rng(Purpose::User, 2);
    /// let words: Vec<u32> = (0..8).map(|_| rng.next_u32()).collect();
    /// assert_eq!(words[..4], s.block(Purpose::User, 2));
    /// assert_eq!(words[4..], s.block(Purpose::User, 3));
    /// ```
    #[inline(always)]
    pub fn rng(&self, purpose: Purpose, block: u32) -> Philox {
        Philox::at(self, purpose, block)
    }
}

/// A sequential Philox4x32-10 stream: `rand`'s [`RngCore`] and [`SeedableRng`] over the task-stream
/// counters, so that a sampler reading words one after another from it draws exactly the words the
/// counter-based path reads with [`TaskStream::block`].
///
/// State: the key (from the seed, [`seed_key`]), the 128-bit *position* of the next block, and the
/// current block with the index of its next word. The position `p` is the counter
/// `[(p >> 32) as u32, p as u32, (p >> 64) as u32, (p >> 96) as u32]`: its low 32 bits are counter word 1
/// (`(purpose << 24) | block`), then the task, then the step, so consecutive positions are consecutive
/// blocks of one purpose of one task at one step, and
/// `p = step << 64 | task << 32 | purpose << 24 | block`.
///
/// - [`RngCore::next_u32`] returns the words of the current block in order (word 0 first), then those of
///   the block at the next position; a block is computed when its first word is read.
/// - [`RngCore::next_u64`] is two words, the first in the low half: `w0 | w1 << 32` (as
///   `rand_core::impls::next_u64_via_u32`).
/// - [`RngCore::fill_bytes`] writes consecutive words in little-endian byte order; a trailing partial
///   word takes that many low bytes of a whole word (the rest of it is dropped).
/// - [`SeedableRng`]: the seed is the crate's 64-bit `seed` in little-endian bytes, and the stream starts
///   at position 0 (step 0, task 0, [`Purpose::GammaAlpha`], block 0); [`SeedableRng::seed_from_u64`]`(s)`
///   is that seed `s` (not rand's PCG expansion of it), so it reads with the `seed` of a [`crate::Config`].
///
/// After 2^24 blocks of a purpose the position runs on into the next purpose's blocks (and after
/// 2^32 block numbers into the next task's): a stream positioned at a purpose holds 2^24 blocks of its
/// own.
///
/// ```
/// use bots::rng::{Philox, Purpose, TaskStream};
/// use rand::{RngCore, SeedableRng};
///
/// let mut rng = Philox::seed_from_u64(42);
/// let w: Vec<u32> = (0..8).map(|_| rng.next_u32()).collect();
/// let s = TaskStream::new(42, 0, 0);
/// assert_eq!(w[..4], s.block(Purpose::GammaAlpha, 0));
/// assert_eq!(w[4..], s.block(Purpose::GammaAlpha, 1));
///
/// // Positioned where the counter-based path reads: block 5 of task 9's Gumbel words at step 3.
/// let s = TaskStream::new(42, 3, 9);
/// let mut rng = Philox::at(&s, Purpose::Gumbel, 5);
/// let b = s.block(Purpose::Gumbel, 5);
/// assert_eq!(rng.next_u64(), b[0] as u64 | (b[1] as u64) << 32);
/// let mut bytes = [0u8; 6];
/// rng.fill_bytes(&mut bytes);
/// assert_eq!(bytes[..4], b[2].to_le_bytes());
/// assert_eq!(bytes[4..], b[3].to_le_bytes()[..2]);
/// assert_eq!(rng.next_u32(), s.block(Purpose::Gumbel, 6)[0]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Philox {
    key: [u32; 2],
    /// The position of the block after `buf`.
    pos: u128,
    buf: [u32; 4],
    /// The next word of `buf`; 4 when it is used up.
    idx: usize,
}

impl Philox {
    /// The stream of `seed` from position `position` (see [`Philox`]), at the first word of that block.
    #[inline(always)]
    pub fn from_position(seed: u64, position: u128) -> Philox {
        Philox { key: seed_key(seed), pos: position, buf: [0; 4], idx: 4 }
    }

    /// The position of block `block` (< 2^24) of `purpose` for `task` at `step`:
    /// `step << 64 | task << 32 | purpose << 24 | block`.
    #[inline(always)]
    pub fn position(step: u64, task: u32, purpose: Purpose, block: u32) -> u128 {
        debug_assert!(block < (1 << 24));
        ((step as u128) << 64) | ((task as u128) << 32) | (((purpose as u32) << 24) | block) as u128
    }

    /// Positioned at block `block` (< 2^24) of `purpose` of `stream`: the words read are those of
    /// `stream.block(purpose, b)` for `b = block, block + 1, ...`, in order (see [`TaskStream::rng`]).
    #[inline(always)]
    pub fn at(stream: &TaskStream, purpose: Purpose, block: u32) -> Philox {
        Philox { key: stream.key, pos: Self::position(stream.step, stream.task, purpose, block), buf: [0; 4], idx: 4 }
    }

    /// The counter of the block at position `pos`.
    #[inline(always)]
    fn counter(pos: u128) -> [u32; 4] {
        [(pos >> 32) as u32, pos as u32, (pos >> 64) as u32, (pos >> 96) as u32]
    }
}

impl RngCore for Philox {
    #[inline(always)]
    fn next_u32(&mut self) -> u32 {
        if self.idx >= 4 {
            self.buf = philox4x32_10(Self::counter(self.pos), self.key);
            self.pos = self.pos.wrapping_add(1);
            self.idx = 0;
        }
        let w = self.buf[self.idx];
        self.idx += 1;
        w
    }

    #[inline(always)]
    fn next_u64(&mut self) -> u64 {
        let lo = self.next_u32() as u64;
        let hi = self.next_u32() as u64;
        (hi << 32) | lo
    }

    #[inline]
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        let mut chunks = dst.chunks_exact_mut(4);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u32().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let n = rest.len();
            rest.copy_from_slice(&self.next_u32().to_le_bytes()[..n]);
        }
    }
}

impl SeedableRng for Philox {
    /// The crate's 64-bit seed, little-endian.
    type Seed = [u8; 8];

    /// The stream of the seed `u64::from_le_bytes(seed)` from position 0.
    #[inline]
    fn from_seed(seed: [u8; 8]) -> Philox {
        Philox::from_position(u64::from_le_bytes(seed), 0)
    }

    /// `from_seed(state.to_le_bytes())`: the seed itself, so that `Philox::seed_from_u64(config.seed)`
    /// reads the key of the task streams of that config.
    #[inline]
    fn seed_from_u64(state: u64) -> Philox {
        Philox::from_seed(state.to_le_bytes())
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

    /// A small SplitMix64, to pick test inputs (not the stream under test).
    fn splitmix(x: &mut u64) -> u64 {
        *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `Philox::at` reads `TaskStream::block(purpose, b)` for `b = first, first + 1, ...`, word by word:
    /// 4096 random (seed, step, task, purpose, first block) with 1 to 9 blocks each, plus the edges
    /// (all-ones seed, step and task; the last blocks below 2^24).
    #[test]
    fn sequential_words_are_the_task_stream_blocks() {
        let purposes = [Purpose::GammaAlpha, Purpose::GammaBeta, Purpose::Gumbel, Purpose::User];
        let mut x = 2024u64;
        let mut cases = vec![
            (0u64, 0u64, 0u32, Purpose::GammaAlpha, 0u32, 3u32),
            (u64::MAX, u64::MAX, u32::MAX, Purpose::User, (1 << 24) - 9, 9),
            (1 << 32, 1 << 32, 1 << 31, Purpose::GammaBeta, (1 << 24) - 1, 1),
        ];
        for _ in 0..4096 {
            let r = splitmix(&mut x);
            let block = if r & 1 == 0 { (r >> 8) as u32 & 7 } else { (r >> 8) as u32 & 0x00ff_fff0 };
            let p = purposes[(r >> 40) as usize & 3];
            cases.push((
                splitmix(&mut x),
                splitmix(&mut x),
                splitmix(&mut x) as u32,
                p,
                block,
                1 + (r >> 50) as u32 % 9,
            ));
        }
        for (seed, step, task, purpose, first, blocks) in cases {
            let s = TaskStream::new(seed, step, task);
            let mut rng = s.rng(purpose, first);
            assert_eq!(rng, Philox::at(&s, purpose, first));
            for b in first..first + blocks {
                let got = [rng.next_u32(), rng.next_u32(), rng.next_u32(), rng.next_u32()];
                assert_eq!(got, s.block(purpose, b), "seed {seed} step {step} task {task} {purpose:?} block {b}");
            }
        }
    }

    /// The position is the counter with words 1, 0, 2, 3 from least significant, and carries in that
    /// order: past block 2^24 - 1 into the next purpose, past word 1 into the task, past the task into the
    /// step, past everything back to 0.
    #[test]
    fn position_carries_through_the_counter_words() {
        let key = seed_key(0x0123_4567_89ab_cdef);
        let next = |pos: u128| {
            let mut rng = Philox::from_position(0x0123_4567_89ab_cdef, pos);
            (0..8).map(|_| rng.next_u32()).collect::<Vec<u32>>()
        };
        let s = TaskStream::new(0x0123_4567_89ab_cdef, 5, 6);
        let last = Philox::position(5, 6, Purpose::GammaAlpha, (1 << 24) - 1);
        assert_eq!(next(last)[..4], s.block(Purpose::GammaAlpha, (1 << 24) - 1));
        assert_eq!(next(last)[4..], s.block(Purpose::GammaBeta, 0));
        for (pos, ctr, ctr_next) in [
            (u32::MAX as u128, [0, u32::MAX, 0, 0], [1, 0, 0, 0]),
            (u64::MAX as u128, [u32::MAX, u32::MAX, 0, 0], [0, 0, 1, 0]),
            ((1u128 << 96) - 1, [u32::MAX, u32::MAX, u32::MAX, 0], [0, 0, 0, 1]),
            (u128::MAX, [u32::MAX; 4], [0; 4]),
        ] {
            let w = next(pos);
            assert_eq!(w[..4], philox4x32_10(ctr, key), "position {pos:#x}");
            assert_eq!(w[4..], philox4x32_10(ctr_next, key), "position {pos:#x} + 1");
        }
    }

    /// `next_u64` is two words, low first; `fill_bytes` is little-endian words with the tail's unused bytes
    /// dropped; the calls mix freely within a block and across blocks.
    #[test]
    fn u64_and_bytes_follow_the_word_order() {
        let s = TaskStream::new(99, 1, 2);
        let words: Vec<u32> = (0..4).flat_map(|b| s.block(Purpose::User, b)).collect();
        let mut rng = s.rng(Purpose::User, 0);
        assert_eq!(rng.next_u32(), words[0]);
        assert_eq!(rng.next_u64(), words[1] as u64 | (words[2] as u64) << 32);
        assert_eq!(rng.next_u64(), words[3] as u64 | (words[4] as u64) << 32);
        let mut bytes = [0u8; 11];
        rng.fill_bytes(&mut bytes);
        let want: Vec<u8> = words[5..8].iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(bytes[..], want[..11]);
        assert_eq!(rng.next_u32(), words[8]);
        rng.fill_bytes(&mut []);
        assert_eq!(rng.next_u32(), words[9]);
    }

    /// `from_seed` takes the little-endian seed and `seed_from_u64` the seed itself: both start at
    /// task 0, step 0, `GammaAlpha` block 0; a clone continues identically.
    #[test]
    fn seedable_rng_is_the_config_seed() {
        for seed in [0u64, 1, 42, 0xdead_beef_0bad_f00d, u64::MAX] {
            let mut a = Philox::seed_from_u64(seed);
            let b = Philox::from_seed(seed.to_le_bytes());
            assert_eq!(a, b);
            assert_eq!(a, Philox::from_position(seed, 0));
            assert_eq!(a.next_u32(), TaskStream::new(seed, 0, 0).block(Purpose::GammaAlpha, 0)[0]);
            let mut c = a.clone();
            for _ in 0..37 {
                assert_eq!(a.next_u32(), c.next_u32());
            }
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
