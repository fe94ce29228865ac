//! The generalized Bayesian update (§4 of the spec): forgetting toward the prior, plus explicit
//! evidence for the batch and interpolated implicit evidence for every other task.
//!
//! [`update_task`] is the one place of the formula; the `update_sample_score` kernel writes the same
//! expression in the same order (and is compiled with `--fmad=false`), so both backends agree bit for
//! bit on the posterior.

use rayon::prelude::*;

use crate::config::Config;
use crate::evidence::{interpolate, Pending, Segment};
use crate::neighbours::{neighbour_scale, neighbour_sums, touched};
use crate::pool::PoolState;

/// One task's update:
///
/// ```text
/// alpha' = (1-lambda)·alpha + lambda·alpha0 + (1-rho)·s_bar + rho·n·p
/// beta'  = (1-lambda)·beta  + lambda·beta0  + (1-rho)·f_bar + rho·n·(1-p)
/// ```
/// For a batch task `s_bar, f_bar` are its counts, `n` its rollouts and `p = r` its observed pass
/// rate; for any other task `s_bar = f_bar = 0`, `n = m` and `p = p_tilde`.
///
/// ```
/// // lambda = 0.1, rho = 0.1, m = 16, an unselected task at Beta(1, 1) predicted at p_tilde = 0.25:
/// let (a, b) = bots::__private::update_task(1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.0, 0.0, 16.0, 0.25);
/// assert!((a - 1.4).abs() < 1e-6 && (b - 2.2).abs() < 1e-6);
/// ```
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn update_task(
    alpha: f32,
    beta: f32,
    alpha0: f32,
    beta0: f32,
    lambda: f32,
    rho: f32,
    s_bar: f32,
    f_bar: f32,
    n: f32,
    p: f32,
) -> (f32, f32) {
    let keep = 1.0 - lambda;
    let explicit = 1.0 - rho;
    let a = keep * alpha + lambda * alpha0 + explicit * s_bar + rho * n * p;
    let b = keep * beta + lambda * beta0 + explicit * f_bar + rho * n * (1.0 - p);
    (a, b)
}

/// Writes the batch tasks' updated parameters, marking each as done by storing `-alpha'` (alpha is
/// always positive, so its sign bit is free); [`apply_pending_task`] then skips them and clears the
/// mark. This is what lets the pool-wide part of the update be fused into the next selection pass.
pub fn scatter_batch(state: &mut PoolState, config: &Config, pending: &Pending) {
    for row in &pending.rows {
        let k = row.task as usize;
        let (a0, b0) = state.prior.get(k);
        let (a, b) = update_task(
            state.alpha[k],
            state.beta[k],
            a0,
            b0,
            config.lambda,
            pending.rho,
            row.s_bar,
            row.f_bar,
            row.n,
            row.r,
        );
        state.alpha[k] = -a;
        state.beta[k] = b;
    }
}

/// Neighbour evidence (docs/EVIDENCE-SOURCES.md §2.2-2.4), the CPU twin of `nbr_push` and
/// `nbr_pull_apply`: every task near the batch (in the reverse lists of a batch task, not itself in the
/// batch) gets its whole update now, forgetting and the reference term of `pending` as
/// [`apply_pending_task`] gives them, plus `c·S` and `c·F` from its batch neighbours, and is marked
/// done (`-alpha`) like a batch task, so the deferred pass only unmarks it. Call after
/// [`scatter_batch`], on a state with nothing else pending. Returns the number of tasks updated.
pub fn apply_neighbours(state: &mut PoolState, config: &Config, pending: &Pending) -> usize {
    let Some(graph) = state.neighbours.as_ref().filter(|_| config.neighbour_weight > 0.0) else {
        return 0;
    };
    let batch: Vec<u32> = pending.rows.iter().map(|r| r.task).collect();
    let (touched, rows) = touched(graph, &batch);
    let scalars = PendingScalars::from(pending);
    let (lambda, m, eta) = (config.lambda, config.m as f32, config.neighbour_weight);
    let updates: Vec<(f32, f32)> = touched
        .par_iter()
        .map(|&i| {
            let i = i as usize;
            let f = scalars.pair(state.features.as_ref(), i);
            let (a, b) = apply_pending_task(state.alpha[i], state.beta[i], state.prior.get(i), f, lambda, m, &scalars);
            let (ids, w) = graph.row(i);
            let (w_sum, s_sum, f_sum) =
                neighbour_sums(ids, w, |j| rows.get(&j).map(|&r| (pending.rows[r].s_bar, pending.rows[r].f_bar)));
            let c = neighbour_scale(eta, w_sum);
            (a + c * s_sum, b + c * f_sum)
        })
        .collect();
    for (&i, (a, b)) in touched.iter().zip(updates) {
        state.alpha[i as usize] = -a;
        state.beta[i as usize] = b;
    }
    touched.len()
}

/// The pool-wide part of a pending update for task `k`: a task marked by [`scatter_batch`] is
/// unmarked, any other gets forgetting plus `rho·m·p_tilde` implicit evidence. `features` are the
/// task's two values on the pending segment ([`crate::Features`]' `pair`), `p_tilde` their
/// interpolation at the segment's `t`.
#[inline(always)]
pub fn apply_pending_task(
    alpha: f32,
    beta: f32,
    prior: (f32, f32),
    features: Option<(f32, f32)>,
    lambda: f32,
    m: f32,
    pending: &PendingScalars,
) -> (f32, f32) {
    if alpha < 0.0 {
        return (-alpha, beta);
    }
    let p = match (features, pending.segment) {
        (Some((lo, hi)), Some(seg)) => interpolate(seg.t, lo, hi),
        _ => 0.0,
    };
    update_task(alpha, beta, prior.0, prior.1, lambda, pending.rho, 0.0, 0.0, m, p)
}

/// The scalars of a pending update that every task needs (what the kernel reads from device memory).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PendingScalars {
    /// Where the new mu falls on the feature columns (`None` without features).
    pub segment: Option<Segment>,
    pub rho: f32,
}

impl From<&Pending> for PendingScalars {
    fn from(p: &Pending) -> Self {
        PendingScalars { segment: p.segment, rho: p.rho }
    }
}

impl PendingScalars {
    /// The feature values task `k` reads under this pending update (`None` without features).
    #[inline(always)]
    pub fn pair(&self, features: Option<&crate::pool::Features>, k: usize) -> Option<(f32, f32)> {
        match (features, &self.segment) {
            (Some(f), Some(seg)) => Some(f.pair(seg, k)),
            _ => None,
        }
    }
}

/// Applies a pending update to every task (in parallel), without sampling; used to bring a state up
/// to date before it is read back.
pub fn apply_pending(state: &mut PoolState, config: &Config, pending: &PendingScalars) {
    let PoolState { alpha, beta, prior, features, .. } = state;
    let (lambda, m) = (config.lambda, config.m as f32);
    alpha.par_iter_mut().zip(beta.par_iter_mut()).enumerate().for_each(|(k, (a, b))| {
        let f = pending.pair(features.as_ref(), k);
        let (na, nb) = apply_pending_task(*a, *b, prior.get(k), f, lambda, m, pending);
        *a = na;
        *b = nb;
    });
}
