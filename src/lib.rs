//! # bots — Bayesian Online Task Selection, fast enough for the training loop
//!
//! BOTS keeps a Beta belief over every task's pass rate, Thompson-samples it each step, trains on the
//! tasks nearest a target pass rate, and updates every belief with the batch's outcomes (explicit
//! evidence) plus predictions interpolated from reference-model pass rates (implicit evidence).
//! The algorithm, with every formula: `BOTS-ALGORITHM.md` (restated in the README).
//!
//! The pipeline, one module each: [`pool`] (state) → [`select`] → [`evidence`] → [`update`], with
//! randomness from [`twin::philox`] (Philox4x32-10) and [`twin::distr`] (Beta, Gamma, Gumbel), behind the
//! [`Backend`] trait implemented by [`CpuPool`] and the CUDA backend.
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

pub mod abi;
pub mod backend;
#[cfg(feature = "candle")]
pub mod candle;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod evidence;
pub mod io;
pub mod pool;
pub mod select;
pub mod sim;
pub mod twin;
pub mod update;

pub use backend::{open, Backend, BackendKind, CpuPool, UpdateReport};
pub use config::Config;
pub use error::{BotsError, CountsProblem, Result};
pub use evidence::{Evidence, Outcomes};
pub use pool::{FeatureForm, Features, Globals, PoolState, Prior};
pub mod kernels;

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
