"""The report's plotly figures, built from the prepared frame. Every text from results is HTML-escaped, since
plotly renders a subset of HTML in labels."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from ..results import peak_for, seeds
from ..text import escape
from . import ticks
from .data import REFERENCES, impl_rank, ordered_impls, registered, timing_rows
from .summary import fmt_bytes, fmt_time, phases_in

# Registered implementations bring their colour (implementations.info); the rest get one of these, by name.
PALETTE = ["#d62728", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#393b79", "#637939", "#8c6d31"]
FACET_HEIGHT = 300
UNITS = {"time": "s", "bytes": "B", "flops": "FLOP/s"}
PARETO_KEY = "accuracy-pareto"
LEGEND_ROW_PX = 21  # height of one legend entry at plotly's default font


@dataclass
class Figure:
    """A figure for the page, or the reason there is none."""

    key: str
    title: str
    figure: go.Figure | None
    caption: str = ""
    empty_reason: str = ""


# a plotly label: HTML-escaped, so a name like <b> prints as written, and NUL, controls and bidi formatting shown
# escaped (plotly's subset of HTML has no <bdi>)
esc = escape.html


def colors(impls) -> dict[str, str]:
    """One colour per implementation, the same in every figure: the registry's, else a palette colour by name."""
    palette = {}
    for impl in ordered_impls(impls):
        entry = registered(impl)
        # crc32, not hash(): the same name gets the same colour in every process and every report
        palette[impl] = entry.colour if entry and entry.colour else PALETTE[zlib.crc32(impl.encode()) % len(PALETTE)]
    return palette


def line_style(impl: str, palette: dict[str, str]) -> dict:
    """The line of an implementation: its colour, dashed for the MLP baselines."""
    return dict(color=palette[impl], dash="dash" if impl in REFERENCES else None)


def _facets(df: pd.DataFrame, phases: list[str]) -> tuple[list[str], list[str]]:
    devices = sorted(set(df["device"]), key=lambda d: (d == "cpu", d))
    return [p for p in phases if p in set(df["phase"])], devices


def _grid(devices: list[str], phases: list[str], x_title: str, y_title: str, y_unit: str) -> go.Figure:
    """Log-log subplots: a row per device, a column per phase, y shared along a row."""
    titles = [f"{esc(p)} · {esc(d)}" for d in devices for p in phases]
    fig = make_subplots(
        rows=len(devices), cols=len(phases), subplot_titles=titles, shared_yaxes=True,
        horizontal_spacing=0.03, vertical_spacing=min(0.2, 0.6 / len(devices)),
    )  # fmt: skip
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log", exponentformat="SI", ticksuffix=UNITS.get(y_unit, ""))
    for c in range(1, len(phases) + 1):
        fig.update_xaxes(title_text=x_title, row=len(devices), col=c)
    for r in range(1, len(devices) + 1):
        fig.update_yaxes(title_text=y_title, row=r, col=1)
    fig.update_layout(
        height=FACET_HEIGHT * len(devices) + 140, margin=dict(l=80, r=20, t=50, b=60), hovermode="closest",
        legend=dict(title_text="implementation"),
    )  # fmt: skip
    return fig


def fit_legend(fig: go.Figure, entries: int) -> None:
    """Make the figure tall enough that its legend shows every entry without scrolling."""
    needed = LEGEND_ROW_PX * entries + 100
    if (fig.layout.height or 450) < needed:
        fig.update_layout(height=needed)


def _ticks(fig: go.Figure, values) -> None:
    """Tick marks at the measured values (batch sizes, grid sizes) instead of log decades."""
    values = sorted({int(v) for v in values})
    fig.update_xaxes(tickmode="array", tickvals=values, ticktext=[str(v) for v in values])


def _panels(rows: pd.DataFrame, devices: list[str], phases: list[str], x_col: str):
    """(row, col, impl, its rows sorted by x) for every implementation in every panel of a device x phase grid."""
    for i, device in enumerate(devices):
        for j, phase in enumerate(phases):
            cell = rows[(rows["phase"] == phase) & (rows["device"] == device)]
            for impl in ordered_impls(cell["impl"]):
                yield i + 1, j + 1, impl, cell[cell["impl"] == impl].sort_values(x_col)


def _legend(impl: str, shown: set[str]) -> dict:
    """A trace's legend keys: named for its implementation and listed the first time only (shown records it)."""
    first = impl not in shown
    shown.add(impl)
    return dict(name=esc(impl), legendgroup=esc(impl), showlegend=first)


def _line(impl: str, palette: dict[str, str], shown: set[str], **kw) -> go.Scatter:
    """An implementation's line and markers in its colour, dashed for the MLP baselines, in the legend once."""
    return go.Scatter(mode="lines+markers", **{**_legend(impl, shown), **kw}, line=line_style(impl, palette),
                      marker=dict(color=palette[impl]))  # fmt: skip


SWEEPS = {
    # axis name: (x column, x title, columns held fixed)
    "width": ("edges", "edges Σ in·out", ("grid_size", "spline_order", "batch_size", "dtype")),
    "grid": ("grid_size", "grid size G", ("widths_label", "spline_order", "batch_size", "dtype")),
    "batch": ("batch_size", "batch size", ("widths_label", "grid_size", "spline_order", "dtype")),
}


HELD_NAMES = {"widths_label": "widths", "grid_size": "G", "spline_order": "k", "batch_size": "batch"}


def _slice(rows: pd.DataFrame, x_col: str, fixed) -> tuple[pd.DataFrame, list[str]]:
    """The rows of the one combination of the fixed columns that spans the most values of x (then the most rows).

    Suites made of several [[axes]] blocks sweep one axis at a time; this finds the block that sweeps x.
    """
    best, best_score = rows.iloc[0:0], None
    for key, group in rows.groupby(list(fixed), sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        score = (group[x_col].nunique(), len(group), tuple(str(k) for k in key))
        if best_score is None or score > best_score:
            best, best_score, held_key = group, score, key
    held = [f"{HELD_NAMES.get(c, c)} {v}" for c, v in zip(fixed, held_key)] if best_score else []
    return best, held


def scaling_figure(df: pd.DataFrame, axis: str) -> Figure:
    """Median time per call against width, grid size or batch size, IQR error bars, log axes, phase x device."""
    x_col, x_title, fixed_cols = SWEEPS[axis]
    title = {"width": "Time vs width", "grid": "Time vs grid size", "batch": "Time vs batch size"}[axis]
    rows = timing_rows(df)
    if rows.empty:
        return Figure(f"time-vs-{axis}", title, None, empty_reason="no ok timing records")
    if rows[x_col].nunique() < 2:
        shown = rows["widths_label"].iloc[0] if axis == "width" else rows[x_col].iloc[0]
        return Figure(f"time-vs-{axis}", title, None, empty_reason=f"the runs measured one {axis} only ({shown})")
    rows, held = _slice(rows, x_col, fixed_cols)
    if rows[x_col].nunique() < 2:
        reason = f"no two cells differ in {axis} alone (each {axis} was measured with other settings)"
        return Figure(f"time-vs-{axis}", title, None, empty_reason=reason)
    phases, devices = _facets(rows, phases_in(rows))
    fig = _grid(devices, phases, x_title, "time per call", "time")
    if axis != "width":
        _ticks(fig, rows[x_col])
    palette, shown = colors(df["impl"]), set[str]()
    for row, col, impl, s in _panels(rows, devices, phases, x_col):
        hover = [
            f"{esc(impl)}<br>widths {esc(r.widths_label)} · G{r.grid_size} · batch {r.batch_size}"
            f"<br>median {fmt_time(r.time_median)}, IQR {fmt_time(r.time_iqr)}, n={_int(r.time_n)}"
            + (" · noisy" if r.noisy else "")
            for r in s.itertuples()
        ]
        error = dict(type="data", symmetric=False, array=list(s["time_q3"] - s["time_median"]),
                     arrayminus=list(s["time_median"] - s["time_q1"]), thickness=1)  # fmt: skip
        fig.add_trace(_line(impl, palette, shown, x=list(s[x_col]), y=list(s["time_median"].astype(float)),
                            error_y=error, text=hover, hoverinfo="text"), row=row, col=col)  # fmt: skip
    ticks.apply(fig, "time")
    fit_legend(fig, len(shown))
    if axis == "width":
        ticks.apply(fig, "plain", "x")
    caption = "Held fixed: " + ", ".join(held) + ". Points: median time per call; bars: interquartile range; "
    caption += "log axes. Dashed: the MLP baselines."
    if axis == "width":
        caption += " x is the number of edges (Σ in·out over the layers); hover a point for its widths."
    return Figure(f"time-vs-{axis}", title, fig, caption)


def _int(v) -> str:
    return "?" if v is None or (isinstance(v, float) and math.isnan(v)) else str(int(v))


def bytes_per_sample(batches: list[int], peaks: list[float]) -> float | None:
    """Least-squares slope of peak bytes against batch size, or None with fewer than two batch sizes."""
    if len(set(batches)) < 2:
        return None
    mb, mp = sum(batches) / len(batches), sum(peaks) / len(peaks)
    return sum((b - mb) * (p - mp) for b, p in zip(batches, peaks)) / sum((b - mb) ** 2 for b in batches)


def memory_figure(df: pd.DataFrame) -> Figure:
    """Peak memory above the resident baseline against batch size, phase x device."""
    title = "Peak memory vs batch size"
    rows = df[(df["status"] == "ok") & df["speed"] & df["peak_mem_bytes"].notna()]
    if rows.empty:
        return Figure("memory-vs-batch", title, None, empty_reason="no record carries a peak memory")
    rows, held = _slice(rows, "batch_size", ("widths_label", "grid_size", "spline_order", "dtype"))
    phases, devices = _facets(rows, phases_in(rows))  # its own phases: an instruction-clock record has no time
    fig = _grid(devices, phases, "batch size", "peak memory above baseline", "bytes")
    _ticks(fig, rows["batch_size"])
    palette, shown = colors(df["impl"]), set[str]()
    for row, col, impl, s in _panels(rows, devices, phases, "batch_size"):
        values = s["peak_mem_bytes"].astype(float)
        slope = bytes_per_sample(list(s["batch_size"]), list(values))
        per_sample = f" · {fmt_bytes(slope)}/sample" if slope is not None else ""
        fig.add_trace(
            _line(impl, palette, shown, name=esc(impl) + per_sample, x=list(s["batch_size"]),
                  y=[max(v, 1.0) for v in values], hoverinfo="text",
                  text=[f"{esc(impl)} batch {b}: {fmt_bytes(v)}{per_sample}" for b, v in zip(s["batch_size"], values)]),
            row=row, col=col,
        )  # fmt: skip
    ticks.apply(fig, "bytes")
    fit_legend(fig, len(shown))
    caption = "Held fixed: " + ", ".join(held) + ". Peak allocator bytes during one call, above what was allocated "
    caption += "before the phase began (0 is drawn as 1 B on the log axis); log axes. The legend's bytes per sample "
    caption += "is the least-squares slope of peak memory against batch size (first panel an implementation is in; "
    caption += "hover for each panel's)."
    return Figure("memory-vs-batch", title, fig, caption)


def flops_figure(df: pd.DataFrame, environments: dict[str, dict | None]) -> Figure:
    """Achieved FLOP/s against batch size, with the machine's peak where environment.json records it."""
    title = "Achieved FLOP/s vs batch size"
    rows = timing_rows(df)
    rows = rows[rows["flop_per_s"].notna()] if "flop_per_s" in rows else rows.iloc[0:0]
    if rows.empty:
        return Figure("flops-vs-batch", title, None, empty_reason="no record carries flop_per_s")
    rows, held = _slice(rows, "batch_size", ("widths_label", "grid_size", "spline_order", "dtype"))
    phases, devices = _facets(rows, phases_in(rows))
    fig = _grid(devices, phases, "batch size", "achieved FLOP/s", "flops")
    _ticks(fig, rows["batch_size"])
    palette = colors(df["impl"])
    dtype = rows["dtype"].iloc[0]
    peaks: dict[str, set] = {}
    for d in devices:
        runs = set(rows.loc[rows["device"] == d, "run"])
        found = {peak_for((environments.get(r) or {}).get("machine"), "peak_flop_per_s", d, dtype) for r in runs}
        peaks[d] = {p for p in found if p}
    shown: set[str] = set()
    for row, col, impl, s in _panels(rows, devices, phases, "batch_size"):
        peak = max(peaks[devices[row - 1]], default=None)
        flop_per_s = list(s["flop_per_s"].astype(float))
        text = [f"{esc(impl)} batch {b}: {f / 1e9:.3g} GFLOP/s" + (f" ({100 * f / peak:.2g} % of peak)" if peak else "")
                for b, f in zip(s["batch_size"], flop_per_s)]  # fmt: skip
        fig.add_trace(_line(impl, palette, shown, x=list(s["batch_size"]), y=flop_per_s, text=text, hoverinfo="text"),
                      row=row, col=col)  # fmt: skip
    for i, device in enumerate(devices):
        for j in range(len(phases)):
            for p in sorted(peaks[device]):
                fig.add_hline(
                    y=p, line=dict(color="#888", dash="dash"), row=i + 1, col=j + 1,
                    annotation_text=f"machine peak {p / 1e12:.3g} TFLOP/s", annotation_position="bottom right",
                )  # fmt: skip
    ticks.apply(fig, "flops")
    fit_legend(fig, len(shown))
    caption = "Held fixed: " + ", ".join(held) + ". Analytic FLOPs of one call / median time."
    if not any(peaks.values()):
        caption += " No machine peak in environment.json (run `kanbench machine` to measure one), so no peak line."
    else:
        caption += " Dashed: the machine's measured peak from environment.json."
    return Figure("flops-vs-batch", title, fig, caption)


ROOFLINE_SYMBOLS = {"forward": "circle", "forward_inference": "diamond", "backward": "square", "train_step": "x"}


def roofline_figure(df: pd.DataFrame, environments: dict[str, dict | None]) -> Figure:
    """Achieved FLOP/s against arithmetic intensity, under the machine's two ceilings (matmul peak, copy bandwidth)."""
    title = "Roofline: achieved FLOP/s vs arithmetic intensity"
    rows = timing_rows(df)
    needed = ["flop_per_s", "metric_arithmetic_intensity"]
    rows = rows[rows[needed].notna().all(axis=1)] if all(c in rows for c in needed) else rows.iloc[0:0]
    if rows.empty:
        return Figure("roofline", title, None, empty_reason="no record carries flop_per_s and an arithmetic intensity")
    devices = sorted(set(rows["device"]), key=lambda d: (d == "cpu", d))
    fig = make_subplots(rows=1, cols=len(devices), subplot_titles=[esc(d) for d in devices], horizontal_spacing=0.08)
    palette = colors(df["impl"])
    shown: set[str] = set()
    ceilings: list[str] = []
    for j, device in enumerate(devices):
        cell = rows[rows["device"] == device]
        for impl in ordered_impls(cell["impl"]):
            s = cell[cell["impl"] == impl]
            text = [
                f"{esc(impl)} {esc(r.phase)} {esc(r.widths_label)} batch {r.batch_size}: "
                f"{r.flop_per_s / 1e9:.3g} GFLOP/s at {r.metric_arithmetic_intensity:.3g} FLOP/byte"
                for r in s.itertuples()
            ]
            fig.add_trace(
                go.Scatter(
                    x=list(s["metric_arithmetic_intensity"].astype(float)), y=list(s["flop_per_s"].astype(float)),
                    mode="markers", **_legend(impl, shown), text=text, hoverinfo="text",
                    marker=dict(color=palette[impl], symbol=[ROOFLINE_SYMBOLS.get(p, "circle") for p in s["phase"]]),
                ),
                row=1, col=j + 1,
            )  # fmt: skip
        machine = next((environments.get(r) or {} for r in set(cell["run"])), {}).get("machine")
        dtype = str(cell["dtype"].iloc[0])
        flops, bandwidth = (peak_for(machine, k, device, dtype) for k in ("peak_flop_per_s", "peak_bytes_per_s"))
        if flops and bandwidth:
            lo = min(float(cell["metric_arithmetic_intensity"].min()), flops / bandwidth) / 4
            hi = max(float(cell["metric_arithmetic_intensity"].max()), flops / bandwidth) * 4
            xs = [lo * (hi / lo) ** (i / 60) for i in range(61)]
            fig.add_trace(
                go.Scatter(x=xs, y=[min(flops, x * bandwidth) for x in xs], mode="lines", name="machine ceilings",
                           line=dict(color="#888", dash="dash"), showlegend=not ceilings, hoverinfo="skip"),
                row=1, col=j + 1,
            )  # fmt: skip
            ceilings.append(f"{esc(device)}: {flops / 1e9:.3g} GFLOP/s, {bandwidth / 1e9:.3g} GB/s")
    for phase in [p for p in ROOFLINE_SYMBOLS if p in set(rows["phase"])]:  # the symbols, explained in the legend
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=f"({esc(phase)})",
                legendgroup="phases",
                marker=dict(color="#444", symbol=ROOFLINE_SYMBOLS[phase]),
                hoverinfo="skip",
            )
        )
    fig.update_xaxes(type="log", title_text="arithmetic intensity (FLOP per byte moved, estimate)")
    fig.update_yaxes(type="log", title_text="achieved FLOP/s")
    ticks.apply(fig, "flops")
    ticks.apply(fig, "plain", "x")
    fit_legend(fig, len(shown) + len(ceilings[:1]) + len(set(rows["phase"])))
    caption = (
        "One point per (implementation, phase, shape); symbols: circle forward, diamond inference, square backward, "
        "x train step. Intensity = analytic FLOPs / (parameter bytes + the phase's peak allocation), a lower bound "
        "on traffic, so points sit at or left of their true intensity."
    )
    caption += (" Ceilings (dashed) from `kanbench machine`: " + "; ".join(ceilings) + ".") if ceilings else (
        " No ceilings in environment.json (run `kanbench machine`).")  # fmt: skip
    return Figure("roofline", title, fig, caption)


def _accuracy_rows(df: pd.DataFrame) -> pd.DataFrame:
    acc = df[(df["phase"] == "accuracy") & (df["status"] == "ok")]
    if "metric_final_test" not in acc:
        return acc.iloc[0:0]
    return acc[acc["metric_final_test"].notna()]


def _model_label(r, multi_widths: bool) -> str:
    return f"{r['impl']} {r['widths_label']}" if multi_widths else str(r["impl"])


def _metric_scale(metric: str) -> tuple[float, str]:
    return (100.0, "%") if "accuracy" in str(metric) else (1.0, "")


def accuracy_figures(df: pd.DataFrame) -> list[Figure]:
    """Final test metric per implementation and dataset (every seed and mean ± std), learning curves, Pareto."""
    acc = _accuracy_rows(df)
    keys = ("accuracy-final", "learning-curves", PARETO_KEY)
    titles = ("Final test metric per implementation", "Learning curves", "Accuracy vs training time")
    if acc.empty:
        return [Figure(k, t, None, empty_reason="no ok accuracy records") for k, t in zip(keys, titles)]
    datasets = sorted(set(acc["metric_dataset"].astype(str)))
    groups = [acc[acc["metric_dataset"].astype(str) == d] for d in datasets]
    palette = colors(df["impl"])
    return [_final_figure(groups, datasets, palette), _curves_figure(groups, datasets, palette),
            _pareto_figure(groups, datasets, palette)]  # fmt: skip


def _dataset_grid(groups: list[pd.DataFrame], datasets: list[str], x_title: str, log_x: bool = False) -> go.Figure:
    fig = make_subplots(rows=1, cols=len(datasets), subplot_titles=[esc(d) for d in datasets], horizontal_spacing=0.1)
    for j, group in enumerate(groups):
        log_y = log_metric(group)  # an RMSE from 0.003 to 1.24 would sit at zero on a linear axis
        title = _y_title(group) + (" (log)" if log_y else "")
        fig.update_yaxes(title_text=title, type="log" if log_y else "-", exponentformat="SI", row=1, col=j + 1)
        fig.update_xaxes(title_text=x_title, type="log" if log_x else "-", row=1, col=j + 1)
    fig.update_layout(height=420, margin=dict(l=70, r=20, t=60, b=80), legend=dict(title_text="implementation"))
    return fig


def _several_widths(group: pd.DataFrame) -> bool:
    """Whether an implementation was trained at more than one widths here, so its label needs them."""
    return group.groupby("impl")["widths_label"].nunique().max() > 1


def log_metric(group: pd.DataFrame) -> bool:
    """Whether a dataset's metric is an error (RMSE, loss) whose positive values span a decade or more."""
    metric = seeds.metric_of(group)
    values = [v for v in seeds.over(group, "final_test").values if v > 0]
    return ("rmse" in metric or "loss" in metric) and len(values) > 1 and max(values) >= 10 * min(values)


def _y_title(group: pd.DataFrame) -> str:
    metric = seeds.metric_of(group) or "metric"
    return esc(metric) + (" (%)" if "accuracy" in metric else "")


def _final_figure(groups: list[pd.DataFrame], datasets: list[str], palette: dict) -> Figure:
    fig = _dataset_grid(groups, datasets, "implementation")
    shown: set[str] = set()
    for j, group in enumerate(groups):
        multi, (scale, _) = _several_widths(group), _metric_scale(seeds.metric_of(group))
        for impl in ordered_impls(group["impl"]):
            mine = group[group["impl"] == impl]
            for _, s in mine.groupby("widths_label", sort=False):
                label = esc(_model_label(s.iloc[0], multi))
                values = [float(v) * scale for v in s["metric_final_test"]]
                fig.add_trace(
                    go.Scatter(
                        x=[label] * len(values), y=values, mode="markers", name=esc(impl), legendgroup=esc(impl),
                        showlegend=False, marker=dict(color=palette[impl], size=7, opacity=0.55), hoverinfo="text",
                        text=[f"{label} seed {esc(sd)}: {v:.4g}" for sd, v in zip(s["metric_seed"], values)],
                    ),
                    row=1, col=j + 1,
                )  # fmt: skip
                over = seeds.spread(values)
                fig.add_trace(
                    go.Scatter(
                        x=[label], y=[over.mean], mode="markers", **_legend(impl, shown),
                        error_y=dict(type="data", array=[over.bar], thickness=2),
                        marker=dict(color=palette[impl], size=12, symbol="diamond"), hoverinfo="text",
                        text=[f"{label}: mean {over.mean:.4g} ± {over.bar:.2g} over {over.n} seed(s)"],
                    ),
                    row=1, col=j + 1,
                )  # fmt: skip
    ticks.apply(fig, "plain")
    caption = "Diamonds: mean over seeds with ± one standard deviation; dots: each seed's final test metric."
    return Figure("accuracy-final", "Final test metric per implementation", fig, caption)


def _curve_of(metrics) -> tuple[list, list, str] | None:
    curve = (metrics or {}).get("curve") if isinstance(metrics, dict) else None
    if not isinstance(curve, dict) or not curve.get("epoch"):
        return None
    for key in ("test", "val"):
        ys = curve.get(key)
        if isinstance(ys, list) and len(ys) == len(curve["epoch"]):
            return list(curve["epoch"]), ys, key
    return None


def _curves_figure(groups: list[pd.DataFrame], datasets: list[str], palette: dict) -> Figure:
    title = "Learning curves"
    if not any(_curve_of(m) for g in groups for m in g["metrics"]):
        return Figure("learning-curves", title, None, empty_reason="no accuracy record carries metrics.curve")
    fig = _dataset_grid(groups, datasets, "epoch")
    shown: set[str] = set()
    which: set[str] = set()
    for j, group in enumerate(groups):
        multi, (scale, _) = _several_widths(group), _metric_scale(seeds.metric_of(group))
        for impl in ordered_impls(group["impl"]):
            for _, s in group[group["impl"] == impl].groupby("widths_label", sort=False):
                curves = [c for c in (_curve_of(m) for m in s["metrics"]) if c]
                if not curves:
                    continue
                which.update(c[2] for c in curves)
                by_epoch: dict = {}
                for epochs, ys, _ in curves:
                    for e, y in zip(epochs, ys):
                        if y is not None and math.isfinite(y):
                            by_epoch.setdefault(e, []).append(float(y) * scale)
                xs = sorted(by_epoch)
                over = [seeds.spread(by_epoch[e]) for e in xs]
                label = esc(_model_label(s.iloc[0], multi))
                text = [f"{label} epoch {e}: {o.mean:.4g} ± {o.bar:.2g} ({o.n} seed(s))" for e, o in zip(xs, over)]
                fig.add_trace(_line(impl, palette, shown, x=xs, y=[o.mean for o in over], error_y=dict(type="data",
                              array=[o.bar for o in over], thickness=1), hoverinfo="text", text=text),
                              row=1, col=j + 1)  # fmt: skip
    ticks.apply(fig, "plain")
    caption = f"Mean over seeds of the {'/'.join(sorted(which))} metric after each epoch, ± one standard deviation."
    return Figure("learning-curves", title, fig, caption)


def pareto_front(points: list[tuple[float, float]], higher_is_better: bool) -> list[int]:
    """Indices of the points no other point beats in both time (lower) and metric, ordered by time."""
    order = sorted(
        range(len(points)), key=lambda i: (points[i][0], -points[i][1] if higher_is_better else points[i][1])
    )
    front, best = [], None
    for i in order:
        y = points[i][1]
        if best is None or (y > best if higher_is_better else y < best):
            front.append(i)
            best = y
    return front


def _pareto_figure(groups: list[pd.DataFrame], datasets: list[str], palette: dict) -> Figure:
    title = "Accuracy vs training time"
    if all("metric_train_time_s" not in g or g["metric_train_time_s"].isna().all() for g in groups):
        return Figure(PARETO_KEY, title, None, empty_reason="no accuracy record carries train_time_s")
    fig = _dataset_grid(groups, datasets, "training time, s (log)", log_x=True)
    shown: set[str] = set()
    for j, group in enumerate(groups):
        metric = seeds.metric_of(group)
        scale, _ = _metric_scale(metric)
        higher = "rmse" not in metric and "loss" not in metric
        multi = _several_widths(group)
        points, labels, impls = [], [], []
        for (impl, _), s in group.groupby(["impl", "widths_label"], sort=False):
            s = s[s["metric_train_time_s"].notna()]
            t, y = seeds.over(s, "train_time_s"), seeds.spread(float(v) * scale for v in s["metric_final_test"])
            if not t.n:
                continue
            points.append((t.mean, y.mean))
            labels.append(esc(_model_label(s.iloc[0], multi)))
            impls.append(impl)
            fig.add_trace(
                go.Scatter(
                    x=[points[-1][0]], y=[points[-1][1]], mode="markers+text", text=[labels[-1]],
                    textposition="top center", **_legend(impl, shown), marker=dict(color=palette[impl], size=11),
                    error_x=dict(type="data", array=[t.bar], thickness=1),
                    error_y=dict(type="data", array=[y.bar], thickness=1),
                    hovertext=[f"{labels[-1]}: {points[-1][1]:.4g} in {points[-1][0]:.3g} s"], hoverinfo="text",
                ),
                row=1, col=j + 1,
            )  # fmt: skip
        front = pareto_front(points, higher)
        if len(front) > 1:
            fig.add_trace(
                go.Scatter(
                    x=[points[i][0] for i in front], y=[points[i][1] for i in front], mode="lines",
                    line=dict(color="#999", dash="dash"), name="Pareto front", legendgroup="pareto",
                    showlegend="pareto" not in shown, hoverinfo="skip",
                ),
                row=1, col=j + 1,
            )  # fmt: skip
            shown.add("pareto")
    ticks.apply(fig, "plain")
    ticks.apply(fig, "time", "x")
    caption = "Mean training time against mean final test metric over seeds (bars: ± one standard deviation); the "
    caption += "dashed line (the Pareto front) joins the models no other model beats on both."
    return Figure(PARETO_KEY, title, fig, caption)


PROFILE_KINDS = {
    # metrics key: (figure key, title, what the shares are of)
    "categories": ("profile-categories", "Where the time goes: self time by op category", "profiled self time"),
    "device_categories": ("profile-device", "Where the device time goes: kernel time by op category", "device time"),
}


def profile_figure(df: pd.DataFrame, kind: str = "categories") -> Figure:
    """Stacked shares of time by op category, per implementation and profiled cell and phase."""
    key, title, of = PROFILE_KINDS[kind]
    prof = df[(df["phase"] == "profile") & (df["status"] == "ok")]
    shares: dict[tuple[str, str], dict[str, tuple[float, object]]] = {}
    for r in prof.itertuples():
        m = r.metrics if isinstance(r.metrics, dict) else {}
        cats = m.get(kind)
        if not isinstance(cats, dict) or not cats:
            continue
        config = f"{r.device} {r.widths_label} b{r.batch_size}" + (f" {r.profiled_phase}" if r.profiled_phase else "")
        bar = shares[(config, r.impl)] = {}  # a later record of the same cell and phase replaces an earlier one
        for cat, v in cats.items():
            if isinstance(v, dict) and isinstance(v.get("share"), (int, float)):
                bar[str(cat)] = (float(v["share"]), v.get("seconds"))
    if not shares:
        return Figure(key, title, None, empty_reason=f"no ok profile records with metrics.{kind}")
    totals: dict[str, float] = {}
    for bar in shares.values():
        for cat, (share, _) in bar.items():
            totals[cat] = totals.get(cat, 0.0) + share
    cats = sorted(totals, key=lambda c: (c == "uncategorized", -totals[c]))
    bars = sorted(shares, key=lambda b: (b[0], impl_rank(b[1])))
    fig = go.Figure()
    palette = qualitative.Set2 + qualitative.Pastel1
    for n, cat in enumerate(cats):
        ys, texts = [], []
        for config, impl in bars:
            share, seconds = shares[(config, impl)].get(cat, (0.0, None))
            ys.append(100 * share)
            per_call = f", {fmt_time(float(seconds))} per call" if isinstance(seconds, (int, float)) else ""
            texts.append(f"{esc(impl)} · {esc(config)}<br>{esc(cat)}: {100 * share:.3g} %{per_call}")
        fig.add_trace(
            go.Bar(
                x=[[esc(c) for c, _ in bars], [esc(i) for _, i in bars]], y=ys, name=esc(cat),
                marker_color="#d0d0d0" if cat == "uncategorized" else palette[n % len(palette)],
                hovertext=texts, hoverinfo="text",
            )
        )  # fmt: skip
    fig.update_layout(
        barmode="stack", height=460, yaxis=dict(title_text=f"share of {of} (%)"),
        legend=dict(title_text="op category"), margin=dict(l=70, r=20, t=40, b=90),
    )  # fmt: skip
    caption = f"Share of {of} per call by op category (torch.profiler), per implementation, grouped by device, widths, "
    caption += "batch and profiled phase; grey: what no category matched."
    return Figure(key, title, fig, caption)
