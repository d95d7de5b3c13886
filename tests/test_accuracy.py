"""Accuracy suites: validation, per-sample metrics, divergence, aggregation, and a digits run end to end."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import kanbench
from torch import nn

from kanbench import results
from kanbench.errors import UsageError
from kanbench.measure import training
from kanbench.results import seeds
from kanbench.run import accuracy
from kanbench.suite import parse, shard

DIGITS_SUITE = """
[suite]
name = "digits-tiny"
kind = "accuracy"
implementations = ["fastkan", "mlp"]

[axes]
dataset = ["digits"]
grid_size = [3]

[training]
epochs = 1
batch_size = 64
lr = 1e-2

[timing]
threads = 1

[datasets.digits]
widths = [[64, 16, 10]]
"""

SCHEMA_METRICS = {"dataset", "seed", "metric", "final_test", "best_val", "test_at_best_val", "diverged", "epochs",
                  "train_time_s", "curve"}  # fmt: skip


def suite_text(**replace: str) -> str:
    """DIGITS_SUITE with whole lines replaced: {"old line": "new lines"}."""
    text = DIGITS_SUITE
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def plan_of(text: str, **kwargs) -> accuracy.Plan:
    return accuracy.plan(parse(text, "s.toml"), **kwargs)


# ---- per-sample metrics -----------------------------------------------------------------------------------------


class Lookup(nn.Module):
    """Returns its input: the test writes the logits (or predictions) it wants as x."""

    def forward(self, x):
        return x


def test_accuracy_counts_samples_not_batches_with_a_partial_last_batch():
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    predicted = labels.clone()
    predicted[4:8] = (labels[4:8] + 1) % 10  # batch 2 of [4, 4, 2]: all wrong; batches 1 and 3: all right
    logits = nn.functional.one_hot(predicted, 10).float()
    acc = training.evaluate(Lookup(), logits, labels, "classification", batch_size=4)
    assert acc == 6 / 10  # the mean of batch means would be (1 + 0 + 1) / 3
    logits[9] = float("nan")  # a non-finite output is wrong, whatever argmax makes of it
    assert training.evaluate(Lookup(), logits, labels, "classification", batch_size=4) == 5 / 10


def test_rmse_is_over_all_samples_with_a_partial_last_batch():
    target = torch.zeros(5, 1)
    prediction = torch.tensor([[1.0], [1.0], [1.0], [1.0], [3.0]])  # batches of 4 and 1
    rmse = training.evaluate(Lookup(), prediction, target, "regression", batch_size=4)
    assert rmse == pytest.approx(math.sqrt((4 * 1 + 9) / 5), rel=1e-12)


def test_training_loss_is_a_per_sample_mean_over_the_epoch():
    # lr = 0 keeps the model fixed, so the epoch loss must equal the full-batch loss despite a partial last batch.
    request = run_request("mlp", "digits", [64, 4, 10], {"lr": 1e-30, "epochs": 1, "batch_size": 500})
    request["recipe"]["subset"] = 1077  # 500 + 500 + 77
    result = training.train(request)
    torch.manual_seed(0)
    model = training.build_model("mlp", [64, 4, 10], 5, 3, {}, 0)
    from kanbench.measure import datasets

    d = datasets.load_digits()
    full = training.loss_of(model(torch.from_numpy(d.train.x)), torch.from_numpy(d.train.y), "classification")
    assert result["metrics"]["curve"]["train_loss"][0] == pytest.approx(float(full.detach()), rel=1e-5)


def run_request(impl: str, dataset: str, widths: list[int], recipe: dict, seed: int = 0) -> dict:
    base = {**accuracy.RECIPE_DEFAULTS, **recipe}
    spec = {"name": dataset, "normalize": None, "n_train": 64, "n_val": 32, "n_test": 32, "data_seed": 0}
    cell = {"impl": impl, "widths": widths, "grid_size": 5, "spline_order": 3, "device": "cpu", "dtype": "float32",
            "seed": seed, "options": {}}  # fmt: skip
    return {"cell": cell, "recipe": base, "dataset": spec}


def test_a_diverging_run_is_recorded_as_diverged():
    request = run_request("mlp", "f_xy", [2, 8, 1], {"optimizer": "sgd", "momentum": 0.0, "lr": 1e12, "epochs": 5})
    result = training.train(request)
    m = result["metrics"]
    assert result["status"] == "ok" and m["diverged"] is True
    assert m["epochs"] < 5 and not math.isfinite(m["curve"]["train_loss"][-1])
    assert set(m) == SCHEMA_METRICS


def test_a_run_over_its_time_budget_is_skipped_before_it_trains_long():
    request = run_request("bspline", "f_xy", [2, 4, 1], {"epochs": 1000, "batch_size": 1, "max_run_s": 0.01})
    result = training.train(request)
    assert result["status"] == "skipped" and "exceeds [training].max_run_s = 0.01 s" in result["reason"]


def test_seeds_change_the_initialisation_also_for_pykan():
    pytest.importorskip("kan")
    a, b, c = (training.build_model("pykan", [2, 3, 1], 3, 3, {}, s) for s in (0, 0, 1))
    wa, wb, wc = (torch.cat([p.detach().flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.allclose(wa, wb, atol=1e-6) and not torch.allclose(wa, wc, atol=1e-3)  # pykan's lstsq: ~1e-8 noise


# ---- validation -------------------------------------------------------------------------------------------------


def test_plan_lists_every_implementation_and_seed_with_distinct_hashes():
    p = plan_of(DIGITS_SUITE)
    assert [(c.impl, c.seed) for c in p.cells] == [("fastkan", s) for s in (0, 1, 2)] + [("mlp", s) for s in (0, 1, 2)]
    assert len({c.config_hash for c in p.cells}) == 6
    renamed = plan_of(DIGITS_SUITE.replace('name = "digits-tiny"', 'name = "other"'))
    assert [c.config_hash for c in renamed.cells] == [c.config_hash for c in p.cells]  # suite name excluded
    smoke = plan_of(DIGITS_SUITE, smoke=True)
    assert dict(smoke.cells[0].recipe)["subset"] == accuracy.SMOKE_SUBSET
    assert smoke.cells[0].config_hash != p.cells[0].config_hash


def test_shards_partition_the_runs_by_seed_group():
    cells = plan_of(DIGITS_SUITE).cells
    one, two = shard(cells, "1/2"), shard(cells, "2/2")
    assert sorted(c.config_hash for c in one + two) == sorted(c.config_hash for c in cells)
    assert {c.seed for c in one}.isdisjoint({c.seed for c in two})


BAD = [
    ({"[datasets.digits]": "[datasets.cifar]"}, r"\[datasets.cifar\]: unknown dataset; known: mnist, digits"),
    ({'dataset = ["digits"]': 'dataset = ["f_xy"]'}, r"\[axes\].dataset\[0\]: 'f_xy' has no \[datasets.f_xy\]"),
    ({"epochs = 1": 'epochs = 1\noptimizer = "rmsprop"'}, r"\[training\].optimizer: 'rmsprop' is not allowed"),
    ({"epochs = 1": 'epochs = 1\nschedule = "exponential"'}, r"\[training\].gamma: is required"),
    ({"widths = [[64, 16, 10]]": 'widths = [[64, 16, 10]]\nschedule = "exponential"'}, r"digits\]\.gamma: is required"),
    (
        {"widths = [[64, 16, 10]]": 'widths = [[64, 16, 10]]\noptimizer = "lbfgs"\nweight_decay = 0.1'},
        "no weight decay",
    ),
    ({"epochs = 1": "epochs = 1\ngamma = 0.8"}, r'gamma: applies only to schedule = "exponential"'),
    ({"epochs = 1": "epochs = 1\nmomentum = 0.9"}, r'momentum: applies only to optimizer = "sgd"'),
    ({"epochs = 1": "epochs = 0"}, r"\[training\].epochs: must be >= 1"),
    ({"lr = 1e-2": "lr = -1"}, r"\[training\].lr: must be > 0"),
    ({"epochs = 1": "epochs = 1\ngpu_workers = 0"}, r"\[training\].gpu_workers: must be >= 1"),
    ({"epochs = 1": "epochs = 1\nbogus = 1"}, r"\[training\].bogus: unknown key"),
    ({"widths = [[64, 16, 10]]": "widths = [[784, 8, 10]]"}, r"digits has 64 inputs and 10 outputs"),
    ({"widths = [[64, 16, 10]]": "widths = [[64, 8, 1]]"}, r"must start with 64 and end with 10"),
    (
        {"widths = [[64, 16, 10]]": "widths = [[64, 16, 10]]\nnormalize = [0.5, 0]"},
        r"\[datasets.digits\].normalize\[1\]: must be > 0",
    ),
    (
        {"widths = [[64, 16, 10]]": "widths = [[64, 16, 10]]\nn_train = 5"},
        r"n_train: only the generated function tasks",
    ),
    ({"widths = [[64, 16, 10]]": 'widths = [[64, 16, 10]]\ndata_dir = "x"'}, r"data_dir: only mnist reads files"),
    ({"widths = [[64, 16, 10]]": 'widths = [[64, 16, 10]]\nimplementations = ["bspline"]'}, r"not in \[suite\]"),
    ({"grid_size = [3]": "grid_size = [3]\nwidths = [[64, 10]]"}, r"\[axes\].widths: accuracy suites set this"),
    ({"grid_size = [3]": 'grid_size = [3]\ndtype = ["float16"]'}, r"\[axes\].dtype\[0\]: 'float16' is not allowed"),
    ({"threads = 1": "threads = 1\nvalues = 3"}, r"\[timing\].values: does not apply to accuracy suites"),
    ({"widths = [[64, 16, 10]]": 'widths = [[64, 16, 10]]\nvalidate_on = "train"'}, r"validate_on: 'train' is not"),
    ({"[datasets.digits]\nwidths = [[64, 16, 10]]": ""}, r"\[datasets\]: needs at least one"),
]


@pytest.mark.parametrize("replace,message", BAD, ids=[m for _, m in BAD])
def test_bad_accuracy_suites_are_usage_errors(replace, message):
    with pytest.raises(UsageError, match=message) as info:
        plan_of(suite_text(**replace))
    assert str(info.value).startswith("s.toml: ")


def test_processes_is_checked_as_the_training_workers_it_overrides():
    assert plan_of(DIGITS_SUITE, flags={"processes": 3, "values": None}).workers == 3
    with pytest.raises(UsageError, match=r"^s.toml: \[training\].workers: must be <= 64, got 100$"):
        plan_of(suite_text(**{"lr = 1e-2": "lr = 1e-2\nworkers = 100"}))
    with pytest.raises(UsageError, match=r"^--processes: must be <= 64, got 100$"):
        plan_of(DIGITS_SUITE, flags={"processes": 100})
    with pytest.raises(UsageError, match=r"^--min-time: applies to speed suites only"):
        plan_of(DIGITS_SUITE, flags={"min_time": 0.1})


def test_tables_of_datasets_not_run_are_checked_too():
    unused = DIGITS_SUITE + '\n[datasets.f_xy]\nwidths = [[2, 3, 1]]\noptimizer = "adagrad"\n'
    with pytest.raises(UsageError, match=r"\[datasets.f_xy\].optimizer: 'adagrad' is not allowed"):
        plan_of(unused)
    assert {c.dataset for c in plan_of(unused.replace('"adagrad"', '"adam"')).cells} == {"digits"}


def test_validate_on_is_part_of_the_hash_only_when_set():
    plain = plan_of(DIGITS_SUITE).cells[0]
    assert "validate_on" not in dict(plain.data)  # hashes of suites without it never change
    merged = plan_of(suite_text(**{"widths = [[64, 16, 10]]": 'widths = [[64, 16, 10]]\nvalidate_on = "test"'}))
    assert dict(merged.cells[0].data)["validate_on"] == "test"
    assert merged.cells[0].config_hash != plain.config_hash


def test_dataset_overrides_apply_to_that_dataset_only():
    text = DIGITS_SUITE + '\n[datasets.f_xy]\nwidths = [[2, 3, 1]]\noptimizer = "lbfgs"\nlr = 1.0\nn_train = 50\n'
    p = plan_of(text.replace('dataset = ["digits"]', 'dataset = ["digits", "f_xy"]'))
    by_dataset = {c.dataset: (dict(c.recipe), dict(c.data)) for c in p.cells}
    assert by_dataset["digits"][0]["optimizer"] == "adamw" and by_dataset["f_xy"][0]["optimizer"] == "lbfgs"
    assert by_dataset["f_xy"][1]["n_train"] == 50 and by_dataset["f_xy"][0]["epochs"] == 1


# ---- aggregation ------------------------------------------------------------------------------------------------


def test_aggregate_gives_mean_and_sample_std_over_seeds_and_counts_divergence():
    rows = []
    for impl, values, diverged in (("fastkan", [0.9, 0.92, 0.94], [False] * 3), ("mlp", [0.5, np.nan], [False, True])):
        for seed, (v, d) in enumerate(zip(values, diverged)):
            rows.append({
                "phase": "accuracy", "status": "ok", "impl": impl, "widths": [64, 8, 10], "grid_size": 3,
                "spline_order": 3, "device": "cpu", "dtype": "float32", "params": 10, "metric_dataset": "digits",
                "metric_metric": "test_accuracy", "metric_final_test": v, "metric_best_val": v,
                "metric_test_at_best_val": v, "metric_diverged": d, "metric_epochs": 2, "metric_train_time_s": 4.0,
                "metric_seed": seed,
            })  # fmt: skip
    rows.append({**rows[0], "status": "error", "metric_final_test": 0.0})
    agg = accuracy.aggregate(pd.DataFrame(rows)).set_index("impl")
    assert agg.loc["fastkan", "seeds"] == 3 and agg.loc["fastkan", "final_test_mean"] == pytest.approx(0.92)
    assert agg.loc["fastkan", "final_test_std"] == pytest.approx(0.02)
    assert agg.loc["mlp", "seeds"] == 2 and agg.loc["mlp", "diverged"] == 1
    assert agg.loc["mlp", "final_test_mean"] == 0.5 and math.isnan(agg.loc["mlp", "final_test_std"])
    assert agg.loc["fastkan", "epoch_time_s_mean"] == 2.0
    assert "fastkan" in accuracy.format_table(agg.reset_index())


def test_the_statistics_over_seeds_use_the_finite_values_and_need_two_for_a_spread():
    over = seeds.spread([0.9, math.nan, None, math.inf, "0.5", np.float32(0.92), 0.94])
    assert over.n == 3 and over.mean == pytest.approx(0.92) and over.std == pytest.approx(0.02) == over.bar
    one = seeds.spread([0.5])
    assert one.mean == 0.5 and math.isnan(one.std) and one.bar == 0.0  # a sample std needs two seeds
    none = seeds.spread([math.nan])
    assert none.n == 0 and math.isnan(none.mean) and math.isnan(none.std)
    assert seeds.text(0.97, 0.001, "test_accuracy") == "97 ± 0.1 %" and seeds.text(0.5, math.nan, "test_rmse") == "0.5"
    assert seeds.text(math.nan, math.nan, "test_accuracy") == "n/a"


def test_the_terminal_summary_and_the_report_read_the_same_models():
    """kanbench.results.seeds groups and summarizes for both; the report groups by (dataset, impl, widths) alone."""
    from kanbench.report import _accuracy_table

    rows = [{
        "phase": "accuracy", "status": "ok", "impl": "fastkan", "widths": [2, 5, 1], "widths_label": "2x5x1",
        "grid_size": 3, "spline_order": 3, "device": "cpu", "dtype": "float32", "params": 10,
        "metric_dataset": "f_xy", "metric_metric": "test_rmse", "metric_final_test": v, "metric_best_val": v,
        "metric_test_at_best_val": v, "metric_diverged": v != v, "metric_epochs": 3, "metric_train_time_s": 1.5,
        "metric_seed": seed,
    } for seed, v in enumerate([0.01, 0.03, math.nan])]  # fmt: skip
    frame = pd.DataFrame(rows)
    ((key, records),) = seeds.models(frame, ("metric_dataset", "impl", "widths_label"))
    final = seeds.over(records, "final_test")
    assert key == ("f_xy", "fastkan", "2x5x1") and len(records) == 3 and final.n == 2
    assert seeds.metric_of(records) == "test_rmse" and seeds.models(frame[frame["status"] == "error"], ["impl"]) == []
    agg = accuracy.aggregate(frame).iloc[0]
    assert (agg["final_test_mean"], agg["final_test_std"], agg["seeds"]) == (final.mean, final.std, 3)
    assert agg["diverged"] == 1 and agg["epoch_time_s_mean"] == 0.5
    (row,) = _accuracy_table(frame)
    assert row == ("f_xy", "fastkan", "2x5x1", "test_rmse", "0.02 ± 0.014", "0.01", 2, "3", "1.5 s")


# ---- end to end -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    suite = tmp_path_factory.mktemp("suite") / "digits.toml"
    suite.write_text(DIGITS_SUITE)
    out = tmp_path_factory.mktemp("runs") / "digits"
    proc = kanbench("run", str(suite), "--out", str(out))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return suite, out, proc


def test_a_one_epoch_digits_run_writes_schema_records(digits_run):
    suite, out, proc = digits_run
    records = results.read_records(out)
    assert sorted((r.impl, r.metrics["seed"]) for r in records) == [
        (i, s) for i in ("fastkan", "mlp") for s in range(3)
    ]
    for r in records:
        assert r.status == "ok" and r.phase == "accuracy" and r.time_s is None, r.reason
        m = r.metrics
        assert set(m) == SCHEMA_METRICS and m["dataset"] == "digits" and m["metric"] == "test_accuracy"
        assert m["epochs"] == 1 and not m["diverged"] and 0.3 < m["final_test"] <= 1
        assert set(m["curve"]) == {"epoch", "train_loss", "val", "test", "epoch_time_s"}
        assert m["curve"]["test"] == [m["final_test"]] and m["curve"]["epoch"] == [1]
        assert m["best_val"] == m["curve"]["val"][0] and m["train_time_s"] == sum(m["curve"]["epoch_time_s"])
        assert r.params > 0 and r.batch_size == 64 and r.widths == [64, 16, 10] and r.grid_size == 3
        assert r.options["recipe"]["optimizer"] == "adamw" and r.options["data"]["name"] == "digits"
    assert len({r.config_hash for r in records}) == 6
    assert json.loads((out / "environment.json").read_text())["worker_torch_threads"] == 1
    assert re.search(r"^digits +fastkan ", proc.stdout, re.M) and "done fastkan digits" in proc.stderr
    agg = accuracy.aggregate(results.load(out))
    assert set(agg["impl"]) == {"fastkan", "mlp"} and set(agg["seeds"]) == {3}


def test_resume_of_a_finished_run_trains_nothing(digits_run):
    suite, out, _ = digits_run
    before = (out / "results.jsonl").read_text()
    proc = kanbench("run", str(suite), "--out", str(out), "--resume", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert (out / "results.jsonl").read_text() == before


def test_dry_run_lists_the_runs_and_trains_nothing(tmp_path, capsys):
    from kanbench import cli

    suite = tmp_path / "digits.toml"
    suite.write_text(DIGITS_SUITE)
    assert cli.main(["run", str(suite), "--dry-run", "--out", str(tmp_path / "out")]) == 0
    stdout = capsys.readouterr().out
    assert "6 training runs" in stdout and "fastkan digits 64x16x10 G3 seed 2" in stdout
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "change,message",
    [
        ({"epochs = 1": 'epochs = 1\noptimizer = "adagrad"'}, "[training].optimizer: 'adagrad' is not allowed"),
        ({"[datasets.digits]": "[datasets.imagenet]"}, "[datasets.imagenet]: unknown dataset"),
    ],
)
def test_bad_suites_exit_2_in_process(tmp_path, capsys, change, message):
    from kanbench import cli

    bad = tmp_path / "bad.toml"
    bad.write_text(suite_text(**change))
    assert cli.main(["run", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_corrupt_mnist_file_exits_2_before_training(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for stem in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (data / stem).write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05\x01")  # declares 5 bytes, holds 1
    mnist = tmp_path / "mnist.toml"
    to_mnist = {
        'dataset = ["digits"]': 'dataset = ["mnist"]',
        "[datasets.digits]\nwidths = [[64, 16, 10]]": "[datasets.mnist]\nwidths = [[784, 8, 10]]",
    }
    mnist.write_text(suite_text(**to_mnist))
    proc = kanbench("run", str(mnist), "--out", str(tmp_path / "out"), env={"KANBENCH_DATA": str(data)})
    assert proc.returncode == 2, proc.stderr
    assert "train-images-idx3-ubyte: IDX header declares shape (5,)" in proc.stderr
    assert not (tmp_path / "out").exists()
