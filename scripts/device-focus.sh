#!/usr/bin/env bash
# A short second device call, for what changed since the last full run (docs/BENCHMARKS.md, GPU): the
# kernel modes (issue 23) beside the copy yardstick and PyTorch, and the Python package's CUDA path, in
# about 4 minutes of device time where .device/run.sh takes 5. Staged like the full call (../shared/device/stage.sh), then
#   bash scripts/device-focus.sh --stage     # adds this script, the wheel and pytest's wheels to .device/
# and on the GPU machine, with .device/ carried:   bash .device/focus.sh   (timeout_s about 300)
# Writes to $OUT: focus.log (everything, in order), bench.json (the timing rows), steps.tsv, ncu-*.log.
# A smoke test here on the emulated driver (no sanitizer, ncu or GPU Python: those steps fail fast):
#   FOCUS_N_DIV=100000 LD_LIBRARY_PATH=$PWD/target/emu-driver OUT=/tmp/focus bash .device/focus.sh
set -uo pipefail
if [[ ${1:-} == --stage ]]; then
  root=$(git rev-parse --show-toplevel); cd "$root"
  [[ -d .device/bin ]] || { echo "stage first: ../shared/device/stage.sh" >&2; exit 2; }
  cp scripts/device-focus.sh .device/focus.sh
  # Only what this call runs travels: the CLI, the GPU tests, the wheel, the Python tests.
  find .device/bin -type f ! -name bin-bots ! -name test-test-gpu -delete
  rm -rf .device/py && mkdir -p .device/py/wheels
  wheel=$(ls -t target/wheels/bots_task_selection-*.whl 2>/dev/null | head -1)
  [[ -n $wheel ]] || { echo "no wheel: bash scripts/wheel-check.sh builds it" >&2; exit 2; }
  cp "$wheel" .device/py/wheels/
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux2014_x86_64 -d .device/py/wheels pytest pluggy iniconfig packaging pygments 2>/dev/null ||
    cp "${PYTEST_WHEELS:-/nonexistent}"/*.whl .device/py/wheels/
  cp -r python/tests .device/py/tests
  du -sh .device
  exit 0
fi
out=${OUT:-$(mktemp -d)}; mkdir -p "$out"
exec > >(tee -a "$out/focus.log") 2>&1
bin=.device/bin bots=.device/bin/bin-bots
div=${FOCUS_N_DIV:-1}                                       # N / div, at least 4096 (smoke tests)
n_() { local n=$(( $1 / div )); echo $(( n < 4096 ? 4096 : n )); }
(( div > 1 )) && export BOTS_GPU_TEST_QUICK=1             # smoke tests: the GPU tests at their quick sizes
export RUST_BACKTRACE=1 CUDA_CACHE_PATH=$PWD/.nvcache
printf 'step\trc\tseconds\n' >"$out/steps.tsv"
rows=$out/bench.jsonl; : >"$rows"
status=0
step() { # NAME LIMIT COMMAND...
  local name=$1 t=$2 t0=$SECONDS rc; shift 2
  echo "== $name (limit ${t}s)"
  timeout -k 5 "$t" "$@"; rc=$?
  echo "== $name exit $rc in $((SECONDS - t0)) s"
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >>"$out/steps.tsv"
  (( rc == 0 )) || status=1
  return $rc
}
echo "== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader 2>&1); commit $(cat .device/commit)"

# 1. The GPU tests, none may skip.
BOTS_REQUIRE_GPU=1 step "gpu tests" 150 "$bin/test-test-gpu"

# 2. The Python package on the GPU: the stream-fencing tests and the rest of the suite that runs there.
# The wheels are unpacked onto PYTHONPATH (no pip or venv needed: python3 there may itself be a venv's).
if python3 -c 'import numpy' 2>/dev/null; then
  pylib=$(mktemp -d)
  python3 -c 'import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]' "$pylib" .device/py/wheels/*.whl
  PYTHONPATH=$pylib BOTS_REQUIRE_GPU=1 step "python cuda tests" 90 python3 -m pytest -q -rs -p no:cacheprovider --noconftest \
    .device/py/tests/test_cuda_streams.py .device/py/tests/test_driver_floor.py \
    .device/py/tests/test_pool.py::test_cuda_backend_refuses_clearly_without_a_gpu
else
  echo "!! not run: python tests (numpy not importable)"; printf 'python cuda tests\tnot-run\t0\n' >>"$out/steps.tsv"
fi

# 3. memcheck on the fast kernels.
san=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for m in fast; do
  step "memcheck bench $m k 3000" 40 "$san" --tool memcheck --error-exitcode 86 --print-limit 20 \
    "$bots" bench --backend cuda --tasks $(n_ 100000) --warmup 1 --steps 3 --batch 3000 --device-verbs --kernel-mode $m
  step "racecheck bench $m k 2048" 40 "$san" --tool racecheck --error-exitcode 86 --print-limit 20 \
    "$bots" bench --backend cuda --tasks $(n_ 100000) --warmup 1 --steps 2 --batch 2048 --kernel-mode $m
done

# 4. Timing rows, exact and fast side by side at each N (one run, same GPU), with the copy yardstick.
bench() { # NAME N K STEPS flags...
  local name=$1 n=$(n_ $2) k=$3 s=$4 f; shift 4; f=$(mktemp)
  step "$name" 60 "$bots" bench --backend cuda --tasks "$n" --batch "$k" --steps "$s" --warmup 2 --json "$@" >"$f" 2>&1
  cat "$f"; grep '^{' "$f" | sed "s|^{|{\"step\":\"$name\",|" >>"$rows"
}
for n in 100000000 1000000000 1000000 10000000; do
  st=50; (( n > 100000000 )) && st=20
  bench "copy yardstick $n" $n 1024 $st --yardstick
  for m in exact fast; do
    bench "step device $n k 1024 $m" $n 1024 $st --device-verbs --kernel-mode $m
    (( n == 100000000 )) && bench "step graph $n k 1024 $m" $n 1024 $st --device-verbs --graph --kernel-mode $m
  done
  # The PyTorch peer at 10^8 in the same run (bench/baselines/torch_bots.py: eager and torch.compile), so
  # both modes' ratios to it come from one call.
  if (( n == 100000000 )) && python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    for c in eager compiled; do
      f=$(mktemp)
      step "torch $c $n" 90 python3 bench/baselines/torch_bots.py --json --tasks "$(n_ $n)" --batch 1024 --steps 20 \
        $([[ $c == compiled ]] && echo --compile) >"$f" 2>&1
      cat "$f"; grep '^{' "$f" | sed "s|^{|{\"step\":\"torch $c $n\",|" >>"$rows"
    done
  elif (( n == 100000000 )); then
    echo "!! not run: torch peer (PyTorch with CUDA not importable)"; printf 'torch peer\tnot-run\t0\n' >>"$out/steps.tsv"
  fi
done
python3 -c "import json,sys; json.dump([json.loads(l) for l in open(sys.argv[1])], open(sys.argv[2],'w'), indent=1)" "$rows" "$out/bench.json"

# 5. ncu on a warmed step, both modes: the pool-wide kernels with warp instructions executed, to check
# the cost model (scripts/cost-model.sh) per kernel.
ncu_bin=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
for m in exact fast; do
  step "ncu step 1e8 $m" 60 "$ncu_bin" -k 'regex:^(update_sample_score|finish_deferred|radix_filter)' --launch-skip 16 --launch-count 8 \
    --section SpeedOfLight --section Occupancy --section LaunchStats \
    --metrics dram__bytes_read.sum,dram__bytes_write.sum,gpu__time_duration.sum,smsp__inst_executed.sum,smsp__issue_active.avg.pct_of_peak_sustained_active,sm__cycles_elapsed.avg.per_second \
    "$bots" bench --backend cuda --tasks $(n_ 100000000) --batch 1024 --steps 1 --warmup 2 --device-verbs \
    --kernel-mode $m >"$out/ncu-$m.log" 2>&1
done
echo "== focus exit $status"
exit $status
