"""bots.trinity.BotsSelector driven by Trinity-RFT 0.6.0's own taskset scheduler, as Trinity's explorer
drives it (and as Trinity's tests/buffer/task_scheduler_test.py drives its selectors): a YAML config
with `data_selector:` blocks loaded by Trinity's `load_config` and checked by its buffer validator
(which resolves `selector_type: bots.trinity.BotsSelector` through its registry), tasksets in jsonl and
parquet files read by its `FileReader`, `TasksetScheduler.read`, feedback computed by its
`pass_rate_calculator` experience operator from simulated rollouts and passed through
`TasksetScheduler.feedback`, and the explorer state (`latest_iteration`, `taskset_states`) saved as
JSON and resumed by building a new scheduler from it, as Trinity's explorer does on restart.

All of those are Trinity's real classes (tests/trinity/trinity_ref.py stubs only ray, torch,
safetensors.torch and transformers, none of which they call here). Needs the venv of
scripts/trinity-venv.sh; elsewhere the module is skipped, unless BOTS_REQUIRE_TRINITY=1 (.ci/run)."""
import asyncio
import json
import logging
import os

import numpy as np
import pytest
import trinity_ref

try:
    T = trinity_ref.import_trinity_scheduler()
except ImportError as e:  # pragma: no cover - depends on the venv
    if os.environ.get("BOTS_REQUIRE_TRINITY") == "1":
        raise
    pytest.skip(f"Trinity-RFT's taskset scheduler is not importable here: {e}", allow_module_level=True)

import datasets  # noqa: E402  (imported by trinity_ref already, before its torch stub)

import bots  # noqa: E402
from bots.trinity import BotsSelector  # noqa: E402

load_config = T["trinity.common.config"].load_config
BufferConfigValidator = T["trinity.common.config_validator"].BufferConfigValidator
Experience = T["trinity.common.experience"].Experience
TasksetScheduler = T["trinity.buffer.task_scheduler"].TasksetScheduler
FileReader = T["trinity.buffer.reader.file_reader"].FileReader
BaseSelector = T["trinity.buffer.selector.selector"].BaseSelector
create_operators = T["trinity.buffer.operators"].create_operators  # by name, through Trinity's registry
SELECTOR_METRIC = T["trinity.common.constants"].SELECTOR_METRIC

KEYS = ["weak_pass_rate", "strong_pass_rate"]
ROLLOUTS = 4  # algorithm.repeat_times: rollouts per task
KWARGS = {"m": ROLLOUTS, "lamb": 0.1, "rho": 0.1, "target_reward": 0.5, "tau": 0, "do_sample": True}


# ---- the data and the config a user writes ----


def write_taskset(root, name, n, fmt="jsonl", seed=0, features=None):
    """A taskset folder with one `train` file: question/answer rows and the two reference pass-rate
    columns (a weaker and a stronger model's k/16). Returns the folder."""
    rng = np.random.default_rng(seed)
    if features is None:
        weak = rng.integers(0, 13, n) / 16
        strong = np.minimum(weak + rng.integers(0, 8, n) / 16, 1.0)
    else:
        weak, strong = features
    rows = {
        "question": [f"Question {i} of {name}" for i in range(n)],
        "answer": [f"Answer {i} of {name}" for i in range(n)],
        KEYS[0]: [float(x) for x in weak],
        KEYS[1]: [float(x) for x in strong],
    }
    folder = root / "data" / name
    folder.mkdir(parents=True)
    if fmt == "jsonl":
        with open(folder / "train.jsonl", "w") as f:
            for i in range(n):
                f.write(json.dumps({k: v[i] for k, v in rows.items()}) + "\n")
    else:
        datasets.Dataset.from_dict(rows).to_parquet(str(folder / "train.parquet"))
    return folder


def selector_block(kwargs=None, key="data_selector", seed=7):
    """The README's block, as YAML lines under a taskset."""
    kw = ", ".join(f"{k}: {json.dumps(v)}" for k, v in (KWARGS if kwargs is None else kwargs).items())
    return [
        f"{key}:",
        "  selector_type: bots.trinity.BotsSelector",
        f"  seed: {seed}",
        f"  feature_keys: [{', '.join(KEYS)}]",
        f"  kwargs: {{{kw}}}",
    ]


def write_config(root, tasksets, batch_size=4, total_epochs=2, file="config.yaml"):
    """A Trinity config (YAML) with these tasksets: [(name, folder, selector block lines)]."""
    lines = [
        "project: bots-tests",
        "name: scheduler",
        "mode: both",
        f"checkpoint_root_dir: {root / 'checkpoints'}",
        "algorithm:",
        f"  repeat_times: {ROLLOUTS}",
        "buffer:",
        f"  batch_size: {batch_size}",
        f"  total_epochs: {total_epochs}",
        "  explorer_input:",
        "    default_workflow_type: simple_workflow",
        "    tasksets:",
    ]
    for name, folder, block in tasksets:
        lines += [
            f"      - name: {name}",
            f"        path: {folder}",
            "        split: train",
            "        format: {prompt_key: question, response_key: answer}",
        ]
        lines += [f"        {line}" for line in block]
    lines += [
        "data_processor:",
        "  experience_pipeline:",
        "    operators:",
        "      - name: pass_rate_calculator",
    ]
    path = root / file
    path.write_text("\n".join(lines) + "\n")
    return path


def load(path):
    """What Trinity does with the file at start: `load_config`, then its buffer validator on the
    explorer input (names, batch size and epochs per taskset, `task_selector` -> `data_selector`, the
    selector class resolved through the registry). The other validators check models and Ray."""
    config = load_config(str(path))
    BufferConfigValidator()._check_explorer_input(config)
    return config


# ---- the explorer's side of the loop ----


def hidden_skill(taskset_id, index):
    """The policy's true pass rate on a task (unknown to the selector)."""
    return float(np.random.default_rng([99, taskset_id, index]).uniform(0.0, 1.0))


class Explorer:
    """Trinity's explorer around the scheduler: `read` a batch per step; roll each task out
    `repeat_times` times (simulated: Bernoulli rewards, seeded by task and step, so every run draws the
    same); the experience pipeline's `pass_rate_calculator` turns the experiences into the selector
    metric, which the explorer hands to `TasksetScheduler.feedback`; `save` is the explorer state
    Trinity writes as JSON (StateManager.save_explorer), `resume` builds a new scheduler from it."""

    def __init__(self, config_path, state=None):
        self.config_path = config_path
        self.config = load(config_path)
        self.scheduler = TasksetScheduler(state if state is not None else {}, self.config)
        (self.operator,) = create_operators(self.config.data_processor.experience_pipeline.operators)

    def read(self):
        return asyncio.run(self.scheduler.read())

    def rollouts(self, tasks, step):
        exps = []
        for task in tasks:
            p = hidden_skill(task.index["taskset_id"], task.index["index"])
            rng = np.random.default_rng([step, task.index["taskset_id"], task.index["index"]])
            for _ in range(task.repeat_times):
                exps.append(Experience(tokens=[1, 2, 3], prompt_length=1, reward=float(rng.random() < p), info={"task_index": task.index}))
        return exps

    def feedback(self, tasks, step):
        _, metrics = asyncio.run(self.operator.process(self.rollouts(tasks, step)))
        self.scheduler.feedback(metrics)

    def save(self):
        state = {"latest_iteration": self.scheduler.step, "taskset_states": self.scheduler.state_dict()}
        return json.loads(json.dumps(state))

    def resume(self):
        return Explorer(self.config_path, self.save())

    def selector(self, taskset_id):
        return self.scheduler.tasksets[taskset_id].reader.selector


def ids(tasks):
    return [(t.index["taskset_id"], t.index["index"]) for t in tasks]


def run(config_path, steps, resume_after=(), lag=0):
    """`steps` explorer steps (or until the tasksets are exhausted); after each step in
    `resume_after` the explorer state is saved and a new scheduler resumes from it. With lag 1 a
    batch's feedback arrives after the next batch is read (so some states hold served tasks without
    feedback). Returns (the batches as (taskset_id, index) lists, the last explorer)."""
    ex = Explorer(config_path)
    batches, inflight = [], []
    for step in range(steps):
        try:
            tasks = ex.read()
        except StopAsyncIteration:
            break
        for t in tasks:
            assert t.raw_task["question"].startswith(f"Question {t.index['index']} of ")
        batches.append(ids(tasks))
        inflight.append((tasks, step))
        while len(inflight) > lag:
            ex.feedback(*inflight.pop(0))
        if step in resume_after:
            ex = ex.resume()
    for tasks, step in inflight:
        ex.feedback(tasks, step)
    return batches, ex


# ---- tests ----


def test_the_config_resolves_bots_selector_through_trinitys_registry(tmp_path):
    a = write_taskset(tmp_path, "math", 8)
    ex = Explorer(write_config(tmp_path, [("math", a, selector_block())]))
    reader = ex.scheduler.tasksets[0]
    assert isinstance(reader, FileReader)
    sel = ex.selector(0)
    assert type(sel) is BotsSelector and isinstance(sel, BaseSelector)
    assert sel.name == "math" and sel.pool.n_tasks == 8
    cfg = sel.pool.config
    assert (cfg["m"], cfg["lambda"], cfg["rho"], cfg["target"], cfg["seed"]) == (ROLLOUTS, pytest.approx(0.1), pytest.approx(0.1), 0.5, 7)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_reads_and_feedback_through_the_scheduler_and_the_pass_rate_operator(tmp_path, fmt):
    a = write_taskset(tmp_path, "math", 9, fmt=fmt)
    path = write_config(tmp_path, [("math", a, selector_block())], batch_size=3, total_epochs=2)
    ex = Explorer(path)
    sel = ex.selector(0)
    tasks = ex.read()
    assert len(tasks) == 3 and all(t.index["taskset_id"] == 0 for t in tasks)
    assert len(set(ids(tasks))) == 3
    exps = ex.rollouts(tasks, 0)
    _, metrics = asyncio.run(ex.operator.process(exps))
    want = metrics[SELECTOR_METRIC][0]
    assert sorted(want["indices"]) == sorted(i for _, i in ids(tasks))
    assert all(v * ROLLOUTS == int(v * ROLLOUTS) for v in want["values"])  # means of 4 rollouts
    # The selector got exactly what the operator computed: a twin pool fed those values directly.
    s = sel.pool.state()
    twin = bots.Pool(9, features=(s["weak"], s["strong"]), config=sel.pool.config)
    twin.update(np.asarray(want["indices"]), pass_rates=np.asarray(want["values"]))
    ex.scheduler.feedback(metrics)
    assert sel.pool.step == 1 and SELECTOR_METRIC not in metrics  # the scheduler pops its metric
    np.testing.assert_array_equal(sel.pool.state()["alpha"], twin.state()["alpha"])
    np.testing.assert_array_equal(sel.pool.state()["beta"], twin.state()["beta"])
    assert not np.array_equal(sel.pool.state()["alpha"], s["alpha"])


@pytest.mark.parametrize("lag", [0, 1])
def test_resumed_at_several_points_reads_what_an_uninterrupted_run_reads(tmp_path, lag):
    a = write_taskset(tmp_path, "math", 11, seed=1)
    b = write_taskset(tmp_path, "code", 7, fmt="parquet", seed=2)
    block = selector_block({**KWARGS, "checkpoint_dir": str(tmp_path / "sel")})
    path = write_config(tmp_path, [("math", a, block), ("code", b, block)], batch_size=4, total_epochs=3)
    want, full = run(path, 100, lag=lag)
    assert len(want) == 3 * 18 // 4  # Trinity's max_steps: total_epochs * tasks // batch_size
    got, resumed = run(path, 100, resume_after=(1, 4, 5, 9), lag=lag)
    assert got == want
    for t in (0, 1):
        assert resumed.selector(t).pool.step == full.selector(t).pool.step > 0
        np.testing.assert_array_equal(resumed.selector(t).pool.state()["alpha"], full.selector(t).pool.state()["alpha"])
        assert resumed.selector(t).current_index == full.selector(t).current_index


def test_epochs_serve_each_taskset_its_share_and_stop(tmp_path):
    a = write_taskset(tmp_path, "math", 6)
    b = write_taskset(tmp_path, "code", 5, seed=3)
    block = selector_block({**KWARGS, "checkpoint_dir": str(tmp_path / "sel")})
    path = write_config(tmp_path, [("math", a, block), ("code", b, block)], batch_size=4, total_epochs=4)
    batches, ex = run(path, 100)
    assert len(batches) == 4 * 11 // 4
    served = [t for batch in batches for t in batch]
    assert sum(1 for t, _ in served if t == 0) == 4 * 6 and sum(1 for t, _ in served if t == 1) == 4 * 5
    with pytest.raises(StopAsyncIteration):
        ex.read()
    # Resumed across epoch boundaries: the same batches, and the same stop.
    again, ex2 = run(path, 100, resume_after=(2, 5, 8))
    assert again == batches
    with pytest.raises(StopAsyncIteration):
        ex2.read()


def checkpoint_files(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith(".ckpt"))


@pytest.mark.parametrize("sizes", [(7, 5), (6, 6)], ids=["different sizes", "equal sizes"])
def test_two_tasksets_sharing_the_default_checkpoint_dir_each_resume_their_own(tmp_path, monkeypatch, caplog, sizes):
    """The README block copied onto both tasksets, no checkpoint_dir: both write into ./bots_selector.
    With equal sizes the two pools are the same pool (same features, same config: one fingerprint),
    so only the taskset name keeps their files apart."""
    monkeypatch.chdir(tmp_path)
    same = (np.full(sizes[0], 0.25), np.full(sizes[0], 0.75)) if sizes[0] == sizes[1] else None
    a = write_taskset(tmp_path, "math", sizes[0], features=same)
    b = write_taskset(tmp_path, "code", sizes[1], seed=5, features=same)
    path = write_config(tmp_path, [("math", a, selector_block()), ("code", b, selector_block())], batch_size=4, total_epochs=3)
    want, full = run(path, 100)
    caplog.set_level(logging.DEBUG, logger="bots.trinity")
    got, resumed = run(path, 100, resume_after=(1, 3, 6))
    assert got == want
    for t in (0, 1):
        np.testing.assert_array_equal(resumed.selector(t).pool.state()["alpha"], full.selector(t).pool.state()["alpha"])
    if sizes[0] == sizes[1]:
        assert resumed.selector(0).pool.fingerprint == resumed.selector(1).pool.fingerprint
        assert not np.array_equal(full.selector(0).pool.state()["alpha"], full.selector(1).pool.state()["alpha"])
    files = checkpoint_files(tmp_path / "bots_selector")
    stems = {f.rsplit("-step", 1)[0] for f in files}
    assert stems == {f"bots-{name}-{full.selector(t).pool.fingerprint}" for t, name in enumerate(["math", "code"])}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], "a clean resume warns about nothing"


def test_a_fresh_start_claims_no_resume_and_a_cursor_only_state_says_so(tmp_path, caplog):
    a = write_taskset(tmp_path, "math", 8)
    path = write_config(tmp_path, [("math", a, selector_block({**KWARGS, "checkpoint_dir": str(tmp_path / "sel")}))])
    caplog.set_level(logging.DEBUG, logger="bots.trinity")
    ex = Explorer(path)  # Trinity calls load_state_dict({"current_index": 0}) on every start
    assert ex.selector(0).current_index == 0
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and r.name == "bots.trinity"]
    assert not any("resum" in r.getMessage() for r in caplog.records)
    # A state written by Trinity's own selector (the cursor only): the cursor, with a warning.
    caplog.clear()
    ex = Explorer(path, {"latest_iteration": 3, "taskset_states": [{"current_index": 12}]})
    assert ex.selector(0).current_index == 12 and ex.selector(0).pool.step == 0
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "cursor only" in warning.getMessage() and "current_index = 12" in warning.getMessage()


def test_deprecated_task_selector_key_reads_the_same(tmp_path):
    a = write_taskset(tmp_path, "math", 9)
    new = write_config(tmp_path, [("math", a, selector_block({**KWARGS, "checkpoint_dir": str(tmp_path / "s1")}))], file="new.yaml")
    old = write_config(
        tmp_path, [("math", a, selector_block({**KWARGS, "checkpoint_dir": str(tmp_path / "s2")}, key="task_selector"))], file="old.yaml"
    )
    assert run(new, 6)[0] == run(old, 6)[0]


# ---- bad input: clear errors, nothing changed ----


def snapshot(sel):
    s = sel.pool.state()
    return (s["alpha"].copy(), s["beta"].copy(), sel.pool.step, sel.current_index, list(sel._served.pending), sel.pool.config)


def assert_unchanged(sel, snap):
    now = snapshot(sel)
    np.testing.assert_array_equal(now[0], snap[0])
    np.testing.assert_array_equal(now[1], snap[1])
    assert now[2:] == snap[2:]


def two_taskset_run(tmp_path, sizes, same_features=False, kwargs=None):
    same = (np.full(sizes[0], 0.25), np.full(sizes[0], 0.75)) if same_features else None
    a = write_taskset(tmp_path, "math", sizes[0], features=same)
    b = write_taskset(tmp_path, "code", sizes[1], seed=5, features=same)
    block = selector_block({**(kwargs or KWARGS), "checkpoint_dir": str(tmp_path / "sel")})
    path = write_config(tmp_path, [("math", a, block), ("code", b, block)], batch_size=4, total_epochs=8)
    _, ex = run(path, 4, lag=1)
    ex.read()  # served, no feedback
    return path, ex


@pytest.mark.parametrize(
    "sizes, same_features, error",
    [
        ((7, 5), False, "holds 5 tasks but the taskset has 7"),
        ((6, 6), False, "belongs to another pool"),
        ((6, 6), True, "belongs to the selector of another taskset"),
    ],
    ids=["other size", "other features", "same pool, other taskset"],
)
def test_another_tasksets_state_is_refused(tmp_path, sizes, same_features, error):
    path, ex = two_taskset_run(tmp_path, sizes, same_features)
    states = ex.save()["taskset_states"]
    sel = ex.selector(0)
    snap = snapshot(sel)
    with pytest.raises(ValueError, match=error):
        sel.load_state_dict(states[1])
    assert_unchanged(sel, snap)
    # The whole explorer state with the tasksets swapped (reordered config) fails to start.
    with pytest.raises(ValueError, match=error):
        Explorer(path, {"latest_iteration": 4, "taskset_states": states[::-1]})


def test_inconsistent_or_missing_checkpoints_are_refused(tmp_path):
    _, ex = two_taskset_run(tmp_path, (7, 5))
    state = ex.save()["taskset_states"][0]
    sel = ex.selector(0)
    snap = snapshot(sel)
    bad = [
        ({**state, "step": state["step"] + 1}, ValueError, "saved at step"),
        ({**state, "pending": [0, 0]}, ValueError, "pending"),
        ({**state, "pending": [7]}, ValueError, "pending"),
        ({**state, "current_index": -1}, ValueError, "current_index"),
        ({**state, "bots_checkpoint": state["bots_checkpoint"] + ".gone"}, FileNotFoundError, "missing"),
        ("not a dict", ValueError, "must be a dict"),
    ]
    for s, exc, match in bad:
        with pytest.raises(exc, match=match):
            sel.load_state_dict(s)
        assert_unchanged(sel, snap)
    # Pruned: keep_checkpoints (5) of this selector's files stay; an old state's file may be gone.
    old = ex.save()["taskset_states"][0]
    for step in range(6):
        tasks = ex.read()
        ex.feedback(tasks, 100 + step)
        ex.save()
    mine = [f for f in checkpoint_files(tmp_path / "sel") if f.startswith("bots-math-")]
    assert len(mine) == 5 and len(checkpoint_files(tmp_path / "sel")) == 10
    snap = snapshot(sel := ex.selector(0))
    with pytest.raises(FileNotFoundError, match="keep_checkpoints = 5"):
        sel.load_state_dict(old)
    assert_unchanged(sel, snap)


def test_changed_config_between_runs(tmp_path, caplog):
    """A key that shapes the posterior (lamb) changed in the YAML: the checkpoint is another pool's,
    refused naming the difference. Keys that only choose (tau, target_reward, seed): resumed, with a
    warning naming them."""
    a = write_taskset(tmp_path, "math", 8)
    sel_dir = str(tmp_path / "sel")
    path = write_config(tmp_path, [("math", a, selector_block({**KWARGS, "checkpoint_dir": sel_dir}))], file="a.yaml")
    _, ex = run(path, 3)
    state = ex.save()
    alpha = ex.selector(0).pool.state()["alpha"]
    shaped = write_config(tmp_path, [("math", a, selector_block({**KWARGS, "lamb": 0.2, "checkpoint_dir": sel_dir}))], file="b.yaml")
    with pytest.raises(ValueError, match="lambda = 0.1, this pool has lambda = 0.2"):
        Explorer(shaped, state)
    chosen = write_config(
        tmp_path, [("math", a, selector_block({**KWARGS, "tau": 0.5, "target_reward": 0.6, "checkpoint_dir": sel_dir}, seed=8))], file="c.yaml"
    )
    caplog.set_level(logging.WARNING, logger="bots.trinity")
    resumed = Explorer(chosen, state)
    np.testing.assert_array_equal(resumed.selector(0).pool.state()["alpha"], alpha)
    assert resumed.selector(0).pool.config["tau"] == 0.5  # the current config stays
    (warning,) = [r for r in caplog.records if r.name == "bots.trinity"]
    msg = warning.getMessage()
    assert all(k in msg for k in ("seed", "tau", "target")) and "lambda" not in msg


def test_bad_feedback_through_the_scheduler_changes_nothing(tmp_path):
    _, ex = two_taskset_run(tmp_path, (7, 5))
    sel = ex.selector(0)
    snap = snapshot(sel)
    for metric in [
        {0: {"indices": [1, 7], "values": [0.5, 0.5]}},
        {0: {"indices": [1, 2], "values": [0.5, float("nan")]}},
        {0: {"indices": [1, 2], "values": [0.5, 1.5]}},
        {0: {"indices": [1, 2], "values": [0.5]}},
    ]:
        with pytest.raises(ValueError):
            ex.scheduler.feedback({SELECTOR_METRIC: metric})
        assert_unchanged(sel, snap)
