"""`bots replay` against Trinity-RFT's own DifficultyBasedSelector.feedback ->
InterpolationBetaPREstimator.update (trinity-rft 0.6.0), per task, on pools with non-dyadic reference
pass rates (k/10, k/8, k/16, 0, 1, and a few with no short binary form at all), with pass-rate-form and
count-form logs, over configs that include adaptive rho firing, rho 0 and 1, and lamb/m away from the
defaults. Fails (exit 1) on any task whose alpha or beta differs by more than 1e-4 relative, or on a
rho that differs; also checks that a pool with a missing feature value is refused.

usage: python compare_replay.py BOTS_BINARY [WORKDIR]   (run it with the venv of scripts/trinity-venv.sh)
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trinity_ref import data_source, import_trinity, selector_config  # noqa: E402

DifficultyBasedSelector, _ = import_trinity()

REL_TOL = 1e-4
KEYS = ["weak_pass_rate", "strong_pass_rate"]
N = 400
STEPS = 40
BATCH = 16


def make_pool(rng):
    """Weak/strong reference pass rates: mostly multiples of 1/10 and 1/8 (not exact in f16), some of
    1/16, exact 0s and 1s, and a few values with no short binary form (1/3, 0.123...)."""
    grids = [10, 8, 10, 16, 5, 3]
    weak, strong = [], []
    for k in range(N):
        g = grids[k % len(grids)]
        w = rng.integers(0, g + 1) / g
        s = min(1.0, w + rng.integers(0, g + 1) / g)
        if k % 37 == 0:
            w, s = 0.0, 1.0
        if k % 41 == 1:
            w, s = 0.0, 0.0
        if k % 43 == 2:
            w, s = 1.0, 1.0
        if k % 53 == 3:
            w, s = float(rng.random() * 0.5), float(0.5 + rng.random() * 0.5)
        weak.append(float(w))
        strong.append(float(s))
    return weak, strong


def make_log(rng, m, counts, truth):
    """STEPS steps of BATCH distinct tasks each; outcomes are binomial(m, truth[k]). Returns the
    JSONL lines for bots and the (indices, pass rates) steps for Trinity (count form: s / m with
    s + f = m, the pass rate Trinity's feedback takes)."""
    lines, steps = [], []
    for t in range(STEPS):
        tasks = rng.choice(N, BATCH, replace=False).tolist()
        succ = [int(rng.binomial(m, truth[k])) for k in tasks]
        if counts:
            lines.append({"step": t, "tasks": tasks, "successes": succ, "failures": [m - s for s in succ]})
        else:
            lines.append({"step": t, "tasks": tasks, "pass_rates": [s / m for s in succ]})
        steps.append((tasks, [s / m for s in succ]))
    return lines, steps


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def run_bots(bots, workdir, pool, log, kwargs, name):
    cfg = os.path.join(workdir, f"{name}.json")
    # Trinity's own task_selector block, pasted as it is.
    with open(cfg, "w") as f:
        json.dump({"task_selector": {"selector_type": "difficulty_based", "feature_keys": KEYS, "kwargs": kwargs}}, f)
    out = os.path.join(workdir, f"{name}.post.jsonl")
    proc = subprocess.run([bots, "replay", "--pool", pool, "--log", log, "--config", cfg, "--out", out],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name}: bots replay failed:\n{proc.stderr}")
    alpha, beta, glob = np.zeros(N), np.zeros(N), None
    with open(out) as f:
        for line in f:
            row = json.loads(line)
            if "task" in row:
                alpha[row["task"]], beta[row["task"]] = row["alpha"], row["beta"]
            else:
                glob = row
    return alpha, beta, glob


def run_trinity(weak, strong, steps, kwargs):
    sel = DifficultyBasedSelector(data_source({KEYS[0]: weak, KEYS[1]: strong}), selector_config(KEYS, kwargs, seed=42))
    for tasks, rates in steps:
        sel.feedback(tasks, rates)
    est = sel.diff_estimator
    return est.alphas, est.betas, est.rho, est.cap_coef


def rel_err(got, want):
    return np.abs(got - want) / np.abs(want)


def main():
    bots = os.path.abspath(sys.argv[1])
    workdir = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="bots-trinity-")
    rng = np.random.default_rng(20251126)
    weak, strong = make_pool(rng)
    pool = os.path.join(workdir, "pool.jsonl")
    write_jsonl(pool, [{"id": k, KEYS[0]: weak[k], KEYS[1]: strong[k]} for k in range(N)])
    non_dyadic = sum(1 for v in weak + strong if v * 1024 != int(v * 1024))
    assert non_dyadic > N // 2, non_dyadic

    # The task's true pass rate sits between the references (mu = 0.6), and, for the miss config,
    # nowhere near them (1 - the interpolation), so adaptive rho must fire.
    near = [w + 0.6 * (s - w) for w, s in zip(weak, strong)]
    far = [1.0 - p for p in near]
    configs = [
        ("bots-yaml", {"m": 16, "lamb": 0.1, "rho": 0.1, "adaptive_rho": False}, near),
        ("trinity-code-defaults", {"m": 16, "lamb": 0.2, "rho": 0.2, "adaptive_rho": False}, near),
        # Every kwarg left out: both sides must fall back to Trinity's code defaults (m 16, lamb 0.2, rho 0.2).
        ("empty-kwargs", {}, near),
        ("m10-lamb0.3-rho0.5", {"m": 10, "lamb": 0.3, "rho": 0.5, "adaptive_rho": False}, near),
        ("rho0", {"m": 8, "lamb": 0.15, "rho": 0.0, "adaptive_rho": False}, near),
        ("rho1", {"m": 12, "lamb": 0.05, "rho": 1.0, "adaptive_rho": False}, near),
        ("adaptive-fires", {"m": 10, "lamb": 0.1, "rho": 0.8, "adaptive_rho": True}, far),
        ("adaptive-quiet", {"m": 16, "lamb": 0.1, "rho": 0.4, "adaptive_rho": True}, near),
    ]
    worst, failed = 0.0, []
    for i, (name, kwargs, truth) in enumerate(configs):
        for counts in (False, True):
            form = "counts" if counts else "rates"
            tag = f"{name}/{form}"
            lines, steps = make_log(np.random.default_rng([i, int(counts)]), kwargs.get("m", 16), counts, truth)
            log = os.path.join(workdir, f"{name}.{form}.log.jsonl")
            write_jsonl(log, lines)
            a_b, b_b, g_b = run_bots(bots, workdir, pool, log, kwargs, f"{name}.{form}")
            a_t, b_t, rho_t, mu_t = run_trinity(weak, strong, steps, kwargs)
            ea, eb = rel_err(a_b, a_t), rel_err(b_b, b_t)
            k = int(np.argmax(np.maximum(ea, eb)))
            e = float(max(ea[k], eb[k]))
            worst = max(worst, e)
            bad = int(np.sum((ea > REL_TOL) | (eb > REL_TOL)))
            rho_ok = abs(g_b["rho"] - rho_t) <= 1e-7 * max(rho_t, 1e-30) or g_b["rho"] == rho_t
            mu_ok = abs(g_b["mu"] - mu_t) <= REL_TOL * max(1.0, abs(mu_t))
            print(f"{tag:34s} max rel err {e:.2e} (task {k}: alpha {a_b[k]:.6g} vs {a_t[k]:.6g}, beta {b_b[k]:.6g} vs "
                  f"{b_t[k]:.6g}); tasks over {REL_TOL:g}: {bad}; rho {g_b['rho']:g} vs {rho_t:g}; mu {g_b['mu']:.6g} vs {mu_t:.6g}")
            if bad or not rho_ok or not mu_ok:
                failed.append(tag)
            if name == "adaptive-fires" and not (rho_t < kwargs["rho"] / 2 * 1.0000001 and g_b["rho"] < kwargs["rho"] / 2 * 1.0000001):
                failed.append(f"{tag}: adaptive rho did not fire (rho {g_b['rho']} / {rho_t}, started {kwargs['rho']})")
            if name == "adaptive-quiet" and rho_t != kwargs["rho"]:
                failed.append(f"{tag}: adaptive rho fired where it should not")

    # A missing feature value: Trinity would carry a None into its float math; bots refuses the pool.
    holey = os.path.join(workdir, "holey.jsonl")
    rows = [{"id": k, KEYS[0]: weak[k], KEYS[1]: strong[k]} for k in range(N)]
    rows[7][KEYS[0]] = None
    write_jsonl(holey, rows)
    proc = subprocess.run([bots, "replay", "--pool", holey, "--log", os.path.join(workdir, "bots-yaml.rates.log.jsonl"),
                           "--features", ",".join(KEYS), "--out", os.path.join(workdir, "holey.post.jsonl")],
                          capture_output=True, text=True)
    if proc.returncode == 0 or "missing value" not in proc.stderr or ":8" not in proc.stderr:
        failed.append(f"a pool with a missing feature value was not refused by row: {proc.stderr.strip()}")
    else:
        print("missing feature value: refused, naming the row")

    print(f"worst relative error over all tasks and configs: {worst:.3e} (tolerance {REL_TOL:g})")
    if failed:
        print("FAILED: " + "; ".join(failed))
        sys.exit(1)
    print("OK: bots replay agrees with Trinity-RFT 0.6.0 on every task")


if __name__ == "__main__":
    main()
