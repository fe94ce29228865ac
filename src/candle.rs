//! Candle tensors in and out of a pool (feature `candle`): the two calls a
//! [candle](https://crates.io/crates/candle-core) trainer makes each step.
//!
//! - [`TensorPool::select_tensor`]: the `k` tasks to train on, as a rank-1 `U32` tensor of task ids.
//! - [`TensorPool::update_counts_tensor`] / [`TensorPool::update_rates_tensor`]: the step's outcomes,
//!   as rank-1 `F32` tensors (success and failure counts, or pass rates) beside the `U32` task ids.
//!
//! On the CPU ([`CpuPool`], or any tensors on `Device::Cpu`) the tensors are read to the host and the
//! calls are [`Backend::select`] and [`Backend::update`]. With the feature `candle-cuda` (candle-core's
//! `cuda`, which builds candle's kernels with nvcc), a [`CudaPool`](crate::backend::cuda::CudaPool)
//! made by `cuda_pool` runs on the candle device's own stream, and tensors on that device go in and
//! out without a host round trip: `select_tensor` wraps the selected ids' device buffer as a tensor
//! (`CudaStorage::wrap_cuda_slice`), and the updates read the tensors' storage in place, at their
//! offset (a narrowed tensor is a view, not a copy). As with the device verbs, bad values found on the
//! device are reported by the next `sync()` and leave the state unchanged.
//!
//! A binary built with candle-core's `cuda` links the CUDA driver (cudarc's `dynamic-linking`, which
//! candle asks for) instead of loading it at run time: it needs `libcuda` to start.
//!
//! ```
//! use bots::candle::TensorPool;
//! use bots::{Backend, Config, CpuPool};
//! use candle_core::{Device, Tensor};
//! let mut pool = CpuPool::new(Config { rho: 0.0, batch: 4, m: 8, ..Default::default() }, 100, None)?;
//! let device = Device::Cpu;
//! let tasks = pool.select_tensor(4, &device)?;                     // U32, shape [4]
//! let successes = Tensor::new(&[8f32, 4., 0., 2.], &device).unwrap(); // of m = 8 rollouts each
//! let failures = (Tensor::full(8f32, 4, &device).unwrap() - &successes).unwrap();
//! pool.update_counts_tensor(&tasks, &successes, &failures)?;
//! assert_eq!(pool.step(), 1);
//! # Ok::<(), bots::BotsError>(())
//! ```

use candle_core::{DType, Device, Tensor};

use crate::backend::{Backend, CpuPool};
use crate::error::{BotsError, Result};
use crate::evidence::Evidence;

/// The two calls of a candle training step, for a pool of any backend.
pub trait TensorPool {
    /// The `k` tasks to train on at the current step, best first, as a `U32` tensor of shape `[k]` on
    /// `device`. Like [`Backend::select`], it does not advance the step.
    fn select_tensor(&mut self, k: usize, device: &Device) -> Result<Tensor>;

    /// One update from success and failure counts (`F32`, shape `[len]`, one per task of `tasks`, a
    /// `U32` tensor of shape `[len]`); advances the step.
    fn update_counts_tensor(&mut self, tasks: &Tensor, successes: &Tensor, failures: &Tensor) -> Result<()>;

    /// One update from pass rates (`F32` in [0, 1], the mean reward of each task's m rollouts).
    fn update_rates_tensor(&mut self, tasks: &Tensor, rates: &Tensor) -> Result<()>;
}

/// Checks that `t` is a rank-1 tensor of `dtype` with `len` elements (any length when `None`), and
/// returns its length. Nothing is read.
fn check_vector(t: &Tensor, what: &str, dtype: DType, len: Option<usize>) -> Result<usize> {
    let err = |reason: String| BotsError::Tensor { what: what.into(), reason };
    if t.rank() != 1 {
        return Err(err(format!("has shape {:?}; pass a rank-1 tensor (one value per task)", t.dims())));
    }
    if t.dtype() != dtype {
        return Err(err(format!("has dtype {:?}; convert it with `.to_dtype(DType::{dtype:?})`", t.dtype())));
    }
    let n = t.dims()[0];
    if let Some(len) = len {
        if n != len {
            return Err(BotsError::LengthMismatch { what: what.into(), expected: len, got: n });
        }
    }
    Ok(n)
}

fn host_vec<T: candle_core::WithDType>(t: &Tensor, what: &str) -> Result<Vec<T>> {
    t.to_vec1::<T>().map_err(|e| BotsError::Tensor { what: what.into(), reason: format!("cannot be read: {e}") })
}

/// Evidence from tensors already checked by [`check_vector`], read to the host.
fn host_evidence(tasks: &Tensor, outcomes: &[(&Tensor, &str)]) -> Result<Evidence> {
    let ids = host_vec::<u32>(tasks, "tasks")?;
    Ok(match outcomes {
        [(rates, what)] => Evidence::pass_rates(ids, host_vec::<f32>(rates, what)?),
        [(s, ws), (f, wf)] => Evidence::counts(ids, host_vec::<f32>(s, ws)?, host_vec::<f32>(f, wf)?),
        _ => unreachable!("one or two outcome tensors"),
    })
}

/// The host path of all three calls, for any backend.
fn host_select(pool: &mut dyn Backend, k: usize, device: &Device) -> Result<Tensor> {
    let ids = pool.select(k)?;
    Tensor::from_vec(ids, k, device)
        .map_err(|e| BotsError::Tensor { what: "selected tasks".into(), reason: e.to_string() })
}

fn check_counts(tasks: &Tensor, successes: &Tensor, failures: &Tensor) -> Result<()> {
    let len = check_vector(tasks, "tasks", DType::U32, None)?;
    check_vector(successes, "successes", DType::F32, Some(len))?;
    check_vector(failures, "failures", DType::F32, Some(len))?;
    Ok(())
}

fn check_rates(tasks: &Tensor, rates: &Tensor) -> Result<()> {
    let len = check_vector(tasks, "tasks", DType::U32, None)?;
    check_vector(rates, "pass rates", DType::F32, Some(len))?;
    Ok(())
}

impl TensorPool for CpuPool {
    fn select_tensor(&mut self, k: usize, device: &Device) -> Result<Tensor> {
        host_select(self, k, device)
    }

    fn update_counts_tensor(&mut self, tasks: &Tensor, successes: &Tensor, failures: &Tensor) -> Result<()> {
        check_counts(tasks, successes, failures)?;
        self.update(&host_evidence(tasks, &[(successes, "successes"), (failures, "failures")])?).map(|_| ())
    }

    fn update_rates_tensor(&mut self, tasks: &Tensor, rates: &Tensor) -> Result<()> {
        check_rates(tasks, rates)?;
        self.update(&host_evidence(tasks, &[(rates, "pass rates")])?).map(|_| ())
    }
}

#[cfg(feature = "candle-cuda")]
pub use self::gpu::cuda_pool;

#[cfg(feature = "candle-cuda")]
mod gpu {
    use std::sync::Arc;

    use candle_core::cuda_backend::{CudaDevice, CudaStorage};
    use candle_core::op::BackpropOp;
    use candle_core::{Device, Storage, Tensor};
    use cudarc::driver::CudaSlice;

    use super::*;
    use crate::backend::cuda::CudaPool;
    use crate::config::Config;
    use crate::pool::Features;

    /// A [`CudaPool`] of `n` tasks on a candle CUDA device, ordered with that device's stream (so its
    /// kernels are ordered with the model's), with room to select `config.batch` tasks per call.
    ///
    /// A device made by `Device::new_cuda` runs on the per-thread default stream, a handle that means
    /// another queue on every thread: the pool then runs on a stream of its own and fences every verb
    /// with that handle as the calling thread sees it (see [`CudaPool::from_state`]), so it stays ordered
    /// with the tensors of whatever thread uses it. A device made by `Device::new_cuda_with_stream`
    /// has a stream of its own, which the pool runs on.
    pub fn cuda_pool(device: &Device, config: Config, n: usize, features: Option<Features>) -> Result<CudaPool> {
        let Device::Cuda(dev) = device else {
            return Err(BotsError::Tensor {
                what: "device".into(),
                reason: format!("{device:?} is not a CUDA device; use a CpuPool for CPU tensors"),
            });
        };
        let k = config.batch;
        CudaPool::with_capacity(dev.cuda_stream(), config, n, features, k)
    }

    /// The candle CUDA device of `device` when it runs on `pool`'s stream; `None` for the CPU; an
    /// error for another stream or device kind (the pool's kernels would race the tensors' producers).
    fn same_stream<'a>(pool: &CudaPool, device: &'a Device, what: &str) -> Result<Option<&'a CudaDevice>> {
        match device {
            Device::Cpu => Ok(None),
            Device::Cuda(dev) if on_pool_stream(pool, &dev.cuda_stream()) => Ok(Some(dev)),
            other => Err(BotsError::Tensor {
                what: what.into(),
                reason: format!("is on {other:?}, not on the pool's CUDA stream; build the pool with bots::candle::cuda_pool(&device, ..)"),
            }),
        }
    }

    /// The device's stream is the one the pool runs on, or the handle it fences with.
    fn on_pool_stream(pool: &CudaPool, stream: &Arc<cudarc::driver::CudaStream>) -> bool {
        let same = |s: &Arc<cudarc::driver::CudaStream>| Arc::ptr_eq(stream, s) || stream.cu_stream() == s.cu_stream();
        same(pool.stream()) || pool.caller_stream().is_some_and(same)
    }

    /// Runs `f` on the device buffers behind rank-1 contiguous CUDA tensors, each a view at its offset.
    fn with_view<T: candle_core::cuda_backend::CudaDType, R>(
        t: &Tensor,
        what: &str,
        f: impl FnOnce(&cudarc::driver::CudaView<'_, T>) -> Result<R>,
    ) -> Result<R> {
        let err = |reason: String| BotsError::Tensor { what: what.into(), reason };
        let (storage, layout) = t.storage_and_layout();
        let Storage::Cuda(cs) = &*storage else { return Err(err("is not on a CUDA device".into())) };
        let (start, end) =
            layout.contiguous_offsets().ok_or_else(|| err("is strided; call `.contiguous()` first".into()))?;
        let slice: &CudaSlice<T> = cs.as_cuda_slice::<T>().map_err(|e| err(e.to_string()))?;
        f(&slice.slice(start..end))
    }

    impl TensorPool for CudaPool {
        fn select_tensor(&mut self, k: usize, device: &Device) -> Result<Tensor> {
            let Some(dev) = same_stream(self, device, "output device")? else { return host_select(self, k, device) };
            let mut out = self.stream().alloc_zeros::<u32>(k).map_err(|e| BotsError::Cuda(format!("{e:?}")))?;
            self.select_into(k, &mut out)?;
            let storage = Storage::Cuda(CudaStorage::wrap_cuda_slice(out, dev.clone()));
            Ok(Tensor::from_storage(storage, k, BackpropOp::none(), false))
        }

        fn update_counts_tensor(&mut self, tasks: &Tensor, successes: &Tensor, failures: &Tensor) -> Result<()> {
            check_counts(tasks, successes, failures)?;
            let on_device = [
                same_stream(self, tasks.device(), "tasks")?,
                same_stream(self, successes.device(), "successes")?,
                same_stream(self, failures.device(), "failures")?,
            ];
            if on_device.iter().all(Option::is_none) {
                return self
                    .update(&host_evidence(tasks, &[(successes, "successes"), (failures, "failures")])?)
                    .map(|_| ());
            }
            with_view::<u32, _>(tasks, "tasks", |t| {
                with_view::<f32, _>(successes, "successes", |s| {
                    with_view::<f32, _>(failures, "failures", |f| self.update_from_device(t, s, f))
                })
            })
        }

        fn update_rates_tensor(&mut self, tasks: &Tensor, rates: &Tensor) -> Result<()> {
            check_rates(tasks, rates)?;
            let on_device =
                [same_stream(self, tasks.device(), "tasks")?, same_stream(self, rates.device(), "pass rates")?];
            if on_device.iter().all(Option::is_none) {
                return self.update(&host_evidence(tasks, &[(rates, "pass rates")])?).map(|_| ());
            }
            with_view::<u32, _>(tasks, "tasks", |t| {
                with_view::<f32, _>(rates, "pass rates", |r| self.update_from_device_rates(t, r))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn pool() -> CpuPool {
        CpuPool::new(Config { rho: 0.0, batch: 4, m: 8, ..Default::default() }, 50, None).unwrap()
    }

    /// The tensor calls are the host calls: the same tasks, and after the same evidence the same state.
    #[test]
    fn tensor_calls_match_host_calls() {
        let dev = Device::Cpu;
        let (mut a, mut b) = (pool(), pool());
        for step in 0..5u32 {
            let t = a.select_tensor(4, &dev).unwrap();
            let ids = b.select(4).unwrap();
            assert_eq!(t.dtype(), DType::U32);
            assert_eq!(t.to_vec1::<u32>().unwrap(), ids);
            let succ: Vec<f32> = (0..4).map(|i| ((i + step) % 9) as f32).collect();
            let fail: Vec<f32> = succ.iter().map(|s| 8.0 - s).collect();
            if step % 2 == 0 {
                let (s, f) = (Tensor::new(succ.as_slice(), &dev).unwrap(), Tensor::new(fail.as_slice(), &dev).unwrap());
                a.update_counts_tensor(&t, &s, &f).unwrap();
                b.update(&Evidence::counts(ids, succ, fail)).unwrap();
            } else {
                let rates: Vec<f32> = succ.iter().map(|s| s / 8.0).collect();
                a.update_rates_tensor(&t, &Tensor::new(rates.as_slice(), &dev).unwrap()).unwrap();
                b.update(&Evidence::pass_rates(ids, rates)).unwrap();
            }
        }
        let (sa, sb) = (a.to_host().unwrap(), b.to_host().unwrap());
        assert_eq!(sa.alpha, sb.alpha);
        assert_eq!(sa.beta, sb.beta);
        assert_eq!(a.step(), 5);
    }

    /// Wrong dtype, rank or length, and bad values, are typed errors that leave the state unchanged.
    #[test]
    fn bad_tensors_are_refused_without_change() {
        let dev = Device::Cpu;
        let mut p = pool();
        let before = p.to_host().unwrap();
        let tasks = p.select_tensor(4, &dev).unwrap();
        let rates = Tensor::new(&[0.5f32, 0.5, 0.5, 0.5], &dev).unwrap();
        let cases: Vec<(Tensor, Tensor, &str)> = vec![
            (tasks.to_dtype(DType::F32).unwrap(), rates.clone(), "to_dtype(DType::U32)"),
            (tasks.clone(), rates.to_dtype(DType::F64).unwrap(), "to_dtype(DType::F32)"),
            (tasks.reshape((2, 2)).unwrap(), rates.clone(), "rank-1"),
            (tasks.clone(), rates.narrow(0, 0, 3).unwrap(), "expected 4"),
            (tasks.clone(), Tensor::new(&[0.5f32, 1.5, 0.5, 0.5], &dev).unwrap(), "pass rate 1.5"),
        ];
        for (t, r, needle) in cases {
            let e = p.update_rates_tensor(&t, &r).unwrap_err().to_string();
            assert!(e.contains(needle), "{e} should mention {needle}");
        }
        let s = Tensor::new(&[1f32, 2., 3., 4.], &dev).unwrap();
        let e = p.update_counts_tensor(&tasks, &s, &s.narrow(0, 1, 3).unwrap()).unwrap_err();
        assert!(matches!(e, BotsError::LengthMismatch { .. }), "{e}");
        assert_eq!(p.step(), 0);
        let after = p.to_host().unwrap();
        assert_eq!(before.alpha, after.alpha);
        assert_eq!(before.beta, after.beta);
        assert!(matches!(p.select_tensor(0, &dev), Err(BotsError::InvalidK { .. })));
    }
}
