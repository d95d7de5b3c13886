"""The report's answer: for one configuration, implementations ranked per phase, and whether each gap is resolved.

Each gap between neighbours is judged by analysis/judge.py: paired where both were measured in one group of one run
(interleaved rounds: a 95% bootstrap interval of the paired ratio on one side of 1, and at least judge.MIN_EFFECT),
else by the unpaired rule (IQRs apart and beyond (1 + m)^2 for the configuration's process spread m), and every
rank says which. The configuration is the one a reader most likely wants (PREFERRED), else the most completely
measured. Beside it, how far the run can be trusted: the smallest gap it could resolve, what was not measured
together (other runs, machines, settings), its noisy timings, the machine's load, and its own noise measured by the
reference workload (kanbench.results.noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..analysis import judge
from ..analysis.judge import Gap, Sample
from ..results.noise import MAX_WITHIN, Noise
from ..results.record import PHASES
from ..text import escape
from ..text.units import fmt_time
from .data import CONFIG_COLUMNS, timing_rows

# the MNIST-shaped network at batch 64: the default suite's centre and the shape most KAN papers time
PREFERRED = {"widths_label": "784x64x10", "batch_size": 64, "grid_size": 5, "dtype": "float32"}
RULE = ("the MNIST-shaped network 784 -> 64 -> 10 at batch 64, G = 5, float32, on the GPU where one was measured; "
        "without it, the configuration with the most implementations measured")  # fmt: skip
VERDICT_PAIR = ("bspline-fast", "fastkan")
SPREAD_QUANTILE = 0.9  # of the configuration's per-timing process spreads: the m of the unpaired rule
# what the machines of two runs must share for their timings to be read side by side
MACHINE_FIELDS = ("hostname", "cpu_model", "torch_version", "worker_torch_threads")


@dataclass(frozen=True)
class Rank:
    """One implementation's place in one phase, and its gap to the next (slower) one."""

    impl: str
    median: float
    low: float  # first quartile of every value (data.prepare's time_q1)
    high: float  # third quartile (time_q3)
    vs_iso: float | None  # against mlp-iso in the same configuration: the paired ratio where paired, else medians'
    resolved: bool | None  # faster than the next one, as the judge decides; None for the last
    gap: Gap | None = None  # the judge's finding against the next one
    run: str = ""  # the run's name (made unique where two runs share one)
    group: str | None = None  # the group of its run it was measured in (None: no pairing)
    run_order: int = 0  # which of the runs given (their order), for its environment
    sample: Sample | None = None  # what the judge read, to judge it against any other rank


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
    margin: float = 0.0  # the process spread m of the unpaired rule: threshold(m) = (1 + m)^2
    processes: int = 1  # the most worker processes any timing here came from
    resolvable: float | None = None  # the smallest ratio the paired gaps could resolve (judge.resolvable)
    runs: tuple[str, ...] = ()  # the runs the ranked timings come from (names made unique)
    run_orders: tuple[int, ...] = ()  # and their places among the runs given, for their environments

    def gaps(self) -> list[Gap]:
        """Every judged gap between neighbours."""
        return [r.gap for ranked in self.ranks.values() for r in ranked if r.gap is not None]


def sample(row: dict) -> Sample:
    """What the judge reads of one timing row (data.prepare's columns; pairing keys from schema 5 on)."""
    values, process, rounds = row.get("time_values"), row.get("time_process"), row.get("time_round")
    group = row.get("group")
    if not (isinstance(values, list) and isinstance(process, list) and isinstance(rounds, list)):
        return Sample(float(row["time_median"]), float(row["time_q1"]), float(row["time_q3"]))
    if not isinstance(group, str) or not len(values) == len(process) == len(rounds):
        return Sample(float(row["time_median"]), float(row["time_q1"]), float(row["time_q3"]))
    run = row.get("run_order", row.get("run", ""))  # a run's place among those given: two may share a name
    return Sample(float(row["time_median"]), float(row["time_q1"]), float(row["time_q3"]), tuple(values),
                  tuple(zip(process, rounds)), f"{run}/{group}")  # fmt: skip


def in_config(rows: pd.DataFrame, config: dict) -> pd.DataFrame:
    """The rows of one configuration (config: column -> value)."""
    return rows[(rows[list(config)] == pd.Series(config)).all(axis=1)]


def choose(rows: pd.DataFrame) -> dict | None:
    """The configuration the answer is about (RULE)."""
    if rows.empty:
        return None
    counts = rows.groupby(list(CONFIG_COLUMNS), sort=False)["impl"].nunique()
    configs = [dict(zip(CONFIG_COLUMNS, key)) for key in counts.index]
    preferred = [c for c in configs if all(c[k] == v for k, v in PREFERRED.items())]
    if preferred:
        found = max(preferred, key=lambda c: (c["device"].startswith("cuda"), counts[tuple(c.values())]))
    else:
        found = dict(zip(CONFIG_COLUMNS, counts.idxmax()))
    return {k: v.item() if hasattr(v, "item") else v for k, v in found.items()}  # numpy scalars as Python's


def process_spread(rows: pd.DataFrame) -> float:
    """SPREAD_QUANTILE of (slowest / fastest process median - 1) over timings measured in several processes."""
    medians = [m for m in rows.get("time_process_medians", pd.Series(dtype=object)) if isinstance(m, list)]
    return judge.process_spread(medians, SPREAD_QUANTILE)


def _group(row: dict) -> str | None:
    group = row.get("group")
    return group if isinstance(group, str) else None


def run_names(rows: pd.DataFrame) -> dict[int, str]:
    """Each run's place among those given -> its name, with its place added where two runs share a name."""
    if "run" not in rows:
        return {}
    pairs = rows[["run_order", "run"]].drop_duplicates() if "run_order" in rows else None
    named = {int(o): str(n) for o, n in pairs.itertuples(index=False)} if pairs is not None else {0: ""}
    twice = {n for n in named.values() if list(named.values()).count(n) > 1}
    return {o: f"{n} (run {o + 1})" if n in twice else n for o, n in named.items()}


def _fastest_first(samples: list[Sample]) -> list[int]:
    """Indices of samples, fastest first: by the paired location where one group of one run holds them all (so the
    order agrees with the paired ratios), else by median."""
    together_ = {s.together for s in samples}
    if len(together_) == 1 and None not in together_ and len(samples) > 1:
        where = judge.locations({str(i): (list(s.values), list(s.keys)) for i, s in enumerate(samples)})
        if all(where[str(i)] == where[str(i)] for i in range(len(samples))):  # no NaN: every key shared
            return sorted(range(len(samples)), key=lambda i: (where[str(i)], samples[i].median))
    return sorted(range(len(samples)), key=lambda i: samples[i].median)


def ranks(rows: pd.DataFrame, config: dict, margin: float = 0.0) -> dict[str, list[Rank]]:
    """Per phase, the implementations fastest first (_fastest_first), each gap judged (kanbench.analysis.judge)."""
    here = in_config(rows, config)
    names = run_names(here)
    out: dict[str, list[Rank]] = {}
    for phase in [p for p in PHASES if p in set(here["phase"])]:
        mine = here[here["phase"] == phase].drop_duplicates("impl", keep="last")
        unsorted = mine.to_dict("records")
        plain = [sample(r) for r in unsorted]
        order = _fastest_first(plain)
        found, samples = [unsorted[i] for i in order], [plain[i] for i in order]
        iso = next((s for r, s in zip(found, samples) if r["impl"] == "mlp-iso"), None)
        ranked = []
        for i, (r, s) in enumerate(zip(found, samples)):
            vs_iso = judge.judge(iso, s, margin).ratio if iso is not None and iso.median > 0 else None
            gap = judge.judge(s, samples[i + 1], margin) if i + 1 < len(samples) else None
            resolved = None if gap is None else gap.a_faster
            run_order = int(r.get("run_order", 0))
            ranked.append(Rank(r["impl"], s.median, s.low, s.high, vs_iso, resolved, gap,
                               names.get(run_order, str(r.get("run", ""))), _group(r), run_order, s))  # fmt: skip
        out[phase] = ranked
    return out


def verdict(phase_ranks: dict[str, list[Rank]], margin: float = 0.0) -> list[str]:
    """bspline-fast against fastkan per phase (paired where measured together), or the sentence naming the suite
    that answers it."""
    fast, rbf = VERDICT_PAIR
    lines = []
    for phase, found in phase_ranks.items():
        by = {r.impl: r.sample or Sample(r.median, r.low, r.high) for r in found}
        if fast not in by or rbf not in by:
            continue
        gap = judge.judge(by[fast], by[rbf], margin)
        ratio = 1 / gap.ratio  # bspline-fast / fastkan
        winner = fast if gap.ratio > 1 else rbf
        how = f"{max(ratio, 1 / ratio):.2f}x faster" if gap.resolved else f"indistinguishable (ratio {ratio:.2f})"
        lines.append(f"{phase}: {winner + ' ' + how if gap.resolved else how} [{gap.rule}]")
    if not lines:
        return [f"{fast} and {rbf} are not both in these runs: suites/fast-bspline.toml answers B-spline "
                "against FastKAN (and the default suite has both)."]  # fmt: skip
    return lines


def build(df: pd.DataFrame, noise: list[Noise] | None = None) -> Answer | None:
    """The answer for these runs' speed records (a frame from data.prepare: time_q1, time_q3, noisy) and their
    reference noise (kanbench.results.noise.summarize of each run), or None without any speed record."""
    rows = timing_rows(df)
    config = choose(rows)
    if config is None:
        return None
    mine = tuple(n for n in noise or [] if n.device == config["device"])
    here = in_config(rows, config)
    margin = process_spread(here)
    found = ranks(rows, config, margin)
    noisy = int(here["noisy"].sum()) if "noisy" in here else 0
    processes = max((len(m) for m in here.get("time_process_medians", []) if isinstance(m, list)), default=1)
    gaps = [r.gap for v in found.values() for r in v if r.gap is not None]
    orders = tuple(dict.fromkeys(r.run_order for v in found.values() for r in v))
    names = run_names(here)
    runs = tuple(names.get(o, "") for o in orders)
    return Answer(config, found, verdict(found, margin), noisy, len(here), mine, margin, processes,
                  judge.resolvable(gaps), runs, orders)  # fmt: skip


Environments = list  # each run's environment.json (or None), in the order the runs were given


def together(found: Answer, environments: Environments | None = None) -> list[str]:
    """What the ranked timings were not measured together with: other runs and their machines or settings, other
    groups of one run (compiled, amp or mode variants); each such gap was judged by the unpaired rule."""
    notes = []
    given = environments or []
    if len(found.runs) > 1:
        notes.append(
            f"the timings come from {len(found.runs)} runs ({', '.join(found.runs)}): implementations "
            "of different runs were not measured together, and their gaps are judged by the unpaired rule"
        )
        envs = {name: (given[o] if o < len(given) else None) or {} for name, o in zip(found.runs, found.run_orders)}
        for key in MACHINE_FIELDS:
            seen = {name: env.get(key) for name, env in envs.items() if env.get(key) is not None}
            if len(set(map(str, seen.values()))) > 1:
                notes.append(f"different {key.replace('_', ' ')}: " + ", ".join(f"{v} ({n})" for n, v in seen.items()))
        timings = {name: str((env.get("run") or {}).get("timing")) for name, env in envs.items() if env.get("run")}
        if len(set(timings.values())) > 1:
            notes.append("different timing settings between the runs")
    groups: dict[tuple[int, str | None], list[str]] = {}
    for ranked in found.ranks.values():
        for r in ranked:
            impls = groups.setdefault((r.run_order, r.group), [])
            if r.impl not in impls:
                impls.append(r.impl)
    if len(groups) > max(len(found.runs), 1):
        biggest = max(groups.values(), key=len)
        apart_ = sorted({i for impls in groups.values() if impls is not biggest for i in impls})
        notes.append(f"{', '.join(apart_)} were measured in other groups than the rest (unpaired rule)")
    return notes


def trust(found: Answer, environments: Environments) -> str:
    """Whether the runs can rank implementations here, what was not measured together, and why not when they
    cannot. environments: each run's environment.json (or None), in the order the runs were given."""
    gaps = found.gaps()
    resolved = sum(g.a_faster for g in gaps)
    paired = [g for g in gaps if g.rule == judge.PAIRED]
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
    text = (
        f"{resolved} of {len(gaps)} gaps resolved ({len(paired)} judged paired, {len(gaps) - len(paired)} "
        f"unpaired); {found.noisy} of {found.timings} timings here have an IQR above 10% of the median."
    )
    if paired and found.resolvable is not None:
        text += (
            f" Paired gaps (measured side by side, value by value): resolved when the {judge.CONFIDENCE:.0%} "
            f"interval of the paired ratio lies wholly beyond {1 + judge.MIN_EFFECT:.2f} (a gap of at least "
            f"{judge.MIN_EFFECT:.0%}) and every worker process's own ratio on the same side; the smallest gap this run "
            f"could resolve is about {found.resolvable:.2f}x."
        )
    if len(paired) < len(gaps) and found.margin:
        text += (
            f" Unpaired gaps: in 9 of 10 timings the worker processes disagreed by {found.margin:.0%} or less (the "
            "90th percentile of slowest over fastest process median): such a gap counts as resolved only if it "
            "survives both sides moving against each other by that much, a ratio beyond "
            f"{judge.threshold(found.margin):.2f}."
        )
    notes = together(found, environments)
    if notes:
        text += " Not measured together: " + "; ".join(notes) + "."
    if found.noise:
        text += f" Measured machine noise: {'; '.join(n.line() for n in found.noise)}."
    else:
        text += " The machine's own noise was not measured (runs from before the reference workload)."
    if found.timings and found.processes < 2:
        text += (
            " Each timing came from one worker process, so the run cannot show how much one timing moves "
            "between processes (measure with [timing].processes >= 2)."
        )
    why = []
    if found.timings and found.noisy > found.timings / 4 and len(paired) < len(gaps):
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


def to_json(found: Answer, environments: Environments) -> dict:
    """The answer as data: the configuration and, per phase, the ranked implementations (impl, median seconds,
    ratio to mlp-iso, resolved from the next one, and the judge's ratio, interval and rule)."""
    phases = {}
    for phase, ranked in found.ranks.items():
        phases[phase] = [{"impl": r.impl, "median": r.median, "vs_iso": r.vs_iso, "resolved": r.resolved,
                          "next_ratio": r.gap.ratio if r.gap else None,
                          "next_interval": [r.gap.low, r.gap.high] if r.gap and r.gap.low is not None else None,
                          "rule": r.gap.rule if r.gap else None, "run": r.run, "group": r.group}
                         for r in ranked]  # fmt: skip
    gaps = found.gaps()
    return {
        "config": found.config, "rule": RULE, "phases": phases, "verdict": found.verdict,
        "gaps": len(gaps), "resolved": sum(g.a_faster for g in gaps), "resolvable": found.resolvable,
        "min_effect": judge.MIN_EFFECT, "confidence": judge.CONFIDENCE, "unpaired_margin": found.margin,
        "unpaired_threshold": judge.threshold(found.margin) if any(g.rule == judge.UNPAIRED for g in gaps) else None,
        "runs": list(found.runs), "not_together": together(found, environments),
        "trust": trust(found, environments),
    }  # fmt: skip


def to_text(found: Answer, environments: Environments) -> str:
    """The answer for a terminal: the configuration, per phase the ranks with their gaps, the verdict, the trust;
    every name from the runs escaped (escape.terminal), so none can break a line or reorder the text."""
    lines = [f"The answer: {fmt_config(found.config)}"]
    for phase, ranked in found.ranks.items():
        lines.append(f"  {phase}:")
        for i, r in enumerate(ranked):
            iso = f"{r.vs_iso:6.2f}x mlp-iso" if r.vs_iso is not None else " " * 14
            mark = f"  {'<' if r.resolved else '~'} next x{r.gap.ratio:.2f} ({r.gap.rule})" if r.gap is not None else ""
            lines.append(f"    {i + 1:2d}. {escape.terminal(r.impl):<24} {fmt_time(r.median):>9}  {iso}{mark}")
    lines.append("  bspline-fast vs fastkan: " + escape.terminal("; ".join(found.verdict)))
    lines.append("  " + escape.terminal(trust(found, environments)))
    return "\n".join(lines)


def fmt_config(config: dict) -> str:
    """784x64x10 G=5 k=3 batch 64 cpu float32."""
    g, k = config["grid_size"], config["spline_order"]
    return f"{config['widths_label']} G={g} k={k} batch {config['batch_size']} {config['device']} {config['dtype']}"
