"""An identity "implementation", joined ad hoc as benchmarks.identity:adapter, to measure harness overhead."""

from __future__ import annotations

import torch
from torch import nn

import implementations


class Passthrough(nn.Module):
    """Returns its input (its first out_features columns when the widths differ, for the tiny correctness check)."""

    def __init__(self, widths: list[int]) -> None:
        super().__init__()
        self.n_out = widths[-1]
        self.same = widths[0] == widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.same else x[..., : self.n_out]


def adapter() -> implementations.Adapter:
    """The identity adapter: no parameters, no FLOPs."""
    return implementations.Adapter(
        "identity", "none",
        builder=lambda widths, grid_size, spline_order, **o: Passthrough(list(widths)),
        counter=lambda widths, grid_size, spline_order, **o: 0,
        flop_counter=lambda widths, grid_size, spline_order, batch, **o: {"matmul": 0, "elementwise": 0},
        description="identity module: measures what the harness itself adds to every call",
    )  # fmt: skip
