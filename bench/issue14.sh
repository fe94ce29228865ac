#!/usr/bin/env bash
# Issue 14: `bots bench --backend cpu` against bench/baselines/numpy_bots.py, interleaved in one run.
#
#   bash bench/issue14.sh [ROUNDS] [BOTS_BINARY...]
#
# For each round and each N (10^6, 10^7; override with SIZES="1000000 ..."), runs every binary named
# (default target/release/bots) with BOTS_SIMD=avx2 and with the run-time pick (AVX-512 where the CPU has
# it), then numpy, and prints one markdown row per run with the load average (`uptime`) at its start.
# Needs `cargo build --release` and the venv .bench-venv with numpy
# (python3 -m venv .bench-venv && .bench-venv/bin/pip install numpy). OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE
# are unset for numpy alone (see /work/.library/env/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
shift || true
bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=(target/release/bots)
sizes=${SIZES:-"1000000 10000000"}
py=${PYTHON:-.bench-venv/bin/python}
steps_for() { if [ "$1" -ge 10000000 ]; then echo 4; else echo 10; fi; }
ms() { sed -n 's/.*"ms_per_step": *\([0-9.eE+-]*\).*/\1/p'; }
load() { uptime | sed 's/.*load average: //'; }
echo "| N | round | run | ms/step | vs numpy | load (1, 5, 15 min) |"
echo "|---|---|---|---|---|---|"
for r in $(seq 1 "$rounds"); do
  for n in $sizes; do
    s=$(steps_for "$n")
    rows=()
    for b in "${bins[@]}"; do
      for simd in avx2 best; do
        l=$(load)
        if [ "$simd" = best ]; then t=$(env -u BOTS_SIMD "$b" bench --backend cpu --tasks "$n" --batch 1024 --steps "$s" --json | ms)
        else t=$(BOTS_SIMD=$simd "$b" bench --backend cpu --tasks "$n" --batch 1024 --steps "$s" --json | ms); fi
        rows+=("$b ($simd)|$t|$l")
      done
    done
    l=$(load)
    np=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$py" bench/baselines/numpy_bots.py --tasks "$n" --batch 1024 --steps 3 --json | ms)
    for row in "${rows[@]}"; do
      IFS='|' read -r name t lr <<<"$row"
      printf '| %s | %s | %s | %.2f | %.1fx | %s |\n' "$n" "$r" "$name" "$t" "$(echo "$np / $t" | bc -l)" "$lr"
    done
    printf '| %s | %s | numpy | %.2f | 1.0x | %s |\n' "$n" "$r" "$np" "$l"
  done
done
