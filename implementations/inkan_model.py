"""inkan (PyPI `inkan`), a third-party fast uniform cubic B-spline KAN: the model behind the adapter that
implementations/inkan_adapter.py declares for the entry-point group `kanbench.implementations`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .common import backward_matmul, check_grid, check_input, check_widths, edges


class InkanLayer(nn.Module):
    """A view of one inkan KANLayer that adds `basis(x)`; forward is inkan's own."""

    def __init__(self, layer: Any) -> None:  # an inkan KANLayer (an nn.Module); inkan ships no type information
        super().__init__()
        self.layer = layer
        self.in_features, self.out_features, self.num_basis = layer.in_features, layer.out_features, layer.n_bases

    def basis(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., in, G + 3) from inkan's public eager basis function."""
        from inkan import bspline_basis_local_eager

        flat = x.reshape(-1, self.in_features)
        values = bspline_basis_local_eager(flat, self.layer.grid_starts, self.layer.inv_h, self.num_basis)
        return values.reshape(*x.shape, self.num_basis)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_features, f"inkan KANLayer({self.in_features} -> {self.out_features})")
        return self.layer(x.reshape(-1, self.in_features)).reshape(*x.shape[:-1], self.out_features)


class InkanModel(nn.Module):
    """inkan's KANNetwork; `layers` exposes its layers with basis(), forward runs the network itself."""

    def __init__(self, network: Any, widths: list[int]) -> None:  # an inkan KANNetwork (untyped, like KANLayer)
        super().__init__()
        self.network, self.widths = network, widths
        self.layers = nn.ModuleList(InkanLayer(layer) for layer in network.layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.widths[0], f"inkan KANNetwork({self.widths})")
        return self.network(x.reshape(-1, self.widths[0])).reshape(*x.shape[:-1], self.widths[-1])


def build(widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, **options) -> InkanModel:
    """inkan's KANNetwork in eager mode (compile_basis=False; the compile axis compiles whole models)."""
    widths = check_widths(widths)
    check_grid(grid_size, spline_order)
    if spline_order != 3:
        raise ValueError(f"inkan supports only cubic splines (spline_order=3), got spline_order={spline_order}")
    from inkan import KANNetwork

    options.setdefault("compile_basis", False)
    return InkanModel(KANNetwork(list(widths), grid_size=grid_size, spline_order=spline_order, **options), widths)


def param_count(widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, **options) -> int:
    """One packed weight per layer: out x (in x (G + k) spline coefficients + in residual weights)."""
    return sum(o * i * (grid_size + spline_order + 1) for i, o in edges(check_widths(widths)))


def flop_breakdown(widths: Sequence[int], grid_size: int, spline_order: int, batch: int, **options) -> dict[str, int]:
    """Forward FLOPs: one packed matmul per layer exactly; the local cubic pieces and SiLU as estimates."""
    K = grid_size + spline_order
    per_layer = [2 * batch * o * i * (K + 1) for i, o in edges(check_widths(widths))]
    elementwise = sum(batch * i * (40 + 4) for i, _ in edges(check_widths(widths)))
    return {"matmul": sum(per_layer), "elementwise": elementwise, "matmul_backward": backward_matmul(per_layer)}
