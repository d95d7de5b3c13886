"""Two runs side by side: candidate / baseline per cell, with the regression gate's verdict when it is available."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go

from kanbench.errors import UsageError
from kanbench.results import ResultsError

from .data import Run, ordered_impls, prepare, timing_rows
from .figures import Figure, esc
from .summary import fmt_ratio, fmt_time

VERDICT_COLORS = {
    "regression": "#d62728",
    "improvement": "#2ca02c",
    "no change": "#7f7f7f",
    "not significant": "#ff9f1c",
    None: "#1f77b4",
}
VERDICT_ORDER = ("regression", "improvement", "not significant", "no change")


@dataclass
class Comparison:
    """The per-cell comparison of a baseline and a candidate run."""

    base: str
    cand: str
    frame: pd.DataFrame  # one row per common timed cell and phase
    with_verdicts: bool
    notes: list[str]
    threshold: float
    alpha: float


def _ratios_only(base: pd.DataFrame, cand: pd.DataFrame) -> pd.DataFrame:
    key = ["config_hash", "phase"]
    keep = [*key, "impl", "device", "dtype", "batch_size", "widths_label", "grid_size", "time_median"]
    b = timing_rows(prepare(base))[keep].drop_duplicates(key, keep="last")
    c = timing_rows(prepare(cand))[keep].drop_duplicates(key, keep="last")
    merged = c.merge(b[[*key, "time_median"]], on=key, suffixes=("_cand", "_base"))
    merged = merged.rename(columns={"time_median_cand": "cand_median", "time_median_base": "base_median"})
    merged["ratio"] = merged["cand_median"] / merged["base_median"]
    merged["median_ratio"] = merged["ratio"]
    for column in ("ci_low", "ci_high", "p_value", "verdict", "estimator"):
        merged[column] = None
    return merged


def compare_runs(base: Run, cand: Run, threshold: float = 0.10, alpha: float = 0.01) -> Comparison:
    """Candidate / baseline per cell matched by config_hash and phase, judged by kanbench.compare if importable."""
    notes: list[str] = []
    bf, cf = base.frame.copy(), cand.frame.copy()
    bf.attrs["run_dir"], cf.attrs["run_dir"] = str(base.path), str(cand.path)
    try:
        from kanbench.compare import compare_frames
    except ImportError as exc:
        compare_frames = None
        notes.append(f"The regression gate (kanbench.compare) is not importable ({exc}); ratios of medians only.")
    frame = None
    if compare_frames is not None:
        try:
            frame = compare_frames(bf, cf, threshold=threshold, alpha=alpha)
        except (UsageError, ResultsError) as exc:
            notes.append(f"The regression gate declined these runs: {exc}. Ratios of medians only, no verdicts.")
    with_verdicts = frame is not None
    if frame is None:
        frame = _ratios_only(bf, cf)
    frame = frame.reset_index(drop=True)
    if "median_ratio" not in frame:
        frame["median_ratio"] = frame["cand_median"] / frame["base_median"]
    return Comparison(base.name, cand.name, frame, with_verdicts, notes, threshold, alpha)


def sorted_cells(comp: Comparison) -> pd.DataFrame:
    """Rows in reading order: regressions first, then improvements, each by the size of the change."""
    f = comp.frame.copy()
    f["_v"] = [VERDICT_ORDER.index(v) if v in VERDICT_ORDER else len(VERDICT_ORDER) for v in f["verdict"]]
    f["_r"] = -(f["ratio"].astype(float).apply(lambda r: max(r, 1 / r) if r > 0 else float("inf")))
    return f.sort_values(["_v", "_r"]).drop(columns=["_v", "_r"])


def comparison_figure(comp: Comparison) -> Figure:
    """Each common cell's candidate / baseline ratio with its interval, coloured by verdict."""
    title = f"{comp.cand} / {comp.base} per cell"
    f = comp.frame
    if f.empty:
        return Figure("comparison", title, None, empty_reason="the two runs share no timed cell")
    fig = go.Figure()
    f = f.assign(_rank=[ordered_impls(f["impl"]).index(i) for i in f["impl"]])
    f = f.sort_values(["_rank", "phase", "device", "widths_label", "batch_size"]).reset_index(drop=True)
    labels = [
        f"{esc(r.impl)} · {esc(r.phase)} · {esc(r.device)} · {esc(r.widths_label)} · b{r.batch_size} · {esc(r.dtype)}"
        for r in f.itertuples()
    ]
    for verdict in [*VERDICT_ORDER, None]:
        sel = f[f["verdict"].isna()] if verdict is None else f[f["verdict"] == verdict]
        if sel.empty:
            continue
        has_ci = sel["ci_low"].notna().all()
        hover = [
            f"{labels[i]}<br>ratio {fmt_ratio(r.ratio)}"
            + (f" [{r.ci_low:.3g}, {r.ci_high:.3g}], p={r.p_value:.2g}" if has_ci else "")
            + f"<br>median {fmt_time(r.base_median)} → {fmt_time(r.cand_median)}"
            + (f"<br>{esc(verdict)}" if verdict else "")
            for i, r in zip(sel.index, sel.itertuples())
        ]
        error = None
        if has_ci:
            error = dict(type="data", symmetric=False, array=list(sel["ci_high"] - sel["ratio"]),
                         arrayminus=list(sel["ratio"] - sel["ci_low"]), thickness=1)  # fmt: skip
        fig.add_trace(
            go.Scatter(
                x=list(sel.index), y=list(sel["ratio"].astype(float)), mode="markers", error_y=error,
                name=esc(verdict or "ratio of medians"), marker=dict(color=VERDICT_COLORS[verdict], size=8),
                text=hover, hoverinfo="text",
            )
        )  # fmt: skip
    fig.add_hline(y=1.0, line=dict(color="#555", width=1))
    for bound in (1 + comp.threshold, 1 / (1 + comp.threshold)):
        fig.add_hline(y=bound, line=dict(color="#aaa", dash="dot", width=1))
    fig.update_layout(
        height=420, yaxis=dict(type="log", title_text="candidate / baseline (log)"),
        xaxis=dict(title_text="cell (by implementation, phase, device, widths, batch)", showticklabels=False),
        margin=dict(l=70, r=20, t=40, b=50), legend=dict(title_text="verdict"),
    )  # fmt: skip
    estimator = str(f["estimator"].dropna().iloc[0]) if f["estimator"].notna().any() else "median"
    caption = f"Ratio of the {estimator} time per call, candidate over baseline; dotted: ±{comp.threshold:.0%}."
    if comp.with_verdicts:
        caption += f" Bars: the gate's {1 - comp.alpha:.0%} bootstrap interval."
    return Figure("comparison", title, fig, caption)
