#!/usr/bin/env bash
# Checks the embedded PTX: every kernel entry point listed in src/abi.rs (`kernels!`) is a
# `.entry` of the PTX, and the PTX `.version` is <= 9.0 (driver 580 / CUDA 13.0 loads it).
# Uses the newest target/*/build/bots-*/out/bots.ptx; builds first (BOTS_REQUIRE_NVCC=1) if none exists.
# Exits non-zero on any failure. CI: `BOTS_REQUIRE_NVCC=1 cargo build && scripts/check-ptx.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
find_ptx() { ls -t "$target"/*/build/bots-*/out/bots.ptx 2>/dev/null | head -n 1 || true; }
ptx="$(find_ptx)"
if [[ -z "$ptx" ]]; then
    echo "no PTX under $target; building with BOTS_REQUIRE_NVCC=1" >&2
    BOTS_REQUIRE_NVCC=1 cargo build --quiet
    ptx="$(find_ptx)"
fi
[[ -n "$ptx" && -s "$ptx" ]] || { echo "FAIL: no PTX found under $target/*/build/bots-*/out/" >&2; exit 1; }
echo "PTX: $ptx"

version="$(grep -m1 -E '^\s*\.version\s' "$ptx" | awk '{print $2}')"
[[ -n "$version" ]] || { echo "FAIL: no .version line" >&2; exit 1; }
major="${version%%.*}"; minor="${version#*.}"
if (( major > 9 || (major == 9 && minor > 0) )); then
    echo "FAIL: PTX .version $version is newer than 9.0 (driver 580 cannot load it)" >&2
    exit 1
fi
echo "PTX .version $version <= 9.0: ok"

entries="$(sed -n '/^kernels! {/,/^}/p' src/abi.rs | grep -oE '"[A-Za-z_][A-Za-z0-9_]*"' | tr -d '"')"
[[ -n "$entries" ]] || { echo "FAIL: no entries parsed from src/abi.rs" >&2; exit 1; }
status=0
count=0
for e in $entries; do
    count=$((count + 1))
    if grep -qE "\.entry[[:space:]]+$e\(" "$ptx"; then
        echo "  .entry $e: ok"
    else
        echo "FAIL: .entry $e missing from $ptx" >&2
        status=1
    fi
done
(( status == 0 )) && echo "all $count entry points present"

# Optional: assemble the PTX to SASS (no GPU needed) when ptxas is at hand (PATH or next to $NVCC).
ptxas="$(command -v ptxas || true)"
[[ -z "$ptxas" && -n "${NVCC:-}" && -x "$(dirname "$NVCC")/ptxas" ]] && ptxas="$(dirname "$NVCC")/ptxas"
if [[ -n "$ptxas" ]]; then
    for sm in sm_80 sm_90; do
        if "$ptxas" -arch="$sm" "$ptx" -o /dev/null; then
            echo "ptxas -arch=$sm: ok"
        else
            echo "FAIL: ptxas -arch=$sm rejects $ptx" >&2
            status=1
        fi
    done
fi
exit $status
