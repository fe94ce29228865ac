"""`BotsSampler`: BOTS as verl's curriculum sampler (`AbstractCurriculumSampler`, verl 0.5-0.6).

verl config (Hydra overrides; the `+` adds keys verl's schema does not list)::

    data.sampler.class_path=pkg://bots.verl data.sampler.class_name=BotsSampler
    data.dataloader_num_workers=0                       # verl requires it for curriculum samplers
    +data.sampler.config.m=16                           # = actor_rollout_ref.rollout.n
    +data.sampler.config.feature_keys=[qwen2.5_7b_pass_rate,qwen3_30b_pass_rate]

`data.sampler.config` is a map of the crate's config keys (Trinity names too) or a path to a
YAML/TOML/JSON file; its `seed` defaults to `data.seed`. Adapter keys in the same map:
`reward_key` (default `token_level_scores`), `success_threshold` (a rollout passes when its summed
reward is >= it; default 0.5, right for 0/1 and -1/+1 rewards) and `backend` (`cpu` or `cuda`).

Task ids are the batch's `index` field (verl's `extra_info.index`, which verl's example preprocessors
set to the row number): each must be the task's row in the training file. The features are the two
`feature_keys` columns of the training data. `state_dict()` carries the whole posterior (the crate's
checkpoint bytes), so verl's dataloader checkpoint resumes it exactly.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Dict, Iterator

import numpy as np

from bots import Pool, _config_text
from bots._bots import parse_config_keys
from bots._adapter import Served, feature_columns

try:  # the real base class where verl is importable (verl asserts isinstance(sampler, AbstractSampler))
    from verl.experimental.dataset.sampler import AbstractCurriculumSampler as _Base
except ImportError:  # pragma: no cover - depends on the environment
    _Base = object

_ADAPTER_KEYS = ("reward_key", "success_threshold", "backend")


def _plain(x: Any) -> Any:
    """An OmegaConf/Mapping tree as plain dicts and lists."""
    if hasattr(x, "items"):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)) or type(x).__name__ == "ListConfig":
        return [_plain(v) for v in x]
    return x


def _crate_config(spec: Any) -> Dict[str, Any]:
    """The sampler config as a flat dict (a file is read through the crate's parser first)."""
    if spec is None:
        return {}
    if isinstance(spec, (str, os.PathLike)):
        return json.loads(parse_config_keys(*_config_text(spec)))
    return _plain(spec)


class BotsSampler(_Base):
    """verl curriculum sampler backed by the `bots` crate (see the module doc)."""

    def __init__(self, data_source: Any, data_config: Any) -> None:
        self.data_source = data_source
        sampler_cfg = data_config.get("sampler", None) or {}
        cfg = dict(_crate_config(sampler_cfg.get("config", None)))
        own = {k: cfg.pop(k) for k in _ADAPTER_KEYS if k in cfg}
        self.reward_key = own.get("reward_key", "token_level_scores")
        self.success_threshold = float(own.get("success_threshold", 0.5))
        self.backend = own.get("backend", "cpu")
        if "seed" not in cfg and data_config.get("seed", None) is not None:
            cfg["seed"] = int(data_config.get("seed"))
        n = len(data_source)
        self.batch_size = int(data_config.get("gen_batch_size", None) or data_config.get("train_batch_size"))
        cfg.setdefault("batch", self.batch_size)
        table = getattr(data_source, "dataframe", data_source)
        keys = list(cfg.get("feature_keys") or Pool(1, config={"rho": 0}).config["feature_keys"])
        features = feature_columns(table, keys, "the training data")
        self._served = Served(Pool(n, features=features, config=cfg, backend=self.backend))
        self._buffer: list = []
        self._yielded = 0

    @property
    def pool(self) -> Pool:
        """The `bots.Pool` behind the sampler."""
        return self._served.pool

    # ---- torch Sampler ----

    def __len__(self) -> int:
        return self.pool.n_tasks

    def __iter__(self) -> Iterator[int]:
        self._yielded = 0
        self._buffer = []
        return self

    def __next__(self) -> int:
        if self._yielded >= len(self):
            raise StopIteration
        if not self._buffer:
            k = min(self.batch_size, self.pool.n_tasks)
            self._buffer = [int(t) for t in self._served.next_batch(k)]
        self._yielded += 1
        return self._buffer.pop(0)

    # ---- AbstractCurriculumSampler ----

    def update(self, batch: Any) -> None:
        """One training step's outcomes: per task (the batch's ``index``), its rollouts' successes
        (summed reward >= success_threshold) and failures."""
        index = np.asarray(batch.non_tensor_batch["index"])
        scores = batch.batch[self.reward_key]
        if hasattr(scores, "detach"):  # a torch tensor, as verl's DataProto holds
            scores = scores.detach().float().cpu().numpy()
        scores = np.asarray(scores, dtype=np.float64)
        scores = scores.reshape(len(scores), -1).sum(-1)  # token-level rewards -> one per rollout
        if len(scores) != len(index):
            raise ValueError(f"batch has {len(index)} index values but {len(scores)} rewards")
        try:
            index = index.astype(np.int64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"the batch's index field must hold integer task ids: {e}") from None
        tasks, inverse = np.unique(index, return_inverse=True)
        passed = (scores >= self.success_threshold).astype(np.float64)
        successes = np.bincount(inverse, weights=passed, minlength=len(tasks))
        totals = np.bincount(inverse, minlength=len(tasks)).astype(np.float64)
        self._served.update(tasks, successes=successes, failures=totals - successes)

    # ---- checkpointing (torchdata's StatefulDataLoader asks the sampler iterator) ----

    def state_dict(self) -> Dict[str, Any]:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "bots.ckpt")
            self.pool.save(path)
            with open(path, "rb") as f:
                blob = f.read()
        return {"bots_checkpoint": blob, "yielded": self._yielded, "buffer": list(self._buffer), **self._served.state()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "bots.ckpt")
            with open(path, "wb") as f:
                f.write(state["bots_checkpoint"])
            pool = Pool.load(path, backend=self.backend)
        if pool.n_tasks != self.pool.n_tasks:
            raise ValueError(f"sampler state holds {pool.n_tasks} tasks but the data set has {self.pool.n_tasks}")
        resumed = Served(pool)
        resumed.check_resumed(state, "sampler state")
        self._served = resumed
        self._yielded = int(state.get("yielded", 0))
        self._buffer = [int(t) for t in state.get("buffer", [])]
