"""B-spline bases of implementations.bspline: knots, partition of unity, non-negativity, local support, zero outside.

What happens at x = b: the order-0 indicators are half-open [t_j, t_j+1), but b = t_(G+k) is an interior knot of the
extended grid, so its indicator [b, b + h) is on and the bases still sum to 1 there. For k >= 1 the bases are
continuous, so the half-open choice changes no value at all; it only decides that at the last extended knot
t_(G+2k) every basis is 0 (the continuous limit anyway). Outside [a, b] the sum falls smoothly from 1 to 0 over the
k extension intervals on each side.
"""

from __future__ import annotations

import pytest
import torch

from implementations.bspline import BSplineKANLayer, bspline_basis, uniform_knots

CASES = [(5, 3, (-1.0, 1.0)), (3, 2, (-1.0, 1.0)), (1, 1, (-1.0, 1.0)), (7, 1, (-2.0, 3.0)), (4, 4, (0.0, 0.5))]
IDS = [f"G{G}-k{k}-[{a},{b}]" for G, k, (a, b) in CASES]


def knots_and_points(G: int, k: int, grid_range: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 knots, and points of [a, b]: a dense grid, every knot in [a, b], a and b themselves."""
    t = uniform_knots(G, k, grid_range)
    a, b = grid_range
    x = torch.cat([torch.linspace(a, b, 1001, dtype=torch.float64), t[k : G + k + 1], torch.tensor([a, b]).double()])
    return t, x


@pytest.mark.parametrize(("G", "k", "grid_range"), CASES, ids=IDS)
def test_uniform_knots(G, k, grid_range):
    a, b = grid_range
    t = uniform_knots(G, k, grid_range)
    h = (b - a) / G
    assert t.dtype == torch.float64 and len(t) == G + 2 * k + 1
    torch.testing.assert_close(t, torch.tensor([a + (j - k) * h for j in range(G + 2 * k + 1)], dtype=torch.float64))
    assert t[k].item() == pytest.approx(a) and t[G + k].item() == pytest.approx(b)


@pytest.mark.parametrize(("G", "k", "grid_range"), CASES, ids=IDS)
def test_partition_of_unity_on_closed_grid(G, k, grid_range):
    t, x = knots_and_points(G, k, grid_range)
    B = bspline_basis(x, t, k)
    assert B.shape == (len(x), G + k)
    torch.testing.assert_close(B.sum(-1), torch.ones(len(x), dtype=torch.float64), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("G", "k", "grid_range"), CASES, ids=IDS)
def test_at_b_and_beyond(G, k, grid_range):
    """At b the sum is 1 (documented above); it falls below 1 just outside [a, b], and is 0 from t_(G+2k) on."""
    a, b = grid_range
    t = uniform_knots(G, k, grid_range)
    h = (b - a) / G
    at = bspline_basis(torch.tensor([a, b], dtype=torch.float64), t, k).sum(-1)
    torch.testing.assert_close(at, torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-12)
    outside = torch.tensor([b + h / 2, a - h / 2], dtype=torch.float64)
    assert (bspline_basis(outside, t, k).sum(-1) < 1 - 1e-6).all()
    end = torch.tensor([t[-1].item(), t[-1].item() + 1e-9, t[0].item() - 1e-9], dtype=torch.float64)
    assert (bspline_basis(end, t, k) == 0).all()


@pytest.mark.parametrize(("G", "k", "grid_range"), CASES, ids=IDS)
def test_non_negative_and_local_support(G, k, grid_range):
    t = uniform_knots(G, k, grid_range)
    x = torch.linspace(t[0].item() - 1, t[-1].item() + 1, 4001, dtype=torch.float64)
    x = torch.cat([x, t])
    B = bspline_basis(x, t, k)
    assert (B >= 0).all()
    assert ((B != 0).sum(-1) <= k + 1).all()


@pytest.mark.parametrize(("G", "k", "grid_range"), CASES, ids=IDS)
def test_support_is_the_k_plus_1_bases_of_the_span(G, k, grid_range):
    """For x strictly inside span [t_j, t_j+1) of [a, b], exactly B_(j-k) .. B_j are positive."""
    t = uniform_knots(G, k, grid_range)
    for j in range(k, G + k):
        x = t[j] + (t[j + 1] - t[j]) * torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
        B = bspline_basis(x, t, k)
        expected = torch.zeros(G + k, dtype=torch.bool)
        expected[j - k : j + 1] = True
        assert ((B > 0) == expected).all(), (j, B)


@pytest.mark.parametrize(("G", "k", "grid_range"), CASES, ids=IDS)
def test_zero_outside_extended_grid(G, k, grid_range):
    t = uniform_knots(G, k, grid_range)
    lo, hi = t[0].item(), t[-1].item()
    x = torch.cat(
        [
            torch.linspace(lo - 10, lo - 1e-9, 50, dtype=torch.float64),
            torch.linspace(hi, hi + 10, 50, dtype=torch.float64),
        ]
    )
    assert (bspline_basis(x, t, k) == 0).all()


@pytest.mark.parametrize(("G", "k", "grid_range"), CASES, ids=IDS)
def test_matches_scipy_design_matrix(G, k, grid_range):
    """An independent reference: scipy's B-spline design matrix on [a, b] (scipy closes the interval at b too)."""
    BSpline = pytest.importorskip("scipy.interpolate", reason="scipy is a kanbench dependency").BSpline
    t, x = knots_and_points(G, k, grid_range)
    reference = torch.from_numpy(BSpline.design_matrix(x.numpy(), t.numpy(), k).toarray())
    torch.testing.assert_close(bspline_basis(x, t, k), reference, rtol=0, atol=1e-12)


def test_shapes_and_batch_dimensions():
    t = uniform_knots(5, 3, (-1.0, 1.0))
    x = torch.rand(2, 3, 4, dtype=torch.float64)
    assert bspline_basis(x, t, 3).shape == (2, 3, 4, 8)


def test_layer_basis_float32():
    """The layer keeps float32 knots; its bases still sum to 1 on [-1, 1] to float32 precision."""
    layer = BSplineKANLayer(2, 1)
    torch.testing.assert_close(layer.knots, uniform_knots(5, 3, (-1.0, 1.0)).float())
    x = torch.linspace(-1, 1, 201).reshape(-1, 1).expand(-1, 2)
    B = layer.basis(x)
    assert B.shape == (201, 2, 8) and B.dtype == torch.float32
    torch.testing.assert_close(B.sum(-1), torch.ones(201, 2), rtol=0, atol=1e-6)


def test_init_is_small_noise():
    """Spline coefficients start as a least-squares fit of noise of scale noise_scale / G: the spline is near zero."""
    torch.manual_seed(0)
    layer = BSplineKANLayer(16, 16)
    assert layer.spline_weight.abs().max() < 0.1
    assert layer.spline_weight.std() > 0
