//! The fused pass (pending update + Thompson sample + score + key) over groups of [`LANES`] tasks
//! ([`LANES_AVX512`] in the AVX-512 build), in plain arrays and loops that LLVM autovectorizes: Philox
//! (with `std::arch` intrinsics in the AVX-512 build), the branch-free [`crate::twin::fmath`]
//! functions, and the first Marsaglia–Tsang attempt of both Gamma draws for all lanes at once. A lane
//! whose first attempt is not accepted by the squeeze (about 2% of Gamma draws in `bots bench`)
//! finishes in the scalar code from the values already computed, so every key is bit for bit the key
//! of the scalar twin [`crate::select::update_sample_score`] (checked by the tests below on millions
//! of tasks).
//!
//! [`fill_keys`] picks an AVX-512 or AVX2 build of the lane code at run time ([`simd_level`], through
//! `is_x86_feature_detected!`), so the binary stays portable; elsewhere the same code runs compiled for
//! the baseline target. Every build gives the same bits: Rust never contracts `a * b + c` into an FMA,
//! and LLVM uses no approximate reciprocal without fast-math flags.

use crate::config::Config;
use crate::evidence::interpolate;
use crate::pool::{Features, Prior};
use crate::select::{score_key, update_sample_score, TopK};
use crate::twin::distr::beta::{beta_from_logs, beta_in_linear_space, beta_linear};
use crate::twin::distr::gamma::{mt_constants, mt_exact, mt_squeeze, mt_value, sample_gamma_mt};
use crate::twin::distr::normal::box_muller_scaled_pair;
use crate::twin::fmath::ln_normal;
use crate::twin::philox::{seed_key, u01, Purpose, TaskStream, M0, M1, W0, W1};
use crate::update::{update_task, PendingScalars};

mod philox512;

/// Tasks per lane group of the AVX2 and portable builds (two 256-bit registers per value in AVX2).
pub const LANES: usize = 16;
/// Tasks per lane group of the AVX-512 build: four 512-bit registers per value, so that four
/// independent dependency chains interleave (one register per value leaves the core waiting on the
/// latency of each division, square root and Philox multiply; measured in docs/BENCHMARKS.md).
pub const LANES_AVX512: usize = 64;

/// How a lane build computes a Philox block for `L` lanes.
trait PhiloxLanes<const L: usize>: Copy {
    fn block(self, task: &[u32; L], c1: u32, step: u64, key: [u32; 2]) -> [[u32; L]; 4];
}

/// The autovectorized [`philox_lanes`].
#[derive(Clone, Copy)]
struct AutoPhilox;

impl<const L: usize> PhiloxLanes<L> for AutoPhilox {
    #[inline(always)]
    fn block(self, task: &[u32; L], c1: u32, step: u64, key: [u32; 2]) -> [[u32; L]; 4] {
        philox_lanes(task, c1, step, key)
    }
}

/// [`philox512::block`]; only made where the CPU runs AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Avx512Philox(philox512::RoundKeys);

#[cfg(target_arch = "x86_64")]
impl<const L: usize> PhiloxLanes<L> for Avx512Philox {
    #[inline(always)]
    fn block(self, task: &[u32; L], c1: u32, step: u64, key: [u32; 2]) -> [[u32; L]; 4] {
        debug_assert_eq!(self.0 .0[0], key);
        // SAFETY: an `Avx512Philox` is only made by `fill_keys_avx512`, which runs where AVX-512 F is.
        unsafe { philox512::block(task, c1, step, &self.0) }
    }
}

/// Everything the scoring of a range of tasks reads besides alpha and beta.
#[derive(Clone, Copy, Debug)]
pub struct ScoreCtx<'a> {
    pub config: &'a Config,
    pub prior: &'a Prior,
    pub features: Option<&'a Features>,
    /// The pending pool-wide update to apply (and write back) before scoring, if any.
    pub pending: Option<&'a PendingScalars>,
    pub step: u64,
}

/// The scalar reference: `out[i]` = the key of task `base + i`, applying the pending update to
/// `alpha[i], beta[i]` first.
pub fn fill_keys_scalar(ctx: &ScoreCtx, alpha: &mut [f32], beta: &mut [f32], base: usize, out: &mut [u64]) {
    for (i, key) in out.iter_mut().enumerate() {
        let k = base + i;
        let f = ctx.pending.and_then(|p| p.pair(ctx.features, k));
        *key = update_sample_score(
            ctx.config,
            &mut alpha[i],
            &mut beta[i],
            ctx.prior.get(k),
            f,
            ctx.pending,
            ctx.step,
            k as u32,
        );
    }
}

/// The instruction sets the lane code is built for, picked once per process by [`simd_level`];
/// ordered from the least to the most capable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Simd {
    /// The baseline target (SSE2 on x86-64): what LLVM autovectorizes without run-time features.
    Portable,
    /// AVX2 (16 lanes in two 256-bit registers).
    Avx2,
    /// AVX-512 F/BW/DQ/VL (16 lanes in one 512-bit register).
    Avx512,
}

impl Simd {
    /// The best level this CPU runs.
    pub fn detect() -> Simd {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                return Simd::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Simd::Avx2;
            }
        }
        Simd::Portable
    }

    /// Every level this CPU runs (the portable one first).
    #[cfg(test)]
    pub fn available() -> Vec<Simd> {
        let best = Simd::detect();
        [Simd::Portable, Simd::Avx2, Simd::Avx512].into_iter().filter(|&s| s <= best).collect()
    }
}

/// The level [`fill_keys`] uses: [`Simd::detect`], or a lower one named by the environment variable
/// `BOTS_SIMD` (`portable`, `avx2`, `avx512`; for benchmarks that compare the builds in one run). A
/// level above what the CPU runs is capped to the CPU's. Every level gives the same keys.
pub fn simd_level() -> Simd {
    static LEVEL: std::sync::OnceLock<Simd> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        let best = Simd::detect();
        let asked = match std::env::var("BOTS_SIMD").as_deref() {
            Ok("portable") => Simd::Portable,
            Ok("avx2") => Simd::Avx2,
            _ => best,
        };
        if asked <= best {
            asked
        } else {
            best
        }
    })
}

/// [`fill_keys_scalar`], computed in lanes at [`simd_level`]; the same keys and the same written-back
/// alpha and beta.
#[cfg(test)]
pub fn fill_keys(ctx: &ScoreCtx, alpha: &mut [f32], beta: &mut [f32], base: usize, out: &mut [u64]) {
    fill_keys_at(simd_level(), ctx, alpha, beta, base, out)
}

/// [`fill_keys`], then every key offered to `top` ([`TopK::push_all`], compiled with the lane code's
/// instruction set, so its threshold test is vector compares).
pub fn fill_keys_offer(
    ctx: &ScoreCtx,
    alpha: &mut [f32],
    beta: &mut [f32],
    base: usize,
    out: &mut [u64],
    top: &mut TopK,
) {
    dispatch(simd_level(), ctx, KeyBlock { alpha, beta, base, out }, Some(top))
}

/// [`fill_keys`] at a given level, which must be one of [`Simd::available`] (a higher one runs the
/// best available instead).
#[cfg(test)]
pub fn fill_keys_at(level: Simd, ctx: &ScoreCtx, alpha: &mut [f32], beta: &mut [f32], base: usize, out: &mut [u64]) {
    dispatch(level, ctx, KeyBlock { alpha, beta, base, out }, None)
}

/// The slices of one block of tasks: `out[i]` is the key of task `base + i`.
struct KeyBlock<'a> {
    alpha: &'a mut [f32],
    beta: &'a mut [f32],
    base: usize,
    out: &'a mut [u64],
}

fn dispatch(level: Simd, ctx: &ScoreCtx, blk: KeyBlock, top: Option<&mut TopK>) {
    #[cfg(target_arch = "x86_64")]
    {
        let level = if level <= Simd::detect() { level } else { Simd::detect() };
        match level {
            // SAFETY: the CPU supports AVX-512 F/BW/DQ/VL (`Simd::detect` checked it).
            Simd::Avx512 => return unsafe { fill_keys_avx512(ctx, blk, top) },
            // SAFETY: the CPU supports AVX2 (`Simd::detect` checked it).
            Simd::Avx2 => return unsafe { fill_keys_avx2(ctx, blk, top) },
            Simd::Portable => {}
        }
    }
    let _ = level;
    fill_and_offer::<_, LANES>(AutoPhilox, ctx, blk, top)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_keys_avx2(ctx: &ScoreCtx, blk: KeyBlock, top: Option<&mut TopK>) {
    fill_and_offer::<_, LANES>(AutoPhilox, ctx, blk, top)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
unsafe fn fill_keys_avx512(ctx: &ScoreCtx, blk: KeyBlock, top: Option<&mut TopK>) {
    let seed = ctx.config.seed;
    let ph = Avx512Philox(philox512::RoundKeys::new(seed_key(seed)));
    fill_and_offer::<_, LANES_AVX512>(ph, ctx, blk, top)
}

/// The lane code over a block, then its keys offered to `top` if there is one (inlined into each
/// build, so the offer's threshold test uses that build's instructions).
#[inline(always)]
fn fill_and_offer<P: PhiloxLanes<L>, const L: usize>(ph: P, ctx: &ScoreCtx, blk: KeyBlock, top: Option<&mut TopK>) {
    let KeyBlock { alpha, beta, base, out } = blk;
    fill_keys_lanes::<P, L>(ph, ctx, alpha, beta, base, out);
    if let Some(t) = top {
        t.push_all(out);
    }
}

/// IEEE binary16 bits to f32, exactly (the value `half::f16::to_f32` gives), without branches.
#[inline(always)]
pub fn f16_bits_to_f32(h: u16) -> f32 {
    let e = ((h & 0x7fff) as u32) << 13;
    // Finite: the bits as an f32 are the value times 2^-112 (subnormals included), so one exact multiply.
    let finite = f32::from_bits(e) * f32::from_bits((127 + 112) << 23);
    let v = if e >= 0x7c00 << 13 { f32::from_bits(e | 0x7f80_0000) } else { finite };
    f32::from_bits(v.to_bits() | (((h & 0x8000) as u32) << 16))
}

/// One Philox4x32-10 block per lane; counters `[task[i], c1, step lo, step hi]`, one key.
///
/// Lanes are kept in pairs packed into u64s (lane 2i in the low half, 2i+1 in the high half, which is
/// the memory layout of the `[u32; LANES]` arrays), and each 32x32->64 multiply is done on the even and
/// the odd halves separately with operands known to fit in 32 bits, which LLVM lowers to `pmuludq`
/// without any shuffling.
#[inline(always)]
fn philox_lanes<const L: usize>(task: &[u32; L], c1: u32, step: u64, key: [u32; 2]) -> [[u32; L]; 4] {
    // `[u64; L / 2]` needs generic const expressions: use L words and the first half of each.
    let h = L / 2;
    const LO: u64 = 0xffff_ffff;
    let pack = |v: u32| (v as u64) | ((v as u64) << 32);
    let mut x0 = [0u64; L];
    for i in 0..h {
        x0[i] = (task[2 * i] as u64) | ((task[2 * i + 1] as u64) << 32);
    }
    let mut x1 = [pack(c1); L];
    let mut x2 = [pack(step as u32); L];
    let mut x3 = [pack((step >> 32) as u32); L];
    let (mut k0, mut k1) = (key[0], key[1]);
    for r in 0..10 {
        if r > 0 {
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
        let (kk0, kk1) = (pack(k0), pack(k1));
        for i in 0..h {
            let pe0 = (x0[i] & LO) * (M0 as u64);
            let po0 = (x0[i] >> 32) * (M0 as u64);
            let pe1 = (x2[i] & LO) * (M1 as u64);
            let po1 = (x2[i] >> 32) * (M1 as u64);
            let hi0 = (pe0 >> 32) | (po0 & !LO);
            let lo0 = (pe0 & LO) | (po0 << 32);
            let hi1 = (pe1 >> 32) | (po1 & !LO);
            let lo1 = (pe1 & LO) | (po1 << 32);
            x0[i] = hi1 ^ x1[i] ^ kk0;
            x1[i] = lo1;
            x2[i] = hi0 ^ x3[i] ^ kk1;
            x3[i] = lo0;
        }
    }
    let unpack = |x: [u64; L]| -> [u32; L] { std::array::from_fn(|j| (x[j / 2] >> (32 * (j % 2))) as u32) };
    [unpack(x0), unpack(x1), unpack(x2), unpack(x3)]
}

/// The two Gammas of [`crate::twin::distr::sample_beta`] for each lane: both first attempts (shape
/// constants, the one block of purpose `First`, [`box_muller_scaled_pair`], [`mt_squeeze`], [`mt_value`])
/// in lanes; a Gamma whose first attempt the squeeze does not accept (a few percent: the squeeze fails
/// or `x <= -1`) finishes in scalar code: [`mt_exact`] on the same values, then, if that rejects too, the
/// whole draw from its own purpose ([`sample_gamma_mt`]). The same expressions as the scalar code in the
/// same order, so the same bits.
// `!(x <= -1.0)` mirrors the scalar code's `if x <= -1.0 { reject }`, NaN included.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
#[inline(always)]
fn gammas_lanes<P: PhiloxLanes<L>, const L: usize>(
    ph: P,
    alpha: &[f32; L],
    beta: &[f32; L],
    task: &[u32; L],
    seed: u64,
    step: u64,
) -> ([f32; L], [f32; L]) {
    let (mut da, mut qa, mut db, mut qb) = ([0f32; L], [0f32; L], [0f32; L], [0f32; L]);
    for i in 0..L {
        (da[i], qa[i]) = mt_constants(alpha[i]);
        (db[i], qb[i]) = mt_constants(beta[i]);
    }
    let w = ph.block(task, (Purpose::First as u32) << 24, step, seed_key(seed));
    let (mut ga, mut gb) = ([0f32; L], [0f32; L]);
    let (mut xa, mut xb) = ([0f32; L], [0f32; L]);
    let (mut ok_a, mut ok_b) = ([false; L], [false; L]);
    for i in 0..L {
        (xa[i], xb[i]) = box_muller_scaled_pair(w[0][i], w[1][i], qa[i], qb[i]);
        ok_a[i] = !(xa[i] <= -1.0) & mt_squeeze(da[i], xa[i], u01(w[2][i]));
        ok_b[i] = !(xb[i] <= -1.0) & mt_squeeze(db[i], xb[i], u01(w[3][i]));
        ga[i] = mt_value(da[i], xa[i]);
        gb[i] = mt_value(db[i], xb[i]);
    }
    // The Gammas left (a bit mask built without branches, walked bit by bit: a lane loop with a branch
    // per lane costs ~5 instructions a lane).
    let finish =
        |ok: &[bool; L], d: &[f32; L], x: &[f32; L], uw: &[u32; L], shape: &[f32; L], purpose, g: &mut [f32; L]| {
            for (word, lanes) in ok.chunks(32).enumerate() {
                let mut m = lanes.iter().enumerate().fold(0u32, |m, (j, &accepted)| m | (((!accepted) as u32) << j));
                while m != 0 {
                    let i = 32 * word + m.trailing_zeros() as usize;
                    m &= m - 1;
                    let exact = !(x[i] <= -1.0) && mt_exact(d[i], x[i], u01(uw[i]));
                    if !exact {
                        g[i] = sample_gamma_mt(shape[i], &TaskStream::new(seed, step, task[i]), purpose);
                    }
                }
            }
        };
    finish(&ok_a, &da, &xa, &w[2], alpha, Purpose::GammaAlpha, &mut ga);
    finish(&ok_b, &db, &xb, &w[3], beta, Purpose::GammaBeta, &mut gb);
    (ga, gb)
}

/// [`crate::twin::distr::gamma::gamma_boost`] of `ln g` for each lane (the log-space Beta of
/// [`crate::twin::distr::beta::beta_log`]): the boost block only where some shape is below 1.
#[inline(always)]
fn log_gamma_boost_lanes<P: PhiloxLanes<L>, const L: usize>(
    ph: P,
    shape: &[f32; L],
    g: &[f32; L],
    task: &[u32; L],
    seed: u64,
    step: u64,
    purpose: Purpose,
) -> [f32; L] {
    let mut out: [f32; L] = std::array::from_fn(|i| ln_normal(g[i]));
    if shape.iter().any(|&s| s < 1.0) {
        let u = ph.block(task, (purpose as u32) << 24, step, seed_key(seed))[0];
        for i in 0..L {
            let boosted = out[i] + ln_normal(u01(u[i])) / shape[i];
            out[i] = if shape[i] < 1.0 { boosted } else { out[i] };
        }
    }
    out
}

/// The lane code proper (`#[inline(always)]` so that each caller compiles it for its own target
/// features).
#[inline(always)]
fn fill_keys_lanes<P: PhiloxLanes<L>, const L: usize>(
    ph: P,
    ctx: &ScoreCtx,
    alpha: &mut [f32],
    beta: &mut [f32],
    base: usize,
    out: &mut [u64],
) {
    let n = out.len();
    assert!(alpha.len() >= n && beta.len() >= n);
    let cfg = ctx.config;
    let full = n / L * L;
    let mut i = 0;
    while i < full {
        let mut a: [f32; L] = alpha[i..i + L].try_into().expect("L values");
        let mut b: [f32; L] = beta[i..i + L].try_into().expect("L values");
        let mut task = [0u32; L];
        for (j, t) in task.iter_mut().enumerate() {
            *t = (base + i + j) as u32;
        }
        if let Some(p) = ctx.pending {
            // apply_pending_task, lane by lane.
            let (mut a0, mut b0) = ([0f32; L], [0f32; L]);
            match ctx.prior {
                Prior::Constant { alpha0, beta0 } => {
                    a0 = [*alpha0; L];
                    b0 = [*beta0; L];
                }
                Prior::PerTask { alpha0, beta0 } => {
                    a0.copy_from_slice(&alpha0[base + i..base + i + L]);
                    b0.copy_from_slice(&beta0[base + i..base + i + L]);
                }
            }
            let mut pt = [0f32; L];
            if let (Some(f), Some(seg)) = (ctx.features, p.segment) {
                let r = base + i..base + i + L;
                let t = seg.t;
                match f {
                    Features::F16 { columns } => {
                        let s = &columns[seg.hi][r.clone()];
                        match seg.lo {
                            Some(lo) => {
                                let w = &columns[lo][r];
                                for j in 0..L {
                                    pt[j] = interpolate(
                                        t,
                                        f16_bits_to_f32(w[j].to_bits()),
                                        f16_bits_to_f32(s[j].to_bits()),
                                    );
                                }
                            }
                            None => {
                                for j in 0..L {
                                    pt[j] = interpolate(t, 0.0, f16_bits_to_f32(s[j].to_bits()));
                                }
                            }
                        }
                    }
                    Features::F32 { columns } => {
                        let s = &columns[seg.hi][r.clone()];
                        match seg.lo {
                            Some(lo) => {
                                let w = &columns[lo][r];
                                for j in 0..L {
                                    pt[j] = interpolate(t, w[j], s[j]);
                                }
                            }
                            None => {
                                for j in 0..L {
                                    pt[j] = interpolate(t, 0.0, s[j]);
                                }
                            }
                        }
                    }
                }
            }
            let (lambda, m) = (cfg.lambda, cfg.m as f32);
            for j in 0..L {
                let (na, nb) = update_task(a[j], b[j], a0[j], b0[j], lambda, p.rho, 0.0, 0.0, m, pt[j]);
                let marked = a[j] < 0.0;
                let (na, nb) = if marked { (-a[j], b[j]) } else { (na, nb) };
                a[j] = na;
                b[j] = nb;
            }
            alpha[i..i + L].copy_from_slice(&a);
            beta[i..i + L].copy_from_slice(&b);
        }
        let mut p_hat = [0f32; L];
        if cfg.do_sample {
            // sample_beta: linear where both shapes are at least 1, else in log space.
            let (ga, gb) = gammas_lanes(ph, &a, &b, &task, cfg.seed, ctx.step);
            for j in 0..L {
                p_hat[j] = beta_linear(ga[j], gb[j]);
            }
            if a.iter().chain(&b).any(|&s| s < 1.0) {
                let la = log_gamma_boost_lanes(ph, &a, &ga, &task, cfg.seed, ctx.step, Purpose::GammaAlpha);
                let lb = log_gamma_boost_lanes(ph, &b, &gb, &task, cfg.seed, ctx.step, Purpose::GammaBeta);
                for j in 0..L {
                    let log_space = beta_from_logs(la[j], lb[j]);
                    p_hat[j] = if beta_in_linear_space(a[j], b[j]) { p_hat[j] } else { log_space };
                }
            }
        } else {
            for j in 0..L {
                p_hat[j] = a[j] / (a[j] + b[j]);
            }
        }
        let mut s = [0f32; L];
        for j in 0..L {
            s[j] = -(cfg.target - p_hat[j]).abs();
        }
        if cfg.tau > 0.0 {
            let u = ph.block(&task, (Purpose::Gumbel as u32) << 24, ctx.step, seed_key(cfg.seed))[0];
            for j in 0..L {
                s[j] = s[j] / cfg.tau + -ln_normal(-ln_normal(u01(u[j])));
            }
        }
        // A fixed-size view, so the loop has no bounds checks and vectorizes.
        let keys: &mut [u64; L] = (&mut out[i..i + L]).try_into().expect("L keys");
        for j in 0..L {
            keys[j] = score_key(s[j], task[j]);
        }
        i += L;
    }
    if i < n {
        fill_keys_scalar(ctx, &mut alpha[i..n], &mut beta[i..n], base + i, &mut out[i..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twin::philox::philox4x32_10;

    #[test]
    fn f16_conversion_is_exact_for_every_half() {
        for h in 0..=u16::MAX {
            let want = half::f16::from_bits(h).to_f32();
            let got = f16_bits_to_f32(h);
            assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()), "{h:#06x}: {got} vs {want}");
        }
    }

    /// Every lane of a block against the scalar Philox, for the autovectorized build at both lane
    /// widths and the AVX-512 one where the CPU has it.
    fn philox_matches_scalar<P: PhiloxLanes<L>, const L: usize>(ph: impl Fn([u32; 2]) -> P) {
        let task: [u32; L] = std::array::from_fn(|i| ((i as u32) * 0x0101_0101) ^ 0xdead_beef);
        for (step, c1, key) in [(0u64, 0u32, [0u32, 0]), (1 << 40 | 5, 3 << 24 | 9, [u32::MAX, 0x1234_5678])] {
            let w = ph(key).block(&task, c1, step, key);
            for i in 0..L {
                let want = philox4x32_10([task[i], c1, step as u32, (step >> 32) as u32], key);
                assert_eq!([w[0][i], w[1][i], w[2][i], w[3][i]], want, "lane {i} of {L}");
            }
        }
    }

    #[test]
    fn philox_lanes_match_scalar() {
        philox_matches_scalar::<_, LANES>(|_| AutoPhilox);
        philox_matches_scalar::<_, LANES_AVX512>(|_| AutoPhilox);
        #[cfg(target_arch = "x86_64")]
        if Simd::detect() == Simd::Avx512 {
            // An `Avx512Philox` may be made here: the CPU runs AVX-512 F (checked just above).
            philox_matches_scalar::<_, 16>(|k| Avx512Philox(philox512::RoundKeys::new(k)));
            philox_matches_scalar::<_, LANES_AVX512>(|k| Avx512Philox(philox512::RoundKeys::new(k)));
        } else {
            // Not a skipped test (the portable and AVX2 parts above ran): one part this CPU cannot run.
            eprintln!("philox_lanes_match_scalar: AVX-512 part not run, this CPU has no AVX-512 F");
        }
    }

    /// Shapes from 1e-3 to 1e5 (log-uniform, so < 1 about a third of the time), some lanes marked as
    /// batch tasks (negative alpha), from a hash of the task id.
    fn pool(n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let shape = |k: usize, p: Purpose| {
            let w = TaskStream::new(seed, 0, k as u32).block(p, 7);
            10f32.powf(-3.0 + 8.0 * u01(w[0]))
        };
        let a = (0..n).map(|k| if k % 37 == 5 { -shape(k, Purpose::User) } else { shape(k, Purpose::User) });
        (a.collect(), (0..n).map(|k| shape(k, Purpose::Gumbel)).collect())
    }

    fn check(cfg: &Config, prior: &Prior, features: Option<&Features>, pending: Option<&PendingScalars>, n: usize) {
        let (mut a0, b0) = pool(n, cfg.seed);
        if pending.is_none() {
            // Marks exist only while an update is pending.
            a0.iter_mut().for_each(|a| *a = a.abs());
        }
        for (step, base) in [(3u64, 0usize), (1 << 33, 1 << 31)] {
            let ctx = ScoreCtx { config: cfg, prior, features, pending, step };
            let (mut a1, mut b1, mut k1) = (a0.clone(), b0.clone(), vec![0u64; n]);
            let (mut a2, mut b2, mut k2) = (a0.clone(), b0.clone(), vec![0u64; n]);
            let lo = if matches!(prior, Prior::PerTask { .. }) || features.is_some() { 0 } else { base };
            fill_keys_scalar(&ctx, &mut a1, &mut b1, lo, &mut k1);
            fill_keys(&ctx, &mut a2, &mut b2, lo, &mut k2);
            let first_diff = k1.iter().zip(&k2).position(|(x, y)| x != y);
            assert_eq!(first_diff, None, "dispatched lanes differ from scalar (cfg {cfg:?})");
            assert!(a1 == a2 && b1 == b2, "written-back posteriors differ (dispatched)");
            for level in Simd::available() {
                let (mut a3, mut b3, mut k3) = (a0.clone(), b0.clone(), vec![0u64; n]);
                fill_keys_at(level, &ctx, &mut a3, &mut b3, lo, &mut k3);
                let first_diff = k1.iter().zip(&k3).position(|(x, y)| x != y);
                assert_eq!(first_diff, None, "{level:?} lanes differ from scalar (cfg {cfg:?})");
                assert!(a1 == a3 && b1 == b3, "written-back posteriors differ ({level:?})");
            }
            if pending.is_none() {
                assert!(a1 == a0 && b1 == b0, "no pending update: nothing may be written");
            }
        }
    }

    /// Millions of tasks over shapes 1e-3..1e5 (including < 1, the boost), with and without Gumbel
    /// noise and Thompson sampling, pending updates (marked and unmarked tasks, features, per-task
    /// priors), and a length that is not a multiple of the lane count.
    #[test]
    fn lanes_equal_scalar_keys() {
        let n = (1 << 20) + 5;
        let feats = {
            let w: Vec<f32> = (0..n).map(|k| ((k * 7) % 17) as f32 / 16.0).collect();
            let s: Vec<f32> = w.iter().map(|x| (x + 0.3).min(1.0)).collect();
            Features::from_f32(&w, &s).unwrap()
        };
        let constant = Prior::Constant { alpha0: 1.0, beta0: 1.0 };
        let per_task = Prior::PerTask {
            alpha0: (0..n).map(|k| 1.0 + (k % 5) as f32).collect(),
            beta0: (0..n).map(|k| 1.0 + (k % 3) as f32 * 0.5).collect(),
        };
        let pend = PendingScalars { segment: Some(crate::evidence::segment(0.4, 2)), rho: 0.1 };
        let pend_nomu = PendingScalars { segment: None, rho: 0.3 };
        let base = Config::default();
        let cfgs = [
            base.clone(),
            Config { tau: 0.3, seed: 99, ..base.clone() },
            Config { do_sample: false, ..base.clone() },
            Config { do_sample: false, tau: 2.0, target: 0.2, ..base.clone() },
        ];
        for cfg in &cfgs {
            check(cfg, &constant, None, None, n);
            check(cfg, &per_task, Some(&feats), Some(&pend), n);
        }
        check(&cfgs[0], &constant, Some(&feats), Some(&pend_nomu), n);
        // f32 features (tenths, not f16 values), in both lane builds.
        let tenths = {
            let w: Vec<f32> = (0..n).map(|k| ((k * 7) % 11) as f32 / 10.0).collect();
            let s: Vec<f32> = w.iter().map(|x| (x + 0.3).min(1.0)).collect();
            Features::from_f32(&w, &s).unwrap()
        };
        assert_eq!(tenths.form(), crate::pool::FeatureForm::F32);
        check(&cfgs[0], &per_task, Some(&tenths), Some(&pend), n);
        check(&cfgs[2], &constant, Some(&tenths), Some(&pend), n);
        check(&cfgs[1], &constant, None, Some(&pend), 1003);
        // K = 3 on its upper segment and K = 1 (the null model below), f16 and f32 columns.
        let col = |den: usize, shift: usize| -> Vec<f32> {
            (0..n).map(|k| ((k * 7 + shift) % (den + 1)) as f32 / den as f32).collect()
        };
        for den in [16, 10] {
            let (c0, c1, c2) = (col(den, 0), col(den, 3), col(den, 5));
            let three = Features::from_columns(&[&c0, &c1, &c2]).unwrap();
            let upper = PendingScalars { segment: Some(crate::evidence::segment(1.4, 3)), rho: 0.2 };
            assert_eq!(upper.segment.unwrap().lo, Some(1));
            check(&cfgs[0], &per_task, Some(&three), Some(&upper), n);
            let one = Features::from_columns(&[&c2]).unwrap();
            let null = PendingScalars { segment: Some(crate::evidence::segment(0.7, 1)), rho: 0.2 };
            check(&cfgs[2], &constant, Some(&one), Some(&null), n);
        }
    }
}
