"""Whether one timing is faster than another, and whether the data resolves it: the one rule kanbench decides by.

Paired: A and B were measured in one group of one run (interleaved rounds, measure/timing.py's measure_rounds), so each
value of A has a partner of B taken in the same worker process and round, moments apart. The estimate is the
median over pairs of log(B / A); its interval comes from a bootstrap that resamples worker processes, then rounds
within each (a disturbance lands on both sides of a pair; a process that ran slow as a whole moves both of its
sides, and resampling processes carries that into the interval). The gap is resolved when the interval lies
wholly beyond 1 + MIN_EFFECT (or below its inverse: the gap is at least MIN_EFFECT at that confidence), and every
worker process's own median ratio lies on the estimate's side (a bootstrap over two or three processes cannot see
a per-process offset, e.g. code layout: their agreement is asked for instead).

Unpaired: anything no pairing joins (different groups, runs or machines; records from before schema 5). A gap is
resolved when the interquartile ranges do not overlap and the ratio exceeds (1 + m)^2 for the process spread m of
the values judged together (both sides moving against each other by as much as processes disagreed).

No torch here; numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_EFFECT = 0.10  # the smallest gap the judge calls, with CONFIDENCE (docs/methodology.md, "The one judge")
CONFIDENCE = 0.95  # of the paired bootstrap interval
RESAMPLES = 2000
MIN_PAIRS = 8  # fewer common (process, round) keys: judged unpaired (docs/methodology.md, "The one judge")
PAIRED, UNPAIRED = "paired", "unpaired"


@dataclass(frozen=True)
class Sample:
    """One timing as the judge reads it: its median and quartiles, and for pairing its values, each value's
    (process, round) key and where it was measured (run and group; None: no pairing)."""

    median: float
    low: float
    high: float
    values: tuple[float, ...] = ()
    keys: tuple[tuple[int, int], ...] = ()
    together: str | None = None


@dataclass(frozen=True)
class Gap:
    """B against A: ratio = B / A (above 1: A is faster), its interval (paired only), whether resolved, and how."""

    ratio: float
    low: float | None
    high: float | None
    resolved: bool
    rule: str  # PAIRED or UNPAIRED
    pairs: int = 0

    @property
    def a_faster(self) -> bool:
        """A is resolved as faster than B."""
        return self.resolved and self.ratio > 1


def paired_logs(a: Sample, b: Sample) -> dict[int, list[float]]:
    """log(B / A) of every (process, round) both measured, by process; empty when no pairing joins them."""
    if a.together is None or a.together != b.together or not a.keys or not b.keys:
        return {}
    mine = dict(zip(a.keys, a.values))
    out: dict[int, list[float]] = {}
    for key, value in zip(b.keys, b.values):
        partner = mine.get(key)
        if partner is not None and partner > 0 and value > 0:
            out.setdefault(key[0], []).append(math.log(value / partner))
    return out if sum(map(len, out.values())) >= MIN_PAIRS else {}


def bootstrap_median(by_process: dict[int, list[float]], resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """Medians of `resamples` hierarchical resamples: processes with replacement, then values within each."""
    rng = np.random.default_rng(seed)
    groups = [np.asarray(v, dtype=float) for v in by_process.values()]
    sizes = {len(g) for g in groups}
    if len(sizes) == 1:  # every process has as many rounds: one vectorised draw
        table, n = np.stack(groups), sizes.pop()
        chosen = rng.integers(len(groups), size=(resamples, len(groups)))
        within = rng.integers(n, size=(resamples, len(groups), n))
        return np.median(table[chosen[:, :, None], within].reshape(resamples, -1), axis=1)
    out = np.empty(resamples)
    for i in range(resamples):
        picked = [groups[j] for j in rng.integers(len(groups), size=len(groups))]
        out[i] = np.median(np.concatenate([g[rng.integers(len(g), size=len(g))] for g in picked]))
    return out


def paired(by_process: dict[int, list[float]], min_effect: float = MIN_EFFECT) -> Gap:
    """The paired rule over log(B / A) by process (paired_logs)."""
    logs = [x for v in by_process.values() for x in v]
    estimate = float(np.median(logs))
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(bootstrap_median(by_process), [tail, 1 - tail])
    edge = math.log1p(min_effect)
    beyond = low > edge or high < -edge  # the whole interval: the gap is at least min_effect at this confidence
    sides = {np.sign(np.median(v)) for v in by_process.values()}
    agree = sides == {np.sign(estimate)}
    resolved = beyond and agree
    return Gap(math.exp(estimate), math.exp(low), math.exp(high), bool(resolved), PAIRED, len(logs))


def threshold(margin: float) -> float:
    """The ratio an unpaired gap must exceed: both sides moved against each other by the process spread."""
    return (1 + margin) ** 2


def unpaired(a: Sample, b: Sample, margin: float = 0.0) -> Gap:
    """The unpaired rule: IQRs apart and the ratio beyond threshold(margin)."""
    ratio = b.median / a.median if a.median > 0 else math.inf
    fast, slow = (a, b) if a.median <= b.median else (b, a)
    resolved = fast.high < slow.low and slow.median > fast.median * threshold(margin)
    return Gap(ratio, None, None, bool(resolved), UNPAIRED)


def judge(a: Sample, b: Sample, margin: float = 0.0) -> Gap:
    """B against A: paired where one group of one run holds both (with MIN_PAIRS common keys), else unpaired."""
    logs = paired_logs(a, b)
    return paired(logs) if logs else unpaired(a, b, margin)


def resolvable(gaps: list[Gap]) -> float | None:
    """The smallest ratio these paired gaps could resolve: one whose interval, of the median half-width of theirs,
    clears 1 + MIN_EFFECT; None without a paired gap."""
    widths = [math.log(g.high / g.low) / 2 for g in gaps if g.rule == PAIRED and g.low and g.high]
    if not widths:
        return None
    return (1 + MIN_EFFECT) * math.exp(float(np.median(widths)))


def process_spread(process_medians: list[list[float]], quantile: float = 0.9) -> float:
    """The unpaired rule's m: the quantile, over timings measured in several processes, of slowest over fastest
    process median, minus 1 (0.0 without any)."""
    spreads = [max(m) / min(m) - 1 for m in process_medians if len(m) > 1 and min(m) > 0]
    return float(np.quantile(spreads, quantile)) if spreads else 0.0


def _centred(cells: dict[str, tuple[list[float], list[tuple[int, int]]]]) -> dict[str, dict[tuple[int, int], float]]:
    """Each cell's log value less the median log value of the group's other cells at the same (process, round) key,
    at the keys every cell has: where each stands against the others at each moment (a median of the others, so
    a cell's own change never moves its own reference, and one cell that changes moves the others' little)."""
    logs = {name: {key: math.log(v) for v, key in zip(values, keys) if v > 0} for name, (values, keys) in cells.items()}
    shared = set.intersection(*(set(v) for v in logs.values())) if logs else set()
    out = {}
    for name, mine in logs.items():
        others = [other for o, other in logs.items() if o != name]
        out[name] = {k: mine[k] - float(np.median([o[k] for o in others])) for k in sorted(shared)} if others else {}
    return out


def locations(cells: dict[str, tuple[list[float], list[tuple[int, int]]]]) -> dict[str, float]:
    """Each cell's median log cost against the median of its group's other cells at the same moments: an order of
    the cells that agrees with their paired ratios (cells: name -> values and their (process, round) keys)."""
    return {name: float(np.median(list(v.values()))) if v else math.nan for name, v in _centred(cells).items()}


def relative_logs(cells: dict[str, tuple[list[float], list[tuple[int, int]]]]) -> dict[str, dict[int, list[float]]]:
    """For the cells of one group and phase (name -> values and their (process, round) keys): each cell's log value
    less the median log value of the group's other cells at the same key, by process. What an implementation costs
    against the others measured beside it, moment by moment; fewer than four cells give none (with three, each one's
    reference is the mean of the other two, which any one of them moves)."""
    if len(cells) < 4:
        return {}
    out: dict[str, dict[int, list[float]]] = {}
    for name, mine in _centred(cells).items():
        for key, value in mine.items():
            out.setdefault(name, {}).setdefault(key[0], []).append(value)
    return out


def between(base: dict[int, list[float]], cand: dict[int, list[float]], confidence: float = CONFIDENCE,
            min_effect: float = MIN_EFFECT) -> Gap:  # fmt: skip
    """cand against base, two runs no pairing joins, each side's log values by process (relative_logs): ratio =
    exp(median cand - median base), its interval from independent bootstraps of the two sides."""
    estimate = float(
        np.median([x for v in cand.values() for x in v]) - np.median([x for v in base.values() for x in v])
    )
    diffs = bootstrap_median(cand, seed=1) - bootstrap_median(base, seed=2)
    tail = (1 - confidence) / 2
    low, high = np.quantile(diffs, [tail, 1 - tail])
    resolved = abs(estimate) >= math.log1p(min_effect) and (low > 0 or high < 0)
    pairs = sum(map(len, base.values())) + sum(map(len, cand.values()))
    return Gap(math.exp(estimate), math.exp(low), math.exp(high), bool(resolved), PAIRED, pairs)
