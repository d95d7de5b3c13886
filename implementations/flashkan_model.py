"""flashkan (PyPI `flashkan` 0.2.0, MIT), a third-party B-spline KAN whose basis is the truncated-power closed form:
the model behind the adapter that implementations/flashkan_adapter.py declares for `kanbench.implementations`.

Configured as bspline-fast's closest public peer: the same G, k = 3 and grid (-1, 1), so flashkan's grid_starts are
bspline's knots t_0 .. t_(G+2) and its G + 3 bases are bspline's. Its layer computes
y = sum_(i,m) c[o, i, m] B_m(x_i) + sum_i w[o, i] silu(x_i): bspline's function with the spline scaler s fixed
to 1 (one parameter less per edge), and its own init (truncated normal, std 0.1, for c and w).

flashkan's forward calls a torch.compile'd basis. kanbench times models eagerly (its compile axis compiles whole
models), so by default this runs flashkan's forward with flashkan's exported eager basis, bspline_basis_eager, in
place of the compiled one (tests/test_flashkan.py shows the two forwards agree); compile_basis=True runs
KANLayer.forward as published. flashkan 0.2.0 evaluates cubic B-splines only: its basis is the k = 3 formula
whatever spline_order says, so other orders are refused here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .common import LayerStack, backward_matmul, check_grid, check_input, check_widths, edges


class FlashkanLayer(nn.Module):
    """A view of one flashkan KANLayer that adds `basis(x)`; forward is flashkan's (with its eager basis)."""

    def __init__(self, layer: Any, compile_basis: bool = False) -> None:  # a flashkan KANLayer (untyped)
        super().__init__()
        self.layer, self.compile_basis = layer, compile_basis
        self.in_features, self.out_features = layer.in_features, layer.out_features
        self.num_basis = layer.grid_size + layer.spline_order

    def basis(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., in, G + 3) from flashkan's public eager basis function."""
        from flashkan.basis import bspline_basis_eager

        return bspline_basis_eager(x, self.layer.grid_starts, self.layer.inv_h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_features, f"flashkan KANLayer({self.in_features} -> {self.out_features})")
        flat = x.reshape(-1, self.in_features)  # flashkan's einsums take (batch, in) only
        if self.compile_basis:
            y = self.layer(flat)
        else:  # KANLayer.forward's three lines, its eager basis in place of the compiled one
            layer = self.layer
            spline = torch.einsum("bin,oin->bo", self.basis(flat), layer.spline_weight)
            y = spline + torch.einsum("bi,oi->bo", layer.base_activation(flat), layer.base_weight)
        return y.reshape(*x.shape[:-1], self.out_features)


def build(
    widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, compile_basis: bool = False,
    grid_range: tuple[float, float] = (-1.0, 1.0),
) -> LayerStack:  # fmt: skip
    """flashkan KANLayers on widths, on bspline-fast's grid; eager unless compile_basis."""
    widths = check_widths(widths)
    check_grid(grid_size, spline_order)
    if spline_order != 3:
        raise ValueError(f"flashkan 0.2.0 evaluates cubic B-splines only (spline_order=3), got {spline_order}")
    from flashkan import KANLayer

    return LayerStack([
        FlashkanLayer(KANLayer(i, o, grid_size=grid_size, spline_order=3, grid_range=tuple(grid_range)), compile_basis)
        for i, o in edges(widths)
    ])  # fmt: skip


def param_count(widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, **options) -> int:
    """Per edge: G + k spline coefficients and one base weight (no scaler, no bias)."""
    return sum(o * i * (grid_size + spline_order + 1) for i, o in edges(check_widths(widths)))


def flop_breakdown(widths: Sequence[int], grid_size: int, spline_order: int, batch: int, **options) -> dict[str, int]:
    """Forward FLOPs: the two einsums per layer exactly; the truncated powers and SiLU as estimates."""
    K = grid_size + spline_order
    layers = edges(check_widths(widths))
    per_layer = [2 * batch * o * i * (K + 1) for i, o in layers]
    # per basis: u (2), five clamps with four shifts (9), five cubes (10), four multiply-adds and the 1/6 (9)
    elementwise = sum(batch * (i * (30 * K + 4) + o) for i, o in layers)
    return {"matmul": sum(per_layer), "elementwise": elementwise, "matmul_backward": backward_matmul(per_layer)}
