"""`BotsGRPOTrainer`: TRL's `GRPOTrainer` with BOTS choosing the prompts (trl 1.16).

Use it exactly like `GRPOTrainer`, plus ``bots_config``::

    from bots.trl import BotsGRPOTrainer                     # was: from trl import GRPOTrainer
    trainer = BotsGRPOTrainer(model=..., reward_funcs=..., args=GRPOConfig(...), train_dataset=dataset,
                              bots_config={"lambda": 0.1, "rho": 0.1, "target": 0.5})
    trainer.train()                                          # or train(resume_from_checkpoint=True)

Every time TRL generates (once every ``steps_per_generation * num_iterations`` micro-steps), BOTS picks
the round's ``B = generation_batch_size // num_generations`` prompts (dataset rows) from the posterior
updated with every earlier round, and is fed the rewards TRL computed for them before the next round is
picked: selection and feedback alternate, nothing is ever asked ahead of feedback, so the choices do
not depend on when TRL's dataloader prefetches. The dataloader keeps TRL's shape and length (epochs,
``max_steps``, resume-skipping work as in TRL) but its rows are replaced by BOTS's at generation time.

``bots_config``: a dict of the crate's config keys (Trinity-RFT names and a pasted ``task_selector:``
block too) or a path to a YAML/TOML/JSON file. ``m`` and ``batch`` are set from TRL's arguments
(``num_generations`` and ``B``; a different value given is an error) and ``seed`` defaults to
``args.seed``. Adapter keys in the same dict:

- ``success_threshold`` (default 0.5): a completion passes when its reward (the reward functions'
  outputs, weighted by ``reward_weights`` and summed, as TRL logs ``reward``) is at least this; a task's
  evidence is its successes and failures among its ``num_generations`` completions. ``None``: the
  completions' rewards clipped to [0, 1] count as fractional successes (the mean clipped reward is the
  pass rate). Completions every reward function returned ``None`` for are left out, as TRL leaves them
  out of its baseline.
- ``backend``: ``"cpu"`` (default) or ``"cuda"`` (each process's pool on its own ``accelerator.device``).
- ``feature_keys`` (a crate key): the two reference pass-rate columns of the training data, weaker
  model first (default GURU's ``qwen2.5_7b_pass_rate``, ``qwen3_30b_pass_rate``). Without them set
  ``rho: 0`` (no implicit evidence).

Processes: under accelerate every process holds its own pool. The rewards TRL gathers across processes
(``_calculate_rewards``) come in process order, the layout TRL's own ``process_slice`` relies on, so
every process feeds the same evidence and selects the same next round with no communication of its
own (the crate's randomness is keyed by seed, step and task). Each process trains on its slice of the
round, as TRL's sampler would have sharded it.

Checkpoints: every TRL checkpoint folder gets the posterior (``bots-trl-<fingerprint>-step<N>.ckpt``,
the fingerprint naming the pool) and ``bots_trl_state.json``; ``train(resume_from_checkpoint=...)``
restores them (every process reads the main process's file: a shared file system, or
``save_on_each_node``), refusing (``ValueError``) a posterior of another pool (other data set size,
features, or posterior-shaping config). A resumed run selects what the uninterrupted run selects. When a
checkpoint falls inside a generation block (``save_steps * gradient_accumulation_steps`` not a
multiple of ``steps_per_generation * num_iterations``; never with the defaults), TRL regenerates on
resume, a round the uninterrupted run does not have; it gets the interrupted round's prompts again
and is not fed, so no round is fed twice and the next round is selected from the posterior the
uninterrupted run selected it from (later rounds then differ only as far as TRL's regenerated
completions change the rewards).

Not supported: iterable (streaming) training sets and ``environment_factory`` runs without a
``train_dataset`` (BOTS needs rows it can index). Evaluation is TRL's own.
"""
from __future__ import annotations

import collections
import copy
import glob
import json
import logging
import os
from typing import Any, Dict, Mapping, Optional

import numpy as np

from bots import Pool
from bots._adapter import GRAPH_KEYS, Served, checkpoint_path, checkpoint_stem, crate_config, feature_columns, graph_kwargs

import torch
from torch.utils.data import IterableDataset
from trl import GRPOTrainer
from trl.trainer.utils import RepeatSampler

log = logging.getLogger("bots.trl")

__all__ = ["BotsGRPOTrainer"]

_ADAPTER_KEYS = ("success_threshold", "backend") + GRAPH_KEYS
_NAME = "trl"  # checkpoint file names: bots-trl-<fingerprint>-step<N>.ckpt
STATE_FILE = "bots_trl_state.json"
#: How many rounds `BotsGRPOTrainer.bots_rounds` keeps.
HISTORY = 1024


class BotsGRPOTrainer(GRPOTrainer):
    """`trl.GRPOTrainer` whose prompts BOTS selects (see the module doc). Takes GRPOTrainer's
    arguments plus ``bots_config``."""

    def __init__(self, *args: Any, bots_config: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        dataset = self.train_dataset
        if dataset is None or isinstance(dataset, IterableDataset) or type(dataset).__name__ == "IterableDataset":
            raise ValueError("BotsGRPOTrainer needs a map-style train_dataset: BOTS picks its rows by index")
        cfg = crate_config(bots_config, "bots_config")
        own = {k: cfg.pop(k) for k in _ADAPTER_KEYS if k in cfg}
        threshold = own.get("success_threshold", 0.5)
        self.bots_success_threshold: Optional[float] = None if threshold is None else float(threshold)
        G = int(self.num_generations)
        B = int(self.args.generation_batch_size) // G
        n = len(dataset)
        if B > n:
            raise ValueError(
                f"a round needs {B} distinct prompts (generation_batch_size // num_generations) but the data set has {n} rows"
            )
        self._bots_defaults(cfg, m=G, batch=B, seed=int(self.args.seed))
        block = cfg.get("task_selector") if isinstance(cfg.get("task_selector"), Mapping) else {}
        keys = block.get("feature_keys") or cfg.get("feature_keys") or Pool(1, config={"rho": 0}).config["feature_keys"]
        keys = list(keys)
        features = feature_columns(dataset, keys, "the training data")
        backend = str(own.get("backend", "cpu"))
        if backend == "cuda" and self.accelerator.device.type == "cuda":
            backend = f"cuda:{self.accelerator.device.index or 0}"
        try:
            pool = Pool(n, features=features, config=cfg, backend=backend, **graph_kwargs(dataset, own, "the training data"))
        except ValueError as e:
            if features is None and "features" in str(e):
                raise ValueError(
                    f"{e} (the training data has neither feature column {keys}: add them, or set rho: 0 in bots_config)"
                ) from None
            raise
        for key, want, trl_name in (("m", G, "num_generations"), ("batch", B, "generation_batch_size // num_generations")):
            if pool.config[key] != want:
                raise ValueError(
                    f"bots_config has {key} = {pool.config[key]}, but TRL's {trl_name} is {want}: "
                    f"leave {key} out or make them equal"
                )
        self.bots_backend = backend
        self._bots = Served(pool)
        self._bots_rows: Any = dataset  # the rows the dataloader reads (after TRL's column pruning)
        self._bots_rewards: Optional[torch.Tensor] = None  # the open round's gathered rewards
        self._bots_open = False  # a round is being generated and scored
        self._bots_last: Optional[np.ndarray] = None  # the last round's tasks
        self._bots_reserve: Optional[np.ndarray] = None  # a round to serve again, unfed (mid-block resume)
        #: The last rounds (at most `HISTORY`): dicts with ``step`` (the pool's step when selected),
        #: ``global_step``, ``tasks`` (the round's dataset rows, best first), ``successes``, ``failures``
        #: (per task; ``None`` for a round served again after a mid-block resume) and ``fed``.
        self.bots_rounds: collections.deque = collections.deque(maxlen=HISTORY)

    @staticmethod
    def _bots_defaults(cfg: Dict[str, Any], **values: Any) -> None:
        """Sets keys the user left out: flat keys, or inside a Trinity ``task_selector`` block's kwargs."""
        block = cfg.get("task_selector")
        if isinstance(block, dict):
            kwargs = block.setdefault("kwargs", {})
            for k, v in values.items():
                if k == "seed":
                    continue  # a pasted block keeps Trinity's meaning of its seed
                if k not in block and k not in kwargs:
                    kwargs[k] = v
        else:
            for k, v in values.items():
                cfg.setdefault(k, v)

    @property
    def pool(self) -> Pool:
        """The `bots.Pool` behind the trainer (this process's)."""
        return self._bots.pool

    # ---- the dataloader: TRL's shape and length, rows replaced at generation time ----

    def _get_train_sampler(self, dataset: Any = None):
        if dataset is None:
            dataset = self.train_dataset
        self._bots_rows = dataset
        # TRL's own sampler, in order: its rows are placeholders (replaced by BOTS's below), so it is
        # only the count of batches that matters, and in-order reads are the cheapest.
        return RepeatSampler(
            data_source=dataset,
            mini_repeat_count=self.num_generations,
            batch_size=self.args.generation_batch_size // self.num_generations,
            repeat_count=self.num_iterations * self.args.steps_per_generation,
            shuffle=False,
            seed=self.args.seed,
        )

    # ---- one round: select, generate and score (TRL), feed ----

    def _generate_and_score_completions(self, inputs: list) -> dict:
        if not self.model.training:  # evaluation: TRL's own batches
            return super()._generate_and_score_completions(inputs)
        G = self.num_generations
        B = self.pool.config["batch"]
        local, world, rank = len(inputs), self.accelerator.num_processes, self.accelerator.process_index
        if local * world != B * G:
            raise RuntimeError(f"BOTS: a generation batch of {local} x {world} processes, not {B} prompts x {G} generations")
        reserve = self._bots_reserve
        self._bots_reserve = None
        tasks = reserve if reserve is not None else self._bots.next_batch(B)
        step = self.pool.step
        rows = np.repeat(tasks.astype(np.int64), G)[rank * local : (rank + 1) * local]
        batch = self._bots_fetch(rows)
        self._bots_rewards, self._bots_open = None, True
        try:
            out = super()._generate_and_score_completions(batch)
        finally:
            self._bots_open = False
        rewards, self._bots_rewards = self._bots_rewards, None
        if rewards is None:
            raise RuntimeError("BOTS: TRL scored the round without _calculate_rewards (a trl version bots.trl does not support)")
        self._bots_last = np.asarray(tasks, dtype=np.uint32)
        record = {"step": step, "global_step": self.state.global_step, "tasks": self._bots_last.copy(),
                  "successes": None, "failures": None, "fed": False}
        if reserve is None:
            record.update(self._bots_feed(tasks, rewards))
        self.bots_rounds.append(record)
        return out

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if self._bots_open:
            self._bots_rewards = rewards_per_func  # gathered over processes, in process order
        return rewards_per_func

    def _bots_fetch(self, rows: np.ndarray) -> list:
        """The dataset rows, as the dataloader would have read them (one dict per completion group member)."""
        data = self._bots_rows
        unique, inverse = np.unique(rows, return_inverse=True)
        ids = [int(i) for i in unique]
        fetched = data.__getitems__(ids) if hasattr(data, "__getitems__") else [data[i] for i in ids]
        return [copy.copy(fetched[j]) for j in inverse.reshape(-1)]

    def _bots_feed(self, tasks: np.ndarray, rewards_per_func: torch.Tensor) -> dict:
        G = self.num_generations
        weights = self.reward_weights.to(rewards_per_func.device).unsqueeze(0)
        rewards = (rewards_per_func * weights).nansum(dim=1)
        scored = ~torch.isnan(rewards_per_func).all(dim=1)
        rewards = rewards.detach().float().cpu().numpy().astype(np.float64)
        scored = scored.cpu().numpy()
        if rewards.size != len(tasks) * G:
            raise RuntimeError(f"BOTS: {rewards.size} gathered rewards for {len(tasks)} prompts x {G} generations")
        rewards, scored = rewards.reshape(len(tasks), G), scored.reshape(len(tasks), G)
        if self.bots_success_threshold is None:
            wins = np.clip(rewards, 0.0, 1.0)
        else:
            wins = (rewards >= self.bots_success_threshold).astype(np.float64)
        successes = np.where(scored, wins, 0.0).sum(axis=1)
        failures = scored.sum(axis=1) - successes
        keep = scored.any(axis=1)
        if not keep.any():
            log.warning("BOTS: no completion of this round was scored (all reward functions returned None): no update")
            self._bots.pending = []
            return {"successes": successes, "failures": failures, "fed": False}
        report = self._bots.update(np.asarray(tasks)[keep], successes=successes[keep], failures=failures[keep])
        rates = successes[keep] / (successes[keep] + failures[keep])
        metrics = self._metrics["train"]
        metrics["bots/effective_task_ratio"].append(float(np.mean((rates > 0) & (rates < 1))))
        metrics["bots/pass_rate"].append(float(np.mean(rates)))
        if report and report.get("mu") is not None:
            metrics["bots/mu"].append(float(report["mu"]))
        return {"successes": successes, "failures": failures, "fed": True}

    # ---- checkpoints: TRL's own pattern (as for its adaptive-entropy state) ----

    def _save_checkpoint(self, model, trial):
        if self.args.should_save:
            from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

            run_dir = self._get_output_dir(trial=trial)
            self.bots_save(os.path.join(run_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"))
        super()._save_checkpoint(model, trial)

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is not None:
            self.bots_load(checkpoint)

    def bots_save(self, folder: str) -> str:
        """Writes the posterior and the adapter's state into ``folder`` (a TRL checkpoint folder);
        returns the posterior's path."""
        os.makedirs(folder, exist_ok=True)
        path = checkpoint_path(folder, _NAME, self.pool)
        self.pool.save(path)
        generate_every = self.args.steps_per_generation * self.num_iterations
        state = {
            "checkpoint": os.path.basename(path),
            "step": self.pool.step,
            "n_tasks": self.pool.n_tasks,
            # TRL generates again on resume; inside a block that regeneration repeats this round
            "mid_block": self._step % generate_every != 0,
            "round": None if self._bots_last is None else [int(t) for t in self._bots_last],
        }
        tmp = os.path.join(folder, STATE_FILE + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(state, f)
        os.replace(tmp, os.path.join(folder, STATE_FILE))
        return path

    def bots_load(self, folder: str) -> None:
        """Restores what `bots_save` wrote into ``folder``. A posterior of another pool raises
        ``ValueError``; a folder without one (a plain GRPOTrainer checkpoint) keeps the fresh posterior."""
        mine = checkpoint_stem(_NAME, self.pool)
        state_path = os.path.join(folder, STATE_FILE)
        state = None
        if os.path.isfile(state_path):
            with open(state_path, encoding="utf-8") as f:
                state = json.load(f)
        found = sorted(glob.glob(os.path.join(glob.escape(folder), f"bots-{_NAME}-*.ckpt")))
        if state is None and not found:
            log.warning("checkpoint %s holds no BOTS posterior: resuming with a fresh one", folder)
            return
        path = os.path.join(folder, state["checkpoint"]) if state is not None else found[-1]
        if not os.path.isfile(path):
            raise ValueError(f"checkpoint {folder}: its BOTS posterior {os.path.basename(path)} is missing")
        try:
            saved_config = self.pool.restore(path)
        except ValueError as e:
            hint = "" if os.path.basename(path).startswith(mine) else " (another data set, features or bots_config)"
            raise ValueError(f"cannot resume BOTS from {folder}{hint}: {e}") from None
        if saved_config.get("seed") != self.pool.config["seed"]:
            log.warning(
                "BOTS checkpoint %s was written with seed %s, this run has %s: selections will differ from the original run",
                path, saved_config.get("seed"), self.pool.config["seed"],
            )
        self._bots.pending = []
        if state is not None:
            saved = {"step": state["step"], "n_tasks": state["n_tasks"]}
            self._bots.check_resumed(saved, f"BOTS state {state_path}")
            self._bots_last = None if state.get("round") is None else np.asarray(state["round"], dtype=np.uint32)
            self._bots_reserve = self._bots_last if state.get("mid_block") else None
