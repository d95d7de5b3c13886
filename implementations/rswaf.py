"""RSWAF KAN (FasterKAN): LayerNorm, then b_j(u) = 1 - tanh((u - c_j) / h)^2 with a backward that reuses tanh."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .common import LayerStack, backward_matmul, check_grid, check_input, check_widths, edges
from .lean import lean_linear, norm_params, normalize, set_memory


class RSWAFBasis(torch.autograd.Function):
    """b = 1 - tanh(z)^2, z = (u - c) * inv_h; db/dz = -2 tanh(z) b, reusing tanh from the forward."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, centres: torch.Tensor, inv_h: torch.Tensor) -> torch.Tensor:
        diff = u.unsqueeze(-1) - centres
        t = torch.tanh(diff * inv_h)
        ctx.save_for_backward(t, diff if (ctx.needs_input_grad[2]) else None, inv_h)
        return 1 - t * t

    @staticmethod
    @once_differentiable  # backward reuses tanh saved without a graph: a second derivative would be silently wrong
    def backward(ctx, grad_out: torch.Tensor):
        t, diff, inv_h = ctx.saved_tensors
        grad_z = grad_out * (-2 * t * (1 - t * t))
        grad_u = grad_c = grad_inv_h = None
        if ctx.needs_input_grad[0]:
            grad_u = grad_z.sum(-1) * inv_h
        if ctx.needs_input_grad[1]:
            grad_c = -(grad_z.reshape(-1, grad_z.shape[-1]).sum(0)) * inv_h
        if ctx.needs_input_grad[2]:
            grad_inv_h = (grad_z * diff).sum().reshape(inv_h.shape)
        return grad_u, grad_c, grad_inv_h


def rswaf_basis(u: torch.Tensor, centres: torch.Tensor, inv_h: torch.Tensor) -> torch.Tensor:
    """(..., n) -> (..., n, K) values of 1 - tanh((u - c_j) * inv_h)^2, with the custom backward."""
    return RSWAFBasis.apply(u, centres, inv_h)


class RSWAFKANLayer(nn.Module):
    """out = W_spline vec(1 - tanh((LN(x) - c_j) / h)^2); no base branch, no bias."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        grid_size: int = 5,
        spline_order: int = 3,
        grid_range: tuple[float, float] = (-1.2, 0.2),
        inv_h: float = 0.5,
        trainable_grid: bool = False,
        trainable_inv_h: bool = False,
        use_layernorm: bool = True,
    ) -> None:
        super().__init__()
        check_widths([in_features, out_features])
        check_grid(grid_size, spline_order)
        self.in_features, self.out_features = in_features, out_features
        self.num_basis = grid_size + spline_order
        self.centres = nn.Parameter(torch.linspace(*grid_range, self.num_basis), requires_grad=trainable_grid)
        self.inv_h = nn.Parameter(torch.tensor(float(inv_h)), requires_grad=trainable_inv_h)
        self.layernorm = nn.LayerNorm(in_features) if use_layernorm else None
        self.spline_weight = nn.Parameter(torch.empty(out_features, in_features * self.num_basis))
        nn.init.xavier_uniform_(self.spline_weight)

    memory = "default"  # "lean": implementations.lean (set by build)

    def basis(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., in, K) RSWAF values of the normalized input."""
        u = self.layernorm(x) if self.layernorm is not None else x
        return rswaf_basis(u, self.centres, self.inv_h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_features, f"RSWAFKANLayer({self.in_features} -> {self.out_features})")
        if self.memory == "lean":  # keep x instead of the basis (implementations.lean)
            basis = lambda u, p: rswaf_basis(normalize(u, self.layernorm, p[:-2]), p[-2], p[-1]).flatten(-2)  # noqa: E731
            params = (*norm_params(self.layernorm), self.centres, self.inv_h)
            return lean_linear(x, [(basis, self.spline_weight)], params)
        return F.linear(self.basis(x).flatten(-2), self.spline_weight)

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, K={self.num_basis}"


def build(
    widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, memory: str = "default", **options
) -> LayerStack:
    """An RSWAF KAN with G + k centres per input."""
    widths = check_widths(widths)
    stack = LayerStack([RSWAFKANLayer(i, o, grid_size, spline_order, **options) for i, o in edges(widths)])
    return set_memory(stack, memory)


def param_count(
    widths: Sequence[int],
    grid_size: int = 5,
    spline_order: int = 3,
    trainable_grid=False,
    trainable_inv_h=False,
    use_layernorm=True,
    **options,
) -> int:
    """Trainable parameters: LayerNorm 2 in, spline in * K * out, and the grid / 1/h when trainable."""
    K = grid_size + spline_order
    per_layer_extra = (K if trainable_grid else 0) + (1 if trainable_inv_h else 0)
    return sum(i * K * o + (2 * i if use_layernorm else 0) + per_layer_extra for i, o in edges(check_widths(widths)))


def flop_breakdown(
    widths: Sequence[int], grid_size: int, spline_order: int, batch: int, use_layernorm=True, trainable_grid=False,
    trainable_inv_h=False, **options,
) -> dict[str, int]:  # fmt: skip
    """Forward FLOPs: the matmul exactly; LayerNorm and the tanh basis as estimated op counts."""
    K = grid_size + spline_order
    layers = edges(check_widths(widths))
    per_layer = [2 * batch * i * K * o for i, o in layers]
    elementwise = sum(batch * i * (5 * K + (8 if use_layernorm else 0)) for i, _ in layers)  # sub, mul, tanh, ...
    trainable = use_layernorm or trainable_grid or trainable_inv_h  # a parameter before the basis of layer 1
    backward = backward_matmul(per_layer, first_input_grad=trainable)
    return {"matmul": sum(per_layer), "elementwise": elementwise, "matmul_backward": backward}
