"""`kanbench table RUN... [--format markdown|latex|csv]`: the runs' numbers as a table to paste into a paper.

One row per implementation: the median time of one phase with its spread (± half the interquartile range), the
ratio to `mlp` and `mlp-iso` measured in the same configuration, parameters, peak memory of that phase, and the
accuracy's mean ± sd over seeds where accuracy runs are given; a provenance line (device, torch, commit, kanbench
version) under each table. One table per configuration, or with `--axis batch_size` one column per value of that
axis. Markdown and LaTeX (booktabs) escape every string for their format; CSV is one tidy row per implementation and
configuration, numbers unformatted, and reads back with `pandas.read_csv`. Reads results files only: no torch.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import UsageError
from ..results import seeds
from ..text import escape, units
from . import data

FORMATS = ("markdown", "latex", "csv")
# What --where and --axis name, and the frame column each reads (widths are written 784x64x10)
KEYS = {
    "device": "device", "dtype": "dtype", "widths": "widths_label", "grid_size": "grid_size",
    "spline_order": "spline_order", "batch_size": "batch_size", "impl": "impl",
}  # fmt: skip
AXES = tuple(k for k in KEYS if k != "impl")
PHASE_PREFERENCE = ("train_step", "forward", "backward", "forward_inference")
SPREAD_NOTE = "median ± half the interquartile range"
AXIS_NOTE = "in parentheses the ratio to mlp"
ACCURACY_NOTE = "accuracy: mean ± sd over seeds"
ACCURACY_BESIDE_TIME = ACCURACY_NOTE + " of the same model, whatever batch it was timed at"


@dataclass
class Table:
    """One table: its configuration (the axis left out when given), the rows' tidy entries and the phase timed."""

    config: dict
    phase: str | None
    axis: str | None
    entries: pd.DataFrame  # one row per implementation (and axis value): the columns of `entries()`


# ---------------------------------------------------------------------------------------------------------- data


def _accuracy(df: pd.DataFrame) -> dict[tuple, dict[str, tuple[float, float, int, str, int]]]:
    """{(impl, widths_label, grid_size): {dataset: (mean, sd, seeds, metric, diverged)}} of the final test metric."""
    out: dict[tuple, dict[str, tuple[float, float, int, str, int]]] = {}
    keys = ("impl", "widths_label", "grid_size", "metric_dataset")
    for (impl, widths, grid, dataset), group in seeds.models(df, keys, sort=True):
        final = seeds.over(group, "final_test")
        if not final.n:
            continue
        diverged = int(group["metric_diverged"].fillna(False).astype(bool).sum()) if "metric_diverged" in group else 0
        out.setdefault((impl, widths, int(grid)), {})[str(dataset)] = (final.mean, final.bar, final.n,
                                                                       seeds.metric_of(group), diverged)  # fmt: skip
    return out


def choose_phase(df: pd.DataFrame, phase: str | None) -> str | None:
    """The phase to tabulate: the one asked for (UsageError if no ok record has it), else train_step if present."""
    present = set(data.timing_rows(df)["phase"])
    if phase is not None:
        if phase not in present:
            shown = ", ".join(sorted(present)) or "none (no ok speed record)"
            raise UsageError(f"--phase {phase}: the runs hold no ok timing of it; phases present: {shown}")
        return phase
    return next((p for p in PHASE_PREFERENCE if p in present), min(present) if present else None)


def entries(df: pd.DataFrame, phase: str | None) -> pd.DataFrame:
    """The tidy table: one row per (configuration, implementation) with every number the tables show."""
    accuracy = _accuracy(df)
    datasets = sorted({d for per in accuracy.values() for d in per})
    speed = data.timing_rows(df)
    speed = speed[speed["phase"] == phase] if phase is not None else speed.iloc[0:0]
    refs = data.References(df)
    config = list(data.CONFIG_COLUMNS)
    timed = not speed.empty
    base = speed
    if not timed:  # accuracy runs alone: one row per trained model, its configuration the training's
        base = df[(df["phase"] == "accuracy") & (df["status"] == "ok")].drop_duplicates(["impl", *config])
    rows = []
    for row in base.to_dict("records"):
        out = {c: row[c] for c in config}
        out.update(impl=row["impl"], family=row["family"], phase=phase if timed else None)
        out["params"] = int(row["params"]) if row.get("params") is not None else None
        for stat in ("time_median", "time_q1", "time_q3"):
            out[f"{stat}_s"] = float(row[stat]) if timed else math.nan
        for ref in data.REFERENCES:
            base_time = refs.value(ref, row, "time_median") if timed and row["impl"] != ref else None
            out[f"ratio_{ref.replace('-', '_')}"] = out["time_median_s"] / base_time if base_time else math.nan
        memory = row.get("peak_mem_bytes") if timed else None
        out["peak_mem_bytes"] = float(memory) if memory is not None and not pd.isna(memory) else math.nan
        found = accuracy.get((row["impl"], row["widths_label"], int(row["grid_size"])), {})
        for dataset in datasets:
            mean, sd, n, metric, diverged = found.get(dataset, (math.nan, math.nan, 0, "", 0))
            out[f"accuracy_{dataset}_mean"], out[f"accuracy_{dataset}_sd"] = mean, sd
            out[f"accuracy_{dataset}_seeds"], out[f"accuracy_{dataset}_metric"] = n, metric
            out[f"accuracy_{dataset}_diverged"] = diverged
        rows.append(out)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["impl_rank"] = [data.impl_rank(i) for i in frame["impl"]]
    return frame.sort_values([*config, "impl_rank"], kind="stable").drop(columns="impl_rank").reset_index(drop=True)


def select(frame: pd.DataFrame, where: list[str] | None) -> pd.DataFrame:
    """The rows every `--where key=value,...` matches (a key given twice matches either value)."""
    wanted: dict[str, set[str]] = {}
    for spec in where or ():
        for part in spec.split(","):
            key, sep, value = part.strip().partition("=")
            if not sep or not value:
                raise UsageError(f"--where {spec!r}: expected key=value pairs separated by commas, e.g. batch_size=64")
            if key not in KEYS:
                raise UsageError(f"--where {spec!r}: unknown key {key!r}; allowed: {', '.join(KEYS)}")
            wanted.setdefault(key, set()).add(value)
    for key, accepted in wanted.items():
        present = frame[KEYS[key]].astype(str)
        unknown = sorted(accepted - set(present))
        if unknown:
            raise UsageError(f"--where {key}={unknown[0]}: no row has it; present: {', '.join(sorted(set(present)))}")
        frame = frame[present.isin(accepted)]
    return frame


def _axis_order(values: list) -> list:
    """Axis values in reading order: numbers ascending, widths by their number of edges."""
    if all(isinstance(v, str) and re.fullmatch(r"\d+(x\d+)+", v) for v in values):
        return sorted(values, key=lambda w: (data._edges([int(x) for x in w.split("x")]), w))
    return sorted(values, key=lambda v: (str(type(v)), v))


def tables(frame: pd.DataFrame, phase: str | None, axis: str | None) -> list[Table]:
    """The tables to print: one per configuration, the axis (if any) kept inside each table."""
    config = [c for c in data.CONFIG_COLUMNS if axis is None or c != KEYS[axis]]
    groups = frame.groupby(config, sort=False, dropna=False)
    return [Table(dict(zip(config, key)), phase, axis, group.reset_index(drop=True)) for key, group in groups]


# ---------------------------------------------------------------------------------------------------------- text


def _time(row: dict) -> str:
    median = row["time_median_s"]
    if not math.isfinite(median):
        return units.MISSING
    half = (row["time_q3_s"] - row["time_q1_s"]) / 2
    return f"{units.fmt_time(median)} ± {units.fmt_time(half)}" if math.isfinite(half) else units.fmt_time(median)


def _ratio(value: float) -> str:
    return f"×{value:.3g}" if math.isfinite(value) else units.MISSING


def _accuracy_text(mean: float, sd: float, n: int, metric: str, diverged: int = 0) -> str:
    if not n:
        return units.MISSING
    scale, unit = (100.0, " %") if "accuracy" in metric else (1.0, "")
    seeds = f"n={n}" + (f", {diverged} diverged" if diverged else "")
    if n == 1:  # one seed has no spread to show
        return f"{mean * scale:.4g}{unit} ({seeds})"
    return f"{mean * scale:.4g} ± {sd * scale:.2g}{unit} ({seeds})"


def _datasets(frame: pd.DataFrame) -> list[str]:
    return [
        c[len("accuracy_") : -len("_mean")] for c in frame.columns if c.startswith("accuracy_") and c.endswith("_mean")
    ]


def _cells(table: Table) -> tuple[list[str], list[list[str]], str]:
    """Header, body and column alignment ("l"/"r" per column) of one table as plain text."""
    frame = table.entries
    datasets = [d for d in _datasets(frame) if frame[f"accuracy_{d}_seeds"].sum() > 0]
    timed = table.phase is not None
    if table.axis is not None:  # a sweep: one column per value of the axis, each "time (×mlp)"
        column = KEYS[table.axis]
        values = _axis_order(list(dict.fromkeys(frame[column])))
        header = ["Implementation", *(f"{table.axis} {v}" for v in values)]
        body = []
        for impl in dict.fromkeys(frame["impl"]):
            mine = frame[frame["impl"] == impl]
            cells = [impl]
            for v in values:
                found = mine[mine[column] == v].to_dict("records")
                if not found:
                    cells.append(units.MISSING)
                elif timed:
                    r = found[0]
                    ratio = f" ({_ratio(r['ratio_mlp'])})" if math.isfinite(r["ratio_mlp"]) else ""
                    cells.append(_time(r) + ratio)
                else:
                    cells.append(units.fmt_bytes(found[0]["peak_mem_bytes"]))
            body.append(cells)
        return header, body, "l" + "r" * len(values)
    header = ["Implementation", "Params"]
    if timed:
        header += [f"{table.phase} time", "× mlp", "× mlp-iso", "Peak memory"]
    header += [f"Accuracy ({d})" for d in datasets]
    body = []
    for r in frame.to_dict("records"):
        cells = [r["impl"], f"{r['params']:,}" if r["params"] is not None and not pd.isna(r["params"]) else "-"]
        if timed:
            cells += [
                _time(r),
                _ratio(r["ratio_mlp"]),
                _ratio(r["ratio_mlp_iso"]),
                units.fmt_bytes(r["peak_mem_bytes"]),
            ]
        for d in datasets:
            cells.append(_accuracy_text(r[f"accuracy_{d}_mean"], r[f"accuracy_{d}_sd"], int(r[f"accuracy_{d}_seeds"]),
                                        str(r[f"accuracy_{d}_metric"]), int(r[f"accuracy_{d}_diverged"])))  # fmt: skip
        body.append(cells)
    return header, body, "l" + "r" * (len(header) - 1)


def title(table: Table) -> str:
    """The configuration a table shows, e.g. "train_step, cpu float32, widths 784x64x10, G5 k3, batch 64"."""
    c = table.config
    parts = [table.phase] if table.phase else []
    if "device" in c and "dtype" in c:
        parts.append(f"{c['device']} {c['dtype']}")
    elif "device" in c or "dtype" in c:
        parts.append(str(c.get("device", c.get("dtype"))))
    if "widths_label" in c:
        parts.append(f"widths {c['widths_label']}")
    grid = f"G{c['grid_size']}" if "grid_size" in c else ""
    order = f"k{c['spline_order']}" if "spline_order" in c else ""
    if grid or order:
        parts.append(" ".join(p for p in (grid, order) if p))
    if "batch_size" in c:
        parts.append(f"batch {c['batch_size']}")
    if table.axis:
        parts.append(f"by {table.axis}")
    return ", ".join(parts)


def note(table: Table) -> str:
    """What the numbers in a table's cells are."""
    if table.phase is None:
        return ACCURACY_NOTE
    notes = [SPREAD_NOTE]
    if table.axis is not None:
        notes.append(AXIS_NOTE)
    elif any(table.entries[f"accuracy_{d}_seeds"].sum() > 0 for d in _datasets(table.entries)):
        notes.append(ACCURACY_BESIDE_TIME)
    return "; ".join(notes)


def provenance(runs: list[data.Run], frame: pd.DataFrame) -> str:
    """Where the numbers come from: device, torch, commit and kanbench version of every run (distinct values)."""

    def distinct(values) -> str:
        found = [str(v) for v in dict.fromkeys(values) if v not in (None, "")]
        return " / ".join(found) if found else "unknown"

    envs = [r.environment or {} for r in runs]
    devices = []
    for env in envs:
        gpu = env.get("gpu") if isinstance(env.get("gpu"), dict) else {}
        if "cpu" in set(frame["device"]) or not gpu:
            devices.append(env.get("cpu_model"))
        if gpu and any(str(d).startswith("cuda") for d in frame["device"]):
            devices.append(gpu.get("name"))
    commits = [str(e.get("git_commit") or "")[:12] for e in envs]
    return (
        f"device {distinct(devices)}; torch {distinct(e.get('torch') for e in envs)}; commit {distinct(commits)}; "
        f"kanbench {distinct(e.get('kanbench_version') for e in envs)}"
    )


def markdown(tables_: list[Table], source: str) -> str:
    """Markdown: a bold title line, a pipe table (every cell escaped) and the provenance line, per table."""
    out = []
    for table in tables_:
        header, body, align = _cells(table)
        out.append(f"**{escape.markdown(title(table))}** ({escape.markdown(note(table))})")
        out.append("")
        out.append("| " + " | ".join(escape.markdown(h) for h in header) + " |")
        out.append("|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|")
        out += ["| " + " | ".join(escape.markdown(c) for c in row) + " |" for row in body]
        out.append("")
        out.append(f"*{escape.markdown(source)}*")
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


_LATEX = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
    "|": r"\textbar{}", "×": r"$\times$", "±": r"$\pm$", "µ": r"$\mu$", "—": "---", '"': r"\textquotedbl{}",
}  # fmt: skip


def latex_escape(text: object) -> str:
    """Text that typesets as itself in LaTeX: the ten special characters and ×, ±, µ as commands."""
    return "".join(_LATEX.get(ch, ch) for ch in escape.terminal(text))


def latex(tables_: list[Table], source: str) -> str:
    """LaTeX: one booktabs table environment per table (needs \\usepackage{booktabs})."""
    out = ["% kanbench table: needs \\usepackage{booktabs}"]
    for table in tables_:
        header, body, align = _cells(table)
        out.append("\\begin{table}[htbp]")
        out.append("\\centering")
        out.append(f"\\caption{{{latex_escape(title(table))} ({latex_escape(note(table))})}}")
        out.append(f"\\begin{{tabular}}{{{align}}}")
        out.append("\\toprule")
        out.append(" & ".join(latex_escape(h) for h in header) + " \\\\")
        out.append("\\midrule")
        out += [" & ".join(latex_escape(c) for c in row) + " \\\\" for row in body]
        out.append("\\bottomrule")
        out.append("\\end{tabular}")
        out.append(f"\\par\\smallskip{{\\footnotesize {latex_escape(source)}}}")
        out.append("\\end{table}")
    return "\n".join(out) + "\n"


def csv(frame: pd.DataFrame, runs: list[data.Run]) -> str:
    """CSV: the tidy entries, numbers in base units (seconds, bytes, fractions), the provenance as columns."""
    envs = [r.environment or {} for r in runs]

    def distinct(key: str, short: int = 0) -> str:
        found = [str(e.get(key) or "") for e in envs]
        return " / ".join(dict.fromkeys(v[:short] if short else v for v in found if v))

    out = frame.copy()
    out["torch"], out["commit"] = distinct("torch"), distinct("git_commit", 12)
    out["kanbench_version"], out["cpu_model"] = distinct("kanbench_version"), distinct("cpu_model")
    return out.to_csv(index=False, lineterminator="\n")


RENDER: dict[str, Callable[[list[Table], str], str]] = {"markdown": markdown, "latex": latex}


def build(runs: list[data.Run], fmt: str, phase: str | None = None, axis: str | None = None,
          where: list[str] | None = None) -> str:  # fmt: skip
    """The table text of the runs in one format; UsageError when they hold nothing to tabulate."""
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt}: allowed: {', '.join(FORMATS)}")
    if axis is not None and axis not in AXES:
        raise UsageError(f"--axis {axis}: allowed: {', '.join(AXES)}")
    df, _ = data.combine(runs)
    chosen = choose_phase(df, phase)
    frame = entries(df, chosen)
    if frame.empty:
        raise UsageError("the runs hold no ok timing or accuracy record to tabulate")
    frame = select(frame, where)
    if fmt == "csv":
        return csv(frame, runs)
    return RENDER[fmt](tables(frame, chosen, axis), provenance(runs, frame))


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of `kanbench table`."""
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run directories (speed and/or accuracy runs)")
    parser.add_argument("--format", choices=FORMATS, default="markdown", help="markdown (default), latex or csv")
    parser.add_argument("--phase", help="the timed phase (default: train_step if measured, else forward, ...)")
    parser.add_argument("--axis", choices=AXES, help="one column per value of this axis (a sweep), not per metric")
    where = f"only these rows, e.g. batch_size=64,widths=784x64x10; keys: {', '.join(KEYS)}"
    parser.add_argument("--where", action="append", metavar="KEY=VALUE,...", help=where)
    parser.add_argument("-o", "--output", help="write to this file instead of standard output")


def command(args: argparse.Namespace) -> int:
    """Print (or write) the table of the runs."""
    text = build(data.read_runs(args.runs), args.format, args.phase, args.axis, args.where)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        print(text, end="")
    return 0
