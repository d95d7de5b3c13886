"""[timing].cache = "cold" and [timing].cuda_graphs: in the cell's key and label, timed as they say."""

from __future__ import annotations

import types

import pytest
import torch
from conftest import TINY_SUITE

from kanbench.errors import UsageError
from kanbench.measure import phases, timing, worker
from kanbench.suite import parse

COLD = TINY_SUITE.replace("threads = 1", 'threads = 1\ncache = "cold"')
GRAPHS = TINY_SUITE.replace("threads = 1", "threads = 1\ncuda_graphs = true")


def test_modes_make_their_own_cells_and_labels():
    hot = parse(TINY_SUITE).cells()
    cold, graphs = parse(COLD).cells(), parse(GRAPHS).cells()
    assert {c.config_hash for c in hot}.isdisjoint(c.config_hash for c in cold + graphs)
    assert "modes" not in hot[0].key  # default cells keep the hashes they had before the modes existed
    assert cold[0].key["modes"] == {"cache": "cold"} and graphs[0].key["modes"] == {"cuda_graphs": True}
    assert cold[0].label().startswith(f"{cold[0].impl}+cold ") and graphs[0].label().startswith(f"{hot[0].impl}+graphs")


@pytest.mark.parametrize(
    ("change", "needle"),
    [('cache = "warm"', r"\[timing\].cache: 'warm' is not allowed; allowed: hot, cold"),
     ('cuda_graphs = "yes"', r"\[timing\].cuda_graphs: must be true or false"),
     ('cache = "cold"\nclock = "thread"', r'thread cannot go with cache = "cold" or cuda_graphs')],
)  # fmt: skip
def test_bad_modes_are_usage_errors(change, needle):
    text = TINY_SUITE.replace('device = ["cpu", "cuda"]', 'device = ["cpu"]')
    with pytest.raises(UsageError, match=needle):
        parse(text.replace("threads = 1", f"threads = 1\n{change}"))


class Cache:
    """A simulated cache: a call costs 1.0 when it starts cold, 0.1 when the previous call left it warm."""

    def __init__(self):
        self.now, self.warm, self.flushes = 0.0, False, 0

    def clock(self) -> float:
        return self.now

    def call(self) -> None:
        self.now += 0.1 if self.warm else 1.0
        self.warm = True

    def flush(self) -> None:
        self.now += 5.0  # flushing takes long, and must not be on the clock
        self.warm, self.flushes = False, self.flushes + 1


def workload(cache: Cache) -> phases.Workload:
    x = torch.zeros(1, 1)
    return phases.Workload(torch.nn.Identity(), x, x, x, None, lambda: None, cache.clock)


def test_a_cold_cell_times_every_call_after_a_flush_and_never_the_flush():
    cache = Cache()
    cold = phases.per_call_run(cache.flush, lambda _: cache.call(), workload(cache))
    m = timing.measure(cold, 0, 0.0, 3, loops=4)
    assert m.values == pytest.approx([1.0] * 3) and cache.flushes == 12
    hot = timing.loop_timer(cache.call, lambda: None, clock=cache.clock)
    assert timing.measure(hot, 1, 0.0, 3, loops=4).values == pytest.approx([0.1] * 3)  # what cold mode corrects


def test_a_cold_cpu_cell_flushes_twice_the_last_level_cache_and_bounds_its_loops(monkeypatch):
    assert phases.cache_bytes(torch.device("cpu")) >= 2**20
    flushed = []
    real = phases.cache_flusher

    def counting(device, nbytes=None):
        flush = real(device, 2**20)
        return lambda: (flushed.append(1), flush())

    monkeypatch.setattr(phases, "cache_flusher", counting)
    cell = {"impl": "mlp", "widths": [4, 3], "grid_size": 3, "spline_order": 3, "batch_size": 2, "device": "cpu",
            "dtype": "float32", "options": {}, "modes": {"cache": "cold"}}  # fmt: skip
    t = {"warmup": 0, "min_time": 1.0, "values": 2, "clock": "wall"}  # 1 s a value: the loop bound stops it first
    result = worker.measure_cell(cell, "h", ["forward", "backward"], t, 60.0, False)
    assert all(p["status"] == "ok" and p["loops"] <= worker.COLD_MAX_LOOPS for p in result["phases"].values())
    assert len(flushed) >= 2 * 2 * result["phases"]["forward"]["loops"]  # every timed call, both phases


def test_cuda_graph_cells_say_why_they_cannot_run_here():
    cell = {"impl": "mlp", "widths": [4, 3], "grid_size": 3, "spline_order": 3, "batch_size": 2, "device": "cpu",
            "dtype": "float32", "options": {}, "modes": {"cuda_graphs": True}}  # fmt: skip
    t = {"warmup": 0, "min_time": 0.0001, "values": 2, "clock": "wall"}
    result = worker.measure_cell(cell, "h", ["forward", "train_step"], t, 60.0, False)
    assert {p["status"] for p in result["phases"].values()} == {"skipped"}
    assert "cuda_graphs needs a CUDA device; this cell is on cpu" in result["phases"]["forward"]["reason"]
    w, _ = worker.build_workload(cell, "h")
    w.x = types.SimpleNamespace(device=torch.device("cuda", 0))  # all graph_problem reads of a CUDA workload
    assert phases.graph_problem("forward", w, compiled=False) is None
    assert "cannot rebuild the autograd graph" in phases.graph_problem("backward", w, compiled=False)
    assert "mode='reduce-overhead'" in phases.graph_problem("train_step", w, compiled=True)
    w.scaler = object()
    assert "GradScaler" in phases.graph_problem("train_step", w, compiled=False)
