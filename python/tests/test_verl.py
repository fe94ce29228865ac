"""bots.verl.BotsSampler (the route for verl 0.5.0 - 0.7.1) against verl 0.7.1's real `AbstractCurriculumSampler` (loaded from the installed
`verl/experimental/dataset/sampler.py` by verl_ref.py, with stubs only for what that file imports) and
the way verl drives it: `create_rl_sampler` builds it from `data_config` and asserts it is an
`AbstractSampler`, the dataloader draws `train_batch_size` indices a step, the trainer calls
`update(batch=...)` with the step's DataProto, and the StatefulDataLoader checkpoints the sampler
iterator through `state_dict` / `load_state_dict`."""
import pickle

import numpy as np
import pytest
from verl_ref import DataProto, import_verl_sampler

import bots
from bots.verl import BotsSampler

AbstractSampler, AbstractCurriculumSampler = import_verl_sampler()
KEYS = ["qwen2.5_7b_pass_rate", "qwen3_30b_pass_rate"]
N, B, ROLLOUTS = 120, 8, 4


class Dataset:
    """What the sampler reads of verl's RLHFDataset: len() and `.dataframe[column]`."""

    def __init__(self, n, seed=0):
        rng = np.random.default_rng(seed)
        weak = rng.integers(0, 9, n) / 16
        self.dataframe = {KEYS[0]: weak.tolist(), KEYS[1]: np.minimum(weak + 0.25, 1).tolist()}
        self.n = n

    def __len__(self):
        return self.n


def data_config(**sampler_config):
    return {
        "train_batch_size": B,
        "seed": 7,
        "dataloader_num_workers": 0,
        "sampler": {"class_path": "pkg://bots.verl", "class_name": "BotsSampler", "config": {"m": ROLLOUTS, **sampler_config}},
    }


def create_rl_sampler(cfg, dataset):
    """verl 0.7.1's `create_rl_sampler` (verl/trainer/main_ppo.py:392) for a curriculum class."""
    import importlib

    module = importlib.import_module(cfg["sampler"]["class_path"][len("pkg://"):].replace("/", "."))
    sampler = getattr(module, cfg["sampler"]["class_name"])(data_source=dataset, data_config=cfg)
    assert isinstance(sampler, AbstractSampler)
    assert cfg.get("dataloader_num_workers", 8) == 0
    return sampler


def step_batch(indices, step):
    """The DataProto after rollouts: each prompt repeated ROLLOUTS times (interleaved, as verl does),
    token-level scores whose sum is 1 (correct) or 0, and the `index` field from extra_info."""
    idx = np.repeat(np.asarray(indices), ROLLOUTS)
    rng = np.random.default_rng(step)
    correct = rng.random(len(idx)) < 0.5
    scores = np.zeros((len(idx), 5), dtype=np.float32)
    scores[:, -1] = correct
    return DataProto({"token_level_scores": scores}, {"index": idx.astype(object)}), idx, correct


def train(sampler, steps, first_step=0):
    """verl's loop: draw a batch of B indices from the sampler iterator, roll out, update."""
    it = iter(sampler) if first_step == 0 else sampler
    batches = []
    for s in range(first_step, first_step + steps):
        indices = [next(it) for _ in range(B)]
        batches.append(indices)
        sampler.update(batch=step_batch(indices, s)[0])
    return batches


def test_is_verls_curriculum_sampler_and_learns_from_the_batch():
    sampler = create_rl_sampler(data_config(), Dataset(N))
    assert isinstance(sampler, AbstractCurriculumSampler)
    assert len(sampler) == N and sampler.pool.config["seed"] == 7 and sampler.pool.config["m"] == ROLLOUTS
    it = iter(sampler)
    indices = [next(it) for _ in range(B)]
    assert len(set(indices)) == B
    batch, idx, correct = step_batch(indices, 0)
    sampler.update(batch=batch)
    # The same update by hand: per task, successes and failures over its rollouts.
    twin = bots.Pool(N, features=(Dataset(N).dataframe[KEYS[0]], Dataset(N).dataframe[KEYS[1]]),
                     config={"m": ROLLOUTS, "seed": 7, "batch": B})
    succ = np.array([correct[idx == t].sum() for t in indices], dtype=float)
    twin.update(np.array(indices), successes=succ, failures=ROLLOUTS - succ)
    np.testing.assert_array_equal(sampler.pool.state()["alpha"], twin.state()["alpha"])
    assert sampler.pool.step == 1


def test_an_epoch_is_len_indices_then_stops():
    sampler = create_rl_sampler(data_config(), Dataset(N))
    drawn = list(sampler)
    assert len(drawn) == N
    assert all(0 <= t < N for t in drawn)


def test_checkpoint_through_the_dataloader_state_resumes_exactly():
    a = create_rl_sampler(data_config(), Dataset(N))
    train(a, 5)
    state = pickle.loads(pickle.dumps(a.state_dict()))  # torch.save pickles it into verl's data.pt
    b = create_rl_sampler(data_config(), Dataset(N))
    iter(b)
    b.load_state_dict(state)
    assert train(b, 4, first_step=5) == train(a, 4, first_step=5)


def test_a_checkpoint_of_another_pool_is_refused_and_changes_nothing():
    a = create_rl_sampler(data_config(), Dataset(N))
    train(a, 2)
    state = a.state_dict()
    for other in (create_rl_sampler(data_config(), Dataset(N, seed=1)),  # other features
                  create_rl_sampler(data_config(rho=0.3), Dataset(N)),   # other posterior-shaping config
                  create_rl_sampler(data_config(), Dataset(N + 1))):     # other task count
        iter(other)
        before = other.pool.state()["alpha"].copy()
        with pytest.raises(ValueError, match="another pool|tasks"):
            other.load_state_dict(state)
        np.testing.assert_array_equal(other.pool.state()["alpha"], before)
        assert other.pool.step == 0
    same = create_rl_sampler(data_config(batch=2 * B), Dataset(N))  # batch does not shape the posterior
    iter(same)
    same.load_state_dict(state)
    assert same.pool.step == 2


def test_bad_batches_raise_and_change_nothing():
    sampler = create_rl_sampler(data_config(), Dataset(N))
    before = sampler.pool.state()["alpha"].copy()
    scores = np.ones((2, 3), dtype=np.float32)
    for batch in [
        DataProto({"token_level_scores": scores}, {"index": np.array([1, N], dtype=object)}),  # out of range
        DataProto({"token_level_scores": scores}, {"index": np.array(["a", "b"], dtype=object)}),  # not ids
        DataProto({"token_level_scores": scores[:1]}, {"index": np.array([1, 2], dtype=object)}),  # lengths
        DataProto({"token_level_scores": np.ones((2 * ROLLOUTS, 3))}, {"index": np.array([1] * 2 * ROLLOUTS, dtype=object)}),  # > m rollouts
    ]:
        with pytest.raises(ValueError):
            sampler.update(batch=batch)
    np.testing.assert_array_equal(sampler.pool.state()["alpha"], before)
    assert sampler.pool.step == 0


def test_minus_one_plus_one_rewards_and_a_config_file(tmp_path):
    path = tmp_path / "bots.yaml"
    path.write_text("m: 4\nrho: 0\nsuccess_threshold: 0.0\n")
    cfg = data_config()
    cfg["sampler"]["config"] = str(path)
    sampler = create_rl_sampler(cfg, Dataset(N))
    assert sampler.pool.config["rho"] == 0 and sampler.success_threshold == 0.0
    scores = np.array([[1.0], [-1.0], [1.0], [1.0]])
    sampler.update(batch=DataProto({"token_level_scores": scores}, {"index": np.array([3, 3, 3, 3], dtype=object)}))
    s = sampler.pool.state()
    assert s["alpha"][3] == pytest.approx(0.9 + 0.1 + 3) and s["beta"][3] == pytest.approx(0.9 + 0.1 + 1)
