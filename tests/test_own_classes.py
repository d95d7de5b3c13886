"""Any class in one line: "module:Class" (a model on the widths list, or a layer stacked per pair of widths)."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from conftest import kanbench, write_suite

import implementations
from implementations import wrap
from kanbench.errors import UsageError
from kanbench.measure import checks
from kanbench.results import record
from kanbench.suite import parse


@pytest.fixture
def own(monkeypatch):
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parent))
    yield "own_classes"
    sys.modules.pop("own_classes", None)


@pytest.mark.parametrize("cls, kind", [("TinyKAN", "model"), ("RBFLayer", "layer"), ("ChebyLayer", "layer")])
def test_a_class_is_an_adapter_with_params_counted_on_the_built_model(own, cls, kind):
    adapter = implementations.get(f"{own}:{cls}")
    assert adapter.name == f"{own}:{cls}" and adapter.family == "custom" and kind in adapter.description
    model = adapter.build([6, 5, 3], 3, 2)
    assert len(model.layers) == 2
    assert model(torch.rand(4, 6)).shape == (4, 3)
    assert adapter.param_count([6, 5, 3], 3, 2) == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert implementations.get(f"{own}:{cls}") is adapter  # counted once per shape, kept with the adapter


def test_g_and_k_are_passed_where_the_signature_takes_them(own):
    rbf = implementations.get(f"{own}:RBFLayer")
    assert rbf.build([6, 5], 4, 2).layers[0].centres.numel() == 6  # G + k bases
    assert rbf.record_notes() == {"flops_source": "counted", "ignored_axes": []}
    cheby = implementations.get(f"{own}:ChebyLayer")
    assert cheby.record_notes(degree=6) == {"flops_source": "counted", "ignored_axes": ["grid_size", "spline_order"]}
    assert cheby.build([6, 5], 4, 2, degree=6).layers[0].degree == 6  # [options] reach the constructor
    # an option that sets G itself means the axis is not what the model got
    assert rbf.record_notes(grid_size=9)["ignored_axes"] == ["grid_size"]


def test_flops_are_counted_exactly(own):
    breakdown = implementations.get(f"{own}:RBFLayer").flop_breakdown([6, 5, 3], 5, 3, batch=4)
    # forward: [4, 6*8] @ [48, 5] and [4, 5*8] @ [40, 3]; backward: both weight gradients, layer 2's input gradient
    assert breakdown == {"matmul": 2 * 4 * 48 * 5 + 2 * 4 * 40 * 3, "elementwise": 0,
                         "matmul_backward": 2 * 4 * 48 * 5 + 2 * (2 * 4 * 40 * 3)}  # fmt: skip


def test_flops_without_a_matmul_are_unknown_not_zero(own):
    adapter = implementations.get(f"{own}:SumLayer")
    with pytest.raises(ValueError, match="counted no matmul-like operation.*unknown"):
        adapter.flop_breakdown([6, 5, 3], 5, 3, batch=4)


def test_flops_fall_back_to_the_cpu_where_meta_cannot_run(own, monkeypatch):
    adapter = implementations.get(f"{own}:ChebyLayer")
    on_meta = adapter.flop_breakdown([6, 5, 3], 5, 3, batch=16)
    real = torch.device

    class NoMeta:  # torch.device("meta") fails as a context: the CPU at batches 1 and 2, extrapolated
        def __new__(cls, *args):
            if args == ("meta",):
                raise RuntimeError("no meta here")
            return real(*args)

    monkeypatch.setattr(torch, "device", NoMeta)
    fresh = wrap.wrap(sys.modules[own].ChebyLayer, "fresh:ChebyLayer")
    assert fresh.flop_breakdown([6, 5, 3], 5, 3, batch=16) == on_meta


def test_a_wrong_backward_is_refused_naming_the_class(own):
    assert checks.check_once(f"{own}:RBFLayer", {}) is None
    why = checks.check_once(f"{own}:WrongBackward", {})
    assert why is not None
    assert why.startswith(f"correctness check of {own}:WrongBackward failed before timing")
    assert "gradcheck failed" in why


@pytest.mark.parametrize(
    "name, message",
    [
        ("NOT_A_CLASS", "got 42; or a model class taking the widths list"),
        ("Missing", "cannot load implementation 'own_classes:Missing'"),
    ],
)
def test_errors_name_the_string_and_what_is_expected(own, name, message):
    with pytest.raises((KeyError, TypeError)) as info:
        implementations.get(f"{own}:{name}")
    assert message in str(info.value)
    assert f"{own}:" in str(info.value)


def test_a_required_parameter_must_come_from_the_options(own):
    adapter = implementations.get(f"{own}:NeedsThree")
    with pytest.raises(wrap.WrapError, match=r"also requires c, which has no default: give it in the suite's "
                       r"\[options.\"own_classes:NeedsThree\"\] \(c = ...\)"):  # fmt: skip
        adapter.build([2, 2])
    assert len(adapter.build([2, 3, 2], c=1).layers) == 2


def test_a_class_from_main_says_to_put_it_in_a_module():
    class Mine(torch.nn.Module):
        def __init__(self, in_features: int, out_features: int) -> None:
            super().__init__()

    Mine.__module__ = "__main__"
    with pytest.raises(wrap.WrapError, match="cannot import __main__.*put the class in a module.*'my_kan:"):
        wrap.wrap(Mine, "__main__:Mine")


def test_a_suite_names_a_bad_class_before_anything_runs(own):
    axes = "[axes]\nwidths = [[2, 2]]\ngrid_size = [3]\nbatch_size = [4]\n"
    text = '[suite]\nname = "x"\nimplementations = ["own_classes:NOT_A_CLASS"]\n' + axes
    with pytest.raises(UsageError, match=r"\[suite\]\.implementations\[0\].*NOT_A_CLASS must be"):
        parse(text, "x.toml")
    text = text.replace("NOT_A_CLASS", "NeedsThree")
    with pytest.raises(UsageError, match=r"x.toml: \[options.own_classes:NeedsThree\].*also requires c"):
        checks.check_suite_options(parse(text, "x.toml"))


def test_records_accept_the_notes():
    assert record.metrics_problem("forward", {"flops_source": "counted", "ignored_axes": ["grid_size"]}) is None
    assert "ignored_axes" in (record.metrics_problem("forward", {"ignored_axes": "grid_size"}) or "")


SUITE = """
[suite]
name = "own"
implementations = ["own_classes:ChebyLayer", "own_classes:WrongBackward"]
phases = ["forward", "train_step"]

[axes]
widths = [[6, 5, 3]]
grid_size = [3]
batch_size = [4]
device = ["cpu"]

[options."own_classes:ChebyLayer"]
degree = 6

[timing]
warmup = 1
min_time = 0.0005
values = 2
processes = 1
threads = 1
"""


def test_a_suite_runs_classes_with_no_adapter_written(tmp_path):
    """End to end: workers import the class by its string; records carry counted FLOPs and the ignored axes."""
    tests = __import__("pathlib").Path(__file__).parent
    suite = write_suite(tmp_path, SUITE)
    done = kanbench("run", str(suite), "--out", str(tmp_path / "run"), cwd=tests)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    by = {(r["impl"], r["phase"]): r for r in records}
    cheby = by[("own_classes:ChebyLayer", "forward")]
    assert cheby["status"] == "ok" and cheby["params"] == (6 * 5 + 5 * 3) * 7
    assert cheby["flops"] == cheby["metrics"]["flops_counted_matmul"] == 2 * 4 * (6 * 5 + 5 * 3) * 7
    assert cheby["metrics"]["flops_source"] == "counted"
    assert cheby["metrics"]["ignored_axes"] == ["grid_size", "spline_order"]
    wrong = by[("own_classes:WrongBackward", "forward")]
    assert wrong["status"] == "error" and wrong["time_s"] is None
    assert "correctness check of own_classes:WrongBackward failed before timing" in wrong["reason"]
