"""The Record: one line of results.jsonl, one (cell, phase) of a run. No torch here."""

from __future__ import annotations

import statistics
from dataclasses import MISSING, asdict, dataclass, field, fields

SCHEMA = 1
PHASES = ("forward", "forward_inference", "backward", "train_step", "accuracy", "profile")
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
    """Seconds per call: summary statistics plus every raw value (and each worker process's median)."""

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

    @classmethod
    def from_values(cls, per_process: list[list[float]], loops: int) -> TimeStats:
        """Statistics over the values of all processes; each value is seconds per call."""
        values = [v for proc in per_process for v in proc]
        if not values:
            raise ValueError("TimeStats needs at least one value")
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
        )


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
    schema: int = SCHEMA

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Record:
        """Build from a parsed line; raises ValueError naming what is missing or wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"a record must be a JSON object, got {type(data).__name__}")
        if data.get("schema") != SCHEMA:
            raise ValueError(f"record schema {data.get('schema')!r} is not supported (expected {SCHEMA})")
        names = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        missing = sorted(required - data.keys())
        if missing:
            raise ValueError(f"record lacks field(s) {', '.join(missing)}")
        if data["status"] not in STATUSES:
            raise ValueError(f"record status {data['status']!r} is not one of {', '.join(STATUSES)}")
        return cls(**{k: v for k, v in data.items() if k in names})
