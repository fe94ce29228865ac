//! The library's error type. Every fallible call returns [`BotsError`]; none of them leaves the pool
//! half-changed (inputs are validated before anything is written).

use std::path::PathBuf;

/// Everything that can go wrong in the library, each variant saying what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BotsError {
    /// A configuration value is out of its allowed range or unknown.
    #[error("invalid config `{key}`: {reason}")]
    Config { key: String, reason: String },

    /// A batch names a task id that is not in the pool.
    #[error("task id {task} (position {position} of the batch) is out of range: the pool has {len} tasks, ids 0..{len}")]
    TaskOutOfRange { task: u64, position: usize, len: usize },

    /// The same task appears twice in one batch.
    #[error("task {task} appears twice in one batch (positions {first} and {second}); report each task once per step")]
    DuplicateTask { task: u32, first: usize, second: usize },

    /// A pass rate is NaN or outside [0, 1].
    #[error("task {task}: pass rate {value} is not a number in [0, 1]")]
    InvalidPassRate { task: u32, value: f32 },

    /// Success/failure counts are negative, not finite, empty or larger than m.
    #[error("task {task}: counts successes={successes}, failures={failures} are invalid: {reason}")]
    InvalidCounts { task: u32, successes: f32, failures: f32, reason: String },

    /// Two parallel arrays have different lengths.
    #[error("{what}: expected {expected} values, got {got}")]
    LengthMismatch { what: String, expected: usize, got: usize },

    /// The batch size k is zero or larger than the pool.
    #[error("cannot select k = {k} tasks from a pool of {len}: k must be in 1..={len}")]
    InvalidK { k: usize, len: usize },

    /// An empty pool or an empty batch.
    #[error("{0} is empty")]
    Empty(&'static str),

    /// Implicit evidence (rho > 0) needs the two reference-model features.
    #[error("rho = {rho} needs reference features (weak and strong pass rates) for every task; load a pool with features or set rho = 0")]
    MissingFeatures { rho: f32 },

    /// A reference feature is NaN or outside [0, 1].
    #[error("task {task}: feature `{name}` = {value} is not a number in [0, 1]")]
    InvalidFeature { task: usize, name: String, value: f32 },

    /// A per-task prior is not positive and finite.
    #[error("task {task}: prior ({alpha0}, {beta0}) must be positive and finite")]
    InvalidPrior { task: usize, alpha0: f32, beta0: f32 },

    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, #[source] source: std::io::Error },

    /// A file could not be parsed; `line` is 1-based where it applies (0 = whole file).
    #[error("{}{}: {message}", path.display(), if *line > 0 { format!(":{line}") } else { String::new() })]
    Parse { path: PathBuf, line: usize, message: String },

    /// A checkpoint file is damaged, of another version, or does not fit the pool.
    #[error("checkpoint {}: {reason}", path.display())]
    Checkpoint { path: PathBuf, reason: String },

    /// The CUDA backend cannot run here (no driver, no GPU, or the crate was built without nvcc).
    #[error("CUDA backend unavailable: {0}")]
    CudaUnavailable(String),

    /// A CUDA call failed.
    #[error("CUDA error: {0}")]
    Cuda(String),

    /// A tensor handed to [`crate::candle`] has the wrong shape, dtype or device.
    #[error("tensor `{what}` {reason}")]
    Tensor { what: String, reason: String },

    /// A device-side check found bad input (flagged by a kernel, reported at the next synchronizing call).
    #[error("invalid input found on the device: {0}; the state was left unchanged")]
    DeviceInput(String),
}

/// Shorthand for `Result<T, BotsError>`.
pub type Result<T, E = BotsError> = std::result::Result<T, E>;

impl BotsError {
    pub(crate) fn config(key: impl Into<String>, reason: impl Into<String>) -> Self {
        BotsError::Config { key: key.into(), reason: reason.into() }
    }
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BotsError::Io { path: path.into(), source }
    }
    pub(crate) fn parse(path: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        BotsError::Parse { path: path.into(), line, message: message.into() }
    }
}
