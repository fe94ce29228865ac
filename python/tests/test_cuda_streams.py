"""Device verbs given a foreign stream, then the host verbs.

`Pool.select(out=...)` and `Pool.update(<torch tensors>)` pass torch's current stream (by default the
legacy NULL stream) to the crate's raw verbs, while `sync`, `state`, `save` and the numpy `select` read
on the pool's own stream. The crate fences the two (its kernels wait for the foreign stream's earlier
work, and the foreign stream waits for them), so the host verbs see every device verb.

Runs where a CUDA driver is usable: the emulated driver in CI (`.ci/run` puts target/emu-driver first on
LD_LIBRARY_PATH and sets BOTS_REQUIRE_GPU=1), or a GPU. The emulated driver runs a stream only when
something waits for it, so without the fences `sync` reads the step before the update, every time.
Device buffers come from the driver API through ctypes, so no torch is needed.
"""
import ctypes
import os
import sys

import numpy as np
import pytest

import bots
from pool_features import reference_features

N = 3000
K = 16


class Driver:
    """The few driver calls the test needs, on the context the pool made current on this thread."""

    def __init__(self, lib):
        self.lib = lib

    def _ok(self, r, what):
        assert r == 0, f"{what}: CUresult {r}"

    def alloc(self, nbytes):
        p = ctypes.c_uint64()
        self._ok(self.lib.cuMemAlloc_v2(ctypes.byref(p), ctypes.c_size_t(nbytes)), "cuMemAlloc_v2")
        return p.value

    def free(self, p):
        self._ok(self.lib.cuMemFree_v2(ctypes.c_uint64(p)), "cuMemFree_v2")

    def upload_async(self, a, stream):
        """Copies `a` to a new device buffer, enqueued on `stream` (not waited for)."""
        a = np.ascontiguousarray(a)
        p = self.alloc(a.nbytes)
        r = self.lib.cuMemcpyHtoDAsync_v2(
            ctypes.c_uint64(p), a.ctypes.data_as(ctypes.c_void_p), ctypes.c_size_t(a.nbytes), ctypes.c_void_p(stream)
        )
        self._ok(r, "cuMemcpyHtoDAsync_v2")
        return p

    def download(self, p, n, dtype):
        out = np.empty(n, dtype=dtype)
        r = self.lib.cuMemcpyDtoH_v2(out.ctypes.data_as(ctypes.c_void_p), ctypes.c_uint64(p), ctypes.c_size_t(out.nbytes))
        self._ok(r, "cuMemcpyDtoH_v2")
        return out


def cuda_pool_or_skip(pool_kwargs=None, **config):
    built, reason = bots.cuda_build_info()
    why = None
    if not built:
        why = reason
    else:
        try:
            pool = bots.Pool(N, features=features(), config=config, backend="cuda", **(pool_kwargs or {}))
            return pool, Driver(ctypes.CDLL("libcuda.so"))
        except (OSError, RuntimeError) as e:
            why = str(e)
    if os.environ.get("BOTS_REQUIRE_GPU") == "1":
        pytest.fail(f"BOTS_REQUIRE_GPU=1 but the CUDA backend is unusable: {why}")
    sys.__stderr__.write(f"SKIPPED {os.environ.get('PYTEST_CURRENT_TEST', '?')}: no usable CUDA driver ({why})\n")
    pytest.skip(f"no usable CUDA driver: {why}")


def features(n=N, seed=5):
    return reference_features(n, seed)


LEGACY = 0  # torch.cuda.current_stream().cuda_stream of the default stream


def test_device_verbs_on_the_legacy_stream_are_seen_by_the_host_verbs():
    config = {"batch": K, "seed": 7}
    gpu, cu = cuda_pool_or_skip(**config)
    cpu = bots.Pool(N, features=features(), config=config)
    rng = np.random.default_rng(3)
    for step in range(3):
        want = cpu.select()
        out = cu.alloc(4 * K)
        gpu._pool._select_into_device(K, out, LEGACY)
        np.testing.assert_array_equal(cu.download(out, K, np.uint32), want)
        rates = (rng.integers(0, 17, K) / 16).astype(np.float32)
        tasks = cu.upload_async(want.astype(np.uint32), LEGACY)
        dev_rates = cu.upload_async(rates, LEGACY)
        gpu._pool._update_from_device(tasks, K, LEGACY, pass_rates=dev_rates)
        report = cpu.update(want, rates)
        # On the pool's own stream: sees the update enqueued on the legacy stream.
        got = gpu.sync()
        assert got["step"] == step + 1, f"step {step}: sync read {got['step']}"
        assert got["mu"] == report["mu"] and got["rho"] == report["rho"]
        for p in (out, tasks, dev_rates):
            cu.free(p)
    # The numpy select and the state, both on the pool's own stream, agree bit for bit with the CPU.
    np.testing.assert_array_equal(gpu.select(), cpu.select())
    g, c = gpu.state(), cpu.state()
    for key in ("alpha", "beta"):
        np.testing.assert_array_equal(g[key], c[key], err_msg=key)
    assert g["step"] == c["step"] == 3


def test_a_bad_device_batch_on_the_legacy_stream_is_reported_by_sync():
    gpu, cu = cuda_pool_or_skip(batch=K, seed=7)
    before = gpu.state()
    bad = np.arange(K, dtype=np.uint32)
    bad[3] = N + 5  # out of range
    tasks = cu.upload_async(bad, LEGACY)
    rates = cu.upload_async(np.full(K, 0.5, dtype=np.float32), LEGACY)
    gpu._pool._update_from_device(tasks, K, LEGACY, pass_rates=rates)
    with pytest.raises(ValueError, match=str(N + 5)):
        gpu.sync()
    after = gpu.state()
    for key in ("alpha", "beta"):
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    assert after["step"] == before["step"] == 0
    cu.free(tasks)
    cu.free(rates)


def test_neighbour_evidence_and_appends_agree_with_the_cpu():
    """A pool with an embedding graph (neighbour evidence) and an append mid-run: the CUDA pool
    selects and updates as the CPU pool does, bit for bit."""
    rng = np.random.default_rng(11)
    emb = rng.normal(size=(N + 40, 8)).astype(np.float32)
    config = {"batch": K, "seed": 3, "neighbour_weight": 0.5}
    kw = {"embeddings": emb[:N], "neighbour_k": 6}
    gpu, _ = cuda_pool_or_skip(pool_kwargs=kw, **config)
    cpu = bots.Pool(N, features=features(), config=config, **kw)
    more = reference_features(40, 9)
    for step in range(6):
        if step == 3:
            for p in (gpu, cpu):
                assert p.append(features=more, embeddings=emb[N:]) == range(N, N + 40)
        t = cpu.select()
        np.testing.assert_array_equal(gpu.select(), t)
        r = rng.integers(0, 17, len(t)) / 16
        gpu.update(t, pass_rates=r)
        cpu.update(t, pass_rates=r)
    g, c = gpu.state(), cpu.state()
    for key in ("alpha", "beta", "neighbour_ids", "neighbour_weights"):
        np.testing.assert_array_equal(g[key], c[key], err_msg=key)
