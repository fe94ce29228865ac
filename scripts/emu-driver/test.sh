#!/usr/bin/env bash
# Runs the crate's CUDA host code for real, on the emulated CUDA driver (driver.cpp): builds it as
# target/emu-driver/libcuda.so, puts that folder first on LD_LIBRARY_PATH (cudarc dlopens `libcuda.so`
# by name; nothing outside this script ever sees it), and runs with BOTS_REQUIRE_GPU=1, so a skipped GPU
# test is a failure:
#   - tests/gpu.rs, and the CUDA branches of tests/checkpoint.rs, tests/replay.rs, tests/evidence/references.rs
#     (K feature columns), tests/evidence/neighbours.rs (neighbour evidence) and tests/evidence/append.rs
#     (appended tasks), and the lib's
#     backend::cuda tests (BOTS_GPU_TEST_QUICK=1: the GPU tests' smaller sizes);
#   - `bots bench --backend cuda` (host and device verbs, a graph-replayed step, the copy yardstick) and `bots replay --backend cuda` at small N.
# Needs nvcc for the PTX (NVCC=..., see README) and g++ >= 12. Usage: scripts/emu-driver/test.sh
# (extra arguments go to every `cargo test`, e.g. a test name filter).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
out="$target/emu-driver"
echo "== building the emulated driver ($out/libcuda.so)"
bash scripts/emu-driver/build.sh "$out"
if [[ -z "${NVCC:-}" ]]; then  # the pinned nvcc that .ci/run installs, if there
  NVCC="$(ls -d "$root"/.cuda/lib/python3*/site-packages/nvidia/cu13/bin/nvcc 2>/dev/null | head -1 || true)"
  if [[ -n "$NVCC" ]]; then export NVCC; fi
fi
export LD_LIBRARY_PATH="$out${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export BOTS_REQUIRE_GPU=1 BOTS_REQUIRE_NVCC=1 BOTS_GPU_TEST_QUICK=1
echo "== GPU tests on the emulated driver"
cargo test --quiet --test gpu --test checkpoint --test replay --test evidence "$@"
cargo test --quiet --lib backend::cuda "$@"
echo "== the CLI on the emulated driver"
cargo build --quiet --bin bots
bots="$target/debug/bots"
"$bots" bench --backend cuda --tasks 3000 --batch 32 --steps 3 --warmup 1
"$bots" bench --backend cuda --device-verbs --tasks 3000 --batch 32 --steps 3 --warmup 1
"$bots" bench --backend cuda --device-verbs --graph --tasks 3000 --batch 32 --steps 3 --warmup 1
"$bots" bench --backend cuda --device-verbs --kernel-mode fast --tasks 3000 --batch 32 --steps 3 --warmup 1 --json | grep -q '"verbs":"device".*"kernel_mode":"fast"'
"$bots" bench --backend cuda --yardstick --tasks 3000 --batch 32 --steps 3 --warmup 1 --json | grep -q '"backend":"cuda-copy".*"verbs":"copy"'
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$bots" replay --backend cuda --pool data/sample_pool.jsonl --log data/sample_log.jsonl --out "$tmp/gpu.jsonl"
"$bots" replay --backend cpu --pool data/sample_pool.jsonl --log data/sample_log.jsonl --out "$tmp/cpu.jsonl"
cmp "$tmp/gpu.jsonl" "$tmp/cpu.jsonl" && echo "replay: the CUDA and CPU outputs are identical"
echo "== emulated driver: all passed"
