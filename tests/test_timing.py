"""The timing engine, memory measurement and the slowdown knob, on known cases."""

from __future__ import annotations

import pytest
import torch

from kanbench import memory, timing
from kanbench.phases import slowdown_factor, spin


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
    assert spin(0.002) >= 0.002


def test_thread_clock_counts_cpu_time_of_busy_work():
    import time

    run = timing.loop_timer(lambda: spin(0.002, time.thread_time), lambda: None, clock=timing.CLOCKS["thread"])
    assert run(3) >= 0.006
    sleeping = timing.loop_timer(lambda: time.sleep(0.01), lambda: None, clock=timing.CLOCKS["thread"])
    assert sleeping(2) < 0.01  # a thread that is off its core is not on this clock
