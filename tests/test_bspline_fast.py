"""bspline-fast is the same function as bspline: values and gradients, on knots and outside the grid."""

from __future__ import annotations

import pytest
import torch

import implementations
from implementations.bspline import BSplineKANLayer, bspline_basis
from implementations.bspline_fast import BSplineFastKANLayer, cardinal_terms, span_polynomials


@pytest.fixture
def default_dtype():
    saved = torch.get_default_dtype()
    yield torch.set_default_dtype
    torch.set_default_dtype(saved)


def probe_inputs(knots: torch.Tensor, n_in: int, gen: torch.Generator) -> torch.Tensor:
    """Every knot exactly, the grid's ends, and random points over and beyond the extended grid."""
    exact = torch.cat([knots, torch.tensor([-1.0, 1.0], dtype=knots.dtype)]).unsqueeze(-1).expand(-1, n_in)
    spread = torch.rand(64, n_in, generator=gen, dtype=knots.dtype) * 4 - 2
    return torch.cat([exact, spread]).requires_grad_()


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("contraction", ["dense", "gather"])
def test_outputs_and_gradients_equal_bspline(default_dtype, dtype, tol, contraction):
    default_dtype(dtype)  # build in the dtype, so knots are exact in it
    gen = torch.Generator().manual_seed(0)
    for k in (1, 2, 3):
        for grid_size in (1, 2, 5, 11, 30):
            n_in, n_out = int(torch.randint(1, 7, (1,), generator=gen)), int(torch.randint(1, 5, (1,), generator=gen))
            ref = BSplineKANLayer(n_in, n_out, grid_size, k)
            fast = BSplineFastKANLayer(n_in, n_out, grid_size, k, contraction=contraction)
            fast.load_state_dict(ref.state_dict())  # same parameters, same names
            x = probe_inputs(ref.knots, n_in, gen)
            weight = torch.randn(x.shape[0], n_out, generator=gen, dtype=dtype)
            a, b = ref(x), fast(x)
            grads_a = torch.autograd.grad((a * weight).sum(), [x, *ref.parameters()])
            grads_b = torch.autograd.grad((b * weight).sum(), [x, *fast.parameters()])
            scale = a.abs().max().clamp_min(1e-30)
            assert ((a - b).abs().max() / scale) < tol, (k, grid_size)
            for ga, gb in zip(grads_a, grads_b):
                assert ((ga - gb).abs().max() / ga.abs().max().clamp_min(1e-30)) < tol, (k, grid_size)
            assert torch.allclose(ref.basis(x), fast.basis(x), rtol=0, atol=tol)


@pytest.mark.parametrize("grid_size", [100, 300])
def test_large_grids_in_float32_are_as_close_to_float64_as_bspline_is(default_dtype, grid_size):
    """At large G float32 rounding of w = x / h grows with G in both layers; neither is the exact one."""
    default_dtype(torch.float64)
    exact = BSplineKANLayer(6, 4, grid_size, 3)
    default_dtype(torch.float32)
    ref, fast = BSplineKANLayer(6, 4, grid_size, 3), BSplineFastKANLayer(6, 4, grid_size, 3)
    ref.load_state_dict(exact.state_dict())
    fast.load_state_dict(exact.state_dict())
    gen = torch.Generator().manual_seed(grid_size)
    x = torch.rand(256, 6, generator=gen, dtype=torch.float64) * 4 - 2
    weight = torch.randn(256, 4, generator=gen, dtype=torch.float64)
    truth = torch.autograd.grad((exact(x) * weight).sum(), list(exact.parameters()))
    errors = {}
    for name, layer in (("bspline", ref), ("bspline-fast", fast)):
        grads = torch.autograd.grad((layer(x.float()) * weight.float()).sum(), list(layer.parameters()))
        errors[name] = max(float((g.double() - t).abs().max() / t.abs().max()) for g, t in zip(grads, truth))
    assert errors["bspline-fast"] < max(3 * errors["bspline"], 1e-5), errors
    default_dtype(torch.float64)
    fast64 = BSplineFastKANLayer(6, 4, grid_size, 3)
    fast64.load_state_dict(exact.state_dict())
    assert torch.allclose(fast64(x), exact(x), rtol=0, atol=1e-10 * float(exact(x).abs().max()))


def test_span_polynomials_are_the_uniform_cubic_pieces():
    expected = torch.tensor([[1, 4, 1, 0], [-3, 0, 3, 0], [3, -6, 3, 0], [-1, 3, -3, 1]], dtype=torch.float64) / 6
    assert torch.allclose(span_polynomials(3), expected, atol=1e-15)


def test_local_bases_match_cox_de_boor_everywhere(default_dtype):
    default_dtype(torch.float64)
    layer = BSplineFastKANLayer(1, 1, 7, 3)
    x = torch.linspace(-3, 3, 2001, dtype=torch.float64).unsqueeze(-1)
    assert torch.allclose(layer.basis(x), bspline_basis(x, layer.knots, 3), atol=1e-13)


def test_gradcheck_and_registry():
    model = implementations.get("bspline-fast").build([3, 4, 2], 4, 3).double()
    x = (torch.rand(6, 3, dtype=torch.float64) * 1.8 - 0.9).requires_grad_()
    assert torch.autograd.gradcheck(model, (x,), eps=1e-6, atol=1e-6)
    a = implementations.get("bspline-fast")
    assert a.param_count([784, 64, 10]) == implementations.get("bspline").param_count([784, 64, 10])
    assert a.family == "bspline"
    with pytest.raises(ValueError, match="contraction"):
        a.build([3, 2], contraction="sparse")


def test_constants_follow_loads_and_moves():
    """The closed form's constants come from the knots: after meta init + load, after a dtype move, and never from
    knots that are not uniform."""
    ref = implementations.get("bspline").build([3, 2], 5, 3)
    with torch.device("meta"):
        fast = implementations.get("bspline-fast").build([3, 2], 5, 3)
    fast = fast.to_empty(device="cpu")
    fast.load_state_dict(ref.state_dict())
    x = torch.rand(7, 3) * 2.4 - 1.2
    torch.testing.assert_close(fast(x), ref(x), rtol=1e-5, atol=1e-6)
    layer = fast.double().layers[0]  # re-derived in float64 from the knots, not float32 offsets converted
    sigma, _ = cardinal_terms(3)
    derived = (layer.knots[: layer.num_basis] / layer.h + 2) * sigma
    assert layer.offsets.dtype == torch.float64 and torch.allclose(layer.offsets[:, 0], derived, rtol=0, atol=1e-14)
    assert not torch.equal(layer.offsets[:, 0], derived.float().double())
    bad = dict(ref.state_dict())
    bad["layers.0.knots"] = bad["layers.0.knots"] ** 3
    with pytest.raises(ValueError, match="uniformly spaced knots"):
        implementations.get("bspline-fast").build([3, 2], 5, 3).load_state_dict(bad)


def test_a_move_over_knots_that_are_not_numbers_leaves_them_for_the_load():
    """to_empty leaves whatever the memory held: NaN there must not make the move fail, only a strict load."""
    layer = implementations.get("bspline-fast").build([3, 2], 5, 3).layers[0]
    with torch.no_grad():
        layer.knots.fill_(float("nan"))
    layer.double()  # the move re-derives constants, non-strictly: garbage is skipped, not an error
    with pytest.raises(ValueError, match="uniformly spaced knots"):
        layer._read_knots()  # what a load does
