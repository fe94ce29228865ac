"""bots.trinity.BotsSelector against Trinity-RFT 0.6.0's own DifficultyBasedSelector (its real code,
imported by tests/trinity/trinity_ref.py with stubs only for what the selector package imports from
outside it): the same feedback gives the same posteriors (1e-4 relative), and where Trinity is
deterministic (do_sample false, tau 0) the same batches."""
import os

import numpy as np
import pytest
from trinity_ref import data_source, import_trinity, selector_config

from bots.trinity import BotsSelector

DifficultyBasedSelector, _ = import_trinity()
KEYS = ["weak_pass_rate", "strong_pass_rate"]
REL = 1e-4


def columns(n, seed):
    # Reference pass rates as a reference model's k/16 would give them.
    rng = np.random.default_rng(seed)
    weak = rng.integers(0, 13, n) / 16
    strong = np.minimum(weak + rng.integers(0, 8, n) / 16, 1.0)
    return {KEYS[0]: weak.tolist(), KEYS[1]: strong.tolist()}


def pair(n, kwargs, seed=11, tmp_path=None):
    cols = columns(n, seed)
    theirs = DifficultyBasedSelector(data_source(cols), selector_config(KEYS, kwargs, seed=seed))
    own = dict(kwargs)
    if tmp_path is not None:
        own["checkpoint_dir"] = str(tmp_path)
    ours = BotsSelector(data_source(cols), selector_config(KEYS, own, seed=seed))
    return theirs, ours


def assert_same_posterior(theirs, ours):
    est = theirs.diff_estimator
    s = ours.pool.state()
    np.testing.assert_allclose(s["alpha"], est.alphas, rtol=REL)
    np.testing.assert_allclose(s["beta"], est.betas, rtol=REL)
    assert s["rho"] == pytest.approx(est.rho, rel=1e-6)
    if est.cap_coef is not None:
        assert s["mu"] == pytest.approx(est.cap_coef, rel=REL, abs=1e-5)


CONFIGS = {
    "trinity code defaults": {},
    "bots.yaml": {"m": 16, "lamb": 0.1, "rho": 0.1, "target_reward": 0.5, "tau": 0, "do_sample": True},
    "adaptive rho firing": {"m": 8, "lamb": 0.3, "rho": 0.9, "adaptive_rho": True},
    "explicit only": {"m": 16, "lamb": 0.05, "rho": 0.0},
    "implicit only": {"m": 4, "lamb": 0.5, "rho": 1.0},
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_same_feedback_same_posterior(name):
    kwargs = CONFIGS[name]
    m = kwargs.get("m", 16)
    n, batch = 300, 12
    theirs, ours = pair(n, kwargs)
    rng = np.random.default_rng(5)
    for _ in range(30):
        idx = rng.choice(n, batch, replace=False).tolist()
        # Far from the interpolation now and then, so adaptive rho fires.
        values = (rng.integers(0, m + 1, batch) / m).tolist()
        theirs.feedback(idx, values)
        ours.feedback(indices=idx, values=values)  # Trinity calls it with keywords
        assert_same_posterior(theirs, ours)
    if kwargs.get("adaptive_rho"):
        assert theirs.diff_estimator.rho < kwargs["rho"], "the test should make adaptive rho fire"


def trinity_batch(sel, batch):
    """Trinity's `get_indices` with do_sample false and tau 0: `torch.topk` of its own `get_scores()`.
    Without torch here, the same top-k in numpy (ties to the lower index, as the crate breaks them)."""
    try:
        import torch  # noqa: F401

        return [int(i) for i in sel.get_indices(batch)]
    except (ImportError, AttributeError):
        scores = sel.get_scores()
        sel.current_index += batch
        return np.argsort(-scores, kind="stable")[:batch].tolist()


@pytest.mark.parametrize("target", [0.5, 1.0])
def test_deterministic_batches_equal_trinitys(target):
    n, batch = 400, 16
    kwargs = {"m": 16, "lamb": 0.1, "rho": 0.1, "do_sample": False, "tau": 0, "target_reward": target}
    theirs, ours = pair(n, kwargs)
    hidden = np.random.default_rng(2).uniform(0, 1, n)
    rng = np.random.default_rng(3)
    exact = 0
    for step in range(25):
        scores = theirs.get_scores()
        want = trinity_batch(theirs, batch)
        got = ours.get_indices(batch)
        exact += got == want
        if got != want:
            # Only ties may differ: scores equal in exact arithmetic (e.g. p and 1 - p around 0.5) that
            # float64 and float32 round apart. Same scores position by position, and any task swapped
            # across the batch boundary ties with Trinity's last one.
            np.testing.assert_allclose(scores[got], scores[want], rtol=0, atol=1e-6, err_msg=f"step {step}")
            for t in set(got) - set(want):
                assert abs(scores[t] - scores[want[-1]]) <= 1e-6, f"step {step}: task {t} is no tie"
        values = (rng.binomial(16, hidden[want]) / 16).tolist()
        theirs.feedback(want, values)
        ours.feedback(want, values)
        assert_same_posterior(theirs, ours)
    assert exact >= 20, f"only {exact} of 25 batches identical"
    assert ours.current_index == theirs.current_index == 25 * batch


def test_registered_by_dotted_path_through_trinitys_registry():
    from trinity.buffer.selector import SELECTORS
    from trinity.buffer.selector.selector import BaseSelector

    cls = SELECTORS.get("bots.trinity.BotsSelector")
    assert cls is BotsSelector and issubclass(cls, BaseSelector)
    sel = cls(data_source(columns(50, 1)), selector_config(KEYS, {"tau": 0}))
    assert len(sel.get_indices(4)) == 4


def test_extra_info_and_batches_before_feedback_do_not_repeat():
    _, ours = pair(100, {"do_sample": True, "tau": 0, "target_reward": 0.5})
    first, extra = ours.get_indices(10, return_extra_info=True)
    assert extra["indices"] == first and len(extra["alphas"]) == 10
    np.testing.assert_allclose(extra["point"], np.array(extra["alphas"]) / (np.array(extra["alphas"]) + np.array(extra["betas"])))
    second = ours.get_indices(10)
    assert not set(first) & set(second), "a batch asked before feedback must not repeat the previous one"
    ours.feedback(first + second, [0.5] * 20)
    assert ours.pool.step == 1


def test_feedback_update_alias_and_bad_values_change_nothing():
    theirs, ours = pair(60, {"rho": 0.2})
    assert BotsSelector.update is BotsSelector.feedback
    before = ours.pool.state()
    for idx, values in [([1, 2], [0.5, float("nan")]), ([1, 60], [0.5, 0.5]), ([1, 2], [0.5]), ([1, 1], [0.5, 0.5])]:
        with pytest.raises(ValueError):
            ours.feedback(idx, values)
    after = ours.pool.state()
    np.testing.assert_array_equal(before["alpha"], after["alpha"])
    assert after["step"] == 0


def test_state_dict_is_json_and_resumes_the_posterior(tmp_path, caplog):
    import json
    import logging

    theirs, ours = pair(80, {"rho": 0.2, "do_sample": True, "tau": 0, "target_reward": 0.5}, tmp_path=tmp_path)
    rng = np.random.default_rng(0)
    for _ in range(4):
        idx = ours.get_indices(8)
        ours.feedback(idx, (rng.integers(0, 17, 8) / 16).tolist())
    ours.get_indices(8)  # served, no feedback yet
    state = json.loads(json.dumps(ours.state_dict()))
    # Named by taskset (no `.name` on this data source: "taskset"), pool fingerprint and step.
    assert os.path.basename(state["bots_checkpoint"]) == f"bots-taskset-{ours.pool.fingerprint}-step{4:09d}.ckpt"
    caplog.set_level(logging.DEBUG, logger="bots.trinity")
    _, fresh = pair(80, {"rho": 0.2, "do_sample": True, "tau": 0, "target_reward": 0.5}, tmp_path=tmp_path)
    fresh.load_state_dict({"current_index": 0})  # what Trinity passes on a fresh start: no resume, no warning
    assert fresh.current_index == 0 and not [r for r in caplog.records if r.levelno >= logging.WARNING]
    fresh.load_state_dict(state)
    assert fresh.current_index == ours.current_index == 40
    np.testing.assert_array_equal(fresh.pool.state()["alpha"], ours.pool.state()["alpha"])
    assert fresh.get_indices(8) == ours.get_indices(8)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # A cursor-only state (from Trinity's own selector) keeps the fresh posterior, and says so.
    theirs.current_index = 40  # as after five batches of 8
    _, plain = pair(80, {"rho": 0.2}, tmp_path=tmp_path)
    plain.load_state_dict(theirs.state_dict())
    assert plain.pool.step == 0 and plain.current_index == 40
    assert any("cursor only" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_checkpoint_files_are_this_selectors_own(tmp_path):
    """Two selectors (taskset names from their data sources, as Trinity's `_HFBatchReader.name`) in
    one folder: each writes and prunes only its own files."""
    import types

    cols = columns(30, 4)
    own = {"rho": 0.2, "checkpoint_dir": str(tmp_path), "keep_checkpoints": 2}
    sels = [BotsSelector(types.SimpleNamespace(dataset=cols, dataset_size=30, name=n), selector_config(KEYS, own)) for n in ("a", "b/c")]
    for step in range(4):
        for sel in sels:
            sel.feedback(sel.get_indices(5), [0.5] * 5)
            sel.state_dict()
    fp = sels[0].pool.fingerprint
    assert sels[1].pool.fingerprint == fp  # the same pool: only the names keep the files apart
    want = [f"bots-{n}-{fp}-step{s:09d}.ckpt" for n in ("a", "b_c") for s in (3, 4)]
    assert sorted(os.listdir(tmp_path)) == sorted(want)


def test_wrong_feature_keys_are_refused():
    cols = columns(20, 0)
    with pytest.raises(ValueError, match="exactly 2"):
        BotsSelector(data_source(cols), selector_config(KEYS[:1], {}))
    with pytest.raises(ValueError, match="no column"):
        BotsSelector(data_source(cols), selector_config([KEYS[0], "nope"], {}))
