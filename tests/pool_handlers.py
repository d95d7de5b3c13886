"""Handlers for worker-pool tests (a spawned worker imports this module by name)."""

from __future__ import annotations

import os

import torch


def handle(request: str) -> dict:
    """ "pid": this worker's pid; "crash": a sticky CUDA error; "oom": an out-of-memory error."""
    if request == "crash":
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
    if request == "oom":
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    return {"status": "ok", "pid": os.getpid()}


def kill_parent_once(request: dict) -> dict:
    """The first request that names a marker file kills this worker's parent (a Ray task's process) and never
    replies; every later one, the marker now there, replies at once: a task that Ray must retry."""
    import signal
    from pathlib import Path

    marker = Path(request["marker"])
    if not marker.exists():
        marker.write_text(str(os.getppid()))
        os.kill(os.getppid(), signal.SIGKILL)
        return {"status": "error", "reason": "unreachable: the parent is gone"}
    return {"status": "ok", "reason": f"pid {os.getpid()}, {request['cell']}"}  # kanbench.measure.reply's keys only


def kill_parent_always(request: dict) -> dict:
    """Kill this worker's parent (a Ray task's process) every time: a task that exhausts Ray's retries."""
    import signal

    os.kill(os.getppid(), signal.SIGKILL)
    return {"status": "error", "reason": "unreachable: the parent is gone"}
