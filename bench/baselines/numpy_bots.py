#!/usr/bin/env python3
"""The BOTS step in numpy, written the way Trinity-RFT does it.

Trinity-RFT's `DifficultyBasedSelector` draws `Generator.beta(alphas, betas)` over the whole pool with
`default_rng(seed + step)`, scores `-|target - p|`, and takes the top k; its
`InterpolationBetaPREstimator` updates every task with the vectorized rule of BOTS-ALGORITHM.md §3-4.
This file times that step (update + sample + select) and checks, on a one-skill Rasch world (the
crate's simulator world before its skill worlds), that it selects informative tasks (ETR).

usage: numpy_bots.py --tasks N --batch K --steps S [--json]      time full steps
       numpy_bots.py --etr [--tasks N --steps S]                  ETR on the synthetic world
"""
import argparse
import json
import os
import platform
import time

import numpy as np


class InterpolationBetaPREstimator:
    """BOTS-ALGORITHM.md §3-4, vectorized over the pool as in Trinity-RFT."""

    def __init__(self, features, m=16, lamb=0.1, rho=0.1, gamma=0.9, alpha0=1.0, beta0=1.0):
        self.f_w = features[:, 0].astype(np.float32)
        self.f_s = features[:, 1].astype(np.float32)
        n = len(self.f_w)
        self.alphas = np.full(n, alpha0, dtype=np.float32)
        self.betas = np.full(n, beta0, dtype=np.float32)
        self.alpha0, self.beta0 = alpha0, beta0
        self.m, self.lamb, self.rho, self.gamma = m, lamb, rho, gamma
        self.mu = None

    def update(self, ref_indices, ref_pass_rates):
        r = np.asarray(ref_pass_rates, dtype=np.float32)
        mu_est = (r.mean() - self.f_w[ref_indices].mean()) / (
            self.f_s[ref_indices].mean() - self.f_w[ref_indices].mean() + 1e-6)
        self.mu = mu_est if self.mu is None else self.gamma * self.mu + (1 - self.gamma) * mu_est
        p = np.clip(self.f_w + self.mu * (self.f_s - self.f_w), 0.0, 1.0)
        p[ref_indices] = r
        s_bar = np.zeros_like(self.alphas)
        f_bar = np.zeros_like(self.betas)
        s_bar[ref_indices] = self.m * r
        f_bar[ref_indices] = self.m * (1 - r)
        self.alphas = (1 - self.lamb) * self.alphas + self.lamb * self.alpha0 + (1 - self.rho) * s_bar + self.rho * self.m * p
        self.betas = (1 - self.lamb) * self.betas + self.lamb * self.beta0 + (1 - self.rho) * f_bar + self.rho * self.m * (1 - p)

    def predict_pr(self, rng, do_sample=True):
        if do_sample:
            return rng.beta(self.alphas, self.betas)
        return self.alphas / (self.alphas + self.betas)


class DifficultyBasedSelector:
    def __init__(self, estimator, seed=42, target_reward=0.5):
        self.est, self.seed, self.target = estimator, seed, target_reward
        self.current_index = 0

    def get_indices(self, batch_size):
        rng = np.random.default_rng(self.seed + self.current_index)
        p = self.est.predict_pr(rng)
        scores = -np.abs(self.target - p)
        top = np.argpartition(-scores, batch_size - 1)[:batch_size]
        return top[np.argsort(-scores[top], kind="stable")]

    def feedback(self, indices, pass_rates):
        self.est.update(indices, pass_rates)
        self.current_index += 1


def time_steps(n, k, steps, warmup=3):
    rng = np.random.default_rng(0)
    feats = rng.integers(0, 17, size=(n, 2)).astype(np.float32) / 16
    feats.sort(axis=1)
    sel = DifficultyBasedSelector(InterpolationBetaPREstimator(feats))
    outcomes = rng.integers(0, 17, size=k).astype(np.float32) / 16
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        idx = sel.get_indices(k)
        sel.feedback(idx, outcomes)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def etr_on_world(n, steps, batch=32, m=16, seed=42):
    """A one-skill Rasch world (the crate's simulator world before its skill worlds of src/sim/world.rs),
    drawn with numpy's generator: a sanity check that this peer selects informative tasks, not a
    reproduction of `bots simulate`'s numbers."""
    rng = np.random.default_rng(seed)
    d = rng.normal(0.0, 6.0, n)
    sig = lambda x: 1 / (1 + np.exp(-x))
    weak = rng.binomial(16, sig(-1.0 - d)) / 16
    strong = rng.binomial(16, sig(2.0 - d)) / 16
    sel = DifficultyBasedSelector(InterpolationBetaPREstimator(np.stack([weak, strong], 1)), seed=seed)
    theta, informative = 0.0, 0
    for _ in range(steps):
        idx = sel.get_indices(batch)
        s = rng.binomial(m, sig(theta - d[idx]))
        share = np.mean((s > 0) & (s < m))
        informative += share
        theta += 0.005 * share
        sel.feedback(idx, s / m)
    return informative / steps, theta


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--etr", action="store_true")
    a = ap.parse_args()
    if a.etr:
        etr, theta = etr_on_world(a.tasks, a.steps)
        print(json.dumps({"peer": "numpy", "tasks": a.tasks, "steps": a.steps, "etr": etr, "final_ability": theta}))
        return
    ms = time_steps(a.tasks, a.batch, a.steps)
    row = {"backend": "numpy", "device": platform.processor() or platform.machine(), "threads": os.cpu_count(),
           "tasks": a.tasks, "batch": a.batch, "ms_per_step": ms, "numpy": np.__version__}
    print(json.dumps(row) if a.json else f"numpy: {ms:.2f} ms per step at N={a.tasks}, k={a.batch}")


if __name__ == "__main__":
    main()
