"""The bspline implementation against the original KAN (PyPI pykan, module kan): same bases, same layer, same model."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("kan", reason="pykan is the optional extra kanbench[pykan]; tox -e test installs it")
from kan.KANLayer import KANLayer  # noqa: E402
from kan.spline import B_batch  # noqa: E402

import implementations  # noqa: E402
from implementations.bspline import BSplineKANLayer, bspline_basis, uniform_knots  # noqa: E402

CASES = [(5, 3), (3, 2), (1, 1), (7, 1), (4, 4)]


def points(n: int, width: int, seed: int = 0) -> torch.Tensor:
    """float64 points over the extended grid and a little beyond, where both must also agree (on zero)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, width, generator=g, dtype=torch.float64) * 6 - 3


def copy_pykan_into_bspline(kl: torch.nn.Module, bl: BSplineKANLayer) -> None:
    """pykan's (in, out[, K]) parameters in the bspline layer's (out, in[, K]) layout."""
    with torch.no_grad():
        bl.base_weight.copy_(kl.scale_base.T)
        bl.spline_weight.copy_(kl.coef.permute(1, 0, 2))
        bl.spline_scaler.copy_(kl.scale_sp.T)


@pytest.mark.parametrize(("G", "k"), CASES)
def test_basis_equals_pykan_B_batch_on_the_same_grid(G, k):
    kl = KANLayer(in_dim=3, out_dim=2, num=G, k=k)
    grid = kl.grid.double()  # (in, G + 2k + 1), every row the same uniform extended grid
    x = points(500, 3)
    reference = B_batch(x, grid, k=k)
    torch.testing.assert_close(bspline_basis(x, grid[0], k), reference, rtol=0, atol=1e-12)
    # our own knots (built in float64) against pykan's (extended in float32): equal to 1e-6
    torch.testing.assert_close(uniform_knots(G, k, (-1.0, 1.0)), grid[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(bspline_basis(x, uniform_knots(G, k, (-1.0, 1.0)), k), reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("G", "k"), CASES)
def test_layer_with_pykan_coefficients_gives_pykan_output(G, k):
    torch.manual_seed(0)
    kl = KANLayer(in_dim=3, out_dim=4, num=G, k=k).double()
    with torch.no_grad():  # non-trivial scales, so a mix-up of base and spline scale shows
        kl.scale_base.copy_(torch.randn_like(kl.scale_base))
        kl.scale_sp.copy_(torch.randn_like(kl.scale_sp))
        kl.coef.copy_(torch.randn_like(kl.coef))
    bl = BSplineKANLayer(3, 4, G, k).double()
    copy_pykan_into_bspline(kl, bl)
    x = points(200, 3) / 2
    y_pykan, *_ = kl(x)
    torch.testing.assert_close(bl(x), y_pykan, rtol=0, atol=1e-6)


def test_model_with_pykan_coefficients_gives_pykan_output():
    """The whole adapter-built MultKAN (speed configuration) against a bspline stack holding its coefficients."""
    widths = [3, 5, 2]
    pk = implementations.get("pykan").build(widths, grid_size=5, spline_order=3).double()
    bs = implementations.get("bspline").build(widths, grid_size=5, spline_order=3).double()
    for player, blayer in zip(pk.layers, bs.layers):
        copy_pykan_into_bspline(player.layer, blayer)
    x = points(64, 3) / 3
    with torch.no_grad():
        torch.testing.assert_close(bs(x), pk(x), rtol=0, atol=1e-6)
        for player, blayer in zip(pk.layers, bs.layers):
            torch.testing.assert_close(player.basis(x), blayer.basis(x), rtol=0, atol=1e-6)
            x = blayer(x)


def test_adapter_builds_the_speed_configuration():
    model = implementations.get("pykan").build([3, 4, 2], grid_size=4, spline_order=2)
    assert model.kan.symbolic_enabled is False
    assert model.kan.save_act is False
    assert model.kan.auto_save is False
    assert [(layer.layer.num, layer.layer.k) for layer in model.layers] == [(4, 2), (4, 2)]
    assert model.layers[0].layer.grid[0, 2].item() == pytest.approx(-1.0)  # grid [-1, 1] like the bspline KAN


def test_adapter_keeps_the_callers_random_stream():
    """MultKAN reseeds torch's global RNG; the adapter restores the caller's state afterwards."""
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    implementations.get("pykan").build([2, 2], seed=7)
    after = torch.rand(4)
    torch.random.set_rng_state(state)
    torch.testing.assert_close(after, torch.rand(4))
