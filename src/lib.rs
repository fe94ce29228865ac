//! # bots — Bayesian Online Task Selection, fast enough for the training loop
//!
//! BOTS keeps a Beta belief over every task's pass rate, Thompson-samples it each step, trains on the
//! tasks nearest a target pass rate, and updates every belief with the batch's outcomes (explicit
//! evidence) plus predictions interpolated from reference-model pass rates (implicit evidence).
//! The algorithm, with every formula: `BOTS-ALGORITHM.md` (restated in the README).
//!
//! A pool ([`CpuPool`] on the CPU, [`CudaPool`] on a CUDA GPU, both behind the [`Backend`] trait, or
//! [`open`] to choose at run time) holds the posterior ([`PoolState`]) of `n` tasks under a [`Config`],
//! with the reference models' pass rates as [`Features`]. Each step is `select` (the tasks to train on)
//! then `update` with the batch's outcomes ([`Evidence`]); both pools draw the same Philox4x32-10 bits,
//! so they select the same tasks. [`checkpoint`] saves and restores the whole posterior
//! ([`Backend::save_checkpoint`], [`Backend::restore_checkpoint`], [`open_checkpoint`]); every error is a
//! [`BotsError`]. With the feature `candle`, `bots::candle` takes and gives candle tensors.
//!
//! ```
//! use bots::{Backend, Config, CpuPool, Evidence, Features};
//! let weak = vec![0.1f32; 100];
//! let strong = vec![0.6f32; 100];
//! let mut pool = CpuPool::new(Config { batch: 4, ..Default::default() }, 100,
//!                             Some(Features::from_f32(&weak, &strong).unwrap())).unwrap();
//! for _step in 0..3 {
//!     let tasks = pool.select_batch().unwrap();          // which prompts to roll out
//!     let rates = vec![0.5; tasks.len()];                 // mean reward of their m rollouts
//!     pool.update(&Evidence::pass_rates(tasks, rates)).unwrap();
//! }
//! assert_eq!(pool.step(), 3);
//! ```

mod abi;
mod atomic;
mod backend;
#[cfg(feature = "candle")]
pub mod candle;
pub mod checkpoint;
mod config;
mod error;
mod evidence;
mod fingerprint;
mod kernels;
mod neighbours;
mod pool;
mod select;
mod twin;
mod update;

pub use backend::cuda::{CudaPool, RawOutcomes};
pub use backend::{
    cuda_usable, driver_present, open, open_checkpoint, open_with, Backend, BackendKind, CpuPool, UpdateReport,
};
pub use config::{Config, KernelMode};
pub use error::{BotsError, CountsProblem, Result};
pub use evidence::{Evidence, Outcomes};
pub use fingerprint::Fingerprint;
pub use kernels::cuda_kernels;
pub use neighbours::{Neighbours, MAX_NEIGHBOURS};
pub use pool::{FeatureForm, Features, Globals, NewTasks, PoolState, Prior};

/// Random numbers as both backends draw them: the counter-based Philox4x32-10 stream ([`rng::Philox`],
/// `rand`'s `RngCore` and `SeedableRng`; [`rng::TaskStream`] positions it where the selection of a task
/// at a step reads) and the samplers of the Thompson draw as `rand` `Distribution`s ([`rng::Beta`],
/// [`rng::Gamma`], [`rng::LogGamma`], [`rng::StandardNormal`], [`rng::Gumbel`]). Drawn from a `Philox`
/// positioned at the same counter, each gives the bits the CPU pool and the CUDA kernels draw.
pub mod rng {
    pub use crate::twin::distr::gamma::first_block;
    pub use crate::twin::distr::{Beta, Gamma, Gumbel, LogGamma, StandardNormal};
    pub use crate::twin::philox::{Philox, Purpose, TaskStream};
}

/// Not API: what the crates beside this one (the `bots` application in `cli/`, the Python extension)
/// and the integration tests need of the internals. No stability promise; `bots-cli` pins this crate's
/// exact version.
#[doc(hidden)]
pub mod __private {
    pub use crate::atomic::{write_atomic, write_bytes_atomic};
    pub use crate::checkpoint::save_pausing;
    pub use crate::config::parse_value;
    pub use crate::evidence::batch_sum;
    pub use crate::select::{score_key, score_task, select_top_k};
    pub use crate::twin::distr::box_muller;
    pub use crate::twin::fmath::exp;
    pub use crate::twin::philox::{u01, Purpose, TaskStream};
    pub use crate::update::update_task;
    /// The CPU twins of the kernels' device functions (tests and doc examples reach them here).
    pub mod twin {
        pub mod philox {
            pub use crate::twin::philox::*;
        }
        pub mod fmath {
            pub use crate::twin::fmath::*;
        }
        pub mod distr {
            pub use crate::twin::distr::*;
            pub use crate::twin::distr::{beta, gamma, gumbel, normal};
        }
    }
}

/// Unit tests that skip their checks say so on the real stderr, which libtest does not capture, so
/// `cargo test` shows it even when the test passes (twin of `tests/common::skip`).
#[cfg(test)]
pub(crate) fn test_skip(reason: &str) {
    use std::io::Write;
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

/// The README's Rust snippets, compiled by `cargo test` (doctests) so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
