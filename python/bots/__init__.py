"""bots: Bayesian Online Task Selection (BOTS) for RL finetuning, from Python.

The Rust crate `bots` behind a small Python API::

    import bots
    pool = bots.Pool(n_tasks, features=(weak, strong), config={"batch": 32, "seed": 7})
    tasks = pool.select(32)                     # numpy uint32, best first
    pool.update(tasks, pass_rates=rates)        # or successes=..., failures=...
    pool.save("bots.ckpt"); pool = bots.Pool.load("bots.ckpt")
    pool.restore("bots.ckpt")                   # into this pool; refused for another pool's file

Adapters: `bots.trinity.BotsSelector` (Trinity-RFT 0.6's task selector), `bots.trl.BotsGRPOTrainer`
(TRL 1.16's `GRPOTrainer`), `bots.verl.BotsSampler` (verl 0.5-0.7.1's curriculum sampler) and
`bots.verl.BotsDataset` + `BotsReplayBuffer` (verl 0.9's v1 trainer). Config keys are the crate's (README "Config keys"), Trinity-RFT's names
(`lamb`, `target_reward`, a `data_selector:` (or the older `task_selector:`) block with `kwargs:`)
included.
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from bots._bots import _Pool, checkpoint_neighbour_k, cuda_build_info, knn_rows

__all__ = ["Pool", "cuda_build_info"]

ConfigLike = Union[None, Mapping[str, Any], str, "os.PathLike[str]"]


def _config_text(config: ConfigLike) -> Tuple[str, str]:
    """(text, format) for the crate's parser: a mapping becomes JSON, a path is read as it is."""
    if config is None:
        return "{}", "json"
    if isinstance(config, Mapping):
        return json.dumps(dict(config)), "json"
    if isinstance(config, (str, os.PathLike)):
        path = os.fspath(config)
        ext = os.path.splitext(path)[1].lstrip(".").lower()
        with open(path, encoding="utf-8") as f:
            return f.read(), ext
    raise ValueError(f"config must be a dict or a path to a .yaml/.toml/.json file, got {type(config).__name__}")


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "data_ptr")


def _task_array(tasks: Any) -> np.ndarray:
    """Task ids as a 1-D integer numpy array (uint32 passes through without a copy)."""
    a = np.asarray(tasks)
    if a.ndim != 1:
        raise ValueError(f"tasks must be a 1-D array of task ids, got shape {a.shape}")
    if a.dtype.kind not in "iu":
        raise ValueError(f"tasks must be integer task ids, got dtype {a.dtype}")
    return a


def _float_array(name: str, values: Any) -> np.ndarray:
    """A 1-D float32 array (float32 input passes through without a copy)."""
    a = np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {a.shape}")
    if a.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be real numbers, got dtype {a.dtype}")
    return a if a.dtype == np.float32 else a.astype(np.float32)


class Pool:
    """The BOTS posterior over a pool of tasks, on the CPU or a CUDA GPU.

    Args:
        n_tasks: number of tasks; task ids are 0..n_tasks.
        features: ``(weak, strong)``, the pass rates in [0, 1] of a weaker and a stronger reference
            model on every task (needed when rho > 0, the implicit evidence); or any sequence of K >= 1
            such columns, weakest first (config ``feature_keys`` names K columns too; see
            docs/EVIDENCE-SOURCES.md).
        config: a dict of config keys, or a path to a YAML/TOML/JSON file (a Trinity-RFT
            ``task_selector:`` block works as it is). Unknown keys are errors.
        backend: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        embeddings: an ``(n_tasks, dim)`` array of task embeddings (any real dtype): the pool gets
            the exact cosine k-nearest-neighbour graph over them (``neighbour_k`` out-neighbours a
            task, edges with similarity ``>= neighbour_min_similarity`` and > 0, every in-degree
            capped at ``neighbour_max_in``, default 4·k), and with ``neighbour_weight`` (eta) > 0 in
            the config each batch's outcomes become evidence for its neighbours
            (docs/EVIDENCE-SOURCES.md §2). O(n²·dim): for very large pools pass ``neighbours``.
        neighbours: ``(ids, weights)``, precomputed out-neighbour rows, each ``(n_tasks, k)``
            (ids uint32 with ``2**32 - 1`` in empty slots, weights in (0, 1]); instead of embeddings.
        **keys: more config keys, overriding ``config`` (only with a dict or no config).

    Bad input raises ``ValueError`` with the crate's message and leaves the pool unchanged.
    """

    def __init__(
        self,
        n_tasks: int,
        features: Optional[Sequence[Any]] = None,
        config: ConfigLike = None,
        backend: str = "cpu",
        embeddings: Any = None,
        neighbours: Optional[Tuple[Any, Any]] = None,
        neighbour_k: int = 16,
        neighbour_min_similarity: float = 0.0,
        neighbour_max_in: Optional[int] = None,
        **keys: Any,
    ) -> None:
        if keys:
            if config is not None and not isinstance(config, Mapping):
                raise ValueError("extra config keys need config to be a dict (or None), not a path")
            config = {**(config or {}), **keys}
        text, fmt = _config_text(config)
        columns = None
        if features is not None:
            if isinstance(features, np.ndarray) and features.ndim == 1:
                raise ValueError("features must be a sequence of columns, e.g. (weak, strong), not one array")
            names = ("weak feature", "strong feature") if len(features) == 2 else None
            columns = [
                _float_array(names[i] if names else f"feature column {i}", col) for i, col in enumerate(features)
            ]
            if not columns:
                raise ValueError("features must have at least one column")
        if isinstance(n_tasks, bool) or not isinstance(n_tasks, (int, np.integer)) or n_tasks < 1:
            raise ValueError(f"n_tasks must be a positive integer, got {n_tasks!r}")
        self._embeddings = None
        self._knn = (int(neighbour_k), float(neighbour_min_similarity))
        rows = None
        if embeddings is not None and neighbours is not None:
            raise ValueError("give embeddings or neighbours, not both")
        if embeddings is not None:
            e = _embedding_array(embeddings, int(n_tasks))
            ids, w = knn_rows(e.ravel(), e.shape[1], int(neighbour_k), float(neighbour_min_similarity), 0, e.shape[0])
            rows, self._embeddings = (ids, w), e
        elif neighbours is not None:
            rows = _neighbour_rows(neighbours, int(n_tasks))
            neighbour_k = rows[2]
            rows = rows[:2]
        max_in = 4 * int(neighbour_k) if neighbour_max_in is None else int(neighbour_max_in)
        self._pool = _Pool(int(n_tasks), text, fmt, columns, backend, rows, int(neighbour_k), max_in if rows else 0)
        self._ordinal = _ordinal(backend)

    @classmethod
    def load(cls, path: Union[str, "os.PathLike[str]"], backend: str = "cpu") -> "Pool":
        """A pool from a checkpoint written by `save` (or the `bots` crate/CLI), with its saved config."""
        self = cls.__new__(cls)
        self._pool = _Pool.load(os.fspath(path), backend)
        self._ordinal = _ordinal(backend)
        self._embeddings = None
        # k of the graph from the checkpoint's header (not a copy of the whole state)
        self._knn = (checkpoint_neighbour_k(os.fspath(path)) or 16, 0.0)
        return self

    # ---- growing the pool ----

    def append(self, count: Optional[int] = None, *, features: Optional[Sequence[Any]] = None,
               embeddings: Any = None, neighbours: Optional[Tuple[Any, Any]] = None) -> range:
        """Adds tasks to the live pool; returns their ids (``range(n, n + count)``).

        Give what the pool has for every task: ``features`` (K columns of the new tasks' reference pass
        rates) when it has features, and ``embeddings`` (``(count, dim)``; their neighbours are found
        among all tasks, old and new, as at creation) or ``neighbours`` (``(ids, weights)``, each
        ``(count, k)``) when it has a neighbour graph. Each new task starts informed from its
        neighbours' evidence, or from the references (docs/EVIDENCE-SOURCES.md §5). ``count`` may be
        left out when features or embeddings give it. Bad input raises ``ValueError`` and changes
        nothing.
        """
        cols = None
        if features is not None:
            cols = [_float_array(f"feature column {i}", c) for i, c in enumerate(features)]
        if count is None:
            if embeddings is not None:
                count = len(embeddings)
            elif cols:
                count = len(cols[0])
            else:
                raise ValueError("give count, or features or embeddings to count the new tasks")
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise ValueError(f"count must be a positive integer, got {count!r}")
        count, n, e_all = int(count), self.n_tasks, None
        rows = None
        if embeddings is not None and neighbours is not None:
            raise ValueError("give embeddings or neighbours, not both")
        if embeddings is not None:
            if self._embeddings is None:
                raise ValueError(
                    "this pool does not hold its tasks' embeddings (it was built from neighbour lists or "
                    "loaded from a checkpoint, which stores the graph only): pass neighbours=(ids, weights) "
                    "for the new tasks, or set pool.embeddings to the old tasks' embeddings first"
                )
            e = _embedding_array(embeddings, count)
            if e.shape[1] != self._embeddings.shape[1]:
                raise ValueError(f"embeddings have {e.shape[1]} dimensions, the pool's have {self._embeddings.shape[1]}")
            e_all = np.vstack([self._embeddings, e])
            k, min_sim = self._knn
            rows = knn_rows(e_all.ravel(), e_all.shape[1], k, min_sim, n, n + count)
        elif neighbours is not None:
            rows = _neighbour_rows(neighbours, count)[:2]
        start, end = self._pool.append(count, cols, rows)
        if e_all is not None:
            self._embeddings = e_all
        return range(start, end)

    @property
    def embeddings(self) -> Optional[np.ndarray]:
        """The tasks' embeddings (float32, ``(n_tasks, dim)``) when the pool was built from them
        (needed by ``append(embeddings=...)``); settable after ``load``."""
        return self._embeddings

    @embeddings.setter
    def embeddings(self, value: Any) -> None:
        self._embeddings = _embedding_array(value, self.n_tasks)

    # ---- the two verbs ----

    def select(self, k: Optional[int] = None, out: Any = None):
        """The ``k`` (default: config batch) tasks to train on now, best first, as numpy uint32.

        Does not advance the step: calling it twice gives the same tasks. On a CUDA pool, ``out`` may
        be a torch CUDA int32 tensor of at least k elements: the selection is written into it without
        a copy or a synchronization, ordered with torch's current stream (the pool's kernels wait for
        the work already enqueued there, and later work there waits for them), and ``out`` is returned.
        """
        k = self.config["batch"] if k is None else k
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if out is not None:
            _check_tensor(out, "out", ("int32", "uint32"), self._ordinal)
            if out.numel() < k:
                raise ValueError(f"out holds {out.numel()} elements, fewer than k = {k}")
            self._pool._select_into_device(int(k), out.data_ptr(), _stream(out))
            return out
        return self._pool.select(int(k))

    def update(self, tasks, pass_rates=None, *, successes=None, failures=None) -> Optional[dict]:
        """Applies one step's outcomes and advances the step.

        Give ``pass_rates`` (mean reward of the config's m rollouts, one per task, in [0, 1]) or
        ``successes`` and ``failures`` (counts, 1 <= s + f <= m per task). Returns the update report
        (``step``, ``mu``, ``rho``, ``miss``). On a CUDA pool, torch CUDA tensors (int32 ids, float32
        outcomes) are read in place, ordered with torch's current stream as in `select`; then nothing
        is returned and bad values raise at the next `sync` / `state` / host call, which see the update
        whatever stream it came from.
        """
        counts = successes is not None or failures is not None
        if counts == (pass_rates is not None):
            raise ValueError("give either pass_rates or both successes and failures")
        if counts and (successes is None or failures is None):
            raise ValueError("counts need both successes and failures")
        if _is_torch(tasks):
            return self._update_device(tasks, pass_rates, successes, failures)
        t = _task_array(tasks)
        if counts:
            return self._pool.update_counts(t, _float_array("successes", successes), _float_array("failures", failures))
        return self._pool.update_pass_rates(t, _float_array("pass_rates", pass_rates))

    def _update_device(self, tasks, pass_rates, successes, failures) -> None:
        _check_tensor(tasks, "tasks", ("int32", "uint32"), self._ordinal)
        n = tasks.numel()
        outs = {"pass_rates": pass_rates} if pass_rates is not None else {"successes": successes, "failures": failures}
        for name, t in outs.items():
            _check_tensor(t, name, ("float32",), self._ordinal)
            if t.numel() != n:
                raise ValueError(f"{name}: expected {n} values, got {t.numel()}")
        ptrs = {name: t.data_ptr() for name, t in outs.items()}
        self._pool._update_from_device(tasks.data_ptr(), n, _stream(tasks), **ptrs)
        return None

    def sync(self) -> dict:
        """CUDA pools: waits for the pool and returns the last update's report (raises a device-side
        input error found since the last call)."""
        return self._pool._sync()

    # ---- state ----

    def state(self) -> dict:
        """The whole state as numpy arrays: ``alpha``, ``beta`` (float32 per task); with features,
        ``features`` (all K columns, weakest first, as a (K, n_tasks) float32 array) and ``weak``,
        ``strong`` (its first and last rows); with a neighbour graph, ``neighbour_ids`` (uint32) and
        ``neighbour_weights`` (float32), each (n_tasks, k); ``prior_alpha``/``prior_beta`` (scalars, or arrays for per-task priors), and
        ``mu``, ``rho``, ``step``."""
        return self._pool.state()

    def save(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Writes the whole posterior and config to ``path`` (the crate's checkpoint format; atomic)."""
        self._pool.save(os.fspath(path))

    def restore(self, path: Union[str, "os.PathLike[str]"]) -> dict:
        """Restores a checkpoint into this pool, only if it was written by this pool: same
        `fingerprint` (task count, features, feature form, and the config keys that shape the
        posterior: ``m``, ``lambda``, ``rho``, ``gamma``, ``adaptive_rho``, the prior). A checkpoint of
        another pool raises ``ValueError`` saying what differs, and the pool is unchanged. The pool
        keeps its own config (``batch``, ``seed``, ``tau``, ``target`` may differ); the checkpoint's
        config is returned so the caller can compare (resuming *exactly* needs the same ``seed``)."""
        return json.loads(self._pool.restore(os.fspath(path)))

    @property
    def fingerprint(self) -> str:
        """16 hex digits naming the pool a posterior belongs to (the crate's `bots::Fingerprint`):
        its task count, features and posterior-shaping config, not its state. Equal for two pools
        when a checkpoint of one restores into the other."""
        return self._pool.fingerprint

    @property
    def step(self) -> int:
        """Updates applied so far."""
        return self._pool.step

    @property
    def n_tasks(self) -> int:
        return self._pool.n_tasks

    def __len__(self) -> int:
        return self._pool.n_tasks

    @property
    def backend(self) -> str:
        """``"cpu"`` or ``"cuda:<device name>"``."""
        return self._pool.backend

    @property
    def config(self) -> dict:
        """The config, with the crate's key names."""
        return json.loads(self._pool.config_json())

    def __repr__(self) -> str:
        return f"bots.Pool(n_tasks={self.n_tasks}, step={self.step}, backend={self.backend!r})"


def _embedding_array(values: Any, n: int) -> np.ndarray:
    """An ``(n, dim)`` C-contiguous float32 array of embeddings."""
    e = np.asarray(values)
    if e.ndim != 2 or e.shape[0] != n or e.shape[1] < 1:
        raise ValueError(f"embeddings must be an ({n}, dim) array, one row per task, got shape {e.shape}")
    if e.dtype.kind not in "fiu":
        raise ValueError(f"embeddings must be real numbers, got dtype {e.dtype}")
    return np.ascontiguousarray(e, dtype=np.float32)


def _neighbour_rows(neighbours: Any, n: int) -> Tuple[np.ndarray, np.ndarray, int]:
    """``(ids, weights)`` of shape ``(n, k)`` each, as flat uint32 / float32 arrays and k."""
    try:
        ids, weights = neighbours
    except (TypeError, ValueError):
        raise ValueError("neighbours must be a pair (ids, weights), each of shape (n_tasks, k)") from None
    ids, weights = np.asarray(ids), np.asarray(weights)
    if ids.ndim != 2 or ids.shape != weights.shape or ids.shape[0] != n:
        raise ValueError(f"neighbours: ids and weights must both have shape ({n}, k), got {ids.shape} and {weights.shape}")
    if ids.dtype.kind not in "iu" or (ids.size and (ids.min() < 0 or ids.max() > 2**32 - 1)):
        raise ValueError("neighbours: ids must be integer task ids (2**32 - 1 marks an empty slot)")
    return ids.astype(np.uint32).ravel(), _float_array("neighbour weights", weights.ravel()), ids.shape[1]


def _ordinal(backend: str) -> Optional[int]:
    if backend == "cuda":
        return 0
    if backend.startswith("cuda:"):
        return int(backend[5:])
    return None


def _check_tensor(t: Any, name: str, dtypes: Tuple[str, ...], ordinal: Optional[int]) -> None:
    """A torch tensor the CUDA pool can read or write in place: on its device, of a dtype it
    understands, 1-D and contiguous."""
    if ordinal is None:
        raise ValueError(f"{name}: device tensors need a pool opened with backend='cuda'")
    if not _is_torch(t) or not getattr(t, "is_cuda", False):
        raise ValueError(f"{name} must be a torch CUDA tensor")
    if t.device.index != ordinal:
        raise ValueError(f"{name} is on cuda:{t.device.index}, the pool on cuda:{ordinal}")
    dtype = str(t.dtype).replace("torch.", "")
    if dtype not in dtypes:
        raise ValueError(f"{name} must have dtype {' or '.join(dtypes)}, got {dtype}")
    if t.dim() != 1 or not t.is_contiguous():
        raise ValueError(f"{name} must be a contiguous 1-D tensor")


def _stream(t: Any) -> int:
    import torch  # only on the CUDA path

    return torch.cuda.current_stream(t.device).cuda_stream
