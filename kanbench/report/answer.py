"""The report's answer: for one configuration, implementations ranked per phase, and whether each gap is resolved.

A gap is resolved when the two implementations' interquartile ranges (over every value of every process) do not
overlap; otherwise the pair is indistinguishable on this data. The configuration is the one a reader most likely
wants (PREFERRED), else the most completely measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from kanbench.record import PHASES

from .data import CONFIG_COLUMNS, timing_rows

# the MNIST-shaped network at batch 64: the default suite's centre and the shape most KAN papers time
PREFERRED = {"widths_label": "784x64x10", "batch_size": 64, "grid_size": 5, "dtype": "float32"}
RULE = ("the MNIST-shaped network 784 -> 64 -> 10 at batch 64, G = 5, float32, on the GPU where one was measured; "
        "without it, the configuration with the most implementations measured")  # fmt: skip
VERDICT_PAIR = ("bspline-fast", "fastkan")


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


def ranks(rows: pd.DataFrame, config: dict) -> dict[str, list[Rank]]:
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
        out[phase] = [
            Rank(impl, median, low, high, ratio, (high < found[i + 1][2]) if i + 1 < len(found) else None)
            for i, (impl, median, low, high, ratio) in enumerate(found)
        ]
    return out


def verdict(phase_ranks: dict[str, list[Rank]]) -> list[str]:
    """bspline-fast against fastkan per phase, or the sentence naming the suite that answers it."""
    fast, rbf = VERDICT_PAIR
    lines = []
    for phase, found in phase_ranks.items():
        by = {r.impl: r for r in found}
        if fast not in by or rbf not in by:
            continue
        a, b = by[fast], by[rbf]
        ratio = a.median / b.median
        apart = a.high < b.low or b.high < a.low
        faster = fast if ratio < 1 else rbf
        how = f"{max(ratio, 1 / ratio):.2f}x faster" if apart else f"indistinguishable (ratio {ratio:.2f})"
        lines.append(f"{phase}: {faster + ' ' + how if apart else how}")
    if not lines:
        return [f"{fast} and {rbf} are not both in these runs: suites/fast-bspline.toml answers B-spline "
                "against FastKAN (and the default suite has both)."]  # fmt: skip
    return lines


def build(df: pd.DataFrame) -> Answer | None:
    """The answer for these runs' speed records (a frame from data.prepare: time_q1, time_q3, noisy), or None
    without any."""
    rows = timing_rows(df)
    config = choose(rows)
    if config is None:
        return None
    found = ranks(rows, config)
    here = _in(rows, config)
    noisy = int(here["noisy"].sum()) if "noisy" in here else 0
    return Answer(config, found, verdict(found), noisy, len(here))


def trust(found: Answer, environments: list[dict | None]) -> str:
    """Whether the runs can rank implementations here, and why not when they cannot."""
    resolved = sum(bool(r.resolved) for v in found.ranks.values() for r in v)
    gaps = sum(len(v) - 1 for v in found.ranks.values())
    loads = []
    for env in environments:
        run = (env or {}).get("run") or {}
        cores = (env or {}).get("cpu_affinity") or (env or {}).get("cpu_count")
        for when in ("start", "end"):
            load = run.get(f"load_avg_{when}")
            if load and cores:
                loads.append((load[0], cores, when))
    busy = [f"{load:.1f} on {cores} cores at the {when}" for load, cores, when in loads if load > 0.5 * cores]
    text = (f"{resolved} of {gaps} gaps resolved; {found.noisy} of {found.timings} timings here have an IQR above "
            "10% of the median.")  # fmt: skip
    if found.timings and found.noisy > found.timings / 4:
        text += " Too noisy to rank closely spaced implementations: rerun on a quieter machine, or compare ratios."
    if busy:
        text += " The machine was busy beside the run (1-minute load " + "; ".join(busy) + ")."
    return text


def fmt_config(config: dict) -> str:
    """784x64x10 G=5 k=3 batch 64 cpu float32."""
    g, k = config["grid_size"], config["spline_order"]
    return f"{config['widths_label']} G={g} k={k} batch {config['batch_size']} {config['device']} {config['dtype']}"
