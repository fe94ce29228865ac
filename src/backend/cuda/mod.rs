//! The CUDA backend: the pool's state lives in device memory and one step is a few fused passes over it.
//!
//! # Device state (12 or 16 bytes per task, plus 2 of scratch)
//! `alpha`, `beta` (f32), the K reference feature columns in one buffer in the pool's form (f16, 2·K
//! bytes per task, or f32, 4·K: [`crate::FeatureForm`]; the kernels read either, two columns per task
//! and step whatever K is), per-task priors only when the
//! state has them (+8 bytes/task), and 128 bytes of device scalars (step, mu, rho, the pending flag, the
//! error record, the radix-select state). With a neighbour graph (docs/EVIDENCE-SOURCES.md §2, §4): its
//! rows (8·k_nn bytes per task), the reverse lists as CSR (8 + 4·in-degree bytes per task), a claim
//! bitmap of n bits, a touched list and a batch lookup sized for the largest batch. Scratch: a 2-byte
//! digit cache per task, a bitmap of n bits for duplicate detection, one of the fused pass's deferred
//! draws, histograms, and candidate/output buffers sized at construction for `k` up to a capacity, so
//! the trainer verbs allocate nothing per step.
//!
//! # One step, in launch order (all on one stream, no host round trip)
//! - `select_into`: `select_init`, `update_sample_score` (applies the pending pool-wide update, samples,
//!   scores and builds the first radix histogram; a draw that needs more than its first try, ~1.5% of
//!   them, is deferred to a bit per task), `finish_deferred` (draws those whole: the same bits),
//!   6 × (`radix_find_bin`, `radix_filter`) over the shrinking candidate set, a bitonic sort of the k
//!   keys (descending) and `keys_to_tasks`.
//! - `update_from_device`: `apply_pending` + `clear_pending` (no-ops on the device unless an older
//!   update is still pending; always launched, so a captured graph replays correctly), then
//!   `batch_validate`, `batch_reduce`, `batch_scatter`, for a pool with a neighbour graph `nbr_push`,
//!   `nbr_pull_apply`, `nbr_clear` (grids fixed by the batch length and the capacities: capturable), and
//!   `batch_finish`. Invalid input leaves the state
//!   unchanged and sets a device error flag that the next synchronizing call ([`CudaPool::sync`],
//!   [`Backend::to_host`](crate::Backend::to_host), [`Backend::update`](crate::Backend::update)'s report) reports as [`BotsError::DeviceInput`] (wrapping the
//!   variant and message the host validation gives for the same input) and
//!   clears. Only the invalid batch is skipped: valid batches issued after it still apply, and a host
//!   `update` whose own batch was applied may be the call that reports an earlier device batch's error.
//!   Host evidence ([`Backend::update`](crate::Backend::update)) is also validated on the host first, with the CPU backend's
//!   typed errors.
//!
//! The step counter lives on the device and every kernel reads it from there, so a captured CUDA graph of
//! a step replays correctly. The host mirrors it ([`Backend::step`](crate::Backend::step)); after an invalid device batch the
//! mirror runs ahead until the next synchronizing call resyncs it.
//!
//! # Agreement with the CPU backend
//! The kernels are compiled with `--fmad=false`, IEEE division and square root, and draw with the same
//! `fmath` functions as the CPU (`kernels/fmath.cuh` is `src/twin/fmath.rs` expression for expression:
//! no libm, no `__` intrinsics), so samples, keys, selections and the update arithmetic match
//! [`crate::CpuPool`] bit for bit (the CPU emulator in `scripts/emu` checks the device code this way).
//! The batch means are f64 sums in one defined order on both backends ([`crate::evidence::batch_sum`]:
//! 256 strided lanes, then a tree), so mu, miss and rho agree bit for bit too.
//!
//! # Tested without a GPU
//! `scripts/emu/run.sh` runs the kernels (compiled for the host with `scripts/emu/cuda_shim.h`: a
//! block's threads are fibers in shuffled order with checked barriers, on `fmath`) through a C++ copy
//! of the launch sequence; `scripts/emu-driver/test.sh` runs this Rust host code itself on an emulated
//! CUDA driver built from the same kernels (PTX parameter lists checked at module load, lazily run
//! streams, guard-paged buffers, graph capture). Both run in CI.
//!
//! # Assumed on real hardware (not checkable without a GPU)
//! - The PTX (ISA <= 9.0, `compute_80`) JIT-compiles on driver 580 for sm_90; a refusal carries the JIT
//!   log in the error. The driver's JIT cache makes later pools' module loads cheap.
//! - All static shared memory stays under the 48 KB that needs no opt-in (largest: `batch_reduce`,
//!   24.6 KB); no kernel uses dynamic shared memory, so no `cuFuncSetAttribute` is needed. Register
//!   counts (`nvcc -cubin -O3 --fmad=false -arch=sm_90 --resource-usage kernels/bots.cu`, CUDA 13.0):
//!   `update_sample_score` 61 and `radix_filter` 48 (64 before its pool scan queued live tasks) under
//!   `__launch_bounds__(256, 4)` (at most 64), no spills, no stack; the pool-sized grids are sized from
//!   `cuOccupancyMaxActiveBlocksPerMultiprocessor`.
//! - `radix_filter` takes one 64-bit atomic per warp (not per key) on `n_out` and `cand_cnt`
//!   (`warp_slot`: `__ballot_sync`, `__popc`, `__shfl_sync`, full-warp masks; the loop runs whole warps
//!   so every lane reaches them). Slots depend on the order of the warps' atomics, as before: the output
//!   keys are sorted afterwards and the candidates are a set, so the selection does not.
//! - `radix_filter`'s pool scan reads the digit cache 16 bytes per lane (`__ldg` of a `uint4`, only for
//!   8-digit chunks aligned to 16 bytes and wholly inside the n digits; the first and last chunk go
//!   digit by digit, so any base alignment and any n stay in bounds), takes the warp OR of the live
//!   slots with `__reduce_or_sync` (sm_80 and later: the `compute_80` default), and queues the live
//!   tasks across the warp's lanes (`__ballot_sync`, `__shfl_sync`) to recompute their keys 32 at a time.
//!   Which lane places which key changes with it; the selection does not.
//! - The pool runs on a non-blocking stream of its own ([`CudaPool::on_device`]) or the caller's (a
//!   real stream; given the NULL or per-thread handle it makes its own). A raw verb given another
//!   stream is fenced with it by two events (no host synchronization): the kernels start after the
//!   work enqueued there and that stream waits for them, so the host verbs see every device verb;
//!   nothing allocates, frees or synchronizes inside `select_into`/`update_from_device*`, and cudarc's
//!   event bookkeeping of the caller's buffers stays outside a capture, so they can be graph-captured
//!   with event tracking on or off.

//!
//! # Where things are
//! - `module.rs`: loading the PTX (with the JIT log) and looking up every kernel of [`crate::abi::Kernel`].
//! - `launch.rs`: the one `unsafe` launch and a typed function per kernel (on a `Launcher`: the pool
//!   and a stream), then the launch sequences (select, sort, flush, batch). Kernels take the pool's
//!   buffers as one by-value `struct Pool` ([`crate::abi::DevicePtrs`]) and a batch as one `struct
//!   Batch` ([`crate::abi::BatchArgs`]).
//! - `pool.rs`: [`CudaPool`], its construction and the trainer verbs (`select_into`, `update_from_device*`,
//!   their raw forms, `sync`).
//! - `backend_impl.rs`: the [`crate::Backend`] host verbs (`select`, `update`, `to_host`, `restore`).
//! - The boundary with the kernels (layouts, error codes, constants, kernel names) is `src/abi.rs`.

use std::sync::Arc;

use cudarc::driver::CudaContext;

use crate::error::{BotsError, Result};
use crate::kernels;

/// Pointers of kernel arguments for `cuLaunchKernel`: each argument must be an lvalue or a temporary
/// that lives to the end of the statement.
macro_rules! args {
    ($($a:expr),* $(,)?) => { [$( &$a as *const _ as *mut std::ffi::c_void ),*] };
}

mod backend_impl;
mod launch;
mod module;
mod pool;

pub use pool::{CudaPool, RawOutcomes};

fn cuda_err(e: impl std::fmt::Debug) -> BotsError {
    BotsError::Cuda(format!("{e:?}"))
}

fn context(ordinal: usize) -> Result<Arc<CudaContext>> {
    if !kernels::has_ptx() {
        return Err(BotsError::CudaUnavailable(kernels::NO_PTX_REASON.into()));
    }
    if !crate::backend::driver_present() {
        return Err(BotsError::CudaUnavailable("no CUDA driver (libcuda) found on this machine".into()));
    }
    // One context per device for the life of the process. Each `CudaContext::new` retains the device's
    // primary context and its drop releases it; when the last pool of a process went, the driver
    // destroyed the primary context and the next pool created it again (0.1-0.5 s each on a GPU: a test
    // run paid that about 50 times). Keeping one retained here is what the CUDA runtime does too.
    static CONTEXTS: std::sync::Mutex<Vec<(usize, Arc<CudaContext>)>> = std::sync::Mutex::new(Vec::new());
    let mut held = CONTEXTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, ctx)) = held.iter().find(|(o, _)| *o == ordinal) {
        return Ok(ctx.clone());
    }
    let ctx = CudaContext::new(ordinal)
        .map_err(|e| BotsError::CudaUnavailable(format!("cannot open CUDA device {ordinal}: {e:?}")))?;
    held.push((ordinal, ctx.clone()));
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::pool::scalar_words;
    use super::*;
    use crate::abi::{DeviceScalars, NO_ERROR};
    use crate::evidence::Evidence;
    use crate::pool::Globals;
    use crate::Config;

    /// Without a driver (or without PTX) construction is a typed error, never a panic; with one (the
    /// GPU machine, the emulated driver) the same calls open a pool that selects and updates.
    #[test]
    fn opens_with_a_driver_and_is_a_typed_error_without() {
        let cfg = Config { rho: 0.0, batch: 4, ..Default::default() };
        if crate::backend::cuda_usable() {
            let mut pool = CudaPool::new(cfg.clone(), 10, None).expect("a CUDA driver is present: the pool must open");
            let tasks = crate::Backend::select_batch(&mut pool).unwrap();
            assert_eq!(tasks.len(), 4);
            assert!(tasks.iter().all(|&t| t < 10));
            crate::Backend::update(&mut pool, &Evidence::pass_rates(tasks, vec![0.5; 4])).unwrap();
            assert_eq!(pool.sync().unwrap().step, 1);
            let mut boxed = crate::open(crate::BackendKind::Cuda { ordinal: 0 }, cfg, 10, None).unwrap();
            assert_eq!(boxed.select_batch().unwrap().len(), 4);
            return;
        }
        match CudaPool::new(cfg.clone(), 10, None) {
            Err(BotsError::CudaUnavailable(_)) => {}
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("a pool without a driver"),
        }
        assert!(matches!(
            crate::open(crate::BackendKind::Cuda { ordinal: 0 }, cfg, 10, None),
            Err(BotsError::CudaUnavailable(_))
        ));
    }

    #[test]
    fn host_validation_matches_the_cpu_errors() {
        let ev = |t: Vec<u32>| Evidence::pass_rates(t.clone(), vec![0.5; t.len()]);
        assert!(matches!(ev(vec![]).validate(10, 16), Err(BotsError::Empty(_))));
        assert!(matches!(ev(vec![10]).validate(10, 16), Err(BotsError::TaskOutOfRange { task: 10, .. })));
        assert!(matches!(ev(vec![1, 2, 1]).validate(10, 16), Err(BotsError::DuplicateTask { task: 1 })));
        let bad = Evidence::counts(vec![1], vec![f32::NAN], vec![1.0]);
        assert!(matches!(bad.validate(10, 16), Err(BotsError::InvalidCounts { .. })));
        let short = Evidence::pass_rates(vec![1, 2], vec![0.5]);
        assert!(matches!(short.validate(10, 16), Err(BotsError::LengthMismatch { .. })));
        ev(vec![0, 9]).validate(10, 16).unwrap();
    }

    /// The host refuses feature columns the kernels would read out of bounds (K outside 1..=64, a
    /// column of another length than the pool), and uploads K columns that read back unchanged.
    #[test]
    fn feature_upload_checks_k_and_lengths() {
        use super::pool::upload_features;
        use crate::pool::Features;
        if !crate::backend::cuda_usable() {
            crate::test_skip("no CUDA driver: the upload checks were not run");
            return;
        }
        let stream = context(0).unwrap().new_stream().unwrap();
        let col = |v: f32| vec![v; 5];
        let f32s = |k: usize| Features::F32 { columns: (0..k).map(|c| col(c as f32 / 100.0)).collect() };
        for (what, f, n) in [
            ("no column", f32s(0), 5),
            ("65 columns", f32s(65), 5),
            ("a column short of n", f32s(3), 6),
            (
                "a short f16 column",
                Features::F16 { columns: vec![vec![half::f16::ZERO; 5], vec![half::f16::ONE; 4]] },
                5,
            ),
        ] {
            let err = upload_features(&stream, Some(&f), n).err().unwrap_or_else(|| panic!("{what}: uploaded"));
            assert!(matches!(err, BotsError::LengthMismatch { .. }), "{what}: {err}");
        }
        for k in [1, 3, 64] {
            let f = f32s(k);
            let d = upload_features(&stream, Some(&f), 5).unwrap().unwrap();
            assert_eq!(d.columns(), k);
            assert_eq!(d.to_host(&stream).unwrap(), f, "K = {k}");
        }
        assert!(upload_features(&stream, None, 5).unwrap().is_none());
    }

    #[test]
    fn scalars_start_clean() {
        let w = scalar_words(&Globals { mu: Some(0.25), rho: 0.1, step: 7 });
        let sc: DeviceScalars = bytemuck::cast(w);
        assert_eq!((sc.step, sc.mu, sc.mu_set, sc.rho, sc.pending, sc.err_code), (7, 0.25, 1, 0.1, 0, 0));
        assert_eq!(sc.batch_err, NO_ERROR);
        let sc: DeviceScalars = bytemuck::cast(scalar_words(&Globals { mu: None, rho: 0.0, step: 0 }));
        assert_eq!(sc.mu_set, 0);
    }
}
