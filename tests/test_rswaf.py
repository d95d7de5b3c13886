"""RSWAF's custom autograd Function is the exact derivative of its forward, including w.r.t. the grid and 1/h.

The published FasterKAN Function computes 1 - tanh(u - c)^2 (1/h ignored) and multiplies its backward by 1/h. The
checker below must reject that: it is run on deliberately buggy Functions to prove it can fail. Every check uses
1/h != 1, because at 1/h = 1 that bug is invisible (test_the_bug_is_invisible_at_inv_h_one).
"""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from implementations.rswaf import RSWAFBasis, RSWAFKANLayer, rswaf_basis


def plain_rswaf(u: torch.Tensor, centres: torch.Tensor, inv_h: torch.Tensor) -> torch.Tensor:
    """The definition, differentiated by autograd: 1 - tanh((u - c) * inv_h)^2."""
    return 1 - torch.tanh((u.unsqueeze(-1) - centres) * inv_h) ** 2


def make_inputs(inv_h: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    u = (torch.randn(3, 2, generator=g, dtype=torch.float64)).requires_grad_()
    centres = torch.linspace(-1.2, 0.2, 5, dtype=torch.float64).requires_grad_()
    return u, centres, torch.tensor(inv_h, dtype=torch.float64, requires_grad=True)


def rswaf_function_errors(apply, inv_h: float = 0.5, trainable_inv_h: bool = True) -> list[str]:
    """Everything wrong with an RSWAF basis function `apply(u, centres, inv_h)`; empty when it is correct."""
    errors = []
    u, centres, ih = make_inputs(inv_h)
    if not trainable_inv_h:
        ih = ih.detach()
    wrt = (u, centres, ih) if trainable_inv_h else (u, centres)
    fixed = () if trainable_inv_h else (ih,)
    out = apply(u, centres, ih)
    if not torch.allclose(out, plain_rswaf(u, centres, ih), rtol=1e-12, atol=1e-12):
        errors.append("forward differs from 1 - tanh((u - c) * inv_h)^2")
    if not torch.autograd.gradcheck(lambda *a: apply(*a, *fixed), wrt, raise_exception=False):
        errors.append("gradcheck failed")
    grad_out = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    custom = torch.autograd.grad(apply(u, centres, ih), wrt, grad_out)
    reference = torch.autograd.grad(plain_rswaf(u, centres, ih), wrt, grad_out)
    for name, a, b in zip(("input", "centres", "inv_h"), custom, reference):
        if not torch.allclose(a, b, rtol=1e-10, atol=1e-12):
            errors.append(f"backward w.r.t. {name} differs from autograd through the plain formula")
    return errors


class ForwardIgnoresInvH(torch.autograd.Function):
    """The published bug: forward without 1/h, backward with it."""

    @staticmethod
    def forward(ctx, u, centres, inv_h):
        diff = u.unsqueeze(-1) - centres
        t = torch.tanh(diff)
        ctx.save_for_backward(t, diff, inv_h)
        return 1 - t * t

    @staticmethod
    def backward(ctx, grad_out):
        t, diff, inv_h = ctx.saved_tensors
        grad_z = grad_out * (-2 * t * (1 - t * t))
        grad_c = -grad_z.reshape(-1, grad_z.shape[-1]).sum(0) * inv_h
        return grad_z.sum(-1) * inv_h, grad_c, (grad_z * diff).sum().reshape(inv_h.shape)


class BackwardMissesInvH(torch.autograd.Function):
    """A correct forward whose backward forgets the chain-rule factor 1/h."""

    @staticmethod
    def forward(ctx, u, centres, inv_h):
        diff = u.unsqueeze(-1) - centres
        t = torch.tanh(diff * inv_h)
        ctx.save_for_backward(t, diff, inv_h)
        return 1 - t * t

    @staticmethod
    def backward(ctx, grad_out):
        t, diff, inv_h = ctx.saved_tensors
        grad_z = grad_out * (-2 * t * (1 - t * t))
        grad_c = -grad_z.reshape(-1, grad_z.shape[-1]).sum(0)
        return grad_z.sum(-1), grad_c, (grad_z * diff).sum().reshape(inv_h.shape)


@pytest.mark.parametrize("inv_h", [0.5, 1.7, 3.5])
def test_rswaf_function_is_exact(inv_h):
    assert rswaf_function_errors(RSWAFBasis.apply, inv_h) == []


def test_rswaf_basis_gradcheck_direct():
    """gradcheck of RSWAFBasis w.r.t. input, centres and 1/h together, at the published 1/h = 0.5."""
    u, centres, ih = make_inputs(0.5)
    assert torch.autograd.gradcheck(RSWAFBasis.apply, (u, centres, ih))


def test_second_derivative_is_refused_not_wrong():
    """backward reuses tanh saved without a graph, so a double backward must raise rather than return a wrong value."""
    u, centres, ih = make_inputs(0.5)
    (grad_u,) = torch.autograd.grad(RSWAFBasis.apply(u, centres, ih).sum(), u, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad|trying to backward"):
        torch.autograd.grad(grad_u.sum(), u)


def test_rswaf_basis_partial_requires_grad():
    """Only the input needs a gradient (the default: grid and 1/h frozen)."""
    u, centres, ih = make_inputs(0.5)
    centres, ih = centres.detach(), ih.detach()
    assert torch.autograd.gradcheck(lambda u: rswaf_basis(u, centres, ih), (u,))


def test_checker_rejects_the_published_bug():
    errors = rswaf_function_errors(ForwardIgnoresInvH.apply, 0.5)
    assert "forward differs from 1 - tanh((u - c) * inv_h)^2" in errors
    assert "gradcheck failed" in errors
    assert any(e.startswith("backward w.r.t. input") for e in errors)


def test_checker_rejects_a_backward_off_by_inv_h():
    errors = rswaf_function_errors(BackwardMissesInvH.apply, 0.5)
    assert "forward differs from 1 - tanh((u - c) * inv_h)^2" not in errors  # the forward is right
    assert "gradcheck failed" in errors
    assert "backward w.r.t. input differs from autograd through the plain formula" in errors
    assert "backward w.r.t. centres differs from autograd through the plain formula" in errors


def test_the_bug_is_invisible_at_inv_h_one():
    """Why every check uses 1/h != 1: at 1/h = 1 (and 1/h frozen) both buggy Functions pass every check."""
    for buggy in (ForwardIgnoresInvH, BackwardMissesInvH):
        assert rswaf_function_errors(buggy.apply, 1.0, trainable_inv_h=False) == []
        assert rswaf_function_errors(buggy.apply, 0.5, trainable_inv_h=False) != []
    assert rswaf_function_errors(RSWAFBasis.apply, 0.5, trainable_inv_h=False) == []


def test_layer_forward_depends_on_inv_h():
    torch.manual_seed(0)
    layer = RSWAFKANLayer(3, 2, use_layernorm=False).double()
    assert layer.inv_h.item() == 0.5
    x = torch.randn(4, 3, dtype=torch.float64)
    with torch.no_grad():
        before = layer.basis(x)
        torch.testing.assert_close(before, plain_rswaf(x, layer.centres, torch.tensor(0.5, dtype=torch.float64)))
        y_before = layer(x)
        layer.inv_h.fill_(1.0)
        assert not torch.allclose(layer.basis(x), before)
        assert not torch.allclose(layer(x), y_before)
        torch.testing.assert_close(layer.basis(x), plain_rswaf(x, layer.centres, torch.tensor(1.0).double()))


def test_layer_defaults():
    layer = RSWAFKANLayer(3, 2)
    torch.testing.assert_close(layer.centres.detach(), torch.linspace(-1.2, 0.2, 8))
    assert layer.inv_h.item() == 0.5
    assert not layer.centres.requires_grad and not layer.inv_h.requires_grad
    assert layer.layernorm is not None and not hasattr(layer, "base")


def test_layer_gradcheck_trainable_grid_and_inv_h():
    """Input, centres, 1/h, LayerNorm and spline weights of one layer, in float64, 1/h = 0.5."""
    torch.manual_seed(0)
    layer = RSWAFKANLayer(3, 2, grid_size=2, spline_order=2, trainable_grid=True, trainable_inv_h=True).double()
    named = {n: p.detach().clone().requires_grad_() for n, p in layer.named_parameters()}
    assert {"centres", "inv_h", "spline_weight"} <= set(named)

    def f(x, *params):
        return functional_call(layer, dict(zip(named, params)), (x,))

    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(f, (x, *named.values()))
