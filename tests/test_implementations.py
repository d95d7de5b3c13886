"""The adapter contract, checked on every registered implementation: built-ins and entry points alike.

The layer contract, shapes and bad input for every name in implementations.names(); for the built-ins also gradcheck
of the whole model, forward == basis contracted with the weights (so `basis` cannot drift from what forward uses) and
analytic parameter counts and matmul FLOPs against the built module over several G, k and options. Nothing here lists
implementations by hand: a new family is covered once its registry line exists.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

import implementations
from implementations.bspline import BSplineKANLayer
from implementations.chebykan import PolynomialKANLayer
from implementations.fastkan import FastKANLayer
from implementations.fourierkan import FourierKANLayer
from implementations.grkan import GRKANLayer
from implementations.mlp import MLP
from implementations.pykan import PykanLayer
from implementations.relukan import ReLUKANLayer
from implementations.rswaf import RSWAFKANLayer
from implementations.wavkan import WavKANLayer

ROOT = Path(__file__).resolve().parents[1]
BUILTIN = list(implementations.BUILTIN)
NAMES = implementations.names()  # built-ins, then entry points (inkan, and any installed third party's)
KANS = [name for name in NAMES if implementations.info(name).family != "mlp"]  # the MLP family has no KAN layers
# Every built-in at its defaults, plus options that change a module's structure.
OPTION_CASES = [(name, {}) for name in BUILTIN] + [
    ("fastkan", {"use_layernorm": False, "use_base": False}),
    ("rswaf", {"trainable_grid": True, "trainable_inv_h": True}),
    ("rswaf", {"use_layernorm": False, "inv_h": 1.7}),
    ("chebykan", {"degree": 4, "hidden_layernorm": True}),
    ("jacobikan", {"degree": 3, "a": 0.5, "b": 2.0, "hidden_layernorm": True}),
    ("fourierkan", {"frequencies": 3, "use_bias": False, "smooth_init": True}),
    ("relukan", {"trainable_grid": False, "grid_range": (-1.0, 1.0)}),
    ("wavkan", {"wavelet": "morlet", "base": True, "batch_norm": True}),
    ("wavkan", {"wavelet": "dog", "iso_to": None}),
    ("grkan", {"denominator": "sum", "shared_numerator": False, "groups": 2}),
    ("grkan", {"degrees": (3, 2), "init": "identity", "iso_to": None}),
]


def adapter(name: str) -> implementations.Adapter:
    """The adapter, or a skip with its own reason when it is not available (a missing optional package)."""
    a = implementations.get(name)
    ok, why = a.available()
    if not ok:
        pytest.skip(why)
    return a


def trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every trainable parameter random values, so a contraction that ignores one of them shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            if name.endswith("centres"):  # a trainable grid stays sorted; jitter it only
                p.add_(0.05 * torch.rand(p.shape, generator=g, dtype=p.dtype))
            else:
                p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=p.dtype) + 0.1)


def inputs(*shape: int, seed: int = 0) -> torch.Tensor:
    """float64 inputs inside the B-spline grid [-1, 1], away from its ends."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=torch.float64) * 1.8 - 0.9


# --- gradcheck ---


def model_gradcheck(model: torch.nn.Module, x: torch.Tensor) -> bool:
    """gradcheck of the model's output w.r.t. its input and every trainable parameter at once."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    keys = [n for n, _ in named]

    def f(x, *params):
        return functional_call(model, dict(zip(keys, params)), (x,))

    params = [p.detach().clone().requires_grad_() for _, p in named]
    return torch.autograd.gradcheck(f, (x.clone().requires_grad_(), *params), eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize(("name", "options"), OPTION_CASES, ids=lambda v: str(v) if v else "defaults")
def test_gradcheck_float64(name, options):
    torch.manual_seed(0)
    model = adapter(name).build([3, 4, 2], grid_size=3, spline_order=2, **options).double()
    assert model_gradcheck(model, inputs(2, 3))


@pytest.mark.parametrize(("name", "options"), OPTION_CASES, ids=lambda v: str(v) if v else "defaults")
def test_every_trainable_parameter_gets_a_gradient(name, options):
    """A parameter counted as trainable must take part in the forward (pykan's symbolic affine excepted: see docs)."""
    torch.manual_seed(0)
    model = adapter(name).build([3, 4, 2], grid_size=3, spline_order=2, **options).double()
    randomize(model)
    (model(inputs(5, 3)) * torch.randn(5, 2, dtype=torch.float64)).sum().backward()
    for param_name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name == "pykan" and ".symbolic_fun." in f".{param_name}":
            assert p.grad is None, "pykan's symbolic branch is off: its affine terms must not take part"
            continue
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: {param_name} gets no gradient"


# --- forward == basis contracted with the layer's weights ---


def contract(layer: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer's output rebuilt from layer.basis(x) and its weights, written independently of its forward."""
    B = layer.basis(x) if layer.num_basis else None  # (..., in, K); wavkan's and grkan's layers have no basis
    if isinstance(layer, BSplineKANLayer):
        spline = torch.einsum("...im,oim,oi->...o", B, layer.spline_weight, layer.spline_scaler)
        return spline + torch.einsum("...i,oi->...o", F.silu(x), layer.base_weight)
    if isinstance(layer, (FastKANLayer, RSWAFKANLayer)):
        W = layer.spline_weight.reshape(layer.out_features, layer.in_features, -1)  # columns are (input, basis)
        out = torch.einsum("...im,oim->...o", B, W)
        base = getattr(layer, "base", None)
        if base is not None:
            out = out + torch.einsum("...i,oi->...o", F.silu(x), base.weight) + base.bias
        return out
    if isinstance(layer, PykanLayer):
        kl = layer.layer  # pykan's KANLayer: coef (in, out, K), scale_base / scale_sp / mask (in, out)
        spline = torch.einsum("...im,iom->...io", B, kl.coef)
        edge = kl.scale_base * F.silu(x).unsqueeze(-1) + kl.scale_sp * spline
        return (kl.mask * edge).sum(-2)
    if isinstance(layer, PolynomialKANLayer):  # chebykan, jacobikan: coef (out, in, D + 1), no bias
        return torch.einsum("...im,oim->...o", B, layer.coef)
    if isinstance(layer, FourierKANLayer):
        out = torch.einsum("...im,oim->...o", B, layer.coef)
        return out if layer.bias is None else out + layer.bias
    if isinstance(layer, ReLUKANLayer):
        W = layer.spline_weight.reshape(layer.out_features, layer.in_features, -1)  # columns are (input, bump)
        return torch.einsum("...im,oim->...o", B, W) + layer.bias
    if isinstance(layer, WavKANLayer):  # no basis: each edge's wavelet from its formula
        u = (x.unsqueeze(-2) - layer.translation) / layer.scale  # (..., out, in)
        envelope = torch.exp(-(u**2) / 2)
        psi = {
            "mexican_hat": 2 / (3**0.5 * torch.pi**0.25) * (u**2 - 1) * envelope,
            "morlet": torch.cos(5 * u) * envelope,
            "dog": -u * envelope,
        }[layer.wavelet]
        out = (layer.weight * psi).sum(-1)
        if layer.base is not None:
            out = out + torch.einsum("...i,oi->...o", F.silu(x), layer.base.weight)
        return out if layer.bn is None else layer.bn(out.reshape(-1, layer.out_features)).reshape(out.shape)
    if isinstance(layer, GRKANLayer):  # no basis: P / Q of each input by its powers, then the linear layer
        r = layer.rational
        group = torch.arange(r.channels) * r.groups // r.channels
        a = r.numerator[group if r.numerator.shape[0] > 1 else 0 * group]  # (in, m + 1)
        b = r.denominator[group]  # (in, n)
        p = sum(a[:, j] * x**j for j in range(a.shape[1]))
        if r.denominator_form == "terms":
            q = 1 + sum((b[:, j - 1].abs() * x.abs() ** j for j in range(1, b.shape[1] + 1)), torch.zeros_like(x))
        else:
            q = 1 + sum((b[:, j - 1] * x**j for j in range(1, b.shape[1] + 1)), torch.zeros_like(x)).abs()
        return torch.einsum("...i,oi->...o", p / q, layer.linear.weight) + layer.linear.bias
    # The contraction needs the layer's weights, which only its family knows; the layer contract holds regardless.
    pytest.skip(f"no independent contraction written for {type(layer).__name__}: add one to contract() to check it")


@pytest.mark.parametrize(("name", "options"), [c for c in OPTION_CASES if c[0] in KANS], ids=str)
@pytest.mark.parametrize("shape", [(5,), (2, 3)], ids=["batch", "batch-seq"])
def test_forward_equals_basis_contraction(name, options, shape):
    torch.manual_seed(0)
    model = adapter(name).build([3, 4, 2], grid_size=3, spline_order=2, **options).double()
    randomize(model)
    x = inputs(*shape, 3)
    with torch.no_grad():
        for layer in model.layers:
            y = layer(x)
            torch.testing.assert_close(y, contract(layer, x), rtol=1e-12, atol=1e-12)
            x = y.clamp(-0.9, 0.9)  # the next layer's input stays inside the grid


@pytest.mark.parametrize("name", KANS)
def test_model_is_its_layers_in_sequence(name):
    """model.layers is what the model runs (pykan's and inkan's forward are their own, so this ties the two)."""
    torch.manual_seed(0)
    model = adapter(name).build([3, 4, 2], grid_size=3, spline_order=3).double()
    randomize(model)
    x = inputs(6, 3)
    with torch.no_grad():
        y = x
        for layer in model.layers:
            y = layer(y)
        torch.testing.assert_close(model(x), y, rtol=1e-12, atol=1e-12)


def test_contraction_check_can_fail():
    """The forward-vs-basis check detects a basis that drifted from the forward (here: LayerNorm skipped in basis)."""
    torch.manual_seed(0)
    layer = FastKANLayer(3, 2).double()
    randomize(layer)
    x = inputs(5, 3)
    drifted = FastKANLayer(3, 2, use_layernorm=False).double()
    drifted.load_state_dict({k: v for k, v in layer.state_dict().items() if not k.startswith("layernorm")})
    with torch.no_grad():
        torch.testing.assert_close(layer(x), contract(layer, x))
        assert not torch.allclose(layer(x), contract(drifted, x))


# --- the layer contract (docs/implementations.md) and shapes ---


@pytest.mark.parametrize("name", NAMES)
def test_layer_contract(name):
    """model.layers is an nn.ModuleList; each KAN layer has in_features and either num_basis = G + k and basis(x) of
    shape (batch, in_features, num_basis) on the input that layer receives, or (an adapter with has_basis=False)
    num_basis = 0 and no basis. The MLP family keeps only model.layers."""
    a = adapter(name)
    G, k, widths = 4, 3, [3, 5, 2]  # k = 3: inkan is cubic only
    model = a.build(widths, grid_size=G, spline_order=k)
    assert isinstance(model.layers, torch.nn.ModuleList), f"{name}: model.layers must be an nn.ModuleList"
    if a.family == "mlp":
        return
    assert len(model.layers) == len(widths) - 1, f"{name}: one layer per pair of widths"
    x = torch.rand(7, widths[0]) * 2 - 1
    for n, (layer, i) in enumerate(zip(model.layers, widths)):
        where = f"{name}: layers[{n}] ({type(layer).__name__})"
        i = x.shape[-1] if n else i  # an iso-parameter model (wavkan, grkan) scales its hidden widths
        assert layer.in_features == i, f"{where}.in_features = {getattr(layer, 'in_features', None)!r}, want {i}"
        if not a.has_basis:
            assert layer.num_basis == 0, f"{where}.num_basis must be 0: {name} declares no basis (has_basis=False)"
            assert not callable(getattr(layer, "basis", None)), f"{where} has a basis(), but {name} declares none"
        else:
            assert layer.num_basis == G + k, f"{where}.num_basis must be G + k = {G + k} (the fairness rule)"
        with torch.no_grad():
            if a.has_basis:
                B = layer.basis(x)
                assert isinstance(B, torch.Tensor) and B.shape == (7, i, G + k), f"{where}.basis: {tuple(B.shape)}"
            x = layer(x)


@pytest.mark.parametrize("name", NAMES)
def test_batch_and_sequence_input(name):
    model = adapter(name).build([3, 4, 2], grid_size=3, spline_order=3)
    x = torch.rand(2, 5, 3) * 2 - 1
    y = model(x)
    assert y.shape == (2, 5, 2)
    torch.testing.assert_close(y, model(x.reshape(10, 3)).reshape(2, 5, 2))
    y.sum().backward()


def test_published_defaults():
    """The defaults docs/methodology.md states (rswaf's are in test_rswaf, pykan's in test_pykan_crosscheck)."""
    bs = implementations.get("bspline").build([3, 2]).layers[0]
    assert (bs.grid_size, bs.spline_order, bs.num_basis) == (5, 3, 8)
    torch.testing.assert_close(bs.knots, torch.tensor([-1 + (j - 3) * 0.4 for j in range(12)]))
    fk = implementations.get("fastkan").build([3, 2]).layers[0]
    torch.testing.assert_close(fk.centres, torch.linspace(-2, 2, 8))
    assert fk.h == pytest.approx(4 / 7)
    assert isinstance(fk.layernorm, torch.nn.LayerNorm) and fk.layernorm.normalized_shape == (3,)
    assert isinstance(fk.base, torch.nn.Linear) and fk.base.bias is not None
    assert fk.spline_weight.shape == (2, 3 * 8)
    assert implementations.get("fastkan-noln").build([3, 2]).layers[0].layernorm is None


def test_mlp_layers_are_linear():
    model = implementations.get("mlp").build([3, 4, 2])
    assert isinstance(model, MLP) and [type(m) for m in model.layers] == [torch.nn.Linear, torch.nn.Linear]


# --- parameter counts ---

WIDTHS = [[1, 1], [3, 4, 2], [5, 2, 3]]


@pytest.mark.parametrize(
    ("name", "options"), [c for c in OPTION_CASES if c[0] != "mlp-iso"], ids=lambda v: str(v) if v else "defaults"
)
@pytest.mark.parametrize("widths", WIDTHS, ids=str)
def test_param_count_equals_built_module(name, options, widths):
    a = adapter(name)
    for G in (1, 2, 5):
        for k in (1, 3):
            model = a.build(widths, grid_size=G, spline_order=k, **options)
            assert a.param_count(widths, G, k, **options) == trainable(model), (widths, G, k)


def test_param_count_formulas():
    """The published counts: efficient-kan and FastKAN [784, 64, 10] (REFERENCES.md), G + k + 2 per edge."""
    assert implementations.get("bspline").param_count([784, 64, 10]) == 508_160
    assert implementations.get("fastkan").param_count([784, 64, 10]) == 459_114
    assert implementations.get("bspline").param_count([3, 4], 5, 3) == 3 * 4 * (5 + 3 + 2)
    assert implementations.get("pykan").param_count([3, 4], 5, 3) == 3 * 4 * (5 + 3 + 2) + 3 * 4 * 4


@pytest.mark.parametrize("widths", [[64, 32, 10], [20, 5], [8, 16, 4], [100, 100]], ids=str)
def test_mlp_iso_matches_bspline_within_2_percent(widths):
    iso = implementations.get("mlp-iso")
    for G, k in ((5, 3), (3, 1), (8, 2)):
        target = implementations.get("bspline").param_count(widths, G, k)
        model = iso.build(widths, G, k)
        count = iso.param_count(widths, G, k)
        assert count == trainable(model)
        assert abs(count - target) / target <= 0.02, (widths, G, k, count, target)
        if len(widths) == 2:
            assert len(model.layers) == 2, "a 2-entry width list gets one hidden layer to scale"
        else:
            assert len(model.layers) == len(widths) - 1
        assert model.widths[0] == widths[0] and model.widths[-1] == widths[-1]


def test_mlp_match_params():
    mlp = implementations.get("mlp")
    for target in (30_000, 123_456, 508_160):
        model = mlp.build([784, 64, 10], match_params=target)
        assert mlp.param_count([784, 64, 10], match_params=target) == trainable(model)
        assert abs(trainable(model) - target) / target <= 0.02
    target = implementations.get("fastkan").param_count([784, 64, 10])
    model = mlp.build([784, 64, 10], iso_to="fastkan")
    assert abs(trainable(model) - target) / target <= 0.02


def test_mlp_iso_infeasible_says_so():
    with pytest.raises(ValueError, match=r"within 2%.*closest is \[5, \d+, 3\]"):
        implementations.get("mlp-iso").build([5, 2, 3], 1, 1)


def test_mlp_unknown_option():
    with pytest.raises(TypeError, match="unknown options.*allowed: match_params, iso_to"):
        implementations.get("mlp").build([3, 2], use_base=False)


# --- FLOPs ---


@pytest.mark.parametrize(("name", "options"), OPTION_CASES, ids=str)
@pytest.mark.parametrize("shape", [(8,), (2, 3)], ids=["batch", "batch-seq"])
def test_matmul_flops_equal_flop_counter(name, options, shape):
    a = adapter(name)
    widths = [20, 30, 5] if name == "mlp-iso" else [6, 7, 3]
    model = a.build(widths, grid_size=4, spline_order=2, **options)
    batch = 1
    for n in shape:
        batch *= n
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.rand(*shape, widths[0]) * 2 - 1)
    breakdown = a.flop_breakdown(widths, 4, 2, batch, **options)
    assert breakdown["matmul"] == counter.get_total_flops()
    assert breakdown["elementwise"] > 0
    assert a.flops(widths, 4, 2, batch, **options) == breakdown["matmul"] + breakdown["elementwise"]


@pytest.mark.parametrize(("name", "options"), OPTION_CASES, ids=str)
@pytest.mark.parametrize("shape", [(8,), (2, 3)], ids=["batch", "batch-seq"])
def test_backward_and_train_step_matmul_flops_equal_flop_counter(name, options, shape):
    """The phases as the harness runs them (kanbench.measure.phases): the model input needs no gradient."""
    from kanbench.measure import phases, timing

    a = adapter(name)
    widths = [20, 30, 5] if name == "mlp-iso" else [6, 7, 3]
    model = a.build(widths, grid_size=4, spline_order=2, **options)
    x = torch.rand(*shape, widths[0]) * 2 - 1
    target = torch.randn(*shape, widths[-1])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    w = phases.Workload(model, x, target, torch.randn_like(target), optimizer, lambda: None, timing.make_clock("wall"))
    batch = x.numel() // widths[0]
    breakdown = a.flop_breakdown(widths, 4, 2, batch, **options)

    def counted(call) -> int:
        counter = FlopCounterMode(display=False)
        with counter:
            call()
        return counter.get_total_flops()

    assert phases.measure_once("backward", w, counted) == breakdown["matmul_backward"]
    assert phases.measure_once("train_step", w, counted) == breakdown["matmul"] + breakdown["matmul_backward"]


# --- bad input ---


@pytest.mark.parametrize("name", NAMES)
def test_wrong_last_dimension(name):
    model = adapter(name).build([3, 4, 2], grid_size=3, spline_order=3)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\).*\(2, 5\).*5 != 3"):
        model(torch.rand(2, 5))
    with pytest.raises(ValueError, match="3"):
        model(torch.tensor(1.0))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_integer_and_bool_input(name, dtype):
    model = adapter(name).build([3, 4, 2], grid_size=3, spline_order=3)
    with pytest.raises(TypeError, match=f"floating-point.*{dtype}"):
        model(torch.ones(2, 3, dtype=dtype))


@pytest.mark.parametrize("name", KANS)
def test_layers_check_their_own_input(name):
    layer = adapter(name).build([3, 4, 2], grid_size=3, spline_order=3).layers[1]
    i = layer.in_features  # 4, or the hidden width an iso-parameter model (wavkan, grkan) scaled it to
    with pytest.raises(ValueError, match=rf"\(\.\.\., {i}\).*3 != {i}"):
        layer(torch.rand(2, 3))
    with pytest.raises(TypeError):
        layer(torch.ones(2, i, dtype=torch.int64))


BAD_BUILDS = [
    ({"widths": [3, 2], "grid_size": 0}, "grid_size must be an int >= 1, got 0"),
    ({"widths": [3, 2], "grid_size": -2}, "grid_size must be an int >= 1, got -2"),
    ({"widths": [3, 2], "spline_order": 0}, "spline_order must be an int >= 1, got 0"),
    ({"widths": [3, 2], "grid_size": 2.5}, "grid_size must be an int >= 1, got 2.5"),
    ({"widths": [3]}, r"at least 2 entries.*\[3\]"),
    ({"widths": []}, r"at least 2 entries"),
    ({"widths": [3, 0, 2]}, r"widths\[1\] must be a positive int, got 0"),
    ({"widths": [3, -4]}, r"widths\[1\] must be a positive int, got -4"),
    ({"widths": [3, 2.0]}, r"widths\[1\] must be a positive int, got 2.0"),
    ({"widths": "32"}, "widths must be a list of positive ints"),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("kwargs", "message"), BAD_BUILDS, ids=[str(k) for k, _ in BAD_BUILDS])
def test_bad_build_arguments(name, kwargs, message):
    a = adapter(name)
    with pytest.raises(ValueError, match=message):
        a.build(**{"grid_size": 3, "spline_order": 3, **kwargs})


def test_unknown_name():
    with pytest.raises(KeyError) as info:
        implementations.get("effkan")
    known = ", ".join(NAMES)
    assert info.value.args[0] == f"unknown implementation 'effkan'; known: {known} (or 'module.path:factory')"


# --- no files ---

NO_FILES_SCRIPT = """
import torch, implementations
for name in implementations.names():
    a = implementations.get(name)
    if not a.available()[0]:
        continue
    model = a.build([3, 4, 2])  # defaults: every implementation, entry points included, supports G=5, k=3
    model(torch.rand(5, 3) * 2 - 1).sum().backward()
    print(name)
"""


def test_no_implementation_writes_files(tmp_path):
    """Import, build, forward and backward everything in a fresh interpreter whose working directory is empty."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", NO_FILES_SCRIPT], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    built = done.stdout.split()
    assert built == [name for name in NAMES if implementations.get(name).available()[0]]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# --- every registered implementation, entry points included, at the defaults G=5, k=3 ---


@pytest.mark.parametrize("name", implementations.names())
def test_registered_implementation_keeps_the_contract(name):
    """The contract checks that need no knowledge of a layer's internals, for third-party adapters too."""
    a = adapter(name)
    widths = [20, 30, 5] if name == "mlp-iso" else [6, 7, 3]
    model = a.build(widths)
    assert a.param_count(widths) == trainable(model)
    x = torch.rand(2, 3, widths[0]) * 2 - 1
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        y = model(x)
    assert y.shape == (2, 3, widths[-1]) and y.dtype == torch.float32
    assert a.flop_breakdown(widths, batch=6)["matmul"] == counter.get_total_flops()
    if a.has_basis:
        assert [layer.basis(x[0, :, : layer.in_features]).shape[-2:] for layer in model.layers[:1]] == [(widths[0], 8)]
    with pytest.raises(ValueError, match=f"{widths[0]}"):
        model(torch.rand(2, widths[0] + 1))
    with pytest.raises(TypeError):
        model(torch.ones(2, widths[0], dtype=torch.int64))
    with pytest.raises(ValueError, match="grid_size"):
        a.build(widths, grid_size=0)


def test_an_adapter_without_backward_matmuls_takes_the_flop_counters_count():
    from kanbench.run.speed import phase_flops

    given = {"matmul": 100, "elementwise": 10, "matmul_backward": 60}
    bare = {"matmul": 100, "elementwise": 10}
    assert phase_flops(bare, "backward", 5, counted=60) == phase_flops(given, "backward", 5) == 80
    assert phase_flops(bare, "train_step", 5, counted=160) == phase_flops(given, "train_step", 5) == 110 + 80 + 60
    assert phase_flops(given, "backward", 5, counted=999) == 80  # the adapter's exact count comes first
    assert phase_flops(bare, "backward", 5) is None
