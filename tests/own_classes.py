"""Small KAN classes written as a researcher would, for kanbench to take as "own_classes:Class" (tests only)."""

from __future__ import annotations

import torch
from torch import nn


class RBFLayer(nn.Module):
    """A layer (in_features, out_features, grid_size, spline_order): G + k Gaussian bases per edge, one matmul."""

    def __init__(self, in_features: int, out_features: int, grid_size: int = 5, spline_order: int = 3) -> None:
        super().__init__()
        self.register_buffer("centres", torch.linspace(-1, 1, grid_size + spline_order))
        self.weight = nn.Parameter(torch.randn(out_features, in_features * (grid_size + spline_order)) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        basis = torch.exp(-((x[..., None] - self.centres) ** 2) * 4)
        return basis.flatten(1) @ self.weight.T


class TinyKAN(nn.Module):
    """A model taking the widths list first, like efficient-kan's KAN(layers_hidden, grid_size=, spline_order=)."""

    def __init__(self, layers_hidden: list[int], grid_size: int = 5, spline_order: int = 3) -> None:
        super().__init__()
        pairs = zip(layers_hidden[:-1], layers_hidden[1:])
        self.layers = nn.ModuleList(RBFLayer(i, o, grid_size, spline_order) for i, o in pairs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class ChebyLayer(nn.Module):
    """A layer that takes a degree, neither G nor k: kanbench must say it ignored both."""

    def __init__(self, input_dim: int, output_dim: int, degree: int = 4) -> None:
        super().__init__()
        self.degree = degree
        self.coeffs = nn.Parameter(torch.randn(input_dim, output_dim, degree + 1) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.tanh(x)
        terms = [torch.ones_like(t), t]
        for _ in range(2, self.degree + 1):
            terms.append(2 * t * terms[-1] - terms[-2])
        basis = torch.stack(terms[: self.degree + 1], dim=-1)
        return torch.einsum("bid,iod->bo", basis, self.coeffs)


class _Doubled(torch.autograd.Function):
    """x -> 2x with a backward that returns 3 * grad: the deliberately wrong backward."""

    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, grad):
        return 3 * grad


class WrongBackward(nn.Module):
    """A layer whose backward is wrong: kanbench must refuse it before timing, naming it."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Doubled.apply(self.linear(x))


class NeedsThree(nn.Module):
    """Three required arguments: neither shape kanbench understands."""

    def __init__(self, a: int, b: int, c: int) -> None:
        super().__init__()


class SumLayer(nn.Module):
    """A layer whose contraction is an elementwise product and a sum: FlopCounterMode counts none of it."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(in_features, out_features) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.sin(x)[..., None] * self.weight).sum(1)


NOT_A_CLASS = 42
