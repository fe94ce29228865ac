"""Runs a selector for some steps in its own process, for test_resume.py.

usage: resume_driver.py KIND MODE DIR     KIND: pool | trinity | verl
  MODE full:   8 steps (trinity: one more batch served at step 4), prints the batches of steps 4..7
  MODE first:  steps 0..3 (trinity: plus one batch served without feedback), saves the state to DIR,
               then kills its own process with SIGKILL (no clean-up, no atexit)
  MODE second: a fresh process: loads DIR's state, runs steps 4..7, prints their batches
Outcomes are a fixed function of (step, task), so every process sees the same rollouts.
"""
import json
import os
import pickle
import signal
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import conftest  # noqa: E402,F401  (reference imports first, as in the tests)

import bots  # noqa: E402

N, B, FIRST, TOTAL = 500, 16, 4, 8
KEYS = ["weak", "strong"]


def columns():
    rng = np.random.default_rng(1)
    weak = rng.integers(0, 12, N) / 16
    return {KEYS[0]: weak.tolist(), KEYS[1]: np.minimum(weak + 0.25, 1).tolist()}


def outcome(step, tasks):
    return [((step * 7919 + int(t) * 104729) % 17) / 16 for t in tasks]


def make(kind, d):
    cols = columns()
    if kind == "pool":
        return bots.Pool(N, features=(cols[KEYS[0]], cols[KEYS[1]]), config={"batch": B, "seed": 5, "tau": 0.3})
    if kind == "trinity":
        from trinity_ref import data_source, selector_config

        from bots.trinity import BotsSelector

        kwargs = {"m": 16, "lamb": 0.1, "rho": 0.1, "do_sample": True, "tau": 0, "target_reward": 0.5, "checkpoint_dir": d}
        return BotsSelector(data_source(cols), selector_config(KEYS, kwargs, seed=5))
    from test_verl import Dataset, data_config

    from bots.verl import BotsSampler

    return BotsSampler(Dataset(N), data_config(tau=0.5))


def step(kind, sel, s, it):
    if kind == "pool":
        t = sel.select()
        sel.update(t, pass_rates=outcome(s, t))
    elif kind == "trinity":
        t = sel.get_indices(B)
        sel.feedback(t, outcome(s, t))
    else:
        from test_verl import step_batch

        t = [next(it) for _ in range(B)]
        sel.update(batch=step_batch(t, s)[0])
    return [int(x) for x in t]


def main(kind, mode, d):
    sel = make(kind, d)
    it = iter(sel) if kind == "verl" else None
    if mode == "second":
        if kind == "pool":
            sel = bots.Pool.load(os.path.join(d, "pool.ckpt"))
        elif kind == "trinity":
            with open(os.path.join(d, "state.json")) as f:
                sel.load_state_dict(json.load(f))
        else:
            with open(os.path.join(d, "state.pkl"), "rb") as f:
                sel.load_state_dict(pickle.load(f))
    start = FIRST if mode == "second" else 0
    stop = FIRST if mode == "first" else TOTAL
    out = []
    for s in range(start, stop):
        if kind == "trinity" and mode == "full" and s == FIRST:
            sel.get_indices(B)  # the batch the killed run handed out before dying
        out.append(step(kind, sel, s, it))
    if mode == "first":
        if kind == "pool":
            sel.save(os.path.join(d, "pool.ckpt"))
        elif kind == "trinity":
            sel.get_indices(B)  # handed out, outcomes not back yet when the process dies
            with open(os.path.join(d, "state.json"), "w") as f:
                json.dump(sel.state_dict(), f)
        else:
            with open(os.path.join(d, "state.pkl"), "wb") as f:
                pickle.dump(sel.state_dict(), f)
        os.kill(os.getpid(), signal.SIGKILL)
    print(json.dumps(out[-(TOTAL - FIRST):]))


if __name__ == "__main__":
    main(*sys.argv[1:4])
