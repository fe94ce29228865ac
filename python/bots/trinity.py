"""`BotsSelector`: a drop-in for Trinity-RFT's `difficulty_based` task selector.

In a Trinity-RFT (0.6.0) config, per taskset (its selector registry takes a dotted path)::

    buffer:
      explorer_input:
        tasksets:
          - name: math
            path: /data/math
            data_selector:
              selector_type: bots.trinity.BotsSelector
              feature_keys: [qwen2.5_7b_pass_rate, qwen3_30b_pass_rate]
              kwargs: {m: 16, lamb: 0.1, rho: 0.1, target_reward: 0.5, tau: 0, do_sample: true,
                       checkpoint_dir: /path/to/run/bots_selector}

(`task_selector:` is the deprecated name of `data_selector:`, which Trinity still maps.) Feedback is
Trinity's: the `pass_rate_calculator` experience operator computes each task's mean reward and the
taskset scheduler passes it to `feedback`.

It reads `feature_keys`, `seed` and `kwargs` as `DifficultyBasedSelector` does, through the crate's
reading of a Trinity selector block (so a missing kwarg takes Trinity's code default:
`Config::trinity_defaults`), and implements `BaseSelector` of trinity-rft 0.6.0: `get_indices`,
`feedback(indices, values)` (alias `update`), `state_dict`, `load_state_dict`. Other crate keys
(`gamma`, `prior_strength`, ...) may go in `kwargs` too, and three of the adapter's own:

- `checkpoint_dir`: where `state_dict()` writes the posterior (default `./bots_selector`). Each call
  writes ``bots-<taskset>-<fingerprint>-step<step>.ckpt``: the taskset's name (Trinity's taskset
  config `name`) and the pool's `fingerprint` (task count, features and the config keys that shape
  the posterior), so several tasksets, or runs over other data, can share one folder without
  touching each other's files. The JSON state Trinity stores holds the file's path, and
  `load_state_dict` restores exactly that posterior, refusing (``ValueError``, nothing changed) a
  checkpoint of another pool or of another taskset.
- `keep_checkpoints`: how many of this selector's files to keep (default 5; < 1 keeps all).
- `backend`: `"cpu"` (default) or `"cuda"`.
"""
from __future__ import annotations

import logging
import os
import re
from typing import Any, Dict, List

import numpy as np

from bots import Pool
from bots._adapter import (
    GRAPH_KEYS,
    Served,
    checkpoint_path,
    checkpoint_stem,
    feature_columns,
    graph_kwargs,
    prune_checkpoints,
)

try:  # a subclass of the real base class where Trinity-RFT is importable
    from trinity.buffer.selector.selector import BaseSelector as _Base
except ImportError:  # pragma: no cover - depends on the environment
    _Base = object

log = logging.getLogger("bots.trinity")

_ADAPTER_KEYS = ("checkpoint_dir", "keep_checkpoints", "backend") + GRAPH_KEYS
#: The file names `bots._adapter.checkpoint_path` writes: stem (name and fingerprint), step.
_CKPT_NAME = re.compile(r"(bots-.*-([0-9a-f]{16}))-step\d+\.ckpt")


def _get(config: Any, name: str, default: Any) -> Any:
    if isinstance(config, dict):
        return config.get(name, default)
    return getattr(config, name, default)


class BotsSelector(_Base):
    """Trinity-RFT task selector backed by the `bots` crate (see the module doc)."""

    def __init__(self, data_source: Any, config: Any) -> None:
        self.data_source = data_source
        self.config = config
        kwargs = dict(_get(config, "kwargs", None) or {})
        own = {k: kwargs.pop(k) for k in _ADAPTER_KEYS if k in kwargs}
        keys = list(_get(config, "feature_keys", None) or [])
        if len(keys) != 2:
            raise ValueError(f"BotsSelector requires exactly 2 feature keys, but got {len(keys)}.")
        dataset = getattr(data_source, "dataset", data_source)
        features = feature_columns(dataset, keys, "the taskset")
        n = len(features[0]) if features is not None else int(getattr(data_source, "dataset_size", len(dataset)))
        # A Trinity selector block: the crate reads it as Trinity does, its code defaults included.
        block = {"selector_type": "difficulty_based", "seed": int(_get(config, "seed", 42)), "feature_keys": keys, "kwargs": kwargs}
        bots_config = {"task_selector": block}
        #: The taskset's name (Trinity's `_HFBatchReader.name`, the taskset config's `name`), which
        #: names this selector's checkpoint files.
        self.name = str(getattr(data_source, "name", None) or "taskset")
        self.backend = own.get("backend", "cpu")
        self.checkpoint_dir = os.fspath(own.get("checkpoint_dir", "bots_selector"))
        self.keep_checkpoints = int(own.get("keep_checkpoints", 5))
        graph = graph_kwargs(dataset, own, "the taskset")
        self._served = Served(Pool(n, features=features, config=bots_config, backend=self.backend, **graph))
        self.current_index = 0

    @property
    def pool(self) -> Pool:
        """The `bots.Pool` behind the selector."""
        return self._served.pool

    def get_indices(self, batch_size: int, return_extra_info: bool = False):
        """The next ``batch_size`` task indices (best first); with ``return_extra_info``, also a dict of
        their posteriors (``indices``, ``alphas``, ``betas``, ``point``)."""
        batch = self._served.next_batch(int(batch_size))
        self.current_index += int(batch_size)
        indices = [int(t) for t in batch]
        if not return_extra_info:
            return indices
        state = self.pool.state()
        alphas, betas = state["alpha"][batch], state["beta"][batch]
        extra = {
            "indices": indices,
            "alphas": alphas.tolist(),
            "betas": betas.tolist(),
            "point": (alphas / (alphas + betas)).tolist(),
        }
        return indices, extra

    def feedback(self, indices: List[int], values: List[float]) -> None:
        """The mean reward of each task's rollouts (Trinity's `PassRateCalculator` output)."""
        self._served.update(np.asarray(indices, dtype=np.int64), pass_rates=np.asarray(values, dtype=np.float64))

    #: Trinity-RFT's docs and the BOTS paper call the feedback verb `update`.
    update = feedback

    def checkpoint_path(self) -> str:
        """Where `state_dict` writes the posterior now (absolute; see the module doc)."""
        return checkpoint_path(self.checkpoint_dir, self.name, self.pool)

    def state_dict(self) -> Dict:
        """JSON-serializable state: Trinity's cursor, the served batches, and the path of a checkpoint of
        the whole posterior written now (`checkpoint_path`; this selector's last `keep_checkpoints`
        files are kept, other selectors' files in the folder are never touched)."""
        os.makedirs(self.checkpoint_dir, exist_ok=True)
        path = self.checkpoint_path()
        self.pool.save(path)
        prune_checkpoints(self.checkpoint_dir, self.name, self.pool, self.keep_checkpoints)
        return {"current_index": self.current_index, "bots_checkpoint": path, **self._served.state()}

    def load_state_dict(self, state_dict: Dict) -> None:
        """Restores the cursor and, where the state names one, the posterior checkpoint, exactly. Bad
        state (another taskset's or pool's checkpoint, a missing file, a state that does not match its
        checkpoint) raises ``ValueError`` or ``FileNotFoundError`` and changes nothing.

        Trinity calls this on every start, with ``{"current_index": 0}`` on a fresh one: that is a
        fresh start. A state with a cursor but no checkpoint (from Trinity's own selectors) restores
        the cursor and keeps the fresh posterior, with a warning."""
        if not isinstance(state_dict, dict):
            raise ValueError(f"selector state must be a dict, got {type(state_dict).__name__}")
        cursor = _count(state_dict.get("current_index", 0), "current_index")
        path = state_dict.get("bots_checkpoint")
        if path is None:
            if cursor == 0:
                log.debug("taskset %r: fresh start (no selector checkpoint)", self.name)
            else:
                log.warning(
                    "taskset %r: the selector state has no bots_checkpoint (written by another selector?): "
                    "resuming its cursor only (current_index = %d), with a fresh posterior",
                    self.name,
                    cursor,
                )
            self.current_index = cursor
            return
        path = os.fspath(path)
        where = f"taskset {self.name!r}: selector state ({path})"
        n = self.pool.n_tasks
        if "n_tasks" in state_dict and state_dict["n_tasks"] != n:
            raise ValueError(f"{where} holds {state_dict['n_tasks']} tasks but the taskset has {n}")
        pending = state_dict.get("pending", [])
        if not isinstance(pending, list) or len(pending) > n:
            raise ValueError(f"{where}: pending must be a list of at most {n} task ids")
        pending = [_count(t, "a pending task id") for t in pending]
        if any(t >= n for t in pending) or len(set(pending)) != len(pending):
            raise ValueError(f"{where}: pending holds task ids out of 0..{n} or repeated")
        sizes = state_dict.get("pending_batches")
        if sizes is not None and (
            not isinstance(sizes, list) or any(_count(k, "a pending batch size") < 1 for k in sizes) or sum(sizes) != len(pending)
        ):
            raise ValueError(f"{where}: pending_batches {sizes!r} do not split the {len(pending)} pending tasks")
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{where}: the checkpoint file is missing (deleted, moved, or pruned: keep_checkpoints = "
                f"{self.keep_checkpoints} keeps that many of this selector's files in {self.checkpoint_dir})"
            )
        self._check_owner(path, where)
        # Read it once aside to check the state against it, so that nothing changes on a mismatch.
        saved = Pool.load(path)
        if "step" in state_dict and state_dict["step"] != saved.step:
            raise ValueError(f"{where}: saved at step {state_dict['step']} but the checkpoint is at step {saved.step}")
        del saved
        theirs = self.pool.restore(path)  # ValueError (pool unchanged) for another pool's checkpoint
        ours = self.pool.config
        differ = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
        if differ:
            log.warning(
                "taskset %r: the checkpoint %s was written with another %s (%s); the posterior is the same, "
                "and the selector keeps its current config%s",
                self.name,
                path,
                "key" if len(differ) == 1 else "keys",
                ", ".join(f"{k}: {theirs.get(k)!r} there, {ours.get(k)!r} now" for k in differ),
                " (the batches differ from an uninterrupted run's: seed changed)" if "seed" in differ else "",
            )
        self._served.set_pending(pending, sizes)
        self.current_index = cursor

    def _check_owner(self, path: str, where: str) -> None:
        """A checkpoint named for this pool's fingerprint but another taskset is another selector's:
        it would restore (same pool), but it is not this taskset's posterior."""
        m = _CKPT_NAME.fullmatch(os.path.basename(path))
        ours = checkpoint_stem(self.name, self.pool)
        if m and m.group(2) == self.pool.fingerprint and m.group(1) != ours:
            raise ValueError(
                f"{where}: the checkpoint belongs to the selector of another taskset ({m.group(1)}), not to "
                f"this one ({ours}): were the tasksets renamed or reordered since it was saved?"
            )


def _count(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
        raise ValueError(f"selector state: {what} must be a non-negative integer, got {v!r}")
    return int(v)
