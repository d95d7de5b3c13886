"""Does `kanbench compare` cry wolf? Its false-positive rate over back-to-back runs of one commit, and whether a
real 30% slowdown still fails, on this machine.

    python benchmarks/compare_rates.py                      # measure the default sequence, then analyse it
    python benchmarks/compare_rates.py --analyze DIR        # re-analyse a sequence measured before

A sequence of fresh `kanbench run` processes of one frozen copy of the working tree (gate_rates.snapshot), one
after another, each of the same suite (quick.toml by default): --pattern says which are unchanged (U) and which
run with KANBENCH_SLOWDOWN (S, e.g. bspline=1.3: a fixed amount of busy work added inside each measured call).
The default, 21 U then 5 x "SU", gives 20 back-to-back pairs of unchanged runs and 10 adjacent (U, S) pairs.

False positives: every adjacent pair of unchanged runs compared as `kanbench compare EARLIER LATER` does with its
default settings; a pair counts when compare fails (exit 1). Adjacent pairs share runs, so they are not
independent: the report gives the disjoint pairs beside the rate and a Wilson 95% interval on that number.
Detection: each adjacent (U, S) pair, the unchanged run as the base, must fail with the slowed implementation among
the regressions; and, for an exact effect on real noise, every unchanged pair with the later run's slowed
implementation's times multiplied by the factor ("detection_rate_exact_scaled"), and with each implementation in
turn so multiplied ("..._every_impl").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.gate_rates import pool_dir, scaled, snapshot, wilson  # noqa: E402
from kanbench import results  # noqa: E402
from kanbench.analysis import compare, regress  # noqa: E402

DEFAULT_PATTERN = "U" * 21 + "SU" * 5


def measure(suite: Path, pattern: str, slowdown: str, out: Path) -> None:
    """One fresh run per letter of pattern into out/NN-U or out/NN-S (a sequence already there is resumed)."""
    tree = snapshot(out)
    clean = {k: v for k, v in os.environ.items() if k != regress.SLOWDOWN_ENV}
    start = time.perf_counter()
    for i, letter in enumerate(pattern):
        run_dir = out / f"{i:02d}-{letter}"
        if (run_dir / results.RESULTS).exists():
            continue
        env = {**clean, regress.SLOWDOWN_ENV: slowdown} if letter == "S" else clean
        outcome = regress.subprocess_runner(tree, suite, run_dir, env, [])
        if outcome.returncode != 0:
            raise SystemExit(f"kanbench run failed ({outcome.returncode}) in {run_dir}:\n{outcome.output_tail}")
        (run_dir / "seconds.txt").write_text(f"{outcome.seconds:.2f}\n")
        total = (time.perf_counter() - start) / 60
        print(f"run {i + 1}/{len(pattern)} {letter}: {outcome.seconds:.1f} s (total {total:.1f} min)", flush=True)


def slower(comp: compare.Comparison) -> set[str]:
    """The implementations compare found slower: as a whole (relative judging), or in a regressed cell."""
    return set(comp.implementation_regressions().get("implementation", [])) | set(comp.regressions()["impl"])


def judged(base, cand, settings: compare.GateSettings) -> compare.Comparison:
    """What `kanbench compare BASE CAND` decides with these settings."""
    return compare.compare_runs(base, cand, settings)


def analyze(out: Path, slowed_impl: str, factor: float, settings: compare.GateSettings) -> dict:
    """False-positive and detection rates of compare over the sequence in out."""
    runs = sorted(p for p in out.iterdir() if p.is_dir() and (p / results.RESULTS).exists() and p.name[:2].isdigit())
    letters = [p.name.split("-", 1)[1] for p in runs]
    frames = [results.load(p) for p in runs]
    unchanged = [(i, i + 1) for i in range(len(runs) - 1) if letters[i] == letters[i + 1] == "U"]
    slowed = [(i, j) for i in range(len(runs)) for j in (i - 1, i + 1)
              if 0 <= j < len(runs) and letters[i] == "U" and letters[j] == "S"]  # fmt: skip
    fp_cells, fp_pairs = [], 0
    for i, j in unchanged:
        comp = judged(frames[i], frames[j], settings)
        fp_pairs += comp.failed
        fp_cells.append(len(comp.regressions()) + len(comp.deterministic_failures()) + len(comp.broken))
    detected, wrong = 0, 0
    for i, j in slowed:
        comp = judged(frames[i], frames[j], settings)
        impls = slower(comp)
        detected += comp.failed and slowed_impl in impls
        wrong += bool(impls - {slowed_impl})
    exact = 0
    for i, j in unchanged:
        comp = judged(frames[i], scaled(frames[j], slowed_impl, factor), settings)
        exact += comp.failed and slowed_impl in slower(comp)
    every, tries = 0, 0  # each implementation slowed in turn, exactly
    for i, j in unchanged:
        for impl in sorted(set(frames[j]["impl"])):
            comp = judged(frames[i], scaled(frames[j], impl, factor), settings)
            every += comp.failed and impl in slower(comp)
            tries += 1
    seconds = [float((p / "seconds.txt").read_text()) for p in runs if (p / "seconds.txt").exists()]
    disjoint = len(unchanged) // 2
    env = frames[0].attrs["environment"]
    return {
        "runs": len(runs),
        "unchanged_pairs": len(unchanged),
        "disjoint_unchanged_pairs": disjoint,
        "false_positive_rate": fp_pairs / max(len(unchanged), 1),
        "false_positive_wilson95_on_disjoint": wilson(round(fp_pairs / max(len(unchanged), 1) * disjoint), disjoint),
        "regressions_per_unchanged_pair": fp_cells,
        "slowed_pairs": len(slowed),
        "detection_rate": detected / max(len(slowed), 1),
        "slowed_pairs_failing_other_impls": wrong,
        "detection_rate_exact_scaled": exact / max(len(unchanged), 1),
        "detection_rate_exact_scaled_every_impl": every / max(tries, 1),
        "slowdown": f"{slowed_impl}={factor}",
        "settings": {k: getattr(settings, k) for k in ("threshold", "alpha", "estimator")},
        "run_seconds_median": sorted(seconds)[len(seconds) // 2] if seconds else None,
        "environment": {k: env.get(k) for k in ("cpu_model", "cpu_count", "torch")},
    }


def main(argv: list[str] | None = None) -> int:
    """Measure a sequence (unless --analyze), then report the rates."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="suites/quick.toml", help="speed suite (default suites/quick.toml)")
    parser.add_argument("--pattern", default=DEFAULT_PATTERN, help="U (unchanged) and S (slowed) runs, in order")
    parser.add_argument("--slowdown", default="bspline=1.3", help="KANBENCH_SLOWDOWN of the S runs")
    parser.add_argument("--analyze", metavar="DIR", help="only analyse a sequence measured before")
    parser.add_argument("--out", help="sequence directory (default results/runs/<UTC time>-compare-rates)")
    args = parser.parse_args(argv)
    if set(args.pattern) - {"U", "S"}:
        parser.error(f"--pattern {args.pattern!r}: only U (unchanged) and S (slowed) runs")
    slowed_impl, _, factor_text = args.slowdown.partition("=")
    out, fresh = pool_dir(args.analyze, args.out, "compare-rates")
    if fresh:
        measure((REPO / args.suite).resolve(), args.pattern, args.slowdown, out)
    report = analyze(out, slowed_impl, float(factor_text), compare.GateSettings())
    (out / "rates.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
