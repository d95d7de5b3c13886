"""The gate: one GateSettings, the latency / FLOPs / memory / broken-cell decisions, the Comparison. No torch here."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...errors import UsageError
from ...results.record import is_number
from . import relative
from .cells import IDENTITY, KEY, cell_label, distinguishing_fields, ok_cells, run_label, shared_label
from .relative import RunShift
from .stats import bootstrap_ratios, cell_seed, estimate, estimator_quantile, mann_whitney_p

if TYPE_CHECKING:  # pandas is imported where a comparison is made, not with the module
    import pandas as pd

VERDICTS = ("regression", "improvement", "no change", "not significant")
DEFAULT_ESTIMATOR = "p10"
DEFAULT_RESAMPLES = 2000
MEM_SLACK_BYTES = 0
# Phases whose peak allocator bytes the memory gate checks: backward and train_step peaks vary between runs of the
# same code on CPU (docs/methodology.md, "Comparing two runs"), so they are gated only when asked (--mem-phases).
MEM_GATED_PHASES = ("forward", "forward_inference")
# Environment fields whose difference makes a latency comparison doubtful; named in the notes.
ENV_FIELDS = ("cpu_model", "cpu_count", "cpu_affinity", "torch", "python", "torch_threads", "os")
EXIT_OK, EXIT_REGRESSION = 0, 1
# Instruction counts (the instruction clock) of one cell repeat within a fraction of a percent between runs of the
# same code (docs/methodology.md, "Instruction counts"), so a small threshold alone decides: no significance test,
# no confirmation re-run.
COUNT_THRESHOLD = 0.02


@dataclass(frozen=True)
class GateSettings:
    """Every threshold and test setting of the gate; kanbench compare and kanbench regress both take one."""

    threshold: float = 0.10  # latency: a cell regresses when slower by more than this fraction ...
    alpha: float = 0.01  # ... and significant: Mann-Whitney p < alpha, the 1 - alpha interval excludes 1
    estimator: str = DEFAULT_ESTIMATOR  # statistic of the per-call times the latency gate compares
    flops_threshold: float = 0.05  # FLOPs per call: fail when higher by more than this fraction
    mem_threshold: float = 0.05  # peak allocator bytes: fail when higher by more than this fraction ...
    mem_slack: int = MEM_SLACK_BYTES  # ... and by more than this many bytes
    mem_phases: tuple[str, ...] = MEM_GATED_PHASES  # phases whose peak memory is gated
    resamples: int = DEFAULT_RESAMPLES  # bootstrap resamples per cell
    count_threshold: float = COUNT_THRESHOLD  # instruction counts: a cell regresses when higher by more than this
    # judge implementations against the others in the same runs (kanbench.analysis.compare.relative): kanbench compare's
    # way; kanbench regress judges its interleaved rounds cell by cell (relative=False), as it was measured
    relative: bool = True

    def __post_init__(self) -> None:
        if self.threshold < 0 or not 0 < self.alpha < 1:
            raise UsageError(
                f"threshold must be >= 0 and alpha in (0, 1); got threshold={self.threshold}, alpha={self.alpha}"
            )
        if self.flops_threshold < 0 or self.mem_threshold < 0 or self.count_threshold < 0:
            raise UsageError(
                "flops_threshold, mem_threshold and count_threshold must be >= 0; got "
                f"{self.flops_threshold}, {self.mem_threshold}, {self.count_threshold}"
            )
        if self.resamples < 1:
            raise UsageError(f"resamples must be >= 1; got {self.resamples}")
        if self.mem_slack < 0:
            raise UsageError(f"--mem-slack must be >= 0 bytes; got {self.mem_slack}")
        estimator_quantile(self.estimator)  # a bad name fails here, before any run is read
        object.__setattr__(self, "mem_phases", tuple(self.mem_phases))

    @property
    def quantile(self) -> float | None:
        """The quantile the estimator stands for (None: the mean)."""
        return estimator_quantile(self.estimator)


def beyond(ratio: float, threshold: float) -> str:
    """regression above 1 + threshold, improvement below its inverse, else no change."""
    return "regression" if ratio > 1 + threshold else "improvement" if ratio < 1 / (1 + threshold) else "no change"


def cell_verdict(ratio: float, ci_low: float, ci_high: float, p_value: float, threshold: float, alpha: float) -> str:
    """regression / improvement beyond the threshold and significant; no change within it; else not significant."""
    result = beyond(ratio, threshold)
    if result == "no change":
        return result
    interval_excludes_one = ci_low > 1 if result == "regression" else ci_high < 1
    return result if p_value < alpha and interval_excludes_one else "not significant"


LATENCY_COLUMNS = (
    "unit", "estimator", "base_n", "cand_n", "base_processes", "cand_processes", "base_median", "cand_median",
    "median_ratio", "base_est", "cand_est", "ratio", "ci_low", "ci_high", "p_value", "verdict",
)  # fmt: skip


def compare_frames(base, cand, settings: GateSettings | None = None, broken: bool = False):
    """Latency verdict per common (config_hash, phase); UsageError if the runs share no timed cell.

    broken: cells ok in the base fail in the candidate, so no common timed cell is a failed gate, not bad input.
    """
    import numpy as np
    import pandas as pd

    s = settings or GateSettings()
    q = s.quantile
    base_cells, cand_cells = ok_cells(base, "base"), ok_cells(cand, "candidate")
    common = [k for k in cand_cells if k in base_cells]
    if not common and broken:
        return pd.DataFrame(columns=[*IDENTITY, *LATENCY_COLUMNS])
    if not common:
        raise UsageError(
            f"no common cells: the base has {len(base_cells)} and the candidate {len(cand_cells)} timed ok cells, "
            "none with the same config_hash and phase (compare runs of the same suite)"
        )
    rows = []
    for key in common:
        b, c = base_cells[key], cand_cells[key]
        if b.unit != c.unit:
            raise UsageError(
                f"{c.identity['impl']} {key[1]} ({key[0]}): the base measured {b.unit} and the candidate {c.unit}; "
                "runs of different clocks are not comparable (run both with the same [timing].clock)"
            )
        if c.unit == "instructions":
            rows.append({**c.identity, **count_row(b.values, c.values, s.count_threshold)})
            continue
        bv, cv = b.values, c.values
        base_est, cand_est = estimate(bv, q), estimate(cv, q)
        ratio = cand_est / base_est
        boot = bootstrap_ratios(b.groups, c.groups, q, s.resamples, cell_seed(key))
        ci_low, ci_high = (float(x) for x in np.quantile(boot, [s.alpha / 2, 1 - s.alpha / 2]))
        p = mann_whitney_p(bv, cv)
        base_median, cand_median = float(np.median(bv)), float(np.median(cv))
        rows.append(
            {
                **c.identity,
                "unit": "s",
                "estimator": s.estimator,
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
                "verdict": cell_verdict(ratio, ci_low, ci_high, p, s.threshold, s.alpha),
            }
        )
    frame = pd.DataFrame(rows)
    return frame.sort_values(["impl", "phase", "widths_label", "batch_size", "device", "dtype"], kind="stable")


def count_row(base: list[float], cand: list[float], threshold: float) -> dict:
    """The latency row of an instruction-count cell: medians compared against the threshold, spread as interval."""
    import numpy as np

    base_median, cand_median = float(np.median(base)), float(np.median(cand))
    ratio = cand_median / base_median
    result = beyond(ratio, threshold)
    return {
        "unit": "instructions", "estimator": "median", "base_n": len(base), "cand_n": len(cand),
        "base_processes": 1, "cand_processes": 1, "base_median": base_median, "cand_median": cand_median,
        "median_ratio": ratio, "base_est": base_median, "cand_est": cand_median, "ratio": ratio,
        "ci_low": min(cand) / max(base), "ci_high": max(cand) / min(base), "p_value": math.nan, "verdict": result,
    }  # fmt: skip


def _deterministic_verdict(
    base: float | None, cand: float | None, threshold: float, slack: float = 0.0
) -> tuple[float | None, str]:
    if base is None or cand is None:
        return None, "not measured"
    ratio = cand / base if base else (1.0 if cand == 0 else math.inf)
    return ratio, "no change" if abs(cand - base) <= slack else beyond(ratio, threshold)


def compare_deterministic(base, cand, settings: GateSettings | None = None):
    """FLOPs per call and peak allocator bytes per common cell: regression when growth exceeds the threshold.

    Memory is gated in mem_phases only, must grow by more than mem_slack bytes too, and a cell whose peak differed
    between the rounds of one side is reported as "varies" rather than judged (a gate that flakes is worse than none).
    """
    import pandas as pd

    s = settings or GateSettings()
    base_cells, cand_cells = ok_cells(base, "base"), ok_cells(cand, "candidate")
    rows = []
    for key, c in cand_cells.items():
        if key not in base_cells:
            continue
        b = base_cells[key]
        for metric, threshold, slack, bvals, cvals in (
            ("flops", s.flops_threshold, 0, b.flops, c.flops),
            ("peak_mem_bytes", s.mem_threshold, s.mem_slack, b.peak_mem, c.peak_mem),
        ):
            # Rounds of one side should agree exactly; the median keeps one odd round from deciding.
            bval = statistics.median(bvals) if bvals else None
            cval = statistics.median(cvals) if cvals else None
            ratio, result = _deterministic_verdict(bval, cval, threshold, slack)
            varied = len(set(bvals)) > 1 or len(set(cvals)) > 1
            if metric == "peak_mem_bytes" and result != "not measured":
                if key[1] not in s.mem_phases:
                    result = "not gated"
                elif varied:
                    result = "varies"
            rows.append(
                {**c.identity, "metric": metric, "base": bval, "cand": cval, "ratio": ratio,
                 "threshold": threshold, "verdict": result, "varied": varied}
            )  # fmt: skip
    columns = [*IDENTITY, "metric", "base", "cand", "ratio", "threshold", "verdict", "varied"]
    return pd.DataFrame(rows, columns=columns)


def compare_metrics(base, cand):
    """Each common cell's scalar speed metrics (record.scalar_metrics), base beside candidate: shown, not gated."""
    import pandas as pd

    base_cells, cand_cells = ok_cells(base, "base"), ok_cells(cand, "candidate")
    rows = []
    for key, c in cand_cells.items():
        b = base_cells.get(key)
        if b is None:
            continue
        for name in dict.fromkeys([*b.metrics, *c.metrics]):
            bval, cval = _pooled(b.metrics.get(name, [])), _pooled(c.metrics.get(name, []))
            ratio = cval / bval if is_number(bval) and is_number(cval) and bval else None
            rows.append({**c.identity, "metric": name, "base": bval, "cand": cval, "ratio": ratio})
    # object columns: an int metric stays an int beside a float one
    return pd.DataFrame(rows, columns=[*IDENTITY, "metric", "base", "cand", "ratio"], dtype=object)


def _pooled(values: list):
    """One side's value of a metric over its rounds: the one they agree on, else the median number, else None."""
    if len(set(values)) == 1:
        return values[0]
    return statistics.median(values) if values and all(map(is_number, values)) else None


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
    bgpu, cgpu = benv.get("gpu") or {}, cenv.get("gpu") or {}
    for key, what in (("name", "GPU models"), ("uuid", "GPUs"), ("driver_version", "GPU drivers")):
        if bgpu.get(key) and cgpu.get(key) and bgpu[key] != cgpu[key]:
            notes.append(f"the runs used different {what}: {bgpu[key]!r} (base) vs {cgpu[key]!r} (candidate)")
            if key == "name":
                break  # another model is another GPU: the UUID line would say nothing more
    notes.extend(provenance_notes(benv, cenv))
    for side, env in (("base", benv), ("candidate", cenv)):
        slowdown = (env.get("env_vars") or {}).get("KANBENCH_SLOWDOWN")
        if slowdown:
            notes.append(f"the {side} ran with KANBENCH_SLOWDOWN={slowdown!r} (injected extra work, for testing)")
    for side, env in (("base", benv), ("candidate", cenv)):
        run = env.get("run")
        if isinstance(run, dict) and run.get("complete") is False:
            notes.append(f"the {side} run is incomplete (stopped early, or merged with --allow-partial): cells it "
                         "lacks are not compared")  # fmt: skip
    return notes


APART_S = 3600.0  # runs started further apart than this measured a machine that may have changed beneath them


def _started(env: dict) -> float | None:
    import calendar
    import time

    stamp = (env.get("run") or {}).get("started_utc") if isinstance(env.get("run"), dict) else None
    try:
        return float(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))) if stamp else None
    except (TypeError, ValueError):
        return None


def short_commit(commit: object) -> str:
    """A commit as its first 12 characters, keeping a "-dirty" mark (a modified checkout is another program)."""
    text = str(commit)
    return text[:12] + ("-dirty" if _dirty(text) and len(text) > 12 else "")


def _dirty(commit: object) -> bool:
    return str(commit).endswith("-dirty")


def clock_of(env: dict) -> str | None:
    """The clock a run timed with ([timing].clock as run, in environment.json's run.timing), or None."""
    timing = (env.get("run") or {}).get("timing") if isinstance(env.get("run"), dict) else None
    clock = timing.get("clock") if isinstance(timing, dict) else None
    return clock if isinstance(clock, str) else None


def provenance_notes(benv: dict, cenv: dict) -> list[str]:
    """Whether the two runs measured the same commit on the same machine with the same clock, and how far apart
    they started."""
    notes = []
    bc, cc = benv.get("git_commit"), cenv.get("git_commit")
    if bc and cc:
        notes.append(
            f"both runs measured commit {short_commit(bc)}"
            + (" (a modified checkout: its modifications may differ between the runs)" if _dirty(bc) else "")
            if bc == cc
            else f"the runs measured different commits: {short_commit(bc)} (base) and {short_commit(cc)} (candidate)"
        )
    bk, ck = clock_of(benv), clock_of(cenv)
    if bk and ck and bk != ck:  # wall and thread both count seconds, but not the same ones
        notes.append(
            f"the runs timed with different clocks: {bk} (base) and {ck} (candidate); the ratios compare the "
            "clocks too (the thread clock leaves out time the worker waited): measure both with one clock"
        )
    bh, ch = benv.get("hostname"), cenv.get("hostname")
    if bh and bh == ch and benv.get("cpu_model") == cenv.get("cpu_model"):  # a CPU model alone names no machine
        notes.append(f"both runs ran on the same machine (hostname {bh!r}, cpu_model {benv.get('cpu_model')!r})")
    elif bh and ch and bh != ch:
        notes.append(
            f"the runs ran on different machines: {benv['hostname']!r} (base) and {cenv['hostname']!r} "
            "(candidate); latency ratios across machines compare the machines too"
        )
    b0, c0 = _started(benv), _started(cenv)
    if b0 is not None and c0 is not None and abs(c0 - b0) > APART_S:
        notes.append(
            f"the runs started {abs(c0 - b0) / 3600:.1f} hours apart: the machine may have changed between "
            "them; for an A/B of two commits measured interleaved, use kanbench regress"
        )
    return notes


@dataclass
class Comparison:
    """Everything one comparison decided, ready to render."""

    base_label: str
    cand_label: str
    suite: str
    latency: pd.DataFrame  # from compare_frames, with a "label" column
    deterministic: pd.DataFrame  # from compare_deterministic, with a "label" column
    broken: pd.DataFrame  # from status_changes, with a "label" column
    settings: GateSettings = field(default_factory=GateSettings)
    shared: str = ""  # what every compared cell has in common, e.g. "forward 100x100 G=5 k=3 b8 cpu float32"
    only_base: int = 0
    only_cand: int = 0
    notes: list[str] = field(default_factory=list)
    # (config_hash, phase) of latency regressions that a re-measure did not reproduce (kanbench regress)
    unconfirmed: set = field(default_factory=set)
    # with settings.relative: one row per implementation (relative.judge_latency) and the runs' common shift; None when
    # there were too few implementations or cells to judge them against each other
    implementations: pd.DataFrame | None = None
    shift: RunShift | None = None
    metrics: pd.DataFrame | None = None  # from compare_metrics, with a "label" column

    def implementation_regressions(self):
        """Implementations whose cells, taken together, are slower than the others' (relative judging)."""
        if self.implementations is None:
            return self.latency.iloc[0:0]
        return self.implementations[self.implementations["verdict"] == "regression"]

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
        return bool(len(self.regressions()) or len(self.implementation_regressions())
                    or len(self.deterministic_failures()) or len(self.broken))  # fmt: skip

    @property
    def exit_code(self) -> int:
        """1 when any gate failed, else 0."""
        return EXIT_REGRESSION if self.failed else EXIT_OK


def _labelled(frames: list) -> str:
    """Add a "label" column to each frame, naming its cells by what differs among all of them; the shared rest."""
    rows = [r for f in frames for r in f.to_dict("records")]
    fields = distinguishing_fields(rows)
    for f in frames:
        f["label"] = [cell_label(r, fields) for r in f.to_dict("records")]
    return shared_label(rows, fields)


def compare_runs(base, cand, settings: GateSettings | None = None) -> Comparison:
    """All gates on two loaded runs; UsageError for runs of different suites or without common cells."""
    s = settings or GateSettings()
    base_suites, cand_suites = sorted(set(base["suite"])), sorted(set(cand["suite"]))
    if base_suites != cand_suites:
        raise UsageError(
            f"different suites: base {run_label(base, 'base')} ran {', '.join(base_suites)} and candidate "
            f"{run_label(cand, 'candidate')} ran {', '.join(cand_suites)}; compare two runs of the same suite"
        )
    broken = status_changes(base, cand)
    latency = compare_frames(base, cand, s, broken=len(broken) > 0)
    implementations = shift = None
    if s.relative and len(latency):
        latency = relative.use_paired(latency, relative.paired_ratios(base, cand, 1 - s.alpha))
        latency, implementations, shift = relative.judge_latency(latency, s.threshold)
    deterministic = compare_deterministic(base, cand, s)
    metrics = compare_metrics(base, cand)
    shared = _labelled([latency, deterministic, broken, metrics])
    base_keys = set(ok_cells(base, "base"))
    cand_keys = set(ok_cells(cand, "candidate"))
    return Comparison(
        base_label=run_label(base, "base"),
        cand_label=run_label(cand, "candidate"),
        suite=", ".join(base_suites),
        latency=latency,
        deterministic=deterministic,
        broken=broken,
        settings=s,
        shared=shared,
        only_base=len(base_keys - cand_keys),
        only_cand=len(cand_keys - base_keys),
        notes=[*environment_notes(base, cand), *filter(None, [relative.shift_note(shift, s.threshold)])],
        implementations=implementations,
        shift=shift,
        metrics=metrics,
    )
