#!/usr/bin/env bash
# Sanitizers, benchmarks and the candle binaries on the GPU machine, run by .device/run.sh after the test
# suite (see docs/BENCHMARKS.md, GPU; ../shared/device/stage.sh and scripts/stage-candle.sh). Writes to $1:
# bench.jsonl / bench.json / bench.md (the timing rows), sanitizer-*.log, candle-*.log, libs.txt (which
# CUDA libraries the candle binaries found), criterion.txt, and steps.tsv (every step: rc, seconds).
#
# Time: every step is clipped to run.sh's deadline ($DEVICE_DEADLINE_EPOCH; without it, now +
# $BOTS_EXTRA_BUDGET, default 300 s) less the time reserved for the later sections, so one slow step
# cannot starve the rest. Sections in order of value, with their H100 estimates (planned for ~300 s):
#   a. compute-sanitizer: memcheck on the GPU tests' error-path, restore and graph tests and on small
#      benches (one with k above one block: the multi-launch sort), racecheck and synccheck on a
#      2048-key bench, initcheck (~90 s; each run pays the tool's start and a PTX JIT of a few s);
#   b. timing rows: step at 10^8 and 10^9 with k = 1024 (device verbs, graph replay, host verbs), the
#      copy yardstick at the same bytes, the PyTorch peer eager and compiled at 10^8, then
#      ncu over one step at 10^8 (ncu.log: the profile a figure that falls short needs), then the rest of
#      the grid (10^6..10^9 x k 1024, 65536, both verb kinds; 10^9 rows pay ~15 s of setup each) (~150 s);
#   c. the candle binaries (issue 12): library resolver, candle-gpu-test, the GRPO example at a small
#      size on the GPU (~40 s);
#   d. criterion's CUDA rows, with whatever is left.
# A 10^9-task pool needs ~14.2 GB on the GPU (alpha, beta 8 GB, f16 features 4 GB, the digit cache
# 2 GB, a 125 MB duplicate bitmap, 16 MB of candidates) and ~13 GB of host memory while it is built.
#
# Dry run here, on the emulated driver (tiny sizes, sanitizers and peers skipped where absent):
#   bash scripts/emu-driver/build.sh && BOTS_DEVICE_DRY=1 BOTS_DEVICE_BIN=target/release \
#     LD_LIBRARY_PATH=target/emu-driver bash scripts/device-extra.sh /tmp/extra-dry
set -uo pipefail
out=${1:?usage: device-extra.sh OUTPUT_FOLDER}
mkdir -p "$out"
dry=${BOTS_DEVICE_DRY:-0}
bin=${BOTS_DEVICE_BIN:-.device/bin}
bots=$bin/bin-bots
[[ -x $bots ]] || bots=$bin/bots
san=${COMPUTE_SANITIZER:-}
deadline=${DEVICE_DEADLINE_EPOCH:-$(( $(date +%s) + ${BOTS_EXTRA_BUDGET:-300} ))}
rows=$out/bench.jsonl
: >"$rows"
printf 'step\trc\tseconds\tlimit\n' >"$out/steps.tsv"
keep=0 # seconds reserved for the sections after the current one
left() { echo $(( deadline - $(date +%s) - keep )); }

# step NAME LIMIT LOG COMMAND...: runs COMMAND with its output in LOG, clipped to the time left.
step() {
  local name=$1 t=$2 log=$3 l; shift 3
  l=$(left)
  if (( l < 8 )); then echo "!! $name skipped: budget spent" >&2; printf '%s\tskipped\t0\t0\n' "$name" >>"$out/steps.tsv"; return 1; fi
  (( t > l )) && t=$l
  echo "== [$(( deadline - $(date +%s) )) s left] $name (limit ${t}s)" >&2
  local t0=$SECONDS rc
  timeout -k 5 "$t" "$@" >>"$log" 2>&1; rc=$?
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" "$t" >>"$out/steps.tsv"
  (( rc == 0 )) || echo "!! $name: exit $rc$( ((rc == 124)) && echo ' (timed out)') after $((SECONDS - t0)) s, see $(basename "$log")" >&2
  return $rc
}
# N and k as asked, or scaled down for the dry run (the emulated driver runs kernels on one CPU core).
n_() { if (( dry )); then local n=$(( $1 / 10000 )); echo $(( n < 3000 ? 3000 : n )); else echo "$1"; fi; }
k_() { if (( dry )); then local n; n=$(n_ "$2"); echo $(( $1 < n / 2 ? $1 : n / 2 )); else echo "$1"; fi; }
# bench NAME LIMIT N K STEPS [bots bench flags...]: one timing row.
bench() {
  local name=$1 t=$2 n k s=$5; n=$(n_ "$3"); k=$(k_ "$4" "$3"); shift 5
  (( dry )) && s=2
  step "$name" "$t" "$out/bench.stderr" "$bots" bench --backend cuda --tasks "$n" --batch "$k" --steps "$s" --warmup 2 --json "$@"
  grep -h '^{' "$out/bench.stderr" | tail -n +$(( $(wc -l <"$rows") + 1 )) >>"$rows"
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv >&2 || true
(( dry )) && echo "== dry run (BOTS_DEVICE_DRY=1): N / 10^4, 2 steps" >&2

# a. Sanitizers. The GPU tests at their quick sizes (BOTS_GPU_TEST_QUICK=1), filtered by name.
keep=170
gputest=$(ls "$bin"/test-test-gpu 2>/dev/null)
if [[ -n $san && -x $san ]]; then
  s() { local tool=$1 name=$2 t=$3; shift 3; step "$tool $name" "$t" "$out/sanitizer-$tool.log" \
    "$san" --tool "$tool" --error-exitcode 86 --print-limit 20 "$@"; }
  if [[ -n $gputest ]]; then
    for f in invalid_device_input restore_round_trips graph select_is_idempotent multi_launch_bitonic_sort; do
      BOTS_GPU_TEST_QUICK=1 s memcheck "gpu test $f" 40 "$gputest" "$f" --test-threads 1
    done
  fi
  small=(bench --backend cuda --tasks "$(n_ 100000)" --steps 3 --warmup 1)
  s memcheck "bench k 32" 25 "$bots" "${small[@]}" --batch 32
  s memcheck "bench k 3000 (multi-launch sort)" 25 "$bots" "${small[@]}" --batch 3000
  s memcheck "bench device verbs graph k 3000" 25 "$bots" "${small[@]}" --batch 3000 --device-verbs --graph
  s racecheck "bench k 2048" 40 "$bots" "${small[@]}" --batch 2048 --steps 2
  s synccheck "bench k 2048" 30 "$bots" "${small[@]}" --batch 2048 --steps 2
  s initcheck "bench k 2048" 30 "$bots" "${small[@]}" --batch 2048 --device-verbs
  grep -h 'ERROR SUMMARY' "$out"/sanitizer-*.log >&2
else
  echo "!! compute-sanitizer not found: sanitizers skipped" >&2
fi

# b. Timing rows, most telling first: the step at 10^8 (the 1.0 ms target) beside its yardstick and
# the PyTorch peer, then 10^9 (the 12 ms target), then the rest of the grid.
keep=45
torch_ok=0
python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null && torch_ok=1
peer() { # name limit torch_bots.py args...
  local name=$1 t=$2; shift 2
  if (( ! torch_ok )); then echo "!! $name skipped: PyTorch with CUDA not importable" >&2; return 1; fi
  step "$name" "$t" "$out/bench.stderr" python3 bench/baselines/torch_bots.py --json "$@"
  grep -h '^{' "$out/bench.stderr" | tail -n +$(( $(wc -l <"$rows") + 1 )) >>"$rows"
}
bench "step device 1e8 k 1024" 40 100000000 1024 50 --device-verbs
bench "copy yardstick 1e8" 30 100000000 1024 50 --yardstick
bench "step graph 1e8 k 1024" 40 100000000 1024 50 --device-verbs --graph
bench "step host 1e8 k 1024" 40 100000000 1024 50
peer "torch eager 1e8" 45 --tasks "$(n_ 100000000)" --batch 1024 --steps 20
bench "step device 1e9 k 1024" 60 1000000000 1024 20 --device-verbs
bench "copy yardstick 1e9" 40 1000000000 1024 20 --yardstick
peer "torch compiled 1e8" 90 --tasks "$(n_ 100000000)" --batch 1024 --steps 20 --compile
bench "step graph 1e9 k 1024" 60 1000000000 1024 20 --device-verbs --graph
bench "step host 1e9 k 1024" 60 1000000000 1024 20
# The profile a short figure needs (issue 9): every kernel of one device-verbs step at 10^8 under ncu
# (speed of light, memory workload, occupancy, launch stats, DRAM bytes and time per kernel), in ncu.log.
# Setup launches count too (--warmup 0: the pool's first step is the profiled one); 60 covers them all.
ncu_bin=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
if [[ -n $ncu_bin ]]; then
  step "ncu step 1e8 k 1024" 90 "$out/ncu.log" "$ncu_bin" --launch-count 60 \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats \
    --metrics dram__bytes_read.sum,dram__bytes_write.sum,gpu__time_duration.sum \
    "$bots" bench --backend cuda --tasks "$(n_ 100000000)" --batch 1024 --steps 1 --warmup 0 --device-verbs
else
  echo "!! ncu not found: no kernel profile" >&2
fi
for n in 1000000 10000000 100000000 1000000000; do
  st=50; (( n > 100000000 )) && st=20
  for k in 1024 65536; do
    for v in device host; do
      [[ $n -ge 100000000 && $k == 1024 ]] && continue # done above
      flags=(); [[ $v == device ]] && flags=(--device-verbs)
      bench "step $v $n k $k" 60 $n $k $st "${flags[@]}"
    done
  done
  (( n < 100000000 )) && bench "copy yardstick $n" 30 $n 1024 $st --yardstick
done
for n in 1000000 10000000; do
  peer "torch eager $n" 30 --tasks "$(n_ $n)" --batch 1024 --steps 20
  peer "torch compiled $n" 60 --tasks "$(n_ $n)" --batch 1024 --steps 20 --compile
done

# c. The candle binaries (scripts/stage-candle.sh): find the CUDA libraries they link, then run them.
keep=0
libdir=$(mktemp -d)
resolve_libs() { # writes $out/libs.txt; links found libraries into $libdir under the needed soname
  local needed=$bin/../candle-needed.txt
  [[ -f $needed ]] || needed=.device/candle-needed.txt
  local dirs=() d
  IFS=: read -ra dirs <<<"${LD_LIBRARY_PATH:-}" # first: what the caller set (the emulated driver, dry run)
  for d in /usr/local/cuda/lib64 /usr/local/cuda*/lib64 /usr/local/cuda*/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu; do
    [[ -d $d ]] && dirs+=("$d")
  done
  while IFS= read -r d; do [[ -d $d ]] && dirs+=("$d"); done < <(python3 -c '
import glob, site, os
for p in site.getsitepackages() + [site.getusersitepackages()]:
    for d in sorted(glob.glob(os.path.join(p, "nvidia", "*", "lib")) + glob.glob(os.path.join(p, "torch", "lib"))):
        print(d)' 2>/dev/null)
  {
    echo "# searched: ${dirs[*]}, then ldconfig -p; alias = another version of the library (loads only if it has every symbol used)"
    while IFS= read -r so; do
      case $so in libc.so.6|ld-linux-x86-64.so.2|libm.so.6|libdl.so.2|librt.so.1|libpthread.so.0|libgcc_s.so.1|libstdc++.so.6) echo "$so system"; continue;; esac
      local base=${so%%.so*} hit="" how=exact
      for d in "${dirs[@]}"; do [[ -e $d/$so ]] && { hit=$d/$so; break; }; done
      [[ -z $hit ]] && hit=$(ldconfig -p 2>/dev/null | awk -v s="$so" '$1 == s {print $NF; exit}')
      if [[ -z $hit ]]; then # another major version of the same library
        how=alias
        for d in "${dirs[@]}"; do hit=$(ls "$d/$base".so* 2>/dev/null | sort -V | tail -1); [[ -n $hit ]] && break; done
      fi
      if [[ -n $hit ]]; then hit=$(readlink -f "$hit"); ln -sf "$hit" "$libdir/$so"; echo "$so found $how $hit"; else echo "$so MISSING"; fi
    done <"$needed"
  } >"$out/libs.txt"
  cat "$out/libs.txt" >&2
}
cbin=$(mktemp -d) # the candle binaries travel xz-compressed (scripts/stage-candle.sh)
for b in candle-gpu-test example-grpo-gpu; do
  if [[ -f $bin/$b.xz ]]; then
    { xz -dc "$bin/$b.xz" 2>/dev/null || python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$bin/$b.xz"; } >"$cbin/$b" && chmod +x "$cbin/$b"
  elif [[ -x $bin/$b ]]; then
    cp "$bin/$b" "$cbin/$b"
  fi
done
if [[ -x $cbin/candle-gpu-test || -x $cbin/example-grpo-gpu ]]; then
  resolve_libs
  export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  [[ -x $cbin/candle-gpu-test ]] && step "candle-gpu-test" 60 "$out/candle-gpu-test.log" "$cbin/candle-gpu-test" --test-threads 1
  grpo=(--gpu --tasks 2000 --held-out 200 --steps 30 --seed 1)
  (( dry )) && grpo=(--gpu --tasks 200 --held-out 20 --steps 2 --seed 1)
  [[ -x $cbin/example-grpo-gpu ]] && step "example-grpo-gpu" 120 "$out/candle-grpo.log" \
    "$cbin/example-grpo-gpu" "${grpo[@]}" --pool-out "$out/grpo-pool.jsonl" --plot "$out/grpo.png"
  tail -n 30 "$out"/candle-*.log >&2
else
  echo "!! candle binaries not staged (run scripts/stage-candle.sh after stage.sh)" >&2
fi

# d. Criterion, CUDA rows only, up to 10^7, with what is left.
if [[ -x $bin/test-bench-step ]] && (( $(left) >= 45 )) && (( ! dry )); then
  BOTS_BENCH_MAX_N=10000000 step criterion "$(left)" "$out/criterion.txt" "$bin/test-bench-step" --bench cuda
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
PY
cat "$out/bench.md" "$out/steps.tsv"
rm -rf "$libdir" "$cbin"
echo "== device-extra.sh done, $(( deadline - $(date +%s) )) s before the deadline" >&2
