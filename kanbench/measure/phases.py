"""The timed phases. Each builds run(loops) -> seconds that times only what the phase names.

Inputs, targets and output gradients are made before timing. `backward` rebuilds its graph outside the timed
region before every call, so only the backward pass itself is on the clock.
"""

from __future__ import annotations

import functools
import glob
import itertools
import math
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import torch
from torch import nn

from .timing import Split, loop_timer

T = TypeVar("T")


@dataclass
class Workload:
    """A built model with its inputs, on one device and dtype."""

    model: nn.Module
    x: torch.Tensor
    target: torch.Tensor
    grad_out: torch.Tensor
    optimizer: torch.optim.Optimizer | None
    sync: Callable[[], None]
    clock: Callable[[], float] = time.perf_counter  # timing.CLOCKS[suite's [timing].clock]
    split: Split | None = None  # CUDA: regions timed by events, host time beside (timing.split_for)
    # precision = "amp": the float32 model's forward (and loss) run under this autocast context; float16 train
    # steps scale the loss with a GradScaler (whose step reads found-inf on the host, as every AMP loop does)
    autocast: Callable[[], AbstractContextManager] | None = None
    scaler: Any = None
    flush: Callable[[], None] | None = None  # cache = "cold": run un-timed before every timed call


def forward_call(w: Workload) -> Callable[[], torch.Tensor]:
    """One training-mode forward with autograd recording (the graph is freed when the output is dropped); under
    autocast for amp cells, entered per call as a training loop does."""
    if w.autocast is None:
        return functools.partial(w.model, w.x)
    model, x, autocast = w.model, w.x, w.autocast

    def amp_forward():
        with autocast():
            return model(x)

    return amp_forward


def train_step_call(w: Workload) -> Callable[[], object]:
    """zero_grad(set_to_none=True), forward, MSE loss, backward, optimizer step."""
    # None (a model without trainable parameters) fails on the first call: train_step is then an error
    model, x, target, opt = w.model, w.x, w.target, cast(torch.optim.Optimizer, w.optimizer)
    loss_fn = nn.functional.mse_loss
    if w.autocast is None:

        def call():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), target)
            loss.backward()
            opt.step()
            return loss

        return call
    autocast, scaler = w.autocast, w.scaler

    def amp_call():
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = loss_fn(model(x), target)
        if scaler is None:  # bfloat16: float32's exponent range, no scaling
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        return loss

    return amp_call


def per_call_run(
    prepare: Callable[[], T], timed: Callable[[T], object], w: Workload,
    context: Callable[[], AbstractContextManager] = nullcontext,
) -> Callable[[int], float]:  # fmt: skip
    """run(loops): per call, prepare() un-timed, then time timed(prepared) alone; the loop inside context().

    With a split (CUDA) each timed call is bracketed by events, with no host sync per call: the device time is the
    events' sum, taken with one sync at the end, and split.host the host's time issuing the timed calls.
    """
    sync, clock, split = w.sync, w.clock, w.split

    def run(loops: int) -> float:
        total = 0.0
        with context():
            if split is not None:
                for _ in range(loops):
                    state = prepare()
                    start = clock()
                    split.events.start()
                    timed(state)
                    split.events.stop()
                    total += clock() - start
                split.host = total
                device = split.events.take()
                sync()
                return device
            for _ in range(loops):
                state = prepare()
                sync()
                start = clock()
                timed(state)
                sync()
                total += clock() - start
        return total

    return run


def backward_run(w: Workload, extra: int = 0) -> Callable[[int], float]:
    """run(loops): per call, build the graph un-timed (and flush the cache, for cold cells), then time
    out.backward(grad_out) alone (+ busy(extra))."""
    model, grad_out, forward, flush = w.model, w.grad_out, forward_call(w), w.flush

    def prepare() -> torch.Tensor:
        model.zero_grad(set_to_none=True)
        out = forward()
        if flush is not None:
            flush()
        return out

    def timed(out: torch.Tensor) -> None:
        out.backward(grad_out)
        if extra:
            busy(extra)

    return per_call_run(prepare, timed, w)


def cache_bytes(device: torch.device) -> int:
    """The last-level cache the device's work runs through: a GPU's L2, else the largest CPU cache sysfs lists."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).L2_cache_size)
    sizes = []
    for entry in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        text = Path(entry).read_text().strip().upper()
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        sizes.append(int(text.rstrip("KMG")) * scale)
    return max(sizes, default=32 * 2**20)  # unknown: a 32 MiB last-level cache, larger than most


def cache_flusher(device: torch.device, nbytes: int | None = None) -> Callable[[], None]:
    """flush(): zero a buffer of twice the last-level cache on device (do_bench's rule), evicting what calls left."""
    buffer = torch.empty((nbytes or 2 * cache_bytes(device)) // 4, dtype=torch.int32, device=device)

    def flush() -> None:
        buffer.zero_()

    return flush


# forward_inference is one forward too, run inside torch.inference_mode() (_run, captured, measure_once)
CALLS = {"forward": forward_call, "forward_inference": forward_call, "train_step": train_step_call}


def phase_run(phase: str, w: Workload, slowdown: float = 1.0, graphs: bool = False) -> Callable[[int], float]:
    """run(loops) -> clock units for one phase; slowdown > 1 adds that much real work inside each call; graphs
    times replays of the call captured in a CUDA graph (graph_problem says when it cannot be)."""
    if graphs:
        return _run(phase, w, 0, captured(phase, w))
    run = _run(phase, w, 0)
    if slowdown != 1.0:
        run = _run(phase, w, slowdown_iterations(run, slowdown, w.clock))
    return run


def graph_problem(phase: str, w: Workload, compiled: bool) -> str | None:
    """Why this phase of this workload cannot be timed as CUDA graph replays, or None."""
    if w.x.device.type != "cuda":
        return f"cuda_graphs needs a CUDA device; this cell is on {w.x.device.type}"
    if phase == "backward":
        return (
            "cuda_graphs: a replay cannot rebuild the autograd graph that backward consumes, and backward "
            "alone cannot be captured apart from its forward; train_step replays forward + backward + step"
        )
    if compiled:
        return "cuda_graphs with compile: use torch.compile's own CUDA graphs (mode='reduce-overhead')"
    if phase == "train_step" and w.scaler is not None:
        return "cuda_graphs: GradScaler's step reads found-inf on the host, which a captured step cannot do"
    return None


def captured(phase: str, w: Workload, warmup: int = 3) -> Callable[[], None]:
    """The phase's call captured in a CUDA graph as torch.cuda.graphs documents: warmed up on a side stream (cuBLAS
    workspaces, autograd and optimizer state allocated there), captured once; returns the graph's replay."""
    call = CALLS[phase](w)
    context = torch.inference_mode if phase == "forward_inference" else nullcontext
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), context():
        for _ in range(warmup):
            call()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), context():
        outputs = call()  # lives in the graph's memory pool; every replay rewrites it

    def replay() -> None:
        graph.replay()

    replay.outputs = outputs  # type: ignore[attr-defined]  # held as long as the replay is
    return replay


def _run(phase: str, w: Workload, extra: int, replay: Callable[[], None] | None = None) -> Callable[[int], float]:
    if phase == "backward":
        return backward_run(w, extra)
    call = replay or CALLS[phase](w)
    if extra:
        call = with_busy_work(call, extra)
    context = torch.inference_mode if phase == "forward_inference" else nullcontext
    if w.flush is not None:  # cold: every call timed on its own, after the flush
        return per_call_run(w.flush, lambda _: call(), w, context)
    return loop_timer(call, w.sync, context, w.clock, w.split)


def measure_once(phase: str, w: Workload, measure: Callable[[Callable[[], object]], T]) -> T:
    """measure(call) applied to one call of the phase; backward's graph is built before, outside measure."""
    if phase == "backward":
        w.model.zero_grad(set_to_none=True)
        out = forward_call(w)()
        w.sync()
        return measure(lambda: out.backward(w.grad_out))
    if phase == "forward_inference":
        call = CALLS[phase](w)

        def call_in_inference_mode():
            with torch.inference_mode():
                return call()

        return measure(call_in_inference_mode)
    return measure(CALLS[phase](w))


# --- slowdown injection, for testing the regression gate only (off unless KANBENCH_SLOWDOWN is set) ---
# The injected slowdown is real work inside the measured call, a fixed number of Python loop iterations sized once
# before measuring, so every clock sees it alike: seconds on the wall and thread clocks, instructions on callgrind.


def busy(iterations: int) -> None:
    """A fixed amount of pure-Python work that allocates nothing (so its instruction count is exact)."""
    for _ in itertools.repeat(None, iterations):
        pass


def with_busy_work(call: Callable[[], object], iterations: int) -> Callable[[], object]:
    """call, then busy(iterations), as one call."""

    def slow_call():
        result = call()
        busy(iterations)
        return result

    return slow_call


def slowdown_iterations(
    run: Callable[[int], float], factor: float, clock: Callable[[], float], probe: int = 20_000
) -> int:
    """Iterations of busy() that cost (factor - 1) times one call of run, both measured on clock."""
    run(2)  # warm: the first calls of a phase are slow
    per_call = run(4) / 4
    start = clock()
    busy(probe)
    per_iteration = (clock() - start) / probe
    return max(1, round((factor - 1.0) * per_call / max(per_iteration, 1e-12)))


def slowdown_factor(impl: str, spec: str | None = None) -> float:
    """The factor KANBENCH_SLOWDOWN ("impl=factor[,impl=factor]") sets for impl; 1.0 when unset."""
    spec = os.environ.get("KANBENCH_SLOWDOWN", "") if spec is None else spec
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, value = item.partition("=")
        try:
            factor = float(value)
        except ValueError:
            raise ValueError(f"KANBENCH_SLOWDOWN item {item!r}: expected impl=factor, e.g. bspline=1.15") from None
        if not (math.isfinite(factor) and factor >= 1.0):
            raise ValueError(f"KANBENCH_SLOWDOWN item {item!r}: factor must be a finite number >= 1")
        if not name.strip():
            raise ValueError(f"KANBENCH_SLOWDOWN item {item!r}: expected impl=factor, e.g. bspline=1.15")
        if name.strip() == impl:
            return factor
    return 1.0
