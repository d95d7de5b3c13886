"""GR-KAN, the group-rational KAN of KAT (Yang and Wang, arXiv:2409.10594): a rational function of each input,
shared by a group of channels, then a linear layer.

    y = W F(x) + b,   F(x_c) = P(x_c) / Q(x_c) with the coefficients of channel c's group:
    P(x) = a_0 + a_1 x + ... + a_5 x^5,   Q(x) = 1 + |b_1| |x| + |b_2| |x|^2 + |b_3| |x|^3 + |b_4| |x|^4

Facts read in Adamdad/rational_kat_cu at 181bae8 (the kernels KAT trains with) and Adamdad/kat at ecb0eb7:
- Q: the CUDA (src/rational_kernel_group.cu) and Triton (kat_rational/rational_triton.py) kernels sum absolute
  terms, as above (denominator="terms", the default). The paper and the fitting code (kat_rational/fit.py, gain.py)
  write 1 + |b_1 x + ... + b_4 x^4| (denominator="sum"). The pure-PyTorch reference (kat_1dgroup_torch.py, which
  KAT_Group also runs on CPU) computes 1 + sum_j |b_j| x^j: a third function where x < 0, not offered here.
- Groups: 8. KAT_Group keeps one numerator for all groups and a denominator per group (6 + 4 * 8 coefficients);
  shared_numerator=False gives every group its own numerator, which the kernels' layout also takes. Channel c is in
  group c * groups // channels (KAT's c // (channels / groups); KAT refuses channels that groups do not divide), and
  a layer with fewer channels than groups has one group per channel.
- Init: the coefficients of kat_rational/init.json, placed as KAT's KAN block places them (katransformer.py: act1
  identity before fc1, act2 gelu before fc2): identity (P = x, Q = 1) in the first layer, gelu in the others. The
  gelu numbers were fitted under the "sum" form; under the kernels' "terms" form they stay within 0.018 of GELU
  for |x| <= 1 but bend to 1.5 at x = 3, as they do in KAT. W: normal with std gain / sqrt(in), gain^2 =
  1 / E[F(x)^2] for x ~ N(0, 1) (katransformer.py's calculate_gain and gain.py; here by quadrature of F as
  built), b = 0.

Domain: no squashing and no grid: Q >= 1, so F is defined and smooth away from x = 0 on all reals, growing like
|x| (degree 5 over degree 4) where the top coefficients are nonzero. Fairness: there is no per-input basis
(num_basis = 0), so the registry's `grkan` scales the hidden widths to the B-spline KAN's parameter count
(implementations.iso); ORIGINAL is KAT's own configuration on the widths given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from .common import KANLayer, adapter_functions, backward_matmul, check_input
from .iso import IsoFamily

# (a_0 .. a_5, b_1 .. b_4) from kat_rational/init.json at 181bae8; other degrees start from identity only.
INITS = {
    "identity": ((0.0, 1.0, 0.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0)),
    "gelu": (
        (-0.00153969, 0.51692871, 0.44075827, 0.0972553, -0.00884418, -0.00378675),
        (-0.14171056, -0.06481231, -0.0444695, 0.01283776),
    ),
    "swish": (
        (3.054879741161051e-07, 0.5000007853744493, 0.24999783422824703, 0.05326628273219478,
         0.005803034571292244, 0.0002751961022402342),
        (-4.111554955950634e-06, 0.10652899335007572, -1.2690007399796238e-06, 0.0005502331264140556),
    ),
}  # fmt: skip
DENOMINATORS = ("terms", "sum")
ORIGINAL = {"iso_to": None}  # KAT's GR-KAN on the widths given; its other settings are the defaults


def rational(
    x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, denominator: str = "terms", group_of: torch.Tensor | None = None
) -> torch.Tensor:
    """P(x) / Q(x) for x (..., C): Horner's rule in x for P, in |x| (or x) for Q. Coefficients as the parameters
    hold them: a (1 or rows, m + 1), b (rows, n), each channel using row group_of[c] (row c without group_of)."""
    flat = x if x.dim() == 2 else x.reshape(-1, x.shape[-1])
    y = Rational.apply(flat, a, b, group_of, denominator)
    return y if x.dim() == 2 else y.reshape(x.shape)


def horner(z: torch.Tensor, coefs: torch.Tensor) -> torch.Tensor:
    """sum_k coefs[k] z^k in a new tensor, for coefs (K >= 1, C or 1) and z (R, C)."""
    if coefs.shape[0] == 1:
        return coefs[0].expand_as(z).clone()
    *rest, second, top = coefs.unbind(0)
    p = torch.addcmul(second, top, z)
    for coef in reversed(rest):
        torch.addcmul(coef, p, z, out=p)
    return p


SMALL = 1 << 15  # elements of x: below, the powers are stacked once and kept (few calls: per-call overhead rules)


def power_sums(weight: torch.Tensor, z: torch.Tensor, first: int, count: int, per_channel: bool) -> torch.Tensor:
    """(count, C or 1): the sums over rows of weight z^k for k = first .. first + count - 1, over every channel too
    unless per_channel. One running product, multiplied in place and summed after each power: one input's memory
    where a tensor of every product takes count, and faster (docs/methodology.md, "The zoo")."""
    total = (lambda t: t.sum(0)) if per_channel else (lambda t: t.sum().reshape(1))
    term = weight * z if first else weight.clone()
    sums = [total(term)]
    for _ in range(count - 1):
        sums.append(total(term.mul_(z)))
    return torch.stack(sums)


class Powers:
    """z^0 .. z^top of an input z (R, C): stacked once (rows, for small inputs, where every call costs more than its
    arithmetic) or evaluated on demand by Horner's rule and running products (rows None: no extra memory)."""

    def __init__(self, z: torch.Tensor | None, rows: torch.Tensor | None) -> None:
        self.z, self.rows = z, rows  # z is read only without rows

    @staticmethod
    def stack(z: torch.Tensor, top: int) -> torch.Tensor:
        """(top + 1, R, C): z^0 .. z^top, each power the previous one times z (one cumprod: few calls)."""
        return torch.cat((z.new_ones((1, *z.shape)), z.expand(top, *z.shape).cumprod(0)))

    def poly(self, coefs: torch.Tensor, first: int = 0) -> torch.Tensor:
        """sum_k coefs[k] z^(first + k) in a new tensor, for coefs (K, C or 1) and first 0 or 1."""
        if self.rows is None:
            assert self.z is not None
            p = horner(self.z, coefs)
            return p.mul_(self.z) if first else p
        return (self.rows[first : first + coefs.shape[0]] * coefs.unsqueeze(1)).sum(0)

    def sums(self, weight: torch.Tensor, first: int, count: int, per_channel: bool) -> torch.Tensor:
        """power_sums(weight, z, first, count, per_channel)."""
        if self.rows is None:
            assert self.z is not None
            return power_sums(weight, self.z, first, count, per_channel)
        terms = self.rows[first : first + count] * weight
        return terms.sum(1) if per_channel else terms.sum((1, 2)).unsqueeze(-1)


def slope_coefs(coefs: torch.Tensor) -> torch.Tensor:
    """For coefs[k] of z^(k + 1), k = 0 .., the coefficients of the derivative: (k + 1) coefs[k] of z^k."""
    k = torch.arange(1, coefs.shape[0] + 1, dtype=coefs.dtype, device=coefs.device)
    return coefs * k.unsqueeze(-1)


def per_channel(coefs: torch.Tensor, group_of: torch.Tensor | None) -> torch.Tensor:
    """Coefficients (K, groups) as (K, C), each channel its group's column; (K, 1) and group_of None as they are."""
    return coefs if group_of is None or coefs.shape[1] == 1 else coefs.index_select(1, group_of)


def per_group(grad: torch.Tensor, like: torch.Tensor, group_of: torch.Tensor | None) -> torch.Tensor:
    """The gradient of per_channel's input from that of its output: each group's channels summed."""
    if group_of is None or like.shape[1] == 1:
        return grad
    return torch.zeros_like(like).index_add_(1, group_of, grad)


def powers_of_abs(x: torch.Tensor, X: Powers, top: int) -> Powers:
    """|x|^0 .. |x|^top: from x's stacked rows where it has them (|x^j| = |x|^j exactly), else on demand."""
    return Powers(None, X.rows[: top + 1].abs()) if X.rows is not None else Powers(x.abs(), None)


class Rational(torch.autograd.Function):
    """P(x) / Q(x) for x (R, C): saves x, the coefficients, Q and the output (and, for a small x, its stacked powers)
    and computes the gradients from the formulas, where autograd would keep every Horner step."""

    @staticmethod
    def forward(ctx, x, a, b, group_of, denominator):
        ctx.denominator, ctx.group_of = denominator, group_of
        a, b = a.T, b.T  # coefficient-major: row k holds every group's coefficient of z^k
        ac, bc = per_channel(a, group_of), per_channel(b, group_of)
        m, n, small = a.shape[0] - 1, b.shape[0], x.numel() <= SMALL
        X = Powers(x, Powers.stack(x, max(m, n)) if small else None)
        p = X.poly(ac)
        if n == 0:
            ctx.save_for_backward(x, a, b, None, None, X.rows, None)
            return p
        terms = denominator == "terms"
        c, Z = (bc.abs(), powers_of_abs(x, X, n)) if terms else (bc, X)
        t = Z.poly(c, first=1)  # T(z) = sum_j c_j z^j, j = 1..n: >= 0 in the terms form
        q = (t if terms else t.abs_()).add_(1)
        out = p.div_(q)
        ctx.save_for_backward(x, a, b, q, out, X.rows, Z.rows if terms else None)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, a, b, q, out, x_rows, z_rows = ctx.saved_tensors
        group_of, (need_x, need_a, need_b) = ctx.group_of, ctx.needs_input_grad[:3]
        n = b.shape[0]  # a and b were saved coefficient-major
        ac, X = per_channel(a, group_of), Powers(x, x_rows)
        u = grad if n == 0 else grad / q  # dL/dP
        grad_a = per_group(X.sums(u, 0, a.shape[0], ac.shape[1] > 1), a, group_of).T if need_a else None
        grad_x = X.poly(slope_coefs(ac[1:])).mul_(u) if need_x else None  # P'(x) dL/dP; the Q part follows
        if n == 0 or not (need_x or need_b):
            return grad_x, grad_a, None, None, None
        terms = ctx.denominator == "terms"
        bc = per_channel(b, group_of)
        c, Z = (bc.abs(), Powers(x.abs() if z_rows is None else None, z_rows)) if terms else (bc, X)
        w = u.mul_(out)  # -dL/dQ = g P / Q^2 (u is not needed any more)
        if not terms:  # Q = 1 + |T(x)|: dQ/dx = sign(T) T'(x); dQ/db_j = sign(T) x^j
            w.mul_(Z.poly(c, first=1).sign_())
        grad_b = None
        if need_b:  # terms: dQ/db_j = sign(b_j) z^j
            grad_b = Z.sums(w, 1, n, True).neg_()
            grad_b = per_group(grad_b.mul_(bc.sign()) if terms else grad_b, b, group_of).T
        if grad_x is not None:  # terms: dQ/dx = T'(z) sign(x)
            dq = Z.poly(slope_coefs(c)).mul_(w)
            grad_x.sub_(dq.mul_(x.sign()) if terms else dq)
        return grad_x, grad_a, grad_b, None, None


class GroupRational(nn.Module):
    """F(x) = P(x) / Q(x) on each channel of (..., channels), coefficients shared within groups of channels.

    A drop-in activation (KAT's GR-KAN rational): e.g. nn.Sequential(nn.Linear(64, 256), GroupRational(256), ...).
    """

    group_of: torch.Tensor  # a buffer (register_buffer), declared for the type checker

    def __init__(
        self, channels: int, groups: int = 8, init: str = "gelu", degrees: tuple[int, int] = (5, 4),
        shared_numerator: bool = True, denominator: str = "terms",
    ) -> None:  # fmt: skip
        super().__init__()
        check_count("channels", channels)
        check_count("groups", groups)
        check_rational(init, degrees, denominator)
        self.channels, self.groups, self.denominator_form = channels, min(groups, channels), denominator
        self.init, (m, n) = init, degrees
        a, b = INITS[init] if tuple(degrees) == (5, 4) else ((0.0, 1.0, *[0.0] * (m - 1)), (0.0,) * n)
        self.numerator = nn.Parameter(torch.tensor([a] * (1 if shared_numerator else self.groups)))
        self.denominator = nn.Parameter(torch.tensor([b] * self.groups).reshape(self.groups, n))
        self.register_buffer("group_of", torch.arange(channels) * self.groups // channels, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels, f"GroupRational({self.channels}, groups={self.groups})")
        return rational(x, self.numerator, self.denominator, self.denominator_form, self.group_of)

    @torch.no_grad()
    def gain(self) -> float:
        """1 / sqrt(E[F(x)^2]) for x ~ N(0, 1) with group 0's coefficients (all groups are equal at init)."""
        x = torch.linspace(-12, 12, 24001, dtype=torch.float64).unsqueeze(-1)
        a, b = self.numerator[:1].double(), self.denominator[:1].double()
        density = torch.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)
        return float(torch.trapezoid((rational(x, a, b, self.denominator_form) ** 2 * density)[:, 0], x[:, 0])) ** -0.5

    def extra_repr(self) -> str:
        m, n = self.numerator.shape[1] - 1, self.denominator.shape[1]
        return f"{self.channels}, groups={self.groups}, degrees=({m}, {n}), denominator={self.denominator_form}"


class GRKANLayer(KANLayer):
    """y = W F(x) + b: a group-rational function of each input, then a linear layer."""

    def __init__(self, in_features: int, out_features: int, groups: int = 8, init: str = "gelu", **options) -> None:
        super().__init__(in_features, out_features)  # num_basis 0: no per-input basis (the layer contract)
        self.rational = GroupRational(in_features, groups, init, **options)  # degrees, shared_numerator, denominator
        self.linear = nn.Linear(in_features, out_features)
        with torch.no_grad():  # variance-preserving: W's inputs are F(x) with E[F(x)^2] = 1 / gain^2
            self.linear.weight.normal_(0.0, self.rational.gain() / math.sqrt(in_features))
            self.linear.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        return self.linear(self.rational(x))


def check_count(name: str, value: int) -> None:
    """Raise ValueError unless value is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def check_rational(init: str, degrees: tuple[int, int], denominator: str) -> None:
    """Raise ValueError for an unknown init or denominator form, or degrees that are not (m >= 1, n >= 0)."""
    m, n = degrees if isinstance(degrees, (tuple, list)) and len(degrees) == 2 else (None, None)
    if not (isinstance(m, int) and isinstance(n, int) and m >= 1 and n >= 0):
        raise ValueError(f"degrees must be (numerator >= 1, denominator >= 0), got {degrees!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    if init != "identity" and (m, n) != (5, 4):
        raise ValueError(f"init {init!r} has KAT's coefficients for degrees (5, 4) only; use init='identity'")
    if denominator not in DENOMINATORS:
        raise ValueError(f"denominator must be one of {', '.join(DENOMINATORS)}, got {denominator!r}")


def layer_inits(init: str | Sequence[str]) -> tuple[str, str]:
    """(first layer's, the other layers') init from one name or a (first, rest) pair."""
    pair = (init, init) if isinstance(init, str) else tuple(init)
    if len(pair) != 2:
        raise ValueError(f"init must be a name or a (first layer, other layers) pair, got {init!r}")
    return pair[0], pair[1]


@dataclass(frozen=True, kw_only=True)
class GRKAN(IsoFamily):
    """GR-KAN's options: groups, the init of the first and the other layers, the degrees (m, n) of P and Q, one
    numerator for all groups, and the denominator's form."""

    groups: int = 8
    init: str | Sequence[str] = ("identity", "gelu")
    degrees: tuple[int, int] = (5, 4)
    shared_numerator: bool = True
    denominator: str = "terms"

    def __post_init__(self) -> None:
        check_count("groups", self.groups)
        for name in layer_inits(self.init):
            check_rational(name, self.degrees, self.denominator)
        super().__post_init__()

    def layer(self, n: int, i: int, o: int) -> GRKANLayer:
        rational = {k: v for k, v in self.options().items() if k in ("degrees", "shared_numerator", "denominator")}
        return GRKANLayer(i, o, self.groups, layer_inits(self.init)[min(n, 1)], **rational)

    def layer_params(self, i: int, o: int) -> int:
        """The numerator(s), a denominator per group, W and b."""
        g, (m, n) = min(self.groups, i), self.degrees
        return (m + 1) * (1 if self.shared_numerator else g) + n * g + i * o + o

    def flop_breakdown(self, batch: int) -> dict[str, int]:
        """Forward FLOPs: the linear layers' matmuls exactly; Horner's rule for P and Q, |x| and the division as
        ops."""
        m, n = self.degrees
        per_input = 2 * m + (2 * n + 3 if n else 0)  # multiply-adds of P and Q, |x|, + 1, divide
        per_layer = [2 * batch * i * o for i, o in self.edges]
        elementwise = sum(batch * (i * per_input + o) for i, o in self.edges)  # + bias
        # the rational's trainable coefficients lie before every linear layer, the first included
        backward = backward_matmul(per_layer, first_input_grad=True)
        return {"matmul": sum(per_layer), "elementwise": elementwise, "matmul_backward": backward}


build, param_count, flop_breakdown = adapter_functions(GRKAN)
