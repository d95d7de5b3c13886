"""The original FourierKAN (GistNoesis/FourierKAN), its layers stacked for widths, beside kanbench's `fourierkan`.

    git clone https://github.com/GistNoesis/FourierKAN ../originals/FourierKAN
    git -C ../originals/FourierKAN checkout ef8079129dd08ce8fbe322b758ca29c8420819e4
    implementations.get("benchmarks.originals.fourierkan:adapter")   # name "fourierkan-original"

Its NaiveFourierKANLayer(in, out, gridsize) has gridsize frequencies, so 2 * gridsize bases: gridsize defaults to
floor((G + k) / 2), i.e. G + k bases for even G + k and one fewer for odd (the original cannot have an odd count; the
smaller choice never gives it more work than `fourierkan`). Its forward materialises (rows, out, in, gridsize)
products and sums them, so FlopCounterMode sees no matmul at all.
"""

from __future__ import annotations

from collections.abc import Sequence

from implementations.common import check_widths, edges
from implementations.fourierkan import resolve_num_basis

from ._checkout import Checkout, OriginalAdapter, OriginalStack

CHECKOUT = Checkout(
    "https://github.com/GistNoesis/FourierKAN", "ef8079129dd08ce8fbe322b758ca29c8420819e4", "FourierKAN", "fftKAN.py"
)


def gridsize(grid_size: int, spline_order: int, frequencies: int | None) -> int:
    """The original's gridsize: frequencies, or floor((G + k) / 2)."""
    return resolve_num_basis(grid_size, spline_order, frequencies) // 2


def build(
    widths: Sequence[int],
    grid_size: int = 5,
    spline_order: int = 3,
    frequencies: int | None = None,
    use_bias: bool = True,
    smooth_init: bool = False,
) -> OriginalStack:
    """The original's NaiveFourierKANLayer for each pair of widths."""
    widths = check_widths(widths)
    K = gridsize(grid_size, spline_order, frequencies)
    original = CHECKOUT.load()
    layers = [original.NaiveFourierKANLayer(i, o, K, use_bias, smooth_init) for i, o in edges(widths)]
    return OriginalStack(layers, widths, 2 * K)


def param_count(
    widths: Sequence[int],
    grid_size: int = 5,
    spline_order: int = 3,
    frequencies: int | None = None,
    use_bias: bool = True,
    smooth_init: bool = False,
) -> int:
    """fouriercoeffs (2, out, in, gridsize) and bias (1, out) per layer."""
    K = gridsize(grid_size, spline_order, frequencies)
    return sum(2 * o * i * K + (o if use_bias else 0) for i, o in edges(check_widths(widths)))


def flop_breakdown(
    widths: Sequence[int],
    grid_size: int,
    spline_order: int,
    batch: int,
    frequencies: int | None = None,
    use_bias: bool = True,
    smooth_init: bool = False,
) -> dict[str, int]:
    """No matmul; per (row, out, in, frequency) two products and two sums, and k x, cos, sin per input."""
    K = gridsize(grid_size, spline_order, frequencies)
    layers = edges(check_widths(widths))
    return {
        "matmul": 0,
        "elementwise": sum(4 * batch * o * i * K + 3 * batch * i * K + batch * o for i, o in layers),
    }


def adapter() -> OriginalAdapter:
    """The factory kanbench calls."""
    return OriginalAdapter(
        "fourierkan-original",
        "fourier",
        build,
        param_count,
        flop_breakdown,
        description="GistNoesis/FourierKAN's own NaiveFourierKANLayer (materialised products), stacked",
        colour="#fc9272",
        checkout=CHECKOUT,
    )
