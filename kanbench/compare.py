"""Compare two runs cell by cell and gate on regressions. No torch here.

    kanbench compare results/runs/BASE results/runs/CAND --format markdown

Latency: per (config_hash, phase), the ratio candidate/base of a low quantile of the per-call times (p10 by default:
delays from other work on a shared machine only add time, so the low end of the distribution is what the code
costs), a bootstrap interval that resamples worker processes and then values within them, and a two-sided
Mann-Whitney U test over the raw values. A cell regresses only when it is slower by more than the threshold AND the
difference is significant (p < alpha and the 1 - alpha interval excludes 1). Medians are reported for users.

Deterministic gates: FLOPs per call and peak allocator bytes per phase must not grow beyond their own thresholds.

Exit status: 0 no regression, 1 at least one regression (latency, FLOPs, memory, or a cell that ran in the base and
fails in the candidate), 2 bad input (unreadable runs, different suites, no common cells).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from kanbench.errors import UsageError
from kanbench.results import RESULTS, ResultsError

VERDICTS = ("regression", "improvement", "no change", "not significant")
DEFAULT_ESTIMATOR = "p10"
DEFAULT_RESAMPLES = 2000
KEY = ["config_hash", "phase"]
IDENTITY = ["config_hash", "impl", "phase", "device", "dtype", "batch_size", "widths_label", "grid_size"]
# Environment fields whose difference makes a latency comparison doubtful; named in the notes.
ENV_FIELDS = ("cpu_model", "cpu_count", "cpu_affinity", "torch", "python", "torch_threads", "os")
EXIT_OK, EXIT_REGRESSION = 0, 1
MEM_SLACK_BYTES = 0
# Phases whose peak allocator bytes the memory gate checks. Peaks of backward and train_step, measured on CPU from
# the profiler's allocation events, differed between runs of the same code by up to 73% on the shared CI machine
# (forward peaks never did), so they are reported but not gated unless asked for (--mem-phases).
MEM_GATED_PHASES = ("forward", "forward_inference")


# --- estimators -------------------------------------------------------------------------------------------------


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


def verdict(ratio: float, ci_low: float, ci_high: float, p_value: float, threshold: float, alpha: float) -> str:
    """regression / improvement beyond the threshold and significant; no change within it; else not significant."""
    slower, faster = ratio > 1 + threshold, ratio < 1 / (1 + threshold)
    if not (slower or faster):
        return "no change"
    interval_excludes_one = ci_low > 1 if slower else ci_high < 1
    if p_value < alpha and interval_excludes_one:
        return "regression" if slower else "improvement"
    return "not significant"


# --- reading runs -----------------------------------------------------------------------------------------------


def load_side(path: str | Path):
    """A run directory as a DataFrame, or a directory of run directories (rounds of one side) pooled into one."""
    import pandas as pd

    from kanbench import results

    path = Path(path)
    if not path.is_dir():
        raise ResultsError(f"{path}: not a directory (expected a run directory holding {RESULTS})")
    if (path / RESULTS).exists():
        return results.load(path)
    # Symbolic links (kanbench run's latest-<suite>) point at runs already in the directory.
    runs = sorted(p for p in path.iterdir() if not p.is_symlink() and (p / RESULTS).exists())
    if not runs:
        raise ResultsError(f"{path}: holds no {RESULTS} and no run directories that do")
    frames = [results.load(run) for run in runs]
    frame = pd.concat(frames, ignore_index=True)
    frame.attrs["environment"] = frames[0].attrs.get("environment", {})
    frame.attrs["run_dir"] = str(path)
    return frame


def process_groups(values: list[float], process_medians: list[float] | None) -> list[list[float]]:
    """Split a record's values into its worker processes (stored back to back); one group if that cannot be shown."""
    import statistics

    k = len(process_medians or [])
    if k > 1 and len(values) % k == 0:
        size = len(values) // k
        groups = [values[i * size : (i + 1) * size] for i in range(k)]
        if all(math.isclose(statistics.median(g), m, rel_tol=1e-9) for g, m in zip(groups, process_medians)):
            return groups
    return [list(values)]


@dataclass
class _Cell:
    """The pooled measurements of one (config_hash, phase) on one side."""

    identity: dict
    groups: list[list[float]] = field(default_factory=list)
    flops: list[int] = field(default_factory=list)
    peak_mem: list[int] = field(default_factory=list)

    @property
    def values(self) -> list[float]:
        return [v for g in self.groups for v in g]


def _label(frame, fallback: str) -> str:
    return Path(frame.attrs.get("run_dir", fallback)).name or fallback


def _ok_cells(frame, side: str) -> dict[tuple[str, str], _Cell]:
    """Timed ok records pooled by (config_hash, phase); malformed ones raise ResultsError naming the record."""
    if frame is None or len(frame) == 0:
        raise ResultsError(f"{side} run has no records")
    missing = [c for c in ("config_hash", "phase", "impl", "status") if c not in frame.columns]
    if missing:
        raise ResultsError(f"{side} run lacks column(s) {', '.join(missing)}: not a frame from kanbench.results.load")
    cells: dict[tuple[str, str], _Cell] = {}
    for row in frame.to_dict("records"):
        if row["status"] != "ok" or row["phase"] in ("accuracy", "profile"):
            continue
        where = f"{side} run {_label(frame, side)}: {row['impl']} {row['phase']} ({row['config_hash']})"
        values = row.get("time_values")
        if not isinstance(values, list) or not values:
            raise ResultsError(f"{where}: status ok but time_s.values is missing or empty")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in values):
            raise ResultsError(f"{where}: time_s.values must be positive finite seconds, got {values[:5]!r}...")
        key = (row["config_hash"], row["phase"])
        if "widths_label" not in row and isinstance(row.get("widths"), list):
            row["widths_label"] = "x".join(map(str, row["widths"]))
        cell = cells.setdefault(key, _Cell({k: row.get(k) for k in IDENTITY}))
        cell.groups.extend(process_groups(values, row.get("time_process_medians")))
        for name, target in (("flops", cell.flops), ("peak_mem_bytes", cell.peak_mem)):
            value = row.get(name)
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                target.append(int(value))
    return cells


def _seed(key: tuple[str, str]) -> int:
    # Seeded by the cell, so a cell's interval does not depend on which other cells are compared.
    return int.from_bytes(hashlib.sha256("/".join(key).encode()).digest()[:8], "little")


# --- comparing --------------------------------------------------------------------------------------------------


def compare_frames(
    base,
    cand,
    threshold: float = 0.10,
    alpha: float = 0.01,
    estimator: str = DEFAULT_ESTIMATOR,
    resamples: int = DEFAULT_RESAMPLES,
):
    """Latency verdict per common (config_hash, phase); UsageError if the runs share no timed cell."""
    import numpy as np
    import pandas as pd

    if threshold < 0 or not 0 < alpha < 1:
        raise UsageError(f"threshold must be >= 0 and alpha in (0, 1); got threshold={threshold}, alpha={alpha}")
    q = estimator_quantile(estimator)
    base_cells, cand_cells = _ok_cells(base, "base"), _ok_cells(cand, "candidate")
    common = [k for k in cand_cells if k in base_cells]
    if not common:
        raise UsageError(
            f"no common cells: the base has {len(base_cells)} and the candidate {len(cand_cells)} timed ok cells, "
            "none with the same config_hash and phase (compare runs of the same suite)"
        )
    rows = []
    for key in common:
        b, c = base_cells[key], cand_cells[key]
        bv, cv = b.values, c.values
        base_est, cand_est = estimate(bv, q), estimate(cv, q)
        ratio = cand_est / base_est
        boot = bootstrap_ratios(b.groups, c.groups, q, resamples, _seed(key))
        ci_low, ci_high = (float(x) for x in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
        p = mann_whitney_p(bv, cv)
        base_median, cand_median = float(np.median(bv)), float(np.median(cv))
        rows.append(
            {
                **c.identity,
                "estimator": estimator,
                "base_n": len(bv),
                "cand_n": len(cv),
                "base_processes": len(b.groups),
                "cand_processes": len(c.groups),
                "base_median": base_median,
                "cand_median": cand_median,
                "median_ratio": cand_median / base_median,
                "base_est": base_est,
                "cand_est": cand_est,
                "ratio": ratio,
                "ci_low": ci_low,
                "ci_high": ci_high,
                "p_value": p,
                "verdict": verdict(ratio, ci_low, ci_high, p, threshold, alpha),
            }
        )
    frame = pd.DataFrame(rows)
    return frame.sort_values(["impl", "phase", "widths_label", "batch_size", "device", "dtype"], kind="stable")


def _deterministic_verdict(
    base: float | None, cand: float | None, threshold: float, slack: float = 0.0
) -> tuple[float | None, str]:
    if base is None or cand is None:
        return None, "not measured"
    ratio = cand / base if base else (1.0 if cand == 0 else math.inf)
    if abs(cand - base) <= slack:
        return ratio, "no change"
    if ratio > 1 + threshold:
        return ratio, "regression"
    if ratio < 1 / (1 + threshold):
        return ratio, "improvement"
    return ratio, "no change"


def compare_deterministic(
    base,
    cand,
    flops_threshold: float = 0.05,
    mem_threshold: float = 0.05,
    mem_slack: int = MEM_SLACK_BYTES,
    mem_phases: tuple[str, ...] = MEM_GATED_PHASES,
):
    """FLOPs per call and peak allocator bytes per common cell: regression when growth exceeds the threshold.

    Memory is gated in mem_phases only, must grow by more than mem_slack bytes too, and a cell whose peak differed
    between the rounds of one side is reported as "varies" rather than judged (a gate that flakes is worse than none).
    """
    import statistics

    import pandas as pd

    base_cells, cand_cells = _ok_cells(base, "base"), _ok_cells(cand, "candidate")
    rows = []
    for key, c in cand_cells.items():
        if key not in base_cells:
            continue
        b = base_cells[key]
        for metric, threshold, slack, bvals, cvals in (
            ("flops", flops_threshold, 0, b.flops, c.flops),
            ("peak_mem_bytes", mem_threshold, mem_slack, b.peak_mem, c.peak_mem),
        ):
            # Rounds of one side should agree exactly; the median keeps one odd round from deciding.
            bval = statistics.median(bvals) if bvals else None
            cval = statistics.median(cvals) if cvals else None
            ratio, result = _deterministic_verdict(bval, cval, threshold, slack)
            varied = len(set(bvals)) > 1 or len(set(cvals)) > 1
            if metric == "peak_mem_bytes" and result != "not measured":
                if key[1] not in mem_phases:
                    result = "not gated"
                elif varied:
                    result = "varies"
            rows.append(
                {**c.identity, "metric": metric, "base": bval, "cand": cval, "ratio": ratio,
                 "threshold": threshold, "verdict": result, "varied": varied}
            )  # fmt: skip
    columns = [*IDENTITY, "metric", "base", "cand", "ratio", "threshold", "verdict", "varied"]
    return pd.DataFrame(rows, columns=columns)


def status_changes(base, cand):
    """Cells that were ok in the base and are errors in the candidate (a broken implementation is a regression)."""
    import pandas as pd

    ok = base[base["status"] == "ok"]
    base_ok = set(zip(ok["config_hash"], ok["phase"]))
    was_ok = pd.Series([k in base_ok for k in zip(cand["config_hash"], cand["phase"])], index=cand.index, dtype=bool)
    broken = cand[(cand["status"] == "error") & was_ok]
    columns = [c for c in [*IDENTITY, "reason"] if c in cand.columns]
    return pd.DataFrame(broken[columns]).drop_duplicates(subset=KEY).reset_index(drop=True)


def environment_notes(base, cand) -> list[str]:
    """Differences between the two runs' environments that make a latency comparison doubtful."""
    notes = []
    benv, cenv = base.attrs.get("environment") or {}, cand.attrs.get("environment") or {}
    for key in ENV_FIELDS:
        if key in benv and key in cenv and benv[key] != cenv[key]:
            notes.append(f"environment differs: {key} {benv[key]!r} (base) vs {cenv[key]!r} (candidate)")
    for side, env in (("base", benv), ("candidate", cenv)):
        slowdown = (env.get("env_vars") or {}).get("KANBENCH_SLOWDOWN")
        if slowdown:
            notes.append(f"the {side} ran with KANBENCH_SLOWDOWN={slowdown!r} (injected extra work, for testing)")
    return notes


@dataclass
class Comparison:
    """Everything one comparison decided, ready to render."""

    base_label: str
    cand_label: str
    suite: str
    latency: object  # DataFrame from compare_frames
    deterministic: object  # DataFrame from compare_deterministic
    broken: object  # DataFrame from status_changes
    threshold: float
    alpha: float
    estimator: str
    flops_threshold: float
    mem_threshold: float
    mem_slack: int = MEM_SLACK_BYTES
    mem_phases: tuple[str, ...] = MEM_GATED_PHASES
    only_base: int = 0
    only_cand: int = 0
    notes: list[str] = field(default_factory=list)
    # (config_hash, phase) of latency regressions that a re-measure did not reproduce (kanbench regress)
    unconfirmed: set = field(default_factory=set)

    def flagged(self):
        """Latency rows with verdict regression, confirmed or not."""
        return self.latency[self.latency["verdict"] == "regression"]

    def regressions(self):
        """Latency rows with verdict regression, less those a re-measure did not confirm."""
        flagged = self.flagged()
        keep = [(h, p) not in self.unconfirmed for h, p in zip(flagged["config_hash"], flagged["phase"])]
        return flagged.loc[flagged.index[keep]] if keep else flagged

    def deterministic_failures(self):
        """FLOPs / memory rows with verdict regression."""
        return self.deterministic[self.deterministic["verdict"] == "regression"]

    @property
    def failed(self) -> bool:
        """True when any gate failed."""
        return bool(len(self.regressions()) or len(self.deterministic_failures()) or len(self.broken))

    @property
    def exit_code(self) -> int:
        """1 when any gate failed, else 0."""
        return EXIT_REGRESSION if self.failed else EXIT_OK


def compare_runs(
    base,
    cand,
    threshold: float = 0.10,
    alpha: float = 0.01,
    estimator: str = DEFAULT_ESTIMATOR,
    flops_threshold: float = 0.05,
    mem_threshold: float = 0.05,
    resamples: int = DEFAULT_RESAMPLES,
    mem_slack: int = MEM_SLACK_BYTES,
    mem_phases: tuple[str, ...] = MEM_GATED_PHASES,
) -> Comparison:
    """All gates on two loaded runs; UsageError for runs of different suites or without common cells."""
    base_suites, cand_suites = sorted(set(base["suite"])), sorted(set(cand["suite"]))
    if base_suites != cand_suites:
        raise UsageError(
            f"different suites: base {_label(base, 'base')} ran {', '.join(base_suites)} and candidate "
            f"{_label(cand, 'candidate')} ran {', '.join(cand_suites)}; compare two runs of the same suite"
        )
    latency = compare_frames(base, cand, threshold, alpha, estimator, resamples)
    base_keys = set(_ok_cells(base, "base"))
    cand_keys = set(_ok_cells(cand, "candidate"))
    return Comparison(
        base_label=_label(base, "base"),
        cand_label=_label(cand, "candidate"),
        suite=", ".join(base_suites),
        latency=latency,
        deterministic=compare_deterministic(base, cand, flops_threshold, mem_threshold, mem_slack, mem_phases),
        broken=status_changes(base, cand),
        threshold=threshold,
        alpha=alpha,
        estimator=estimator,
        flops_threshold=flops_threshold,
        mem_threshold=mem_threshold,
        mem_slack=mem_slack,
        mem_phases=tuple(mem_phases),
        only_base=len(base_keys - cand_keys),
        only_cand=len(cand_keys - base_keys),
        notes=environment_notes(base, cand),
    )


# --- rendering --------------------------------------------------------------------------------------------------


def fmt_time(seconds: float) -> str:
    """Seconds as a short human unit, three significant digits."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_quantity(value: float | None, metric: str) -> str:
    """FLOPs or bytes with a binary (bytes) or decimal (FLOPs) prefix."""
    if value is None:
        return "-"
    if metric == "peak_mem_bytes":
        for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if value >= scale:
                return f"{value / scale:.3g} {unit}"
        return f"{value:.0f} B"
    for unit, scale in (("GFLOP", 1e9), ("MFLOP", 1e6), ("kFLOP", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.0f} FLOP"


def fmt_change(ratio: float | None) -> str:
    """A ratio as a signed percentage change."""
    if ratio is None:
        return "-"
    if math.isinf(ratio):
        return "+inf%"
    return f"{(ratio - 1) * 100:+.1f}%"


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def gate_rule(comp: Comparison) -> str:
    """One sentence: which estimator the latency gate uses and when it fails."""
    level = f"{(1 - comp.alpha) * 100:g}%"
    return (
        f"latency gate: {comp.estimator} of the per-call times (medians shown for reference); a cell regresses when "
        f"it is more than {comp.threshold * 100:g}% slower and significant (Mann-Whitney U p < {comp.alpha:g} and the "
        f"{level} bootstrap interval of the ratio excludes 1). Deterministic gates: FLOPs per call "
        f"+{comp.flops_threshold * 100:g}%, peak allocator bytes +{comp.mem_threshold * 100:g}%"
        + (f" (and more than {fmt_quantity(comp.mem_slack, 'peak_mem_bytes')})" if comp.mem_slack else "")
        + f" in {', '.join(comp.mem_phases) or 'no'} phases."
    )


def _latency_cells(row: dict, unconfirmed: set) -> list[str]:
    verdict_text = row["verdict"]
    if verdict_text == "regression" and (row["config_hash"], row["phase"]) in unconfirmed:
        verdict_text = "regression, not confirmed"
    return [
        verdict_text, row["impl"], row["phase"], row["device"], row["dtype"], str(row["batch_size"]),
        row["widths_label"], fmt_time(row["base_median"]), fmt_time(row["cand_median"]), fmt_change(row["ratio"]),
        f"{fmt_change(row['ci_low'])} .. {fmt_change(row['ci_high'])}", _p(row["p_value"]),
    ]  # fmt: skip


def _latency_header(comp: Comparison) -> list[str]:
    level = f"{(1 - comp.alpha) * 100:g}%"
    return ["verdict", "impl", "phase", "device", "dtype", "batch", "widths", "base median", "cand median",
            f"change ({comp.estimator})", f"{level} interval", "p"]  # fmt: skip


def _det_cells(row: dict) -> list[str]:
    return [
        row["verdict"], row["metric"], row["impl"], row["phase"], row["device"], row["dtype"], str(row["batch_size"]),
        row["widths_label"], fmt_quantity(row["base"], row["metric"]), fmt_quantity(row["cand"], row["metric"]),
        fmt_change(row["ratio"]),
    ]  # fmt: skip


DET_HEADER = ["verdict", "metric", "impl", "phase", "device", "dtype", "batch", "widths", "base", "cand", "change"]


def summary_line(comp: Comparison) -> str:
    """How many cells regressed, improved, and failed the other gates."""
    counts = comp.latency["verdict"].value_counts()
    parts = [f"{counts.get(v, 0)} {v}" for v in VERDICTS if counts.get(v, 0)]
    det = len(comp.deterministic_failures())
    text = f"{len(comp.latency)} cells: {', '.join(parts)}"
    if comp.unconfirmed:
        text += f" ({len(comp.unconfirmed)} of the regressions not confirmed by a re-measure)"
    if det:
        text += f"; {det} FLOPs/memory regression(s)"
    if len(comp.broken):
        text += f"; {len(comp.broken)} cell(s) ok in the base fail in the candidate"
    return text


def _interesting(comp: Comparison):
    return comp.latency[comp.latency["verdict"] != "no change"]


def to_table(comp: Comparison, title: str = "kanbench compare") -> str:
    """A plain-text report for a terminal."""

    def table(header: list[str], rows: list[list[str]]) -> list[str]:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]

    status = "FAIL" if comp.failed else "ok"
    lines = [f"{title}: {comp.base_label} -> {comp.cand_label} (suite {comp.suite}): {status}"]
    lines.append(summary_line(comp))
    lines.append(gate_rule(comp))
    lines.append("")
    lines += table(
        _latency_header(comp), [_latency_cells(r, comp.unconfirmed) for r in comp.latency.to_dict("records")]
    )
    det = comp.deterministic[comp.deterministic["verdict"].isin(["regression", "improvement"])]
    if len(det):
        lines += ["", "FLOPs / memory changes:"]
        lines += table(DET_HEADER, [_det_cells(r) for r in det.to_dict("records")])
    for row in comp.broken.to_dict("records"):
        lines.append(
            f"BROKEN {row['impl']} {row['phase']} {row['widths_label']} b{row['batch_size']}: {row.get('reason')}"
        )
    lines += _footer(comp)
    return "\n".join(lines) + "\n"


def _footer(comp: Comparison) -> list[str]:
    lines = []
    if comp.only_base or comp.only_cand:
        lines.append(f"not compared: {comp.only_base} cell(s) only in the base, {comp.only_cand} only in the candidate")
    varies = comp.deterministic[comp.deterministic["verdict"] == "varies"]
    if len(varies):
        lines.append(
            f"peak memory of {len(varies)} gated cell(s) differed between rounds of one side, so it was not judged: "
            + ", ".join(sorted({f"{r['impl']} {r['phase']}" for r in varies.to_dict("records")}))
        )
    lines += [f"note: {n}" for n in comp.notes]
    return ["", *lines] if lines else []


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return out


MAX_MD_ROWS = 200  # a GitHub comment holds 65,536 characters


def to_markdown(comp: Comparison, title: str = "kanbench compare") -> str:
    """A report that fits a pull-request comment: the verdict, the cells that moved, all cells folded away."""
    status = "**FAIL**" if comp.failed else "**pass**"
    lines = [f"### {title}: {status}", ""]
    lines.append(f"`{comp.base_label}` (base) vs `{comp.cand_label}` (candidate), suite `{comp.suite}`: "
                 f"{summary_line(comp)}.")  # fmt: skip
    lines += ["", gate_rule(comp), ""]
    moved = _interesting(comp)
    if len(moved):
        lines += _md_table(
            _latency_header(comp),
            [_latency_cells(r, comp.unconfirmed) for r in moved.head(MAX_MD_ROWS).to_dict("records")],
        )
        lines.append("")
    det = comp.deterministic[comp.deterministic["verdict"].isin(["regression", "improvement"])]
    if len(det):
        lines += ["**FLOPs / memory changes**", ""]
        lines += _md_table(DET_HEADER, [_det_cells(r) for r in det.head(MAX_MD_ROWS).to_dict("records")])
        lines.append("")
    if len(comp.broken):
        lines += ["**Cells that ran in the base and fail in the candidate**", ""]
        for row in comp.broken.to_dict("records"):
            lines.append(f"- {row['impl']} {row['phase']} {row['widths_label']} batch {row['batch_size']}: "
                         f"{row.get('reason')}")  # fmt: skip
        lines.append("")
    lines += [f"<details><summary>All {len(comp.latency)} cells</summary>", ""]
    rows = [_latency_cells(r, comp.unconfirmed) for r in comp.latency.head(MAX_MD_ROWS).to_dict("records")]
    lines += _md_table(_latency_header(comp), rows)
    if len(comp.latency) > MAX_MD_ROWS:
        lines.append(f"\n... {len(comp.latency) - MAX_MD_ROWS} more cells in the JSON output")
    lines += ["", "</details>"]
    lines += [line if not line else f"_{line}_" for line in _footer(comp)]
    return "\n".join(lines) + "\n"


def _records(frame) -> list[dict]:
    out = []
    for row in frame.to_dict("records"):
        clean = {}
        for key, value in row.items():
            if hasattr(value, "item"):
                value = value.item()
            if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
                value = None if math.isnan(value) else str(value)
            clean[key] = value
        out.append(clean)
    return out


def to_json(comp: Comparison) -> str:
    """Every row of every gate, with the settings, as JSON."""
    data = {
        "base": comp.base_label,
        "candidate": comp.cand_label,
        "suite": comp.suite,
        "failed": comp.failed,
        "settings": {
            "threshold": comp.threshold,
            "alpha": comp.alpha,
            "estimator": comp.estimator,
            "flops_threshold": comp.flops_threshold,
            "mem_threshold": comp.mem_threshold,
            "mem_slack_bytes": comp.mem_slack,
            "mem_phases": list(comp.mem_phases),
        },
        "summary": summary_line(comp),
        "latency": _records(comp.latency),
        "deterministic": _records(comp.deterministic),
        "broken": _records(comp.broken),
        "only_base": comp.only_base,
        "only_candidate": comp.only_cand,
        "notes": comp.notes,
    }
    return json.dumps(data, indent=2) + "\n"


def render(comp: Comparison, fmt: str, title: str = "kanbench compare") -> str:
    """The comparison in one of the formats table, markdown, json."""
    if fmt == "markdown":
        return to_markdown(comp, title)
    if fmt == "json":
        return to_json(comp)
    return to_table(comp, title)


# --- command line -----------------------------------------------------------------------------------------------


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 0.10, got {text!r}") from None
    if not 0 <= value < 10:
        raise argparse.ArgumentTypeError(f"expected a fraction >= 0 such as 0.10 (10%), got {text!r}")
    return value


def _phases(text: str) -> tuple[str, ...]:
    from kanbench.record import PHASES

    names = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in names if p not in PHASES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown phase(s) {', '.join(unknown)}; known: {', '.join(PHASES)}")
    return names


def _alpha(text: str) -> float:
    value = _fraction(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"alpha must lie in (0, 1), e.g. 0.01, got {text!r}")
    return value


def add_gate_arguments(parser: argparse.ArgumentParser) -> None:
    """The thresholds and test settings that compare and regress share."""
    parser.add_argument(
        "--threshold",
        type=_fraction,
        default=0.10,
        help="latency: fail when more than this fraction slower (default 0.10)",
    )
    parser.add_argument("--alpha", type=_alpha, default=0.01, help="significance level (default 0.01)")
    parser.add_argument(
        "--estimator",
        default=DEFAULT_ESTIMATOR,
        help="statistic the latency gate compares: p10 (default), min, median, mean or pNN",
    )
    parser.add_argument(
        "--flops-threshold",
        type=_fraction,
        default=0.05,
        help="FLOPs per call: fail when more than this fraction higher (default 0.05)",
    )
    parser.add_argument(
        "--mem-threshold",
        type=_fraction,
        default=0.05,
        help="peak allocator bytes per phase: fail when more than this fraction higher (default 0.05) ...",
    )
    parser.add_argument(
        "--mem-slack",
        type=int,
        default=MEM_SLACK_BYTES,
        help=f"... and more than this many bytes higher (default {MEM_SLACK_BYTES})",
    )
    parser.add_argument(
        "--mem-phases",
        type=_phases,
        default=MEM_GATED_PHASES,
        help=f"phases whose peak memory is gated, comma-separated (default {','.join(MEM_GATED_PHASES)})",
    )


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of `kanbench compare`."""
    parser.add_argument("base", help="base run directory (or a directory of run directories, pooled)")
    parser.add_argument("cand", help="candidate run directory (or a directory of run directories, pooled)")
    add_gate_arguments(parser)
    parser.add_argument("--format", choices=("table", "markdown", "json"), default="table", help="output format")
    parser.add_argument("-o", "--output", help="also write the output to this file")


def command(args: argparse.Namespace) -> int:
    """Compare two runs; exit 1 when any gate fails."""
    estimator_quantile(args.estimator)  # a bad name is a usage error before any file is read
    comp = compare_runs(
        load_side(args.base), load_side(args.cand), args.threshold, args.alpha, args.estimator,
        args.flops_threshold, args.mem_threshold, mem_slack=args.mem_slack, mem_phases=args.mem_phases,
    )  # fmt: skip
    text = render(comp, args.format)
    sys.stdout.write(text)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    return comp.exit_code
