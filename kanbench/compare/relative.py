"""Judging two runs on a noisy machine: each implementation against the others measured in the same runs.

Between two back-to-back runs of one commit on a shared 2-core VM, single cells moved by 20% and more (the spread
of log(p10 ratio) over a pair's cells was 0.13 to 0.25) and whole runs by up to 10%, while an implementation's
cells, once the run's own shift is taken out, moved together by far less (docs/methodology.md, "Comparing two
runs"). A per-cell test over the raw values cannot see that: it treats the values of one run as independent
draws, when most of the difference between two runs is shared by a whole run or a whole cell. So, with at least
MIN_IMPLS implementations and MIN_CELLS cells of seconds:

- the run's shift: the median, over implementations, of each one's mean log ratio (candidate over base);
- the spread: 1.4826 x the median absolute deviation of every cell's log ratio less the shift (this comparison's
  own cell-to-cell noise, robust to the few cells a real change moves);
- an implementation regresses when its mean log ratio less the shift exceeds log(1 + threshold) and Z_IMPL
  standard errors (spread / sqrt(its cells)); improvements alike;
- a cell regresses only when its log ratio less the shift exceeds log(1 + threshold) and Z_CELL spreads, and its
  bootstrap interval, moved by the shift, excludes 1: a change that large is not this pair's noise.

Where both runs measured a cell's group interleaved (records of schema 5), the cell's ratio is the paired one
(kanbench.judge.between over judge.relative_logs): its cost against the others of its group, value by value in
each run, candidate over base, with an interval from bootstraps of both runs. A burst of interference that slowed
one cell in one run then slowed its group's other cells in the same moments and cancels; the raw p10 ratio stays
for cells without pairing, and every row says which rule gave it.

A change every implementation shares (a slower machine, or slower code that all of them run) moves the shift, and two
runs cannot tell those apart: the shift is reported, not judged; `kanbench regress` measures two commits
interleaved, the instruction clock counts instead of timing. No torch here.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from kanbench import judge

from .cells import label_parts

MIN_IMPLS = 3  # a median of fewer implementations would be one of the compared ones (or their average)
MIN_CELLS = 8  # a spread from fewer cells says little
Z_IMPL = 3.0  # an implementation's mean shift, in standard errors
Z_CELL = 6.0  # a single cell's shift, in spreads of this comparison's cells
MIN_SPREAD = 0.005  # identical synthetic runs have no spread: never divide by zero


@dataclass(frozen=True)
class RunShift:
    """What the comparison as a whole says: the runs' common shift and its cell-to-cell noise."""

    shift: float  # exp(median over implementations of their mean log ratio): 1.05 = the candidate ran 5% slower
    spread: float  # robust standard deviation of the cells' log ratios less the shift
    impls: int
    cells: int


def implementation(row: dict) -> str:
    """The implementation a latency row belongs to, as its label names it ("bspline+compile")."""
    return label_parts(row)["impl"]


def run_shift(latency) -> RunShift | None:
    """The shift and spread of the timed (seconds) rows, or None when too few implementations or cells to judge."""
    rows = [r for r in latency.to_dict("records") if r.get("unit", "s") == "s" and _judged(r, "ratio") > 0]
    logs: dict[str, list[float]] = {}
    for r in rows:
        logs.setdefault(implementation(r), []).append(math.log(_judged(r, "ratio")))
    if len(logs) < MIN_IMPLS or len(rows) < MIN_CELLS:
        return None
    shift = statistics.median([sum(v) / len(v) for v in logs.values()])
    residuals = [x - shift for v in logs.values() for x in v]
    centre = statistics.median(residuals)
    spread = max(1.4826 * statistics.median([abs(x - centre) for x in residuals]), MIN_SPREAD)
    return RunShift(math.exp(shift), spread, len(logs), len(rows))


def shift_note(found: RunShift | None, threshold: float) -> str | None:
    """What to say when the runs as a whole moved beyond the threshold: judged against each other, implementations
    cannot show it."""
    if found is None or 1 / (1 + threshold) <= found.shift <= 1 + threshold:
        return None
    way = "slower" if found.shift > 1 else "faster"
    return (
        f"the candidate ran {abs(found.shift - 1):.0%} {way} than the base over the median implementation: "
        "the machine, or a change every implementation shares (torch, the harness), which judging "
        "implementations against each other cannot see; compare --per-cell judges raw times, kanbench regress "
        "measures two commits interleaved"
    )


def _relative_logs(frame) -> dict[tuple[str, str], dict[int, list[float]]]:
    """Per (config_hash, phase) of a run's interleaved ok timings: judge.relative_logs within its group."""
    groups: dict[tuple, dict[str, tuple[list[float], list[tuple[int, int]]]]] = {}
    for row in frame.to_dict("records"):
        values, process, rounds = row.get("time_values"), row.get("time_process"), row.get("time_round")
        group = row.get("group")
        if row.get("status") != "ok" or not isinstance(group, str) or not isinstance(values, list):
            continue
        if not isinstance(process, list) or not isinstance(rounds, list) or row.get("unit", "s") != "s":
            continue
        cells = groups.setdefault((row.get("run_id"), group, row["phase"]), {})
        cells[row["config_hash"]] = (values, list(zip(process, rounds)))
    out = {}
    for (_, _, phase), cells in groups.items():
        for config_hash, logs in judge.relative_logs(cells).items():
            out[(config_hash, phase)] = logs
    return out


def paired_ratios(base, cand, confidence: float) -> dict[tuple[str, str], judge.Gap]:
    """(config_hash, phase) -> the judge's paired relative ratio, candidate over base, where both runs have one."""
    b, c = _relative_logs(base), _relative_logs(cand)
    return {key: judge.between(b[key], c[key], confidence) for key in b if key in c}


def use_paired(latency, paired: dict[tuple[str, str], judge.Gap]):
    """latency with the ratio and interval each cell is judged by: the paired relative one where there is one,
    else the cell's own (judged_ratio, judged_low, judged_high), and a "rule" column saying which."""
    out = latency.copy()
    rules, ratios, lows, highs = [], [], [], []
    for r in out.to_dict("records"):
        gap = paired.get((r["config_hash"], r["phase"]))
        use = gap is not None and r.get("unit", "s") == "s"
        rules.append(judge.PAIRED if use else judge.UNPAIRED)
        ratios.append(gap.ratio if gap is not None and use else r["ratio"])
        lows.append(gap.low if gap is not None and use else r["ci_low"])
        highs.append(gap.high if gap is not None and use else r["ci_high"])
    out["rule"], out["judged_ratio"], out["judged_low"], out["judged_high"] = rules, ratios, lows, highs
    return out


def _judged(row: dict, name: str) -> float:
    """The value the relative judge reads: judged_<name> where use_paired set it, else the cell's own."""
    own = {"ratio": "ratio", "low": "ci_low", "high": "ci_high"}[name]
    value = row.get(f"judged_{name}")
    return float(value) if value is not None and value == value else float(row[own])


def judge_latency(latency, threshold: float):
    """(latency with the relative verdicts, one row per implementation, the RunShift), or (latency, None, None)
    unchanged when there are too few implementations or cells to judge them against each other."""
    import pandas as pd

    found = run_shift(latency)
    if found is None:
        return latency, None, None
    log_shift, limit = math.log(found.shift), math.log(1 + threshold)
    out = latency.copy()
    relative: list[float] = []
    z: list[float] = []
    verdicts: list[str] = []
    for r in out.to_dict("records"):
        if r.get("unit", "s") != "s":  # instruction counts: judged by their own rule
            relative.append(math.nan)
            z.append(math.nan)
            verdicts.append(r["verdict"])
            continue
        rel = math.log(_judged(r, "ratio")) - log_shift
        relative.append(math.exp(rel))
        z.append(rel / found.spread)
        if abs(rel) <= limit:
            verdicts.append("no change")
            continue
        # the per-cell test, moved by the shift: its interval excludes 1 (the raw Mann-Whitney p tests the raw
        # values, not the shifted ones, so it does not enter here)
        low, high = _judged(r, "low") / found.shift, _judged(r, "high") / found.shift
        tested = low > 1 if rel > 0 else high < 1
        beyond = abs(rel) > Z_CELL * found.spread
        verdicts.append(("regression" if rel > 0 else "improvement") if tested and beyond else "not significant")
    out["relative_ratio"], out["z"], out["verdict"] = relative, z, verdicts
    rows = []
    timed = out[out["unit"] == "s"] if "unit" in out else out
    for impl, mine in timed.groupby([implementation(r) for r in timed.to_dict("records")], sort=False):
        logs = [math.log(x) for x in mine["relative_ratio"]]
        mean = sum(logs) / len(logs)
        zscore = mean / (found.spread / math.sqrt(len(logs)))
        if abs(mean) <= limit:
            result = "no change"
        elif abs(zscore) > Z_IMPL:
            result = "regression" if mean > 0 else "improvement"
        else:
            result = "not significant"
        rows.append({"implementation": impl, "cells": len(logs), "ratio": math.exp(mean), "z": zscore,
                     "verdict": result})  # fmt: skip
    return out, pd.DataFrame(rows, columns=["implementation", "cells", "ratio", "z", "verdict"]), found
