"""The zoo's basis families (chebykan, jacobikan, fourierkan, relukan) against references written from the formulas.

The generic checks (gradcheck, forward == basis contraction, counts, FLOPs, bad input) run for these names in
test_implementations.py; here each basis is compared with an independent evaluation (scipy.special, numpy) at
interior points, near the ends of tanh's range and where float tanh saturates to exactly +-1, and the originals'
published configurations are counted from their code.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import special

import implementations
from implementations import relukan
from implementations.chebykan import ChebyKANLayer
from implementations.fourierkan import FourierKANLayer
from implementations.jacobikan import JacobiKANLayer
from implementations.relukan import ReLUKANLayer

# Inputs from the middle to well past saturation: float64 tanh(x) is exactly +-1 for |x| > 19.1.
X = np.array([-40.0, -19.5, -9.0, -2.5, -1.0, -0.3, 0.0, 0.2, 0.7, 1.3, 3.0, 8.0, 19.5, 40.0])
ZOO = ["chebykan", "jacobikan", "fourierkan", "relukan"]


def trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def basis_of(layer: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """(n,) points -> (n, K) basis values of a one-input layer, in float64."""
    with torch.no_grad():
        return layer.double().basis(torch.from_numpy(x).reshape(-1, 1))[:, 0, :].numpy()


# --- chebykan ---


@pytest.mark.parametrize("degree", [0, 1, 7, 12, 22])
def test_chebyshev_basis_is_scipy_chebyt_of_tanh(degree):
    t = np.tanh(X)
    want = np.stack([special.eval_chebyt(d, t) for d in range(degree + 1)], axis=-1)
    np.testing.assert_allclose(basis_of(ChebyKANLayer(1, 1, degree), X), want, rtol=1e-12, atol=1e-12)


def test_chebyshev_derivative_is_d_times_chebyu_also_at_plus_minus_one():
    """T_d'(t) = d U_(d-1)(t), so T_d'(+-1) = (+-1)^(d+1) d^2: finite where d/dt cos(d arccos t) is 0 * inf."""
    layer, t0 = ChebyKANLayer(1, 1, 12).double(), np.array([-1.0, -0.999, -0.4, 0.0, 0.55, 0.999, 1.0])
    for d in range(1, 13):
        t = torch.from_numpy(t0).reshape(-1, 1).requires_grad_()
        (grad,) = torch.autograd.grad(layer.polynomials(t)[:, 0, d].sum(), t)
        np.testing.assert_allclose(grad[:, 0].numpy(), d * special.eval_chebyu(d - 1, t0), rtol=1e-11, atol=1e-11)
    assert d * special.eval_chebyu(d - 1, 1.0) == d * d


def test_chebykan_gradient_is_finite_where_float32_tanh_saturates():
    assert torch.tanh(torch.tensor(10.0)) == 1.0, "the case this test is about: float32 tanh reaches 1 exactly"
    torch.manual_seed(0)
    model = implementations.get("chebykan").build([3, 4, 2])
    x = torch.tensor([[10.0, -25.0, 0.5], [9.5, 0.0, -100.0]], requires_grad=True)
    model(x).square().sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_chebykan_defaults_degree_and_init():
    layer = implementations.get("chebykan").build([400, 300]).layers[0]
    assert (layer.degree, layer.num_basis, layer.layernorm) == (7, 8, None)  # G + k - 1 at G = 5, k = 3
    assert layer.coef.shape == (300, 400, 8)
    assert float(layer.coef.detach().std()) == pytest.approx(
        1 / (400 * 8), rel=0.02
    )  # the original's std 1 / (in (D + 1))
    assert abs(float(layer.coef.detach().mean())) < 1e-5


def test_hidden_layernorm_normalizes_every_input_but_the_first():
    torch.manual_seed(0)
    model = implementations.get("chebykan").build([3, 4, 2, 2], degree=4, hidden_layernorm=True).double()
    assert [layer.layernorm is None for layer in model.layers] == [True, False, False]
    layer, x = model.layers[1], torch.randn(5, 4, dtype=torch.float64) * 3
    with torch.no_grad():
        torch.testing.assert_close(layer.basis(x), layer.polynomials(torch.tanh(layer.layernorm(x))))


# --- jacobikan ---

AB = [(1.0, 1.0), (0.0, 0.0), (-0.5, -0.5), (0.5, 2.0), (-0.7, 3.0), (2.5, -0.2)]


@pytest.mark.parametrize(("a", "b"), AB, ids=str)
@pytest.mark.parametrize("degree", [1, 7, 12])
def test_jacobi_basis_is_scipy_eval_jacobi_of_tanh(a, b, degree):
    t = np.tanh(X)
    want = np.stack([special.eval_jacobi(d, a, b, t) for d in range(degree + 1)], axis=-1)
    got = basis_of(JacobiKANLayer(1, 1, degree, a=a, b=b), X)
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11 * np.abs(want).max())


@pytest.mark.parametrize(("a", "b"), AB, ids=str)
def test_jacobi_derivative_at_plus_minus_one(a, b):
    """d/dt P_n^(a,b) = (n + a + b + 1) / 2 P_(n-1)^(a+1,b+1) (DLMF 18.9.15), at the ends of [-1, 1] too."""
    layer, t0 = JacobiKANLayer(1, 1, 9, a=a, b=b).double(), np.array([-1.0, -0.3, 0.8, 1.0])
    for n in range(1, 10):
        t = torch.from_numpy(t0).reshape(-1, 1).requires_grad_()
        (grad,) = torch.autograd.grad(layer.polynomials(t)[:, 0, n].sum(), t)
        want = (n + a + b + 1) / 2 * special.eval_jacobi(n - 1, a + 1, b + 1, t0)
        np.testing.assert_allclose(grad[:, 0].numpy(), want, rtol=1e-10, atol=1e-10 * np.abs(want).max())


def test_jacobikan_defaults():
    layer = implementations.get("jacobikan").build([3, 2]).layers[0]
    assert (layer.a, layer.b, layer.degree, layer.num_basis) == (1.0, 1.0, 7, 8)
    assert implementations.get("jacobikan").build([3, 2], 10, 3, a=0.5).layers[0].num_basis == 13


# --- fourierkan ---


@pytest.mark.parametrize("n", [1, 2, 5, 6, 8, 13, 23])
def test_fourier_basis_is_cos_then_sin(n):
    """cos(kx) for k = 1..ceil(n/2), then sin(kx) for k = 1..floor(n/2): n bases, odd n one more cosine."""
    x = np.linspace(-7.0, 7.0, 29)
    k_cos, k_sin = np.arange(1, (n + 1) // 2 + 1), np.arange(1, n // 2 + 1)
    want = np.concatenate([np.cos(np.outer(x, k_cos)), np.sin(np.outer(x, k_sin))], axis=-1)
    assert want.shape == (29, n)
    np.testing.assert_allclose(basis_of(FourierKANLayer(1, 1, n), x), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("G", [3, 5, 10, 20])  # the default suite's grid sizes: G + k = 6, 8, 13, 23
def test_fourierkan_has_g_plus_k_bases_for_odd_and_even(G):
    a = implementations.get("fourierkan")
    layer = a.build([4, 3], G, 3).layers[0]
    assert layer.num_basis == G + 3 and (layer.num_cos, layer.num_sin) == ((G + 4) // 2, (G + 3) // 2)
    assert layer.basis(torch.rand(5, 4)).shape == (5, 4, G + 3)
    assert a.param_count([4, 3], G, 3) == 4 * 3 * (G + 3) + 3 == trainable(a.build([4, 3], G, 3))


def test_fourierkan_frequencies_option_is_the_originals_gridsize():
    layer = implementations.get("fourierkan").build([4, 3], frequencies=7).layers[0]
    assert (layer.num_basis, layer.num_cos, layer.num_sin) == (14, 7, 7)


def test_fourierkan_init_scales():
    """The original's scales: 1 / (sqrt(in) sqrt(K)); with smooth_init 1 / (sqrt(in) k^2); bias zeros."""
    torch.manual_seed(0)
    plain = FourierKANLayer(400, 300, 8)
    assert float(plain.coef.detach().std()) == pytest.approx(1 / math.sqrt(400 * 4), rel=0.02)
    assert torch.equal(plain.bias, torch.zeros(300))
    smooth = FourierKANLayer(400, 300, 7, smooth_init=True)  # cos k = 1..4, sin k = 1..3
    std = smooth.coef.detach().std(dim=(0, 1))
    want = torch.tensor([1, 4, 9, 16, 1, 4, 9], dtype=torch.float32).reciprocal() / 20
    torch.testing.assert_close(std, want, rtol=0.03, atol=0)


# --- relukan ---


def relu_bumps(x: np.ndarray, G: int, k: int, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    """[ReLU(e_j - x) ReLU(x - s_j)]^2 16 / (e_j - s_j)^4, s_j = lo + (j - k) h, e_j = s_j + (k + 1) h."""
    h = (hi - lo) / G
    s = lo + (np.arange(G + k) - k) * h
    e = s + (k + 1) * h
    x = x[:, None]
    return (np.maximum(e - x, 0) * np.maximum(x - s, 0)) ** 2 * 16 / (e - s) ** 4


@pytest.mark.parametrize(("G", "k"), [(5, 3), (3, 1), (10, 2), (4, 5)])
def test_relu_basis_matches_the_formula(G, k):
    x = np.linspace(-0.9, 1.9, 113)
    layer = ReLUKANLayer(1, 1, G, k)
    torch.testing.assert_close(layer.starts.detach()[0], torch.arange(-k, G) / G)  # the original's np.arange(-k, g) / g
    torch.testing.assert_close(layer.ends.detach()[0], torch.arange(-k, G) / G + (k + 1) / G)
    # the grid is held in float32 (0.1 is not exact): a bump of slope <= 8 moves by up to 1e-6
    np.testing.assert_allclose(basis_of(layer, x), relu_bumps(x, G, k), rtol=0, atol=2e-6)


@pytest.mark.parametrize(
    "layer",
    [ChebyKANLayer(3, 2, 6), JacobiKANLayer(3, 2, 5, a=0.5, b=2.0), ChebyKANLayer(3, 2, 0), JacobiKANLayer(3, 2, 1)],
    ids=["cheby", "jacobi", "cheby-0", "jacobi-1"],
)
def test_polynomials_and_slopes_are_the_polynomials_and_their_derivatives(layer):
    """The fused recurrence (the lean mode's) against polynomials() and autograd's derivative of it."""
    t = torch.linspace(-0.99, 0.99, 41, dtype=torch.float64).reshape(-1, 1).expand(41, 3).clone().requires_grad_()
    values, slopes = layer.polynomials_and_slopes(t)
    expected = layer.polynomials(t)
    torch.testing.assert_close(values, expected, rtol=1e-12, atol=1e-12)
    for d in range(layer.num_basis):
        if not expected.requires_grad:  # degree 0: the constant alone
            assert not slopes.any()
            continue
        (grad,) = torch.autograd.grad(expected[..., d].sum(), t, retain_graph=True, materialize_grads=True)
        torch.testing.assert_close(slopes[..., d], grad, rtol=1e-10, atol=1e-10)


def test_relu_bumps_backward_is_autograd_s_of_the_formula():
    """The closed-form gradients (x, starts, ends) against autograd of [r ReLU(e - x) ReLU(x - s)]^2, gradcheck,
    and only x, s and e kept for the backward."""
    torch.manual_seed(0)
    x = (torch.rand(6, 3, 4, dtype=torch.float64) * 1.6 - 0.3).requires_grad_()
    s = (torch.rand(4, 5, dtype=torch.float64) * 0.5).requires_grad_()
    e = (s.detach() + 0.4 + torch.rand(4, 5, dtype=torch.float64) * 0.3).requires_grad_()
    got = relukan.bumps(x, s, e, 3.0)
    assert [tuple(t.shape) for t in got.grad_fn.saved_tensors] == [(6, 3, 4), (4, 5), (4, 5)]
    expected = (3.0 * torch.relu(e - x.unsqueeze(-1)) * torch.relu(x.unsqueeze(-1) - s)) ** 2
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)
    g = torch.randn_like(got)
    for mine, theirs in zip(torch.autograd.grad(got, (x, s, e), g), torch.autograd.grad(expected, (x, s, e), g)):
        torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(lambda x, s, e: relukan.bumps(x, s, e, 3.0), (x, s, e))


def test_relu_bumps_peak_at_one_and_cover_zero_one_k_plus_one_deep():
    G, k = 5, 3
    layer = ReLUKANLayer(1, 1, G, k)
    mid = (layer.starts.detach()[0] + layer.ends.detach()[0]).double().numpy() / 2
    np.testing.assert_allclose(basis_of(layer, mid).diagonal(), np.ones(G + k), rtol=1e-6, atol=0)
    inside = np.linspace(0.01, 0.99, 50) + 0.003  # off the knots j / G
    assert ((basis_of(layer, inside) > 0).sum(-1) == k + 1).all()
    assert (basis_of(layer, np.array([-k / G - 1e-3, 1 + k / G + 1e-3])) == 0).all()  # no squashing outside


def test_relukan_grid_range_and_trainable_grid():
    x = np.linspace(-1.5, 1.5, 61)
    layer = ReLUKANLayer(1, 1, 4, 2, grid_range=(-1.0, 1.0), trainable_grid=False)
    np.testing.assert_allclose(basis_of(layer, x), relu_bumps(x, 4, 2, -1.0, 1.0), rtol=1e-6, atol=1e-7)
    assert not layer.starts.requires_grad and not layer.ends.requires_grad
    default = implementations.get("relukan").build([3, 2]).layers[0]
    assert default.starts.requires_grad and default.ends.requires_grad and default.starts.shape == (3, 8)


def test_relukan_weights_initialised_as_the_originals_conv2d():
    """Conv2d(1, out, (G + k, in))'s default init: weight and bias uniform within 1 / sqrt(in (G + k))."""
    torch.manual_seed(0)
    layer = ReLUKANLayer(50, 400, 5, 3)
    bound = 1 / math.sqrt(50 * 8)
    assert float(layer.spline_weight.detach().abs().max()) <= bound >= float(layer.bias.detach().abs().max())
    assert float(layer.spline_weight.detach().std()) == pytest.approx(bound / math.sqrt(3), rel=0.02)


# --- the originals' published configurations, counted from their code ---


def test_chebykan_original_mnist_parameter_count():
    # SynodicMonth/ChebyKAN at 5f7efdd (README.md, ChebyKANLayer.py last changed in e6b7930): MNISTChebyKAN is
    # ChebyKANLayer(784, 32, 4), LayerNorm(32), ChebyKANLayer(32, 16, 4), LayerNorm(16), ChebyKANLayer(16, 10, 4), and
    # a ChebyKANLayer holds one Parameter cheby_coeffs of shape (in, out, degree + 1):
    # 784*32*5 + 32*16*5 + 16*10*5 = 128,800, plus LayerNorm weight and bias 2*32 + 2*16 = 96 -> 128,896.
    a, widths = implementations.get("chebykan"), [784, 32, 16, 10]
    assert a.param_count(widths, degree=4, hidden_layernorm=True) == 128_896
    assert trainable(a.build(widths, degree=4, hidden_layernorm=True)) == 128_896
    assert a.param_count(widths, degree=4) == 128_800  # the three layers alone


def test_jacobikan_original_mnist_parameter_count():
    # SpaceLearner/JacobiKAN at 51d160c (README.md; JacobiKANLayer.py last changed in 7c33970): MNISTJacobiKAN is
    # JacobiKANLayer(784, 32, 3), LayerNorm(32), JacobiKANLayer(32, 16, 3), LayerNorm(16), JacobiKANLayer(16, 10, 3)
    # (the README's text says degree 4; its code says 3), one Parameter jacobi_coeffs (in, out, degree + 1) a layer,
    # a and b plain floats: 784*32*4 + 32*16*4 + 16*10*4 = 103,040, plus LayerNorms 96 -> 103,136.
    a, widths = implementations.get("jacobikan"), [784, 32, 16, 10]
    assert a.param_count(widths, degree=3, hidden_layernorm=True) == 103_136
    assert trainable(a.build(widths, degree=3, hidden_layernorm=True)) == 103_136


def test_fourierkan_original_demo_parameter_count():
    # GistNoesis/FourierKAN at ef80791 (fftKAN.py last changed in 437fb97), demo(): NaiveFourierKANLayer(50, 200, 300)
    # then (200, 100, 300); a layer holds fouriercoeffs (2, out, in, gridsize) and, with addbias=True, bias (1, out):
    # 2*200*50*300 + 200 + 2*100*200*300 + 100 = 18,000,300.
    a = implementations.get("fourierkan")
    assert a.param_count([50, 200, 100], frequencies=300) == 18_000_300
    assert trainable(a.build([50, 200, 100], frequencies=300)) == 18_000_300


def test_relukan_original_parameter_count():
    # quiqi/relu_kan at 79eab7a (torch_relu_kan.py, exp_speed.py): ReLUKAN([4, 4, 2, 1], 10, 3) stacks
    # ReLUKANLayer(in, g=10, k=3, out) with phase_low and phase_height Parameters of shape (in, g + k), trainable
    # (train_ab=True), and Conv2d(1, out, (g + k, in)) with out * (g + k) * in weights and out biases:
    # (2*4*13 + 4*13*4 + 4) + (2*4*13 + 4*13*2 + 2) + (2*2*13 + 2*13*1 + 1) = 316 + 210 + 79 = 605.
    a = implementations.get("relukan")
    assert a.param_count([4, 4, 2, 1], 10, 3) == 605 == trainable(a.build([4, 4, 2, 1], 10, 3))
    assert a.param_count([1, 1], 5, 3) == 25  # fitting_example.py's ReLUKAN([1, 1], 5, 3)
    assert a.param_count([4, 4, 2, 1], 10, 3, trainable_grid=False) == 605 - 2 * 13 * (4 + 4 + 2)


# --- bad options ---

BAD_OPTIONS = [
    ("chebykan", {"degree": -1}, "degree must be an int >= 0, got -1"),
    ("chebykan", {"degree": 2.5}, "degree must be an int >= 0, got 2.5"),
    ("chebykan", {"degree": True}, "degree must be an int >= 0, got True"),
    ("jacobikan", {"degree": -3}, "degree must be an int >= 0, got -3"),
    ("jacobikan", {"a": -1.0}, "parameter a must be a finite number > -1, got -1.0"),
    ("jacobikan", {"b": -2}, "parameter b must be a finite number > -1, got -2"),
    ("jacobikan", {"a": float("nan")}, "parameter a must be a finite number > -1, got nan"),
    ("jacobikan", {"b": "1"}, "parameter b must be a finite number > -1, got '1'"),
    ("fourierkan", {"frequencies": 0}, r"frequencies must be an int >= 1 \(the original's gridsize\), got 0"),
    ("fourierkan", {"frequencies": 2.0}, "frequencies must be an int >= 1"),
    ("relukan", {"grid_range": (1.0, 0.0)}, r"grid_range must be two finite numbers \(lo, hi\) with lo < hi"),
    ("relukan", {"grid_range": (0.0,)}, "grid_range must be two finite numbers"),
    ("relukan", {"grid_range": (0.0, float("inf"))}, "grid_range must be two finite numbers"),
    ("relukan", {"grid_range": "01"}, "grid_range must be two finite numbers"),
]


@pytest.mark.parametrize(("name", "options", "message"), BAD_OPTIONS, ids=[f"{n}-{o}" for n, o, _ in BAD_OPTIONS])
def test_bad_options_raise_at_build_and_count(name, options, message):
    a = implementations.get(name)
    with pytest.raises(ValueError, match=message):
        a.build([3, 2], **options)
    with pytest.raises(ValueError, match=message):
        a.param_count([3, 2], **options)
    with pytest.raises(ValueError, match=message):
        a.flop_breakdown([3, 2], batch=4, **options)


@pytest.mark.parametrize("name", ZOO)
def test_unknown_option_is_a_type_error(name):
    a = implementations.get(name)
    with pytest.raises(TypeError, match="use_layernorm"):
        a.build([3, 2], use_layernorm=False)
    with pytest.raises(TypeError, match="use_layernorm"):
        a.param_count([3, 2], use_layernorm=False)
