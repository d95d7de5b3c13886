"""FourierKAN: y_o = sum_i [sum_k a[o, i, k] cos(k x_i) + sum_k b[o, i, k] sin(k x_i)] + bias_o, k = 1, 2, ...

After GistNoesis/FourierKAN (NaiveFourierKANLayer in fftKAN.py at 437fb97, repository HEAD ef80791); facts only,
our own code.

- Fairness: G + k basis functions per edge. Even G + k = 2K: cos and sin for k = 1..K, the original's layer with
  gridsize K. Odd G + k (the default suite's G = 10 and G = 20 with k = 3 give 13 and 23): one more cosine than
  sines, cos for k = 1..ceil((G + k) / 2) and sin for k = 1..floor((G + k) / 2), so num_basis is G + k exactly.
  `frequencies=K` gives the original's gridsize K instead (2K bases); its demo is [50, 200, 100] with K = 300.
- Domain: none needed. The input is used as it is (no squashing, no grid), and every basis is 2 pi-periodic and
  bounded by 1, so no input falls off a grid; inputs 2 pi apart are indistinguishable.
- Basis layout: basis(x)[..., i, :] = [cos(x_i), .., cos(K_c x_i), sin(x_i), .., sin(K_s x_i)]. The forward
  contracts its (batch, in * (G + k)) flattening with a weight matrix by one F.linear (the original sums a
  (batch, out, in, K) product instead), and adds the bias (zeros at init, as the original's addbias=True).
- Initialisation (the original's): coefficients ~ Normal(0, 1) / (sqrt(in) sqrt(K)), K = (G + k) / 2 frequencies
  (so each output has unit variance for unit-variance inputs); with smooth_init, Normal(0, 1) / (sqrt(in) k^2)
  for frequency k (the original's smooth_initialization: the coefficients decay as 1/k^2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .common import KANLayer, adapter_functions, backward_matmul, check_grid
from .lean import LeanFamily, lean_linear


def resolve_num_basis(grid_size: int, spline_order: int, frequencies: int | None) -> int:
    """G + k (the fairness rule), or 2 * frequencies for the original's gridsize."""
    check_grid(grid_size, spline_order)
    if frequencies is None:
        return grid_size + spline_order
    if isinstance(frequencies, bool) or not isinstance(frequencies, int) or frequencies < 1:
        raise ValueError(f"frequencies must be an int >= 1 (the original's gridsize), got {frequencies!r}")
    return 2 * frequencies


class FourierKANLayer(KANLayer):
    """out = W vec([cos(k x_i)]_k, [sin(k x_i)]_k) + bias; K_c = ceil(n / 2) cosines, K_s = floor(n / 2) sines."""

    freqs: torch.Tensor  # a buffer (register_buffer), declared for the type checker
    memory = "default"  # "lean": implementations.lean (set by build)

    def __init__(
        self, in_features: int, out_features: int, num_basis: int, use_bias: bool = True, smooth_init: bool = False
    ) -> None:
        super().__init__(in_features, out_features, num_basis)
        self.num_cos, self.num_sin = (num_basis + 1) // 2, num_basis // 2
        self.register_buffer("freqs", torch.arange(1, self.num_cos + 1, dtype=torch.get_default_dtype()))
        # the frequency of each column: 1..K_c for the cosines, then 1..K_s for the sines
        k = torch.cat([self.freqs, self.freqs[: self.num_sin]])
        scale = 1 / (math.sqrt(in_features) * (k**2 if smooth_init else math.sqrt(num_basis / 2)))
        self.coef = nn.Parameter(torch.randn(out_features, in_features, num_basis) * scale)
        self.bias = nn.Parameter(torch.zeros(out_features)) if use_bias else None

    def basis(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., in, n): cos(k x) for k = 1..K_c, then sin(k x) for k = 1..K_s."""
        kx = x.unsqueeze(-1) * self.freqs
        return torch.cat([torch.cos(kx), torch.sin(kx[..., : self.num_sin])], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        if self.memory == "lean":  # keep x instead of the basis (implementations.lean)
            return lean_linear(x, [(lambda u, p: self.basis(u).flatten(-2), self.coef.flatten(1))], bias=self.bias)
        return F.linear(self.basis(x).flatten(-2), self.coef.flatten(1), self.bias)

    def extra_repr(self) -> str:
        bias = self.bias is not None
        return f"{self.in_features} -> {self.out_features}, cos 1..{self.num_cos}, sin 1..{self.num_sin}, bias={bias}"


@dataclass(frozen=True, kw_only=True)
class FourierKAN(LeanFamily):
    """FourierKAN's options: 2 * frequencies bases instead of G + k, an output bias, the 1/k^2 initialisation."""

    frequencies: int | None = None
    use_bias: bool = True
    smooth_init: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        resolve_num_basis(self.grid_size, self.spline_order, self.frequencies)

    @property
    def num_basis(self) -> int:
        """G + k cos/sin bases per edge, or 2 * frequencies."""
        return resolve_num_basis(self.grid_size, self.spline_order, self.frequencies)

    def layer(self, n: int, i: int, o: int) -> FourierKANLayer:
        return FourierKANLayer(i, o, self.num_basis, self.use_bias, self.smooth_init)

    def param_count(self) -> int:
        """Trainable parameters: in * out * n coefficients and out biases per layer."""
        return sum(i * o * self.num_basis + (o if self.use_bias else 0) for i, o in self.edges)

    def flop_breakdown(self, batch: int) -> dict[str, int]:
        """Forward FLOPs: the matmul exactly; k x, cos and sin (one op per basis and the product) as an estimate."""
        n = self.num_basis
        per_layer = [2 * batch * i * n * o for i, o in self.edges]
        bias = batch if self.use_bias else 0
        elementwise = sum(batch * i * ((n + 1) // 2 + n) + bias * o for i, o in self.edges)
        return {"matmul": sum(per_layer), "elementwise": elementwise, "matmul_backward": backward_matmul(per_layer)}


build, param_count, flop_breakdown = adapter_functions(FourierKAN)
