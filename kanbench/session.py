"""The run session: one owner of a run directory for every suite kind (speed, accuracy, profile).

It creates or reopens the directory (--resume), locks it against a second writer, shards the cells, writes a
skipped Record for every cell that cannot run here, captures the environment at the start and the end, shows
progress, hands the rest to an executor, and prints the summary. A suite kind plugs in through `Kind`: it plans
its cells, says what a worker must do for a group of them, and turns the workers' replies into Records. The
session is the only writer of results.jsonl.
"""

from __future__ import annotations

import errno
import os
import re
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import escape, progress, results
from .errors import UsageError
from .executor import Executor, Skipped
from .record import Record
from .suite import MAX_CELLS, Suite, groups_of, shard

DRY_RUN_LINES = 300
CUDA_MISSING = "CUDA is not available on this machine (torch.cuda.is_available() is False)"
LOCK = ".lock"


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


def _load() -> list[float] | None:
    """The machine's 1, 5 and 15 minute load averages (how busy it was beside the run), where the OS tells."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def describe_gpu(cells: list[Any], environment: dict, threads: int) -> None:
    """environment["gpu"], read in a worker process, when a cell runs on cuda and the kind has not read it."""
    if "gpu" in environment or not any(getattr(c, "device", None) == "cuda" for c in cells):
        return
    from . import gpu

    try:
        environment["gpu"] = gpu.probe_in_worker("cuda", [], threads, measure=False)["gpu"]
    except Exception as exc:  # the fingerprint is a bonus to the measurements: never lose a run over it
        environment["gpu"] = {"error": f"{type(exc).__name__}: {exc}"}


@dataclass
class Options:
    """What the command line asks of a session (the same for every kind)."""

    out: str | None = None
    resume: bool = False
    shard: str | None = None
    dry_run: bool = False
    quiet: bool = False
    only: list[str] | None = None  # the --only filters, kept with the run's settings
    yes: bool = False  # measure a sweep past suite.MAX_CELLS
    run_name: str = ""  # the default directory is <UTC time>-<run_name>; empty: the suite's name
    argv: list[str] = field(default_factory=lambda: list(sys.argv))
    executor: str = "local"  # "local": worker processes on this machine; "ray": groups as Ray tasks
    address: str | None = None  # --executor ray: the cluster to join (None: start a local Ray)


def availability(cells: list[Any], gpus: str | None = None) -> Callable[[Any], str | None]:
    """A function giving why a cell cannot run on this machine, or None; asks torch and each adapter once.

    gpus: an executor's own answer for cuda cells ("" where it has GPUs, else why not) instead of this machine's.
    """
    import torch

    import implementations

    cuda_missing = (None if torch.cuda.is_available() else CUDA_MISSING) if gpus is None else (gpus or None)
    adapters: dict[str, tuple[bool, str]] = {}

    def why(cell: Any) -> str | None:
        if cell.device == "cuda" and cuda_missing:
            return cuda_missing
        if cell.spec not in adapters:
            adapters[cell.spec] = implementations.get(cell.spec).available()
        ok, reason = adapters[cell.spec]
        return None if ok else reason

    return why


@contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock; a second writer gets UsageError naming the process that holds it.

    flock is released by the kernel when its holder dies, so a lock left by a killed run never blocks --resume.
    """
    import fcntl

    path = run_dir / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)  # a link there is refused, not followed
    except OSError as exc:
        raise UsageError(f"{path}: cannot open the run's lock file: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise UsageError(f"{run_dir}: cannot lock: {exc.strerror or exc}") from None
            raise _busy(run_dir, fd) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} (started {_utc()})\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _refuse_if_locked(run_dir: Path) -> None:
    """UsageError naming the holder when another process is writing run_dir; nothing is created to find out."""
    import fcntl

    try:
        fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_NOFOLLOW)
    except OSError:
        return  # no lock file: nobody is writing here
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise _busy(run_dir, fd) from None
    finally:
        os.close(fd)


def _busy(run_dir: Path, fd: int) -> UsageError:
    """The error for a run directory another process holds; its lock file names that process."""
    holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
    return UsageError(f"{run_dir} is being written by {holder}; wait for it to finish, or choose another --out")


def too_many_cells(count: int) -> UsageError:
    """The error for a sweep past MAX_CELLS without --yes."""
    return UsageError(f"{count:,} cells, more than the {MAX_CELLS:,}-cell limit; narrow the sweep (--only, --shard) "
                      "or confirm with --yes")  # fmt: skip


def dry_run_line(cell: Any, reason: str | None, extra: str = "") -> str:
    """One cell of a dry-run listing: its hash and label, and why it would be skipped."""
    return f"{cell.config_hash}  {cell.label()}{extra}" + (f"  [skip: {reason}]" if reason else "")


def _utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _check_latest(parent: Path, options: Options, name: str) -> None:
    """The run will point <parent>/latest-<name> at itself: refuse now, not after the run, if a file is there."""
    link = parent / f"latest-{name}"
    if not options.shard and link.exists() and not link.is_symlink():
        raise UsageError(f"{link} exists and is not a link to a run; move it away (kanbench keeps a link there)")


def open_run_dir(suite: Suite, options: Options) -> Path:
    """The new run directory (or, with --resume, the one to finish); nothing is written to it yet."""
    name = options.run_name or suite.name
    parent = Path(options.out).parent if options.out else Path("results") / "runs"
    _check_latest(parent, options, name)
    if options.resume:
        if not options.out:
            raise UsageError("--resume needs --out RUN_DIR, the run to finish")
        run_dir = Path(options.out)
        stored = run_dir / results.SUITE
        if not stored.is_file():
            raise UsageError(f"{run_dir}: nothing to resume ({results.SUITE} missing)")
        if stored.read_bytes().decode("utf-8", errors="replace") != suite.text:
            raise UsageError(f"{run_dir}: its {results.SUITE} differs from {suite.path}; resume with the same suite")
        return run_dir.resolve()  # through latest-<suite>: the run itself, whose records carry its own name
    if options.out:
        run_dir = Path(options.out)
        if (run_dir / results.RESULTS).exists():
            _refuse_if_locked(run_dir)
            raise UsageError(f"{run_dir} already holds results; use --resume to finish it, or another --out")
        if run_dir.is_dir() and any(p.name != LOCK for p in run_dir.iterdir()):
            _refuse_if_locked(run_dir)
            raise UsageError(
                f"--out {run_dir} is a directory that holds other files; give a new or empty directory "
                "(or --resume, if it is an unfinished run)"
            )
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--out {run_dir}: cannot create: {exc.strerror or exc}") from None
        return run_dir.resolve()  # `--out .` names the run after the directory, not ""
    if options.shard:
        name += f"-shard{options.shard.replace('/', 'of')}"
    try:
        return results.new_run_dir(Path("results") / "runs", name)
    except OSError as exc:
        raise UsageError(f"results/runs: cannot create a run directory: {exc.strerror or exc}") from None


def _check_settings(run_dir: Path, stored: dict, current: dict) -> None:
    """--resume must measure as the run began: the same effective settings and shard."""
    before = stored.get("run", {})
    changed = sorted(k for k in current if k in before and before[k] != current[k])
    if not changed:
        return
    detail = ", ".join(f"{k}: {before.get(k)!r} then, {current.get(k)!r} now" for k in changed)
    raise UsageError(f"{run_dir}: --resume with other settings than the run began with ({detail})")


def run(kind: Kind, suite: Suite, options: Options) -> int:
    """Plan, then (unless a dry run) measure every cell of the kind not yet in the run directory."""
    cells = shard(kind.cells(), options.shard, kind.estimate)
    if len(cells) > MAX_CELLS and not options.yes and not options.dry_run:
        raise too_many_cells(len(cells))
    executor = make_executor(kind, options)  # before any file is written: a refused executor leaves nothing
    try:
        why = availability(cells, executor.gpus())
        groups = groups_of([c for c in cells if why(c) is None])
        executor.check_fits(groups)  # a group no Ray node can hold: refused now, by a dry run too
        if options.dry_run:
            *listed, total = kind.dry_run(cells, why)
            if len(listed) > DRY_RUN_LINES:  # a listing no one reads: the first ones, then the total
                listed = [*listed[: DRY_RUN_LINES // 2],
                          f"... {len(listed) - DRY_RUN_LINES // 2:,} more cells not listed"]  # fmt: skip
            placed = executor.placement(groups)
            for line in [*listed, total, *placed]:
                print(line)
            return 0
        run_dir = open_run_dir(suite, options)
        with locked(run_dir):
            return _measure(kind, suite, options, cells, run_dir, executor)
    finally:
        executor.close()


def _measure(kind: Kind, suite: Suite, options: Options, cells: list[Any], run_dir: Path, executor: Executor) -> int:
    from . import env, pyperfio

    kind.attach(run_dir)
    settings = {**kind.settings(), "shard": options.shard, "only": options.only,
                "slowdown": os.environ.get("KANBENCH_SLOWDOWN") or None}  # fmt: skip
    done: set[tuple] = set()
    if options.resume:
        results.repair_tail(run_dir)
        if (run_dir / results.RESULTS).exists():
            done = {r.key for r in results.read_records(run_dir, allow_empty=True)}
        environment = results.read_environment(run_dir) if (run_dir / results.ENVIRONMENT).exists() else {}
        if environment and "run" not in environment:
            raise UsageError(f"{run_dir / results.ENVIRONMENT}: has no run settings to resume with (field run)")
        _check_settings(run_dir, environment, settings)
    else:
        (run_dir / results.SUITE).write_text(suite.text, encoding="utf-8")
        results.create(run_dir)  # a shard with nothing to measure is still a run that merge can read
        planned = [[*key, cell.label()] for cell in cells for key in kind.keys(cell)]
        results.write_json(run_dir / results.PLANNED, {"records": planned})  # what merge checks a shard against
        environment = {}
    if not environment:
        environment = env.fingerprint()
        environment["run"] = {"kind": kind.name, "argv": options.argv, **settings, "started_utc": _utc(),
                              "load_avg_start": _load()}  # fmt: skip
    else:
        environment["run"].setdefault("resumed", []).append({"argv": options.argv, "utc": _utc()})
    results.write_environment(run_dir, environment)  # now, so a killed run can still be loaded and reported

    todo = [c for c in cells if any(k not in done for k in kind.keys(c))]
    why = availability(todo, executor.gpus())
    reasons = {id(c): why(c) for c in todo}
    runnable = [c for c in todo if reasons[id(c)] is None]
    # skips take no time: only what will be measured counts towards the ETA, or it would race to 0 s
    total = sum(kind.estimate(c) for c in runnable) + sum(kind.one_time_s(i) for i in {c.impl for c in runnable})
    lanes = executor.lanes(groups_of(runnable))  # groups measured at once: the whole estimate and each group's share
    bar = progress.Progress(len(todo), total / lanes, quiet=options.quiet)
    executor.attach(bar)
    if done:
        bar.note(f"resuming {escape.terminal(run_dir)}: {len(cells) - len(todo)} of {len(cells)} cells already done")
    run_id = run_dir.name

    def write(records: list[Record], node: dict | None = None) -> list[Record]:
        for record in records:
            record.node = node
            if record.key not in done:  # a kill mid-group left some of a cell's records
                results.append(run_dir, record)
        return records

    for cell in todo:
        reason = reasons[id(cell)]
        if reason:
            write(kind.skip_records(cell, reason, run_id))
            bar.advance(f"{cell.label()} (skipped)", 0.0)
    try:
        if runnable:
            kind.before_workers(runnable, environment, bar)
            describe_gpu(runnable, environment, kind.threads)
            groups = groups_of(runnable)
            group_of = {id(c): group for group in groups for c in group}
            unfinished = {id(group): len(group) for group in groups}
            impls: set[str] = set()
            for cell, replies in executor.run(groups):
                if isinstance(replies, Skipped):  # placed where it cannot run (a node without the GPU it declared)
                    records = write(kind.skip_records(cell, replies.reason, run_id), executor.node_of(cell))
                else:
                    records = write(kind.records(cell, replies, run_id), executor.node_of(cell))
                outcome = escape.terminal(kind.outcome(cell, records))
                group = group_of[id(cell)]
                unfinished[id(group)] -= 1
                new = {cell.impl} - impls
                impls |= new
                spent = (kind.estimate(cell) + sum(map(kind.one_time_s, new))) / lanes
                # the pace is known where a group has finished whole (its cells may come one by one)
                bar.advance(f"{cell.label()}{outcome}", spent, settles=unfinished[id(group)] == 0)
    finally:
        executor.close()
        environment["worker_torch_threads"] = executor.torch_threads or kind.threads or environment["torch_threads"]
        if executor.nodes:  # every machine that measured a group (--executor ray)
            environment["nodes"] = {**environment.get("nodes", {}), **executor.nodes}
        environment["run"]["finished_utc"] = _utc()
        environment["run"]["load_avg_end"] = _load()
        records = results.read_records(run_dir, allow_empty=True) if (run_dir / results.RESULTS).exists() else []
        present = {r.key for r in records}
        environment["run"]["complete"] = all(k in present for c in cells for k in kind.keys(c))
        results.write_environment(run_dir, environment)
    bar.finish()
    pyperfio.write(run_dir, records)
    if not options.quiet:
        print(kind.summary(records))
    print(status_line(records))
    if not options.shard:
        link_latest(run_dir, options.run_name or suite.name)
    print(f"run dir: {escape.terminal(run_dir)}")
    for line in kind.epilogue(run_dir):
        print(line)
    return 0


def status_line(records: list[Record]) -> str:
    """How many records are ok, skipped (grouped by reason) and failed (with the first failure's reason)."""
    counts = {s: sum(r.status == s for r in records) for s in ("ok", "skipped", "error")}
    lines = [f"{len(records)} records: {counts['ok']} ok, {counts['skipped']} skipped, {counts['error']} error"]
    reasons: dict[str, list[str]] = {}  # reasons that differ only in their numbers ("took 0.285 s") are one
    for r in records:
        if r.status == "skipped":
            first = (r.reason or "no reason given").splitlines()[0]
            reasons.setdefault(re.sub(r"\d+(\.\d+)?", "#", first), []).append(first)
    for seen in reasons.values():
        shown = seen[0] if len(set(seen)) == 1 else f"{seen[0]} (e.g.; {len(set(seen))} variants)"
        lines.append(f"  {len(seen)} skipped: {escape.terminal(shown)[:160]}")
    bad = next((r for r in records if r.status == "error"), None)
    if bad is not None:
        reason = escape.terminal((bad.reason or "").splitlines()[0] if bad.reason else "")
        lines.append(f"  first error: {bad.impl} {bad.profiled_phase or bad.phase}: {reason[:160]}")
    return "\n".join(lines)


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
        from .pool import WorkerPool

        under = f" under {self.kind.under} (torch takes a minute or two to import there)" if self.kind.under else ""
        self.bar.note(f"starting {self.kind.processes} worker process(es){under}")
        pool = WorkerPool(self.kind.processes, self.kind.threads, self.kind.handler, self.kind.under)
        self.torch_threads = pool.torch_threads
        self.started.append(pool)
        self.bar.begin()
        return pool

    def _group(
        self, pool, group: list[Any], index: int, stop: threading.Event | None = None
    ) -> Iterator[tuple[Any, list[dict]]]:
        """(cell, replies) for the group's cells, in group order: with kind.cell_by_cell each as soon as it and the
        cells before it are answered, else all once the group is. Nothing more is asked once stop is set."""
        requests = self.kind.requests(group, index)
        replies: dict[int, list[dict]] = {id(c): [] for c in group}
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

    def run(self, groups: list[list[Any]]) -> Iterator[tuple[Any, list[dict]]]:
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


def make_executor(kind: Kind, options: Options) -> Executor:
    """The executor --executor names: LocalExecutor, or kanbench.ray_executor.RayExecutor (imported only then)."""
    if options.executor == "local":
        if options.address:
            raise UsageError("--address is for --executor ray (the Ray cluster to join)")
        return LocalExecutor(kind)
    if options.executor == "ray":
        from .ray_executor import RayExecutor

        if kind.name == "profile":  # its traces go to a directory on the driver; a node would write its own disk
            raise UsageError("--executor ray does not profile yet: traces would land on the nodes; profile locally")
        if not kind.threads:
            raise UsageError(
                "--executor ray needs [timing].threads (or [training].threads) >= 1: Ray sets "
                "OMP_NUM_THREADS to a task's CPUs, so torch's default (threads = 0) cannot hold there"
            )
        return RayExecutor(kind, options.address)
    raise UsageError(f"--executor {options.executor!r}: known executors are local and ray")


def link_latest(run_dir: Path, name: str) -> None:
    """Point <runs>/latest-<name> at this run, so scripts (tox -e bench) can find it without parsing output."""
    link = run_dir.parent / f"latest-{name}"
    try:
        if link.is_symlink():
            link.unlink()
        elif link.exists():
            print(f"note: {link} exists and is not a link; left as it is", file=sys.stderr)
            return
        link.symlink_to(run_dir.name, target_is_directory=True)
    except OSError:
        pass  # a file system without symlinks: the run itself is complete
