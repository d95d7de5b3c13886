"""Judging two runs on a noisy machine: each implementation against the others measured in the same runs.

Between two runs of one commit on a shared machine, single cells and whole runs move far more than an
implementation's cells once the run's own shift is taken out (docs/methodology.md, "Comparing two runs"). A
per-cell test over the raw values treats the values of one run as independent draws, when most of the difference
is shared by a whole run or a whole cell. So, with at least MIN_IMPLS implementations and MIN_CELLS cells of seconds:

- the run's shift: the median, over implementations, of each one's mean log ratio (candidate over base);
- the spread: 1.4826 x the median absolute deviation of every cell's log ratio less the shift (this comparison's
  own cell-to-cell noise, robust to the few cells a real change moves);
- an implementation regresses when its mean log ratio less the shift exceeds log(1 + threshold) and Z_IMPL
  standard errors (spread / sqrt(its cells)); improvements alike;
- a cell regresses only when its log ratio less the shift exceeds log(1 + threshold) and Z_CELL spreads, and its
  bootstrap interval, moved by the shift, excludes 1: a change that large is not this pair's noise.

Where both runs measured a cell's group interleaved (records of schema 5) with at least four implementations ok
in both, the cell is judged by its paired relative ratio (paired_ratios): its cost against its group's median at
the same moments in each run, candidate over base (kanbench.analysis.judge.between, an interval from bootstraps of both
runs), centred on its group's median ratio. A burst of interference that slowed one cell in one run slowed its
group's other cells in the same moments and cancels, and so does a machine slower as a whole; such a row is not
moved by the run shift again, and it must clear the threshold itself by Z_CELL_PAIRED spreads (an
implementation: its mean by Z_IMPL_PAIRED standard errors), not merely exceed it: paired spreads are small, while an
implementation's cost against its group moves by several percent between two runs of one commit (same section).
Cells without pairing keep their raw p10 ratio, judged against the runs' shift as before; every row says which rule
gave it.

A change every implementation shares (a slower machine, or slower code that all of them run) moves the shift, and two
runs cannot tell those apart: the shift is reported, not judged; `kanbench regress` measures two commits
interleaved, the instruction clock counts instead of timing. No torch here.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace

from .. import judge
from .cells import label_parts

MIN_IMPLS = 3  # a median of fewer implementations would be one of the compared ones (or their average)
MIN_CELLS = 8  # a spread from fewer cells says little
Z_IMPL = 3.0  # an implementation's mean shift, in standard errors (unpaired cells; paired: Z_IMPL_PAIRED)
Z_CELL = 6.0  # a single cell's shift, in spreads of this comparison's cells (unpaired cells)
# paired cells (compared with the threshold itself, not with 0): an implementation's mean beyond 1 + threshold by
# this many standard errors, a cell by this many spreads (docs/methodology.md, "Comparing two runs")
Z_IMPL_PAIRED, Z_CELL_PAIRED = 2.0, 4.0
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
    rows = [r for r in latency.to_dict("records") if r.get("unit", "s") == "s" and r["ratio"] > 0]
    logs: dict[str, list[float]] = {}
    for r in rows:
        logs.setdefault(implementation(r), []).append(math.log(r["ratio"]))
    if len(logs) < MIN_IMPLS or len(rows) < MIN_CELLS:
        return None
    shift = statistics.median([sum(v) / len(v) for v in logs.values()])
    return RunShift(math.exp(shift), _spread([x - shift for v in logs.values() for x in v]), len(logs), len(rows))


def _spread(residuals: list[float]) -> float:
    """1.4826 x the median absolute deviation of the residuals (a robust standard deviation), at least MIN_SPREAD."""
    centre = statistics.median(residuals)
    return max(1.4826 * statistics.median([abs(x - centre) for x in residuals]), MIN_SPREAD)


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


Members = dict[str, tuple[list[float], list[tuple[int, int]]]]  # config_hash -> values and (process, round) keys


def _groups(frame) -> tuple[dict[tuple, Members], dict[tuple[str, str], tuple]]:
    """A run's interleaved ok timings: (run_id, group, phase) -> its members, and (config_hash, phase) -> that key."""
    members: dict[tuple, Members] = {}
    where: dict[tuple[str, str], tuple] = {}
    for row in frame.to_dict("records"):
        values, process, rounds = row.get("time_values"), row.get("time_process"), row.get("time_round")
        group = row.get("group")
        if row.get("status") != "ok" or not isinstance(group, str) or not isinstance(values, list):
            continue
        if not isinstance(process, list) or not isinstance(rounds, list) or row.get("unit", "s") != "s":
            continue
        key = (row.get("run_id"), group, row["phase"])
        members.setdefault(key, {})[row["config_hash"]] = (values, list(zip(process, rounds)))
        where[(row["config_hash"], row["phase"])] = key
    return members, where


def paired_ratios(base, cand, confidence: float) -> dict[tuple[str, str], judge.Gap]:
    """(config_hash, phase) -> the judge's paired relative ratio, candidate over base, centred on its group.

    Each run's cell is taken against the median of its group at the same moments (judge.relative_logs), over the
    implementations ok in both runs' group only (a new or failing implementation must not move the others), at
    least four of them; candidate over base (judge.between); then divided by the median of its group's ratios,
    so a change every implementation shares (the machine) cancels and one implementation's change is not shared
    out among the others."""
    b_members, b_where = _groups(base)
    c_members, c_where = _groups(cand)
    out: dict[tuple[str, str], judge.Gap] = {}
    done: set[tuple] = set()
    for cell, b_key in b_where.items():
        c_key = c_where.get(cell)
        if c_key is None or (b_key, c_key) in done:
            continue
        done.add((b_key, c_key))
        common = sorted(set(b_members[b_key]) & set(c_members[c_key]))
        b_logs = judge.relative_logs({h: b_members[b_key][h] for h in common})
        c_logs = judge.relative_logs({h: c_members[c_key][h] for h in common})
        gaps = {h: judge.between(b_logs[h], c_logs[h], confidence) for h in common if h in b_logs and h in c_logs}
        if len(gaps) < 4:
            continue
        centre = statistics.median(math.log(g.ratio) for g in gaps.values())
        for h, g in gaps.items():
            moved = math.exp(centre)
            low, high = (g.low / moved, g.high / moved) if g.low and g.high else (None, None)
            out[(h, cell[1])] = replace(g, ratio=g.ratio / moved, low=low, high=high)
    return out


def use_paired(latency, paired: dict[tuple[str, str], judge.Gap]):
    """latency with the ratio and interval each cell is judged by: the paired relative one where there is one
    (judged_ratio, judged_low, judged_high), and a "rule" column saying which; rows without one keep their own
    ratio and are judged against the runs' raw shift."""
    out = latency.copy()
    rules, ratios, lows, highs = [], [], [], []
    for r in out.to_dict("records"):
        gap = paired.get((r["config_hash"], r["phase"])) if r.get("unit", "s") == "s" else None
        rules.append(judge.PAIRED if gap is not None else judge.UNPAIRED)
        ratios.append(gap.ratio if gap is not None else math.nan)
        lows.append(gap.low if gap is not None else math.nan)
        highs.append(gap.high if gap is not None else math.nan)
    out["rule"], out["judged_ratio"], out["judged_low"], out["judged_high"] = rules, ratios, lows, highs
    return out


def _residual(row: dict, log_shift: float) -> tuple[float, float, float]:
    """(log ratio the cell is judged by, its interval's low and high): the paired relative ratio as it is (centred
    on its group already), else the raw ratio less the runs' shift."""
    paired = row.get("rule") == judge.PAIRED
    if paired:
        return math.log(row["judged_ratio"]), row["judged_low"], row["judged_high"]
    shift = math.exp(log_shift)
    return math.log(row["ratio"]) - log_shift, row["ci_low"] / shift, row["ci_high"] / shift


def judge_latency(latency, threshold: float):
    """(latency with the relative verdicts, one row per implementation, the RunShift), or (latency, None, None)
    unchanged when there are too few implementations or cells to judge them against each other."""
    import pandas as pd

    found = run_shift(latency)
    if found is None:
        return latency, None, None
    log_shift, limit = math.log(found.shift), math.log(1 + threshold)
    out = latency.copy()
    timed = [r for r in out.to_dict("records") if r.get("unit", "s") == "s"]
    spread = _spread([_residual(r, log_shift)[0] for r in timed])
    found = RunShift(found.shift, spread, found.impls, found.cells)
    relative: list[float] = []
    z: list[float] = []
    verdicts: list[str] = []
    for r in out.to_dict("records"):
        if r.get("unit", "s") != "s":  # instruction counts: judged by their own rule
            relative.append(math.nan)
            z.append(math.nan)
            verdicts.append(r["verdict"])
            continue
        rel, low, high = _residual(r, log_shift)
        relative.append(math.exp(rel))
        z.append(rel / spread)
        if abs(rel) <= limit:
            verdicts.append("no change")
            continue
        # the cell's own interval, moved as its ratio was (the raw Mann-Whitney p tests the raw values, not the
        # moved ones, so it does not enter here); a paired cell must clear the threshold itself by Z_CELL spreads,
        # its interval beyond 1 + threshold: its spread is small, and an implementation's cost against its group
        # moves between two runs of one commit by several percent, so "beyond 1" would call that a change
        paired = r.get("rule") == judge.PAIRED
        edge, excess = (1 + threshold, abs(rel) - limit) if paired else (1.0, abs(rel))
        tested = low > edge if rel > 0 else high < 1 / edge
        beyond = excess > (Z_CELL_PAIRED if paired else Z_CELL) * spread
        verdicts.append(("regression" if rel > 0 else "improvement") if tested and beyond else "not significant")
    out["relative_ratio"], out["z"], out["verdict"] = relative, z, verdicts
    rows = []
    timed_frame = out[out["unit"] == "s"] if "unit" in out else out
    for impl, mine in timed_frame.groupby([implementation(r) for r in timed_frame.to_dict("records")], sort=False):
        logs = [math.log(x) for x in mine["relative_ratio"]]
        mean = sum(logs) / len(logs)
        zscore = mean / (spread / math.sqrt(len(logs)))
        # paired cells: the mean must exceed the threshold itself by Z_IMPL standard errors (as the cells above)
        paired = "rule" in mine and (mine["rule"] == judge.PAIRED).all()
        margin = (abs(mean) - limit) / (spread / math.sqrt(len(logs))) if paired else abs(zscore)
        if abs(mean) <= limit:
            result = "no change"
        elif margin > (Z_IMPL_PAIRED if paired else Z_IMPL):
            result = "regression" if mean > 0 else "improvement"
        else:
            result = "not significant"
        rows.append({"implementation": impl, "cells": len(logs), "ratio": math.exp(mean), "z": zscore,
                     "verdict": result})  # fmt: skip
    return out, pd.DataFrame(rows, columns=["implementation", "cells", "ratio", "z", "verdict"]), found
