"""Peak allocator memory of one call, above what was allocated before it, on CPU and CUDA."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator

import torch


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (kineto prints profiler_start/stop lines from C++ at every profile)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_cuda(fn: Callable[[], object], device: torch.device, reserved: bool = False) -> int:
    """Peak bytes of the CUDA caching allocator during fn(), above those before it: allocated to tensors, or with
    reserved, reserved from the device starting from an emptied cache (what fn takes of the device's free memory:
    allocations rounded up to the allocator's blocks, fragmentation)."""
    current, highest = (
        (torch.cuda.memory_reserved, torch.cuda.max_memory_reserved)
        if reserved
        else (torch.cuda.memory_allocated, torch.cuda.max_memory_allocated)
    )
    torch.cuda.synchronize(device)
    if reserved:
        torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    before = current(device)
    result = fn()
    torch.cuda.synchronize(device)
    peak = highest(device) - before
    del result
    if reserved:
        torch.cuda.empty_cache()
    return max(int(peak), 0)


def peak_cpu(fn: Callable[[], object]) -> int:
    """Peak bytes of CPU tensor memory during fn(), from the allocator events torch.profiler records."""
    from torch.profiler import ProfilerActivity, profile

    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
    del result
    events = [
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU
    ]
    level = peak = 0
    for _, nbytes in sorted(events):  # allocations are positive, frees negative
        level += nbytes
        peak = max(peak, level)
    return peak


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak allocator bytes of one call of fn on device, above what was allocated before the call."""
    if device.type == "cuda":
        return peak_cuda(fn, device)
    return peak_cpu(fn)
