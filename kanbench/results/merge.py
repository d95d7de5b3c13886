"""`kanbench merge RUN... --out DIR`: join the shards of one suite into one run directory.

Every input is read and checked in full before anything is written; the merged run is built in a temporary
directory beside --out and renamed into place, so a refused or failed merge leaves nothing behind. A shard set
must be whole (every K of N, each shard finished) unless --allow-partial.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import results
from ..errors import UsageError
from ..suite import parse_shard
from ..text import escape
from . import noise
from .record import Record

# environment.json run settings that every shard of one run shares (all but the shard itself)
SETTINGS = ("kind", "timing", "profile", "workers", "phases", "smoke", "only", "slowdown", "data", "traces")


@dataclass
class Input:
    """One run to merge, read and checked."""

    path: Path
    suite_text: str
    records: list[Record]
    environment: dict
    planned: dict[tuple, str] | None


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of `kanbench merge`."""
    parser.add_argument("runs", nargs="+", help="run directories (shards of one suite)")
    parser.add_argument("--out", required=True, help="the merged run directory (must not exist, or be empty)")
    parser.add_argument(
        "--allow-partial", action="store_true", help="merge even if shards are missing or unfinished (says which)"
    )


def read_input(path: Path) -> Input:
    """A run directory, fully validated (records, environment, suite file, plan)."""
    environment = results.read_environment(path)
    # a shard may have had nothing to measure; any other empty run is an error, as for every reader
    records = results.read_records(path, allow_empty=bool(environment.get("run", {}).get("shard")))
    suite_path = path / results.SUITE
    if not suite_path.is_file():
        raise UsageError(f"{suite_path}: missing; not a kanbench run directory")
    try:
        text = suite_path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{suite_path}: not UTF-8 (byte {exc.start + 1})") from None
    return Input(path, text, records, environment, results.read_planned(path))


def _describe(keys: list[tuple], labels: dict[tuple, str]) -> str:
    shown = [f"{labels.get(k, k[0])} {k[2] or k[1]}" for k in keys[:5]]
    return ", ".join(shown) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


def gaps(inputs: list[Input]) -> list[str]:
    """What keeps the inputs from being a whole run: missing shards, shards that did not finish."""
    problems = []
    shards = [i.environment.get("run", {}).get("shard") for i in inputs]
    if any(shards):
        if not all(shards):
            whole = next(i.path for i, s in zip(inputs, shards) if not s)
            problems.append(f"{whole} is not a shard, the others are")
        else:
            parsed = [parse_shard(s) for s in shards]
            totals = {n for _, n in parsed}
            if len(totals) > 1:
                problems.append(f"shards of different splits: {', '.join(sorted(set(shards)))}")
            else:
                n = totals.pop()
                missing = sorted(set(range(1, n + 1)) - {k for k, _ in parsed})
                if missing:
                    problems.append("shard(s) " + ", ".join(f"{k}/{n}" for k in missing) + " missing")
    for item in inputs:
        if item.planned is None:
            continue  # a run from before planned.json: nothing to check it against
        present = {r.key for r in item.records}
        absent = [k for k in item.planned if k not in present]
        if absent:
            problems.append(
                f"{item.path} lacks {len(absent)} of its {len(item.planned)} planned records "
                f"({_describe(absent, item.planned)}); finish it with kanbench run ... --out {item.path} --resume"
            )
    return problems


def merge(run_dirs: list[Path], out: Path, allow_partial: bool = False) -> int:
    """Merge shard runs into out; refuses mismatched, overlapping or (unless allow_partial) incomplete shards."""
    inputs = [read_input(Path(d)) for d in run_dirs]
    if len({i.suite_text for i in inputs}) != 1:
        raise UsageError("the runs were made from different suite files; only shards of one suite merge")
    seen: dict[tuple, Path] = {}
    for item in inputs:
        for r in item.records:
            if r.key in seen:
                what = f"{r.impl} {r.phase}" + (f" ({r.profiled_phase})" if r.profiled_phase else "")
                raise UsageError(f"{what} (config {r.config_hash}) is in both {seen[r.key]} and {item.path}")
            seen[r.key] = item.path
    settled = [{k: v for k, v in i.environment.get("run", {}).items() if k in SETTINGS} for i in inputs]
    differing = sorted(k for k in SETTINGS if len({repr(s.get(k)) for s in settled}) > 1)
    if differing:
        detail = "; ".join(f"{k}: " + ", ".join(f"{i.path} {s.get(k)!r}" for i, s in zip(inputs, settled))
                           for k in differing)  # fmt: skip
        raise UsageError(
            f"the runs were measured with different settings, so they are not shards of one run ({detail})"
        )
    if not any(i.records for i in inputs):
        raise UsageError("the runs hold no records at all: nothing to merge")
    problems = gaps(inputs)
    if problems and not allow_partial:
        raise UsageError("not a whole run: " + "; ".join(problems) + " (or merge anyway with --allow-partial)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--out {out} exists and is not an empty directory")
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # as mkdir would make it (mkdtemp makes 0700)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create: {exc.strerror or exc}") from None
    try:
        _write(staging, out.name, inputs, problems)
        if out.exists():
            out.rmdir()
        os.rename(staging, out)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise UsageError(f"--out {out}: cannot write the merged run: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return len(seen)


def _write(staging: Path, run_id: str, inputs: list[Input], problems: list[str]) -> None:
    from . import pyperfio

    (staging / results.SUITE).write_text(inputs[0].suite_text, encoding="utf-8")
    merged_env = dict(inputs[0].environment)
    merged_env["run"] = dict(merged_env.get("run", {}), shard=None, complete=not problems)
    merged_env["merged_from"] = [{"run": str(i.path), "environment": i.environment} for i in inputs]
    if problems:
        merged_env["merge_gaps"] = problems
    results.write_environment(staging, merged_env)
    planned = {k: v for i in inputs for k, v in (i.planned or {}).items()}
    if planned:
        results.write_json(staging / results.PLANNED, {"records": [[*k, v] for k, v in planned.items()]})
    merged = [r for item in inputs for r in item.records]
    for r in merged:
        r.run_id = run_id
        results.append(staging, r)
    for item in inputs:
        for entry in noise.read(item.path):
            noise.append(staging, entry)
    pyperfio.write(staging, merged)


def command(args: argparse.Namespace) -> int:
    """Merge shards."""
    n = merge([Path(r) for r in args.runs], Path(args.out), args.allow_partial)
    print(f"merged {n} records from {len(args.runs)} runs into {escape.terminal(args.out)}")
    return 0
