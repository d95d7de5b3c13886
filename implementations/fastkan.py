"""FastKAN: LayerNorm, then Gaussian radial basis functions on a uniform grid, plus a SiLU base branch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .common import KANLayer, adapter_functions, backward_matmul, check_grid
from .lean import Features, LeanFamily, lean_linear, norm_params, normalize


class FastKANLayer(KANLayer):
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
        check_grid(grid_size, spline_order)
        super().__init__(in_features, out_features, grid_size + spline_order)  # the B-spline KAN's basis count
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
        self.check(x)
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


@dataclass(frozen=True, kw_only=True)
class FastKAN(LeanFamily):
    """FastKAN's options (FastKANLayer's): the centres' range, LayerNorm, the SiLU base branch, the weights' std."""

    grid_range: tuple[float, float] = (-2.0, 2.0)
    use_layernorm: bool = True
    use_base: bool = True
    init_scale: float = 0.1

    def layer(self, n: int, i: int, o: int) -> FastKANLayer:
        return FastKANLayer(i, o, self.grid_size, self.spline_order, **self.options())

    def param_count(self) -> int:
        """Trainable parameters: LayerNorm 2 in, spline in * K * out, base in * out + out."""
        norm, base = self.use_layernorm, self.use_base
        return sum(i * self.num_basis * o + (2 * i if norm else 0) + (i * o + o if base else 0) for i, o in self.edges)

    def flop_breakdown(self, batch: int) -> dict[str, int]:
        """Forward FLOPs: the matmuls exactly; LayerNorm, RBF and SiLU as estimated op counts."""
        K, norm, use_base = self.num_basis, self.use_layernorm, self.use_base
        rbf = [2 * batch * i * K * o for i, o in self.edges]
        base = [2 * batch * i * o if use_base else 0 for i, o in self.edges]
        per_input = 4 * K + (8 if norm else 0) + (4 if use_base else 0)  # sub, div, square, exp per centre
        elementwise = sum(batch * i * per_input + (2 * batch * o if use_base else 0) for i, o in self.edges)
        backward = backward_matmul(rbf, first_input_grad=norm) + backward_matmul(base)
        return {"matmul": sum(rbf) + sum(base), "elementwise": elementwise, "matmul_backward": backward}


build, param_count, flop_breakdown = adapter_functions(FastKAN)
