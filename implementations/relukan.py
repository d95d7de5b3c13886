"""ReLU-KAN: y_o = sum_i sum_j w[o, i, j] R_ij(x_i) + bias_o, R_ij(x) = [r ReLU(e_ij - x) ReLU(x - s_ij)]^2.

After quiqi/relu_kan (ReLUKANLayer in torch_relu_kan.py at 79eab7a) and its paper (arXiv:2406.02075); facts only,
our own code.

- Fairness: G + k bumps per edge, j = 0..G+k-1, exactly as the original's layer with g = G, k = k (its speed and
  fitting scripts use g = 5, k = 3, kanbench's defaults).
- Domain: the grid range [0, 1] (the original's): s_j = (j - k) / G, e_j = s_j + (k + 1) / G, so the bumps cover
  [-k/G, 1 + k/G] and each point of [0, 1] lies in k + 1 of them; `grid_range=(lo, hi)` maps [0, 1] to [lo, hi].
  No squashing: an input outside the bumps' cover has an all-zero basis (and no gradient through it).
- Normalisation: r = 4 / (e_j - s_j)^2, so r^2 = 16 / (e - s)^4 and each bump peaks at 1. As in the original's code,
  r is fixed from the initial widths; the paper's formula divides by the current (e - s)^4 instead, which differs
  only once a trainable grid has moved.
- Trainable grid: s and e are per-input parameters (in, G + k), trainable by default as in the original at 79eab7a
  (its train_ab=True; before that commit they were fixed); `trainable_grid=False` fixes them.
- The bumps are one autograd Function (Bumps) with closed-form gradients that keeps x, s and e for the backward;
  autograd of the formula kept three tensors of the basis's size.
- The original contracts the (G + k) x in basis with a Conv2d whose kernel covers it whole, i.e. a full linear map
  plus bias; here F.linear on the flattened basis computes the same function, and the weights are initialised as
  that Conv2d's (uniform, bound 1 / sqrt(in (G + k)), bias too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .common import KANLayer, adapter_functions, backward_matmul, check_grid
from .lean import LeanFamily, lean_linear


def check_range(grid_range: object) -> tuple[float, float]:
    """(lo, hi) as floats, or ValueError unless they are finite with lo < hi."""
    ends = list(grid_range) if isinstance(grid_range, (tuple, list)) else []
    numbers = [float(v) for v in ends if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    if len(ends) != 2 or len(numbers) != 2 or numbers[0] >= numbers[1]:
        raise ValueError(f"grid_range must be two finite numbers (lo, hi) with lo < hi, got {grid_range!r}")
    return numbers[0], numbers[1]


class ReLUKANLayer(KANLayer):
    """out = W vec([r ReLU(e - x) ReLU(x - s)]^2) + bias, s and e of shape (in, G + k)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        grid_size: int = 5,
        spline_order: int = 3,
        grid_range: tuple[float, float] = (0.0, 1.0),
        trainable_grid: bool = True,
    ) -> None:
        check_grid(grid_size, spline_order)
        super().__init__(in_features, out_features, grid_size + spline_order)
        lo, hi = check_range(grid_range)
        h = (hi - lo) / grid_size
        # s_j = lo + (j - k) h and e_j = s_j + (k + 1) h, per input: every bump spans k + 1 grid steps
        width = (spline_order + 1) * h
        starts = (lo + h * (torch.arange(self.num_basis, dtype=torch.float64) - spline_order)).repeat(in_features, 1)
        dtype = torch.get_default_dtype()
        self.starts = nn.Parameter(starts.to(dtype), requires_grad=trainable_grid)
        self.ends = nn.Parameter((starts + width).to(dtype), requires_grad=trainable_grid)
        self.r = 4 / width**2  # r^2 = 16 / (e - s)^4: each bump peaks at 1
        bound = 1 / math.sqrt(in_features * self.num_basis)
        self.spline_weight = nn.Parameter(torch.empty(out_features, in_features * self.num_basis))
        self.bias = nn.Parameter(torch.empty(out_features))
        nn.init.uniform_(self.spline_weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    memory = "default"  # "lean": implementations.lean (set by build)

    def basis(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., in, G + k) bump values."""
        return bumps(x, self.starts, self.ends, self.r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        if self.memory == "lean":  # keep x instead of the basis (implementations.lean)
            basis = lambda u, p: bumps(u, p[0], p[1], self.r).flatten(-2)  # noqa: E731
            return lean_linear(x, [(basis, self.spline_weight)], (self.starts, self.ends), self.bias)
        return F.linear(self.basis(x).flatten(-2), self.spline_weight, self.bias)

    def extra_repr(self) -> str:
        trainable = self.starts.requires_grad
        return f"{self.in_features} -> {self.out_features}, K={self.num_basis}, trainable_grid={trainable}"


def bumps(x: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor, r: float) -> torch.Tensor:
    """(..., in) -> (..., in, G + k): [r ReLU(e - x) ReLU(x - s)]^2 for starts s and ends e (in, G + k)."""
    return Bumps.apply(x, starts, ends, r)


class Bumps(torch.autograd.Function):
    """B = r^2 a^2 b^2 with a = ReLU(e - x), b = ReLU(x - s): saves x, s and e (autograd would keep a, b and their
    product, each of the basis's size) and differentiates in closed form, zero wherever a bump is:
    dB/dx = 2 r^2 a b (a - b), dB/de = 2 r^2 a b^2, dB/ds = -2 r^2 a^2 b."""

    @staticmethod
    def forward(ctx, x, starts, ends, r):
        ctx.r = r
        ctx.save_for_backward(x, starts, ends)
        u = x.unsqueeze(-1)
        return torch.sub(ends, u).relu_().mul_(torch.sub(u, starts).relu_()).square_().mul_(r * r)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, starts, ends = ctx.saved_tensors
        u = x.unsqueeze(-1)
        a, b = torch.sub(ends, u).relu_(), torch.sub(u, starts).relu_()
        gab = a.mul(b).mul_(grad).mul_(2 * ctx.r * ctx.r)  # dL/dB 2 r^2 a b
        rows = tuple(range(gab.dim() - 2))  # every dimension but (in, G + k): the parameters' gradients sum them
        grad_x = torch.sub(a, b).mul_(gab).sum(-1) if ctx.needs_input_grad[0] else None
        grad_ends = torch.mul(gab, b).sum(rows) if ctx.needs_input_grad[2] else None
        grad_starts = gab.mul_(a).sum(rows).neg_() if ctx.needs_input_grad[1] else None
        return grad_x, grad_starts, grad_ends, None


@dataclass(frozen=True, kw_only=True)
class ReLUKAN(LeanFamily):
    """ReLU-KAN's options: the range [0, 1] maps to, and whether the bumps' ends are trained."""

    grid_range: tuple[float, float] = (0.0, 1.0)
    trainable_grid: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self.grid_range)

    def layer(self, n: int, i: int, o: int) -> ReLUKANLayer:
        return ReLUKANLayer(i, o, self.grid_size, self.spline_order, self.grid_range, self.trainable_grid)

    def param_count(self) -> int:
        """Trainable parameters: in * K * out weights, out biases, and 2 * in * K grid ends when trainable."""
        K = self.num_basis
        return sum(i * K * o + o + (2 * i * K if self.trainable_grid else 0) for i, o in self.edges)

    def flop_breakdown(self, batch: int) -> dict[str, int]:
        """Forward FLOPs: the matmul exactly; two subtractions, two ReLUs, two products and the square per bump."""
        K = self.num_basis
        per_layer = [2 * batch * i * K * o for i, o in self.edges]
        elementwise = sum(7 * batch * i * K + batch * o for i, o in self.edges)
        backward = backward_matmul(per_layer, first_input_grad=self.trainable_grid)  # trained ends: before layer 1
        return {"matmul": sum(per_layer), "elementwise": elementwise, "matmul_backward": backward}


build, param_count, flop_breakdown = adapter_functions(ReLUKAN)
