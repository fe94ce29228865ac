#!/usr/bin/env python3
"""The BOTS step in PyTorch on the GPU, as a strong user would write it: the posterior resident on
the device, `torch._standard_gamma` for the Beta sample (what `torch.distributions.Beta` calls),
`torch.topk`, an in-place update; and the same step under `torch.compile`.

It times update + sample + select per step (CUDA events, after a warm-up) and checks that it selects
informative tasks: its ETR on the one-skill Rasch world of numpy_bots.py.

usage: torch_bots.py --tasks N --batch K --steps S [--compile] [--json]
       torch_bots.py --etr [--tasks N --steps S]
"""
import argparse
import json

import torch


class TorchBots:
    def __init__(self, f_w, f_s, m=16, lamb=0.1, rho=0.1, gamma=0.9, target=0.5, seed=42):
        self.f_w, self.f_s = f_w, f_s
        n = f_w.numel()
        dev = f_w.device
        self.alpha = torch.ones(n, device=dev)
        self.beta = torch.ones(n, device=dev)
        self.s_bar = torch.zeros(n, device=dev)
        self.f_bar = torch.zeros(n, device=dev)
        self.m, self.lamb, self.rho, self.gamma, self.target = m, lamb, rho, gamma, target
        self.mu = None
        self.gen = torch.Generator(device=dev)
        self.gen.manual_seed(seed)

    def select(self, k):
        # Beta(a, b) = Ga / (Ga + Gb); torch._standard_gamma takes no generator, so seed globally.
        ga = torch._standard_gamma(self.alpha)
        gb = torch._standard_gamma(self.beta)
        p = ga / (ga + gb)
        scores = -(self.target - p).abs()
        return torch.topk(scores, k, sorted=True).indices

    def update(self, idx, r):
        fw, fs = self.f_w[idx], self.f_s[idx]
        mu_est = (r.mean() - fw.mean()) / (fs.mean() - fw.mean() + 1e-6)
        self.mu = mu_est if self.mu is None else self.gamma * self.mu + (1 - self.gamma) * mu_est
        p = torch.clamp(self.f_w + self.mu * (self.f_s - self.f_w), 0.0, 1.0)
        p[idx] = r
        self.s_bar.zero_()
        self.f_bar.zero_()
        self.s_bar[idx] = self.m * r
        self.f_bar[idx] = self.m * (1 - r)
        keep, rm = 1 - self.lamb, self.rho * self.m
        self.alpha.mul_(keep).add_(self.lamb).add_(self.s_bar, alpha=1 - self.rho).add_(p, alpha=rm)
        self.beta.mul_(keep).add_(self.lamb).add_(self.f_bar, alpha=1 - self.rho).add_(1 - p, alpha=rm)


def time_steps(n, k, steps, compile_=False, warmup=5):
    dev = "cuda"
    torch.manual_seed(0)
    f = torch.randint(0, 17, (2, n), device=dev).float().div_(16).sort(dim=0).values
    b = TorchBots(f[0].contiguous(), f[1].contiguous())
    r = torch.randint(0, 17, (k,), device=dev).float().div_(16)
    step = lambda idx: (b.update(idx, r), b.select(k))[1]
    if compile_:
        step = torch.compile(step)
    idx = b.select(k)
    for _ in range(warmup):
        idx = step(idx)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(steps):
        idx = step(idx)
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / steps


def etr_on_world(n, steps, batch=32, m=16, seed=42):
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator(device="cpu").manual_seed(seed)
    d = torch.randn(n, generator=g) * 6.0
    sig = torch.sigmoid
    weak = torch.binomial(torch.full((n,), 16.0), sig(-1.0 - d), generator=g) / 16
    strong = torch.binomial(torch.full((n,), 16.0), sig(2.0 - d), generator=g) / 16
    torch.manual_seed(seed)
    b = TorchBots(weak.to(dev), strong.to(dev), seed=seed)
    theta, total = 0.0, 0.0
    for _ in range(steps):
        idx = b.select(batch)
        p = sig(theta - d[idx.cpu()])
        s = torch.binomial(torch.full((batch,), float(m)), p, generator=g)
        share = ((s > 0) & (s < m)).float().mean().item()
        total += share
        theta += 0.005 * share
        b.update(idx, (s / m).to(dev))
    return total / steps, theta


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=100_000_000)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--etr", action="store_true")
    a = ap.parse_args()
    if a.etr:
        etr, theta = etr_on_world(a.tasks, a.steps)
        print(json.dumps({"peer": "torch", "tasks": a.tasks, "steps": a.steps, "etr": etr, "final_ability": theta}))
        return
    ms = time_steps(a.tasks, a.batch, a.steps, a.compile)
    row = {"backend": "torch-compile" if a.compile else "torch", "device": torch.cuda.get_device_name(),
           "tasks": a.tasks, "batch": a.batch, "ms_per_step": ms, "torch": torch.__version__}
    print(json.dumps(row) if a.json else f"{row['backend']}: {ms:.3f} ms per step at N={a.tasks}, k={a.batch}")


if __name__ == "__main__":
    main()
