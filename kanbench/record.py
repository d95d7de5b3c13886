"""The Record: one line of results.jsonl, one (cell, phase) of a run. No torch here.

A Record is made in one place, `make(identity, phase, ...)`, from the Identity of the cell it measured; the
Identity is built once per cell by its suite kind. `Record.from_dict` is the only reader and checks every field's
type, so a corrupt or hand-edited line is refused with the field named, never carried into a report or a gate.
Schema 2 added `profiled_phase`, schema 3 `unit` and `instructions` (the instruction clock's counts, where
`time_s` holds seconds), schema 5 the pairing of interleaved values: `group` (the group of a run whose cells were
measured together) and, in time_s, each value's worker `process` and `round`; schema-1 and -2 lines (the committed
baselines) are read and upgraded, and records without pairing are judged by the unpaired rule (kanbench.judge).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, TypedDict, TypeGuard

SCHEMA = 5
READABLE_SCHEMAS = (1, 2, 3, 4, 5)
UNITS = ("s", "instructions")  # what a speed record's values count: seconds (time_s) or instructions
SPEED_PHASES = ("forward", "forward_inference", "backward", "train_step")
PHASES = (*SPEED_PHASES, "accuracy", "profile")
STATUSES = ("ok", "skipped", "error")


def quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation quantile of already sorted values."""
    if not sorted_values:
        raise ValueError("quantile of no values")
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass
class TimeStats:
    """Per-call values (seconds, or instructions for the instruction clock): summary statistics plus every raw
    value (and each worker process's median)."""

    median: float
    mean: float
    stdev: float
    iqr: float
    min: float
    max: float
    n: int
    loops: int
    values: list[float]
    process_medians: list[float] = field(default_factory=list)
    # interleaved values: the worker process (0-based) and round of each value, which pair it with the values of
    # the group's other cells (kanbench.judge); empty where values were not taken in rounds
    process: list[int] = field(default_factory=list)
    round: list[int] = field(default_factory=list)

    @classmethod
    def from_values(
        cls, per_process: list[list[float]], loops: int, rounds: list[list[int]] | None = None,
        processes: list[int] | None = None,
    ) -> TimeStats:  # fmt: skip
        """Statistics over the values of all processes; each value is seconds per call. With rounds (per process,
        each value's round) the values keep their pairing keys; processes names each process (default 0, 1, ...)."""
        values = [v for proc in per_process for v in proc]
        if not values:
            raise ValueError("TimeStats needs at least one value")
        process: list[int] = []
        round_: list[int] = []
        if rounds is not None:
            names = processes if processes is not None else list(range(len(per_process)))
            process = [p for p, proc in zip(names, per_process) for _ in proc]
            round_ = [r for proc in rounds for r in proc]
            if len(round_) != len(values):
                raise ValueError(f"TimeStats: {len(round_)} rounds for {len(values)} values")
        s = sorted(values)
        return cls(
            median=statistics.median(s),
            mean=statistics.fmean(s),
            stdev=statistics.stdev(s) if len(s) > 1 else 0.0,
            iqr=quantile(s, 0.75) - quantile(s, 0.25),
            min=s[0],
            max=s[-1],
            n=len(s),
            loops=loops,
            values=values,
            process_medians=[statistics.median(p) for p in per_process if p],
            process=process,
            round=round_,
        )


@dataclass(frozen=True)
class Identity:
    """What a cell is, before anything is measured: the fields every Record of the cell shares."""

    suite: str
    impl: str  # the adapter's own name, however the suite named it
    family: str
    device: str
    dtype: str
    batch_size: int
    widths: tuple[int, ...]
    grid_size: int
    spline_order: int
    num_basis: int  # the expected count; a measured model's own count replaces it
    options: dict[str, Any]
    config_hash: str


@dataclass
class SpeedMetrics:
    """metrics of forward / forward_inference / backward / train_step records."""

    flops_counted_matmul: int | None
    first_call_s: list[float | None]  # per process, the phase's first (un-timed) call
    first_forward_s: list[float | None]  # per process, the cell's very first forward: compile time for compiled cells
    bytes_estimate: int | None = None
    arithmetic_intensity: float | None = None
    fraction_of_peak: float | None = None
    # compiled cells, per process: what dynamo compiled for the cell (graphs, frames, graph_breaks, compile_s)
    compiled: list[dict | None] | None = None
    # CUDA cells (time_s from CUDA events): the host's seconds per call issuing the work, as TimeStats, and whether
    # the host took at least as long as the device (launch-bound: the GPU waited for the CPU)
    host_time_s: dict | None = None
    launch_bound: bool | None = None
    # CUDA cells with nvidia-ml-py: the lowest SM clock read after any value of any process and the device's
    # maximum ({"min", "max"}, MHz), and whether it fell below 75% of the maximum (nvbench's rule)
    sm_clock_mhz: dict | None = None
    throttled: bool | None = None
    # interleaved values: each process's order seed, and each value's position in its round (0: first of the group)
    interleaved: dict | None = None

    def to_dict(self) -> dict:
        """JSON-ready, without the keys that do not apply (roofline not computed, an eager cell, a CPU cell)."""
        data = asdict(self)
        for key in ("fraction_of_peak", "compiled", "host_time_s", "launch_bound", "sm_clock_mhz", "throttled",
                    "interleaved"):  # fmt: skip
            if data[key] is None:
                del data[key]
        return data


class AccuracyMetrics(TypedDict):
    """metrics of accuracy records (kanbench.training writes them)."""

    dataset: str
    seed: int
    metric: str  # "test_accuracy" or "test_rmse"
    final_test: float
    best_val: float
    test_at_best_val: float
    diverged: bool
    epochs: int
    train_time_s: float
    curve: dict[str, list[float]]


class ProfileMetrics(TypedDict, total=False):
    """metrics of profile records (kanbench.breakdown and kanbench.profile_worker write them)."""

    categories: dict[str, dict[str, float]]
    total_self_s: float
    wall_s: float
    coverage: float
    ops_per_call: float
    kernels_per_call: float | None
    device_categories: dict[str, dict[str, float]] | None
    total_device_s: float | None
    attribution: str
    profiled_calls: int
    calls_used: int
    top_ops: list[dict[str, Any]]
    trace_files: list[str]
    trace_dir: str


# What a reader checks of an ok record's metrics, by kind: key -> the JSON types it may hold (None: null).
_NUMBER = (int, float)
METRIC_TYPES: dict[str, dict[str, tuple]] = {
    "speed": {"flops_counted_matmul": (int, None), "first_call_s": (list,), "first_forward_s": (list,),
              "bytes_estimate": (int, None), "arithmetic_intensity": (*_NUMBER, None),
              "fraction_of_peak": (*_NUMBER, None), "compiled": (list,), "host_time_s": (dict,),
              "launch_bound": (bool,), "sm_clock_mhz": (dict,), "throttled": (bool,), "interleaved": (dict,),
              "flops_source": (str,), "ignored_axes": (list,)},
    "accuracy": {"dataset": (str,), "seed": (int,), "metric": (str,), "final_test": _NUMBER, "best_val": _NUMBER,
                 "test_at_best_val": _NUMBER, "diverged": (bool,), "epochs": (int,), "train_time_s": _NUMBER,
                 "curve": (dict,), "flops_source": (str,), "ignored_axes": (list,)},
    "profile": {"categories": (dict,), "total_self_s": _NUMBER, "wall_s": _NUMBER, "coverage": _NUMBER,
                "ops_per_call": _NUMBER, "kernels_per_call": (*_NUMBER, None), "top_ops": (list,),
                "trace_files": (list,), "trace_dir": (str,)},
}  # fmt: skip


def metrics_kind(phase: str) -> str:
    """Which metrics a record of this phase carries: "speed", "accuracy" or "profile"."""
    return "speed" if phase in SPEED_PHASES else phase


# What an ok record of each kind must carry (the report and the aggregates read them).
REQUIRED_METRICS = {"accuracy": ("dataset", "seed", "metric", "final_test", "diverged", "epochs", "train_time_s")}


def metrics_problem(phase: str, metrics: dict) -> str | None:
    """The first metric that is missing or whose JSON type is wrong for its record kind, or None."""
    kind = metrics_kind(phase)
    missing = [k for k in REQUIRED_METRICS.get(kind, ()) if k not in metrics]
    if missing:
        return f"field metrics.{missing[0]}: an ok {phase} record must have it"
    curve = metrics.get("curve")
    if kind == "accuracy" and curve is not None:
        for name, values in curve.items() if isinstance(curve, dict) else ():
            if not isinstance(values, list) or not all(_is_number_or_nan(v) for v in values):
                return f"field metrics.curve.{name}: must be a list of numbers, got {_short(values)}"
    for key, allowed in METRIC_TYPES[kind].items():
        if key not in metrics:
            continue
        value = metrics[key]
        ok = (value is None and None in allowed) or (
            value is not None
            and isinstance(value, tuple(t for t in allowed if t is not None))
            and not (isinstance(value, bool) and bool not in allowed)
        )
        if not ok:
            names = " or ".join("null" if t is None else t.__name__ for t in allowed)
            return f"field metrics.{key}: must be {names}, got {_short(value)}"
    return None


@dataclass
class Record:
    """One measured (cell, phase): identity of the cell, status, and what was measured."""

    run_id: str
    suite: str
    impl: str
    family: str
    phase: str
    device: str
    dtype: str
    batch_size: int
    widths: list[int]
    grid_size: int
    spline_order: int
    num_basis: int
    params: int | None
    params_total: int | None
    status: str
    reason: str | None
    time_s: dict | None
    peak_mem_bytes: int | None
    flops: int | None
    metrics: dict | None
    config_hash: str
    flop_per_s: float | None = None
    options: dict = field(default_factory=dict)
    profiled_phase: str | None = None  # profile records: the phase the profiler ran
    unit: str = "s"  # speed records: "s" (the values are in time_s) or "instructions" (in instructions)
    instructions: dict | None = None  # TimeStats of instructions per call, for [timing].clock = "instructions"
    # the node that measured it, where an executor spreads cells over machines (--executor ray): node_id,
    # hostname and, for a cuda cell, gpu_uuid; null for the local executor (environment.json names the machine)
    node: dict | None = None
    # the group of this run the cell was measured in, value by value beside the group's other cells (interleaved
    # rounds); null where the values were not interleaved (the instruction clock, schema < 5)
    group: str | None = None
    schema: int = SCHEMA

    @property
    def key(self) -> tuple[str, str, str | None]:
        """What a run holds once: the cell, the phase and (profile records) the profiled phase."""
        return (self.config_hash, self.phase, self.profiled_phase)

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> Record:
        """Build from a parsed line; raises ValueError naming the field that is missing or wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"a record must be a JSON object, got {type(data).__name__}")
        schema = data.get("schema")
        if schema not in READABLE_SCHEMAS or isinstance(schema, bool):
            raise ValueError(f"field schema: {schema!r} is not supported (readable: {READABLE_SCHEMAS})")
        if schema == 1:
            data = _upgrade_v1(data)
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        missing = sorted(required - data.keys())
        if missing:
            raise ValueError(f"record lacks field(s) {', '.join(missing)}")
        for name, check in FIELD_CHECKS.items():
            if name in data:
                problem = check(data[name])
                if problem:
                    raise ValueError(f"field {name}: {problem}, got {_short(data[name])}")
        problem = _phase_problem(data)
        if problem:
            raise ValueError(problem)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names} | {"schema": SCHEMA})


def make(
    identity: Identity,
    run_id: str,
    phase: str,
    status: str = "ok",
    reason: str | None = None,
    *,
    profiled_phase: str | None = None,
    counts: dict | None = None,
    metrics: dict | None = None,
    unit: str = "s",
) -> Record:
    """The one constructor: a Record of `phase` for the cell `identity`, before its measured values are set.

    counts: what the worker read off the built model ("family", "params", "params_total", "num_basis").
    """
    counts = counts or {}
    return Record(
        run_id=run_id,
        suite=identity.suite,
        impl=identity.impl,
        family=counts.get("family") or identity.family,
        phase=phase,
        device=identity.device,
        dtype=identity.dtype,
        batch_size=identity.batch_size,
        widths=list(identity.widths),
        grid_size=identity.grid_size,
        spline_order=identity.spline_order,
        num_basis=counts.get("num_basis", identity.num_basis),
        params=counts.get("params"),
        params_total=counts.get("params_total"),
        status=status,
        reason=reason,
        time_s=None,
        peak_mem_bytes=None,
        flops=None,
        metrics=metrics,
        config_hash=identity.config_hash,
        options=dict(identity.options),
        profiled_phase=profiled_phase,
        unit=unit,
    )


def _upgrade_v1(data: dict) -> dict:
    """A schema-1 line as schema 2: profile records named their profiled phase in metrics["phase"]."""
    data = dict(data)
    if data.get("phase") == "profile" and isinstance(data.get("metrics"), dict):
        metrics = dict(data["metrics"])
        data["profiled_phase"] = metrics.pop("phase", None)
        data["metrics"] = metrics
    return data


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[float]:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def _is_number_or_nan(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _string(value: object) -> str | None:
    return None if isinstance(value, str) else "must be a string"


def _string_or_null(value: object) -> str | None:
    return None if value is None or isinstance(value, str) else "must be a string or null"


def _count(value: object) -> str | None:
    return None if _is_int(value) and value >= 0 else "must be an int >= 0"


def _count_or_null(value: object) -> str | None:
    return None if value is None else _count(value)


def _positive_int(value: object) -> str | None:
    return None if _is_int(value) and value >= 1 else "must be an int >= 1"


def _widths(value: object) -> str | None:
    ok = isinstance(value, list) and len(value) >= 2 and all(_is_int(w) and w >= 1 for w in value)
    return None if ok else "must be a list of at least 2 positive ints"


def _rate_or_null(value: object) -> str | None:
    return None if value is None or (_is_number(value) and value >= 0) else "must be a finite number >= 0 or null"


def _object(value: object) -> str | None:
    return None if isinstance(value, dict) else "must be an object"


def _object_or_null(value: object) -> str | None:
    return None if value is None or isinstance(value, dict) else "must be an object or null"


def _choice(allowed: tuple[str, ...]):
    def check(value: object) -> str | None:
        return None if value in allowed else f"must be one of {', '.join(allowed)}"

    return check


def _profiled_phase(value: object) -> str | None:
    return None if value is None or value in SPEED_PHASES else f"must be null or one of {', '.join(SPEED_PHASES)}"


def time_problem(time_s: object) -> str | None:
    """What is wrong with a time_s object, or None: every statistic finite and >= 0, values non-empty."""
    if time_s is None:
        return None
    if not isinstance(time_s, dict):
        return "must be an object of seconds per call or null"
    for key in ("median", "mean", "stdev", "iqr", "min", "max"):
        if not (_is_number(time_s.get(key)) and time_s[key] >= 0):
            return f"{key} must be a finite number >= 0"
    for key in ("n", "loops"):
        if not (_is_int(time_s.get(key)) and time_s[key] >= 1):
            return f"{key} must be an int >= 1"
    for key in ("values", "process_medians"):
        values = time_s.get(key, [])
        if not isinstance(values, list) or not all(_is_number(v) and v >= 0 for v in values):
            return f"{key} must be a list of finite numbers >= 0"
    if not time_s.get("values"):
        return "values must hold at least one value"
    for key in ("process", "round"):
        keys = time_s.get(key, [])
        if not isinstance(keys, list) or not all(_is_int(k) and k >= 0 for k in keys):
            return f"{key} must be a list of ints >= 0"
        if keys and len(keys) != len(time_s["values"]):
            return f"{key} must hold one entry per value ({len(time_s['values'])}), got {len(keys)}"
    return None


FIELD_CHECKS = {
    "run_id": _string,
    "suite": _string,
    "impl": _string,
    "family": _string,
    "phase": _choice(PHASES),
    "profiled_phase": _profiled_phase,
    "device": _string,
    "dtype": _string,
    "batch_size": _positive_int,
    "widths": _widths,
    "grid_size": _count,
    "spline_order": _count,
    "num_basis": _count,
    "params": _count_or_null,
    "params_total": _count_or_null,
    "status": _choice(STATUSES),
    "reason": _string_or_null,
    "time_s": time_problem,
    "instructions": time_problem,
    "unit": _choice(UNITS),
    "peak_mem_bytes": _count_or_null,
    "flops": _count_or_null,
    "flop_per_s": _rate_or_null,
    "metrics": _object_or_null,
    "options": _object,
    "node": _object_or_null,
    "group": _string_or_null,
    "config_hash": _string,
}


def _phase_problem(data: dict) -> str | None:
    """Rules across fields: ok speed records are timed, profile records name their phase."""
    if data["phase"] == "profile" and data.get("profiled_phase") is None:
        return "field profiled_phase: a profile record must name the phase it profiled"
    if data["phase"] != "profile" and data.get("profiled_phase") is not None:
        return f"field profiled_phase: only profile records have one, this is a {data['phase']} record"
    unit = data.get("unit", "s")
    measured, other = ("instructions", "time_s") if unit == "instructions" else ("time_s", "instructions")
    if data["status"] == "ok" and data["phase"] in SPEED_PHASES and data.get(measured) is None:
        return f"field {measured}: an ok {data['phase']} record of unit {unit!r} must have it, got null"
    if data.get(other) is not None:
        return f"field {other}: a record of unit {unit!r} keeps its values in {measured}, not in {other}"
    if data["status"] == "ok" and isinstance(data.get("metrics"), dict):
        return metrics_problem(data["phase"], data["metrics"])
    return None
