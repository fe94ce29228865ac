//! Distributions drawn from [`crate::twin::philox::TaskStream`] blocks, one per file, in f32, exactly as the
//! kernels draw them (`kernels/distr.cuh`). Every transcendental is from [`fmath`](crate::twin::fmath) (twin:
//! `kernels/fmath.cuh`), built from correctly rounded IEEE operations only, so CPU and GPU draws agree
//! bit for bit.
//!
//! Each sampler is a `rand` [`Distribution`](rand::distr::Distribution) — [`Gamma`], [`LogGamma`],
//! [`Beta`], [`StandardNormal`], [`Gumbel`] — reading its words in sequence from any `rand`
//! [`RngCore`](rand::RngCore); the counter-based functions ([`sample_beta`], [`sample_log_gamma`],
//! [`sample_gumbel`], ...) are those samplers drawn from a [`crate::twin::philox::Philox`] positioned at
//! the task stream's blocks ([`crate::twin::philox::TaskStream::rng`]), so there is one implementation
//! and a `Philox` at the same counter draws the same bits.

pub mod beta;
pub mod gamma;
pub mod gumbel;
pub mod normal;
#[cfg(test)]
mod rand_tests;

pub use beta::{sample_beta, Beta};
pub use gamma::{sample_log_gamma, Gamma, LogGamma};
pub use gumbel::{sample_gumbel, Gumbel};
pub use normal::{box_muller, StandardNormal};
