#!/usr/bin/env bash
# Makes .venv-trinity/ (idempotent) and prints the venv's python path on stdout. Used by .ci/run and
# tests/trinity.rs. It holds numpy, trinity-rft 0.6.0 installed --no-deps (its full dependency set is
# ray, vllm, torch, ...: gigabytes), and the few of Trinity's dependencies that the classes under test
# import: datasets (FileReader reads the taskset with `load_dataset`), omegaconf (trinity.common.config,
# the real config classes and `load_config`), and sqlalchemy with greenlet (trinity.buffer.schema, which
# file_reader imports). What tests/trinity/trinity_ref.py still stubs (ray, torch, safetensors.torch,
# transformers) is listed there: none of it is used by the scheduler, the reader, the selectors or
# the pass-rate operator. Measured: ~20 s and ~440 MB for a fresh venv on the 2-core VM (no pip cache).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$PWD/.venv-trinity"
py="$venv/bin/python"
extras=("datasets==5.2.0" "omegaconf==2.4.0" "sqlalchemy[asyncio]==2.1.9" "greenlet==3.5.6")
check='import numpy, importlib.metadata as m
want = {"trinity-rft": "0.6.0", "datasets": "5.2.0", "omegaconf": "2.4.0", "sqlalchemy": "2.1.9", "greenlet": "3.5.6"}
assert all(m.version(k) == v for k, v in want.items())'
if ! "$py" -c "$check" 2>/dev/null; then
  echo "== making $venv (numpy, ${extras[*]}, trinity-rft==0.6.0 --no-deps)" >&2
  t0=$SECONDS
  [[ -x $py ]] || python3 -m venv "$venv"
  pip=("$py" -m pip install --quiet --disable-pip-version-check --no-warn-conflicts)
  "${pip[@]}" numpy "${extras[@]}" >&2
  "${pip[@]}" --no-deps "trinity-rft==0.6.0" >&2
  "$py" -c "$check"
  echo "   installed in $((SECONDS - t0)) s ($(du -sh "$venv" | cut -f1))" >&2
fi
echo "$py"
