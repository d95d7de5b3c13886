"""The roofline ceilings: positive, finite, and measured once per machine."""

from __future__ import annotations

import math

from kanbench import machine


def test_measure_returns_positive_finite_figures():
    f = machine.measure("cpu", threads=1, gemm_n=128, copy_bytes=2**20)
    assert math.isfinite(f["peak_flop_per_s"]) and f["peak_flop_per_s"] > 1e6
    assert math.isfinite(f["peak_bytes_per_s"]) and f["peak_bytes_per_s"] > 1e6


def test_figures_are_cached_per_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("KANBENCH_CACHE", str(tmp_path))
    calls = []

    def fake_measure(device, threads, dtype="float32"):
        calls.append((device, threads))
        return {"device": device, "threads": threads, "peak_flop_per_s": 1e9, "peak_bytes_per_s": 1e9, "method": "x"}

    monkeypatch.setattr(machine, "measure", fake_measure)
    assert machine.figures("cpu", 1, measure_missing=False) is None and not calls
    first = machine.figures("cpu", 1)
    again = machine.figures("cpu", 1)
    assert first == again and calls == [("cpu", 1)]  # the second call reads the cache
    machine.figures("cpu", 2)  # another thread count is another machine configuration
    assert calls == [("cpu", 1), ("cpu", 2)]
    assert (tmp_path / "machine.json").exists()


def test_machine_peak_shapes():
    assert machine.peak_for({"peak_flop_per_s": 1e12}, "peak_flop_per_s", "cuda:0", "float32") == 1e12
    assert machine.peak_for({"peak_flop_per_s": {"float32": 2e12}}, "peak_flop_per_s", "cpu", "float32") == 2e12
    nested = {"peak_flop_per_s": {"cuda": {"float32": 3e12, "bfloat16": 9e12}}}
    assert machine.peak_for(nested, "peak_flop_per_s", "cuda:0", "bfloat16") == 9e12
    assert machine.peak_for(nested, "peak_flop_per_s", "cpu", "float32") is None
    assert machine.peak_for(None, "peak_flop_per_s", "cpu", "float32") is None
    assert machine.peak_for({}, "peak_bytes_per_s", "cpu", "float32") is None
    # a run over several devices keeps each device's ceilings apart
    run = {"peak_flop_per_s": 1.0, "by_device": {"cuda": {"peak_flop_per_s": {"float32": 5e13, "bfloat16": 7e14}}}}
    assert machine.peak_for(run, "peak_flop_per_s", "cuda:0", "bfloat16") == 7e14
    assert machine.peak_for(run, "peak_flop_per_s", "cuda", "float16") is None  # never another dtype's ceiling
