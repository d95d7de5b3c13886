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

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .common import LayerStack, backward_matmul, check_grid, check_input, check_widths, edges
from .lean import lean_linear, norm_params, normalize, set_memory


def check_degree(degree: object) -> int:
    """Return degree as an int, or raise ValueError unless it is an int >= 0."""
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
        raise ValueError(f"degree must be an int >= 0, got {degree!r}")
    return degree


def resolve_degree(grid_size: int, spline_order: int, degree: int | None) -> int:
    """The polynomial degree: the given one, or G + k - 1 so that an edge has G + k polynomials (the fairness rule)."""
    check_grid(grid_size, spline_order)
    return grid_size + spline_order - 1 if degree is None else check_degree(degree)


class PolynomialKANLayer(nn.Module):
    """out_o = sum_i sum_d c[o, i, d] P_d(tanh u_i), u = LayerNorm(x) or x; subclasses define P_d."""

    def __init__(self, in_features: int, out_features: int, degree: int, input_layernorm: bool = False) -> None:
        super().__init__()
        check_widths([in_features, out_features])
        self.in_features, self.out_features = in_features, out_features
        self.degree, self.num_basis = check_degree(degree), degree + 1
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
        check_input(x, self.in_features, f"{type(self).__name__}({self.in_features} -> {self.out_features})")
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


def polynomial_stack(
    layer: type[PolynomialKANLayer], widths: Sequence[int], degree: int, hidden_layernorm: bool, memory: str,
    **options,
) -> LayerStack:  # fmt: skip
    """One layer per pair of widths; with hidden_layernorm every layer but the first normalizes its input."""
    pairs = enumerate(edges(widths))
    stack = LayerStack(
        [layer(i, o, degree, input_layernorm=hidden_layernorm and n > 0, **options) for n, (i, o) in pairs]
    )
    return set_memory(stack, memory)


def polynomial_param_count(widths: Sequence[int], degree: int, hidden_layernorm: bool) -> int:
    """Coefficients in * out * (D + 1) per layer, and LayerNorm's 2 * in on every layer but the first."""
    layers = edges(check_widths(widths))
    return sum(i * o * (degree + 1) + (2 * i if hidden_layernorm and n > 0 else 0) for n, (i, o) in enumerate(layers))


def polynomial_flops(
    widths: Sequence[int], degree: int, batch: int, hidden_layernorm: bool, per_degree: int
) -> dict[str, int]:
    """The matmul exactly; tanh, LayerNorm and per_degree ops of the recurrence per polynomial as an estimate."""
    layers = edges(check_widths(widths))
    per_layer = [2 * batch * i * (degree + 1) * o for i, o in layers]
    per_input = [1 + per_degree * degree + (8 if hidden_layernorm and n > 0 else 0) for n in range(len(layers))]
    return {
        "matmul": sum(per_layer),
        "elementwise": sum(batch * i * p for (i, _), p in zip(layers, per_input)),
        "matmul_backward": backward_matmul(per_layer),
    }


def build(
    widths: Sequence[int],
    grid_size: int = 5,
    spline_order: int = 3,
    degree: int | None = None,
    hidden_layernorm: bool = False,
    memory: str = "default",
) -> LayerStack:
    """A ChebyKAN with G + k polynomials per edge (degree G + k - 1), or of the given degree."""
    widths = check_widths(widths)
    D = resolve_degree(grid_size, spline_order, degree)
    return polynomial_stack(ChebyKANLayer, widths, D, hidden_layernorm, memory)


def param_count(
    widths: Sequence[int],
    grid_size: int = 5,
    spline_order: int = 3,
    degree: int | None = None,
    hidden_layernorm: bool = False,
    memory: str = "default",
) -> int:
    """Trainable parameters: in * out * (D + 1) per layer (+ 2 * in per normalized layer)."""
    return polynomial_param_count(widths, resolve_degree(grid_size, spline_order, degree), hidden_layernorm)


def flop_breakdown(
    widths: Sequence[int],
    grid_size: int,
    spline_order: int,
    batch: int,
    degree: int | None = None,
    hidden_layernorm: bool = False,
    memory: str = "default",
) -> dict[str, int]:
    """Forward FLOPs: the matmul exactly; tanh and the recurrence (2 ops per degree) as an estimate."""
    D = resolve_degree(grid_size, spline_order, degree)
    return polynomial_flops(widths, D, batch, hidden_layernorm, per_degree=2)
