"""The oldest NVIDIA driver the package's kernels load on.

The kernels travel as PTX (embedded at build time), which a driver loads only if it knows the PTX's ISA
version (`.version`); a newer ISA is refused at module load with CUDA_ERROR_UNSUPPORTED_PTX_VERSION.
The published wheel is built with NVRTC 12.2 (scripts/wheel-check.sh), so its PTX is ISA 8.2 and loads
on CUDA 12.2 drivers (535, the long-lived data-center branch) and newer; an nvcc 13 build is ISA 9.0
and needs driver 580.

Run in CI on the emulated driver (scripts/emu-driver), which reports the CUDA version named by
BOTS_EMU_DRIVER_VERSION and refuses newer PTX as a real driver does: scripts/wheel-check.sh runs this
file against the installed wheel with BOTS_EMU_DRIVER_VERSION=12020. On a GPU the tests that need the
emulated driver's version switch skip; the others run on the real driver.
"""
import ctypes
import os
import subprocess
import sys

import numpy as np
import pytest

import bots
from pool_features import reference_features
from bots import _bots

# The floor the published wheel promises (README): CUDA 12.2, driver 535.
FLOOR_CUDA = 12020
FLOOR_PTX = (8, 2)

# The first CUDA release that loads each PTX ISA (PTX ISA release notes, "PTX release history").
PTX_TO_CUDA = {
    (7, 0): 11000, (7, 1): 11010, (7, 2): 11020, (7, 3): 11030, (7, 4): 11040, (7, 5): 11050,
    (7, 6): 11060, (7, 7): 11070, (7, 8): 11080, (8, 0): 12000, (8, 1): 12010, (8, 2): 12020,
    (8, 3): 12030, (8, 4): 12040, (8, 5): 12050, (8, 6): 12070, (8, 7): 12080, (8, 8): 12090,
    (9, 0): 13000, (9, 1): 13010,
}

N = 1000
K = 16


def features(n=N, seed=5):
    return reference_features(n, seed)


def needed_cuda():
    isa = _bots.ptx_isa()
    if isa is None:
        pytest.skip("built without the kernels: no PTX")
    assert tuple(isa) in PTX_TO_CUDA, f"PTX ISA {isa} is not in the table: add it"
    return PTX_TO_CUDA[tuple(isa)]


def cuda_version_string(v):
    return f"{v // 1000}.{v % 1000 // 10}"


# Reports the driver's cuDriverGetVersion, or why there is none (run in a subprocess, so that
# BOTS_EMU_DRIVER_VERSION, which the emulated driver reads once, can differ per run).
DRIVER_VERSION = r"""
import ctypes, sys
for name in ("libcuda.so", "libcuda.so.1"):
    try:
        lib = ctypes.CDLL(name)
        break
    except OSError:
        lib = None
if lib is None or lib.cuInit(0) != 0:
    print("none")
    sys.exit(0)
v = ctypes.c_int()
assert lib.cuDriverGetVersion(ctypes.byref(v)) == 0
print(v.value)
"""

# Opens a CUDA pool, runs a select and an update against the CPU pool, and prints the outcome.
OPEN_CUDA_POOL = r"""
import numpy as np, bots
rng = np.random.default_rng(5)
weak = rng.integers(0, 9, 1000) / 16
strong = np.minimum(weak + rng.integers(0, 9, 1000) / 16, 1.0)
config = {"batch": 16, "seed": 7}
try:
    gpu = bots.Pool(1000, features=(weak, strong), config=config, backend="cuda")
except RuntimeError as e:
    print("REFUSED", e)
else:
    cpu = bots.Pool(1000, features=(weak, strong), config=config)
    t = gpu.select()
    assert (t == cpu.select()).all()
    rates = (rng.integers(0, 17, 16) / 16).astype(np.float32)
    gpu.update(t, pass_rates=rates)
    cpu.update(t, pass_rates=rates)
    assert (gpu.select() == cpu.select()).all()
    print("LOADED")
"""


def run_python(code, **env):
    full = dict(os.environ, **{k: str(v) for k, v in env.items()})
    r = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"subprocess failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout.strip().splitlines()[-1]


def emulated_or_skip():
    """Skips unless the driver here honours BOTS_EMU_DRIVER_VERSION (the emulated driver); fails if the
    environment names a version the driver does not report (the run meant the emulated driver)."""
    got = run_python(DRIVER_VERSION, BOTS_EMU_DRIVER_VERSION=12010)
    if got == "12010":
        return
    if os.environ.get("BOTS_EMU_DRIVER_VERSION"):
        pytest.fail(f"BOTS_EMU_DRIVER_VERSION is set but the driver here is not the emulated one (it reports {got})")
    pytest.skip(f"not the emulated driver (cuDriverGetVersion: {got})")


def test_the_kernels_load_and_agree_with_the_cpu_on_this_driver():
    """On the driver here (in CI: the emulated one reporting the floor, 12.2), the CUDA pool opens and
    its select and update agree with the CPU pool bit for bit."""
    built, why = bots.cuda_build_info()
    if not built:
        pytest.skip(why)
    env_version = os.environ.get("BOTS_EMU_DRIVER_VERSION")
    if env_version:
        assert run_python(DRIVER_VERSION) == env_version, "the emulated driver does not report BOTS_EMU_DRIVER_VERSION"
    config = {"batch": K, "seed": 7}
    try:
        gpu = bots.Pool(N, features=features(), config=config, backend="cuda")
    except RuntimeError as e:
        if os.environ.get("BOTS_REQUIRE_GPU") == "1":
            pytest.fail(f"BOTS_REQUIRE_GPU=1 but the CUDA pool does not open: {e}")
        pytest.skip(f"no usable CUDA driver: {e}")
    cpu = bots.Pool(N, features=features(), config=config)
    rng = np.random.default_rng(3)
    for _ in range(2):
        want = cpu.select()
        np.testing.assert_array_equal(gpu.select(), want)
        rates = (rng.integers(0, 17, K) / 16).astype(np.float32)
        assert gpu.update(want, pass_rates=rates) == cpu.update(want, pass_rates=rates)
    g, c = gpu.state(), cpu.state()
    for key in ("alpha", "beta"):
        np.testing.assert_array_equal(g[key], c[key], err_msg=key)


def test_a_driver_older_than_the_ptx_refuses_it_clearly():
    """As driver 12.2 (the floor), the release just before the one the PTX needs, and that release: the
    pool opens exactly when the driver knows the PTX's ISA, and otherwise says which ISA and driver."""
    need = needed_cuda()
    emulated_or_skip()
    older = max(v for v in PTX_TO_CUDA.values() if v < need)
    isa = ".".join(map(str, _bots.ptx_isa()))
    for version in sorted({FLOOR_CUDA, older, need}):
        got = run_python(OPEN_CUDA_POOL, BOTS_EMU_DRIVER_VERSION=version)
        if version >= need:
            assert got == "LOADED", f"driver {cuda_version_string(version)}: {got}"
        else:
            assert got.startswith("REFUSED"), f"driver {cuda_version_string(version)} loaded PTX ISA {isa}"
            assert "CUDA_ERROR_UNSUPPORTED_PTX_VERSION" in got, got
            assert f"Unsupported .version {isa}" in got, got


def test_the_wheel_meets_the_floor_and_is_the_installed_one():
    """scripts/wheel-check.sh (BOTS_WHEEL_CHECK=1): the package under test is the installed wheel (not
    python/bots/ from the checkout), and its PTX loads on the floor's driver."""
    if os.environ.get("BOTS_WHEEL_CHECK") != "1":
        pytest.skip("only for the wheel (scripts/wheel-check.sh)")
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert "site-packages" in bots.__file__ and not bots.__file__.startswith(here), bots.__file__
    assert tuple(_bots.ptx_isa()) <= FLOOR_PTX, f"PTX ISA {_bots.ptx_isa()} needs a driver newer than CUDA 12.2"
    assert needed_cuda() <= FLOOR_CUDA
