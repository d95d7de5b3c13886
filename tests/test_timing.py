"""The timing engine, memory measurement and the slowdown knob, on known cases."""

from __future__ import annotations

import pytest
import torch

from kanbench.measure import memory, phases, timing
from kanbench.measure.phases import slowdown_factor
from kanbench.suite import COUNT_LOOPS


def spin(seconds: float, clock=None) -> None:
    """Busy-wait for seconds on clock."""
    import time

    clock = clock or time.perf_counter
    start = clock()
    while clock() - start < seconds:
        pass


def test_calibration_reaches_min_time_and_measure_keeps_every_value():
    calls = []

    def run(loops: int) -> float:  # a fake clock: 100 us per call
        calls.append(loops)
        return loops * 1e-4

    m = timing.measure(run, warmup=3, min_time=0.01, values=4)
    assert calls[0] == 3  # warm-up first
    assert m.loops * 1e-4 >= 0.01 and m.loops < 1000
    assert m.values == pytest.approx([1e-4] * 4)


def test_loop_timer_syncs_at_both_ends():
    events = []
    run = timing.loop_timer(lambda: events.append("call"), lambda: events.append("sync"))
    run(3)
    assert events == ["sync", "call", "call", "call", "sync"]


def test_cpu_peak_of_one_matmul_is_its_output():
    a, b = torch.randn(64, 128), torch.randn(128, 100)
    assert memory.peak_bytes(lambda: a @ b, torch.device("cpu")) == 64 * 100 * 4


def test_cpu_peak_counts_temporaries_freed_inside_the_call():
    x = torch.randn(1000)

    def call():
        t = x * 2  # 4000 bytes, freed before the result is made
        return (t + 1).sum()

    assert memory.peak_bytes(call, torch.device("cpu")) >= 8000  # t and t + 1 live together


def test_slowdown_knob():
    assert slowdown_factor("bspline", "") == 1.0
    assert slowdown_factor("bspline", "fastkan=2,bspline=1.15") == 1.15
    assert slowdown_factor("mlp", "bspline=1.15") == 1.0
    with pytest.raises(ValueError, match="impl=factor"):
        slowdown_factor("bspline", "bspline=fast")


def test_thread_clock_counts_cpu_time_of_busy_work():
    import time

    run = timing.loop_timer(lambda: spin(0.002, time.thread_time), lambda: None, clock=timing.CLOCKS["thread"])
    assert run(3) >= 0.006
    sleeping = timing.loop_timer(lambda: time.sleep(0.01), lambda: None, clock=timing.CLOCKS["thread"])
    assert sleeping(2) < 0.01  # a thread that is off its core is not on this clock


class FakeCallgrind:
    """Callgrind's client requests and dumps, with an instruction counter that work advances."""

    def __init__(self) -> None:
        self.count = 0  # instructions executed so far by the "program"
        self.collecting = False
        self.since_dump = 0
        self.dumps: dict[int, int] = {}
        self.dumped = 0

    def work(self, n: int) -> None:
        self.count += n
        if self.collecting:
            self.since_dump += n

    def toggle(self) -> None:
        self.collecting = not self.collecting

    def toggle_and_dump(self) -> None:
        self.toggle()
        self.dumped += 1  # callgrind numbers its dumps 1, 2, ... per process
        self.dumps[self.dumped] = self.since_dump
        self.since_dump = 0  # callgrind zeroes its counters on a dump

    def clock(self) -> timing.InstructionClock:
        return timing.InstructionClock(self.toggle, self.toggle_and_dump, self.dumps.pop)


def test_instruction_clock_counts_only_inside_its_pairs():
    cg = FakeCallgrind()
    clock = cg.clock()
    cg.work(1000)  # before any pair: not counted
    start = clock()
    cg.work(250)
    assert clock() - start == 250
    cg.work(999)  # between pairs (un-timed graph building, say): not counted
    start = clock()
    cg.work(40)
    assert clock() - start == 40
    assert not cg.dumps  # every dump read (and removed)


def test_measure_with_the_instruction_clock_uses_fixed_loops():
    cg = FakeCallgrind()
    clock = cg.clock()
    run = timing.loop_timer(lambda: cg.work(500), lambda: None, clock=clock)
    m = timing.measure(run, warmup=2, min_time=0.01, values=3, loops=COUNT_LOOPS)
    assert m.loops == COUNT_LOOPS and m.values == [500.0] * 3


def test_an_abandoned_pair_leaves_the_clock_ready():
    cg = FakeCallgrind()
    clock = cg.clock()
    clock()  # a pair opened, then the call raised
    cg.work(77)
    clock.abandon()
    start = clock()
    cg.work(5)
    assert clock() - start == 5


def test_dump_total_reads_callgrind_totals(tmp_path):
    dump = tmp_path / "callgrind.out.1.1"
    dump.write_text("# callgrind format\nversion: 1\nevents: Ir\nsummary: 1234\nfn=(1) f\n3 1234\ntotals: 1234\n")
    assert timing.dump_total(str(dump)) == 1234
    (tmp_path / "other").write_text("not a dump\n")
    with pytest.raises(RuntimeError, match="totals"):
        timing.dump_total(str(tmp_path / "other"))


def test_instruction_clock_outside_callgrind_says_what_is_needed(monkeypatch):
    monkeypatch.delenv(timing.CALLGRIND_DIR_ENV, raising=False)
    timing.callgrind_clock.cache_clear()
    with pytest.raises(RuntimeError, match="valgrind"):
        timing.make_clock("instructions")
    with pytest.raises(ValueError, match="known: wall, thread, instructions"):
        timing.make_clock("sundial")


def test_injected_slowdown_is_real_work_inside_the_call():
    """The slowdown adds loop iterations inside the measured call: the instruction clock sees it, as wall does."""
    cg = FakeCallgrind()
    clock = cg.clock()
    per_iteration = 3
    real_busy = phases.busy
    try:
        phases.busy = lambda n: cg.work(per_iteration * n)  # the fake program: busy work costs instructions
        run = timing.loop_timer(lambda: cg.work(10_000), lambda: None, clock=clock)
        n = phases.slowdown_iterations(run, 1.5, clock)
        assert abs(n * per_iteration - 5000) <= per_iteration  # (1.5 - 1) x 10,000 instructions
        slow = timing.loop_timer(phases.with_busy_work(lambda: cg.work(10_000), n), lambda: None, clock=clock)
        assert slow(2) / run(2) == pytest.approx(1.5, rel=1e-3)
    finally:
        phases.busy = real_busy


class FakeGPU:
    """An asynchronous device on a simulated timeline: the host pays `launch` per call, the device `work`.

    Events complete when the work queued before them has run; synchronize() moves the host to the device's end."""

    def __init__(self, launch: float, work: float) -> None:
        self.launch, self.work = launch, work
        self.host = self.device = 0.0
        self.syncs = 0

    def clock(self) -> float:
        return self.host

    def call(self) -> None:
        self.host += self.launch
        self.device = max(self.device, self.host) + self.work

    def sync(self) -> None:
        self.syncs += 1
        self.host = max(self.host, self.device)

    def event(self):
        gpu = self

        class Event:
            def record(self) -> None:
                self.at = max(gpu.device, gpu.host)  # completes once the work queued before it has run
                gpu.device = self.at

            def synchronize(self) -> None:
                gpu.host = max(gpu.host, self.at)

            def elapsed_time(self, end) -> float:
                return (end.at - self.at) * 1e3  # milliseconds, as torch.cuda.Event

        return Event()


@pytest.mark.parametrize(("launch", "work", "bound"), [(1e-6, 1e-4, False), (1e-4, 1e-6, True)])
def test_event_split_gives_device_time_and_the_host_time_beside_it(launch, work, bound):
    gpu = FakeGPU(launch, work)
    split = timing.Split(timing.EventClock(gpu.event))
    run = timing.loop_timer(gpu.call, gpu.sync, clock=gpu.clock, split=split)
    m = timing.measure(run, warmup=1, min_time=0.001, values=3, split=split)
    per_call = max(launch, work)  # the device runs back to back, or waits for each launch
    assert m.values == pytest.approx([per_call] * 3, rel=0.02)
    assert m.host_values == pytest.approx([launch] * 3)
    assert (m.host_values[0] >= m.values[0] * 0.98) is bound  # launch-bound: the host is the bottleneck


def test_event_timed_backward_syncs_once_per_run_not_per_call():
    gpu = FakeGPU(1e-6, 1e-4)

    class Out:
        def backward(self, grad):
            gpu.call()

    class Model:
        def zero_grad(self, set_to_none=True):
            pass

        def __call__(self, x):
            gpu.call()  # the forward that builds the graph: queued, not timed
            return Out()

    split = timing.Split(timing.EventClock(gpu.event))
    w = phases.Workload(Model(), None, None, None, None, gpu.sync, gpu.clock, split)
    run = phases.backward_run(w)
    device = run(5)
    assert gpu.syncs == 1
    assert device == pytest.approx(5 * 1e-4)  # the backwards only, though each forward ran in between on the device
    assert split.host == pytest.approx(5 * 1e-6)


def test_no_split_on_cpu():
    assert timing.split_for(torch.device("cpu")) is None
    m = timing.measure(lambda loops: loops * 1e-3, 0, 0.001, 2)
    assert m.host_values is None


def test_rounds_interleave_every_timed_in_a_seeded_shuffled_order_each_value_after_a_warm_call():
    log: list[tuple[str, int]] = []

    def run_of(name: str, per_call: float):
        def run(loops: int) -> float:
            log.append((name, loops))
            return per_call * loops

        return run

    timed = [timing.Timed(run_of(n, c), 4) for n, c in (("a", 1e-3), ("b", 2e-3), ("c", 3e-3))]
    timing.measure_rounds(timed, rounds=5, seed=42)
    assert [t.values for t in timed] == [[1e-3] * 5, [2e-3] * 5, [3e-3] * 5]
    assert all(t.rounds == [0, 1, 2, 3, 4] for t in timed)
    # every value (loops = 4) right after an un-timed call (loops = 1) of the same Timed
    assert all(log[i][1] == 1 and log[i + 1] == (log[i][0], 4) for i in range(0, len(log), 2))
    values_order = [name for name, loops in log if loops == 4]
    rounds = [values_order[i : i + 3] for i in range(0, 15, 3)]
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds)  # each round holds every Timed once
    expected = [["abc"[i] for i in order] for order in timing.shuffled_rounds(3, 5, 42)]
    assert rounds == expected  # the recorded seed reproduces the order
    assert len({tuple(r) for r in rounds}) > 1  # and it is shuffled
    assert [t.positions for t in timed][0] == [r.index("a") for r in rounds]


def test_rounds_go_on_when_one_timed_fails_and_stop_when_an_error_poisons_the_process():
    def ok(loops: int) -> float:
        return 1e-3 * loops

    def fails_later(loops: int) -> float:
        fails_later.calls += 1  # type: ignore[attr-defined]
        if fails_later.calls > 2:  # type: ignore[attr-defined]
            raise RuntimeError("out of memory")
        return 1e-3 * loops

    fails_later.calls = 0  # type: ignore[attr-defined]
    timed = [timing.Timed(ok, 1), timing.Timed(fails_later, 1)]
    timing.measure_rounds(timed, rounds=3, seed=0)
    assert len(timed[0].values) == 3 and isinstance(timed[1].error, RuntimeError) and len(timed[1].values) == 1

    fails_later.calls = 0  # type: ignore[attr-defined]
    timed = [timing.Timed(ok, 1), timing.Timed(fails_later, 1)]
    timing.measure_rounds(timed, rounds=3, seed=0, poisons=lambda exc: True)
    assert all(isinstance(t.error, RuntimeError) for t in timed)  # the rest stop with it
    assert len(timed[0].values) < 3


def test_interleaved_rounds_on_a_simulated_gpu_time_each_value_by_events_with_one_sync_after_it():
    gpu = FakeGPU(launch=1e-6, work=1e-4)  # one device: both models' work queues on the same timeline
    both = []
    for work in (1e-4, 3e-4):
        split = timing.Split(timing.EventClock(gpu.event))

        def call(work=work):
            gpu.host += gpu.launch
            gpu.device = max(gpu.device, gpu.host) + work

        run = timing.loop_timer(call, gpu.sync, clock=gpu.clock, split=split)
        both.append(timing.Timed(run, 10, split))
    timing.measure_rounds(both, rounds=3, seed=1)
    assert both[0].values == pytest.approx([1e-4] * 3, rel=0.02)
    assert both[1].values == pytest.approx([3e-4] * 3, rel=0.02)
    assert both[0].host_values == pytest.approx([1e-6] * 3)
    # a sync before and after each run (the warm call, then the value), none between its events: 2 x 2 x 2 x 3
    assert gpu.syncs == 2 * 2 * 2 * 3
