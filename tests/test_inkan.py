"""The inkan adapter, joined through the entry-point group like any third-party implementation."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_SUITE, kanbench

import implementations
from implementations.bspline import bspline_basis, uniform_knots
from kanbench import results


def test_inkan_is_registered_through_the_entry_point():
    assert "inkan" in implementations.names()
    assert "inkan" not in implementations.BUILTIN  # it comes from pyproject's entry point, as a user's would


def test_inkan_basis_is_the_bspline_basis_and_forward_uses_it():
    pytest.importorskip("inkan", reason="the inkan extra is not installed: pip install 'kanbench[inkan]'")
    torch.manual_seed(0)
    model = implementations.get("inkan").build([5, 4, 3], 6, 3)
    x = torch.rand(16, 5) * 2 - 1
    layer = model.layers[0]
    expected = bspline_basis(x, uniform_knots(6, 3, (-1.0, 1.0)).float(), 3)
    assert torch.allclose(layer.basis(x), expected, atol=1e-6)
    features = torch.cat([layer.basis(x).flatten(-2), torch.nn.functional.silu(x)], dim=-1)
    assert torch.allclose(layer(x), features @ layer.layer.weight.T, atol=1e-6)
    assert implementations.get("inkan").param_count([5, 4, 3], 6, 3) == sum(p.numel() for p in model.parameters())
    with pytest.raises(ValueError, match="cubic"):
        implementations.get("inkan").build([5, 4], 6, 2)


def test_missing_inkan_becomes_a_skip_record_with_the_install_hint(tmp_path):
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "inkan.py").write_text("raise ImportError('inkan is not installed here')\n")
    suite = tmp_path / "inkan.toml"
    suite.write_text(TINY_SUITE.replace('"bspline", "fastkan", "rswaf", "mlp"', '"inkan"'))
    out = tmp_path / "run"
    proc = kanbench("run", str(suite), "--out", str(out), "--smoke", "--quiet", env={"PYTHONPATH": f"{blocker}"})
    assert proc.returncode == 0, proc.stderr
    records = results.read_records(out)
    assert records and all(r.status == "skipped" for r in records)
    assert all("pip install 'kanbench[inkan]'" in r.reason for r in records if r.device == "cpu")
