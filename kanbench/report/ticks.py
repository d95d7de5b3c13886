"""Tick marks for the report's log axes, labelled in the report's own units (ms, MiB, GFLOP/s).

Plotly's own log ticks label minor ticks with bare digits ("2 3 4 ... 9 1") and its SI prefixes are decimal (a
memory axis would read MB where every table reads MiB). So each log axis gets explicit ticks: 1-2-5 per decade for
decimal quantities, powers of two for bytes, thinned to at most MAX_TICKS, and labels from kanbench.text.units.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from ..text.units import fmt_bytes, fmt_flops, fmt_time

MAX_TICKS = 9
DENSE = (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)  # inside less than a decade, where 1-2-5 leaves too few ticks


def _plain(v: float) -> str:
    return f"{v:.3g}"


LABELS: dict[str, Callable[[float], str]] = {
    "time": lambda v: fmt_time(v, micro="µs"),
    "bytes": fmt_bytes,
    "flops": lambda v: fmt_flops(v) + "/s",
    "plain": _plain,
}


def _decimal(lo: float, hi: float) -> list[float]:
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    for mantissas in ((1,), (1, 2, 5), DENSE):  # the fewest ticks that still give three inside the range
        ticks = [m * 10.0**e for e in range(first, last + 1) for m in mantissas]
        inside = [t for t in ticks if lo <= t <= hi]
        if len(inside) > MAX_TICKS:  # many decades: every k-th one
            return inside[:: math.ceil(len(inside) / MAX_TICKS)]
        if len(inside) >= 3:
            return inside
    return ticks  # less than a tenth of a decade: the dense ticks around it, some outside the range


def _binary(lo: float, hi: float) -> list[float]:
    first, last = math.floor(math.log2(lo)), math.ceil(math.log2(hi))
    step = max(1, math.ceil((last - first) / MAX_TICKS))
    return [2.0**e for e in range(first, last + 1, step)]


def log_ticks(values: Iterable[float], kind: str) -> tuple[list[float], list[str]]:
    """(tick values, tick labels) for a log axis showing values; kind: time, bytes, flops or plain."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v)) and float(v) > 0]
    if not finite:
        return [], []
    lo, hi = min(finite), max(finite)
    if hi == lo:
        lo, hi = lo / 2, hi * 2
    ticks = _binary(lo, hi) if kind == "bytes" else _decimal(lo, hi)
    label = LABELS[kind]
    return ticks, [label(t) for t in ticks]


def apply(fig, kind: str, axis: str = "y") -> None:
    """Give every log `axis` ("x" or "y") of fig explicit ticks covering the values plotted against it.

    Axes that share a range (plotly's matches, as shared_yaxes sets) get one set of ticks from all their values.
    """
    values: dict[str, list[float]] = {}  # axis id ("y", "y2", ...) -> the values plotted against it
    for trace in fig.data:
        ref = getattr(trace, f"{axis}axis", None) or axis
        values.setdefault(ref, []).extend(v for v in (getattr(trace, axis, None) or ()) if isinstance(v, (int, float)))
    for shape in fig.layout.shapes:  # peak lines: their value must get a tick too
        ref = (shape[f"{axis}ref"] or axis).split(" ")[0]
        if isinstance(shape[f"{axis}0"], (int, float)):
            values.setdefault(ref, []).append(shape[f"{axis}0"])

    def layout_of(ref: str):
        return fig.layout[f"{axis}axis{ref[1:]}"]

    shared: dict[str, list[float]] = {}
    for ref, found in values.items():
        shared.setdefault(layout_of(ref).matches or ref, []).extend(found)
    for ref in values:
        a = layout_of(ref)
        if a.type != "log":
            continue
        tickvals, ticktext = log_ticks(shared[a.matches or ref], kind)
        if tickvals:
            a.update(tickmode="array", tickvals=tickvals, ticktext=ticktext, ticksuffix="")
