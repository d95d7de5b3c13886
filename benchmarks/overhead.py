"""Harness overhead: time an identity module through `kanbench run` and print seconds per call.

    python benchmarks/overhead.py [--out DIR]

Target (issue 3): <= 2 us per call on CPU for forward and forward_inference.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = """
[suite]
name = "overhead"
kind = "speed"
implementations = ["benchmarks.identity:adapter"]
phases = ["forward", "forward_inference"]

[axes]
widths = [[64, 64]]
grid_size = [5]
batch_size = [8]

[timing]
warmup = 10
min_time = 0.05
values = 10
processes = 2
threads = 1
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="run directory (default: a temporary one)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from benchmarks import run_suite_text
    from kanbench import results

    with tempfile.TemporaryDirectory() as tmp:
        out = run_suite_text(SUITE, "overhead", tmp, args.out)
        worst = 0.0
        for r in results.read_records(out):
            t = r.time_s
            print(f"{r.phase:18s} median {t['median'] * 1e6:6.3f} us  min {t['min'] * 1e6:6.3f} us  "
                  f"max {t['max'] * 1e6:6.3f} us  loops {t['loops']}")  # fmt: skip
            worst = max(worst, t["median"])
    verdict = "meets" if worst <= 2e-6 else "MISSES"
    print(f"worst median {worst * 1e6:.3f} us per call: {verdict} the 2 us target")
    return 0 if worst <= 2e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
