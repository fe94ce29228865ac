#!/usr/bin/env bash
# Builds the Python wheel that is published (`bots-task-selection`, import name `bots`) and tests it as
# a user gets it (issue 20):
#   1. tools, once, in .venv-wheel/: maturin and ziglang (zig links against an old glibc, so the wheel
#      passes maturin's manylinux_2_28 check on a newer system), NVRTC 12.2 and ptxas 12.2;
#   2. the abi3 wheel (CPython >= 3.9), tag manylinux_2_28, kernels compiled by NVRTC 12.2 through
#      scripts/nvrtc-nvcc: PTX ISA 8.2, which NVIDIA drivers of CUDA 12.2 (535) and newer load;
#   3. the wheel's PTX: ISA <= 8.2 and ptxas 12.2 (the JIT of driver 535) assembles it for sm_80, sm_90;
#   4. a fresh venv with no Rust toolchain on PATH: the wheel, numpy, pytest, trinity-rft 0.6.0 and
#      verl 0.6.1 (--no-deps, as tests/trinity and python/tests/verl_ref.py use them), and the whole of
#      python/tests run from outside the checkout against the installed package;
#   5. python/tests again on the emulated driver (scripts/emu-driver) reporting CUDA 12.2
#      (BOTS_EMU_DRIVER_VERSION=12020, BOTS_REQUIRE_GPU=1): the CUDA tests run, test_driver_floor.py
#      among them (the kernels load there and agree with the CPU; an older driver refuses them clearly).
# Usage: scripts/wheel-check.sh [--profile dev|release] (default dev: half the build time; the wheel
# is the same but for optimisation and line tables; publish with --profile release). The wheel goes
# to $CARGO_TARGET_DIR/wheels (default target/wheels). BOTS_WHEEL_PYTHON: the interpreter of the test
# venv (default: python3's). Needs g++ >= 12 (the emulated driver) and PyPI.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
profile=dev
while (($#)); do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    *) echo "usage: $0 [--profile dev|release]" >&2; exit 2 ;;
  esac
done
target="${CARGO_TARGET_DIR:-$root/target}"
[[ "$target" = /* ]] || target="$root/$target"
t0=$SECONDS
pip_q=(--quiet --disable-pip-version-check)

# 1. Tools (idempotent).
tools="$root/.venv-wheel"
want_tools=(maturin==1.16.0 ziglang==0.17.1 nvidia-cuda-nvrtc-cu12==12.2.140 nvidia-cuda-nvcc-cu12==12.2.140)
if ! "$tools/bin/python" - "${want_tools[@]}" 2>/dev/null <<'EOF'
import sys, importlib.metadata as m
sys.exit(any(m.version(n) != v for n, v in (a.split("==") for a in sys.argv[1:])))
EOF
then
  echo "== making $tools (${want_tools[*]})"
  python3 -m venv "$tools"
  "$tools/bin/pip" install "${pip_q[@]}" "${want_tools[@]}"
fi
site="$("$tools/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
export NVRTC_LIB="$site/nvidia/cuda_nvrtc/lib/libnvrtc.so.12"
ptxas="$site/nvidia/cuda_nvcc/bin/ptxas"
echo "== tools: $("$tools/bin/maturin" --version), zig $("$tools/bin/python" -m ziglang version), $(NVCC= "$root/scripts/nvrtc-nvcc" --version | cut -d' ' -f2-3), ptxas $("$ptxas" --version | tail -1)"

# 2. The wheel. --zig builds for the explicit target triple, so its artifacts live in their own
# $target/x86_64-unknown-linux-gnu/ and never invalidate a host build's (which may use nvcc 13).
echo "== building the wheel (--profile $profile, PTX by NVRTC 12.2)"
dist="$target/wheels"
rm -f "$dist"/bots_task_selection-*.whl
t=$SECONDS
PATH="$tools/bin:$PATH" NVCC="$root/scripts/nvrtc-nvcc" BOTS_REQUIRE_NVCC=1 \
  maturin build --quiet --profile "$profile" --zig --compatibility manylinux_2_28 -m python/Cargo.toml -o "$dist"
wheel="$(ls "$dist"/bots_task_selection-*.whl)"
echo "   built in $((SECONDS - t)) s: $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB)"
[[ "$(basename "$wheel")" == *-cp39-abi3-manylinux_2_28_x86_64.whl ]] || { echo "FAIL: unexpected wheel tag" >&2; exit 1; }

# 3. The wheel's PTX: the newest bots.ptx of this build, checked to be the one inside the wheel (embedded
# deflated: bots.ptx.deflate, which must inflate to it).
ptx="$(ls -t "$target"/x86_64-unknown-linux-gnu/*/build/bots-*/out/bots.ptx | head -1)"
"$tools/bin/python" - "$wheel" "$ptx" <<'EOF'
import re, sys, zipfile, zlib
wheel, ptx = sys.argv[1], open(sys.argv[2], "rb").read()
packed = open(sys.argv[2] + ".deflate", "rb").read()
assert zlib.decompress(packed, -15) == ptx, f"{sys.argv[2]}.deflate does not inflate to {sys.argv[2]}"
so = zipfile.ZipFile(wheel).read("bots/_bots.abi3.so")
assert packed in so, f"{sys.argv[2]}.deflate is not the PTX inside {wheel}"
v = re.search(rb"^\s*\.version\s+(\d+)\.(\d+)", ptx, re.M)
isa = (int(v[1]), int(v[2]))
assert isa <= (8, 2), f"PTX ISA {isa[0]}.{isa[1]} is newer than 8.2: driver 535 (CUDA 12.2) cannot load it"
print(f"== the wheel's PTX: ISA {isa[0]}.{isa[1]} (<= 8.2: CUDA 12.2 / driver 535 and newer)")
EOF
for sm in sm_80 sm_90; do
  "$ptxas" -arch="$sm" "$ptx" -o /dev/null
  echo "   ptxas 12.2 -arch=$sm: ok"
done

# 4. A fresh venv, no Rust: everything below runs with a bare environment.
work="$target/wheel-check"
rm -rf "$work"
mkdir -p "$work/run"
py="${BOTS_WHEEL_PYTHON:-$(python3 -c 'import sys; print(sys.executable)')}"
bare=(env -i PATH=/usr/bin:/bin HOME="$HOME" LANG=C.UTF-8 PIP_DISABLE_PIP_VERSION_CHECK=1)
"${bare[@]}" bash -c 'if command -v cargo || command -v rustc; then echo "FAIL: a Rust toolchain is on PATH" >&2; exit 1; fi'
venv="$work/venv"
echo "== fresh venv ($("$py" --version)), no cargo or rustc on PATH: the wheel and the test dependencies"
t=$SECONDS
"${bare[@]}" "$py" -m venv "$venv"
[[ ! -e "$venv/bin/cargo" && ! -e "$venv/bin/rustc" ]]
# datasets, omegaconf, sqlalchemy: what Trinity's TasksetScheduler imports (test_trinity_scheduler.py;
# the versions of scripts/trinity-venv.sh).
"${bare[@]}" "$venv/bin/pip" install --quiet "$wheel" numpy pytest "datasets==5.2.0" "omegaconf==2.4.0" \
  "sqlalchemy[asyncio]==2.1.9" "greenlet==3.5.6"
"${bare[@]}" "$venv/bin/pip" install --quiet --no-deps "trinity-rft==0.6.0" "verl==0.7.1"
echo "   installed in $((SECONDS - t)) s"
# From an empty folder: the checkout's python/bots/ is not importable, the installed wheel is.
(cd "$work/run" && "${bare[@]}" "$venv/bin/python" -c 'import bots; print("   bots from", bots.__file__, bots.cuda_build_info())')
echo "== pytest python/tests against the installed wheel"
t=$SECONDS
(cd "$work/run" && "${bare[@]}" BOTS_WHEEL_CHECK=1 "$venv/bin/python" -m pytest -q -p no:cacheprovider "$root/python/tests")
echo "   in $((SECONDS - t)) s"

# 5. The CUDA backend on the emulated driver as CUDA 12.2 (driver 535).
# Built with the abi.cuh of the wheel's own build (beside its PTX), so no other cargo build is needed.
emu="$target/emu-driver"
if [[ ! -f "$emu/libcuda.so" || -n "$(find scripts/emu-driver scripts/emu kernels src/abi.rs -newer "$emu/libcuda.so" -type f)" ]]; then
  echo "== building the emulated driver ($emu/libcuda.so)"
  BOTS_ABI_DIR="$(dirname "$ptx")/include" bash scripts/emu-driver/build.sh "$emu"
fi
echo "== pytest python/tests on the emulated driver as CUDA 12.2 (BOTS_EMU_DRIVER_VERSION=12020, BOTS_REQUIRE_GPU=1)"
t=$SECONDS
(cd "$work/run" && "${bare[@]}" BOTS_WHEEL_CHECK=1 LD_LIBRARY_PATH="$emu" BOTS_EMU_DRIVER_VERSION=12020 BOTS_REQUIRE_GPU=1 \
  "$venv/bin/python" -m pytest -q -p no:cacheprovider "$root/python/tests")
echo "   in $((SECONDS - t)) s"
echo "== wheel check passed in $((SECONDS - t0)) s: $wheel"
