"""bots.verl's route for verl >= 0.8 (BotsDataset + BotsReplayBuffer), tested against verl 0.9.1 itself:
its v1 trainer (`PPOTrainerSync`, `PPOTrainerColocateAsync`) runs its own `fit`, `_init_dataloader`,
`_save_checkpoint` and `_load_checkpoint`, its `create_rl_dataset` loads our data set class from
``data.custom_cls`` and its `_build_replay_buffer` our buffer from ``trainer.v1.sampler.custom_sampler``.
Stubbed, because they need GPUs or a Ray cluster: the worker groups, the rollout (AgentLoopManagerTQ),
the weight sync, the GPU stages of a step (log-probs, advantages, actor update) and TransferQueue's
store (tq_memory.py). Run from the repository root with the frameworks venv (scripts/frameworks-venv.sh):
``.venv-frameworks/bin/python -m pytest -q python/tests_verl``."""
import os
import sys

# Nothing may come from a hub; the data is written by the tests.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("VERL_USE_EXTERNAL_PLUGINS", "none")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tq_memory  # noqa: E402

tq_memory.install()


def pytest_configure(config):
    # verl's import-time notices about engines this machine lacks (megatron, torchtitan, ...) and the
    # deprecations inside verl and torchdata: not ours to fix.
    for line in ("ignore::UserWarning:verl", "ignore::FutureWarning:verl", "ignore::UserWarning:torchdata",
                 "ignore:.*engine is not available:UserWarning", "ignore:Disabled critic:UserWarning",
                 "ignore:.*load_extern_type.*is deprecated:FutureWarning", "ignore:'set_vital' is deprecated:UserWarning",
                 "ignore:Ray state API is no longer experimental:DeprecationWarning",
                 "ignore:Unable to find acceptable character detection dependency"):
        config.addinivalue_line("filterwarnings", line)
