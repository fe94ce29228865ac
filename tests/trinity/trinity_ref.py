"""Imports Trinity-RFT's own BOTS selector code (trinity-rft 0.6.0, `trinity/buffer/selector/`) without
its heavy dependencies, to check this crate against the reference.

Usage (any python with numpy and `pip install --no-deps trinity-rft==0.6.0`; scripts/trinity-venv.sh
makes one, with the few packages that Trinity's taskset scheduler needs as well):

    import sys; sys.path.insert(0, "tests/trinity")
    from trinity_ref import import_trinity, selector_config, data_source
    DifficultyBasedSelector, InterpolationBetaPREstimator = import_trinity()
    sel = DifficultyBasedSelector(data_source({"w": weak, "s": strong}),
                                  selector_config(["w", "s"], {"m": 16, "lamb": 0.1, "rho": 0.1}))
    sel.feedback(indices, pass_rates)          # -> sel.diff_estimator.alphas / .betas / .rho / .cap_coef

    mods = import_trinity_scheduler()          # the real TasksetScheduler, FileReader, config, operators

The classes under test are Trinity's own, unmodified. Stubs are installed (in `sys.modules`, only where
the real module is missing or cannot import here), first for third-party packages that Trinity's buffer
code imports at module level but that none of the classes tested here (the selectors, the taskset
scheduler, the file reader, the config and its buffer validator, the pass-rate operator) calls:
- `ray` (imported by `trinity.utils.log` and the config validators; used there only inside Ray actors,
  and by the reader's progress bar, which the tests leave off): an empty package with `ray.util`.
- `torch` (imported by `trinity/buffer/selector/selector.py`, used by `DifficultyBasedSelector.get_indices`
  only, and by `trinity.common.experience`, whose `Experience` keeps its token ids in tensors): what
  `Experience.__init__` calls (`tensor`, `ones`, `zeros`, the dtypes) on numpy, and classes nothing is
  an instance of for the names looked up when a module named torch is loaded (`Tensor`, `Generator`,
  `nn.Module`: datasets' pickler asks them while fingerprinting a dataset). A `torch` stub put there
  by another helper (python/tests/verl_ref.py's) gets these names added. Real torch (a CUDA build on
  PyPI) is gigabytes; the pass-rate operator reads only `exp.info` and `exp.reward`.
- `safetensors.torch` (Experience serialization, unused here): `load`/`save` that raise.
- `transformers` (imported by `trinity.common.models.utils`, and for its `__version__` by a model patch
  decorator in the config validators): `__version__ = "0"` and a `PreTrainedTokenizerBase` class
  nothing is an instance of (datasets' pickler again).
datasets, which probes for torch with `importlib.util.find_spec` as it imports, is imported with no stub there.

Then, in a venv without Trinity's own light dependencies (datasets, omegaconf, sqlalchemy; the
scheduler tests need them and `import_trinity_scheduler` refuses to run without them), for exactly
what `trinity/buffer/selector/*.py` import from outside that package, none of which the update path
uses:
- `trinity.common.config` (imports omegaconf): `DataSelectorConfig`, the same dataclass fields.
- `trinity.buffer` and `trinity.buffer.reader` package inits (import the storage backends):
  replaced by empty packages over the real folders, so the real `trinity.buffer.selector` loads from disk.
- `trinity.buffer.reader.file_reader._HFBatchReader` (a type annotation only): an empty class.
`trinity.utils.annotations` and `trinity.utils.registry` are always the real ones.
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


def _refuse(name: str):
    def f(*args, **kwargs):
        raise NotImplementedError(f"{name} is a stub here (tests/trinity/trinity_ref.py)")

    return f


class _Never:
    """A stub's class: nothing is ever an instance of it."""


def _stub(name: str, **names) -> types.ModuleType:
    """`name` where the real module is missing: the stub in `sys.modules` (another test helper may
    have put its own there, e.g. python/tests/verl_ref.py's `torch` for `torch.utils.data`) or a new
    one, with `names` added where it lacks them. The real module, where it imports, is left alone.
    Idempotent."""
    if _is_real(name):
        return sys.modules[name]
    mod = sys.modules.get(name) or _module(name)
    for k, v in names.items():
        if not hasattr(mod, k):
            setattr(mod, k, v)
    return mod


def _is_real(name: str) -> bool:
    """The real module is (or can be) imported, not a stub."""
    mod = sys.modules.get(name)
    return bool(getattr(mod, "__file__", None)) if mod is not None else _can_import(name)


def _never(name: str) -> type:
    return type(name, (_Never,), {})


def _stub_third_party() -> None:
    """The third-party stubs of the module docstring, each only where the real package is missing."""
    if "datasets" not in sys.modules:
        # datasets probes for torch (importlib.util.find_spec, which fails on a stub) as it imports.
        stubs = {k: sys.modules.pop(k) for k in list(sys.modules) if k.split(".")[0] == "torch" and not _is_real(k)}
        _can_import("datasets")
        sys.modules.update(stubs)
    _stub("ray", util=_stub("ray.util"))
    if not _is_real("torch"):
        import numpy as np

        nn = _stub("torch.nn", Module=_never("Module"))
        _stub(
            "torch",
            nn=nn,
            Tensor=_never("Tensor"),
            Generator=_never("Generator"),
            dtype=np.dtype,
            bool=np.bool_,
            int32=np.int32,
            int64=np.int64,
            float32=np.float32,
            uint8=np.uint8,
            tensor=lambda data, dtype=None: np.asarray(data, dtype=dtype),
            ones=lambda n, dtype=None: np.ones(n, dtype=dtype),
            zeros=lambda n, dtype=None: np.zeros(n, dtype=dtype),
        )
    if not _can_import("safetensors.torch"):
        _stub("safetensors")
        _stub("safetensors.torch", load=_refuse("safetensors.torch.load"), save=_refuse("safetensors.torch.save"))
    _stub("transformers", __version__="0", PreTrainedTokenizerBase=_never("PreTrainedTokenizerBase"))


def import_trinity():
    """Returns Trinity-RFT's real `(DifficultyBasedSelector, InterpolationBetaPREstimator)` classes,
    installing the stubs listed in the module docstring first. Idempotent."""
    spec = importlib.util.find_spec("trinity")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("trinity-rft is not installed: run scripts/trinity-venv.sh")
    import trinity  # the real top-level package (its __init__ imports nothing)

    root = list(spec.submodule_search_locations)[0]
    _stub_third_party()
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
    from trinity.buffer.selector.difficulty_estimator import InterpolationBetaPREstimator
    from trinity.buffer.selector.selector import DifficultyBasedSelector

    assert trinity.__version__ == "0.6.0", f"expected trinity-rft 0.6.0, found {trinity.__version__}"
    return DifficultyBasedSelector, InterpolationBetaPREstimator


#: What the scheduler tests drive, all of it Trinity's own code loaded from disk.
SCHEDULER_MODULES = (
    "trinity.utils.log",
    "trinity.common.constants",
    "trinity.common.config",
    "trinity.common.config_validator",
    "trinity.common.experience",
    "trinity.buffer",
    "trinity.buffer.task_scheduler",
    "trinity.buffer.reader.file_reader",
    "trinity.buffer.selector.selector",
    "trinity.buffer.operators",
    "trinity.buffer.operators.mappers.pass_rate_calculator",
)


def import_trinity_scheduler() -> Dict[str, types.ModuleType]:
    """Trinity's real taskset scheduler and what drives it ({module name: module}, see
    SCHEDULER_MODULES), with only the third-party stubs of the module docstring. Raises ImportError,
    naming what is missing, where any of them is a stub or does not import (a venv without datasets,
    omegaconf or sqlalchemy: run scripts/trinity-venv.sh)."""
    import_trinity()
    _stub_third_party()  # again: a helper imported since may have put its own (poorer) torch stub there
    spec = importlib.util.find_spec("trinity")
    root = os.path.realpath(list(spec.submodule_search_locations)[0])
    mods = {}
    for name in SCHEDULER_MODULES:
        try:
            mod = importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - say which and why
            raise ImportError(f"{name} does not import here ({type(e).__name__}: {e}): run scripts/trinity-venv.sh") from e
        f = getattr(mod, "__file__", None)
        if not f or not os.path.realpath(f).startswith(root + os.sep):
            raise ImportError(f"{name} is a stub here, not Trinity's own module: run scripts/trinity-venv.sh")
        mods[name] = mod
    return mods


def selector_config(feature_keys: List[str], kwargs: Dict, seed: int = 42):
    """A `DataSelectorConfig` (the real one where it imports) for `DifficultyBasedSelector`."""
    cls = sys.modules["trinity.common.config"].DataSelectorConfig
    return cls(selector_type="difficulty_based", seed=seed, feature_keys=list(feature_keys), kwargs=dict(kwargs))


def data_source(columns: Dict[str, list]):
    """What `DifficultyBasedSelector` reads of its data source: `.dataset[key]` -> one column."""
    n = len(next(iter(columns.values())))
    return types.SimpleNamespace(dataset=dict(columns), dataset_size=n)
