"""The run session: one owner of a run directory for every suite kind (speed, accuracy, profile).

It creates or reopens the directory (--resume), locks it against a second writer, shards the cells, writes a
skipped Record for every cell that cannot run here, captures the environment at the start and the end, shows
progress, hands the rest to an executor, and prints the summary. A suite kind plugs in through `kanbench.run.kind.Kind`:
it plans its cells, says what a worker must do for a group of them, and turns the workers' replies into Records;
what the session shows of it (dry-run listing, progress, summary) is its `kind.presentation`.
The session is the only writer of results.jsonl.
"""

from __future__ import annotations

import errno
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import results
from ..errors import UsageError
from ..results.record import Record
from ..suite import MAX_CELLS, Suite, groups_of, shard
from ..text import escape
from . import progress
from .executor import Executor, Skipped
from .kind import Kind
from .local_executor import LocalExecutor

DRY_RUN_LINES = 300
CUDA_MISSING = "CUDA is not available on this machine (torch.cuda.is_available() is False)"
LOCK = ".lock"


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
    from ..measure import gpu

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


def availability(gpus: str | None = None) -> Callable[[Any], str | None]:
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


def check_size(count: int, options: Options, suite_path: str = "") -> None:
    """Refuse a sweep past MAX_CELLS without --yes. suite_path: counted before planning (so as not to make a huge
    sweep's cells), where a dry run is refused too, having no cells to list."""
    if count <= MAX_CELLS or options.yes or (options.dry_run and not suite_path):
        return
    where = f"{suite_path}: " if suite_path else ""
    limit = f"more than the {MAX_CELLS:,}-cell limit; narrow the sweep (--only, --shard) or confirm with --yes"
    raise UsageError(f"{where}{count:,} cells, {limit}" + (" (not listed)" if options.dry_run else ""))


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
    check_size(len(cells), options)
    executor = make_executor(kind, options)  # before any file is written: a refused executor leaves nothing
    try:
        why = availability(executor.gpus())
        groups = groups_of([c for c in cells if why(c) is None])
        executor.check_fits(groups)  # a group no Ray node can hold: refused now, by a dry run too
        if options.dry_run:
            *listed, total = kind.presentation.dry_run(cells, why)
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
    from ..measure import env
    from ..results import pyperfio

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
    why = availability(executor.gpus())
    reasons = {id(c): why(c) for c in todo}
    runnable = [c for c in todo if reasons[id(c)] is None]
    # skips take no time: only what will be measured counts towards the ETA, or it would race to 0 s
    shown = kind.presentation
    total = sum(map(kind.estimate, runnable)) + sum(map(shown.one_time_s, {c.impl for c in runnable}))
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
                outcome = escape.terminal(shown.outcome(cell, records))
                group = group_of[id(cell)]
                unfinished[id(group)] -= 1
                new = {cell.impl} - impls
                impls |= new
                spent = (kind.estimate(cell) + sum(map(shown.one_time_s, new))) / lanes
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
        print(shown.summary(records))
    print(status_line(records))
    if not options.shard:
        link_latest(run_dir, options.run_name or suite.name)
    print(f"run dir: {escape.terminal(run_dir)}")
    for line in shown.epilogue(run_dir):
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


def make_executor(kind: Kind, options: Options) -> Executor:
    """The executor --executor names: LocalExecutor, or kanbench.run.ray_executor.RayExecutor (imported only then)."""
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
