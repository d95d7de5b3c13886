"""A worker process: builds each cell's model and measures its phases. The parent talks to it over a pipe."""

from __future__ import annotations

import gc
import hashlib
from dataclasses import replace

import torch

import implementations

from . import checks, compilation, gpu, memory, phases, reference, timing
from .pool import sticky_device_error
from .suite import COUNT_LOOPS

# cold cells flush the cache before every call, un-timed: a value of at most this many calls bounds the wall time
COLD_MAX_LOOPS = 32
STICKY_NOTE = " (a sticky CUDA error: this worker process is replaced before the next cell)"

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}


def seed_of(config_hash: str) -> int:
    """A per-cell seed, the same in every process, so every process measures the same weights and inputs."""
    return int(hashlib.sha256(config_hash.encode()).hexdigest()[:8], 16)


def resolve_device(name: str) -> torch.device:
    """ "cuda" -> cuda:0 (the visible device), "cpu" -> cpu."""
    return torch.device("cuda", 0) if name == "cuda" else torch.device(name)


def spec_of(cell: dict) -> str:
    """What implementations.get loads for a request's cell: the suite's "module:factory", else the adapter's name."""
    return cell.get("source") or cell["impl"]


def build_workload(cell: dict, config_hash: str, clock: str = "wall") -> tuple[phases.Workload, dict]:
    """The model, inputs, target, output gradient and optimizer of a cell, plus its parameter counts."""
    adapter = implementations.get(spec_of(cell))
    device, dtype = resolve_device(cell["device"]), DTYPES[cell["dtype"]]
    amp = cell.get("precision", "pure") == "amp"
    held = torch.float32 if amp else dtype  # amp: float32 weights and inputs, the dtype only inside autocast
    torch.manual_seed(seed_of(config_hash))
    model = adapter.build(cell["widths"], cell["grid_size"], cell["spline_order"], **cell["options"])
    model = model.to(device=device, dtype=held).train()
    if cell.get("compile"):
        model = compilation.compile_model(model)  # compiles lazily: the first call of each phase pays, un-timed
    gen = torch.Generator().manual_seed(seed_of(config_hash) + 1)
    batch, n_in, n_out = cell["batch_size"], cell["widths"][0], cell["widths"][-1]
    x = (torch.rand(batch, n_in, generator=gen) * 2 - 1).to(device=device, dtype=held)  # inside every KAN's grid
    target = torch.randn(batch, n_out, generator=gen).to(device=device, dtype=held)
    grad_out = torch.randn(batch, n_out, generator=gen).to(device=device, dtype=dtype)  # as the output comes
    trainable = [p for p in model.parameters() if p.requires_grad]
    modes = cell.get("modes", {})
    graphs = bool(modes.get("cuda_graphs")) and device.type == "cuda"  # a captured step needs its state on device
    optimizer = torch.optim.AdamW(trainable, lr=1e-3, capturable=graphs) if trainable else None  # None: an error
    counts = {
        "family": adapter.family,
        "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "params_total": sum(p.numel() for p in model.parameters()),
        "num_basis": getattr(model.layers[0], "num_basis", 0) if hasattr(model, "layers") else 0,
    }
    sync, tick = timing.synchronizer(device), timing.make_clock(clock)
    split = timing.split_for(device) if clock == "wall" else None  # CUDA: device time from events
    workload = phases.Workload(model, x, target, grad_out, optimizer, sync, tick, split)
    if amp:  # graph capture needs autocast's weight-cast cache off (torch.cuda.graphs' rule)
        workload.autocast = lambda: torch.autocast(device.type, dtype=dtype, cache_enabled=not graphs)
        workload.scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    if modes.get("cache") == "cold":
        workload.flush = phases.cache_flusher(device)
    return workload, counts


def count_flops(call) -> int:
    """FLOPs that torch.utils.flop_counter counts for one call (matmul-like ops only)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        call()
    return int(counter.get_total_flops())


def prepare(
    cell: dict, config_hash: str, max_call_s: float, clock: str = "wall"
) -> tuple[phases.Workload | None, dict]:
    """The checks every worker makes before measuring a cell, and its workload.

    Returns (workload, result): result holds the counts and first_forward_s; with workload None, result is the
    reply to send (an error or a skip, with its reason).
    """
    result: dict = {"status": "ok", "reason": None, "phases": {}}
    problem = checks.check_once(spec_of(cell), cell["options"], cell["device"])
    if problem:
        return None, {**result, "status": "error", "reason": problem}
    try:
        w, counts = build_workload(cell, config_hash, clock)
        result.update(counts)
        probe = timing.loop_timer(phases.forward_call(w), w.sync)
        result["first_forward_s"] = probe(1)  # includes compilation, and on CUDA the context and library set-up
        first_call = probe(1)  # a warm call for the max_call_s bound
        out = phases.forward_call(w)()
        expected = (cell["batch_size"], cell["widths"][-1])
        if tuple(out.shape) != expected:
            reason = f"forward gave shape {tuple(out.shape)}, expected {expected}"
            return None, {**result, "status": "error", "reason": reason}
        if not torch.isfinite(out).all():
            bad = int((~torch.isfinite(out)).sum())
            reason = f"forward gave {bad} non-finite value(s) of {out.numel()} (nan or inf) on inputs in [-1, 1]"
            return None, {**result, "status": "error", "reason": reason}
        del out
        if first_call > max_call_s and clock != "instructions":  # valgrind's slowdown makes wall time moot
            reason = f"one forward call took {first_call:.3g} s > limits.max_call_s = {max_call_s:g} s"
            return None, {**result, "status": "skipped", "reason": reason}
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        return None, {**result, "status": "error", "reason": reason, "restart": sticky_device_error(exc)}
    return w, result


class ClockLog:
    """The SM clock (MHz) read after every value of a CUDA phase: {"min": lowest seen, "max": the device's maximum}.

    Empty off CUDA and without nvidia-ml-py (environment.json["gpu"]["nvml_reason"] says why)."""

    _readers: dict = {}  # per device index, once per process: opening nvml is not free

    def __init__(self, device: torch.device):
        self.seen: dict = {}
        self.read = None
        if device.type == "cuda":
            index = device.index or 0
            if index not in self._readers:
                self._readers[index] = gpu.sm_clock_reader(index)
            self.read = self._readers[index]

    def sample(self) -> None:
        """Read the clock once."""
        if self.read is not None:
            now, top = self.read()
            self.seen = {"min": min(now, self.seen.get("min", now)), "max": top}


def measure_cell(cell: dict, config_hash: str, phase_names: list[str], t: dict, max_call_s: float, first: bool) -> dict:
    """Every phase of one cell in this process: values, loops, and (in the first process) memory and FLOPs."""
    clock = t.get("clock", "wall")
    since = compilation.snapshot()
    w, result = prepare(cell, config_hash, max_call_s, clock)
    if w is None:
        return result
    counting = clock == "instructions"
    device = w.x.device
    uncompiled = replace(w, model=compilation.eager(w.model))  # FlopCounterMode on a compiled model disables dynamo
    slowdown = phases.slowdown_factor(cell["impl"])
    modes = cell.get("modes", {})
    graphs = bool(modes.get("cuda_graphs"))
    max_loops = COLD_MAX_LOOPS if w.flush is not None else timing.MAX_LOOPS
    for name in phase_names:
        entry: dict = {"status": "ok", "reason": None}
        problem = phases.graph_problem(name, w, bool(cell.get("compile"))) if graphs else None
        if problem:
            result["phases"][name] = {"status": "skipped", "reason": problem}
            continue
        try:
            run = phases.phase_run(name, w, slowdown, graphs)
            first_call = run(1)  # un-timed: compiles this phase's graph for compiled cells
            entry["first_call_s"] = None if counting else first_call  # in seconds only
            clocks = ClockLog(device)
            if counting:
                m = measure_counts(run, t)
            else:
                sample = clocks.sample if clocks.read else None  # nothing to read off CUDA or without nvml
                m = timing.measure(run, t["warmup"], t["min_time"], t["values"], split=w.split, after=sample,
                                   max_loops=max_loops)  # fmt: skip
            entry.update(values=m.values, loops=m.loops)
            if m.host_values is not None:
                entry["host_values"] = m.host_values
            if clocks.seen:
                entry["sm_clock_mhz"] = clocks.seen
            if first:
                entry["peak_mem_bytes"] = phases.measure_once(name, w, lambda c: memory.peak_bytes(c, device))
                entry["flops_counted"] = phases.measure_once(name, uncompiled, count_flops)
        except Exception as exc:  # one phase failing (an unsupported dtype, out of memory) spares the others
            entry = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
            if isinstance(w.clock, timing.InstructionClock):
                w.clock.abandon()
            if isinstance(exc, torch.OutOfMemoryError) and torch.cuda.is_available():
                torch.cuda.empty_cache()
            if sticky_device_error(exc):  # the rest of this process's CUDA work would fail with it
                result["restart"] = True
                result["phases"][name] = {**entry, "reason": entry["reason"] + STICKY_NOTE}
                for rest in phase_names[phase_names.index(name) + 1 :]:
                    result["phases"][rest] = {"status": "error", "reason": f"not measured: {name} hit{STICKY_NOTE}"}
                break
        result["phases"][name] = entry
    if cell.get("compile"):
        result["compiled"] = compilation.stats(since)
        eager = compilation.fell_back(result["compiled"])
        for name, entry in result["phases"].items():
            if eager and entry["status"] == "ok":
                result["phases"][name] = {"status": "error", "reason": eager}
    del w, uncompiled
    gc.collect()
    return result


def measure_counts(run, t: dict) -> timing.Measurement:
    """The instruction clock's values, with Python's cyclic garbage collector off (as timeit does).

    A collection can cost millions of instructions and falls wherever an allocation count says, not where the code
    under test asks for it; each cell starts from a collected heap instead.
    """
    gc.collect()
    gc.disable()
    try:
        return timing.measure(run, t["warmup"], t["min_time"], t["values"], COUNT_LOOPS)
    finally:
        gc.enable()


def handle(request: dict) -> dict:
    """Timing worker handler (kanbench.pool): measure one cell as the speed kind's request describes, after the
    reference workload when the request asks for it (a process's first cell of a group)."""
    ref, measured = request.get("reference"), None
    if ref:
        try:
            measured = {**ref, **reference.measure(ref["device"])}
        except Exception as exc:  # the reference describes the machine: never lose the cell over it
            measured = {**ref, "error": f"{type(exc).__name__}: {exc}"}
    result = measure_cell(request["cell"], request["config_hash"], request["phases"], request["timing"],
                          request["max_call_s"], request["first"])  # fmt: skip
    if measured is not None:
        result["reference"] = measured
    return result
