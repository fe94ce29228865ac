"""Imports Trinity-RFT's own BOTS selector code (trinity-rft 0.6.0, `trinity/buffer/selector/`) without
its heavy dependencies, to check this crate against the reference.

Usage (any python with numpy and `pip install --no-deps trinity-rft==0.6.0`; see scripts/trinity-venv.sh):

    import sys; sys.path.insert(0, "tests/trinity")
    from trinity_ref import import_trinity, selector_config, data_source
    DifficultyBasedSelector, InterpolationBetaPREstimator = import_trinity()
    sel = DifficultyBasedSelector(data_source({"w": weak, "s": strong}),
                                  selector_config(["w", "s"], {"m": 16, "lamb": 0.1, "rho": 0.1}))
    sel.feedback(indices, pass_rates)          # -> sel.diff_estimator.alphas / .betas / .rho / .cap_coef

The two classes under test are Trinity's own, unmodified. Stubs are installed (in `sys.modules`, only
where the real module is missing or cannot import here) for exactly what `trinity/buffer/selector/*.py`
import from outside that package, none of which the update path uses:
- `trinity.utils.log` (imports ray): `get_logger` -> a `logging` logger.
- `trinity.common.config` (imports omegaconf and more): `DataSelectorConfig`, the same dataclass fields.
- `trinity.buffer` and `trinity.buffer.reader` package inits (import ray and the storage backends):
  replaced by empty packages over the real folders, so the real `trinity.buffer.selector` loads from disk.
- `trinity.buffer.reader.file_reader._HFBatchReader` (a type annotation only): an empty class.
- `torch` when not installed (used by `get_indices` only, never by `feedback`): an empty module.
`trinity.utils.annotations` and `trinity.utils.registry` are the real ones.
"""
import dataclasses
import importlib
import importlib.util
import logging
import os
import sys
import types
from typing import Dict, List, Optional


def _can_import(name: str) -> bool:
    """True when `name` imports here; otherwise undoes whatever the failed import left in sys.modules."""
    before = set(sys.modules)
    try:
        importlib.import_module(name)
        return True
    except Exception:  # noqa: BLE001 - any failure means a stub is needed
        for mod in set(sys.modules) - before:
            del sys.modules[mod]
        return False


def _package(name: str, path: str) -> types.ModuleType:
    """An empty package over a real folder: its submodules import from disk, its __init__ is skipped."""
    mod = types.ModuleType(name)
    mod.__path__ = [path]
    mod.__package__ = name
    sys.modules[name] = mod
    return mod


def _module(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod
    return mod


@dataclasses.dataclass
class DataSelectorConfig:
    """The fields of trinity.common.config.DataSelectorConfig (0.6.0)."""

    selector_type: Optional[str] = "sequential"
    seed: int = 42
    feature_keys: List[str] = dataclasses.field(default_factory=list)
    kwargs: dict = dataclasses.field(default_factory=dict)


def import_trinity():
    """Returns Trinity-RFT's real `(DifficultyBasedSelector, InterpolationBetaPREstimator)` classes,
    installing the stubs listed in the module docstring first. Idempotent."""
    spec = importlib.util.find_spec("trinity")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("trinity-rft is not installed: run scripts/trinity-venv.sh")
    import trinity  # the real top-level package (its __init__ imports nothing)

    root = list(spec.submodule_search_locations)[0]
    if not _can_import("trinity.utils.log"):
        _module("trinity.utils.log", get_logger=lambda name=None, *a, **k: logging.getLogger(name or "trinity"))
    if not _can_import("trinity.common.config"):
        _module("trinity.common.config", DataSelectorConfig=DataSelectorConfig)
    if "trinity.buffer.selector.selector" not in sys.modules:
        if not _can_import("trinity.buffer"):
            _package("trinity.buffer", os.path.join(root, "buffer"))
        if not _can_import("trinity.buffer.reader.file_reader"):
            _package("trinity.buffer.reader", os.path.join(root, "buffer", "reader"))
            _module("trinity.buffer.reader.file_reader", _HFBatchReader=type("_HFBatchReader", (), {}))
    if not _can_import("torch"):
        _module("torch")
    from trinity.buffer.selector.difficulty_estimator import InterpolationBetaPREstimator
    from trinity.buffer.selector.selector import DifficultyBasedSelector

    assert trinity.__version__ == "0.6.0", f"expected trinity-rft 0.6.0, found {trinity.__version__}"
    return DifficultyBasedSelector, InterpolationBetaPREstimator


def selector_config(feature_keys: List[str], kwargs: Dict, seed: int = 42):
    """A `DataSelectorConfig` (the real one where it imports) for `DifficultyBasedSelector`."""
    cls = sys.modules["trinity.common.config"].DataSelectorConfig
    return cls(selector_type="difficulty_based", seed=seed, feature_keys=list(feature_keys), kwargs=dict(kwargs))


def data_source(columns: Dict[str, list]):
    """What `DifficultyBasedSelector` reads of its data source: `.dataset[key]` -> one column."""
    n = len(next(iter(columns.values())))
    return types.SimpleNamespace(dataset=dict(columns), dataset_size=n)
