"""Statistics over seeds, one rule for the terminal summary and the report: the mean and sample standard deviation of
the finite values, and a frame's ok accuracy records grouped per model (by the frame's own methods: no pandas here)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple


class Spread(NamedTuple):
    """Finite values over seeds, with their mean and sample standard deviation (n - 1)."""

    values: tuple[float, ...]
    n: int
    mean: float  # NaN without values
    std: float  # NaN below two values, where it is undefined
    bar: float  # the std as an error bar or the report's "±" shows it: 0 for a single seed


def spread(values: Iterable) -> Spread:
    """The Spread of the finite numbers among values (None, NaN, infinities and non-numbers are left out)."""
    finite = tuple(float(v) for v in values if isinstance(v, numbers.Real) and math.isfinite(v))
    n = len(finite)
    mean = sum(finite) / n if n else math.nan
    std = math.sqrt(sum((v - mean) ** 2 for v in finite) / (n - 1)) if n > 1 else math.nan
    return Spread(finite, n, mean, std, std if n > 1 else 0.0)


def text(mean: float, std: float, metric: str) -> str:
    """The mean ± std as the tables show it: accuracies in %, "n/a" without a mean, no "±" without a std."""
    scale, unit = (100.0, " %") if "accuracy" in str(metric) else (1.0, "")
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean * scale:.4g}" + (f" ± {std * scale:.2g}" if math.isfinite(std) else "") + unit


def models(frame: Any, keys: Sequence[str], sort: bool = False) -> list[tuple[tuple, Any]]:
    """A flattened frame's ok accuracy records as (key, records) per value of the key columns (NaN one too)."""
    acc = frame[(frame["phase"] == "accuracy") & (frame["status"] == "ok")]
    if acc.empty or "metric_final_test" not in acc:
        return []
    return list(acc.groupby(list(keys), sort=sort, dropna=False))


def over(records: Any, name: str) -> Spread:
    """The Spread over the records' seeds of metrics.<name> (final_test, best_val, train_time_s, ...)."""
    return spread(records.get(f"metric_{name}", ()))


def metric_of(records: Any) -> str:
    """The metric the records first name ("test_accuracy", "test_rmse"); "" if none."""
    return next((m for m in records.get("metric_metric", ()) if isinstance(m, str)), "")
