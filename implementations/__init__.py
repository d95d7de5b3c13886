"""The adapter registry: every KAN variant and the MLP behind one interface. Importing it imports no torch.

import implementations
implementations.names()                 # built-ins, then entry points of group "kanbench.implementations"
implementations.info("fastkan")         # Info: family, description, order, colour, target (no torch)
a = implementations.get("fastkan")      # or "package.module:factory", or "package.module:Class" (implementations.wrap)
model = a.build(widths=[784, 64, 10], grid_size=5, spline_order=3)   # the family module is imported here
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.metadata
import inspect

from .adapter import Adapter, Info, LazyFunction

__all__ = ["ENTRY_POINT_GROUP", "BUILTIN", "LEAN", "Adapter", "Info", "LazyFunction", "names", "info", "get"]

ENTRY_POINT_GROUP = "kanbench.implementations"
PYKAN_HINT = "pip install 'kanbench[pykan]'"

# The built-ins, in the order listings and reports show them. A family is one module that defines build,
# param_count and flop_breakdown (common.adapter_functions of its options); its line here names that module's
# builder. Nothing is imported until a model is built, counted or costed.
BUILTIN: dict[str, Adapter] = {
    a.name: a
    for a in (
        Adapter("bspline", "bspline", "implementations.bspline:build", colour="#1f77b4",
                description="efficient B-spline KAN (Cox-de Boor, SiLU base branch)"),
        Adapter("bspline-fast", "bspline", "implementations.bspline_fast:build", colour="#6baed6",
                description="the same B-spline KAN, bases in closed form (truncated powers, dense)"),
        Adapter("bspline-fast-gather", "bspline", "implementations.bspline_fast:build", colour="#9ecae1",
                description="bspline-fast with the gathered (embedding_bag) contraction",
                options={"contraction": "gather"}),
        Adapter("fastkan", "rbf", "implementations.fastkan:build", colour="#ff7f0e",
                description="FastKAN: LayerNorm + Gaussian RBF, SiLU base branch"),
        Adapter("fastkan-noln", "rbf", "implementations.fastkan:build", colour="#e6a04e",
                description="FastKAN without LayerNorm (the published timing setup)",
                options={"use_layernorm": False}),
        Adapter("rswaf", "rswaf", "implementations.rswaf:build", colour="#2ca02c",
                description="FasterKAN RSWAF basis 1 - tanh^2, custom backward"),
        Adapter("chebykan", "chebyshev", "implementations.chebykan:build", colour="#c51b7d",
                description="ChebyKAN: Chebyshev T_d(tanh x), degree G + k - 1, no base branch"),
        Adapter("jacobikan", "jacobi", "implementations.jacobikan:build", colour="#762a83",
                description="JacobiKAN: Jacobi P_d^(1,1)(tanh x), degree G + k - 1, no base branch"),
        Adapter("fourierkan", "fourier", "implementations.fourierkan:build", colour="#a50f15",
                description="FourierKAN: cos(kx), sin(kx), G + k terms per edge, bias"),
        Adapter("relukan", "relu", "implementations.relukan:build", colour="#1b9e77",
                description="ReLU-KAN: G + k squared ReLU bumps on [0, 1], trainable ends, bias"),
        Adapter("wavkan", "wavelet", "implementations.wavkan:build", colour="#bcbd22", has_basis=False,
                description="Wav-KAN: Mexican-hat wavelet per edge (learned shift, scale), bspline's param count",
                options={"iso_to": "bspline"}),
        Adapter("grkan", "rational", "implementations.grkan:build", colour="#8c564b", has_basis=False,
                description="GR-KAN (KAT): group-rational P5/Q4 of each input, then linear; bspline's param count",
                options={"iso_to": "bspline"}),
        Adapter("pykan", "bspline-original", "implementations.pykan:build", colour="#9467bd",
                description="original pykan MultKAN, speed configuration",
                requires=("kan",), install_hint=PYKAN_HINT, basis_hook="implementations.pykan:profile_basis"),
        Adapter("mlp", "mlp", "implementations.mlp:build", colour="#555555",
                description="MLP: Linear + SiLU on the same widths"),
        Adapter("mlp-iso", "mlp", "implementations.mlp:build", colour="#a0a0a0",
                description="MLP with hidden widths scaled to the bspline KAN's parameter count",
                options={"iso_to": "bspline"}),
    )
}  # fmt: skip
# memory="lean" beside the default for every family whose basis contraction implementations.lean takes: the same
# function and parameters, keeping each layer's input instead of its basis
LEAN = ("bspline-fast", "fastkan", "rswaf", "chebykan", "jacobikan", "fourierkan", "relukan")


def _darker(colour: str) -> str:
    """#rrggbb at 65 % brightness: a lean variant is its family's colour, darker."""
    return "#" + "".join(f"{int(int(colour[i : i + 2], 16) * 0.65):02x}" for i in (1, 3, 5))


for _name in LEAN:
    _lean = BUILTIN[_name].variant(f"{_name}-lean", f"{_name} with memory='lean' (keeps x, not basis)", memory="lean")
    BUILTIN[_lean.name] = dataclasses.replace(_lean, colour=_darker(BUILTIN[_name].colour))


@functools.cache
def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def names() -> list[str]:
    """Names of every registered implementation: built-ins in their order, then installed entry points by name."""
    return [*BUILTIN, *(n for n in sorted(_entry_points()) if n not in BUILTIN)]


def _takes_no_arguments(obj: object) -> bool:
    """Whether obj can be called with no arguments (a factory), as far as its signature tells."""
    try:
        signature = inspect.signature(obj)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return True  # a builtin without a signature: call it as before
    return all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
               for p in signature.parameters.values())  # fmt: skip


def _as_adapter(obj: object, source: str, name: str | None = None) -> Adapter:
    """obj as an Adapter: itself, what a factory returns, or a model or layer class wrapped (implementations.wrap)."""
    if isinstance(obj, Adapter):
        return obj
    if callable(obj) and not inspect.isclass(obj) and _takes_no_arguments(obj):
        made = obj()
        if isinstance(made, Adapter):
            return made
        raise TypeError(f"{source} must be an implementations.Adapter or a factory returning one, got {made!r} from "
                        f"calling it; a model or layer function must take the widths or (in_features, "
                        f"out_features)")  # fmt: skip
    if callable(obj):
        from .wrap import wrap  # a class: kanbench builds, counts and costs it itself

        key = (source, id(obj))
        if key not in _WRAPPED:
            _WRAPPED[key] = wrap(obj, source, name)
        return _WRAPPED[key]
    raise TypeError(
        f"{source} must be an implementations.Adapter or a factory returning one, got {obj!r}; or a "
        f"model class taking the widths list, or a layer class taking (in_features, out_features, ...)"
    )


_WRAPPED: dict[tuple[str, int], Adapter] = {}  # one Adapter per class, so its counts are computed once


def _unknown(name: str) -> KeyError:
    return KeyError(f"unknown implementation {name!r}; known: {', '.join(names())} (or 'module.path:factory')")


def get(name: str) -> Adapter:
    """The adapter called name, or the one a "module.path:factory" string points to (imports what that needs)."""
    if name in BUILTIN:
        return BUILTIN[name]
    if name in _entry_points():
        # An entry point to an Adapter declared with string targets loads without torch; a factory may import it.
        return _as_adapter(_entry_points()[name].load(), f"entry point {name!r} of group {ENTRY_POINT_GROUP}", name)
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise KeyError(f"cannot load implementation {name!r}: {exc}") from exc
        return _as_adapter(obj, name)
    raise _unknown(name)


def info(name: str) -> Info:
    """Display metadata of a registered name or a "module.path:factory" string, without building anything.

    Built-ins and entry points that point to an Adapter declared with string targets import no torch; an entry point
    to a factory is called, and a "module.path:factory" string imports its module.
    """
    adapter = get(name)
    registered = names()
    key = name if name in registered else adapter.name  # a spec string sorts where its adapter's own name does
    order = registered.index(key) if key in registered else len(registered)
    return Info(adapter.name, adapter.family, adapter.description, order, adapter.colour, adapter.target,
                bool(adapter.has_basis))  # fmt: skip
