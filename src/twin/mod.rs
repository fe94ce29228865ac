//! The CPU twins of the kernels' device functions, one file per header of `kernels/`, each function
//! under its kernel twin's name and computing it expression for expression, so the CPU and the GPU
//! draw the same bits:
//!
//! | here | `kernels/` |
//! |---|---|
//! | [`philox`]: Philox4x32-10, task streams, `u01`, the sequential stream [`philox::Philox`] (`rand`) | `philox.cuh` |
//! | [`fmath`]: `ln`, `exp`, `sincos_2pi` from IEEE operations only | `fmath.cuh` |
//! | [`distr`]: Gamma, Beta, normal, Gumbel samplers (`rand` `Distribution`s) | `distr.cuh` |
//!
//! The per-task model formulas (`model.cuh`) are next to the CPU backend's passes that use them:
//! `select::score_task`/`score_key`, `evidence::batch_row`/`interpolate`,
//! `update::update_task`/`apply_pending_task`; the kernels of `bots.cu` name their CPU twin in a comment.

pub mod distr;
pub mod fmath;
pub mod philox;
