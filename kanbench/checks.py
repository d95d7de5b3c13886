"""Correctness gates run before an implementation is timed: a benchmark of a wrong function is worthless."""

from __future__ import annotations

import torch
from torch.func import functional_call

import implementations

TINY_WIDTHS = [3, 4, 2]


def gradcheck_model(adapter: implementations.Adapter, options: dict, grid_size: int = 3, spline_order: int = 3) -> None:
    """Float64 shape check and gradcheck (input and every trainable parameter) of a tiny model; raises on failure."""
    torch.manual_seed(0)
    model = adapter.build(TINY_WIDTHS, grid_size, spline_order, **options).double()
    x = (torch.rand(5, TINY_WIDTHS[0], dtype=torch.float64) * 1.8 - 0.9).requires_grad_()
    out = model(x)
    if out.shape != (5, TINY_WIDTHS[-1]):
        raise AssertionError(f"output shape {tuple(out.shape)} != expected (5, {TINY_WIDTHS[-1]})")
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = [p.detach().clone().requires_grad_() for n, p in model.named_parameters() if p.requires_grad]

    def f(inp, *flat):
        return functional_call(model, dict(zip(names, flat)), (inp,))

    if not torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-5, rtol=1e-4, raise_exception=False):
        raise AssertionError("float64 gradcheck failed: the backward does not match the forward")


_verdicts: dict[tuple, str | None] = {}


def check_once(impl: str, options: dict) -> str | None:
    """None if impl (with these options) passed its checks in this process, else the reason it failed."""
    key = (impl, tuple(sorted(options.items())))
    if key not in _verdicts:
        try:
            gradcheck_model(implementations.get(impl), options)
            _verdicts[key] = None
        except Exception as exc:
            _verdicts[key] = f"correctness check failed before timing: {type(exc).__name__}: {exc}"
    return _verdicts[key]


def options_problem(impl: str, options: dict, grid_size: int, spline_order: int) -> str | None:
    """Why the adapter refuses these build options (an unknown name, a bad value), or None; builds a 2 -> 2 model."""
    if not options:
        return None
    adapter = implementations.get(impl)
    if not adapter.available()[0]:
        return None  # its cells are skip records, saying why
    try:
        adapter.build([2, 2], grid_size, spline_order, **options)
    except (TypeError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def check_suite_options(suite) -> None:
    """UsageError naming [options.IMPL] if an implementation refuses its build options; before anything runs."""
    from .errors import UsageError

    for impl, options in suite.options.items():
        grid, order = suite.axes.get("grid_size", [5])[0], suite.axes.get("spline_order", [3])[0]
        problem = options_problem(suite.spec(impl), options, grid, order)
        if problem:
            raise UsageError(
                f"{suite.path}: [options.{suite.spec(impl)}]: {impl} refuses these build options: {problem}"
            )
