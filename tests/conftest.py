"""Shared fixtures: a tiny real run, made once per test session, for tests that read runs."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(tempfile.gettempdir()) / "kanbench-test-cache"  # roofline figures, measured once per test machine

TINY_SUITE = """
[suite]
name = "tiny"
kind = "speed"
implementations = ["bspline", "fastkan", "rswaf", "mlp"]
phases = ["forward", "backward", "train_step"]

[axes]
widths = [[6, 5, 3]]
grid_size = [3]
batch_size = [4, 8]
device = ["cpu", "cuda"]
dtype = ["float32"]

[timing]
warmup = 1
min_time = 0.0005
values = 3
processes = 2
threads = 1
"""


# The tiny suite on the CPU at one batch size: the smallest real speed run (4 cells, 3 phases).
SMALL_SUITE = TINY_SUITE.replace('device = ["cpu", "cuda"]', 'device = ["cpu"]').replace(
    "batch_size = [4, 8]", "batch_size = [4]"
)


def write_suite(directory: Path, text: str = SMALL_SUITE, name: str = "s.toml") -> Path:
    """A suite file in directory."""
    path = directory / name
    path.write_text(text)
    return path


def kanbench(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None):
    """Run `python -m kanbench ARGS` in a subprocess; returns the CompletedProcess."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
    full_env.setdefault("KANBENCH_CACHE", str(CACHE))
    return subprocess.run(
        [sys.executable, "-m", "kanbench", *args],
        cwd=cwd or ROOT, capture_output=True, text=True, timeout=timeout, env=full_env,
    )  # fmt: skip


@pytest.fixture(scope="session")
def tiny_suite(tmp_path_factory) -> Path:
    """The tiny suite written to a file."""
    path = tmp_path_factory.mktemp("suite") / "tiny.toml"
    path.write_text(TINY_SUITE)
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_suite) -> Path:
    """A real run of the tiny suite (cpu cells measured, cuda cells skipped here)."""
    out = tmp_path_factory.mktemp("runs") / "tiny-run"
    proc = kanbench("run", str(tiny_suite), "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return out
