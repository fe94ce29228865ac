//! Launching kernels: the one `unsafe` launch, a typed function per kernel, and the launch sequences.
//!
//! Every kernel that touches the pool's buffers takes them as one by-value [`DevicePtrs`] (`struct
//! Pool` in the generated `abi.cuh`), and a batch as one [`BatchArgs`] (`struct Batch`). A call site names a
//! kernel by calling its function on a [`Launcher`] (names from [`Kernel`]), never by packing an
//! argument list: the argument list of each kernel is written once, in its function below.

use std::ffi::c_void;

use cudarc::driver::{result, sys, CudaSlice, CudaStream, DevicePtr};

use super::module::Module;
use crate::abi::{
    BatchArgs, DevicePtrs, Kernel, KernelParams, FEATURES_F16, FEATURES_F32, FEATURES_NONE, RADIX_BINS, RADIX_PASSES,
};
use crate::config::KernelMode;
use crate::error::{BotsError, Result};
use crate::pool::FeatureForm;

/// Threads per block of the pool-sized kernels (their `__launch_bounds__(256, 4)`).
pub(super) const BLOCK: u32 = 256;
/// Threads of the one-block kernels `radix_find_bin` and `bitonic_sort_block`.
const WIDE_BLOCK: u32 = 1024;
/// The longest run `bitonic_sort_block` sorts in shared memory.
const BLOCK_SORT_MAX: usize = 2048;

/// Device pointers of the pool's buffers that the host hands to kernels as a caller would (the task
/// output of `select` and the evidence staging of `update`).
#[derive(Clone, Copy, Default)]
pub(super) struct HostIoPtrs {
    pub(super) out_tasks: u64,
    pub(super) ev_tasks: u64,
    pub(super) ev_a: u64,
    pub(super) ev_b: u64,
}

pub(super) fn ptr<T>(s: &CudaSlice<T>, stream: &CudaStream) -> u64 {
    s.device_ptr(stream).0
}

pub(super) fn grid_for(n: u64) -> u32 {
    n.div_ceil(BLOCK as u64).clamp(1, 65_535) as u32
}

/// The kernels' code for a pool's feature form (`feature_form` of [`KernelParams`]).
pub(super) fn feature_code(form: Option<FeatureForm>) -> u32 {
    match form {
        None => FEATURES_NONE,
        Some(FeatureForm::F16) => FEATURES_F16,
        Some(FeatureForm::F32) => FEATURES_F32,
    }
}

/// What the launcher needs of a pool, owned by the pool and borrowed by every [`Launcher`]: the loaded
/// module, the kernels' parameter block, the pool's buffers as the kernels take them, and the shapes.
pub(super) struct LaunchPlan {
    pub(super) module: Module,
    /// `struct Params` (the config, the prior, the feature form).
    pub(super) params: KernelParams,
    /// The pool's buffers as the kernels take them (`struct Pool`).
    pub(super) ptrs: DevicePtrs,
    /// Blocks of the pool-sized kernels (as many as fit on the device at once).
    pub(super) grid_n: u32,
    /// Capacity of each half of the candidate buffer.
    pub(super) cand_cap: usize,
    /// Length of `out_keys` (a power of two >= the pool's k capacity).
    pub(super) out_keys_len: usize,
    /// The config's kernel mode: [`KernelMode::Fast`] launches `update_sample_score_fast` and
    /// `radix_filter_fast` (the same parameters) in place of the exact entries.
    pub(super) mode: KernelMode,
}

impl LaunchPlan {
    /// Launches on `stream`.
    ///
    /// # Safety
    /// `stream` is a live stream of the plan's context and stays live, with the buffers of `ptrs`,
    /// until the work is done.
    pub(super) unsafe fn on(&self, stream: sys::CUstream) -> Launcher<'_> {
        Launcher { plan: self, stream }
    }
}

/// A launch plan and a stream of its context: the kernels, one function each.
pub(super) struct Launcher<'a> {
    plan: &'a LaunchPlan,
    stream: sys::CUstream,
}

impl Launcher<'_> {
    /// Launches kernel `k`: the one place this crate calls `cuLaunchKernel`.
    ///
    /// # Safety
    /// `args` holds one pointer per parameter of `k` in `kernels/bots.cu`, in order, each to a value of
    /// exactly that parameter's type (the emulated driver checks count and sizes against the PTX); every
    /// device pointer they carry is null where the kernel allows it, or a live buffer of this pool's
    /// context as large as the lengths passed with it say.
    unsafe fn launch(&self, k: Kernel, grid: u32, block: u32, args: &mut [*mut c_void]) -> Result<()> {
        // SAFETY: the function handle belongs to the plan's loaded module, `self.stream` is a live stream
        // of its context (the contract of `LaunchPlan::on`); the arguments are the caller's contract.
        unsafe {
            result::launch_kernel(
                self.plan.module.funcs[k as usize],
                (grid.max(1), 1, 1),
                (block, 1, 1),
                0,
                self.stream,
                args,
            )
        }
        .map_err(|e| BotsError::Cuda(format!("launching {}: {e:?}", k.name())))
    }

    fn ptrs(&self) -> DevicePtrs {
        self.plan.ptrs
    }

    /// `update_sample_score(Params, Pool)` (or `update_sample_score_fast`, the same parameters, in
    /// [`KernelMode::Fast`]): the fused pass over the pool's own buffers, then `finish_deferred` (or
    /// `finish_deferred_fast`) for the draws it deferred.
    pub(super) fn update_sample_score(&self) -> Result<()> {
        let (p, d) = (self.plan.params, self.ptrs());
        // The entries for the constant prior fold it into the update; a prior per task needs its own.
        let own_prior = d.alpha0 != 0 && d.beta0 != 0;
        let k = match (self.plan.mode, own_prior) {
            (KernelMode::Exact, false) => Kernel::UpdateSampleScore,
            (KernelMode::Fast, false) => Kernel::UpdateSampleScoreFast,
            (KernelMode::Exact, true) => Kernel::UpdateSampleScorePrior,
            (KernelMode::Fast, true) => Kernel::UpdateSampleScoreFastPrior,
        };
        // SAFETY: the kernel's parameters are (Params, Pool); `d` holds the pool's live buffers.
        unsafe { self.launch(k, self.plan.grid_n, BLOCK, &mut args![p, d]) }?;
        // The draws the fused pass deferred (`finish_deferred(Params, Pool)`, or `finish_deferred_fast`),
        // before anything reads the digits or hist0: one thread per word of 32 tasks, grid-stride.
        let k = match self.plan.mode {
            KernelMode::Exact => Kernel::FinishDeferred,
            KernelMode::Fast => Kernel::FinishDeferredFast,
        };
        let words = self.plan.params.n.div_ceil(32);
        let grid = words.div_ceil(BLOCK as u64).clamp(1, self.plan.grid_n as u64) as u32;
        // SAFETY: as above; `d.defer` holds ceil(n / 32) words, all written by the fused pass just launched.
        unsafe { self.launch(k, grid, BLOCK, &mut args![p, d]) }
    }

    /// `apply_pending(Params, Pool)`: a no-op on the device when nothing is pending.
    pub(super) fn apply_pending(&self) -> Result<()> {
        let (p, d) = (self.plan.params, self.ptrs());
        // SAFETY: the kernel's parameters are (Params, Pool); `d` holds the pool's live buffers.
        unsafe { self.launch(Kernel::ApplyPending, self.plan.grid_n, BLOCK, &mut args![p, d]) }
    }

    /// `clear_pending(Pool)`.
    pub(super) fn clear_pending(&self) -> Result<()> {
        let d = self.ptrs();
        // SAFETY: the kernel's parameter is (Pool); `d` holds the pool's live buffers.
        unsafe { self.launch(Kernel::ClearPending, 1, 1, &mut args![d]) }
    }

    /// `clear_error(Pool)`.
    pub(super) fn clear_error(&self) -> Result<()> {
        let d = self.ptrs();
        // SAFETY: the kernel's parameter is (Pool); `d` holds the pool's live buffers.
        unsafe { self.launch(Kernel::ClearError, 1, 1, &mut args![d]) }
    }

    /// `select_init(Pool, k, out_keys, pad_len)`: zeroes `out_keys[0..pad_len)`.
    ///
    /// # Safety
    /// `out_keys` points to at least `pad_len` writable u64 of this pool's context.
    pub(super) unsafe fn select_init(&self, k: u64, out_keys: u64, pad_len: u64) -> Result<()> {
        let d = self.ptrs();
        let grid = grid_for(pad_len.max((RADIX_PASSES as u64 + 1) * RADIX_BINS as u64));
        // SAFETY: the kernel's parameters are (Pool, u64, u64*, u64); `out_keys` is the caller's contract.
        unsafe { self.launch(Kernel::SelectInit, grid, BLOCK, &mut args![d, k, out_keys, pad_len]) }
    }

    /// `radix_find_bin(Pool, pass, cap)`.
    pub(super) fn radix_find_bin(&self, pass: i32) -> Result<()> {
        let (d, cap) = (self.ptrs(), self.plan.cand_cap as u64);
        // SAFETY: the kernel's parameters are (Pool, i32, u64); `cap` is the length of each candidate buffer.
        unsafe { self.launch(Kernel::RadixFindBin, 1, WIDE_BLOCK, &mut args![d, pass, cap]) }
    }

    /// `radix_filter(Params, Pool, cap, out_keys, out_cap, pass)` (or `radix_filter_fast`, the same
    /// parameters, in [`KernelMode::Fast`]: its pool scan recomputes the fast keys).
    ///
    /// # Safety
    /// `out_keys` points to at least `out_cap` writable u64 of this pool's context.
    pub(super) unsafe fn radix_filter(&self, out_keys: u64, out_cap: u64, pass: i32) -> Result<()> {
        let (p, d, cap) = (self.plan.params, self.ptrs(), self.plan.cand_cap as u64);
        let k = match self.plan.mode {
            KernelMode::Exact => Kernel::RadixFilter,
            KernelMode::Fast => Kernel::RadixFilterFast,
        };
        // SAFETY: the kernel's parameters are (Params, Pool, u64, u64*, u64, i32); `out_keys` is the
        // caller's contract, `cap` the length of each candidate buffer.
        unsafe { self.launch(k, self.plan.grid_n, BLOCK, &mut args![p, d, cap, out_keys, out_cap, pass]) }
    }

    /// `bitonic_sort_block(keys, len)` on the pool's `out_keys[0..len)`.
    pub(super) fn bitonic_sort_block(&self, len: usize) -> Result<()> {
        self.check_sort_len(len)?;
        let (keys, len) = (self.ptrs().out_keys, len as u32);
        // SAFETY: the kernel's parameters are (u64*, u32); `out_keys` holds at least `len` keys (checked).
        unsafe { self.launch(Kernel::BitonicSortBlock, 1, WIDE_BLOCK, &mut args![keys, len]) }
    }

    /// `bitonic_step(keys, len, size, j)` on the pool's `out_keys[0..len)`.
    pub(super) fn bitonic_step(&self, len: usize, size: u64, j: u64) -> Result<()> {
        self.check_sort_len(len)?;
        let (keys, len) = (self.ptrs().out_keys, len as u64);
        // SAFETY: the kernel's parameters are (u64*, u64, u64, u64); `out_keys` holds at least `len` keys.
        unsafe { self.launch(Kernel::BitonicStep, grid_for(len), BLOCK, &mut args![keys, len, size, j]) }
    }

    fn check_sort_len(&self, len: usize) -> Result<()> {
        if len > self.plan.out_keys_len {
            return Err(BotsError::Cuda(format!(
                "internal: sorting {len} keys in a buffer of {}",
                self.plan.out_keys_len
            )));
        }
        Ok(())
    }

    /// `keys_to_tasks(Pool, k, out)`.
    ///
    /// # Safety
    /// `out` points to at least `k` writable u32 of this pool's context; `k` is at most the pool's
    /// `out_keys` length.
    pub(super) unsafe fn keys_to_tasks(&self, k: u64, out: u64) -> Result<()> {
        let d = self.ptrs();
        // SAFETY: the kernel's parameters are (Pool, u64, u32*); `out` and `k` are the caller's contract.
        unsafe { self.launch(Kernel::KeysToTasks, grid_for(k), BLOCK, &mut args![d, k, out]) }
    }

    /// `batch_validate`, `batch_reduce`, `batch_scatter` (each `(Params, Pool, Batch)`), for a pool with
    /// a neighbour graph `nbr_push`, `nbr_pull_apply` (`(Params, Pool, Batch)`) and `nbr_clear(Params,
    /// Pool)`, and `batch_finish(Pool)`: one evidence batch, in that order. Every grid is fixed by the
    /// batch length and the pool's capacities (no count is read back), so the sequence can be captured.
    ///
    /// # Safety
    /// `b.tasks` and the outcome pointers `b.counts` selects point to `b.len` readable values each, in
    /// this pool's context, unchanged until the kernels have run.
    pub(super) unsafe fn batch(&self, b: BatchArgs) -> Result<()> {
        let (p, d) = (self.plan.params, self.ptrs());
        let g = grid_for(b.len);
        // SAFETY (all four): the parameters are (Params, Pool, Batch) and (Pool); `d` holds the pool's
        // live buffers, `b` is the caller's contract.
        unsafe { self.launch(Kernel::BatchValidate, g, BLOCK, &mut args![p, d, b]) }?;
        // One block of BATCH_LANES threads: the CPU's batch_sum adds in the same order.
        // SAFETY: as above.
        unsafe { self.launch(Kernel::BatchReduce, 1, crate::abi::BATCH_LANES, &mut args![p, d, b]) }?;
        // SAFETY: as above.
        unsafe { self.launch(Kernel::BatchScatter, g, BLOCK, &mut args![p, d, b]) }?;
        if p.nbr_k != 0 {
            // Neighbour evidence (docs/EVIDENCE-SOURCES.md §2.3): `d` holds the graph's buffers, of the
            // sizes `p` gives (the pool uploaded them together; `b.len` <= the batch capacity they are
            // sized for, checked by the callers).
            let push = grid_for(b.len.saturating_mul(p.nbr_max_in as u64));
            // SAFETY: as above; the parameters of nbr_push and nbr_pull_apply are (Params, Pool, Batch).
            unsafe { self.launch(Kernel::NbrPush, push, BLOCK, &mut args![p, d, b]) }?;
            // SAFETY: as above.
            unsafe { self.launch(Kernel::NbrPullApply, grid_for(p.nbr_touched_cap), BLOCK, &mut args![p, d, b]) }?;
            // SAFETY: the parameters of nbr_clear are (Params, Pool); `d` holds the pool's live buffers.
            unsafe { self.launch(Kernel::NbrClear, grid_for(p.nbr_hash_slots), BLOCK, &mut args![p, d]) }?;
        }
        // SAFETY: as above.
        unsafe { self.launch(Kernel::BatchFinish, 1, 1, &mut args![d]) }
    }

    /// Applies a pending pool-wide update without sampling (before a second update or a readback); a
    /// no-op on the device when nothing is pending.
    pub(super) fn flush(&self) -> Result<()> {
        self.apply_pending()?;
        self.clear_pending()
    }

    /// The fused pass and the radix select; leaves exactly k keys in `out_keys[0..k)` (unsorted) and
    /// zeroes `out_keys[k..pad_len)`.
    ///
    /// # Safety
    /// `out_keys` points to at least `max(out_cap, pad_len)` writable u64 of this pool's context.
    pub(super) unsafe fn select(&self, k: usize, out_keys: u64, out_cap: u64, pad_len: u64) -> Result<()> {
        // SAFETY: the caller's contract.
        unsafe { self.select_init(k as u64, out_keys, pad_len) }?;
        self.update_sample_score()?;
        for pass in 0..RADIX_PASSES as i32 {
            self.radix_find_bin(pass)?;
            // SAFETY: the caller's contract.
            unsafe { self.radix_filter(out_keys, out_cap, pass) }?;
        }
        Ok(())
    }

    /// Sorts the pool's `out_keys[0..pow2)` descending.
    pub(super) fn sort(&self, pow2: usize) -> Result<()> {
        if pow2 <= 1 {
            return Ok(());
        }
        if pow2 <= BLOCK_SORT_MAX {
            return self.bitonic_sort_block(pow2);
        }
        let len = pow2 as u64;
        let mut size = 2u64;
        while size <= len {
            let mut j = size >> 1;
            while j > 0 {
                self.bitonic_step(pow2, size, j)?;
                j >>= 1;
            }
            size <<= 1;
        }
        Ok(())
    }
}
