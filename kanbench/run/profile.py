"""`kanbench profile SUITE`: torch.profiler traces and an op breakdown of every cell of a profile or speed suite.

Traces go to results/profiles/<run>/<cell>/<phase>.<id>.pt.trace.json (TensorBoard with torch-tb-profiler:
`tensorboard --logdir results/profiles --host 127.0.0.1`; or open one file in ui.perfetto.dev). The breakdown of
self time per category goes to the run directory as Records with phase "profile", one per (cell, profiled phase).
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import asdict
from pathlib import Path

from ..errors import UsageError
from ..measure.reply import Reply
from ..results.record import Record, make
from ..suite import Cell, Profile, Suite
from ..text import escape, table, units
from .kind import BaseKind, Presentation, Request
from .speed import call_estimate, flop_breakdown, identity, phase_flops

SMOKE = Profile(wait=0, warmup=1, active=1, repeat=1, record_shapes=False, profile_memory=False, with_stack=False)
SHOWN = ("basis", "matmul", "norm", "activation", "autograd", "optimizer", "compiled", "other", "python")


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


class ProfilePresentation(Presentation):
    """What a profile run shows: the op-category table, and where the traces are."""

    kind: ProfileKind

    def start_s(self) -> float:
        """The worker process starting."""
        return 4.0

    def planned(self, cells: list[Cell]) -> str:
        """Cells and phases."""
        return f"{len(cells)} cells x {len(self.kind.phases)} phases profiled"

    def summary(self, records: list[Record]) -> str:
        """The op-category table."""
        return summary(records)

    def epilogue(self, run_dir: Path) -> list[str]:
        """Where the traces are and how to view them."""
        root = self.kind.trace_root
        logdir = root.parent if root.parent.name == "profiles" else root
        return [
            f"traces: {escape.terminal(root)}",
            f"view: tensorboard --logdir {escape.terminal(logdir)} --host 127.0.0.1"
            "   (or open a .pt.trace.json in ui.perfetto.dev)",
        ]


class ProfileKind(BaseKind):
    """Profile every phase of a profile or speed suite's cells in one worker process; one Record per phase."""

    name = "profile"
    handler = "kanbench.measure.profile_worker:handle"
    presents = ProfilePresentation

    def __init__(self, suite: Suite, settings: Profile, cells: list[Cell], phases: tuple[str, ...], traces: str | None):
        self.suite, self.profile, self._cells, self.phases = suite, settings, cells, phases
        self.traces = traces
        self.trace_root = Path(traces or "results/profiles")
        self.threads = suite.timing.threads
        self.dir_names = cell_dir_names(suite.cells())  # from every cell, so a shard or resume names them alike

    def cells(self) -> list[Cell]:
        """The cells to profile, in suite order."""
        return self._cells

    def keys(self, cell: Cell) -> list[tuple[str, str, str | None]]:
        """One profile Record per profiled phase."""
        return [(cell.config_hash, "profile", phase) for phase in self.phases]

    def estimate(self, cell: Cell) -> float:
        """Every profiled call at ~1e10 FLOP/s (1e12 on CUDA), plus trace processing per phase."""
        p = self.profile
        steps = (p.wait + p.warmup + p.active) * p.repeat
        call = 3 * call_estimate(cell)  # up to forward + backward
        return len(self.phases) * (steps * call + 0.5 + 0.3 * p.active * p.repeat)

    def attach(self, run_dir: Path) -> None:
        """Traces go to --traces, else results/profiles/<run directory name>."""
        self.trace_root = trace_root_for(run_dir, self.traces)

    def settings(self) -> dict:
        """The profiler schedule and the trace directory, stored in environment.json and checked on --resume."""
        return {"profile": asdict(self.profile), "phases": list(self.phases), "traces": str(self.trace_root)}

    def trace_dir(self, cell: Cell) -> str:
        """The cell's trace directory: one TensorBoard run."""
        return str(self.trace_root / self.dir_names[cell.config_hash])

    def requests(self, group: list[Cell], group_index: int) -> list[Request]:
        """One request per cell."""
        return [
            Request(0, cell, {"cell": {**cell.key, "source": cell.source}, "config_hash": cell.config_hash,
                              "phases": list(self.phases), "settings": asdict(self.profile),
                              "trace_dir": self.trace_dir(cell), "max_call_s": self.suite.limits.for_impl(cell.impl)},
                    self.suite.timing.cell_timeout_s, cell.label())
            for cell in group
        ]  # fmt: skip

    def records(self, cell: Cell, replies: list[Reply], run_id: str) -> list[Record]:
        """One Record with phase "profile" per profiled phase; profiled_phase names it. One process profiles a
        cell, so each record is that reply's."""
        reply, ident, flops = replies[0], identity(cell, self.suite), flop_breakdown(cell)
        out = []
        for phase in self.phases:
            entry = reply.phases.get(phase) if reply.status == "ok" else None
            status, reason = (reply.status, reply.reason) if entry is None else (entry.status, entry.reason)
            if entry is None and status == "ok":
                status, reason = "error", "no result for this phase"
            record = make(ident, run_id, "profile", status, reason, profiled_phase=phase, counts=reply.counts)
            if entry is not None and status == "ok":  # an ok status with no entry became an error above
                record.metrics = {**(entry.metrics or {}), "trace_dir": self.trace_dir(cell)}
                if flops is not None:
                    record.flops = phase_flops(flops, phase, record.params or 0)
            out.append(record)
        return out

    def skip_records(self, cell: Cell, reason: str, run_id: str) -> list[Record]:
        """Skipped profile Records, one per profiled phase."""
        ident = identity(cell, self.suite)
        return [make(ident, run_id, "profile", "skipped", reason, profiled_phase=p) for p in self.phases]


def summary(records: list[Record]) -> str:
    """Share of self time per category, self time and op count per call, one line per (cell, phase)."""
    ok = [r for r in records if r.status == "ok"]
    shown = [c for c in SHOWN if c != "compiled" or any(_metrics(r)["categories"][c]["share"] for r in ok)]
    rows = [["impl", "phase", "shape", "device", *shown, "self/call", "ops", "kernels"]]
    skipped = 0
    for r in records:
        if r.status != "ok":
            skipped += 1
            continue
        m = _metrics(r)
        shape = f"{'x'.join(map(str, r.widths))} b{r.batch_size}"
        shares = [f"{m['categories'][c]['share']:.0%}" for c in shown]
        kernels = "-" if m["kernels_per_call"] is None else f"{m['kernels_per_call']:.0f}"
        self_call = units.fmt_time(m["total_self_s"])
        ops = f"{m['ops_per_call']:.0f}"
        rows.append([r.impl, r.profiled_phase or "", shape, r.device, *shares, self_call, ops, kernels])
    lines = [table.render(rows[0], rows[1:], align="llll" + "r" * (len(rows[0]) - 4))]
    if skipped:
        bad = next(r for r in records if r.status != "ok")
        reason = escape.terminal(bad.reason)
        lines.append(f"{skipped} record(s) not ok, e.g. {bad.impl} {bad.profiled_phase}: {bad.status}: {reason}")
    return "\n".join(lines)


def _metrics(record: Record) -> dict:
    """The metrics of an ok profile record, which always has them."""
    assert record.metrics is not None, f"an ok profile record without metrics: {record.key}"
    return record.metrics


def trace_root_for(run_dir: Path, traces: str | None) -> Path:
    """--traces, else results/profiles/<run directory name>; created and proved writable."""
    return writable_dir(Path(traces) if traces else Path("results") / "profiles" / run_dir.name, "--traces")
