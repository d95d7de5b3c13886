"""An ad hoc adapter for the instruction-clock tests: a forward that runs a Python loop of widths[0] x 1000
iterations (a workload of known size), then a tiny differentiable map to widths[-1] outputs."""

from __future__ import annotations

import torch
from torch import nn

import implementations
from implementations.common import check_input, check_widths
from kanbench.measure.phases import busy


class Loop(nn.Module):
    """out = Linear(x[..., :1]), after a Python loop of `iterations` steps."""

    def __init__(self, widths: list[int]) -> None:
        super().__init__()
        self.widths = widths
        self.iterations = 10_000 * widths[0]
        self.layers = nn.ModuleList([nn.Linear(1, widths[-1])])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.widths[0], "Loop")
        busy(self.iterations)  # the busy work an injected slowdown adds (a loop whose ints never grow)
        return self.layers[0](x[..., :1])


def build(widths, grid_size=5, spline_order=3, **options):
    """The loop model."""
    return Loop(check_widths(widths))


def param_count(widths, grid_size=5, spline_order=3, **options):
    """The Linear(1, out)."""
    return 2 * check_widths(widths)[-1]


def flop_breakdown(widths, grid_size, spline_order, batch, **options):
    """The Linear(1, out); the loop is no tensor work."""
    out = check_widths(widths)[-1]
    return {"matmul": 2 * batch * out, "elementwise": batch * out}


adapter = implementations.Adapter("loop", "mlp", "loop_adapter:build", description="a Python loop of known length")
