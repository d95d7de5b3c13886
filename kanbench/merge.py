"""`kanbench merge RUN... --out DIR`: join the shards of one suite into one run directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import results
from .errors import UsageError


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of `kanbench merge`."""
    parser.add_argument("runs", nargs="+", help="run directories (shards of one suite)")
    parser.add_argument("--out", required=True, help="the merged run directory (must not exist)")


def merge(run_dirs: list[Path], out: Path) -> int:
    """Merge shard runs into out; refuses shards of different suites or a cell measured twice. Returns records."""
    texts = {
        (Path(d) / results.SUITE).read_text(encoding="utf-8") if (Path(d) / results.SUITE).exists() else None
        for d in run_dirs
    }
    if None in texts:
        missing = next(d for d in run_dirs if not (Path(d) / results.SUITE).exists())
        raise UsageError(f"{missing}: {results.SUITE} missing; not a kanbench run directory")
    if len(texts) != 1:
        raise UsageError("the runs were made from different suite files; only shards of one suite merge")
    seen: dict[tuple, Path] = {}
    merged = []
    for d in run_dirs:
        for r in results.read_records(d):
            if r.key in seen:
                what = f"{r.impl} {r.phase}" + (f" ({r.profiled_phase})" if r.profiled_phase else "")
                raise UsageError(f"{what} (config {r.config_hash}) is in both {seen[r.key]} and {d}")
            seen[r.key] = Path(d)
            merged.append(r)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out {out} exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    suite_text = texts.pop()
    assert suite_text is not None  # a missing suite file was refused above
    (out / results.SUITE).write_text(suite_text, encoding="utf-8")
    environments = [results.read_environment(d) for d in run_dirs]
    merged_env = dict(environments[0])
    merged_env["merged_from"] = [{"run": str(d), "environment": e} for d, e in zip(run_dirs, environments)]
    results.write_environment(out, merged_env)
    for r in merged:
        r.run_id = out.name
        results.append(out, r)
    from . import pyperfio

    pyperfio.write(out, merged)
    return len(merged)


def command(args: argparse.Namespace) -> int:
    """Merge shards."""
    n = merge([Path(r) for r in args.runs], Path(args.out))
    print(f"merged {n} records from {len(args.runs)} runs into {args.out}")
    return 0
