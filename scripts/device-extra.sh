#!/usr/bin/env bash
# Benchmarks on the GPU machine, run by .device/run.sh after the GPU test suite (see DEVELOPERS.md and
# ../shared/device/stage.sh). Writes bench.json (a list of rows) and bench.md (a table) to $1.
#
# Budget: the whole script stops starting new rows after $BOTS_EXTRA_BUDGET seconds (default 300), and
# every row has its own timeout, clipped to what is left; rows are ordered by importance, so a tight
# run loses the peers and criterion first. Sizes: a 10^9-task pool needs ~14.2 GB on the GPU (alpha,
# beta 8 GB, f16 features 4 GB, the 2-byte digit cache 2 GB, a 125 MB duplicate bitmap, 16 MB of
# candidates) and ~13 GB of host memory while it is built; its setup (features, upload) takes ~10-20 s.
set -uo pipefail
out=${1:?usage: device-extra.sh OUTPUT_FOLDER}
mkdir -p "$out"
bots=.device/bin/bin-bots
rows=$out/bench.jsonl
: > "$rows"
deadline=$((SECONDS + ${BOTS_EXTRA_BUDGET:-300}))
run() { # timeout-seconds command...: appends the command's JSON lines to $rows
  local t=$1; shift
  local left=$((deadline - SECONDS))
  if (( left < 15 )); then echo "!! skipped (budget spent): $*" >&2; return; fi
  (( t > left )) && t=$left
  echo "== [$SECONDS s] $*" >&2
  timeout "$t" "$@" 2>>"$out/bench.stderr" | grep '^{' | tee -a "$rows" || echo "!! failed or timed out (${t} s): $*" >&2
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv >&2

# Ours, host verbs (select + update, a copy and a synchronization every step).
for n in 1000000 10000000 100000000; do
  for k in 32 1024 65536; do
    run 60 "$bots" bench --backend cuda --tasks $n --batch $k --steps 50 --json
  done
done
for k in 1024 65536; do
  run 90 "$bots" bench --backend cuda --tasks 1000000000 --batch $k --steps 20 --warmup 2 --json
done
# Ours, device-resident trainer verbs (no host round trip inside the timed steps).
run 60 "$bots" bench --backend cuda --device-verbs --tasks 100000000 --batch 1024 --steps 50 --json
run 90 "$bots" bench --backend cuda --device-verbs --tasks 1000000000 --batch 1024 --steps 20 --warmup 2 --json
run 60 "$bots" bench --backend cpu --tasks 1000000 --batch 1024 --steps 5 --json

# Peers on the same machine.
torch_ok=0
python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null && torch_ok=1
if (( torch_ok )); then
  for n in 1000000 10000000 100000000; do
    run 60 python3 bench/baselines/torch_bots.py --tasks $n --batch 1024 --steps 20 --json
  done
fi
if python3 -c 'import numpy' 2>/dev/null; then
  run 60 python3 bench/baselines/numpy_bots.py --tasks 1000000 --batch 1024 --steps 5 --json
  run 60 python3 bench/baselines/numpy_bots.py --etr --tasks 20000 --steps 300
fi
run 60 "$bots" simulate --world informative --tasks 20000 --steps 300 --selectors random,bots --backend cuda --json
if (( torch_ok )); then
  run 60 python3 bench/baselines/torch_bots.py --etr --tasks 20000 --steps 300
  run 120 python3 bench/baselines/torch_bots.py --tasks 100000000 --batch 1024 --steps 20 --compile --json
fi

# Criterion, CUDA rows only, up to 10^7 (the CPU rows are re-run on developer machines), if time is left.
left=$((deadline - SECONDS))
if [[ -x .device/bin/test-bench-step ]] && (( left >= 60 )); then
  echo "== [$SECONDS s] criterion (${left} s left)" >&2
  BOTS_BENCH_MAX_N=10000000 timeout "$left" .device/bin/test-bench-step --bench cuda >"$out/criterion.txt" 2>&1 || echo "!! criterion failed or timed out" >&2
fi

python3 - "$rows" "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
json.dump(rows, open(f"{sys.argv[2]}/bench.json", "w"), indent=1)
with open(f"{sys.argv[2]}/bench.md", "w") as md:
    md.write("| backend | device | verbs | tasks | batch | ms/step | GB/s | setup s |\n|---|---|---|---|---|---|---|---|\n")
    for r in rows:
        if "ms_per_step" in r:
            md.write(f"| {r.get('backend')} | {r.get('device')} | {r.get('verbs', '')} | {r.get('tasks')} | {r.get('batch')} | "
                     f"{r['ms_per_step']:.4g} | {r.get('gbps', '')} | {r.get('setup_s', '')} |\n")
    for r in rows:
        if "etr" in r or "selectors" in r:
            md.write(f"\n`{json.dumps(r)}`\n")
PY
cat "$out/bench.md"
echo "== device-extra.sh done after $SECONDS s" >&2
