"""A metric is declared once: a field added to a record kind's metrics dataclass is written, checked by the reader,
read back by Record.from_dict and loaded as a metric_ column by kanbench.results.load."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from kanbench import results
from kanbench.results import record
from kanbench.results.record import Identity, Record, TimeStats, make

IDENT = Identity(suite="s", impl="mlp", family="mlp", device="cpu", dtype="float32", batch_size=4, widths=(3, 2),
                 grid_size=3, spline_order=3, num_basis=0, options={}, config_hash="0123456789abcdef")  # fmt: skip


@dataclass(kw_only=True)
class WithHitRate(record.SpeedMetrics):
    """Speed metrics with one metric more, declared as a new metric would be in SpeedMetrics itself."""

    l2_hit_rate: float | None = record.omitted_if_none()


@pytest.fixture
def hit_rate(monkeypatch):
    """Speed records read against WithHitRate."""
    monkeypatch.setitem(record.METRICS, "speed", WithHitRate)
    record._declared.cache_clear()  # the reader caches each kind's fields
    yield
    record._declared.cache_clear()


def speed_record(metrics: record.Metrics) -> Record:
    r = make(IDENT, "run", "forward", counts={"params": 8, "params_total": 8})
    r.time_s = TimeStats.from_values([[1e-4, 1.1e-4, 1.2e-4]], 10).__dict__
    r.metrics = metrics.to_dict()
    return r


def test_a_new_speed_metric_is_written_checked_read_and_loaded(hit_rate, tmp_path):
    measured = speed_record(WithHitRate(flops_counted_matmul=48, first_call_s=[1e-3], l2_hit_rate=0.9))
    assert Record.from_dict(json.loads(json.dumps(measured.to_dict()))).metrics == measured.metrics
    assert "l2_hit_rate" not in WithHitRate().to_dict()  # None: left out, as where it does not apply
    for wrong in ("high", True, [0.9]):
        with pytest.raises(ValueError, match=r"field metrics.l2_hit_rate: must be int or float or null, got"):
            Record.from_dict({**measured.to_dict(), "metrics": {**(measured.metrics or {}), "l2_hit_rate": wrong}})
    run = tmp_path / "run"
    run.mkdir()
    (run / results.RESULTS).write_text(json.dumps(measured.to_dict()) + "\n")
    (run / results.ENVIRONMENT).write_text(json.dumps({"torch": "x"}))
    assert results.load(run)["metric_l2_hit_rate"].tolist() == [0.9]


def test_the_reader_derives_its_checks_from_the_fields():
    r = speed_record(record.SpeedMetrics(flops_counted_matmul=48, first_call_s=[1e-3, None]))
    assert Record.from_dict(r.to_dict()).metrics == {"flops_counted_matmul": 48, "first_call_s": [1e-3, None],
                                                     "first_forward_s": [], "bytes_estimate": None,
                                                     "arithmetic_intensity": None}  # fmt: skip
    problems = [
        ("forward", "first_call_s", ["a"], "must be a list of numbers or nulls, got ['a']"),
        ("forward", "flops_counted_matmul", True, "must be int or null, got True"),  # a bool is no int
        ("forward", "compiled", [{"graphs": 1}, 2], "must be a list of objects or nulls or null, got"),
        ("forward", "ignored_axes", [3], "must be a list of strings or null, got [3]"),
        ("profile", "categories", {"basis": {"share": "all"}}, "categories.basis: must be an object of numbers"),
        ("profile", "trace_dir", None, "must be a string, got None"),  # null only where the type admits None
    ]
    for phase, key, value, message in problems:
        assert message in (record.metrics_problem(phase, {key: value}) or ""), (key, value)
    assert record.metrics_problem("forward", {"fraction_of_peak": None, "launch_bound": False}) is None
