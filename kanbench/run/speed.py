"""The speed kind: time every phase of every cell in worker processes (kanbench.measure.worker), one Record per phase.

Cells that differ only in implementation form a group; each worker process measures a whole group in one request:
every (cell, phase) of it takes its values in interleaved rounds, in an order shuffled per round from a seed derived
from the group and the process (kanbench.measure.worker.measure_group), after timing the reference workload
(kanbench.results.noise), so the run knows how much the machine itself drifted between groups. Which process goes
first rotates per group. Records of a group are written once every process has measured it, so an interrupted run
loses at most the group in flight (--resume finishes it).
"""

from __future__ import annotations

import secrets
from dataclasses import asdict
from pathlib import Path

from .. import results
from ..errors import UsageError
from ..measure import gpu, machine
from ..measure.reply import PhaseResult, Reply
from ..results import noise
from ..results.record import Identity, Record, SpeedMetrics, TimeStats, make
from ..suite import CLOCK_UNITS, COUNT_LOOPS, Cell, Suite, Timing, stable_hash
from . import progress, terminal
from .kind import BaseKind, Presentation, Request

# Under callgrind a call runs about this many times slower, and each worker first imports torch there.
CALLGRIND_SLOWDOWN, CALLGRIND_START_S = 60.0, 90.0
ONE_TIME_S = 0.5  # per worker and implementation: the float64 gradcheck and the first calls of its ops
DTYPE_BYTES = {"float32": 4, "float64": 8, "bfloat16": 2, "float16": 2}


def check_valgrind(t: Timing) -> None:
    """The instruction clock needs valgrind on this machine: a UsageError naming the fix, before anything runs."""
    import shutil

    from ..measure.pool import VALGRIND_HINT

    if t.clock == "instructions" and not shutil.which("valgrind"):
        raise UsageError(f'[timing].clock = "instructions" counts with valgrind, which is not on PATH: {VALGRIND_HINT}')


def identity(cell: Cell, suite: Suite) -> Identity:
    """The identity every Record of a speed or profile cell shares."""
    import implementations

    info = implementations.info(cell.spec)
    options = {**dict(cell.options), **({"compile": True} if cell.compile else {}),
               **({"precision": cell.precision} if cell.precision != "pure" else {}), **dict(cell.modes)}  # fmt: skip
    return Identity(
        suite=suite.name, impl=cell.impl, family=info.family, device=cell.device, dtype=cell.dtype,
        batch_size=cell.batch_size, widths=cell.widths, grid_size=cell.grid_size, spline_order=cell.spline_order,
        num_basis=cell.grid_size + cell.spline_order if info.has_basis else 0, options=options,
        config_hash=cell.config_hash,
    )  # fmt: skip


def flop_breakdown(cell: Cell) -> dict[str, int] | None:
    """The adapter's analytic FLOPs of one call by kind (implementations.Adapter.flop_breakdown), or None."""
    import implementations

    try:
        adapter = implementations.get(cell.spec)
        return adapter.flop_breakdown(list(cell.widths), cell.grid_size, cell.spline_order, cell.batch_size,
                                      **dict(cell.options))  # fmt: skip
    except Exception:  # an estimate only: a cell that cannot be built fails in its worker, with its reason
        return None


def record_notes(spec: str, options: dict) -> dict:
    """What an implementation's ok records say about how it was built and costed (Adapter.record_notes): for a class
    joined as "module:Class", that its FLOPs are counted and which of grid_size and spline_order it ignored."""
    import implementations

    try:
        return implementations.get(spec).record_notes(**options)
    except Exception:  # a cell that cannot be built fails in its worker, with its reason
        return {}


def call_estimate(cell: Cell) -> float:
    """Rough seconds of one forward call: the adapter's FLOPs at ~10 GFLOP/s (1 TFLOP/s on CUDA)."""
    breakdown = flop_breakdown(cell)
    forward = phase_flops(breakdown, "forward", 0) if breakdown else 0
    return (forward or 0) / (1e12 if cell.device == "cuda" else 1e10)


def phase_flops(breakdown: dict[str, int], phase: str, params: int, counted: int | None = None) -> int | None:
    """FLOPs of one call of a phase (see docs/methodology.md); None where neither the adapter nor the FLOP counter
    gives its backward matmuls.

    Backward matmuls are the adapter's exact count (the model input needs no gradient, so the first layer's
    input-gradient product often never runs), else what FlopCounterMode counted for the phase (`counted`: the
    phase's matmuls, forward's included for train_step); elementwise work is estimated at twice the forward's.
    """
    forward = breakdown["matmul"] + breakdown["elementwise"]
    if phase in ("forward", "forward_inference"):
        return forward
    matmul_backward = breakdown.get("matmul_backward")
    if matmul_backward is None and counted is not None:
        matmul_backward = counted - (breakdown["matmul"] if phase == "train_step" else 0)
    if matmul_backward is None:
        return None
    backward = matmul_backward + 2 * breakdown["elementwise"]
    if phase == "backward":
        return backward
    return forward + backward + 12 * params  # train_step: forward, backward, AdamW update


def device_peaks(cells: list[Cell], threads: int, measure: bool = True) -> tuple[dict[str, dict], dict | None]:
    """Cached (or, if measure, newly measured) ceilings of each device and dtype the cells use, and the GPU's
    description when cells run on cuda: ({"cpu": machine.ceilings(...), "cuda": ...}, gpu or None).

    A GPU is probed in a worker process (kanbench.measure.gpu), so this process never initialises CUDA.
    """
    peaks: dict[str, dict] = {}
    described = None
    for device in sorted({c.device for c in cells}):
        dtypes = sorted({c.dtype for c in cells if c.device == device})
        try:
            if device == "cpu":
                peaks[device] = machine.ceilings(device, threads, dtypes, measure)
            else:
                reply = gpu.probe_in_worker(device, dtypes, threads, measure)
                peaks[device], described = reply["ceilings"], reply["gpu"]
        except Exception as exc:  # a roofline is a bonus: never lose a run over it
            peaks[device] = {"error": f"{type(exc).__name__}: {exc}"}
    return peaks, described


def roofline(record: Record, metrics: SpeedMetrics, peak: dict | None) -> None:
    """Fill in the fraction of peak FLOP/s and an arithmetic intensity estimate."""
    # bytes that must move at least once: every parameter read, every byte the phase allocates written
    moved = (record.params_total or 0) * DTYPE_BYTES.get(record.dtype, 4) + (record.peak_mem_bytes or 0)
    metrics.bytes_estimate = moved
    metrics.arithmetic_intensity = record.flops / moved if moved and record.flops is not None else None
    ceiling = results.peak_for(peak, "peak_flop_per_s", record.device, record.dtype)
    if ceiling and record.flop_per_s:  # the ceiling of the record's own dtype, never float32's for a bfloat16 cell
        metrics.fraction_of_peak = record.flop_per_s / ceiling


def order_seed(cell: Cell, process: int) -> int:
    """The seed of process's shuffled rounds in cell's group: the same on every machine and run."""
    return int(stable_hash({"group": cell.group_hash, "process": process})[:8], 16)


def group_name(cell: Cell) -> str:
    """The group a cell is measured in, named without its implementation: "100x100 G5 k3 b8 cpu float32"."""
    first, rest = cell.label().split(" ", 1)
    modes = first.partition("+")[2]  # what the implementation's label adds: compile, precision, modes
    return f"{rest} +{modes}" if modes else rest


def combine(entries: list[PhaseResult], replies: list[Reply], compiled: bool) -> tuple[TimeStats, int, SpeedMetrics]:
    """How the ok results of one phase from every worker process make one record: the values' statistics, peak
    memory and the measured metrics, one rule for each, here only (roofline() adds the derived ones)."""
    paired = all(e.rounds is not None for e in entries)  # taken in interleaved rounds, not counted whole
    stats = TimeStats.from_values([e.values or [] for e in entries], entries[0].loops or 1,
                                  [e.rounds or [] for e in entries] if paired else None,
                                  [i if r.process is None else r.process for i, r in enumerate(replies)])  # fmt: skip
    host = None
    if all(e.host_values is not None for e in entries):  # event-timed (CUDA): the host's issue time beside
        host = TimeStats.from_values([e.host_values or [] for e in entries], entries[0].loops or 1)
    positions = [p for e in entries for p in e.positions or []]  # each value's place in its round
    seen = [e.sm_clock_mhz for e in entries if e.sm_clock_mhz]
    clocks = {"min": min(c["min"] for c in seen), "max": max(c["max"] for c in seen)} if seen else None
    metrics = SpeedMetrics(
        flops_counted_matmul=entries[0].flops_counted,  # the first process counts
        first_call_s=[e.first_call_s for e in entries],  # one per process
        first_forward_s=[r.first_forward_s for r in replies],
        compiled=[r.compiled for r in replies] if compiled else None,
        host_time_s=asdict(host) if host else None,
        launch_bound=host.median >= stats.median if host else None,
        sm_clock_mhz=clocks,  # the lowest clock any process saw, the device's maximum
        throttled=gpu.throttled(clocks["min"], clocks["max"]) if clocks else None,
        interleaved={"seed": [r.seed for r in replies], "position": positions} if paired else None,
    )
    peak = max(e.peak_mem_bytes for e in entries if e.peak_mem_bytes is not None)  # the first process measures
    return stats, peak, metrics


class SpeedPresentation(Presentation):
    """What a speed run shows: the workers' start and one-time costs in its estimates, the table of medians."""

    kind: SpeedKind

    def start_s(self) -> float:
        """Each worker process starting (under callgrind: importing torch there)."""
        return self.kind.t.processes * (CALLGRIND_START_S if self.kind.under else 4.0)

    def one_time_s(self, impl: str) -> float:
        """Each worker's correctness check and first calls of an implementation (ONE_TIME_S a worker; how it was
        measured: docs/methodology.md, "Progress")."""
        return self.kind.t.processes * ONE_TIME_S * (CALLGRIND_SLOWDOWN if self.kind.under else 1.0)

    def planned(self, cells: list[Cell]) -> str:
        """Cells, phases and processes."""
        return f"{len(cells)} cells x {len(self.kind.phases)} phases, {self.kind.t.processes} processes"

    def summary(self, records: list[Record]) -> str:
        """The terminal table of medians."""
        return terminal.table(records)


class SpeedKind(BaseKind):
    """Time the phases of a speed suite's cells."""

    name = "speed"
    handler = "kanbench.measure.worker:handle"
    presents = SpeedPresentation

    def __init__(self, suite: Suite, timing: Timing, cells: list[Cell], phases: tuple[str, ...], smoke: bool):
        self.suite, self.t, self.phases, self.smoke = suite, timing, phases, smoke
        self._cells = cells
        self.processes, self.threads = timing.processes, timing.threads
        self.under = "callgrind" if timing.clock == "instructions" else None
        self.peaks: dict[str, dict] = {}
        self.run_dir: Path | None = None
        # names this session's groups: a cell a --resume measures alone is never paired with its group's cells
        # of the session that measured them before
        self.session_tag = secrets.token_hex(4)

    def cells(self) -> list[Cell]:
        """The cells to measure, in suite order."""
        return self._cells

    def attach(self, run_dir: Path) -> None:
        """Reference measurements go into the run directory beside the records."""
        self.run_dir = run_dir

    def keys(self, cell: Cell) -> list[tuple[str, str, str | None]]:
        """One Record per phase."""
        return [(cell.config_hash, phase, None) for phase in self.phases]

    def estimate(self, cell: Cell) -> float:
        """Rough wall time: per phase (values + calibration) x max(min_time, one call) per process."""
        t, call = self.t, call_estimate(cell)
        if self.under:  # fixed loops, every call slowed by callgrind
            per_phase = (t.values * COUNT_LOOPS + t.warmup + 2) * call * CALLGRIND_SLOWDOWN + 0.5
        else:
            # values + calibration, and the warm-up and one un-timed call before each value
            per_phase = (t.values + 4) * max(t.min_time, call) + (t.warmup + t.values) * call + 0.02
        return t.processes * (len(self.phases) * per_phase * 1.5 + 0.1)

    def settings(self) -> dict:
        """The effective timing, stored in environment.json and checked on --resume."""
        return {"timing": asdict(self.t), "phases": list(self.phases), "smoke": self.smoke}

    def before_workers(self, cells: list[Cell], environment: dict, bar: progress.Progress) -> None:
        """Look up (or measure once) the roofline ceilings of the devices the cells use."""
        bar.note("roofline ceilings of this machine (measured once, then cached; --smoke uses the cache only)")
        self.peaks, described = device_peaks(cells, self.t.threads, measure=not self.smoke)
        environment["machine"] = {"by_device": self.peaks}
        if described:
            environment["gpu"] = described

    def requests(self, group: list[Cell], group_index: int) -> list[Request]:
        """One request per process, each the whole group interleaved; which worker serves it, and the order the
        cells are set up in, rotate. The order seed of process p is order_seed(group, p): recorded, reproducible."""
        out = []
        for step in range(self.t.processes):
            slot = (group_index + step) % self.t.processes
            order = group[step % len(group) :] + group[: step % len(group)]
            cells = [{"cell": {**cell.key, "source": cell.source}, "config_hash": cell.config_hash,
                      "max_call_s": self.suite.limits.for_impl(cell.impl)} for cell in order]  # fmt: skip
            payload = {"cells": cells, "phases": list(self.phases), "timing": asdict(self.t), "first": step == 0,
                       "process": step, "seed": order_seed(group[0], step)}  # fmt: skip
            if not self.under:  # counts do not vary with the machine: no reference
                payload["reference"] = {"group": group_name(group[0]), "cells": [c.config_hash for c in group],
                                        "process": step, "device": group[0].device}  # fmt: skip
            label = f"{group_name(group[0])}: {len(group)} implementation(s) (process {step + 1}/{self.t.processes})"
            out.append(Request(slot, tuple(order), payload, self.t.cell_timeout_s * len(order), label))
        return out

    def records(self, cell: Cell, replies: list[Reply], run_id: str) -> list[Record]:
        """One Record per phase from the replies of every worker process (each this cell's part of a group reply,
        with the process's number and seed)."""
        ident = identity(cell, self.suite)
        for reply in replies:
            if reply.reference is not None and self.run_dir is not None:
                noise.append(self.run_dir, reply.reference)
        failed = next((r for r in replies if r.status != "ok"), None)
        flops = flop_breakdown(cell)
        notes = record_notes(cell.spec, dict(cell.options))
        unit, counts = CLOCK_UNITS[self.t.clock], replies[0].counts
        records = []
        for phase in self.phases:
            entries = [r.phases.get(phase) or PhaseResult("error", "no result") for r in replies]
            bad = failed or next((e for e in entries if e.status != "ok"), None)
            if bad:
                records.append(make(ident, run_id, phase, bad.status, bad.reason, counts=counts, unit=unit))
                continue
            record = make(ident, run_id, phase, counts=counts, unit=unit)
            stats, record.peak_mem_bytes, metrics = combine(entries, replies, cell.compile)
            if record.unit == "instructions":
                record.instructions = asdict(stats)
            else:
                record.time_s = asdict(stats)
            if metrics.interleaved is not None:
                record.group = f"{cell.group_hash}-{self.session_tag}"
            if flops is not None:
                record.flops = phase_flops(flops, phase, record.params or 0, metrics.flops_counted_matmul)
            if record.flops is not None and record.time_s:
                record.flop_per_s = record.flops / stats.median if stats.median > 0 else None
                roofline(record, metrics, self.peaks.get(cell.device))
            record.metrics = {**metrics.to_dict(), **notes}
            records.append(record)
        return records

    def skip_records(self, cell: Cell, reason: str, run_id: str) -> list[Record]:
        """A skipped Record for every phase."""
        ident = identity(cell, self.suite)
        unit = CLOCK_UNITS[self.t.clock]
        return [make(ident, run_id, phase, "skipped", reason, unit=unit) for phase in self.phases]
