"""MLP baseline: Linear + SiLU on the same widths, or hidden widths scaled to a KAN's parameter count."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .common import Family, adapter_functions, backward_matmul, check_input, check_widths, edges
from .iso import ISO_TOLERANCE, scaled_widths


class MLP(nn.Module):
    """Linear layers with SiLU between them (none after the last)."""

    def __init__(self, widths: Sequence[int]) -> None:
        super().__init__()
        self.widths = check_widths(widths)
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in edges(self.widths))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.widths[0], f"MLP({self.widths})")
        for layer in self.layers[:-1]:
            x = F.silu(layer(x))
        return self.layers[-1](x)


def mlp_params(widths: Sequence[int]) -> int:
    """Weights and biases of an MLP on these widths."""
    return sum(i * o + o for i, o in edges(widths))


def iso_widths(widths: Sequence[int], target_params: int) -> list[int]:
    """Scale the hidden widths by one factor so the MLP has target_params parameters within 2%."""
    best = scaled_widths(widths, target_params, mlp_params)
    error = abs(mlp_params(best) - target_params) / target_params
    if error > ISO_TOLERANCE:
        raise ValueError(
            f"no MLP on widths like {list(widths)} has {target_params} parameters within {ISO_TOLERANCE:.0%}: "
            f"closest is {best} with {mlp_params(best)} ({error:.1%} off); use wider layers"
        )
    return best


@dataclass(frozen=True, kw_only=True)
class MLPFamily(Family):
    """The MLP's options: hidden widths scaled to match_params parameters, or to the iso_to KAN's count.

    G and k are checked though a plain MLP reads neither: a sweep's bad G or k must fail for every adapter."""

    match_params: int | None = None
    iso_to: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        target = self.match_params
        if self.iso_to is not None:
            from . import get  # the registry, for the KAN whose parameter count is matched

            target = get(self.iso_to).param_count(self.widths, self.grid_size, self.spline_order)
        if target is not None:
            object.__setattr__(self, "widths", iso_widths(self.widths, target))

    def build(self) -> MLP:
        """An MLP on the (scaled) widths."""
        return MLP(self.widths)

    def param_count(self) -> int:
        """Trainable parameters of the MLP that build() makes."""
        return mlp_params(self.widths)

    def flop_breakdown(self, batch: int) -> dict[str, int]:
        """Forward FLOPs: the matmuls exactly; bias adds and SiLU as estimated op counts."""
        per_layer = [2 * batch * i * o for i, o in self.edges]
        elementwise = sum(batch * o for _, o in self.edges) + sum(4 * batch * w for w in self.widths[1:-1])
        return {"matmul": sum(per_layer), "elementwise": elementwise, "matmul_backward": backward_matmul(per_layer)}


build, param_count, flop_breakdown = adapter_functions(MLPFamily)
