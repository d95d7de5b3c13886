"""The original JacobiKAN (SpaceLearner/JacobiKAN), its layers stacked for widths, beside kanbench's `jacobikan`.

    git clone https://github.com/SpaceLearner/JacobiKAN ../originals/JacobiKAN
    git -C ../originals/JacobiKAN checkout 51d160cfbf70914e4862e192ed3eef403dab893b
    implementations.get("benchmarks.originals.jacobikan:adapter")   # name "jacobikan-original"

Its JacobiKANLayer(in, out, degree, a, b) fills a (rows, in, degree + 1) tensor by the three-term recurrence, slice
by slice, and contracts with einsum; degree is G + k - 1 as in `jacobikan` unless given, a = b = 1. That tensor is
made by torch.ones in the default dtype, so a model in any other dtype (float64, bfloat16) fails in the einsum; the
stack runs it with the default dtype set to the input's (input_dtype_default), which changes nothing in float32.
"""

from __future__ import annotations

from collections.abc import Sequence

from implementations import jacobikan
from implementations.chebykan import resolve_degree
from implementations.common import check_widths, edges

from ._checkout import Checkout, OriginalAdapter, OriginalStack

CHECKOUT = Checkout(
    "https://github.com/SpaceLearner/JacobiKAN",
    "51d160cfbf70914e4862e192ed3eef403dab893b",
    "JacobiKAN",
    "JacobiKANLayer.py",
)


def build(
    widths: Sequence[int],
    grid_size: int = 5,
    spline_order: int = 3,
    degree: int | None = None,
    a: float = 1.0,
    b: float = 1.0,
) -> OriginalStack:
    """The original's JacobiKANLayer for each pair of widths, degree G + k - 1 unless given."""
    widths = check_widths(widths)
    D = resolve_degree(grid_size, spline_order, degree)
    a, b = jacobikan.check_ab(a, b)
    original = CHECKOUT.load()
    layers = [original.JacobiKANLayer(i, o, D, a, b) for i, o in edges(widths)]
    return OriginalStack(layers, widths, D + 1, input_dtype_default=True)


def param_count(
    widths: Sequence[int],
    grid_size: int = 5,
    spline_order: int = 3,
    degree: int | None = None,
    a: float = 1.0,
    b: float = 1.0,
) -> int:
    """jacobi_coeffs (in, out, D + 1) per layer: the same count as `jacobikan`."""
    return jacobikan.param_count(widths, grid_size, spline_order, degree=degree, a=a, b=b)


def flop_breakdown(
    widths: Sequence[int],
    grid_size: int,
    spline_order: int,
    batch: int,
    degree: int | None = None,
    a: float = 1.0,
    b: float = 1.0,
) -> dict[str, int]:
    """Its einsum is one bmm of our matmul's size; the recurrence as `jacobikan` estimates it."""
    forward = jacobikan.flop_breakdown(widths, grid_size, spline_order, batch, degree=degree, a=a, b=b)
    # the family's matmul_backward is not carried over (it counts our backward, not the original's): the FLOP
    # counter's count of the phase stands in for it
    return {kind: forward[kind] for kind in ("matmul", "elementwise")}


def adapter() -> OriginalAdapter:
    """The factory kanbench calls."""
    return OriginalAdapter(
        "jacobikan-original",
        "jacobi",
        build,
        param_count,
        flop_breakdown,
        description="SpaceLearner/JacobiKAN's own JacobiKANLayer (recurrence into slices, einsum), stacked",
        colour="#c2a5cf",
        checkout=CHECKOUT,
    )
