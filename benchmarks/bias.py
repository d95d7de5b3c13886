"""Do interleaved rounds bias the ratios? Interleaved ratios against torch.utils.benchmark in one quiet process.

    python benchmarks/bias.py [--out DIR] [--impls bspline-fast,fastkan,rswaf,chebykan,mlp-iso,mlp]

At three shapes (100 -> 100 batch 8, 784 -> 64 batch 64, 256 -> 256 batch 1024), one `kanbench run` measures the
implementations' forward and train step interleaved (the default suite's timing), giving each implementation's
paired ratio to mlp (analysis/judge.py). Then this process (one torch thread) builds the same workloads (same seeds,
kanbench.measure.worker.build_workload) and times each with torch.utils.benchmark.Timer.blocked_autorange, one
implementation after the other: the blocked ratio to mlp. Prints both ratios and their difference per
(shape, implementation, phase); the target is agreement within 10%. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SHAPES = (([100, 100], 8), ([784, 64], 64), ([256, 256], 1024))
PHASES = ("forward", "train_step")
REFERENCE = "mlp"

SUITE = """
[suite]
name = "bias"
kind = "speed"
implementations = {impls}
phases = ["forward", "train_step"]

[axes]
widths = [{widths}]
grid_size = [5]
batch_size = [{batch}]
device = ["cpu"]

[timing]
warmup = 3
min_time = 0.01
values = 4
processes = 3
threads = 1
"""


def interleaved(run_dir: Path) -> dict[tuple[str, str], float]:
    """(impl, phase) -> paired ratio to REFERENCE in one run."""
    from kanbench.analysis import judge
    from kanbench.report import answer, data

    df, _ = data.combine(data.read_runs([run_dir]))
    rows = data.timing_rows(df)
    out = {}
    for phase in PHASES:
        mine = {r["impl"]: answer.sample(r) for r in rows[rows["phase"] == phase].to_dict("records")}
        for impl, s in mine.items():
            out[(impl, phase)] = judge.judge(mine[REFERENCE], s).ratio
    return out


def blocked(widths: list[int], batch: int, impls: list[str], min_run_time: float) -> dict[tuple[str, str], float]:
    """(impl, phase) -> blocked_autorange median ratio to REFERENCE, each workload timed in turn in this process."""
    import torch
    from torch.utils.benchmark import Timer

    from kanbench.measure import phases, worker

    torch.set_num_threads(1)
    medians = {}
    for impl in impls:
        cell = {"impl": impl, "widths": widths, "grid_size": 5, "spline_order": 3, "batch_size": batch,
                "device": "cpu", "dtype": "float32", "options": {}}  # fmt: skip
        w, _ = worker.build_workload(cell, f"bias-{impl}-{widths}-{batch}")
        for phase in PHASES:
            call = phases.forward_call(w) if phase == "forward" else phases.train_step_call(w)
            for _ in range(3):
                call()
            m = Timer(stmt="call()", globals={"call": call}, num_threads=1).blocked_autorange(min_run_time=min_run_time)
            medians[(impl, phase)] = m.median
    return {k: v / medians[(REFERENCE, k[1])] for k, v in medians.items()}


def main(argv: list[str] | None = None) -> int:
    """Measure both ways at every shape and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "runs" / f"bias-{int(time.time())}")
    parser.add_argument("--impls", default="bspline-fast,fastkan,rswaf,chebykan,mlp-iso,mlp")
    parser.add_argument("--min-run-time", type=float, default=1.0, help="blocked_autorange's min_run_time (s)")
    args = parser.parse_args(argv)
    impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    if REFERENCE not in impls:
        impls.append(REFERENCE)
    args.out.mkdir(parents=True, exist_ok=True)
    within, total = 0, 0
    for widths, batch in SHAPES:
        label = f"{'x'.join(map(str, widths))}-b{batch}"
        suite = args.out / f"{label}.toml"
        suite.write_text(SUITE.format(impls=impls, widths=widths, batch=batch).replace("'", '"'))
        run_dir = args.out / label
        if not (run_dir / "results.jsonl").exists():
            subprocess.run([sys.executable, "-m", "kanbench", "run", str(suite), "--out", str(run_dir), "--quiet"],
                           cwd=REPO, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        paired = interleaved(run_dir)
        plain = blocked(widths, batch, impls, args.min_run_time)
        print(f"{label}:")
        for (impl, phase), ratio in sorted(paired.items()):
            if impl == REFERENCE:
                continue
            other = plain[(impl, phase)]
            diff = ratio / other - 1
            total += 1
            within += abs(diff) <= 0.10
            print(f"  {impl:<14} {phase:<11} interleaved x{ratio:7.3f}  blocked x{other:7.3f}  {diff:+.1%}")
    print(f"{within} of {total} ratios agree within 10%")
    return 0 if total and within == total else 1


if __name__ == "__main__":
    sys.exit(main())
