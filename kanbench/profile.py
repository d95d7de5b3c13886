"""`kanbench profile SUITE`: torch.profiler traces and an op breakdown of every cell of a profile or speed suite.

Traces go to results/profiles/<run>/<cell>/<phase>.<id>.pt.trace.json (TensorBoard with torch-tb-profiler:
`tensorboard --logdir results/profiles --host 127.0.0.1`; or open one file in ui.perfetto.dev). The breakdown of
self time per category goes to the run directory as Records with phase "profile", one per (cell, profiled phase).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

from . import progress, results
from .errors import UsageError
from .record import Record
from .run import call_estimate, phase_flops, prepare_run_dir, skip_records, unavailable_reason
from .suite import Cell, Profile, Suite, load

SMOKE = Profile(wait=0, warmup=1, active=1, repeat=1, record_shapes=False, profile_memory=False, with_stack=False)
SHOWN = ("basis", "matmul", "norm", "activation", "autograd", "optimizer", "compiled", "other", "python")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of `kanbench profile`."""
    parser.add_argument("suite", help='a kind = "profile" or kind = "speed" suite file, e.g. suites/profile.toml')
    parser.add_argument("--out", help="run directory for the Records (default results/runs/<UTC time>-<suite>-profile)")
    parser.add_argument("--traces", help="directory for the traces (default results/profiles/<run directory name>)")
    parser.add_argument("--smoke", action="store_true", help="one profiled call per phase, no shapes or memory")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def writable_dir(path: Path, flag: str) -> Path:
    """Create path if needed and prove it takes a file; UsageError naming the flag otherwise."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise UsageError(
            f"{flag} {path}: cannot write there ({exc.strerror or exc}); give a writable directory"
        ) from None
    return path


def cell_dir_names(cells: list[Cell]) -> dict[str, str]:
    """config_hash -> a directory name from the cell's label (TensorBoard shows it as the run name)."""
    names: dict[str, str] = {}
    for cell in cells:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", cell.label())
        names[cell.config_hash] = name if name not in names.values() else f"{name}-{cell.config_hash[:8]}"
    return names


def estimate_seconds(cells: list[Cell], suite: Suite, settings: Profile) -> float:
    """Rough wall time: every profiled call at ~1e10 FLOP/s (1e12 on CUDA), plus trace processing per phase."""
    steps = (settings.wait + settings.warmup + settings.active) * settings.repeat
    total = 4.0  # starting the worker
    for cell in cells:
        call = 3 * call_estimate(cell)  # up to forward + backward
        total += len(suite.phases) * (steps * call + 0.5 + 0.3 * settings.active * settings.repeat)
    return total


def profile_records(cell: Cell, suite: Suite, run_id: str, reply: dict, trace_dir: str) -> list[Record]:
    """One Record with phase "profile" per profiled phase of a cell; metrics["phase"] names the phase."""
    import implementations

    records = skip_records(cell, suite, run_id, reason="")
    try:
        forward_flops = implementations.get(cell.impl).flops(
            list(cell.widths), cell.grid_size, cell.spline_order, cell.batch_size, **dict(cell.options)
        )
    except Exception:
        forward_flops = None
    out = []
    for record in records:
        phase = record.phase
        entry = reply["phases"].get(phase) if reply["status"] == "ok" else None
        status, reason = (reply["status"], reply["reason"]) if entry is None else (entry["status"], entry["reason"])
        if entry is None and status == "ok":
            status, reason = "error", "no result for this phase"
        record = replace(record, phase="profile", status=status, reason=reason, metrics={"phase": phase})
        for key in ("family", "params", "params_total", "num_basis"):
            if key in reply:
                setattr(record, key, reply[key])
        if status == "ok":
            record.metrics = {"phase": phase, **entry["metrics"], "trace_dir": trace_dir}
            if forward_flops is not None:
                record.flops = phase_flops(forward_flops, phase, record.params or 0)
        out.append(record)
    return out


def unavailable_records(cell: Cell, suite: Suite, run_id: str, reason: str) -> list[Record]:
    """Skipped profile Records, one per profiled phase."""
    return [replace(r, phase="profile", metrics={"phase": r.phase}) for r in skip_records(cell, suite, run_id, reason)]


def summary(records: list[Record]) -> str:
    """Share of self time per category, self time and op count per call, one line per (cell, phase)."""
    ok = [r for r in records if r.status == "ok"]
    shown = [c for c in SHOWN if c != "compiled" or any(r.metrics["categories"][c]["share"] for r in ok)]
    rows = [["impl", "phase", "shape", "device", *shown, "self/call", "ops", "kernels"]]
    skipped = 0
    for r in records:
        if r.status != "ok":
            skipped += 1
            continue
        m = r.metrics
        shape = f"{'x'.join(map(str, r.widths))} b{r.batch_size}"
        shares = [f"{m['categories'][c]['share']:.0%}" for c in shown]
        kernels = "-" if m["kernels_per_call"] is None else f"{m['kernels_per_call']:.0f}"
        seconds = m["total_self_s"]
        self_call = f"{seconds * 1e6:.0f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"
        rows.append([r.impl, m["phase"], shape, r.device, *shares, self_call, f"{m['ops_per_call']:.0f}", kernels])
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    if skipped:
        bad = next(r for r in records if r.status != "ok")
        lines.append(f"{skipped} record(s) not ok, e.g. {bad.impl} {bad.metrics['phase']}: {bad.status}: {bad.reason}")
    return "\n".join(lines)


def command(args: argparse.Namespace) -> int:
    """Profile every cell of a profile or speed suite."""
    suite = load(args.suite)
    if suite.kind not in ("profile", "speed"):
        raise UsageError(
            f'{args.suite}: [suite].kind is {suite.kind!r}; kanbench profile takes a "profile" or "speed" suite'
        )
    settings = SMOKE if args.smoke else suite.profile
    if args.out:
        writable_dir(Path(args.out), "--out")
    else:
        args.out = str(results.new_run_dir(Path("results") / "runs", f"{suite.name}-profile"))
    run_dir, _ = prepare_run_dir(suite, argparse.Namespace(out=args.out, resume=False, shard=None))
    trace_root = writable_dir(Path(args.traces) if args.traces else Path("results") / "profiles" / run_dir.name,
                              "--traces")  # fmt: skip
    return execute(suite, settings, run_dir, trace_root, args.quiet)


def execute(suite: Suite, settings: Profile, run_dir: Path, trace_root: Path, quiet: bool) -> int:
    """Profile the cells into run_dir (Records) and trace_root (traces), one worker process for all."""
    import torch

    import implementations

    from . import env, profile_worker
    from .pool import WorkerPool

    cells = suite.cells()
    dir_names = cell_dir_names(cells)
    run_id = run_dir.name
    cuda_ok = torch.cuda.is_available()
    availability = {impl: implementations.get(impl).available() for impl in suite.implementations}
    bar = progress.Progress(len(cells), estimate_seconds(cells, suite, settings), quiet=quiet)
    environment = env.fingerprint()
    pool = None
    try:
        for cell in cells:
            estimate = estimate_seconds([cell], suite, settings)
            why = unavailable_reason(cell, cuda_ok, availability)
            if why:
                for record in unavailable_records(cell, suite, run_id, why):
                    results.append(run_dir, record)
                bar.advance(cell.label(), estimate)
                continue
            if pool is None:
                pool = WorkerPool(1, suite.timing.threads, serve=profile_worker.serve)
                environment["worker_torch_threads"] = pool.torch_threads
            trace_dir = str(trace_root / dir_names[cell.config_hash])
            bar.current(cell.label())
            request = (cell.key, cell.config_hash, list(suite.phases), asdict(settings), trace_dir,
                       suite.limits.for_impl(cell.impl))  # fmt: skip
            reply = pool.measure(0, request, suite.timing.cell_timeout_s)
            for record in profile_records(cell, suite, run_id, reply, trace_dir):
                results.append(run_dir, record)
            bar.advance(cell.label(), estimate)
    finally:
        if pool is not None:
            pool.close()
        environment["run"] = {
            "argv": sys.argv,
            "profile": asdict(settings),
            "traces": str(trace_root),
            "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        environment.setdefault("worker_torch_threads", suite.timing.threads or environment["torch_threads"])
        results.write_environment(run_dir, environment)
    bar.finish()
    if not quiet:
        print(summary(results.read_records(run_dir)))
    logdir = trace_root.parent if trace_root.parent.name == "profiles" else trace_root
    print(f"run dir: {run_dir}\ntraces: {trace_root}")
    print(f"view: tensorboard --logdir {logdir} --host 127.0.0.1   (or open a .pt.trace.json in ui.perfetto.dev)")
    return 0
