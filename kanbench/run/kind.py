"""A suite kind as the run session and its executors see it: it plans cells, says what a worker does for a group of
them (`Request`), and turns the workers' replies into Records."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..results.record import Record
from . import progress


@dataclass(frozen=True)
class Request:
    """One message to one worker: which worker of the lane, for which cell (or tuple of cells that the worker
    measures together), and how long it may take."""

    slot: int
    cell: Any
    payload: Any
    timeout_s: float
    label: str

    @property
    def cells(self) -> tuple:
        """The cells this request measures."""
        return self.cell if isinstance(self.cell, tuple) else (self.cell,)

    def answers(self, reply: dict) -> list[tuple[Any, dict]]:
        """(cell, its reply) for each cell: a request for several cells is answered with {"cells": [one each]},
        which keep the reply's "process" and "seed" (the first also its "reference"); a reply without them (the
        worker died or timed out) is every cell's."""
        if not isinstance(self.cell, tuple):
            return [(self.cell, reply)]
        parts = reply.get("cells") if isinstance(reply, dict) else None
        if not isinstance(parts, list) or len(parts) != len(self.cell):
            return [(cell, reply) for cell in self.cell]
        shared = {k: reply[k] for k in ("process", "seed") if k in reply}
        out = [(cell, {**part, **shared}) for cell, part in zip(self.cell, parts)]
        if "reference" in reply:
            out[0][1]["reference"] = reply["reference"]
        return out


class Kind(Protocol):
    """A suite kind as the session sees it."""

    name: str  # "speed", "accuracy", "profile"
    handler: str  # "module:function" that a worker process calls with each Request.payload
    processes: int  # worker processes per lane; each request names one by its slot
    lanes: int  # groups measured at once, each by its own workers
    threads: int  # torch threads in every worker (0: torch's default)
    under: str | None  # what the workers run under: None, or "callgrind" (the instruction clock)
    # hand each cell on once measured (accuracy: a group trains for tens of minutes), or a group's cells together
    # once all are (speed: a run stopped mid-group wrote none of it, so --resume measures it whole, side by side;
    # a cell whose records a stop left half-written is measured alone, its record's group naming the new session)
    cell_by_cell: bool

    def cells(self) -> list[Any]: ...
    def attach(self, run_dir: Path) -> None: ...
    def keys(self, cell: Any) -> list[tuple[str, str, str | None]]: ...
    def estimate(self, cell: Any) -> float: ...
    def one_time_s(self, impl: str) -> float: ...  # an implementation's cost once a run: checks, first calls
    def requests(self, group: list[Any], group_index: int) -> list[Request]: ...
    def records(self, cell: Any, replies: list[dict], run_id: str) -> list[Record]: ...
    def skip_records(self, cell: Any, reason: str, run_id: str) -> list[Record]: ...
    def settings(self) -> dict: ...
    def before_workers(self, cells: list[Any], environment: dict, bar: progress.Progress) -> None: ...
    def outcome(self, cell: Any, records: list[Record]) -> str: ...
    def dry_run(self, cells: list[Any], why: Callable[[Any], str | None]) -> list[str]: ...
    def summary(self, records: list[Record]) -> str: ...
    def epilogue(self, run_dir: Path) -> list[str]: ...
    # (device key, groups allowed on it at once) when lanes must share a device, e.g. ("cuda", 1)
    def shared_device(self, group: list[Any]) -> tuple[str, int] | None: ...


class BaseKind:
    """What most kinds do for the optional steps of `Kind`: nothing. A kind overrides what it needs."""

    processes = 1
    lanes = 1
    under: str | None = None
    cell_by_cell = False

    def attach(self, run_dir: Path) -> None:
        """Nothing depends on the run directory."""

    def before_workers(self, cells: list[Any], environment: dict, bar: progress.Progress) -> None:
        """Nothing to prepare."""

    def outcome(self, cell: Any, records: list[Record]) -> str:
        """Nothing to add to the cell's progress line."""
        return ""

    def epilogue(self, run_dir: Path) -> list[str]:
        """Nothing after the run dir line."""
        return []

    def shared_device(self, group: list[Any]) -> tuple[str, int] | None:
        """No device that limits how many groups run at once (see LocalExecutor.run)."""
        return None

    def one_time_s(self, impl: str) -> float:
        """No cost beyond the cells' own estimates."""
        return 0.0
