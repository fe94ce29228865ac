#!/usr/bin/env bash
# Benchmarks on the GPU machine, run by .device/run.sh after the GPU test suite (see DEVELOPERS.md and
# ../shared/device/stage.sh). Writes bench.json (a list of rows) and bench.md (a table) to $1.
# Budget: well under 8 minutes in all; every command has its own timeout.
set -uo pipefail
out=${1:?usage: device-extra.sh OUTPUT_FOLDER}
mkdir -p "$out"
bots=.device/bin/bin-bots
rows=$out/bench.jsonl
: > "$rows"
run() { # timeout-seconds command...: appends the command's JSON lines to $rows
  local t=$1; shift
  echo "== $*" >&2
  timeout "$t" "$@" 2>>"$out/bench.stderr" | grep '^{' | tee -a "$rows" || echo "!! failed or timed out: $*" >&2
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv >&2

# Ours: full steps, then the copy-bandwidth yardstick if `bots bench` has one.
for n in 1000000 10000000 100000000 1000000000; do
  for k in 32 1024 65536; do
    run 60 "$bots" bench --backend cuda --tasks $n --batch $k --steps 50 --json
  done
done
run 120 "$bots" bench --backend cpu --tasks 1000000 --batch 1024 --steps 5 --json

# Peers on the same machine.
if python3 -c 'import numpy' 2>/dev/null; then
  run 120 python3 bench/baselines/numpy_bots.py --tasks 1000000 --batch 1024 --steps 5 --json
  run 120 python3 bench/baselines/numpy_bots.py --etr --tasks 20000 --steps 300
fi
if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
  for n in 1000000 10000000 100000000; do
    run 60 python3 bench/baselines/torch_bots.py --tasks $n --batch 1024 --steps 20 --json
  done
  run 180 python3 bench/baselines/torch_bots.py --tasks 100000000 --batch 1024 --steps 20 --compile --json
  run 120 python3 bench/baselines/torch_bots.py --etr --tasks 20000 --steps 300
fi
run 60 "$bots" simulate --tasks 20000 --steps 300 --selectors random,bots --backend cuda --json

# Criterion, CUDA rows only (the CPU rows are re-run on developer machines).
if [[ -x .device/bin/bench-step ]]; then
  echo "== criterion" >&2
  BOTS_BENCH_MAX_N=100000000 timeout 240 .device/bin/bench-step --bench cuda >"$out/criterion.txt" 2>&1 || echo "!! criterion failed or timed out" >&2
fi

python3 - "$rows" "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
json.dump(rows, open(f"{sys.argv[2]}/bench.json", "w"), indent=1)
with open(f"{sys.argv[2]}/bench.md", "w") as md:
    md.write("| backend | device | tasks | batch | ms/step | GB/s |\n|---|---|---|---|---|---|\n")
    for r in rows:
        if "ms_per_step" in r:
            md.write(f"| {r.get('backend')} | {r.get('device')} | {r.get('tasks')} | {r.get('batch')} | "
                     f"{r['ms_per_step']:.4g} | {r.get('gbps', '')} |\n")
    for r in rows:
        if "etr" in r or "selectors" in r:
            md.write(f"\n`{json.dumps(r)}`\n")
PY
cat "$out/bench.md"
