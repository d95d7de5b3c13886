"""A Comparison as a terminal table, a pull-request markdown comment or JSON. No torch here."""

from __future__ import annotations

import json
import math

from ...text import escape, table, units
from . import relative
from .gates import VERDICTS, Comparison

MAX_MD_ROWS = 200  # a GitHub comment holds 65,536 characters
DET_HEADER = ["verdict", "metric", "cell", "base", "cand", "change"]


def fmt_quantity(value: float | None, metric: str) -> str:
    """FLOPs (decimal prefixes) or, for peak_mem_bytes, bytes (binary prefixes)."""
    return units.fmt_bytes(value) if metric == "peak_mem_bytes" else units.fmt_flops(value)


def fmt_change(ratio: float | None) -> str:
    """A ratio as a signed percentage change."""
    if ratio is None:
        return "-"
    if math.isinf(ratio):
        return "+inf%"
    return f"{(ratio - 1) * 100:+.1f}%"


def _p(p: float) -> str:
    if not math.isfinite(p):
        return "-"  # instruction counts: no test, the threshold decides
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def _level(comp: Comparison) -> str:
    return f"{(1 - comp.settings.alpha) * 100:g}%"


def gate_rule(comp: Comparison) -> str:
    """One sentence: which estimator the latency gate uses and when it fails."""
    s = comp.settings
    if len(comp.latency) and set(comp.latency["unit"]) == {"instructions"}:
        latency = (f"instruction-count gate: median instructions per call (counted by callgrind); a cell regresses "
                   f"when it runs more than {s.count_threshold * 100:g}% more instructions (counts repeat within a "
                   "fraction of a percent, so no test or re-measure is needed; the interval is the range of "
                   "count ratios).")  # fmt: skip
        return latency + _deterministic_rule(s)
    return (
        f"latency gate: {s.estimator} of the per-call times (medians shown for reference); a cell regresses when "
        f"it is more than {s.threshold * 100:g}% slower and significant (Mann-Whitney U p < {s.alpha:g} and the "
        f"{_level(comp)} bootstrap interval of the ratio excludes 1)." + _relative_rule(comp) + _deterministic_rule(s)
    )


def _relative_rule(comp: Comparison) -> str:
    """How implementations were judged against each other, or why they were not."""
    found = comp.shift
    if found is None:
        if not comp.settings.relative:
            return " Each cell judged alone (--per-cell, or kanbench regress)."
        return (f" Each cell judged alone (judging implementations against each other needs {relative.MIN_IMPLS} "
                f"and {relative.MIN_CELLS} cells).")  # fmt: skip
    pct = f"{comp.settings.threshold * 100:g}%"
    rules = list(comp.latency["rule"]) if "rule" in comp.latency else []
    paired = sum(r == "paired" for r in rules)
    how = (f" {paired} of {len(rules)} cells were measured interleaved in both runs and are judged by their paired "
           "ratio (analysis/judge.py: the cell's time against its group's median at the same moments, candidate over "
           "base, centred on its group), which no shift of the machine moves; the other cells by their own ratio "
           "against the runs' shift." if paired else "")  # fmt: skip
    return how + (
        f" Judged against the runs' own shift: the candidate ran x{found.shift:.3f} the base over the median "
        f"implementation, and its cells scatter by {found.spread:.2f} in log ratio around that (this pair's noise); "
        f"an implementation regresses when its cells together are more than {pct} slower than the shift and "
        f"{relative.Z_IMPL:g} standard errors out, a single cell only beyond {relative.Z_CELL:g} times the scatter "
        "as well. A shift every implementation shares is the machine or shared code, which two runs cannot tell "
        "apart (kanbench regress measures two commits interleaved)."
    )


def _implementation_rows(comp: Comparison) -> list[list[str]]:
    if comp.implementations is None:
        return []
    return [[r["verdict"], r["implementation"], str(r["cells"]), fmt_change(r["ratio"]), f"{r['z']:+.1f}"]
            for r in comp.implementations.to_dict("records")]  # fmt: skip


IMPL_HEADER = ["verdict", "implementation", "cells", "change vs the runs' shift", "z"]


def _deterministic_rule(s) -> str:
    return (
        f" Deterministic gates: FLOPs per call +{s.flops_threshold * 100:g}%, peak allocator bytes "
        f"+{s.mem_threshold * 100:g}%"
        + (f" (and more than {units.fmt_bytes(s.mem_slack)})" if s.mem_slack else "")
        + f" in {', '.join(s.mem_phases) or 'no'} phases."
    )


def shared_line(comp: Comparison) -> str:
    """What every compared cell has in common (the rows name only what differs), or "" when nothing is shared."""
    return f"every cell: {comp.shared}" if comp.shared else ""


def _latency_cells(row: dict, unconfirmed: set, relative: bool = False) -> list[str]:
    verdict_text = row["verdict"]
    if verdict_text == "regression" and (row["config_hash"], row["phase"]) in unconfirmed:
        verdict_text = "regression, not confirmed"
    cells = [
        verdict_text, row["label"], units.fmt_value(row["base_median"], row.get("unit", "s")),
        units.fmt_value(row["cand_median"], row.get("unit", "s")),
        fmt_change(row["ratio"]), f"{fmt_change(row['ci_low'])} .. {fmt_change(row['ci_high'])}", _p(row["p_value"]),
    ]  # fmt: skip
    if relative:  # what the verdict judged: the change less the runs' shift
        rel = row.get("relative_ratio")
        cells.append(fmt_change(rel) if isinstance(rel, float) and math.isfinite(rel) else "-")
    return cells


def _latency_header(comp: Comparison) -> list[str]:
    header = ["verdict", "cell", "base median", "cand median", f"change ({comp.settings.estimator})",
              f"{_level(comp)} interval", "p"]  # fmt: skip
    return header + (["vs the runs' shift"] if comp.shift is not None else [])


def _det_cells(row: dict) -> list[str]:
    return [
        row["verdict"], row["metric"], row["label"], fmt_quantity(row["base"], row["metric"]),
        fmt_quantity(row["cand"], row["metric"]), fmt_change(row["ratio"]),
    ]  # fmt: skip


def summary_line(comp: Comparison) -> str:
    """How many cells regressed, improved, and failed the other gates."""
    counts = comp.latency["verdict"].value_counts()
    parts = [f"{counts.get(v, 0)} {v}" for v in VERDICTS if counts.get(v, 0)]
    det = len(comp.deterministic_failures())
    text = f"{len(comp.latency)} cells: {', '.join(parts)}" if parts else "no cell timed in both runs"
    slow = comp.implementation_regressions()
    if len(slow):
        text += f"; slower implementation(s): {', '.join(slow['implementation'])}"
    if comp.unconfirmed:
        text += f" ({len(comp.unconfirmed)} of the regressions not confirmed by a re-measure)"
    if det:
        text += f"; {det} FLOPs/memory regression(s)"
    if len(comp.broken):
        text += f"; {len(comp.broken)} cell(s) ok in the base fail in the candidate"
    return text


def _moved_deterministic(comp: Comparison):
    return comp.deterministic[comp.deterministic["verdict"].isin(["regression", "improvement"])]


def to_table(comp: Comparison, title: str = "kanbench compare") -> str:
    """A plain-text report for a terminal."""
    status = "FAIL" if comp.failed else "ok"
    t = escape.terminal
    lines = [f"{t(title)}: {t(comp.base_label)} -> {t(comp.cand_label)} (suite {t(comp.suite)}): {status}"]
    lines.append(t(summary_line(comp)))
    lines.append(gate_rule(comp))
    if comp.shared:
        lines.append(t(shared_line(comp)))
    lines.append("")
    impls = _implementation_rows(comp)
    if impls:
        lines += [table.render(IMPL_HEADER, [[t(c) for c in row] for row in impls]), ""]
    rows = [
        [t(c) for c in _latency_cells(r, comp.unconfirmed, comp.shift is not None)]
        for r in comp.latency.to_dict("records")
    ]
    lines.append(table.render(_latency_header(comp), rows))
    det = _moved_deterministic(comp)
    if len(det):
        lines += ["", "FLOPs / memory changes:"]
        lines.append(table.render(DET_HEADER, [[t(c) for c in _det_cells(r)] for r in det.to_dict("records")]))
    for row in comp.broken.to_dict("records"):
        lines.append(f"BROKEN {t(row['label'])}: {t(row.get('reason'))}")
    lines += [t(line) for line in _footer(comp)]
    return "\n".join(lines) + "\n"


def _footer(comp: Comparison) -> list[str]:
    lines = []
    if comp.only_base or comp.only_cand:
        lines.append(f"not compared: {comp.only_base} cell(s) only in the base, {comp.only_cand} only in the candidate")
    varies = comp.deterministic[comp.deterministic["verdict"] == "varies"]
    if len(varies):
        lines.append(
            f"peak memory of {len(varies)} gated cell(s) differed between rounds of one side, so it was not judged: "
            + ", ".join(sorted(set(varies["label"])))
        )
    lines += [f"note: {n}" for n in comp.notes]
    return ["", *lines] if lines else []


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(escape.markdown(c) for c in row) + " |" for row in rows]
    return out


def _code(text: object) -> str:
    """Text for a Markdown code span: shown literally there, once it can hold no backtick or control character."""
    return escape.terminal(text).replace("`", "'")


def to_markdown(comp: Comparison, title: str = "kanbench compare") -> str:
    """A report that fits a pull-request comment: the verdict, the cells that moved, all cells folded away."""
    status = "**FAIL**" if comp.failed else "**pass**"
    lines = [f"### {escape.markdown(title)}: {status}", ""]  # regress's title names a commit by its subject
    lines.append(f"`{_code(comp.base_label)}` (base) vs `{_code(comp.cand_label)}` (candidate), suite "
                 f"`{_code(comp.suite)}`: {escape.markdown(summary_line(comp))}.")  # fmt: skip
    lines += ["", gate_rule(comp), ""]
    if comp.shared:
        lines += [f"Every cell: {escape.markdown(comp.shared)}.", ""]
    impls = _implementation_rows(comp)
    if impls:
        lines += _md_table(IMPL_HEADER, impls) + [""]
    moved = comp.latency[comp.latency["verdict"] != "no change"]
    if len(moved):
        lines += _md_table(
            _latency_header(comp),
            [
                _latency_cells(r, comp.unconfirmed, comp.shift is not None)
                for r in moved.head(MAX_MD_ROWS).to_dict("records")
            ],
        )
        lines.append("")
    det = _moved_deterministic(comp)
    if len(det):
        lines += ["**FLOPs / memory changes**", ""]
        lines += _md_table(DET_HEADER, [_det_cells(r) for r in det.head(MAX_MD_ROWS).to_dict("records")])
        lines.append("")
    if len(comp.broken):
        lines += ["**Cells that ran in the base and fail in the candidate**", ""]
        for row in comp.broken.to_dict("records"):
            lines.append(f"- {escape.markdown(row['label'])}: {escape.markdown(row.get('reason'))}")
        lines.append("")
    lines += [f"<details><summary>All {len(comp.latency)} cells</summary>", ""]
    rows = [
        _latency_cells(r, comp.unconfirmed, comp.shift is not None)
        for r in comp.latency.head(MAX_MD_ROWS).to_dict("records")
    ]
    lines += _md_table(_latency_header(comp), rows)
    if len(comp.latency) > MAX_MD_ROWS:
        lines.append(f"\n... {len(comp.latency) - MAX_MD_ROWS} more cells in the JSON output")
    lines += ["", "</details>"]
    lines += [line if not line else f"_{escape.markdown(line)}_" for line in _footer(comp)]
    return "\n".join(lines) + "\n"


def _records(frame) -> list[dict]:
    out = []
    for row in frame.to_dict("records"):
        clean = {}
        for key, value in row.items():
            if hasattr(value, "item"):
                value = value.item()
            if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
                value = None if math.isnan(value) else str(value)
            clean[key] = value
        out.append(clean)
    return out


def to_json(comp: Comparison) -> str:
    """Every row of every gate, with the settings, and each common cell's scalar speed metrics, as JSON."""
    s = comp.settings
    data = {
        "base": comp.base_label,
        "candidate": comp.cand_label,
        "suite": comp.suite,
        "failed": comp.failed,
        "settings": {
            "threshold": s.threshold,
            "alpha": s.alpha,
            "estimator": s.estimator,
            "flops_threshold": s.flops_threshold,
            "mem_threshold": s.mem_threshold,
            "mem_slack_bytes": s.mem_slack,
            "mem_phases": list(s.mem_phases),
        },
        "summary": summary_line(comp),
        "relative": comp.settings.relative,
        "shift": None
        if comp.shift is None
        else {
            "ratio": comp.shift.shift,
            "spread": comp.shift.spread,
            "implementations": comp.shift.impls,
            "cells": comp.shift.cells,
        },
        "implementations": [] if comp.implementations is None else _records(comp.implementations),
        "latency": _records(comp.latency),
        "deterministic": _records(comp.deterministic),
        "broken": _records(comp.broken),
        "metrics": [] if comp.metrics is None else _records(comp.metrics),
        "only_base": comp.only_base,
        "only_candidate": comp.only_cand,
        "notes": comp.notes,
    }
    return json.dumps(data, indent=2) + "\n"


def render(comp: Comparison, fmt: str, title: str = "kanbench compare") -> str:
    """The comparison in one of the formats table, markdown, json."""
    if fmt == "markdown":
        return to_markdown(comp, title)
    if fmt == "json":
        return to_json(comp)
    return to_table(comp, title)
