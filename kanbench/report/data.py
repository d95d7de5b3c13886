"""Runs read into pandas frames for the report: validation, derived columns, reference cells. No torch here."""

from __future__ import annotations

import functools
import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

import implementations

from .. import results
from ..errors import UsageError
from ..results.record import quantile
from ..suite import MODE_OPTIONS, impl_label

NON_SPEED_PHASES = ("accuracy", "profile")
REFERENCES = ("mlp", "mlp-iso")
NOISY_IQR_SHARE = 0.10  # IQR / median above this marks a timing as noisy
# The cell identity apart from the implementation: cells equal in these were measured side by side.
CONFIG_COLUMNS = ("device", "dtype", "widths_label", "grid_size", "spline_order", "batch_size")


@dataclass
class Run:
    """One run directory as read: its name, environment and flat frame (one row per record)."""

    path: Path
    name: str
    environment: dict | None
    frame: pd.DataFrame
    records: list[dict]


def resolve_run_dir(path: str | os.PathLike) -> Path:
    """The run directory a user named: the directory itself, or the parent of a results.jsonl they pointed at."""
    p = Path(path)
    if p.is_file() and p.name == results.RESULTS:
        return p.parent
    if not p.exists():
        raise UsageError(f"{p}: no such run directory (expected a directory holding {results.RESULTS})")
    if not p.is_dir():
        raise UsageError(f"{p}: not a run directory (expected a directory holding {results.RESULTS})")
    return p.parent / p.resolve().name if p.is_symlink() else p  # latest-<suite> links: name the run itself


def read_run(path: str | os.PathLike) -> Run:
    """One run: records validated by kanbench.results, environment.json if present; an empty run is an error."""
    run_dir = resolve_run_dir(path)
    records = results.read_records(run_dir)  # schema-1 records come back as schema 2
    environment = results.read_environment(run_dir)
    frame = pd.DataFrame([results.flatten(r) for r in records])
    return Run(run_dir, run_dir.name, environment, frame, [r.to_dict() for r in records])


def read_runs(paths: list[str | os.PathLike]) -> list[Run]:
    """Every run named, checked to share one results schema; raises UsageError / ResultsError (exit 2)."""
    if not paths:
        raise UsageError("no run given: kanbench report RUN... (a directory holding results.jsonl)")
    dirs = [resolve_run_dir(p) for p in paths]
    names = Counter(d.resolve() for d in dirs)
    twice = [str(d) for d, n in names.items() if n > 1]
    if twice:
        raise UsageError(f"run given more than once: {', '.join(twice)}")
    return [read_run(d) for d in dirs]


def _quartiles(values) -> tuple[float, float]:
    if not isinstance(values, list) or not values:
        return (math.nan, math.nan)
    s = sorted(values)
    return quantile(s, 0.25), quantile(s, 0.75)


def _edges(widths) -> int:
    return sum(a * b for a, b in zip(widths[:-1], widths[1:]))


def prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """The flat frame with the columns the report derives: quartiles, noise flag, edges, dataset and seed."""
    df = frame.copy()
    for column in (
        "metric_dataset", "metric_seed", "metric_metric", "profiled_phase", "flop_per_s", "peak_mem_bytes", "reason"
    ):  # fmt: skip
        if column not in df:
            df[column] = None
    quartiles = [_quartiles(v) for v in df["time_values"]]
    df["time_q1"] = [q[0] for q in quartiles]
    df["time_q3"] = [q[1] for q in quartiles]
    # Without raw values, fall back to the IQR centred on the median.
    half = df["time_iqr"].astype(float) / 2
    df["time_q1"] = df["time_q1"].fillna(df["time_median"].astype(float) - half)
    df["time_q3"] = df["time_q3"].fillna(df["time_median"].astype(float) + half)
    df["edges"] = [_edges(w) for w in df["widths"]]
    df["speed"] = ~df["phase"].isin(NON_SPEED_PHASES)
    share = df["time_iqr"].astype(float) / df["time_median"].astype(float)
    df["iqr_share"] = share
    df["noisy"] = (df["status"] == "ok") & df["speed"] & _positive(df, "time_median") & (share > NOISY_IQR_SHARE)
    options = [o if isinstance(o, dict) else None for o in (df["options"] if "options" in df else [None] * len(df))]
    names = variant_names(list(df["impl"]), options)
    df["impl"] = [impl_label(n, o) for n, o in zip(names, options)]
    df["impl_rank"] = [impl_rank(i) for i in df["impl"]]
    return df


# Options of a record that are not build options: cell modes (impl_label marks them) and an accuracy run's recipe
NOT_BUILD_OPTIONS = (*MODE_OPTIONS, "recipe", "data")


def build_options(options: dict | None) -> dict:
    """The build options a record's model was made with (what [options.IMPL] gave)."""
    return {k: v for k, v in (options or {}).items() if k not in NOT_BUILD_OPTIONS}


def variant_names(impls: list[str], options: list[dict | None]) -> list[str]:
    """Each implementation's name, marked "impl[k=v, ...]" by its build options where these runs hold it with more
    than one set of them: differently built models are never averaged or ranked as one."""
    built = [sorted(build_options(o).items()) for o in options]
    ways: dict[str, set[str]] = {}
    for impl, b in zip(impls, built):
        ways.setdefault(impl, set()).add(repr(b))
    return [impl + "[" + ", ".join(f"{k}={v}" for k, v in b) + "]" if b and len(ways[impl]) > 1 else impl
            for impl, b in zip(impls, built)]  # fmt: skip


@functools.cache  # impl_rank asks once per row
def registered(impl: str) -> implementations.Info | None:
    """The registry's Info of impl, or None for a name this checkout does not register (a run may hold any)."""
    if impl not in implementations.names():  # never import a "module.path:factory" string that a run stored
        return None
    try:
        return implementations.info(impl)
    except Exception:  # a broken third-party entry point must not break the report
        return None


def impl_rank(impl: str) -> tuple:
    """Sort key: the registered implementations in the registry's order, then the rest by name."""
    entry = registered(impl.split("[", 1)[0])  # a variant sorts beside its implementation
    return (entry.order, impl) if entry is not None else (len(implementations.names()), impl)


def ordered_impls(values) -> list[str]:
    """Implementation names in report order."""
    return sorted(set(values), key=impl_rank)


def combine(runs: list[Run]) -> tuple[pd.DataFrame, int]:
    """All runs' records in one frame; where runs measured the same cell and phase, the later run's record wins.

    Returns the frame and how many earlier records were superseded.
    """
    frames = []
    for order, run in enumerate(runs):
        f = run.frame.copy()
        f["run"] = run.name
        f["run_order"] = order
        frames.append(f)
    df = prepare(pd.concat(frames, ignore_index=True))
    # Accuracy records of one cell differ by dataset and seed; profile records by the phase they profiled.
    key = ["config_hash", "phase", "metric_dataset", "metric_seed", "profiled_phase"]
    before = len(df)
    deduped = df.loc[~df[key].astype(str).duplicated(keep="last")].reset_index(drop=True)
    return deduped, before - len(deduped)


def _positive(df: pd.DataFrame, column: str) -> pd.Series:
    """Whether column holds a number > 0: a median of 0 per call (the clock did not resolve the call) can be
    neither ranked nor divided by, so the tables, ratios, figures and the answer leave it out (see zero_rows)."""
    if column not in df:
        return pd.Series(False, index=df.index)
    return pd.to_numeric(df[column], errors="coerce").gt(0)


def timing_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Ok records of speed phases that carry a time above 0."""
    return df[(df["status"] == "ok") & df["speed"] & _positive(df, "time_median")]


def measured_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Ok records of speed phases that carry a time or an instruction count above 0 (the instruction clock's
    records have no time_s)."""
    return df[
        (df["status"] == "ok") & df["speed"] & (_positive(df, "time_median") | _positive(df, "instructions_median"))
    ]


def zero_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Ok speed records whose median per call is 0 (the reader accepts it: every statistic >= 0), which
    measured_rows leaves out; the report's notes list them."""
    ok = df[(df["status"] == "ok") & df["speed"]]
    return ok[~ok.index.isin(measured_rows(ok).index)]


class References:
    """The reference implementations' ok records, indexed by cell, to divide other implementations' values by."""

    MATCH = ("phase", "device", "dtype", "widths_label", "spline_order", "batch_size")

    def __init__(self, df: pd.DataFrame, references: tuple[str, ...] = REFERENCES):
        self._index: dict[tuple, list[dict]] = {}
        ok = df[df["impl"].isin(references) & (df["status"] == "ok")]
        for row in ok.to_dict("records"):
            key = (row["impl"], *(row[c] for c in self.MATCH))
            self._index.setdefault(key, []).append(row)

    def value(self, reference: str, row, column: str, phase: str | None = None) -> float | None:
        """The reference's value of column in the same cell (widths, grid, batch, device, dtype) and phase.

        A reference known not to depend on the grid (the plain MLP, or one measured at several grid sizes with the
        same parameter count) matches at any grid size when it was not measured at this one.
        """
        key = (reference, phase or row["phase"], *(row[c] for c in self.MATCH[1:]))
        same = self._index.get(key, [])
        exact = [r for r in same if r["grid_size"] == row["grid_size"]]
        if not exact and same and self._grid_free(reference, same):
            exact = same
        values = [r[column] for r in exact if r.get(column) is not None and not pd.isna(r[column])]
        return float(values[-1]) if values else None

    @staticmethod
    def _grid_free(reference: str, rows: list[dict]) -> bool:
        if not all(r["num_basis"] == 0 for r in rows):
            return False
        grids = {r["grid_size"] for r in rows}
        return reference == "mlp" or (len(grids) > 1 and len({r["params"] for r in rows}) == 1)
