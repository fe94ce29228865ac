"""bots.Pool with neighbour evidence (embeddings or precomputed rows) and tasks appended mid-run."""
import numpy as np
import pytest

import bots

NONE = 2**32 - 1


def clusters(n, dim=8, seed=0):
    """n embeddings around 10 random directions (task i in cluster i % 10)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, dim))
    return (centres[np.arange(n) % 10] + 0.2 * rng.normal(size=(n, dim))).astype(np.float32)


def test_batch_outcomes_reach_the_neighbours_by_the_formula():
    # Tasks 0 and 1 are each other's neighbour (w 0.9); task 2 has none. eta = 0.5, m = 8, rho = 0.
    ids = np.array([[1], [0], [NONE]], dtype=np.uint32)
    w = np.array([[0.9], [0.9], [0.0]], dtype=np.float32)
    pool = bots.Pool(3, neighbours=(ids, w), config={"rho": 0, "m": 8, "neighbour_weight": 0.5})
    pool.update(np.array([0]), pass_rates=np.array([1.0]))
    s = pool.state()
    # Task 1: forgetting keeps Beta(1, 1), plus 0.5 · 0.9 · 8 successes.
    assert s["alpha"][1] == pytest.approx(4.6, abs=1e-5) and s["beta"][1] == pytest.approx(1.0, abs=1e-6)
    assert s["alpha"][2] == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_array_equal(s["neighbour_ids"], ids)


def test_embeddings_build_the_exact_graph_and_equal_rows_give_the_same_pool(tmp_path):
    n = 300
    e = clusters(n)
    cfg = {"rho": 0, "batch": 16, "neighbour_weight": 0.5, "seed": 5}
    a = bots.Pool(n, embeddings=e, neighbour_k=6, config=cfg)
    st = a.state()
    assert st["neighbour_ids"].shape == (n, 6)
    # The exact top 6 by cosine similarity (numpy's, excluding the task itself), weights = cosines.
    u = e / np.linalg.norm(e, axis=1, keepdims=True)
    sim = u @ u.T
    np.fill_diagonal(sim, -np.inf)
    top = -np.sort(-sim, axis=1)[:, :6]
    np.testing.assert_allclose(st["neighbour_weights"], top, atol=1e-5)
    cos = np.einsum("ij,ikj->ik", u, u[st["neighbour_ids"].astype(np.int64)])
    np.testing.assert_allclose(st["neighbour_weights"], cos, atol=1e-5)
    b = bots.Pool(n, neighbours=(st["neighbour_ids"], st["neighbour_weights"]), config=cfg)
    assert a.fingerprint == b.fingerprint
    for _ in range(5):
        t = a.select()
        np.testing.assert_array_equal(t, b.select())
        r = (t % 5) / 4
        a.update(t, pass_rates=r)
        b.update(t, pass_rates=r)
    np.testing.assert_array_equal(a.state()["alpha"], b.state()["alpha"])
    # A checkpoint keeps the graph; a pool with another graph refuses it and is unchanged.
    path = tmp_path / "p.ckpt"
    a.save(path)
    c = bots.Pool.load(path)
    np.testing.assert_array_equal(c.state()["neighbour_weights"], st["neighbour_weights"])
    other = bots.Pool(n, embeddings=clusters(n, seed=1), neighbour_k=6, config=cfg)
    before = other.state()["alpha"].copy()
    with pytest.raises(ValueError, match="neighbour graph with digest"):
        other.restore(path)
    np.testing.assert_array_equal(other.state()["alpha"], before)


def test_bad_graph_input_is_refused():
    e = clusters(20)
    with pytest.raises(ValueError, match="needs a neighbour graph"):
        bots.Pool(20, config={"rho": 0, "neighbour_weight": 0.5})
    with pytest.raises(ValueError, match="would be unused"):
        bots.Pool(20, embeddings=e, config={"rho": 0})
    with pytest.raises(ValueError, match=r"\(20, dim\)"):
        bots.Pool(20, embeddings=e[:10], config={"rho": 0, "neighbour_weight": 0.5})
    ids = np.zeros((20, 2), dtype=np.uint32)
    with pytest.raises(ValueError, match="own neighbour|listed twice"):
        bots.Pool(20, neighbours=(ids, np.ones((20, 2))), config={"rho": 0, "neighbour_weight": 0.5})
    with pytest.raises(ValueError, match="not both"):
        bots.Pool(20, embeddings=e, neighbours=(ids, ids), config={"rho": 0, "neighbour_weight": 0.5})


def test_append_with_embeddings_and_features(tmp_path):
    n, extra = 200, 40
    e = clusters(n + extra)
    rng = np.random.default_rng(3)
    weak, strong = rng.integers(0, 9, (2, n + extra)) / 16
    strong = np.maximum(weak, strong)
    cfg = {"batch": 16, "neighbour_weight": 0.8, "seed": 2, "rho": 0}
    pool = bots.Pool(n, features=(weak[:n], strong[:n]), embeddings=e[:n], neighbour_k=5, config=cfg)
    for _ in range(20):
        t = pool.select()
        pool.update(t, pass_rates=np.where(t % 10 < 5, 0.875, 0.125))
    ids = pool.append(features=(weak[n:], strong[n:]), embeddings=e[n:])
    assert ids == range(n, n + extra) and len(pool) == n + extra
    s = pool.state()
    # New tasks start from their neighbours' evidence: the easy clusters (i % 10 < 5) above the hard.
    new_mean = s["alpha"][n:] / (s["alpha"][n:] + s["beta"][n:])
    easy = (np.arange(n, n + extra) % 10) < 5
    assert new_mean[easy].min() > 0.6 and new_mean[~easy].max() < 0.4, new_mean
    # Their neighbours are found among all tasks (mostly their own cluster), and selection can return them.
    same = s["neighbour_ids"][n:] % 10 == (np.arange(n, n + extra) % 10)[:, None]
    assert same.mean() > 0.9 and s["neighbour_ids"][n:].max() >= n
    assert pool.select(64).max() < n + extra
    # Round trip: a loaded pool resumes identically; appending to it needs rows or embeddings set.
    path = tmp_path / "grown.ckpt"
    pool.save(path)
    back = bots.Pool.load(path)
    np.testing.assert_array_equal(back.select(), pool.select())
    with pytest.raises(ValueError, match="does not hold its tasks' embeddings"):
        back.append(features=([0.5], [0.5]), embeddings=e[:1])
    back.embeddings = e
    assert back.append(features=([0.5], [0.5]), embeddings=e[:1]) == range(n + extra, n + extra + 1)


def test_bad_appends_change_nothing():
    pool = bots.Pool(30, features=(np.full(30, 0.25), np.full(30, 0.75)), config={"batch": 4})
    pool.update(np.array([0, 1]), pass_rates=np.array([0.5, 1.0]))
    before = pool.state()
    for kwargs, words in [
        ({"count": 2}, "give the new tasks theirs"),
        ({"features": ([0.5, 0.5], [0.5])}, "strong feature column|column 1"),
        ({"features": ([0.5], [1.5])}, r"\[0, 1\]"),
        ({"count": 1, "features": ([0.5], [0.5]), "neighbours": ([[1]], [[1.0]])}, "no neighbour graph"),
        ({"count": 0}, "positive integer"),
    ]:
        with pytest.raises(ValueError, match=words):
            pool.append(**kwargs)
        after = pool.state()
        assert len(pool) == 30
        np.testing.assert_array_equal(after["alpha"], before["alpha"])
    # A good one, from the references' fixed point (rho m p / lambda above the prior).
    assert pool.append(features=([0.5], [0.5])) == range(30, 31)
    s = pool.state()
    assert s["alpha"][30] == pytest.approx(1 + 0.1 * 16 * 0.5 / 0.1, rel=1e-5)
