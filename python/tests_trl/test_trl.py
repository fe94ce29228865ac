"""bots.trl.BotsGRPOTrainer against TRL 1.16's real GRPOTrainer, end to end on the CPU: a tiny Llama
and a character tokenizer built in code (tiny.py), a reward function of the completions, a few steps."""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import tiny
from bots.trl import STATE_FILE, BotsGRPOTrainer

FEATURES = {"feature_keys": ["weak_pass_rate", "strong_pass_rate"]}


def make(tmp, n=12, features=True, bots_config=FEATURES, reward=tiny.letter_reward, **overrides):
    tok = tiny.tokenizer()
    return BotsGRPOTrainer(
        model=tiny.model(tok), reward_funcs=reward, args=tiny.grpo_args(str(tmp), **overrides),
        train_dataset=tiny.dataset(n, features), processing_class=tok, bots_config=bots_config,
    )


def recorder():
    """A reward function of the completions that also records, per call, (row, reward) of each one."""
    calls = []

    def reward(prompts, completions, target, row, **kwargs):
        out = tiny.letter_reward(prompts, completions, target)
        calls.append((list(row), out))
        return out

    return reward, calls


def fed(trainer):
    return [(r["step"], r["tasks"].tolist(), r["successes"].tolist()) for r in trainer.bots_rounds if r["fed"]]


# ---- asked and fed every step ----

@pytest.mark.parametrize(
    "shape",
    [
        dict(max_steps=8),  # one round per step
        # 2 micro-steps per step, a round every 2 x 2 micro-steps (reused for num_iterations = 2)
        dict(max_steps=6, per_device_train_batch_size=4, gradient_accumulation_steps=2, num_iterations=2),
    ],
    ids=["round-per-step", "grad-accum-and-iterations"],
)
def test_bots_chooses_every_round_and_is_fed_its_rewards(tmp_path, shape):
    reward, calls = recorder()
    trainer = make(tmp_path, reward=reward, **shape)
    trainer.train()
    G = trainer.num_generations
    generate_every = trainer.args.steps_per_generation * trainer.num_iterations
    rounds = shape["max_steps"] * trainer.args.gradient_accumulation_steps // generate_every
    assert len(trainer.bots_rounds) == rounds == len(calls) and trainer.pool.step == rounds
    for i, (r, (rows, rewards)) in enumerate(zip(trainer.bots_rounds, calls)):
        assert r["fed"] and r["step"] == i
        tasks = r["tasks"]
        assert len(tasks) == trainer.pool.config["batch"] == 2 and len(set(tasks.tolist())) == len(tasks)
        # TRL generated for exactly the rows BOTS chose, each num_generations times ...
        assert rows == np.repeat(tasks, G).tolist()
        # ... and BOTS was fed those completions' rewards, per task
        wins = (np.asarray(rewards).reshape(-1, G) >= 0.5).sum(1)
        assert r["successes"].tolist() == wins.tolist()
        assert (r["successes"] + r["failures"]).tolist() == [G] * len(tasks)
    logged = [h for h in trainer.state.log_history if "bots/effective_task_ratio" in h]
    assert len(logged) == rounds  # logged at the steps that had a round
    # the selection is BOTS's: the pool's own choice from its state before each update
    replay = tiny_pool(trainer)
    for r in trainer.bots_rounds:
        assert replay.select(2).tolist() == r["tasks"].tolist()
        replay.update(r["tasks"], successes=r["successes"], failures=r["failures"])
    np.testing.assert_array_equal(replay.state()["alpha"], trainer.pool.state()["alpha"])


def tiny_pool(trainer):
    import bots

    data = trainer.train_dataset
    return bots.Pool(len(data), features=(data["weak_pass_rate"], data["strong_pass_rate"]), config=trainer.pool.config)


def test_config_follows_trl_and_checks_what_it_is_given(tmp_path, caplog):
    t = make(tmp_path, bots_config={**FEATURES, "lamb": 0.2, "seed": 9})
    c = t.pool.config
    assert (c["m"], c["batch"], c["lambda"], c["seed"]) == (4, 2, 0.2, 9)
    assert make(tmp_path).pool.config["seed"] == 3  # args.seed
    with pytest.raises(ValueError, match="m = 8.*num_generations is 4"):
        make(tmp_path, bots_config={**FEATURES, "m": 8})
    with pytest.raises(ValueError, match="batch = 4"):
        make(tmp_path, bots_config={**FEATURES, "batch": 4})
    with pytest.raises(ValueError, match="set rho: 0"):
        make(tmp_path, features=False, bots_config=None)
    assert make(tmp_path, features=False, bots_config={"rho": 0}).pool.config["rho"] == 0
    # a Trinity-RFT task_selector block, as pasted from a Trinity config: m and batch come from TRL
    block = {"task_selector": {"selector_type": "difficulty_based", "feature_keys": FEATURES["feature_keys"],
                               "kwargs": {"lamb": 0.1, "rho": 0.1, "target_reward": 0.5, "tau": 0}}}
    assert make(tmp_path, bots_config=block).pool.config["m"] == 4
    with pytest.raises(ValueError, match="distinct prompts"):
        make(tmp_path, n=1)


def test_mean_reward_mode_feeds_fractional_successes(tmp_path):
    def half(prompts, completions, **kwargs):
        return [0.25 if i % 2 else 1.5 for i in range(len(completions))]  # clipped: 0.25 and 1.0

    trainer = make(tmp_path, reward=half, max_steps=2, bots_config={**FEATURES, "success_threshold": None})
    trainer.train()
    for r in trainer.bots_rounds:
        assert r["successes"].tolist() == [2.5, 2.5] and r["failures"].tolist() == [1.5, 1.5]


# ---- resume ----

@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """An uninterrupted run of 8 steps, checkpointing every 3."""
    out = tmp_path_factory.mktemp("full")
    trainer = make(out, max_steps=8, save_strategy="steps", save_steps=3)
    trainer.train()
    return out, trainer


def test_selection_does_not_depend_on_how_far_the_dataloader_reads_ahead(full_run, tmp_path):
    """Worker processes make the dataloader read batches well ahead of training; BOTS picks at
    generation time, from the posterior fed with every earlier round, so nothing changes."""
    _, full = full_run
    ahead = make(tmp_path, max_steps=8, dataloader_num_workers=2, dataloader_prefetch_factor=4)
    ahead.train()
    assert fed(ahead) == fed(full)


def test_checkpoints_carry_the_posterior(full_run):
    out, trainer = full_run
    for step in (3, 6):
        folder = out / f"checkpoint-{step}"
        state = json.loads((folder / STATE_FILE).read_text())
        assert state["step"] == step and not state["mid_block"]
        assert state["checkpoint"] == f"bots-trl-{trainer.pool.fingerprint}-step{step:09d}.ckpt"
        assert (folder / state["checkpoint"]).is_file()


def test_resumed_run_selects_what_the_uninterrupted_run_selects(full_run, tmp_path):
    out, full = full_run
    resumed = make(tmp_path, max_steps=8, save_strategy="steps", save_steps=3)
    resumed.train(resume_from_checkpoint=str(out / "checkpoint-3"))
    assert fed(resumed) == fed(full)[3:]
    for key in ("alpha", "beta"):
        np.testing.assert_array_equal(resumed.pool.state()[key], full.pool.state()[key])


def test_resume_true_finds_the_last_checkpoint(full_run, tmp_path):
    out, full = full_run
    shutil.copytree(out / "checkpoint-6", tmp_path / "checkpoint-6")
    resumed = make(tmp_path, max_steps=8)
    resumed.train(resume_from_checkpoint=True)
    assert fed(resumed) == fed(full)[6:]


def test_resume_inside_a_generation_block_does_not_feed_a_round_twice(tmp_path):
    """A round every 2 steps, checkpoints every 3: checkpoint-3 falls inside round 1's block. TRL
    regenerates on resume; BOTS serves round 1's prompts again, unfed, and then the rounds follow as
    in the uninterrupted run. The reward depends only on the row, so the rounds' evidence does too."""

    def by_row(prompts, completions, row, **kwargs):
        return [float(r % 3 == 0) for r in row]

    shape = dict(reward=by_row, max_steps=8, per_device_train_batch_size=4, steps_per_generation=2,
                 save_strategy="steps", save_steps=3)
    full = make(tmp_path / "full", **shape)
    full.train()
    assert json.loads((tmp_path / "full" / "checkpoint-3" / STATE_FILE).read_text())["mid_block"]
    resumed = make(tmp_path / "resumed", **shape)
    resumed.train(resume_from_checkpoint=str(tmp_path / "full" / "checkpoint-3"))
    first = resumed.bots_rounds[0]
    assert not first["fed"] and first["tasks"].tolist() == full.bots_rounds[1]["tasks"].tolist()
    assert fed(resumed) == fed(full)[2:]
    np.testing.assert_array_equal(resumed.pool.state()["alpha"], full.pool.state()["alpha"])


def test_a_checkpoint_of_another_pool_is_refused(full_run, tmp_path):
    out, _ = full_run
    other = make(tmp_path, n=16, max_steps=8)  # another data set: 16 rows
    before = other.pool.state()["alpha"].copy()
    with pytest.raises(ValueError, match="cannot resume BOTS.*another pool"):
        other.train(resume_from_checkpoint=str(out / "checkpoint-3"))
    np.testing.assert_array_equal(other.pool.state()["alpha"], before)
    shaped = make(tmp_path, max_steps=8, bots_config={**FEATURES, "lamb": 0.3})  # other posterior-shaping config
    with pytest.raises(ValueError, match="cannot resume BOTS"):
        shaped.train(resume_from_checkpoint=str(out / "checkpoint-3"))


def test_a_plain_grpo_checkpoint_resumes_with_a_fresh_posterior(full_run, tmp_path, caplog):
    out, _ = full_run
    plain = tmp_path / "checkpoint-6"
    shutil.copytree(out / "checkpoint-6", plain)
    for f in plain.glob("bots*"):
        f.unlink()
    trainer = make(tmp_path, max_steps=8)
    with caplog.at_level(logging.WARNING, logger="bots.trl"):
        trainer.train(resume_from_checkpoint=str(plain))
    assert "holds no BOTS posterior" in caplog.text
    assert trainer.pool.step == 2


# ---- two processes ----

def test_two_processes_select_identically_and_feed_every_round(tmp_path):
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "two_procs.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", script, str(tmp_path)]
    # its own session, so that a hang takes the workers down with the launcher
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail("the two-process run hung:\n" + output[-4000:])
    assert proc.returncode == 0, output[-6000:]
    a, b = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert (a["rank"], b["rank"], a["world"]) == (0, 1, 2)
    assert a["rounds"] == b["rounds"] and a["alpha"] == b["alpha"] and a["beta"] == b["beta"]
    assert len(a["rounds"]) == a["pool_step"] == 6 and all(r["fed"] for r in a["rounds"])
    G = 4
    for r, s0, s1 in zip(a["rounds"], a["seen"], b["seen"]):
        # each process generated its half of the round; together, every task num_generations times
        rows = [x[0] for x in s0 + s1]
        assert rows == np.repeat(r["tasks"], G).tolist()
        assert [x[0] for x in s0] != [x[0] for x in s1]
        # the evidence is the gathered rewards of both halves, task by task
        wins = (np.asarray([x[2] for x in s0 + s1]).reshape(-1, G) >= 0.5).sum(1)
        assert r["successes"] == wins.tolist()
