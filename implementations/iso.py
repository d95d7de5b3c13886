"""Equal parameter counts for families without a per-input basis: hidden widths scaled to another KAN's count.

A wavelet or rational KAN has no basis count to set equal to the B-spline's G + k, so wavkan and grkan are compared
at the B-spline KAN's parameter count instead: every hidden width is scaled by one factor, and a width list without
a hidden layer (e.g. [100, 100]) gets one, as mlp-iso does. Unlike mlp-iso this takes the nearest count rather than
refusing what is more than 2% off: one hidden unit costs a whole row of edges, so at tiny widths (the tests' [3, 4, 2])
2% is out of reach, while at every width the suites use ([100, 100] and up) the nearest count is within 0.5%.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .common import Family, check_grid, check_widths, edges

ISO_TOLERANCE = 0.02  # what the suites' widths reach; tests/test_zoo_rational_wavelet.py holds them to it


def scaled_widths(widths: Sequence[int], target: int, count: Callable[[list[int]], int]) -> list[int]:
    """widths with the hidden ones scaled by one factor so that count(widths) is nearest to target."""
    widths = check_widths(widths)
    base = widths if len(widths) > 2 else [widths[0], 1, widths[1]]  # no hidden layer to scale: give it one

    def scale_of(s: float) -> list[int]:
        return [base[0], *(max(1, round(w * s)) for w in base[1:-1]), base[-1]]

    lo, hi = 1e-3, 1.0
    while count(scale_of(hi)) < target:
        hi *= 2
    for _ in range(100):  # count grows with the scale: bisect to where it crosses target
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if count(scale_of(mid)) < target else (lo, mid)
    return min((scale_of(lo), scale_of(hi)), key=lambda w: abs(count(w) - target))


def resolve_widths(
    widths: Sequence[int], grid_size: int, spline_order: int, iso_to: str | None, count: Callable[[list[int]], int]
) -> list[int]:
    """The widths a model is built on: as given (iso_to None, or "none" as a suite file writes it: TOML has no
    null), or scaled to the iso_to adapter's parameter count."""
    widths = check_widths(widths)
    check_grid(grid_size, spline_order)  # a sweep's bad G or k must fail here too, though only iso_to reads them
    if iso_to is None or iso_to == "none":
        return widths
    from . import get  # the registry, for the KAN whose parameter count is matched

    return scaled_widths(widths, get(iso_to).param_count(widths, grid_size, spline_order), count)


@dataclass(frozen=True, kw_only=True)
class IsoFamily(Family):
    """A family compared at the iso_to KAN's parameter count: its widths are the scaled ones (iso_to None: as given).

    A subclass checks its own options before calling this __post_init__: the scaling counts with them."""

    iso_to: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        scaled = resolve_widths(self.widths, self.grid_size, self.spline_order, self.iso_to, self.count)
        object.__setattr__(self, "widths", scaled)

    def layer_params(self, i: int, o: int) -> int:
        """Trainable parameters of one layer from i inputs to o outputs."""
        raise NotImplementedError

    def count(self, widths: Sequence[int]) -> int:
        """Trainable parameters of the model on these widths."""
        return sum(self.layer_params(i, o) for i, o in edges(widths))

    def param_count(self) -> int:
        """Trainable parameters of the model build() makes."""
        return self.count(self.widths)
