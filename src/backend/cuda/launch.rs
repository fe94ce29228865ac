//! Launching kernels: the pool's device pointers, the one `unsafe` launch and the launch sequences.

use std::ffi::c_void;

use cudarc::driver::{result, sys, CudaSlice, CudaStream, DevicePtr};

use super::pool::{CudaPool, DeviceFeatures};
use crate::abi::{Kernel as K, KernelParams, FEATURES_F16, FEATURES_F32, FEATURES_NONE, RADIX_BINS, RADIX_PASSES};
use crate::pool::FeatureForm;
use crate::error::{BotsError, Result};

/// Threads per block of the pool-sized kernels (their `__launch_bounds__(256, 4)`).
pub(super) const BLOCK: u32 = 256;

/// Raw device pointers of the pool's own buffers (taken once; the buffers never move).
#[derive(Clone, Copy, Default)]
pub(super) struct Ptrs {
    pub(super) alpha: u64,
    pub(super) beta: u64,
    pub(super) alpha0: u64,
    pub(super) beta0: u64,
    pub(super) fw: u64,
    pub(super) fs: u64,
    pub(super) scalars: u64,
    pub(super) digits: u64,
    pub(super) bitmap: u64,
    pub(super) hist: u64,
    pub(super) cand: u64,
    pub(super) out_keys: u64,
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

impl CudaPool {

    pub(super) fn params(&self) -> KernelParams {
        let c = &self.config;
        KernelParams {
            seed: c.seed,
            n: self.n as u64,
            lambda: c.lambda,
            m: c.m as f32,
            target: c.target,
            tau: c.tau,
            gamma: c.gamma,
            alpha0: self.constant_prior.0,
            beta0: self.constant_prior.1,
            do_sample: c.do_sample as u32,
            adaptive_rho: c.adaptive_rho as u32,
            feature_form: feature_code(self.features.as_ref().map(DeviceFeatures::form)),
        }
    }

    /// Launches kernel `k` on `stream`: the one place this crate calls `cuLaunchKernel`.
    ///
    /// # Safety
    /// `args` holds one pointer per parameter of `k` in `kernels/bots.cu`, in order, each to a value of
    /// exactly that parameter's type; every device pointer among them is null where the kernel allows
    /// it or a live buffer of this pool's context large enough for what the kernel indexes; `stream` is
    /// a live stream of that context.
    pub(super) unsafe fn launch(&self, k: K, grid: u32, block: u32, stream: sys::CUstream, args: &mut [*mut c_void]) -> Result<()> {
        // SAFETY: the function handle belongs to this pool's loaded module; the rest is the caller's
        // contract above.
        unsafe { result::launch_kernel(self.module.funcs[k as usize], (grid.max(1), 1, 1), (block, 1, 1), 0, stream, args) }
            .map_err(|e| BotsError::Cuda(format!("launching {}: {e:?}", k.name())))
    }

    /// Applies a pending pool-wide update without sampling (before a second update or a readback); a
    /// no-op on the device when nothing is pending.
    pub(super) fn flush_on(&self, stream: sys::CUstream) -> Result<()> {
        let params = self.params();
        let p = &self.p;
        // SAFETY: `args!` follows the kernel's parameters (checked against the PTX in CI); pointers are live buffers.
        unsafe { self.launch(K::ApplyPending, self.grid_n, BLOCK, stream, &mut args![params, p.alpha, p.beta, p.alpha0, p.beta0, p.fw, p.fs, p.scalars]) }?;
        // SAFETY: `args!` follows the kernel's parameters (checked against the PTX in CI); pointers are live buffers.
        unsafe { self.launch(K::ClearPending, 1, 1, stream, &mut args![p.scalars]) }?;
        Ok(())
    }

    /// The fused pass and the radix select; leaves exactly k keys in `out_keys[0..k)` (unsorted) and
    /// zeroes `out_keys[k..pad_len)`.
    pub(super) fn launch_select(&self, k: usize, out_keys: u64, out_cap: u64, pad_len: u64, stream: sys::CUstream) -> Result<()> {
        let params = self.params();
        let p = &self.p;
        let cap = self.cand_cap as u64;
        // SAFETY: `args!` follows the kernel's parameters (checked against the PTX in CI); pointers are live buffers.
        unsafe { self.launch(K::SelectInit, grid_for(pad_len.max((RADIX_PASSES as u64 + 1) * RADIX_BINS as u64)), BLOCK, stream, &mut args![p.scalars, k as u64, p.hist, out_keys, pad_len]) }?;
        // SAFETY: `args!` follows the kernel's parameters (checked against the PTX in CI); pointers are live buffers.
        unsafe { self.launch(
            K::UpdateSampleScore,
            self.grid_n,
            BLOCK,
            stream,
            &mut args![params, p.alpha, p.beta, p.alpha0, p.beta0, p.fw, p.fs, p.scalars, p.digits, p.hist],
        ) }?;
        for pass in 0..RADIX_PASSES as i32 {
            // SAFETY: `args!` follows the kernel's parameters (checked against the PTX in CI); pointers are live buffers.
            unsafe { self.launch(K::RadixFindBin, 1, 1024, stream, &mut args![p.scalars, p.hist, pass, cap]) }?;
            // SAFETY: `args!` follows the kernel's parameters (checked against the PTX in CI); pointers are live buffers.
            unsafe { self.launch(
                K::RadixFilter,
                self.grid_n,
                BLOCK,
                stream,
                &mut args![params, p.alpha, p.beta, p.scalars, p.digits, p.hist, p.cand, cap, out_keys, out_cap, pass],
            ) }?;
        }
        Ok(())
    }

    /// Sorts `out_keys[0..pow2)` descending.
    pub(super) fn launch_sort(&self, pow2: usize, stream: sys::CUstream) -> Result<()> {
        let keys = self.p.out_keys;
        if pow2 <= 1 {
            return Ok(());
        }
        if pow2 <= 2048 {
            // SAFETY: `args!` follows the kernel's parameters (checked against the PTX in CI); pointers are live buffers.
            return unsafe { self.launch(K::BitonicSortBlock, 1, 1024, stream, &mut args![keys, pow2 as u32]) };
        }
        let len = pow2 as u64;
        let mut size = 2u64;
        while size <= len {
            let mut j = size >> 1;
            while j > 0 {
                // SAFETY: `args!` follows the kernel's parameters (checked against the PTX in CI); pointers are live buffers.
                unsafe { self.launch(K::BitonicStep, grid_for(len), BLOCK, stream, &mut args![keys, len, size, j]) }?;
                j >>= 1;
            }
            size <<= 1;
        }
        Ok(())
    }

}
