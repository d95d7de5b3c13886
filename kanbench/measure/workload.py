"""The reference workload (kanbench.results.noise): timed in a worker process right before each group it measures."""

from __future__ import annotations

import time

from ..results.noise import SIZE
from . import timing

WARMUP, MIN_TIME, VALUES = 3, 0.01, 5  # fixed, not the suite's: references of different suites are comparable


def measure(device_name: str) -> dict:
    """Time the reference workload in this process (seconds per call): values, loops, and when (UTC seconds)."""
    import torch

    device = torch.device(device_name)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(SIZE, SIZE, generator=gen).to(device)
    w = torch.randn(SIZE, SIZE, generator=gen).div_(SIZE**0.5).to(device)

    def call() -> torch.Tensor:
        return torch.tanh(x @ w)

    with torch.no_grad():
        run = timing.loop_timer(call, timing.synchronizer(device))
        m = timing.measure(run, WARMUP, MIN_TIME, VALUES)
    return {"values": m.values, "loops": m.loops, "utc": time.time()}
