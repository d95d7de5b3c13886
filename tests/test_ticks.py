"""Log-axis ticks in the report's units: readable labels, binary steps for bytes, shared axes ticked alike."""

from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kanbench.report import ticks


def test_labels_are_the_reports_units_never_bare_digits():
    vals, text = ticks.log_ticks([3e-6, 0.4], "time")
    assert text == ["10 µs", "100 µs", "1 ms", "10 ms", "100 ms"]  # decades: enough ticks inside the range
    vals, text = ticks.log_ticks([5e8, 9e10], "flops")
    assert text[:3] == ["500 MFLOP/s", "1 GFLOP/s", "2 GFLOP/s"] and len(vals) <= ticks.MAX_TICKS  # 1-2-5
    assert ticks.log_ticks([2e14, 2e15], "flops")[1] == ["200 TFLOP/s", "500 TFLOP/s", "1 PFLOP/s", "2 PFLOP/s"]
    vals, text = ticks.log_ticks([1000, 3e8], "bytes")
    assert all(v == 2 ** round(math.log2(v)) for v in vals)  # powers of two, labelled in KiB/MiB
    assert "4 KiB" in text and "128 MiB" in text and not any("MB" in t or "kB" in t for t in text)
    assert ticks.log_ticks([], "time") == ([], [])


def test_a_range_inside_one_decade_still_gets_labelled_ticks():
    vals, text = ticks.log_ticks([1.2e-3, 1.8e-3], "time")
    inside = [t for v, t in zip(vals, text) if 1.2e-3 <= v <= 1.8e-3]
    assert inside == ["1.2 ms", "1.5 ms"]
    vals, _ = ticks.log_ticks([1e-9, 1e3], "time")  # twelve decades: every other one, at most MAX_TICKS
    assert len(vals) <= ticks.MAX_TICKS and vals[0] == 1e-9


def test_axes_that_share_a_range_get_one_set_of_ticks_including_peak_lines():
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True)
    fig.update_yaxes(type="log")
    fig.add_trace(go.Scatter(x=[1, 2], y=[1e-3, 2e-3]), row=1, col=1)
    fig.add_trace(go.Scatter(x=[1, 2], y=[0.1, 0.2]), row=1, col=2)
    fig.add_hline(y=5.0, row=1, col=2)
    ticks.apply(fig, "time")
    assert fig.layout.yaxis.tickvals == fig.layout.yaxis2.tickvals
    assert fig.layout.yaxis.tickvals[0] <= 1e-3 and fig.layout.yaxis.tickvals[-1] >= 1.0
    assert fig.layout.xaxis.tickvals is None  # linear axes keep plotly's ticks
