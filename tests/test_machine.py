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

    def fake_measure(device, threads):
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
