"""The timed phases. Each builds run(loops) -> seconds that times only what the phase names.

Inputs, targets and output gradients are made before timing. `backward` rebuilds its graph outside the timed
region before every call, so only the backward pass itself is on the clock.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
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


def inference_call(w: Workload) -> Callable[[], torch.Tensor]:
    """One forward; phase_run times it inside one torch.inference_mode() region around the whole loop."""
    return forward_call(w)


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


def backward_run(w: Workload, extra: int = 0) -> Callable[[int], float]:
    """run(loops): per call, build the graph un-timed, then time out.backward(grad_out) alone (+ busy(extra)).

    With a split (CUDA) each backward is bracketed by events, with no host sync per call: the device time is the
    events' sum, taken with one sync at the end, and split.host the host's time issuing the backwards.
    """
    model, grad_out, sync = w.model, w.grad_out, w.sync
    clock, split, forward = w.clock, w.split, forward_call(w)

    def run(loops: int) -> float:
        total = 0.0
        if split is not None:
            for _ in range(loops):
                model.zero_grad(set_to_none=True)
                out = forward()
                start = clock()
                split.events.start()
                out.backward(grad_out)
                if extra:
                    busy(extra)
                split.events.stop()
                total += clock() - start
            split.host = total
            device = split.events.take()
            sync()
            return device
        for _ in range(loops):
            model.zero_grad(set_to_none=True)
            out = forward()
            sync()
            start = clock()
            out.backward(grad_out)
            if extra:
                busy(extra)
            sync()
            total += clock() - start
        return total

    return run


CALLS = {"forward": forward_call, "forward_inference": inference_call, "train_step": train_step_call}


def phase_run(phase: str, w: Workload, slowdown: float = 1.0) -> Callable[[int], float]:
    """run(loops) -> clock units for one phase; slowdown > 1 adds that much real work inside each call."""
    run = _run(phase, w, 0)
    if slowdown != 1.0:
        run = _run(phase, w, slowdown_iterations(run, slowdown, w.clock))
    return run


def _run(phase: str, w: Workload, extra: int) -> Callable[[int], float]:
    if phase == "backward":
        return backward_run(w, extra)
    call = CALLS[phase](w)
    if extra:
        call = with_busy_work(call, extra)
    context = torch.inference_mode if phase == "forward_inference" else nullcontext
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
