"""bots.Pool from Python: the verbs, config forms, state, checkpoint, and bad input (raises, changes nothing)."""
import json

import numpy as np
import pytest

import bots
from pool_features import reference_features

N = 200


def features(n=N, seed=0):
    return reference_features(n, seed)


def make_pool(**keys):
    return bots.Pool(N, features=features(), config={"batch": 8, "seed": 3, **keys})


def run(pool, steps, rng_seed=1):
    rng = np.random.default_rng(rng_seed)
    picks = []
    for _ in range(steps):
        t = pool.select()
        picks.append(t.copy())
        pool.update(t, pass_rates=rng.integers(0, 17, len(t)) / 16)
    return picks


def snapshot(pool):
    s = pool.state()
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray):
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        else:
            assert a[k] == b[k], k


def test_select_is_uint32_best_first_and_stable_until_update():
    pool = make_pool()
    t = pool.select()
    assert t.dtype == np.uint32 and t.shape == (8,)
    assert len(set(t.tolist())) == 8
    np.testing.assert_array_equal(t, pool.select(8))
    assert pool.step == 0
    report = pool.update(t, pass_rates=np.full(8, 0.5, dtype=np.float32))
    assert report["step"] == 1 and pool.step == 1
    assert report["mu"] is not None and report["rho"] == pytest.approx(0.1)


def test_update_matches_the_formula_for_a_batch_task():
    # §4 with pass rates: alpha = (1-l)a + l*a0 + (1-rho)*m*r + rho*m*r (observed replaces predicted).
    pool = make_pool(rho=0.25, lamb=0.5)
    pool.update(np.array([5], dtype=np.uint32), pass_rates=[0.75])
    s = pool.state()
    assert s["alpha"][5] == pytest.approx(0.5 + 0.5 + 16 * 0.75, rel=1e-6)
    assert s["beta"][5] == pytest.approx(0.5 + 0.5 + 16 * 0.25, rel=1e-6)


def test_counts_and_pass_rates_agree_when_counts_are_m():
    a, b = make_pool(), make_pool()
    t = a.select()
    a.update(t, pass_rates=np.arange(8) / 16)
    b.update(t.astype(np.int64), successes=np.arange(8), failures=16 - np.arange(8))
    assert_same_state(a.state(), b.state())


def test_config_from_yaml_trinity_block_and_toml(tmp_path):
    y = tmp_path / "bots.yaml"
    y.write_text("task_selector:\n  selector_type: difficulty_based\n  kwargs: {m: 8, lamb: 0.3, target_reward: 0.4}\n")
    pool = bots.Pool(N, features=features(), config=str(y))
    assert (pool.config["m"], pool.config["lambda"], pool.config["target"]) == (8, pytest.approx(0.3), pytest.approx(0.4))
    t = tmp_path / "bots.toml"
    t.write_text("batch = 4\nseed = 9\n")
    assert bots.Pool(N, features=features(), config=t).config["batch"] == 4
    assert bots.Pool(N, features=features(), lamb=0.7).config["lambda"] == pytest.approx(0.7)


@pytest.mark.parametrize(
    "config, needle",
    [({"lamda": 0.1}, "lamda"), ({"rho": 2.0}, "rho"), ({"m": 0}, "m"), ({"feature_keys": ["a"]}, "feature_keys")],
)
def test_bad_config_is_a_value_error_naming_the_key(config, needle):
    with pytest.raises(ValueError, match=needle):
        bots.Pool(N, features=features(), config=config)


def test_missing_features_with_rho_is_refused():
    with pytest.raises(ValueError, match="reference features"):
        bots.Pool(N, config={"rho": 0.1})
    with pytest.raises(ValueError, match="feature"):
        bots.Pool(N, features=(np.full(N, 0.2), np.full(N - 1, 0.3)))
    with pytest.raises(ValueError, match="weak"):
        bots.Pool(N, features=(np.full(N, np.nan), np.full(N, 0.3)))


BAD_UPDATES = [
    ("wrong dtype (float ids)", lambda t: dict(tasks=t.astype(np.float64), pass_rates=np.full(8, 0.5)), "integer"),
    ("wrong dtype (strings)", lambda t: dict(tasks=t, pass_rates=np.array(["a"] * 8)), "real numbers"),
    ("NaN pass rate", lambda t: dict(tasks=t, pass_rates=np.r_[np.full(7, 0.5), np.nan]), "pass rate NaN"),
    ("pass rate above 1", lambda t: dict(tasks=t, pass_rates=np.r_[np.full(7, 0.5), 1.5]), "not a number in"),
    ("out-of-range id", lambda t: dict(tasks=np.r_[t[:7].astype(np.int64), N], pass_rates=np.full(8, 0.5)), "out of range"),
    ("negative id", lambda t: dict(tasks=np.r_[t[:7].astype(np.int64), -1], pass_rates=np.full(8, 0.5)), "negative"),
    ("id beyond u32", lambda t: dict(tasks=np.r_[t[:7].astype(np.int64), 2**40], pass_rates=np.full(8, 0.5)), "out of range"),
    ("duplicate id", lambda t: dict(tasks=np.r_[t[:7], t[0]], pass_rates=np.full(8, 0.5)), "more than once"),
    ("mismatched lengths", lambda t: dict(tasks=t, pass_rates=np.full(7, 0.5)), "expected 8 values, got 7"),
    ("2-D ids", lambda t: dict(tasks=t.reshape(2, 4), pass_rates=np.full(8, 0.5)), "1-D"),
    ("counts above m", lambda t: dict(tasks=t, successes=np.full(8, 10), failures=np.full(8, 10)), "invalid"),
    ("only successes", lambda t: dict(tasks=t, successes=np.full(8, 1)), "failures"),
    ("empty batch", lambda t: dict(tasks=np.array([], dtype=np.uint32), pass_rates=np.array([])), "empty"),
]


@pytest.mark.parametrize("name, make, needle", BAD_UPDATES, ids=[b[0] for b in BAD_UPDATES])
def test_bad_update_raises_and_changes_nothing(name, make, needle):
    pool = make_pool()
    run(pool, 3)
    before = snapshot(pool)
    t = pool.select()
    args = make(t)
    tasks = args.pop("tasks")
    with pytest.raises(ValueError, match=needle):
        pool.update(tasks, **args)
    assert_same_state(before, snapshot(pool))
    # ...and the pool goes on exactly as an untouched twin.
    twin = make_pool()
    run(twin, 3)
    np.testing.assert_array_equal(run(pool, 2, 9)[-1], run(twin, 2, 9)[-1])


@pytest.mark.parametrize("k", [0, N + 1, -1, 2.5, True])
def test_bad_k_raises(k):
    pool = make_pool()
    with pytest.raises(ValueError):
        pool.select(k)


def test_save_load_continues_exactly(tmp_path):
    a = make_pool()
    run(a, 5)
    a.save(tmp_path / "p.ckpt")
    b = bots.Pool.load(tmp_path / "p.ckpt")
    assert b.step == 5 and b.config == a.config
    assert_same_state(a.state(), b.state())
    for x, y in zip(run(a, 4, 7), run(b, 4, 7)):
        np.testing.assert_array_equal(x, y)


def test_restore_takes_only_a_checkpoint_of_this_pool(tmp_path):
    a = make_pool()
    run(a, 3)
    path = tmp_path / "p.ckpt"
    a.save(path)
    # Same pool, other selection keys: restored in place, the checkpoint's config returned.
    b = bots.Pool(N, features=features(), config={"batch": 4, "seed": 11})
    assert b.fingerprint == a.fingerprint and len(a.fingerprint) == 16
    assert b.restore(path)["seed"] == 3
    assert b.step == 3 and b.config["batch"] == 4
    np.testing.assert_array_equal(b.state()["alpha"], a.state()["alpha"])
    # Another pool: refused, saying what differs, nothing changed.
    others = [
        (bots.Pool(N + 1, features=features(N + 1), config={"batch": 8}), "it has 200 tasks, this pool has 201"),
        (bots.Pool(N, features=features(seed=5), config={"batch": 8}), "features with digest"),
        (bots.Pool(N, features=features(), config={"batch": 8, "lamb": 0.3}), "lambda = 0.1, this pool has lambda = 0.3"),
        (bots.Pool(N, config={"batch": 8, "rho": 0}), "this pool has no features"),
    ]
    for other, words in others:
        assert other.fingerprint != a.fingerprint
        run(other, 1)
        before = snapshot(other)
        with pytest.raises(ValueError, match="belongs to another pool") as e:
            other.restore(path)
        assert words in str(e.value), str(e.value)
        assert_same_state(before, other.state())


def test_load_refuses_a_damaged_checkpoint(tmp_path):
    a = make_pool()
    run(a, 2)
    path = tmp_path / "p.ckpt"
    a.save(path)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="checkpoint"):
        bots.Pool.load(path)
    with pytest.raises(OSError):
        bots.Pool.load(tmp_path / "missing.ckpt")


def test_state_has_the_whole_posterior():
    pool = make_pool(prior_strength=4.0)
    run(pool, 2)
    s = pool.state()
    for key in ("alpha", "beta", "weak", "strong", "prior_alpha", "prior_beta"):
        assert s[key].dtype == np.float32 and s[key].shape == (N,), key
    np.testing.assert_array_equal(s["strong"], features()[1].astype(np.float32))
    assert s["step"] == 2 and isinstance(s["mu"], float)
    json.dumps({k: v for k, v in s.items() if not isinstance(v, np.ndarray)})


def test_state_features_has_every_column():
    w, st = features()
    s = make_pool().state()
    assert s["features"].dtype == np.float32 and s["features"].shape == (2, N)
    np.testing.assert_array_equal(s["features"], np.stack([w, st]).astype(np.float32))


def k_columns(k):
    """K reference columns of sixteenths, rising with the column (weakest first)."""
    w, st = features()
    return [np.minimum(w + c * (st - w) / 2, 1.0) for c in range(k)]


@pytest.mark.parametrize("k", [1, 3, 5])
def test_k_reference_columns(tmp_path, k):
    cols = k_columns(k) if k > 1 else [features()[1]]
    keys = [f"ref{c}" for c in range(k)]
    pool = bots.Pool(N, features=cols, config={"batch": 8, "seed": 3, "feature_keys": keys, "prior_strength": 2.0})
    picks = run(pool, 6)
    s = pool.state()
    assert s["features"].shape == (k, N)
    np.testing.assert_array_equal(s["features"], np.stack(cols).astype(np.float32))
    np.testing.assert_array_equal(s["weak"], s["features"][0])
    np.testing.assert_array_equal(s["strong"], s["features"][-1])
    # A checkpoint keeps the K columns and continues exactly.
    pool.save(tmp_path / "k.ckpt")
    back = bots.Pool.load(tmp_path / "k.ckpt")
    assert back.config["feature_keys"] == keys
    assert_same_state(pool.state(), back.state())
    for x, y in zip(run(pool, 3, 7), run(back, 3, 7)):
        np.testing.assert_array_equal(x, y)
    assert len(picks) == 6


def test_one_column_is_two_with_a_zero_column_below():
    strong = features()[1]
    one = bots.Pool(N, features=[strong], config={"batch": 8, "seed": 3, "feature_keys": ["s"]})
    two = bots.Pool(N, features=(np.zeros(N), strong), config={"batch": 8, "seed": 3})
    for x, y in zip(run(one, 6), run(two, 6)):
        np.testing.assert_array_equal(x, y)
    a, b = one.state(), two.state()
    for key in ("alpha", "beta"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert a["mu"] == b["mu"]


def test_k_columns_are_checked():
    with pytest.raises(ValueError, match="feature_keys"):
        bots.Pool(N, features=k_columns(3))  # the default feature_keys name two columns
    with pytest.raises(ValueError, match="column 2"):
        bad = k_columns(3)
        bad[2] = bad[2][:-1]
        bots.Pool(N, features=bad, config={"feature_keys": ["a", "b", "c"]})
    with pytest.raises(ValueError, match="at least one column"):
        bots.Pool(N, features=[])
    with pytest.raises(ValueError, match="sequence of columns"):
        bots.Pool(N, features=np.zeros(N))


def test_cuda_backend_refuses_clearly_without_a_gpu():
    built, reason = bots.cuda_build_info()
    assert isinstance(built, bool) and reason
    try:
        pool = bots.Pool(N, features=features(), config={"batch": 8, "seed": 3}, backend="cuda")
    except RuntimeError as e:
        assert "CUDA backend unavailable" in str(e), e
        return
    # A machine with a GPU: the device pool selects what the CPU pool does.
    np.testing.assert_array_equal(pool.select(8), make_pool().select(8))


def test_unknown_backend_and_device_tensors_on_cpu_are_refused():
    with pytest.raises(ValueError, match="unknown backend"):
        bots.Pool(N, features=features(), backend="tpu")
    with pytest.raises(ValueError, match="backend='cuda'"):
        make_pool().select(8, out=np.zeros(8, dtype=np.int32))
