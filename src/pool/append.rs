//! Tasks added to a live pool ([`NewTasks`], [`PoolState::append`]): ids `N..N + count`, with their
//! reference columns and/or neighbour rows, and an informed start (docs/EVIDENCE-SOURCES.md §5).

use std::ops::Range;

use crate::config::Config;
use crate::error::{BotsError, Result};
use crate::evidence::{interpolate, segment};
use crate::neighbours::{neighbour_scale, neighbour_sums};
use crate::pool::{Features, PoolState, Prior};

/// Tasks to append to a pool: how many, and what the pool needs of each (reference values when the
/// pool has features, a neighbour row when it has a graph).
///
/// ```
/// use bots::{Backend, Config, CpuPool, NewTasks};
/// let mut pool = CpuPool::new(Config { rho: 0.0, ..Default::default() }, 100, None)?;
/// let ids = pool.append(&NewTasks::new(20))?;
/// assert_eq!((ids, pool.len()), (100..120, 120));
/// # Ok::<(), bots::BotsError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewTasks {
    /// How many tasks.
    pub count: usize,
    /// Their reference columns (K columns of `count` values), required when the pool has features.
    pub features: Option<Features>,
    /// Their out-neighbour rows (`count · k` ids and weights, as [`crate::Neighbours::from_lists`] takes
    /// them; ids may name any task of the grown pool), required when the pool has a graph.
    pub neighbours: Option<(Vec<u32>, Vec<f32>)>,
}

impl NewTasks {
    /// `count` tasks with nothing else (for a pool without features or graph).
    pub fn new(count: usize) -> NewTasks {
        NewTasks { count, ..NewTasks::default() }
    }

    /// With their reference columns.
    pub fn with_features(self, features: Features) -> NewTasks {
        NewTasks { features: Some(features), ..self }
    }

    /// With their out-neighbour rows (`count · k` ids, padded with [`crate::Neighbours::NONE`], and weights).
    pub fn with_neighbours(self, ids: Vec<u32>, weights: Vec<f32>) -> NewTasks {
        NewTasks { neighbours: Some((ids, weights)), ..self }
    }
}

/// The columns of `a` then `b`, in f16 when every value of both is exact there, else f32.
fn concat_features(a: &Features, b: &Features) -> Result<Features> {
    let cols: Vec<Vec<f32>> = (0..a.n_columns())
        .map(|c| (0..a.len()).map(|k| a.value(c, k)).chain((0..b.len()).map(|k| b.value(c, k))).collect())
        .collect();
    Features::from_columns(&cols.iter().map(Vec::as_slice).collect::<Vec<_>>())
}

impl PoolState {
    /// Appends `new.count` tasks with ids `len()..len() + count`, on an up-to-date state (nothing
    /// pending). Each starts informed (docs/EVIDENCE-SOURCES.md §5):
    ///
    /// - with neighbour evidence (`neighbour_weight` = eta > 0): from its out-neighbours' evidence,
    ///   `alpha = alpha0 + c · Σ_j w_j · max(0, alpha_j - alpha0_j)` (beta alike, in row order, in f32)
    ///   with `c = eta / max(1, W)`, the scale of the neighbour update;
    /// - else, with references (rho > 0) after the first update: at the point the reference term
    ///   alone holds a task at under the current mu and rho, `alpha = alpha0 + rho·m·p/lambda`,
    ///   `beta = beta0 + rho·m·(1 - p)/lambda` (p = p_tilde of its columns; the prior if lambda = 0);
    /// - else at its prior, like every task of a fresh pool.
    ///
    /// Old tasks keep their state, rows and ids. Nothing changes on error.
    pub fn append(&mut self, config: &Config, new: &NewTasks) -> Result<Range<u32>> {
        let (n, extra) = (self.len(), new.count);
        if extra == 0 {
            return Err(BotsError::Empty("the appended tasks"));
        }
        let total = n + extra;
        if total > u32::MAX as usize {
            return Err(BotsError::config("tasks", format!("{total} tasks exceed the 2^32 - 1 u32 ids can name")));
        }
        let features = match (&self.features, &new.features) {
            (None, None) => None,
            (Some(old), Some(f)) => {
                f.validate()?;
                if f.n_columns() != old.n_columns() || f.len() != extra {
                    return Err(BotsError::LengthMismatch {
                        what: format!("appended features ({} columns of {extra} values)", old.n_columns()),
                        expected: old.n_columns() * extra,
                        got: f.n_columns() * f.len(),
                    });
                }
                Some(concat_features(old, f)?)
            }
            (Some(_), None) => {
                return Err(BotsError::config("features", "the pool has reference features: give the new tasks theirs"))
            }
            (None, Some(_)) => {
                return Err(BotsError::config(
                    "features",
                    "the pool has no reference features: give the new tasks none",
                ))
            }
        };
        let neighbours = match (&self.neighbours, &new.neighbours) {
            (None, None) => None,
            (Some(g), Some((ids, w))) => {
                let mut g = g.clone();
                g.append(extra, ids, w)?;
                Some(g)
            }
            (Some(_), None) => {
                return Err(BotsError::config(
                    "neighbours",
                    "the pool has a neighbour graph: give the new tasks their rows",
                ))
            }
            (None, Some(_)) => {
                return Err(BotsError::config(
                    "neighbours",
                    "the pool has no neighbour graph: give the new tasks no rows",
                ))
            }
        };
        let new_prior = |k: usize| -> (f32, f32) {
            match (&self.prior, config.prior_strength, &features) {
                (Prior::PerTask { .. }, Some(c), Some(f)) => {
                    let fs = f.get(k).1;
                    (1.0 + c * fs, 1.0 + c * (1.0 - fs))
                }
                _ => match &self.prior {
                    Prior::Constant { alpha0, beta0 } => (*alpha0, *beta0),
                    Prior::PerTask { .. } => (config.prior_alpha, config.prior_beta),
                },
            }
        };
        let mut alpha = Vec::with_capacity(extra);
        let mut beta = Vec::with_capacity(extra);
        let mut priors = Vec::with_capacity(extra);
        for k in n..total {
            let (a0, b0) = new_prior(k);
            priors.push((a0, b0));
            let (a, b) = match (&neighbours, &features, self.globals.mu) {
                (Some(g), _, _) if config.neighbour_weight > 0.0 => {
                    // The update's sums (neighbour_sums), over the old tasks' accumulated evidence.
                    let (ids, w) = g.row(k);
                    let (w_sum, sa, sb) = neighbour_sums(ids, w, |j| {
                        let j = j as usize;
                        (j < n).then(|| {
                            let (ja0, jb0) = self.prior.get(j);
                            ((self.alpha[j] - ja0).max(0.0), (self.beta[j] - jb0).max(0.0))
                        })
                    });
                    let c = neighbour_scale(config.neighbour_weight, w_sum);
                    (a0 + c * sa, b0 + c * sb)
                }
                (_, Some(f), Some(mu)) if self.globals.rho > 0.0 && config.lambda > 0.0 => {
                    let seg = segment(mu, f.n_columns());
                    let (lo, hi) = f.pair(&seg, k);
                    let p = interpolate(seg.t, lo, hi);
                    let scale = self.globals.rho * config.m as f32 / config.lambda;
                    (a0 + scale * p, b0 + scale * (1.0 - p))
                }
                _ => (a0, b0),
            };
            alpha.push(a);
            beta.push(b);
        }
        let mut grown = PoolState {
            alpha: [self.alpha.as_slice(), &alpha].concat(),
            beta: [self.beta.as_slice(), &beta].concat(),
            prior: match &self.prior {
                Prior::Constant { .. } => self.prior.clone(),
                Prior::PerTask { alpha0, beta0 } => Prior::PerTask {
                    alpha0: alpha0.iter().copied().chain(priors.iter().map(|p| p.0)).collect(),
                    beta0: beta0.iter().copied().chain(priors.iter().map(|p| p.1)).collect(),
                },
            },
            features,
            neighbours,
            globals: self.globals,
        };
        grown.check_fits(config)?;
        std::mem::swap(self, &mut grown);
        Ok(n as u32..total as u32)
    }
}
