//! f32 `ln`, `ln_1p`, `exp` and `sincos(2π·u)` built only from `+ - * /`, integer/bit operations,
//! comparisons and selects, so that they are
//!
//! - **bit-identical on every backend**: IEEE `+ - * /` are correctly rounded on x86 and on CUDA
//!   (nvcc's defaults `-prec-div=true`; the build uses `--fmad=false`, and Rust never contracts), and
//!   `kernels/fmath.cuh` writes the same expressions in the same order with the same constants;
//! - **branch-free** (every special case is a select), so lane loops over them autovectorize.
//!
//! The algorithms are those of FreeBSD's `e_logf.c`, `s_log1pf.c` and `e_expf.c` (Sun Microsystems
//! 1993 / Ian Lance Taylor, all in f32 arithmetic without FMA), with their branches turned into selects,
//! and a quadrant reduction of `2π·u` that is exact in f32 followed by Cephes' `sinf`/`cosf`
//! polynomials, the argument split so that its leading part is exact.
//!
//! Accuracy, measured against f64 references (`tests` below, and the exhaustive sweeps in
//! `docs/BENCHMARKS.md`): see [`MAX_ULP`].

// The decimal constants below are written with the same digits as in kernels/fmath.cuh (each names
// exactly one f32; the hex pattern is in the comment), hence more digits than clippy wants.
#![allow(clippy::excessive_precision)]

/// The largest error, in units in the last place of the correctly rounded f32 result, that the tests
/// allow for every function here over the domains the samplers use. Measured maxima are lower (see the
/// test output and docs/BENCHMARKS.md).
pub const MAX_ULP: f64 = 2.0;

const LN2_HI: f32 = 6.931_381_226e-1; // 0x3f317180
const LN2_LO: f32 = 9.058_000_614e-6; // 0x3717f7d1
const LG1: f32 = 6.666_666_269e-1; // 0xaaaaaa.0p-24
const LG2: f32 = 4.000_097_215e-1; // 0xccce13.0p-25
const LG3: f32 = 2.849_878_669e-1; // 0x91e9ee.0p-25
const LG4: f32 = 2.427_907_884e-1; // 0xf89e26.0p-26

/// `ln(1 + f) - f + f²/2` for the reduced `f`, the shared core of [`ln`] and [`ln_1p`]:
/// returns `s·(f²/2 + R(s²))` with `s = f / (2 + f)`.
#[inline(always)]
fn log_core(f: f32, hfsq: f32) -> f32 {
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG2 + w * LG4);
    let t2 = z * (LG1 + w * LG3);
    let r = t2 + t1;
    s * (hfsq + r)
}

/// Natural logarithm, for every f32 (subnormals included): `ln 0 = -inf`, `ln inf = inf`, NaN for
/// negative or NaN input.
///
/// ```
/// use bots::__private::twin::fmath::ln;
/// assert_eq!(ln(1.0), 0.0);
/// assert!((ln(2.0) - std::f32::consts::LN_2).abs() <= f32::EPSILON);
/// assert_eq!(ln(0.0), f32::NEG_INFINITY);
/// ```
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    // Subnormals (and +0) are scaled by 2^25 into the normal range.
    let sub = x.to_bits() < 0x0080_0000;
    let xs = if sub { x * 33_554_432.0 } else { x };
    let kb: i32 = if sub { -25 } else { 0 };
    let y = ln_reduced(xs, kb);
    let y = if x == f32::INFINITY { x } else { y };
    let y = if x == 0.0 { f32::NEG_INFINITY } else { y };
    if x < 0.0 || x.is_nan() {
        f32::NAN
    } else {
        y
    }
}

/// [`ln`] for a positive, normal, finite `x`, bit for bit, without the selects for the other cases: for
/// every output of [`crate::twin::philox::u01`] (in [2^-24, 1)) and every Gamma constant `d` (at least 2/3),
/// which is where the samplers call it (and the kernels its twin `bots_ln_normal`, kernels/fmath.cuh).
///
/// ```
/// use bots::__private::twin::fmath::{ln, ln_normal};
/// assert_eq!(ln_normal(0.3).to_bits(), ln(0.3).to_bits());
/// ```
#[inline(always)]
pub fn ln_normal(x: f32) -> f32 {
    ln_reduced(x, 0)
}

/// `ln(xs) + kb·ln 2` for a positive normal `xs` (the shared body of [`ln`] and [`ln_normal`]).
#[inline(always)]
fn ln_reduced(xs: f32, kb: i32) -> f32 {
    // x = 2^k · m with m in [sqrt(2)/2, sqrt(2)).
    let ix = xs.to_bits().wrapping_add(0x3f80_0000 - 0x3f35_04f3);
    let k = kb + ((ix >> 23) as i32) - 0x7f;
    let m = f32::from_bits((ix & 0x007f_ffff) + 0x3f35_04f3);
    let f = m - 1.0;
    let hfsq = 0.5 * f * f;
    let dk = k as f32;
    log_core(f, hfsq) + dk * LN2_LO - hfsq + f + dk * LN2_HI
}

/// `ln(1 + x)`, accurate for small |x|: `ln_1p(-1) = -inf`, NaN below -1, `ln_1p(inf) = inf`.
///
/// ```
/// use bots::__private::twin::fmath::ln_1p;
/// assert_eq!(ln_1p(0.0), 0.0);
/// assert_eq!(ln_1p(1e-30), 1e-30);
/// assert_eq!(ln_1p(-1.0), f32::NEG_INFINITY);
/// ```
#[inline(always)]
pub fn ln_1p(x: f32) -> f32 {
    let y = ln_1p_body::<true>(x);
    let y = if x == f32::INFINITY { x } else { y };
    let y = if x == -1.0 { f32::NEG_INFINITY } else { y };
    if x < -1.0 || x.is_nan() {
        f32::NAN
    } else {
        y
    }
}

/// [`ln_1p`] for `-1 < x < 2^24`, bit for bit, without the selects for the other cases: the
/// Marsaglia–Tsang argument `c·z` of the Gamma sampler, which is above -1 wherever its value is used
/// and below 2.4 (`c <= 1/sqrt(6)`, `|z| < 5.8`); the kernels call its twin `bots_ln1p_moderate`.
///
/// ```
/// use bots::__private::twin::fmath::{ln_1p, ln_1p_moderate};
/// assert_eq!(ln_1p_moderate(-0.3).to_bits(), ln_1p(-0.3).to_bits());
/// ```
#[inline(always)]
pub fn ln_1p_moderate(x: f32) -> f32 {
    ln_1p_body::<false>(x)
}

/// The shared body of [`ln_1p`] (`GENERAL`: any x) and [`ln_1p_moderate`] (`x` in (-1, 2^24)).
#[inline(always)]
fn ln_1p_body<const GENERAL: bool>(x: f32) -> f32 {
    let hx = x.to_bits();
    let u = 1.0 + x;
    let iu = u.to_bits().wrapping_add(0x3f80_0000 - 0x3f35_04f3);
    let ku = ((iu >> 23) as i32) - 0x7f;
    // c ~ ln(1 + x) - ln(u), the rounding error of 1 + x relative to u.
    let c = if ku >= 2 { 1.0 - (u - x) } else { x - (u - 1.0) };
    let c = c / u;
    // Below 2^24 (the moderate domain), ku < 25 always.
    let c = if !GENERAL || ku < 25 { c } else { 0.0 };
    let fu = f32::from_bits((iu & 0x007f_ffff) + 0x3f35_04f3) - 1.0;
    // 1 + x in [sqrt(2)/2, sqrt(2)): no reduction, f = x exactly.
    let near = hx < 0x3ed4_13d0 || (0x8000_0000..=0xbe95_f619).contains(&hx);
    let k = if near { 0 } else { ku };
    let c = if near { 0.0 } else { c };
    let f = if near { x } else { fu };
    let hfsq = 0.5 * f * f;
    let dk = k as f32;
    let y = log_core(f, hfsq) + (dk * LN2_LO + c) - hfsq + f + dk * LN2_HI;
    // |x| < 2^-24: ln(1 + x) rounds to x.
    if (hx << 1) < (0x3380_0000 << 1) {
        x
    } else {
        y
    }
}

const INV_LN2: f32 = 1.442_695_022; // 0x3fb8aa3b
const E_LN2_HI: f32 = 6.931_457_520e-1; // 0x3f317200, 15 significant bits: k·E_LN2_HI is exact
const E_LN2_LO: f32 = 1.428_606_765e-6; // 0x35bfbe8e
const P1: f32 = 1.666_666_269e-1; // 0xaaaaa8.0p-26
const P2: f32 = -2.766_733_291e-3; // -0xb55215.0p-32
/// 1.5 · 2^23: adding it rounds an f32 of magnitude < 2^22 to an integer, readable from the low bits.
const ROUND: f32 = 12_582_912.0;
const ROUND_BITS: i32 = 0x4b40_0000;

/// `2^k` for k in [-126, 127], from its bits.
#[inline(always)]
fn pow2i(k: i32) -> f32 {
    f32::from_bits((k.wrapping_add(127) as u32) << 23)
}

/// `e^x`: overflows to inf above ~88.72, underflows through the subnormals to 0 below ~-103.97, like
/// `expf`; NaN stays NaN.
///
/// ```
/// use bots::__private::twin::fmath::exp;
/// assert_eq!(exp(0.0), 1.0);
/// assert_eq!(exp(100.0), f32::INFINITY);
/// assert_eq!(exp(-200.0), 0.0);
/// ```
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // Clamp (NaN passes through) so that k stays in [-159, 144]: both halves of 2^k are normal.
    let xc = if x > 100.0 { 100.0 } else { x };
    let xc = if xc < -110.0 { -110.0 } else { xc };
    // k = round(x / ln 2), x = k ln2 + r with |r| <= ln2/2.
    let t = xc * INV_LN2 + ROUND;
    let k = (t.to_bits() as i32).wrapping_sub(ROUND_BITS);
    let kf = t - ROUND;
    let hi = xc - kf * E_LN2_HI;
    let lo = kf * E_LN2_LO;
    let r = hi - lo;
    let rr = r * r;
    let c = r - rr * (P1 + rr * P2);
    let y = 1.0 + (r * c / (2.0 - c) - lo + hi);
    // y · 2^k in two exact-range steps: one rounding, into the subnormals or to inf as needed.
    let k1 = k >> 1;
    let k2 = k.wrapping_sub(k1);
    y * pow2i(k1) * pow2i(k2)
}

const TAU_HI: f32 = 6.281_25; // 2π to 9 significant bits: r_hi·TAU_HI is exact for a 12-bit r_hi
const TAU_LO: f32 = 1.935_307_169e-3; // 2π - TAU_HI
const S1: f32 = -1.666_665_461e-1;
const S2: f32 = 8.332_160_874e-3;
const S3: f32 = -1.951_529_589e-4;
const C1: f32 = 4.166_664_568e-2;
const C2: f32 = -1.388_731_625e-3;
const C3: f32 = 2.443_315_712e-5;

/// `(sin 2πu, cos 2πu)` for u in [0, 1) (any finite u >= 0 below 2^21 works, with the reduction exact).
///
/// The quadrant q = round(4u) and r = u - q/4 in [-1/8, 1/8] are exact; θ = 2πr is carried as
/// `θ_hi + θ_lo` with `θ_hi = r_hi · TAU_HI` exact (r_hi: r's leading 12 bits), so the only large
/// rounding is the final add.
///
/// ```
/// use bots::__private::twin::fmath::sincos_2pi;
/// assert_eq!(sincos_2pi(0.0), (0.0, 1.0));
/// assert_eq!(sincos_2pi(0.25), (1.0, 0.0));
/// ```
#[inline(always)]
pub fn sincos_2pi(u: f32) -> (f32, f32) {
    let t = u * 4.0 + ROUND;
    let q = (t.to_bits() as i32).wrapping_sub(ROUND_BITS);
    let r = u - (t - ROUND) * 0.25;
    let r_hi = f32::from_bits(r.to_bits() & 0xffff_f000);
    let r_lo = r - r_hi;
    let th_hi = r_hi * TAU_HI;
    let th_lo = r_lo * TAU_HI + r * TAU_LO;
    let th = th_hi + th_lo;
    let z = th * th;
    let s = th_hi + (th_lo + th * z * (S1 + z * (S2 + z * S3)));
    let c = z * z * (C1 + z * (C2 + z * C3)) - 0.5 * z + 1.0;
    let q = q & 3;
    let (sn, cs) = if q & 1 != 0 { (c, s) } else { (s, c) };
    let sn = if q >= 2 { -sn } else { sn };
    let cs = if q == 1 || q == 2 { -cs } else { cs };
    (sn, cs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place of the f32 nearest `want` (subnormal spacing below 2^-126).
    fn ulp_err(got: f32, want: f64) -> f64 {
        if got.is_infinite() || (want as f32).is_infinite() {
            // Overflow: right exactly when the f32 rounding of `want` overflows too.
            return if got == want as f32 { 0.0 } else { f64::INFINITY };
        }
        let w32 = want as f32;
        let e = if w32 == 0.0 { -149 } else { ((w32.abs().to_bits() >> 23) as i32 - 127 - 23).max(-149) };
        let ulp = if w32.is_infinite() { 2f64.powi(104) } else { 2f64.powi(e) };
        (got as f64 - want).abs() / ulp
    }

    fn sweep(name: &str, xs: impl Iterator<Item = f32>, f: impl Fn(f32) -> f32, r: impl Fn(f64) -> f64) -> f64 {
        let mut worst = (0.0f64, 0.0f32);
        for x in xs {
            let e = ulp_err(f(x), r(x as f64));
            assert!(e <= MAX_ULP, "{name}({x:e}) = {:e}, want {:e}: {e} ulp", f(x), r(x as f64));
            if e > worst.0 {
                worst = (e, x);
            }
        }
        eprintln!("{name}: max {:.3} ulp at {:e}", worst.0, worst.1);
        worst.0
    }

    /// Every `step`-th f32 bit pattern in [lo, hi] (bit patterns of one sign are monotone).
    fn floats(lo: f32, hi: f32, step: u32) -> impl Iterator<Item = f32> {
        let (a, b) = (lo.to_bits(), hi.to_bits());
        let (a, b) = (a.min(b), a.max(b));
        (a..=b).step_by(step as usize).map(f32::from_bits).chain([lo, hi])
    }

    /// Every output of `u01` (the only inputs of ln in Box–Muller and the acceptance/boost/Gumbel
    /// draws), exhaustively, plus a sweep of all positive floats including subnormals.
    #[test]
    fn ln_accuracy() {
        let u01s = (0..1u32 << 23).map(|j| crate::twin::philox::u01(j << 9));
        sweep("ln(u01)", u01s, ln, f64::ln);
        sweep("ln(subnormal)", floats(f32::from_bits(1), f32::MIN_POSITIVE * 4.0, 7), ln, f64::ln);
        sweep("ln(all)", floats(f32::from_bits(1), f32::MAX, 61), ln, f64::ln);
        assert_eq!(ln(0.0), f32::NEG_INFINITY);
        assert_eq!(ln(-0.0), f32::NEG_INFINITY);
        assert_eq!(ln(f32::INFINITY), f32::INFINITY);
        assert!(ln(-1.0).is_nan() && ln(f32::NAN).is_nan() && ln(-f32::MIN_POSITIVE).is_nan());
    }

    /// ln_1p near -1 (the Marsaglia–Tsang argument c·z > -1), near 0 from both sides, and up to 1e6.
    #[test]
    fn ln_1p_accuracy() {
        let r = |x: f64| x.ln_1p();
        sweep("ln_1p(near -1)", floats(-1.0 + f32::EPSILON / 2.0, -0.5, 3), ln_1p, r);
        sweep("ln_1p(-0.5..-tiny)", floats(-0.5, -1e-30, 31), ln_1p, r);
        sweep("ln_1p(tiny..1e6)", floats(1e-30, 1e6, 31), ln_1p, r);
        for x in [0.0f32, -0.0, 1e-40, -1e-40, 0.414_213_5, -0.292_893_2] {
            assert!(ulp_err(ln_1p(x), (x as f64).ln_1p()) <= MAX_ULP, "{x}");
        }
        assert_eq!(ln_1p(-1.0), f32::NEG_INFINITY);
        assert_eq!(ln_1p(f32::INFINITY), f32::INFINITY);
        assert!(ln_1p(-1.5).is_nan() && ln_1p(f32::NAN).is_nan());
    }

    /// The special-domain forms are the general ones bit for bit on their domains: every `u01` output
    /// and a sweep of the positive normals for `ln_normal`, a dense sweep of (-1, 2^24) for
    /// `ln_1p_moderate` (all of it in `exhaustive`).
    #[test]
    fn domain_forms_equal_general() {
        for j in 0..1u32 << 23 {
            let u = crate::twin::philox::u01(j << 9);
            assert_eq!(ln_normal(u).to_bits(), ln(u).to_bits(), "ln_normal({u:e})");
        }
        for x in floats(f32::MIN_POSITIVE, f32::MAX, 97) {
            assert_eq!(ln_normal(x).to_bits(), ln(x).to_bits(), "ln_normal({x:e})");
        }
        let below_2p24 = f32::from_bits(16_777_216f32.to_bits() - 1);
        for x in floats(-1.0 + f32::EPSILON / 2.0, -0.0, 13).chain(floats(0.0, below_2p24, 13)) {
            assert_eq!(ln_1p_moderate(x).to_bits(), ln_1p(x).to_bits(), "ln_1p_moderate({x:e})");
        }
    }

    /// exp over [-100, 90] densely, with overflow to inf and underflow through the subnormals to 0
    /// exactly where f64's exp rounds to them.
    #[test]
    fn exp_accuracy() {
        sweep("exp(-100..0)", floats(-100.0, -0.0, 31), exp, f64::exp);
        sweep("exp(0..90)", floats(0.0, 90.0, 7), exp, f64::exp);
        assert_eq!(exp(88.72284), f32::INFINITY);
        assert!(exp(88.72283).is_finite() && ulp_err(exp(88.72283), (88.72283f32 as f64).exp()) <= MAX_ULP);
        assert_eq!(exp(-103.98), 0.0);
        assert!(exp(-103.9) > 0.0);
        assert_eq!(exp(1e30), f32::INFINITY);
        assert_eq!(exp(-1e30), 0.0);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(f32::NAN).is_nan());
    }

    /// sin and cos of 2πu for every u01 output (all 2^23 of them) and for a dense sweep of [0, 1),
    /// including the tiny u near 0 where sin is ~2πu.
    #[test]
    fn sincos_accuracy() {
        let sin = |u: f64| ref_sincos(u).0;
        let cos = |u: f64| ref_sincos(u).1;
        let u01s = || (0..1u32 << 23).map(|j| crate::twin::philox::u01(j << 9));
        sweep("sin2pi(u01)", u01s(), |u| sincos_2pi(u).0, sin);
        sweep("cos2pi(u01)", u01s(), |u| sincos_2pi(u).1, cos);
        let below1 = 1.0f32 - f32::EPSILON / 2.0;
        sweep("sin2pi([0,1))", floats(0.0, below1, 31), |u| sincos_2pi(u).0, sin);
        sweep("cos2pi([0,1))", floats(0.0, below1, 31), |u| sincos_2pi(u).1, cos);
        assert_eq!(sincos_2pi(0.5), (0.0, -1.0));
        assert_eq!(sincos_2pi(0.75), (-1.0, 0.0));
    }

    /// f64 reference of (sin 2πu, cos 2πu), reduced exactly by quarter turns first so that the
    /// zeros at multiples of 1/4 are exact (sin(f64 τ·0.5) is 1.2e-16, not 0).
    fn ref_sincos(u: f64) -> (f64, f64) {
        let q = (4.0 * u).round();
        let (s, c) = (std::f64::consts::TAU * (u - q / 4.0)).sin_cos();
        match (q as i64) & 3 {
            0 => (s, c),
            1 => (c, -s),
            2 => (-s, -c),
            _ => (-c, s),
        }
    }

    /// Every f32 of each domain (minutes; `cargo test --release -- --ignored exhaustive`): ln over all
    /// positive floats, ln_1p over (-1, 1e6], exp over [-104, 89], sincos over [0, 1). The maxima are
    /// recorded in docs/BENCHMARKS.md.
    #[test]
    #[ignore]
    fn exhaustive() {
        sweep("ln(every positive f32)", floats(f32::from_bits(1), f32::MAX, 1), ln, f64::ln);
        sweep("ln_1p(every f32 in (-1, 1e6])", floats(-1.0 + f32::EPSILON / 2.0, -0.0, 1), ln_1p, |x| x.ln_1p());
        sweep("ln_1p(every f32 in (-1, 1e6])", floats(0.0, 1e6, 1), ln_1p, |x| x.ln_1p());
        for x in floats(f32::MIN_POSITIVE, f32::MAX, 1) {
            assert_eq!(ln_normal(x).to_bits(), ln(x).to_bits(), "ln_normal({x:e})");
        }
        for x in floats(-1.0 + f32::EPSILON / 2.0, -0.0, 1).chain(floats(
            0.0,
            f32::from_bits(16_777_216f32.to_bits() - 1),
            1,
        )) {
            assert_eq!(ln_1p_moderate(x).to_bits(), ln_1p(x).to_bits(), "ln_1p_moderate({x:e})");
        }
        sweep("exp(every f32 in [-104, 0])", floats(-104.0, -0.0, 1), exp, f64::exp);
        sweep("exp(every f32 in [0, 89])", floats(0.0, 89.0, 1), exp, f64::exp);
        let below1 = 1.0f32 - f32::EPSILON / 2.0;
        sweep("sin2pi(every f32 in [0,1))", floats(0.0, below1, 1), |u| sincos_2pi(u).0, |u| ref_sincos(u).0);
        sweep("cos2pi(every f32 in [0,1))", floats(0.0, below1, 1), |u| sincos_2pi(u).1, |u| ref_sincos(u).1);
    }
}
