"""pyperf.json: the ok timing records of a run as a pyperf BenchmarkSuite, one pyperf Run per worker process."""

from __future__ import annotations

from pathlib import Path

from . import PYPERF
from .record import Record


def benchmark_name(r: Record) -> str:
    """A unique, readable pyperf benchmark name for a record."""
    widths = "x".join(map(str, r.widths))
    opts = "".join(f" {k}={v}" for k, v in sorted(r.options.items()))
    return f"{r.impl} {r.phase} {widths} G{r.grid_size} k{r.spline_order} b{r.batch_size} {r.device} {r.dtype}{opts}"


def write(run_dir: str | Path, records: list[Record]) -> Path | None:
    """Write run_dir/pyperf.json (python -m pyperf stats / compare_to read it); None if nothing was timed."""
    import pyperf

    benchmarks = []
    names: set[str] = set()
    for r in records:
        if r.status != "ok" or not r.time_s:
            continue
        name = benchmark_name(r)
        if name in names:  # cells that differ only in what the name leaves out (a hand-edited or merged run)
            name += f" [{r.config_hash}]"
        names.add(name)
        values, per = r.time_s["values"], max(len(r.time_s.get("process_medians") or [1]), 1)
        size = len(values) // per
        runs = [
            pyperf.Run(
                values[i * size : (i + 1) * size],
                metadata={"name": name, "loops": r.time_s["loops"], "unit": "second"},
                collect_metadata=False,
            )
            for i in range(per)
        ]
        benchmarks.append(pyperf.Benchmark(runs))
    if not benchmarks:
        return None
    path = Path(run_dir) / PYPERF
    tmp = path.with_name(f".{PYPERF}.tmp")
    if tmp.exists():
        tmp.unlink()  # pyperf refuses to overwrite
    pyperf.BenchmarkSuite(benchmarks).dump(str(tmp))
    tmp.replace(path)
    return path
