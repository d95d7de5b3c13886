"""memory="lean" (implementations.lean): the same function and gradients as the default mode, block by block, and
nothing of the basis's size kept for the backward.

gradcheck, forward == contract(), parameter counts and bad input run for every `-lean` registry name in
tests/test_implementations.py like any other implementation.
"""

from __future__ import annotations

import functools

import pytest
import torch

import implementations
from implementations import lean

# (family, build options): the defaults, and the options that give the basis trainable parameters of its own
CASES = [(name, {}) for name in implementations.LEAN] + [
    ("fastkan", {"use_layernorm": False}),
    ("fastkan", {"use_base": False}),
    ("rswaf", {"trainable_grid": True, "trainable_inv_h": True}),
    ("chebykan", {"hidden_layernorm": True}),
    ("jacobikan", {"a": 0.5, "b": 2.0, "hidden_layernorm": True}),
    ("fourierkan", {"use_bias": False}),
    ("relukan", {"trainable_grid": False}),
]
IDS = [f"{name}-{options}" if options else name for name, options in CASES]


def pair(name: str, options: dict, dtype=torch.float64):
    """(default, lean) models with the same parameters, randomised so that no term is trivially zero."""
    torch.manual_seed(0)
    default = implementations.get(name).build([5, 7, 3], 4, 3, **options).to(dtype)
    torch.manual_seed(0)
    lean_model = implementations.get(name).build([5, 7, 3], 4, 3, memory="lean", **options).to(dtype)
    with torch.no_grad():
        for p in default.parameters():
            p.add_(0.05 * torch.randn_like(p))
    lean_model.load_state_dict(default.state_dict())
    return default, lean_model


def outputs_and_grads(model, x: torch.Tensor, w: torch.Tensor):
    x = x.clone().requires_grad_()
    y = model(x)
    (y * w).sum().backward()
    named = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    return y.detach(), x.grad, named


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_lean_equals_default_in_float64_over_several_blocks(name, options, monkeypatch):
    default, lean_model = pair(name, options)
    monkeypatch.setattr(lean, "BLOCK_ELEMENTS", 40)  # a block of one or two rows: 20 rows make many blocks
    x = torch.rand(20, 5, dtype=torch.float64) * 1.6 - 0.3  # inside relukan's [0, 1] cover and outside it
    w = torch.randn(20, 3, dtype=torch.float64)
    y0, gx0, g0 = outputs_and_grads(default, x, w)
    y1, gx1, g1 = outputs_and_grads(lean_model, x, w)
    torch.testing.assert_close(y1, y0, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gx1, gx0, rtol=1e-10, atol=1e-10)
    assert g1.keys() == g0.keys()
    for key in g0:
        torch.testing.assert_close(g1[key], g0[key], rtol=1e-10, atol=1e-10, msg=f"{name}: gradient of {key}")


@pytest.mark.parametrize("name", implementations.LEAN)
def test_lean_equals_default_in_float32(name):
    default, lean_model = pair(name, {}, torch.float32)
    x, w = torch.randn(300, 5), torch.randn(300, 3)
    y0, gx0, g0 = outputs_and_grads(default, x, w)
    y1, gx1, g1 = outputs_and_grads(lean_model, x, w)
    torch.testing.assert_close(y1, y0, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gx1, gx0, rtol=1e-4, atol=1e-5)
    for key in g0:
        torch.testing.assert_close(g1[key], g0[key], rtol=1e-4, atol=1e-4)


def record_size(sizes: list[int], t: torch.Tensor) -> torch.Tensor:
    sizes.append(t.numel())
    return t


@pytest.mark.parametrize("name", implementations.LEAN)
def test_nothing_of_the_basis_size_is_saved(name):
    """Every tensor autograd keeps for the lean model's backward is at most (rows, widest layer) or a parameter's
    size; the default model keeps at least one (rows, in * num_basis) basis."""
    rows, widths = 64, [6, 9, 4]
    saved: dict[str, list[int]] = {"default": [], "lean": []}
    for mode in saved:
        torch.manual_seed(0)
        model = implementations.get(name).build(widths, 5, 3, memory=mode)
        x = torch.randn(rows, widths[0], requires_grad=True)
        keep = functools.partial(record_size, saved[mode])
        with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
            y = model(x)  # what the forward keeps (the backward's own block-sized recomputation is not kept)
        y.sum().backward()
    params = max(p.numel() for p in model.parameters())
    assert max(saved["default"]) >= rows * widths[0] * 8  # the basis of the first layer (G + k = 8)
    assert max(saved["lean"]) <= max(rows * max(widths), params)


@pytest.mark.parametrize(("target", "blocks"), [(1 << 18, 1), (12, 4), (1, 10)])
def test_blocks_cover_every_row_once(target, blocks, monkeypatch):
    """10 rows of 4 features: 3 rows per block of 12 elements, at least one row per block."""
    monkeypatch.setattr(lean, "BLOCK_ELEMENTS", target)
    found = lean.row_blocks(torch.empty(10, 3), 4)
    assert [r for b in found for r in range(10)[b]] == list(range(10))
    assert len(found) == blocks


def test_first_layer_input_without_gradient():
    """A model input that needs no gradient: the weights and the LayerNorm still get theirs."""
    default, lean_model = pair("fastkan", {})
    x = torch.randn(9, 5, dtype=torch.float64)
    for model in (default, lean_model):
        model(x).square().sum().backward()
    for (n, a), b in zip(default.named_parameters(), lean_model.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-10, atol=1e-12, msg=n)


@pytest.mark.parametrize("name", implementations.LEAN)
def test_unknown_memory_mode(name):
    with pytest.raises(ValueError, match="memory must be one of default, lean, got 'thin'"):
        implementations.get(name).build([3, 2], memory="thin")


def test_gathered_bspline_fast_is_not_lean():
    with pytest.raises(ValueError, match="contraction='dense' only"):
        implementations.get("bspline-fast-gather").build([3, 2], memory="lean")


def test_lean_variants_are_registered():
    for name in implementations.LEAN:
        variant = implementations.get(f"{name}-lean")
        assert variant.options.get("memory") == "lean"
        assert implementations.info(f"{name}-lean").family == implementations.info(name).family


@pytest.mark.parametrize("name", implementations.LEAN)
def test_flop_counters_see_the_same_backward_matmuls(name):
    """The blocks' products are plain mm / addmm, so FlopCounterMode counts the backward as in the default mode."""
    from torch.utils.flop_counter import FlopCounterMode

    counted = {}
    for mode in ("default", "lean"):
        torch.manual_seed(0)
        model = implementations.get(name).build([16, 16], 5, 3, memory=mode)
        y = model(torch.rand(8, 16) * 2 - 1)
        with FlopCounterMode(display=False) as counter:
            y.backward(torch.randn_like(y))
        counted[mode] = counter.get_total_flops()
    assert counted["lean"] == counted["default"] > 0
