"""chebykan, jacobikan, fourierkan and relukan compute their originals' functions, given the same coefficients.

The originals are read from checkouts outside the repository (benchmarks/originals/README.md); a test that needs one
skips, naming the clone command, when it is missing. Where the formulas agree the outputs and gradients agree to
float64 rounding; where they differ (ChebyKAN's arccos at tanh = +-1, FourierKAN's odd basis counts) it says so.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import implementations

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not installed; run from the repository

from benchmarks.originals import _checkout  # noqa: E402
from benchmarks.originals import chebykan as cheby_original  # noqa: E402
from benchmarks.originals import fourierkan as fourier_original  # noqa: E402
from benchmarks.originals import jacobikan as jacobi_original  # noqa: E402
from benchmarks.originals import relukan as relu_original  # noqa: E402

ORIGINALS = {"chebykan": cheby_original, "jacobikan": jacobi_original, "fourierkan": fourier_original}
ORIGINALS["relukan"] = relu_original


def pair(family: str, widths: list[int], G: int, k: int, **options):
    """(ours, the original) in float64 with random coefficients, or a skip naming the missing checkout."""
    if why := ORIGINALS[family].CHECKOUT.missing():
        pytest.skip(why)
    torch.manual_seed(0)
    ours = implementations.get(family).build(widths, G, k, **options).double()
    original = implementations.get(f"benchmarks.originals.{family}:adapter").build(widths, G, k, **options).double()
    with torch.no_grad():
        for p in ours.parameters():
            p.copy_(0.5 * torch.randn_like(p) + 0.1)
    return ours, original


def same_function(ours, original, x: torch.Tensor) -> None:
    """Equal outputs, input gradients and (summed) parameter gradients."""
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1, y2 = ours(x1), original(x2)
    torch.testing.assert_close(y1, y2, rtol=1e-10, atol=1e-10)
    w = torch.randn_like(y1)
    (y1 * w).sum().backward()
    (y2 * w).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-9, atol=1e-9)
    grads = lambda m: sum(p.grad.abs().sum() for p in m.parameters() if p.grad is not None)  # noqa: E731
    torch.testing.assert_close(grads(ours), grads(original), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("options", [{}, {"degree": 4}], ids=str)
def test_chebykan_is_the_original(options):
    ours, original = pair("chebykan", [5, 4, 3], 5, 3, **options)
    with torch.no_grad():
        for a, b in zip(ours.layers, original.layers):
            b.cheby_coeffs.copy_(a.coef.permute(1, 0, 2))  # theirs is (in, out, D + 1), ours (out, in, D + 1)
    same_function(ours, original, torch.randn(2, 6, 5, dtype=torch.float64) * 2)


def test_chebykan_original_gradient_is_nan_where_tanh_saturates_and_ours_is_not():
    """The one difference: cos(d arccos t) at t = 1 has 0 * inf in its derivative; the recurrence has d^2."""
    ours, original = pair("chebykan", [2, 2], 5, 3)
    for model in (ours, original):
        model.float()
    x = torch.tensor([[12.0, 0.3]])
    with torch.no_grad():
        torch.testing.assert_close(ours.layers[0].basis(x)[0, 0], torch.ones(8))  # T_d(1) = 1
    grads = []
    for model in (ours, original):
        xx = x.clone().requires_grad_()
        model(xx).sum().backward()
        grads.append(xx.grad)
    assert torch.isfinite(grads[0]).all()
    assert torch.isnan(grads[1]).any()


def test_jacobikan_original_layer_works_in_the_default_dtype_only_and_the_stack_sets_it():
    """The original JacobiKANLayer makes its basis with torch.ones(...) in the default dtype, whatever x's is: alone
    it fails in float64; the stack sets the default dtype to the input's around it (and puts it back)."""
    ours, original = pair("jacobikan", [3, 2], 4, 2)
    x = torch.rand(4, 3, dtype=torch.float64)
    ours(x)
    with pytest.raises(RuntimeError, match="expected scalar type"):
        original.layers[0](x)
    assert original(x).dtype == torch.float64
    assert torch.get_default_dtype() == torch.float32


@pytest.mark.parametrize("options", [{}, {"a": 0.5, "b": 2.0, "degree": 6}], ids=str)
def test_jacobikan_is_the_original(options):
    ours, original = pair("jacobikan", [5, 4, 3], 4, 2, **options)
    with torch.no_grad():
        for a, b in zip(ours.layers, original.layers):
            b.jacobi_coeffs.copy_(a.coef.permute(1, 0, 2))
    same_function(ours, original, torch.randn(7, 5, dtype=torch.float64) * 2)


@pytest.mark.parametrize(("G", "options"), [(5, {}), (3, {"frequencies": 6, "smooth_init": True})], ids=str)
def test_fourierkan_is_the_original(G, options):
    """Even G + k (or frequencies=K): the original's gridsize K is our 2K bases, cosines first."""
    ours, original = pair("fourierkan", [5, 4, 3], G, 3, **options)
    with torch.no_grad():
        for a, b in zip(ours.layers, original.layers):
            K = a.num_cos
            b.fouriercoeffs[0].copy_(a.coef[..., :K])
            b.fouriercoeffs[1].copy_(a.coef[..., K:])
            b.bias.copy_(a.bias.reshape(1, -1))
    same_function(ours, original, torch.randn(2, 6, 5, dtype=torch.float64) * 3)


def test_fourierkan_original_has_one_basis_fewer_for_odd_g_plus_k():
    """Odd G + k = 13: ours has cos 1..7 and sin 1..6; the original cannot, and gets gridsize 6 (12 bases)."""
    if why := fourier_original.CHECKOUT.missing():
        pytest.skip(why)
    original = implementations.get("benchmarks.originals.fourierkan:adapter").build([4, 3], 10, 3)
    assert original.layers[0].gridsize == 6 and original.layers[0].num_basis == 12
    assert implementations.get("fourierkan").build([4, 3], 10, 3).layers[0].num_basis == 13


@pytest.mark.parametrize("options", [{}, {"trainable_grid": False}], ids=str)
def test_relukan_is_the_original(options):
    ours, original = pair("relukan", [5, 4, 3], 5, 3, **options)
    with torch.no_grad():
        for a, b in zip(ours.layers, original.layers):
            b.phase_low.copy_(a.starts)
            b.phase_height.copy_(a.ends)
            # their Conv2d kernel (out, 1, G + k, in) lies over the (in, G + k) basis in its memory order, so it is
            # our (out, in (G + k)) weight read in that same order: a reshape, not a transpose
            b.equal_size_conv.weight.copy_(a.spline_weight.reshape(b.equal_size_conv.weight.shape))
            b.equal_size_conv.bias.copy_(a.bias)
    assert original.layers[0].r == pytest.approx(ours.layers[0].r)
    same_function(ours, original, torch.rand(9, 5, dtype=torch.float64) * 1.6 - 0.3)


@pytest.mark.parametrize("family", list(ORIGINALS))
@pytest.mark.parametrize(("G", "k"), [(5, 3), (4, 2), (10, 3)])
def test_original_adapter_counts_match_its_model(family, G, k):
    if why := ORIGINALS[family].CHECKOUT.missing():
        pytest.skip(why)
    a = implementations.get(f"benchmarks.originals.{family}:adapter")
    assert a.name == f"{family}-original" and a.family == implementations.info(family).family
    model = a.build([6, 7, 3], G, k)
    assert a.param_count([6, 7, 3], G, k) == sum(p.numel() for p in model.parameters() if p.requires_grad)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        y = model(torch.rand(2, 3, 6))
    assert y.shape == (2, 3, 3)
    assert a.flop_breakdown([6, 7, 3], G, k, 6)["matmul"] == counter.get_total_flops()


@pytest.mark.parametrize("family", list(ORIGINALS))
def test_missing_checkout_is_unavailable_with_the_clone_command(family, tmp_path, monkeypatch):
    monkeypatch.setenv("KANBENCH_ORIGINALS", str(tmp_path))
    a = implementations.get(f"benchmarks.originals.{family}:adapter")
    checkout = ORIGINALS[family].CHECKOUT
    ok, why = a.available()
    assert not ok and f"git clone {checkout.url} {tmp_path / checkout.dirname}" in why and checkout.commit in why
    with pytest.raises(_checkout.MissingCheckout, match="git clone"):
        a.build([3, 2])
