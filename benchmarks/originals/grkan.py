"""The original GR-KAN rational of KAT (Adamdad/rational_kat_cu) before each nn.Linear, beside kanbench's `grkan`.

    git clone https://github.com/Adamdad/rational_kat_cu ../originals/rational_kat_cu
    git -C ../originals/rational_kat_cu checkout 181bae8baf19075bef94b5f62dac320b3d4b27d3
    implementations.get("benchmarks.originals.grkan:adapter")   # name "grkan-original"

Each layer is what katransformer.py's KAN block does per pair of widths: the group rational (mode "identity" in the
first layer, "gelu" after), then nn.Linear. kernel="torch" (the default, the one that runs on CPU) is the repository's
pure-PyTorch KAT_Group_Torch (kat_rational/kat_1dgroup_torch.py, imported alone); kernel="triton" is KAT_Group with
its Triton kernel (imports the kat_rational package: needs triton and CUDA), the one KAT trains with. They are not
the same function: the torch reference's denominator is 1 + sum_j |b_j| x^j, the kernels' 1 + sum_j |b_j| |x|^j
(kanbench's "terms"); they agree where x >= 0.

Widths are the ones kanbench's `grkan` builds with the same iso_to (hidden widths scaled to bspline's count by
default). KAT reshapes channels into groups, so a layer whose width 8 does not divide gets the largest group count
below 8 that does (the group count changes a handful of coefficients, not the cost).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import torch
from torch import nn

from implementations import grkan
from implementations.common import edges

from ._checkout import Checkout, OriginalAdapter, OriginalStack

CHECKOUT = Checkout(
    "https://github.com/Adamdad/rational_kat_cu",
    "181bae8baf19075bef94b5f62dac320b3d4b27d3",
    "rational_kat_cu",
    "kat_rational/kat_1dgroup_torch.py",
)
KERNELS = ("torch", "triton")


class KATLayer(nn.Module):
    """KAT's rational on (rows, 1, in) (KAT_Group_Torch takes 3-D input only), then the linear layer."""

    def __init__(self, act: nn.Module, linear: nn.Linear) -> None:
        super().__init__()
        self.act, self.linear = act, linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.act(x.unsqueeze(1)).squeeze(1))


def groups_for(width: int, groups: int = 8) -> int:
    """The largest group count <= groups that divides width (KAT's view needs one)."""
    return max(g for g in range(1, groups + 1) if width % g == 0)


def widths_of(widths: Sequence[int], grid_size: int, spline_order: int, iso_to: str | None) -> list[int]:
    """The widths kanbench's `grkan` builds with this iso_to and its defaults."""
    return list(grkan.GRKAN(widths, grid_size, spline_order, iso_to=iso_to).widths)


def build(
    widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, iso_to: str | None = "bspline",
    kernel: str = "torch",
) -> OriginalStack:  # fmt: skip
    """KAT's group rational and nn.Linear for each pair of (resolved) widths."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
    widths = widths_of(widths, grid_size, spline_order, iso_to)
    if kernel == "torch":
        Rational = CHECKOUT.load().KAT_Group_Torch

        def act(width: int, mode: str) -> nn.Module:
            return Rational(num_groups=groups_for(width), mode=mode)
    else:
        CHECKOUT.load()  # the checkout's check and hint; the package itself needs triton
        if str(CHECKOUT.path) not in sys.path:
            sys.path.insert(0, str(CHECKOUT.path))
        Group = importlib.import_module("kat_rational").KAT_Group

        def act(width: int, mode: str) -> nn.Module:
            return Group(num_groups=groups_for(width), mode=mode, device="cuda")

    layers: list[nn.Module] = [
        KATLayer(act(i, "identity" if n == 0 else "gelu"), nn.Linear(i, o)) for n, (i, o) in enumerate(edges(widths))
    ]
    return OriginalStack(layers, widths, 0)


def param_count(
    widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, iso_to: str | None = "bspline",
    kernel: str = "torch",
) -> int:  # fmt: skip
    """weight_numerator (1, 6), weight_denominator (groups, 4), then W and b, per layer."""
    layers = edges(widths_of(widths, grid_size, spline_order, iso_to))
    return sum(6 + 4 * groups_for(i) + i * o + o for i, o in layers)


def flop_breakdown(
    widths: Sequence[int], grid_size: int, spline_order: int, batch: int, iso_to: str | None = "bspline",
    kernel: str = "torch",
) -> dict[str, int]:  # fmt: skip
    """The torch reference evaluates P and Q as two bmm of the six powers (12 FLOPs per input each); Triton's kernel
    is no matmul to FlopCounterMode. Then the linear layer."""
    layers = edges(widths_of(widths, grid_size, spline_order, iso_to))
    rational = 24 if kernel == "torch" else 0
    return {
        "matmul": sum(batch * i * (rational + 2 * o) for i, o in layers),
        "elementwise": sum(batch * (i * (6 if kernel == "torch" else 16) + o) for i, o in layers),
    }


def adapter() -> OriginalAdapter:
    """The factory kanbench calls."""
    return OriginalAdapter(
        "grkan-original",
        "rational",
        build,
        param_count,
        flop_breakdown,
        description="Adamdad/rational_kat_cu's KAT_Group_Torch (kernel='triton': KAT_Group) before nn.Linear",
        colour="#c49c94",
        has_basis=False,
        checkout=CHECKOUT,
    )
