"""Shared setup. The reference code is imported before any `bots` adapter module, so the adapters
subclass the real base classes: Trinity-RFT 0.6.0's selector package through the repository's helper
(tests/trinity/trinity_ref.py), verl's abstract sampler through verl_ref.py."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "trinity"))
sys.path.insert(0, HERE)

from trinity_ref import import_trinity  # noqa: E402
from verl_ref import import_verl_sampler  # noqa: E402

import_trinity()
import_verl_sampler()
