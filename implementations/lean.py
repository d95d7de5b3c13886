"""memory="lean": a KAN layer's basis contraction that keeps its input, not its basis.

    y = sum_t F_t(x) W_t^T        (F_t: the layer's features of x, e.g. the (N, in * num_basis) basis, silu(x))

A default KAN layer keeps the (N, in, num_basis) basis for the backward (the weight gradient needs it) and often
the intermediates of computing it: several times what an MLP of the same widths keeps. Here one autograd Function
does the contraction a block of rows at a time, so no whole (N, in, num_basis) tensor ever exists: the forward
computes each block's features and multiplies; the backward recomputes them block by block, accumulates the weight
gradients, and differentiates the features of the block through autograd (the family's own closed-form derivative
where its basis has one, e.g. bspline-fast's). Saved for the backward: x, the weights and the features'
parameters; peak extra memory: one block of features and their intermediates (about BLOCK_ELEMENTS elements).

The price is one more evaluation of the features per training step; measured in docs/methodology.md ("Memory").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .common import Family

MEMORY_MODES = ("default", "lean")
BLOCK_ELEMENTS = 1 << 18  # features per block on CPU: 1 MiB of float32, cache-sized
BLOCK_ELEMENTS_GPU = 1 << 24  # on a GPU a block is a handful of kernel launches; 64 MiB of float32

# (x (n, in), params) -> (n, F), differentiable in both. The features read their parameters from params, never
# from a module: the backward calls them again later, when torch.func.functional_call (or anything else that
# swaps a module's tensors for a call) has put the module's own tensors back.
Features = Callable[[torch.Tensor, tuple[torch.Tensor, ...]], torch.Tensor]


def check_memory(memory: str) -> str:
    """memory if it names a mode, else ValueError."""
    if memory not in MEMORY_MODES:
        raise ValueError(f"memory must be one of {', '.join(MEMORY_MODES)}, got {memory!r}")
    return memory


def set_memory(stack, memory: str):
    """The stack with every layer's memory mode set (layers read self.memory in forward); ValueError if unknown."""
    mode = check_memory(memory)
    for layer in stack.layers:
        layer.memory = mode
    return stack


@dataclass(frozen=True, kw_only=True)
class LeanFamily(Family):
    """A family whose layers offer memory="lean": its build sets every layer's mode."""

    memory: str = "default"

    def build(self):
        """A freshly initialised model: one layer per pair of widths, each in this memory mode."""
        return set_memory(super().build(), self.memory)


def norm_params(layernorm: torch.nn.LayerNorm | None) -> tuple[torch.Tensor, ...]:
    """A LayerNorm's (weight, bias) for the features' params, or () without one."""
    return () if layernorm is None else (layernorm.weight, layernorm.bias)


def normalize(u: torch.Tensor, layernorm: torch.nn.LayerNorm | None, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """layernorm(u) computed with the given (weight, bias) (u itself without a LayerNorm)."""
    if layernorm is None:
        return u
    return F.layer_norm(u, layernorm.normalized_shape, params[0], params[1], layernorm.eps)


def row_blocks(x: torch.Tensor, features: int) -> list[slice]:
    """Slices of x's rows whose features fill about one block (at least one row per block)."""
    target = BLOCK_ELEMENTS if x.device.type == "cpu" else BLOCK_ELEMENTS_GPU
    step = max(1, target // max(1, features))
    return [slice(r, min(x.shape[0], r + step)) for r in range(0, x.shape[0], step)]


def lean_linear(
    x: torch.Tensor,
    terms: Sequence[tuple[Features, torch.Tensor]],
    params: Sequence[torch.Tensor] = (),
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """sum_t features_t(x) @ weight_t.T (+ bias) for x (..., in), keeping x instead of the features.

    terms: (features, weight (out, F_t)) pairs; params: the tensors other than x the features read (a LayerNorm's
    weight and bias, grid points), passed to them; those that need a gradient get one.
    """
    flat = x.reshape(-1, x.shape[-1])
    functions = tuple(f for f, _ in terms)
    weights = [w for _, w in terms]
    y = _LeanLinear.apply(flat, functions, len(weights), *weights, *params)
    if bias is not None:
        y = y + bias
    return y.reshape(*x.shape[:-1], y.shape[-1])


class _LeanLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, functions, count, *tensors):
        weights, params = tensors[:count], tensors[count:]
        ctx.functions, ctx.count = functions, count
        ctx.save_for_backward(x, *tensors)
        y = x.new_empty(x.shape[0], weights[0].shape[0])
        for rows in row_blocks(x, sum(w.shape[1] for w in weights)):
            xb = x[rows]
            block = torch.mm(functions[0](xb, params), weights[0].t())  # plain mm and addmm: FLOP counters see them
            for f, w in zip(functions[1:], weights[1:]):
                block = torch.addmm(block, f(xb, params), w.t())
            y[rows] = block
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, *tensors = ctx.saved_tensors
        weights, params = tensors[: ctx.count], tensors[ctx.count :]
        need = ctx.needs_input_grad
        need_x, need_w, need_p = need[0], need[3 : 3 + ctx.count], need[3 + ctx.count :]
        grad_x = torch.zeros_like(x) if need_x else None  # blocks whose features do not depend on x stay 0
        grad_w = [torch.zeros_like(w) if n else None for w, n in zip(weights, need_w)]
        grad_p = [torch.zeros_like(p) if n else None for p, n in zip(params, need_p)]
        for rows in row_blocks(x, sum(w.shape[1] for w in weights)):
            g = grad[rows]
            with torch.enable_grad():
                xb = x[rows].detach().requires_grad_(need_x)
                ps = tuple(p.detach().requires_grad_(n) for p, n in zip(params, need_p))
                features = [f(xb, ps) for f in ctx.functions]
            wanted = [p for p, n in zip(ps, need_p) if n]
            for gw, feat in zip(grad_w, features):
                if gw is not None:  # in place, as addmm (not addmm_) so that FLOP counters see it
                    torch.addmm(gw, g.t(), feat.detach(), out=gw)
            inputs = ([xb] if need_x else []) + wanted
            differentiable = [(feat, w) for feat, w in zip(features, weights) if feat.requires_grad]
            if not inputs or not differentiable:
                continue
            found = list(
                torch.autograd.grad(
                    [feat for feat, _ in differentiable], inputs, [g @ w for _, w in differentiable], allow_unused=True
                )
            )
            if grad_x is not None:
                gx = found.pop(0)
                if gx is not None:
                    grad_x[rows] = gx
            for gp, value in zip([gp for gp in grad_p if gp is not None], found):
                if value is not None:
                    gp.add_(value)
        return (grad_x, None, None, *grad_w, *grad_p)
