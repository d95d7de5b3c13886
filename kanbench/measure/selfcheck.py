"""Prove on this machine that kanbench's numbers measure what they say: one PASS/FAIL line per check, exit 1 on a FAIL.

- sync: a timed region holding device work of known duration measures at least that duration, and a deliberately
  unsynchronised control measures less, which proves the check can fail. On CUDA the work is torch.cuda._sleep,
  its cycles per second calibrated with CUDA events; on CPU it is a sleep on a helper thread that the region's
  sync joins (CPU ops are synchronous, so the thread stands in for an asynchronous device).
- memory: the peak of a known allocation pattern (a resident block, an earlier larger peak, a freed transient) is
  exact to 1%.
- gemm: a large float32 matmul timed by the engine runs at 30-100% of the device's measured ceiling (kanbench
  machine); above it means a region missed device work or the cached ceiling is stale.
- overhead: what timing an empty region costs, against the shortest min_time a shipped suite uses.
- stability: the spread of one fixed workload over repeated values; on CUDA with nvidia-ml-py also the SM clock
  against its maximum (nvbench's throttle rule: below 75%).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import UsageError
from ..suite import BOUNDS
from . import gpu, machine

SLEEP_S = 0.02  # the known device work per region
MIN_TIME_S = 0.01  # quick.toml's [timing].min_time, the shortest a shipped suite times
GEMM_RANGE = (0.30, 1.05)  # of the ceiling; 5% above it allowed for the ceiling's own noise
MAX_SPREAD = 0.05  # IQR / median of the fixed workload
THROTTLE = gpu.THROTTLE_SHARE  # SM clock / max SM clock


@dataclass
class Check:
    """One check's verdict and the numbers behind it."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        """ "PASS name  detail" """
        return f"{'PASS' if self.ok else 'FAIL'} {self.name:<10} {self.detail}"


def ms(seconds: float) -> str:
    """Seconds as milliseconds, 3 significant digits."""
    return f"{seconds * 1e3:.3g} ms"


def sync_verdict(expected_s: float, synced_s: float, unsynced_s: float) -> Check:
    """PASS when the synchronised region saw all the work (>= 95%) and the control did not (< 50%)."""
    ok = synced_s >= 0.95 * expected_s and unsynced_s < 0.5 * expected_s
    detail = (f"{ms(expected_s)} of device work measured {ms(synced_s)} synchronised (needs >= 95%), "
              f"{ms(unsynced_s)} unsynchronised (the control, needs < 50%)")  # fmt: skip
    return Check("sync", ok, detail)


def cpu_device() -> tuple[Callable[[], None], Callable[[], None]]:
    """(work, sync) of a stand-in asynchronous device: work starts a SLEEP_S sleep on a thread, sync joins them."""
    pending: list[threading.Thread] = []

    def work() -> None:
        thread = threading.Thread(target=time.sleep, args=(SLEEP_S,))
        thread.start()
        pending.append(thread)

    def sync() -> None:
        while pending:
            pending.pop().join()

    return work, sync


def check_sync(device: str) -> Check:
    """The timing engine's region (timing.loop_timer) with the harness's sync, and without it."""
    from . import timing

    if device == "cuda":
        import torch

        dev = torch.device("cuda", 0)
        cycles = sleep_cycles(SLEEP_S)
        sync = timing.synchronizer(dev)

        def work() -> None:
            torch.cuda._sleep(cycles)

        expected, device_sync = SLEEP_S, sync
    else:
        work, device_sync = cpu_device()
        expected = SLEEP_S
    synced = min(timing.loop_timer(work, device_sync)(1) for _ in range(3))
    unsynced = min(timing.loop_timer(work, lambda: None)(1) for _ in range(3))
    device_sync()  # drain the control's work before anything else runs
    return sync_verdict(expected, synced, unsynced)


def sleep_cycles(seconds: float) -> int:
    """torch.cuda._sleep cycles that keep the GPU busy for about `seconds`, calibrated with CUDA events."""
    import torch

    probe = 10_000_000
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda._sleep(probe)  # warm up the kernel
    start.record()
    torch.cuda._sleep(probe)
    end.record()
    end.synchronize()
    per_s = probe / (start.elapsed_time(end) / 1e3)
    return int(per_s * seconds)


def memory_verdict(expected: int, measured: int) -> Check:
    """PASS when the measured peak is within 1% of the pattern's."""
    error = abs(measured - expected) / expected
    detail = (f"resident 16 MiB, an earlier 64 MiB peak, then 8 MiB kept + a 4 MiB transient: expected "
              f"{expected / 2**20:.2f} MiB, measured {measured / 2**20:.2f} MiB "
              f"({error:.2%} off, needs <= 1%)")  # fmt: skip
    return Check("memory", error <= 0.01, detail)


def check_memory(device: str) -> Check:
    """kanbench.measure.memory.peak_bytes on a pattern whose peak is known exactly: 8 MiB kept plus 4 MiB freed."""
    import torch

    from . import memory

    dev = torch.device("cuda", 0) if device == "cuda" else torch.device("cpu")
    mib = 2**20
    resident = torch.empty(16 * mib, dtype=torch.uint8, device=dev)  # allocated before: not in the peak
    earlier = torch.empty(64 * mib, dtype=torch.uint8, device=dev)
    del earlier  # an earlier, larger peak that must not leak into the measurement

    def pattern() -> torch.Tensor:
        kept = torch.empty(8 * mib, dtype=torch.uint8, device=dev)
        transient = torch.empty(4 * mib, dtype=torch.uint8, device=dev)
        del transient
        return kept

    measured = memory.peak_bytes(pattern, dev)
    del resident
    return memory_verdict(12 * mib, measured)


def gemm_verdict(measured: float, ceiling: float, n: int) -> Check:
    """PASS when the engine's GEMM FLOP/s lies in GEMM_RANGE of the ceiling."""
    low, high = GEMM_RANGE
    share = measured / ceiling
    hint = ""
    if share > high:
        hint = "; above the ceiling: a region missed device work, or the ceiling is stale (kanbench machine --refresh)"
    elif share < low:
        hint = (
            "; far below the ceiling: another load, fewer threads than the ceiling's, a throttled device, or a "
            "ceiling cached under other conditions (kanbench machine --refresh)"
        )
    detail = (f"{n}x{n} float32 matmul {measured / 1e9:.4g} GFLOP/s = {share:.0%} of the measured ceiling "
              f"{ceiling / 1e9:.4g} GFLOP/s (needs {low:.0%}-{high:.0%}){hint}")  # fmt: skip
    return Check("gemm", low <= share <= high, detail)


def check_gemm(device: str, threads: int) -> Check:
    """The median of a large GEMM through timing.measure, against kanbench machine's cached (or new) ceiling."""
    import torch

    from . import timing

    name = "cuda:0" if device == "cuda" else "cpu"
    ceiling = machine.figures(name, threads)
    if not ceiling or "peak_flop_per_s" not in ceiling:
        return Check("gemm", False, f"no ceiling for {name}: kanbench machine could not measure one")
    dev = torch.device(name)
    n = machine.SIZES["cuda" if device == "cuda" else "cpu"][0]
    a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    c = torch.empty(n, n, device=dev)
    m = timing.measure(timing.loop_timer(lambda: torch.mm(a, b, out=c), timing.synchronizer(dev)), 2, 0.1, 5)
    return gemm_verdict(2 * n**3 / statistics.median(m.values), ceiling["peak_flop_per_s"], n)


def overhead_verdict(region_s: float, per_call_s: float) -> Check:
    """PASS when an empty timed region costs under 1% of the shortest min_time."""
    ok = region_s <= 0.01 * MIN_TIME_S
    detail = (f"an empty timed region (sync + two clock reads) costs {region_s * 1e6:.3g} us, an empty call "
              f"{per_call_s * 1e9:.3g} ns (needs region <= 1% of min_time {ms(MIN_TIME_S)})")  # fmt: skip
    return Check("overhead", ok, detail)


def check_overhead(device: str) -> Check:
    """The cost of the engine's own timed region and of one loop iteration, with nothing in them."""
    import torch

    from . import timing

    sync = timing.synchronizer(torch.device("cuda", 0) if device == "cuda" else torch.device("cpu"))
    run = timing.loop_timer(lambda: None, sync)
    region = statistics.median(run(1) for _ in range(200))
    per_call = statistics.median(timing.measure(run, 10, 0.005, 5).values)
    return overhead_verdict(region, per_call)


def spread(values: list[float]) -> float:
    """Interquartile range over the median."""
    q = statistics.quantiles(values, n=4)
    return (q[2] - q[0]) / statistics.median(values)


def stability_verdict(values: list[float], sm_clock: tuple[float, float] | None) -> Check:
    """PASS when the fixed workload's IQR is within MAX_SPREAD of its median and no SM clock fell below THROTTLE."""
    s = spread(values)
    ok = s <= MAX_SPREAD
    detail = f"a fixed workload over {len(values)} values: IQR {s:.1%} of the median (needs <= {MAX_SPREAD:.0%})"
    if sm_clock is not None:
        low, high = sm_clock
        ok = ok and not gpu.throttled(low, high)
        detail += f"; SM clock {low:.0f} of {high:.0f} MHz at its lowest (needs >= {THROTTLE:.0%})"
    if not ok:
        detail += "; gaps between implementations smaller than this spread cannot be ranked here"
    return Check("stability", ok, detail)


def check_stability(device: str) -> Check:
    """20 values of a 256 x 256 matmul loop of about 10 ms each; on CUDA the SM clock read by nvml between them."""
    import torch

    from . import timing

    dev = torch.device("cuda", 0) if device == "cuda" else torch.device("cpu")
    a = torch.randn(256, 256, device=dev)
    run = timing.loop_timer(lambda: torch.mm(a, a), timing.synchronizer(dev))
    loops = timing.calibrate(run, MIN_TIME_S)
    values, clocks = [], []
    reader = gpu.sm_clock_reader(0) if device == "cuda" else None
    for _ in range(20):
        values.append(run(loops) / loops)
        if reader:
            clocks.append(reader())
    sm = (min(c[0] for c in clocks), clocks[0][1]) if clocks else None
    return stability_verdict(values, sm)


CHECKS: dict[str, Callable[[str, int], Check]] = {
    "sync": lambda d, t: check_sync(d),
    "memory": lambda d, t: check_memory(d),
    "gemm": check_gemm,
    "overhead": lambda d, t: check_overhead(d),
    "stability": lambda d, t: check_stability(d),
}


def run_checks(device: str, threads: int, emit: Callable[[str], None] = print) -> list[Check]:
    """Every check in order, each line emitted as it finishes; a check that raises is a FAIL saying why."""
    out = []
    for name, check in CHECKS.items():
        try:
            result = check(device, threads)
        except Exception as exc:
            result = Check(name, False, f"raised {type(exc).__name__}: {exc}")
        emit(result.line())
        out.append(result)
    return out


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of `kanbench selfcheck`."""
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="the device to check (cpu)")
    parser.add_argument("--threads", type=int, default=1,
                        help=f"torch threads on CPU, as the suites' [timing].threads: 0..{BOUNDS['threads']} "
                        "(0 = torch's default; default 1)")  # fmt: skip


def command(args: argparse.Namespace) -> int:
    """Run every check; exit 1 on any FAIL."""
    machine.check_threads(args.threads)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: CUDA is not available here (torch.cuda.is_available() is False)")
    if args.threads:
        torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name(0) if args.device == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"kanbench selfcheck on {where} (torch {torch.__version__})", flush=True)
    results = run_checks(args.device, args.threads, lambda line: print(line, flush=True))
    failed = [c.name for c in results if not c.ok]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed" + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0
