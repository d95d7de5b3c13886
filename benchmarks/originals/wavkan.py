"""The original Wav-KAN (zavareh1/Wav-KAN), its KANLinear layers stacked for widths, beside kanbench's `wavkan`.

    git clone https://github.com/zavareh1/Wav-KAN ../originals/Wav-KAN
    git -C ../originals/Wav-KAN checkout f7ab5215e69b1a32e9e289159d2fd55d078fa051
    implementations.get("benchmarks.originals.wavkan:adapter")   # name "wavkan-original"

On the widths kanbench's `wavkan` builds for the same options (iso_to="bspline" scales the hidden widths, as the
registry's `wavkan` does), so the two time the same shapes. Its forward always adds what the paper's layer has not:
BatchNorm1d on each output, and F.linear(x, weight1), computed and then dropped (weight1 is trainable, counted and
never used). KAN.py imports torchvision and tqdm at the top without using them in the layers; where they are not
installed, empty stand-ins are put in sys.modules while it is imported.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterator, Sequence

from implementations import wavkan
from implementations.common import edges

from ._checkout import Checkout, OriginalAdapter, OriginalStack

CHECKOUT = Checkout(
    "https://github.com/zavareh1/Wav-KAN", "f7ab5215e69b1a32e9e289159d2fd55d078fa051", "Wav-KAN", "KAN.py"
)
UNUSED_IMPORTS = ("torchvision", "torchvision.transforms", "tqdm")


@contextlib.contextmanager
def stand_ins() -> Iterator[None]:
    """Empty modules for KAN.py's unused imports that are not installed, for the duration of its import."""
    added = []
    for name in UNUSED_IMPORTS:
        try:
            __import__(name)
        except ImportError:
            module = types.ModuleType(name)
            module.tqdm = None  # type: ignore[attr-defined]  # `from tqdm import tqdm`
            module.transforms = None  # type: ignore[attr-defined]  # `import torchvision.transforms as transforms`
            sys.modules[name] = module
            added.append(name)
    try:
        yield
    finally:
        for name in added:
            sys.modules.pop(name, None)


def widths_of(widths: Sequence[int], grid_size: int, spline_order: int, wavelet: str, iso_to: str | None) -> list[int]:
    """The widths kanbench's `wavkan` builds with these options (the original has no base branch to match)."""
    return list(wavkan.WavKAN(widths, grid_size, spline_order, wavelet=wavelet, iso_to=iso_to).widths)


def build(
    widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, wavelet: str = "mexican_hat",
    iso_to: str | None = "bspline",
) -> OriginalStack:  # fmt: skip
    """The original's KANLinear for each pair of (resolved) widths."""
    widths = widths_of(widths, grid_size, spline_order, wavelet, iso_to)
    with stand_ins():
        original = CHECKOUT.load()
    return OriginalStack([original.KANLinear(i, o, wavelet_type=wavelet) for i, o in edges(widths)], widths, 0)


def param_count(
    widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, wavelet: str = "mexican_hat",
    iso_to: str | None = "bspline",
) -> int:  # fmt: skip
    """scale, translation, weight1 and wavelet_weights (out, in) and BatchNorm1d's weight and bias per layer."""
    return sum(4 * i * o + 2 * o for i, o in edges(widths_of(widths, grid_size, spline_order, wavelet, iso_to)))


def flop_breakdown(
    widths: Sequence[int], grid_size: int, spline_order: int, batch: int, wavelet: str = "mexican_hat",
    iso_to: str | None = "bspline",
) -> dict[str, int]:  # fmt: skip
    """The dropped F.linear(x, weight1) is its only matmul; the wavelet per edge as in `wavkan`, and BatchNorm."""
    layers = edges(widths_of(widths, grid_size, spline_order, wavelet, iso_to))
    per_edge = {"mexican_hat": 13, "morlet": 11, "dog": 10}[wavelet]  # it also multiplies by the constant separately
    return {
        "matmul": sum(2 * batch * i * o for i, o in layers),
        "elementwise": sum(batch * (i * o * per_edge + 4 * o) for i, o in layers),
    }


def adapter() -> OriginalAdapter:
    """The factory kanbench calls."""
    return OriginalAdapter(
        "wavkan-original",
        "wavelet",
        build,
        param_count,
        flop_breakdown,
        description="zavareh1/Wav-KAN's own KANLinear (wavelet per edge, BatchNorm1d), stacked",
        colour="#dbdb8d",
        has_basis=False,
        checkout=CHECKOUT,
    )
