"""bots.verl.BotsDataset + BotsReplayBuffer driven by verl 0.9.1's own v1 trainer (see conftest.py for
what is real and what is stubbed)."""
import os
import shutil

import numpy as np
import pytest
import torch
import datasets
from omegaconf import OmegaConf, open_dict
from tensordict import NonTensorData, NonTensorStack

import transfer_queue as tq
import verl
from verl.trainer.ppo.v1 import PPOTrainerColocateAsync, PPOTrainerSync
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer, ReplayBufferAsync
from verl.utils.dataset.rl_dataset import RLHFDataset
from verl.utils.tensordict_utils import list_of_dict_to_tensordict

import bots
import tq_memory
from bots.verl import BotsDataset, BotsReplayBuffer

KEYS = ["qwen2.5_7b_pass_rate", "qwen3_30b_pass_rate"]
N, B, ROLLOUTS, SEED = 40, 4, 4, 7


def features(n=N, seed=0):
    weak = np.random.default_rng(seed).integers(0, 9, n) / 16
    return weak, np.minimum(weak + 0.25, 1)


def write_data(folder, n=N, seed=0):
    weak, strong = features(n, seed)
    rows = {
        "data_source": ["toy"] * n,
        "prompt": [[{"role": "user", "content": f"task {i}"}] for i in range(n)],
        "reward_model": [{"style": "rule", "ground_truth": str(i)} for i in range(n)],
        "extra_info": [{"index": i, "split": "train"} for i in range(n)],
        KEYS[0]: weak.tolist(),
        KEYS[1]: strong.tolist(),
    }
    os.makedirs(folder, exist_ok=True)
    datasets.Dataset.from_dict(rows).to_parquet(os.path.join(folder, "train.parquet"))
    datasets.Dataset.from_dict({k: v[:8] for k, v in rows.items()}).to_parquet(os.path.join(folder, "val.parquet"))
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(str(tmp_path_factory.mktemp("data")))


def reward(task, step, session):
    """The stub rollout's reward: 0/1, task t passing with probability (t % 5) / 4."""
    return float(np.random.default_rng([task, step, session]).random() < (task % 5) / 4)


class Rollout:
    """Stands in for verl's AgentLoopManagerTQ (verl/trainer/ppo/v1/agent_loop_tq.py): for every prompt,
    ``rollout.n`` sessions written to TransferQueue as AgentLoopWorkerTQ writes them (keys
    ``{uid}_{session}_0``, the prompt's fields plus the outputs, ``rm_scores`` with the reward on the
    last token, tags with ``status``/``global_steps``), then the prompt marked ``finished``."""

    def __init__(self, n=ROLLOUTS, with_reward=True):
        self.n, self.with_reward = n, with_reward
        self.submitted = []  # per dataloader batch: the rows' bots_task

    def generate_sequences(self, batch):
        prompts = []
        for i in range(len(batch)):
            p = {}
            for k, v in batch.items():  # as AgentLoopWorkerTQ.generate_sequences splits a batch
                if isinstance(v, torch.Tensor):
                    p[k] = v[i]
                elif isinstance(v, NonTensorStack):
                    p[k] = v[i].data
                elif isinstance(v, NonTensorData):
                    p[k] = v.data
            prompts.append(p)
        tasks = [int(p["bots_task"][0]) if "bots_task" in p else int(p["index"]) for p in prompts]
        self.submitted.append(tasks)
        for p, task in zip(prompts, tasks):
            uid, step = p["uid"], int(p["global_steps"])
            tq.kv_put(key=uid, partition_id="train", tag={"status": "running"})
            keys, fields, tags = [], [], []
            for s in range(self.n):
                length = 3 + s
                f = dict(p, prompts=torch.tensor([1, 2]), responses=torch.arange(length),
                         response_mask=torch.ones(length, dtype=torch.int64))
                if self.with_reward:
                    f["rm_scores"] = torch.zeros(length)
                    f["rm_scores"][-1] = reward(task, step, s)
                keys.append(f"{uid}_{s}_0")
                fields.append(f)
                tags.append({"status": "success", "prompt_len": 2, "response_len": length, "seq_len": 2 + length,
                             "global_steps": step, "min_global_steps": step, "max_global_steps": step})
            tq.kv_batch_put(keys=keys, fields=list_of_dict_to_tensordict(fields), tags=tags, partition_id="train")
            tq.kv_put(key=uid, partition_id="train", tag={"status": "finished"})


class Stub:
    """A worker group / weight-sync manager: every call does nothing."""

    def __init__(self, **attrs):
        self.__dict__.update(attrs)

    def __getattr__(self, name):
        return lambda *a, **k: None


def config(data, ckpt, steps, save_freq=-1, mode="sync", bots=None, **data_keys):
    cfg = OmegaConf.load(os.path.join(os.path.dirname(verl.__file__), "trainer", "config", "_generated_ppo_trainer.yaml"))
    cfg = OmegaConf.merge(cfg, {
        "data": {"train_files": os.path.join(data, "train.parquet"), "val_files": os.path.join(data, "val.parquet"),
                 "train_batch_size": B, "dataloader_num_workers": 0, "seed": SEED, "filter_overlong_prompts": False,
                 "custom_cls": {"path": "pkg://bots.verl", "name": "BotsDataset"}, **data_keys},
        "actor_rollout_ref": {"rollout": {"n": ROLLOUTS}},
        "algorithm": {"adv_estimator": "grpo"},
        "trainer": {"logger": ["console"], "val_before_train": False, "total_training_steps": steps,
                    "save_freq": save_freq, "default_local_dir": ckpt, "resume_mode": "auto",
                    "v1": {"trainer_mode": mode,
                           "sampler": {"custom_sampler": {"path": "pkg://bots.verl", "name": "BotsReplayBuffer"}}}},
    })
    with open_dict(cfg):
        cfg.data.bots = {"m": "${actor_rollout_ref.rollout.n}", **(bots or {})}  # = +data.bots.m=${...}
    return cfg


def trainer(cfg, rollout=None):
    """verl's trainer with its GPU parts stubbed, its dataloaders built and its checkpoint loaded by
    its own code (PPOTrainer._setup without the worker groups, then PPOTrainer.init's load)."""
    tq_memory.reset()
    cls = PPOTrainerSync if cfg.trainer.v1.trainer_mode == "sync" else PPOTrainerColocateAsync
    t = cls(cfg)
    t.tokenizer = t.processor = None  # RLHFDataset needs neither without filter_overlong_prompts
    t._init_dataloader()
    t._init_dump_executor()
    t.actor_rollout_wg = t.checkpoint_manager = Stub()
    t.reward_loop_manager = Stub(reward_loop_worker_handles=[])  # rewards computed during rollout
    for stage in ("_balance_batch", "_compute_old_log_prob", "_compute_ref_log_prob", "_compute_values",
                  "_compute_advantage", "_update_critic", "_update_actor"):
        setattr(t, stage, lambda batch, metrics=None, **kw: batch)
    t._compute_metrics = lambda *a, **kw: None
    t._load_checkpoint()
    t.rollout = rollout or Rollout()
    return t


def twin(m=ROLLOUTS):
    weak, strong = features()
    return bots.Pool(N, features=(weak, strong), config={"m": m, "seed": SEED, "batch": B})


def test_verl_trains_on_the_tasks_bots_selects_and_feeds_back_their_pass_rates(data, tmp_path):
    t = trainer(config(data, str(tmp_path / "ckpt"), steps=3))
    assert isinstance(t.train_dataset, BotsDataset) and isinstance(t.train_dataset, RLHFDataset)
    assert type(t.replay_buffer) is BotsReplayBuffer and isinstance(t.replay_buffer, ReplayBuffer)
    assert t.train_dataset.pool.config["m"] == ROLLOUTS and t.train_dataset.pool.config["seed"] == SEED
    t.fit(t.rollout)
    # The same run by hand: each step, B tasks selected, then their successes among the n rollouts.
    pool = twin()
    for step, got in enumerate(t.rollout.submitted, start=1):
        tasks = pool.select(B)
        assert got == tasks.tolist()
        s = np.array([sum(reward(int(k), step, r) for r in range(ROLLOUTS)) for k in tasks])
        pool.update(tasks, successes=s, failures=ROLLOUTS - s)
    assert len(t.rollout.submitted) == 3 and t.train_dataset.pool.step == 3
    np.testing.assert_array_equal(t.train_dataset.pool.state()["alpha"], pool.state()["alpha"])
    np.testing.assert_array_equal(t.train_dataset.pool.state()["beta"], pool.state()["beta"])


def test_resuming_from_verls_checkpoint_selects_what_the_uninterrupted_run_selects(data, tmp_path):
    ckpt = str(tmp_path / "ckpt")
    a = trainer(config(data, ckpt, steps=6, save_freq=3))
    a.fit(a.rollout)
    assert sorted(os.listdir(ckpt)) == ["global_step_3", "global_step_6", "latest_checkpointed_iteration.txt"]
    resumed = str(tmp_path / "resumed")
    shutil.copytree(os.path.join(ckpt, "global_step_3"), os.path.join(resumed, "global_step_3"))
    with open(os.path.join(resumed, "latest_checkpointed_iteration.txt"), "w") as f:
        f.write("3")
    b = trainer(config(data, resumed, steps=6, save_freq=3))
    assert b.global_steps == 3
    b.fit(b.rollout)
    assert b.rollout.submitted == a.rollout.submitted[3:]
    np.testing.assert_array_equal(b.train_dataset.pool.state()["alpha"], a.train_dataset.pool.state()["alpha"])
    assert b.train_dataset.pool.step == 6

    # A checkpoint of another pool (here: another lambda) is refused before anything is rolled out.
    c = trainer(config(data, resumed, steps=9, save_freq=3, bots={"lambda": 0.3}))
    with pytest.raises(ValueError, match="another pool: it has lambda = 0.1, this pool has lambda = 0.3"):
        c.fit(c.rollout)
    assert c.rollout.submitted == [] and c.train_dataset.pool.step == 0


def test_validation_data_is_served_unchanged(data, tmp_path):
    t = trainer(config(data, str(tmp_path / "ckpt"), steps=1))
    assert not t.val_dataset.bots_training
    rows = [r for batch in t.val_dataloader for r in batch["extra_info"]]
    assert [r["index"] for r in rows] == list(range(8))
    assert "bots_task" not in next(iter(t.val_dataloader))


def test_the_async_trainer_gets_the_async_buffer_and_learns(data, tmp_path):
    t = trainer(config(data, str(tmp_path / "ckpt"), steps=3, mode="colocate_async"))
    assert isinstance(t.replay_buffer, BotsReplayBuffer) and isinstance(t.replay_buffer, ReplayBufferAsync)
    t.fit(t.rollout)
    served = [k for batch in t.rollout.submitted for k in batch]
    assert len(served) >= 3 * B and t.train_dataset.pool.step == 3
    # Asked one prompt at a time, ahead of feedback: never a task already out since the last update.
    assert len(set(served[:2 * B])) == 2 * B


@pytest.mark.parametrize("case", ["workers", "m", "no_dataset", "no_reward"])
def test_misconfigurations_say_what_to_set(data, tmp_path, case):
    ckpt = str(tmp_path / "ckpt")
    if case == "workers":
        with pytest.raises(ValueError, match="data.dataloader_num_workers=0"):
            trainer(config(data, ckpt, steps=1, dataloader_num_workers=8))
        return
    cfg = config(data, ckpt, steps=1, bots={"m": 8} if case == "m" else None)
    if case == "no_dataset":  # verl's own RLHFDataset
        cfg.data.custom_cls.path = None
    t = trainer(cfg, Rollout(with_reward=case != "no_reward"))
    error, words = {"m": (ValueError, r"data.bots.m is 8 but actor_rollout_ref.rollout.n is 4"),
                    "no_dataset": (RuntimeError, "set data.custom_cls.path=pkg://bots.verl"),
                    "no_reward": (RuntimeError, "no 'rm_scores'.*enable_resource_pool=True")}[case]
    with pytest.raises(error, match=words):
        t.fit(t.rollout)
