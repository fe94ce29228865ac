//! Evidence: what the trainer observed on the selected tasks (explicit evidence, §2 of the spec), and
//! the interpolation plug-in that predicts every other task from it (implicit evidence, §3).
//!
//! [`batch_evidence`] is the CPU twin of the `batch_evidence` kernel: it validates a batch, reduces
//! its statistics (mu_est, the adaptive-rho test) and returns the [`Pending`] update that
//! [`crate::update`] applies to every task.

use std::collections::HashSet;

use crate::config::Config;
use crate::error::{BotsError, CountsProblem, Result};
use crate::pool::PoolState;

pub use crate::abi::ADAPTIVE_RHO_MISS;
pub use crate::abi::MU_EPS;

/// Observed outcomes of the tasks of one batch, in the order of `Evidence::tasks`.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcomes {
    /// Mean binary reward over the config's m rollouts per task, each in [0, 1].
    PassRates(Vec<f32>),
    /// Success and failure counts per task (n_k = s_k + f_k rollouts, 1 <= n_k <= m).
    Counts { successes: Vec<f32>, failures: Vec<f32> },
}

/// The outcomes of one step's batch.
///
/// ```
/// let ev = bots::Evidence::pass_rates(vec![3, 17], vec![0.25, 1.0]);
/// assert_eq!(ev.len(), 2);
/// let ev = bots::Evidence::counts(vec![3], vec![4.0], vec![12.0]);
/// assert_eq!(ev.len(), 1);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Evidence {
    /// Task ids, each at most once.
    pub tasks: Vec<u32>,
    /// Their outcomes.
    pub outcomes: Outcomes,
}

impl Evidence {
    /// Pass rates (mean reward of m rollouts) for `tasks`.
    pub fn pass_rates(tasks: Vec<u32>, rates: Vec<f32>) -> Self {
        Evidence { tasks, outcomes: Outcomes::PassRates(rates) }
    }
    /// Success/failure counts for `tasks`.
    pub fn counts(tasks: Vec<u32>, successes: Vec<f32>, failures: Vec<f32>) -> Self {
        Evidence { tasks, outcomes: Outcomes::Counts { successes, failures } }
    }
    /// Number of tasks in the batch.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }
    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
    /// Checks the batch as every pool's `update` does for a pool of `n` tasks with `m` rollouts per
    /// task (the config's `m`), with the same error: a non-empty batch, one outcome per task, ids in
    /// range and each at most once, every outcome valid. A batch with several faults reports one, the
    /// same on every backend: the first row (in batch order) whose id is out of range or whose outcome
    /// is invalid, else the smallest repeated id.
    ///
    /// ```
    /// use bots::{BotsError, Evidence};
    /// // Task 3 and task 7 are repeated, and row 4 has an invalid pass rate: the pass rate is reported.
    /// let ev = Evidence::pass_rates(vec![7, 3, 7, 3, 5], vec![0.5, 0.5, 0.5, 0.5, 1.5]);
    /// assert!(matches!(ev.validate(10, 8), Err(BotsError::InvalidPassRate { task: 5, .. })));
    /// // Without it, the smallest repeated id.
    /// let ev = Evidence::pass_rates(vec![7, 3, 7, 3, 5], vec![0.5; 5]);
    /// assert!(matches!(ev.validate(10, 8), Err(BotsError::DuplicateTask { task: 3 })));
    /// ```
    pub fn validate(&self, n: usize, m: u32) -> Result<()> {
        validate_batch(n, m, self).map(|_| ())
    }
}

/// One validated row of a batch: `s_bar`, `f_bar` explicit pseudo-counts, `n` rollouts and the
/// observed pass rate `r = s_bar / n`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchRow {
    pub task: u32,
    pub s_bar: f32,
    pub f_bar: f32,
    pub n: f32,
    pub r: f32,
}

/// Turns one reported outcome into a row, or says why it is invalid. The one place that defines
/// `s_bar`, `f_bar`, `n` and `r` from what a trainer reports.
#[inline]
pub fn batch_row(task: u32, outcome: RowOutcome, m: u32) -> Result<BatchRow> {
    let mf = m as f32;
    match outcome {
        RowOutcome::PassRate(r) => {
            if !(0.0..=1.0).contains(&r) {
                return Err(BotsError::InvalidPassRate { task, value: r });
            }
            Ok(BatchRow { task, s_bar: mf * r, f_bar: mf * (1.0 - r), n: mf, r })
        }
        RowOutcome::Counts(s, f) => {
            let bad = |problem| BotsError::InvalidCounts { task, successes: s, failures: f, problem };
            if !(s.is_finite() && f.is_finite()) {
                return Err(bad(CountsProblem::NotFinite));
            }
            if s < 0.0 || f < 0.0 {
                return Err(bad(CountsProblem::Negative));
            }
            let n = s + f;
            if n <= 0.0 {
                return Err(bad(CountsProblem::NoRollouts));
            }
            if n > mf {
                return Err(bad(CountsProblem::TooMany { m }));
            }
            Ok(BatchRow { task, s_bar: s, f_bar: f, n, r: s / n })
        }
    }
}

/// One outcome as reported, before validation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RowOutcome {
    PassRate(f32),
    Counts(f32, f32),
}

/// The update a batch implies for the whole pool, computed from the batch alone: the new mu and rho,
/// and the validated batch rows. Applying it (`crate::update`) touches every task.
#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    /// Validated rows of the batch (explicit evidence).
    pub rows: Vec<BatchRow>,
    /// mu after this update (`None` when the pool has no features).
    pub mu: Option<f32>,
    /// The interpolation segment of that mu (`None` when the pool has no features).
    pub segment: Option<Segment>,
    /// rho after this update (the halved value when adaptive rho fired).
    pub rho: f32,
    /// Mean |p_tilde - r| over the batch, before the overwrite (`None` without features).
    pub miss: Option<f32>,
}

/// Where a mu falls on the ladder of K feature columns (`docs/EVIDENCE-SOURCES.md` §1.1): the two
/// columns `lo` (`None`: the virtual null model of K = 1, whose pass rate is 0) and `hi` that every
/// task interpolates between, and the position `t` on that segment. Every task of an update uses the
/// same segment, so a task reads two feature values whatever K is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Segment {
    pub lo: Option<usize>,
    pub hi: usize,
    pub t: f32,
}

/// The [`Segment`] of `mu` on `columns` (K >= 1) feature columns: `j = 0` below 1 (and for NaN),
/// `K - 2` from `K - 1` on, else `floor(mu)`, and `t = mu - j` (exact). With K = 2 it is always
/// `(0, 1, mu)`, and with K = 1 `(null, 0, mu)`. The one place of this rule (twin: the kernels'
/// `segment` in kernels/model.cuh).
#[inline]
pub fn segment(mu: f32, columns: usize) -> Segment {
    if columns <= 1 {
        return Segment { lo: None, hi: 0, t: mu };
    }
    let last = columns - 2;
    // `mu >= 1.0` is false for NaN too: NaN takes the first segment.
    let j = if mu >= (columns - 1) as f32 {
        last
    } else if mu >= 1.0 {
        mu.floor() as usize
    } else {
        0
    };
    Segment { lo: Some(j), hi: j + 1, t: mu - j as f32 }
}

/// The segment `e` of the batch's ladder of column means `ladder` that mu_est lies on, for a batch
/// mean pass rate `r` (`docs/EVIDENCE-SOURCES.md` §1.2): the first segment whose two means bracket
/// `r`, else the end segment nearer to `r`. `ladder` has at least two rungs.
fn ladder_segment(r: f64, ladder: &[f64]) -> usize {
    let last = ladder.len() - 2;
    for e in 0..=last {
        let (a, b) = (ladder[e], ladder[e + 1]);
        if a.min(b) <= r && r <= a.max(b) {
            return e;
        }
    }
    if (r - ladder[0]).abs() <= (r - ladder[last + 1]).abs() {
        0
    } else {
        last
    }
}

/// Interpolated pass rate `clip(f_w + mu·(f_s - f_w), 0, 1)`: the one place of this formula (with K
/// columns it runs on the segment's two columns and its `t`, see [`segment`]).
#[inline(always)]
pub fn interpolate(mu: f32, f_w: f32, f_s: f32) -> f32 {
    (f_w + mu * (f_s - f_w)).clamp(0.0, 1.0)
}

/// Validates a batch for a pool of `n` tasks with `m` rollouts per task and returns its rows: a
/// non-empty batch, parallel arrays of one length, task ids in range and each at most once, and every
/// outcome valid ([`batch_row`]). The one place of these checks, for every backend.
///
/// A batch with several faults reports one, the same on every backend and in any thread order: the
/// first row (in batch order) whose task id is out of range or whose outcome is invalid; only when no
/// row has either, the smallest task id that appears more than once. (A repeat has no deterministic
/// position on the device, where rows are checked in parallel; the smallest repeated id is.) Public as
/// [`Evidence::validate`].
pub fn validate_batch(n: usize, m: u32, evidence: &Evidence) -> Result<Vec<BatchRow>> {
    let len = evidence.tasks.len();
    if len == 0 {
        return Err(BotsError::Empty("the evidence batch"));
    }
    match &evidence.outcomes {
        Outcomes::PassRates(r) if r.len() != len => {
            return Err(BotsError::LengthMismatch {
                what: "pass rates (one per task)".into(),
                expected: len,
                got: r.len(),
            })
        }
        Outcomes::Counts { successes, failures } if successes.len() != len || failures.len() != len => {
            let got = if successes.len() != len { successes.len() } else { failures.len() };
            return Err(BotsError::LengthMismatch {
                what: "success/failure counts (one per task)".into(),
                expected: len,
                got,
            });
        }
        _ => {}
    }
    let mut seen: HashSet<u32> = HashSet::with_capacity(len);
    let mut repeated: Option<u32> = None;
    let mut rows = Vec::with_capacity(len);
    for (i, &task) in evidence.tasks.iter().enumerate() {
        if task as usize >= n {
            return Err(BotsError::TaskOutOfRange { task: task as u64, position: i, len: n });
        }
        let outcome = match &evidence.outcomes {
            Outcomes::PassRates(r) => RowOutcome::PassRate(r[i]),
            Outcomes::Counts { successes, failures } => RowOutcome::Counts(successes[i], failures[i]),
        };
        rows.push(batch_row(task, outcome, m)?);
        if !seen.insert(task) {
            repeated = Some(repeated.map_or(task, |r| r.min(task)));
        }
    }
    match repeated {
        Some(task) => Err(BotsError::DuplicateTask { task }),
        None => Ok(rows),
    }
}

/// Validates `evidence` against the pool and computes the [`Pending`] update (§3 of the spec, in its
/// order: mu, p_tilde, the adaptive-rho test). Reads the state, never writes it.
pub fn batch_evidence(state: &PoolState, config: &Config, evidence: &Evidence) -> Result<Pending> {
    let rows = validate_batch(state.len(), config.m, evidence)?;
    let len = rows.len();
    let g = state.globals;
    let Some(features) = &state.features else {
        return Ok(Pending { rows, mu: g.mu, segment: None, rho: g.rho, miss: None });
    };
    // Batch means in f64, summed in the one order the `batch_reduce` kernel uses (see `batch_sum`), so
    // that mu and miss are bit-identical on both backends.
    let inv = 1.0 / len as f64;
    let cols = features.n_columns();
    let sr = batch_sum(len, |i| rows[i].r as f64);
    // The batch's ladder of column sums, with the null model's 0 below a single column.
    let mut sums = Vec::with_capacity(cols + 1);
    if cols == 1 {
        sums.push(0.0);
    }
    for c in 0..cols {
        sums.push(batch_sum(len, |i| features.value(c, rows[i].task as usize) as f64));
    }
    let ladder: Vec<f64> = sums.iter().map(|s| s * inv).collect();
    let e = ladder_segment(sr * inv, &ladder);
    let (sw, ss) = (sums[e], sums[e + 1]);
    let x = (sr * inv - sw * inv) / (ss * inv - sw * inv + MU_EPS);
    let mu_est = if e == 0 { x as f32 } else { (e as f64 + x) as f32 };
    let mu = match g.mu {
        None => mu_est,
        Some(prev) => config.gamma * prev + (1.0 - config.gamma) * mu_est,
    };
    let seg = segment(mu, cols);
    let miss = batch_sum(len, |i| {
        let (lo, hi) = features.pair(&seg, rows[i].task as usize);
        (interpolate(seg.t, lo, hi) - rows[i].r).abs() as f64
    });
    let miss = miss * inv;
    let rho = if config.adaptive_rho && miss >= ADAPTIVE_RHO_MISS { g.rho / 2.0 } else { g.rho };
    Ok(Pending { rows, mu: Some(mu), segment: Some(seg), rho, miss: Some(miss as f32) })
}

/// Lanes of the batch sums: the block size of the `batch_reduce` kernel, which launches with it.
pub const BATCH_LANES: usize = crate::abi::BATCH_LANES as usize;

/// The sum of `f(0) + ... + f(len - 1)` in the order both backends use: lane `t` adds rows `t`,
/// `t + BATCH_LANES`, ... in turn, then the lanes are combined as a tree (`lane[t] += lane[t + h]` for
/// `h = BATCH_LANES / 2, ..., 1`), as the threads of `batch_reduce` do.
///
/// ```
/// use bots::__private::batch_sum;
/// assert_eq!(batch_sum(1000, |i| i as f64), 499_500.0);
/// ```
pub fn batch_sum(len: usize, f: impl Fn(usize) -> f64) -> f64 {
    let mut lanes = [0.0f64; BATCH_LANES];
    for i in 0..len {
        lanes[i % BATCH_LANES] += f(i);
    }
    let mut h = BATCH_LANES / 2;
    while h > 0 {
        let (lo, hi) = lanes.split_at_mut(h);
        for (a, b) in lo.iter_mut().zip(&hi[..h]) {
            *a += *b;
        }
        h /= 2;
    }
    lanes[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The segment of a mu on K columns: the first segment below 1 (and for NaN), the last one from
    /// K - 1 on (extrapolation), `floor(mu)` between; t = mu - j exactly; K = 2 is always (0, 1, mu).
    #[test]
    fn segments_of_mu() {
        let seg = |mu: f32, k| {
            let s = segment(mu, k);
            (s.lo, s.hi, s.t)
        };
        for mu in [-3.5f32, -0.0, 0.0, 0.4, 1.0, 1.7, 7.25] {
            assert_eq!(seg(mu, 2).2.to_bits(), mu.to_bits(), "K = 2 keeps mu's bits");
            assert_eq!((seg(mu, 2).0, seg(mu, 2).1), (Some(0), 1));
            assert_eq!(seg(mu, 1), (None, 0, mu));
        }
        assert_eq!(seg(-0.5, 4), (Some(0), 1, -0.5));
        assert_eq!(seg(0.999, 4), (Some(0), 1, 0.999));
        assert_eq!(seg(1.0, 4), (Some(1), 2, 0.0));
        assert_eq!(seg(2.5, 4), (Some(2), 3, 0.5));
        assert_eq!(seg(3.0, 4), (Some(2), 3, 1.0));
        assert_eq!(seg(4.5, 4), (Some(2), 3, 2.5));
        let nan = segment(f32::NAN, 4);
        assert_eq!((nan.lo, nan.hi), (Some(0), 1));
        assert!(nan.t.is_nan());
    }

    /// The batch's ladder: the first bracketing segment, else the end nearer to R.
    #[test]
    fn ladder_segments() {
        let up = [0.1, 0.3, 0.6, 0.9];
        assert_eq!(ladder_segment(0.0, &up), 0);
        assert_eq!(ladder_segment(0.2, &up), 0);
        assert_eq!(ladder_segment(0.3, &up), 0);
        assert_eq!(ladder_segment(0.45, &up), 1);
        assert_eq!(ladder_segment(0.7, &up), 2);
        assert_eq!(ladder_segment(0.95, &up), 2);
        // Not monotone: the first segment that brackets R; outside every segment, the nearer end.
        let zigzag = [0.5, 0.2, 0.8];
        assert_eq!(ladder_segment(0.3, &zigzag), 0);
        assert_eq!(ladder_segment(0.7, &zigzag), 1);
        assert_eq!(ladder_segment(0.1, &zigzag), 0);
        assert_eq!(ladder_segment(0.9, &zigzag), 1);
        assert_eq!(ladder_segment(5.0, &[0.4, 0.6]), 0);
    }
}
