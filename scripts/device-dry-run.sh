#!/usr/bin/env bash
# The whole device call, here, on the emulated CUDA driver (issue 19): proves that what one real GPU
# call will run (docs/BENCHMARKS.md, GPU) stages, runs and comes back in the shape a reviewer reads.
#
#   1. clones this checkout's HEAD (committed code only) into a fresh temporary folder and stages there
#      exactly as docs/BENCHMARKS.md says: ../shared/device/stage.sh, then scripts/stage-candle.sh
#      (the shared stage.sh is found as $BOTS_DEVICE_SHARED/stage.sh, default ../shared/device next to
#      this checkout; the build shares this checkout's target/ through CARGO_TARGET_DIR, so only the
#      bots crate itself is rebuilt), and builds the emulated driver from the clone;
#   2. lays out a third folder as the GPU machine gets it (the tracked files plus .device/) and deletes
#      the clone (the binaries must not find their sources by their build paths, as on the GPU machine);
#   3. runs `bash .device/run.sh` there with OUT set, the emulated driver first on LD_LIBRARY_PATH,
#      BOTS_DEVICE_DRY=1 (extra.sh's sizes N / 10^4) and BOTS_GPU_TEST_QUICK=1 (the GPU tests' quick
#      sizes: the emulator runs kernels on one CPU core; the device runs the full sizes), and stand-ins
#      for what only the GPU machine has, each of which says DRY: nvidia-smi; compute-sanitizer and ncu
#      (they run the program unsanitized / unprofiled); and `torch`, a pure-Python stand-in on
#      PYTHONPATH that runs bench/baselines/torch_bots.py's timing path for real on the CPU (its rows'
#      device and version say DRY);
#   4. checks the output as a reviewer will, and exits 1 if any check fails: `overall exit 0` in
#      tests.log; no `SKIPPED` in tests.log or in any file that comes back (results.tar.gz unpacked); at
#      most 8 files in OUT; a bench row for every planned size (scaled) of every kind (device, host,
#      graph, copy, torch, torch-compile); every planned sanitizer step ran and passed.
#
# usage: scripts/device-dry-run.sh      (NVCC as for stage.sh; defaults to the pinned .cuda/ one)
# env:   DRY_KEEP=1 keeps the work folder (printed); DEVICE_BUDGET (default 420, as on the device);
#        DRY_OVERLAY="path ..." copies those files from this working tree over the clone before staging
#        (to try an uncommitted script change; .device/commit then says +uncommitted).
# The staging's target dir is hidden (an empty tmpfs over it, in a private mount namespace: needs
# `unshare -m`, i.e. root or user namespaces) while run.sh runs: the test binaries prefer cargo's path to
# `bots` (CARGO_BIN_EXE_bots, in that target dir) over .device/bin/bin-bots, and on the GPU machine
# that path does not exist.
set -uo pipefail
t_start=$(date +%s)
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=${BOTS_DEVICE_SHARED:-$root/../shared/device}
die() { echo "device-dry-run.sh: $*" >&2; exit 2; }
[[ -f $shared/stage.sh && -f $shared/run.sh ]] || die "no stage.sh/run.sh in $shared (set BOTS_DEVICE_SHARED)"
shared=$(cd "$shared" && pwd)
if [[ -z ${NVCC:-} ]]; then
  NVCC=$(ls -d "$root"/.cuda/lib/python3*/site-packages/nvidia/cu13/bin/nvcc 2>/dev/null | head -1)
  [[ -n $NVCC ]] || die "NVCC is not set and $root/.cuda has no nvcc (see the README, CUDA)"
fi
export NVCC CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target} CARGO_INCREMENTAL=0
work=$(mktemp -d "${TMPDIR:-/tmp}/bots-device-dry.XXXXXX")
[[ ${DRY_KEEP:-0} == 1 ]] || trap 'rm -rf "$work"' EXIT
clone=$work/clone dev=$work/device out=$work/out fake=$work/fake
elapsed() { echo $(( $(date +%s) - t_start )); }

# 1. Clone and stage.
git clone -q --no-hardlinks "$root" "$clone" || die "git clone failed"
for f in ${DRY_OVERLAY:-}; do cp "$root/$f" "$clone/$f" && echo "== overlay: $f from the working tree"; done
echo "== [$(elapsed) s] staging $(git -C "$clone" rev-parse --short HEAD) in $clone (target dir $CARGO_TARGET_DIR; log: stage.log)"
if ! (cd "$clone" && "$shared/stage.sh" && bash scripts/stage-candle.sh) >"$work/stage.log" 2>&1; then
  tail -n 40 "$work/stage.log"; die "staging failed (above: the end of stage.log)"
fi
grep -E 'MiB staged|^staged' "$work/stage.log"
bash "$clone/scripts/emu-driver/build.sh" "$fake/emu-driver" || die "the emulated driver did not build"

# 2. The GPU machine's view: the clone's tracked files, elsewhere (not the clone's path), plus .device/.
mkdir -p "$dev" "$out"
(cd "$clone" && git ls-files -z | tar --null -T - -cf -) | tar -x -C "$dev"
cp -a "$clone/.device" "$dev/.device"
rm -rf "$clone"

# 3. Stand-ins, each saying DRY, then run.sh.
mkdir -p "$fake/bin" "$fake/py/torch"
cat >"$fake/bin/nvidia-smi" <<'SH'
#!/usr/bin/env bash
echo "DRY stand-in for nvidia-smi: no GPU, the emulated CUDA driver (scripts/emu-driver)"
SH
# compute-sanitizer and ncu: say DRY, drop the tool's own options, run the program as it is.
cat >"$fake/bin/compute-sanitizer" <<'SH'
#!/usr/bin/env bash
tool=?
while [[ ${1:-} == -* ]]; do
  case $1 in
    --tool) tool=$2; shift 2;;
    --error-exitcode|--print-limit|--launch-count|--launch-skip|-k|--section|--metrics) shift 2;;
    *) shift;;
  esac
done
echo "========= DRY stand-in for $(basename "$0") (${tool}): the program runs unchecked: $*"
"$@"; rc=$?
echo "========= ERROR SUMMARY: not measured (DRY stand-in), program exit $rc"
exit $rc
SH
cp "$fake/bin/compute-sanitizer" "$fake/bin/ncu"
chmod +x "$fake/bin"/*
cat >"$fake/py/torch/__init__.py" <<'PY'
"""DRY stand-in for PyTorch, written by scripts/device-dry-run.sh: just enough of torch's API, in pure
Python on the CPU, for bench/baselines/torch_bots.py's timing path to run end to end (arguments, the
step, the JSON row). Its rows time nothing real: the device name and the version say DRY."""
import heapq
import random
import sys
import time
import types

__version__ = "0.0+DRY-stub"
sys.stderr.write("DRY: torch is the dry run's pure-Python stand-in (scripts/device-dry-run.sh), not PyTorch: "
                 "its rows time nothing real\n")
_rng = random.Random(0)


def manual_seed(s):
    _rng.seed(s)


def _v(x):
    return x.d if isinstance(x, Tensor) else x


def _bin(a, b, f):
    x, y = _v(a), _v(b)
    if isinstance(x, list) and isinstance(y, list):
        return Tensor([f(p, q) for p, q in zip(x, y)])
    if isinstance(x, list):
        return Tensor([f(p, y) for p in x])
    if isinstance(y, list):
        return Tensor([f(x, q) for q in y])
    return Tensor(f(x, y))


def _div(p, q):
    return p / q if q else float("nan")


class _Pair:
    def __init__(self, values, indices):
        self.values, self.indices = values, indices


class Tensor:
    """1-D (a list), 2-D (a list of lists, only as randint/sort make it) or 0-D (a float)."""

    def __init__(self, d, device="cuda"):
        self.d, self.device = d, device

    def numel(self):
        return len(self.d)

    def float(self):
        m = lambda r: [float(v) for v in r]
        return Tensor([m(r) for r in self.d] if self.d and isinstance(self.d[0], list) else m(self.d))

    def div_(self, s):
        if self.d and isinstance(self.d[0], list):
            self.d = [[v / s for v in r] for r in self.d]
        else:
            self.d = [v / s for v in self.d]
        return self

    def sort(self, dim=0):
        assert dim == 0 and isinstance(self.d[0], list)
        cols = [sorted(c) for c in zip(*self.d)]
        return _Pair(Tensor([list(r) for r in zip(*cols)]), None)

    def contiguous(self):
        return self

    def __getitem__(self, i):
        if isinstance(i, Tensor):
            return Tensor([self.d[j] for j in i.d])
        return Tensor(self.d[i])

    def __setitem__(self, i, val):
        vals = _v(val)
        for n, j in enumerate(i.d):
            self.d[j] = vals[n] if isinstance(vals, list) else vals

    def mean(self):
        return Tensor(sum(self.d) / len(self.d))

    def abs(self):
        return Tensor([abs(v) for v in self.d])

    def __neg__(self):
        return Tensor([-v for v in self.d])

    def __add__(self, o):
        return _bin(self, o, lambda p, q: p + q)

    __radd__ = __add__

    def __sub__(self, o):
        return _bin(self, o, lambda p, q: p - q)

    def __rsub__(self, o):
        return _bin(o, self, lambda p, q: p - q)

    def __mul__(self, o):
        return _bin(self, o, lambda p, q: p * q)

    __rmul__ = __mul__

    def __truediv__(self, o):
        return _bin(self, o, _div)

    def __rtruediv__(self, o):
        return _bin(o, self, _div)

    def mul_(self, s):
        self.d = [v * s for v in self.d]
        return self

    def add_(self, o, alpha=1.0):
        x = _v(o)
        self.d = [v + alpha * q for v, q in zip(self.d, x)] if isinstance(x, list) else [v + alpha * x for v in self.d]
        return self

    def zero_(self):
        self.d = [0.0] * len(self.d)
        return self

    def item(self):
        return self.d


def randint(lo, hi, shape, device="cuda", generator=None):
    r = lambda n: [_rng.randrange(lo, hi) for _ in range(n)]
    return Tensor([r(shape[1]) for _ in range(shape[0])] if len(shape) == 2 else r(shape[0]))


def ones(n, device="cuda"):
    return Tensor([1.0] * n)


def zeros(n, device="cuda"):
    return Tensor([0.0] * n)


def clamp(t, lo, hi):
    return Tensor([min(max(v, lo), hi) for v in t.d])


def _standard_gamma(t):
    return Tensor([_rng.gammavariate(a, 1.0) for a in t.d])


def topk(t, k, sorted=True):
    idx = heapq.nlargest(k, range(len(t.d)), key=t.d.__getitem__)
    return _Pair(Tensor([t.d[i] for i in idx]), Tensor(idx))


def compile(fn, **kw):
    sys.stderr.write("DRY: torch.compile stand-in: the function runs as written\n")
    return fn


class Generator:
    def __init__(self, device="cpu"):
        self.device = device

    def manual_seed(self, s):
        return self


class _Event:
    def __init__(self, enable_timing=False):
        self.t = None

    def record(self):
        self.t = time.perf_counter()

    def elapsed_time(self, end):
        return (end.t - self.t) * 1e3


cuda = types.SimpleNamespace(
    is_available=lambda: True,
    synchronize=lambda: None,
    get_device_name=lambda *a: "DRY stand-in (pure-Python torch on the CPU)",
    Event=_Event,
)
PY

echo "== [$(elapsed) s] bash .device/run.sh in $dev (OUT=$out; log: run.log)"
# Hide the staging's target dir from the run (see the header), as the GPU machine has none.
hidden=0
unshare -m --propagation private bash -c 'mount -t tmpfs none "$1"' _ "$CARGO_TARGET_DIR" 2>/dev/null && hidden=1
isolate() {
  if (( hidden )); then
    unshare -m --propagation private bash -c 'mount -t tmpfs -o size=1m none "$1" && shift && exec "$@"' _ "$CARGO_TARGET_DIR" "$@"
  else
    "$@"
  fi
}
t_run=$(date +%s)
(cd "$dev" && isolate env OUT="$out" PATH="$fake/bin:$PATH" PYTHONPATH="$fake/py${PYTHONPATH:+:$PYTHONPATH}" \
  LD_LIBRARY_PATH="$fake/emu-driver${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  BOTS_DEVICE_DRY=1 BOTS_GPU_TEST_QUICK=1 bash .device/run.sh) >"$work/run.log" 2>&1
run_rc=$? run_s=$(( $(date +%s) - t_run ))
echo "== [$(elapsed) s] run.sh exit $run_rc after $run_s s"

# 4. Check as a reviewer will: what came back in OUT, results.tar.gz unpacked beside it.
fails=0
check() { # check NAME OK(0/1) DETAIL
  if (( $2 )); then echo "ok    $1${3:+: $3}"; else echo "FAIL  $1${3:+: $3}"; fails=$((fails + 1)); fi
}
seen=$work/seen; mkdir -p "$seen"
cp -a "$out/." "$seen/"
[[ -f $seen/results.tar.gz ]] && tar -xzf "$seen/results.tar.gz" -C "$seen"
log=$out/tests.log
nfiles=$(find "$out" -type f | wc -l)
overall=$(grep -m1 '^== overall exit' "$log" 2>/dev/null)
check "overall exit 0 in tests.log" $([[ $overall == '== overall exit 0' ]] && echo 1 || echo 0) "${overall:-no such line}"
if [[ $overall != '== overall exit 0' ]]; then
  grep -E '^== .* exit [1-9]|^== .*TIMED OUT|^test .* FAILED|^---- |panicked at' "$log" | head -n 20 | sed 's/^/        /'
fi
sk=$(grep -rIn 'SKIPPED' "$seen" 2>/dev/null | sed "s|^$seen/||")
check "no SKIPPED in tests.log or the archive" $([[ -z $sk ]] && echo 1 || echo 0) "$(printf '%s\n' "$sk" | grep -c . ) lines"
[[ -n $sk ]] && printf '%s\n' "$sk" | head -n 10 | cut -c1-200 | sed 's/^/        /'
check "staging's target dir hidden during the run" $hidden "$([[ $hidden == 1 ]] || echo "no unshare -m: tests may have run $CARGO_TARGET_DIR/release/bots")"
check "at most 8 files in OUT" $(( nfiles <= 8 )) "$nfiles: $(cd "$out" && find . -type f | sed 's|^\./||' | tr '\n' ' ')"
# Bench rows: every planned (tasks, batch, kind), scaled as extra.sh scales them under BOTS_DEVICE_DRY=1.
python3 - "$seen/bench.json" <<'PY2'
import collections, json, sys
def n_(n): return max(n // 10000, 3000)
def k_(k, n): return min(k, n_(n) // 2, 4096)
plan = collections.Counter()
for n in (10**6, 10**7, 10**8, 10**9):
    for k in (1024, 65536):
        for v in ("device", "host"):
            plan[(n_(n), k_(k, n), v)] += 1
    plan[(n_(n), k_(1024, n), "copy")] += 1
for n in (10**8, 10**9):
    plan[(n_(n), k_(1024, n), "graph")] += 1
for n in (10**6, 10**7, 10**8):
    for b in ("torch", "torch-compile"):
        plan[(n_(n), 1024, b)] += 1
try:
    rows = json.load(open(sys.argv[1]))
except (OSError, ValueError) as e:
    print(f"FAIL  bench rows: no bench.json ({e})"); sys.exit(1)
def kind(r):
    if str(r.get("backend", "")).startswith("torch"): return r["backend"]
    return "copy" if r.get("verbs") == "copy" or str(r.get("backend", "")).endswith("-copy") else r.get("verbs")
got = collections.Counter((r.get("tasks"), r.get("batch"), kind(r)) for r in rows
                          if isinstance(r.get("ms_per_step"), (int, float)) and r["ms_per_step"] > 0)
missing = plan - got
kinds = collections.Counter(k for (_, _, k) in got.elements())
print(f"{'ok  ' if not missing else 'FAIL'}  bench rows: {sum(got.values())} of {sum(plan.values())} planned "
      f"({', '.join(f'{k} {c}' for k, c in sorted(kinds.items()))})")
for m, c in sorted(missing.items(), key=str):
    print(f"        missing: tasks {m[0]} batch {m[1]} {m[2]}" + (f" x{c}" if c > 1 else ""))
sys.exit(1 if missing else 0)
PY2
(( $? == 0 )) || fails=$((fails + 1))
# Sanitizer steps: as planned in device-extra.sh section a (5 GPU tests and 3 benches under memcheck,
# racecheck, synccheck, initcheck), each with exit 0.
steps=$seen/steps.tsv
for tool_n in memcheck:8 racecheck:1 synccheck:1 initcheck:1; do
  tool=${tool_n%:*} want=${tool_n#*:}
  ran=$(awk -F'\t' -v t="$tool" 'index($1, t " ") == 1 && $2 == "0"' "$steps" 2>/dev/null | wc -l)
  bad=$(awk -F'\t' -v t="$tool" 'index($1, t " ") == 1 && $2 != "0" {print $1 " (" $2 ")"}' "$steps" 2>/dev/null | paste -sd, -)
  check "sanitizer steps: $tool" $(( ran == want )) "$ran of $want passed${bad:+; not: $bad}"
done
# A name filter that matches no test would spend a sanitizer run on nothing.
zero=$(grep -c '^running 0 tests' "$seen/sanitizer-memcheck.log" 2>/dev/null)
check "every sanitizer test filter matched a test" $(( ${zero:-0} == 0 )) "${zero:-0} ran none"
# The stand-ins said DRY where their output lands.
for what in "nvidia-smi" "compute-sanitizer" "ncu" "torch"; do
  grep -rIq "DRY.*$what\|DRY: $what" "$seen" 2>/dev/null; check "stand-in $what marked DRY" $(( $? == 0 ))
done

echo "-- for information (not checked): steps with another exit code, and what extra.sh did not run"
awk -F'\t' 'NR > 1 && $2 != "0" {print "        " $1 ": " $2 " after " $3 " s (limit " $4 ")"}' "$steps" 2>/dev/null
grep -h '^== .* exit\|^== extra.sh\|device-extra.sh done' "$log" 2>/dev/null | grep -v ' exit 0 ' | sed 's/^/        /' | head -n 20
echo "== device dry run: $fails check(s) failed; run.sh $run_s s, whole dry run $(elapsed) s wall"
[[ ${DRY_KEEP:-0} == 1 ]] && echo "== kept: $work (stage.log, run.log, out/, seen/ = out/ with the archive unpacked)"
(( fails == 0 ))
