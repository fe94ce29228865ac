//! Distributions drawn from [`crate::twin::philox::TaskStream`] blocks, one per file, in f32, exactly as the
//! kernels draw them (`kernels/distr.cuh`). Every transcendental is from [`fmath`](crate::twin::fmath) (twin:
//! `kernels/fmath.cuh`), built from correctly rounded IEEE operations only, so CPU and GPU draws agree
//! bit for bit.

pub mod beta;
pub mod gamma;
pub mod gumbel;
pub mod normal;

pub use beta::sample_beta;
pub use gamma::sample_log_gamma;
pub use gumbel::sample_gumbel;
pub use normal::box_muller;
