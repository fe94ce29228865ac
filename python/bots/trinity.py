"""`BotsSelector`: a drop-in for Trinity-RFT's `difficulty_based` task selector.

In a Trinity-RFT config (its selector registry takes a dotted path)::

    buffer:
      explorer_input:
        taskset:
          task_selector:
            selector_type: bots.trinity.BotsSelector
            feature_keys: [qwen2.5_7b_pass_rate, qwen3_30b_pass_rate]
            kwargs: {m: 16, lamb: 0.1, rho: 0.1, target_reward: 0.5, tau: 0, do_sample: true}

It reads `feature_keys`, `seed` and `kwargs` as `DifficultyBasedSelector` does, through the crate's
reading of a Trinity selector block (so a missing kwarg takes Trinity's code default:
`Config::trinity_defaults`), and implements `BaseSelector` of trinity-rft 0.6.0: `get_indices`,
`feedback(indices, values)` (alias `update`), `state_dict`, `load_state_dict`. Other crate keys
(`gamma`, `prior_strength`, ...) may go in `kwargs` too, and three of the adapter's own:

- `checkpoint_dir`: where `state_dict()` writes the posterior (default `./bots_selector`); the JSON
  state Trinity stores holds its path, so a resumed run continues the exact posterior.
- `keep_checkpoints`: how many of those files to keep (default 5).
- `backend`: `"cpu"` (default) or `"cuda"`.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List

import numpy as np

from bots import Pool
from bots._adapter import Served, feature_columns

try:  # a subclass of the real base class where Trinity-RFT is importable
    from trinity.buffer.selector.selector import BaseSelector as _Base
except ImportError:  # pragma: no cover - depends on the environment
    _Base = object

log = logging.getLogger("bots.trinity")

_ADAPTER_KEYS = ("checkpoint_dir", "keep_checkpoints", "backend")


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
        self.backend = own.get("backend", "cpu")
        self.checkpoint_dir = os.fspath(own.get("checkpoint_dir", "bots_selector"))
        self.keep_checkpoints = int(own.get("keep_checkpoints", 5))
        self._served = Served(Pool(n, features=features, config=bots_config, backend=self.backend))
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

    def state_dict(self) -> Dict:
        """JSON-serializable state: Trinity's cursor, the served batches, and the path of a checkpoint of
        the whole posterior written now (named by step, the last `keep_checkpoints` kept)."""
        os.makedirs(self.checkpoint_dir, exist_ok=True)
        path = os.path.abspath(os.path.join(self.checkpoint_dir, f"bots-step{self.pool.step:09d}.ckpt"))
        self.pool.save(path)
        self._prune()
        return {"current_index": self.current_index, "bots_checkpoint": path, **self._served.state()}

    def load_state_dict(self, state_dict: Dict) -> None:
        """Restores the cursor and, where the state names one, the posterior checkpoint. A state from
        Trinity's own selector (cursor only) restores the cursor and keeps the fresh posterior."""
        path = state_dict.get("bots_checkpoint")
        if path is None:
            log.warning("selector state has no bots_checkpoint: resuming the cursor only, with a fresh posterior")
            self.current_index = int(state_dict.get("current_index", 0))
            return
        pool = Pool.load(path, backend=self.backend)
        if pool.n_tasks != self.pool.n_tasks:
            raise ValueError(f"checkpoint {path} holds {pool.n_tasks} tasks but the taskset has {self.pool.n_tasks}")
        if pool.config != self.pool.config:
            log.warning("the checkpoint %s was written with another config; resuming with the saved one", path)
        resumed = Served(pool)
        resumed.check_resumed(state_dict, f"selector state ({path})")
        self._served = resumed
        self.current_index = int(state_dict.get("current_index", 0))

    def _prune(self) -> None:
        if self.keep_checkpoints < 1:
            return
        files = sorted(f for f in os.listdir(self.checkpoint_dir) if f.startswith("bots-step") and f.endswith(".ckpt"))
        for f in files[: -self.keep_checkpoints]:
            os.remove(os.path.join(self.checkpoint_dir, f))
