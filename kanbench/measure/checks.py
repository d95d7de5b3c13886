"""Correctness gates run before an implementation is timed: a benchmark of a wrong function is worthless."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import functional_call

import implementations

TINY_WIDTHS = [3, 4, 2]


def tiny_model(adapter: implementations.Adapter, options: dict, grid_size: int, spline_order: int):
    """The float64 model and input every check uses (seeded, so each call builds the same weights)."""
    torch.manual_seed(0)
    model = adapter.build(TINY_WIDTHS, grid_size, spline_order, **options).double()
    x = torch.rand(5, TINY_WIDTHS[0], dtype=torch.float64) * 1.8 - 0.9
    return model, x


def gradcheck_model(
    adapter: implementations.Adapter, options: dict, grid_size: int = 3, spline_order: int = 3,
    device: str = "cpu", move: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
) -> None:  # fmt: skip
    """Float64 shape check and gradcheck (input and every trainable parameter) of a tiny model on device (moved
    there by move, default .to(device)); raises on failure."""
    model, x = tiny_model(adapter, options, grid_size, spline_order)
    model = move(model) if move else model.to(device)
    x = x.to(device).requires_grad_()
    out = model(x)
    if out.shape != (5, TINY_WIDTHS[-1]):
        raise AssertionError(f"output shape {tuple(out.shape)} != expected (5, {TINY_WIDTHS[-1]})")
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = [p.detach().clone().requires_grad_() for n, p in model.named_parameters() if p.requires_grad]

    def f(inp, *flat):
        return functional_call(model, dict(zip(names, flat)), (inp,))

    if not torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-5, rtol=1e-4, raise_exception=False):
        where = "" if device == "cpu" else f" on {device}"
        raise AssertionError(f"float64 gradcheck failed{where}: the backward does not match the forward")


def values_and_gradients(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The output and the gradients of the input and every trainable parameter for a fixed output gradient, on
    the CPU."""
    x = x.clone().requires_grad_()
    out = model(x)
    grad_out = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape).to(out.device)
    out.backward(grad_out)
    found = {"output": out.detach(), "input gradient": x.grad}
    for name, p in model.named_parameters():
        if p.requires_grad:
            found[f"gradient of {name}"] = p.grad if p.grad is not None else torch.zeros_like(p)
    return {k: v.detach().cpu() for k, v in found.items()}


def agrees_with_cpu(
    adapter: implementations.Adapter, options: dict, device: str, grid_size: int = 3, spline_order: int = 3,
    move: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
) -> None:  # fmt: skip
    """The same float64 values and gradients on device as on the CPU, from the same weights and input; raises
    naming the first quantity that differs."""
    reference, x = tiny_model(adapter, options, grid_size, spline_order)
    there, _ = tiny_model(adapter, options, grid_size, spline_order)
    there.load_state_dict(reference.state_dict())
    there = move(there) if move else there.to(device)
    want = values_and_gradients(reference, x)
    got = values_and_gradients(there, x.to(device))
    for name, expected in want.items():
        diff = (got[name] - expected).abs()
        bound = AGREE_ATOL + AGREE_RTOL * expected.abs()
        if got[name].shape != expected.shape or not bool((diff <= bound).all()):
            worst = float(diff.max()) if got[name].shape == expected.shape else float("nan")
            raise AssertionError(f"{name} on {device} differs from the CPU's by up to {worst:.3g} in float64 "
                                 f"(allowed {AGREE_ATOL:g} + {AGREE_RTOL:g} x |value|)")  # fmt: skip


# float64 on another device: different summation orders and fused kernels, never more than rounding
AGREE_ATOL, AGREE_RTOL = 1e-10, 1e-8

_verdicts: dict[tuple, str | None] = {}


def check_once(impl: str, options: dict, device: str = "cpu") -> str | None:
    """None if impl (with these options) passed its checks on device in this process, else the reason it failed.

    On the CPU: a float64 gradcheck. On another device, before any of its cells is timed: a float64 gradcheck
    there, and the same values and gradients as on the CPU."""
    key = (impl, tuple(sorted(options.items())), device)
    if key not in _verdicts:
        try:
            adapter = implementations.get(impl)
            gradcheck_model(adapter, options)
            if device != "cpu":
                target = "cuda:0" if device == "cuda" else device
                gradcheck_model(adapter, options, device=target)
                agrees_with_cpu(adapter, options, target)
            _verdicts[key] = None
        except Exception as exc:
            _verdicts[key] = f"correctness check of {impl} failed before timing: {type(exc).__name__}: {exc}"
    return _verdicts[key]


def options_problem(impl: str, options: dict, grid_size: int, spline_order: int) -> str | None:
    """Why the adapter refuses these build options (an unknown name, a bad value), or None; builds a 2 -> 2 model."""
    adapter = implementations.get(impl)
    if not options and adapter.notes is None:  # a class joined as "module:Class" may require an option (a degree)
        return None
    if not adapter.available()[0]:
        return None  # its cells are skip records, saying why
    try:
        adapter.build([2, 2], grid_size, spline_order, **options)
    except (TypeError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def check_suite_options(suite) -> None:
    """UsageError naming [options.IMPL] if an implementation refuses its build options; before anything runs."""
    from ..errors import UsageError

    for impl in suite.implementations:
        options = suite.options.get(impl, {})
        grid, order = suite.axes.get("grid_size", [5])[0], suite.axes.get("spline_order", [3])[0]
        problem = options_problem(suite.spec(impl), options, grid, order)
        if problem:
            raise UsageError(
                f"{suite.path}: [options.{suite.spec(impl)}]: {impl} refuses these build options: {problem}"
            )
