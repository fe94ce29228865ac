#!/usr/bin/env bash
# Static cost model of the kernels on an H100 (issue 23, part 1): compiles kernels/bots.cu as build.rs
# does (nvcc --ptx -O3 -std=c++17 --fmad=false -arch=$CUDA_ARCH, default compute_80, the PTX the crate
# embeds) plus -lineinfo, which build.rs leaves out unless BOTS_PTX_LINEINFO=1: it adds only line tables
# (the path attribution below needs them), not code; the sm_90 .text of all 17 kernels is byte for byte
# the same with and without it (checked with this ptxas at f33ea96). Then it assembles that PTX for
# sm_90 with the pinned ptxas (what the driver's JIT does on an H100; `ptxas -v` gives registers,
# spills, shared memory), disassembles the cubin with nvdisasm -gi (every instruction with its source line and inline chain) and runs scripts/cost_model.py,
# which prints markdown: per kernel the SASS size and resources, per path the instructions (static, and for
# update_sample_score(_fast)'s task loop also dynamic: what a warp runs in `bots bench`'s configuration,
# from the loop's control-flow graph), and the projected step time at N = 10^8, k = 1024 (TASKS=...,
# BATCH=... to change; FREQ=file.json for measured per-warp frequencies, default
# bench/cost-model-freq.json; MEASURE=1 first re-measures them into that file with
# cli/examples/warp_paths.rs on the CPU twin: a dev build of the crate's examples, ~2 min cold on 2 cores,
# then ~15 s).
#
# Needs: the pinned nvcc 13.0.2 (NVCC, else .cuda/ as .ci/run installs it), python3, cargo (only to
# render the generated abi.cuh from src/abi.rs: scripts/abi-header.sh, a dev build of the library).
# Installs on first use: nvdisasm into .cost-venv/ (gitignored), pinned below. The pinned toolkit's PyPI
# wheels (cuda-toolkit 13.0.2) carry no nvdisasm or cuobjdump, and PyPI has no 13.0.x
# nvidia-cuda-nvdisasm; 13.2.51 is the first. It only reads the sm_90 cubin that the pinned ptxas 13.0
# produced; the machine code is 13.0's. Download ~30 MB, a few seconds.
# Idempotent: outputs go to target/cost-model/ (rewritten every run); the venv is reused.
# Time: ~30 s on 2 cores with a warm cargo cache (the library's dev build dominates on a cold one).
set -euo pipefail
cd "$(dirname "$0")/.."
NVDISASM_PIN="nvidia-cuda-nvdisasm==13.2.51"

nvcc="${NVCC:-}"
[[ -z "$nvcc" ]] && nvcc="$(ls -d "$PWD"/.cuda/lib/python3*/site-packages/nvidia/cu13/bin/nvcc 2>/dev/null | head -1 || true)"
if [[ -z "$nvcc" || ! -x "$nvcc" ]]; then
    echo "cost-model.sh: no nvcc: set NVCC, or install the pinned one as .ci/run does:" >&2
    echo '  python3 -m venv .cuda && .cuda/bin/pip install "cuda-toolkit[nvcc,nvvm,crt,cudart]==13.0.2"' >&2
    exit 1
fi
ptxas="$(dirname "$nvcc")/ptxas"
[[ -x "$ptxas" ]] || { echo "cost-model.sh: no ptxas beside $nvcc" >&2; exit 1; }
"$nvcc" --version | grep -q "release 13.0" || echo "cost-model.sh: warning: $nvcc is not CUDA 13.0 (the pin)" >&2

venv=.cost-venv
nvdisasm="$(ls -d "$PWD/$venv"/lib/python3*/site-packages/nvidia/cu13/bin/nvdisasm 2>/dev/null | head -1 || true)"
if [[ -z "$nvdisasm" || "$(cat "$venv/.pin" 2>/dev/null)" != "$NVDISASM_PIN" ]]; then
    echo "== installing $NVDISASM_PIN into $venv/" >&2
    [[ -x "$venv/bin/pip" ]] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$NVDISASM_PIN"
    echo "$NVDISASM_PIN" > "$venv/.pin"
    nvdisasm="$(ls -d "$PWD/$venv"/lib/python3*/site-packages/nvidia/cu13/bin/nvdisasm | head -1)"
fi

# The generated header (build.rs renders it from src/abi.rs into the library's OUT_DIR), found as the
# kernel emulator finds it.
include="$(bash scripts/abi-header.sh)"

out="${CARGO_TARGET_DIR:-target}/cost-model"
rm -rf "$out"
mkdir -p "$out"
arch="${CUDA_ARCH:-compute_80}"
# build.rs's flags, word for word (src: build.rs main()), plus -lineinfo (line tables only; see the top).
"$nvcc" --ptx -O3 -std=c++17 --fmad=false -lineinfo "-arch=$arch" -Ikernels "-I$include" -o "$out/bots.ptx" kernels/bots.cu
"$ptxas" -arch=sm_90 -O3 -lineinfo -v "$out/bots.ptx" -o "$out/bots.sm_90.cubin" > "$out/ptxas.log" 2>&1
"$nvdisasm" -gi "$out/bots.sm_90.cubin" > "$out/bots.sm_90.sass"

freq_file=bench/cost-model-freq.json
if [[ "${MEASURE:-0}" == 1 ]]; then
    echo "== measuring per-warp path frequencies (cli/examples/warp_paths.rs)" >&2
    cargo run --quiet -p bots-cli --example warp_paths 2>/dev/null | tee "$out/warp_paths.txt" >&2
    tail -n 1 "$out/warp_paths.txt" > "$freq_file"
fi
FREQ="${FREQ:-$([[ -f "$freq_file" ]] && echo "$freq_file" || true)}"
args=(--sass "$out/bots.sm_90.sass" --ptxas-log "$out/ptxas.log" --kernels kernels --json "$out/counts.json"
      --tasks "${TASKS:-1e8}" --batch "${BATCH:-1024}")
[[ -n "${FREQ:-}" ]] && args+=(--freq "$FREQ")
{
    echo "<!-- scripts/cost-model.sh: nvcc/ptxas $("$nvcc" --version | grep -o 'V[0-9][0-9.]*' | tail -1), nvdisasm $("$nvdisasm" --version | grep -o 'V[0-9][0-9.]*' | tail -1), arch $arch -> sm_90 -->"
    python3 scripts/cost_model.py "${args[@]}"
} | tee "$out/cost-model.md"
