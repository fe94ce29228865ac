#!/usr/bin/env bash
# Proves the emulated-driver run (test.sh) bites: plants one fault at a time in a copy of this checkout
# and checks that test.sh fails on it. The checkout itself is never modified. Faults:
#   swap-args    two kernel arguments swapped in the Rust launch (cap and out_keys of radix_filter)
#   swap-fields  two fields of the pool's pointer struct swapped (alpha and beta of `struct Pool`)
#   no-sync      a __syncthreads removed (update_sample_score, after zeroing the shared histogram)
#   oob-store    a one-past-the-end store (keys_to_tasks writes k + 1 task ids)
#   warp-diverge lanes leave a warp collective early (warp_slot: the lanes without a slot skip the shuffle)
#   column-order the host uploads the K feature columns in reverse order (upload_columns)
#   segment-rule the kernels' segment of a mu in [1, K - 1) is one too low (only K >= 3 can tell:
#                tests/evidence/references.rs)
#   nbr-order    neighbour_sums walks a task's row back to front (the same terms, another f32 order)
#   claim-reset  nbr_pull_apply forgets to clear the task's claim bit (it never gets evidence again)
#   stale-lookup nbr_clear leaves the batch lookup filled (later batches see earlier batch tasks)
# Usage: scripts/emu-driver/mutate.sh [FAULT...]   (default: all ten; minutes each on 2 cores)
# Builds go to target/mutate (shared by the faults, so dependencies compile once); logs to
# target/mutate-FAULT.log.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
faults=("$@")
(( ${#faults[@]} )) || faults=(swap-args swap-fields no-sync oob-store warp-diverge column-order segment-rule nbr-order claim-reset stale-lookup)
export CARGO_TARGET_DIR="$root/target/mutate"
if [[ -z "${NVCC:-}" ]]; then  # the copies have no .cuda/ of their own
  NVCC="$(ls -d "$root"/.cuda/lib/python3*/site-packages/nvidia/cu13/bin/nvcc 2>/dev/null | head -1 || true)"
  if [[ -n "$NVCC" ]]; then export NVCC; fi
fi
mkdir -p "$CARGO_TARGET_DIR"

# One snapshot of the working tree at the start (edits made while this runs do not leak in).
snap="$(mktemp -d)"
trap 'rm -rf "$snap"' EXIT
(cd "$root" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$snap")
status=0
for f in "${faults[@]}"; do
  tmp="$(mktemp -d)"
  cp -a "$snap/." "$tmp/"
  python3 - "$tmp" "$f" <<'PY'
import sys
tmp, fault = sys.argv[1], sys.argv[2]
faults = {
    "swap-args": ("src/backend/cuda/launch.rs", "args![p, d, cap, out_keys, out_cap, pass]", "args![p, d, out_keys, cap, out_cap, pass]"),
    "swap-fields": ("src/backend/cuda/pool.rs", "alpha: ptr(&alpha, s),\n            beta: ptr(&beta, s),", "alpha: ptr(&beta, s),\n            beta: ptr(&alpha, s),"),
    "no-sync": ("kernels/bots.cu", "    __syncthreads();\n    const uint32_t pending = sc->pending;", "    const uint32_t pending = sc->pending;"),
    "oob-store": ("kernels/bots.cu", "    GRID_STRIDE(i, k) {\n        const unsigned long long key = keys[i];",
                  "    GRID_STRIDE(i, k + 1) {\n        const unsigned long long key = keys[i];"),
    "warp-diverge": ("kernels/bots.cu", "    if (ballot == 0) return 0;  // uniform across the warp", "    if (!want) return 0;"),
    "column-order": ("src/backend/cuda/pool.rs", "buf.slice_mut(j * n..(j + 1) * n)", "buf.slice_mut((k - 1 - j) * n..(k - j) * n)"),
    "segment-rule": ("kernels/model.cuh", "j = (uint32_t)floorf(mu);", "j = (uint32_t)floorf(mu) - 1u;"),
    "nbr-order": ("kernels/model.cuh", [
        ("const unsigned long long c = base + slot;", "const unsigned long long c = base + (p.nbr_k - 1u - slot);"),
        ("if (j == BOTS_NO_NEIGHBOUR) break;  // empty slots are last", "if (j == BOTS_NO_NEIGHBOUR) continue;"),
    ]),
    "claim-reset": ("kernels/bots.cu", "        atomicAnd(&d.claim[i >> 5], ~(1u << (i & 31)));\n    }\n}", "    }\n}"),
    "stale-lookup": ("kernels/bots.cu", "GRID_STRIDE(s, p.nbr_hash_slots) d.batch_hash[s] = BOTS_HASH_EMPTY;", ""),
}
if fault not in faults:
    sys.exit(f"unknown fault {fault}: use {', '.join(faults)}")
path, *edits = faults[fault]
edits = edits[0] if len(edits) == 1 and isinstance(edits[0], list) else [tuple(edits)]
p = f"{tmp}/{path}"
s = open(p).read()
for old, new in edits:
    if s.count(old) != 1:
        sys.exit(f"fault {fault}: the text to change occurs {s.count(old)} times in {path}; update mutate.sh")
    s = s.replace(old, new)
open(p, "w").write(s)
print(f"planted {fault} in {path}")
PY
  log="$root/target/mutate-$f.log"
  if bash "$tmp/scripts/emu-driver/test.sh" >"$log" 2>&1; then
    echo "NOT CAUGHT: $f (the emulated-driver run passed; log: $log)"; status=1
  elif ! grep -q '^== GPU tests on the emulated driver' "$log" || grep -qE '^error(\[E[0-9]+\]|: could not compile)' "$log"; then
    echo "BROKEN: $f did not build or run (not a test failure; log: $log)"; status=1
  else
    echo "caught: $f -- $(grep -m1 -E 'emulated CUDA driver:|panicked at|FAILED' "$log" | cut -c1-240)"
  fi
  rm -rf "$tmp"
done
exit $status
