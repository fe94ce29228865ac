//! Distributions drawn from [`crate::rng::TaskStream`] blocks, one per file, in f32, exactly as the
//! kernels draw them (`kernels/dist.cuh`). Every transcendental is from [`fmath`] (twin:
//! `kernels/fmath.cuh`), built from correctly rounded IEEE operations only, so CPU and GPU draws agree
//! bit for bit.

pub mod beta;
pub mod fmath;
pub mod gamma;
pub mod gumbel;
pub mod normal;

pub use beta::sample_beta;
pub use gamma::sample_log_gamma;
pub use gumbel::sample_gumbel;
pub use normal::box_muller;
