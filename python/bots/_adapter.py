"""What the Trinity-RFT and verl adapters share: a pool plus the batches served since its last update.

Selection is keyed by the step (the number of updates), so selecting twice before an update gives the
same tasks. Trainers do ask several batches per update (Trinity-RFT feeds back at weight-sync points,
every few steps; verl's async modes roll out while training), so a batch asked before the last one's
outcomes came back gets the next-best tasks of the same draw, never the ones still out (handed out and
not yet fed back). A pool too small for that starts over.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional

import numpy as np

from bots import Pool, _config_text
from bots._bots import parse_config_keys


class Served:
    """A pool and the tasks still out: handed out, in batches, and not yet fed back.

    When feedback arrives, the newest batch holding any fed task is done, and so is every batch handed
    out before it (a trainer feeds back in order; a task it dropped is not waited for); the batches
    handed out after it are still being rolled out and stay out of the next selections.
    """

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.batches: List[List[int]] = []

    @property
    def pending(self) -> List[int]:
        """Every task still out, in the order handed out."""
        return [t for b in self.batches for t in b]

    @pending.setter
    def pending(self, tasks: List[int]) -> None:
        self.set_pending(tasks)

    def set_pending(self, tasks: List[int], batch_sizes: Optional[List[int]] = None) -> None:
        """Takes back a served list (``batch_sizes`` splits it into its batches; default: one)."""
        tasks = [int(t) for t in tasks]
        sizes = [len(tasks)] if batch_sizes is None else [int(k) for k in batch_sizes]
        if any(k < 1 for k in sizes if tasks) or sum(sizes) != len(tasks):
            raise ValueError(f"batch sizes {sizes} do not split the {len(tasks)} pending tasks")
        cuts = np.cumsum([0] + sizes)
        self.batches = [tasks[a:b] for a, b in zip(cuts[:-1], cuts[1:]) if b > a]

    def next_batch(self, k: int) -> np.ndarray:
        """``k`` tasks, best first, none of them still out."""
        n = self.pool.n_tasks
        if not 1 <= k <= n:
            raise ValueError(f"cannot select k = {k} tasks from a pool of {n}: k must be in 1..={n}")
        pending = self.pending
        if len(pending) + k > n:
            self.batches, pending = [], []
        ranked = self.pool.select(len(pending) + k)
        if pending:
            ranked = ranked[~np.isin(ranked, np.asarray(pending, dtype=np.uint32))]
        batch = ranked[:k]
        self.batches.append([int(t) for t in batch])
        return batch

    def update(self, tasks: Any, **outcomes: Any) -> dict:
        """Feeds one batch's outcomes; see the class doc for what stays out."""
        fed = set(int(t) for t in np.asarray(tasks).ravel())
        report = self.pool.update(tasks, **outcomes)
        done = max((i for i, b in enumerate(self.batches) if fed.intersection(b)), default=-1)
        self.batches = [[t for t in b if t not in fed] for b in self.batches[done + 1 :]]
        self.batches = [b for b in self.batches if b]
        return report

    def state(self) -> dict:
        return {
            "pending": self.pending,
            "pending_batches": [len(b) for b in self.batches],
            "step": self.pool.step,
            "n_tasks": self.pool.n_tasks,
        }

    def check_resumed(self, saved: dict, where: str) -> None:
        """After restoring the pool, takes back the served list and checks the saved step."""
        if saved.get("n_tasks", self.pool.n_tasks) != self.pool.n_tasks:
            raise ValueError(f"{where} holds {saved['n_tasks']} tasks but the data set has {self.pool.n_tasks}")
        if saved.get("step", self.pool.step) != self.pool.step:
            raise ValueError(f"{where}: saved at step {saved['step']} but the checkpoint is at step {self.pool.step}")
        self.set_pending(saved.get("pending", []), saved.get("pending_batches"))


def _plain(x: Any) -> Any:
    """A Mapping/OmegaConf tree as plain dicts and lists."""
    if hasattr(x, "items"):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)) or type(x).__name__ == "ListConfig":
        return [_plain(v) for v in x]
    return x


def crate_config(spec: Any, what: str) -> Dict[str, Any]:
    """An adapter's config (``None``, a mapping or OmegaConf node of crate keys, or a path to a
    YAML/TOML/JSON file read through the crate's parser) as a plain dict."""
    if spec is None:
        return {}
    if isinstance(spec, (str, os.PathLike)):
        return json.loads(parse_config_keys(*_config_text(spec)))
    if not hasattr(spec, "items"):
        raise ValueError(f"{what} must be a dict or a path to a .yaml/.toml/.json file, got {type(spec).__name__}")
    return _plain(spec)


def feature_columns(table: Any, keys: List[str], where: str) -> Optional[tuple]:
    """The K reference pass-rate columns of a table (Hugging Face dataset, dict of lists, or anything
    indexable by column name), weakest model first, as float arrays; ``None`` when none exists."""
    if not 1 <= len(keys) <= 64:
        raise ValueError(f"feature_keys must name 1 to 64 columns (weakest reference model first), got {len(keys)}")
    names = set(getattr(table, "column_names", None) or (table.keys() if hasattr(table, "keys") else keys))
    missing = [k for k in keys if k not in names]
    if len(missing) == len(keys):
        return None
    if missing:
        raise ValueError(f"{where} has no column {missing[0]!r} (feature_keys = {keys})")
    return tuple(np.asarray(list(table[k]), dtype=np.float64) for k in keys)


#: Adapter keys of every adapter that give the pool a neighbour graph (docs/EVIDENCE-SOURCES.md §2):
#: the data set's column of task embeddings (one vector per row) and the out-neighbours per task.
#: The crate key ``neighbour_weight`` (eta > 0) turns the evidence on.
GRAPH_KEYS = ("embedding_key", "neighbour_k")


def graph_kwargs(table: Any, own: Dict[str, Any], where: str) -> Dict[str, Any]:
    """``bots.Pool`` keyword arguments for the adapter keys `GRAPH_KEYS` (none without
    ``embedding_key``): the embedding column as an ``(n, dim)`` array and ``neighbour_k``."""
    key = own.get("embedding_key")
    if key is None:
        if "neighbour_k" in own:
            raise ValueError("neighbour_k needs embedding_key: the column of task embeddings to build the graph from")
        return {}
    names = set(getattr(table, "column_names", None) or (table.keys() if hasattr(table, "keys") else [key]))
    if key not in names:
        raise ValueError(f"{where} has no column {key!r} (embedding_key)")
    try:
        e = np.asarray([np.asarray(v, dtype=np.float32) for v in table[key]], dtype=np.float32)
    except ValueError:
        raise ValueError(f"{where}: column {key!r} (embedding_key) must hold one vector of numbers per row, all of one length") from None
    return {"embeddings": e, "neighbour_k": int(own.get("neighbour_k", 16))}


def _safe(name: str) -> str:
    """A name usable in a file name: letters, digits, '.', '_' and '-' kept, anything else '_'."""
    out = "".join(c if c.isalnum() or c in "._-" else "_" for c in str(name))
    return out.strip(".") or "taskset"


def checkpoint_stem(name: str, pool: Pool) -> str:
    """``bots-<name>-<fingerprint>``: the prefix of every checkpoint file of this selector. Two
    selectors sharing a folder never share a stem unless they have the same name *and* the same pool
    (task count, features, feature form and posterior-shaping config: `Pool.fingerprint`)."""
    return f"bots-{_safe(name)}-{pool.fingerprint}"


def checkpoint_path(directory: str, name: str, pool: Pool) -> str:
    """``<directory>/bots-<name>-<fingerprint>-step<step, 9 digits>.ckpt`` (absolute)."""
    return os.path.abspath(os.path.join(directory, f"{checkpoint_stem(name, pool)}-step{pool.step:09d}.ckpt"))


def prune_checkpoints(directory: str, name: str, pool: Pool, keep: int) -> None:
    """Deletes all but the newest ``keep`` checkpoints of this selector (its stem only: other
    selectors' files in the same folder are never touched). ``keep < 1`` keeps everything."""
    if keep < 1:
        return
    stem = checkpoint_stem(name, pool) + "-step"
    files = sorted(f for f in os.listdir(directory) if f.startswith(stem) and f.endswith(".ckpt"))
    for f in files[:-keep]:
        os.remove(os.path.join(directory, f))
