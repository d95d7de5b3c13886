"""The instruction-count gate on this machine: repeatability, false positives and detection (issue 17's targets).

    python benchmarks/count_gate.py --unchanged 10 --slowed 5 --slowdown bspline=1.03 --out /tmp/count-gate
    python benchmarks/count_gate.py --analyze /tmp/count-gate

Runs suites/ci.toml (clock = "instructions") as fresh `kanbench run` processes of a snapshot of the working tree:
`--unchanged` runs of the code as it is (A) and `--slowed` runs with KANBENCH_SLOWDOWN (C), `--jobs` at a time
(counts do not care what else the machine does). Then every pair of A runs is one gate of unchanged code (false
positive: the gate fails), every (A, C) pair one gate of the slowed code (detection: the gate fails with a
regression of the slowed implementation), both with kanbench.analysis.compare's default settings, as `kanbench regress`
applies them to instruction counts. Pairs share runs, so they are not independent; the report says how many runs
they come from. Repeatability: per cell, the largest ratio between the medians of any two A runs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.gate_rates import snapshot  # noqa: E402
from kanbench import results  # noqa: E402
from kanbench.analysis import compare, regress  # noqa: E402


def measure(out: Path, suite: Path, unchanged: int, slowed: int, slowdown: str, jobs: int) -> None:
    """The runs A00.. and C00.. into out (resumable: runs already there are kept)."""
    tree = snapshot(out)
    clean = {k: v for k, v in os.environ.items() if k != regress.SLOWDOWN_ENV}
    plan = [(f"A{i:02d}", clean) for i in range(unchanged)]
    plan += [(f"C{i:02d}", {**clean, regress.SLOWDOWN_ENV: slowdown}) for i in range(slowed)]
    start = time.perf_counter()

    def one(name: str, env: dict) -> None:
        run_dir = out / name
        if (run_dir / results.RESULTS).exists():
            return
        outcome = regress.subprocess_runner(tree, tree / suite.relative_to(REPO), run_dir, env, [])
        if outcome.returncode != 0:
            raise SystemExit(f"kanbench run failed ({outcome.returncode}) in {run_dir}:\n{outcome.output_tail}")
        (run_dir / "seconds.txt").write_text(f"{outcome.seconds:.2f}\n")
        print(f"{name}: {outcome.seconds:.0f} s (total {(time.perf_counter() - start) / 60:.1f} min)", flush=True)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(lambda item: one(*item), plan))


def analyze(out: Path, slowed_impl: str) -> dict:
    """False positives, detections and repeatability over the stored runs."""
    runs = sorted(p for p in out.iterdir() if (p / results.RESULTS).exists())
    frames = {p.name: results.load(p) for p in runs}
    a = [n for n in frames if n.startswith("A")]
    c = [n for n in frames if n.startswith("C")]
    false_pos = sum(compare.compare_runs(frames[x], frames[y]).failed for x, y in itertools.combinations(a, 2))
    detected = 0
    for x, y in itertools.product(a, c):
        comp = compare.compare_runs(frames[x], frames[y])
        detected += comp.failed and slowed_impl in set(comp.regressions()["impl"])
    medians: dict = {}
    for name in a:
        for row in frames[name].to_dict("records"):
            medians.setdefault((row["impl"], row["widths_label"], row["phase"]), []).append(row["instructions_median"])
    spread = {" ".join(k): max(v) / min(v) - 1 for k, v in medians.items()}
    seconds = [float((out / n / "seconds.txt").read_text()) for n in frames if (out / n / "seconds.txt").exists()]
    ratio = {}  # the measured effect of the injection on the slowed implementation's cells
    for key in medians:
        if key[0] == slowed_impl and c:
            cmed = [r["instructions_median"] for n in c for r in frames[n].to_dict("records")
                    if (r["impl"], r["widths_label"], r["phase"]) == key]  # fmt: skip
            ratio[" ".join(key)] = sorted(cmed)[len(cmed) // 2] / sorted(medians[key])[len(medians[key]) // 2]
    return {
        "unchanged_runs": len(a), "slowed_runs": len(c), "unchanged_pairs": len(a) * (len(a) - 1) // 2,
        "false_positives": int(false_pos), "slowed_pairs": len(a) * len(c), "detections": int(detected),
        "cells": len(spread), "cells_within_1pct": sum(v <= 0.01 for v in spread.values()),
        "max_spread": max(spread.values(), default=None), "spread": spread, "injected_effect": ratio,
        "run_seconds_median": sorted(seconds)[len(seconds) // 2] if seconds else None,
        "threshold": compare.GateSettings().count_threshold,
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default=str(REPO / "suites" / "ci.toml"))
    parser.add_argument("--unchanged", type=int, default=10)
    parser.add_argument("--slowed", type=int, default=5)
    parser.add_argument("--slowdown", default="bspline=1.03")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--analyze", type=Path, help="only analyse the runs stored there")
    args = parser.parse_args()
    out = args.analyze or args.out
    if out is None:
        parser.error("give --out DIR (or --analyze DIR)")
    if not args.analyze:
        out.mkdir(parents=True, exist_ok=True)
        measure(out, Path(args.suite).resolve(), args.unchanged, args.slowed, args.slowdown, args.jobs)
    summary = analyze(out, args.slowdown.split("=")[0])
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "spread"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
