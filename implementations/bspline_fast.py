"""Exact fast B-spline KAN: the same function as `bspline`, in closed form.

On a uniform grid every basis is one shifted cardinal B-spline, B_m(x) = N_k((x - t_m) / h), and N_k is a sum of
ceil((k + 1) / 2) truncated powers of |w - (k + 1) / 2|: the (G + k)-basis row of an input costs about ten
elementwise passes and no recursion, and its derivative is as short (a custom autograd Function, so autograd keeps
x, not the passes). For k = 1, whose bases have kinks at the knots, each input's span is found and its k + 1
non-zero bases evaluated as polynomials of the local coordinate, which settles the one-sided slopes exactly as
bspline's half-open intervals do. Elsewhere the dense closed form is faster than that local evaluation with its
scatter (docs/methodology.md, "Fast B-splines").

Memory layout: `spline_weight` has bspline's shape (out, in, G + k) over (out, G + k, in) storage, so that the
scaler product C * s (a slower broadcast along G + k otherwise) and the basis are contiguous along `in`; values,
names and state_dict are bspline's.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .bspline import BSplineKAN, BSplineKANLayer
from .common import LayerStack, adapter_functions, backward_matmul
from .lean import LeanFamily, lean_linear


@functools.cache
def span_polynomials(spline_order: int) -> torch.Tensor:
    """M (k+1, k+1), float64: on a span, the r-th non-zero basis is sum_p u^p M[p, r] (u in [0, 1))."""
    k = spline_order
    # polys[r] holds the coefficients (in u) of basis B_{s-p+r} at degree p; start from the indicator.
    polys = [torch.tensor([1.0], dtype=torch.float64)]
    for p in range(1, k + 1):
        new = []
        for r in range(p + 1):
            acc = torch.zeros(p + 1, dtype=torch.float64)
            if r >= 1:  # (u + p - r) / p * B_{s-p+r, p-1}
                prev = polys[r - 1]
                acc[1 : len(prev) + 1] += prev / p
                acc[: len(prev)] += prev * (p - r) / p
            if r < p:  # (r + 1 - u) / p * B_{s-p+r+1, p-1}
                prev = polys[r]
                acc[: len(prev)] += prev * (r + 1) / p
                acc[1 : len(prev) + 1] -= prev / p
            new.append(acc)
        polys = new
    return torch.stack(polys, dim=1)  # (power, r)


def cardinal_terms(spline_order: int) -> tuple[float, tuple[int, ...]]:
    """(sigma, alphas): N_k(w) = sum_i alphas[i] * (sigma * (c - i - |w - c|))_+^k, c = (k + 1) / 2.

    The truncated-power form of the cardinal B-spline, folded about its centre; sigma = (k!)^(-1/k) absorbs 1/k!.
    """
    k = spline_order
    alphas = tuple((-1) ** i * math.comb(k + 1, i) for i in range(k + 1) if i < (k + 1) / 2)
    return math.factorial(k) ** (-1.0 / k), alphas


def local_basis(x: torch.Tensor, knots: torch.Tensor, poly: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The local coordinate u (..., 1, I) and span s (..., 1, I) of each x (..., I) on the knots.

    The k + 1 non-zero bases of x are B_{s-k+r}, r = 0..k, with values sum_p u^p poly[p, r]; u is in [0, 1) inside
    the knots (t_s <= x < t_s+1, as bspline's half-open indicators say), spans -1 and len(knots) - 1 are outside.
    """
    last = len(knots) - 1
    h = knots[1] - knots[0]
    xd = x.detach().unsqueeze(-2)
    span = ((xd - knots[0]) / h).floor_().long().clamp_(-1, last)  # uniform knots: the span by arithmetic ...
    span += xd >= knots[(span + 1).clamp(max=last)]  # ... corrected where rounding put a knot's own x below it
    return (x.unsqueeze(-2) - knots[span.clamp(0, last)]) / h, span


def horner(poly: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """sum_p u^p poly[p] for poly (P, R) and u (..., 1, I): (..., R, I), or (R, 1) when P == 1 (constants)."""
    values = poly[-1].unsqueeze(-1)
    for p in range(poly.shape[0] - 2, -1, -1):
        values = torch.addcmul(poly[p].unsqueeze(-1), values, u)
    return values


class BSplineFastKANLayer(BSplineKANLayer):
    """`bspline`'s layer (same parameters, init and state_dict), its bases evaluated in closed form."""

    memory = "default"  # "lean": implementations.lean (set by build)
    # buffers (register_buffer), declared for the type checker
    poly: torch.Tensor
    slope_poly: torch.Tensor
    offsets: torch.Tensor
    steps: torch.Tensor

    def __init__(self, *args, contraction: str = "dense", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if contraction not in ("dense", "gather"):
            raise ValueError(f"contraction must be 'dense' or 'gather', got {contraction!r}")
        self.contraction = contraction
        coef = self.spline_weight.detach()
        self.spline_weight = nn.Parameter(coef.transpose(1, 2).contiguous().transpose(1, 2))  # see module docstring
        k = self.spline_order
        self.register_buffer("poly", torch.empty(k + 1, k + 1), persistent=False)
        self.register_buffer("slope_poly", torch.empty(k, k + 1), persistent=False)
        self.register_buffer("offsets", torch.empty(self.num_basis, 1), persistent=False)
        self.register_buffer("steps", torch.arange(k + 1).unsqueeze(-1), persistent=False)
        self._read_knots()
        self.register_load_state_dict_post_hook(lambda module, keys: module._read_knots())

    def _apply(self, fn, *args, **kwargs):
        module = super()._apply(fn, *args, **kwargs)
        self._read_knots(strict=False)  # constants exact in the new dtype, not rounded to the old one and converted
        return module

    @torch.no_grad()
    def _read_knots(self, strict: bool = True) -> None:
        """Derive the closed form's constants from the (possibly just loaded) knots, which must be uniform.

        Not strict after a move: to_empty leaves garbage knots until the state_dict is loaded, which checks them.
        """
        if self.knots.is_meta:
            return  # no values yet (to_empty / meta init); the load or the move to a real device comes back here
        knots = self.knots.double()
        h = float(knots[-1] - knots[0]) / (len(knots) - 1)
        rounding = 1e-6 * float(knots.abs().max())  # knots made in float32 and converted keep float32's rounding
        # to_empty's garbage can hold NaN or inf (it did in CI): not uniform either, and no tolerance to test with
        finite = bool(torch.isfinite(knots).all())
        if not finite or not torch.allclose(knots.diff(), torch.full_like(knots[1:], h), rtol=0, atol=rounding):
            if not strict:
                return
            raise ValueError(f"{type(self).__name__} needs uniformly spaced knots, got {knots.tolist()}")
        k = self.spline_order
        sigma, self.alphas = cardinal_terms(k)
        self.q, self.h = sigma / h, h
        # k = 1 has kinks at the knots, whose one-sided slopes the spans settle; gather evaluates on spans too
        self.dense = k >= 2 and self.contraction == "dense"
        c = (k + 1) / 2
        self.offsets.copy_(((knots[: self.num_basis] / h + c) * sigma).unsqueeze(-1))
        # sigma c, sigma, 2 sigma, ... as 0-dim tensors: a Python float operand costs a tensor conversion per op
        shifts = [sigma * c] + [sigma * i for i in range(1, len(self.alphas))]
        self.shifts = [torch.tensor(v, dtype=self.knots.dtype, device=self.knots.device) for v in shifts]
        poly = span_polynomials(k)
        self.poly.copy_(poly)
        self.slope_poly.copy_(poly[1:] * torch.arange(1, k + 1, dtype=torch.float64).unsqueeze(-1))  # d/du

    def basis_rows(self, x: torch.Tensor) -> torch.Tensor:
        """The (N, K, I) basis of x (N, I): the closed form, dense or from the k + 1 local bases."""
        if not self.dense:
            u, index, real = self.spans(x)
            out = x.new_zeros(x.shape[0], self.num_basis, x.shape[1])
            return out.scatter_add_(1, index, horner(self.poly, u).mul(real))
        k, out = self.spline_order, x.new_empty(x.shape[0], self.num_basis, x.shape[1])
        # n_i = -a_i = min(sigma |w - c| - sigma (c - i), 0) keeps every step in place
        n = torch.sub(self.offsets, x.unsqueeze(1), alpha=self.q, out=out).abs_().sub_(self.shifts[0]).clamp_max_(0)
        others = [torch.add(n, shift).clamp_max_(0).pow_(k) for shift in self.shifts[1:]]
        n.pow_(k)
        for alpha, other in zip(self.alphas[1:], others):
            n.add_(other, alpha=alpha)
        return n.neg_() if k % 2 else n  # sum_i alpha_i n_i^k = (-1)^k B

    def basis_grad(self, grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """sum_m grad[:, m, i] dB_m(x_i)/dx_i for grad (N, K, I)."""
        if not self.dense:
            u, index, real = self.spans(x)
            return horner(self.slope_poly, u).mul(real).mul_(grad.gather(1, index)).sum(1).div_(self.h)
        k = self.spline_order  # >= 2 here: every basis has a continuous derivative
        d = torch.sub(self.offsets, x.unsqueeze(1), alpha=self.q)  # sigma (c - w): the derivative's sign is its sign
        sign = d.sign()
        n = d.abs_().sub_(self.shifts[0]).clamp_max_(0)  # -a_0
        slope = n.pow(k - 1)  # sum_i alpha_i (-a_i)^(k-1); dB/dx = (-1)^(k-1) k q sign(c - w) slope
        for alpha, shift in zip(self.alphas[1:], self.shifts[1:]):
            slope.add_(torch.add(n, shift).clamp_max_(0).pow_(k - 1), alpha=alpha)
        return slope.mul_(sign).mul_(grad).sum(1).mul_((-1) ** (k - 1) * k * self.q)

    def basis_and_slope(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, dB/dx), both (N, K, I), in one pass (dense, k >= 2): the slope's powers are the basis's but one."""
        k = self.spline_order
        d = torch.sub(self.offsets, x.unsqueeze(1), alpha=self.q)  # sigma (c - w)
        sign = d.sign()
        n = d.abs_().sub_(self.shifts[0]).clamp_max_(0)  # -a_0
        lower = n.pow(k - 1)
        basis, slope = lower * n, lower
        for alpha, shift in zip(self.alphas[1:], self.shifts[1:]):
            ni = torch.add(n, shift).clamp_max_(0)
            li = ni.pow(k - 1)
            basis.add_(li * ni, alpha=alpha)
            slope.add_(li, alpha=alpha)
        return (basis.neg_() if k % 2 else basis), slope.mul_(sign).mul_((-1) ** (k - 1) * k * self.q)

    def spans(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(u, index, real) of x (..., I): local coordinate (..., 1, I), the k + 1 bases m = s - k .. s of each
        input's span as (..., k + 1, I) indices clamped into 0..K-1, and whether each of them exists."""
        u, span = local_basis(x, self.knots, self.poly)
        index = span - self.spline_order + self.steps
        real = (index >= 0) & (index < self.num_basis)
        return u, index.clamp_(0, self.num_basis - 1), real

    def basis(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., in, G + k) basis values (differentiable in x)."""
        out = _Basis.apply(x.reshape(-1, self.in_features), self)  # (N, K, I)
        return out.transpose(1, 2).reshape(*x.shape, self.num_basis)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        if self.contraction == "gather":
            return self.forward_gather(x)
        if self.memory == "lean":
            return self.lean_forward(x)
        if x.dim() == 2:
            return kan_linear(self, x)
        return kan_linear(self, x.reshape(-1, self.in_features)).reshape(*x.shape[:-1], self.out_features)

    def lean_forward(self, x: torch.Tensor) -> torch.Tensor:
        """kan_linear's output keeping x, not the basis: silu(x) and the closed-form basis are its features."""
        weight = self.spline_weight.transpose(1, 2) * self.spline_scaler.unsqueeze(1)  # (O, K, I), as kan_linear
        block = _BlockBasis if self.dense else _Basis  # dense: basis and slope of a block in one pass
        basis = lambda u, p: block.apply(u, self).view(u.shape[0], -1)  # noqa: E731
        silu = lambda u, p: F.silu(u)  # noqa: E731
        return lean_linear(x, [(silu, self.base_weight), (basis, weight.view(weight.shape[0], -1))])

    def forward_gather(self, x: torch.Tensor) -> torch.Tensor:
        """Only the k + 1 touched coefficient rows of each input (embedding_bag), through autograd."""
        u, index, real = self.spans(x)
        values = horner(self.poly, u) * real
        rows = index + self.num_basis * torch.arange(self.in_features, device=x.device)
        weight = self.spline_weight * self.spline_scaler.unsqueeze(-1)  # row i * K + m holds c[:, i, m] * s[:, i]
        spline = F.embedding_bag(
            rows.reshape(-1, rows.shape[-2] * rows.shape[-1]),
            weight.permute(1, 2, 0).reshape(-1, self.out_features),
            per_sample_weights=values.reshape(-1, values.shape[-2] * values.shape[-1]),
            mode="sum",
        )
        return F.linear(F.silu(x), self.base_weight) + spline.reshape(*x.shape[:-1], self.out_features)


def kan_linear(layer: BSplineFastKANLayer, x: torch.Tensor) -> torch.Tensor:
    """y = W_b silu(x) + (C * s) B(x) for x (N, I), B through _Basis where x needs its gradient."""
    if x.requires_grad and torch.is_grad_enabled():
        basis = _Basis.apply(x, layer)
    else:
        basis = layer.basis_rows(x)
    weight = layer.spline_weight.transpose(1, 2) * layer.spline_scaler.unsqueeze(1)  # (O, K, I), contiguous
    base = F.linear(F.silu(x), layer.base_weight)
    return torch.addmm(base, basis.view(x.shape[0], -1), weight.view(weight.shape[0], -1).t())


class _Basis(torch.autograd.Function):
    """The layer's closed-form basis (N, K, I) of x (N, I), differentiable in x."""

    @staticmethod
    def forward(ctx, x, layer):
        ctx.layer = layer
        ctx.save_for_backward(x)
        return layer.basis_rows(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return ctx.layer.basis_grad(grad.contiguous(), x), None


class _BlockBasis(torch.autograd.Function):
    """_Basis for one block of rows of the lean contraction: the slope is computed with the basis and kept (a block
    is small), so the backward is one product."""

    @staticmethod
    def forward(ctx, x, layer):
        if not ctx.needs_input_grad[0]:
            return layer.basis_rows(x)
        basis, slope = layer.basis_and_slope(x)
        ctx.save_for_backward(slope)
        return basis

    @staticmethod
    def backward(ctx, grad):
        (slope,) = ctx.saved_tensors
        return slope.mul_(grad).sum(1), None


@dataclass(frozen=True, kw_only=True)
class BSplineFastKAN(BSplineKAN, LeanFamily):
    """bspline's options, memory, and the contraction: "dense" (one matmul) or "gather" (the k + 1 touched rows)."""

    contraction: str = "dense"

    def layer(self, n: int, i: int, o: int) -> BSplineFastKANLayer:
        return BSplineFastKANLayer(i, o, self.grid_size, self.spline_order, **self.options())

    def build(self) -> LayerStack:
        """A B-spline KAN with closed-form bases; state_dict-compatible with `bspline`."""
        stack = super().build()  # its layers check contraction first
        if self.memory == "lean" and self.contraction != "dense":
            raise ValueError(f"memory='lean' takes contraction='dense' only, got contraction={self.contraction!r}")
        return stack

    def flop_breakdown(self, batch: int) -> dict[str, int]:
        """Forward FLOPs: the matmuls exactly; the closed-form bases (or the gathered k + 1 rows) as estimates."""
        k, K = self.spline_order, self.num_basis
        dense = self.contraction == "dense"
        per_layer, elementwise = [], 0
        for i, o in self.edges:
            # embedding_bag is no matmul to FlopCounterMode, so the gathered multiply-adds count as elementwise
            spline = 2 * batch * i * (K if dense else k + 1) * o
            per_layer.append(2 * batch * i * o + (spline if dense else 0))
            if dense and k >= 2:
                per_input = K * (4 + 4 * len(cardinal_terms(k)[1])) + 4  # |w - c| and each truncated power; silu
            else:
                per_input = 6 + 2 * (k + 1) ** 2 + K + 4  # span and u, Horner, the scatter; silu
            elementwise += batch * i * per_input + o * i * K + (0 if dense else spline)
        return {"matmul": sum(per_layer), "elementwise": elementwise, "matmul_backward": backward_matmul(per_layer)}


build, param_count, flop_breakdown = adapter_functions(BSplineFastKAN)
