"""Efficient B-spline KAN: Cox-de Boor bases on a uniform extended grid, a SiLU base branch."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .common import Family, KANLayer, adapter_functions, backward_matmul, check_grid


def uniform_knots(grid_size: int, spline_order: int, grid_range: tuple[float, float]) -> torch.Tensor:
    """Knots t_j = a + (j - k) h, j = 0..G+2k, with h = (b - a) / G."""
    a, b = grid_range
    h = (b - a) / grid_size
    j = torch.arange(grid_size + 2 * spline_order + 1, dtype=torch.float64)
    return a + (j - spline_order) * h


def bspline_basis(x: torch.Tensor, knots: torch.Tensor, spline_order: int) -> torch.Tensor:
    """B_m(x) for every knot span: (..., n) -> (..., n, len(knots) - 1 - spline_order)."""
    x = x.unsqueeze(-1)
    t = knots.to(x.dtype)
    b = ((x >= t[:-1]) & (x < t[1:])).to(x.dtype)  # order 0: half-open indicators [t_j, t_j+1)
    for p in range(1, spline_order + 1):
        left = (x - t[: -(p + 1)]) / (t[p:-1] - t[: -(p + 1)])
        right = (t[p + 1 :] - x) / (t[p + 1 :] - t[1:-p])
        b = left * b[..., :-1] + right * b[..., 1:]
    return b


class BSplineKANLayer(KANLayer):
    """out = W_base silu(x) + sum_{i,m} (c_{o,i,m} s_{o,i}) B_m(x_i)."""

    knots: torch.Tensor  # a buffer (register_buffer), declared for the type checker

    def __init__(
        self,
        in_features: int,
        out_features: int,
        grid_size: int = 5,
        spline_order: int = 3,
        grid_range: tuple[float, float] = (-1.0, 1.0),
        noise_scale: float = 0.1,
    ) -> None:
        check_grid(grid_size, spline_order)
        super().__init__(in_features, out_features, grid_size + spline_order)
        self.grid_size, self.spline_order = grid_size, spline_order
        self.register_buffer("knots", uniform_knots(grid_size, spline_order, grid_range).to(torch.get_default_dtype()))
        self.base_weight = nn.Parameter(torch.empty(out_features, in_features))
        self.spline_weight = nn.Parameter(torch.empty(out_features, in_features, self.num_basis))
        self.spline_scaler = nn.Parameter(torch.empty(out_features, in_features))
        self.reset_parameters(noise_scale)

    @torch.no_grad()
    def reset_parameters(self, noise_scale: float = 0.1) -> None:
        """Kaiming-uniform base weight and scaler; coefficients fit small noise at the grid points."""
        nn.init.kaiming_uniform_(self.base_weight, a=math.sqrt(5))
        nn.init.kaiming_uniform_(self.spline_scaler, a=math.sqrt(5))
        k, G = self.spline_order, self.grid_size
        points = self.knots[k : k + G + 1].double()  # the G + 1 points of [a, b]
        design = bspline_basis(points, self.knots.double(), k)  # (G + 1, K)
        noise = (torch.rand(G + 1, self.in_features * self.out_features, dtype=torch.float64) - 0.5) * noise_scale / G
        coef = torch.linalg.pinv(design) @ noise  # minimum-norm least squares, (K, in * out)
        self.spline_weight.copy_(coef.T.reshape(self.in_features, self.out_features, -1).transpose(0, 1))

    def basis(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., in, G + k) B-spline basis values."""
        return bspline_basis(x, self.knots, self.spline_order)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        spline_weight = (self.spline_weight * self.spline_scaler.unsqueeze(-1)).flatten(1)
        return F.linear(F.silu(x), self.base_weight) + F.linear(self.basis(x).flatten(-2), spline_weight)

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, G={self.grid_size}, k={self.spline_order}"


@dataclass(frozen=True, kw_only=True)
class BSplineKAN(Family):
    """The B-spline KAN's options (BSplineKANLayer's): the grid's range and the initial coefficients' noise."""

    grid_range: tuple[float, float] = (-1.0, 1.0)
    noise_scale: float = 0.1

    def layer(self, n: int, i: int, o: int) -> BSplineKANLayer:
        return BSplineKANLayer(i, o, self.grid_size, self.spline_order, **self.options())

    def param_count(self) -> int:
        """Trainable parameters: out * in * (G + k) coefficients + out * in base weights + out * in scalers."""
        return sum(o * i * (self.num_basis + 2) for i, o in self.edges)

    def flop_breakdown(self, batch: int) -> dict[str, int]:
        """Forward FLOPs: the two matmuls exactly, the basis recursion and SiLU as estimated op counts."""
        G, k, K = self.grid_size, self.spline_order, self.num_basis
        per_input = 3 * (G + 2 * k) + sum(7 * (G + 2 * k - p) for p in range(1, k + 1)) + 4  # indicators, levels, silu
        per_layer = [2 * batch * i * o + 2 * batch * i * K * o for i, o in self.edges]
        elementwise = sum(batch * i * per_input + o * i * K + batch * o for i, o in self.edges)
        return {"matmul": sum(per_layer), "elementwise": elementwise, "matmul_backward": backward_matmul(per_layer)}


build, param_count, flop_breakdown = adapter_functions(BSplineKAN)
