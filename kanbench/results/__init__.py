"""The results store: run directories of results.jsonl + environment.json + suite.toml (+ reference.jsonl). No torch.

`kanbench.results.load("results/runs/20261129-140000-quick")` gives a DataFrame with one row per Record.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from . import noise
from .record import Record, is_number

RESULTS = "results.jsonl"
ENVIRONMENT = "environment.json"
SUITE = "suite.toml"
PYPERF = "pyperf.json"
PLANNED = "planned.json"  # the (config_hash, phase, profiled_phase, label) a run set out to measure


class ResultsError(ValueError):
    """A run directory or results file that cannot be read; the message names the file and line."""


def new_run_dir(root: str | os.PathLike, suite_name: str) -> Path:
    """Create results/runs/<UTC timestamp>-<suite>/ (suffixed if it exists) and return it."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1000):
        path = root / (f"{stamp}-{suite_name}" + (f"-{n}" if n else ""))
        with contextlib.suppress(FileExistsError):
            path.mkdir()
            return path
    raise ResultsError(f"could not create a new run directory under {root}")


def append(run_dir: str | os.PathLike, record: Record) -> None:
    """Append one record as one line with a single O_APPEND write; a write that cannot complete (a full disk) is
    cut back off, so the file only ever holds whole lines. OSError propagates, naming the file."""
    line = (json.dumps(record.to_dict(), separators=(",", ":"), allow_nan=True) + "\n").encode()
    path = Path(run_dir) / RESULTS
    try:
        # never through a link: a results.jsonl that points elsewhere would write into another run
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot append ({exc.strerror}; a link is refused)", str(path)) from None
    try:
        start = os.fstat(fd).st_size
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(28, f"wrote {written} of {len(line)} bytes", str(path))
            os.fsync(fd)
        except OSError as exc:
            os.ftruncate(fd, start)  # the lone writer (the run session holds the lock): cut the torn line
            raise OSError(exc.errno, exc.strerror, str(path)) from None
    finally:
        os.close(fd)


def create(run_dir: str | os.PathLike) -> None:
    """An empty results.jsonl (never through a link)."""
    path = Path(run_dir) / RESULTS
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644))


def repair_tail(run_dir: str | os.PathLike) -> int:
    """Drop a trailing partial line left by a crash; return the bytes removed."""
    path = Path(run_dir) / RESULTS
    if not path.is_file():
        return 0
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with open(path, "r+b") as f:
        f.truncate(keep)
    return len(data) - keep


def _read_bytes(path: Path, what: str) -> bytes:
    if not path.exists():
        raise ResultsError(f"{path}: missing (a run directory holds {RESULTS}, {ENVIRONMENT} and {SUITE})")
    if not path.is_file():
        raise ResultsError(f"{path}: not a file ({what} must be a regular file)")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read: {exc.strerror or exc}") from None


def read_records(
    run_dir: str | os.PathLike, allow_partial_tail: bool = False, allow_empty: bool = False
) -> list[Record]:
    """Every record of a run; a malformed, mistyped or duplicated line raises ResultsError naming file and line.

    An empty results.jsonl is an error unless allow_empty (a run being resumed may have written nothing yet).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ResultsError(f"{run_dir}: not a run directory")
    path = run_dir / RESULTS
    lines = _read_bytes(path, "the results").split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    if tail and not allow_partial_tail:
        raise ResultsError(f"{path}:{len(lines) + 1}: incomplete last line (an interrupted run? use --resume)")
    records = []
    seen: dict[tuple, int] = {}
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ResultsError(f"{path}:{number}: not UTF-8 (byte {exc.start + 1} of the line)") from None
        if not line.strip():
            continue  # blank lines, and the \r of CRLF endings, are harmless
        try:
            record = Record.from_dict(_text_json(line))
        except (json.JSONDecodeError, ValueError, TypeError) as exc:
            raise ResultsError(f"{path}:{number}: malformed record: {exc}") from None
        except RecursionError:
            raise ResultsError(f"{path}:{number}: malformed record: nested too deeply to be a record") from None
        if record.key in seen:
            raise ResultsError(
                f"{path}:{number}: duplicate record: {record.impl} {record.phase} (config "
                f"{record.config_hash}) is line {seen[record.key]} too; two runs wrote one directory?"
            )
        seen[record.key] = number
        records.append(record)
    if not records and not allow_empty:
        raise ResultsError(
            f"{path}: holds no records (the run measured nothing; was it stopped before its first cell?)"
        )
    return records


def _text_json(text: str) -> object:
    """json.loads, refusing (ValueError) a string escape of a lone UTF-16 surrogate such as "\\ud800": JSON lets
    it through, but it is no text, and the report, a terminal or a file could not encode it."""
    value = json.loads(text)
    if "\\u" in text:  # only an escape can make one (the text itself was decoded as UTF-8)
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = exc.object[exc.start : exc.end]
            raise ValueError(f"a string holds a lone surrogate {ascii(bad)}, not text") from None
    return value


def read_environment(run_dir: str | os.PathLike) -> dict:
    """The parsed environment.json of a run: a JSON object, else ResultsError naming the file."""
    path = Path(run_dir) / ENVIRONMENT
    data = _read_bytes(path, "the environment")
    try:
        environment = _text_json(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ResultsError(f"{path}: not UTF-8 (byte {exc.start + 1})") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}:{exc.lineno}: malformed JSON: {exc.msg}") from None
    except ValueError as exc:
        raise ResultsError(f"{path}: malformed JSON: {exc}") from None
    except RecursionError:
        raise ResultsError(f"{path}: malformed JSON: nested too deeply") from None
    if not isinstance(environment, dict):
        raise ResultsError(f"{path}: must hold a JSON object, got {type(environment).__name__}")
    problem = environment_problem(environment)
    if problem:
        raise ResultsError(f"{path}: {problem}")
    return environment


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_load(value: object) -> bool:
    """Three finite load averages >= 0 (1, 5 and 15 minutes), as os.getloadavg gives them."""
    return isinstance(value, list) and len(value) == 3 and all(is_number(x) and x >= 0 for x in value)


# The environment.json fields that kanbench reads back (report, compare, regress, merge): (path, allowed?, what is
# allowed). A run's other fields are shown as written and may hold anything.
ENVIRONMENT_FIELDS: tuple[tuple[str, Callable[[object], bool], str], ...] = (
    ("run", lambda v: isinstance(v, dict), "an object"),
    ("run.shard", lambda v: isinstance(v, str), "a string such as '1/2' or null"),
    ("run.timing", lambda v: isinstance(v, dict), "an object or null"),
    ("run.load_avg_start", _is_load, "a list of three load averages >= 0 or null"),
    ("run.load_avg_end", _is_load, "a list of three load averages >= 0 or null"),
    ("cpu_count", _is_count, "an int >= 1 or null"),
    ("cpu_affinity", _is_count, "an int >= 1 or null"),
    ("torch_threads", _is_count, "an int >= 1 or null"),
    ("worker_torch_threads", _is_count, "an int >= 1 or null"),
    ("cuda", lambda v: isinstance(v, dict), "an object or null"),
    ("cuda.devices", lambda v: isinstance(v, list), "a list of GPU names or null"),
    ("gpu", lambda v: isinstance(v, dict), "an object or null"),
    ("env_vars", lambda v: isinstance(v, dict), "an object or null"),
    ("machine", lambda v: isinstance(v, dict), "an object or null"),
)


def environment_problem(environment: dict) -> str | None:
    """The first field of ENVIRONMENT_FIELDS that holds the wrong type, said with what is allowed; else None."""
    for name, allowed, what in ENVIRONMENT_FIELDS:
        value: object = environment
        for key in name.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None and not allowed(value):
            text = repr(value)
            return f"field {name} must be {what}, got {text if len(text) <= 60 else text[:57] + '...'}"
    return None


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file whole: to a temporary name beside it, then renamed over the old one, so a crash or a full
    disk leaves the old file or the new one, never half of either. A path that is no regular file (/dev/stdout, a
    FIFO, a device) is written through instead. OSError names path (not the temporary name)."""
    path = Path(path)
    if path.exists() and not path.is_file():  # /dev/stdout, a FIFO, a device: write through, never rename over it
        _write_through(path, text)
        return
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)  # a link to a file is replaced, never written through (it may name another run's)
    except OSError as exc:
        with contextlib.suppress(OSError):  # a read-only directory refuses the clean-up too: report the first error
            tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from None


def _write_through(path: Path, text: str) -> None:
    """Write into a file that is not a regular one (nothing to keep whole there); OSError names path."""
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None


def write_json(path: str | os.PathLike, data: object) -> None:
    """Write a JSON file whole (write_text)."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_environment(run_dir: str | os.PathLike, environment: dict) -> None:
    """Write environment.json (whole)."""
    write_json(Path(run_dir) / ENVIRONMENT, environment)


def read_planned(run_dir: str | os.PathLike) -> dict[tuple, str] | None:
    """{record key: cell label} a run planned, or None for a run from before planned.json existed."""
    path = Path(run_dir) / PLANNED
    if not path.exists():
        return None
    try:
        data = json.loads(_read_bytes(path, "the plan").decode("utf-8"))
        return {(h, p, pp): label for h, p, pp, label in data["records"]}
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, RecursionError) as exc:
        raise ResultsError(f"{path}: malformed ({type(exc).__name__}: {exc})") from None


def flatten(record: Record) -> dict:
    """One flat row: identity columns, time_* statistics (instructions_* for the instruction clock), metrics as
    metric_* columns."""
    row = record.to_dict()
    time_s = row.pop("time_s") or {}
    counts = row.pop("instructions")
    for prefix, stats in (("time", time_s), *((("instructions", counts),) if counts else ())):
        for key in ("median", "mean", "stdev", "iqr", "min", "max", "n", "loops"):
            row[f"{prefix}_{key}"] = stats.get(key)
        row[f"{prefix}_values"] = stats.get("values")
        row[f"{prefix}_process_medians"] = stats.get("process_medians")
        row[f"{prefix}_process"] = stats.get("process") or None  # interleaved: each value's process and round
        row[f"{prefix}_round"] = stats.get("round") or None
    metrics = row.get("metrics") or {}
    for key, value in metrics.items():
        if isinstance(value, (int, float, str)) or value is None:
            row[f"metric_{key}"] = value
    host = metrics.get("host_time_s")  # CUDA cells: the host's issue time beside the event-timed device time
    row["host_time_median"] = host.get("median") if isinstance(host, dict) else None
    clock = metrics.get("sm_clock_mhz")  # CUDA cells with nvml: the lowest SM clock seen and the maximum
    row["sm_clock_min_mhz"], row["sm_clock_max_mhz"] = (clock["min"], clock["max"]) if clock else (None, None)
    row["widths_label"] = "x".join(str(w) for w in record.widths)
    node = record.node or {}
    row["node_id"], row["node_host"] = node.get("node_id"), node.get("hostname")
    return row


def load(run_dir: str | os.PathLike):
    """A pandas DataFrame with one row per Record of the run."""
    import pandas as pd

    records = read_records(run_dir)
    env = read_environment(run_dir)
    frame = pd.DataFrame([flatten(r) for r in records])
    frame.attrs["environment"] = env
    frame.attrs["run_dir"] = str(run_dir)
    frame.attrs["reference"] = noise.read(run_dir)  # the machine's noise while it ran (kanbench.results.noise)
    return frame


def peak_for(machine: dict | None, key: str, device: str, dtype: str) -> float | None:
    """A ceiling (e.g. peak_flop_per_s) for a device and dtype from environment["machine"], if given.

    Accepts a number, a {dtype: number} or {device: number} map, or {device: {dtype: number}}; a run that stores
    several devices keeps each under machine["by_device"][device].
    """
    if not isinstance(machine, dict):
        return None
    by_device = machine.get("by_device")
    if isinstance(by_device, dict) and isinstance(by_device.get(device.split(":")[0]), dict):
        machine = by_device[device.split(":")[0]]
    value = machine.get(key)
    for level in range(3):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value) if math.isfinite(value) and value > 0 else None
        if not isinstance(value, dict) or level == 2:
            return None
        value = next((value[k] for k in (device, device.split(":")[0], dtype) if k in value), None)
    return None
