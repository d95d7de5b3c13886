"""The timing engine: warm up, calibrate loops to min_time, then measure values (seconds per call).

A phase supplies `run(loops) -> seconds`, which performs `loops` calls and returns the time spent in the part
that the phase names only, with the device synchronised at both ends of every timed region.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

MAX_LOOPS = 1_000_000

# "wall": time.perf_counter, what a user waits. "thread": the calling thread's CPU time, which leaves out the time
# a shared machine's scheduler takes the thread off its core; only meaningful on CPU with one torch thread.
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "thread": time.thread_time}


@dataclass
class Measurement:
    """Raw per-call values of one phase in one process, and the loops each value averaged over."""

    values: list[float]
    loops: int


def synchronizer(device: torch.device) -> Callable[[], None]:
    """A function that waits for all queued work on device (a no-op on CPU)."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def loop_timer(
    call: Callable[[], object],
    sync: Callable[[], None],
    context: Callable[[], AbstractContextManager] = nullcontext,
    clock: Callable[[], float] = time.perf_counter,
) -> Callable[[int], float]:
    """run(loops) for a call that is timed whole: sync, clock, loops calls, sync, clock, all inside context()."""

    def run(loops: int) -> float:
        with context():
            sync()
            start = clock()
            for _ in range(loops):
                call()
            sync()
            return clock() - start

    return run


def calibrate(run: Callable[[int], float], min_time: float) -> int:
    """Smallest power-of-two-ish loop count whose run lasts at least min_time."""
    loops = 1
    while loops < MAX_LOOPS:
        elapsed = run(loops)
        if elapsed >= min_time:
            return loops
        # aim 20% past min_time, but never grow more than 10x at once: the first calls can be slow
        wanted = math.ceil(loops * 1.2 * min_time / max(elapsed, 1e-9))
        loops = min(max(loops * 2, min(wanted, loops * 10)), MAX_LOOPS)
    return loops


def measure(run: Callable[[int], float], warmup: int, min_time: float, values: int) -> Measurement:
    """Warm up with `warmup` calls, calibrate loops, then take `values` values of seconds per call."""
    if warmup:
        run(warmup)
    loops = calibrate(run, min_time)
    return Measurement([run(loops) / loops for _ in range(values)], loops)
