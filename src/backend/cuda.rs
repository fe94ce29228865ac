//! The CUDA backend: the pool's state lives in device memory and one step is a few fused passes over it.
//!
//! # Device state (12 or 16 bytes per task, plus 2 of scratch)
//! `alpha`, `beta` (f32), the reference features `f_w`, `f_s` in the pool's form (f16, 4 bytes per
//! task, or f32, 8: [`crate::FeatureForm`]; the kernels read either), per-task priors only when the
//! state has them (+8 bytes/task), and 128 bytes of device scalars (step, mu, rho, the pending flag, the
//! error record, the radix-select state). Scratch: a 2-byte digit cache per task, a bitmap of n bits for
//! duplicate detection, histograms, and candidate/output buffers sized at construction for `k` up to a
//! capacity, so the trainer verbs allocate nothing per step.
//!
//! # One step, in launch order (all on one stream, no host round trip)
//! - `select_into`: `select_init`, `update_sample_score` (applies the pending pool-wide update, samples,
//!   scores and builds the first radix histogram), 6 × (`radix_find_bin`, `radix_filter`) over the
//!   shrinking candidate set, a bitonic sort of the k keys (descending) and `keys_to_tasks`.
//! - `update_from_device`: (`apply_pending` + `clear_pending` if an older update is still pending), then
//!   `batch_validate`, `batch_reduce`, `batch_scatter`, `batch_finish`. Invalid input leaves the state
//!   unchanged and sets a device error flag that the next synchronizing call ([`CudaPool::sync`],
//!   [`Backend::to_host`], [`Backend::update`]'s report) reports as [`BotsError::DeviceInput`] and
//!   clears. Only the invalid batch is skipped: valid batches issued after it still apply, and a host
//!   `update` whose own batch was applied may be the call that reports an earlier device batch's error.
//!   Host evidence ([`Backend::update`]) is also validated on the host first, with the CPU backend's
//!   typed errors.
//!
//! The step counter lives on the device and every kernel reads it from there, so a captured CUDA graph of
//! a step replays correctly. The host mirrors it ([`Backend::step`]); after an invalid device batch the
//! mirror runs ahead until the next synchronizing call resyncs it.
//!
//! # Agreement with the CPU backend
//! The kernels are compiled with `--fmad=false`, IEEE division and square root, and draw with the same
//! `fmath` functions as the CPU (`kernels/fmath.cuh` is `src/dist/fmath.rs` expression for expression:
//! no libm, no `__` intrinsics), so samples, keys, selections and the update arithmetic match
//! [`crate::CpuPool`] bit for bit (the CPU emulator in `scripts/emu` checks the device code this way).
//! The batch means are f64 sums in a fixed tree order rather than the CPU's sequential order, rounded
//! to f32: mu agrees except in rare last-bit cases.

//! # Assumed on real hardware (not checkable without a GPU; the CPU emulator in scripts/emu runs the
//! kernels' logic with the host libm, one thread at a time)
//! - The PTX (ISA <= 9.0, `compute_80`) JIT-compiles on driver 580 for sm_90; a refusal carries the JIT
//!   log in the error. The driver's JIT cache makes later pools' module loads cheap.
//! - All static shared memory stays under the 48 KB that needs no opt-in (largest: `batch_reduce`,
//!   24.6 KB); no kernel uses dynamic shared memory, so no `cuFuncSetAttribute` is needed. Register
//!   counts (ptxas -v, sm_90): at most 62 per thread, so the 256- and 1024-thread launches fit.
//! - Stream-ordered allocation (`cuMemAllocAsync`, which cudarc uses where the device supports memory
//!   pools) works on the legacy default stream of [`CudaPool::new`]; nothing allocates, frees or
//!   synchronizes between `select_into`/`update_from_device*` calls, so they can be graph-captured.
//! - A CUDA transcendental may differ from the host libm by 1-2 ulp: see "Agreement" above.

use std::cell::Cell;
use std::ffi::{c_void, CString};
use std::sync::Arc;

use cudarc::driver::{result, sys, CudaContext, CudaSlice, CudaStream, DevicePtr, DevicePtrMut};
use half::f16;

use crate::backend::cpu::check_state_fits;
use crate::backend::{Backend, UpdateReport};
use crate::config::Config;
use crate::error::{BotsError, Result};
use crate::evidence::{Evidence, Outcomes};
use crate::kernels;
use crate::pool::{FeatureForm, Features, Globals, PoolState, Prior};

/// Hyper-parameters as the kernels read them (`struct Params` in `kernels/model.cuh`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct KernelParams {
    seed: u64,
    n: u64,
    lambda: f32,
    m: f32,
    target: f32,
    tau: f32,
    gamma: f32,
    alpha0: f32,
    beta0: f32,
    do_sample: u32,
    adaptive_rho: u32,
    /// `BOTS_FEATURES_*` of `kernels/model.cuh`: 0 none, 1 f16, 2 f32 ([`feature_code`]).
    feature_form: u32,
}
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<KernelParams>() == 56);
    assert!(offset_of!(KernelParams, lambda) == 16);
    assert!(offset_of!(KernelParams, beta0) == 40);
    assert!(offset_of!(KernelParams, feature_form) == 52);
};

/// The kernels' code for a pool's feature form (`BOTS_FEATURES_*` in `kernels/model.cuh`).
fn feature_code(form: Option<FeatureForm>) -> u32 {
    match form {
        None => 0,
        Some(FeatureForm::F16) => 1,
        Some(FeatureForm::F32) => 2,
    }
}

/// The pool's feature columns on the device, in the form the host holds them.
enum DeviceFeatures {
    F16(CudaSlice<f16>, CudaSlice<f16>),
    F32(CudaSlice<f32>, CudaSlice<f32>),
}

impl DeviceFeatures {
    fn form(&self) -> FeatureForm {
        match self {
            DeviceFeatures::F16(..) => FeatureForm::F16,
            DeviceFeatures::F32(..) => FeatureForm::F32,
        }
    }

    /// Device pointers of the weak and strong columns.
    fn ptrs(&self, s: &CudaStream) -> (u64, u64) {
        match self {
            DeviceFeatures::F16(w, st) => (ptr(w, s), ptr(st, s)),
            DeviceFeatures::F32(w, st) => (ptr(w, s), ptr(st, s)),
        }
    }
}

/// The device scalars (`struct Scalars` in `kernels/model.cuh`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct DeviceScalars {
    step: u64,
    mu: f32,
    mu_set: u32,
    rho: f32,
    pending: u32,
    miss: f32,
    miss_set: u32,
    err_code: u32,
    err_pos: u32,
    err_task: u32,
    err_v0: f32,
    err_v1: f32,
    pad0: u32,
    batch_err: u64,
    prefix: u64,
    k_rem: u64,
    set_size: u64,
    n_out: u64,
    cand_cnt: [u64; 2],
    done: u32,
    read_buf: u32,
    write_buf: u32,
    pad1: u32,
}
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<DeviceScalars>() == 128);
    assert!(offset_of!(DeviceScalars, rho) == 16);
    assert!(offset_of!(DeviceScalars, err_code) == 32);
    assert!(offset_of!(DeviceScalars, batch_err) == 56);
    assert!(offset_of!(DeviceScalars, prefix) == 64);
    assert!(offset_of!(DeviceScalars, cand_cnt) == 96);
    assert!(offset_of!(DeviceScalars, done) == 112);
};
const SCALAR_WORDS: usize = 16;
const NO_ERROR: u64 = u64::MAX;
const RADIX_PASSES: i32 = 6;
const RADIX_BINS: usize = 2048;
const BLOCK: u32 = 256;

/// Kernel handles, in the order of [`kernels::BOTS_ENTRIES`].
#[derive(Clone, Copy)]
#[repr(usize)]
enum K {
    UpdateSampleScore = 0,
    ApplyPending,
    ClearPending,
    ClearError,
    SelectInit,
    RadixFindBin,
    RadixFilter,
    BitonicSortBlock,
    BitonicStep,
    KeysToTasks,
    BatchValidate,
    BatchReduce,
    BatchScatter,
    BatchFinish,
}

struct Module {
    module: sys::CUmodule,
    funcs: Vec<sys::CUfunction>,
    ctx: Arc<CudaContext>,
}

impl Module {
    fn load(ctx: &Arc<CudaContext>) -> Result<Module> {
        let ptx = kernels::BOTS_PTX.ok_or_else(|| BotsError::CudaUnavailable(kernels::NO_PTX_REASON.into()))?;
        let src = CString::new(ptx).map_err(|e| BotsError::Cuda(format!("PTX contains a NUL byte: {e}")))?;
        ctx.bind_to_thread().map_err(cuda_err)?;
        // cuModuleLoadDataEx with the JIT error log, so that a PTX the driver refuses (ISA version,
        // target, a ptxas error) says why in the first GPU log rather than only
        // CUDA_ERROR_INVALID_PTX. The PTX text is NUL-terminated (CString), as the driver requires.
        let mut log = vec![0u8; 1 << 14];
        let mut opts = [sys::CUjit_option::CU_JIT_ERROR_LOG_BUFFER, sys::CUjit_option::CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES];
        // The size option's value is passed in the pointer itself (the driver API's convention).
        let mut vals: [*mut c_void; 2] = [log.as_mut_ptr() as *mut c_void, log.len() as *mut c_void];
        let mut module = std::mem::MaybeUninit::<sys::CUmodule>::uninit();
        let loaded = unsafe {
            sys::cuModuleLoadDataEx(module.as_mut_ptr(), src.as_ptr() as *const c_void, 2, opts.as_mut_ptr(), vals.as_mut_ptr())
        }
        .result();
        if let Err(e) = loaded {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let jit = String::from_utf8_lossy(&log[..end]);
            return Err(BotsError::Cuda(format!("loading the kernels' PTX ({} bytes): {e:?}; JIT log: {}", ptx.len(), jit.trim())));
        }
        let module = unsafe { module.assume_init() };
        let mut funcs = Vec::with_capacity(kernels::BOTS_ENTRIES.len());
        for name in kernels::BOTS_ENTRIES {
            let c = CString::new(*name).expect("entry names have no NUL");
            match unsafe { result::module::get_function(module, c) } {
                Ok(f) => funcs.push(f),
                Err(e) => {
                    let _ = unsafe { result::module::unload(module) };
                    return Err(BotsError::Cuda(format!("kernel `{name}` missing from the PTX: {e}")));
                }
            }
        }
        Ok(Module { module, funcs, ctx: ctx.clone() })
    }
}

// SAFETY: a `CUmodule` and its `CUfunction`s are driver handles owned by a context, not by a thread:
// the driver API lets any thread use them once that context is current, and every use here (launches,
// the unload in `drop`) binds `ctx` to the calling thread first. Moving the owner to another thread is
// therefore sound. Not `Sync`: `CudaPool` mutates host mirrors (`Cell`) and shares scratch buffers
// between calls, so it takes `&mut self` for every launch and stays single-owner.
unsafe impl Send for Module {}

impl Drop for Module {
    fn drop(&mut self) {
        if self.ctx.bind_to_thread().is_ok() {
            let _ = unsafe { result::module::unload(self.module) };
        }
    }
}

fn cuda_err(e: impl std::fmt::Debug) -> BotsError {
    BotsError::Cuda(format!("{e:?}"))
}

/// Outcomes of a batch given as raw device pointers (see [`CudaPool::update_raw`]).
#[derive(Clone, Copy, Debug)]
pub enum RawOutcomes {
    /// `len` f32 pass rates in [0, 1].
    PassRates(sys::CUdeviceptr),
    /// `len` f32 success counts and `len` f32 failure counts.
    Counts { successes: sys::CUdeviceptr, failures: sys::CUdeviceptr },
}

/// Raw device pointers of the pool's own buffers (taken once; the buffers never move).
#[derive(Clone, Copy, Default)]
struct Ptrs {
    alpha: u64,
    beta: u64,
    alpha0: u64,
    beta0: u64,
    fw: u64,
    fs: u64,
    scalars: u64,
    digits: u64,
    bitmap: u64,
    hist: u64,
    cand: u64,
    out_keys: u64,
    out_tasks: u64,
    ev_tasks: u64,
    ev_a: u64,
    ev_b: u64,
}

fn ptr<T>(s: &CudaSlice<T>, stream: &CudaStream) -> u64 {
    s.device_ptr(stream).0
}

/// Pointers of kernel arguments for `cuLaunchKernel`: each argument must be an lvalue or a temporary
/// that lives to the end of the statement.
macro_rules! args {
    ($($a:expr),* $(,)?) => { [$( &$a as *const _ as *mut c_void ),*] };
}

/// A pool on one CUDA device.
///
/// ```no_run
/// use bots::{Backend, Config, Evidence};
/// use bots::backend::cuda::CudaPool;
/// let mut pool = CudaPool::new(Config { rho: 0.0, batch: 4, ..Default::default() }, 1000, None)?;
/// let tasks = pool.select_batch()?;
/// pool.update(&Evidence::pass_rates(tasks, vec![0.5; 4]))?;
/// assert_eq!(pool.step(), 1);
/// # Ok::<(), bots::BotsError>(())
/// ```
pub struct CudaPool {
    config: Config,
    n: usize,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    module: Module,
    alpha: CudaSlice<f32>,
    beta: CudaSlice<f32>,
    prior: Option<(CudaSlice<f32>, CudaSlice<f32>)>,
    constant_prior: (f32, f32),
    features: Option<DeviceFeatures>,
    scalars: CudaSlice<u64>,
    _digits: CudaSlice<u16>,
    _bitmap: CudaSlice<u32>,
    _hist: CudaSlice<u32>,
    _cand: CudaSlice<u64>,
    cand_cap: usize,
    _out_keys: CudaSlice<u64>,
    out_tasks: CudaSlice<u32>,
    k_cap: usize,
    ev_tasks: CudaSlice<u32>,
    ev_a: CudaSlice<f32>,
    ev_b: CudaSlice<f32>,
    p: Ptrs,
    grid_n: u32,
    device: String,
    /// Host mirror: an update's pool-wide part may still be pending on the device.
    pending: Cell<bool>,
    /// Host mirror of the device step counter.
    step: Cell<u64>,
}

impl CudaPool {
    /// A fresh pool of `n` tasks on device 0, with capacity `config.batch` for [`CudaPool::select_into`]
    /// and the device update verbs.
    ///
    /// ```no_run
    /// let pool = bots::backend::cuda::CudaPool::new(bots::Config { rho: 0.0, ..Default::default() }, 1 << 20, None)?;
    /// # Ok::<(), bots::BotsError>(())
    /// ```
    pub fn new(config: Config, n: usize, features: Option<Features>) -> Result<CudaPool> {
        Self::on_device(0, config, n, features)
    }

    /// A fresh pool on device `ordinal` (its default stream).
    ///
    /// ```no_run
    /// let pool = bots::backend::cuda::CudaPool::on_device(1, bots::Config { rho: 0.0, ..Default::default() }, 1000, None)?;
    /// # Ok::<(), bots::BotsError>(())
    /// ```
    pub fn on_device(ordinal: usize, config: Config, n: usize, features: Option<Features>) -> Result<CudaPool> {
        let ctx = context(ordinal)?;
        let stream = ctx.default_stream();
        let k_cap = config.batch;
        Self::with_capacity(stream, config, n, features, k_cap)
    }

    /// A fresh pool whose kernels run on the caller's stream (e.g. the trainer's), so selection and
    /// update are ordered with the caller's own work. `k_capacity` bounds `k` of the trainer verbs.
    ///
    /// ```no_run
    /// let ctx = cudarc::driver::CudaContext::new(0).unwrap();
    /// let stream = ctx.new_stream().unwrap();
    /// let pool = bots::backend::cuda::CudaPool::with_capacity(stream, bots::Config { rho: 0.0, ..Default::default() }, 1000, None, 64)?;
    /// # Ok::<(), bots::BotsError>(())
    /// ```
    pub fn with_capacity(
        stream: Arc<CudaStream>,
        config: Config,
        n: usize,
        features: Option<Features>,
        k_capacity: usize,
    ) -> Result<CudaPool> {
        let state = PoolState::new(&config, n, features)?;
        Self::from_state(stream, config, state, k_capacity)
    }

    /// A pool resuming from a saved state, on the given stream.
    ///
    /// ```no_run
    /// let cfg = bots::Config { rho: 0.0, ..Default::default() };
    /// let state = bots::PoolState::new(&cfg, 1000, None)?;
    /// let ctx = cudarc::driver::CudaContext::new(0).unwrap();
    /// let pool = bots::backend::cuda::CudaPool::from_state(ctx.default_stream(), cfg, state, 32)?;
    /// # Ok::<(), bots::BotsError>(())
    /// ```
    pub fn from_state(stream: Arc<CudaStream>, config: Config, state: PoolState, k_capacity: usize) -> Result<CudaPool> {
        config.validate()?;
        check_state_fits(&config, &state)?;
        if kernels::BOTS_PTX.is_none() {
            return Err(BotsError::CudaUnavailable(kernels::NO_PTX_REASON.into()));
        }
        let n = state.len();
        let ctx = stream.context().clone();
        let module = Module::load(&ctx)?;
        let k_cap = k_capacity.clamp(1, n);
        let cand_cap = n.min((1usize << 20).max(2 * k_cap));
        let ev_cap = config.batch.max(1);
        let pow2 = k_cap.next_power_of_two();
        let s = &stream;
        let alloc_err = |e| BotsError::Cuda(format!("allocating the pool of {n} tasks: {e:?}"));
        let alpha = s.clone_htod(&state.alpha).map_err(alloc_err)?;
        let beta = s.clone_htod(&state.beta).map_err(alloc_err)?;
        let (prior, constant_prior) = upload_prior(s, &state.prior)?;
        let features = upload_features(s, state.features.as_ref())?;
        let scalars = s.clone_htod(&scalar_words(&state.globals)).map_err(alloc_err)?;
        let digits = s.alloc_zeros::<u16>(n).map_err(alloc_err)?;
        let bitmap = s.alloc_zeros::<u32>(n.div_ceil(32)).map_err(alloc_err)?;
        let hist = s.alloc_zeros::<u32>((RADIX_PASSES as usize + 1) * RADIX_BINS).map_err(alloc_err)?;
        let cand = s.alloc_zeros::<u64>(2 * cand_cap).map_err(alloc_err)?;
        let out_keys = s.alloc_zeros::<u64>(pow2).map_err(alloc_err)?;
        let out_tasks = s.alloc_zeros::<u32>(k_cap).map_err(alloc_err)?;
        let ev_tasks = s.alloc_zeros::<u32>(ev_cap).map_err(alloc_err)?;
        let ev_a = s.alloc_zeros::<f32>(ev_cap).map_err(alloc_err)?;
        let ev_b = s.alloc_zeros::<f32>(ev_cap).map_err(alloc_err)?;
        let sms = ctx
            .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(cuda_err)?
            .max(1) as u64;
        let grid_n = (n as u64).div_ceil(BLOCK as u64).clamp(1, sms * 16) as u32;
        let device = ctx.name().unwrap_or_else(|_| "unknown".into());
        let mut p = Ptrs {
            alpha: ptr(&alpha, s),
            beta: ptr(&beta, s),
            scalars: ptr(&scalars, s),
            digits: ptr(&digits, s),
            bitmap: ptr(&bitmap, s),
            hist: ptr(&hist, s),
            cand: ptr(&cand, s),
            out_keys: ptr(&out_keys, s),
            out_tasks: ptr(&out_tasks, s),
            ev_tasks: ptr(&ev_tasks, s),
            ev_a: ptr(&ev_a, s),
            ev_b: ptr(&ev_b, s),
            ..Default::default()
        };
        if let Some((a0, b0)) = &prior {
            (p.alpha0, p.beta0) = (ptr(a0, s), ptr(b0, s));
        }
        if let Some(f) = &features {
            (p.fw, p.fs) = f.ptrs(s);
        }
        stream.synchronize().map_err(cuda_err)?;
        Ok(CudaPool {
            step: Cell::new(state.globals.step),
            config,
            n,
            ctx,
            stream,
            module,
            alpha,
            beta,
            prior,
            constant_prior,
            features,
            scalars,
            _digits: digits,
            _bitmap: bitmap,
            _hist: hist,
            _cand: cand,
            cand_cap,
            _out_keys: out_keys,
            out_tasks,
            k_cap,
            ev_tasks,
            ev_a,
            ev_b,
            p,
            grid_n,
            device,
            pending: Cell::new(false),
        })
    }

    /// The stream every kernel of this pool runs on (unless a raw verb names another).
    ///
    /// ```no_run
    /// # let pool = bots::backend::cuda::CudaPool::new(bots::Config { rho: 0.0, ..Default::default() }, 1000, None)?;
    /// let buf = pool.stream().alloc_zeros::<u32>(32).unwrap();
    /// # Ok::<(), bots::BotsError>(())
    /// ```
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The largest `k` of [`CudaPool::select_into`] (chosen at construction).
    ///
    /// ```no_run
    /// # let pool = bots::backend::cuda::CudaPool::new(bots::Config { rho: 0.0, batch: 32, ..Default::default() }, 1000, None)?;
    /// assert_eq!(pool.k_capacity(), 32);
    /// # Ok::<(), bots::BotsError>(())
    /// ```
    pub fn k_capacity(&self) -> usize {
        self.k_cap
    }

    /// Device-side selection for a trainer: the `k` best tasks at the current step, best first, written to
    /// `out[0..k]`. Never synchronizes and allocates nothing; needs `k <= k_capacity()`.
    ///
    /// ```no_run
    /// # let mut pool = bots::backend::cuda::CudaPool::new(bots::Config { rho: 0.0, batch: 32, ..Default::default() }, 1 << 20, None)?;
    /// let mut out = pool.stream().alloc_zeros::<u32>(32).unwrap();
    /// pool.select_into(32, &mut out)?;
    /// # Ok::<(), bots::BotsError>(())
    /// ```
    ///
    /// `out` is any device buffer of `u32` on this pool's context: a [`CudaSlice`], or a view
    /// (`slice.slice_mut(a..b)`), such as the storage of a framework's tensor at an offset.
    pub fn select_into(&mut self, k: usize, out: &mut impl DevicePtrMut<u32>) -> Result<()> {
        if out.len() < k {
            return Err(BotsError::LengthMismatch { what: "select_into output".into(), expected: k, got: out.len() });
        }
        let stream = self.stream.clone();
        let (dst, _guard) = out.device_ptr_mut(&stream);
        unsafe { self.select_into_raw(k, dst, stream.cu_stream()) }
    }

    /// [`CudaPool::select_into`] with a raw device pointer and stream, for trainers in other frameworks.
    ///
    /// # Safety
    /// `out` must point to at least `k` writable `u32` in this pool's context, and `stream` must be a
    /// live stream of that context. Calls on one pool must be ordered: issue all of them on one stream
    /// (or synchronize between streams yourself); the pool's scratch buffers are shared between calls.
    /// The host verbs (`select`, `update`, `to_host`, `sync`, `restore`) run on [`CudaPool::stream`]:
    /// when `stream` is another stream, synchronize it (or make the pool's stream wait on it) first.
    ///
    /// ```no_run
    /// # let mut pool = bots::backend::cuda::CudaPool::new(bots::Config { rho: 0.0, batch: 8, ..Default::default() }, 1000, None)?;
    /// let out = pool.stream().alloc_zeros::<u32>(8).unwrap();
    /// let raw = cudarc::driver::DevicePtr::device_ptr(&out, pool.stream()).0;
    /// unsafe { pool.select_into_raw(8, raw, pool.stream().cu_stream())? };
    /// # Ok::<(), bots::BotsError>(())
    /// ```
    pub unsafe fn select_into_raw(&mut self, k: usize, out: sys::CUdeviceptr, stream: sys::CUstream) -> Result<()> {
        if k == 0 || k > self.n {
            return Err(BotsError::InvalidK { k, len: self.n });
        }
        if k > self.k_cap {
            return Err(BotsError::config("k", format!("{k} exceeds this pool's k capacity {}", self.k_cap)));
        }
        self.ctx.bind_to_thread().map_err(cuda_err)?;
        let pow2 = k.next_power_of_two();
        self.launch_select(k, self.p.out_keys, k as u64, pow2 as u64, stream)?;
        self.launch_sort(pow2, stream)?;
        self.launch(K::KeysToTasks, grid_for(k as u64), BLOCK, stream, &mut args![self.p.out_keys, k as u64, out])
    }

    /// Device-side update for a trainer, from success/failure counts in device memory (one per task of
    /// `tasks`). Never synchronizes and allocates nothing; invalid input is reported by the next
    /// [`CudaPool::sync`], [`Backend::to_host`] or [`Backend::update`].
    ///
    /// ```no_run
    /// # let mut pool = bots::backend::cuda::CudaPool::new(bots::Config { rho: 0.0, batch: 2, ..Default::default() }, 1000, None)?;
    /// let s = pool.stream().clone();
    /// let tasks = s.clone_htod(&[3u32, 9]).unwrap();
    /// let succ = s.clone_htod(&[4.0f32, 0.0]).unwrap();
    /// let fail = s.clone_htod(&[12.0f32, 16.0]).unwrap();
    /// pool.update_from_device(&tasks, &succ, &fail)?;
    /// let report = pool.sync()?;
    /// assert_eq!(report.step, 1);
    /// # Ok::<(), bots::BotsError>(())
    /// ```
    ///
    /// Each argument is any device buffer on this pool's context: a [`CudaSlice`] or a view of one
    /// (`slice.slice(a..b)`), so a tensor's storage at an offset goes in without a copy.
    pub fn update_from_device(
        &mut self,
        tasks: &impl DevicePtr<u32>,
        successes: &impl DevicePtr<f32>,
        failures: &impl DevicePtr<f32>,
    ) -> Result<()> {
        let len = tasks.len();
        for (what, got) in [("successes", successes.len()), ("failures", failures.len())] {
            if got != len {
                return Err(BotsError::LengthMismatch { what: what.into(), expected: len, got });
            }
        }
        let stream = self.stream.clone();
        let (t, _g0) = tasks.device_ptr(&stream);
        let (s, _g1) = successes.device_ptr(&stream);
        let (f, _g2) = failures.device_ptr(&stream);
        unsafe { self.update_raw(t, RawOutcomes::Counts { successes: s, failures: f }, len, stream.cu_stream()) }
    }

    /// Device-side update from pass rates (mean reward of the config's m rollouts per task).
    ///
    /// ```no_run
    /// # let mut pool = bots::backend::cuda::CudaPool::new(bots::Config { rho: 0.0, batch: 2, ..Default::default() }, 1000, None)?;
    /// let s = pool.stream().clone();
    /// let tasks = s.clone_htod(&[3u32, 9]).unwrap();
    /// let rates = s.clone_htod(&[0.25f32, 1.0]).unwrap();
    /// pool.update_from_device_rates(&tasks, &rates)?;
    /// # Ok::<(), bots::BotsError>(())
    /// ```
    pub fn update_from_device_rates(&mut self, tasks: &impl DevicePtr<u32>, rates: &impl DevicePtr<f32>) -> Result<()> {
        let len = tasks.len();
        if rates.len() != len {
            return Err(BotsError::LengthMismatch { what: "pass rates".into(), expected: len, got: rates.len() });
        }
        let stream = self.stream.clone();
        let (t, _g0) = tasks.device_ptr(&stream);
        let (r, _g1) = rates.device_ptr(&stream);
        unsafe { self.update_raw(t, RawOutcomes::PassRates(r), len, stream.cu_stream()) }
    }

    /// The update verb with raw device pointers and a stream, for trainers in other frameworks (e.g. a
    /// PyTorch tensor's `data_ptr()` and `torch.cuda.current_stream().cuda_stream`).
    ///
    /// # Safety
    /// `tasks` must point to `len` readable `u32` and each outcome pointer to `len` readable `f32`, all in
    /// this pool's context and left unchanged until the kernels have run on `stream`, a live stream of
    /// that context. Calls on one pool must be ordered (one stream, or your own synchronization); see
    /// [`CudaPool::select_into_raw`] for mixing a foreign stream with the host verbs.
    ///
    /// ```no_run
    /// # let mut pool = bots::backend::cuda::CudaPool::new(bots::Config { rho: 0.0, batch: 2, ..Default::default() }, 1000, None)?;
    /// use bots::backend::cuda::RawOutcomes;
    /// use cudarc::driver::DevicePtr;
    /// let s = pool.stream().clone();
    /// let tasks = s.clone_htod(&[3u32, 9]).unwrap();
    /// let rates = s.clone_htod(&[0.25f32, 1.0]).unwrap();
    /// let (t, r) = (tasks.device_ptr(&s).0, rates.device_ptr(&s).0);
    /// unsafe { pool.update_raw(t, RawOutcomes::PassRates(r), 2, s.cu_stream())? };
    /// # Ok::<(), bots::BotsError>(())
    /// ```
    pub unsafe fn update_raw(
        &mut self,
        tasks: sys::CUdeviceptr,
        outcomes: RawOutcomes,
        len: usize,
        stream: sys::CUstream,
    ) -> Result<()> {
        if len == 0 {
            return Err(BotsError::Empty("the evidence batch"));
        }
        self.ctx.bind_to_thread().map_err(cuda_err)?;
        let (rates, succ, fail, counts) = match outcomes {
            RawOutcomes::PassRates(r) => (r, 0u64, 0u64, 0u32),
            RawOutcomes::Counts { successes, failures } => (0u64, successes, failures, 1u32),
        };
        if tasks == 0 || (counts == 0 && rates == 0) || (counts == 1 && (succ == 0 || fail == 0)) {
            return Err(BotsError::Cuda("null device pointer passed to update_raw".into()));
        }
        self.flush_on(stream)?;
        let params = self.params();
        let len = len as u64;
        let g = grid_for(len);
        let sc = self.p.scalars;
        self.launch(K::BatchValidate, g, BLOCK, stream, &mut args![params, tasks, rates, succ, fail, counts, len, self.p.bitmap, sc])?;
        self.launch(K::BatchReduce, 1, BLOCK, stream, &mut args![params, tasks, rates, succ, fail, counts, len, self.p.fw, self.p.fs, sc])?;
        self.launch(
            K::BatchScatter,
            g,
            BLOCK,
            stream,
            &mut args![params, tasks, rates, succ, fail, counts, len, self.p.alpha, self.p.beta, self.p.alpha0, self.p.beta0, self.p.bitmap, sc],
        )?;
        self.launch(K::BatchFinish, 1, 1, stream, &mut args![sc])?;
        self.pending.set(true);
        self.step.set(self.step.get() + 1);
        Ok(())
    }

    /// Waits for the pool's stream and reports the device state: the last update's statistics, or the
    /// error a device-side check found since the last report (the offending batch was skipped).
    ///
    /// ```no_run
    /// # let pool = bots::backend::cuda::CudaPool::new(bots::Config { rho: 0.0, ..Default::default() }, 1000, None)?;
    /// let report = pool.sync()?;
    /// println!("step {} rho {}", report.step, report.rho);
    /// # Ok::<(), bots::BotsError>(())
    /// ```
    pub fn sync(&self) -> Result<UpdateReport> {
        let sc = self.read_scalars()?;
        Ok(UpdateReport {
            step: sc.step,
            mu: (sc.mu_set != 0).then_some(sc.mu),
            rho: sc.rho,
            miss: (sc.miss_set != 0).then_some(sc.miss),
        })
    }

    // ----- internals -----

    fn params(&self) -> KernelParams {
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

    fn launch(&self, k: K, grid: u32, block: u32, stream: sys::CUstream, args: &mut [*mut c_void]) -> Result<()> {
        unsafe { result::launch_kernel(self.module.funcs[k as usize], (grid.max(1), 1, 1), (block, 1, 1), 0, stream, args) }
            .map_err(|e| BotsError::Cuda(format!("launching {}: {e:?}", kernels::BOTS_ENTRIES[k as usize])))
    }

    /// Applies a pending pool-wide update without sampling (before a second update or a readback).
    fn flush_on(&self, stream: sys::CUstream) -> Result<()> {
        if !self.pending.get() {
            return Ok(());
        }
        let params = self.params();
        let p = &self.p;
        self.launch(K::ApplyPending, self.grid_n, BLOCK, stream, &mut args![params, p.alpha, p.beta, p.alpha0, p.beta0, p.fw, p.fs, p.scalars])?;
        self.launch(K::ClearPending, 1, 1, stream, &mut args![p.scalars])?;
        self.pending.set(false);
        Ok(())
    }

    /// The fused pass and the radix select; leaves exactly k keys in `out_keys[0..k)` (unsorted) and
    /// zeroes `out_keys[k..pad_len)`.
    fn launch_select(&self, k: usize, out_keys: u64, out_cap: u64, pad_len: u64, stream: sys::CUstream) -> Result<()> {
        let params = self.params();
        let p = &self.p;
        let cap = self.cand_cap as u64;
        self.launch(K::SelectInit, grid_for(pad_len.max(((RADIX_PASSES + 1) as u64) * RADIX_BINS as u64)), BLOCK, stream, &mut args![p.scalars, k as u64, p.hist, out_keys, pad_len])?;
        self.launch(
            K::UpdateSampleScore,
            self.grid_n,
            BLOCK,
            stream,
            &mut args![params, p.alpha, p.beta, p.alpha0, p.beta0, p.fw, p.fs, p.scalars, p.digits, p.hist],
        )?;
        self.pending.set(false);
        for pass in 0..RADIX_PASSES {
            self.launch(K::RadixFindBin, 1, 1024, stream, &mut args![p.scalars, p.hist, pass, cap])?;
            self.launch(
                K::RadixFilter,
                self.grid_n,
                BLOCK,
                stream,
                &mut args![params, p.alpha, p.beta, p.scalars, p.digits, p.hist, p.cand, cap, out_keys, out_cap, pass],
            )?;
        }
        Ok(())
    }

    /// Sorts `out_keys[0..pow2)` descending.
    fn launch_sort(&self, pow2: usize, stream: sys::CUstream) -> Result<()> {
        let keys = self.p.out_keys;
        if pow2 <= 1 {
            return Ok(());
        }
        if pow2 <= 2048 {
            return self.launch(K::BitonicSortBlock, 1, 1024, stream, &mut args![keys, pow2 as u32]);
        }
        let len = pow2 as u64;
        let mut size = 2u64;
        while size <= len {
            let mut j = size >> 1;
            while j > 0 {
                self.launch(K::BitonicStep, grid_for(len), BLOCK, stream, &mut args![keys, len, size, j])?;
                j >>= 1;
            }
            size <<= 1;
        }
        Ok(())
    }

    fn read_scalars(&self) -> Result<DeviceScalars> {
        self.ctx.bind_to_thread().map_err(cuda_err)?;
        let words = self.stream.clone_dtoh(&self.scalars).map_err(cuda_err)?;
        self.stream.synchronize().map_err(cuda_err)?;
        let mut arr = [0u64; SCALAR_WORDS];
        arr.copy_from_slice(&words[..SCALAR_WORDS]);
        let sc: DeviceScalars = bytemuck::cast(arr);
        self.step.set(sc.step);
        if sc.err_code != 0 {
            self.launch(K::ClearError, 1, 1, self.stream.cu_stream(), &mut args![self.p.scalars])?;
            self.stream.synchronize().map_err(cuda_err)?;
            return Err(self.device_error(&sc));
        }
        Ok(sc)
    }

    fn device_error(&self, sc: &DeviceScalars) -> BotsError {
        let (task, pos, v0, v1) = (sc.err_task, sc.err_pos, sc.err_v0, sc.err_v1);
        let counts = |why: &str| format!("task {task} (position {pos}): counts successes={v0}, failures={v1} are invalid: {why}");
        BotsError::DeviceInput(match sc.err_code {
            1 => format!("task id {task} at position {pos} is out of range: the pool has {} tasks", self.n),
            // Which of the repeats is reported depends on the order of the device's atomics.
            2 => format!("task {task} appears more than once in one batch (a repeat at position {pos})"),
            3 => format!("task {task} (position {pos}): pass rate {v0} is not a number in [0, 1]"),
            4 => counts("counts must be finite numbers"),
            5 => counts("counts must not be negative"),
            6 => counts("at least one rollout is needed"),
            7 => counts(&format!("more than m = {} rollouts", self.config.m)),
            c => format!("internal error {c} in the radix select (pass {pos})"),
        })
    }
}

impl Drop for CudaPool {
    /// Waits for the pool's kernels before its buffers and module go.
    fn drop(&mut self) {
        if self.ctx.bind_to_thread().is_ok() {
            let _ = self.stream.synchronize();
        }
    }
}

fn grid_for(n: u64) -> u32 {
    n.div_ceil(BLOCK as u64).clamp(1, 65_535) as u32
}

fn scalar_words(g: &Globals) -> [u64; SCALAR_WORDS] {
    let sc = DeviceScalars {
        step: g.step,
        mu: g.mu.unwrap_or(0.0),
        mu_set: g.mu.is_some() as u32,
        rho: g.rho,
        batch_err: NO_ERROR,
        ..Default::default()
    };
    bytemuck::cast(sc)
}

fn context(ordinal: usize) -> Result<Arc<CudaContext>> {
    if kernels::BOTS_PTX.is_none() {
        return Err(BotsError::CudaUnavailable(kernels::NO_PTX_REASON.into()));
    }
    if !crate::backend::driver_present() {
        return Err(BotsError::CudaUnavailable("no CUDA driver (libcuda) found on this machine".into()));
    }
    CudaContext::new(ordinal).map_err(|e| BotsError::CudaUnavailable(format!("cannot open CUDA device {ordinal}: {e:?}")))
}

type PriorSlices = (Option<(CudaSlice<f32>, CudaSlice<f32>)>, (f32, f32));

fn upload_prior(s: &Arc<CudaStream>, prior: &Prior) -> Result<PriorSlices> {
    Ok(match prior {
        Prior::Constant { alpha0, beta0 } => (None, (*alpha0, *beta0)),
        Prior::PerTask { alpha0, beta0 } => {
            (Some((s.clone_htod(alpha0).map_err(cuda_err)?, s.clone_htod(beta0).map_err(cuda_err)?)), (1.0, 1.0))
        }
    })
}

fn upload_features(s: &Arc<CudaStream>, f: Option<&Features>) -> Result<Option<DeviceFeatures>> {
    Ok(match f {
        Some(Features::F16 { weak, strong }) => {
            Some(DeviceFeatures::F16(s.clone_htod(weak).map_err(cuda_err)?, s.clone_htod(strong).map_err(cuda_err)?))
        }
        Some(Features::F32 { weak, strong }) => {
            Some(DeviceFeatures::F32(s.clone_htod(weak).map_err(cuda_err)?, s.clone_htod(strong).map_err(cuda_err)?))
        }
        None => None,
    })
}

/// Host-side validation of host evidence, with the CPU backend's typed errors.
fn validate_host(n: usize, m: u32, ev: &Evidence) -> Result<()> {
    crate::evidence::validate_batch(n, m, ev).map(|_| ())
}

impl Backend for CudaPool {
    fn name(&self) -> String {
        format!("cuda:{}", self.device)
    }

    fn config(&self) -> &Config {
        &self.config
    }

    fn len(&self) -> usize {
        self.n
    }

    fn step(&self) -> u64 {
        self.step.get()
    }

    fn select(&mut self, k: usize) -> Result<Vec<u32>> {
        if k == 0 || k > self.n {
            return Err(BotsError::InvalidK { k, len: self.n });
        }
        let stream = self.stream.clone();
        if k <= self.k_cap {
            let out = self.p.out_tasks;
            unsafe { self.select_into_raw(k, out, stream.cu_stream())? };
            let tasks = stream.clone_dtoh(&self.out_tasks.slice(0..k)).map_err(cuda_err)?;
            stream.synchronize().map_err(cuda_err)?;
            return Ok(tasks);
        }
        // Larger than the preallocated capacity: gather into a temporary buffer and sort on the host.
        self.ctx.bind_to_thread().map_err(cuda_err)?;
        let keys = stream.alloc_zeros::<u64>(k).map_err(cuda_err)?;
        let kp = ptr(&keys, &stream);
        self.launch_select(k, kp, k as u64, 0, stream.cu_stream())?;
        let mut keys = stream.clone_dtoh(&keys).map_err(cuda_err)?;
        stream.synchronize().map_err(cuda_err)?;
        keys.sort_unstable_by(|a, b| b.cmp(a));
        Ok(keys.into_iter().map(crate::select::key_task).collect())
    }

    fn update(&mut self, evidence: &Evidence) -> Result<UpdateReport> {
        validate_host(self.n, self.config.m, evidence)?;
        let len = evidence.len();
        let stream = self.stream.clone();
        let (a, b) = match &evidence.outcomes {
            Outcomes::PassRates(r) => (r.as_slice(), None),
            Outcomes::Counts { successes, failures } => (successes.as_slice(), Some(failures.as_slice())),
        };
        if len <= self.ev_tasks.len() {
            stream.memcpy_htod(&evidence.tasks, &mut self.ev_tasks.slice_mut(0..len)).map_err(cuda_err)?;
            stream.memcpy_htod(a, &mut self.ev_a.slice_mut(0..len)).map_err(cuda_err)?;
            if let Some(b) = b {
                stream.memcpy_htod(b, &mut self.ev_b.slice_mut(0..len)).map_err(cuda_err)?;
            }
            let (t, pa, pb) = (self.p.ev_tasks, self.p.ev_a, self.p.ev_b);
            let o = if b.is_some() { RawOutcomes::Counts { successes: pa, failures: pb } } else { RawOutcomes::PassRates(pa) };
            unsafe { self.update_raw(t, o, len, stream.cu_stream())? };
        } else {
            let t = stream.clone_htod(&evidence.tasks).map_err(cuda_err)?;
            let da = stream.clone_htod(a).map_err(cuda_err)?;
            match b {
                Some(b) => {
                    let db = stream.clone_htod(b).map_err(cuda_err)?;
                    self.update_from_device(&t, &da, &db)?;
                }
                None => self.update_from_device_rates(&t, &da)?,
            }
            stream.synchronize().map_err(cuda_err)?;
        }
        self.sync()
    }

    fn to_host(&self) -> Result<PoolState> {
        self.ctx.bind_to_thread().map_err(cuda_err)?;
        self.flush_on(self.stream.cu_stream())?;
        let sc = self.read_scalars()?;
        let s = &self.stream;
        let alpha = s.clone_dtoh(&self.alpha).map_err(cuda_err)?;
        let beta = s.clone_dtoh(&self.beta).map_err(cuda_err)?;
        let prior = match &self.prior {
            Some((a0, b0)) => Prior::PerTask { alpha0: s.clone_dtoh(a0).map_err(cuda_err)?, beta0: s.clone_dtoh(b0).map_err(cuda_err)? },
            None => Prior::Constant { alpha0: self.constant_prior.0, beta0: self.constant_prior.1 },
        };
        let features = match &self.features {
            Some(DeviceFeatures::F16(w, st)) => {
                Some(Features::F16 { weak: s.clone_dtoh(w).map_err(cuda_err)?, strong: s.clone_dtoh(st).map_err(cuda_err)? })
            }
            Some(DeviceFeatures::F32(w, st)) => {
                Some(Features::F32 { weak: s.clone_dtoh(w).map_err(cuda_err)?, strong: s.clone_dtoh(st).map_err(cuda_err)? })
            }
            None => None,
        };
        s.synchronize().map_err(cuda_err)?;
        let globals = Globals { mu: (sc.mu_set != 0).then_some(sc.mu), rho: sc.rho, step: sc.step };
        Ok(PoolState { alpha, beta, prior, features, globals })
    }

    fn restore(&mut self, state: PoolState) -> Result<()> {
        check_state_fits(&self.config, &state)?;
        if state.len() != self.n {
            return Err(BotsError::LengthMismatch { what: "restored state (tasks)".into(), expected: self.n, got: state.len() });
        }
        self.ctx.bind_to_thread().map_err(cuda_err)?;
        let s = self.stream.clone();
        s.synchronize().map_err(cuda_err)?;
        let (prior, constant_prior) = upload_prior(&s, &state.prior)?;
        let features = upload_features(&s, state.features.as_ref())?;
        s.memcpy_htod(&state.alpha, &mut self.alpha).map_err(cuda_err)?;
        s.memcpy_htod(&state.beta, &mut self.beta).map_err(cuda_err)?;
        s.memcpy_htod(&scalar_words(&state.globals), &mut self.scalars).map_err(cuda_err)?;
        (self.p.alpha0, self.p.beta0) = prior.as_ref().map_or((0, 0), |(a, b)| (ptr(a, &s), ptr(b, &s)));
        (self.p.fw, self.p.fs) = features.as_ref().map_or((0, 0), |f| f.ptrs(&s));
        self.prior = prior;
        self.constant_prior = constant_prior;
        self.features = features;
        s.synchronize().map_err(cuda_err)?;
        self.pending.set(false);
        self.step.set(state.globals.step);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trainer's state holding a pool can cross threads (issue 12); checked at compile time.
    #[test]
    fn pool_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<CudaPool>();
    }

    /// Without a driver (or without PTX) construction is a typed error, never a panic.
    #[test]
    fn unavailable_is_a_typed_error() {
        let present = crate::backend::cuda_usable();
        if present {
            crate::test_skip("a CUDA driver is present: the no-driver refusal cannot be shown here");
            return;
        }
        let cfg = Config { rho: 0.0, ..Default::default() };
        match CudaPool::new(cfg.clone(), 10, None) {
            Err(BotsError::CudaUnavailable(_)) => {}
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("a pool without a driver"),
        }
        assert!(matches!(crate::open(crate::BackendKind::Cuda { ordinal: 0 }, cfg, 10, None), Err(BotsError::CudaUnavailable(_))));
    }

    #[test]
    fn host_validation_matches_the_cpu_errors() {
        let ev = |t: Vec<u32>| Evidence::pass_rates(t.clone(), vec![0.5; t.len()]);
        assert!(matches!(validate_host(10, 16, &ev(vec![])), Err(BotsError::Empty(_))));
        assert!(matches!(validate_host(10, 16, &ev(vec![10])), Err(BotsError::TaskOutOfRange { task: 10, .. })));
        assert!(matches!(validate_host(10, 16, &ev(vec![1, 2, 1])), Err(BotsError::DuplicateTask { task: 1, first: 0, second: 2 })));
        let bad = Evidence::counts(vec![1], vec![f32::NAN], vec![1.0]);
        assert!(matches!(validate_host(10, 16, &bad), Err(BotsError::InvalidCounts { .. })));
        let short = Evidence::pass_rates(vec![1, 2], vec![0.5]);
        assert!(matches!(validate_host(10, 16, &short), Err(BotsError::LengthMismatch { .. })));
        validate_host(10, 16, &ev(vec![0, 9])).unwrap();
    }

    /// The feature-form codes are the `BOTS_FEATURES_*` of `kernels/model.cuh`.
    #[test]
    fn feature_codes_match_the_kernels() {
        let header = include_str!("../../kernels/model.cuh");
        for (name, form) in [("NONE", None), ("F16", Some(FeatureForm::F16)), ("F32", Some(FeatureForm::F32))] {
            let line = format!("#define BOTS_FEATURES_{name} {}u", feature_code(form));
            assert!(header.contains(&line), "kernels/model.cuh lacks `{line}`");
        }
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
