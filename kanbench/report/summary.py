"""The first screen's numbers: per-configuration tables of each implementation, ratios to the MLPs, notes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import pandas as pd

from ..analysis import judge
from ..analysis.judge import Sample
from ..results import seeds
from ..results.record import PHASES
from ..text import units
from .answer import process_spread, sample
from .data import CONFIG_COLUMNS, REFERENCES, References, measured_rows, ordered_impls, timing_rows

MEMORY_PHASE_PREFERENCE = ("train_step", "backward", "forward", "forward_inference")


@dataclass
class Entry:
    """One table cell: a value, its text, ratios to the reference implementations and flags."""

    value: float | None
    text: str
    ratios: dict[str, float] = field(default_factory=dict)
    noisy: bool = False
    lower_is_better: bool = True
    note: str = ""  # a second, smaller line (e.g. the dataset and number of seeds)
    tag: str = ""  # entries compete for "best" only with entries of the same tag (e.g. the dataset)
    best: bool = False  # best of the table
    best_kan: bool = False  # best of the rows that are not an MLP, where that is not the best of the table
    sample: Sample | None = None  # a timing: what the judge reads, so an unresolved runner-up shares "best"


@dataclass
class SummaryTable:
    """One configuration (widths, grid, batch, device, dtype): a row per implementation."""

    key: tuple
    title: str
    columns: list[str]
    rows: list[tuple[str, str, dict[str, list[Entry]]]]  # impl, family, column -> entries
    measured: int  # ok speed records in this configuration
    unit: str = "s"  # what the phase columns count: seconds per call, or instructions per call


def fmt_time(seconds: float | None) -> str:
    """Seconds in the unit that reads best: ns, µs, ms or s (kanbench.text.units, with the page's dash and µ)."""
    return units.fmt_time(seconds, missing="—", micro="µs")


def fmt_bytes(n: float | None) -> str:
    """Bytes with a binary prefix (kanbench.text.units, with the page's dash)."""
    return units.fmt_bytes(n, missing="—")


def fmt_count(n: float | None) -> str:
    """An integer with thousands separators."""
    return "—" if n is None or not math.isfinite(n) else f"{int(n):,}"


def fmt_ratio(r: float | None) -> str:
    """A ratio as ×1.23."""
    return "—" if r is None or not math.isfinite(r) else f"×{r:.3g}"


def config_title(key: tuple) -> str:
    """A configuration key as text, e.g. "cpu float32 · widths 100x100 · G5 k3 · batch 8"."""
    c = dict(zip(CONFIG_COLUMNS, key))
    return (
        f"{c['device']} {c['dtype']} · widths {c['widths_label']} · G{c['grid_size']} k{c['spline_order']} "
        f"· batch {c['batch_size']}"
    )


def phases_in(rows: pd.DataFrame) -> list[str]:
    """The phases of these rows, in the schema's order (unknown ones last)."""
    present = set(rows["phase"])
    return [p for p in PHASES if p in present] + sorted(present - set(PHASES))


UNIT_COLUMNS = {"s": "time_median", "instructions": "instructions_median"}  # a record's unit: where its value is


def _phase_entry(refs: References, r: dict, unit: str) -> Entry:
    """A phase cell: the median time, or for the instruction clock the median instruction count, per call."""
    column = UNIT_COLUMNS[unit]
    value = float(r[column])
    text = fmt_time(value) if unit == "s" else units.fmt_instructions(value, missing="—")
    timed = unit == "s"  # the judge reads seconds; counts do not vary, so their best is the lowest
    return Entry(value, text, _ratios(refs, r, column, value), noisy=bool(r["noisy"]) and timed,
                 sample=sample(r) if timed else None)  # fmt: skip


def _ratios(refs: References, row, column: str, value: float) -> dict:
    out = {}
    for ref in REFERENCES:
        if row["impl"] == ref:
            continue
        base = refs.value(ref, row, column)
        if base:
            out[ref] = value / base
    return out


def accuracy_by_model(df: pd.DataFrame) -> dict[tuple, list[Entry]]:
    """Final test metric over seeds per (impl, widths_label, grid_size), one entry per dataset: mean ± std."""
    out: dict[tuple, list[Entry]] = {}
    for key, g in seeds.models(df, ("impl", "widths_label", "grid_size", "metric_dataset"), sort=True):
        final, metric, dataset = seeds.over(g, "final_test"), seeds.metric_of(g), str(key[3])
        if final.n:
            out.setdefault(key[:3], []).append(Entry(
                final.mean, seeds.text(final.mean, final.bar, metric), lower_is_better="accuracy" not in metric,
                note=f"{dataset} · {final.n} seed{'s' if final.n != 1 else ''}", tag=dataset))  # fmt: skip
    return out


def summary_tables(df: pd.DataFrame) -> list[SummaryTable]:
    """One table per configuration with speed records, the most completely measured first."""
    rows = measured_rows(df)
    phases = phases_in(rows)
    memory_phase = next((p for p in MEMORY_PHASE_PREFERENCE if p in phases), phases[0] if phases else None)
    columns = ["params", *phases, "peak memory", "accuracy"]
    refs = References(df)
    accuracy = accuracy_by_model(df)
    tables = []
    # a table per configuration and unit: seconds and instruction counts never share a column
    for key, group in rows.groupby([*CONFIG_COLUMNS, "unit"], sort=False):
        cfg, unit = dict(zip(CONFIG_COLUMNS, key)), key[-1]
        by_impl: dict[str, dict[str, dict]] = {}
        for r in group.to_dict("records"):
            by_impl.setdefault(r["impl"], {})[r["phase"]] = r  # a later record of the same phase wins
        table_rows = []
        for impl in ordered_impls(by_impl):
            mine = by_impl[impl]
            first = next(iter(mine.values()))
            cells: dict[str, list[Entry]] = {}
            params = first["params"]
            if params is not None and not pd.isna(params):
                cells["params"] = [
                    Entry(float(params), fmt_count(params), _ratios(refs, first, "params", float(params)))
                ]
            for phase in phases:
                if phase in mine:
                    cells[phase] = [_phase_entry(refs, mine[phase], unit)]
            r = mine.get(memory_phase) if memory_phase is not None else None
            if r is not None and r["peak_mem_bytes"] is not None and not pd.isna(r["peak_mem_bytes"]):
                value = float(r["peak_mem_bytes"])
                cells["peak memory"] = [Entry(value, fmt_bytes(value), _ratios(refs, r, "peak_mem_bytes", value))]
            # copies: each table marks its own best entries
            cells["accuracy"] = [replace(x) for x in accuracy.get((impl, cfg["widths_label"], cfg["grid_size"]), [])]
            table_rows.append((impl, str(first["family"]), cells))
        _mark_best(table_rows, columns, process_spread(group))
        title = config_title(key) + (" · instructions per call (callgrind)" if unit == "instructions" else "")
        tables.append(SummaryTable(tuple(key), title, columns, table_rows, len(group), unit))
    memory_label = f"peak memory ({memory_phase})" if memory_phase else "peak memory"
    for t in tables:
        t.columns = [memory_label if c == "peak memory" else c for c in t.columns]
        for _, _, cells in t.rows:
            if "peak memory" in cells:
                cells[memory_label] = cells.pop("peak memory")
    # GPUs first, then the configurations where most implementations were measured, then the largest.
    tables.sort(key=lambda t: (t.key[0] == "cpu", -len(t.rows), -t.measured, -_size(t.key[2]), -t.key[5]))
    return tables


def _size(widths_label: str) -> int:
    widths = [int(w) for w in str(widths_label).split("x") if w.isdigit()]
    return sum(a * b for a, b in zip(widths[:-1], widths[1:]))


def is_reference(impl: str, family: str) -> bool:
    """Whether a row is one of the MLP baselines rather than a KAN."""
    return impl in REFERENCES or family == "mlp"


def _mark_best(rows: list, columns: list[str], margin: float = 0.0) -> None:
    for column in columns:
        if column == "params":
            continue  # fewer parameters is not "better"
        by_tag: dict[str, list[tuple[bool, Entry]]] = {}
        for impl, family, cells in rows:
            for entry in cells.get(column, []):
                if entry.value is not None and math.isfinite(entry.value):
                    by_tag.setdefault(entry.tag, []).append((is_reference(impl, family), entry))
        for entries in by_tag.values():
            if len(entries) < 2:
                continue
            for _, e in entries:
                e.best = _tied_with_best(e, [x for _, x in entries], margin)
            kans = [e for ref, e in entries if not ref]
            if len(kans) >= 2 and not any(e.best for e in kans):
                for e in kans:
                    e.best_kan = _tied_with_best(e, kans, margin)


def _tied_with_best(entry: Entry, entries: list[Entry], margin: float = 0.0) -> bool:
    """Whether entry is the best of entries, or a timing the judge cannot resolve as slower than the best one
    (margin: the configuration's process spread, for the unpaired rule, as the answer takes it)."""
    pick = min if entries[0].lower_is_better else max
    best = pick(entries, key=lambda e: e.value if e.value is not None else math.nan)
    if entry.value == best.value:
        return True
    if entry.sample is None or best.sample is None:
        return False
    return not judge.judge(best.sample, entry.sample, margin).a_faster


@dataclass
class SweepRatio:
    """Geometric mean over all matched cells of an implementation's time divided by a reference's."""

    impl: str
    phase: str
    reference: str
    geomean: float
    low: float
    high: float
    n: int


def sweep_ratios(df: pd.DataFrame) -> list[SweepRatio]:
    """Per implementation, phase and reference MLP: the geometric mean time ratio over every matched cell."""
    rows = timing_rows(df)
    out = []
    for ref in REFERENCES:
        refs = rows[rows["impl"] == ref]
        if refs.empty:
            continue
        keys = ["phase", *CONFIG_COLUMNS]
        base = refs.drop_duplicates(keys, keep="last").set_index(keys)["time_median"]
        for (impl, phase), group in rows[rows["impl"] != ref].groupby(["impl", "phase"]):
            logs = []
            for _, r in group.iterrows():
                k = (phase, *(r[c] for c in CONFIG_COLUMNS))
                if k in base.index and base[k] > 0:
                    logs.append(math.log(float(r["time_median"]) / float(base[k])))
            if logs:
                out.append(
                    SweepRatio(impl, phase, ref, math.exp(sum(logs) / len(logs)), math.exp(min(logs)),
                               math.exp(max(logs)), len(logs))
                )  # fmt: skip
    return out


def problem_records(df: pd.DataFrame) -> pd.DataFrame:
    """Every skipped or failed record."""
    return df[df["status"] != "ok"]


def noisy_records(df: pd.DataFrame) -> pd.DataFrame:
    """Every ok timing whose IQR exceeds 10 % of its median, noisiest first."""
    return df[df["noisy"]].sort_values("iqr_share", ascending=False)
