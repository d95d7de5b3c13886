"""Any model or layer class as an Adapter: `"module:Class"` in a suite, and no adapter written.

Two shapes of class (or any callable) are understood, told apart by the signature:

- a model taking the widths list first, e.g. efficient-kan's `KAN(layers_hidden, grid_size=5, spline_order=3)`;
- a layer taking `(in_features, out_features, ...)`, e.g. `KANLinear(in_features, out_features, grid_size=5)`:
  kanbench stacks one per pair of consecutive widths (`model.layers`, applied in order).

The grid size G and spline order k are passed where the signature takes them by kanbench's own names or pykan's
(`grid_size` / `grid`, `spline_order` / `k`); anything else comes from the suite's `[options."module:Class"]`, and
the records say which of G and k the class ignored. Parameters are counted on the built model; FLOPs are counted by
torch.utils.flop_counter.FlopCounterMode (matmul-like operations only) on the meta device at the cell's batch, or,
for a class the meta device cannot run, on the CPU at batches 1 and 2 and extrapolated linearly: counted, not
analytic. A class whose forward has no matmul-like operation (products and sums written elementwise) has unknown
FLOPs, never 0. Importing this module imports no torch.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .adapter import Adapter

GRID_NAMES = ("grid_size", "grid")
ORDER_NAMES = ("spline_order", "k")
WIDTHS_NAMES = ("layers_hidden", "widths", "width", "layers", "layer_sizes", "layers_width", "dims", "sizes")
FAMILY = "custom"
EXPECTED = (
    "an implementations.Adapter (or a factory returning one), a model class taking the widths list first "
    "(like efficient-kan's KAN(layers_hidden, grid_size=, spline_order=)), or a layer class taking "
    "(in_features, out_features, ...)"
)
NOTEBOOK_HINT = (
    "worker processes import what they time, and cannot import __main__ (a notebook or a script): put the class in "
    "a module (e.g. my_kan.py beside the notebook) and name it as 'my_kan:{name}'"
)


class WrapError(TypeError):
    """A string or object that kanbench cannot turn into an implementation; the message says what it tried."""


@dataclass(frozen=True)
class Shape:
    """How a class is called: as a model on the widths list or as a layer per pair of widths, and G's and k's names."""

    kind: str  # "model" or "layer"
    grid: str | None  # the parameter G is passed as, None if the signature takes none of GRID_NAMES
    order: str | None
    needs: tuple[str, ...] = ()  # further parameters without a default: the suite's [options] must give them


def _signature(obj: Callable, spec: str) -> inspect.Signature:
    try:
        return inspect.signature(obj)
    except (TypeError, ValueError) as exc:
        raise WrapError(
            f"{spec}: kanbench read its signature to call it and could not ({exc}); expected {EXPECTED}"
        ) from None


def classify(obj: Callable, spec: str) -> Shape:
    """The shape of obj's constructor; WrapError naming spec when it is neither a model nor a layer class."""
    params = list(_signature(obj, spec).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    names = {p.name for p in params if p.kind != p.VAR_KEYWORD and p.kind != p.VAR_POSITIONAL}
    grid = next((n for n in GRID_NAMES if n in names), None)
    order = next((n for n in ORDER_NAMES if n in names), None)
    if len(required) >= 2 and required[0].name not in WIDTHS_NAMES:
        return Shape("layer", grid, order, tuple(p.name for p in required[2:]))
    if required or (positional and positional[0].name in WIDTHS_NAMES):
        return Shape("model", grid, order, tuple(p.name for p in required[1:]))
    shown = ", ".join(p.name for p in params) or "no parameters"
    raise WrapError(f"{spec}: kanbench called it with no arguments expecting an Adapter, and its signature ({shown}) "
                    f"takes neither a widths list nor (in_features, out_features); expected {EXPECTED}")  # fmt: skip


def _stack(layer: Callable, widths: Sequence[int], **kwargs: Any):
    """One layer per pair of consecutive widths, applied in order: a KAN of the given layer class."""
    import torch

    class Stacked(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.ModuleList(layer(i, o, **kwargs) for i, o in zip(widths[:-1], widths[1:]))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for each in self.layers:
                x = each(x)
            return x

    Stacked.__qualname__ = Stacked.__name__ = f"Stacked[{getattr(layer, '__qualname__', type(layer).__name__)}]"
    return Stacked()


class Wrapped:
    """The builder, parameter counter and FLOP counter of one class, and what its records say about it."""

    def __init__(self, obj: Callable, spec: str) -> None:
        self.obj, self.spec = obj, spec
        self.shape = classify(obj, spec)
        self._params: dict[tuple, int] = {}
        self._flops: dict[tuple, dict[str, int]] = {}

    def arguments(self, grid_size: int, spline_order: int, options: dict) -> dict:
        """The keyword arguments of the constructor: G and k where it takes them, then the suite's options."""
        passed = {}
        if self.shape.grid is not None:
            passed[self.shape.grid] = grid_size
        if self.shape.order is not None:
            passed[self.shape.order] = spline_order
        return {**passed, **options}

    def ignored(self, options: dict) -> list[str]:
        """Which of grid_size and spline_order the built model does not get from the cell's axes."""
        out = []
        for axis, name in (("grid_size", self.shape.grid), ("spline_order", self.shape.order)):
            if name is None or name in options:
                out.append(axis)
        return out

    def build(self, widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, **options: Any):
        """A freshly initialised model of the class on these widths."""
        kwargs = self.arguments(grid_size, spline_order, options)
        missing = [n for n in self.shape.needs if n not in kwargs]
        if missing:
            call = "(in_features, out_features, ...)" if self.shape.kind == "layer" else "(widths, ...)"
            given = ", ".join(f"{n} = ..." for n in missing)
            raise WrapError(
                f"{self.spec}: kanbench calls it as {call} and it also requires {', '.join(missing)}, which has no "
                f'default: give it in the suite\'s [options."{self.spec}"] ({given})'
            )
        if self.shape.kind == "layer":
            return _stack(self.obj, list(widths), **kwargs)
        return self.obj(list(widths), **kwargs)

    def param_count(self, widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, **options: Any) -> int:
        """Trainable parameters of the built model (built on the meta device where the class allows it)."""
        key = (tuple(widths), grid_size, spline_order, repr(sorted(options.items())))
        if key not in self._params:  # the parent asks per cell (estimates, records): build each shape once
            self._params[key] = _count_params(self, tuple(widths), grid_size, spline_order, options)
        return self._params[key]

    def flop_breakdown(
        self, widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, batch: int = 1, **options: Any
    ) -> dict[str, int]:
        """Counted FLOPs of one forward ("matmul") and one backward ("matmul_backward"); "elementwise" is 0:
        FlopCounterMode counts matmul-like operations only."""
        key = (tuple(widths), grid_size, spline_order, batch, repr(sorted(options.items())))
        if key not in self._flops:
            self._flops[key] = _count_flops(self, tuple(widths), grid_size, spline_order, batch, options)
        if not self._flops[key]["matmul"]:  # its contraction is elementwise products and sums: unknown, not zero
            raise ValueError(f"{self.spec}: FlopCounterMode counted no matmul-like operation in one forward, so its "
                             f"FLOPs are unknown (records say null)")  # fmt: skip
        return dict(self._flops[key])

    def notes(self, options: dict) -> dict:
        """What every record of this implementation says about how it was built and costed."""
        return {"flops_source": "counted", "ignored_axes": self.ignored(options)}


def _count_params(wrapped: Wrapped, widths: tuple, grid: int, order: int, options: dict) -> int:
    import torch

    try:
        with torch.device("meta"):
            model = wrapped.build(widths, grid, order, **options)
    except Exception:  # a constructor the meta device cannot run (data-dependent initialisation): build it for real
        model = wrapped.build(widths, grid, order, **options)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _forward_backward(model, x) -> tuple[int, int]:
    """FLOPs FlopCounterMode counts in one forward and one backward (the input needs no gradient)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        out = model(x)
    forward = int(counter.get_total_flops())
    with FlopCounterMode(display=False) as counter:
        out.backward(torch.ones_like(out))
    return forward, int(counter.get_total_flops())


def _count_flops(wrapped: Wrapped, widths: tuple, grid: int, order: int, batch: int, options: dict) -> dict:
    import torch

    try:
        with torch.device("meta"):
            model = wrapped.build(widths, grid, order, **options)
            x = torch.empty(batch, widths[0])
        forward, backward = _forward_backward(model, x)
    except Exception:  # the meta device cannot run it: count on the CPU at batches 1 and 2, then extrapolate
        torch.manual_seed(0)
        model = wrapped.build(widths, grid, order, **options)
        f1, b1 = _forward_backward(model, torch.rand(1, widths[0]) * 2 - 1)
        model.zero_grad(set_to_none=True)
        f2, b2 = _forward_backward(model, torch.rand(2, widths[0]) * 2 - 1)
        forward, backward = f1 + (f2 - f1) * (batch - 1), b1 + (b2 - b1) * (batch - 1)
    return {"matmul": forward, "elementwise": 0, "matmul_backward": backward}


def wrap(obj: Callable, spec: str, name: str | None = None) -> Adapter:
    """An Adapter of a model or layer class (or callable) named spec; WrapError naming spec if it is neither."""
    module = getattr(obj, "__module__", None)
    if module == "__main__":
        raise WrapError(f"{spec}: {NOTEBOOK_HINT.format(name=getattr(obj, '__qualname__', spec))}")
    wrapped = Wrapped(obj, spec)
    description = f"{wrapped.shape.kind} class {spec}" + (" stacked per layer" if wrapped.shape.kind == "layer" else "")
    return Adapter(
        name or spec, FAMILY, _named(wrapped.build, obj), _named(wrapped.param_count, obj),
        _named(wrapped.flop_breakdown, obj), description=description, has_basis=False, notes=wrapped.notes,
    )  # fmt: skip


def _named(method: Callable, obj: Callable) -> Callable:
    """method, shown by kanbench (Info.target) as the class it wraps."""

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        return method(*args, **kwargs)

    call.__module__ = getattr(obj, "__module__", "?")
    call.__qualname__ = getattr(obj, "__qualname__", type(obj).__name__)
    return call
