"""FastKAN: LayerNorm, then Gaussian radial basis functions on a uniform grid, plus a SiLU base branch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .common import LayerStack, backward_matmul, check_grid, check_input, check_widths, edges
from .lean import Features, lean_linear, norm_params, normalize, set_memory


class FastKANLayer(nn.Module):
    """out = W_spline vec(exp(-((LN(x) - c_j) / h)^2)) + Linear(silu(x))."""

    centres: torch.Tensor  # a buffer (register_buffer), declared for the type checker
    memory = "default"  # "lean": implementations.lean (set by build)

    def __init__(
        self,
        in_features: int,
        out_features: int,
        grid_size: int = 5,
        spline_order: int = 3,
        grid_range: tuple[float, float] = (-2.0, 2.0),
        use_layernorm: bool = True,
        use_base: bool = True,
        init_scale: float = 0.1,
    ) -> None:
        super().__init__()
        check_widths([in_features, out_features])
        check_grid(grid_size, spline_order)
        self.in_features, self.out_features = in_features, out_features
        self.num_basis = grid_size + spline_order  # same basis count per edge as the B-spline KAN
        a, b = grid_range
        self.register_buffer("centres", torch.linspace(a, b, self.num_basis))
        self.h = (b - a) / (self.num_basis - 1) if self.num_basis > 1 else float(b - a)
        self.layernorm = nn.LayerNorm(in_features) if use_layernorm else None
        self.spline_weight = nn.Parameter(torch.empty(out_features, in_features * self.num_basis))
        nn.init.trunc_normal_(self.spline_weight, std=init_scale)
        self.base = nn.Linear(in_features, out_features) if use_base else None

    def basis(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., in, K) Gaussian RBF values of the normalized input."""
        u = self.layernorm(x) if self.layernorm is not None else x
        return self.rbf(u)

    def rbf(self, u: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., in, K): exp(-((u - c_j) / h)^2)."""
        return torch.exp(-(((u.unsqueeze(-1) - self.centres) / self.h) ** 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_features, f"FastKANLayer({self.in_features} -> {self.out_features})")
        if self.memory == "lean":
            return self.lean_forward(x)
        out = F.linear(self.basis(x).flatten(-2), self.spline_weight)
        if self.base is not None:
            out = out + self.base(F.silu(x))
        return out

    def lean_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The same output, keeping x instead of the basis (the base branch's silu(x) is a feature too)."""
        terms: list[tuple[Features, torch.Tensor]] = [
            (lambda u, p: self.rbf(normalize(u, self.layernorm, p)).flatten(-2), self.spline_weight)
        ]
        if self.base is not None:
            terms.append((lambda u, p: F.silu(u), self.base.weight))
        bias = self.base.bias if self.base is not None else None
        return lean_linear(x, terms, norm_params(self.layernorm), bias)

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, K={self.num_basis}, h={self.h:.4g}"


def build(
    widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, memory: str = "default", **options
) -> LayerStack:
    """A FastKAN with G + k centres per input."""
    widths = check_widths(widths)
    stack = LayerStack([FastKANLayer(i, o, grid_size, spline_order, **options) for i, o in edges(widths)])
    return set_memory(stack, memory)


def param_count(
    widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, use_layernorm=True, use_base=True, **options
) -> int:
    """Trainable parameters: LayerNorm 2 in, spline in * K * out, base in * out + out."""
    K = grid_size + spline_order
    total = 0
    for i, o in edges(check_widths(widths)):
        total += i * K * o + (2 * i if use_layernorm else 0) + (i * o + o if use_base else 0)
    return total


def flop_breakdown(
    widths: Sequence[int], grid_size: int, spline_order: int, batch: int, use_layernorm=True, use_base=True, **options
) -> dict[str, int]:
    """Forward FLOPs: the matmuls exactly; LayerNorm, RBF and SiLU as estimated op counts."""
    K = grid_size + spline_order
    layers = edges(check_widths(widths))
    rbf = [2 * batch * i * K * o for i, o in layers]
    base = [2 * batch * i * o if use_base else 0 for i, o in layers]
    per_input = 4 * K + (8 if use_layernorm else 0) + (4 if use_base else 0)  # sub, div, square, exp per centre
    elementwise = sum(batch * i * per_input + (2 * batch * o if use_base else 0) for i, o in layers)
    backward = backward_matmul(rbf, first_input_grad=use_layernorm) + backward_matmul(base)
    return {"matmul": sum(rbf) + sum(base), "elementwise": elementwise, "matmul_backward": backward}
