"""Repeatability: run a suite twice back to back and compare the medians cell by cell.

    python benchmarks/repeatability.py [--suite suites/quick.toml] [RUN_A RUN_B]

Target (issue 3): medians within 3% of each other for at least 90% of the cells whose median is >= 50 us.
Also prints the same share for the minimum, the estimator the regression gate leans on.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_suite(suite: str, out: Path) -> float:
    """Run the suite into out; return the wall time in seconds."""
    start = time.monotonic()
    cmd = [sys.executable, "-m", "kanbench", "run", suite, "--out", str(out), "--quiet"]
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", help="two existing run directories (default: make two)")
    parser.add_argument("--suite", default="suites/quick.toml")
    parser.add_argument("--out", default="results/runs", help="where new runs go")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from kanbench import results

    if args.runs:
        a, b = map(Path, args.runs)
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        a, b = Path(args.out) / f"{stamp}-repeat-a", Path(args.out) / f"{stamp}-repeat-b"
        for run in (a, b):
            print(f"{run}: {run_suite(args.suite, run):.0f} s wall")
    ra = {(r.config_hash, r.phase): r for r in results.read_records(a) if r.status == "ok"}
    rb = {(r.config_hash, r.phase): r for r in results.read_records(b) if r.status == "ok"}
    for estimator in ("median", "min"):
        diffs = []
        for key, x in ra.items():
            y = rb.get(key)
            if y is None or min(x.time_s["median"], y.time_s["median"]) < 50e-6:
                continue
            diffs.append(abs(y.time_s[estimator] / x.time_s[estimator] - 1))
        within = sum(d <= 0.03 for d in diffs)
        share = within / len(diffs) if diffs else float("nan")
        print(
            f"{estimator:6s}: {within}/{len(diffs)} cells >= 50 us within 3% ({share:.0%}); "
            f"|diff| median {statistics.median(diffs):.1%}, max {max(diffs):.1%}"
        )

    # The same comparison for each cell's time relative to the mlp of its group and phase, measured in the same
    # run: drift that moves a whole run cancels in the ratio.
    def ratios(records: dict) -> dict:
        mlp = {(r.phase, tuple(r.widths), r.grid_size, r.batch_size, r.device, r.dtype): r.time_s["median"]
               for r in records.values() if r.impl == "mlp"}  # fmt: skip
        out = {}
        for key, r in records.items():
            ref = mlp.get((r.phase, tuple(r.widths), r.grid_size, r.batch_size, r.device, r.dtype))
            if ref and r.impl != "mlp" and r.time_s["median"] >= 50e-6:
                out[key] = r.time_s["median"] / ref
        return out

    qa, qb = ratios(ra), ratios(rb)
    diffs = [abs(qb[k] / qa[k] - 1) for k in qa if k in qb]
    if diffs:
        within = sum(d <= 0.03 for d in diffs)
        print(
            f"ratio to the same run's mlp (median): {within}/{len(diffs)} within 3% ({within / len(diffs):.0%}); "
            f"|diff| median {statistics.median(diffs):.1%}, max {max(diffs):.1%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
