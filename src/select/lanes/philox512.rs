//! Philox4x32-10 over 16 lanes in AVX-512 registers, written with `std::arch` intrinsics: the same
//! words as [`crate::twin::philox::philox4x32_10`] (checked by the lane tests), in fewer instructions than the
//! autovectorized [`super::philox_lanes`]:
//!
//! - `mulhilo` is one `vpmulld` for the low words, two `vpmuludq` (even and odd lanes) and one
//!   `vpermt2d` that gathers the high words: five instructions, against seven for the shift-and-blend
//!   form LLVM picks;
//! - each round's key XOR is folded with the other operand into one `vpternlogd`, the round keys
//!   broadcast from a table computed once per seed;
//! - the lane-uniform parts of the counter (`c1`, the step) make round 0's second product and round 1's
//!   first product the same for every lane: they are computed once, in scalar registers.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use crate::twin::philox::{M0, M1, W0, W1};

/// The ten round keys of a seed's key: `key + r · (W0, W1)`.
#[derive(Clone, Copy, Debug)]
pub(super) struct RoundKeys(pub(super) [[u32; 2]; 10]);

impl RoundKeys {
    pub(super) fn new(key: [u32; 2]) -> RoundKeys {
        let mut k = [[0u32; 2]; 10];
        let (mut k0, mut k1) = (key[0], key[1]);
        for kr in &mut k {
            *kr = [k0, k1];
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
        RoundKeys(k)
    }
}

#[inline(always)]
fn mulhilo_scalar(m: u32, x: u32) -> (u32, u32) {
    let p = (m as u64) * (x as u64);
    ((p >> 32) as u32, p as u32)
}

/// `(hi, lo)` of `m · x` in every 32-bit lane.
///
/// # Safety
/// The CPU must support AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn mulhilo(m: __m512i, x: __m512i, hi_idx: __m512i) -> (__m512i, __m512i) {
    // SAFETY: the caller guarantees AVX-512 F.
    unsafe {
        let lo = _mm512_mullo_epi32(x, m);
        let pe = _mm512_mul_epu32(x, m);
        let po = _mm512_mul_epu32(_mm512_srli_epi64::<32>(x), m);
        (_mm512_permutex2var_epi32(pe, hi_idx, po), lo)
    }
}

/// One Philox4x32-10 block per lane, counters `[task[i], c1, step lo, step hi]`, for `L` lanes (a
/// multiple of 16, at most 128) in `L / 16` registers per word whose rounds interleave.
///
/// # Safety
/// The CPU must support AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) unsafe fn block<const L: usize>(task: &[u32; L], c1: u32, step: u64, keys: &RoundKeys) -> [[u32; L]; 4] {
    // Registers per value (`[_; L / 16]` would need generic const expressions: the first v of L).
    let v_n = L / 16;
    const { assert!(L.is_multiple_of(16) && L <= 128) };
    // SAFETY: the caller guarantees AVX-512 F; the loads and stores are of 16-u32 pieces of the arrays.
    unsafe {
        let hi_idx = _mm512_setr_epi32(1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
        let (m0, m1) = (_mm512_set1_epi32(M0 as i32), _mm512_set1_epi32(M1 as i32));
        let k = &keys.0;
        let (h1s, l1s) = mulhilo_scalar(M1, step as u32);
        let u0 = h1s ^ c1 ^ k[0][0];
        let (h0u, l0u) = mulhilo_scalar(M0, u0);
        let mut x0 = [_mm512_setzero_si512(); 8];
        let mut x1 = [_mm512_setzero_si512(); 8];
        let mut x2 = [_mm512_setzero_si512(); 8];
        let mut x3 = [_mm512_setzero_si512(); 8];
        for v in 0..v_n {
            let t = _mm512_loadu_si512(task.as_ptr().add(16 * v).cast());
            let (h0, l0) = mulhilo(m0, t, hi_idx);
            let x2v = _mm512_xor_si512(h0, _mm512_set1_epi32(((step >> 32) as u32 ^ k[0][1]) as i32));
            let (h1, l1) = mulhilo(m1, x2v, hi_idx);
            x0[v] =
                _mm512_ternarylogic_epi32::<0x96>(h1, _mm512_set1_epi32(l1s as i32), _mm512_set1_epi32(k[1][0] as i32));
            x1[v] = l1;
            x2[v] =
                _mm512_ternarylogic_epi32::<0x96>(_mm512_set1_epi32(h0u as i32), l0, _mm512_set1_epi32(k[1][1] as i32));
            x3[v] = _mm512_set1_epi32(l0u as i32);
        }
        for kr in &k[2..] {
            for v in 0..v_n {
                let (h0, l0) = mulhilo(m0, x0[v], hi_idx);
                let (h1, l1) = mulhilo(m1, x2[v], hi_idx);
                x0[v] = _mm512_ternarylogic_epi32::<0x96>(h1, x1[v], _mm512_set1_epi32(kr[0] as i32));
                x1[v] = l1;
                x2[v] = _mm512_ternarylogic_epi32::<0x96>(h0, x3[v], _mm512_set1_epi32(kr[1] as i32));
                x3[v] = l0;
            }
        }
        let mut w = [[0u32; L]; 4];
        for (o, x) in w.iter_mut().zip([x0, x1, x2, x3]) {
            for (v, xv) in x.iter().take(v_n).enumerate() {
                _mm512_storeu_si512(o.as_mut_ptr().add(16 * v).cast(), *xv);
            }
        }
        w
    }
}
