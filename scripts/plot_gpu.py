#!/usr/bin/env python3
"""Plot a device run's step times (bench.json from scripts/device-extra.sh) as an SVG, stdlib only.

usage: python3 scripts/plot_gpu.py bench/results/<run>/bench.json docs/gpu-<run>.svg

One line per kind of row (bots step with device verbs / host verbs / CUDA graph, at k = 1024 and
65 536; the copy yardstick; PyTorch eager and compiled), ms per step against tasks, both axes log10.
"""
import json
import math
import sys


def series_of(rows):
    series = {}
    for r in rows:
        b, verbs, k = r["backend"], r.get("verbs", ""), r["batch"]
        if b == "cuda":
            name = f"bots, {verbs} verbs, k = {k}" if verbs != "graph" else f"bots, CUDA graph, k = {k}"
        elif b == "cuda-copy":
            name = "copy yardstick (same bytes)"
        elif b in ("torch", "torch-compile"):
            name = "PyTorch eager, k = 1024" if b == "torch" else "PyTorch torch.compile, k = 1024"
        else:
            name = f"{b}, {verbs}, k = {k}"
        mode = r.get("kernel_mode")
        if mode and mode != "exact":
            name += f" ({mode})"
        series.setdefault(name, []).append((r["tasks"], r["ms_per_step"]))
    return {k: sorted(v) for k, v in series.items()}


def main(src, dst):
    rows = json.load(open(src))
    series = series_of(rows)
    device = next((r["device"] for r in rows if r.get("device")), "GPU")
    xs = [x for s in series.values() for x, _ in s]
    ys = [y for s in series.values() for _, y in s]
    x0, x1 = math.floor(math.log10(min(xs))), math.ceil(math.log10(max(xs)))
    y0, y1 = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
    w, h, left, right, top, bottom = 900, 560, 80, 330, 40, 60
    pw, ph = w - left - right, h - top - bottom

    def px(x):
        return left + (math.log10(x) - x0) / (x1 - x0) * pw

    def py(y):
        return top + ph - (math.log10(y) - y0) / (y1 - y0) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{left}" y="22" font-size="14">One step (update + sample + select) on {device}: ms per step</text>']
    for e in range(x0, x1 + 1):
        out.append(f'<line x1="{px(10**e):.1f}" y1="{top}" x2="{px(10**e):.1f}" y2="{top + ph}" stroke="#ddd"/>')
        out.append(f'<text x="{px(10**e):.1f}" y="{top + ph + 18}" text-anchor="middle">1e{e}</text>')
    for e in range(y0, y1 + 1):
        out.append(f'<line x1="{left}" y1="{py(10**e):.1f}" x2="{left + pw}" y2="{py(10**e):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 8}" y="{py(10**e) + 4:.1f}" text-anchor="end">{10**e:g}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{h - 15}" text-anchor="middle">tasks in the pool</text>')
    out.append(f'<text x="18" y="{top + ph / 2}" transform="rotate(-90 18 {top + ph / 2})" text-anchor="middle">ms per step</text>')
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf", "#bcbd22"]
    for i, (name, pts) in enumerate(sorted(series.items())):
        c = colors[i % len(colors)]
        path = " ".join(f"{'M' if j == 0 else 'L'}{px(x):.1f},{py(y):.1f}" for j, (x, y) in enumerate(pts))
        dash = ' stroke-dasharray="6,4"' if "copy" in name or "PyTorch" in name else ""
        out.append(f'<path d="{path}" fill="none" stroke="{c}" stroke-width="2"{dash}/>')
        for x, y in pts:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{c}"/>')
        ly = top + 10 + 20 * i
        out.append(f'<line x1="{left + pw + 15}" y1="{ly}" x2="{left + pw + 40}" y2="{ly}" stroke="{c}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{left + pw + 46}" y="{ly + 4}">{name}</text>')
    out.append("</svg>")
    open(dst, "w").write("\n".join(out) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
