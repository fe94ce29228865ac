//! The CPU reference backend: the readable twin of the kernels, parallel over cores with rayon.
//!
//! Like the GPU, it defers the pool-wide part of an update into the next selection pass
//! ([`crate::select::update_sample_score`]), so a step is one pass over the pool: `update` touches only the batch.
//! That pass ([`crate::select::select_fused`]) computes keys in SIMD lanes (`select::lanes`, AVX-512 or AVX2 picked
//! at run time), bit for bit the keys [`crate::select::update_sample_score`] gives task by task.

use crate::backend::{Backend, UpdateReport};
use crate::config::Config;
use crate::error::{BotsError, Result};
use crate::evidence::{batch_evidence, Evidence};
use crate::fingerprint::Fingerprint;
use crate::neighbours::Neighbours;
use crate::pool::{Features, PoolState};
use crate::select::select_fused;
use crate::update::{apply_neighbours, apply_pending, scatter_batch, PendingScalars};

/// A pool on the host.
///
/// ```
/// use bots::{Backend, Config, CpuPool, Evidence};
/// let cfg = Config { rho: 0.0, batch: 2, ..Default::default() };
/// let mut pool = CpuPool::new(cfg, 10, None).unwrap();
/// let tasks = pool.select_batch().unwrap();
/// pool.update(&Evidence::pass_rates(tasks, vec![0.5, 1.0])).unwrap();
/// assert_eq!(pool.step(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct CpuPool {
    config: Config,
    state: PoolState,
    /// The pool-wide part of the last update, not yet applied (batch tasks are marked by a negative
    /// alpha until it is).
    pending: Option<PendingScalars>,
}

impl CpuPool {
    /// A fresh pool of `n` tasks, optionally with reference features (required when rho > 0).
    pub fn new(config: Config, n: usize, features: Option<Features>) -> Result<CpuPool> {
        CpuPool::with_neighbours(config, n, features, None)
    }

    /// A fresh pool of `n` tasks with optional reference features and an optional neighbour graph
    /// (required when `neighbour_weight` > 0; docs/EVIDENCE-SOURCES.md §2).
    ///
    /// ```
    /// use bots::{Backend, Config, CpuPool, Evidence, Neighbours};
    /// // Tasks 0 and 1 are each other's neighbour; task 2 has none.
    /// let g = Neighbours::from_lists(3, 1, vec![1, 0, u32::MAX], vec![0.9, 0.9, 0.0])?;
    /// let cfg = Config { rho: 0.0, neighbour_weight: 0.5, m: 8, ..Default::default() };
    /// let mut pool = CpuPool::with_neighbours(cfg, 3, None, Some(g))?;
    /// pool.update(&Evidence::pass_rates(vec![0], vec![1.0]))?;
    /// let s = pool.to_host()?;
    /// // Task 1 got 0.5 · 0.9 · 8 successes of evidence from task 0 (after forgetting: 1 + 3.6).
    /// assert!((s.alpha[1] - 4.6).abs() < 1e-5 && (s.beta[1] - 1.0).abs() < 1e-6);
    /// # Ok::<(), bots::BotsError>(())
    /// ```
    pub fn with_neighbours(
        config: Config,
        n: usize,
        features: Option<Features>,
        neighbours: Option<Neighbours>,
    ) -> Result<CpuPool> {
        let state = PoolState::with_neighbours(&config, n, features, neighbours)?;
        Ok(CpuPool { config, state, pending: None })
    }

    /// A pool resuming from a saved state.
    pub fn from_state(config: Config, state: PoolState) -> Result<CpuPool> {
        config.validate()?;
        state.check_fits(&config)?;
        Ok(CpuPool { config, state, pending: None })
    }

    fn flush(&mut self) {
        if let Some(p) = self.pending.take() {
            apply_pending(&mut self.state, &self.config, &p);
        }
    }
}

impl Backend for CpuPool {
    fn name(&self) -> String {
        "cpu".into()
    }

    fn config(&self) -> &Config {
        &self.config
    }

    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_state(&self.config, &self.state)
    }

    fn len(&self) -> usize {
        self.state.len()
    }

    fn step(&self) -> u64 {
        self.state.globals.step
    }

    fn select(&mut self, k: usize) -> Result<Vec<u32>> {
        let n = self.len();
        if k == 0 || k > n {
            return Err(BotsError::InvalidK { k, len: n });
        }
        let step = self.state.globals.step;
        // The fused pass (bring every task up to date if an update is pending, score it, keep the top k),
        // in one sweep, computed in SIMD lanes (`select::lanes`); the same keys as
        // `update_sample_score` task by task.
        let pending = self.pending.take();
        let PoolState { alpha, beta, prior, features, .. } = &mut self.state;
        Ok(select_fused(&self.config, alpha, beta, prior, features.as_ref(), pending.as_ref(), step, k))
    }

    fn update(&mut self, evidence: &Evidence) -> Result<UpdateReport> {
        // Validate and reduce first: nothing is written until the batch is known good.
        let pending = batch_evidence(&self.state, &self.config, evidence)?;
        self.flush();
        scatter_batch(&mut self.state, &self.config, &pending);
        apply_neighbours(&mut self.state, &self.config, &pending);
        let g = &mut self.state.globals;
        g.mu = pending.mu;
        g.rho = pending.rho;
        g.step += 1;
        self.pending = Some(PendingScalars::from(&pending));
        Ok(UpdateReport { step: g.step, mu: pending.mu, rho: pending.rho, miss: pending.miss })
    }

    fn to_host(&self) -> Result<PoolState> {
        let mut state = self.state.clone();
        if let Some(p) = &self.pending {
            apply_pending(&mut state, &self.config, p);
        }
        Ok(state)
    }

    fn append(&mut self, new: &crate::pool::NewTasks) -> Result<std::ops::Range<u32>> {
        // Bringing the state up to date changes no value a reader sees; `append` then grows it only
        // when everything checks out.
        self.flush();
        self.state.append(&self.config, new)
    }

    fn restore(&mut self, state: PoolState) -> Result<()> {
        if state.len() != self.len() {
            return Err(BotsError::LengthMismatch {
                what: "restored state (tasks)".into(),
                expected: self.len(),
                got: state.len(),
            });
        }
        state.check_fits(&self.config)?;
        self.state = state;
        self.pending = None;
        Ok(())
    }
}
