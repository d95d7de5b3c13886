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
