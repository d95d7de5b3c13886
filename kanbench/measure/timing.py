"""The timing engine: warm up, calibrate loops to min_time, then measure values (clock units per call).

A phase supplies `run(loops) -> elapsed`, which performs `loops` calls and returns what the clock advanced by in
the part that the phase names only, with the device synchronised at both ends of every timed region. A clock is
read in start/stop pairs around each timed region (`clock() - start`) and never inside one: the instruction clock
counts only between the two readings of a pair. Its unit is seconds for "wall" and "thread", instructions for
"instructions" (see UNITS).

On CUDA a run times with events instead (Split): it returns the device seconds between events recorded on the
stream at the region's ends, and keeps beside them the host seconds spent issuing the calls (the clock read before
the closing sync). Host time at or above device time means the GPU waited for the CPU: the cell is launch-bound.

What is compared is measured in interleaved rounds (measure_rounds): every Timed of a group takes one value per
round, in an order shuffled per round from a recorded seed, each value right after one un-timed call of its own, so
a disturbance lasting a second lands on values of every side instead of all values of one side, and each value of A
has a partner of B taken moments apart (same process, same round) for the paired judge (kanbench.analysis.judge).
"""

from __future__ import annotations

import functools
import math
import os
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from ..suite import CLOCKS as CLOCKS_KNOWN

MAX_LOOPS = 1_000_000

# "wall": time.perf_counter, what a user waits. "thread": the calling thread's CPU time, which leaves out the time
# a shared machine's scheduler takes the thread off its core; only meaningful on CPU with one torch thread.
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "thread": time.thread_time}
# "instructions": instructions executed, counted by valgrind's callgrind in a worker that runs under it
# (kanbench.measure.pool starts such workers); deterministic where wall time is noisy, so the CI gate can use it.
CALLGRIND_DIR_ENV = "KANBENCH_CALLGRIND_DIR"  # set by the valgrind wrapper of a worker: where its dumps go


@dataclass
class Measurement:
    """Raw per-call values of one phase in one process, and the loops each value averaged over."""

    values: list[float]
    loops: int
    host_values: list[float] | None = None  # with a Split: host seconds per call of issuing them, beside values


class EventClock:
    """Device seconds of timed regions from events recorded on the device's stream.

    start() and stop() record an event each and never wait; take() waits for the last event once and returns the
    seconds between each start and its stop since the previous take(), summed. make_event builds one event with
    record(), synchronize() and elapsed_time(other) -> milliseconds (torch.cuda.Event; tests inject fakes).
    """

    def __init__(self, make_event: Callable[[], Any]) -> None:
        self.make_event = make_event
        self.pairs: list[tuple[Any, Any]] = []
        self.opened: Any = None

    def start(self) -> None:
        self.opened = self.make_event()
        self.opened.record()

    def stop(self) -> None:
        end = self.make_event()
        end.record()
        self.pairs.append((self.opened, end))
        self.opened = None

    def take(self) -> float:
        if not self.pairs:
            return 0.0
        self.pairs[-1][1].synchronize()
        total = sum(start.elapsed_time(end) for start, end in self.pairs) / 1e3
        self.pairs.clear()
        return total


@dataclass
class Split:
    """Event-timed regions: a run returns the events' device seconds and leaves its host seconds in `host`."""

    events: EventClock
    host: float = 0.0


def split_for(device: torch.device) -> Split | None:
    """A Split timed by CUDA events on a CUDA device; None on CPU, whose work the host clock sees whole."""
    if device.type != "cuda":
        return None
    return Split(EventClock(lambda: torch.cuda.Event(enable_timing=True)))


class InstructionClock:
    """Instructions counted by callgrind between the two readings of each pair; call it in start/stop pairs.

    The first reading of a pair switches collection on, the second switches it off and dumps the counts (callgrind
    zeroes them on a dump), so the total grows by what ran in between only. toggle / toggle_and_dump are torch's
    callgrind client requests; read_dump(n) returns the instruction total of the n-th dump. Tests inject fakes.
    """

    def __init__(self, toggle: Callable[[], None], toggle_and_dump: Callable[[], None],
                 read_dump: Callable[[int], int]) -> None:  # fmt: skip
        self.toggle, self.toggle_and_dump, self.read_dump = toggle, toggle_and_dump, read_dump
        self.total = 0
        self.dumps = 0
        self.collecting = False

    def abandon(self) -> None:
        """End a pair that an exception left open, discarding its count, so the next reading starts a pair."""
        if self.collecting:
            before = self.total
            self()
            self.total = before

    def __call__(self) -> float:
        if not self.collecting:
            self.collecting = True
            self.toggle()
            return float(self.total)
        self.toggle_and_dump()
        self.collecting = False
        self.dumps += 1
        self.total += self.read_dump(self.dumps)
        return float(self.total)


def dump_total(path: str) -> int:
    """The instruction total ("totals:" line, else "summary:") of one callgrind output file."""
    found = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(("totals:", "summary:")):
                found = int(line.split()[1])
    if found is None:
        raise RuntimeError(f"{path}: no 'totals:' or 'summary:' line; is this a callgrind output file?")
    return found


@functools.cache
def callgrind_clock() -> InstructionClock:
    """The instruction clock of this process, which must run under callgrind (see kanbench.measure.pool).

    One per process: callgrind numbers its dumps per process, and the clock's dump count must follow it. The worker
    starts with instrumentation off (importing torch under full instrumentation takes minutes); it is switched on
    here, before the first count, with callgrind_control.
    """
    import subprocess

    directory = os.environ.get(CALLGRIND_DIR_ENV)
    if not directory:
        raise RuntimeError(
            'clock = "instructions" needs a worker started under valgrind --tool=callgrind (kanbench run does '
            f"this when valgrind is installed; {CALLGRIND_DIR_ENV} is not set in this process)"
        )
    if not torch._C._valgrind_supported_platform():
        raise RuntimeError('clock = "instructions": this torch build has no valgrind client requests')
    pid = os.getpid()  # valgrind runs its client in its own process: the dumps carry this pid
    try:
        switched = subprocess.run(["callgrind_control", "--instr=on", str(pid)], capture_output=True, text=True,
                                  timeout=120)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"callgrind_control (part of valgrind) could not switch instrumentation on: {exc}") from None
    if switched.returncode != 0 or "OK" not in switched.stdout:
        said = (switched.stdout + switched.stderr).strip()[-300:]
        raise RuntimeError(f"callgrind_control --instr=on {pid} failed ({switched.returncode}): {said}")

    def read_dump(n: int) -> int:
        path = os.path.join(directory, f"callgrind.out.{pid}.{n}")
        try:
            return dump_total(path)
        finally:
            if os.path.exists(path):
                os.remove(path)  # one dump per measured value: keep the disk clear

    return InstructionClock(torch._C._valgrind_toggle, torch._C._valgrind_toggle_and_dump_stats, read_dump)


def make_clock(name: str) -> Callable[[], float]:
    """The clock a suite's [timing].clock names."""
    if name == "instructions":
        return callgrind_clock()
    try:
        return CLOCKS[name]
    except KeyError:
        raise ValueError(f"unknown clock {name!r}; known: {', '.join(CLOCKS_KNOWN)}") from None


def synchronizer(device: torch.device) -> Callable[[], None]:
    """A function that waits for all queued work on device (a no-op on CPU)."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def loop_timer(
    call: Callable[[], object],
    sync: Callable[[], None],
    context: Callable[[], AbstractContextManager] = nullcontext,
    clock: Callable[[], float] = time.perf_counter,
    split: Split | None = None,
) -> Callable[[int], float]:
    """run(loops) for a call that is timed whole: sync, clock, loops calls, sync, clock, all inside context().

    With a split: sync, clock, start event, loops calls, stop event, clock (the host's issue time, into
    split.host), sync; run returns the device seconds between the events.
    """

    def run(loops: int) -> float:
        with context():
            sync()
            start = clock()
            if split is not None:
                split.events.start()
            for _ in range(loops):
                call()
            if split is not None:
                split.events.stop()
                split.host = clock() - start
                device = split.events.take()
                sync()
                return device
            sync()
            return clock() - start

    return run


def calibrate(run: Callable[[int], float], min_time: float, max_loops: int = MAX_LOOPS) -> int:
    """Smallest power-of-two-ish loop count whose run lasts at least min_time (at most max_loops)."""
    loops = 1
    while loops < max_loops:
        elapsed = run(loops)
        if elapsed >= min_time:
            return loops
        # aim 20% past min_time, but never grow more than 10x at once: the first calls can be slow
        wanted = math.ceil(loops * 1.2 * min_time / max(elapsed, 1e-9))
        loops = min(max(loops * 2, min(wanted, loops * 10)), max_loops)
    return loops


def measure(
    run: Callable[[int], float], warmup: int, min_time: float, values: int, loops: int | None = None,
    split: Split | None = None, after: Callable[[], object] | None = None, max_loops: int = MAX_LOOPS,
) -> Measurement:  # fmt: skip
    """Warm up with `warmup` calls, calibrate loops (unless given; at most max_loops), then take `values` values
    per call (and with a split, the host seconds per call beside each); after(), if given, runs between values,
    outside them (a clock sampler)."""
    if warmup:
        run(warmup)
    loops = loops or calibrate(run, min_time, max_loops)
    out, hosts = [], []
    for _ in range(values):
        out.append(run(loops) / loops)
        if split is not None:
            hosts.append(split.host / loops)
        if after is not None:
            after()
    return Measurement(out, loops, hosts if split is not None else None)


@dataclass
class Timed:
    """One thing measured in interleaved rounds: run(loops) -> clock units, its calibrated loops, what it measured
    (per-call values with their round and position in it; host seconds per call with a split), or why it failed."""

    run: Callable[[int], float]
    loops: int
    split: Split | None = None
    values: list[float] = field(default_factory=list)
    host_values: list[float] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    error: BaseException | None = None


def shuffled_rounds(count: int, rounds: int, seed: int) -> list[list[int]]:
    """Per round, the indices 0..count-1 in an order shuffled by random.Random(seed): the same seed, the same order."""
    rng = random.Random(seed)
    out = []
    for _ in range(rounds):
        order = list(range(count))
        rng.shuffle(order)
        out.append(order)
    return out


def measure_rounds(
    timed: list[Timed], rounds: int, seed: int, after: Callable[[int], object] | None = None,
    poisons: Callable[[BaseException], bool] = lambda exc: False,
) -> None:  # fmt: skip
    """Take `rounds` values of every Timed, value by value in shuffled rounds (shuffled_rounds(len(timed), ...)).

    Before each value its Timed makes one un-timed call, so every value starts from that model's own state in the
    caches rather than whatever ran before it. after(i) runs after each value of timed[i], outside it. An exception
    fails that Timed alone (its error kept, the others go on), unless poisons(exc): then every Timed not yet failed
    gets it too and the rounds end (a CUDA error that breaks the process's context).
    """
    for r, order in enumerate(shuffled_rounds(len(timed), rounds, seed)):
        for position, i in enumerate(order):
            t = timed[i]
            if t.error is not None:
                continue
            try:
                t.run(1)
                elapsed = t.run(t.loops)
            except Exception as exc:
                t.error = exc
                if poisons(exc):
                    for other in timed:
                        other.error = other.error or exc
                    return
                continue
            t.values.append(elapsed / t.loops)
            t.rounds.append(r)
            t.positions.append(position)
            if t.split is not None:
                t.host_values.append(t.split.host / t.loops)
            if after is not None:
                after(i)
