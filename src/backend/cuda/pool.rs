//! [`CudaPool`]: construction and the trainer verbs.

use std::cell::Cell;
use std::sync::Arc;

use cudarc::driver::{result, sys, CudaContext, CudaEvent, CudaSlice, CudaStream, DevicePtr, DevicePtrMut};
use half::f16;

use super::launch::{feature_code, ptr, HostIoPtrs, LaunchPlan, Launcher, BLOCK};
use super::module::Module;
use super::{context, cuda_err};
use crate::abi::{
    BatchArgs, DeviceError, DevicePtrs, DeviceScalars, Kernel as K, KernelParams, NO_ERROR, RADIX_BINS, RADIX_PASSES,
    SCALAR_WORDS,
};
use crate::backend::UpdateReport;
use crate::config::Config;
use crate::error::{BotsError, Result};
use crate::fingerprint::features_digest;
use crate::kernels;
use crate::neighbours::Neighbours;
use crate::pool::{FeatureForm, Features, Globals, PoolState, Prior};

/// Outcomes of a batch given as raw device pointers (see [`CudaPool::update_raw`]).
#[derive(Clone, Copy, Debug)]
pub enum RawOutcomes {
    /// `len` f32 pass rates in [0, 1].
    PassRates(sys::CUdeviceptr),
    /// `len` f32 success counts and `len` f32 failure counts.
    Counts { successes: sys::CUdeviceptr, failures: sys::CUdeviceptr },
}

/// A pool on one CUDA device.
///
/// ```no_run
/// use bots::{Backend, Config, Evidence};
/// use bots::CudaPool;
/// let mut pool = CudaPool::new(Config { rho: 0.0, batch: 4, ..Default::default() }, 1000, None)?;
/// let tasks = pool.select_batch()?;
/// pool.update(&Evidence::pass_rates(tasks, vec![0.5; 4]))?;
/// assert_eq!(pool.step(), 1);
/// # Ok::<(), bots::BotsError>(())
/// ```
pub struct CudaPool {
    pub(super) config: Config,
    pub(super) n: usize,
    pub(super) ctx: Arc<CudaContext>,
    pub(super) stream: Arc<CudaStream>,
    /// What the launcher needs of the pool: the module, the parameters, the buffers, the grid.
    pub(super) plan: LaunchPlan,
    pub(super) alpha: CudaSlice<f32>,
    pub(super) beta: CudaSlice<f32>,
    pub(super) prior: Option<(CudaSlice<f32>, CudaSlice<f32>)>,
    pub(super) constant_prior: (f32, f32),
    pub(super) features: Option<DeviceFeatures>,
    pub(super) scalars: CudaSlice<u64>,
    pub(super) _digits: CudaSlice<u16>,
    pub(super) _bitmap: CudaSlice<u32>,
    pub(super) _defer: CudaSlice<u32>,
    pub(super) _hist: CudaSlice<u32>,
    pub(super) _cand: CudaSlice<u64>,
    pub(super) _out_keys: CudaSlice<u64>,
    pub(super) out_tasks: CudaSlice<u32>,
    pub(super) k_cap: usize,
    pub(super) ev_tasks: CudaSlice<u32>,
    pub(super) ev_a: CudaSlice<f32>,
    pub(super) ev_b: CudaSlice<f32>,
    pub(super) io: HostIoPtrs,
    pub(super) device: String,
    /// Never captured: takes cudarc's event bookkeeping of the caller's buffers while `stream` is
    /// capturing (see [`CudaPool::bookkeeping_stream`]).
    pub(super) side: Arc<CudaStream>,
    /// The handle the pool was built on when it is the legacy NULL stream or the per-thread default
    /// stream (candle's `Device::new_cuda` hands out the latter): those name another queue on every
    /// thread (or one that cannot be captured), so the pool runs on a stream of its own and every
    /// device verb is fenced with this handle as the calling thread sees it.
    pub(super) caller: Option<Arc<CudaStream>>,
    /// `[into the pool, out of the pool]`: the events of [`CudaPool::fence`], reused by every verb.
    pub(super) fences: [CudaEvent; 2],
    /// Host mirror of the device step counter.
    pub(super) step: Cell<u64>,
    /// The features' form and digest ([`crate::Fingerprint`]), kept on the host: the features
    /// themselves live on the device.
    pub(super) features_digest: Option<(FeatureForm, u64)>,
    /// The neighbour graph on the device, with its host copy and digest (None: no neighbour evidence).
    pub(super) graph: Option<DeviceGraph>,
    /// The largest batch the neighbour buffers take (the batch lookup and the touched list are sized
    /// for it): `max(config.batch, k_capacity)`, at most n; the host `update` grows it.
    pub(super) nbr_batch_cap: usize,
}

impl CudaPool {
    /// A fresh pool of `n` tasks on device 0, with capacity `config.batch` for [`CudaPool::select_into`]
    /// and the device update verbs.
    ///
    /// ```no_run
    /// let pool = bots::CudaPool::new(bots::Config { rho: 0.0, ..Default::default() }, 1 << 20, None)?;
    /// # Ok::<(), bots::BotsError>(())
    /// ```
    pub fn new(config: Config, n: usize, features: Option<Features>) -> Result<CudaPool> {
        Self::on_device(0, config, n, features)
    }

    /// A fresh pool on device `ordinal`, on a new non-blocking stream of its own ([`CudaPool::stream`]),
    /// so that the pool's work can be graph-captured (the legacy NULL stream cannot be).
    ///
    /// ```no_run
    /// let pool = bots::CudaPool::on_device(1, bots::Config { rho: 0.0, ..Default::default() }, 1000, None)?;
    /// # Ok::<(), bots::BotsError>(())
    /// ```
    pub fn on_device(ordinal: usize, config: Config, n: usize, features: Option<Features>) -> Result<CudaPool> {
        Self::on_device_with(ordinal, config, n, features, None)
    }

    /// A fresh pool on device `ordinal` with optional features and an optional neighbour graph
    /// (required when `neighbour_weight` > 0; docs/EVIDENCE-SOURCES.md §2).
    ///
    /// ```no_run
    /// use bots::{Backend, Config, CudaPool, Evidence, Neighbours};
    /// let g = Neighbours::from_lists(3, 1, vec![1, 0, u32::MAX], vec![0.9, 0.9, 0.0])?;
    /// let cfg = Config { rho: 0.0, neighbour_weight: 0.5, m: 8, batch: 1, ..Default::default() };
    /// let mut pool = CudaPool::on_device_with(0, cfg, 3, None, Some(g))?;
    /// pool.update(&Evidence::pass_rates(vec![0], vec![1.0]))?;
    /// # Ok::<(), bots::BotsError>(())
    /// ```
    pub fn on_device_with(
        ordinal: usize,
        config: Config,
        n: usize,
        features: Option<Features>,
        neighbours: Option<Neighbours>,
    ) -> Result<CudaPool> {
        let ctx = context(ordinal)?;
        let stream = ctx.new_stream().map_err(cuda_err)?;
        let k_cap = config.batch;
        Self::with_capacity_with(stream, config, n, features, neighbours, k_cap)
    }

    /// A fresh pool whose kernels run on the caller's stream (e.g. the trainer's), so selection and
    /// update are ordered with the caller's own work. `k_capacity` bounds `k` of the trainer verbs.
    ///
    /// ```no_run
    /// let ctx = cudarc::driver::CudaContext::new(0).unwrap();
    /// let stream = ctx.new_stream().unwrap();
    /// let pool = bots::CudaPool::with_capacity(stream, bots::Config { rho: 0.0, ..Default::default() }, 1000, None, 64)?;
    /// # Ok::<(), bots::BotsError>(())
    /// ```
    pub fn with_capacity(
        stream: Arc<CudaStream>,
        config: Config,
        n: usize,
        features: Option<Features>,
        k_capacity: usize,
    ) -> Result<CudaPool> {
        Self::with_capacity_with(stream, config, n, features, None, k_capacity)
    }

    /// [`CudaPool::with_capacity`] with an optional neighbour graph (required when a positive
    /// `neighbour_weight` is set; docs/EVIDENCE-SOURCES.md §2). The device verbs then take batches of up to
    /// `max(config.batch, k_capacity)` tasks (the neighbour buffers are sized for that).
    pub fn with_capacity_with(
        stream: Arc<CudaStream>,
        config: Config,
        n: usize,
        features: Option<Features>,
        neighbours: Option<Neighbours>,
        k_capacity: usize,
    ) -> Result<CudaPool> {
        let state = PoolState::with_neighbours(&config, n, features, neighbours)?;
        Self::from_state(stream, config, state, k_capacity)
    }

    /// A pool resuming from a saved state, on the given stream.
    ///
    /// A stream handle that names another queue on every thread or cannot be captured (the legacy
    /// NULL stream, [`CudaContext::default_stream`](cudarc::driver::CudaContext::default_stream), and
    /// the per-thread default stream, [`per_thread_stream`](cudarc::driver::CudaContext::per_thread_stream),
    /// which candle's `Device::new_cuda` uses) is not run on: the pool makes a non-blocking stream of its
    /// own, and every device verb first waits for the work the calling thread enqueued on that handle
    /// and then makes the handle wait for the pool's kernels. So the pool stays ordered with its
    /// caller's work whatever thread it is used from.
    ///
    /// ```no_run
    /// let cfg = bots::Config { rho: 0.0, ..Default::default() };
    /// let state = bots::PoolState::new(&cfg, 1000, None)?;
    /// let ctx = cudarc::driver::CudaContext::new(0).unwrap();
    /// let pool = bots::CudaPool::from_state(ctx.default_stream(), cfg, state, 32)?;
    /// # Ok::<(), bots::BotsError>(())
    /// ```
    pub fn from_state(
        stream: Arc<CudaStream>,
        config: Config,
        mut state: PoolState,
        k_capacity: usize,
    ) -> Result<CudaPool> {
        config.validate()?;
        state.check_fits(&config)?;
        if !kernels::has_ptx() {
            return Err(BotsError::CudaUnavailable(kernels::NO_PTX_REASON.into()));
        }
        let n = state.len();
        let ctx = stream.context().clone();
        let (stream, caller) = if per_thread_or_legacy(stream.cu_stream()) {
            (ctx.new_stream().map_err(cuda_err)?, Some(stream))
        } else {
            (stream, None)
        };
        let fences = [ctx.new_event(None).map_err(cuda_err)?, ctx.new_event(None).map_err(cuda_err)?];
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
        let features = upload_features(s, state.features.as_ref(), n)?;
        let features_digest = state.features.as_ref().map(features_digest);
        let nbr_batch_cap = ev_cap.max(k_cap).min(n);
        let graph = state.neighbours.take().map(|g| DeviceGraph::upload(s, g, n, nbr_batch_cap)).transpose()?;
        let scalars = s.clone_htod(&scalar_words(&state.globals)).map_err(alloc_err)?;
        let digits = s.alloc_zeros::<u16>(n).map_err(alloc_err)?;
        let bitmap = s.alloc_zeros::<u32>(n.div_ceil(32)).map_err(alloc_err)?;
        let defer = s.alloc_zeros::<u32>(n.div_ceil(32)).map_err(alloc_err)?;
        let hist = s.alloc_zeros::<u32>((RADIX_PASSES as usize + 1) * RADIX_BINS as usize).map_err(alloc_err)?;
        let cand = s.alloc_zeros::<u64>(2 * cand_cap).map_err(alloc_err)?;
        let out_keys = s.alloc_zeros::<u64>(pow2).map_err(alloc_err)?;
        let out_tasks = s.alloc_zeros::<u32>(k_cap).map_err(alloc_err)?;
        let ev_tasks = s.alloc_zeros::<u32>(ev_cap).map_err(alloc_err)?;
        let ev_a = s.alloc_zeros::<f32>(ev_cap).map_err(alloc_err)?;
        let ev_b = s.alloc_zeros::<f32>(ev_cap).map_err(alloc_err)?;
        let sms =
            ctx.attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT).map_err(cuda_err)?.max(1)
                as u64;
        // The pool-sized kernels run as many blocks as fit on the device at once (grid-stride loops).
        let mut per_sm = u64::MAX;
        for k in [
            K::UpdateSampleScore,
            K::RadixFilter,
            K::UpdateSampleScoreFast,
            K::RadixFilterFast,
            K::ApplyPending,
            K::UpdateSampleScorePrior,
            K::UpdateSampleScoreFastPrior,
        ] {
            let mut blocks = 0i32;
            // SAFETY: `module.funcs[k]` is a live function of the module loaded above, in this context.
            unsafe {
                sys::cuOccupancyMaxActiveBlocksPerMultiprocessor(&mut blocks, module.funcs[k as usize], BLOCK as i32, 0)
            }
            .result()
            .map_err(|e| BotsError::Cuda(format!("occupancy of {}: {e:?}", k.name())))?;
            per_sm = per_sm.min(blocks.max(1) as u64);
        }
        let grid_n = (n as u64).div_ceil(BLOCK as u64).clamp(1, sms * per_sm) as u32;
        let side = ctx.new_stream().map_err(cuda_err)?;
        let device = ctx.name().unwrap_or_else(|_| "unknown".into());
        let mut p = DevicePtrs {
            alpha: ptr(&alpha, s),
            beta: ptr(&beta, s),
            scalars: ptr(&scalars, s),
            digits: ptr(&digits, s),
            bitmap: ptr(&bitmap, s),
            defer: ptr(&defer, s),
            hist: ptr(&hist, s),
            cand: ptr(&cand, s),
            out_keys: ptr(&out_keys, s),
            ..Default::default()
        };
        let io = HostIoPtrs {
            out_tasks: ptr(&out_tasks, s),
            ev_tasks: ptr(&ev_tasks, s),
            ev_a: ptr(&ev_a, s),
            ev_b: ptr(&ev_b, s),
        };
        if let Some((a0, b0)) = &prior {
            (p.alpha0, p.beta0) = (ptr(a0, s), ptr(b0, s));
        }
        if let Some(f) = &features {
            p.feat = f.ptr(s);
        }
        if let Some(g) = &graph {
            g.set_ptrs(&mut p, s);
        }
        stream.synchronize().map_err(cuda_err)?;
        let params = kernel_params(&config, n, constant_prior, features.as_ref(), graph.as_ref());
        let mode = config.kernel_mode;
        let plan = LaunchPlan { module, params, ptrs: p, grid_n, cand_cap, out_keys_len: pow2, mode };
        Ok(CudaPool {
            plan,
            step: Cell::new(state.globals.step),
            config,
            n,
            ctx,
            stream,
            alpha,
            beta,
            prior,
            constant_prior,
            features,
            scalars,
            _digits: digits,
            _bitmap: bitmap,
            _defer: defer,
            _hist: hist,
            _cand: cand,
            _out_keys: out_keys,
            out_tasks,
            k_cap,
            ev_tasks,
            ev_a,
            ev_b,
            io,
            device,
            side,
            caller,
            fences,
            features_digest,
            graph,
            nbr_batch_cap,
        })
    }

    /// The stream every kernel of this pool runs on: the one it was built on, or, where that was the
    /// legacy NULL stream or the per-thread default stream, a non-blocking stream of its own (see
    /// [`CudaPool::from_state`]). Work the raw verbs are given on another stream is fenced with it.
    ///
    /// ```no_run
    /// # let pool = bots::CudaPool::new(bots::Config { rho: 0.0, ..Default::default() }, 1000, None)?;
    /// let buf = pool.stream().alloc_zeros::<u32>(32).unwrap();
    /// # Ok::<(), bots::BotsError>(())
    /// ```
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The largest `k` of [`CudaPool::select_into`] (chosen at construction).
    ///
    /// ```no_run
    /// # let pool = bots::CudaPool::new(bots::Config { rho: 0.0, batch: 32, ..Default::default() }, 1000, None)?;
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
    /// # let mut pool = bots::CudaPool::new(bots::Config { rho: 0.0, batch: 32, ..Default::default() }, 1 << 20, None)?;
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
        let book = self.bookkeeping_stream()?;
        let (dst, _guard) = out.device_ptr_mut(&book);
        // SAFETY: `out` holds at least k u32 (checked above) of this pool's context, and the pool's
        // own stream is live for as long as the pool.
        unsafe { self.select_into_raw(k, dst, stream.cu_stream()) }
    }

    /// [`CudaPool::select_into`] with a raw device pointer and stream, for trainers in other frameworks.
    ///
    /// The kernels run on [`CudaPool::stream`]. When `stream` is another stream, they are fenced with
    /// it: they start after the work enqueued on `stream` before this call (the producer of `out`'s
    /// previous contents, say), and work enqueued on `stream` after this call starts after them. So
    /// every later verb, host verbs included, sees this one, from whatever stream it is issued.
    ///
    /// # Safety
    /// `out` must point to at least `k` writable `u32` in this pool's context, and `stream` must be a
    /// live stream of that context (or the NULL / per-thread handle).
    ///
    /// ```no_run
    /// # let mut pool = bots::CudaPool::new(bots::Config { rho: 0.0, batch: 8, ..Default::default() }, 1000, None)?;
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
        // SAFETY: `stream` is a live stream of this context (this function's contract).
        let foreign = unsafe { self.fence_in(stream) }?;
        let l = self.on_own_stream();
        // SAFETY: the pool's `out_keys` holds `out_keys_len` >= pow2 >= k keys (k <= k_cap, checked).
        unsafe { l.select(k, self.plan.ptrs.out_keys, k as u64, pow2 as u64) }?;
        l.sort(pow2)?;
        // SAFETY: `out` holds k u32 (this function's contract); k <= k_cap <= out_keys_len.
        unsafe { l.keys_to_tasks(k as u64, out) }?;
        // SAFETY: `foreign` came from fence_in: a live stream of this context.
        unsafe { self.fence_out(foreign) }
    }

    /// Device-side update for a trainer, from success/failure counts in device memory (one per task of
    /// `tasks`). Never synchronizes and allocates nothing; invalid input is reported by the next
    /// [`CudaPool::sync`], [`Backend::to_host`](crate::Backend::to_host) or [`Backend::update`](crate::Backend::update).
    ///
    /// ```no_run
    /// # let mut pool = bots::CudaPool::new(bots::Config { rho: 0.0, batch: 2, ..Default::default() }, 1000, None)?;
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
        let book = self.bookkeeping_stream()?;
        let (t, _g0) = tasks.device_ptr(&book);
        let (s, _g1) = successes.device_ptr(&book);
        let (f, _g2) = failures.device_ptr(&book);
        // SAFETY: three device buffers of `len` elements each (checked above), on the pool's stream.
        unsafe { self.update_raw(t, RawOutcomes::Counts { successes: s, failures: f }, len, stream.cu_stream()) }
    }

    /// Device-side update from pass rates (mean reward of the config's m rollouts per task).
    ///
    /// ```no_run
    /// # let mut pool = bots::CudaPool::new(bots::Config { rho: 0.0, batch: 2, ..Default::default() }, 1000, None)?;
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
        let book = self.bookkeeping_stream()?;
        let (t, _g0) = tasks.device_ptr(&book);
        let (r, _g1) = rates.device_ptr(&book);
        // SAFETY: two device buffers of `len` elements each (checked above), on the pool's stream.
        unsafe { self.update_raw(t, RawOutcomes::PassRates(r), len, stream.cu_stream()) }
    }

    /// The update verb with raw device pointers and a stream, for trainers in other frameworks (e.g. a
    /// PyTorch tensor's `data_ptr()` and `torch.cuda.current_stream().cuda_stream`).
    ///
    /// Fenced with `stream` as [`CudaPool::select_into_raw`] is: the kernels (on the pool's stream)
    /// read the inputs after the work enqueued on `stream` before the call, and later work on `stream`
    /// (freeing or overwriting the inputs, say) waits for them.
    ///
    /// # Safety
    /// `tasks` must point to `len` readable `u32` and each outcome pointer to `len` readable `f32`, all in
    /// this pool's context, and `stream` must be a live stream of that context (or the NULL /
    /// per-thread handle); the inputs must not be changed from any other stream until the kernels ran.
    ///
    /// ```no_run
    /// # let mut pool = bots::CudaPool::new(bots::Config { rho: 0.0, batch: 2, ..Default::default() }, 1000, None)?;
    /// use bots::RawOutcomes;
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
        if let Some(g) = &self.graph {
            if len > g.batch_cap {
                return Err(BotsError::config(
                    "batch",
                    format!(
                        "a device batch of {len} tasks exceeds the {} this pool's neighbour buffers take \
                         (max(config.batch, k_capacity) at construction)",
                        g.batch_cap
                    ),
                ));
            }
        }
        self.ctx.bind_to_thread().map_err(cuda_err)?;
        let (rates, succ, fail, counts) = match outcomes {
            RawOutcomes::PassRates(r) => (r, 0u64, 0u64, 0u32),
            RawOutcomes::Counts { successes, failures } => (0u64, successes, failures, 1u32),
        };
        if tasks == 0 || (counts == 0 && rates == 0) || (counts == 1 && (succ == 0 || fail == 0)) {
            return Err(BotsError::Cuda("null device pointer passed to update_raw".into()));
        }
        // SAFETY: `stream` is a live stream of this context (this function's contract).
        let foreign = unsafe { self.fence_in(stream) }?;
        let l = self.on_own_stream();
        // Always launched (both test the device's pending flag): a graph captured after a select must
        // still apply the pending update when it is replayed twice in a row.
        l.flush()?;
        let batch = BatchArgs { tasks, rates, succ, fail, len: len as u64, counts, pad0: 0 };
        // SAFETY: the pointers hold `len` values each (this function's contract), non-null (checked).
        unsafe { l.batch(batch) }?;
        self.step.set(self.step.get() + 1);
        // SAFETY: `foreign` came from fence_in: a live stream of this context.
        unsafe { self.fence_out(foreign) }
    }

    /// The stream a verb given `stream` must be fenced with, if any: `stream` when it is not the pool's
    /// own; else the handle the pool was built on ([`CudaPool::caller`]), unless the pool's stream is
    /// capturing (a graph orders its own nodes; the NULL stream may not be touched during a capture).
    /// Then makes the pool's stream wait for the work enqueued there so far.
    ///
    /// # Safety
    /// `stream` is a live stream of this pool's context, or the NULL / per-thread handle.
    unsafe fn fence_in(&self, stream: sys::CUstream) -> Result<Option<sys::CUstream>> {
        let own = self.stream.cu_stream();
        let foreign = if stream != own {
            Some(stream)
        } else {
            match &self.caller {
                Some(c)
                    if self.stream.capture_status().map_err(cuda_err)?
                        == sys::CUstreamCaptureStatus::CU_STREAM_CAPTURE_STATUS_NONE =>
                {
                    Some(c.cu_stream())
                }
                _ => None,
            }
        };
        if let Some(f) = foreign {
            // SAFETY: both streams are of this context (the contract); the event is the pool's own.
            unsafe { self.fence(f, own, 0) }?;
        }
        Ok(foreign)
    }

    /// Makes `foreign` (from [`CudaPool::fence_in`]) wait for the pool's work enqueued so far.
    ///
    /// # Safety
    /// As [`CudaPool::fence_in`].
    unsafe fn fence_out(&self, foreign: Option<sys::CUstream>) -> Result<()> {
        match foreign {
            // SAFETY: both streams are of this context (the contract); the event is the pool's own.
            Some(f) => unsafe { self.fence(self.stream.cu_stream(), f, 1) },
            None => Ok(()),
        }
    }

    /// Records `fences[which]` on `from` and makes `to` wait for it (no host synchronization).
    ///
    /// # Safety
    /// `from` and `to` are live streams of this pool's context (or the NULL / per-thread handle).
    unsafe fn fence(&self, from: sys::CUstream, to: sys::CUstream, which: usize) -> Result<()> {
        let ev = self.fences[which].cu_event();
        // SAFETY: `ev` is a live event of this context (owned by the pool); the streams are the contract.
        unsafe {
            result::event::record(ev, from).map_err(cuda_err)?;
            result::stream::wait_event(to, ev, sys::CUevent_wait_flags::CU_EVENT_WAIT_DEFAULT).map_err(cuda_err)
        }
    }

    /// The handle the pool was built on when it runs on a stream of its own instead (see
    /// [`CudaPool::from_state`]); `None` when it runs on the stream it was given.
    pub fn caller_stream(&self) -> Option<&Arc<CudaStream>> {
        self.caller.as_ref()
    }

    /// Waits for the pool's stream and reports the device state: the last update's statistics, or the
    /// error a device-side check found since the last report (the offending batch was skipped).
    ///
    /// ```no_run
    /// # let pool = bots::CudaPool::new(bots::Config { rho: 0.0, ..Default::default() }, 1000, None)?;
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

    /// The stream to hand cudarc's `device_ptr(_mut)` for a caller's buffer. With event tracking on
    /// (cudarc's default, active once a context has a second stream) those calls make the stream wait
    /// on the buffer's last write and record a use event. Inside a stream capture that event would be
    /// recorded into the graph, and every later eager use of the buffer would fail with
    /// `CUDA_ERROR_CAPTURED_EVENT`; so while the pool's stream is capturing, the bookkeeping goes to
    /// the pool's side stream, which is never captured (ordering inside a graph is the graph's).
    pub(super) fn bookkeeping_stream(&self) -> Result<Arc<CudaStream>> {
        let status = self.stream.capture_status().map_err(cuda_err)?;
        Ok(if status == sys::CUstreamCaptureStatus::CU_STREAM_CAPTURE_STATUS_NONE {
            self.stream.clone()
        } else {
            self.side.clone()
        })
    }

    /// After a synchronized select: an inconsistent radix select (flagged by the device, never by
    /// valid input) is an error rather than a selection holding task `u32::MAX`. Input errors of
    /// earlier device batches stay recorded for the next [`CudaPool::sync`].
    pub(super) fn check_select(&self) -> Result<()> {
        let sc = self.scalars_now()?;
        if sc.err_code == DeviceError::Internal as u32 {
            self.on_own_stream().clear_error()?;
            self.stream.synchronize().map_err(cuda_err)?;
            return Err(self.device_error(&sc));
        }
        Ok(())
    }

    pub(super) fn scalars_now(&self) -> Result<DeviceScalars> {
        self.ctx.bind_to_thread().map_err(cuda_err)?;
        let words = self.stream.clone_dtoh(&self.scalars).map_err(cuda_err)?;
        self.stream.synchronize().map_err(cuda_err)?;
        let mut arr = [0u64; SCALAR_WORDS];
        arr.copy_from_slice(&words[..SCALAR_WORDS]);
        Ok(bytemuck::cast(arr))
    }

    pub(super) fn read_scalars(&self) -> Result<DeviceScalars> {
        let sc = self.scalars_now()?;
        self.step.set(sc.step);
        if sc.err_code != 0 {
            self.on_own_stream().clear_error()?;
            self.stream.synchronize().map_err(cuda_err)?;
            return Err(self.device_error(&sc));
        }
        Ok(sc)
    }

    /// The device's error record as the host validation's error ([`BotsError::from_device_record`]), or
    /// a [`BotsError::Cuda`] for an internal error of the radix select.
    pub(super) fn device_error(&self, sc: &DeviceScalars) -> BotsError {
        DeviceError::from_code(sc.err_code)
            .and_then(|code| {
                BotsError::from_device_record(
                    code,
                    sc.err_task,
                    sc.err_pos,
                    sc.err_v0,
                    sc.err_v1,
                    self.n,
                    self.config.m,
                )
            })
            .unwrap_or_else(|| {
                if sc.err_pos == 0xffff_fffe {
                    return BotsError::Cuda("internal error: the neighbour kernels' touched list overflowed".into());
                }
                if sc.err_pos == 0xffff_fffd {
                    return BotsError::Cuda(
                        "internal error: the fused pass for the constant prior was launched on a pool with a prior per task"
                            .into(),
                    );
                }
                BotsError::Cuda(format!(
                    "internal error {} in the kernels (the radix select's pass, or the neighbour lookup's batch row: {})",
                    sc.err_code, sc.err_pos
                ))
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

impl CudaPool {
    /// Launches on the pool's own stream: every kernel of the pool runs there (a caller's stream is
    /// ordered with it by [`CudaPool::fence`], never launched on).
    pub(super) fn on_own_stream(&self) -> Launcher<'_> {
        // SAFETY: the pool's own stream lives as long as the pool (and its plan), in the plan's context.
        unsafe { self.plan.on(self.stream.cu_stream()) }
    }

    /// The kernels' parameter block again, after a restore changed the prior, the features or the graph.
    pub(super) fn refresh_params(&mut self) {
        self.plan.params =
            kernel_params(&self.config, self.n, self.constant_prior, self.features.as_ref(), self.graph.as_ref());
        self.plan.mode = self.config.kernel_mode;
    }

    /// Replaces the device graph (or removes it) and points the kernels at it. The buffers of the old
    /// one go: a CUDA graph captured before replays on freed memory (as after any restore).
    pub(super) fn set_graph(&mut self, graph: Option<DeviceGraph>) {
        let s = self.stream.clone();
        let p = &mut self.plan.ptrs;
        (p.nbr_ids, p.nbr_w, p.rev_off, p.rev_ids, p.claim, p.touched, p.batch_hash) = (0, 0, 0, 0, 0, 0, 0);
        if let Some(g) = &graph {
            g.set_ptrs(p, &s);
        }
        self.graph = graph;
        self.refresh_params();
    }

    /// Makes the neighbour buffers take a host batch of `len` tasks (growing them; before any launch
    /// of that batch). A no-op without a graph or when they already do.
    pub(super) fn reserve_batch(&mut self, len: usize) -> Result<()> {
        let Some(g) = &self.graph else { return Ok(()) };
        if len <= g.batch_cap {
            return Ok(());
        }
        let s = self.stream.clone();
        s.synchronize().map_err(cuda_err)?;
        let cap = len.min(self.n);
        let host = self.graph.take().expect("checked above").host;
        let g = DeviceGraph::upload(&s, host, self.n, cap)?;
        self.nbr_batch_cap = cap;
        self.set_graph(Some(g));
        Ok(())
    }
}

/// The kernels' by-value parameter block (`struct Params`) of a pool.
fn kernel_params(
    c: &Config,
    n: usize,
    constant_prior: (f32, f32),
    f: Option<&DeviceFeatures>,
    g: Option<&DeviceGraph>,
) -> KernelParams {
    KernelParams {
        seed: c.seed,
        n: n as u64,
        lambda: c.lambda,
        m: c.m as f32,
        target: c.target,
        tau: c.tau,
        gamma: c.gamma,
        alpha0: constant_prior.0,
        beta0: constant_prior.1,
        do_sample: c.do_sample as u32,
        adaptive_rho: c.adaptive_rho as u32,
        feature_form: feature_code(f.map(DeviceFeatures::form)),
        n_features: f.map_or(0, |f| f.columns() as u32),
        nbr_k: g.map_or(0, |g| g.host.k() as u32),
        eta: if g.is_some() { c.neighbour_weight } else { 0.0 },
        nbr_max_in: g.map_or(0, |g| g.max_in as u32),
        nbr_touched_cap: g.map_or(0, |g| g.touched_cap as u64),
        nbr_hash_slots: g.map_or(0, |g| g.hash_slots as u64),
        philox_keys: crate::twin::philox::round_keys(c.seed),
    }
}

/// The legacy NULL stream (`0`, `CU_STREAM_LEGACY`) or the per-thread default stream
/// (`CU_STREAM_PER_THREAD`): handles that name no stream of their own.
fn per_thread_or_legacy(s: sys::CUstream) -> bool {
    matches!(s as usize, 0..=2)
}

pub(super) fn scalar_words(g: &Globals) -> [u64; SCALAR_WORDS] {
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

pub(super) type PriorSlices = (Option<(CudaSlice<f32>, CudaSlice<f32>)>, (f32, f32));

pub(super) fn upload_prior(s: &Arc<CudaStream>, prior: &Prior) -> Result<PriorSlices> {
    Ok(match prior {
        Prior::Constant { alpha0, beta0 } => (None, (*alpha0, *beta0)),
        Prior::PerTask { alpha0, beta0 } => {
            (Some((s.clone_htod(alpha0).map_err(cuda_err)?, s.clone_htod(beta0).map_err(cuda_err)?)), (1.0, 1.0))
        }
    })
}

/// Uploads a pool's K feature columns as one device buffer of K·n values, column j at `j·n`, in the form
/// the host holds them. Checks what the kernels rely on to stay in bounds: 1 to
/// [`MAX_FEATURE_COLUMNS`](crate::abi::MAX_FEATURE_COLUMNS) columns (`Params::n_features`), each of
/// exactly `n` values.
pub(super) fn upload_features(s: &Arc<CudaStream>, f: Option<&Features>, n: usize) -> Result<Option<DeviceFeatures>> {
    let Some(f) = f else { return Ok(None) };
    Ok(Some(match f {
        Features::F16 { columns } => DeviceFeatures::F16(upload_columns(s, columns, n)?, columns.len()),
        Features::F32 { columns } => DeviceFeatures::F32(upload_columns(s, columns, n)?, columns.len()),
    }))
}

fn upload_columns<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
    s: &Arc<CudaStream>,
    columns: &[Vec<T>],
    n: usize,
) -> Result<CudaSlice<T>> {
    let k = columns.len();
    if k == 0 || k > crate::abi::MAX_FEATURE_COLUMNS as usize {
        return Err(BotsError::LengthMismatch {
            what: format!("feature columns (1 to {})", crate::abi::MAX_FEATURE_COLUMNS),
            expected: k.clamp(1, crate::abi::MAX_FEATURE_COLUMNS as usize),
            got: k,
        });
    }
    if let Some((j, c)) = columns.iter().enumerate().find(|(_, c)| c.len() != n) {
        return Err(BotsError::LengthMismatch {
            what: format!("feature column {j} (one value per task)"),
            expected: n,
            got: c.len(),
        });
    }
    let mut buf = s.alloc_zeros::<T>(k * n).map_err(cuda_err)?;
    for (j, c) in columns.iter().enumerate() {
        s.memcpy_htod(c.as_slice(), &mut buf.slice_mut(j * n..(j + 1) * n)).map_err(cuda_err)?;
    }
    Ok(buf)
}

fn download_columns<T: cudarc::driver::DeviceRepr>(
    s: &Arc<CudaStream>,
    buf: &CudaSlice<T>,
    k: usize,
) -> Result<Vec<Vec<T>>> {
    let n = buf.len() / k;
    (0..k).map(|j| s.clone_dtoh(&buf.slice(j * n..(j + 1) * n)).map_err(cuda_err)).collect()
}

/// The pool's K feature columns on the device, back to back in one buffer of K·n values (column j at
/// `j·n`), in the form the host holds them; with K.
pub(super) enum DeviceFeatures {
    F16(CudaSlice<f16>, usize),
    F32(CudaSlice<f32>, usize),
}

impl DeviceFeatures {
    pub(super) fn form(&self) -> FeatureForm {
        match self {
            DeviceFeatures::F16(..) => FeatureForm::F16,
            DeviceFeatures::F32(..) => FeatureForm::F32,
        }
    }

    /// K, the columns.
    pub(super) fn columns(&self) -> usize {
        match self {
            DeviceFeatures::F16(_, k) | DeviceFeatures::F32(_, k) => *k,
        }
    }

    /// Device pointer of the buffer (`Pool::feat`).
    pub(super) fn ptr(&self, s: &CudaStream) -> u64 {
        match self {
            DeviceFeatures::F16(b, _) => ptr(b, s),
            DeviceFeatures::F32(b, _) => ptr(b, s),
        }
    }

    /// The columns read back to the host.
    pub(super) fn to_host(&self, s: &Arc<CudaStream>) -> Result<Features> {
        Ok(match self {
            DeviceFeatures::F16(b, k) => Features::F16 { columns: download_columns(s, b, *k)? },
            DeviceFeatures::F32(b, k) => Features::F32 { columns: download_columns(s, b, *k)? },
        })
    }
}

/// The neighbour graph on the device (docs/EVIDENCE-SOURCES.md §2.3, §4), with its host copy (for
/// `to_host` and checkpoints) and its digest (for the fingerprint, computed once).
pub(super) struct DeviceGraph {
    pub(super) host: Neighbours,
    pub(super) digest: u64,
    /// The largest in-degree (the longest reverse list).
    pub(super) max_in: usize,
    /// The largest batch the lookup and the touched list are sized for.
    pub(super) batch_cap: usize,
    /// Capacity of the touched list: `min(n, batch_cap · max_in)` (at least 1).
    pub(super) touched_cap: usize,
    /// Slots of the batch lookup: a power of two >= 2 · batch_cap.
    pub(super) hash_slots: usize,
    ids: CudaSlice<u32>,
    weights: CudaSlice<f32>,
    rev_off: CudaSlice<u64>,
    rev_ids: CudaSlice<u32>,
    claim: CudaSlice<u32>,
    touched: CudaSlice<u32>,
    hash: CudaSlice<u64>,
}

impl DeviceGraph {
    /// Uploads a graph of a pool of `n` tasks, for batches of up to `batch_cap` tasks. What the kernels
    /// rely on to stay in bounds holds by construction of [`Neighbours`] (checked again here where it
    /// is cheap): `n · k` row slots whose ids are [`Neighbours::NONE`] or < n, `n + 1` non-decreasing
    /// offsets ending at the `E` reverse ids (each < n), `max_in` >= every reverse list's length.
    pub(super) fn upload(s: &Arc<CudaStream>, host: Neighbours, n: usize, batch_cap: usize) -> Result<DeviceGraph> {
        let k = host.k();
        if host.len() != n || host.ids().len() != n * k || host.weights().len() != n * k {
            return Err(BotsError::LengthMismatch {
                what: "neighbour graph rows (one per task)".into(),
                expected: n,
                got: host.len(),
            });
        }
        let (off, rev) = host.reverse_csr();
        if off.len() != n + 1 || off[n] as usize != rev.len() || rev.iter().any(|&i| i as usize >= n) {
            return Err(BotsError::Cuda("internal: an inconsistent reverse neighbour list".into()));
        }
        let max_in = off.windows(2).map(|w| (w[1] - w[0]) as usize).max().unwrap_or(0);
        let batch_cap = batch_cap.clamp(1, n);
        let touched_cap = batch_cap.saturating_mul(max_in).clamp(1, n);
        let hash_slots = (2 * batch_cap).next_power_of_two();
        // A buffer of at least one element (an empty reverse list still gets a live pointer).
        let up = |v: &[u32]| if v.is_empty() { s.clone_htod(&[0u32][..]) } else { s.clone_htod(v) };
        let g = DeviceGraph {
            ids: up(host.ids()).map_err(cuda_err)?,
            weights: s.clone_htod(host.weights()).map_err(cuda_err)?,
            rev_off: s.clone_htod(off).map_err(cuda_err)?,
            rev_ids: up(rev).map_err(cuda_err)?,
            claim: s.alloc_zeros::<u32>(n.div_ceil(32)).map_err(cuda_err)?,
            touched: s.alloc_zeros::<u32>(touched_cap).map_err(cuda_err)?,
            hash: s.clone_htod(&vec![crate::abi::HASH_EMPTY; hash_slots]).map_err(cuda_err)?,
            digest: host.digest(),
            host,
            max_in,
            batch_cap,
            touched_cap,
            hash_slots,
        };
        Ok(g)
    }

    /// Points the kernels' pool struct at the graph's buffers.
    pub(super) fn set_ptrs(&self, p: &mut DevicePtrs, s: &CudaStream) {
        p.nbr_ids = ptr(&self.ids, s);
        p.nbr_w = ptr(&self.weights, s);
        p.rev_off = ptr(&self.rev_off, s);
        p.rev_ids = ptr(&self.rev_ids, s);
        p.claim = ptr(&self.claim, s);
        p.touched = ptr(&self.touched, s);
        p.batch_hash = ptr(&self.hash, s);
    }
}

// A pool can move to another thread (`bots::open` returns `Box<dyn Backend + Send>`): checked here.
const _: () = {
    const fn send<T: Send>() {}
    send::<CudaPool>();
};
