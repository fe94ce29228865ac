#!/usr/bin/env bash
# Builds the emulated CUDA driver (driver.cpp + kernels/*.cu through scripts/emu/cuda_shim.h) as
# $1/libcuda.so (default: this checkout's target/emu-driver). Needs g++ >= 12 (C++20), and the generated
# abi.cuh: from $BOTS_ABI_DIR, else scripts/abi-header.sh builds the library and finds it.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$root/target/emu-driver}"
mkdir -p "$out"
abi="${BOTS_ABI_DIR:-$(bash "$root/scripts/abi-header.sh")}"
g++ -std=c++20 -O2 -g -fPIC -shared -fvisibility=hidden -ffp-contract=off -fno-fast-math \
  -Wall -Wextra -Wno-unknown-pragmas -Wno-unused-parameter -Wno-maybe-uninitialized \
  -I"$root/scripts/emu" -I"$abi" "$root/scripts/emu-driver/driver.cpp" -o "$out/libcuda.so.tmp"
mv "$out/libcuda.so.tmp" "$out/libcuda.so"
