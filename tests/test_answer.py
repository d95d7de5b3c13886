"""The report's answer: the configuration rule, ranks per phase with resolved gaps, the B-spline vs FastKAN verdict."""

from __future__ import annotations

import pandas as pd
import pytest

from kanbench.analysis import judge
from kanbench.report import answer
from kanbench.results.noise import Noise


def row(impl, median, spread=0.01, phase="forward", device="cpu", widths="784x64x10", batch=64, processes=None):
    low, high = median * (1 - spread), median * (1 + spread)  # the interquartile range, as data.prepare gives it
    return {"impl": impl, "phase": phase, "status": "ok", "speed": True, "time_median": median, "time_q1": low,
            "time_q3": high, "time_process_medians": processes or [median, median],
            "device": device, "dtype": "float32", "widths_label": widths, "grid_size": 5, "spline_order": 3,
            "batch_size": batch}  # fmt: skip


def test_the_mnist_shape_is_chosen_on_the_gpu_when_there_is_one():
    rows = pd.DataFrame([row("mlp", 1.0, widths="100x100", batch=8), row("fastkan", 2.0, widths="100x100", batch=8),
                         row("mlp", 1.0), row("mlp", 0.5, device="cuda")])  # fmt: skip
    assert answer.choose(rows)["device"] == "cuda" and answer.choose(rows)["widths_label"] == "784x64x10"
    other = pd.DataFrame([row("mlp", 1.0, widths="100x100"), row("fastkan", 2.0, widths="100x100"),
                          row("mlp", 1.0, widths="64x64")])  # fmt: skip
    assert answer.choose(other)["widths_label"] == "100x100"  # no MNIST shape: the most implementations


def test_gaps_are_resolved_only_where_the_interquartile_ranges_are_apart():
    rows = pd.DataFrame([row("mlp", 1.0), row("mlp-iso", 2.0), row("bspline-fast", 3.0, spread=0.2),
                         row("fastkan", 3.3, spread=0.2)])  # fmt: skip
    found = answer.build(rows)
    ranked = found.ranks["forward"]
    assert [r.impl for r in ranked] == ["mlp", "mlp-iso", "bspline-fast", "fastkan"]
    assert [r.resolved for r in ranked] == [True, True, False, None]
    assert ranked[2].vs_iso == 1.5
    assert found.verdict == ["forward: indistinguishable (ratio 0.91) [unpaired]"]
    apart = answer.build(pd.DataFrame([row("bspline-fast", 1.0), row("fastkan", 2.0)]))
    assert apart.verdict == ["forward: bspline-fast 2.00x faster [unpaired]"]


def test_without_bspline_fast_the_verdict_names_the_suite_that_answers_it():
    found = answer.build(pd.DataFrame([row("bspline", 1.0), row("fastkan", 2.0)]))
    assert "suites/fast-bspline.toml" in found.verdict[0]
    assert answer.build(pd.DataFrame([row("mlp", 1.0)]).assign(status="error")) is None


def test_the_answer_says_when_the_data_cannot_rank():
    rows = pd.DataFrame([row("mlp", 0.5), row("fastkan", 1.05, spread=0.3), row("bspline", 1.1, spread=0.3)])
    rows["noisy"] = [False, True, True]
    found = answer.build(rows)
    quiet = {"cpu_count": 2, "run": {"load_avg_start": [0.2, 0.1, 0.1], "load_avg_end": [0.9, 0.5, 0.3]}}
    text = answer.trust(found, [quiet])
    assert text.startswith("1 of 2 gaps resolved (0 judged paired, 2 unpaired); 2 of 3 timings here have an IQR above "
                           "10% of the median.")  # fmt: skip
    assert "cannot rank closely spaced implementations: more than a quarter of its timings are noisy" in text
    assert "busy" not in text and "noise was not measured" in text
    own = {"cpu_count": 2, "worker_torch_threads": 1, "run": {"load_avg_start": [1.3, 1.0, 1.0]}}
    assert "busy" not in answer.trust(found, [own])  # 1.3 on 2 cores: mostly the run's own worker
    busy = {"cpu_count": 2, "run": {"load_avg_start": [2.5, 2.0, 1.0], "load_avg_end": [0.5, 1.0, 1.0]}}
    assert "The machine was busy beside the run (1-minute load 2.5 on 2 cores at the start)." in answer.trust(
        found, [busy]
    )


def test_the_answer_reports_the_measured_machine_noise_and_when_it_is_too_high():
    rows = pd.DataFrame([row("bspline-fast", 1.0), row("fastkan", 1.06), row("mlp", 1.5)])
    calm = answer.build(rows, [Noise("cpu", 10, 5e-4, 0.2, 0.02), Noise("cuda", 4, 1e-5, 0.5, 0.3)])
    assert [n.device for n in calm.noise] == ["cpu"]  # the configuration's device only
    assert [r.resolved for r in calm.ranks["forward"]] == [True, True, None]  # side by side: drift does not reorder
    text = answer.trust(calm, [{}])
    assert "drifted 20% between groups" in text and "cannot rank" not in text
    assert "does not reorder them" in text
    shaky = answer.build(rows, [Noise("cpu", 10, 5e-4, 0.2, 0.15)])
    assert "cannot rank closely spaced implementations: the reference workload's own values scattered by 15%" in (
        answer.trust(shaky, [{}])
    )


def test_a_resolved_gap_that_another_run_orders_the_other_way_is_reported():
    from benchmarks import answer_repeat

    first = answer.build(pd.DataFrame([row("bspline", 1.0), row("fastkan", 2.0), row("mlp", 2.02)]))
    second = answer.build(pd.DataFrame([row("bspline", 2.2, spread=0.2), row("fastkan", 2.0), row("mlp", 2.01)]))
    assert answer_repeat.resolved_pairs(first) == {("forward", "bspline", "fastkan"), ("forward", "bspline", "mlp")}
    found = answer_repeat.contradictions(first, second)
    assert found == ["forward: the first run resolves bspline < fastkan, the other has fastkan faster",
                     "forward: the first run resolves bspline < mlp, the other has mlp faster"]  # fmt: skip
    assert answer_repeat.contradictions(first, first) == []


def test_a_gap_within_the_runs_process_spread_is_not_resolved():
    # each timing's two processes disagreed by 30%: a gap counts only beyond both sides moving by that, 1.3^2 = 1.69
    rows = pd.DataFrame([row("bspline-fast", 1.0, processes=[0.9, 1.17]), row("fastkan", 1.2, processes=[1.1, 1.43]),
                         row("rswaf", 1.9, processes=[1.7, 2.21]), row("mlp", 3.3, processes=[3.0, 3.9])])  # fmt: skip
    found = answer.build(rows)
    assert found.margin == pytest.approx(0.3) and judge.threshold(found.margin) == pytest.approx(1.69)
    # 1.2x within 30%; 1.58x beyond one spread but within two; 1.74x beyond both
    assert [r.resolved for r in found.ranks["forward"]] == [False, False, True, None]
    assert found.verdict == ["forward: indistinguishable (ratio 0.83) [unpaired]"]
    text = answer.trust(found, [{}])
    assert "Unpaired gaps: in 9 of 10 timings the worker processes disagreed by 30% or less" in text
    assert "a ratio beyond 1.69" in text


def test_two_processes_that_agree_exactly_are_not_called_one_worker_process():
    rows = pd.DataFrame([row("bspline-fast", 1.0, processes=[1.0, 1.0]), row("fastkan", 2.0, processes=[2.0, 2.0])])
    found = answer.build(rows)
    assert found.margin == 0 and found.processes == 2
    assert "one worker process" not in answer.trust(found, [{}])
    alone = [row("bspline-fast", 1.0, processes=[1.0]), row("fastkan", 2.0, processes=[2.0])]
    single = answer.build(pd.DataFrame(alone))
    assert "Each timing came from one worker process" in answer.trust(single, [{}])
