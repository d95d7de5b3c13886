"""The original KAN (PyPI `pykan`, module `kan`) in its speed configuration, behind the adapter interface."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .common import backward_matmul, check_grid, check_input, check_widths, edges


class PykanLayer(nn.Module):
    """A view of one pykan KANLayer that adds `basis(x)`; forward is pykan's own."""

    def __init__(self, layer: Any) -> None:  # a kan.KANLayer (an nn.Module); kan ships no type information
        super().__init__()
        self.layer = layer
        self.in_features, self.out_features = layer.in_dim, layer.out_dim
        self.num_basis = layer.num + layer.k

    def basis(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., in, G + k) basis values from pykan's own B_batch."""
        from kan.spline import B_batch

        flat = x.reshape(-1, self.in_features)
        return B_batch(flat, self.layer.grid.to(x.dtype), k=self.layer.k).reshape(*x.shape, self.num_basis)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_features, f"pykan KANLayer({self.in_features} -> {self.out_features})")
        y, *_ = self.layer(x.reshape(-1, self.in_features))
        return y.reshape(*x.shape[:-1], self.out_features)


class PykanModel(nn.Module):
    """pykan's MultKAN; `layers` exposes its spline layers, forward runs the whole MultKAN."""

    def __init__(self, kan_model: Any, widths: list[int]) -> None:  # a kan.MultKAN (untyped, like KANLayer)
        super().__init__()
        self.kan = kan_model
        self.widths = widths
        self.layers = nn.ModuleList(PykanLayer(layer) for layer in kan_model.act_fun)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.widths[0], f"pykan MultKAN({self.widths})")
        y = self.kan(x.reshape(-1, self.widths[0]))
        return y.reshape(*x.shape[:-1], self.widths[-1])


def build(widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, seed: int = 0, **options) -> PykanModel:
    """pykan MultKAN with the symbolic branch, activation saving and auto-save off (it writes no files)."""
    widths = check_widths(widths)
    check_grid(grid_size, spline_order)
    from kan import MultKAN

    # MultKAN reseeds torch's global RNG with `seed`: keep the caller's stream going afterwards.
    state = torch.random.get_rng_state()
    model = MultKAN(
        width=list(widths),
        grid=grid_size,
        k=spline_order,
        seed=seed,
        symbolic_enabled=False,
        save_act=False,
        auto_save=False,
        device="cpu",
        **options,
    )
    torch.random.set_rng_state(state)
    return PykanModel(model, widths)


def profile_basis(model: PykanModel) -> list[tuple[object, str]]:
    """The adapter's basis_hook: pykan's forward evaluates its bases through kan.spline.B_batch, never layer.basis."""
    import kan.spline  # B_batch recurses and coef2curve calls it through this module's globals: patch it there

    return [(kan.spline, "B_batch")]


def param_count(widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, **options) -> int:
    """Trainable parameters: in * out * (G + k + 2) per layer plus the symbolic layer's 4 affine terms per edge."""
    return sum(i * o * (grid_size + spline_order + 2) + 4 * i * o for i, o in edges(check_widths(widths)))


def flop_breakdown(widths: Sequence[int], grid_size: int, spline_order: int, batch: int, **options) -> dict[str, int]:
    """Forward FLOPs: the per-input batched matmul exactly; bases and the (batch, in, out) combine as estimates."""
    G, k = grid_size, spline_order
    K = G + k
    per_input = 3 * (G + 2 * k) + sum(7 * (G + 2 * k - p) for p in range(1, k + 1)) + 4
    layers = edges(check_widths(widths))
    per_layer = [2 * batch * i * K * o for i, o in layers]
    elementwise = sum(batch * i * per_input + 5 * batch * i * o + 4 * batch * o for i, o in layers)
    return {"matmul": sum(per_layer), "elementwise": elementwise, "matmul_backward": backward_matmul(per_layer)}
