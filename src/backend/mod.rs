//! The backend trait: what the CPU reference and the CUDA backend both do.

pub(crate) mod cpu;
pub(crate) mod cuda;
mod driver;

use std::path::Path;

use crate::checkpoint;
use crate::config::Config;
use crate::error::Result;
use crate::evidence::Evidence;
use crate::fingerprint::Fingerprint;
use crate::pool::PoolState;

pub use cpu::CpuPool;
pub use driver::{cuda_usable, driver_present};

/// What an update reports back (the batch statistics of §3).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpdateReport {
    /// Step counter after the update.
    pub step: u64,
    /// mu after the update (`None` for a pool without features).
    pub mu: Option<f32>,
    /// rho after the update.
    pub rho: f32,
    /// Mean |p_tilde - r| over the batch before the overwrite (`None` without features).
    pub miss: Option<f32>,
}

/// A pool of tasks with its BOTS posterior, on some device.
///
/// One step of a training loop is `select` (which tasks to train on at the current step) then
/// `update` (what the rollouts showed), which advances the step. Selection at step t draws from
/// Philox keyed by (seed, t), so it is the same on every backend and on every re-run.
pub trait Backend {
    /// `"cpu"` or `"cuda:<device name>"`.
    fn name(&self) -> String;
    /// The hyper-parameters.
    fn config(&self) -> &Config;
    /// Which pool this is: its task count, features and posterior-shaping config ([`Fingerprint`]).
    /// A checkpoint is restored only into the pool whose fingerprint it has.
    fn fingerprint(&self) -> Fingerprint;
    /// Number of tasks in the pool.
    fn len(&self) -> usize;
    /// True for an empty pool (never, for a constructed pool).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Updates applied so far.
    fn step(&self) -> u64;
    /// The `k` tasks to train on at the current step, best first. Does not advance the step: calling
    /// it twice gives the same tasks.
    fn select(&mut self, k: usize) -> Result<Vec<u32>>;
    /// Applies one batch of evidence (explicit for its tasks, implicit for all others) and advances the
    /// step. On error the state is unchanged.
    fn update(&mut self, evidence: &Evidence) -> Result<UpdateReport>;
    /// A host copy of the whole state, brought up to date.
    fn to_host(&self) -> Result<PoolState>;
    /// Replaces the whole state (e.g. from a checkpoint). The state must fit the pool's config.
    fn restore(&mut self, state: PoolState) -> Result<()>;
    /// Adds `new.count` tasks to the live pool (ids `len()..len() + count`), each with an informed
    /// start from its neighbours or references ([`PoolState::append`]); old tasks, their ids and the
    /// step are unchanged, and the pool's [`Fingerprint`] becomes the grown pool's. On the CUDA backend
    /// the pool's buffers are reallocated (device pointers taken before, and graphs captured over them,
    /// are invalid after). On error nothing changes.
    fn append(&mut self, new: &crate::pool::NewTasks) -> Result<std::ops::Range<u32>>;
    /// `select(config.batch)`.
    fn select_batch(&mut self) -> Result<Vec<u32>> {
        let k = self.config().batch;
        self.select(k)
    }
    /// Saves the whole state (brought up to date with `to_host`) and the config to a checkpoint file
    /// ([`crate::checkpoint`]'s format, written atomically).
    ///
    /// ```
    /// use bots::{Backend, Config, CpuPool};
    /// let dir = tempfile::tempdir().unwrap();
    /// let pool = CpuPool::new(Config { rho: 0.0, ..Default::default() }, 100, None)?;
    /// pool.save_checkpoint(&dir.path().join("pool.ckpt"))?;
    /// # Ok::<(), bots::BotsError>(())
    /// ```
    fn save_checkpoint(&self, path: &Path) -> Result<()> {
        checkpoint::save(path, self.config(), &self.to_host()?)
    }
    /// Restores a checkpoint into this pool (any backend) through [`Backend::restore`], only if it is
    /// a checkpoint of this pool: its [`Fingerprint`] (task count, features, feature form and the
    /// config keys that shape the posterior) must equal the pool's. Otherwise it is a
    /// [`crate::BotsError::Checkpoint`] saying what differs, and the pool is unchanged. The pool keeps its
    /// own config (selection keys such as `batch` may differ); the checkpoint's is returned so the
    /// caller can compare (resuming exactly needs the same `seed`).
    ///
    /// ```
    /// use bots::{Backend, Config, CpuPool};
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("pool.ckpt");
    /// CpuPool::new(Config { rho: 0.0, ..Default::default() }, 100, None)?.save_checkpoint(&path)?;
    /// let mut other = CpuPool::new(Config { rho: 0.0, lambda: 0.2, ..Default::default() }, 100, None)?;
    /// let err = other.restore_checkpoint(&path).unwrap_err().to_string();
    /// assert!(err.contains("belongs to another pool: it has lambda = 0.1, this pool has lambda = 0.2"), "{err}");
    /// # Ok::<(), bots::BotsError>(())
    /// ```
    fn restore_checkpoint(&mut self, path: &Path) -> Result<Config> {
        let header = checkpoint::read_header(path)?;
        if header.n != self.len() as u64 {
            let why = format!("belongs to another pool: it has {} tasks, this pool has {}", header.n, self.len());
            return Err(checkpoint::ckpt_err(path, why));
        }
        let (config, state) = checkpoint::load(path)?;
        let theirs = Fingerprint::of_state(&config, &state);
        let mine = self.fingerprint();
        if let Some(diff) = theirs.difference(&mine) {
            let diff = diff.replacen(", the other has", ", this pool has", 1);
            let why = format!("belongs to another pool: it has {diff} (fingerprints {theirs} and {mine})");
            return Err(checkpoint::ckpt_err(path, why));
        }
        self.restore(state)?;
        Ok(config)
    }
}

/// Opens a pool on backend `kind` from a checkpoint, with the config it was saved with.
pub fn open_checkpoint(kind: BackendKind, path: &Path) -> Result<Box<dyn Backend + Send>> {
    let (config, state) = checkpoint::load(path)?;
    match kind {
        BackendKind::Cpu => Ok(Box::new(CpuPool::from_state(config, state)?)),
        _ => {
            let mut b = open_with(kind, config, state.len(), state.features.clone(), state.neighbours.clone())?;
            b.restore(state)?;
            Ok(b)
        }
    }
}

/// Which backend to run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// The CPU reference ([`CpuPool`]).
    Cpu,
    /// The CUDA backend, on device `ordinal`.
    Cuda { ordinal: usize },
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "cpu" => Ok(BackendKind::Cpu),
            "cuda" => Ok(BackendKind::Cuda { ordinal: 0 }),
            _ => match s.strip_prefix("cuda:").map(str::parse) {
                Some(Ok(ordinal)) => Ok(BackendKind::Cuda { ordinal }),
                _ => Err(format!("unknown backend `{s}`: use cpu, cuda or cuda:N")),
            },
        }
    }
}

/// Opens a pool of `n` tasks on the chosen backend (either can move to another thread).
pub fn open(
    kind: BackendKind,
    config: Config,
    n: usize,
    features: Option<crate::pool::Features>,
) -> Result<Box<dyn Backend + Send>> {
    match kind {
        BackendKind::Cpu => Ok(Box::new(CpuPool::new(config, n, features)?)),
        BackendKind::Cuda { ordinal } => Ok(Box::new(cuda::CudaPool::on_device(ordinal, config, n, features)?)),
    }
}

/// Opens a pool of `n` tasks on the chosen backend with optional reference features and an optional
/// neighbour graph (required when `config.neighbour_weight` > 0; docs/EVIDENCE-SOURCES.md §2).
pub fn open_with(
    kind: BackendKind,
    config: Config,
    n: usize,
    features: Option<crate::pool::Features>,
    neighbours: Option<crate::neighbours::Neighbours>,
) -> Result<Box<dyn Backend + Send>> {
    match kind {
        BackendKind::Cpu => Ok(Box::new(CpuPool::with_neighbours(config, n, features, neighbours)?)),
        BackendKind::Cuda { ordinal } => {
            Ok(Box::new(cuda::CudaPool::on_device_with(ordinal, config, n, features, neighbours)?))
        }
    }
}
