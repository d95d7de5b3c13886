"""A worker process: builds each cell's model and measures its phases. The parent talks to it over a pipe."""

from __future__ import annotations

import functools
import gc
import hashlib
import time
from dataclasses import dataclass, replace

import torch

import implementations

from ..results import noise
from ..suite import COUNT_LOOPS
from . import checks, compilation, gpu, memory, phases, timing
from .pool import sticky_device_error
from .reply import Reply

# cold cells flush the cache before every call, un-timed: a value of at most this many calls bounds the wall time
COLD_MAX_LOOPS = 32
# the reference workload's warmup, min_time and values: fixed, not the suite's, so runs of different suites compare
REFERENCE_TIMING = (3, 0.01, 5)
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


def model_counts(model: torch.nn.Module) -> dict:
    """A built model's trainable and total parameters and its first layer's bases per edge (0: none)."""
    layers = getattr(model, "layers", None)
    return {"params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "params_total": sum(p.numel() for p in model.parameters()),
            "num_basis": getattr(layers[0], "num_basis", 0) if layers is not None else 0}  # fmt: skip


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
    counts = {"family": adapter.family, **model_counts(model)}
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


@dataclass
class Slot:
    """One phase of one cell of the group a worker measures: its Timed, its reply entry and its clock log."""

    cell: int  # index into the group's cells
    phase: str
    w: phases.Workload
    timed: timing.Timed
    entry: dict
    clocks: ClockLog


def _failed(exc: BaseException, w: phases.Workload) -> dict:
    """The reply entry of a phase that raised, after undoing what the exception left (an open count, CUDA cache)."""
    if isinstance(w.clock, timing.InstructionClock):
        w.clock.abandon()
    if isinstance(exc, torch.OutOfMemoryError) and torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}


def _poison(results: list[dict], cells: int, phase_names: list[str], name: str) -> None:
    """A sticky CUDA error: this process is replaced, and no phase of the group it has not finished is measured."""
    while len(results) < cells:
        results.append({"status": "ok", "reason": None, "phases": {}})
    for result in results:
        result["restart"] = True
        if result["status"] != "ok":
            continue
        for phase in phase_names:
            entry = result["phases"].get(phase)
            if entry is None or (entry.get("status") == "ok" and "values" not in entry):
                result["phases"][phase] = {"status": "error", "reason": f"not measured: {name} hit{STICKY_NOTE}"}


def _setup(index: int, cell: dict, name: str, w: phases.Workload, t: dict, result: dict) -> Slot | None:
    """A phase made ready to take values: its run built, first call and warm-up made, loops calibrated. The
    instruction clock's values are counted here whole (counts do not drift: no rounds). None when the phase is
    done (skipped, failed, counted)."""
    counting = t.get("clock", "wall") == "instructions"
    graphs = bool(cell.get("modes", {}).get("cuda_graphs"))
    problem = phases.graph_problem(name, w, bool(cell.get("compile"))) if graphs else None
    if problem:
        result["phases"][name] = {"status": "skipped", "reason": problem}
        return None
    entry: dict = {"status": "ok", "reason": None}
    result["phases"][name] = entry
    try:
        run = phases.phase_run(name, w, phases.slowdown_factor(cell["impl"]), graphs)
        first_call = run(1)  # un-timed: compiles this phase's graph for compiled cells
        entry["first_call_s"] = None if counting else first_call  # in seconds only
        if counting:
            m = measure_counts(run, t)
            entry.update(values=m.values, loops=m.loops)
            return None
        if t["warmup"]:
            run(t["warmup"])
        max_loops = COLD_MAX_LOOPS if w.flush is not None else timing.MAX_LOOPS
        loops = timing.calibrate(run, t["min_time"], max_loops)
    except Exception as exc:  # one phase failing (an unsupported dtype, out of memory) spares the others
        result["phases"][name] = _failed(exc, w)
        if sticky_device_error(exc):
            result["phases"][name]["reason"] += STICKY_NOTE
            result["restart"] = True
        return None
    entry["loops"] = loops
    return Slot(index, name, w, timing.Timed(run, loops, w.split), entry, ClockLog(w.x.device))


def measure_group(
    cells: list[dict], phase_names: list[str], t: dict, first: bool, seed: int | None = None
) -> list[dict]:
    """Every phase of every cell of a group in this process: each (cell, phase) checked, warmed up and calibrated,
    then values taken in interleaved rounds (timing.measure_rounds, order from seed), and in the first process
    peak memory and FLOPs. cells: {"cell", "config_hash", "max_call_s"} each. One result per cell, as measure_cell.

    The instruction clock takes no rounds: each phase's counts are taken whole, phase after phase.
    """
    clock = t.get("clock", "wall")
    results: list[dict] = []
    slots: list[Slot] = []
    held: list[tuple[int, phases.Workload]] = []
    for index, c in enumerate(cells):
        since = compilation.snapshot()
        w, result = prepare(c["cell"], c["config_hash"], c["max_call_s"], clock)
        results.append(result)
        if w is None:
            if result.get("restart"):
                _poison(results, len(cells), phase_names, "building a model")
                slots = []  # the process's CUDA context is broken: nothing set up before is measured
                break
            continue
        held.append((index, w))
        for name in phase_names:
            slot = _setup(index, c["cell"], name, w, t, result)
            if slot is not None:
                slots.append(slot)
            if result.get("restart"):
                _poison(results, len(cells), phase_names, name)
                slots = []  # the process's CUDA context is broken: nothing set up before is measured
                break
        if c["cell"].get("compile"):
            result["compiled"] = compilation.stats(since)
        if result.get("restart"):
            break
    if slots:
        logs = [s.clocks for s in slots]
        timing.measure_rounds([s.timed for s in slots], t["values"], seed or 0, after=lambda i: logs[i].sample(),
                              poisons=sticky_device_error)  # fmt: skip
        for s in slots:
            if s.timed.error is not None:
                s.entry.clear()
                s.entry.update(_failed(s.timed.error, s.w))
                if sticky_device_error(s.timed.error):
                    s.entry["reason"] += STICKY_NOTE
                    results[s.cell]["restart"] = True
                continue
            s.entry.update(values=s.timed.values, rounds=s.timed.rounds, positions=s.timed.positions)
            if s.timed.split is not None:
                s.entry["host_values"] = s.timed.host_values
            if s.clocks.seen:
                s.entry["sm_clock_mhz"] = s.clocks.seen
    if first and not any(r.get("restart") for r in results):
        _memory_and_flops(results, held, phase_names)
    for index, _ in held:
        result = results[index]
        eager = compilation.fell_back(result["compiled"]) if "compiled" in result else None
        for name, entry in result["phases"].items():
            if eager and entry["status"] == "ok":
                result["phases"][name] = {"status": "error", "reason": eager}
    held.clear()  # the group's models and inputs, before the next group's
    slots.clear()
    gc.collect()
    return results


def _memory_and_flops(results: list[dict], held: list[tuple[int, phases.Workload]], phase_names: list[str]) -> None:
    """Peak memory and counted FLOPs of one call of every measured phase (the first process only)."""
    for index, w in held:
        uncompiled = replace(w, model=compilation.eager(w.model))  # FlopCounterMode on a compiled model: no dynamo
        peak = functools.partial(memory.peak_bytes, device=w.x.device)
        for name in phase_names:
            entry = results[index]["phases"].get(name)
            if not entry or entry["status"] != "ok":
                continue
            try:
                entry["peak_mem_bytes"] = phases.measure_once(name, w, peak)
                entry["flops_counted"] = phases.measure_once(name, uncompiled, count_flops)
            except Exception as exc:
                results[index]["phases"][name] = _failed(exc, w)


def measure_cell(cell: dict, config_hash: str, phase_names: list[str], t: dict, max_call_s: float, first: bool) -> dict:
    """Every phase of one cell in this process (a group of one): values, loops, and (if first) memory and FLOPs."""
    return measure_group([{"cell": cell, "config_hash": config_hash, "max_call_s": max_call_s}], phase_names, t,
                         first)[0]  # fmt: skip


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


def time_reference(device_name: str) -> dict:
    """Time the reference workload (results/noise.py) in this process, seconds per call: values, loops, when (UTC)."""
    device = torch.device(device_name)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(noise.SIZE, noise.SIZE, generator=gen).to(device)
    w = torch.randn(noise.SIZE, noise.SIZE, generator=gen).div_(noise.SIZE**0.5).to(device)

    def call() -> torch.Tensor:
        return torch.tanh(x @ w)

    with torch.no_grad():
        run = timing.loop_timer(call, timing.synchronizer(device))
        m = timing.measure(run, *REFERENCE_TIMING)
    return {"values": m.values, "loops": m.loops, "utc": time.time()}


def handle(request: dict) -> Reply:
    """Timing worker handler (kanbench.measure.pool): measure one group as the speed kind's request describes, after the
    reference workload when the request asks for it. Replies with one Reply per cell, the process and its seed."""
    ref, measured = request.get("reference"), None
    if ref:
        try:
            measured = {**ref, **time_reference(ref["device"])}
        except Exception as exc:  # the reference describes the machine: never lose the cell over it
            measured = {**ref, "error": f"{type(exc).__name__}: {exc}"}
    seed = request.get("seed")
    found = measure_group(request["cells"], request["phases"], request["timing"], request["first"], seed)
    return Reply(cells=[Reply.from_dict(r) for r in found], process=request.get("process", 0), seed=seed,
                 reference=measured, restart=any(r.get("restart") for r in found))  # fmt: skip
