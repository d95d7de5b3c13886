"""ChebyKAN: y_o = sum_i sum_d c[o, i, d] T_d(tanh x_i), Chebyshev polynomials of the first kind, no base branch.

After SynodicMonth/ChebyKAN (ChebyKANLayer.py at e6b7930, repository HEAD 5f7efdd); facts only, our own code.

- Fairness: degree D = G + k - 1, so each edge has G + k polynomials T_0 .. T_D, as many as the B-spline KAN's bases.
  `degree=` overrides it; the README's MNIST model is `degree=4, hidden_layernorm=True` on [784, 32, 16, 10].
- Domain: tanh squashes every input into (-1, 1), where T_d(t) = cos(d arccos t) is defined; there is no grid.
  With `hidden_layernorm` every layer but the first applies LayerNorm before tanh (the README puts nn.LayerNorm
  between layers "to avoid gradient vanishing caused by tanh").
- Evaluation: the recurrence T_d = 2t T_(d-1) - T_(d-2), which is exact polynomial arithmetic. The original's
  cos(d arccos t) needs arccos, whose derivative is infinite at t = +-1: float32 tanh(x) rounds to exactly +-1 for
  |x| > 9, and there its gradient is NaN; the recurrence's derivative stays d^2 (T_d'(1) = d^2).
- Initialisation: c ~ Normal(0, std = 1 / (in (D + 1))), as the original's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .common import KANLayer, adapter_functions, backward_matmul, check_grid
from .lean import LeanFamily, lean_linear, norm_params, normalize


def check_degree(degree: object) -> int:
    """Return degree as an int, or raise ValueError unless it is an int >= 0."""
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
        raise ValueError(f"degree must be an int >= 0, got {degree!r}")
    return degree


def resolve_degree(grid_size: int, spline_order: int, degree: int | None) -> int:
    """The polynomial degree: the given one, or G + k - 1 so that an edge has G + k polynomials (the fairness rule)."""
    check_grid(grid_size, spline_order)
    return grid_size + spline_order - 1 if degree is None else check_degree(degree)


class PolynomialKANLayer(KANLayer):
    """out_o = sum_i sum_d c[o, i, d] P_d(tanh u_i), u = LayerNorm(x) or x; subclasses define P_d."""

    def __init__(self, in_features: int, out_features: int, degree: int, input_layernorm: bool = False) -> None:
        super().__init__(in_features, out_features, check_degree(degree) + 1)
        self.degree = degree
        self.layernorm = nn.LayerNorm(in_features) if input_layernorm else None
        # (out, in, D + 1): flattened, the (input, degree) columns line up with basis(x).flatten(-2) for F.linear
        self.coef = nn.Parameter(torch.empty(out_features, in_features, self.num_basis))
        nn.init.normal_(self.coef, mean=0.0, std=1 / (in_features * self.num_basis))

    memory = "default"  # "lean": implementations.lean (set by build)

    def polynomials(self, t: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., in, D + 1): P_0(t) .. P_D(t) by the three-term recurrence."""
        alpha, beta, recurrence = self.three_term()
        P = [torch.ones_like(t), t * beta + alpha]
        for A, B, C in recurrence:
            P.append((t * A + B) * P[-1] - C * P[-2])
        return torch.stack(P[: self.num_basis], dim=-1)

    def three_term(self) -> tuple[float, float, list[tuple[float, float, float]]]:
        """(alpha, beta, [(A_n, B_n, C_n), n = 2..D]): P_0 = 1, P_1 = alpha + beta t,
        P_n = (A_n t + B_n) P_(n-1) - C_n P_(n-2)."""
        raise NotImplementedError

    def polynomials_and_slopes(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(P_d(t), P_d'(t)), each (..., in, D + 1), from the recurrence and its derivative
        P_n' = A_n P_(n-1) + (A_n t + B_n) P_(n-1)' - C_n P_(n-2)'."""
        alpha, beta, recurrence = self.three_term()
        P, S = [torch.ones_like(t), t * beta + alpha], [torch.zeros_like(t), torch.full_like(t, beta)]
        for A, B, C in recurrence:
            factor = t * A + B
            P.append(torch.sub(factor * P[-1], P[-2], alpha=C))
            S.append(torch.sub(factor * S[-1], S[-2], alpha=C).add_(P[-2], alpha=A))
        return torch.stack(P[: self.num_basis], dim=-1), torch.stack(S[: self.num_basis], dim=-1)

    def basis(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., in, D + 1): the polynomials of tanh of the (normalized) input."""
        u = self.layernorm(x) if self.layernorm is not None else x
        return self.polynomials(torch.tanh(u))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        if self.memory == "lean":  # keep x instead of the basis (implementations.lean)
            basis = lambda u, p: _PolynomialBlock.apply(normalize(u, self.layernorm, p), self).flatten(-2)  # noqa: E731
            return lean_linear(x, [(basis, self.coef.flatten(1))], norm_params(self.layernorm))
        return F.linear(self.basis(x).flatten(-2), self.coef.flatten(1))

    def extra_repr(self) -> str:
        norm = self.layernorm is not None
        return f"{self.in_features} -> {self.out_features}, degree={self.degree}, layernorm={norm}"


class ChebyKANLayer(PolynomialKANLayer):
    """out_o = sum_i sum_d c[o, i, d] T_d(tanh u_i), T_d the Chebyshev polynomials of the first kind."""

    def polynomials(self, t: torch.Tensor) -> torch.Tensor:
        """T_0 = 1, T_1 = t, T_d = 2t T_(d-1) - T_(d-2)."""
        T = [torch.ones_like(t), t]
        two_t = 2 * t
        for _ in range(2, self.num_basis):
            T.append(two_t * T[-1] - T[-2])
        return torch.stack(T[: self.num_basis], dim=-1)

    def three_term(self) -> tuple[float, float, list[tuple[float, float, float]]]:
        """T_1 = t; A = 2, B = 0, C = 1."""
        return 0.0, 1.0, [(2.0, 0.0, 1.0)] * (self.num_basis - 2)


class _PolynomialBlock(torch.autograd.Function):
    """P_d(tanh u) of one block of rows of the lean contraction, with its slope computed alongside and kept (a block
    is small), so the backward is one product: dP/du = P'(t) (1 - t^2)."""

    @staticmethod
    def forward(ctx, u, layer):
        t = torch.tanh(u)
        if not ctx.needs_input_grad[0]:
            return layer.polynomials(t)
        values, slopes = layer.polynomials_and_slopes(t)
        ctx.save_for_backward(slopes.mul_(torch.mul(t, t).neg_().add_(1).unsqueeze(-1)))
        return values

    @staticmethod
    def backward(ctx, grad):
        (slopes,) = ctx.saved_tensors
        return slopes.mul_(grad).sum(-1), None


@dataclass(frozen=True, kw_only=True)
class ChebyKAN(LeanFamily):
    """ChebyKAN's options: the degree (G + k - 1 unless given), and LayerNorm before every layer but the first."""

    degree: int | None = None
    hidden_layernorm: bool = False
    per_degree = 2  # ops of the recurrence per polynomial in the FLOP estimate (a class constant, not an option)

    def __post_init__(self) -> None:
        super().__post_init__()
        resolve_degree(self.grid_size, self.spline_order, self.degree)

    @property
    def num_basis(self) -> int:
        """D + 1 polynomials P_0 .. P_D per edge."""
        return resolve_degree(self.grid_size, self.spline_order, self.degree) + 1

    def normalized(self, n: int) -> bool:
        """Whether layer n normalizes its input."""
        return self.hidden_layernorm and n > 0

    def layer(self, n: int, i: int, o: int) -> PolynomialKANLayer:
        return ChebyKANLayer(i, o, self.num_basis - 1, self.normalized(n))

    def param_count(self) -> int:
        """Trainable parameters: in * out * (D + 1) per layer (+ 2 * in per normalized layer)."""
        return sum(i * o * self.num_basis + (2 * i if self.normalized(n) else 0) for n, (i, o) in enumerate(self.edges))

    def flop_breakdown(self, batch: int) -> dict[str, int]:
        """Forward FLOPs: the matmul exactly; tanh, LayerNorm and the recurrence (per_degree ops per degree) as an
        estimate."""
        per_layer = [2 * batch * i * self.num_basis * o for i, o in self.edges]
        recurrence = 1 + self.per_degree * (self.num_basis - 1)  # tanh and the recurrence
        per_input = [recurrence + (8 if self.normalized(n) else 0) for n in range(len(self.edges))]
        elementwise = sum(batch * i * p for (i, _), p in zip(self.edges, per_input))
        return {"matmul": sum(per_layer), "elementwise": elementwise, "matmul_backward": backward_matmul(per_layer)}


build, param_count, flop_breakdown = adapter_functions(ChebyKAN)
