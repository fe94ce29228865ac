//! `bots._bots`: the Rust core of the Python package `bots` (the Python side is `python/bots/`).
//!
//! Arrays cross without copies where the layout allows: `uint32` task ids and `float32` outcomes are
//! read in place, and every array handed back owns the `Vec` the crate produced (no copy). Errors
//! keep the crate's message: bad input is `ValueError`, a file problem `OSError`, a missing CUDA
//! driver or GPU `RuntimeError`. Every verb validates before it writes, so a raised error leaves the
//! pool as it was.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use bots::{
    checkpoint, Backend, BackendKind, BotsError, Config, CpuPool, CudaPool, Evidence, Features, Neighbours, NewTasks,
    Prior, RawOutcomes,
};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// A crate error as the Python exception a caller expects.
fn py_err(e: BotsError) -> PyErr {
    match e {
        BotsError::Io { .. } => PyOSError::new_err(e.to_string()),
        BotsError::CudaUnavailable(_) | BotsError::Cuda(_) => PyRuntimeError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// One pool on one backend. An enum rather than `Box<dyn Backend>` so the pool is `Send` (the GIL is
/// released during the O(N) passes) and the CUDA verbs on raw device pointers stay reachable.
enum Inner {
    Cpu(Box<CpuPool>),
    Cuda(Box<CudaPool>), // `CudaPool: Send`: Ray and asyncio call a selector from other threads
}

impl Inner {
    fn backend(&mut self) -> &mut dyn Backend {
        match self {
            Inner::Cpu(p) => p.as_mut(),
            Inner::Cuda(p) => p.as_mut(),
        }
    }
    fn backend_ref(&self) -> &dyn Backend {
        match self {
            Inner::Cpu(p) => p.as_ref(),
            Inner::Cuda(p) => p.as_ref(),
        }
    }
}

fn open(
    kind: BackendKind,
    config: Config,
    state: Option<bots::PoolState>,
    n: usize,
    features: Option<Features>,
    neighbours: Option<Neighbours>,
) -> bots::Result<Inner> {
    match kind {
        BackendKind::Cpu => Ok(Inner::Cpu(Box::new(match state {
            Some(s) => CpuPool::from_state(config, s)?,
            None => CpuPool::with_neighbours(config, n, features, neighbours)?,
        }))),
        BackendKind::Cuda { ordinal } => {
            let mut pool = CudaPool::on_device_with(ordinal, config, n, features, neighbours)?;
            if let Some(s) = state {
                pool.restore(s)?;
            }
            Ok(Inner::Cuda(Box::new(pool)))
        }
    }
}

/// Task ids from any integer numpy array, checked against the pool (the crate's message), as the
/// `Vec<u32>` the crate's `Evidence` holds. `uint32` is read in place.
fn task_ids(tasks: &Bound<'_, PyAny>, n: usize) -> PyResult<Vec<u32>> {
    fn check<T: Copy + TryInto<u64>>(v: &[T], n: usize) -> PyResult<Vec<u32>> {
        v.iter()
            .enumerate()
            .map(|(position, &t)| match t.try_into() {
                Ok(t) if t < n as u64 => Ok(t as u32),
                Ok(t) => Err(py_err(BotsError::TaskOutOfRange { task: t, position, len: n })),
                Err(_) => Err(PyValueError::new_err(format!(
                    "task id at position {position} of the batch is negative: task ids are 0..{n}"
                ))),
            })
            .collect()
    }
    macro_rules! try_dtype {
        ($($t:ty),*) => {$(
            if let Ok(a) = tasks.extract::<PyReadonlyArray1<'_, $t>>() {
                return match a.as_slice() {
                    Ok(s) => check(s, n),
                    Err(_) => check(&a.as_array().to_vec(), n),
                };
            }
        )*};
    }
    try_dtype!(u32, i64, u64, i32, u16, i16, u8, i8);
    Err(PyValueError::new_err("tasks must be a 1-D numpy array of integer task ids (uint32 is read without a copy)"))
}

/// K float32 columns of `n` values each as the crate's features (the first column's length is checked
/// here so the message names it; `Features::from_columns` checks the rest).
fn feature_columns(columns: &[PyReadonlyArray1<'_, f32>], n: usize) -> PyResult<Features> {
    let columns: Vec<Vec<f32>> = columns.iter().map(f32_values).collect();
    if let Some(first) = columns.first().filter(|c| c.len() != n) {
        let what = if columns.len() == 2 { "weak" } else { "column 0" };
        return Err(py_err(BotsError::LengthMismatch {
            what: format!("{what} feature column (one value per task)"),
            expected: n,
            got: first.len(),
        }));
    }
    let refs: Vec<&[f32]> = columns.iter().map(Vec::as_slice).collect();
    Features::from_columns(&refs).map_err(py_err)
}

/// Neighbour rows as the Python wrapper passes them: ids (uint32) and weights (float32), `n · k` each.
type PyRows<'py> = (PyReadonlyArray1<'py, u32>, PyReadonlyArray1<'py, f32>);

fn rows(r: &PyRows<'_>) -> (Vec<u32>, Vec<f32>) {
    let ids = match r.0.as_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => r.0.as_array().to_vec(),
    };
    (ids, f32_values(&r.1))
}

/// A 1-D float32 array as a slice-backed Vec (the crate's `Evidence` owns its values).
fn f32_values(a: &PyReadonlyArray1<'_, f32>) -> Vec<f32> {
    match a.as_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => a.as_array().to_vec(),
    }
}

/// The BOTS posterior of a pool of tasks (see `help(bots.Pool)` for the Python-facing API).
#[pyclass(module = "bots._bots", name = "_Pool")]
struct PyPool {
    /// A mutex makes the pyclass `Sync` (PyO3 needs it); calls never contend in practice.
    inner: Mutex<Inner>,
}

#[pymethods]
impl PyPool {
    /// `_Pool(n, config_text, config_format, features, backend)`: the Python wrapper parses the
    /// arguments; `config_format` is "json", "yaml" or "toml" (the crate's parser, Trinity names too);
    /// `features` is None or a list of K >= 1 float32 columns, weakest first.
    #[new]
    #[pyo3(signature = (n, config_text, config_format, features=None, backend="cpu", neighbours=None, neighbour_k=0, neighbour_max_in=0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        n: usize,
        config_text: &str,
        config_format: &str,
        features: Option<Vec<PyReadonlyArray1<'_, f32>>>,
        backend: &str,
        neighbours: Option<PyRows<'_>>,
        neighbour_k: usize,
        neighbour_max_in: usize,
    ) -> PyResult<Self> {
        let kind: BackendKind = backend.parse().map_err(PyValueError::new_err)?;
        let config = Config::from_str_format(config_text, config_format).map_err(PyValueError::new_err)?;
        let features = features.as_deref().map(|c| feature_columns(c, n)).transpose()?;
        let neighbours = match &neighbours {
            Some(r) => {
                let (ids, w) = rows(r);
                let graph = py.detach(|| Neighbours::from_lists(n, neighbour_k, ids, w)).map_err(py_err)?;
                Some(if neighbour_max_in > 0 { graph.cap_in_degree(neighbour_max_in) } else { graph })
            }
            None => None,
        };
        let inner = py.detach(|| open(kind, config, None, n, features, neighbours)).map_err(py_err)?;
        Ok(PyPool { inner: Mutex::new(inner) })
    }

    /// Opens a checkpoint written by `save` (or the crate / CLI) on `backend`, with its stored config.
    #[staticmethod]
    #[pyo3(signature = (path, backend="cpu"))]
    fn load(py: Python<'_>, path: PathBuf, backend: &str) -> PyResult<Self> {
        let kind: BackendKind = backend.parse().map_err(PyValueError::new_err)?;
        let inner = py
            .detach(|| {
                let (config, state) = checkpoint::load(&path)?;
                let n = state.len();
                let (features, neighbours) = (state.features.clone(), state.neighbours.clone());
                open(kind, config, Some(state), n, features, neighbours)
            })
            .map_err(py_err)?;
        Ok(PyPool { inner: Mutex::new(inner) })
    }

    /// The `k` tasks to train on at the current step, best first (numpy uint32). Does not advance the step.
    fn select<'py>(&mut self, py: Python<'py>, k: usize) -> PyResult<Bound<'py, PyArray1<u32>>> {
        let inner = &mut *self.lock();
        let tasks = py.detach(|| inner.backend().select(k)).map_err(py_err)?;
        Ok(PyArray1::from_vec(py, tasks))
    }

    /// One batch of pass rates (float32, one per task) for `tasks`; returns the update report.
    fn update_pass_rates<'py>(
        &mut self,
        py: Python<'py>,
        tasks: &Bound<'py, PyAny>,
        pass_rates: PyReadonlyArray1<'py, f32>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let n = self.lock().backend_ref().len();
        let tasks = task_ids(tasks, n)?;
        let evidence = Evidence::pass_rates(tasks, f32_values(&pass_rates));
        self.apply(py, evidence)
    }

    /// One batch of success/failure counts (float32) for `tasks`; returns the update report.
    fn update_counts<'py>(
        &mut self,
        py: Python<'py>,
        tasks: &Bound<'py, PyAny>,
        successes: PyReadonlyArray1<'py, f32>,
        failures: PyReadonlyArray1<'py, f32>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let n = self.lock().backend_ref().len();
        let tasks = task_ids(tasks, n)?;
        let evidence = Evidence::counts(tasks, f32_values(&successes), f32_values(&failures));
        self.apply(py, evidence)
    }

    /// CUDA pools: selects `k` tasks into the `uint32` device buffer at `out`, fenced with `stream`
    /// (a `CUstream` handle, e.g. `torch.cuda.current_stream().cuda_stream`; see `select_into_raw`). The Python wrapper checks
    /// the tensor (device, dtype, contiguity, length) before calling.
    fn _select_into_device(&mut self, k: usize, out: u64, stream: u64) -> PyResult<()> {
        if out == 0 {
            return Err(PyValueError::new_err("null device pointer for the selection output"));
        }
        // SAFETY: the Python wrapper passes `data_ptr()` of a contiguous CUDA uint32-compatible (int32)
        // tensor of at least k elements on this pool's device, and the live stream torch reports for it.
        self.with_cuda(|pool| unsafe { pool.select_into_raw(k, out as _, stream as _) })
    }

    /// CUDA pools: an update from device buffers (`tasks` uint32-compatible, counts or rates float32)
    /// of `len` elements, fenced with `stream`. Bad values are reported by the next host verb.
    #[pyo3(signature = (tasks, len, stream, pass_rates=0, successes=0, failures=0))]
    fn _update_from_device(
        &mut self,
        tasks: u64,
        len: usize,
        stream: u64,
        pass_rates: u64,
        successes: u64,
        failures: u64,
    ) -> PyResult<()> {
        let outcomes = if pass_rates != 0 {
            RawOutcomes::PassRates(pass_rates as _)
        } else {
            RawOutcomes::Counts { successes: successes as _, failures: failures as _ }
        };
        // SAFETY: the Python wrapper passes `data_ptr()` of contiguous CUDA tensors of `len` elements
        // each on this pool's device (int32 ids, float32 outcomes), kept alive by the caller, and torch's
        // live current stream; null pointers are refused by `update_raw`.
        self.with_cuda(|pool| unsafe { pool.update_raw(tasks as _, outcomes, len, stream as _) })
    }

    /// CUDA pools: waits for the pool's stream and returns the last update's report (or raises the
    /// device-side input error found since the last call).
    fn _sync<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let report = self.with_cuda(|pool| pool.sync())?;
        report_dict(py, &report)
    }

    /// Writes the whole posterior and the config to `path` (the crate's checkpoint format, atomic).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let mut guard = self.lock();
        let b = &mut *guard;
        py.detach(move || b.backend_ref().save_checkpoint(&path)).map_err(py_err)
    }

    /// Restores a checkpoint into this pool, only if it is a checkpoint of this pool (the crate's
    /// `Backend::restore_checkpoint`: same fingerprint); returns the checkpoint's config as JSON.
    /// Refused (ValueError saying what differs) with the pool unchanged otherwise.
    fn restore(&self, py: Python<'_>, path: PathBuf) -> PyResult<String> {
        let mut guard = self.lock();
        let b = &mut *guard;
        let config = py.detach(move || b.backend().restore_checkpoint(&path)).map_err(py_err)?;
        serde_json::to_string(&config).map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// Appends `count` tasks (ids `n..n + count`, returned as `(n, n + count)`) with their K feature
    /// columns and/or their neighbour rows (`count · k` ids and weights), as `Backend::append`.
    #[pyo3(signature = (count, features=None, neighbours=None))]
    fn append(
        &self,
        py: Python<'_>,
        count: usize,
        features: Option<Vec<PyReadonlyArray1<'_, f32>>>,
        neighbours: Option<PyRows<'_>>,
    ) -> PyResult<(u32, u32)> {
        let mut new = NewTasks::new(count);
        if let Some(columns) = features.as_deref() {
            new = new.with_features(feature_columns(columns, count)?);
        }
        if let Some(r) = &neighbours {
            let (ids, w) = rows(r);
            new = new.with_neighbours(ids, w);
        }
        let mut guard = self.lock();
        let b = &mut *guard;
        let ids = py.detach(move || b.backend().append(&new)).map_err(py_err)?;
        Ok((ids.start, ids.end))
    }

    /// The pool's fingerprint (`bots::Fingerprint::id`): 16 hex digits.
    #[getter]
    fn fingerprint(&self) -> String {
        self.lock().backend_ref().fingerprint().id()
    }

    /// The whole state as numpy arrays (copies of the backend's state, brought up to date).
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let mut guard = self.lock();
        let b = &mut *guard;
        let s = py.detach(move || b.backend_ref().to_host()).map_err(py_err)?;
        let d = PyDict::new(py);
        let n = s.len();
        d.set_item("step", s.globals.step)?;
        d.set_item("mu", s.globals.mu)?;
        d.set_item("rho", s.globals.rho)?;
        match &s.prior {
            Prior::Constant { alpha0, beta0 } => {
                d.set_item("prior_alpha", *alpha0)?;
                d.set_item("prior_beta", *beta0)?;
            }
            Prior::PerTask { alpha0, beta0 } => {
                d.set_item("prior_alpha", PyArray1::from_slice(py, alpha0))?;
                d.set_item("prior_beta", PyArray1::from_slice(py, beta0))?;
            }
        }
        if let Some(f) = &s.features {
            // Every column, weakest first, as one (K, n) array; `weak` and `strong` are its first and
            // last rows.
            let k = f.n_columns();
            let column = |c: usize| (0..n).map(move |t| f.value(c, t));
            d.set_item("weak", PyArray1::from_vec(py, column(0).collect()))?;
            d.set_item("strong", PyArray1::from_vec(py, column(k - 1).collect()))?;
            let all: Vec<f32> = (0..k).flat_map(column).collect();
            d.set_item("features", PyArray1::from_vec(py, all).reshape([k, n])?)?;
        }
        if let Some(g) = &s.neighbours {
            let k = g.k();
            d.set_item("neighbour_ids", PyArray1::from_slice(py, g.ids()).reshape([n, k])?)?;
            d.set_item("neighbour_weights", PyArray1::from_slice(py, g.weights()).reshape([n, k])?)?;
        }
        d.set_item("alpha", PyArray1::from_vec(py, s.alpha))?;
        d.set_item("beta", PyArray1::from_vec(py, s.beta))?;
        Ok(d)
    }

    /// The config as JSON text (the crate's key names).
    fn config_json(&self) -> PyResult<String> {
        serde_json::to_string(self.lock().backend_ref().config()).map_err(|e| PyValueError::new_err(e.to_string()))
    }

    #[getter]
    fn step(&self) -> u64 {
        self.lock().backend_ref().step()
    }

    #[getter]
    fn n_tasks(&self) -> usize {
        self.lock().backend_ref().len()
    }

    #[getter]
    fn backend(&self) -> String {
        self.lock().backend_ref().name()
    }
}

impl PyPool {
    fn apply<'py>(&mut self, py: Python<'py>, evidence: Evidence) -> PyResult<Bound<'py, PyDict>> {
        let inner = &mut *self.lock();
        let report = py.detach(|| inner.backend().update(&evidence)).map_err(py_err)?;
        report_dict(py, &report)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic inside a verb cannot leave the state half-written (verbs validate first), so a
        // poisoned lock is still a consistent pool.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_cuda<T>(&self, f: impl FnOnce(&mut CudaPool) -> bots::Result<T>) -> PyResult<T> {
        match &mut *self.lock() {
            Inner::Cuda(p) => f(p).map_err(py_err),
            Inner::Cpu(_) => Err(PyValueError::new_err("device tensors need a pool opened with backend=\"cuda\"")),
        }
    }
}

fn report_dict<'py>(py: Python<'py>, r: &bots::UpdateReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("step", r.step)?;
    d.set_item("mu", r.mu)?;
    d.set_item("rho", r.rho)?;
    d.set_item("miss", r.miss)?;
    Ok(d)
}

/// Whether this build carries the CUDA kernels (compiled with nvcc), and why not when it does not.
#[pyfunction]
fn cuda_build_info() -> (bool, String) {
    match bots::cuda_kernels() {
        Ok(version) => (true, format!("kernels compiled (PTX ISA {version})")),
        Err(why) => (false, why.into()),
    }
}

/// The PTX ISA version (`.version major.minor`) of the embedded kernels, which sets the oldest driver
/// that loads them (ISA 8.2: CUDA 12.2, driver 535); `None` when built without them.
#[pyfunction]
fn ptx_isa() -> Option<(u32, u32)> {
    let (major, minor) = bots::cuda_kernels().ok()?.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Config text (`fmt` "yaml", "toml" or "json") as JSON text, keys not yet checked: the adapters take
/// out their own keys before `_Pool` checks the rest.
#[pyfunction]
fn parse_config_keys(text: &str, fmt: &str) -> PyResult<String> {
    bots::__private::parse_value(text, fmt).map(|v| v.to_string()).map_err(PyValueError::new_err)
}

/// Neighbour rows handed back to Python: ids (uint32) and weights (float32).
type RowArrays<'py> = (Bound<'py, PyArray1<u32>>, Bound<'py, PyArray1<f32>>);

/// `bots::Neighbours::knn_rows`: the exact cosine k-NN rows `start..end` over every row of the
/// row-major float32 `embeddings` (`dim` values a task), as `(ids uint32, weights float32)` of
/// `(end - start) · k` values each, `u32::MAX` in empty slots.
#[pyfunction]
#[pyo3(signature = (embeddings, dim, k, min_similarity, start, end))]
fn knn_rows<'py>(
    py: Python<'py>,
    embeddings: PyReadonlyArray1<'py, f32>,
    dim: usize,
    k: usize,
    min_similarity: f32,
    start: usize,
    end: usize,
) -> PyResult<RowArrays<'py>> {
    let e = f32_values(&embeddings);
    let (ids, w) = py.detach(|| Neighbours::knn_rows(&e, dim, k, min_similarity, start..end)).map_err(py_err)?;
    Ok((PyArray1::from_vec(py, ids), PyArray1::from_vec(py, w)))
}

/// k_nn of a checkpoint's neighbour graph (0 without one), from its verified header alone (the payload
/// is not read): what `Pool.load` needs to know beside the pool itself.
#[pyfunction]
fn checkpoint_neighbour_k(py: Python<'_>, path: PathBuf) -> PyResult<usize> {
    py.detach(|| checkpoint::read_header(&path)).map(|h| h.neighbour_k).map_err(py_err)
}

#[pymodule]
fn _bots(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPool>()?;
    m.add_function(wrap_pyfunction!(cuda_build_info, m)?)?;
    m.add_function(wrap_pyfunction!(ptx_isa, m)?)?;
    m.add_function(wrap_pyfunction!(parse_config_keys, m)?)?;
    m.add_function(wrap_pyfunction!(knn_rows, m)?)?;
    m.add_function(wrap_pyfunction!(checkpoint_neighbour_k, m)?)?;
    Ok(())
}
