"""Do two runs give the report's answer the same ranking? Every resolved gap of one, checked against the other.

    python benchmarks/answer_repeat.py RUN_A RUN_B      # e.g. two `tox -e bench` runs minutes apart

For the configuration the answer picks (kanbench/report/answer.py), per phase: every pair of implementations the
judge resolves in one run (kanbench.judge: paired where measured together, else unpaired; the answer's "<" between
neighbours) must come in the same order, by median, in the other. Prints each run's answer, the resolved pairs,
and every pair that came out the other way; exit 1 when there is one.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kanbench import judge  # noqa: E402
from kanbench.report import answer, data  # noqa: E402


def resolved_pairs(found: answer.Answer) -> set[tuple[str, str, str]]:
    """(phase, faster, slower) for every pair of implementations the judge resolves (kanbench.judge)."""
    out = set()
    for phase, ranked in found.ranks.items():
        for a, b in itertools.combinations(ranked, 2):  # ranked fastest first: a.median <= b.median
            gap = judge.judge(a.sample, b.sample, found.margin) if a.sample and b.sample else None
            if gap is None and answer.apart(a, b, found.margin) or gap is not None and gap.resolved:
                fast, slow = (a, b) if gap is None or gap.ratio > 1 else (b, a)
                out.add((phase, fast.impl, slow.impl))
    return out


def order(found: answer.Answer) -> dict[tuple[str, str], float]:
    """(phase, impl) -> median, for checking an order."""
    return {(phase, r.impl): r.median for phase, ranked in found.ranks.items() for r in ranked}


def contradictions(first: answer.Answer, second: answer.Answer) -> list[str]:
    """The resolved pairs of either run that the other orders the other way."""
    out = []
    for one, other, name in ((first, second, "first"), (second, first, "second")):
        medians = order(other)
        for phase, fast, slow in sorted(resolved_pairs(one)):
            known = (phase, fast) in medians and (phase, slow) in medians
            if known and medians[(phase, fast)] > medians[(phase, slow)]:
                out.append(f"{phase}: the {name} run resolves {fast} < {slow}, the other has {slow} faster")
    return out


def answer_of(run: Path) -> answer.Answer:
    """The report's answer for one run."""
    df, _ = data.combine(data.read_runs([run]))
    found = answer.build(df)
    if found is None:
        raise SystemExit(f"{run}: no speed records to rank")
    return found


def main(argv: list[str] | None = None) -> int:
    """Compare the answers of two runs."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs=2, type=Path)
    args = parser.parse_args(argv)
    first, second = (answer_of(r) for r in args.runs)
    if first.config != second.config:
        raise SystemExit(f"the runs answer for different configurations: {first.config} and {second.config}")
    for run, found in zip(args.runs, (first, second)):
        print(f"{run.name}: {len(resolved_pairs(found))} resolved pairs; {'; '.join(found.verdict)}")
        for phase, ranked in found.ranks.items():
            marks = {True: " < ", False: " ~ ", None: ""}
            print(f"  {phase}: " + "".join(f"{r.impl}{marks[r.resolved]}" for r in ranked))
    bad = contradictions(first, second)
    both = resolved_pairs(first) | resolved_pairs(second)
    print(f"{len(both)} resolved pairs in either run, {len(bad)} ordered the other way in the other run")
    for line in bad:
        print("  " + line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
