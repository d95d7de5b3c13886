"""The Record: one line of results.jsonl, one (cell, phase) of a run. No torch here.

A Record is made in one place, `make(identity, phase, ...)`, from the Identity of the cell it measured; the
Identity is built once per cell by its suite kind. `Record.from_dict` is the only reader and checks every field's
type, so a corrupt or hand-edited line is refused with the field named, never carried into a report or a gate.
Older schemas (docs/results-schema.md) are read and upgraded.
"""

from __future__ import annotations

import functools
import math
import statistics
import types
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, TypeGuard, Union, get_args, get_origin, get_type_hints

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
    # the group's other cells (kanbench.analysis.judge); empty where values were not taken in rounds
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


def omitted_if_none() -> Any:
    """A metric that is None where it does not apply and then left out of the record (a CPU cell has no clocks)."""
    return field(default=None, metadata={"omitted_if_none": True})


@dataclass(kw_only=True)
class Metrics:
    """A record kind's metrics, the one declaration the reader checks against (metrics_problem): every ok record has
    the fields without a default, and each field holds the JSON its type says (`float` any number, `int` no bool)."""

    def to_dict(self) -> dict:
        """JSON-ready, without the keys that do not apply."""
        omitted = {f.name for f in fields(self) if f.metadata.get("omitted_if_none")}
        return {k: v for k, v in asdict(self).items() if not (v is None and k in omitted)}


@dataclass(kw_only=True)
class ClassNotes(Metrics):
    """What the ok records of a class joined as "module:Class" add (implementations.wrap, Adapter.record_notes)."""

    flops_source: str | None = omitted_if_none()  # "counted": flops come from FlopCounterMode
    ignored_axes: list[str] | None = omitted_if_none()  # axes the class's constructor did not take


@dataclass(kw_only=True)
class SpeedMetrics(ClassNotes):
    """metrics of forward / forward_inference / backward / train_step records."""

    flops_counted_matmul: int | None = None
    # per process: the phase's first (un-timed) call, and the cell's very first forward (compile time if compiled)
    first_call_s: list[float | None] = field(default_factory=list)
    first_forward_s: list[float | None] = field(default_factory=list)
    bytes_estimate: int | None = None
    arithmetic_intensity: float | None = None
    fraction_of_peak: float | None = omitted_if_none()
    # compiled cells, per process: what dynamo compiled for the cell (graphs, frames, graph_breaks, compile_s)
    compiled: list[dict | None] | None = omitted_if_none()
    # CUDA cells (time_s from CUDA events): the host's seconds per call issuing the work, as TimeStats, and whether
    # the host took at least as long as the device (launch-bound: the GPU waited for the CPU)
    host_time_s: dict | None = omitted_if_none()
    launch_bound: bool | None = omitted_if_none()
    # CUDA cells with nvidia-ml-py: the lowest SM clock read after any value of any process and the device's
    # maximum ({"min", "max"}, MHz), and whether it fell below 75% of the maximum (nvbench's rule)
    sm_clock_mhz: dict | None = omitted_if_none()
    throttled: bool | None = omitted_if_none()
    # interleaved values: each process's order seed, and each value's position in its round (0: first of the group)
    interleaved: dict | None = omitted_if_none()


@dataclass(kw_only=True)
class AccuracyMetrics(ClassNotes):
    """metrics of accuracy records (kanbench.measure.training writes them)."""

    dataset: str
    seed: int
    metric: str  # "test_accuracy" or "test_rmse"
    final_test: float
    best_val: float = math.nan  # nan: no epoch had a finite validation metric
    test_at_best_val: float = math.nan
    diverged: bool
    epochs: int
    train_time_s: float
    curve: dict[str, list[float]] = field(default_factory=dict)


@dataclass(kw_only=True)
class ProfileMetrics(Metrics):
    """metrics of profile records (kanbench.measure.breakdown writes them as a dict); any may be absent (schema 1)."""

    categories: dict[str, dict[str, float]] = field(default_factory=dict)
    total_self_s: float = math.nan
    wall_s: float = math.nan
    coverage: float = math.nan
    ops_per_call: float = math.nan
    kernels_per_call: float | None = None
    device_categories: dict[str, dict[str, float]] | None = None
    total_device_s: float | None = None
    attribution: str = "none"
    profiled_calls: int = 0
    calls_used: int = 0
    top_ops: list[dict[str, Any]] = field(default_factory=list)
    trace_files: list[str] = field(default_factory=list)
    trace_dir: str = ""


METRICS: dict[str, type[Metrics]] = {"speed": SpeedMetrics, "accuracy": AccuracyMetrics, "profile": ProfileMetrics}


def metrics_kind(phase: str) -> str:
    """Which metrics a record of this phase carries: "speed", "accuracy" or "profile"."""
    return "speed" if phase in SPEED_PHASES else phase


def metrics_problem(phase: str, metrics: dict) -> str | None:
    """The first metric that is missing or whose JSON type is wrong for its record kind, or None."""
    declared = _declared(metrics_kind(phase))
    missing = next((name for name, _, required in declared if required and name not in metrics), None)
    if missing:
        return f"field metrics.{missing}: an ok {phase} record must have it"
    for name, hint, _ in declared:
        if name not in metrics or _fits(metrics[name], hint):
            continue
        value = metrics[name]
        item = next((get_args(t)[1] for t in _options(hint) if get_origin(t) is dict and isinstance(value, dict)), None)
        wrong = next((k for k, v in value.items() if not _fits(v, item)), None) if item else None
        if wrong is not None:  # name the entry of an object that is wrong
            return f"field metrics.{name}.{wrong}: must be {_describe(item)}, got {_short(value[wrong])}"
        return f"field metrics.{name}: must be {_describe(hint)}, got {_short(value)}"
    return None


@functools.cache
def _declared(kind: str) -> tuple[tuple[str, Any, bool], ...]:
    """(name, type hint, required) of each metric of a record kind."""
    cls = METRICS[kind]
    hints = get_type_hints(cls)
    return tuple((f.name, hints[f.name], f.default is MISSING and f.default_factory is MISSING) for f in fields(cls))


def scalar_metrics(kind: str) -> tuple[str, ...]:
    """The metrics of a record kind that hold one number, flag or string: what results.load shows as metric_<name>
    and compare sets side by side."""
    return tuple(name for name, hint, _ in _declared(kind) if all(t in _SCALARS for t in _options(hint)))


_SCALARS = (int, float, bool, str, type(None))


def _options(hint: Any) -> tuple:
    """The members of a union hint, or the hint alone."""
    return get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)


def _fits(value: object, hint: Any) -> bool:
    """Whether a parsed JSON value holds what the hint declares, items included."""
    if hint is Any:
        return True
    if len(_options(hint)) > 1:
        return any(_fits(value, t) for t in _options(hint))
    base, args = get_origin(hint) or hint, get_args(hint)
    if base is float:  # any JSON number, nan included (a diverged run's metrics)
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base is int:
        return _is_int(value)
    if isinstance(value, list) and base is list and args:
        return all(_fits(v, args[0]) for v in value)
    if isinstance(value, dict) and base is dict and args:
        return all(_fits(v, args[1]) for v in value.values())
    return value is None if base is type(None) else isinstance(value, base)


# What the messages call a type, by its name where these do not say (int, bool), and its plural (ints, bools).
_NAMES = dict(float="int or float", str="a string", dict="an object", list="a list", NoneType="null")
_PLURALS = dict(float="numbers", str="strings", dict="objects", NoneType="nulls")


def _describe(hint: Any) -> str:
    """What a hint allows, as the reader's messages say it: "int or float or null", "a list of numbers"."""
    words = []
    for t in _options(hint):
        base, args = get_origin(t) or t, get_args(t)
        if args:  # list[item] or dict[str, item]
            names = [(get_origin(i) or i).__name__ for i in _options(args[-1])]
            items = " or ".join(_PLURALS.get(n, n + "s") for n in names)
            words.append(f"{'a list' if base is list else 'an object'} of {items}")
        else:
            words.append(_NAMES.get(base.__name__, base.__name__))
    return " or ".join(words)


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
        for name, hint in _RECORD_HINTS.items():
            value, check = data.get(name), FIELD_CHECKS.get(name)
            if name not in data or (value is None and _fits(None, hint)):
                continue
            problem = check(value) if check else None if _fits(value, hint) else f"must be {_describe(hint)}"
            if problem:
                null = " or null" if check and _fits(None, hint) else ""
                raise ValueError(f"field {name}: {problem}{null}, got {_short(value)}")
        problem = _phase_problem(data)
        if problem:
            raise ValueError(problem)
        return cls(**{k: v for k, v in data.items() if k in _RECORD_HINTS} | {"schema": SCHEMA})


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


def is_number(value: object) -> TypeGuard[float]:
    """A finite int or float (a bool is not a number here)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def _int_at_least(low: int) -> Callable[[object], str | None]:
    return lambda value: None if _is_int(value) and value >= low else f"must be an int >= {low}"


def _widths(value: object) -> str | None:
    ok = isinstance(value, list) and len(value) >= 2 and all(_is_int(w) and w >= 1 for w in value)
    return None if ok else "must be a list of at least 2 positive ints"


def _rate(value: object) -> str | None:
    return None if is_number(value) and value >= 0 else "must be a finite number >= 0"


def _choice(allowed: tuple[str, ...]) -> Callable[[object], str | None]:
    return lambda value: None if value in allowed else f"must be one of {', '.join(allowed)}"


def time_problem(time_s: object) -> str | None:
    """What is wrong with a time_s object, or None: every statistic finite and >= 0, values non-empty."""
    if not isinstance(time_s, dict):
        return "must be an object of seconds per call"
    for key in ("median", "mean", "stdev", "iqr", "min", "max"):
        if not (is_number(time_s.get(key)) and time_s[key] >= 0):
            return f"{key} must be a finite number >= 0"
    for key in ("n", "loops"):
        if not (_is_int(time_s.get(key)) and time_s[key] >= 1):
            return f"{key} must be an int >= 1"
    for key in ("values", "process_medians"):
        values = time_s.get(key, [])
        if not isinstance(values, list) or not all(is_number(v) and v >= 0 for v in values):
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


# The Record's fields, checked against their type hints (null passes where the hint admits it) or, where a field
# must hold more than its type, by its check here.
_RECORD_HINTS = get_type_hints(Record)
FIELD_CHECKS = {
    "phase": _choice(PHASES),
    "profiled_phase": _choice(SPEED_PHASES),
    "batch_size": _int_at_least(1),
    "widths": _widths,
    "grid_size": _int_at_least(0),
    "spline_order": _int_at_least(0),
    "num_basis": _int_at_least(0),
    "params": _int_at_least(0),
    "params_total": _int_at_least(0),
    "status": _choice(STATUSES),
    "time_s": time_problem,
    "instructions": time_problem,
    "unit": _choice(UNITS),
    "peak_mem_bytes": _int_at_least(0),
    "flops": _int_at_least(0),
    "flop_per_s": _rate,
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
