#!/usr/bin/env bash
# Sanitizers, benchmarks and the candle binaries on the GPU machine, run by .device/run.sh after the test
# suite (see docs/BENCHMARKS.md, GPU; ../shared/device/stage.sh and scripts/stage-candle.sh). Writes to $1:
# bench.jsonl / bench.json / bench.md (the timing rows, rewritten after every timing step, so they exist
# whatever stops the run), sanitizer-*.log, candle-*.log, libs.txt (which CUDA libraries the candle
# binaries found), criterion.txt, and steps.tsv (every planned step: rc or `not-run`, seconds, limit).
#
# Time: every step is clipped to run.sh's deadline ($DEVICE_DEADLINE_EPOCH, 20 s before run.sh kills this
# script; without it, now + $BOTS_EXTRA_BUDGET, default 300 s), less a reservation for the later sections
# (SAN_KEEP s during a, CANDLE_KEEP s during b), which never takes more than half of what is left.
# Sections in order of value, with their H100 estimates:
#   a. compute-sanitizer (~90 s; each run pays the tool's start and a PTX JIT of a few s): memcheck on the
#      GPU tests' error-path, restore and graph tests and on small benches (one with k above one block:
#      the multi-launch sort), racecheck and synccheck on a 2048-key bench, initcheck. Guaranteed: each
#      sanitizer step gets at least SAN_FLOOR s (up to the deadline) however little is left, so they all
#      run even after a slow test suite: the timing rows are clipped instead;
#   b. timing rows (~150 s): step at 10^8 and 10^9 with k = 1024 (device verbs, graph replay, host verbs),
#      the copy yardstick at the same bytes (backend `cuda-copy`, verbs `copy`), the PyTorch peer eager
#      and compiled at 10^8, then ncu over one step at 10^8 (ncu.log: the profile a figure that falls
#      short needs), then the rest of the grid (10^6..10^9 x k 1024, 65536, both verb kinds; 10^9 rows
#      pay ~15 s of setup each); CANDLE_KEEP s stay for (c);
#   c. the candle binaries (issue 12): library resolver, candle-gpu-test, the GRPO example at a small
#      size on the GPU (~40 s);
#   d. criterion's CUDA rows, with what is left at the very end, at most CRITERION_MAX s.
# A step left out for want of time or tools says `not run: ...` (never the word run.sh's reviewers read
# as a failed GPU test) and has a `not-run` row in steps.tsv.
# A 10^9-task pool needs ~14.2 GB on the GPU (alpha, beta 8 GB, f16 features 4 GB, the digit cache
# 2 GB, a 125 MB duplicate bitmap, 16 MB of candidates) and ~13 GB of host memory while it is built.
#
# Dry run here, on the emulated driver (N / 10^4, 2 steps, no criterion): scripts/device-dry-run.sh
# runs the whole device call (stage, run.sh, this script) with stand-ins for nvidia-smi, the sanitizer,
# ncu and PyTorch, and checks the output. This script alone:
#   bash scripts/emu-driver/build.sh && BOTS_DEVICE_DRY=1 BOTS_DEVICE_BIN=target/release \
#     LD_LIBRARY_PATH=$PWD/target/emu-driver bash scripts/device-extra.sh /tmp/extra-dry
set -uo pipefail
out=${1:?usage: device-extra.sh OUTPUT_FOLDER}
mkdir -p "$out"
dry=${BOTS_DEVICE_DRY:-0}
bin=${BOTS_DEVICE_BIN:-.device/bin}
bots=$bin/bin-bots
[[ -x $bots ]] || bots=$bin/bots
san=${COMPUTE_SANITIZER:-}
deadline=${DEVICE_DEADLINE_EPOCH:-$(( $(date +%s) + ${BOTS_EXTRA_BUDGET:-300} ))}
SAN_KEEP=120 SAN_FLOOR=20 CANDLE_KEEP=45 CRITERION_MAX=60
rows=$out/bench.jsonl
: >"$rows"
: >"$out/bench.stderr"
printf 'step\trc\tseconds\tlimit\n' >"$out/steps.tsv"
tmp=$(mktemp -d)
timing=$tmp/timing-steps # the timing steps' names, for bench.md's list of rows not measured
: >"$timing"
keep=0  # seconds reserved for the sections after the current one (at most half of what is left)
floor=0 # seconds a step gets even when the reservation leaves it less (up to the deadline)
left() { local l=$(( deadline - $(date +%s) )); echo $(( l - (keep < l / 2 ? keep : l / 2) )); }

# summarize: bench.json and bench.md from the rows so far (called after every timing step and at exit).
summarize() {
  python3 - "$rows" "$out" "$timing" "$out/steps.tsv" <<'PY'
import json, sys
rows_f, out, timing_f, steps_f = sys.argv[1:5]
rows = []
for l in open(rows_f):
    try:
        rows.append(json.loads(l))
    except ValueError:
        pass
json.dump(rows, open(f"{out}/bench.json", "w"), indent=1)
def is_copy(r): # the yardstick: `verbs` copy; its backend is `cuda-copy` (was `cuda` before issue 19)
    return r.get("verbs") == "copy" or str(r.get("backend", "")).endswith("-copy")
copy_gbps = {r.get("tasks"): r.get("gbps") for r in rows if is_copy(r) and r.get("gbps")}
def fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) and not isinstance(v, bool) else ("" if v is None else str(v))
with open(f"{out}/bench.md", "w") as md:
    md.write("| row | backend | device | verbs | kernels | tasks | batch | ms/step | GB/s | of copy | setup s |\n"
             "|---|---|---|---|---|---|---|---|---|---|---|\n")
    for r in rows:
        if "ms_per_step" not in r:
            continue
        what = "yardstick: device copy, same bytes" if is_copy(r) else r.get("step", "")
        c = copy_gbps.get(r.get("tasks"))
        of_copy = f"{r['gbps'] / c:.1%}" if not is_copy(r) and c and isinstance(r.get("gbps"), (int, float)) else ""
        md.write(f"| {what} | {r.get('backend')} | {r.get('device')} | {r.get('verbs', '')} | "
                 f"{r.get('kernel_mode', 'exact') if not is_copy(r) else ''} | {r.get('tasks')} | "
                 f"{r.get('batch')} | {fmt(r['ms_per_step'], '.4g')} | {fmt(r.get('gbps'), '.4g')} | {of_copy} | "
                 f"{fmt(r.get('setup_s'), '')} |\n")
    done = {r.get("step") for r in rows}
    status = {}
    for l in list(open(steps_f))[1:]:
        f = l.rstrip("\n").split("\t")
        if len(f) >= 2:
            status[f[0]] = f[1]
    missing = [n.strip() for n in open(timing_f) if n.strip() and n.strip() not in done]
    if missing:
        md.write("\nNo row (steps.tsv has why: `not-run` = no time or tool left, 124 = timed out):\n\n")
        for n in missing:
            md.write(f"- {n}: {status.get(n, 'not reached')}\n")
    md.write("\nof copy: GB/s as a share of the copy yardstick's at the same N (goal: at least 70%).\n")
PY
}
trap 'summarize; rm -rf "$tmp"' EXIT
summarize

# step NAME LIMIT LOG COMMAND...: runs COMMAND with its output in LOG, clipped to the time left.
step() {
  local name=$1 t=$2 log=$3 l h; shift 3
  l=$(left); h=$(( deadline - $(date +%s) ))
  (( l < floor )) && l=$floor
  (( l > h )) && l=$h
  if (( l < 8 )); then
    echo "!! not run: $name (device budget spent: $h s to the deadline, $(( h - l )) s of them kept for later sections)" >&2
    printf '%s\tnot-run\t0\t0\n' "$name" >>"$out/steps.tsv"
    return 1
  fi
  (( t > l )) && t=$l
  echo "== [$h s left] $name (limit ${t}s)" >&2
  local t0=$SECONDS rc
  timeout -k 5 "$t" "$@" >>"$log" 2>&1; rc=$?
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" "$t" >>"$out/steps.tsv"
  (( rc == 0 )) || echo "!! $name: exit $rc$( ((rc == 124)) && echo ' (timed out)') after $((SECONDS - t0)) s, see $(basename "$log")" >&2
  return $rc
}
# not_run NAME WHY: a planned step left out for want of a tool or a file.
not_run() { echo "!! not run: $1 ($2)" >&2; printf '%s\tnot-run\t0\t0\n' "$1" >>"$out/steps.tsv"; }
# rows_from NAME BEFORE: the JSON rows a timing step printed to bench.stderr after its first BEFORE lines,
# tagged with the step's name; then bench.json and bench.md again.
rows_from() {
  tail -n +$(( $2 + 1 )) "$out/bench.stderr" | grep '^{' | sed "s|^{|{\"step\":\"$1\",|" >>"$rows"
  summarize
}
# N and k as asked, or scaled down for the dry run (the emulated driver runs kernels on one CPU core):
# N / 10^4 (at least 3000), k at most N / 2 and 4096 (still above one block: the multi-launch sort).
# scripts/device-dry-run.sh checks the rows against the same scaling.
n_() { if (( dry )); then local n=$(( $1 / 10000 )); echo $(( n < 3000 ? 3000 : n )); else echo "$1"; fi; }
k_() {
  if (( dry )); then local n k=$1; n=$(n_ "$2"); (( k > n / 2 )) && k=$(( n / 2 )); echo $(( k < 4096 ? k : 4096 )); else echo "$1"; fi
}
# bench NAME LIMIT N K STEPS [bots bench flags...]: one timing row.
bench() {
  local name=$1 t=$2 n k s=$5 before; n=$(n_ "$3"); k=$(k_ "$4" "$3"); shift 5
  (( dry )) && s=2
  echo "$name" >>"$timing"
  before=$(wc -l <"$out/bench.stderr")
  step "$name" "$t" "$out/bench.stderr" "$bots" bench --backend cuda --tasks "$n" --batch "$k" --steps "$s" --warmup 2 --json "$@"
  rows_from "$name" "$before"
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv >&2 || true
(( dry )) && echo "== dry run (BOTS_DEVICE_DRY=1): N / 10^4, 2 steps" >&2
echo "== extra.sh: $(( deadline - $(date +%s) )) s to the deadline" >&2

# a. Sanitizers, first and guaranteed (see the header). The GPU tests at their quick sizes
# (BOTS_GPU_TEST_QUICK=1), filtered by name.
keep=$SAN_KEEP floor=$SAN_FLOOR
gputest=$(ls "$bin"/test-test-gpu 2>/dev/null)
san_tests=(invalid_device_input restore_round_trips graph select_is_idempotent multi_launch_bitonic_sort)
# --steps is given per run (clap refuses it twice on one command line).
small=(bench --backend cuda --tasks "$(n_ 100000)" --warmup 1)
if [[ -n $san && -x $san ]]; then
  s() { local tool=$1 name=$2 t=$3; shift 3; step "$tool $name" "$t" "$out/sanitizer-$tool.log" \
    "$san" --tool "$tool" --error-exitcode 86 --print-limit 20 "$@"; }
else
  s() { not_run "$1 $2" "compute-sanitizer not found"; }
fi
for f in "${san_tests[@]}"; do
  if [[ -n $gputest ]]; then
    BOTS_GPU_TEST_QUICK=1 s memcheck "gpu test $f" 40 "$gputest" "$f" --test-threads 1
  else
    not_run "memcheck gpu test $f" "no $bin/test-test-gpu"
  fi
done
s memcheck "bench k 32" 25 "$bots" "${small[@]}" --steps 3 --batch 32
s memcheck "bench k 3000 (multi-launch sort)" 25 "$bots" "${small[@]}" --steps 3 --batch 3000
s memcheck "bench device verbs graph k 3000" 25 "$bots" "${small[@]}" --steps 3 --batch 3000 --device-verbs --graph
s racecheck "bench k 2048" 40 "$bots" "${small[@]}" --steps 2 --batch 2048
s synccheck "bench k 2048" 30 "$bots" "${small[@]}" --steps 2 --batch 2048
s initcheck "bench k 2048" 30 "$bots" "${small[@]}" --steps 3 --batch 2048 --device-verbs
grep -h 'ERROR SUMMARY' "$out"/sanitizer-*.log >&2 2>/dev/null

# b. Timing rows, most telling first: the step at 10^8 (the 1.0 ms target) beside its yardstick and
# the PyTorch peer, then 10^9 (the 12 ms target), then the rest of the grid. Clipped to leave
# CANDLE_KEEP s for (c); no floor: these are what gives way.
keep=$CANDLE_KEEP floor=0
torch_ok=0
python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null && torch_ok=1
peer() { # name limit torch_bots.py args...
  local name=$1 t=$2 before; shift 2
  echo "$name" >>"$timing"
  if (( ! torch_ok )); then not_run "$name" "PyTorch with CUDA not importable"; summarize; return 1; fi
  before=$(wc -l <"$out/bench.stderr")
  step "$name" "$t" "$out/bench.stderr" python3 bench/baselines/torch_bots.py --json "$@"
  rows_from "$name" "$before"
}
bench "step device 1e8 k 1024" 40 100000000 1024 50 --device-verbs
bench "step device 1e8 k 1024 fast" 40 100000000 1024 50 --device-verbs --kernel-mode fast
bench "copy yardstick 1e8" 30 100000000 1024 50 --yardstick
bench "step graph 1e8 k 1024" 40 100000000 1024 50 --device-verbs --graph
bench "step host 1e8 k 1024" 40 100000000 1024 50
peer "torch eager 1e8" 45 --tasks "$(n_ 100000000)" --batch 1024 --steps 20
bench "step device 1e9 k 1024" 60 1000000000 1024 20 --device-verbs
bench "copy yardstick 1e9" 40 1000000000 1024 20 --yardstick
peer "torch compiled 1e8" 90 --tasks "$(n_ 100000000)" --batch 1024 --steps 20 --compile
bench "step graph 1e9 k 1024" 60 1000000000 1024 20 --device-verbs --graph
bench "step host 1e9 k 1024" 60 1000000000 1024 20
# The profile a short figure needs (issue 9): the pool-wide kernels of one warmed device-verbs step
# at 10^8 under ncu (speed of light, memory workload, occupancy, launch stats, DRAM bytes, time, and the
# warp instructions executed and issue activity the cost model predicts: scripts/cost-model.sh), in
# ncu.log. A step launches update_sample_score and finish_deferred once and radix_filter 6 times (8
# matching launches); the 2 warmup steps (16 launches) are skipped, so the profile is of a pool with a pending update, as in
# the timed steps.
ncu_bin=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
if [[ -n $ncu_bin ]]; then
  step "ncu step 1e8 k 1024" 90 "$out/ncu.log" "$ncu_bin" -k 'regex:^(update_sample_score|finish_deferred|radix_filter)' \
    --launch-skip 16 --launch-count 8 \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats \
    --metrics dram__bytes_read.sum,dram__bytes_write.sum,gpu__time_duration.sum,smsp__inst_executed.sum,smsp__issue_active.avg.pct_of_peak_sustained_active,sm__cycles_elapsed.avg.per_second \
    "$bots" bench --backend cuda --tasks "$(n_ 100000000)" --batch 1024 --steps 1 --warmup 2 --device-verbs
else
  not_run "ncu step 1e8 k 1024" "ncu not found: no kernel profile"
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
libdir=$tmp/libs
cbin=$tmp/candle # the candle binaries travel xz-compressed (scripts/stage-candle.sh)
mkdir -p "$libdir" "$cbin"
resolve_libs() { # writes $out/libs.txt; links found libraries into $libdir under the needed soname
  local needed=$bin/../candle-needed.txt
  [[ -f $needed ]] || needed=.device/candle-needed.txt
  local dirs=() d
  IFS=: read -ra dirs <<<"${LD_LIBRARY_PATH:-}" # first: what the caller set (the emulated driver, dry run)
  # then libraries that travel with .device (libcudart.so.13: the binaries need its symbol version
  # `libcudart.so.13`, so no libcudart.so.12 alias can stand in for it)
  [[ -d $bin/../lib ]] && dirs+=("$(cd "$bin/../lib" && pwd)")
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
  if [[ -x $cbin/candle-gpu-test ]]; then
    step "candle-gpu-test" 60 "$out/candle-gpu-test.log" "$cbin/candle-gpu-test" --test-threads 1
  else
    not_run "candle-gpu-test" "not staged"
  fi
  grpo=(--gpu --tasks 2000 --held-out 200 --steps 30 --seed 1)
  (( dry )) && grpo=(--gpu --tasks 200 --held-out 20 --steps 2 --seed 1)
  if [[ -x $cbin/example-grpo-gpu ]]; then
    step "example-grpo-gpu" 120 "$out/candle-grpo.log" \
      "$cbin/example-grpo-gpu" "${grpo[@]}" --pool-out "$out/grpo-pool.jsonl" --plot "$out/grpo.png"
  else
    not_run "example-grpo-gpu" "not staged"
  fi
  tail -n 30 "$out"/candle-*.log >&2
else
  not_run "candle-gpu-test" "candle binaries not staged (run scripts/stage-candle.sh after stage.sh)"
  not_run "example-grpo-gpu" "candle binaries not staged"
fi

# d. Criterion, CUDA rows only, up to 10^7: what is left at the very end, at most CRITERION_MAX s.
keep=0
if (( dry )); then
  not_run criterion "dry run"
elif [[ ! -x $bin/test-bench-step ]]; then
  not_run criterion "no $bin/test-bench-step"
elif (( $(left) < 45 )); then
  not_run criterion "$(left) s left, it needs 45"
else
  l=$(left); (( l > CRITERION_MAX )) && l=$CRITERION_MAX
  BOTS_BENCH_MAX_N=10000000 step criterion "$l" "$out/criterion.txt" "$bin/test-bench-step" --bench cuda
fi

summarize
cat "$out/bench.md" "$out/steps.tsv"
echo "== device-extra.sh done, $(( deadline - $(date +%s) )) s before the deadline" >&2
