"""What the Trinity-RFT and verl adapters share: a pool plus the batches served since its last update.

Selection is keyed by the step (the number of updates), so selecting twice before an update gives the
same tasks. Trainers do ask several batches per update (Trinity-RFT feeds back at weight-sync points,
every few steps), so a batch asked before the last one's outcomes came back gets the next-best tasks
of the same draw, never the ones already handed out. A pool too small for that starts over.
"""
from __future__ import annotations

import os
from typing import Any, List, Optional

import numpy as np

from bots import Pool


class Served:
    """A pool and the tasks handed out since its last update."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.pending: List[int] = []

    def next_batch(self, k: int) -> np.ndarray:
        """``k`` tasks, best first, none of them handed out since the last update."""
        n = self.pool.n_tasks
        if not 1 <= k <= n:
            raise ValueError(f"cannot select k = {k} tasks from a pool of {n}: k must be in 1..={n}")
        if len(self.pending) + k > n:
            self.pending = []
        ranked = self.pool.select(len(self.pending) + k)
        if self.pending:
            ranked = ranked[~np.isin(ranked, np.asarray(self.pending, dtype=np.uint32))]
        batch = ranked[:k]
        self.pending.extend(int(t) for t in batch)
        return batch

    def update(self, tasks: Any, **outcomes: Any) -> dict:
        report = self.pool.update(tasks, **outcomes)
        self.pending = []
        return report

    def state(self) -> dict:
        return {"pending": list(self.pending), "step": self.pool.step, "n_tasks": self.pool.n_tasks}

    def check_resumed(self, saved: dict, where: str) -> None:
        """After restoring the pool, takes back the served list and checks the saved step."""
        if saved.get("n_tasks", self.pool.n_tasks) != self.pool.n_tasks:
            raise ValueError(f"{where} holds {saved['n_tasks']} tasks but the data set has {self.pool.n_tasks}")
        if saved.get("step", self.pool.step) != self.pool.step:
            raise ValueError(f"{where}: saved at step {saved['step']} but the checkpoint is at step {self.pool.step}")
        self.pending = [int(t) for t in saved.get("pending", [])]


def feature_columns(table: Any, keys: List[str], where: str) -> Optional[tuple]:
    """The two reference pass-rate columns of a table (Hugging Face dataset, dict of lists, or
    anything indexable by column name), as float arrays; ``None`` when neither column exists."""
    if len(keys) != 2:
        raise ValueError(f"feature_keys must name exactly 2 columns (weaker model, stronger model), got {len(keys)}")
    names = set(getattr(table, "column_names", None) or (table.keys() if hasattr(table, "keys") else keys))
    missing = [k for k in keys if k not in names]
    if len(missing) == 2:
        return None
    if missing:
        raise ValueError(f"{where} has no column {missing[0]!r} (feature_keys = {keys})")
    return tuple(np.asarray(list(table[k]), dtype=np.float64) for k in keys)


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
