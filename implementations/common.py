"""Checks and the layer stack shared by every implementation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def check_widths(widths: Sequence[int]) -> list[int]:
    """Return widths as a list of ints, or raise ValueError saying what is wrong."""
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
        raise ValueError(f"widths must be a list of positive ints such as [784, 64, 10], got {widths!r}")
    if len(widths) < 2:
        raise ValueError(f"widths needs at least 2 entries (inputs and outputs), got {list(widths)!r}")
    for i, w in enumerate(widths):
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise ValueError(f"widths[{i}] must be a positive int, got {w!r} in {list(widths)!r}")
    return [int(w) for w in widths]


def check_grid(grid_size: int, spline_order: int) -> None:
    """Raise ValueError unless grid_size and spline_order are ints >= 1."""
    for name, value in (("grid_size", grid_size), ("spline_order", spline_order)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def check_input(x: torch.Tensor, in_features: int, where: str) -> None:
    """Raise TypeError for non-float input, ValueError for a wrong last dimension."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{where} expects a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{where} expects a floating-point tensor, got dtype {x.dtype}; convert with x.float()")
    if x.dim() == 0 or x.shape[-1] != in_features:
        raise ValueError(
            f"{where} expects input of shape (..., {in_features}), got {tuple(x.shape)} "
            f"(last dimension {x.shape[-1] if x.dim() else 'missing'} != {in_features})"
        )


class LayerStack(nn.Module):
    """A KAN: layers applied one after another, exposed as `self.layers`."""

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


def edges(widths: Sequence[int]) -> list[tuple[int, int]]:
    """(in, out) of each layer."""
    return list(zip(widths[:-1], widths[1:]))


def backward_matmul(per_layer: Sequence[int], first_input_grad: bool = False) -> int:
    """Matmul FLOPs of one backward through contractions costing per_layer forward FLOPs, the model input without grad.

    Each contraction's weight gradient costs its forward again, and so does its operand's gradient, except in the
    first layer when nothing trainable lies between the model input and the operand (first_input_grad False):
    autograd skips that product, so backward is less than twice forward.
    """
    return 2 * sum(per_layer) - (0 if first_input_grad or not per_layer else per_layer[0])
