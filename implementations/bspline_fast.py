"""Exact fast B-spline KAN: the same function as `bspline`, evaluated in closed form on each input's knot span.

A uniform B-spline of degree k has only k + 1 non-zero bases at any x, and on a span they are fixed polynomials
of the local coordinate u = (x - t_s) / h. So instead of the Cox-de Boor recursion over all G + 2k spans, each
input costs one span lookup and one (k + 1) x (k + 1) polynomial evaluation; the contraction then either
scatters those values into the dense basis (and uses the same matmul as `bspline`) or gathers only the k + 1
coefficient rows that are touched (embedding_bag), whichever is faster for the shape.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .bspline import BSplineKANLayer, param_count  # noqa: F401 (the same parameters as bspline)
from .common import LayerStack, check_input, check_widths, edges


@functools.cache
def span_polynomials(spline_order: int) -> torch.Tensor:
    """M (k+1, k+1), float64: on a span, the r-th non-zero basis is sum_p u^p M[p, r] (u in [0, 1))."""
    k = spline_order
    # polys[r] holds the coefficients (in u) of basis B_{s-p+r} at degree p; start from the indicator.
    polys = [torch.tensor([1.0], dtype=torch.float64)]
    for p in range(1, k + 1):
        new = []
        for r in range(p + 1):
            acc = torch.zeros(p + 1, dtype=torch.float64)
            if r >= 1:  # (u + p - r) / p * B_{s-p+r, p-1}
                prev = polys[r - 1]
                acc[1 : len(prev) + 1] += prev / p
                acc[: len(prev)] += prev * (p - r) / p
            if r < p:  # (r + 1 - u) / p * B_{s-p+r+1, p-1}
                prev = polys[r]
                acc[: len(prev)] += prev * (r + 1) / p
                acc[1 : len(prev) + 1] -= prev / p
            new.append(acc)
        polys = new
    return torch.stack(polys, dim=1)  # (power, r)


def local_basis(x: torch.Tensor, knots: torch.Tensor, spline_order: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k + 1 basis values on each x's knot span, and where they go in a padded basis row.

    Returns (values (..., k+1), slot (..., k+1)). Slot s + 1 + r holds B_{s-k+r}(x) in a row of G + 3k + 2 entries,
    so the real bases B_0..B_{G+k-1} are the slots k+1 .. k+G+k; the padding takes the values of spans outside
    the grid and of bases that do not exist, so nothing needs masking.
    """
    k = spline_order
    t = knots.to(x.dtype)
    s = torch.searchsorted(t, x.detach().contiguous(), right=True)  # = span + 1: t_span <= x < t_span+1
    u = (x - t[(s - 1).clamp(min=0)]) / (t[1] - t[0])  # position inside the span, in [0, 1)
    m = span_polynomials(k).to(x)
    u = u.unsqueeze(-1)
    values = m[k].expand(*u.shape[:-1], k + 1)
    for p in range(k - 1, -1, -1):  # Horner: values = (...(M_k u + M_k-1) u + ...) u + M_0
        values = torch.addcmul(m[p], values, u)
    return values, s.unsqueeze(-1) + torch.arange(k + 1, device=x.device)


class BSplineFastKANLayer(BSplineKANLayer):
    """`bspline`'s layer (same parameters and init), with closed-form local bases and a sparse-aware contraction."""

    def __init__(self, *args, contraction: str = "dense", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if contraction not in ("dense", "gather"):
            raise ValueError(f"contraction must be 'dense' or 'gather', got {contraction!r}")
        self.contraction = contraction

    def basis(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., in, G + k) dense basis values, built from the k + 1 local ones."""
        k, K = self.spline_order, self.num_basis
        values, slot = local_basis(x, self.knots, k)
        padded = torch.zeros(*x.shape, K + 2 * k + 2, device=x.device, dtype=x.dtype).scatter_add_(-1, slot, values)
        return padded[..., k + 1 : k + 1 + K]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_features, f"BSplineFastKANLayer({self.in_features} -> {self.out_features})")
        weight = self.spline_weight * self.spline_scaler.unsqueeze(-1)  # (out, in, K)
        base = F.linear(F.silu(x), self.base_weight)
        if self.contraction == "dense":
            return base + F.linear(self.basis(x).flatten(-2), weight.flatten(1))
        # gather: only the k + 1 touched coefficient rows per input, from a table padded like the basis row
        k = self.spline_order
        values, slot = local_basis(x, self.knots, k)
        table = F.pad(weight, (k + 1, k + 1)).permute(1, 2, 0)  # (in, K + 2k + 2, out), zero rows as padding
        rows = slot + table.shape[1] * torch.arange(self.in_features, device=x.device).unsqueeze(-1)
        spline = F.embedding_bag(
            rows.reshape(-1, rows.shape[-2] * rows.shape[-1]), table.reshape(-1, self.out_features),
            per_sample_weights=values.reshape(-1, values.shape[-2] * values.shape[-1]), mode="sum",
        )  # fmt: skip
        return base + spline.reshape(*x.shape[:-1], self.out_features)


def build(widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, **options) -> LayerStack:
    """A B-spline KAN with closed-form bases; state_dict-compatible with `bspline`."""
    widths = check_widths(widths)
    return LayerStack([BSplineFastKANLayer(i, o, grid_size, spline_order, **options) for i, o in edges(widths)])


def flop_breakdown(
    widths: Sequence[int], grid_size: int, spline_order: int, batch: int, contraction: str = "dense", **options
) -> dict[str, int]:
    """Forward FLOPs: the matmuls exactly; local bases (and the gathered k + 1 rows of "gather") as estimates."""
    k, K = spline_order, grid_size + spline_order
    matmul = elementwise = 0
    for i, o in edges(check_widths(widths)):
        # embedding_bag is no matmul to FlopCounterMode, so the gathered multiply-adds count as elementwise
        spline = 2 * batch * i * (K if contraction == "dense" else k + 1) * o
        matmul += 2 * batch * i * o + (spline if contraction == "dense" else 0)
        per_input = 6 + 2 * (k + 1) ** 2 + 4  # span and u, powers and the (k+1)^2 polynomial matmul, silu
        elementwise += batch * i * per_input + o * i * K + batch * o + (0 if contraction == "dense" else spline)
    return {"matmul": matmul, "elementwise": elementwise}
