"""Do two runs give the report's answer the same ranking? Every resolved gap of one, checked against the other.

    python benchmarks/answer_repeat.py RUN_A RUN_B [RUN ...]   # e.g. `tox -e bench` runs minutes apart

For the configuration the answer picks (kanbench/report/answer.py), per phase: every pair of implementations the
judge resolves in one run (analysis/judge.py: paired where measured together, else unpaired; the answer's "<" between
neighbours) must come in the same order, by median, in the other. Prints each run's answer, the resolved pairs,
and every pair that came out the other way; exit 1 when there is one. With more than two runs, every pair of them.

Beside that, what the answer resolves (per run: of the adjacent gaps of at least 1.25x, how many are resolved; the
B-spline against FastKAN verdict) and how repeatable its ratios are (per pair of runs: the share of (implementation,
phase) whose ratio to mlp-iso agrees within 10%).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kanbench.analysis import judge  # noqa: E402
from kanbench.report import answer, data  # noqa: E402


def resolved_pairs(found: answer.Answer) -> set[tuple[str, str, str]]:
    """(phase, faster, slower) for every pair of implementations the judge resolves (kanbench.analysis.judge)."""
    out = set()
    for phase, ranked in found.ranks.items():
        for a, b in itertools.combinations(ranked, 2):  # ranked fastest first: a.median <= b.median
            gap = judge.judge(a.sample, b.sample, found.margin)  # every rank carries what the judge reads
            if gap.resolved:
                fast, slow = (a, b) if gap.ratio > 1 else (b, a)
                out.add((phase, fast.impl, slow.impl))
    return out


def order(found: answer.Answer) -> dict[tuple[str, str], float]:
    """(phase, impl) -> median, for checking an order."""
    return {(phase, r.impl): r.median for phase, ranked in found.ranks.items() for r in ranked}


def other_way(found: answer.Answer, phase: str, fast: str, slow: str) -> bool | None:
    """Whether found orders fast after slow: by the judge's paired ratio where one group holds both (the order the
    answer ranks by), else by median; None when it lacks either."""
    by = {r.impl: r for r in found.ranks.get(phase, [])}
    if fast not in by or slow not in by:
        return None
    a, b = by[fast].sample, by[slow].sample
    if a is not None and b is not None and judge.paired_logs(a, b):
        return judge.judge(a, b, found.margin).ratio < 1
    return by[fast].median > by[slow].median


def contradictions(first: answer.Answer, second: answer.Answer) -> list[str]:
    """The resolved pairs of either run that the other orders the other way."""
    out = []
    for one, other, name in ((first, second, "first"), (second, first, "second")):
        for phase, fast, slow in sorted(resolved_pairs(one)):
            if other_way(other, phase, fast, slow):
                out.append(f"{phase}: the {name} run resolves {fast} < {slow}, the other has {slow} faster")
    return out


def answer_of(run: Path) -> answer.Answer:
    """The report's answer for one run."""
    df, _ = data.combine(data.read_runs([run]))
    found = answer.build(df)
    if found is None:
        raise SystemExit(f"{run}: no speed records to rank")
    return found


BIG_GAP = 1.25  # adjacent gaps at least this wide should be resolved
AGREE = 0.10  # ratios to mlp-iso of two runs agree when within this of each other


def resolving_power(found: answer.Answer) -> tuple[int, int]:
    """(resolved, all) adjacent gaps of at least BIG_GAP (the judge's ratio: paired where paired, else medians')."""
    big = [r for ranked in found.ranks.values() for r in ranked if r.gap is not None and r.gap.ratio >= BIG_GAP]
    return sum(bool(r.resolved) for r in big), len(big)


def ratio_agreement(first: answer.Answer, second: answer.Answer) -> tuple[int, int, float]:
    """(agreeing, all, largest difference) over (phase, impl) ratios to mlp-iso that both runs give."""
    a = {(p, r.impl): r.vs_iso for p, v in first.ranks.items() for r in v if r.vs_iso and r.impl != "mlp-iso"}
    b = {(p, r.impl): r.vs_iso for p, v in second.ranks.items() for r in v if r.vs_iso and r.impl != "mlp-iso"}
    diffs = [abs(b[k] / a[k] - 1) for k in a if k in b]
    return sum(d <= AGREE for d in diffs), len(diffs), max(diffs, default=0.0)


def main(argv: list[str] | None = None) -> int:
    """Compare the answers of two or more runs."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if len(args.runs) < 2:
        raise SystemExit("give at least two runs")
    found = [answer_of(r) for r in args.runs]
    if any(f.config != found[0].config for f in found):
        raise SystemExit(f"the runs answer for different configurations: {[f.config for f in found]}")
    for run, one in zip(args.runs, found):
        resolved, big = resolving_power(one)
        print(f"{run.name}: {len(resolved_pairs(one))} resolved pairs; gaps >= {BIG_GAP}x resolved: {resolved} of "
              f"{big}; smallest resolvable ~{one.resolvable:.2f}x; {'; '.join(one.verdict)}")  # fmt: skip
        for phase, ranked in one.ranks.items():
            marks = {True: " < ", False: " ~ ", None: ""}
            print(f"  {phase}: " + "".join(f"{r.impl}{marks[r.resolved]}" for r in ranked))
    bad_all = 0
    for (i, a), (j, b) in itertools.combinations(enumerate(found), 2):
        bad = contradictions(a, b)
        agree, total, worst = ratio_agreement(a, b)
        both = resolved_pairs(a) | resolved_pairs(b)
        print(f"{args.runs[i].name} vs {args.runs[j].name}: {len(both)} resolved pairs in either, {len(bad)} ordered "
              f"the other way; ratios to mlp-iso within {AGREE:.0%}: {agree} of {total} (largest difference "
              f"{worst:.0%})")  # fmt: skip
        for line in bad:
            print("  " + line)
        bad_all += len(bad)
    return 1 if bad_all else 0


if __name__ == "__main__":
    sys.exit(main())
