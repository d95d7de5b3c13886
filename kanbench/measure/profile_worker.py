"""A profiling worker process: runs each cell's phases under torch.profiler, writes traces, returns breakdowns.

Each step of the profiler schedule is one call of the phase, built as in the timing runs (kanbench.measure.phases);
setup that the phase does not time (backward's forward pass, device synchronisation) runs inside a
`kanbench::untimed` range and is left out of the breakdown. Each layer's `basis` is wrapped, on the instance and
only here, in a `kanbench::basis` range, so elementwise ops can be told apart by what encloses them.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function, schedule, tensorboard_trace_handler

import implementations

from . import opcategories as oc
from . import phases
from .breakdown import Breakdown
from .reply import Reply
from .worker import prepare, spec_of

# Layer methods that evaluate the basis: `basis` (the adapter contract) and bspline-fast's `basis_rows`, the
# (batch, K, in) layout its forward calls instead. Functions elsewhere come from the adapter's basis_hook.
BASIS_METHODS = ("basis", "basis_rows")


# Lines the profiler's native library writes to stderr at every start and stop: thousands on a profile run.
NATIVE_NOISE = ("USDT:", "STAGE:")


@contextlib.contextmanager
def native_stderr_filtered() -> Iterator[None]:
    """Hold what native code writes to fd 2 while profiling and pass on every line but the profiler's own chatter."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().splitlines(keepends=True)
                    if not line.decode(errors="replace").startswith(NATIVE_NOISE)]  # fmt: skip
            if kept:
                os.write(2, b"".join(kept))


def _in_range(name: str, fn: Callable) -> Callable:
    def wrapped(*args, **kwargs):
        with record_function(name):
            return fn(*args, **kwargs)

    wrapped.__wrapped__ = fn  # type: ignore[attr-defined]  # a function takes attributes; mypy knows none of them
    return wrapped


@contextlib.contextmanager
def basis_ranges(model: torch.nn.Module, functions: Iterable[tuple[object, str]] = ()) -> Iterator[int]:
    """Wrap each layer's basis and each (owner, attribute) function in a kanbench::basis range; yields how many.

    `functions` are what the adapter's basis_hook names: functions the model's forward calls instead of layer.basis.
    """
    wrapped = 0
    layers = getattr(model, "layers", [])
    for layer in layers:
        names = [name for name in BASIS_METHODS if callable(getattr(layer, name, None))]
        for name in names:  # an instance attribute shadows the method
            setattr(layer, name, _in_range(oc.BASIS_RANGE, getattr(layer, name)))
        wrapped += bool(names)
    patched = []
    for owner, attr in functions:
        original = getattr(owner, attr, None)
        if not callable(original):
            raise TypeError(f"the basis_hook names {attr!r} of {owner!r}, which is not callable; name a function")
        setattr(owner, attr, _in_range(oc.BASIS_RANGE, original))
        patched.append((owner, attr, original))
    try:
        yield wrapped + len(patched)
    finally:
        for layer in layers:
            for name in BASIS_METHODS:
                if name in vars(layer):
                    delattr(layer, name)
        for module, attr, original in patched:
            setattr(module, attr, original)


def step_function(phase: str, w: phases.Workload) -> Callable[[], None]:
    """One profiled call of the phase; what the phase does not time runs in a kanbench::untimed range."""
    sync = w.sync

    def untimed_sync() -> None:
        with record_function(oc.UNTIMED_RANGE):
            sync()

    if phase == "backward":
        model, forward, grad_out = w.model, phases.forward_call(w), w.grad_out

        def backward_step() -> None:
            with record_function(oc.UNTIMED_RANGE):
                model.zero_grad(set_to_none=True)
                out = forward()
                sync()
            out.backward(grad_out)
            untimed_sync()

        return backward_step
    call = phases.CALLS[phase](w)

    def step() -> None:
        call()
        untimed_sync()

    return step


def activities_for(device: torch.device) -> list[ProfilerActivity]:
    """CPU always; CUDA when the cell runs on a CUDA device."""
    return [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])


def profile_phase(phase: str, w: phases.Workload, settings: dict, trace_dir: Path, has_basis: bool) -> dict:
    """Run the profiler schedule over calls of one phase; the trace files and the breakdown's metrics."""
    activities = activities_for(w.x.device)
    breakdown = Breakdown(device_activity=ProfilerActivity.CUDA in activities)
    write = tensorboard_trace_handler(str(trace_dir), worker_name=phase)
    before = set(trace_dir.glob(f"{phase}.*.pt.trace.json"))

    def on_trace_ready(prof) -> None:
        write(prof)
        breakdown.add(prof.events())

    step = step_function(phase, w)
    cycle = settings["wait"] + settings["warmup"] + settings["active"]
    repeat = max(1, settings["repeat"])  # torch reads repeat = 0 as "until the loop ends": here that is one cycle
    with (
        native_stderr_filtered(),
        warnings.catch_warnings(),
        profile(
            activities=activities,
            schedule=schedule(
                wait=settings["wait"], warmup=settings["warmup"], active=settings["active"], repeat=repeat
            ),
            on_trace_ready=on_trace_ready,
            record_shapes=settings["record_shapes"],
            profile_memory=settings["profile_memory"],
            with_stack=settings["with_stack"],
        ) as prof,
    ):
        # on_trace_ready reads each cycle's events before the profiler clears them, as intended
        warnings.filterwarnings("ignore", message=".*clears events at the end of each cycle")
        for _ in range(cycle * repeat):
            step()
            prof.step()
    metrics = breakdown.metrics()
    if not has_basis:
        metrics["attribution"] = "none"  # the model has no basis (an MLP): nothing to attribute
    metrics["trace_files"] = sorted(str(p) for p in set(trace_dir.glob(f"{phase}.*.pt.trace.json")) - before)
    return metrics


def profile_cell(cell: dict, config_hash: str, phase_names: list[str], settings: dict, trace_dir: str,
                 max_call_s: float) -> dict:  # fmt: skip
    """Every phase of one cell: checks as before timing, then one profiler schedule per phase."""
    w, result = prepare(cell, config_hash, max_call_s)
    if w is None:
        return result
    try:
        adapter = implementations.get(spec_of(cell))  # for its basis_hook
        directory = Path(trace_dir)
        directory.mkdir(parents=True, exist_ok=True)
    except Exception as exc:
        return {**result, "status": "error", "reason": f"{type(exc).__name__}: {exc}"}
    for name in phase_names:
        try:
            if cell.get("compile"):  # wrapping basis would make torch.compile trace a different function
                metrics = profile_phase(name, w, settings, directory, has_basis=True)
                metrics["attribution"] = "compiled"
            else:
                with basis_ranges(w.model, adapter.basis_functions(w.model)) as wrapped:
                    metrics = profile_phase(name, w, settings, directory, has_basis=wrapped > 0)
            result["phases"][name] = {"status": "ok", "reason": None, "metrics": metrics}
        except Exception as exc:  # one phase failing spares the others
            result["phases"][name] = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
            if isinstance(exc, torch.OutOfMemoryError) and torch.cuda.is_available():
                torch.cuda.empty_cache()
    del w
    gc.collect()
    return result


def handle(request: dict) -> Reply:
    """Profile worker handler (kanbench.measure.pool): profile one cell as the profile kind's request describes."""
    return Reply.from_dict(profile_cell(request["cell"], request["config_hash"], request["phases"],
                                        request["settings"], request["trace_dir"], request["max_call_s"]))  # fmt: skip
