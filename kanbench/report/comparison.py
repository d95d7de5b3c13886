"""Two runs side by side: the regression gate's (kanbench.analysis.compare) verdict and ratio per common cell."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from ..analysis import compare
from ..analysis.compare import Comparison, GateSettings
from ..text import units
from . import ticks
from .data import Run, ordered_impls
from .figures import Figure, esc
from .summary import fmt_ratio, fmt_time

VERDICT_COLORS = {
    "regression": "#d62728",
    "improvement": "#2ca02c",
    "no change": "#7f7f7f",
    "not significant": "#ff9f1c",
}
VERDICT_ORDER = ("regression", "improvement", "not significant", "no change")


def compare_runs(base: Run, cand: Run, threshold: float = 0.10, alpha: float = 0.01) -> Comparison:
    """The gate's comparison of two runs of one suite; UsageError / ResultsError when it declines them."""
    bf, cf = base.frame.copy(), cand.frame.copy()
    bf.attrs["run_dir"], cf.attrs["run_dir"] = str(base.path), str(cand.path)
    return compare.compare_runs(bf, cf, GateSettings(threshold=threshold, alpha=alpha))


def counted(comp: Comparison) -> bool:
    """Whether the comparison judged instruction counts (the instruction clock) rather than times."""
    return "unit" in comp.latency and len(comp.latency) > 0 and set(comp.latency["unit"]) == {"instructions"}


def per_call(value: float | None, unit: str) -> str:
    """A per-call value in its unit: a time, or an instruction count."""
    return fmt_time(value) if unit != "instructions" else units.fmt_instructions(value, missing="—")


def measure(comp: Comparison) -> tuple[str, float]:
    """What the gate's ratios divide and the threshold it applied: (e.g. "p10 time per call", 0.10)."""
    s = comp.settings
    if counted(comp):
        return "median instruction count per call", s.count_threshold
    return f"{s.estimator} time per call", s.threshold


def sorted_cells(comp: Comparison) -> pd.DataFrame:
    """Rows in reading order: regressions first, then improvements, each by the size of the change."""
    f = comp.latency.copy()
    f["_v"] = [VERDICT_ORDER.index(v) if v in VERDICT_ORDER else len(VERDICT_ORDER) for v in f["verdict"]]
    f["_r"] = -(f["ratio"].astype(float).apply(lambda r: max(r, 1 / r) if r > 0 else float("inf")))
    return f.sort_values(["_v", "_r"]).drop(columns=["_v", "_r"])


MAX_LABELLED = 60  # cells up to which each is named on the x axis
LABEL_CHARS = 40  # a cell's name on the axis is cut to this many characters (hover shows it whole)


def comparison_figure(comp: Comparison) -> Figure:
    """Each common cell's candidate / baseline ratio with its interval, coloured by verdict."""
    title = f"{comp.cand_label} / {comp.base_label} per cell"
    f = comp.latency
    if f.empty:
        return Figure("comparison", title, None, empty_reason="the two runs share no timed cell")
    fig = go.Figure()
    f = f.assign(_rank=[ordered_impls(f["impl"]).index(i) for i in f["impl"]])
    f = f.sort_values(["_rank", "phase", "device", "widths_label", "batch_size"]).reset_index(drop=True)
    for verdict in VERDICT_ORDER:
        sel = f[f["verdict"] == verdict]
        if sel.empty:
            continue
        hover = [
            f"{esc(r.label)}<br>ratio {fmt_ratio(r.ratio)} [{r.ci_low:.3g}, {r.ci_high:.3g}], p={r.p_value:.2g}"
            f"<br>median {per_call(r.base_median, r.unit)} → {per_call(r.cand_median, r.unit)}<br>{esc(verdict)}"
            for r in sel.itertuples()
        ]
        error = dict(type="data", symmetric=False, array=list(sel["ci_high"] - sel["ratio"]),
                     arrayminus=list(sel["ratio"] - sel["ci_low"]), thickness=1)  # fmt: skip
        fig.add_trace(
            go.Scatter(
                x=list(sel.index), y=list(sel["ratio"].astype(float)), mode="markers", error_y=error,
                name=esc(verdict), marker=dict(color=VERDICT_COLORS[verdict], size=8), text=hover, hoverinfo="text",
            )
        )  # fmt: skip
    fig.add_hline(y=1.0, line=dict(color="#555", width=1))
    what, threshold = measure(comp)
    centre = comp.shift.shift if comp.shift is not None else 1.0  # verdicts judge the change less the runs' shift
    if comp.shift is not None:
        fig.add_hline(y=centre, line=dict(color="#1f77b4", width=1))
    for bound in (centre * (1 + threshold), centre / (1 + threshold)):
        fig.add_hline(y=bound, line=dict(color="#aaa", dash="dot", width=1))
    if len(f) <= MAX_LABELLED:  # every cell named under its point
        tickvals, ticktext, bottom = list(f.index), [esc(label) for label in f["label"]], 40 + 6 * LABEL_CHARS
        xaxis = dict(tickangle=-60, title_text="")
    else:  # too many to read: each implementation named at its first cell, a line between implementations
        firsts = f.drop_duplicates("impl")
        tickvals, ticktext, bottom = list(firsts.index), [esc(i) for i in firsts["impl"]], 110
        xaxis = dict(tickangle=-45, title_text="cells by implementation (then phase, device, widths, batch)")
        for start in tickvals[1:]:
            fig.add_vline(x=start - 0.5, line=dict(color="#ddd", width=1))
    xaxis.update(tickmode="array", tickvals=tickvals, ticktext=[t[:LABEL_CHARS] for t in ticktext])
    fig.update_layout(
        height=380 + bottom, yaxis=dict(type="log", title_text="candidate / baseline (log)"), xaxis=xaxis,
        margin=dict(l=70, r=20, t=40, b=bottom), legend=dict(title_text="verdict"),
    )  # fmt: skip
    ticks.apply(fig, "plain")
    caption = (
        f"Ratio of the {what}, candidate over baseline; dotted: ±{threshold:.0%}"
        + (f" around the runs' shift (blue, x{centre:.3f}: the median implementation's change), which the verdicts "
           "judge against" if comp.shift is not None else "")
        + f". Bars: the gate's {1 - comp.settings.alpha:.0%} bootstrap interval."
    )  # fmt: skip
    if comp.shared:
        caption += f" Every cell: {comp.shared}."
    return Figure("comparison", title, fig, caption)
