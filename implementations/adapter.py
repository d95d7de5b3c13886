"""Adapter and Info: one implementation behind one interface, declared without importing torch.

An Adapter's functions may be given as "module.path:function" strings; each is imported on its first call, so a
table of adapters (the built-ins, or a third party's entry point) costs nothing to read until a model is built.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast


@dataclass(frozen=True)
class Info:
    """What a listing or a report shows of an implementation; reading it imports no torch."""

    name: str
    family: str
    description: str = ""
    order: int = 0  # position in implementations.names(); a name not registered sorts after all of them
    colour: str = ""  # "#rrggbb" for its line in figures; "" lets the report pick a palette colour
    target: str = ""  # "module.path:function" that builds the model
    has_basis: bool = True  # whether its layers have basis(x) and num_basis = G + k (see Adapter.has_basis)


class LazyFunction:
    """A "module.path:function" reference that imports its module on the first call, not before."""

    def __init__(self, target: str) -> None:
        module, sep, attr = target.partition(":")
        if not (sep and module and attr):
            raise ValueError(f"a function reference must look like 'module.path:function', got {target!r}")
        self.target = target
        self._function: Callable | None = None

    def resolve(self) -> Callable:
        """The function itself (imports its module once)."""
        if self._function is None:
            module, _, attr = self.target.partition(":")
            try:
                function = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                raise ImportError(f"cannot load {self.target!r}: {type(exc).__name__}: {exc}") from exc
            if not callable(function):
                raise TypeError(f"{self.target!r} must name a function, got {function!r}")
            self._function = function
        return self._function

    def __call__(self, *args, **kwargs):
        return self.resolve()(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        # inspect.signature(adapter.builder) then describes the real function (kanbench's training asks for `seed`)
        return inspect.signature(self.resolve())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LazyFunction) and other.target == self.target

    def __hash__(self) -> int:
        return hash(self.target)

    def __repr__(self) -> str:
        return f"LazyFunction({self.target!r})"


def _function(value: Callable | str, what: str, adapter: str) -> Callable:
    if isinstance(value, str):
        return LazyFunction(value)
    if not callable(value):
        raise TypeError(
            f"Adapter {adapter!r}: {what} must be a callable or a 'module.path:function' string, got {value!r}"
        )
    return value


def _called(value: object) -> Callable[..., Any]:
    """A function field of an Adapter, which __post_init__ has made a callable (a string became a LazyFunction)."""
    return cast("Callable[..., Any]", value)


def _sibling(builder: Callable | str, attr: str) -> str:
    """ "pkg.family:build" -> "pkg.family:<attr>": a family module defines build, param_count and flop_breakdown."""
    return f"{builder.partition(':')[0]}:{attr}" if isinstance(builder, str) and ":" in builder else ""


def target_of(function: Callable) -> str:
    """ "module.path:function" of a function or a LazyFunction, for display."""
    if isinstance(function, LazyFunction):
        return function.target
    module = getattr(function, "__module__", None) or "?"
    return f"{module}:{getattr(function, '__qualname__', type(function).__name__)}"


@dataclass(frozen=True)
class Adapter:
    """One implementation: how to build it, count its parameters and estimate its FLOPs.

    builder, counter and flop_counter are callables or "module.path:function" strings (imported on first use);
    with a string builder, counter and flop_counter default to param_count and flop_breakdown of the same module.
    """

    name: str
    family: str
    builder: Callable[..., Any] | str
    counter: Callable[..., int] | str = ""
    flop_counter: Callable[..., dict[str, int]] | str = ""
    description: str = ""
    options: dict = field(default_factory=dict)  # fixed options of this variant, e.g. use_layernorm=False
    requires: tuple[str, ...] = ()  # modules that must import for the adapter to be available
    install_hint: str = ""
    colour: str = ""  # "#rrggbb" in the report's figures; "" for a palette colour
    # (model) -> [(owner, attribute), ...]: functions outside layer.basis that the model's forward evaluates its
    # basis with, for the profiler to wrap in its basis range (pykan's forward calls kan.spline.B_batch directly).
    basis_hook: Callable[[Any], Iterable[tuple[object, str]]] | str | None = None
    # Whether its KAN layers expand each input in a basis (num_basis = G + k, basis(x)). False for families whose
    # edge functions are no such expansion (wavkan's wavelets, grkan's rationals): their layers declare
    # num_basis = 0 and have no basis(x). None (the default) means every family but "mlp" has a basis.
    has_basis: bool | None = None
    # (options) -> what every record of it says about how it was built and costed, e.g. {"flops_source": "counted",
    # "ignored_axes": ["spline_order"]} for a class joined as "module:Class" (implementations.wrap); None: nothing
    notes: Callable[[dict], dict] | None = None

    def __post_init__(self) -> None:
        if self.has_basis is None:
            object.__setattr__(self, "has_basis", self.family != "mlp")
        builder = _function(self.builder, "builder", self.name)
        counter = self.counter or _sibling(self.builder, "param_count")
        flop_counter = self.flop_counter or _sibling(self.builder, "flop_breakdown")
        for what, value in (("counter", counter), ("flop_counter", flop_counter)):
            if not value:
                raise TypeError(
                    f"Adapter {self.name!r} needs a {what}: a callable or a 'module.path:function' string "
                    "(it defaults to the builder's module only when the builder is such a string)"
                )
        object.__setattr__(self, "builder", builder)
        object.__setattr__(self, "counter", _function(counter, "counter", self.name))
        object.__setattr__(self, "flop_counter", _function(flop_counter, "flop_counter", self.name))
        if self.basis_hook is not None:
            object.__setattr__(self, "basis_hook", _function(self.basis_hook, "basis_hook", self.name))
        object.__setattr__(self, "requires", tuple(self.requires))

    @property
    def target(self) -> str:
        """ "module.path:function" that builds the model."""
        return target_of(_called(self.builder))

    def available(self) -> tuple[bool, str]:
        """(True, "") if the implementation can be built here, else (False, how to fix it); imports only `requires`."""
        for module in self.requires:
            try:
                importlib.import_module(module)
            except Exception as exc:  # a missing package or a broken dependency of it
                hint = f": {self.install_hint}" if self.install_hint else ""
                return False, f"{module} is not importable ({type(exc).__name__}: {exc}){hint}"
        return True, ""

    def build(self, widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, **options):
        """A freshly initialised model (a torch.nn.Module on CPU, float32) on these widths."""
        return _called(self.builder)(widths, grid_size, spline_order, **{**self.options, **options})

    def param_count(self, widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, **options) -> int:
        """Analytic trainable parameter count; equals the built module's."""
        return _called(self.counter)(widths, grid_size, spline_order, **{**self.options, **options})

    def flop_breakdown(
        self, widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, batch: int = 1, **options
    ) -> dict[str, int]:
        """FLOPs of one call by kind: forward "matmul" (exact) and "elementwise" (estimate), and, where the adapter
        says, "matmul_backward" (exact, for one backward with the model input not requiring grad)."""
        return _called(self.flop_counter)(widths, grid_size, spline_order, batch, **{**self.options, **options})

    def flops(self, widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, batch: int = 1, **options) -> int:
        """Analytic forward FLOP estimate of one call."""
        breakdown = self.flop_breakdown(widths, grid_size, spline_order, batch, **options)
        return breakdown["matmul"] + breakdown["elementwise"]

    def record_notes(self, **options) -> dict:
        """What the records of a model built with these options say about it ({} for an ordinary adapter)."""
        return self.notes({**self.options, **options}) if self.notes is not None else {}

    def basis_functions(self, model) -> list[tuple[object, str]]:
        """(owner, attribute) of each function outside layer.basis that evaluates the model's basis (see basis_hook)."""
        return list(_called(self.basis_hook)(model)) if self.basis_hook is not None else []

    def variant(self, name: str, description: str = "", **options) -> Adapter:
        """The same implementation under another name with some options fixed (and no colour of its own)."""
        return dataclasses.replace(
            self, name=name, description=description or self.description, options={**self.options, **options}, colour=""
        )
