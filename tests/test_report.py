"""kanbench report: figures from a synthetic frame, escaping, bad input (exit 2), no torch, the embedded data."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import report_synthetic

from kanbench import cli, report, results
from kanbench.report import claims, data, figures, page, summary

EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return report_synthetic.write_run(tmp_path_factory.mktemp("runs"), evil=EVIL)


@pytest.fixture(scope="module")
def report_html(run_dir, tmp_path_factory) -> str:
    return report.write_report([run_dir], tmp_path_factory.mktemp("report") / "r.html").read_text()


@pytest.fixture(scope="module")
def frame(run_dir) -> object:
    df, superseded = data.combine(data.read_runs([run_dir]))
    assert superseded == 0
    return df


def test_scaling_figures_hold_the_records(frame):
    fig = figures.scaling_figure(frame, "batch")
    assert fig.figure is not None, fig.empty_reason
    traces = fig.figure.data
    # a line per implementation per (device, phase) subplot: only cpu was measured, 4 phases, 7 implementations
    assert len(traces) == 4 * 7
    assert fig.figure.layout.yaxis.type == "log" and fig.figure.layout.xaxis.type == "log"
    bspline = next(t for t in traces if t.name == "bspline" and t.xaxis == "x")  # first subplot: forward
    rows = frame[(frame.impl == "bspline") & (frame.phase == "forward") & (frame.status == "ok")]
    rows = rows[rows.widths_label == "784x64x10"]  # both widths span both batch sizes: the larger is shown
    assert list(bspline.x) == sorted(rows.batch_size)
    expected = rows.sort_values("batch_size")
    assert list(bspline.y) == pytest.approx(list(expected.time_median))
    # IQR error bars from the raw values: q3 - median above, median - q1 below, both non-negative
    assert list(bspline.error_y.array) == pytest.approx(list(expected.time_q3 - expected.time_median))
    assert min(bspline.error_y.arrayminus) >= 0


def test_one_value_axis_gives_a_reason_not_a_figure(frame):
    fig = figures.scaling_figure(frame, "grid")
    assert fig.figure is None and "one grid" in fig.empty_reason


def test_memory_flops_accuracy_profile_figures(frame):
    assert figures.memory_figure(frame).figure is not None
    flops = figures.flops_figure(frame, {})
    assert flops.figure is not None and "No machine peak" in flops.caption
    peak = figures.flops_figure(frame, {frame.run.iloc[0]: {"machine": {"peak_flop_per_s": {"float32": 2e11}}}})
    assert any(s.type == "line" and s.y0 == 2e11 for s in peak.figure.layout.shapes)
    final, curves, pareto = figures.accuracy_figures(frame)
    assert final.figure is not None and curves.figure is not None and pareto.figure is not None
    profile = figures.profile_figure(frame)
    assert profile.figure is not None and profile.figure.layout.barmode == "stack"
    shares = {t.name: list(t.y) for t in profile.figure.data}
    bars = list(zip(*profile.figure.data[0].x))
    assert ("cpu 784x64x10 b64 backward", "bspline") in bars and ("cpu 784x64x10 b64 forward", "bspline") in bars
    assert shares["matmul"][bars.index(("cpu 784x64x10 b64 forward", "bspline"))] == pytest.approx(50.0)
    assert profile.figure.data[-1].name == "uncategorized"  # last, on top of the stack
    assert figures.profile_figure(frame, "device_categories").figure is None  # CPU profiles have no device time


def test_pareto_front():
    # (time, accuracy): the second point is slower and worse than the first, the third slower and better
    assert figures.pareto_front([(1.0, 0.9), (2.0, 0.8), (3.0, 0.95)], higher_is_better=True) == [0, 2]
    assert figures.pareto_front([(1.0, 0.3), (2.0, 0.1)], higher_is_better=False) == [0, 1]


def test_summary_ratios_and_best(frame):
    tables = summary.summary_tables(frame)
    assert tables and tables[0].measured >= tables[-1].measured
    table = tables[0]
    rows = {impl: cells for impl, _, cells in table.rows}
    cfg = dict(zip(data.CONFIG_COLUMNS, table.key))
    sel = frame[(frame.phase == "forward") & (frame.status == "ok")]
    for c, v in cfg.items():
        sel = sel[sel[c] == v]
    t = {r.impl: r.time_median for r in sel.itertuples()}
    entry = rows["bspline"]["forward"][0]
    assert entry.ratios["mlp"] == pytest.approx(t["bspline"] / t["mlp"])
    assert entry.ratios["mlp-iso"] == pytest.approx(t["bspline"] / t["mlp-iso"])
    fastest = min(t, key=t.get)
    assert rows[fastest]["forward"][0].best
    assert sum(cells["forward"][0].best for cells in rows.values()) == 1
    acc = rows["fastkan"]["accuracy"][0]
    assert "±" in acc.text and "3 seeds" in acc.note


def test_grid_free_reference_matches_other_grid(frame):
    # an MLP measured only at G=5 still serves as the reference of a KAN cell at G=7
    refs = data.References(frame)
    row = frame[(frame.impl == "bspline") & (frame.status == "ok") & (frame.phase == "forward")].iloc[0].copy()
    same = refs.value("mlp", row, "time_median")
    row["grid_size"] = 7
    assert refs.value("mlp", row, "time_median") == same
    assert refs.value("mlp-iso", row, "time_median") is None  # mlp-iso's size depends on G


def test_claims_match_our_cells(tmp_path):
    run = report_synthetic.write_run(
        tmp_path, impls=("bspline", "fastkan", "fastkan-noln"), widths=([100, 100],), batches=(8,), devices=("cpu",),
        accuracy=False, profile=False, suite="seed-claims",
    )  # fmt: skip
    df, _ = data.combine(data.read_runs([run]))
    blocks = claims.claim_blocks(df)
    forward = next(b for b in blocks if b.title.startswith("FastKAN vs efficient B-spline KAN, forward,"))
    assert forward.measured and forward.header[-1] == "ours (cpu)"
    assert forward.rows[0][3] == "742 µs" and forward.rows[1][3].startswith("223 µs (×3.33 faster)")
    ours = data.timing_rows(df)
    ours = ours[ours.phase == "forward"].set_index("impl").time_median
    assert forward.rows[0][-1] == summary.fmt_time(ours["bspline"])
    assert claims.speedup(ours["bspline"], ours["fastkan-noln"]) in forward.rows[1][-1]
    assert claims.speedup(2.0, 1.0) == "×2 faster" and claims.speedup(1.0, 2.0) == "×2 slower"
    assert any(("published on", "NVIDIA V100") == m for m in forward.meta)
    benchmarking = next(b for b in blocks if "KAN-benchmarking" in b.title)
    assert not benchmarking.measured and set(benchmarking.rows[0][4:]) == {"—"}


def test_zoo_claims_match_our_cells(tmp_path):
    """ReLU-KAN's speed table (pykan / relukan train step, per device) and KAN-benchmarking's zoo rows."""
    run = report_synthetic.write_run(
        tmp_path, impls=("pykan", "relukan", "bspline", "chebykan"), widths=([2, 5, 1], [1000, 1000, 1]),
        batches=(64,), devices=("cpu",), accuracy=False, profile=False, suite="zoo-claims",
    )  # fmt: skip
    df, _ = data.combine(data.read_runs([run]))
    blocks = claims.claim_blocks(df)
    relu = next(
        b for b in blocks if b.title.startswith("ReLU-KAN vs the original KAN, training, f4") and "GPU" in b.title
    )
    assert relu.measured and relu.rows[0][1] == "×21.4"  # 23.12 s / 1.08 s
    ours = data.timing_rows(df)
    step = ours[(ours.phase == "train_step") & (ours.widths_label == "2x5x1")].set_index("impl").time_median
    assert relu.rows[0][-1] == f"batch 64: {summary.fmt_ratio(step['pykan'] / step['relukan'])}"
    f5 = next(b for b in blocks if b.title.startswith("ReLU-KAN vs the original KAN, training, f5"))
    assert not f5.measured and f5.rows[0][-1] == "—"  # no 4x4x2x1 cells in this run
    benchmarking = next(b for b in blocks if b.title.startswith("KAN-benchmarking, 1000 → 1000 → 1, batch 100, GPU"))
    labels = [row[0] for row in benchmarking.rows]
    assert {"ChebyKAN, degree 9", "ReLU-KAN", "Wav-KAN", "FourierKAN, gridsize 5"} <= set(labels)
    assert not benchmarking.measured  # batch 100 is not in this run


def test_claims_file_holds_the_published_figures():
    loaded = {c.key: c for c in claims.load()}
    assert len(loaded) == 13
    assert loaded["fastkan-forward"].timings[1].seconds == 223e-6 and loaded["fastkan-forward"].batch_size == 8
    assert loaded["relukan-f4-gpu"].ratio == 23.12 / 1.08  # seconds = [slower's, faster's]
    assert loaded["kan-benchmarking-gpu"].widths_by_impl == {"mlp": (1000, 10000, 1)}
    assert loaded["bspline-mnist"].note == "" and loaded["bspline-mnist"].epochs == 10


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        ('device = "NVIDIA V100"\n', "", "time claim 'fastkan-forward': missing field 'device'"),
        ("batch_size = 8", 'batch_size = "8"', "'fastkan-forward': field 'batch_size' should be a positive integer"),
        ("seconds = 742e-6", "seconds = -742e-6", "field 'timings[0].seconds' should be a positive number"),
        ("widths = [784, 64, 10]", "widths = [784, 0, 10]", "accuracy claim 'fastkan-mnist': field 'widths[1]'"),
        ("epochs = 20", "epoch = 20", "accuracy claim 'fastkan-mnist': unknown field 'epoch'"),
        ("seconds = [11.30, 1.57]", "seconds = [11.30]", "ratio claim 'relukan-f4-cpu': field 'seconds' should be"),
        ('key = "fastkan-forward-backward"', 'key = "fastkan-forward"', "claim 'fastkan-forward' is there twice"),
        ("[[ratio]]", "[[ratios]]", "'ratios' is not a list of claims"),
        ("[[time]]", "[[time]", "Expected"),  # the parser's own message, after the file's name
    ],
)
def test_claims_file_errors_name_the_claim_and_the_field(tmp_path, old, new, said):
    path = tmp_path / "claims.toml"
    path.write_text(claims.CLAIMS_FILE.read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")
    with pytest.raises(claims.ClaimsError) as raised:
        claims.load(path)
    assert str(raised.value).startswith(f"{path}: ") and said in str(raised.value)


def test_memory_figure_gives_bytes_per_sample(frame):
    assert figures.bytes_per_sample([256, 1024, 4096], [1000 + 3 * 256, 1000 + 3 * 1024, 1000 + 3 * 4096]) == 3.0
    assert figures.bytes_per_sample([64, 64], [1.0, 2.0]) is None
    fig = figures.memory_figure(frame).figure
    shown = [t for t in fig.data if t.showlegend]
    assert shown and all(t.name.endswith("/sample") for t in shown)
    first = shown[0]
    slope = figures.bytes_per_sample(list(first.x), list(first.y))
    assert first.name.endswith(f"· {summary.fmt_bytes(slope)}/sample")


def test_results_text_is_escaped(run_dir, tmp_path):
    weird = report_synthetic.write_run(tmp_path, impls=("bspline", EVIL, "mlp"), widths=([4, 2],), batches=(8,),
                                       devices=("cpu", EVIL), accuracy=False, profile=False, evil=EVIL)  # fmt: skip
    html = report.write_report([run_dir, weird], tmp_path / "r.html").read_text()
    body, _, scripts = html.partition('<script id="kanbench-data"')
    assert EVIL not in body and "alert(1)" in body  # shown, but as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    # inside the JSON script elements "<" is \u003c, so nothing can close the element early
    assert scripts.count("</script>") == 4 and EVIL not in scripts
    assert html.count("<script") == 4  # data, figures, plotly.js, the page's code
    figure_json = scripts.split('<script id="kanbench-figures" type="application/json">')[1].split("</script>")[0]
    names = [t["name"] for f in json.loads(figure_json)["figures"] for t in f["figure"]["data"]]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in names  # plotly renders labels as HTML: escaped there too


def test_csp_allows_only_the_two_inline_scripts(report_html):
    html = report_html
    csp = html.split('http-equiv="Content-Security-Policy" content="')[1].split('"')[0]
    assert "default-src 'none'" in csp and "connect-src 'none'" in csp and csp.count("'sha256-") == 2
    page_only = html.split("<script>")[0]  # everything but plotly.js and the page's code
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page_only)  # no CDN, no remote anything
    assert "<link" not in page_only


def test_embedded_data_round_trips(run_dir, report_html):
    embedded = report.read_embedded(report_html)
    stored = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert embedded["runs"][0]["records"] == stored
    assert embedded["runs"][0]["environment"] == results.read_environment(run_dir)


def test_plotly_js_inlined_once(report_html):
    html = report_html
    assert html.count("* plotly.js v") == 1 and "<script src" not in html


def test_only_skipped_cells_still_make_a_report(tmp_path):
    run = report_synthetic.write_run(tmp_path, devices=("cuda:0",), accuracy=False, profile=False)
    html = report.write_report([run], tmp_path / "r.html").read_text()
    assert "every record of these runs was skipped or failed" in html
    assert "CUDA is not available on this machine" in html
    assert 'class="plot"' not in html  # nothing to draw, and each section says so
    assert "No figure: no ok timing records" in html


def test_comparison_with_gate_verdicts(tmp_path):
    kwargs = dict(impls=("bspline", "fastkan", "mlp"), widths=([100, 100],), batches=(8, 64), devices=("cpu",),
                  accuracy=False, profile=False, values=8, processes=2)  # fmt: skip
    base = report_synthetic.write_run(tmp_path, "base", seed=1, **kwargs)
    cand = report_synthetic.write_run(tmp_path, "cand", seed=2, slowdown={"fastkan": 2.0}, **kwargs)
    runs = data.read_runs([base, cand])
    built = report.build_page(runs)
    comp = built.comparison
    assert comp is not None and len(comp.latency) == 3 * 4 * 2
    slow = comp.latency[comp.latency.impl == "fastkan"]
    assert (slow.ratio > 1.5).all()
    assert set(slow.verdict) <= {"regression", "not significant"}
    assert built.comparison_figure is not None and built.comparison_figure.figure is not None
    html = report.write_report([base, cand], tmp_path / "c.html").read_text()
    assert "Comparison of two runs" in html and 'class="regression"' in html
    assert list(comp.implementation_regressions()["implementation"]) == ["fastkan"]  # judged against the others
    assert "<h3>Implementations</h3>" in html and "ratio vs the runs' shift" in html
    assert "fastkan backward b64" in html  # rows named by what differs: impl, phase, batch
    axis = built.comparison_figure.figure.layout.xaxis  # 24 cells: each named under its point
    assert len(axis.tickvals) == 24 and "fastkan backward b64" in axis.ticktext


def test_comparison_the_gate_declines_is_a_warning(tmp_path):
    kwargs = dict(widths=([100, 100],), batches=(8,), devices=("cpu",), accuracy=False, profile=False)
    base = report_synthetic.write_run(tmp_path, "base", seed=1, impls=("bspline",), **kwargs)
    cand = report_synthetic.write_run(tmp_path, "cand", seed=2, impls=("mlp",), **kwargs)
    built = report.build_page(data.read_runs([base, cand]))
    assert built.comparison is None and built.comparison_figure is None
    assert any("regression gate declined" in w and "no common cells" in w for w in built.warnings)


@pytest.mark.parametrize("case", ["missing", "no-results", "empty", "schemas", "not-html"])
def test_bad_input_exits_2(case, run_dir, tmp_path, capsys):
    if case == "missing":
        args = [str(tmp_path / "nope")]
    elif case == "no-results":
        (tmp_path / "bare").mkdir()
        args = [str(tmp_path / "bare")]
    elif case == "empty":
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "results.jsonl").write_text("")
        args = [str(tmp_path / "empty")]
    elif case == "schemas":
        other = tmp_path / "future"
        other.mkdir()
        line = json.loads((run_dir / "results.jsonl").read_text().splitlines()[0])
        line["schema"] = 99
        (other / "results.jsonl").write_text(json.dumps(line) + "\n")
        args = [str(run_dir), str(other)]
    else:
        args = [str(run_dir), "-o", str(tmp_path / "r.pdf")]
    assert cli.main(["report", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kanbench report: error: ")
    expected = {"missing": "no such run directory", "no-results": "results.jsonl: missing", "empty": "holds no records",
                "schemas": "field schema: 99 is not supported", "not-html": "ending in .html"}[case]  # fmt: skip
    assert expected in err


def test_cli_default_output_and_path_printed(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["report", str(run_dir)]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == str(Path("reports") / f"{run_dir.name}.html") and Path(printed).is_file()


# Refuses `import torch` without putting a placeholder in sys.modules (scipy treats any "torch" entry as torch).
NO_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError("the report imported torch")
sys.meta_path.insert(0, NoTorch())
"""


def test_report_never_imports_torch(run_dir, tmp_path):
    other = report_synthetic.write_run(tmp_path, "other", seed=3)  # two runs: the comparison path too
    code = NO_TORCH + (
        "from kanbench import cli\n"
        f"rc = cli.main(['report', {str(run_dir)!r}, {str(other)!r}, '-o', {str(tmp_path / 'r.html')!r}])\n"
        "assert rc == 0, rc\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'torch'], 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r.html").is_file()


def test_diverged_runs_are_noted(report_html):
    notes = report_html.split('<section id="notes">')[1]
    assert "1 accuracy run(s) diverged" in notes and "<bdi>rswaf</bdi> · 784x64x10 · mnist · seed 2" in notes


def test_noisy_and_problem_notes(frame):
    noisy = summary.noisy_records(frame)
    assert len(noisy) and (noisy.time_iqr / noisy.time_median > 0.10).all()
    assert not summary.noisy_records(frame[~frame.index.isin(noisy.index)]).shape[0]
    problems = summary.problem_records(frame)
    assert set(problems.status) == {"skipped", "error"} and problems.reason.notna().all()


def test_script_json_cannot_close_its_element():
    text = page.script_json(json.dumps({"a": "</script><!--", "b": "&"}))
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"a": "</script><!--", "b": "&"}


def test_compiled_cells_keep_their_own_rows(tmp_path):
    """A compile = [false, true] axis: the eager and the compiled cell of one impl must not merge anywhere."""
    import pandas as pd

    from kanbench.results.record import Record, TimeStats
    from kanbench.run import terminal

    def record(median: float, **options) -> Record:
        return Record(
            run_id="r", suite="s", impl="bspline", family="bspline", phase="forward", device="cpu",
            dtype="float32", batch_size=8, widths=[4, 2], grid_size=5, spline_order=3, num_basis=8, params=80,
            params_total=80, status="ok", reason=None, peak_mem_bytes=None, flops=None, metrics=None,
            config_hash=f"h{len(options)}", options=options,
            time_s=TimeStats.from_values([[median] * 5], loops=10).__dict__,
        )  # fmt: skip

    eager, compiled = record(2e-3), record(1e-3, compile=True)
    text = terminal.table([eager, compiled])
    assert "bspline+compile" in text and "2 ms" in text and "1 ms" in text
    frame = data.prepare(pd.DataFrame([results.flatten(r) for r in (eager, compiled)]))
    assert sorted(frame["impl"]) == ["bspline", "bspline+compile"]
    assert frame.set_index("impl")["time_median"].to_dict() == {"bspline": 2e-3, "bspline+compile": 1e-3}


def test_error_metrics_spanning_decades_get_a_log_axis():
    import pandas as pd

    rmse = pd.DataFrame({"metric_metric": ["test_rmse"] * 3, "metric_final_test": [0.003, 0.05, 1.24]})
    assert figures.log_metric(rmse)  # on a linear axis 0.003 sits at zero beside 1.24
    assert not figures.log_metric(rmse.assign(metric_final_test=[0.2, 0.3, 0.5]))  # within a decade: linear
    accuracy = pd.DataFrame({"metric_metric": ["test_accuracy"] * 2, "metric_final_test": [0.01, 0.97]})
    assert not figures.log_metric(accuracy)


def test_the_answer_comes_first(report_html):
    assert report_html.index('<section id="answer">') < report_html.index('<section id="run">')
    first = report_html.split('<section id="answer">')[1].split("</section>")[0]
    assert "Configuration: <b>" in first and "B-spline against FastKAN" in first and "rank" in first


def test_the_cost_against_accuracy_chart_stands_in_the_answer(report_html):
    answer_html = report_html.split('<section id="answer">')[1].split("</section>")[0]
    accuracy_html = report_html.split('<section id="accuracy">')[1].split("</section>")[0]
    assert 'id="fig-accuracy-pareto"' in answer_html and "Pareto" in answer_html
    assert 'id="fig-accuracy-pareto"' not in accuracy_html and 'href="#answer"' in accuracy_html


def test_log_axes_read_in_the_reports_units(frame):
    memory = figures.memory_figure(frame).figure.layout.yaxis
    assert memory.ticktext and all(t.endswith((" B", "KiB", "MiB", "GiB")) for t in memory.ticktext)
    timing = figures.scaling_figure(frame, "batch").figure.layout.yaxis
    assert all(t.endswith(("ns", "µs", "ms", " s")) for t in timing.ticktext)
    roofline = figures.roofline_figure(frame.assign(metric_arithmetic_intensity=2.0), {}).figure
    assert all(t.endswith("FLOP/s") for t in roofline.layout.yaxis.ticktext)
    names = {t.name for t in roofline.data}
    assert set(frame.loc[frame.flop_per_s.notna(), "impl"]) <= names  # every implementation in the legend
    assert (roofline.layout.height or 450) >= figures.LEGEND_ROW_PX * len(names)  # the legend fits: no scrolling


def test_the_summary_caption_describes_only_what_the_tables_show(frame):
    from kanbench.report import page, summary

    tables = summary.summary_tables(frame)
    full = page.summary_caption(tables)
    assert "Accuracy: mean" in full and "<code>mlp-iso</code>" in full
    speed_only = summary.summary_tables(frame[(frame.phase != "accuracy") & (frame.impl != "mlp-iso")])
    caption = page.summary_caption(speed_only)
    assert "Accuracy" not in caption and "accuracy" not in caption and "mlp-iso" not in caption


def test_one_implementation_built_two_ways_is_two_rows_never_one_average():
    """chebykan with and without [options.chebykan] hidden_layernorm (suites/mnist.toml beside mnist-layernorm.toml)
    are different models: the report names the built variant and never averages their seeds together."""
    recipe = {"recipe": {"lr": 1e-3}, "data": {"name": "mnist"}}
    impls = ["chebykan", "chebykan", "grkan", "fastkan"]
    options = [recipe, {"hidden_layernorm": True, **recipe}, {"compile": True}, None]
    assert data.variant_names(impls, options) == ["chebykan", "chebykan[hidden_layernorm=True]", "grkan", "fastkan"]
    assert data.variant_names(["chebykan"], [{"degree": 9}]) == ["chebykan"]  # one way only: its plain name
    assert data.impl_rank("chebykan") < data.impl_rank("chebykan[hidden_layernorm=True]") < data.impl_rank("jacobikan")


def test_an_instruction_clock_run_gives_a_report_of_counts(tmp_path, capsys):
    run = report_synthetic.write_run(
        tmp_path,
        impls=("bspline", "mlp"),
        widths=([100, 100],),
        batches=(8, 64),
        devices=("cpu",),
        phases=("forward", "backward"),
        accuracy=False,
        profile=False,
    )
    report_synthetic.count_instructions(run)  # records with peak memory and counts, no time_s (suites/ci.toml)
    out = tmp_path / "ins.html"
    assert cli.main(["report", str(run), "-o", str(out)]) == 0, capsys.readouterr().err
    html = out.read_text()
    built = report.build_page(data.read_runs([run]))
    assert [t.unit for t in built.tables] == ["instructions", "instructions"]
    entry = built.tables[0].rows[0][2]["forward"][0]  # bspline, the first row
    assert entry.text.endswith(" instr") and entry.ratios["mlp"] > 1  # e.g. 1.23 M instr
    assert f"{entry.text}" in html and "instructions per call (callgrind)" in html
    assert "Median instructions per call of each phase, counted by callgrind" in html
    assert "these runs counted instructions" in html
    assert next(f for f in built.figures["scaling"] if f.key == "memory-vs-batch").figure is not None


def test_the_runs_terminal_table_shows_counts_of_an_instruction_clock_run(tmp_path):
    from kanbench.run import terminal

    run = report_synthetic.write_run(
        tmp_path, impls=("bspline", "mlp"), widths=([100, 100],), batches=(8,), devices=("cpu",),
        phases=("forward",), accuracy=False, profile=False,
    )  # fmt: skip
    text = terminal.table(results.read_records(report_synthetic.count_instructions(run)))
    bspline = next(line for line in text.splitlines() if line.strip().startswith("bspline"))
    assert " k instr" in bspline and " ok " not in bspline and bspline.rstrip().endswith("x")  # count, ratio to mlp


def _edit_records(run: Path, impl: str, change) -> None:
    """Rewrite the impl's lines of results.jsonl with change(line dict)."""
    path = run / results.RESULTS
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(change(d) if d["impl"] == impl else d) + "\n" for d in lines))


def _zero_time(line: dict) -> dict:
    if line["time_s"] is not None:
        t = line["time_s"]
        t.update(values=[0.0] * len(t["values"]), median=0.0, process_medians=[0.0] * len(t["process_medians"]))
    return line


def test_a_zero_median_is_left_out_and_named_not_a_crash(tmp_path, capsys):
    run = report_synthetic.write_run(
        tmp_path, impls=("bspline-fast", "fastkan", "mlp", "mlp-iso"), widths=([100, 100], [784, 64, 10]),
        batches=(8, 64), devices=("cpu",), accuracy=False, profile=False,
    )  # fmt: skip
    _edit_records(run, "fastkan", _zero_time)  # the reader accepts it: every statistic >= 0
    out = tmp_path / "zero.html"
    assert cli.main(["report", str(run), "-o", str(out)]) == 0, capsys.readouterr().err
    html = out.read_text()
    assert "<h3>Timings of zero</h3>" in html and "16 ok record(s) have a median of 0 per call" in html
    built = report.build_page(data.read_runs([run]))
    assert not any(s.impl == "fastkan" for s in built.sweep)
    assert all("fastkan" not in {r.impl for r in ranked} for ranked in built.answer.ranks.values())
    assert all(impl != "fastkan" for t in built.tables for impl, _, _ in t.rows)
    assert "fastkan" not in set(built.noisy["impl"])  # an IQR over a median of 0 is no measure of noise


@pytest.mark.parametrize(
    "field, value",
    [("run.load_avg_start", [None, 0, 0]), ("run.load_avg_end", "1.0"), ("cpu_count", "2"), ("cpu_affinity", 0),
     ("worker_torch_threads", "1"), ("torch_threads", True), ("env_vars", []), ("gpu", "A100"),
     ("cuda.devices", 1)],
)  # fmt: skip
def test_an_environment_field_of_the_wrong_type_is_refused_naming_it(field, value, tmp_path, capsys):
    run = report_synthetic.write_run(
        tmp_path, impls=("bspline", "mlp"), widths=([784, 64, 10],), batches=(64,), devices=("cpu",),
        accuracy=False, profile=False,
    )  # fmt: skip
    env = json.loads((run / results.ENVIRONMENT).read_text())
    env.update(run={"load_avg_start": [0.5, 0.5, 0.5], "load_avg_end": [0.5, 0.5, 0.5]}, cuda={"available": False})
    *parents, last = field.split(".")
    node = env
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    (run / results.ENVIRONMENT).write_text(json.dumps(env))
    assert cli.main(["report", str(run), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert f"environment.json: field {field} must be" in err and repr(value) in err
    assert cli.main(["compare", str(run), str(run)]) == 2  # the reader refuses it for every command alike
    assert f"field {field} must be" in capsys.readouterr().err


EVIL_NAME = "fast\u202ekan\x00\u2066x"  # right-to-left override, NUL, an isolate left open


def test_bidi_controls_and_nul_in_names_never_reach_html_markdown_or_terminal(tmp_path, capsys):
    from kanbench.run import terminal

    kwargs = dict(impls=("bspline", EVIL_NAME, "mlp"), widths=([100, 100],), batches=(8,), devices=("cpu",),
                  phases=("forward",), accuracy=False, profile=False)  # fmt: skip
    base = report_synthetic.write_run(tmp_path, "base", **kwargs)
    cand = report_synthetic.write_run(tmp_path, "cand", seed=3, evil="\u202e1.0x\x00", **kwargs)
    raw = set("\u202e\x00\u2066")
    html = report.write_report([base, cand], tmp_path / "r.html").read_text()
    assert not raw & set(html)
    assert "<bdi>fast\\u202ekan\\x00\\u2066x</bdi>" in html  # escaped where shown, and isolated
    for fmt in ("markdown", "table"):
        cli.main(["compare", str(base), str(cand), "--format", fmt])
        out = capsys.readouterr().out
        assert "fast\\" in out and not raw & set(out)
    text = terminal.table(results.read_records(base))
    assert "fast\\u202ekan\\x00\\u2066x" in text and not raw & set(text)


def test_a_comparison_of_instruction_clock_runs_shows_counts_and_the_count_gate(tmp_path):
    kwargs = dict(impls=("bspline", "fastkan", "mlp"), widths=([100, 100],), batches=(8, 64), devices=("cpu",),
                  phases=("forward",), accuracy=False, profile=False)  # fmt: skip
    base = report_synthetic.count_instructions(report_synthetic.write_run(tmp_path, "base", **kwargs))
    cand = report_synthetic.write_run(tmp_path, "cand", seed=2, slowdown={"fastkan": 1.2}, **kwargs)
    report_synthetic.count_instructions(cand)
    built = report.build_page(data.read_runs([base, cand]))
    section = page.comparison_section(built)
    assert "(threshold 2%)" in section and "ratio (median)" in section and " k instr</td>" in section
    assert not re.search(r"\d s</td>", section)  # counts are never printed as seconds
    assert "median instruction count per call" in built.comparison_figure.caption


def test_a_lone_surrogate_is_refused_by_the_reader_not_a_crash_of_the_writers(tmp_path, capsys):
    kwargs = dict(impls=("fastkan", "mlp"), widths=([100, 100],), batches=(8,), devices=("cpu",), phases=("forward",),
                  accuracy=False, profile=False)  # fmt: skip
    run = report_synthetic.write_run(tmp_path, "run", **kwargs)
    path = run / results.RESULTS
    path.write_text(path.read_text().replace('"impl":"fastkan"', '"impl":"fast\\ud800kan"', 1))
    for argv in (["report", str(run), "-o", str(tmp_path / "r.html")], ["compare", str(run), str(run)]):
        assert cli.main(argv) == 2
        assert "results.jsonl:1: malformed record: a string holds a lone surrogate '\\ud800'" in capsys.readouterr().err
    other = report_synthetic.write_run(tmp_path, "other", **kwargs)
    env = other / results.ENVIRONMENT
    env.write_text(env.read_text().replace('"hostname": "synthetic-other"', '"hostname": "\\udfff"'))
    assert cli.main(["report", str(other), "-o", str(tmp_path / "o.html")]) == 2
    assert "environment.json: malformed JSON: a string holds a lone surrogate" in capsys.readouterr().err
