"""The machine's own noise: one fixed reference workload, timed by every worker before each group it measures.

A cell's spread says how much its own values varied; it cannot say whether the machine was slower during one
group than during another. So each worker process of a speed run times the same workload (REFERENCE: tanh(x @ w)
on 256 x 256 float32, on the group's device, with the run's threads) right before it measures a group, and the
run keeps every such measurement in reference.jsonl: how far its medians drift between groups, and how much its
values scatter within one measurement, is the machine's noise during this run, measured rather than inferred from
load averages. The report's answer reads it. It is no yardstick between two runs (docs/methodology.md, "The
report's answer"): kanbench compare judges implementations against each other instead (compare/relative.py).

No torch: the report reads reference files; kanbench.measure.worker.time_reference times the workload.
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

from .record import is_number

FILE = "reference.jsonl"
REFERENCE = "tanh(x @ w), x and w 256 x 256 float32"
SIZE = 256
# The report's answer says a run cannot rank closely spaced implementations when the reference's own values, timed
# back to back within a second, scattered by more than this (IQR over median): then so did every cell's. Its drift
# between groups moves numbers across configurations, not the order of implementations measured side by side in
# one group (docs/methodology.md, "The report's answer").
MAX_WITHIN = 0.10


def append(run_dir: str | os.PathLike, entry: dict) -> None:
    """Add one reference measurement (one worker, one group) to the run as one whole line."""
    line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
    fd = os.open(Path(run_dir) / FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read(run_dir: str | os.PathLike) -> list[dict]:
    """Every reference measurement of a run ([] for runs from before the reference, or without one).

    A line cut short by a killed run, or one that is not a measurement, is left out: the reference describes the
    machine, and a run's records must never become unreadable over it.
    """
    path = Path(run_dir) / FILE
    if not path.is_file():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        try:
            entry = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("device", "cpu"), str):
            continue
        values = entry.get("values")
        if isinstance(values, list) and values and all(is_number(v) and v > 0 for v in values):
            out.append(entry)
    return out


@dataclass(frozen=True)
class Noise:
    """How much the reference workload varied over one run, per device."""

    device: str
    groups: int  # groups the reference was measured before
    median_s: float  # the reference's median over the whole run (seconds per call)
    drift: float  # slowest group's median / fastest group's median - 1: the machine's speed change between groups
    within: float  # median over measurements of (IQR / median) of one measurement's values: noise within seconds

    def line(self) -> str:
        """The noise in words."""
        return (f"the reference workload ({REFERENCE}) measured before each of {self.groups} groups on {self.device} "
                f"drifted {self.drift:.0%} between groups (median {self.median_s * 1e6:.0f} us a call; "
                f"{self.within:.0%} IQR within one measurement)")  # fmt: skip


def _iqr_ratio(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return (q3 - q1) / statistics.median(values)


def group_medians(entries: list[dict], device: str) -> dict[str, float]:
    """The reference's median per group (every worker's values before that group pooled) on one device."""
    pooled: dict[str, list[float]] = {}
    for e in entries:
        if e.get("device", "cpu") == device:
            pooled.setdefault(str(e.get("group")), []).extend(e["values"])
    return {g: statistics.median(v) for g, v in pooled.items()}


def summarize(entries: list[dict]) -> list[Noise]:
    """The noise of each device the reference ran on, in first-seen order; [] without entries."""
    devices = list(dict.fromkeys(str(e.get("device", "cpu")) for e in entries))
    out = []
    for device in devices:
        mine = [e for e in entries if e.get("device", "cpu") == device]
        medians = list(group_medians(entries, device).values())
        every = [v for e in mine for v in e["values"]]
        out.append(Noise(device, len(medians), statistics.median(every), max(medians) / min(medians) - 1,
                         statistics.median(_iqr_ratio(e["values"]) for e in mine)))  # fmt: skip
    return out


def of_runs(run_dirs: list) -> list[Noise]:
    """Every run's noise (summarize of its reference.jsonl), runs in the order given."""
    return [n for run_dir in run_dirs for n in summarize(read(run_dir))]
