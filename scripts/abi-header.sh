#!/usr/bin/env bash
# Prints the folder holding the kernels' generated abi.cuh: build.rs renders it from src/abi.rs into the
# library's OUT_DIR only. Builds the library first (dev profile, so the header matches src/abi.rs);
# inherits CARGO_TARGET_DIR and NVCC. Usage: g++ ... -I"$(bash scripts/abi-header.sh)" ...
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet -p bots --lib --message-format=json-render-diagnostics | python3 -c '
import json, os, sys
found = ""
for line in sys.stdin:
    m = json.loads(line) if line.startswith("{") else {}
    d = os.path.join(m.get("out_dir") or "", "include")
    if m.get("reason") == "build-script-executed" and os.path.isfile(os.path.join(d, "abi.cuh")):
        found = d
if not found:
    sys.exit("abi-header.sh: the build printed no OUT_DIR holding include/abi.cuh")
print(found)'
