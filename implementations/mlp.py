"""MLP baseline: Linear + SiLU on the same widths, or hidden widths scaled to a KAN's parameter count."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .common import backward_matmul, check_grid, check_input, check_widths, edges
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


def _resolve(widths: Sequence[int], grid_size: int, spline_order: int, options: dict) -> list[int]:
    check_grid(grid_size, spline_order)  # unused by a plain MLP, but a sweep's bad G or k must fail for every adapter
    match_params = options.pop("match_params", None)
    iso_to = options.pop("iso_to", None)
    if options:
        raise TypeError(f"mlp: unknown options {sorted(options)}; allowed: match_params, iso_to")
    if iso_to is not None:
        from . import get  # the registry, for the KAN whose parameter count is matched

        match_params = get(iso_to).param_count(widths, grid_size, spline_order)
    return iso_widths(widths, match_params) if match_params is not None else check_widths(widths)


def build(widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, **options) -> MLP:
    """An MLP on widths, or with hidden widths scaled to match_params / to the iso_to KAN's count."""
    return MLP(_resolve(widths, grid_size, spline_order, dict(options)))


def param_count(widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, **options) -> int:
    """Trainable parameters of the MLP that build() makes."""
    return mlp_params(_resolve(widths, grid_size, spline_order, dict(options)))


def flop_breakdown(widths: Sequence[int], grid_size: int, spline_order: int, batch: int, **options) -> dict[str, int]:
    """Forward FLOPs: the matmuls exactly; bias adds and SiLU as estimated op counts."""
    resolved = _resolve(widths, grid_size, spline_order, dict(options))
    per_layer = [2 * batch * i * o for i, o in edges(resolved)]
    elementwise = sum(batch * o for _, o in edges(resolved)) + sum(4 * batch * w for w in resolved[1:-1])
    return {"matmul": sum(per_layer), "elementwise": elementwise, "matmul_backward": backward_matmul(per_layer)}
