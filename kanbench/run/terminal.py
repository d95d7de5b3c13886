"""The compact terminal table printed at the end of a run. No torch here."""

from __future__ import annotations

from ..results.record import Record
from ..suite import impl_label
from ..text import escape
from ..text.table import render as render_table
from ..text.units import fmt_bytes, fmt_value

COLUMNS = ("forward", "backward", "train_step")


def median(record: Record) -> float | None:
    """An ok speed record's median per call in its unit (seconds, or instructions for the instruction clock)."""
    stats = record.instructions if record.unit == "instructions" else record.time_s
    return stats["median"] if record.status == "ok" and stats is not None else None


def table(records: list[Record], max_groups: int = 12) -> str:
    """Median time (or instruction count) per phase, peak memory of a train step, params and forward ratio to the
    MLP, per group."""
    groups: dict[tuple, dict[str, dict[str, Record]]] = {}
    for r in records:
        key = (tuple(r.widths), r.grid_size, r.spline_order, r.batch_size, r.device, r.dtype)
        groups.setdefault(key, {}).setdefault(impl_label(r.impl, r.options), {})[r.phase] = r
    lines = []
    header = ["impl", *COLUMNS, "mem(train)", "params", "fwd/mlp"]
    for i, (key, by_impl) in enumerate(groups.items()):
        if i == max_groups:
            lines.append(f"... {len(groups) - max_groups} more groups: see the report or kanbench.results.load()")
            break
        widths, g, k, batch, device, dtype = key
        title = f"{'x'.join(map(str, widths))}  G={g} k={k}  batch={batch}  {device} {dtype}"
        statuses = {(r.status, r.reason) for phases in by_impl.values() for r in phases.values()}
        if len(statuses) == 1 and next(iter(statuses))[0] == "skipped":
            lines.append(f"{title}: skipped ({next(iter(statuses))[1]})")
            continue
        lines.append(f"\n{title}")
        mlp = by_impl.get("mlp", {}).get("forward")
        mlp_fwd = median(mlp) if mlp is not None else None
        rows = []
        for impl, phases in by_impl.items():
            cells = [escape.terminal(impl)]
            for phase in COLUMNS:
                record = phases.get(phase)
                value = median(record) if record is not None else None
                if record is not None and value is not None:
                    cells.append(fmt_value(value, record.unit))
                else:
                    cells.append(record.status if record else "-")
            train = phases.get("train_step")
            cells.append(fmt_bytes(train.peak_mem_bytes) if train else "-")
            any_record = next(iter(phases.values()))
            cells.append(f"{any_record.params:,}" if any_record.params is not None else "-")
            fwd = phases.get("forward")
            fwd_value = median(fwd) if fwd is not None else None
            if fwd is not None and mlp is not None and fwd_value is not None and mlp_fwd and fwd.unit == mlp.unit:
                cells.append(f"{fwd_value / mlp_fwd:.2f}x")
            else:
                cells.append("-")
            rows.append(cells)
        lines += ["  " + line for line in render_table(header, rows, align="lr").splitlines()]
    bad = [r for r in records if r.status != "ok"]
    if bad:
        lines.append(
            f"\n{len(bad)} record(s) not ok, e.g. {bad[0].impl} {bad[0].phase}: {bad[0].status}: "
            + escape.terminal(bad[0].reason)
        )
    return "\n".join(lines)
