"""The cells of one side of a comparison: runs read and pooled per (config_hash, phase), and their labels. No torch.

A cell's label names it by the identity fields that differ among the compared cells (the implementation always),
so two rows never read the same; what every cell shares is said once (shared_label).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ...results import RESULTS, ResultsError
from ...results.record import scalar_metrics
from ...suite import impl_label

KEY = ["config_hash", "phase"]
IDENTITY = [
    "config_hash", "impl", "phase", "device", "dtype", "batch_size", "widths_label", "grid_size", "spline_order",
    "options",
]  # fmt: skip
# Label fields in reading order; "impl" carries +compile and +amp, so "options" shows the other options only.
LABEL_FIELDS = ("impl", "phase", "widths", "grid_size", "spline_order", "batch_size", "device", "dtype", "options")


def load_side(path: str | Path):
    """A run directory as a DataFrame, or a directory of run directories (rounds of one side) pooled into one."""
    import pandas as pd

    from ... import results

    path = Path(path)
    if not path.is_dir():
        raise ResultsError(f"{path}: not a directory (expected a run directory holding {RESULTS})")
    if (path / RESULTS).exists():
        return results.load(path)
    # Symbolic links (kanbench run's latest-<suite>) point at runs already in the directory.
    runs = sorted(p for p in path.iterdir() if not p.is_symlink() and (p / RESULTS).exists())
    if not runs:
        raise ResultsError(f"{path}: holds no {RESULTS} and no run directories that do")
    frames = [results.load(run) for run in runs]
    frame = pd.concat(frames, ignore_index=True)
    frame.attrs["environment"] = frames[0].attrs.get("environment", {})
    frame.attrs["run_dir"] = str(path)
    return frame


def run_label(frame, fallback: str) -> str:
    """The name of the run (or directory of rounds) a frame was read from."""
    return Path(frame.attrs.get("run_dir", fallback)).name or fallback


@dataclass
class PooledCell:
    """The pooled measurements of one (config_hash, phase) on one side."""

    identity: dict
    unit: str = "s"  # what the values count: seconds, or instructions (the instruction clock)
    groups: list[list[float]] = field(default_factory=list)
    flops: list[int] = field(default_factory=list)
    peak_mem: list[int] = field(default_factory=list)
    metrics: dict[str, list] = field(default_factory=dict)  # each scalar speed metric's values over the rounds

    @property
    def values(self) -> list[float]:
        """Every value of every process group."""
        return [v for g in self.groups for v in g]


def ok_cells(frame, side: str) -> dict[tuple[str, str], PooledCell]:
    """Timed ok records pooled by (config_hash, phase); malformed ones raise ResultsError naming the record."""
    from .stats import process_groups

    if frame is None or len(frame) == 0:
        raise ResultsError(f"{side} run has no records")
    missing = [c for c in ("config_hash", "phase", "impl", "status") if c not in frame.columns]
    if missing:
        raise ResultsError(f"{side} run lacks column(s) {', '.join(missing)}: not a frame from kanbench.results.load")
    cells: dict[tuple[str, str], PooledCell] = {}
    scalars = scalar_metrics("speed")
    for row in frame.to_dict("records"):
        if row["status"] != "ok" or row["phase"] in ("accuracy", "profile"):
            continue
        where = f"{side} run {run_label(frame, side)}: {row['impl']} {row['phase']} ({row['config_hash']})"
        unit = row.get("unit") if isinstance(row.get("unit"), str) else "s"  # runs before schema 3: seconds
        prefix, field_name = ("instructions", "instructions") if unit == "instructions" else ("time", "time_s")
        values = row.get(f"{prefix}_values")
        if not isinstance(values, list) or not values:
            raise ResultsError(f"{where}: status ok but {field_name}.values is missing or empty")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in values):
            raise ResultsError(f"{where}: {field_name}.values must be positive finite {unit}, got {values[:5]!r}...")
        key = (row["config_hash"], row["phase"])
        if "widths_label" not in row and isinstance(row.get("widths"), list):
            row["widths_label"] = "x".join(map(str, row["widths"]))
        cell = cells.setdefault(key, PooledCell({k: row.get(k) for k in IDENTITY}, unit))
        if cell.unit != unit:
            raise ResultsError(f"{where}: measured in {unit} where another round of the cell measured {cell.unit}")
        cell.groups.extend(process_groups(values, row.get(f"{prefix}_process_medians")))
        for name, target in (("flops", cell.flops), ("peak_mem_bytes", cell.peak_mem)):
            value = row.get(name)
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                target.append(int(value))
        for name in scalars:
            if _present(row.get(f"metric_{name}")):
                cell.metrics.setdefault(name, []).append(row[f"metric_{name}"])
    return cells


def _present(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def label_parts(row: dict) -> dict[str, str]:
    """Each label field of one row as text ("" where the row does not know it)."""
    options = row.get("options")
    if not isinstance(options, dict):
        options = {}

    def text(name: str, fmt: str = "{}") -> str:
        value = row.get(name)
        return fmt.format(value) if _present(value) else ""

    return {
        "impl": impl_label(str(row["impl"]), options),
        "phase": text("phase"),
        "widths": text("widths_label"),
        "grid_size": text("grid_size", "G={}"),
        "spline_order": text("spline_order", "k={}"),
        "batch_size": text("batch_size", "b{}"),
        "device": text("device"),
        "dtype": text("dtype"),
        "options": ",".join(f"{k}={v}" for k, v in sorted(options.items()) if k not in ("compile", "precision")),
    }


def distinguishing_fields(rows: list[dict]) -> tuple[str, ...]:
    """The label fields whose text differs among rows, always with "impl" (a row needs a name)."""
    parts = [label_parts(r) for r in rows]
    return tuple(f for f in LABEL_FIELDS if f == "impl" or len({p[f] for p in parts}) > 1)


def cell_label(row: dict, fields: tuple[str, ...], sep: str = " ") -> str:
    """The row named by fields, e.g. "bspline+compile forward G=8"; empty parts are left out."""
    parts = label_parts(row)
    return sep.join(parts[f] for f in fields if parts[f])


def shared_label(rows: list[dict], fields: tuple[str, ...], sep: str = " ") -> str:
    """What every row has in common: the label fields not in fields, e.g. "forward 100x100 G=5 k=3 b8 cpu float32"."""
    if not rows:
        return ""
    return cell_label(rows[0], tuple(f for f in LABEL_FIELDS if f not in fields), sep)
