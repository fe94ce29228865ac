//! The [`Backend`] host verbs of [`CudaPool`].

use super::cuda_err;
use super::launch::ptr;
use super::pool::{scalar_words, upload_features, upload_prior, CudaPool, DeviceGraph, RawOutcomes};
use crate::backend::{Backend, UpdateReport};
use crate::config::Config;
use crate::error::{BotsError, Result};
use crate::evidence::{Evidence, Outcomes};
use crate::fingerprint::{features_digest, Fingerprint};
use crate::pool::{Globals, PoolState, Prior};

impl Backend for CudaPool {
    fn name(&self) -> String {
        format!("cuda:{}", self.device)
    }

    fn config(&self) -> &Config {
        &self.config
    }

    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::from_digest(&self.config, self.n, self.features_digest)
            .with_neighbour_digest(&self.config, self.graph.as_ref().map(|g| g.digest))
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
            let out = self.io.out_tasks;
            // SAFETY: `out_tasks` holds k_cap >= k u32 of this pool, on the pool's own stream.
            unsafe { self.select_into_raw(k, out, stream.cu_stream())? };
            let tasks = stream.clone_dtoh(&self.out_tasks.slice(0..k)).map_err(cuda_err)?;
            stream.synchronize().map_err(cuda_err)?;
            self.check_select()?;
            return Ok(tasks);
        }
        // Larger than the preallocated capacity: gather into a temporary buffer and sort on the host.
        self.ctx.bind_to_thread().map_err(cuda_err)?;
        let keys = stream.alloc_zeros::<u64>(k).map_err(cuda_err)?;
        let kp = ptr(&keys, &stream);
        // SAFETY: `keys` holds k u64 of this context; the pool's own stream.
        unsafe { self.on_own_stream().select(k, kp, k as u64, 0) }?;
        let mut keys = stream.clone_dtoh(&keys).map_err(cuda_err)?;
        stream.synchronize().map_err(cuda_err)?;
        if keys.contains(&0) {
            return Err(BotsError::Cuda("internal error in the radix select: fewer than k keys came out".into()));
        }
        keys.sort_unstable_by(|a, b| b.cmp(a));
        Ok(keys.into_iter().map(crate::select::key_task).collect())
    }

    fn update(&mut self, evidence: &Evidence) -> Result<UpdateReport> {
        // Host evidence is checked on the host first, with the CPU backend's typed errors.
        evidence.validate(self.n, self.config.m)?;
        let len = evidence.len();
        self.reserve_batch(len)?;
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
            let (t, pa, pb) = (self.io.ev_tasks, self.io.ev_a, self.io.ev_b);
            let o = if b.is_some() {
                RawOutcomes::Counts { successes: pa, failures: pb }
            } else {
                RawOutcomes::PassRates(pa)
            };
            // SAFETY: the pool's own evidence buffers hold ev_cap >= len elements, on its own stream.
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
        self.on_own_stream().flush()?;
        let sc = self.read_scalars()?;
        let s = &self.stream;
        let alpha = s.clone_dtoh(&self.alpha).map_err(cuda_err)?;
        let beta = s.clone_dtoh(&self.beta).map_err(cuda_err)?;
        let prior = match &self.prior {
            Some((a0, b0)) => Prior::PerTask {
                alpha0: s.clone_dtoh(a0).map_err(cuda_err)?,
                beta0: s.clone_dtoh(b0).map_err(cuda_err)?,
            },
            None => Prior::Constant { alpha0: self.constant_prior.0, beta0: self.constant_prior.1 },
        };
        let features = self.features.as_ref().map(|f| f.to_host(s)).transpose()?;
        s.synchronize().map_err(cuda_err)?;
        let globals = Globals { mu: (sc.mu_set != 0).then_some(sc.mu), rho: sc.rho, step: sc.step };
        let neighbours = self.graph.as_ref().map(|g| g.host.clone());
        Ok(PoolState { alpha, beta, prior, features, neighbours, globals })
    }

    fn append(&mut self, new: &crate::pool::NewTasks) -> Result<std::ops::Range<u32>> {
        let mut state = self.to_host()?;
        let ids = state.append(&self.config, new)?;
        // A new pool of the grown size on the same stream (or, for a pool built on a per-thread or
        // legacy handle, on that handle again), then it replaces this one.
        let stream = self.caller.clone().unwrap_or_else(|| self.stream.clone());
        *self = CudaPool::from_state(stream, self.config.clone(), state, self.k_cap)?;
        Ok(ids)
    }

    fn restore(&mut self, mut state: PoolState) -> Result<()> {
        state.check_fits(&self.config)?;
        if state.len() != self.n {
            return Err(BotsError::LengthMismatch {
                what: "restored state (tasks)".into(),
                expected: self.n,
                got: state.len(),
            });
        }
        self.ctx.bind_to_thread().map_err(cuda_err)?;
        let s = self.stream.clone();
        s.synchronize().map_err(cuda_err)?;
        let (prior, constant_prior) = upload_prior(&s, &state.prior)?;
        let features = upload_features(&s, state.features.as_ref(), self.n)?;
        // A restored state carries its graph: uploaded again (the same graph, when the fingerprints
        // matched; whatever graph a direct restore brings, checked by check_fits above).
        let graph =
            state.neighbours.take().map(|g| DeviceGraph::upload(&s, g, self.n, self.nbr_batch_cap)).transpose()?;
        s.memcpy_htod(&state.alpha, &mut self.alpha).map_err(cuda_err)?;
        s.memcpy_htod(&state.beta, &mut self.beta).map_err(cuda_err)?;
        s.memcpy_htod(&scalar_words(&state.globals), &mut self.scalars).map_err(cuda_err)?;
        (self.plan.ptrs.alpha0, self.plan.ptrs.beta0) =
            prior.as_ref().map_or((0, 0), |(a, b)| (ptr(a, &s), ptr(b, &s)));
        self.plan.ptrs.feat = features.as_ref().map_or(0, |f| f.ptr(&s));
        self.prior = prior;
        self.constant_prior = constant_prior;
        self.features = features;
        self.features_digest = state.features.as_ref().map(features_digest);
        self.set_graph(graph);
        s.synchronize().map_err(cuda_err)?;
        self.step.set(state.globals.step);
        Ok(())
    }
}
