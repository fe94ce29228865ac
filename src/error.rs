//! The library's error type. Every fallible call returns [`BotsError`]; none of them leaves the pool
//! half-changed (inputs are validated before anything is written).

use std::path::PathBuf;

use crate::abi::DeviceError;

/// Everything that can go wrong in the library, each variant saying what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BotsError {
    /// A configuration value is out of its allowed range or unknown.
    #[error("invalid config `{key}`: {reason}")]
    Config { key: String, reason: String },

    /// A batch names a task id that is not in the pool.
    #[error(
        "task id {task} (position {position} of the batch) is out of range: the pool has {len} tasks, ids 0..{len}"
    )]
    TaskOutOfRange { task: u64, position: usize, len: usize },

    /// The same task appears more than once in one batch, and no row has a range or outcome error; the
    /// smallest repeated id. (No positions: the device's check cannot tell deterministically which
    /// repeat it met first, and the message is the same on every path.)
    #[error("task {task} appears more than once in one batch; report each task once per step")]
    DuplicateTask { task: u32 },

    /// A pass rate is NaN or outside [0, 1].
    #[error("task {task}: pass rate {value} is not a number in [0, 1]")]
    InvalidPassRate { task: u32, value: f32 },

    /// Success/failure counts are negative, not finite, empty or larger than m.
    #[error("task {task}: counts successes={successes}, failures={failures} are invalid: {problem}")]
    InvalidCounts { task: u32, successes: f32, failures: f32, problem: CountsProblem },

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

    /// A neighbour graph (or the embeddings it is built from) is invalid for the pool.
    #[error("task {task}: invalid neighbours: {reason}")]
    InvalidNeighbours { task: usize, reason: String },

    /// A per-task prior is not positive and finite.
    #[error("task {task}: prior ({alpha0}, {beta0}) must be positive and finite")]
    InvalidPrior { task: usize, alpha0: f32, beta0: f32 },

    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

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

    /// A tensor handed to `bots::candle` (feature `candle`) has the wrong shape, dtype or device.
    #[error("tensor `{what}` {reason}")]
    Tensor { what: String, reason: String },

    /// A kernel found bad input in a batch that lives on the device (reported at the next synchronizing
    /// call); the cause is the variant the host validation gives for the same input
    /// ([`TaskOutOfRange`](Self::TaskOutOfRange), [`DuplicateTask`](Self::DuplicateTask),
    /// [`InvalidPassRate`](Self::InvalidPassRate) or [`InvalidCounts`](Self::InvalidCounts)), with the
    /// same message.
    #[error("{0} (found on the device by a kernel; the state was left unchanged)")]
    DeviceInput(Box<BotsError>),

    /// An error in one line of an input file (a replay log): `cause` is the variant the same input gives
    /// anywhere else, e.g. [`InvalidCounts`](Self::InvalidCounts), or the error of applying the line.
    #[error("{}:{line}: {cause}", path.display())]
    InFile { path: PathBuf, line: usize, cause: Box<BotsError> },
}

/// Why a task's success/failure counts are invalid ([`BotsError::InvalidCounts`]); the device reports
/// the same causes (`ERR_NOT_FINITE`, `ERR_NEGATIVE`, `ERR_EMPTY`, `ERR_TOO_MANY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CountsProblem {
    #[error("counts must be finite numbers")]
    NotFinite,
    #[error("counts must not be negative")]
    Negative,
    #[error("at least one rollout is needed (successes + failures > 0)")]
    NoRollouts,
    #[error("successes + failures exceeds m = {m} rollouts per task")]
    TooMany { m: u32 },
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

    /// The cause of a [`DeviceInput`](Self::DeviceInput) or [`InFile`](Self::InFile) error, else the
    /// error itself: what to `match` on to learn what was wrong with the input, whichever path found it.
    ///
    /// ```
    /// use bots::{Backend, BotsError, Config, CpuPool, Evidence};
    /// let mut pool = CpuPool::new(Config { rho: 0.0, ..Default::default() }, 10, None).unwrap();
    /// let err = pool.update(&Evidence::pass_rates(vec![12], vec![0.5])).unwrap_err();
    /// assert!(matches!(err.cause(), BotsError::TaskOutOfRange { task: 12, .. }));
    /// ```
    pub fn cause(&self) -> &BotsError {
        match self {
            BotsError::DeviceInput(c) | BotsError::InFile { cause: c, .. } => c.cause(),
            other => other,
        }
    }

    /// Decodes the device's error record (the fault `batch_validate` ranked first, by
    /// [`validate_batch`](crate::evidence::validate_batch)'s rule, in a batch of a pool of `n` tasks with
    /// `m` rollouts) into the host validation's variant, wrapped in
    /// [`DeviceInput`](Self::DeviceInput). `v0`, `v1`: the row's pass rate (and 0), or its success and
    /// failure counts. `None` for a code that is not an input error (see [`DeviceError::Internal`]).
    pub(crate) fn from_device_record(
        code: DeviceError,
        task: u32,
        pos: u32,
        v0: f32,
        v1: f32,
        n: usize,
        m: u32,
    ) -> Option<Self> {
        let counts = |problem| BotsError::InvalidCounts { task, successes: v0, failures: v1, problem };
        let cause = match code {
            DeviceError::OutOfRange => BotsError::TaskOutOfRange { task: task as u64, position: pos as usize, len: n },
            DeviceError::Duplicate => BotsError::DuplicateTask { task },
            DeviceError::PassRate => BotsError::InvalidPassRate { task, value: v0 },
            DeviceError::NotFinite => counts(CountsProblem::NotFinite),
            DeviceError::Negative => counts(CountsProblem::Negative),
            DeviceError::Empty => counts(CountsProblem::NoRollouts),
            DeviceError::TooMany => counts(CountsProblem::TooMany { m }),
            DeviceError::Internal => return None,
        };
        Some(BotsError::DeviceInput(Box::new(cause)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{validate_batch, Evidence};

    /// The device's error record decodes to the variant and message the host validation gives for the
    /// same batch (the record as `batch_validate` + `batch_finish` fill it: the first bad row's code,
    /// position, task and values). The real device path: `tests/gpu.rs` on the emulated driver.
    #[test]
    fn device_record_decodes_to_the_host_error() {
        let (n, m) = (10, 16);
        let counts = |t: Vec<u32>, s: Vec<f32>, f: Vec<f32>| Evidence::counts(t, s, f);
        let rates = |t: Vec<u32>, r: Vec<f32>| Evidence::pass_rates(t, r);
        let cases: Vec<(Evidence, DeviceError, u32)> = vec![
            (rates(vec![1, 10, 3], vec![0.5; 3]), DeviceError::OutOfRange, 1),
            (rates(vec![u32::MAX], vec![0.5]), DeviceError::OutOfRange, 0),
            (rates(vec![7, 8, 7], vec![0.5; 3]), DeviceError::Duplicate, 2),
            (rates(vec![7, 8, 7], vec![0.5; 3]), DeviceError::Duplicate, 0),
            (rates(vec![3, 4], vec![0.5, 1.5]), DeviceError::PassRate, 1),
            (rates(vec![3, 4], vec![f32::NAN, 0.5]), DeviceError::PassRate, 0),
            (counts(vec![4, 5], vec![f32::NAN, 1.0], vec![1.0, 1.0]), DeviceError::NotFinite, 0),
            (counts(vec![4, 5], vec![1.0, 1.0], vec![1.0, f32::INFINITY]), DeviceError::NotFinite, 1),
            (counts(vec![4, 5], vec![1.0, -1.0], vec![1.0, 1.0]), DeviceError::Negative, 1),
            (counts(vec![4, 5], vec![0.0, 1.0], vec![0.0, 1.0]), DeviceError::Empty, 0),
            (counts(vec![4, 5], vec![16.0, 1.0], vec![1.0, 1.0]), DeviceError::TooMany, 0),
        ];
        for (ev, code, pos) in cases {
            let host = validate_batch(n, m, &ev).unwrap_err();
            let p = pos as usize;
            let (v0, v1) = match &ev.outcomes {
                crate::Outcomes::PassRates(r) => (r[p], 0.0),
                crate::Outcomes::Counts { successes, failures } => (successes[p], failures[p]),
            };
            let dev = BotsError::from_device_record(code, ev.tasks[p], pos, v0, v1, n, m).expect("an input error");
            let BotsError::DeviceInput(cause) = &dev else { panic!("{dev:?}") };
            assert_eq!(std::mem::discriminant(&**cause), std::mem::discriminant(&host), "{dev} vs {host}");
            assert_eq!(cause.to_string(), host.to_string());
            assert_eq!(
                dev.to_string(),
                format!("{host} (found on the device by a kernel; the state was left unchanged)")
            );
            assert_eq!(dev.cause().to_string(), host.to_string());
        }
        assert!(BotsError::from_device_record(DeviceError::Internal, 0, 3, 0.0, 0.0, n, m).is_none());
    }
}
