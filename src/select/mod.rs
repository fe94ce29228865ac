//! Selection (§1 of the spec): a Thompson sample (or the posterior mean) per task, the score
//! `-|p* - p_hat|`, and the top k over the whole pool; Gumbel-top-k when tau > 0.
//!
//! Ties are broken by task index (the lower id wins) through [`score_key`], a 64-bit key whose
//! unsigned order is the selection order; the GPU's radix select ranks the same keys.

pub mod lanes;

use rayon::prelude::*;

use crate::config::Config;
use crate::pool::{Features, Prior};
use crate::twin::distr::{sample_beta, sample_gumbel};
use crate::twin::philox::TaskStream;
use crate::update::{apply_pending_task, PendingScalars};

/// The selection score of task `task` with posterior Beta(alpha, beta) at `step`:
/// `-|p* - p_hat|`, or `-|p* - p_hat|/tau + G` with G standard Gumbel when tau > 0 (Gumbel-top-k).
///
/// ```
/// let cfg = bots::Config { do_sample: false, ..Default::default() };
/// // posterior mean 0.75, target 0.5:
/// assert_eq!(bots::__private::score_task(&cfg, 3.0, 1.0, 0, 0), -0.25);
/// ```
#[inline(always)]
pub fn score_task(config: &Config, alpha: f32, beta: f32, step: u64, task: u32) -> f32 {
    let stream = TaskStream::new(config.seed, step, task);
    let p_hat = if config.do_sample { sample_beta(alpha, beta, &stream) } else { alpha / (alpha + beta) };
    let s = -(config.target - p_hat).abs();
    if config.tau > 0.0 {
        s / config.tau + sample_gumbel(&stream)
    } else {
        s
    }
}

/// A key whose unsigned order is the selection order: higher score first, then lower task id.
/// The score's bits are mapped to an order-preserving u32 (with -0 read as +0) in the high half, and
/// `!task` in the low half.
///
/// ```
/// use bots::__private::score_key;
/// assert!(score_key(-0.1, 5) > score_key(-0.2, 1));
/// assert!(score_key(-0.1, 1) > score_key(-0.1, 5));
/// assert_eq!(score_key(-0.0, 3), score_key(0.0, 3));
/// ```
#[inline(always)]
pub fn score_key(score: f32, task: u32) -> u64 {
    let score = if score == 0.0 { 0.0 } else { score };
    let bits = score.to_bits();
    let ordered = if bits & 0x8000_0000 != 0 { !bits } else { bits | 0x8000_0000 };
    ((ordered as u64) << 32) | (!task) as u64
}

/// The task id of a key.
#[inline(always)]
pub fn key_task(key: u64) -> u32 {
    !(key as u32)
}

/// Keeps the `k` largest keys of `keys` (any order in, descending out).
pub fn top_k_keys(mut keys: Vec<u64>, k: usize) -> Vec<u64> {
    if keys.len() > k {
        keys.select_nth_unstable_by(k - 1, |a, b| b.cmp(a));
        keys.truncate(k);
    }
    keys.sort_unstable_by(|a, b| b.cmp(a));
    keys
}

/// CPU twin of the `select_top_k` kernels: the `k` tasks of largest key among `keys(task)` for
/// `task in 0..n`, best first. Work is split into chunks over the thread pool; each keeps its own
/// top k and the chunk winners are merged, so the result does not depend on the thread count.
pub fn select_top_k<F>(n: usize, k: usize, key: F) -> Vec<u32>
where
    F: Fn(usize) -> u64 + Sync,
{
    const CHUNK: usize = 1 << 16;
    let winners: Vec<u64> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .flat_map_iter(|c| {
            let lo = c * CHUNK;
            let hi = (lo + CHUNK).min(n);
            top_k_keys((lo..hi).map(&key).collect(), k)
        })
        .collect();
    top_k_keys(winners, k).into_iter().map(key_task).collect()
}

/// Keeps the `k` largest of a stream of distinct keys in at most `2k` slots: a key at or below the
/// k-th largest seen so far (`thr`, once known) is dropped with one comparison, and the buffer is cut
/// back to its top k when full.
pub struct TopK {
    k: usize,
    buf: Vec<u64>,
    thr: u64,
}

impl TopK {
    /// An empty collector of the `k` (>= 1) largest keys.
    pub fn new(k: usize) -> TopK {
        TopK { k, buf: Vec::with_capacity(2 * k.min(1 << 16)), thr: 0 }
    }

    /// Offers one key (keys must be distinct, as [`score_key`]s of distinct tasks are).
    #[inline(always)]
    pub fn push(&mut self, key: u64) {
        if key >= self.thr {
            self.buf.push(key);
            if self.buf.len() >= 2 * self.k {
                self.buf.select_nth_unstable_by(self.k - 1, |a, b| b.cmp(a));
                self.buf.truncate(self.k);
                self.thr = self.buf[self.k - 1];
            }
        }
    }

    /// Offers every key of `keys`. Once the threshold is known almost no key passes it, so each group of
    /// 16 keys is compared with it at once (a loop LLVM vectorizes into a mask) and only the keys at or
    /// above it are offered one by one.
    #[inline(always)]
    pub fn push_all(&mut self, keys: &[u64]) {
        const G: usize = 16;
        let mut groups = keys.chunks_exact(G);
        for g in &mut groups {
            let g: &[u64; G] = g.try_into().expect("G keys");
            let thr = self.thr;
            let mut pass = 0u32;
            for (j, &key) in g.iter().enumerate() {
                pass |= ((key >= thr) as u32) << j;
            }
            while pass != 0 {
                self.push(g[pass.trailing_zeros() as usize]);
                pass &= pass - 1;
            }
        }
        groups.remainder().iter().for_each(|&key| self.push(key));
    }

    /// The k largest keys offered (fewer if fewer were offered), descending.
    pub fn finish(self) -> Vec<u64> {
        top_k_keys(self.buf, self.k)
    }
}

/// CPU twin of the `update_sample_score` kernel: applies the pending update of task `k` (if any),
/// writes it back, and returns the task's selection key at `step`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn update_sample_score(
    config: &Config,
    alpha: &mut f32,
    beta: &mut f32,
    prior: (f32, f32),
    features: Option<(f32, f32)>,
    pending: Option<&PendingScalars>,
    step: u64,
    task: u32,
) -> u64 {
    if let Some(p) = pending {
        let (a, b) = apply_pending_task(*alpha, *beta, prior, features, config.lambda, config.m as f32, p);
        *alpha = a;
        *beta = b;
    }
    score_key(score_task(config, *alpha, *beta, step, task), task)
}

/// Tasks per parallel chunk of [`select_fused`] (a rayon job runs one or more of them).
const CHUNK: usize = 1 << 16;
/// Keys computed per call of [`lanes::fill_keys_offer`] (a stack buffer).
const BLOCK: usize = 512;

/// The CPU fused pass: applies `pending` (if any) to every task, writing alpha and beta back, scores
/// every task at `step` and returns the `k` best, best first. Chunks run in parallel, each computing its
/// keys in lanes ([`lanes::fill_keys_offer`]) into a small stack buffer; each rayon job keeps one [`TopK`]
/// across all the chunks it runs (so its threshold, once known, rejects almost every key), and the jobs'
/// winners are merged. Nothing N-sized is allocated, and since keys are distinct the result is the exact
/// top k whatever the split into jobs, so it does not depend on the thread count.
#[allow(clippy::too_many_arguments)]
pub fn select_fused(
    config: &Config,
    alpha: &mut [f32],
    beta: &mut [f32],
    prior: &Prior,
    features: Option<&Features>,
    pending: Option<&PendingScalars>,
    step: u64,
    k: usize,
) -> Vec<u32> {
    let ctx = lanes::ScoreCtx { config, prior, features, pending, step };
    // About one job per thread, so each job's collector sees as many keys as it can. (Rayon splits a
    // range only while both halves keep at least this many chunks: rounding down keeps every thread busy.)
    let per_job = (alpha.len().div_ceil(CHUNK) / rayon::current_num_threads()).max(1);
    let winners: Vec<u64> = alpha
        .par_chunks_mut(CHUNK)
        .zip(beta.par_chunks_mut(CHUNK))
        .enumerate()
        .with_min_len(per_job)
        .fold(
            || TopK::new(k),
            |mut top, (c, (a, b))| {
                let mut keys = [0u64; BLOCK];
                for (s, (ab, bb)) in a.chunks_mut(BLOCK).zip(b.chunks_mut(BLOCK)).enumerate() {
                    let out = &mut keys[..ab.len()];
                    lanes::fill_keys_offer(&ctx, ab, bb, c * CHUNK + s * BLOCK, out, &mut top);
                }
                top
            },
        )
        .map(TopK::finish)
        .reduce(Vec::new, |mut a, b| {
            a.extend(b);
            top_k_keys(a, k)
        });
    // Already the top k, best first: every job's winners and every merge went through `top_k_keys`.
    winners.into_iter().map(key_task).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_matches_score_then_index() {
        let scores = [-0.5f32, -0.0, 0.0, -1e-30, -0.25, -0.25, f32::NEG_INFINITY, 3.0];
        let mut idx: Vec<u32> = (0..scores.len() as u32).collect();
        idx.sort_by(|&a, &b| scores[b as usize].partial_cmp(&scores[a as usize]).unwrap().then(a.cmp(&b)));
        let mut by_key: Vec<u32> = (0..scores.len() as u32).collect();
        by_key.sort_by_key(|&t| std::cmp::Reverse(score_key(scores[t as usize], t)));
        assert_eq!(idx, by_key);
        assert_eq!(key_task(score_key(-0.3, 123_456)), 123_456);
    }

    /// The streaming collector against a full sort, for k from 1 to past the stream length, on keys
    /// in an order that makes the threshold move often.
    #[test]
    fn streaming_top_k_matches_sort() {
        let keys: Vec<u64> = (0..50_000u64).map(|i| (i * 2_654_435_761) % 1_000_003 * 65_536 + i).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        for k in [1, 2, 3, 100, 1024, 24_999, 50_000, 60_000] {
            let mut t = TopK::new(k);
            keys.iter().for_each(|&x| t.push(x));
            assert_eq!(t.finish(), sorted[..k.min(keys.len())], "k = {k}");
            // In blocks of a length that leaves remainders, as `select_fused` offers them.
            let mut t = TopK::new(k);
            keys.chunks(500).for_each(|b| t.push_all(b));
            assert_eq!(t.finish(), sorted[..k.min(keys.len())], "k = {k} (push_all)");
        }
    }

    /// Exact top-k against a full sort, for many k, including heavy ties.
    #[test]
    fn top_k_matches_full_sort() {
        let n = 200_003usize;
        let score = |t: usize| -(((t * 7919) % 1000) as f32) / 1000.0;
        let mut all: Vec<u32> = (0..n as u32).collect();
        all.sort_by(|&a, &b| score(b as usize).partial_cmp(&score(a as usize)).unwrap().then(a.cmp(&b)));
        for k in [1, 2, 31, 32, 1000, 65_536, 65_537, n] {
            let got = select_top_k(n, k, |t| score_key(score(t), t as u32));
            assert_eq!(got, all[..k], "k = {k}");
        }
    }
}
