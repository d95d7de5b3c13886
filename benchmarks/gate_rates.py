"""How often the latency gate cries wolf, and how often it catches a real slowdown, on this machine.

    python benchmarks/gate_rates.py --suite suites/ci.toml --rounds 12 --slowdown bspline=1.15
    python benchmarks/gate_rates.py --analyze results/runs/<stamp>-gate-rates     # re-analyse stored runs

A full gate (`kanbench regress`) takes minutes, so twenty independent gates per condition would take hours. Instead
this script measures a pool of rounds, each round three fresh `kanbench run` processes of the same code in turn:
A (the base), B (unchanged: no-change condition) and C (KANBENCH_SLOWDOWN, e.g. bspline=1.15: slowdown condition),
in the order A B C or A C B (alternating). One gate repetition draws `gate_rounds` rounds for the first measurement
and `gate_rounds` other rounds for the confirmation re-measure, and applies the gate exactly as kanbench regress
does (kanbench.analysis.compare with the default settings, then confirmation of the flagged cells): A against B for the
false-positive rate, A against C for the detection rate (a detection is a failed gate with a confirmed regression
of the slowed implementation). Repetitions share rounds, so they are not independent: the report gives the number
of disjoint repetitions the pool holds beside the rates, and Wilson 95% intervals computed on that smaller number.

The injected slowdown is a fixed amount of busy work inside each measured call, sized once on the suite's clock, and
on a noisy clock its measured effect can differ from the factor; so the report also gives the detection rate for an
exact slowdown: the unchanged runs B with the slowed implementation's times multiplied by the factor (real noise,
exact effect), as "detection_rate_exact_scaled". For suites of the instruction clock see count_gate.py.

With --gate-time it also times one real `kanbench regress --against HEAD` (REF exported with git archive,
ABAB rounds, confirmation if anything is flagged) on this checkout.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kanbench import results  # noqa: E402
from kanbench.analysis import compare, regress  # noqa: E402

ESTIMATORS = ("p10", "min", "p25", "median")


def snapshot(out: Path) -> Path:
    """A frozen copy of the working tree's code, so edits made while the pool runs cannot leak into it."""
    tree = out / "tree"
    if not tree.exists():
        skip = shutil.ignore_patterns(".git", ".venv", ".tox", "results", "reports", "__pycache__", "*.egg-info")
        shutil.copytree(REPO, tree, ignore=skip)
    return tree


def pool_dir(analyze: str | None, out: str | None, name: str) -> tuple[Path, bool]:
    """(the pool's directory, whether to measure it): the one to analyse, else --out or results/runs/<UTC>-name."""
    if analyze:
        return Path(analyze), False
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    path = Path(out) if out else REPO / "results" / "runs" / f"{stamp}-{name}"
    path.mkdir(parents=True, exist_ok=True)
    return path, True


def measure_pool(suite: Path, rounds: int, slowdown: str, out: Path, extra: list[str]) -> None:
    """rounds x (A, B, C) fresh `kanbench run` processes of a snapshot of the working tree into out/rN/{A,B,C}."""
    tree = snapshot(out)
    clean = {k: v for k, v in os.environ.items() if k != regress.SLOWDOWN_ENV}
    envs = {"A": clean, "B": clean, "C": {**clean, regress.SLOWDOWN_ENV: slowdown}}
    start = time.perf_counter()
    for r in range(rounds):
        order = ("A", "B", "C") if r % 2 == 0 else ("A", "C", "B")
        for name in order:
            run_dir = out / f"r{r:02d}" / name
            if (run_dir / results.RESULTS).exists():
                continue  # resumed pool
            outcome = regress.subprocess_runner(tree, suite, run_dir, envs[name], extra)
            if outcome.returncode != 0:
                raise SystemExit(f"kanbench run failed ({outcome.returncode}) in {run_dir}:\n{outcome.output_tail}")
            elapsed = time.perf_counter() - start
            print(f"round {r + 1}/{rounds} {name}: {outcome.seconds:.1f} s (total {elapsed / 60:.1f} min)", flush=True)
            (run_dir / "seconds.txt").write_text(f"{outcome.seconds:.2f}\n")


def _pool(frames: dict, rounds: tuple[int, ...], name: str):
    import pandas as pd

    frame = pd.concat([frames[(r, name)] for r in rounds], ignore_index=True)
    frame.attrs["environment"] = frames[(rounds[0], name)].attrs.get("environment", {})
    frame.attrs["run_dir"] = name
    return frame


def gate_outcome(frames: dict, first: tuple, confirm: tuple, cand: str, settings: compare.GateSettings) -> dict:
    """Apply the gate (first measurement, then confirmation of flagged cells) to pooled rounds of A and cand."""
    comp = compare.compare_runs(_pool(frames, first, "A"), _pool(frames, first, cand), settings)
    flagged = comp.regressions()
    confirmed: list = []
    if len(flagged):
        again = compare.compare_runs(_pool(frames, confirm, "A"), _pool(frames, confirm, cand), settings).regressions()
        again_keys = set(zip(again["config_hash"], again["phase"]))
        confirmed = [
            (h, p, i)
            for h, p, i in zip(flagged["config_hash"], flagged["phase"], flagged["impl"])
            if (h, p) in again_keys
        ]
    deterministic = len(comp.deterministic_failures()) + len(comp.broken)
    return {
        "flagged_impls": sorted(set(flagged["impl"])),
        "confirmed_impls": sorted({i for _, _, i in confirmed}),
        "failed_first": bool(len(flagged)) or deterministic > 0,
        "failed": bool(confirmed) or deterministic > 0,
        "latency_failed": bool(confirmed),
        "deterministic_failures": deterministic,
    }


def scaled(frame, impl: str, factor: float):
    """A copy of a run's frame with impl's times multiplied by factor: an exact slowdown on real noise."""
    out = frame.copy()
    rows = out["impl"] == impl
    for column in ("time_values", "time_process_medians"):
        out.loc[rows, column] = out.loc[rows, column].apply(lambda v: [x * factor for x in v] if v else v)
    out.attrs = dict(frame.attrs)
    return out


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def draws(n_rounds: int, gate_rounds: int, count: int, seed: int = 0) -> list[tuple[tuple, tuple]]:
    """`count` (first, confirm) pairs of disjoint round sets; all of them when there are fewer."""
    rounds = range(n_rounds)
    pairs = [
        (first, confirm)
        for first in itertools.combinations(rounds, gate_rounds)
        for confirm in itertools.combinations([r for r in rounds if r not in first], gate_rounds)
    ]
    random.Random(seed).shuffle(pairs)
    return pairs[:count]


def analyze(
    out: Path, slowed_impl: str, factor: float, gate_rounds: int, count: int, estimators: tuple[str, ...]
) -> dict:
    """False-positive and detection rates of the gate over repetitions drawn from the pool in out."""
    round_dirs = sorted(p for p in out.iterdir() if p.is_dir() and p.name[0] == "r" and p.name[1:].isdigit())
    complete = [d for d in round_dirs if all((d / n / results.RESULTS).exists() for n in "ABC")]
    frames = {(i, n): results.load(d / n) for i, d in enumerate(complete) for n in "ABC"}
    for i in range(len(complete)):  # S: the unchanged runs B with exactly `factor` more time in the slowed impl
        frames[(i, "S")] = scaled(frames[(i, "B")], slowed_impl, factor)
    seconds = [
        float((d / n / "seconds.txt").read_text()) for d in complete for n in "ABC" if (d / n / "seconds.txt").exists()
    ]
    reps = draws(len(complete), gate_rounds, count)
    disjoint = len(complete) // (2 * gate_rounds)
    report: dict = {
        "rounds": len(complete),
        "gate_rounds": gate_rounds,
        "repetitions": len(reps),
        "disjoint_repetitions": disjoint,
        "run_seconds_median": sorted(seconds)[len(seconds) // 2] if seconds else None,
        "environment": {k: frames[(0, "A")].attrs["environment"].get(k) for k in ("cpu_model", "cpu_count", "torch")},
        "estimators": {},
    }
    for estimator in estimators:
        settings = compare.GateSettings(estimator=estimator, relative=False)  # regress judges cell by cell
        rows = {"fp": [], "det": [], "exact": []}
        for first, confirm in reps:
            rows["fp"].append(gate_outcome(frames, first, confirm, "B", settings))
            rows["det"].append(gate_outcome(frames, first, confirm, "C", settings))
            rows["exact"].append(gate_outcome(frames, first, confirm, "S", settings))
        fp = sum(r["failed"] for r in rows["fp"])
        fp_first = sum(r["failed_first"] for r in rows["fp"])
        det = sum(r["failed"] and slowed_impl in r["confirmed_impls"] for r in rows["det"])
        det_first = sum(slowed_impl in r["flagged_impls"] for r in rows["det"])
        wrong = sum(bool(set(r["confirmed_impls"]) - {slowed_impl}) for r in rows["det"])
        exact = sum(r["failed"] and slowed_impl in r["confirmed_impls"] for r in rows["exact"])
        n = len(reps)
        report["estimators"][estimator] = {
            "false_positive_rate": fp / n,
            "false_positive_rate_latency_only": sum(r["latency_failed"] for r in rows["fp"]) / n,
            "false_positive_rate_without_confirmation": fp_first / n,
            "detection_rate_exact_scaled": exact / n,
            "detection_rate": det / n,
            "detection_rate_without_confirmation": det_first / n,
            "slowdown_runs_failing_other_impls": wrong / n,
            "deterministic_failures_in_no_change": sum(r["deterministic_failures"] > 0 for r in rows["fp"]),
            "fp_wilson95_on_disjoint": wilson(round(fp / n * disjoint), disjoint),
            "detection_wilson95_on_disjoint": wilson(round(det / n * disjoint), disjoint),
            "fp_impls": sorted({i for r in rows["fp"] for i in r["confirmed_impls"]}),
        }
        print(f"{estimator}: {json.dumps(report['estimators'][estimator])}", flush=True)
    return report


def time_gate(suite: Path, out: Path) -> dict:
    """Wall time and exit status of one real `kanbench regress --against HEAD` on this checkout."""
    gate_out = out / "gate-run"
    cmd = [
        sys.executable,
        "-m",
        "kanbench",
        "regress",
        "--against",
        "HEAD",
        "--suite",
        str(suite),
        "--out",
        str(gate_out),
    ]
    env = {k: v for k, v in os.environ.items() if k != regress.SLOWDOWN_ENV}
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
    return {"seconds": seconds, "exit_status": done.returncode}


def main(argv: list[str] | None = None) -> int:
    """Measure a pool (unless --analyze), then report the rates."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="suites/ci.toml", help="speed suite (default suites/ci.toml)")
    parser.add_argument("--rounds", type=int, default=12, help="rounds of (A, B, C) runs to measure (default 12)")
    parser.add_argument("--gate-rounds", type=int, default=regress.DEFAULT_ROUNDS, help="rounds per gate measurement")
    parser.add_argument("--slowdown", default="bspline=1.15", help="KANBENCH_SLOWDOWN of the C runs")
    parser.add_argument("--repetitions", type=int, default=40, help="gate repetitions drawn from the pool (>= 20)")
    parser.add_argument("--estimators", default=",".join(ESTIMATORS), help="latency estimators to evaluate")
    parser.add_argument("--analyze", metavar="DIR", help="only analyse a pool measured before")
    parser.add_argument("--gate-time", action="store_true", help="also time one real kanbench regress --against HEAD")
    parser.add_argument("--out", help="pool directory (default results/runs/<UTC time>-gate-rates)")
    parser.add_argument("--processes", type=int, help="override the suite's [timing].processes")
    parser.add_argument("--values", type=int, help="override the suite's [timing].values")
    args = parser.parse_args(argv)

    suite = (REPO / args.suite).resolve()
    slowed_impl, _, factor_text = args.slowdown.partition("=")
    factor = float(factor_text)
    out, fresh = pool_dir(args.analyze, args.out, "gate-rates")
    if fresh:
        extra = []
        if args.processes:
            extra += ["--processes", str(args.processes)]
        if args.values:
            extra += ["--values", str(args.values)]
        measure_pool(suite, args.rounds, args.slowdown, out, extra)
    report = analyze(out, slowed_impl, factor, args.gate_rounds, args.repetitions, tuple(args.estimators.split(",")))
    report["slowdown"] = args.slowdown
    report["load_average_at_end"] = os.getloadavg()
    if args.gate_time:
        report["gate"] = time_gate(suite, out)
    (out / "rates.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
