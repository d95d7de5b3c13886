"""What `--executor ray` costs against the local executor: start-up, per task, and a whole suite's wall time.

    python benchmarks/ray_overhead.py [--suite suites/quick.toml] [--tasks 5]

1. Ray's start-up: ray.init of a local Ray (the CPUs of this machine), then ray.shutdown.
2. Per task: an empty group task (kanbench.run.ray_executor.measure_group with no requests: the node's fingerprint,
   the group's worker processes started and stopped), --tasks of them one after another, on a warm local Ray.
3. The suite, once with each executor, fresh `kanbench run` processes, one after the other (--quiet). With more
   than one CPU a local Ray measures groups side by side, which on a small machine also makes them contend.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def timed_run(suite: str, out: Path, extra: list[str]) -> float:
    """Wall seconds of one `kanbench run SUITE --quiet` into out."""
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "kanbench", "run", suite, "--out", str(out), "--quiet", *extra]
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Measure and print the three costs as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="suites/quick.toml")
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--processes", type=int, default=2, help="worker processes per empty task (quick.toml: 2)")
    args = parser.parse_args(argv)
    import ray

    from kanbench.run import ray_executor

    start = time.perf_counter()
    ray.init(include_dashboard=False, logging_level="WARNING")
    init_s = time.perf_counter() - start
    task = ray.remote(ray_executor.measure_group)
    ray.get(task.remote("kanbench.measure.worker:handle", 1, 1, None, "cpu", []))  # the Ray worker's own first start
    per_task = []
    for _ in range(args.tasks):
        start = time.perf_counter()
        ray.get(task.remote("kanbench.measure.worker:handle", args.processes, 1, None, "cpu", []))
        per_task.append(time.perf_counter() - start)
    start = time.perf_counter()
    ray.shutdown()
    shutdown_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as scratch:
        local = timed_run(args.suite, Path(scratch) / "local", [])
        on_ray = timed_run(args.suite, Path(scratch) / "ray", ["--executor", "ray"])
    report = {
        "ray_init_s": round(init_s, 2),
        "ray_shutdown_s": round(shutdown_s, 2),
        "empty_task_s": {
            "median": round(statistics.median(per_task), 2),
            "all": [round(x, 2) for x in per_task],
            "processes": args.processes,
        },  # fmt: skip
        "suite": args.suite,
        "local_executor_s": round(local, 1),
        "ray_executor_s": round(on_ray, 1),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
