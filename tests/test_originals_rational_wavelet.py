"""wavkan and grkan compute their originals' functions, given the same coefficients, and where they do not.

The originals are read from checkouts outside the repository (benchmarks/originals/README.md); a test that needs one
skips, naming the clone command, when it is missing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import implementations
from implementations import grkan, wavkan

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not installed; run from the repository

from benchmarks.originals import grkan as grkan_original  # noqa: E402
from benchmarks.originals import wavkan as wavkan_original  # noqa: E402


def original(module, widths, **options):
    if why := module.CHECKOUT.missing():
        pytest.skip(why)
    return implementations.get(f"{module.__name__}:adapter").build(widths, **options).double()


@pytest.mark.parametrize("wavelet", wavkan.WAVELETS)
def test_wavkan_with_batch_norm_is_the_original(wavelet):
    """ORIGINAL (BatchNorm on each output) with the original's translation, scale and wavelet_weights: the same
    outputs and gradients (in training mode, as both start); the original's weight1 gets no gradient at all."""
    torch.manual_seed(0)
    theirs = original(wavkan_original, [4, 5, 3], wavelet=wavelet, iso_to=None)
    ours = implementations.get("wavkan").build([4, 5, 3], wavelet=wavelet, **wavkan.ORIGINAL).double()
    with torch.no_grad():
        for t, o in zip(theirs.layers, ours.layers):
            t.translation.normal_(0, 0.5)
            t.scale.uniform_(0.5, 2.0)
            o.weight.copy_(t.wavelet_weights)
            o.translation.copy_(t.translation)
            o.scale.copy_(t.scale)
    x = torch.randn(16, 4, dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = theirs(xa), ours(xb)
    torch.testing.assert_close(yb, ya, rtol=1e-10, atol=1e-12)
    g = torch.randn_like(ya)
    (ya * g).sum().backward()
    (yb * g).sum().backward()
    torch.testing.assert_close(xb.grad, xa.grad, rtol=1e-9, atol=1e-12)
    for t, o in zip(theirs.layers, ours.layers):
        torch.testing.assert_close(o.weight.grad, t.wavelet_weights.grad, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(o.scale.grad, t.scale.grad, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(o.translation.grad, t.translation.grad, rtol=1e-9, atol=1e-12)
        assert t.weight1.grad is None  # computed in its forward, then dropped


def test_wavkan_original_counts():
    theirs = original(wavkan_original, [784, 32, 10], iso_to=None)
    a = implementations.get("benchmarks.originals.wavkan:adapter")
    assert sum(p.numel() for p in theirs.parameters()) == a.param_count([784, 32, 10], iso_to=None) == 101_716
    widths = [6, 7, 3]  # iso widths, the same as the registry's wavkan builds
    assert [layer.in_features for layer in a.build(widths).layers] == [
        layer.in_features for layer in implementations.get("wavkan").build(widths).layers
    ]
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        a.build(widths)(torch.rand(5, 6))
    assert a.flop_breakdown(widths, batch=5)["matmul"] == counter.get_total_flops()


def copy_rationals(theirs, ours, seed=0, odd=True):
    """The same random coefficients in both (KAT: one numerator and a denominator per group)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t, o in zip(theirs.layers, ours.layers):
            a = torch.randn(1, 6, generator=g, dtype=torch.float64) * 0.5
            b = torch.randn(t.act.num_groups, 4, generator=g, dtype=torch.float64) * 0.5
            if not odd:
                b[:, 0::2] = 0  # b_1 = b_3 = 0: no odd power of x in Q
            t.act.weight_numerator.copy_(a)
            t.act.weight_denominator.copy_(b)
            o.rational.numerator.copy_(a)
            o.rational.denominator.copy_(b)
            o.linear.load_state_dict(t.linear.state_dict())


def test_grkan_init_is_kats_init_json():
    """Our INITS, transcribed from init.json, are what KAT_Group_Torch reads from the file itself."""
    theirs = original(grkan_original, [16, 24, 8], iso_to=None)
    ours = implementations.get("grkan").build([16, 24, 8], iso_to=None).double()
    for t, o in zip(theirs.layers, ours.layers):
        torch.testing.assert_close(o.rational.numerator, t.act.weight_numerator, rtol=0, atol=1e-7)
        torch.testing.assert_close(o.rational.denominator, t.act.weight_denominator, rtol=0, atol=1e-7)


def test_grkan_is_kats_torch_reference_where_their_formulas_agree():
    """Our "terms" denominator is KAT's kernels' 1 + sum |b_j| |x|^j; the torch reference drops |x|. They agree for
    x >= 0 with any coefficients, and everywhere when Q has no odd powers; otherwise they differ for x < 0."""
    widths = [16, 24, 8]
    theirs = original(grkan_original, widths, iso_to=None)
    ours = implementations.get("grkan").build(widths, iso_to=None).double()
    copy_rationals(theirs, ours)
    positive = torch.rand(10, 16, dtype=torch.float64) * 2
    with torch.no_grad():
        torch.testing.assert_close(ours.layers[0](positive), theirs.layers[0](positive), rtol=1e-10, atol=1e-12)
        mixed = torch.randn(10, 16, dtype=torch.float64)
        assert not torch.allclose(ours.layers[0](mixed), theirs.layers[0](mixed))
    copy_rationals(theirs, ours, odd=False)
    x = torch.randn(10, 16, dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = theirs(xa), ours(xb)
    torch.testing.assert_close(yb, ya, rtol=1e-10, atol=1e-12)
    ya.sum().backward()
    yb.sum().backward()
    torch.testing.assert_close(xb.grad, xa.grad, rtol=1e-9, atol=1e-12)
    for t, o in zip(theirs.layers, ours.layers):
        torch.testing.assert_close(o.rational.numerator.grad, t.act.weight_numerator.grad, rtol=1e-9, atol=1e-10)


def test_grkan_original_counts():
    """KAT's KAN block at KAT-Tiny's width (test_zoo_rational_wavelet.py states it from katransformer.py)."""
    theirs = original(grkan_original, [192, 768, 192], iso_to=None)
    a = implementations.get("benchmarks.originals.grkan:adapter")
    assert sum(p.numel() for p in theirs.parameters()) == a.param_count([192, 768, 192], iso_to=None) == 295_948
    assert grkan.param_count([192, 768, 192]) == 295_948
    widths = [6, 7, 3]
    model = a.build(widths)
    hidden = model.layers[1].in_features
    assert hidden == implementations.get("grkan").build(widths).layers[1].in_features
    assert model.layers[1].act.num_groups == grkan_original.groups_for(hidden)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.rand(5, 6))
    assert a.flop_breakdown(widths, batch=5)["matmul"] == counter.get_total_flops()
    with pytest.raises(ValueError, match="kernel must be one of torch, triton"):
        a.build(widths, kernel="cuda")
