"""The statistics of the latency gate: estimators, a two-stage bootstrap of their ratio, Mann-Whitney U. No torch here.

numpy and scipy are imported inside the functions, so importing kanbench.analysis.compare stays cheap.
"""

from __future__ import annotations

import hashlib
import math
import re
import statistics

from ...errors import UsageError


def estimator_quantile(name: str) -> float | None:
    """The quantile an estimator name stands for ("min" 0, "median" 0.5, "p10" 0.1), or None for "mean"."""
    if name == "mean":
        return None
    if name == "min":
        return 0.0
    if name == "median":
        return 0.5
    match = re.fullmatch(r"p(\d{1,2})", name)
    if match:
        return int(match.group(1)) / 100
    raise UsageError(f"estimator {name!r} is not known; use min, median, mean or pNN (a percentile such as p10)")


def _row_stat(matrix, counts, q: float | None):
    """The estimator of each row of matrix, whose row i holds counts[i] values followed by +inf padding."""
    import numpy as np

    if q is None:
        finite = np.where(np.isfinite(matrix), matrix, 0.0)
        return finite.sum(axis=1) / counts
    ordered = np.sort(matrix, axis=1)
    pos = (counts - 1) * q
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, counts - 1)
    rows = np.arange(matrix.shape[0])
    low, high = ordered[rows, lo], ordered[rows, hi]
    return low + (high - low) * (pos - lo)


def estimate(values, q: float | None) -> float:
    """The estimator (quantile q, or the mean for None) of one sample, with linear interpolation."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    return float(values.mean() if q is None else np.quantile(values, q))


def bootstrap_ratios(base_groups, cand_groups, q: float | None, resamples: int, seed: int):
    """Bootstrap distribution of estimator(cand) / estimator(base), two-stage: processes, then values within them."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def side(groups):
        k = len(groups)
        sizes = np.array([len(g) for g in groups])
        width = int(sizes.max())
        table = np.full((k, width), np.inf)
        for i, g in enumerate(groups):
            table[i, : len(g)] = g
        chosen = rng.integers(k, size=(resamples, k))  # which processes
        chosen_sizes = sizes[chosen]  # (B, k)
        picks = np.floor(rng.random((resamples, k, width)) * chosen_sizes[..., None]).astype(int)
        sample = table[chosen[..., None], picks]  # (B, k, width)
        sample[np.arange(width)[None, None, :] >= chosen_sizes[..., None]] = np.inf  # drop padding slots
        return _row_stat(sample.reshape(resamples, k * width), chosen_sizes.sum(axis=1), q)

    return side(cand_groups) / side(base_groups)


def mann_whitney_p(base_values, cand_values) -> float:
    """Two-sided Mann-Whitney U p-value; 1.0 where the test is undefined (every value equal, too few values)."""
    from scipy.stats import mannwhitneyu

    if len(base_values) < 1 or len(cand_values) < 1:
        return 1.0
    try:
        p = float(mannwhitneyu(cand_values, base_values, alternative="two-sided").pvalue)
    except ValueError:
        return 1.0
    return 1.0 if math.isnan(p) else p


def process_groups(values: list[float], process_medians: list[float] | None) -> list[list[float]]:
    """Split a record's values into its worker processes (stored back to back); one group if that cannot be shown."""
    medians = process_medians or []
    k = len(medians)
    if k > 1 and len(values) % k == 0:
        size = len(values) // k
        groups = [values[i * size : (i + 1) * size] for i in range(k)]
        if all(math.isclose(statistics.median(g), m, rel_tol=1e-9) for g, m in zip(groups, medians)):
            return groups
    return [list(values)]


def cell_seed(key: tuple[str, str]) -> int:
    """The bootstrap seed of one (config_hash, phase)."""
    # Seeded by the cell, so a cell's interval does not depend on which other cells are compared.
    return int.from_bytes(hashlib.sha256("/".join(key).encode()).digest()[:8], "little")
