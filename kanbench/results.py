"""The results store: run directories of results.jsonl + environment.json + suite.toml. No torch here.

`kanbench.results.load("results/runs/20261129-140000-quick")` gives a DataFrame with one row per Record.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from .record import Record

RESULTS = "results.jsonl"
ENVIRONMENT = "environment.json"
SUITE = "suite.toml"
PYPERF = "pyperf.json"


class ResultsError(ValueError):
    """A run directory or results file that cannot be read; the message names the file and line."""


def new_run_dir(root: str | os.PathLike, suite_name: str) -> Path:
    """Create results/runs/<UTC timestamp>-<suite>/ (suffixed if it exists) and return it."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1000):
        path = root / (f"{stamp}-{suite_name}" + (f"-{n}" if n else ""))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise ResultsError(f"could not create a new run directory under {root}")


def append(run_dir: str | os.PathLike, record: Record) -> None:
    """Append one record as one line with a single O_APPEND write, so a killed run leaves whole lines only."""
    line = (json.dumps(record.to_dict(), separators=(",", ":"), allow_nan=True) + "\n").encode()
    fd = os.open(Path(run_dir) / RESULTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def repair_tail(run_dir: str | os.PathLike) -> int:
    """Drop a trailing partial line left by a crash; return the bytes removed."""
    path = Path(run_dir) / RESULTS
    if not path.exists():
        return 0
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with open(path, "r+b") as f:
        f.truncate(keep)
    return len(data) - keep


def read_records(run_dir: str | os.PathLike, allow_partial_tail: bool = False) -> list[Record]:
    """Every record of a run; a malformed line raises ResultsError with the file and line number."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ResultsError(f"{run_dir}: not a run directory")
    path = run_dir / RESULTS
    if not path.exists():
        raise ResultsError(f"{path}: missing (a run directory holds {RESULTS}, {ENVIRONMENT} and {SUITE})")
    records = []
    lines = path.read_text(encoding="utf-8").split("\n")
    tail = lines.pop()  # "" when the file ends with a newline
    if tail and not allow_partial_tail:
        raise ResultsError(f"{path}:{len(lines) + 1}: incomplete last line (an interrupted run? use --resume)")
    seen: dict[tuple, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = Record.from_dict(json.loads(line))
        except (json.JSONDecodeError, ValueError, TypeError) as exc:
            raise ResultsError(f"{path}:{number}: malformed record: {exc}") from None
        if record.key in seen:
            raise ResultsError(
                f"{path}:{number}: duplicate record: {record.impl} {record.phase} (config "
                f"{record.config_hash}) is line {seen[record.key]} too; two runs wrote one directory?"
            )
        seen[record.key] = number
        records.append(record)
    return records


def read_environment(run_dir: str | os.PathLike) -> dict:
    """The parsed environment.json of a run."""
    path = Path(run_dir) / ENVIRONMENT
    if not path.exists():
        raise ResultsError(f"{path}: missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}:{exc.lineno}: malformed JSON: {exc.msg}") from None


def write_environment(run_dir: str | os.PathLike, environment: dict) -> None:
    """Write environment.json."""
    (Path(run_dir) / ENVIRONMENT).write_text(json.dumps(environment, indent=2, sort_keys=True) + "\n")


def flatten(record: Record) -> dict:
    """One flat row: identity columns, time_* statistics, metrics as metric_* columns."""
    row = record.to_dict()
    time_s = row.pop("time_s") or {}
    for key in ("median", "mean", "stdev", "iqr", "min", "max", "n", "loops"):
        row[f"time_{key}"] = time_s.get(key)
    row["time_values"] = time_s.get("values")
    row["time_process_medians"] = time_s.get("process_medians")
    metrics = row.get("metrics") or {}
    for key, value in metrics.items():
        if isinstance(value, (int, float, str)) or value is None:
            row[f"metric_{key}"] = value
    row["widths_label"] = "x".join(str(w) for w in record.widths)
    return row


def load(run_dir: str | os.PathLike):
    """A pandas DataFrame with one row per Record of the run."""
    import pandas as pd

    records = read_records(run_dir)
    env = read_environment(run_dir)
    frame = pd.DataFrame([flatten(r) for r in records])
    frame.attrs["environment"] = env
    frame.attrs["run_dir"] = str(run_dir)
    return frame
