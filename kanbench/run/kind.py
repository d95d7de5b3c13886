"""A suite kind as the run session and its executors see it: it plans cells, says what a worker does for a group of
them (`Request`), and turns the workers' replies (kanbench.measure.reply) into Records; its `Presentation` is what the
session shows of it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from ..measure.reply import Reply
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

    def answers(self, reply: dict) -> list[tuple[Any, Reply]]:
        """(cell, its reply) for each cell, read from what came over the pipe: a request for several cells is
        answered with one reply per cell in `cells` (Reply.part); a reply without them (the worker died or timed
        out) is every cell's."""
        whole = Reply.from_dict(reply)
        if not isinstance(self.cell, tuple):
            return [(self.cell, whole)]
        if whole.cells is None or len(whole.cells) != len(self.cell):
            return [(cell, whole) for cell in self.cell]
        return [(cell, whole.part(i)) for i, cell in enumerate(self.cell)]


class Kind(Protocol):
    """A suite kind as the session and its executors see it: its cells, a worker's requests for a group of them,
    the Records from the replies, its settings. What the session shows of it is `presentation`'s."""

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

    @property
    def presentation(self) -> Presentation: ...

    def cells(self) -> list[Any]: ...
    def attach(self, run_dir: Path) -> None: ...
    def keys(self, cell: Any) -> list[tuple[str, str, str | None]]: ...
    def estimate(self, cell: Any) -> float: ...  # seconds: --shard balances by it, progress paces by it
    def requests(self, group: list[Any], group_index: int) -> list[Request]: ...
    def records(self, cell: Any, replies: list[Reply], run_id: str) -> list[Record]: ...
    def skip_records(self, cell: Any, reason: str, run_id: str) -> list[Record]: ...
    def settings(self) -> dict: ...
    def before_workers(self, cells: list[Any], environment: dict, bar: progress.Progress) -> None: ...
    # (device key, groups allowed on it at once) when lanes must share a device, e.g. ("cuda", 1)
    def shared_device(self, group: list[Any]) -> tuple[str, int] | None: ...


def dry_run_line(cell: Any, reason: str | None, extra: str = "") -> str:
    """One cell of a dry-run listing: its hash and label, and why it would be skipped."""
    return f"{cell.config_hash}  {cell.label()}{extra}" + (f"  [skip: {reason}]" if reason else "")


class Presentation:
    """What the session shows of a kind, apart from what it measures: the dry-run listing, each cell's outcome on
    its progress line, the summary after the run and the lines after the run dir. The defaults; a kind's own
    presentation overrides what it shows differently."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind

    def start_s(self) -> float:
        """Seconds before the first cell, e.g. its workers starting: none."""
        return 0.0

    def one_time_s(self, impl: str) -> float:
        """An implementation's cost once a run beyond its cells' estimates (checks, first calls): none."""
        return 0.0

    def planned(self, cells: list[Any]) -> str:
        """What a dry run would measure, before its estimated time."""
        return f"{len(cells)} cells"

    def listed(self, cell: Any) -> str:
        """What a dry run adds to a cell's line: nothing."""
        return ""

    def dry_run(self, cells: list[Any], why: Callable[[Any], str | None]) -> list[str]:
        """One line per cell, then what they are and about how long they take (those that can run here)."""
        runnable = [c for c in cells if why(c) is None]
        work = sum(map(self.kind.estimate, runnable)) + sum(map(self.one_time_s, {c.impl for c in runnable}))
        total = self.start_s() + work / self.kind.lanes
        return [*(dry_run_line(c, why(c), self.listed(c)) for c in cells),
                f"{self.planned(cells)}: about {progress.duration(total)}"]  # fmt: skip

    def outcome(self, cell: Any, records: list[Record]) -> str:
        """Nothing to add to the cell's progress line."""
        return ""

    def summary(self, records: list[Record]) -> str:
        """Nothing before the status line."""
        return ""

    def epilogue(self, run_dir: Path) -> list[str]:
        """Nothing after the run dir line."""
        return []


class BaseKind:
    """What most kinds do for the optional steps of `Kind`: nothing. A kind overrides what it needs."""

    processes = 1
    lanes = 1
    under: str | None = None
    cell_by_cell = False
    presents: type[Presentation] = Presentation  # a kind whose presentation differs names its own

    def attach(self, run_dir: Path) -> None:
        """Nothing depends on the run directory."""

    def before_workers(self, cells: list[Any], environment: dict, bar: progress.Progress) -> None:
        """Nothing to prepare."""

    def shared_device(self, group: list[Any]) -> tuple[str, int] | None:
        """No device that limits how many groups run at once (see LocalExecutor.run)."""
        return None

    @functools.cached_property
    def presentation(self) -> Presentation:
        """What the session shows of the kind."""
        return self.presents(cast("Kind", self))  # a subclass that is a whole Kind
