//! Pool state: the Beta posterior of every task, its prior, the reference features, and the global
//! capability estimate mu, rho and step counter. This is the host form of what a backend holds; the
//! CUDA backend keeps the same arrays in device memory.

use half::f16;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{BotsError, Result};
use crate::neighbours::Neighbours;

mod append;
pub use append::NewTasks;

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

/// How a pool stores its reference features: 2 bytes per value where every value round-trips exactly
/// through IEEE binary16, 4 otherwise. Both forms read back as the same f32 values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatureForm {
    /// IEEE binary16 (`half::f16`): exact for every value of the pool (e.g. pass rates of m rollouts
    /// when m is a power of two <= 2048, and 0 and 1), 4 bytes per task for the two columns.
    F16,
    /// f32: any pass rate (k/10, k/3, ...) exactly as given in f32, 8 bytes per task.
    F32,
}

impl FeatureForm {
    /// Bytes per task of the two feature columns.
    pub const fn bytes_per_task(self) -> usize {
        match self {
            FeatureForm::F16 => 4,
            FeatureForm::F32 => 8,
        }
    }
}

/// Most feature columns (reference models) a pool may have.
pub const MAX_FEATURE_COLUMNS: usize = crate::abi::MAX_FEATURE_COLUMNS as usize;

/// Reference-model pass rates per task, the inputs of implicit evidence: K >= 1 columns `f_0, ...,
/// f_{K-1}`, ordered from the weakest reference to the strongest (two, weak `f_w` and strong `f_s`, in
/// the BOTS paper and Trinity-RFT; `docs/EVIDENCE-SOURCES.md` for K != 2). Stored in the compact
/// [`FeatureForm::F16`] when every value of every column is exactly an f16 (k/2^j pass rates, 0, 1),
/// in f32 otherwise (k/10, k/3, ... are not f16 values and would be rounded by up to 2^-11 relative
/// there). Either way [`Features::value`] returns the f32 value given.
#[derive(Clone, Debug, PartialEq)]
pub enum Features {
    /// The columns as f16 bits; build with [`Features::from_columns`], [`Features::from_f32`] or
    /// [`Features::from_f16`].
    F16 { columns: Vec<Vec<f16>> },
    /// The columns as f32; build with [`Features::from_columns`], [`Features::from_f32`] or
    /// [`Features::f32_form`].
    F32 { columns: Vec<Vec<f32>> },
}

impl Features {
    /// Features from two f32 columns (the weaker and the stronger reference), checking lengths and
    /// that each value is in [0, 1]; stored as f16 when every value round-trips exactly through f16,
    /// as f32 otherwise. `from_columns(&[weak, strong])`.
    ///
    /// ```
    /// use bots::{FeatureForm, Features};
    /// let sixteenths = Features::from_f32(&[0.0, 0.25, 0.0625], &[1.0, 0.5, 0.9375]).unwrap();
    /// assert_eq!(sixteenths.form(), FeatureForm::F16);
    /// let tenths = Features::from_f32(&[0.0, 0.1, 0.7], &[1.0, 0.5, 0.8]).unwrap();
    /// assert_eq!(tenths.form(), FeatureForm::F32);
    /// assert_eq!(tenths.get(1), (0.1, 0.5));
    /// ```
    pub fn from_f32(weak: &[f32], strong: &[f32]) -> Result<Features> {
        Features::from_columns(&[weak, strong])
    }

    /// Features from K >= 1 f32 columns, weakest reference first, one value per task each, every
    /// value in [0, 1]; stored as f16 when every value round-trips exactly through f16, as f32
    /// otherwise.
    ///
    /// ```
    /// use bots::Features;
    /// let f = Features::from_columns(&[&[0.1, 0.2], &[0.3, 0.4], &[0.5, 0.9]]).unwrap();
    /// assert_eq!((f.n_columns(), f.len(), f.value(1, 1)), (3, 2, 0.4));
    /// assert_eq!(f.get(1), (0.2, 0.9)); // weakest and strongest
    /// ```
    pub fn from_columns(columns: &[&[f32]]) -> Result<Features> {
        let exact = |col: &[f32]| col.iter().all(|&v| f16::from_f32(v).to_f32().to_bits() == v.to_bits());
        let f = if columns.iter().all(|c| exact(c)) {
            Features::F16 { columns: columns.iter().map(|c| c.iter().map(|&v| f16::from_f32(v)).collect()).collect() }
        } else {
            Features::F32 { columns: columns.iter().map(|c| c.to_vec()).collect() }
        };
        f.validate()?;
        Ok(f)
    }

    /// Two f32 columns whatever the values (checked like [`Features::from_f32`]).
    pub fn f32_form(weak: Vec<f32>, strong: Vec<f32>) -> Result<Features> {
        let f = Features::F32 { columns: vec![weak, strong] };
        f.validate()?;
        Ok(f)
    }

    /// Two f16 columns (checked like [`Features::from_f32`]).
    pub fn from_f16(weak: Vec<f16>, strong: Vec<f16>) -> Result<Features> {
        let f = Features::F16 { columns: vec![weak, strong] };
        f.validate()?;
        Ok(f)
    }

    /// Which form the columns are stored in.
    pub fn form(&self) -> FeatureForm {
        match self {
            Features::F16 { .. } => FeatureForm::F16,
            Features::F32 { .. } => FeatureForm::F32,
        }
    }

    /// K, the number of columns (reference models).
    pub fn n_columns(&self) -> usize {
        match self {
            Features::F16 { columns } => columns.len(),
            Features::F32 { columns } => columns.len(),
        }
    }

    /// Bytes per task of all the columns.
    pub(crate) fn bytes_per_task(&self) -> usize {
        self.n_columns() * self.form().bytes_per_task() / 2
    }

    /// The value of `column` for task `k`, as f32.
    #[inline(always)]
    pub fn value(&self, column: usize, k: usize) -> f32 {
        match self {
            Features::F16 { columns } => columns[column][k].to_f32(),
            Features::F32 { columns } => columns[column][k],
        }
    }

    /// `(f_0, f_{K-1})` of task `k` as f32: the weakest and the strongest reference (`(f_w, f_s)` for
    /// K = 2; the one column twice for K = 1).
    #[inline(always)]
    pub fn get(&self, k: usize) -> (f32, f32) {
        (self.value(0, k), self.value(self.n_columns() - 1, k))
    }

    /// The two values of task `k` that the interpolation segment `seg` reads: `(f_lo, f_hi)`, with
    /// `f_lo = 0` for the virtual null model below a single column.
    #[inline(always)]
    pub(crate) fn pair(&self, seg: &crate::evidence::Segment, k: usize) -> (f32, f32) {
        (seg.lo.map_or(0.0, |j| self.value(j, k)), self.value(seg.hi, k))
    }

    /// Number of tasks (of the first column; [`Features::validate`] checks the others match).
    pub fn len(&self) -> usize {
        self.column_len(0)
    }

    /// True when there are no tasks.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn column_len(&self, c: usize) -> usize {
        match self {
            Features::F16 { columns } => columns.get(c).map_or(0, Vec::len),
            Features::F32 { columns } => columns.get(c).map_or(0, Vec::len),
        }
    }

    /// The name of column `c` in errors: "weak" and "strong" for two columns, else "column c".
    fn column_name(&self, c: usize) -> String {
        match (self.n_columns(), c) {
            (2, 0) => "weak".into(),
            (2, 1) => "strong".into(),
            _ => format!("column {c}"),
        }
    }

    /// Checks that there are 1 to 64 (`MAX_FEATURE_COLUMNS`) columns, each with one value per task, and
    /// every value is in [0, 1] (NaN is not).
    pub fn validate(&self) -> Result<()> {
        let k = self.n_columns();
        if k == 0 || k > MAX_FEATURE_COLUMNS {
            return Err(BotsError::LengthMismatch {
                what: format!("feature columns (1 to {MAX_FEATURE_COLUMNS})"),
                expected: k.clamp(1, MAX_FEATURE_COLUMNS),
                got: k,
            });
        }
        for c in 1..k {
            if self.column_len(c) != self.len() {
                return Err(BotsError::LengthMismatch {
                    what: format!("{} feature column (one value per task)", self.column_name(c)),
                    expected: self.len(),
                    got: self.column_len(c),
                });
            }
        }
        for c in 0..k {
            if let Some((task, value)) =
                (0..self.len()).map(|t| (t, self.value(c, t))).find(|(_, v)| !(0.0..=1.0).contains(v))
            {
                return Err(BotsError::InvalidFeature { task, name: self.column_name(c), value });
            }
        }
        Ok(())
    }
}

/// The features must have as many columns as the config names (`feature_keys`), so that a pool's
/// config (and a checkpoint's) says what each column is.
fn check_columns(config: &Config, f: &Features) -> Result<()> {
    if f.n_columns() != config.feature_keys.len() {
        return Err(BotsError::LengthMismatch {
            what: format!("feature columns (one per feature_keys entry: {:?})", config.feature_keys),
            expected: config.feature_keys.len(),
            got: f.n_columns(),
        });
    }
    Ok(())
}

/// A pool has a neighbour graph exactly when `neighbour_weight` > 0, with one row per task.
pub(crate) fn check_graph(config: &Config, n: usize, g: Option<&Neighbours>) -> Result<()> {
    match g {
        None if config.neighbour_weight > 0.0 => Err(BotsError::config(
            "neighbour_weight",
            format!(
                "{} needs a neighbour graph (bots::Neighbours, from embeddings or lists); give one or set it to 0",
                config.neighbour_weight
            ),
        )),
        Some(_) if config.neighbour_weight == 0.0 => Err(BotsError::config(
            "neighbour_weight",
            "is 0, so the neighbour graph would be unused: set neighbour_weight > 0 or leave the graph out",
        )),
        Some(g) if g.len() != n => Err(BotsError::LengthMismatch {
            what: "neighbour graph rows (one per task)".into(),
            expected: n,
            got: g.len(),
        }),
        _ => Ok(()),
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
    /// The neighbour graph, if the pool has one (required when `neighbour_weight` > 0).
    pub neighbours: Option<Neighbours>,
    /// mu, rho, step.
    pub globals: Globals,
}

impl PoolState {
    /// A fresh pool of `n` tasks: every task starts at its prior. With `config.prior_strength = Some(c)`
    /// the prior is per task, `1 + c·f_s`, `1 + c·(1 - f_s)`, from the strongest feature column.
    /// The features must have one column per `config.feature_keys` entry.
    ///
    /// ```
    /// let state = bots::PoolState::new(&bots::Config { rho: 0.0, ..Default::default() }, 5, None).unwrap();
    /// assert_eq!(state.alpha, vec![1.0; 5]);
    /// ```
    pub fn new(config: &Config, n: usize, features: Option<Features>) -> Result<PoolState> {
        PoolState::with_neighbours(config, n, features, None)
    }

    /// A fresh pool of `n` tasks with reference features and a neighbour graph, either optional:
    /// features are required when rho > 0, a graph exactly when `neighbour_weight` > 0.
    pub fn with_neighbours(
        config: &Config,
        n: usize,
        features: Option<Features>,
        neighbours: Option<Neighbours>,
    ) -> Result<PoolState> {
        config.validate()?;
        check_graph(config, n, neighbours.as_ref())?;
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
            f.validate()?;
            check_columns(config, f)?;
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
        let globals = Globals { mu: None, rho: config.rho, step: 0 };
        Ok(PoolState { alpha, beta, prior, features, neighbours, globals })
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.alpha.len()
    }

    /// True when the pool has no tasks (never, for a state built by [`PoolState::new`]).
    pub fn is_empty(&self) -> bool {
        self.alpha.is_empty()
    }

    /// A restored state must be internally consistent and usable with the config.
    pub(crate) fn check_fits(&self, config: &Config) -> Result<()> {
        let state = self;
        state.validate()?;
        if state.features.is_none() && state.globals.rho > 0.0 {
            return Err(BotsError::MissingFeatures { rho: state.globals.rho });
        }
        if !(0.0..=1.0).contains(&state.globals.rho) {
            return Err(BotsError::config("rho", format!("restored rho {} is outside [0, 1]", state.globals.rho)));
        }
        if let Some(mu) = state.globals.mu {
            if !mu.is_finite() {
                return Err(BotsError::config("mu", format!("restored mu {mu} is not finite")));
            }
        }
        if let Some(f) = &state.features {
            f.validate()?;
            check_columns(config, f)?;
        }
        check_graph(config, state.len(), state.neighbours.as_ref())
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
            for c in 0..f.n_columns() {
                check_len(&format!("{} feature", f.column_name(c)), f.column_len(c))?;
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Backend, CpuPool, Evidence};

    fn column(n: usize, den: u32, shift: usize) -> Vec<f32> {
        (0..n).map(|k| ((k * 7 + shift) % (den as usize + 1)) as f32 / den as f32).collect()
    }

    #[test]
    fn f16_for_power_of_two_grids_f32_otherwise() {
        for den in [1, 2, 8, 16, 64, 1024, 2048] {
            let f = Features::from_f32(&column(100, den, 0), &column(100, den, 3)).unwrap();
            assert_eq!(f.form(), FeatureForm::F16, "k/{den}");
        }
        for den in [3, 5, 10, 12, 100] {
            let f = Features::from_f32(&column(100, den, 0), &column(100, den, 3)).unwrap();
            assert_eq!(f.form(), FeatureForm::F32, "k/{den}");
        }
        // One non-f16 value in either column is enough; values read back as given in both forms.
        let mut strong = column(50, 16, 1);
        strong[49] = 0.1;
        let f = Features::from_f32(&column(50, 16, 0), &strong).unwrap();
        assert_eq!(f.form(), FeatureForm::F32);
        assert_eq!(f.get(49).1.to_bits(), 0.1f32.to_bits());
        let tenths = column(11, 10, 0);
        let f = Features::from_f32(&tenths, &tenths).unwrap();
        assert!((0..11).all(|k| f.get(k) == (tenths[k], tenths[k])), "f32 features are exact");
        // 2^-25 is below f16's smallest subnormal: f32.
        assert_eq!(Features::from_f32(&[2f32.powi(-25)], &[1.0]).unwrap().form(), FeatureForm::F32);
        assert_eq!(Features::from_f32(&[2f32.powi(-24)], &[1.0]).unwrap().form(), FeatureForm::F16);
        assert_eq!((FeatureForm::F16.bytes_per_task(), FeatureForm::F32.bytes_per_task()), (4, 8));
    }

    #[test]
    fn invalid_features_are_refused_in_either_form() {
        assert!(matches!(Features::from_f32(&[0.1, 1.5], &[0.2, 0.3]), Err(BotsError::InvalidFeature { task: 1, .. })));
        assert!(matches!(Features::from_f32(&[0.5], &[f32::NAN]), Err(BotsError::InvalidFeature { task: 0, .. })));
        assert!(matches!(Features::from_f32(&[0.5, 0.5], &[0.5]), Err(BotsError::LengthMismatch { .. })));
        assert!(matches!(
            Features::f32_form(vec![0.5, -0.1], vec![0.5, 0.5]),
            Err(BotsError::InvalidFeature { task: 1, .. })
        ));
        let h = |v: f32| f16::from_f32(v);
        assert!(matches!(
            Features::from_f16(vec![h(0.5)], vec![h(2.0)]),
            Err(BotsError::InvalidFeature { task: 0, .. })
        ));
    }

    /// The same dyadic values stored as f16 or as f32 give the same selections and bit-identical
    /// states (pass-rate and count evidence, adaptive rho, per-task priors, Gumbel noise).
    #[test]
    fn both_forms_select_and_update_identically() {
        let n = 2000;
        let (w, s) = (column(n, 16, 0), column(n, 16, 5));
        let (w, s): (Vec<f32>, Vec<f32>) = w.iter().zip(&s).map(|(&a, &b)| (a.min(b), a.max(b))).unzip();
        let half = Features::from_f32(&w, &s).unwrap();
        let full = Features::f32_form(w.clone(), s.clone()).unwrap();
        assert_eq!((half.form(), full.form()), (FeatureForm::F16, FeatureForm::F32));
        for cfg in [
            Config { batch: 16, ..Default::default() },
            Config {
                batch: 8,
                rho: 0.6,
                adaptive_rho: true,
                prior_strength: Some(3.0),
                tau: 0.2,
                ..Default::default()
            },
        ] {
            let mut a = CpuPool::new(cfg.clone(), n, Some(half.clone())).unwrap();
            let mut b = CpuPool::new(cfg.clone(), n, Some(full.clone())).unwrap();
            for step in 0..30u32 {
                let (ta, tb) = (a.select_batch().unwrap(), b.select_batch().unwrap());
                assert_eq!(ta, tb, "step {step}");
                let ev = if step % 2 == 0 {
                    Evidence::pass_rates(ta.clone(), ta.iter().map(|&t| ((t + step) % 17) as f32 / 16.0).collect())
                } else {
                    Evidence::counts(
                        ta.clone(),
                        ta.iter().map(|&t| (t % 5) as f32).collect(),
                        ta.iter().map(|&t| (t % 3) as f32 + 1.0).collect(),
                    )
                };
                assert_eq!(a.update(&ev).unwrap(), b.update(&ev).unwrap(), "step {step}");
            }
            let (sa, sb) = (a.to_host().unwrap(), b.to_host().unwrap());
            assert!(sa.alpha.iter().zip(&sb.alpha).all(|(x, y)| x.to_bits() == y.to_bits()), "alpha");
            assert!(sa.beta.iter().zip(&sb.beta).all(|(x, y)| x.to_bits() == y.to_bits()), "beta");
            assert_eq!((sa.globals, sa.prior), (sb.globals, sb.prior));
        }
    }
}
