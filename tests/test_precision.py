"""precision = "amp": a float32 model under autocast to bfloat16 / float16, beside the pure-precision cells."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_SUITE

from kanbench.errors import UsageError
from kanbench.measure import phases, worker
from kanbench.run import speed
from kanbench.suite import impl_label, parse

AMP_SUITE = TINY_SUITE.replace('dtype = ["float32"]', 'dtype = ["float32", "bfloat16"]\nprecision = ["pure", "amp"]')


def test_the_precision_axis_makes_amp_cells_apart_from_pure_ones():
    plain = {c.config_hash for c in parse(TINY_SUITE).cells()}
    cells = parse(AMP_SUITE).cells()
    amp = [c for c in cells if c.precision == "amp"]
    assert amp and all(c.dtype == "bfloat16" for c in amp)  # autocast to float32 would be the pure cell
    assert plain <= {c.config_hash for c in cells}  # pure cells keep the hashes they had before the axis
    assert amp[0].key["precision"] == "amp" and "precision" not in cells[0].key
    assert amp[0].group_key != next(c for c in cells if c.precision == "pure" and c.dtype == "bfloat16").group_key
    assert amp[0].label().startswith(f"{amp[0].impl}+amp ")
    assert impl_label("mlp", {"compile": True, "precision": "amp"}) == "mlp+compile+amp"
    suite = parse(AMP_SUITE)
    assert speed.identity(amp[0], suite).options == {"precision": "amp"}


@pytest.mark.parametrize(
    ("change", "needle"),
    [('precision = ["pure", "amp"]', r'\[axes\].precision: "amp" autocasts to bfloat16 or float16'),
     ('precision = ["fp8"]', r"\[axes\].precision\[0\]: .*allowed: pure, amp")],
)  # fmt: skip
def test_bad_precision_axes_are_usage_errors(change, needle):
    with pytest.raises(UsageError, match=needle):
        parse(TINY_SUITE.replace('dtype = ["float32"]', f'dtype = ["float32"]\n{change}'))


def cell(dtype: str, impl: str = "bspline") -> dict:
    return {"impl": impl, "widths": [6, 5, 3], "grid_size": 3, "spline_order": 3, "batch_size": 4, "device": "cpu",
            "dtype": dtype, "options": {}, "precision": "amp"}  # fmt: skip


def test_an_amp_workload_keeps_float32_weights_and_computes_under_autocast():
    w, _ = worker.build_workload(cell("bfloat16"), "h")
    assert {p.dtype for p in w.model.parameters()} == {torch.float32} and w.x.dtype == torch.float32
    out = phases.forward_call(w)()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = w.model(w.x)
    assert out.dtype == torch.bfloat16 and torch.equal(out, expected)
    assert w.scaler is None  # bfloat16 needs no loss scaling


def test_a_float16_amp_train_step_scales_the_loss_and_updates_the_weights():
    w, _ = worker.build_workload(cell("float16", "mlp"), "h")
    assert isinstance(w.scaler, torch.amp.GradScaler)
    before = [p.detach().clone() for p in w.model.parameters()]
    loss = phases.train_step_call(w)()
    assert loss.dtype == torch.float32  # mse_loss runs in float32 under autocast
    assert w.scaler.get_scale() > 0 and any(not torch.equal(a, p) for a, p in zip(before, w.model.parameters()))


def test_every_phase_of_an_amp_cell_measures():
    timing = {"warmup": 0, "min_time": 0.0001, "values": 2, "clock": "wall"}
    result = worker.measure_cell(cell("bfloat16"), "h", ["forward", "forward_inference", "backward", "train_step"],
                                 timing, 60.0, True)  # fmt: skip
    assert result["status"] == "ok", result
    assert all(p["status"] == "ok" and p["flops_counted"] > 0 for p in result["phases"].values()), result["phases"]
