"""flashkan (PyPI 0.2.0), joined through the entry-point group like inkan, against its peer bspline-fast."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

import implementations
from implementations.bspline import bspline_basis, uniform_knots

flashkan = pytest.importorskip(
    "flashkan", reason="the flashkan extra is not installed: pip install 'kanbench[flashkan]'"
)


def test_flashkan_is_registered_through_the_entry_point():
    assert "flashkan" in implementations.names()
    assert "flashkan" not in implementations.BUILTIN
    info = implementations.info("flashkan")
    assert (info.family, info.has_basis, info.target) == ("bspline", True, "implementations.flashkan_model:build")


def test_grid_and_basis_are_bspline_fasts():
    """grid_starts are bspline's knots t_0 .. t_(G+2) on (-1, 1); the G + 3 bases agree up to flashkan's float32
    grid and its 1/6 rounded to 0.16666667 (about 2e-7 in float64)."""
    G = 6
    layer = implementations.get("flashkan").build([4, 3], G, 3).double().layers[0]
    knots = uniform_knots(G, 3, (-1.0, 1.0))
    torch.testing.assert_close(layer.layer.grid_starts, knots[: G + 3], rtol=0, atol=3e-7)  # made in float32
    x = torch.linspace(-1, 1, 2001, dtype=torch.float64).reshape(-1, 1).expand(-1, 4)
    assert layer.basis(x).shape == (2001, 4, G + 3)
    torch.testing.assert_close(layer.basis(x), bspline_basis(x, knots, 3), rtol=0, atol=5e-7)


def test_eager_forward_is_flashkans_own_forward(monkeypatch):
    """Ours runs KANLayer.forward's einsums with the eager basis; KANLayer.forward itself, its compiled basis swapped
    for the eager one, gives the same bits."""
    import flashkan.layer

    torch.manual_seed(0)
    model = implementations.get("flashkan").build([5, 4, 3])
    x = torch.rand(2, 7, 5) * 2 - 1
    monkeypatch.setattr(flashkan.layer, "bspline_basis", flashkan.basis.bspline_basis_eager)
    y = x.reshape(14, 5)
    for layer in model.layers:
        y = layer.layer(y)
    torch.testing.assert_close(model(x), y.reshape(2, 7, 3), rtol=0, atol=0)


@pytest.mark.skipif(
    os.environ.get("CI") != "true" and not os.environ.get("KANBENCH_COMPILE_TESTS"),
    reason="compiles flashkan's basis with torch.compile (~10 s on CPU): set KANBENCH_COMPILE_TESTS=1 (CI runs it)",
)
def test_compile_basis_runs_the_published_forward():
    torch.manual_seed(0)
    eager = implementations.get("flashkan").build([3, 2])
    compiled = implementations.get("flashkan").build([3, 2], compile_basis=True)
    compiled.load_state_dict(eager.state_dict())
    x = torch.rand(4, 3) * 2 - 1
    torch.testing.assert_close(compiled(x), eager(x), rtol=1e-5, atol=1e-6)


def test_same_coefficients_same_function_as_bspline_fast():
    """flashkan's layer is bspline's formula with the spline scaler fixed to 1: copying its coefficients into
    bspline-fast (scaler = 1) gives the same function on the grid."""
    torch.manual_seed(0)
    G, widths = 5, [4, 6, 3]
    fk = implementations.get("flashkan").build(widths, G, 3).double()
    bf = implementations.get("bspline-fast").build(widths, G, 3).double()
    with torch.no_grad():
        for f, b in zip(fk.layers, bf.layers):
            b.spline_weight.copy_(f.layer.spline_weight)
            b.base_weight.copy_(f.layer.base_weight)
            b.spline_scaler.fill_(1.0)
    x = torch.rand(32, 4, dtype=torch.float64) * 1.9 - 0.95
    torch.testing.assert_close(fk(x), bf(x), rtol=0, atol=1e-5)
    layer = fk.layers[0].layer
    assert layer.spline_weight.shape == (6, 4, G + 3) and layer.base_weight.shape == (6, 4)
    assert isinstance(layer.base_activation, torch.nn.SiLU)
    torch.testing.assert_close(layer.base_activation(x), F.silu(x))


def test_where_the_formulas_differ_right_of_the_grid():
    """Right of the grid every basis is zero, but flashkan's truncated powers cancel there in float32 only
    approximately (bspline-fast folds them about each basis' centre and gets exact zeros)."""
    x = torch.linspace(2.3, 10.0, 5001).reshape(-1, 1)
    flash = implementations.get("flashkan").build([1, 1]).layers[0].basis(x)
    fast = implementations.get("bspline-fast").build([1, 1]).layers[0].basis(x)
    assert fast.abs().max() == 0
    assert 1e-4 < flash.abs().max() < 1e-1


def test_counts_and_refusals():
    a = implementations.get("flashkan")
    model = a.build([5, 4, 3], 7, 3)
    assert a.param_count([5, 4, 3], 7, 3) == sum(p.numel() for p in model.parameters()) == (20 + 12) * (7 + 3 + 1)
    assert implementations.get("bspline-fast").param_count([5, 4, 3], 7, 3) == (20 + 12) * (7 + 3 + 2)
    with pytest.raises(ValueError, match="cubic"):
        a.build([5, 4], 5, 2)
