"""`kanbench machine`: this device's peak float32 matmul FLOP/s and copy bandwidth, the roofline's two ceilings.

Measured once per machine (CPU model, core count, torch version, threads, GPU) and cached in
$KANBENCH_CACHE or ~/.cache/kanbench/machine.json; every run stores them in environment.json["machine"].
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

SIZES = {"cpu": (2048, 64 * 2**20), "cuda": (8192, 2**30)}  # GEMM n, copy bytes


def cache_path() -> Path:
    """Where measured figures are kept."""
    root = os.environ.get("KANBENCH_CACHE") or Path.home() / ".cache" / "kanbench"
    return Path(root) / "machine.json"


def machine_key(device: str, threads: int) -> str:
    """What the figures depend on: hardware, torch, threads."""
    import torch

    from .env import cpu_model

    if device.startswith("cuda"):
        hardware = torch.cuda.get_device_name(torch.device(device))
    else:
        hardware = f"{cpu_model()} x{os.cpu_count()} threads={threads or torch.get_num_threads()}"
    return f"{device.split(':')[0]} | {hardware} | torch {torch.__version__}"


def measure(device: str, threads: int, gemm_n: int | None = None, copy_bytes: int | None = None) -> dict:
    """Best-of-values peak matmul FLOP/s (n x n float32) and copy bandwidth (read + write bytes per second)."""
    import torch

    from . import timing

    dev = torch.device(device)
    default_n, default_bytes = SIZES["cuda" if dev.type == "cuda" else "cpu"]
    n, nbytes = gemm_n or default_n, copy_bytes or default_bytes
    saved = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        sync = timing.synchronizer(dev)
        a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
        c = torch.empty(n, n, device=dev)
        gemm = timing.measure(timing.loop_timer(lambda: torch.mm(a, b, out=c), sync), 2, 0.1, 5)
        src = torch.ones(nbytes // 4, device=dev)
        dst = torch.empty_like(src)
        copy = timing.measure(timing.loop_timer(lambda: dst.copy_(src), sync), 2, 0.1, 5)
    finally:
        torch.set_num_threads(saved)
    return {
        "device": device,
        "threads": threads or saved,
        "peak_flop_per_s": 2 * n**3 / min(gemm.values),
        "peak_bytes_per_s": 2 * src.numel() * 4 / min(copy.values),
        "method": f"min over 5 values of a {n}x{n} float32 torch.mm and a {nbytes // 2**20} MiB copy_ (read + write)",
    }


def figures(device: str, threads: int, refresh: bool = False, measure_missing: bool = True) -> dict | None:
    """The cached figures for this machine, measured first if absent (or if refresh); None if absent and not to
    be measured."""
    path = cache_path()
    cache = json.loads(path.read_text()) if path.exists() else {}
    key = machine_key(device, threads)
    if key not in cache and not measure_missing:
        return None
    if refresh or key not in cache:
        cache[key] = measure(device, threads)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache, indent=2, sort_keys=True))
        tmp.replace(path)
    return {**cache[key], "key": key}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of `kanbench machine`."""
    parser.add_argument("--device", action="append", help="cpu, cuda (default: cpu, and cuda if present)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--refresh", action="store_true", help="measure again instead of using the cache")


def command(args: argparse.Namespace) -> int:
    """Print (measuring if needed) the peak FLOP/s and bandwidth of each device."""
    import torch

    from .errors import UsageError

    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    for device in devices:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise UsageError(f"--device {device}: CUDA is not available on this machine")
        if device.split(":")[0] not in ("cpu", "cuda"):
            raise UsageError(f"--device {device}: allowed: cpu, cuda")
        f = figures(device, args.threads, args.refresh)
        assert f is not None  # measure_missing (the default): figures are measured, never None
        print(f"{f['key']}\n  peak matmul {f['peak_flop_per_s'] / 1e9:.1f} GFLOP/s, "
              f"copy {f['peak_bytes_per_s'] / 1e9:.1f} GB/s ({f['method']})")  # fmt: skip
    print(f"cache: {cache_path()}")
    return 0
