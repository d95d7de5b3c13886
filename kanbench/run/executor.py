"""What the run session asks of an executor, the one place that decides where a group of cells runs.

`session.make_executor` builds the one `--executor` names: `kanbench.run.local_executor.LocalExecutor` (worker processes
here) or, imported only when asked for, `kanbench.run.ray_executor.RayExecutor`. Both satisfy `Executor`; the session
sees no other.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from ..measure.reply import Reply
from . import progress

# --executor ray: a cluster at --address answers in seconds; Ray alone would retry ~35 s a try, 20 tries. Here, not
# in the plug-in, so the command line can say it without importing the plug-in.
CONNECT_WAIT_S = 60.0


@dataclass(frozen=True)
class Skipped:
    """A group the executor could not run where it was placed: its cells become skip records with this reason."""

    reason: str


class Executor(Protocol):
    """Runs groups of cells and hands back each cell's replies; the session writes every Record."""

    torch_threads: int | None  # the workers' torch threads, once a worker has said
    nodes: dict[str, dict]  # node id -> fingerprint of every node that ran a group (none: only this machine)

    def attach(self, bar: progress.Progress) -> None: ...
    # None: this machine decides whether cuda cells can run; else the executor's answer ("" or why not)
    def gpus(self) -> str | None: ...
    def lanes(self, groups: list[list[Any]]) -> int: ...  # groups measured at once (the ETA divides by it)
    def check_fits(self, groups: list[list[Any]]) -> None: ...  # UsageError for a group that can run nowhere
    def placement(self, groups: list[list[Any]]) -> list[str]: ...  # lines for --dry-run
    # (cell, every worker's reply for it), or (cell, Skipped) for a group placed where it cannot run
    def run(self, groups: list[list[Any]]) -> Iterator[tuple[Any, list[Reply] | Skipped]]: ...
    def node_of(self, cell: Any) -> dict | None: ...  # the node that measured cell (None: this machine)
    def close(self) -> None: ...
