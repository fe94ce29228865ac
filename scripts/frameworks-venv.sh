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
  # pinned: the versions bots.trl (python/tests_trl) is tested against
  "$py" -m pip install --quiet --disable-pip-version-check "trl==1.16.0" "transformers==5.25.0" "torch==2.15.0" \
    "accelerate==1.16.0" "datasets==5.2.0" "tokenizers==0.23.3" "pytest==9.2.0" "numpy==2.4.6" >&2
  echo "   installed in $((SECONDS - t0)) s ($(du -sh "$venv" | cut -f1))" >&2
  touch "$stamp"
fi
# verl 0.9.1 for python/tests_verl (bots.verl's v1-trainer route), --no-deps: verl's own requirements
# pull in vLLM-era pins (transformers < 5.11, ray[default], wandb, ...). These are exactly what importing
# verl.trainer.ppo.v1 (the trainer, its replay buffer and RLHFDataset) needs on this CPU venv, pinned:
# Ray (imported, never started), TransferQueue (its store is replaced in memory by the tests),
# tensordict 0.10.0 (verl <= 0.10.0, TransferQueue >= 0.10.0), torchdata's StatefulDataLoader, Hydra/
# OmegaConf, and the web/serialisation modules verl's rollout code imports at module level.
verl_stamp="$venv/.bots-frameworks-verl-1"
if [[ ! -f $verl_stamp ]]; then
  echo "== adding verl 0.9.1 (--no-deps) and what its v1 trainer imports to $venv" >&2
  t0=$SECONDS
  "$py" -m pip install --quiet --disable-pip-version-check --no-deps "verl==0.9.1" "ray==2.55.1" \
    "transferqueue==0.1.11" "tensordict==0.10.0" "torchdata==0.11.0" "omegaconf==2.3.0" \
    "antlr4-python3-runtime==4.9.3" "hydra-core==1.3.8" "codetiming==1.4.0" "peft==0.21.2" \
    "pyvers==0.2.3" "cloudpickle==3.1.3" "msgpack==1.2.4" "protobuf==7.36.2" "pyzmq==27.3.0" \
    "msgspec==0.23.0" "orjson==3.13.0" "cachetools==8.0.3" "pillow==13.0.0" \
    "requests==2.34.2" "urllib3==2.8.0" "certifi==2026.10.19.post1" "charset-normalizer==3.5.3" \
    "jsonschema==4.26.0" "jsonschema-specifications==2025.9.1" "referencing==0.37.0" "rpds-py==2026.9.1" \
    "attrs==26.1.0" "fastapi==0.115.12" "starlette==0.46.2" "uvicorn==0.55.0" "aiohttp==3.14.5" \
    "aiosignal==1.4.0" "aiohappyeyeballs==2.7.1" "frozenlist==1.8.0" "multidict==7.2.1" "yarl==1.25.1" \
    "propcache==0.5.4" >&2
  echo "   installed in $((SECONDS - t0)) s" >&2
  touch "$verl_stamp"
fi
echo "$py"
