"""The original ChebyKAN (SynodicMonth/ChebyKAN), its layers stacked for widths, beside kanbench's `chebykan`.

    git clone https://github.com/SynodicMonth/ChebyKAN ../originals/ChebyKAN
    git -C ../originals/ChebyKAN checkout 5f7efdd18e749bcc99481bd87dc90bdeafb920d8
    implementations.get("benchmarks.originals.chebykan:adapter")   # name "chebykan-original"

Its ChebyKANLayer(in, out, degree) evaluates cos(d arccos(tanh x)) for d = 0..degree and contracts with einsum;
degree is G + k - 1 as in `chebykan` unless given. No LayerNorm between layers: the README's MNIST model adds them
(kanbench's `chebykan` with hidden_layernorm=True is that model).
"""

from __future__ import annotations

from collections.abc import Sequence

from implementations import chebykan
from implementations.common import check_widths, edges

from ._checkout import Checkout, OriginalAdapter, OriginalStack

CHECKOUT = Checkout(
    "https://github.com/SynodicMonth/ChebyKAN",
    "5f7efdd18e749bcc99481bd87dc90bdeafb920d8",
    "ChebyKAN",
    "ChebyKANLayer.py",
)


def build(widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, degree: int | None = None) -> OriginalStack:
    """The original's ChebyKANLayer for each pair of widths, degree G + k - 1 unless given."""
    widths = check_widths(widths)
    D = chebykan.resolve_degree(grid_size, spline_order, degree)
    original = CHECKOUT.load()
    return OriginalStack([original.ChebyKANLayer(i, o, D) for i, o in edges(widths)], widths, D + 1)


def param_count(widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, degree: int | None = None) -> int:
    """cheby_coeffs (in, out, D + 1) per layer: the same count as `chebykan`."""
    return chebykan.param_count(widths, grid_size, spline_order, degree=degree)


def flop_breakdown(
    widths: Sequence[int], grid_size: int, spline_order: int, batch: int, degree: int | None = None
) -> dict[str, int]:
    """Its einsum is one bmm of our matmul's size; tanh once, arccos, the product and cos per polynomial."""
    D = chebykan.resolve_degree(grid_size, spline_order, degree)
    layers = edges(check_widths(widths))
    return {
        "matmul": sum(2 * batch * i * (D + 1) * o for i, o in layers),
        "elementwise": sum(batch * i * (1 + 3 * (D + 1)) for i, _ in layers),
    }


def adapter() -> OriginalAdapter:
    """The factory kanbench calls."""
    return OriginalAdapter(
        "chebykan-original",
        "chebyshev",
        build,
        param_count,
        flop_breakdown,
        description="SynodicMonth/ChebyKAN's own ChebyKANLayer (cos(d arccos tanh x), einsum), stacked",
        colour="#e9a3c9",
        checkout=CHECKOUT,
    )
