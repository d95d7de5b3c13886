"""The report's answer: for one configuration, implementations ranked per phase, and whether each gap is resolved.

A gap is resolved when the two implementations' interquartile ranges (over every value of every process) do not
overlap and the gap survives both implementations moving against each other by as much as the run's worker
processes disagreed about a single timing (the process spread m: the 90th percentile, over the configuration's
timings, of slowest over fastest process median, minus 1): slower / faster > (1 + m)^2. The IQRs alone were not
enough: two `tox -e bench` runs minutes apart ordered 16 of 295 IQR-apart pairs the other way, because this
machine slows single cells 1.5-2x for seconds at a time, which one run's values cannot show but its processes'
disagreement can; a margin of one spread (1 + m) still let 0.9% of them flip, since both sides of a gap move
(docs/methodology.md). Otherwise the pair is indistinguishable on this data. The configuration is the one a
reader most likely wants (PREFERRED), else the most completely measured. Beside it, how far the run can be
trusted: its noisy timings, the machine's load, and its own noise measured by the reference workload
(kanbench.reference).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from kanbench.record import PHASES
from kanbench.reference import MAX_WITHIN, Noise

from .data import CONFIG_COLUMNS, timing_rows

# the MNIST-shaped network at batch 64: the default suite's centre and the shape most KAN papers time
PREFERRED = {"widths_label": "784x64x10", "batch_size": 64, "grid_size": 5, "dtype": "float32"}
RULE = ("the MNIST-shaped network 784 -> 64 -> 10 at batch 64, G = 5, float32, on the GPU where one was measured; "
        "without it, the configuration with the most implementations measured")  # fmt: skip
VERDICT_PAIR = ("bspline-fast", "fastkan")
SPREAD_QUANTILE = 0.9  # of the configuration's per-timing process spreads: the m of threshold(m)


@dataclass(frozen=True)
class Rank:
    """One implementation's place in one phase."""

    impl: str
    median: float
    low: float  # first quartile of every value (data.prepare's time_q1)
    high: float  # third quartile (time_q3)
    vs_iso: float | None  # median / mlp-iso's median in the same configuration
    resolved: bool | None  # from the next (slower) one; None for the last


@dataclass(frozen=True)
class Answer:
    """The configuration, its ranks per phase, the B-spline against FastKAN verdict (or why there is none), and
    how far the data can be trusted to order them."""

    config: dict
    ranks: dict[str, list[Rank]]
    verdict: list[str]
    noisy: int = 0  # timings in the configuration with an IQR above 10% of the median
    timings: int = 0
    noise: tuple[Noise, ...] = ()  # the reference workload's noise on the configuration's device, per run
    margin: float = 0.0  # the process spread m: a resolved gap's ratio exceeds threshold(m) = (1 + m)^2


def _in(rows: pd.DataFrame, config: dict) -> pd.DataFrame:
    return rows[(rows[list(config)] == pd.Series(config)).all(axis=1)]


def choose(rows: pd.DataFrame) -> dict | None:
    """The configuration the answer is about (RULE)."""
    if rows.empty:
        return None
    counts = rows.groupby(list(CONFIG_COLUMNS), sort=False)["impl"].nunique()
    configs = [dict(zip(CONFIG_COLUMNS, key)) for key in counts.index]
    preferred = [c for c in configs if all(c[k] == v for k, v in PREFERRED.items())]
    if preferred:
        return max(preferred, key=lambda c: (c["device"].startswith("cuda"), counts[tuple(c.values())]))
    return dict(zip(CONFIG_COLUMNS, counts.idxmax()))


def threshold(margin: float) -> float:
    """The ratio a resolved gap must exceed: both sides moved against each other by the process spread."""
    return (1 + margin) ** 2


def apart(fast: Rank, slow: Rank, margin: float) -> bool:
    """Whether fast is resolved as faster than slow: IQRs apart, and slow / fast beyond threshold(margin)."""
    return fast.high < slow.low and slow.median > fast.median * threshold(margin)


def process_spread(rows: pd.DataFrame) -> float:
    """SPREAD_QUANTILE of (slowest / fastest process median - 1) over timings measured in several processes."""
    spreads = []
    for medians in rows.get("time_process_medians", pd.Series(dtype=object)):
        if isinstance(medians, list) and len(medians) > 1 and min(medians) > 0:
            spreads.append(max(medians) / min(medians) - 1)
    return float(pd.Series(spreads).quantile(SPREAD_QUANTILE)) if spreads else 0.0


def ranks(rows: pd.DataFrame, config: dict, margin: float = 0.0) -> dict[str, list[Rank]]:
    """Per phase, the implementations fastest first."""
    here = _in(rows, config)
    out: dict[str, list[Rank]] = {}
    for phase in [p for p in PHASES if p in set(here["phase"])]:
        mine = here[here["phase"] == phase].drop_duplicates("impl", keep="last")
        iso = mine.loc[mine["impl"] == "mlp-iso", "time_median"]
        iso_median = float(iso.iloc[0]) if len(iso) else None
        found = []
        for r in mine.sort_values("time_median").to_dict("records"):
            ratio = float(r["time_median"]) / iso_median if iso_median else None
            found.append((r["impl"], float(r["time_median"]), float(r["time_q1"]), float(r["time_q3"]), ratio))
        ranked = [Rank(impl, median, low, high, ratio, None) for impl, median, low, high, ratio in found]
        out[phase] = [replace(r, resolved=apart(r, ranked[i + 1], margin) if i + 1 < len(ranked) else None)
                      for i, r in enumerate(ranked)]  # fmt: skip
    return out


def verdict(phase_ranks: dict[str, list[Rank]], margin: float = 0.0) -> list[str]:
    """bspline-fast against fastkan per phase, or the sentence naming the suite that answers it."""
    fast, rbf = VERDICT_PAIR
    lines = []
    for phase, found in phase_ranks.items():
        by = {r.impl: r for r in found}
        if fast not in by or rbf not in by:
            continue
        a, b = by[fast], by[rbf]
        ratio = a.median / b.median
        lo, hi = (a, b) if a.median <= b.median else (b, a)
        resolved = apart(lo, hi, margin)
        how = f"{max(ratio, 1 / ratio):.2f}x faster" if resolved else f"indistinguishable (ratio {ratio:.2f})"
        lines.append(f"{phase}: {lo.impl + ' ' + how if resolved else how}")
    if not lines:
        return [f"{fast} and {rbf} are not both in these runs: suites/fast-bspline.toml answers B-spline "
                "against FastKAN (and the default suite has both)."]  # fmt: skip
    return lines


def build(df: pd.DataFrame, noise: list[Noise] | None = None) -> Answer | None:
    """The answer for these runs' speed records (a frame from data.prepare: time_q1, time_q3, noisy) and their
    reference noise (kanbench.reference.summarize of each run), or None without any speed record."""
    rows = timing_rows(df)
    config = choose(rows)
    if config is None:
        return None
    mine = tuple(n for n in noise or [] if n.device == config["device"])
    here = _in(rows, config)
    margin = process_spread(here)
    found = ranks(rows, config, margin)
    noisy = int(here["noisy"].sum()) if "noisy" in here else 0
    return Answer(config, found, verdict(found, margin), noisy, len(here), mine, margin)


def trust(found: Answer, environments: list[dict | None]) -> str:
    """Whether the runs can rank implementations here, and why not when they cannot."""
    resolved = sum(bool(r.resolved) for v in found.ranks.values() for r in v)
    gaps = sum(len(v) - 1 for v in found.ranks.values())
    loads = []
    for env in environments:
        run = (env or {}).get("run") or {}
        cores = (env or {}).get("cpu_affinity") or (env or {}).get("cpu_count")
        own = (env or {}).get("worker_torch_threads") or 1  # the load the run's own measuring worker adds
        for when in ("start", "end"):
            load = run.get(f"load_avg_{when}")
            if load and cores:
                loads.append((load[0], cores, when, own))
    busy = [f"{load:.1f} on {cores} cores at the {when}" for load, cores, when, own in loads
            if load - own > 0.5 * cores]  # fmt: skip
    text = (f"{resolved} of {gaps} gaps resolved; {found.noisy} of {found.timings} timings here have an IQR above "
            "10% of the median.")  # fmt: skip
    if found.margin:
        text += (
            f" In 9 of 10 timings its worker processes disagreed by {found.margin:.0%} or less (the 90th percentile "
            "of slowest over fastest process median): a gap counts as resolved only if it survives both sides "
            f"moving against each other by that much, a ratio beyond {threshold(found.margin):.2f}."
        )
    if found.noise:
        text += f" Measured machine noise: {'; '.join(n.line() for n in found.noise)}."
    else:
        text += " The machine's own noise was not measured (runs from before the reference workload)."
    if found.timings and not found.margin:
        text += (
            " Each timing came from one worker process, so the run cannot show how much one timing moves "
            "between processes: its resolved gaps rest on the IQRs alone (measure with [timing].processes >= 2)."
        )
    why = []
    if found.timings and found.noisy > found.timings / 4:
        why.append("more than a quarter of its timings are noisy")
    within = max((n.within for n in found.noise), default=0.0)
    if within > MAX_WITHIN:
        why.append(f"the reference workload's own values scattered by {within:.0%} (IQR over median; more than "
                   f"{MAX_WITHIN:.0%})")  # fmt: skip
    if why:
        text += (" This run cannot rank closely spaced implementations: " + " and ".join(why) + "; rerun on a "
                 "quieter machine, or compare ratios.")  # fmt: skip
    elif found.noise:
        text += (
            " The implementations of a configuration are measured side by side, so the drift between groups "
            "does not reorder them; it does move numbers across configurations (the scaling figures)."
        )
    if busy:
        text += " The machine was busy beside the run (1-minute load " + "; ".join(busy) + ")."
    return text


def fmt_config(config: dict) -> str:
    """784x64x10 G=5 k=3 batch 64 cpu float32."""
    g, k = config["grid_size"], config["spline_order"]
    return f"{config['widths_label']} G={g} k={k} batch {config['batch_size']} {config['device']} {config['dtype']}"
