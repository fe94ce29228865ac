"""Save, kill the process (SIGKILL), load in a new process: the next selections equal those of an
uninterrupted run, for bots.Pool, the Trinity-RFT selector (its JSON state) and the verl sampler."""
import json
import os
import signal
import subprocess
import sys

import pytest

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "resume_driver.py")


def driver(kind, mode, d):
    return subprocess.run([sys.executable, DRIVER, kind, mode, str(d)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("kind", ["pool", "trinity", "verl"])
def test_killed_and_resumed_selects_as_uninterrupted(kind, tmp_path):
    full = driver(kind, "full", tmp_path / "full")
    assert full.returncode == 0, full.stderr
    (tmp_path / "run").mkdir()
    first = driver(kind, "first", tmp_path / "run")
    assert first.returncode == -signal.SIGKILL, f"the first process should die by SIGKILL: {first.returncode} {first.stderr}"
    second = driver(kind, "second", tmp_path / "run")
    assert second.returncode == 0, second.stderr
    want, got = json.loads(full.stdout), json.loads(second.stdout)
    assert len(want) == 4 and all(len(b) == 16 for b in want)
    assert got == want
