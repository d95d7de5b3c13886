"""The local executor: a group's worker processes on this machine, `kind.lanes` groups at once."""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from ..measure.reply import Reply
from . import progress
from .kind import Kind


@dataclass(frozen=True)
class LaneDone:
    """A lane finished one group (error: what it raised, for the caller's thread)."""

    error: BaseException | None


class LocalExecutor:
    """Worker processes on this machine: `kind.lanes` groups at once, each lane with `kind.processes` workers."""

    def __init__(self, kind: Kind, bar: progress.Progress | None = None) -> None:
        self.kind = kind
        self.bar = bar or progress.Progress(0, 0.0, quiet=True)
        self.started: list = []
        self.torch_threads: int | None = None
        self.nodes: dict[str, dict] = {}  # this machine only: environment.json describes it

    def attach(self, bar: progress.Progress) -> None:
        """Progress goes here from now on."""
        self.bar = bar

    def gpus(self) -> str | None:
        """None: whether cuda cells can run is this machine's question (torch.cuda.is_available)."""
        return None

    def lanes(self, groups: list[list[Any]]) -> int:
        """Groups measured at once: the kind's lanes."""
        return self.kind.lanes

    def check_fits(self, groups: list[list[Any]]) -> None:
        """Nothing to refuse: every group runs here, each in its lane's own workers."""

    def placement(self, groups: list[list[Any]]) -> list[str]:
        """Nothing to add to a dry run: every group runs here."""
        return []

    def node_of(self, cell: Any) -> dict | None:
        """None: every cell ran on this machine."""
        return None

    def _pool(self):
        from ..measure.pool import WorkerPool

        under = f" under {self.kind.under} (torch takes a minute or two to import there)" if self.kind.under else ""
        self.bar.note(f"starting {self.kind.processes} worker process(es){under}")
        pool = WorkerPool(self.kind.processes, self.kind.threads, self.kind.handler, self.kind.under)
        self.torch_threads = pool.torch_threads
        self.started.append(pool)
        self.bar.begin()
        return pool

    def _group(
        self, pool, group: list[Any], index: int, stop: threading.Event | None = None
    ) -> Iterator[tuple[Any, list[Reply]]]:
        """(cell, replies) for the group's cells, in group order: with kind.cell_by_cell each as soon as it and the
        cells before it are answered, else all once the group is. Nothing more is asked once stop is set."""
        requests = self.kind.requests(group, index)
        replies: dict[int, list[Reply]] = {id(c): [] for c in group}
        left = Counter(id(cell) for request in requests for cell in request.cells)
        waiting = deque(group)
        for request in requests:
            if stop is not None and stop.is_set():
                return
            self.bar.current(request.label)
            reply = pool.measure(request.slot, request.payload, request.timeout_s)
            for cell, part in request.answers(reply):
                replies[id(cell)].append(part)
                left[id(cell)] -= 1
            while self.kind.cell_by_cell and waiting and left[id(waiting[0])] == 0:
                cell = waiting.popleft()
                yield cell, replies[id(cell)]
        for cell in waiting:
            yield cell, replies[id(cell)]

    def run(self, groups: list[list[Any]]) -> Iterator[tuple[Any, list[Reply]]]:
        """(cell, replies of every worker that measured it), as _group hands them on, lanes in the order they
        finish. Once the caller stops taking them (Ctrl-C, an error), no lane starts another group or request."""
        if self.kind.lanes <= 1:
            pool = self._pool()
            for index, group in enumerate(groups):
                yield from self._group(pool, group, index)
            return
        import queue
        from concurrent.futures import ThreadPoolExecutor

        free: queue.Queue = queue.Queue()
        measured: queue.Queue = queue.Queue()  # (cell, replies) from every lane, then one LaneDone per group
        lock, stop = threading.Lock(), threading.Event()
        # a group on a shared device (a GPU) waits for one of that device's slots: lanes never contend on it
        slots: dict[str, threading.Semaphore] = {}
        for group in groups:
            shared = self.kind.shared_device(group)
            if shared:
                slots.setdefault(shared[0], threading.Semaphore(shared[1]))

        def one(index: int, group: list[Any]) -> None:
            error: BaseException | None = None
            try:
                shared = self.kind.shared_device(group)
                with slots[shared[0]] if shared else nullcontext():
                    if stop.is_set():
                        return
                    try:
                        pool = free.get_nowait()
                    except queue.Empty:
                        with lock:
                            pool = self._pool()
                    try:
                        for item in self._group(pool, group, index, stop):
                            measured.put(item)
                    finally:
                        free.put(pool)
            except BaseException as exc:  # handed to the caller's thread, which raises it
                error = exc
            finally:
                measured.put(LaneDone(error))

        threads = ThreadPoolExecutor(max_workers=self.kind.lanes)
        try:
            for i, g in enumerate(groups):
                threads.submit(one, i, g)
            finished = 0
            while finished < len(groups):
                item = measured.get()
                if isinstance(item, LaneDone):
                    finished += 1
                    if item.error is not None:
                        raise item.error
                    continue
                yield item
        finally:
            stop.set()  # lanes finish the request they are in (close() ends its worker) and start nothing more
            threads.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop every worker process this executor started (again: nothing)."""
        for pool in self.started:
            pool.close()
        self.started = []
