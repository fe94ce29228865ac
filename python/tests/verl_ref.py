"""Imports verl's own curriculum-sampler interface (verl 0.7.1, the last release with it:
`verl/experimental/dataset/sampler.py`, installed with `pip install --no-deps verl==0.7.1`; the file is
the same in 0.5.0 - 0.7.1 and gone from 0.8.0) without verl's heavy dependencies.

`AbstractSampler` / `AbstractCurriculumSampler` are verl's real classes, loaded from the installed
file. Stubs are installed (in `sys.modules`, only where the real module cannot import here) for exactly
what that file imports from outside it:
- `verl` and `verl.experimental`, `verl.experimental.dataset` package inits (verl's `__init__` imports
  torch, ray and more): empty packages over the real folders, with `verl.DataProto` a plain class
  (a type annotation there).
- `torch.utils.data.Sampler` when torch is not installed: a generic class, as torch's is.
- `omegaconf.DictConfig` when omegaconf is not installed (an annotation): an empty class.
"""
import importlib.util
import os
import sys
import types
from typing import Generic, TypeVar

T = TypeVar("T")


class DataProto:
    """What the sampler's `update` reads of verl's DataProto: `.batch[key]` (per-sample tensors) and
    `.non_tensor_batch["index"]` (numpy object array of task ids)."""

    def __init__(self, batch, non_tensor_batch):
        self.batch = batch
        self.non_tensor_batch = non_tensor_batch


def _module(name, **attrs):
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod
    return mod


def import_verl_sampler():
    """Returns verl's real `(AbstractSampler, AbstractCurriculumSampler)`. Idempotent."""
    if "verl.experimental.dataset.sampler" in sys.modules:
        m = sys.modules["verl.experimental.dataset.sampler"]
        return m.AbstractSampler, m.AbstractCurriculumSampler
    spec = importlib.util.find_spec("verl")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("verl is not installed: pip install --no-deps verl==0.7.1")
    root = list(spec.submodule_search_locations)[0]
    try:
        import torch.utils.data  # noqa: F401
    except ImportError:
        class Sampler(Generic[T]):
            def __init__(self, data_source=None):
                pass

        torch = _module("torch")
        torch.utils = _module("torch.utils")
        torch.utils.data = _module("torch.utils.data", Sampler=Sampler)
    try:
        import omegaconf  # noqa: F401
    except ImportError:
        _module("omegaconf", DictConfig=type("DictConfig", (dict,), {}))
    for name, sub in [("verl", ""), ("verl.experimental", "experimental"), ("verl.experimental.dataset", "experimental/dataset")]:
        pkg = _module(name)
        pkg.__path__ = [os.path.join(root, sub)]
        pkg.__package__ = name
    sys.modules["verl"].DataProto = DataProto
    path = os.path.join(root, "experimental", "dataset", "sampler.py")
    sspec = importlib.util.spec_from_file_location("verl.experimental.dataset.sampler", path)
    mod = importlib.util.module_from_spec(sspec)
    sys.modules["verl.experimental.dataset.sampler"] = mod
    sspec.loader.exec_module(mod)
    from importlib.metadata import version

    assert version("verl") == "0.7.1", f"expected verl 0.7.1, found {version('verl')}"
    return mod.AbstractSampler, mod.AbstractCurriculumSampler
