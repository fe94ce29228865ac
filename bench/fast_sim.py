#!/usr/bin/env python3
"""KernelMode::Fast against the exact kernels where it matters: the simulator's training outcomes.

Issue 23 asks the fast draws to keep "the simulator's TTB within its seed spread". This runs
`bots simulate --backend cuda` twice per world and seed, with `kernel_mode: exact` and `kernel_mode: fast`,
and compares TTB, final held-out accuracy and ETR of the `bots` selector, paired by seed (the same world,
outcomes and seed: only the kernels' draws differ). Without a GPU it runs on the emulated driver, which
executes the real kernels (fast entries included) on the CPU:

    bash scripts/emu-driver/test.sh            # builds target/emu-driver/libcuda.so (or scripts/emu-driver/build.sh)
    cargo build --bin bots
    LD_LIBRARY_PATH=$PWD/target/emu-driver python3 bench/fast_sim.py target/debug/bots > out.md

It also runs seed 42 of each world on the CPU backend once and requires the emulated CUDA exact run to give
the same numbers (the exact kernels are the CPU's bits). Prints a markdown table; exit 1 when the CPU check
fails or a fast mean leaves the band (|fast - exact| paired mean more than 3 of its standard errors and more
than the exact runs' seed sd).
"""
import json
import math
import os
import subprocess
import sys
import tempfile

WORLDS = os.environ.get("FAST_SIM_WORLDS", "informative,misleading,small-pool").split(",")
SEEDS = [int(s) for s in os.environ.get("FAST_SIM_SEEDS", "42,43,44,45,46").split(",")]
METRICS = [("ttb", "TTB"), ("final_accuracy", "held-out"), ("etr", "ETR")]


def run(bots, world, seed, backend, mode):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(f"kernel_mode: {mode}\n")
        cfg = f.name
    try:
        out = subprocess.run([bots, "simulate", "--world", world, "--selectors", "random,bots", "--seed", str(seed),
                              "--backend", backend, "--config", cfg, "--json"], check=True, capture_output=True,
                             text=True).stdout
    finally:
        os.unlink(cfg)
    w = json.loads(out)["worlds"][0]
    return {s["name"]: s for s in w["selectors"]}["bots"]


def stats(xs):
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, sd


def main():
    bots = sys.argv[1] if len(sys.argv) > 1 else "target/debug/bots"
    ok = True
    print(f"worlds {', '.join(WORLDS)}; seeds {', '.join(map(str, SEEDS))}; selector `bots` (TTB relative to `random`)\n")
    print("| world | metric | exact mean ± sd | fast mean ± sd | fast - exact (paired mean ± se) | within |")
    print("|---|---|---|---|---|---|")
    raw = []
    for world in WORLDS:
        ex = {s: run(bots, world, s, "cuda", "exact") for s in SEEDS}
        fa = {s: run(bots, world, s, "cuda", "fast") for s in SEEDS}
        cpu = run(bots, world, SEEDS[0], "cpu", "exact")
        same = all(cpu[k] == ex[SEEDS[0]][k] for k, _ in METRICS)
        if not same:
            ok = False
            print(f"| {world} | CPU check | cpu {[cpu[k] for k, _ in METRICS]} != cuda exact "
                  f"{[ex[SEEDS[0]][k] for k, _ in METRICS]} | | | NO |")
        for key, label in METRICS:
            e = [ex[s][key] for s in SEEDS]
            f = [fa[s][key] for s in SEEDS]
            raw.append(f"{world} {label}: exact {e}; fast {f}")
            if any(v is None for v in e + f):
                print(f"| {world} | {label} | {e} | {f} | (a run never reached it) | - |")
                continue
            (me, se_), (mf, sf) = stats(e), stats(f)
            d = [b - a for a, b in zip(e, f)]
            md, sdd = stats(d)
            sem = sdd / math.sqrt(len(d))
            within = abs(md) <= max(3 * sem, se_)
            ok &= within
            print(f"| {world} | {label} | {me:.4f} ± {se_:.4f} | {mf:.4f} ± {sf:.4f} | {md:+.4f} ± {sem:.4f} | "
                  f"{'yes' if within else 'NO'} |")
        print(f"| {world} | CPU = emulated CUDA, exact, seed {SEEDS[0]} | {'identical' if same else 'DIFFERENT'} | | | "
              f"{'yes' if same else 'NO'} |")
        sys.stdout.flush()
    print("\nPer seed (in the order above):\n")
    for line in raw:
        print(f"- {line}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
