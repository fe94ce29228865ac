#!/usr/bin/env bash
# Makes .venv-frameworks/ (idempotent): the real trainers the Python adapters are tested against (issue 21):
# PyTorch (PyPI's build, which is a CUDA build: several GB; it runs on the CPU here), transformers,
# accelerate, datasets and TRL 1.16 for bots.trl; verl's own classes for bots.verl. Prints the venv's
# python path on stdout. Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$PWD/.venv-frameworks"
py="$venv/bin/python"
stamp="$venv/.bots-frameworks-1"
if [[ ! -f $stamp ]]; then
  echo "== making $venv (torch, transformers, accelerate, datasets, trl==1.16.0)" >&2
  t0=$SECONDS
  [[ -x $py ]] || python3 -m venv "$venv"
  "$py" -m pip install --quiet --disable-pip-version-check "trl==1.16.0" torch accelerate datasets pytest numpy >&2
  echo "   installed in $((SECONDS - t0)) s ($(du -sh "$venv" | cut -f1))" >&2
  touch "$stamp"
fi
echo "$py"
