//! Pool state: the Beta posterior of every task, its prior, the reference features, and the global
//! capability estimate mu, rho and step counter. This is the host form of what a backend holds; the
//! CUDA backend keeps the same arrays in device memory.

use half::f16;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{BotsError, Result};

/// The prior that forgetting pulls each task back to.
#[derive(Clone, Debug, PartialEq)]
pub enum Prior {
    /// One Beta(alpha0, beta0) for every task (the reference: 1, 1); costs no memory per task.
    Constant { alpha0: f32, beta0: f32 },
    /// A prior per task, e.g. from a reference model's pass rate (`Config::prior_strength`).
    PerTask { alpha0: Vec<f32>, beta0: Vec<f32> },
}

impl Prior {
    /// The prior of task `k`.
    #[inline(always)]
    pub fn get(&self, k: usize) -> (f32, f32) {
        match self {
            Prior::Constant { alpha0, beta0 } => (*alpha0, *beta0),
            Prior::PerTask { alpha0, beta0 } => (alpha0[k], beta0[k]),
        }
    }
}

/// Reference-model pass rates per task, the inputs of implicit evidence, stored as f16 (a pass rate
/// of m <= 2048 rollouts is exact in f16; other values round to 11 significant bits).
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    /// Pass rate of the weaker reference model (`f_w`).
    pub weak: Vec<f16>,
    /// Pass rate of the stronger reference model (`f_s`).
    pub strong: Vec<f16>,
}

impl Features {
    /// Builds features from f32 pass rates, checking lengths and that each value is in [0, 1].
    pub fn from_f32(weak: &[f32], strong: &[f32]) -> Result<Features> {
        if weak.len() != strong.len() {
            return Err(BotsError::LengthMismatch {
                what: "strong feature column (one value per task)".into(),
                expected: weak.len(),
                got: strong.len(),
            });
        }
        for (name, col) in [("weak", weak), ("strong", strong)] {
            if let Some((task, &value)) = col.iter().enumerate().find(|(_, v)| !(0.0..=1.0).contains(*v)) {
                return Err(BotsError::InvalidFeature { task, name: name.into(), value });
            }
        }
        Ok(Features {
            weak: weak.iter().map(|&v| f16::from_f32(v)).collect(),
            strong: strong.iter().map(|&v| f16::from_f32(v)).collect(),
        })
    }

    /// `(f_w, f_s)` of task `k` as f32.
    #[inline(always)]
    pub fn get(&self, k: usize) -> (f32, f32) {
        (self.weak[k].to_f32(), self.strong[k].to_f32())
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.weak.len()
    }

    /// True when there are no tasks.
    pub fn is_empty(&self) -> bool {
        self.weak.is_empty()
    }
}

/// Global scalars of the posterior.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Globals {
    /// Capability estimate; `None` before the first update.
    pub mu: Option<f32>,
    /// Current implicit-evidence weight (halved by adaptive rho).
    pub rho: f32,
    /// Number of updates applied so far; selection at step t uses Philox key (seed, t).
    pub step: u64,
}

/// The whole posterior of a pool, on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolState {
    /// Beta alpha per task.
    pub alpha: Vec<f32>,
    /// Beta beta per task.
    pub beta: Vec<f32>,
    /// The prior forgetting pulls toward.
    pub prior: Prior,
    /// Reference features, if the pool has them (required when rho > 0).
    pub features: Option<Features>,
    /// mu, rho, step.
    pub globals: Globals,
}

impl PoolState {
    /// A fresh pool of `n` tasks: every task starts at its prior. With `config.prior_strength = Some(c)`
    /// the prior is per task, `1 + c·f_s`, `1 + c·(1 - f_s)`, from the strong feature.
    ///
    /// ```
    /// let state = bots::PoolState::new(&bots::Config { rho: 0.0, ..Default::default() }, 5, None).unwrap();
    /// assert_eq!(state.alpha, vec![1.0; 5]);
    /// ```
    pub fn new(config: &Config, n: usize, features: Option<Features>) -> Result<PoolState> {
        config.validate()?;
        if n == 0 {
            return Err(BotsError::Empty("the task pool"));
        }
        if n > u32::MAX as usize {
            return Err(BotsError::Config {
                key: "tasks".into(),
                reason: format!("{n} tasks exceed the 2^32 - 1 that u32 task ids can name"),
            });
        }
        if let Some(f) = &features {
            if f.len() != n {
                return Err(BotsError::LengthMismatch { what: "feature rows".into(), expected: n, got: f.len() });
            }
        } else if config.rho > 0.0 {
            return Err(BotsError::MissingFeatures { rho: config.rho });
        }
        let prior = match (config.prior_strength, &features) {
            (Some(c), Some(f)) => {
                let (a0, b0): (Vec<f32>, Vec<f32>) = (0..n)
                    .map(|k| {
                        let fs = f.get(k).1;
                        (1.0 + c * fs, 1.0 + c * (1.0 - fs))
                    })
                    .unzip();
                Prior::PerTask { alpha0: a0, beta0: b0 }
            }
            (Some(_), None) => {
                return Err(BotsError::config("prior_strength", "per-task priors need reference features"))
            }
            (None, _) => Prior::Constant { alpha0: config.prior_alpha, beta0: config.prior_beta },
        };
        let (alpha, beta) = match &prior {
            Prior::Constant { alpha0, beta0 } => (vec![*alpha0; n], vec![*beta0; n]),
            Prior::PerTask { alpha0, beta0 } => (alpha0.clone(), beta0.clone()),
        };
        Ok(PoolState { alpha, beta, prior, features, globals: Globals { mu: None, rho: config.rho, step: 0 } })
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.alpha.len()
    }

    /// True when the pool has no tasks (never, for a state built by [`PoolState::new`]).
    pub fn is_empty(&self) -> bool {
        self.alpha.is_empty()
    }

    /// Checks internal consistency (lengths, positive finite parameters); used on restore.
    pub fn validate(&self) -> Result<()> {
        let n = self.len();
        if n == 0 {
            return Err(BotsError::Empty("the task pool"));
        }
        let check_len = |what: &str, got: usize| {
            if got != n {
                Err(BotsError::LengthMismatch { what: what.into(), expected: n, got })
            } else {
                Ok(())
            }
        };
        check_len("beta", self.beta.len())?;
        if let Prior::PerTask { alpha0, beta0 } = &self.prior {
            check_len("alpha0", alpha0.len())?;
            check_len("beta0", beta0.len())?;
        }
        if let Some(f) = &self.features {
            check_len("weak feature", f.weak.len())?;
            check_len("strong feature", f.strong.len())?;
        }
        for k in 0..n {
            let (a0, b0) = self.prior.get(k);
            if !(a0.is_finite() && a0 > 0.0 && b0.is_finite() && b0 > 0.0) {
                return Err(BotsError::InvalidPrior { task: k, alpha0: a0, beta0: b0 });
            }
            let (a, b) = (self.alpha[k], self.beta[k]);
            if !(a.is_finite() && a > 0.0 && b.is_finite() && b > 0.0) {
                return Err(BotsError::InvalidPrior { task: k, alpha0: a, beta0: b });
            }
        }
        Ok(())
    }
}
