"""Wav-KAN (Bozorgasl and Chen, arXiv:2405.12832): one mother wavelet per edge, translated and dilated.

    y_o = sum_i w[o, i] psi((x_i - t[o, i]) / s[o, i])

The wavelets, as zavareh1/Wav-KAN writes them (KAN.py at f7ab521), of u = (x - t) / s:
    mexican_hat  2 / (sqrt(3) pi^(1/4)) (u^2 - 1) exp(-u^2 / 2)   (the textbook Ricker wavelet negated)
    morlet       cos(5 u) exp(-u^2 / 2)                            (real part, centre frequency 5, unnormalised)
    dog          -u exp(-u^2 / 2)                                   (derivative of a Gaussian)
and its initialisation: s = 1, t = 0, w kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in)).

Domain: no squashing and no grid; every real input is valid. At init each edge's wavelet is centred at 0 with unit
width (it decays like exp(-u^2 / 2), so it responds to about [-4, 4]); training moves t and s. The paper's layer is
the formula above and nothing else, which is the default here. The code adds a BatchNorm1d on each layer's output
(its published configuration, ORIGINAL) and declares a base weight and a SiLU that its forward never uses;
base=True adds the SiLU base branch W_b silu(x) that its comments suggest.

Fairness: there is no per-input basis (num_basis = 0), so the registry's `wavkan` scales the hidden widths to the
B-spline KAN's parameter count (implementations.iso). Speed and memory: u has N x out x in elements, one per edge
and row; it is never held whole. Forward and backward build it a block of outputs at a time, sized to stay in cache
(CHUNK_ELEMENTS), and the backward keeps only x and the parameters and recomputes u, where autograd would keep about
five (N, out, in) tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .common import KANLayer, adapter_functions, backward_matmul
from .iso import IsoFamily

WAVELETS = ("mexican_hat", "morlet", "dog")
MEXICAN_HAT = 2 / (math.sqrt(3) * math.pi**0.25)
MORLET_OMEGA = 5.0
CHUNK_ELEMENTS = 1 << 17  # 512 KiB of float32 per block of u: about one core's L2 (docs/methodology.md, "The zoo")
CHUNK_ELEMENTS_GPU = 1 << 26
ORIGINAL = {"iso_to": None, "batch_norm": True}  # Wav-KAN's code as published (wavKAN.py trains [784, 32, 10])


def wavelet(name: str, u: torch.Tensor) -> torch.Tensor:
    """psi(u), computed in u's own storage: one more tensor of u's size (the envelope) is all it allocates."""
    envelope = u.square().mul_(-0.5).exp_()
    if name == "mexican_hat":
        return u.square_().sub_(1).mul_(envelope).mul_(MEXICAN_HAT)
    if name == "morlet":
        return u.mul_(MORLET_OMEGA).cos_().mul_(envelope)
    return u.mul_(envelope).neg_()  # dog


def wavelet_and_slope(name: str, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(psi(u), psi'(u)), for the backward: three tensors of u's size allocated, u left as it is."""
    if name == "morlet":
        envelope = u.square().mul_(-0.5).exp_()
        wave = torch.mul(u, MORLET_OMEGA)
        cos = torch.cos(wave)
        slope = wave.sin_().mul_(MORLET_OMEGA).addcmul_(u, cos).mul_(envelope).neg_()
        return cos.mul_(envelope), slope
    u2 = u.square()
    envelope = torch.mul(u2, -0.5).exp_()
    if name == "mexican_hat":
        slope = torch.sub(3, u2).mul_(u).mul_(envelope).mul_(MEXICAN_HAT)
        return u2.sub_(1).mul_(envelope).mul_(MEXICAN_HAT), slope
    return envelope.mul(u).neg_(), u2.sub_(1).mul_(envelope)  # dog


def output_chunks(x: torch.Tensor, out_features: int) -> list[slice]:
    """Slices of the outputs whose (outputs, N, in) block of u has about CHUNK_ELEMENTS elements (at least one
    output): a block stays in the CPU's cache through the dozen passes over it; on a GPU a block is a launch."""
    n, i = x.shape
    target = CHUNK_ELEMENTS if x.device.type == "cpu" else CHUNK_ELEMENTS_GPU
    count = max(1, min(out_features, round(out_features * n * i / target)))  # blocks up to 1.5x the target: no
    step = -(-out_features // count)  # sliver of a last block, whose calls would cost as much as a whole one
    return [slice(k, min(out_features, k + step)) for k in range(0, out_features, step)]


class WaveletEdges(torch.autograd.Function):
    """sum_i w[o, i] psi((x_i - t[o, i]) / s[o, i]) for x (N, in): saves x and the parameters, not u.

    u is built per block of outputs in (outputs, N, in) layout, so the weighted sum over inputs and the weight's
    gradient are batched matrix products (no (N, out, in) product is materialised, and FLOP counters see them)."""

    @staticmethod
    def forward(ctx, x, weight, translation, scale, name):
        ctx.name = name
        ctx.save_for_backward(x, weight, translation, scale)
        y = x.new_empty(weight.shape[0], x.shape[0])  # (out, N)
        inverse = scale.reciprocal()
        for block in output_chunks(x, weight.shape[0]):
            u = torch.sub(x, translation[block].unsqueeze(1)).mul_(inverse[block].unsqueeze(1))
            torch.bmm(wavelet(name, u), weight[block].unsqueeze(-1), out=y[block].unsqueeze(-1))
        return y.T

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, weight, translation, scale = ctx.saved_tensors
        inverse = scale.reciprocal()
        rows = grad.T.unsqueeze(1).contiguous()  # (out, 1, N)
        factor = weight * inverse  # dL/du du/dx = g w psi'(u) / s; du/dt = -1 / s; du/ds = -u / s
        grad_x = torch.zeros_like(x)
        grad_weight, grad_translation, grad_scale = (torch.empty_like(weight) for _ in range(3))
        for block in output_chunks(x, weight.shape[0]):
            u = torch.sub(x, translation[block].unsqueeze(1)).mul_(inverse[block].unsqueeze(1))
            psi, slope = wavelet_and_slope(ctx.name, u)
            torch.bmm(rows[block], psi, out=grad_weight[block].unsqueeze(1))
            h = slope.mul_(rows[block].transpose(1, 2)).mul_(factor[block].unsqueeze(1))  # (outputs, N, in)
            grad_x.add_(h.sum(0))
            torch.sum(h, 1, out=grad_translation[block])
            torch.sum(h.mul_(u), 1, out=grad_scale[block])
        return (
            grad_x if ctx.needs_input_grad[0] else None,
            grad_weight,
            grad_translation.neg_(),
            grad_scale.neg_(),
            None,
        )


class WavKANLayer(KANLayer):
    """y_o = sum_i w[o, i] psi((x_i - t[o, i]) / s[o, i]) (+ W_b silu(x) with base=True), then BatchNorm1d if asked."""

    def __init__(
        self, in_features: int, out_features: int, wavelet: str = "mexican_hat", batch_norm: bool = False,
        base: bool = False,
    ) -> None:  # fmt: skip
        super().__init__(in_features, out_features)  # num_basis 0: no per-input basis (the layer contract)
        check_wavelet(wavelet)
        self.wavelet = wavelet
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.translation = nn.Parameter(torch.zeros(out_features, in_features))
        self.scale = nn.Parameter(torch.ones(out_features, in_features))
        self.base = nn.Linear(in_features, out_features, bias=False) if base else None  # kaiming-uniform, as w
        self.bn = nn.BatchNorm1d(out_features) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        flat = x.reshape(-1, self.in_features)
        y = WaveletEdges.apply(flat, self.weight, self.translation, self.scale, self.wavelet)
        if self.base is not None:
            y = y + self.base(F.silu(flat))
        if self.bn is not None:
            y = self.bn(y)
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, wavelet={self.wavelet}"


def check_wavelet(wavelet: str) -> None:
    """Raise ValueError unless wavelet is one of WAVELETS."""
    if wavelet not in WAVELETS:
        raise ValueError(f"wavelet must be one of {', '.join(WAVELETS)}, got {wavelet!r}")


@dataclass(frozen=True, kw_only=True)
class WavKAN(IsoFamily):
    """Wav-KAN's options: the mother wavelet, a BatchNorm1d after each layer, the SiLU base branch."""

    wavelet: str = "mexican_hat"
    batch_norm: bool = False
    base: bool = False

    def __post_init__(self) -> None:
        check_wavelet(self.wavelet)
        super().__post_init__()

    def layer(self, n: int, i: int, o: int) -> WavKANLayer:
        return WavKANLayer(i, o, self.wavelet, self.batch_norm, self.base)

    def layer_params(self, i: int, o: int) -> int:
        """w, t and s per edge; W_b per edge with base; BatchNorm's weight and bias per output."""
        return i * o * (3 + bool(self.base)) + (2 * o if self.batch_norm else 0)

    def flop_breakdown(self, batch: int) -> dict[str, int]:
        """Forward FLOPs: the weighted sum over inputs (a batched matrix product) and the base branch's matmul
        exactly; the wavelets as op counts."""
        per_edge = {"mexican_hat": 9, "morlet": 8, "dog": 7}[self.wavelet]  # u: 2, envelope: 3, psi: 2-4
        base, norm = self.base, self.batch_norm
        wavelets = [2 * batch * i * o for i, o in self.edges]
        linear = [2 * batch * i * o if base else 0 for i, o in self.edges]
        elementwise = sum(
            batch * i * o * per_edge + (batch * (4 * i + o) if base else 0) + (4 * batch * o if norm else 0)
            for i, o in self.edges
        )
        # the weighted sum's operand gradient is elementwise (one weight per edge): only its weight gradient is a bmm
        backward = sum(wavelets) + backward_matmul(linear)
        return {"matmul": sum(wavelets) + sum(linear), "elementwise": elementwise, "matmul_backward": backward}


build, param_count, flop_breakdown = adapter_functions(WavKAN)
