#!/usr/bin/env python3
"""`bots.Pool.select` + `update` from Python against the numpy peer (numpy_bots.py), in one run.

Both do the same step on the same pool (N tasks with k/16 reference features, rho = 0.1): the numpy
peer is Trinity-RFT's vectorized update + `Generator.beta` over the pool + top-k; `bots.Pool` is the
crate's CPU backend behind the Python bindings (numpy arrays in and out). The runs are interleaved
round by round so both see the same machine load. Build the extension in release mode first:

    pip install ./python        (or: cd python && maturin develop --release)

usage: python_bots.py [--tasks N] [--batch K] [--steps S] [--rounds R] [--json]
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy_bots  # noqa: E402  (the numpy peer)

import bots  # noqa: E402


def time_bots(n, k, steps, warmup=3):
    rng = np.random.default_rng(0)
    feats = rng.integers(0, 17, size=(n, 2)).astype(np.float32) / 16
    feats.sort(axis=1)
    pool = bots.Pool(n, features=(feats[:, 0], feats[:, 1]), config={"batch": k, "rho": 0.1, "lambda": 0.1})
    outcomes = (rng.integers(0, 17, size=k) / 16).astype(np.float32)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        idx = pool.select(k)
        pool.update(idx, pass_rates=outcomes)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    rows = []
    for r in range(a.rounds):
        for peer, fn in (("bots (python)", time_bots), ("numpy", numpy_bots.time_steps)):
            ms = fn(a.tasks, a.batch, a.steps)
            rows.append({"round": r + 1, "peer": peer, "ms_per_step": ms, "tasks": a.tasks, "batch": a.batch,
                         "device": platform.processor() or platform.machine(), "threads": os.cpu_count(),
                         "numpy": np.__version__})
    if a.json:
        print(json.dumps(rows))
        return
    print(f"N = {a.tasks}, k = {a.batch}, median of {a.steps} steps, {os.cpu_count()} cores")
    for row in rows:
        print(f"round {row['round']}  {row['peer']:<14} {row['ms_per_step']:8.2f} ms/step")
    b = np.median([x["ms_per_step"] for x in rows if x["peer"] == "numpy"])
    o = np.median([x["ms_per_step"] for x in rows if x["peer"] != "numpy"])
    print(f"median over rounds: bots {o:.2f} ms, numpy {b:.2f} ms, {b / o:.2f}x")


if __name__ == "__main__":
    main()
