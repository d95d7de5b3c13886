"""RSWAF KAN (FasterKAN): LayerNorm, then b_j(u) = 1 - tanh((u - c_j) / h)^2 with a backward that reuses tanh."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .common import KANLayer, adapter_functions, backward_matmul, check_grid
from .lean import LeanFamily, lean_linear, norm_params, normalize


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


class RSWAFKANLayer(KANLayer):
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
        check_grid(grid_size, spline_order)
        super().__init__(in_features, out_features, grid_size + spline_order)
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
        self.check(x)
        if self.memory == "lean":  # keep x instead of the basis (implementations.lean)
            basis = lambda u, p: rswaf_basis(normalize(u, self.layernorm, p[:-2]), p[-2], p[-1]).flatten(-2)  # noqa: E731
            params = (*norm_params(self.layernorm), self.centres, self.inv_h)
            return lean_linear(x, [(basis, self.spline_weight)], params)
        return F.linear(self.basis(x).flatten(-2), self.spline_weight)

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, K={self.num_basis}"


@dataclass(frozen=True, kw_only=True)
class RSWAFKAN(LeanFamily):
    """The RSWAF KAN's options (RSWAFKANLayer's): the centres' range, 1/h, which of them train, LayerNorm."""

    grid_range: tuple[float, float] = (-1.2, 0.2)
    inv_h: float = 0.5
    trainable_grid: bool = False
    trainable_inv_h: bool = False
    use_layernorm: bool = True

    def layer(self, n: int, i: int, o: int) -> RSWAFKANLayer:
        return RSWAFKANLayer(i, o, self.grid_size, self.spline_order, **self.options())

    def param_count(self) -> int:
        """Trainable parameters: LayerNorm 2 in, spline in * K * out, and the grid / 1/h when trainable."""
        K = self.num_basis
        extra = (K if self.trainable_grid else 0) + (1 if self.trainable_inv_h else 0)
        return sum(i * K * o + (2 * i if self.use_layernorm else 0) + extra for i, o in self.edges)

    def flop_breakdown(self, batch: int) -> dict[str, int]:
        """Forward FLOPs: the matmul exactly; LayerNorm and the tanh basis as estimated op counts."""
        K = self.num_basis
        per_layer = [2 * batch * i * K * o for i, o in self.edges]
        elementwise = sum(batch * i * (5 * K + (8 if self.use_layernorm else 0)) for i, _ in self.edges)
        trainable = self.use_layernorm or self.trainable_grid or self.trainable_inv_h  # before layer 1's basis
        backward = backward_matmul(per_layer, first_input_grad=trainable)
        return {"matmul": sum(per_layer), "elementwise": elementwise, "matmul_backward": backward}


build, param_count, flop_breakdown = adapter_functions(RSWAFKAN)
