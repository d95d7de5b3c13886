"""JacobiKAN: y_o = sum_i sum_d c[o, i, d] P_d^(a,b)(tanh x_i), Jacobi polynomials, a = b = 1 by default.

After SpaceLearner/JacobiKAN (JacobiKANLayer.py at 7c33970, repository HEAD 51d160c); facts only, our own code.

- Fairness: degree D = G + k - 1, so each edge has G + k polynomials P_0 .. P_D. `degree=` overrides it; the
  README's MNIST model is `degree=3, hidden_layernorm=True` on [784, 32, 16, 10] (its text says degree 4, its code 3).
- Domain: tanh squashes every input into (-1, 1), the Jacobi polynomials' interval; no grid. With `hidden_layernorm`
  every layer but the first applies LayerNorm before tanh, as the README's model places nn.LayerNorm between layers.
- Evaluation: the three-term recurrence (exact polynomial arithmetic, so the gradient at t = +-1 is finite):
  P_0 = 1, P_1 = ((a - b) + (a + b + 2) t) / 2,
  2n (n + a + b)(2n + a + b - 2) P_n = (2n + a + b - 1) [(2n + a + b)(2n + a + b - 2) t + a^2 - b^2] P_(n-1)
                                       - 2 (n + a - 1)(n + b - 1)(2n + a + b) P_(n-2).
  a, b > -1 (where the polynomials are orthogonal on [-1, 1], and the recurrence never divides by zero).
- Initialisation: c ~ Normal(0, std = 1 / (in (D + 1))), as the original's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .chebykan import ChebyKAN, PolynomialKANLayer
from .common import adapter_functions


def check_ab(a: object, b: object) -> tuple[float, float]:
    """(a, b) as floats, or ValueError unless both are finite reals > -1."""
    for name, value in (("a", a), ("b", b)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= -1:
            raise ValueError(f"Jacobi parameter {name} must be a finite number > -1, got {value!r}")
    return float(a), float(b)  # type: ignore[arg-type]


class JacobiKANLayer(PolynomialKANLayer):
    """out_o = sum_i sum_d c[o, i, d] P_d^(a,b)(tanh u_i)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        degree: int,
        input_layernorm: bool = False,
        a: float = 1.0,
        b: float = 1.0,
    ) -> None:
        super().__init__(in_features, out_features, degree, input_layernorm)
        self.a, self.b = check_ab(a, b)
        # P_n = (A_n t + B_n) P_(n-1) - C_n P_(n-2): the recurrence above divided by 2n (n + a + b)(2n + a + b - 2)
        self.recurrence = [self.coefficients(n, self.a, self.b) for n in range(2, self.num_basis)]

    @staticmethod
    def coefficients(n: int, a: float, b: float) -> tuple[float, float, float]:
        """(A_n, B_n, C_n) of P_n = (A_n t + B_n) P_(n-1) - C_n P_(n-2), n >= 2."""
        s = 2 * n + a + b
        A = s * (s - 1) / (2 * n * (n + a + b))
        B = (s - 1) * (a * a - b * b) / (2 * n * (n + a + b) * (s - 2))
        C = (n + a - 1) * (n + b - 1) * s / (n * (n + a + b) * (s - 2))
        return A, B, C

    def three_term(self) -> tuple[float, float, list[tuple[float, float, float]]]:
        """P_1 = ((a - b) + (a + b + 2) t) / 2, then the recurrence above."""
        return (self.a - self.b) / 2, (self.a + self.b + 2) / 2, self.recurrence

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, a={self.a:g}, b={self.b:g}"


@dataclass(frozen=True, kw_only=True)
class JacobiKAN(ChebyKAN):
    """JacobiKAN's options: ChebyKAN's, and the Jacobi parameters a and b (fixed, not trained)."""

    a: float = 1.0
    b: float = 1.0
    per_degree = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ab(self.a, self.b)

    def layer(self, n: int, i: int, o: int) -> JacobiKANLayer:
        return JacobiKANLayer(i, o, self.num_basis - 1, self.normalized(n), self.a, self.b)


build, param_count, flop_breakdown = adapter_functions(JacobiKAN)
