#!/usr/bin/env bash
# Runs kernels/bots.cu on the CPU (cuda_shim.h) through the CUDA backend's launch sequence and diffs
# its selections and final posterior, bit for bit, against the CPU backend on the same scenarios.
# Needs g++ >= 12 (C++20). Not a GPU test: it checks the kernels' logic (radix select, bitonic sort,
# device evidence, the pending/mark protocol) and the device code's arithmetic exactly: every
# transcendental is kernels/fmath.cuh, the twin of src/twin/fmath.rs, built from IEEE + - * / and sqrt.
# The fast kernels (KernelMode::Fast) are checked statistically instead, by fast_stats.cpp.
# Usage: scripts/emu/run.sh   (TWIN=path reuses a built twin binary)
set -euo pipefail
cd "$(dirname "$0")"
# One scratch folder per checkout (under its target/), so runs from different worktrees never share files.
out="${BOTS_EMU_DIR:-$(cd ../.. && pwd)/target/emu}"
mkdir -p "$out"
if [[ -z "${TWIN:-}" ]]; then
  CARGO_TARGET_DIR="$out/twin-target" cargo build --quiet --manifest-path twin/Cargo.toml
  TWIN="$out/twin-target/debug/bots-emu-twin"
fi
abi="$(bash ../abi-header.sh)" # the generated abi.cuh (build.rs writes it into OUT_DIR only)
g++ -std=c++20 -O1 -pthread -ffp-contract=off -fno-fast-math -I. -I"$abi" emu_main.cpp -o "$out/emu"
g++ -std=c++20 -O1 -pthread -ffp-contract=off -fno-fast-math -I. -I"$abi" fast_stats.cpp -o "$out/fast_stats"
# N BATCH STEPS TAU DO_SAMPLE RHO ADAPTIVE FEATURES(0 none, 1 f16, 2 f32; FORM:C for C columns, default 2) COUNTS PRIOR [nbr=K:ETA] [K...]
scenarios=(
  "1 1 12 0 1 0.1 0 1 0 -1 1"
  "2 1 12 0 1 0.1 0 1 1 -1 1 2"
  "2 2 12 0.5 1 0.1 0 1 0 -1 1 2"
  "50 4 16 0 1 0.1 0 1 0 -1 1 2 3 7 50"
  "300 8 21 0.3 1 0.1 0 1 0 -1 1 9 255 256 300"
  "300 8 21 0 0 0.1 0 1 1 -1 1 8 100 300"
  "300 8 21 0 1 0.6 1 1 0 -1 3 299"
  "300 8 21 0.1 1 0.1 0 1 1 4.0 5 150"
  "300 8 21 0 1 0 0 0 1 -1 1 300"
  "3000 16 6 0 0 0 0 0 1 -1 2049 3000"
  "3000 16 6 0.2 1 0.1 0 1 0 -1 2500"
  "300 8 11 0 1 0.3 0 2 0 -1 1 300"
  "300 8 11 0.1 1 0.1 0 2 1 4.0 150"
  "300 8 11 0 0 0.6 1 2 1 -1 299"
  "300 8 21 0 1 0.1 0 1:1 0 -1 1 300"
  "300 8 21 0.1 1 0.6 1 2:1 1 4.0 150"
  "300 8 21 0 1 0.1 0 1:3 0 -1 1 300"
  "300 8 21 0.3 1 0.6 1 2:3 1 4.0 7 150"
  "3000 16 11 0 0 0.3 0 1:5 1 2.0 2500"
  "300 8 21 0.1 1 0.1 0 2:5 0 -1 1 299"
  "300 300 4 0 1 0.2 1 2:5 1 -1"
  "2 2 6 0 1 0.1 0 1:64 0 -1 1 2"
  # nbr=K:ETA: a neighbour graph of K slots per row and neighbour_weight ETA (the neighbour kernels)
  "300 8 21 0 1 0 0 0 0 -1 nbr=6:0.5 1 300"
  "300 8 21 0.1 1 0.1 0 1 1 4.0 nbr=12:1 7 150"
  "50 4 16 0 1 0.6 1 2:3 1 -1 nbr=4:0.7 1 50"
  "3000 16 11 0 0 0.3 0 1:5 1 2.0 nbr=13:0.3 2500"
  "2 2 12 0.5 1 0.1 0 1 0 -1 nbr=1:1 1 2"
  "300 300 4 0 1 0.2 1 2:5 1 -1 nbr=8:0.25"
  "1 1 6 0 1 0 0 0 0 -1 nbr=3:1"
  # dense: several batch neighbours per touched task, so the order of the f32 sums shows
  "60 16 21 0.1 1 0.1 0 2 1 -1 nbr=13:0.9 1 60"
  "100 24 21 0 1 0 0 0 0 -1 nbr=13:1"
  "40 20 30 0 1 0.2 0 2:3 1 -1 nbr=13:0.8 1 40"
  "300 64 11 0.2 1 0 0 0 1 -1 nbr=13:0.6"
)
fail=0
for s in "${scenarios[@]}"; do
  # shellcheck disable=SC2086
  "$out/emu" $s > "$out/emu.txt"
  # shellcheck disable=SC2086
  "$TWIN" $s > "$out/cpu.txt"
  if cmp -s "$out/emu.txt" "$out/cpu.txt"; then
    echo "same: $s ($(grep -c '^SEL' "$out/cpu.txt") selections)"
  else
    echo "DIFFERENT: $s"; diff "$out/emu.txt" "$out/cpu.txt" | head -5; fail=1
  fi
done
# KernelMode::Fast: not the CPU's bits, so its draws and selections are checked statistically (fast_stats.cpp).
if "$out/fast_stats" > "$out/fast_stats.txt"; then
  echo "fast: $(tail -n 1 "$out/fast_stats.txt") ($(grep -c '^ok' "$out/fast_stats.txt") checks)"
else
  echo "FAST STATS FAILED:"; grep -v '^ok' "$out/fast_stats.txt"; fail=1
fi
exit $fail
