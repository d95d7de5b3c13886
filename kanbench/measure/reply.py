"""A worker's reply, declared once for every kind: what a handler (kanbench.measure.worker, kanbench.measure.training,
kanbench.measure.profile_worker) answers and what the parent reads by attribute. No torch here: the parent imports it.

It crosses the pipe as a plain dict (measure/pool.py sends `asdict` of it, and serves handlers of other replies too);
`Reply.from_dict` reads it back and refuses a key it does not declare, naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any


@dataclass
class PhaseResult:
    """One phase of one cell in one worker process: a speed phase's values, or a profiled phase's breakdown."""

    status: str = "ok"
    reason: str | None = None
    # speed: each value (per call), its calls, the round it was taken in and its position there (None: not taken in
    # rounds, the instruction clock); CUDA: the host's issue time of each value, and the SM clock seen (MHz)
    values: list[float] | None = None
    loops: int | None = None
    rounds: list[int] | None = None
    positions: list[int] | None = None
    host_values: list[float] | None = None
    sm_clock_mhz: dict | None = None
    first_call_s: float | None = None  # the phase's first, un-timed call (None for the instruction clock)
    peak_mem_bytes: int | None = None  # these two in the first process only
    flops_counted: int | None = None
    metrics: dict | None = None  # profile: the op breakdown (kanbench.measure.breakdown)


@dataclass
class Reply:
    """A worker's answer for one cell, or the pool's when the worker died or ran past its limit. A speed group's
    reply holds one Reply per cell in `cells` (Request.answers hands each cell its own)."""

    status: str = "ok"
    reason: str | None = None
    phases: dict[str, PhaseResult] = field(default_factory=dict)
    # read off the built model (None: it was not built)
    family: str | None = None
    params: int | None = None
    params_total: int | None = None
    num_basis: int | None = None
    first_forward_s: float | None = None  # the cell's very first call: compilation and set-up included
    compiled: dict | None = None  # compiled cells: what dynamo compiled (kanbench.measure.compilation.stats)
    metrics: dict | None = None  # accuracy: AccuracyMetrics as a dict
    # a speed group: its cells' replies, the process (0-based) and its order seed, the reference measured before
    cells: list[Reply] | None = None
    process: int | None = None
    seed: int | None = None
    reference: dict | None = None
    restart: bool = False  # the worker's CUDA context is broken: the pool replaces it

    @property
    def counts(self) -> dict:
        """What record.make takes from the built model: the counts the worker read, none where it built nothing."""
        names = ("family", "params", "params_total", "num_basis")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def part(self, index: int) -> Reply:
        """The reply of a group's cell `index`, with the group's process and seed (the first cell its reference)."""
        assert self.cells is not None, "part() of a reply for one cell"
        return replace(self.cells[index], process=self.process, seed=self.seed,
                       reference=self.reference if index == 0 else None)  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reply:
        """A reply as it came over the pipe; ValueError naming a key that no reply has."""
        phases = {name: PhaseResult(**_known(entry, PhaseResult)) for name, entry in data.get("phases", {}).items()}
        cells = None if data.get("cells") is None else [cls.from_dict(c) for c in data["cells"]]
        return cls(**{**_known(data, cls), "phases": phases, "cells": cells})


def _known(data: dict[str, Any], cls: type) -> dict[str, Any]:
    """data, after checking that cls declares every key."""
    unknown = sorted(data.keys() - _NAMES[cls])
    if unknown:
        raise ValueError(f"a worker's reply: {cls.__name__} has no key(s) {', '.join(unknown)}; it has "
                         f"{', '.join(sorted(_NAMES[cls]))}")  # fmt: skip
    return data


_NAMES: dict[type, set[str]] = {cls: {f.name for f in fields(cls)} for cls in (Reply, PhaseResult)}
