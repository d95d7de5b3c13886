"""The adapter registry: every KAN variant and the MLP behind one interface.

import implementations
implementations.names()                 # built-ins, then entry points of group "kanbench.implementations"
a = implementations.get("fastkan")      # or "package.module:factory" for an ad hoc implementation
model = a.build(widths=[784, 64, 10], grid_size=5, spline_order=3)
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from torch import nn

from . import bspline, bspline_fast, fastkan, mlp, pykan, rswaf

ENTRY_POINT_GROUP = "kanbench.implementations"


@dataclass(frozen=True)
class Adapter:
    """One implementation: how to build it, count its parameters and estimate its FLOPs."""

    name: str
    family: str
    builder: Callable[..., nn.Module]
    counter: Callable[..., int]
    flop_counter: Callable[..., dict[str, int]]
    description: str = ""
    options: dict = field(default_factory=dict)  # fixed options of this variant, e.g. use_layernorm=False
    requires: tuple[str, ...] = ()  # modules that must import for the adapter to be available
    install_hint: str = ""

    def available(self) -> tuple[bool, str]:
        """(True, "") if the implementation can be built here, else (False, how to fix it)."""
        for module in self.requires:
            try:
                importlib.import_module(module)
            except Exception as exc:  # a missing package or a broken dependency of it
                hint = f": {self.install_hint}" if self.install_hint else ""
                return False, f"{module} is not importable ({type(exc).__name__}: {exc}){hint}"
        return True, ""

    def build(self, widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, **options) -> nn.Module:
        """A freshly initialised model (CPU, float32) on these widths."""
        return self.builder(widths, grid_size, spline_order, **{**self.options, **options})

    def param_count(self, widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, **options) -> int:
        """Analytic trainable parameter count; equals the built module's."""
        return self.counter(widths, grid_size, spline_order, **{**self.options, **options})

    def flop_breakdown(
        self, widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, batch: int = 1, **options
    ) -> dict[str, int]:
        """Forward FLOPs of one call by kind: "matmul" (exact) and "elementwise" (estimate)."""
        return self.flop_counter(widths, grid_size, spline_order, batch, **{**self.options, **options})

    def flops(self, widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, batch: int = 1, **options) -> int:
        """Analytic forward FLOP estimate of one call."""
        return sum(self.flop_breakdown(widths, grid_size, spline_order, batch, **options).values())

    def variant(self, name: str, description: str = "", **options) -> Adapter:
        """The same implementation under another name with some options fixed."""
        return Adapter(
            name, self.family, self.builder, self.counter, self.flop_counter,
            description or self.description, {**self.options, **options}, self.requires, self.install_hint,
        )  # fmt: skip


def _module_adapter(module, name: str, family: str, description: str, **kwargs) -> Adapter:
    return Adapter(name, family, module.build, module.param_count, module.flop_breakdown, description, **kwargs)


BUILTIN: dict[str, Adapter] = {}
for _adapter in (
    _module_adapter(bspline, "bspline", "bspline", "efficient B-spline KAN (Cox-de Boor, SiLU base branch)"),
    _module_adapter(bspline_fast, "bspline-fast", "bspline", "the same B-spline KAN with closed-form local bases"),
    _module_adapter(fastkan, "fastkan", "rbf", "FastKAN: LayerNorm + Gaussian RBF, SiLU base branch"),
    _module_adapter(rswaf, "rswaf", "rswaf", "FasterKAN RSWAF basis 1 - tanh^2, custom backward"),
    _module_adapter(mlp, "mlp", "mlp", "MLP: Linear + SiLU on the same widths"),
    _module_adapter(
        pykan, "pykan", "bspline-original", "original pykan MultKAN, speed configuration",
        requires=("kan",), install_hint="pip install 'kanbench[pykan]'",
    ),
):  # fmt: skip
    BUILTIN[_adapter.name] = _adapter
BUILTIN["fastkan-noln"] = BUILTIN["fastkan"].variant(
    "fastkan-noln", "FastKAN without LayerNorm (the published timing setup)", use_layernorm=False
)
BUILTIN["bspline-fast-gather"] = BUILTIN["bspline-fast"].variant(
    "bspline-fast-gather", "bspline-fast with the gathered (embedding_bag) contraction", contraction="gather"
)
BUILTIN["mlp-iso"] = BUILTIN["mlp"].variant(
    "mlp-iso", "MLP with hidden widths scaled to the bspline KAN's parameter count", iso_to="bspline"
)


@functools.cache
def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def names() -> list[str]:
    """Names of every registered implementation: built-ins first, then installed entry points."""
    return [*BUILTIN, *(n for n in sorted(_entry_points()) if n not in BUILTIN)]


def _as_adapter(obj: object, source: str) -> Adapter:
    if callable(obj) and not isinstance(obj, Adapter):
        obj = obj()
    if not isinstance(obj, Adapter):
        raise TypeError(f"{source} must be an implementations.Adapter or a factory returning one, got {obj!r}")
    return obj


def get(name: str) -> Adapter:
    """The adapter called name, or the one a "module.path:factory" string points to."""
    if name in BUILTIN:
        return BUILTIN[name]
    if name in _entry_points():
        return _as_adapter(_entry_points()[name].load(), f"entry point {name!r} of group {ENTRY_POINT_GROUP}")
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise KeyError(f"cannot load implementation {name!r}: {exc}") from exc
        return _as_adapter(obj, name)
    raise KeyError(f"unknown implementation {name!r}; known: {', '.join(names())} (or 'module.path:factory')")
