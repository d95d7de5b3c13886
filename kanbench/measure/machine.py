"""`kanbench machine`: this device's peak matmul FLOP/s per dtype and its copy bandwidth, the roofline's ceilings.

Measured once per machine (CPU model, core count, torch version, threads, GPU), dtype and float32 matmul mode (TF32
on or off, torch's float32 matmul precision), and cached in $KANBENCH_CACHE or ~/.cache/kanbench/machine.json;
every run stores the ceilings of the dtypes it measures in environment.json["machine"]. Runs measure a GPU's
ceilings in a worker process (kanbench.measure.gpu.probe_in_worker), never in their own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from pathlib import Path

from ..errors import UsageError
from ..suite import BOUNDS
from ..text import escape

SIZES = {"cpu": (2048, 64 * 2**20), "cuda": (8192, 2**30)}  # largest GEMM n, copy bytes
GEMM_CALL_S = 1.0  # a slow dtype (float16 on most CPUs runs at < 1 GFLOP/s) gets a GEMM this long, not minutes
DTYPE_NAMES = ("float32", "float64", "bfloat16", "float16")
MAX_CACHE_BYTES = 2**20  # machine.json: far more than it ever holds, far less than a stray huge file


def cache_path() -> Path | None:
    """Where measured figures are kept; None when there is nowhere (no KANBENCH_CACHE and no home directory)."""
    if os.environ.get("KANBENCH_CACHE"):
        return Path(os.environ["KANBENCH_CACHE"]) / "machine.json"
    try:
        return Path.home() / ".cache" / "kanbench" / "machine.json"
    except RuntimeError:  # no HOME and no passwd entry (a container's arbitrary uid): measuring only costs time
        return None


def matmul_mode(device: str, dtype: str) -> str:
    """What else decides a float32 matmul's speed: TF32 on CUDA, torch's float32 matmul precision everywhere."""
    import torch

    if dtype != "float32":
        return ""
    tf32 = f", tf32={'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}" if device.startswith("cuda") else ""
    return f" | precision={torch.get_float32_matmul_precision()}{tf32}"


def check_threads(threads: int) -> int:
    """A --threads value, if a suite's [timing].threads could hold it (0: torch's default); UsageError otherwise."""
    if not 0 <= threads <= BOUNDS["threads"]:  # torch raises below 1 and crashes (SIGSEGV) at 99,999
        raise UsageError(f"--threads must be >= 0 and <= {BOUNDS['threads']} (0: torch's default; the bound of a "
                         f"suite's [timing].threads), got {threads}")  # fmt: skip
    return threads


def machine_key(device: str, threads: int, dtype: str = "float32") -> str:
    """What the figures depend on: hardware, torch, threads, dtype and float32 matmul mode."""
    import torch

    from .env import cpu_model

    if device.startswith("cuda"):
        hardware = torch.cuda.get_device_name(torch.device(device))
    else:
        hardware = f"{cpu_model()} x{os.cpu_count()} threads={threads or torch.get_num_threads()}"
    return f"{device.split(':')[0]} | {hardware} | torch {torch.__version__} | {dtype}{matmul_mode(device, dtype)}"


def gemm_size(seconds_per_flop: float, largest: int, call_s: float = GEMM_CALL_S) -> int:
    """The GEMM n for a dtype: `largest`, or less (a multiple of 128, at least 256) if one call would last longer
    than call_s at the rate a small GEMM showed."""
    fits = int((call_s / max(seconds_per_flop, 1e-18) / 2) ** (1 / 3)) // 128 * 128
    return max(256, min(largest, fits))


def gemm_rate(n: int, device, dtype, sync) -> float:
    """FLOP/s of an n x n torch.mm: the min over 5 values of timing.measure."""
    import torch

    from . import timing

    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    c = torch.empty(n, n, device=device, dtype=dtype)
    gemm = timing.measure(timing.loop_timer(lambda: torch.mm(a, b, out=c), sync), 2, 0.1, 5)
    return 2 * n**3 / min(gemm.values)


def measure(
    device: str, threads: int, gemm_n: int | None = None, copy_bytes: int | None = None, dtype: str = "float32"
) -> dict:
    """Best-of-values peak matmul FLOP/s (n x n, of dtype) and copy bandwidth (read + write bytes per second)."""
    import torch

    from . import timing

    dev = torch.device(device)
    if dtype not in DTYPE_NAMES:
        raise ValueError(f"machine.measure(dtype={dtype!r}): allowed: {', '.join(DTYPE_NAMES)}")
    kind = getattr(torch, dtype)
    default_n, default_bytes = SIZES["cuda" if dev.type == "cuda" else "cpu"]
    nbytes = copy_bytes or default_bytes
    saved = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        sync = timing.synchronizer(dev)
        n = gemm_n
        if n is None:  # how fast is this dtype here? one small GEMM says
            small = torch.randn(256, 256, device=dev, dtype=kind)
            probe = timing.loop_timer(lambda: torch.mm(small, small), sync)
            probe(1)
            n = gemm_size(probe(1) / (2 * 256**3), default_n)
        # the best of three sizes: a slow dtype's kernels can run smaller products faster (float16 on a CPU:
        # docs/methodology.md, "FLOPs and the roofline"), and a ceiling must bound them all
        sizes = sorted({n, max(256, n // 2), max(256, n // 4)})
        best = max(gemm_rate(size, dev, kind, sync) for size in sizes)
        src = torch.ones(nbytes // 4, device=dev)
        dst = torch.empty_like(src)
        copy = timing.measure(timing.loop_timer(lambda: dst.copy_(src), sync), 2, 0.1, 5)
    finally:
        torch.set_num_threads(saved)
    return {
        "device": device,
        "dtype": dtype,
        "threads": threads or saved,
        "peak_flop_per_s": best,
        "peak_bytes_per_s": 2 * src.numel() * 4 / min(copy.values),
        "method": f"the best n^2 {dtype} torch.mm of n in {sizes} (min over 5 values each) and a "
        f"{nbytes // 2**20} MiB copy_ (read + write)",
    }


def entry_problem(entry: object) -> str | None:
    """What makes one cached entry unusable (peaks that are not finite numbers > 0, no method), or None if sound."""
    if not isinstance(entry, dict):
        return f"a JSON {type(entry).__name__}, not an object of figures"
    for field in ("peak_flop_per_s", "peak_bytes_per_s"):
        value = entry.get(field)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            return f"{field} is {value!r}; expected a finite number > 0"
    if not isinstance(entry.get("method"), str):
        return "no method (a string saying how the figures were measured)"
    return None


def load_cache(path: Path) -> tuple[dict, list[str]]:
    """The sound entries of the cache file and what was wrong with the rest (or with the whole file)."""
    try:
        if not path.is_file():  # a FIFO would block the read, /dev/zero never end it
            return ({}, ["not a regular file"]) if path.exists() else ({}, [])
        with open(path, "rb") as f:
            text = f.read(MAX_CACHE_BYTES + 1)
        if len(text) > MAX_CACHE_BYTES:
            return {}, [f"over {MAX_CACHE_BYTES} bytes; a cache of every dtype on a few machines holds a few KB"]
        cache = json.loads(text)
    except (FileNotFoundError, NotADirectoryError):  # nothing measured yet
        return {}, []
    except (OSError, ValueError, RecursionError) as exc:  # unreadable, not JSON (or not UTF-8), nested too deep
        return {}, [f"unreadable ({type(exc).__name__}: {getattr(exc, 'strerror', None) or exc})"]
    if not isinstance(cache, dict):
        return {}, [f"holds a JSON {type(cache).__name__}; expected an object of {{machine key: figures}}"]
    problems = {key: entry_problem(entry) for key, entry in cache.items()}
    sound = {key: entry for key, entry in cache.items() if problems[key] is None}
    return sound, [f"entry {key!r}: {problem}" for key, problem in problems.items() if problem]


def _warn(path: Path, message: str) -> None:
    print(escape.terminal(f"kanbench: roofline cache {path}: {message}"), file=sys.stderr)


def _store(path: Path, entries: dict) -> None:
    """Rewrite the cache file atomically with its sound entries and these; one that cannot be written only costs time
    (a warning)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        cache = {**load_cache(path)[0], **entries}  # read again: another process may have added a dtype meanwhile
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(cache, indent=2, sort_keys=True, allow_nan=False))
        os.replace(tmp, path)
    except OSError as exc:
        _warn(path, f"cannot write ({exc.strerror or exc}); the figures are used but not kept")
        with contextlib.suppress(OSError):  # a read-only HOME refuses even removing what it never created
            tmp.unlink(missing_ok=True)


def _measured(device: str, threads: int, dtype: str) -> dict:
    """Figures measured now; RuntimeError if they are not sound (a NaN or 0 ceiling would divide every fraction of
    peak: never keep or use one)."""
    entry = measure(device, threads, dtype=dtype)
    problem = entry_problem(entry)
    if problem:
        raise RuntimeError(f"kanbench machine measured {device} {dtype}: {problem}")
    return entry


def _uncached(device: str, threads: int, measure_missing: bool, dtype: str) -> dict | None:
    """figures() with no cache to read or keep: measured now (or None), and a warning."""
    print("kanbench: no roofline cache (no home directory; set KANBENCH_CACHE to keep one)", file=sys.stderr)
    if not measure_missing:
        return None
    return {**_measured(device, threads, dtype), "key": machine_key(device, threads, dtype)}


def figures(
    device: str, threads: int, refresh: bool = False, measure_missing: bool = True, dtype: str = "float32"
) -> dict | None:
    """The cached figures for this machine and dtype, measured first if absent (or if refresh); None if absent and
    not to be measured. A cache file or entry that cannot be trusted is reported, measured again and rewritten."""
    path = cache_path()
    if path is None:
        return _uncached(device, threads, measure_missing, dtype)
    cache, problems = load_cache(path)
    for problem in problems:
        _warn(path, f"{problem}; left out (measured again when needed) and the file rewritten")
    key = machine_key(device, threads, dtype)
    measure_now = refresh if key in cache else measure_missing
    if measure_now:
        cache[key] = _measured(device, threads, dtype)
        _store(path, {key: cache[key]})
    elif problems:
        _store(path, {})  # repaired now, so every later run does not warn again
    return {**cache[key], "key": key} if key in cache else None


def ceilings(device: str, threads: int, dtypes: list[str], measure_missing: bool = True) -> dict:
    """One device's ceilings for the given dtypes, as environment.json["machine"]["by_device"][device] holds them:
    {"peak_flop_per_s": {dtype: ...}, "peak_bytes_per_s": ..., "method": {dtype: ...}, "key": {dtype: ...}}.
    A dtype with nothing cached (and measure_missing False) is left out; a dtype that cannot be measured is in
    "errors"."""
    name = "cuda:0" if device == "cuda" else device
    out: dict = {"peak_flop_per_s": {}, "method": {}, "key": {}}
    for dtype in dtypes:
        try:
            found = figures(name, threads, measure_missing=measure_missing, dtype=dtype)
        except Exception as exc:  # a roofline is a bonus: never lose a run over it
            out.setdefault("errors", {})[dtype] = f"{type(exc).__name__}: {exc}"
            continue
        if found:
            out["peak_flop_per_s"][dtype] = found["peak_flop_per_s"]
            out["method"][dtype], out["key"][dtype] = found["method"], found["key"]
            out.setdefault("peak_bytes_per_s", found["peak_bytes_per_s"])
    return out


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of `kanbench machine`."""
    parser.add_argument("--device", action="append", help="cpu, cuda (default: cpu, and cuda if present)")
    parser.add_argument("--threads", type=int, default=0,
                        help=f"torch threads, 0..{BOUNDS['threads']} (0 = torch's default)")  # fmt: skip
    parser.add_argument("--dtype", action="append", choices=DTYPE_NAMES, help="matmul dtype (default: float32)")
    parser.add_argument("--refresh", action="store_true", help="measure again instead of using the cache")


def command(args: argparse.Namespace) -> int:
    """Print (measuring if needed) the peak FLOP/s and bandwidth of each device."""
    check_threads(args.threads)
    import torch

    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    for device in devices:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise UsageError(f"--device {device}: CUDA is not available on this machine")
        if device.split(":")[0] not in ("cpu", "cuda"):
            raise UsageError(f"--device {device}: allowed: cpu, cuda")
        for dtype in args.dtype or ["float32"]:
            f = figures(device, args.threads, args.refresh, dtype=dtype)
            assert f is not None  # measure_missing (the default): figures are measured, never None
            print(f"{f['key']}\n  peak matmul {f['peak_flop_per_s'] / 1e9:.1f} GFLOP/s, "
                  f"copy {f['peak_bytes_per_s'] / 1e9:.1f} GB/s ({f['method']})")  # fmt: skip
    print(f"cache: {cache_path() or 'none (no home directory; set KANBENCH_CACHE)'}")
    return 0
