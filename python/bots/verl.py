"""BOTS in verl. Which class depends on the verl version:

- **verl 0.5.0 - 0.7.1**: `BotsSampler`, a curriculum sampler (`AbstractCurriculumSampler`, whose
  ``update(batch)`` the trainer calls after every step). verl 0.8.0 removed that hook.
- **verl 0.9.0 - 0.9.1** (tested: 0.9.1), the v1 trainer (``trainer.use_v1=True``, the default;
  ``trainer.v1.trainer_mode`` ``sync`` or an async mode): `BotsDataset` (``data.custom_cls``) selects
  and `BotsReplayBuffer` (``trainer.v1.sampler.custom_sampler``) feeds back.
- **verl 0.8.0**, and 0.9's deprecated v0 trainer (``trainer.use_v1=False``): no route. Neither
  trainer offers a hook that sees the rewards (0.8.0 has no pluggable replay buffer yet).

**verl 0.5.0 - 0.7.1** (Hydra overrides; the ``+`` adds keys verl's schema does not list)::

    data.sampler.class_path=pkg://bots.verl data.sampler.class_name=BotsSampler
    data.dataloader_num_workers=0                       # verl requires it for curriculum samplers
    +data.sampler.config.m=16                           # = actor_rollout_ref.rollout.n
    +data.sampler.config.feature_keys=[qwen2.5_7b_pass_rate,qwen3_30b_pass_rate]

`data.sampler.config` is a map of the crate's config keys (Trinity names too) or a path to a
YAML/TOML/JSON file; its `seed` defaults to `data.seed`. Adapter keys in the same map:
`reward_key` (default `token_level_scores`), `success_threshold` (a rollout passes when its summed
reward is >= it; default 0.5, right for 0/1 and -1/+1 rewards) and `backend` (`cpu` or `cuda`).
Task ids are the batch's `index` field (verl's `extra_info.index`, which verl's example preprocessors
set to the row number): each must be the task's row in the training file. `state_dict()` carries the
whole posterior, so verl's dataloader checkpoint resumes it exactly; a posterior of another pool
(other data set size, features or posterior-shaping config) is refused with ``ValueError``.

**verl 0.9**::

    data.custom_cls.path=pkg://bots.verl data.custom_cls.name=BotsDataset
    trainer.v1.sampler.custom_sampler.path=pkg://bots.verl
    trainer.v1.sampler.custom_sampler.name=BotsReplayBuffer
    data.dataloader_num_workers=0
    '+data.bots.m=${actor_rollout_ref.rollout.n}'
    '+data.bots.feature_keys=[qwen2.5_7b_pass_rate,qwen3_30b_pass_rate]'

- `BotsDataset` is verl's `RLHFDataset` (same files, same rows) whose training batches BOTS picks: each
  batch of ``gen_batch_size`` rows the trainer's dataloader asks for is BOTS's best tasks not handed
  out and still unfed, whatever indices verl's sampler drew. Each row carries ``bots_task`` (its row
  number), so rewards find their task without ``extra_info.index``. The validation set, built from the
  same ``data.custom_cls`` and recognised by ``data.val_files``, is served unchanged.
- `BotsReplayBuffer` is verl's own `ReplayBuffer` (`ReplayBufferAsync` in the async trainer modes).
  Every training batch it hands the trainer is first fed to the pool: one rollout per ``{uid}_{session}``,
  passing when its summed ``rm_scores`` is >= ``success_threshold``; per task, successes and failures.
- The posterior, with the tasks handed out and not yet fed back, is the data set's state, which verl's
  ``StatefulDataLoader`` writes into every checkpoint (``data.pt``): a resumed run selects what the
  uninterrupted run selects. A checkpoint of another pool is refused with ``ValueError`` naming the
  difference, when the first batch after resuming is drawn.

``data.bots`` takes what ``data.sampler.config`` takes above (``reward_key`` defaults to ``rm_scores``)
or a file path. ``m`` must equal ``actor_rollout_ref.rollout.n`` (checked at the first feedback);
``batch`` defaults to ``data.gen_batch_size`` or ``data.train_batch_size``.

Not supported on verl 0.9: a colocated reward model (``reward.reward_model.enable=True`` with
``enable_resource_pool=False``: verl scores those rollouts only after the replay buffer has handed them
out, so no reward is there to feed; rule-based rewards and a standalone reward model work), and DAPO
group filtering (``algorithm.filter_groups``), which verl does not pass to custom replay buffers.
"""
from __future__ import annotations

import logging
import os
import tempfile
import warnings
import weakref
from typing import Any, Dict, Iterator, List, Mapping, Optional

import numpy as np

from bots import Pool
from bots._adapter import GRAPH_KEYS, Served, crate_config, feature_columns, graph_kwargs

try:  # the real base class where verl <= 0.7.1 is importable (verl asserts isinstance(sampler, AbstractSampler))
    from verl.experimental.dataset.sampler import AbstractCurriculumSampler as _Base
except ImportError:  # pragma: no cover - depends on the environment (verl >= 0.8 has no such module)
    _Base = object

log = logging.getLogger("bots.verl")

__all__ = ["BotsSampler", "BotsDataset", "BotsReplayBuffer"]

_ADAPTER_KEYS = ("reward_key", "success_threshold", "backend") + GRAPH_KEYS
#: The field `BotsDataset` adds to every training row: the row number (the task id).
TASK_FIELD = "bots_task"


def _build_pool(table: Any, n: int, data_config: Any, spec: Any, reward_key: str):
    """(pool, adapter options) from a data set's table and its ``data`` config section."""
    cfg = dict(crate_config(spec, "the BOTS config"))
    own = {k: cfg.pop(k) for k in _ADAPTER_KEYS if k in cfg}
    options = {
        "reward_key": str(own.get("reward_key", reward_key)),
        "success_threshold": float(own.get("success_threshold", 0.5)),
        "backend": str(own.get("backend", "cpu")),
    }
    if "seed" not in cfg and data_config.get("seed", None) is not None:
        cfg["seed"] = int(data_config.get("seed"))
    batch = int(data_config.get("gen_batch_size", None) or data_config.get("train_batch_size"))
    cfg.setdefault("batch", batch)
    block = cfg.get("task_selector") if isinstance(cfg.get("task_selector"), Mapping) else {}
    keys = list(block.get("feature_keys") or cfg.get("feature_keys") or Pool(1, config={"rho": 0}).config["feature_keys"])
    features = feature_columns(table, keys, "the training data")
    try:
        pool = Pool(n, features=features, config=cfg, backend=options["backend"], **graph_kwargs(table, own, "the training data"))
    except ValueError as e:
        if features is None and "features" in str(e):
            raise ValueError(f"{e} (the training data has neither feature column {keys}: add them, or set rho: 0)") from None
        raise
    return pool, options, batch


def _pool_bytes(pool: Pool) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "bots.ckpt")
        pool.save(path)
        with open(path, "rb") as f:
            return f.read()


def _resume(served: Served, state: Mapping[str, Any], where: str) -> None:
    """Restores the checkpoint bytes in ``state`` into the live pool (refusing another pool's, the
    pool unchanged) and takes back the tasks handed out but not fed back."""
    pool = served.pool
    if state.get("n_tasks", pool.n_tasks) != pool.n_tasks:
        raise ValueError(f"{where} holds {state['n_tasks']} tasks but the data set has {pool.n_tasks}")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "bots.ckpt")
        with open(path, "wb") as f:
            f.write(state["bots_checkpoint"])
        try:
            saved = pool.restore(path)
        except ValueError as e:  # the crate's message names the temporary file: keep what differs
            raise ValueError(f"{where} belongs to another pool: {str(e).split('another pool: ', 1)[-1]}") from None
    if saved.get("seed") != pool.config["seed"]:
        log.warning("%s was written with seed %s, the pool now has seed %s: the run continues, but not as the "
                    "interrupted one would have", where, saved.get("seed"), pool.config["seed"])
    served.check_resumed(dict(state), where)


class BotsSampler(_Base):
    """verl (0.5.0 - 0.7.1) curriculum sampler backed by the `bots` crate (see the module doc)."""

    def __init__(self, data_source: Any, data_config: Any) -> None:
        self.data_source = data_source
        sampler_cfg = data_config.get("sampler", None) or {}
        table = getattr(data_source, "dataframe", data_source)
        pool, options, self.batch_size = _build_pool(
            table, len(data_source), data_config, sampler_cfg.get("config", None), "token_level_scores")
        self.reward_key = options["reward_key"]
        self.success_threshold = options["success_threshold"]
        self.backend = options["backend"]
        self._served = Served(pool)
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
        return {"bots_checkpoint": _pool_bytes(self.pool), "yielded": self._yielded,
                "buffer": list(self._buffer), **self._served.state()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restores the posterior in place; a state saved by another pool (other data set size,
        features or posterior-shaping config) raises ``ValueError`` and changes nothing."""
        _resume(self._served, state, "sampler state")
        self._yielded = int(state.get("yielded", 0))
        self._buffer = [int(t) for t in state.get("buffer", [])]


# ---------------------------------------------------------------------------------------------------
# verl 0.9: the v1 trainer. The classes subclass verl's own, so they are made on first use
# (`from bots.verl import BotsDataset`, or verl's `load_extern_object`), never at import: importing
# bots.verl must stay cheap and must work where only verl <= 0.7 (or no verl) is installed.
# ---------------------------------------------------------------------------------------------------

_V1: Dict[str, type] = {}
#: The training-mode `BotsDataset`s alive in this process (the replay buffer's fallback way to its pool).
_LIVE: "weakref.WeakSet[Any]" = weakref.WeakSet()


def _files(x: Any) -> List[str]:
    if x is None:
        return []
    if isinstance(x, (str, os.PathLike)):
        return [os.fspath(x)]
    return [os.fspath(f) for f in x]


def _values(column: Any) -> List[Any]:
    """A column read back from TransferQueue as a plain list, one value per trajectory (the column is a
    torch tensor, dense or jagged, a tensordict NonTensorStack, a list or a numpy array, depending on the
    field and the backend)."""
    if getattr(column, "is_nested", None) is not None:  # a torch tensor
        return list(column.unbind(0))
    if type(column).__module__.split(".")[0] == "tensordict" and hasattr(column, "tolist"):
        return list(column.tolist())
    return [v.data if type(v).__name__ == "NonTensorData" else v for v in column]


def _feedback(keys: List[str], tasks: List[Any], rewards: List[Any], threshold: float, m: int):
    """Per task: (tasks, successes, failures) from trajectories keyed ``{uid}_{session}_{index}``.
    One rollout per ``{uid}_{session}`` (an agent loop may write several outputs per session; verl
    copies the final reward into all of them, and the last is taken). A task handed out more than once
    before its feedback has its counts scaled to ``m`` rollouts (its pass rate kept)."""
    rollouts: Dict[tuple, tuple] = {}
    for key, task, reward in zip(keys, tasks, rewards):
        uid, session, index = key.rsplit("_", 2)
        total = float(reward.sum()) if hasattr(reward, "sum") else float(np.sum(reward))
        task = int(np.asarray(task).reshape(-1)[0])
        group = (uid, session)
        if group not in rollouts or int(index) >= rollouts[group][0]:
            rollouts[group] = (int(index), task, total)
    if not rollouts:
        return None
    ids = np.array([t for _, t, _ in rollouts.values()], dtype=np.int64)
    passed = np.array([r >= threshold for _, _, r in rollouts.values()], dtype=np.float64)
    uniq, inverse = np.unique(ids, return_inverse=True)
    successes = np.bincount(inverse, weights=passed, minlength=len(uniq))
    totals = np.bincount(inverse, minlength=len(uniq)).astype(np.float64)
    over = totals > m
    if over.any():
        successes[over] *= m / totals[over]
        totals[over] = m
    return uniq, successes, totals - successes


def _make_v1() -> Dict[str, type]:
    if _V1:
        return _V1
    try:
        import torch
        import transfer_queue as tq
        from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer, ReplayBufferAsync
        from verl.utils.dataset.rl_dataset import RLHFDataset
    except ImportError as e:
        raise ImportError(f"bots.verl.BotsDataset / BotsReplayBuffer need verl 0.9 (its v1 trainer; "
                          f"verl <= 0.7.1: use bots.verl.BotsSampler): {e}") from e

    class BotsDataset(RLHFDataset):
        """verl's `RLHFDataset` whose training batches BOTS selects (see the module doc)."""

        def __init__(self, data_files: Any, tokenizer: Any, config: Any, processor: Any = None,
                     max_samples: int = -1) -> None:
            super().__init__(data_files=data_files, tokenizer=tokenizer, config=config, processor=processor,
                             max_samples=max_samples)
            files = _files(self.original_data_files)
            self.bots_training = not (files == _files(config.get("val_files", None)) and files != _files(config.get("train_files", None)))
            self._served: Optional[Served] = None
            if not self.bots_training:
                return
            if config.get("dataloader_num_workers", 8) != 0:
                raise ValueError("bots.verl.BotsDataset needs data.dataloader_num_workers=0 (each worker process "
                                 "would hold its own copy of the posterior, never fed back)")
            pool, options, self.bots_batch = _build_pool(self.dataframe, len(self), config, config.get("bots", None), "rm_scores")
            self.reward_key = options["reward_key"]
            self.success_threshold = options["success_threshold"]
            self._served = Served(pool)
            self._unfed = 0  # rows handed out since the last feedback
            self._warned = False
            _LIVE.add(self)

        @property
        def pool(self) -> Pool:
            """The `bots.Pool` behind the data set (training data only)."""
            if self._served is None:
                raise AttributeError("this BotsDataset serves the validation data: it has no pool")
            return self._served.pool

        def _row(self, task: int) -> dict:
            row = super().__getitem__(task)
            row[TASK_FIELD] = torch.tensor([task], dtype=torch.int64)
            return row

        def __getitem__(self, item: int) -> dict:
            """Row ``item`` as `RLHFDataset` gives it (plus ``bots_task`` on the training data)."""
            return self._row(int(item)) if self.bots_training else super().__getitem__(item)

        def __getitems__(self, indices: List[int]) -> List[dict]:
            """The dataloader's batch: on the training data, BOTS's best ``len(indices)`` tasks among those
            not handed out and still unfed (the sampler's indices only set the batch size)."""
            if not self.bots_training:
                return [super(BotsDataset, self).__getitem__(i) for i in indices]
            tasks = self._served.next_batch(len(indices))
            self._unfed += len(tasks)
            if self._unfed > self.pool.n_tasks and not self._warned:
                self._warned = True
                warnings.warn("bots.verl.BotsDataset has handed out every task without any feedback: set "
                              "trainer.v1.sampler.custom_sampler.path=pkg://bots.verl "
                              "trainer.v1.sampler.custom_sampler.name=BotsReplayBuffer", stacklevel=2)
            return [self._row(int(t)) for t in tasks]

        def bots_update(self, tasks: Any, successes: Any, failures: Any) -> dict:
            """One feedback (called by `BotsReplayBuffer`); returns the crate's update report. Tasks handed
            out and not in this feedback (still being rolled out, in the async trainer modes) stay out of
            the next selections until they are fed back (or every task has been handed out)."""
            report = self._served.update(tasks, successes=successes, failures=failures)
            self._unfed = len(self._served.pending)
            return report

        # ---- torchdata's StatefulDataLoader saves and restores these (verl's data.pt) ----

        def state_dict(self) -> Dict[str, Any]:
            if not self.bots_training:
                return {}
            return {"bots_checkpoint": _pool_bytes(self.pool), "fingerprint": self.pool.fingerprint,
                    **self._served.state()}

        def load_state_dict(self, state: Dict[str, Any]) -> None:
            if not self.bots_training or not state:
                return
            _resume(self._served, state, "the dataloader checkpoint's BOTS state")
            self._unfed = len(self._served.pending)

    class _Feedback:
        """`ReplayBuffer.sample`, then the training batch's rewards fed to the pool."""

        def sample(self, global_steps: int, partition_id: str, batch_size: int):
            batch, metrics = super().sample(global_steps, partition_id, batch_size)
            if partition_id != "val":
                metrics.update(self._bots_feed(batch))
            return batch, metrics

        def _bots_dataset(self) -> Any:
            trainer = getattr(getattr(self, "refill_fn", None), "__self__", None)  # verl passes trainer._add_prompts_to_generate
            found = getattr(trainer, "train_dataset", None)
            if not isinstance(found, BotsDataset):
                live = [d for d in _LIVE if d.bots_training]
                found = live[0] if trainer is None and len(live) == 1 else None
            if found is None or not found.bots_training:
                raise RuntimeError("bots.verl.BotsReplayBuffer feeds a bots.verl.BotsDataset, but the trainer's training "
                                   "data set is not one: set data.custom_cls.path=pkg://bots.verl "
                                   "data.custom_cls.name=BotsDataset")
            n = trainer.config.actor_rollout_ref.rollout.get("n", None) if trainer is not None else None
            if n is not None and int(n) != found.pool.config["m"]:
                raise ValueError(f"data.bots.m is {found.pool.config['m']} but actor_rollout_ref.rollout.n is {n}: "
                                 "set +data.bots.m=${actor_rollout_ref.rollout.n}")
            return found

        @staticmethod
        def _bots_column(batch: Any, keys: List[str], field: str, hint: str) -> List[Any]:
            try:
                data = tq.kv_batch_get(keys=keys, partition_id=batch.partition_id, select_fields=[field])
                if field in data.keys():
                    return _values(data[field])
                why = ""
            except (KeyError, ValueError, RuntimeError) as e:
                why = f" ({e})"
            raise RuntimeError(f"bots.verl.BotsReplayBuffer: the sampled rollouts have no {field!r}{why}. {hint}.")

        def _bots_feed(self, batch: Any) -> Dict[str, float]:
            dataset = self._bots_dataset()
            keys = [k for k, tag in zip(batch.keys, batch.tags) if not tag.get("is_padding", False)]
            if not keys:
                return {}
            rewards = self._bots_column(batch, keys, dataset.reward_key, (
                "The rewards must be in TransferQueue when verl samples the batch: rule-based rewards, or a reward "
                "model with reward.reward_model.enable_resource_pool=True (a colocated one scores the batch later)"))
            tasks = self._bots_column(batch, keys, TASK_FIELD, "Its rows must come from bots.verl.BotsDataset")
            fed = _feedback(keys, tasks, rewards, dataset.success_threshold, dataset.pool.config["m"])
            if fed is None:
                return {}
            tasks, successes, failures = fed
            dataset.bots_update(tasks, successes, failures)
            rates = successes / (successes + failures)
            return {"training/bots/step": float(dataset.pool.step), "training/bots/tasks_fed": float(len(tasks)),
                    "training/bots/pass_rate_mean": float(rates.mean())}

    class BotsReplayBuffer(_Feedback, ReplayBuffer):
        """verl's v1 `ReplayBuffer` (or `ReplayBufferAsync`, for the async trainer modes) feeding every
        training batch's rewards to `BotsDataset`'s pool (see the module doc)."""

        def __new__(cls, *args: Any, **kwargs: Any):
            mode = kwargs.get("trainer_mode", args[0] if args else "sync")
            if cls is BotsReplayBuffer and mode != "sync":
                cls = BotsReplayBufferAsync
            return object.__new__(cls)

    class BotsReplayBufferAsync(BotsReplayBuffer, ReplayBufferAsync):
        """`BotsReplayBuffer` over verl's `ReplayBufferAsync` (chosen by `BotsReplayBuffer` itself when
        ``trainer.v1.trainer_mode`` is not ``sync``)."""

    for c in (BotsDataset, _Feedback, BotsReplayBuffer, BotsReplayBufferAsync):
        c.__module__ = __name__
        c.__qualname__ = c.__name__
    _V1.update(BotsDataset=BotsDataset, BotsReplayBuffer=BotsReplayBuffer, BotsReplayBufferAsync=BotsReplayBufferAsync)
    return _V1


def __getattr__(name: str) -> Any:
    if name in ("BotsDataset", "BotsReplayBuffer", "BotsReplayBufferAsync"):
        return _make_v1()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
