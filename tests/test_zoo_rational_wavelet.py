"""wavkan and grkan, the zoo families without a per-input basis: their functions against numpy/scipy from the
formulas, the iso-parameter rule, the originals' published parameter counts, bad options, GroupRational as a drop-in.

The generic checks (gradcheck, forward == contract(), counts and FLOPs against the built module, bad input) run for
both names in tests/test_implementations.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numpy.polynomial import hermite_e
from scipy.special import erf

import implementations
from implementations import grkan, wavkan
from implementations.iso import scaled_widths

# --- the mother wavelets ---

T = np.linspace(-6, 6, 120001)  # fine enough for np.gradient to within 1e-6 (morlet: error ~ h^2 5^3 / 6)


def numpy_wavelet(name: str, t: np.ndarray) -> np.ndarray:
    """From the definitions: the Mexican hat as KAN.py writes it is C He_2(t) e^(-t^2/2) (He_2 = t^2 - 1, the
    Gaussian's second derivative), with C making its L2 norm 1; DoG is the Gaussian's first derivative."""
    gauss = np.exp(-(t**2) / 2)
    if name == "mexican_hat":
        return 2 / (np.sqrt(3) * np.pi**0.25) * hermite_e.hermeval(t, [0, 0, 1]) * gauss
    if name == "morlet":
        return np.cos(5 * t) * gauss
    return np.gradient(gauss, t, edge_order=2)  # dog


@pytest.mark.parametrize("name", wavkan.WAVELETS)
def test_wavelets_and_their_slopes_match_numpy(name):
    u = torch.from_numpy(T)
    expected = numpy_wavelet(name, T)
    np.testing.assert_allclose(wavkan.wavelet(name, u.clone()).numpy(), expected, atol=1e-6)
    psi, slope = wavkan.wavelet_and_slope(name, u)
    np.testing.assert_allclose(psi.numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(slope.numpy(), np.gradient(numpy_wavelet(name, T), T, edge_order=2), atol=1e-4)


def test_mexican_hat_is_the_negated_unit_norm_ricker():
    psi = numpy_wavelet("mexican_hat", T)
    ricker = 2 / (np.sqrt(3) * np.pi**0.25) * (1 - T**2) * np.exp(-(T**2) / 2)
    np.testing.assert_allclose(psi, -ricker, atol=1e-12)
    assert np.trapezoid(psi**2, T) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("name", wavkan.WAVELETS)
def test_layer_is_the_wavelet_sum(name):
    """y_o = sum_i w[o, i] psi((x_i - t[o, i]) / s[o, i]), evaluated in numpy, for a randomised layer."""
    torch.manual_seed(0)
    layer = wavkan.WavKANLayer(4, 3, wavelet=name).double()
    with torch.no_grad():
        layer.translation.normal_(0, 0.5)
        layer.scale.uniform_(0.5, 2.0)
    x = torch.randn(6, 4, dtype=torch.float64)
    w, t, s = (p.detach().numpy() for p in (layer.weight, layer.translation, layer.scale))
    u = (x.numpy()[:, None, :] - t) / s
    expected = (w * numpy_wavelet(name, u.ravel()).reshape(u.shape)).sum(-1) if name != "dog" else None
    if name == "dog":  # the Gaussian's derivative in closed form here, np.gradient needs a grid
        expected = (w * -u * np.exp(-(u**2) / 2)).sum(-1)
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", wavkan.WAVELETS)
def test_blocks_of_outputs_do_not_change_the_result(name, monkeypatch):
    """One output per block (the smallest) gives what one block for everything gives, forward and backward."""
    torch.manual_seed(0)
    x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    params = [torch.randn(4, 5, dtype=torch.float64) for _ in range(3)]
    params[2] = params[2].abs() + 0.5  # scale
    params = [p.requires_grad_() for p in params]

    def value_and_grads():
        y = wavkan.WaveletEdges.apply(x, *params, name)
        return (y, *torch.autograd.grad(y, (x, *params), torch.ones_like(y)))

    whole = value_and_grads()
    monkeypatch.setattr(wavkan, "CHUNK_ELEMENTS", 1)
    assert len(wavkan.output_chunks(x, 4)) == 4
    for blocked, one in zip(value_and_grads(), whole):
        torch.testing.assert_close(blocked, one, rtol=1e-12, atol=1e-12)


def test_wavelet_edges_keep_only_x_and_the_parameters_for_backward():
    """The memory claim of the module docstring: nothing of size (N, out, in) is saved for the backward."""
    layer = wavkan.WavKANLayer(5, 7)
    x = torch.randn(11, 5, requires_grad=True)
    y = wavkan.WaveletEdges.apply(x, layer.weight, layer.translation, layer.scale, "mexican_hat")
    assert [tuple(t.shape) for t in y.grad_fn.saved_tensors] == [(11, 5), (7, 5), (7, 5), (7, 5)]


def test_wavkan_initialisation_is_the_codes():
    torch.manual_seed(0)
    layer = implementations.get("wavkan").build([400, 300], iso_to=None).layers[0]
    assert torch.equal(layer.translation, torch.zeros(300, 400)) and torch.equal(layer.scale, torch.ones(300, 400))
    bound = 1 / math.sqrt(400)  # kaiming_uniform(a=sqrt(5)) on fan_in 400
    assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.99 * bound
    assert (layer.bn, layer.base, layer.num_basis) == (None, None, 0) and not hasattr(layer, "basis")


def test_wavkan_original_configuration_and_its_parameter_count():
    """zavareh1/Wav-KAN, KAN.py at f7ab5215e69b1a32e9e289159d2fd55d078fa051: KANLinear(in, out) holds scale,
    translation, weight1 and wavelet_weights, each (out, in), and BatchNorm1d(out) (weight and bias): 4 in out + 2 out
    trainable parameters per layer. wavKAN.py trains KAN([28 * 28, 32, 10]): 4 (784 * 32 + 32 * 10) + 2 (32 + 10) =
    101,716. weight1 takes no part in the output (its F.linear is computed and dropped), so ORIGINAL leaves it out."""
    original = 4 * (784 * 32 + 32 * 10) + 2 * (32 + 10)
    assert original == 101_716
    a = implementations.get("wavkan")
    model = a.build([784, 32, 10], **wavkan.ORIGINAL)
    assert a.param_count([784, 32, 10], **wavkan.ORIGINAL) == sum(p.numel() for p in model.parameters()) == 76_308
    assert original - 76_308 == 784 * 32 + 32 * 10  # exactly weight1
    assert all(isinstance(layer.bn, torch.nn.BatchNorm1d) and layer.wavelet == "mexican_hat" for layer in model.layers)
    assert [layer.out_features for layer in model.layers] == [32, 10]


# --- the group rational ---

X = np.linspace(-3, 3, 601)


def numpy_rational(x, a, b, form):
    p = sum(a[j] * x**j for j in range(len(a)))
    if form == "terms":
        return p / (1 + sum(abs(b[j - 1]) * abs(x) ** j for j in range(1, len(b) + 1)))
    return p / (1 + abs(sum(b[j - 1] * x**j for j in range(1, len(b) + 1))))


def gelu(x):
    return x * 0.5 * (1 + erf(x / np.sqrt(2)))


@pytest.mark.parametrize("form", grkan.DENOMINATORS)
@pytest.mark.parametrize("degrees", [(5, 4), (3, 2), (2, 0)])
def test_rational_matches_numpy(form, degrees):
    m, n = degrees
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=m + 1), rng.normal(size=n)
    x = torch.from_numpy(X).unsqueeze(-1)
    got = grkan.rational(x, torch.from_numpy(a).unsqueeze(0), torch.from_numpy(b).reshape(1, n), form)
    np.testing.assert_allclose(got[:, 0].numpy(), numpy_rational(X, a, b, form), rtol=1e-12, atol=1e-12)


def plain_rational(x, a, b, form):
    """The formula in autograd's own ops, per channel: the reference for the custom backward."""
    p = sum(a[k] * x**k for k in range(a.shape[0]))
    if b.shape[0] == 0:
        return p
    if form == "terms":
        return p / (1 + sum(b[j - 1].abs() * x.abs() ** j for j in range(1, b.shape[0] + 1)))
    return p / (1 + sum(b[j - 1] * x**j for j in range(1, b.shape[0] + 1)).abs())


@pytest.mark.parametrize("form", grkan.DENOMINATORS)
@pytest.mark.parametrize("degrees", [(5, 4), (1, 2), (3, 0)])
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("stacked", [True, False], ids=["stacked-powers", "horner"])
def test_rational_backward_is_autograd_s_of_the_formula(form, degrees, shared, stacked, monkeypatch):
    """The hand-written gradients (x, and the coefficients through the channel -> group map) against autograd
    differentiating the formula, and gradcheck on the Function itself; both ways of evaluating the powers."""
    monkeypatch.setattr(grkan, "SMALL", 1 << 30 if stacked else 0)
    torch.manual_seed(0)
    (m, n), groups = degrees, 3
    group_of = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    x = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    a = torch.randn(1 if shared else groups, m + 1, dtype=torch.float64, requires_grad=True)  # as the parameters
    b = torch.randn(groups, n, dtype=torch.float64, requires_grad=True)
    got = grkan.rational(x, a, b, form, group_of)
    expected = plain_rational(x, a.T if shared else a[group_of].T, b[group_of].T, form)
    g = torch.randn_like(got)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    inputs = (x, a, b) if n else (x, a)  # no denominator: b is not an input of the formula
    for mine, theirs in zip(torch.autograd.grad(got, inputs, g), torch.autograd.grad(expected, inputs, g)):
        torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(lambda x, a, b: grkan.rational(x, a, b, form, group_of), (x, a, b))


@pytest.mark.parametrize(("first", "count", "per_channel"), [(0, 6, False), (1, 4, True), (0, 1, True)])
def test_power_sums_stacked_and_running_agree(first, count, per_channel):
    """The stacked powers (small inputs) and the running products (large ones) give the same sums."""
    torch.manual_seed(0)
    w, z = torch.randn(9, 7, dtype=torch.float64), torch.randn(9, 7, dtype=torch.float64)
    expected = torch.stack([(w * z ** (first + k)).sum(0) for k in range(count)])
    expected = expected if per_channel else expected.sum(1, keepdim=True)
    stacked = grkan.Powers(z, grkan.Powers.stack(z, first + count)).sums(w, first, count, per_channel)
    running = grkan.Powers(z, None).sums(w, first, count, per_channel)
    torch.testing.assert_close(stacked, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(running, expected, rtol=1e-12, atol=1e-12)


def test_the_two_denominators_differ_where_kat_s_do():
    """ "terms" (KAT's CUDA/Triton kernels) and "sum" (the paper, fit.py) agree when every b_j x^j >= 0 only."""
    a, b = np.array([0.1, 1, 0.5, 0.2, 0.1, 0.05]), np.array([-0.3, 0.2, 0.1, 0.05])
    assert np.abs(numpy_rational(X, a, b, "terms") - numpy_rational(X, a, b, "sum")).max() > 0.1
    b = np.abs(b)
    pos = X[X >= 0]
    np.testing.assert_allclose(numpy_rational(pos, a, b, "terms"), numpy_rational(pos, a, b, "sum"), rtol=1e-12)


def test_kat_initialisations():
    """init.json's identity is F(x) = x exactly; its gelu was fitted under the "sum" form (within 0.003 of GELU on
    [-3, 3]) and, under the kernels' "terms" form, stays within 0.018 of GELU on [-1, 1] but not beyond."""
    x = torch.from_numpy(X)
    identity = grkan.GroupRational(1, init="identity").double()
    torch.testing.assert_close(identity(x.unsqueeze(-1))[:, 0], x, rtol=0, atol=0)
    sum_form = grkan.GroupRational(1, init="gelu", denominator="sum").double()
    terms = grkan.GroupRational(1, init="gelu").double()
    with torch.no_grad():
        assert np.abs(sum_form(x.unsqueeze(-1))[:, 0].numpy() - gelu(X)).max() < 0.003
        err = np.abs(terms(x.unsqueeze(-1))[:, 0].numpy() - gelu(X))
    assert err[np.abs(X) <= 1].max() < 0.018 and err.max() > 1.0


def test_gain_reproduces_kats_numbers():
    """katransformer.py (Adamdad/kat at ecb0eb7) calculate_gain: gelu sqrt(2.3567850379928976), swish
    sqrt(2.8178205270359653), from gain.py's Monte Carlo of 1 / E[F(x)^2] under the "sum" form (10^6 samples, so
    agreement to ~0.5%). Ours integrates the same expectation."""
    for init, kat in (("gelu", 2.3567850379928976), ("swish", 2.8178205270359653)):
        gain = grkan.GroupRational(4, init=init, denominator="sum").gain()
        assert gain**2 == pytest.approx(kat, rel=0.01)
    assert grkan.GroupRational(4, init="identity").gain() == pytest.approx(1.0, abs=1e-9)


def test_linear_init_is_variance_preserving():
    torch.manual_seed(0)
    model = implementations.get("grkan").build([512, 512, 512], iso_to=None)
    first, second = model.layers
    assert (first.rational.init, second.rational.init) == ("identity", "gelu")  # KAT's act1, act2
    for layer in model.layers:
        std = layer.rational.gain() / math.sqrt(512)
        assert float(layer.linear.weight.detach().std()) == pytest.approx(std, rel=0.02)
        assert torch.equal(layer.linear.bias, torch.zeros(512))
    with torch.no_grad():  # E[y^2] stays about 1 through both layers for x ~ N(0, 1)
        y = model(torch.randn(4096, 512))
    assert float(y.pow(2).mean()) == pytest.approx(1.0, rel=0.15)


def test_groups_as_kat_and_beyond():
    r = grkan.GroupRational(16, groups=8)
    assert r.group_of.tolist() == [c // 2 for c in range(16)]  # KAT's c // (channels / groups)
    assert r.numerator.shape == (1, 6) and r.denominator.shape == (8, 4)  # one numerator, as KAT_Group
    assert grkan.GroupRational(16, groups=8, shared_numerator=False).numerator.shape == (8, 6)
    assert grkan.GroupRational(10, groups=4).group_of.tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]
    small = grkan.GroupRational(3, groups=8)
    assert small.groups == 3 and small.group_of.tolist() == [0, 1, 2]


def test_each_group_uses_its_own_denominator():
    torch.manual_seed(0)
    r = grkan.GroupRational(6, groups=3, shared_numerator=False).double()
    with torch.no_grad():
        for p in r.parameters():
            p.normal_()
    x = torch.randn(5, 6, dtype=torch.float64)
    a, b = r.numerator.detach().numpy(), r.denominator.detach().numpy()
    for c in range(6):
        g = c // 2
        expected = numpy_rational(x[:, c].numpy(), a[g], b[g], "terms")
        np.testing.assert_allclose(r(x)[:, c].detach().numpy(), expected, rtol=1e-12)


def test_group_rational_is_a_drop_in_activation():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), grkan.GroupRational(16), torch.nn.Linear(16, 2))
    x = torch.randn(3, 5, 6)  # (batch, sequence, channels), as KAT's blocks
    y = net(x)
    assert y.shape == (3, 5, 2)
    y.sum().backward()
    assert net[1].numerator.grad is not None and net[1].denominator.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\(\.\.\., 16\)"):
        net[1](torch.randn(2, 15))
    with pytest.raises(TypeError, match="floating-point"):
        net[1](torch.ones(2, 16, dtype=torch.int64))


def test_kat_block_parameter_count():
    """Adamdad/kat katransformer.py at ecb0eb76bf17c701acdf4978f95c490d767e4e87, class KAN (the MLP of every KAT
    block): act1 = KAT_Group(mode="identity"), fc1 = Linear(in, hidden), act2 = KAT_Group(mode="gelu"),
    fc2 = Linear(hidden, out). KAT_Group (rational_kat_cu at 181bae8, kat_rational/kat_1dgroup_triton.py) holds
    weight_numerator (1, 6) and weight_denominator (8, 4): 38 each. KAT-Tiny (ViT-Ti/16: 192 wide, mlp_ratio 4):
    38 + (192 * 768 + 768) + 38 + (768 * 192 + 192) = 295,948 per block."""
    original = 38 + (192 * 768 + 768) + 38 + (768 * 192 + 192)
    assert original == 295_948
    a = implementations.get("grkan")
    model = a.build([192, 768, 192], **grkan.ORIGINAL)
    assert a.param_count([192, 768, 192], **grkan.ORIGINAL) == sum(p.numel() for p in model.parameters()) == original


# --- the iso-parameter rule ---

SUITE_WIDTHS = [[100, 100], [784, 64, 10], [64, 32, 10], [256, 256, 256], [1000, 1000]]


@pytest.mark.parametrize("name", ["wavkan", "grkan"])
@pytest.mark.parametrize("widths", SUITE_WIDTHS, ids=str)
def test_iso_parameter_count_within_2_percent_at_suite_widths(name, widths):
    a = implementations.get(name)
    for G, k in ((5, 3), (3, 1), (8, 2), (20, 3)):
        target = implementations.get("bspline").param_count(widths, G, k)
        count = a.param_count(widths, G, k)
        assert abs(count - target) / target <= 0.02, (widths, G, k, count, target)
        model = a.build(widths, G, k)
        assert count == sum(p.numel() for p in model.parameters())
        assert len(model.layers) == max(2, len(widths) - 1)  # [i, o] gets one hidden layer, as mlp-iso
        assert model.layers[0].in_features == widths[0] and model.layers[-1].out_features == widths[-1]


def test_iso_takes_the_nearest_count_where_2_percent_is_out_of_reach():
    count = lambda w: 15 * w[1]  # noqa: E731  (wavkan on [3, h, 2]: 3 (3 + 2) h)
    assert scaled_widths([3, 4, 2], 140, count) == [3, 9, 2]  # 135 (3.6% off); 150 would be 7% off
    assert scaled_widths([3, 2], 1, count) == [3, 1, 2]  # never below one hidden unit
    edges = lambda w: sum(i * o for i, o in zip(w[:-1], w[1:]))  # noqa: E731
    assert scaled_widths([8, 5, 5, 3], 80, edges) == [8, 5, 5, 3]  # every hidden width by one factor
    assert scaled_widths([8, 5, 5, 3], 320, edges) == [8, 13, 13, 3]  # 312 (14 would give 350)


def test_iso_is_off_by_default_in_the_builders_and_on_in_the_registry():
    assert implementations.get("wavkan").options == {"iso_to": "bspline"}
    assert implementations.get("grkan").options == {"iso_to": "bspline"}
    assert wavkan.param_count([10, 20, 5]) == 3 * (10 * 20 + 20 * 5)
    assert grkan.param_count([10, 20, 5]) == (6 + 4 * 8 + 10 * 20 + 20) + (6 + 4 * 8 + 20 * 5 + 5)


@pytest.mark.parametrize("name", ["wavkan", "grkan"])
def test_a_suite_turns_iso_off_with_none(name):
    """TOML has no null: [options.wavkan] iso_to = "none" gives the original's widths, as iso_to=None does."""
    a = implementations.get(name)
    assert a.param_count([10, 20, 5], 5, 3, iso_to="none") == a.param_count([10, 20, 5], 5, 3, iso_to=None)
    assert a.param_count([10, 20, 5], 5, 3, iso_to="none") != a.param_count([10, 20, 5], 5, 3)
    assert [layer.in_features for layer in a.build([10, 20, 5], 5, 3, iso_to="none").layers] == [10, 20]


# --- the layer contract without a basis ---


@pytest.mark.parametrize("name", ["wavkan", "grkan"])
def test_declared_without_basis(name):
    info = implementations.info(name)
    assert not info.has_basis and not implementations.get(name).has_basis
    assert implementations.info("bspline").has_basis and not implementations.info("mlp").has_basis
    model = implementations.get(name).build([4, 3])
    assert all(layer.num_basis == 0 and not callable(getattr(layer, "basis", None)) for layer in model.layers)


def test_profiler_finds_no_basis_to_wrap():
    """kanbench profile then attributes the basis by op name (the record says "names"), and the model runs."""
    pytest.importorskip("kanbench.measure.profile_worker")
    from kanbench.measure.profile_worker import basis_ranges

    model = implementations.get("wavkan").build([4, 6, 3])
    with basis_ranges(model) as wrapped:
        assert wrapped == 0
        model(torch.randn(2, 4)).sum().backward()


# --- bad options ---


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("wavkan", {"wavelet": "meyer"}, "wavelet must be one of mexican_hat, morlet, dog, got 'meyer'"),
        ("grkan", {"init": "relu"}, "init must be one of identity, gelu, swish, got 'relu'"),
        ("grkan", {"init": ("identity", "tanh")}, "init must be one of"),
        ("grkan", {"init": ("identity",)}, r"a \(first layer, other layers\) pair"),
        ("grkan", {"denominator": "abs"}, "denominator must be one of terms, sum, got 'abs'"),
        ("grkan", {"degrees": (0, 4)}, r"degrees must be \(numerator >= 1, denominator >= 0\)"),
        ("grkan", {"degrees": 5}, "degrees must be"),
        ("grkan", {"degrees": (3, 2)}, "init 'gelu' has KAT's coefficients for degrees \\(5, 4\\) only"),
        ("grkan", {"groups": 0}, "groups must be an int >= 1, got 0"),
        ("wavkan", {"iso_to": "nonesuch"}, None),
    ],
)
def test_bad_options(name, options, message):
    a = implementations.get(name)
    if message is None:
        with pytest.raises(KeyError, match="unknown implementation 'nonesuch'"):
            a.build([3, 4, 2], **options)
        return
    for call in (a.build, a.param_count):
        with pytest.raises(ValueError, match=message):
            call([3, 4, 2], **options)
    with pytest.raises(ValueError, match=message):
        a.flop_breakdown([3, 4, 2], batch=2, **options)


@pytest.mark.parametrize("name", ["wavkan", "grkan"])
def test_unknown_option_is_a_type_error(name):
    with pytest.raises(TypeError, match="use_base"):
        implementations.get(name).build([3, 2], use_base=False)
