"""The original ReLU-KAN (quiqi/relu_kan), its layers stacked for widths, beside kanbench's `relukan`.

    git clone https://github.com/quiqi/relu_kan ../originals/relu_kan
    git -C ../originals/relu_kan checkout 79eab7a27392eb5f33e119710f0e75ec902764c0
    implementations.get("benchmarks.originals.relukan:adapter")   # name "relukan-original"

Its ReLUKANLayer(in, g, k, out, train_ab) takes (rows, in, 1) and returns (rows, out, 1); g = G, k = k, the grid on
[0, 1], s and e trainable unless trainable_grid=False; the contraction is its Conv2d(1, out, (g + k, in)).
"""

from __future__ import annotations

from collections.abc import Sequence

from implementations import relukan
from implementations.common import check_grid, check_widths, edges

from ._checkout import Checkout, OriginalAdapter, OriginalStack

CHECKOUT = Checkout(
    "https://github.com/quiqi/relu_kan", "79eab7a27392eb5f33e119710f0e75ec902764c0", "relu_kan", "torch_relu_kan.py"
)


def build(
    widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, trainable_grid: bool = True
) -> OriginalStack:
    """The original's ReLUKANLayer for each pair of widths."""
    widths = check_widths(widths)
    check_grid(grid_size, spline_order)
    original = CHECKOUT.load()
    layers = [original.ReLUKANLayer(i, grid_size, spline_order, o, trainable_grid) for i, o in edges(widths)]
    return OriginalStack(layers, widths, grid_size + spline_order, column=True)


def param_count(widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, trainable_grid: bool = True) -> int:
    """phase_low and phase_height (in, G + k) when trainable, Conv2d weight and bias: the same count as `relukan`."""
    return relukan.param_count(widths, grid_size, spline_order, trainable_grid=trainable_grid)


def flop_breakdown(
    widths: Sequence[int], grid_size: int, spline_order: int, batch: int, trainable_grid: bool = True
) -> dict[str, int]:
    """Its Conv2d counts as our matmul (2 rows out (G + k) in); the bumps as `relukan` estimates them."""
    forward = relukan.flop_breakdown(widths, grid_size, spline_order, batch, trainable_grid=trainable_grid)
    # the family's matmul_backward is not carried over (it counts our backward, not the original's): the FLOP
    # counter's count of the phase stands in for it
    return {kind: forward[kind] for kind in ("matmul", "elementwise")}


def adapter() -> OriginalAdapter:
    """The factory kanbench calls."""
    return OriginalAdapter(
        "relukan-original",
        "relu",
        build,
        param_count,
        flop_breakdown,
        description="quiqi/relu_kan's own ReLUKANLayer (Conv2d contraction), stacked",
        colour="#a6dba0",
        checkout=CHECKOUT,
    )
