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


def local_basis(x: torch.Tensor, knots: torch.Tensor, poly: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The k + 1 non-zero bases on each x's knot span, and the index m of the first of them.

    Returns (values (..., k+1), first (...)): values[..., r] = B_{first + r}(x). Indices outside 0..G+k-1 name bases
    that do not exist (x near or beyond the grid's ends); callers drop them. poly is span_polynomials(k).
    """
    k = poly.shape[0] - 1
    last = len(knots) - 1
    h = knots[1] - knots[0]
    xd = x.detach()
    span = ((xd - knots[0]) / h).floor_().long().clamp_(-1, last)  # uniform knots: the span by arithmetic ...
    span += xd >= knots[(span + 1).clamp(max=last)]  # ... corrected where rounding put a knot's own x below it
    u = (x - knots[span.clamp(0, last)]) / h  # in [0, 1) inside the grid: t_span <= x < t_span+1
    u = u.unsqueeze(-1)
    values = poly[k].expand(*u.shape[:-1], k + 1)
    for p in range(k - 1, -1, -1):  # Horner: values = (...(M_k u + M_k-1) u + ...) u + M_0
        values = torch.addcmul(poly[p], values, u)
    return values, span - k


class BSplineFastKANLayer(BSplineKANLayer):
    """`bspline`'s layer (same parameters and init), with closed-form local bases and a sparse-aware contraction."""

    def __init__(self, *args, contraction: str = "dense", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if contraction not in ("dense", "gather"):
            raise ValueError(f"contraction must be 'dense' or 'gather', got {contraction!r}")
        self.contraction = contraction
        k = self.spline_order
        self.register_buffer("poly", span_polynomials(k).to(torch.get_default_dtype()), persistent=False)
        self.register_buffer("offsets", torch.arange(k + 1), persistent=False)

    def local(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(values, index) of the k + 1 local bases, values zeroed and indices clamped where no basis exists."""
        values, first = local_basis(x, self.knots, self.poly)
        index = first.unsqueeze(-1) + self.offsets
        real = (index >= 0) & (index < self.num_basis)
        return values * real, index.clamp(0, self.num_basis - 1)

    def basis(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., in, G + k) dense basis values, built from the k + 1 local ones."""
        values, index = self.local(x)
        dense = torch.zeros(*x.shape, self.num_basis, device=x.device, dtype=x.dtype)
        return dense.scatter_add_(-1, index, values)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_features, f"BSplineFastKANLayer({self.in_features} -> {self.out_features})")
        weight = self.spline_weight * self.spline_scaler.unsqueeze(-1)  # (out, in, K)
        base = F.linear(F.silu(x), self.base_weight)
        if self.contraction == "dense":
            return base + F.linear(self.basis(x).flatten(-2), weight.flatten(1))
        # gather: only the k + 1 touched coefficient rows of each input: row i * K + m holds c[:, i, m] * s[:, i]
        values, index = self.local(x)
        rows = index + self.num_basis * torch.arange(self.in_features, device=x.device).unsqueeze(-1)
        spline = F.embedding_bag(
            rows.reshape(-1, rows.shape[-2] * rows.shape[-1]),
            weight.permute(1, 2, 0).reshape(-1, self.out_features),
            per_sample_weights=values.reshape(-1, values.shape[-2] * values.shape[-1]),
            mode="sum",
        )
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
