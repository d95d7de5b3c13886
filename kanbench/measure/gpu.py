"""The GPU a run measures: who it is and how it runs, read where CUDA already lives.

A run's parent never initialises CUDA (under EXCLUSIVE_PROCESS a context in the parent would lock its own workers
out, and its cache would hold GiBs for the whole run): `probe_in_worker` asks a short-lived worker process for the
device's description (`describe`) and its ceilings (kanbench.measure.machine), and the timing workers read the SM clock
around every value (`sm_clock_reader`) to flag throttled cells. State comes from nvidia-ml-py (the optional extra
kanbench[gpu]); without it the nvml fields are absent and `nvml_reason` says why. nvml numbers every GPU of the
machine and ignores CUDA_VISIBLE_DEVICES, so the visible device is found by its UUID.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

THROTTLE_SHARE = 0.75  # nvbench's rule: a cell during which the SM clock fell below 75% of its maximum is throttled
# nvmlClocksEventReason* bits (nvml.h); idle and the applications-clock setting are not slowdowns
THROTTLE_BITS = {0x4: "sw_power_cap", 0x8: "hw_slowdown", 0x10: "sync_boost", 0x20: "sw_thermal",
                 0x40: "hw_thermal", 0x80: "hw_power_brake", 0x100: "display_clock"}  # fmt: skip
COMPUTE_MODES = {0: "default", 1: "exclusive_thread", 2: "prohibited", 3: "exclusive_process"}
NVML_MISSING = "nvidia-ml-py is not installed (pip install 'kanbench[gpu]')"


def nvml_device(index: int = 0) -> tuple[Any, Any] | str:
    """(pynvml, handle) of visible CUDA device `index`, or the reason there is none."""
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        return NVML_MISSING
    try:
        import torch

        pynvml.nvmlInit()
        uuid = str(torch.cuda.get_device_properties(index).uuid)
        prefixed = uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
        return pynvml, pynvml.nvmlDeviceGetHandleByUUID(prefixed)
    except Exception as exc:  # no driver, an unknown UUID
        return f"nvml could not open cuda:{index}: {type(exc).__name__}: {exc}"


def throttle_reasons(mask: int) -> list[str]:
    """The slowdown reasons set in an nvml clocks-event mask."""
    return [name for bit, name in THROTTLE_BITS.items() if mask & bit]


def nvml_state(index: int = 0) -> dict:
    """UUID, clocks (current and max), power limit, persistence, compute and MIG mode, throttle reasons."""
    opened = nvml_device(index)
    if isinstance(opened, str):
        return {"nvml_reason": opened}
    nv, handle = opened
    reads: dict[str, Callable[[], Any]] = {
        "uuid": lambda: _text(nv.nvmlDeviceGetUUID(handle)),
        "driver_version": lambda: _text(nv.nvmlSystemGetDriverVersion()),
        "sm_clock_mhz": lambda: nv.nvmlDeviceGetClockInfo(handle, nv.NVML_CLOCK_SM),
        "sm_clock_max_mhz": lambda: nv.nvmlDeviceGetMaxClockInfo(handle, nv.NVML_CLOCK_SM),
        "mem_clock_mhz": lambda: nv.nvmlDeviceGetClockInfo(handle, nv.NVML_CLOCK_MEM),
        "mem_clock_max_mhz": lambda: nv.nvmlDeviceGetMaxClockInfo(handle, nv.NVML_CLOCK_MEM),
        "power_limit_w": lambda: nv.nvmlDeviceGetPowerManagementLimit(handle) / 1000,
        "persistence_mode": lambda: bool(nv.nvmlDeviceGetPersistenceMode(handle)),
        "compute_mode": lambda: COMPUTE_MODES.get(nv.nvmlDeviceGetComputeMode(handle), "unknown"),
        "mig_mode": lambda: bool(nv.nvmlDeviceGetMigMode(handle)[0]),
        "throttle_reasons": lambda: throttle_reasons(nv.nvmlDeviceGetCurrentClocksThrottleReasons(handle)),
    }
    state: dict = {}
    for key, read in reads.items():
        try:
            state[key] = read()
        except Exception as exc:  # NotSupported on some boards (e.g. MIG on a consumer GPU): say so, go on
            state[key] = None
            state.setdefault("nvml_unsupported", {})[key] = f"{type(exc).__name__}"
    return state


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def describe(index: int = 0) -> dict:
    """Everything about visible CUDA device `index` that a result depends on (initialises CUDA: workers only)."""
    import torch

    props = torch.cuda.get_device_properties(index)
    state = nvml_state(index)
    if not state.get("driver_version"):
        state["driver_version"] = smi_driver_version()
    return {
        "name": props.name,
        "uuid": str(props.uuid),
        "capability": [props.major, props.minor],
        "total_memory_bytes": props.total_memory,
        "multiprocessors": props.multi_processor_count,
        "l2_cache_bytes": getattr(props, "L2_cache_size", None),
        "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "cudnn_version": torch.backends.cudnn.version(),
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        **state,
    }


def smi_driver_version() -> str | None:
    """The driver version from nvidia-smi (a subprocess, so this process's CUDA state is untouched), or None."""
    import subprocess

    try:
        query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
        found = subprocess.run(query, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    return found[0] if found else None


def sm_clock_reader(index: int = 0) -> Callable[[], tuple[float, float]] | None:
    """() -> (current, max) SM clock in MHz of visible CUDA device `index`, or None without nvml."""
    opened = nvml_device(index)
    if isinstance(opened, str):
        return None
    nv, handle = opened
    try:
        top = float(nv.nvmlDeviceGetMaxClockInfo(handle, nv.NVML_CLOCK_SM))
    except Exception:
        return None
    return lambda: (float(nv.nvmlDeviceGetClockInfo(handle, nv.NVML_CLOCK_SM)), top)


def throttled(lowest_mhz: float | None, max_mhz: float | None) -> bool | None:
    """Whether the SM clock fell below THROTTLE_SHARE of its maximum; None when it was not read."""
    if lowest_mhz is None or not max_mhz:
        return None
    return lowest_mhz < THROTTLE_SHARE * max_mhz


def probe(request: dict) -> dict:
    """Worker handler (kanbench.measure.pool): the device's description and its ceilings for request["dtypes"]."""
    from . import machine

    device = request["device"]
    out: dict = {"status": "ok", "gpu": describe(0) if device == "cuda" else None}
    if request.get("dtypes"):
        out["ceilings"] = machine.ceilings(device, request["threads"], request["dtypes"], request["measure"])
    return out


def probe_in_worker(device: str, dtypes: list[str], threads: int, measure: bool, timeout: float = 900.0) -> dict:
    """probe() in a fresh worker process, which exits afterwards: the caller's process never touches the device."""
    from .pool import WorkerPool

    workers = WorkerPool(1, threads, "kanbench.measure.gpu:probe")
    try:
        reply = workers.measure(0, {"device": device, "dtypes": dtypes, "threads": threads, "measure": measure},
                                timeout)  # fmt: skip
    finally:
        workers.close()
    if reply.get("status") != "ok":
        raise RuntimeError(f"the {device} probe worker failed: {reply.get('reason')}")
    return reply
