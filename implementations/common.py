"""Checks, the layer stack, and a family's options declared once (Family) with the stacking build they share."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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


class KANLayer(nn.Module):
    """A layer from in_features to out_features with num_basis functions per edge (0: no basis; the layer contract)."""

    def __init__(self, in_features: int, out_features: int, num_basis: int = 0) -> None:
        super().__init__()
        check_widths([in_features, out_features])
        self.in_features, self.out_features, self.num_basis = in_features, out_features, num_basis

    def check(self, x: torch.Tensor) -> None:
        """check_input, naming the layer and its widths."""
        check_input(x, self.in_features, f"{type(self).__name__}({self.in_features} -> {self.out_features})")


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


@dataclass(frozen=True)
class Family:
    """A model's widths, G and k, and, in a family's subclass, each of its options with its default: the one
    declaration that the family's build, param_count and flop_breakdown read (made by adapter_functions)."""

    widths: Sequence[int]
    grid_size: int = 5
    spline_order: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", check_widths(self.widths))
        check_grid(self.grid_size, self.spline_order)

    @property
    def edges(self) -> list[tuple[int, int]]:
        """(in, out) of each layer."""
        return edges(self.widths)

    @property
    def num_basis(self) -> int:
        """G + k basis functions per edge, as many as the B-spline KAN's (the fairness rule)."""
        return self.grid_size + self.spline_order

    @classmethod
    def names(cls) -> list[str]:
        """The family's own options, by name."""
        return [f.name for f in dataclasses.fields(cls) if f.name not in ("widths", "grid_size", "spline_order")]

    def options(self) -> dict[str, Any]:
        """The family's own options but memory (which its build sets on the stack), by name."""
        return {name: getattr(self, name) for name in self.names() if name != "memory"}

    def layer(self, n: int, i: int, o: int) -> nn.Module:
        """Layer n of the model, from i inputs to o outputs."""
        raise NotImplementedError

    def build(self) -> nn.Module:
        """A freshly initialised model: one layer per pair of widths."""
        return LayerStack([self.layer(n, i, o) for n, (i, o) in enumerate(self.edges)])

    def param_count(self) -> int:
        """Trainable parameters of the model build() makes."""
        raise NotImplementedError

    def flop_breakdown(self, batch: int) -> dict[str, int]:
        """FLOPs of one forward on batch rows: "matmul", "elementwise" and "matmul_backward" (the Adapter's)."""
        raise NotImplementedError


def options_of(family: type[Family], options: dict[str, Any]) -> dict[str, Any]:
    """options, or TypeError naming the unknown ones and the family's own."""
    own = family.names()
    unknown = sorted(set(options) - set(own))
    if unknown:
        name = family.__module__.rpartition(".")[2]
        raise TypeError(f"{name}: unknown options {unknown}; allowed: {', '.join(own)}")
    return options


def adapter_functions(family: type[Family]) -> tuple[Callable[..., Any], Callable[..., int], Callable[..., dict]]:
    """The family module's build, param_count and flop_breakdown (the Adapter contract), each reading a family."""

    def build(widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, **options: Any) -> nn.Module:
        return family(widths, grid_size, spline_order, **options_of(family, options)).build()

    def param_count(widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, **options: Any) -> int:
        return family(widths, grid_size, spline_order, **options_of(family, options)).param_count()

    def flop_breakdown(widths: Sequence[int], grid_size: int, spline_order: int, batch: int, **options: Any) -> dict:
        return family(widths, grid_size, spline_order, **options_of(family, options)).flop_breakdown(batch)

    for function in (build, param_count, flop_breakdown):  # shown as the family module's own (Info.target)
        function.__module__, function.__qualname__ = family.__module__, function.__name__
        function.__doc__ = getattr(family, function.__name__).__doc__
    return build, param_count, flop_breakdown
