#!/usr/bin/env bash
# Makes .venv-trinity/ (idempotent): numpy plus trinity-rft 0.6.0 installed --no-deps (only its
# trinity/buffer/selector code is used, by tests/trinity/; its heavy dependencies are not needed), and
# prints the venv's python path on stdout. Used by .ci/run and tests/trinity.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$PWD/.venv-trinity"
py="$venv/bin/python"
if ! "$py" -c 'import numpy, importlib.metadata as m; assert m.version("trinity-rft") == "0.6.0"' 2>/dev/null; then
  echo "== making $venv (numpy, trinity-rft==0.6.0 --no-deps)" >&2
  python3 -m venv "$venv"
  "$py" -m pip install --quiet --disable-pip-version-check numpy
  "$py" -m pip install --quiet --disable-pip-version-check --no-deps "trinity-rft==0.6.0"
fi
echo "$py"
