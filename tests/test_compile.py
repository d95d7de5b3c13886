"""Compiled cells really compile: one worker process measuring several, FLOPs counted, none falling back to eager."""

from __future__ import annotations

import pytest
import torch

from kanbench.measure import compilation, worker

TIMING = {"warmup": 0, "min_time": 0.0002, "values": 2, "clock": "wall"}


def cell(impl: str, widths: list[int], compile: bool = True) -> dict:
    return {"impl": impl, "widths": widths, "grid_size": 3, "spline_order": 3, "batch_size": 4, "device": "cpu",
            "dtype": "float32", "options": {}, "compile": compile}  # fmt: skip


def measure(c: dict) -> dict:
    return worker.measure_cell(c, f"hash-{c['impl']}-{c['widths']}", ["forward", "backward"], TIMING, 60.0, True)


def test_compiled_cells_in_one_process_each_compile_their_whole_model():
    # bspline, fastkan and rswaf share LayerStack.forward. Counting FLOPs on the first compiled model used to make
    # dynamo skip that code object, so the later models ran it eager (their layers compiled one frame each).
    torch.set_num_threads(1)
    for impl in ("bspline", "fastkan", "rswaf"):
        result = measure(cell(impl, [8, 8, 8]))
        assert result["status"] == "ok", result["reason"]
        assert all(e["status"] == "ok" for e in result["phases"].values()), result["phases"]
        compiled = result["compiled"]
        assert compiled["graphs"] >= 1 and compiled["frames"] == 1, (impl, compiled)  # the whole model, one frame
        assert compiled["compile_s"] > 0
        assert result["phases"]["forward"]["flops_counted"] > 0  # counted on the eager module


def test_a_compiled_cell_that_ran_eager_is_an_error():
    with torch.compiler.set_stance("force_eager"):  # compiled models then run eager code
        result = measure(cell("mlp", [8, 8]))
    assert result["compiled"]["graphs"] == 0
    for entry in result["phases"].values():
        assert entry["status"] == "error" and "compiled no graph" in entry["reason"] and "ran eager" in entry["reason"]


def test_eager_cells_carry_no_compile_stats():
    result = measure(cell("mlp", [8, 8], compile=False))
    assert result["status"] == "ok" and "compiled" not in result


def test_fell_back_says_why():
    assert compilation.fell_back({"graphs": 2, "frames": 1, "graph_breaks": 1, "compile_s": 1.0}) is None
    reason = compilation.fell_back({"graphs": 0, "frames": 0, "graph_breaks": 3, "compile_s": 0.0})
    assert reason and "3 graph breaks" in reason and "TORCH_LOGS" in reason


def test_recompile_limit_is_an_error_not_eager_code():
    model = compilation.compile_model(torch.nn.Linear(3, 2))
    assert compilation.eager(model).weight is model.weight
    limit = torch._dynamo.config.recompile_limit
    with pytest.raises(Exception, match="recompile_limit|cache_size_limit"):
        for n in range(1, limit + 3):  # a new input rank each call: a recompile each time
            model(torch.rand(*([1] * n), 3))
