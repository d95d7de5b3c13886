"""kanbench compare and kanbench regress on synthetic runs: verdicts, exit status, output, orchestration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from kanbench import results
from kanbench.analysis import compare, regress
from kanbench.cli import main
from kanbench.errors import UsageError
from kanbench.results.record import Record, TimeStats
from kanbench.suite import selection

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Deterministic "measurements": a base time times a fixed pattern of small positive delays (delays only add time).
TIGHT = [1.000, 1.004, 1.010, 1.002, 1.007, 1.001, 1.012, 1.003, 1.005, 1.009]
# Very noisy: a wide spread around 1 with values both far below and far above.
NOISY = [0.55, 2.40, 0.80, 1.90, 0.62, 1.50, 3.00, 0.70, 1.10, 2.20]


def record(impl: str, per_process: list[list[float]], suite: str = "ci", phase: str = "forward", **extra) -> Record:
    """One ok Record of a synthetic cell; config_hash depends on impl and batch only, as a real hash would."""
    batch = extra.pop("batch_size", 8)
    fields = dict(
        run_id="synthetic", suite=suite, impl=impl, family="x", phase=phase, device="cpu", dtype="float32",
        batch_size=batch, widths=[100, 100], grid_size=5, spline_order=3, num_basis=8, params=1000,
        params_total=1000, status="ok", reason=None, peak_mem_bytes=4096, flops=1_000_000, metrics=None,
        config_hash=f"{impl}-b{batch}",
    )  # fmt: skip
    fields.update(extra)
    if fields["status"] == "ok":
        fields["time_s"] = TimeStats.from_values(per_process, loops=100).__dict__
    else:
        fields["time_s"] = None
    return Record(**fields)


def write_run(run_dir: Path, records: list[Record], environment: dict | None = None) -> Path:
    """A run directory of these records."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for r in records:
        results.append(run_dir, r)
    results.write_environment(run_dir, environment or {"cpu_model": "synthetic", "torch": "2.x"})
    return run_dir


def procs(scale: float, pattern: list[float] = TIGHT, processes: int = 2) -> list[list[float]]:
    """Values of `processes` worker processes: the pattern scaled, split evenly between processes."""
    per = len(pattern) // processes
    return [[scale * v for v in pattern[i * per : (i + 1) * per]] for i in range(processes)]


def two_cell_run(path: Path, bspline_scale: float, pattern=TIGHT, **bspline_extra) -> Path:
    return write_run(
        path,
        [
            record("bspline", procs(bspline_scale * 1e-3, pattern), **bspline_extra),
            record("mlp", procs(1e-4)),
        ],
    )


def run_compare(base: Path, cand: Path, *args: str) -> int:
    return main(["compare", str(base), str(cand), *args])


# --- verdicts and exit status -----------------------------------------------------------------------------------


def test_tight_30_percent_slower_is_a_regression(tmp_path, capsys):
    base = two_cell_run(tmp_path / "base", 1.0)
    cand = two_cell_run(tmp_path / "cand", 1.3)
    assert run_compare(base, cand) == 1
    out = capsys.readouterr().out
    assert "regression" in out and "FAIL" in out
    frame = compare.compare_frames(results.load(base), results.load(cand))
    row = frame.set_index("impl").loc["bspline"]
    assert row["verdict"] == "regression"
    assert row["ratio"] == pytest.approx(1.3)
    assert row["ci_low"] > 1.1 and row["p_value"] < 0.01
    assert frame.set_index("impl").loc["mlp", "verdict"] == "no change"


def test_identical_runs_pass(tmp_path):
    base = two_cell_run(tmp_path / "base", 1.0)
    cand = two_cell_run(tmp_path / "cand", 1.0)
    assert run_compare(base, cand) == 0
    frame = compare.compare_frames(results.load(base), results.load(cand))
    assert set(frame["verdict"]) == {"no change"}
    assert (frame["ratio"] == 1.0).all()


def test_faster_candidate_is_an_improvement_and_passes(tmp_path):
    base = two_cell_run(tmp_path / "base", 1.0)
    cand = two_cell_run(tmp_path / "cand", 0.7)
    assert run_compare(base, cand) == 0
    frame = compare.compare_frames(results.load(base), results.load(cand))
    assert frame.set_index("impl").loc["bspline", "verdict"] == "improvement"


def test_noisy_30_percent_slower_is_not_significant(tmp_path):
    base = two_cell_run(tmp_path / "base", 1.0, NOISY)
    cand = two_cell_run(tmp_path / "cand", 1.3, NOISY[3:] + NOISY[:3])
    frame = compare.compare_frames(results.load(base), results.load(cand))
    row = frame.set_index("impl").loc["bspline"]
    assert row["ratio"] > 1.1  # slower by more than the threshold ...
    assert row["verdict"] == "not significant"  # ... but the data cannot tell it from noise
    assert row["p_value"] >= 0.01
    assert run_compare(base, cand) == 0


def test_small_significant_slowdown_within_threshold_is_no_change(tmp_path):
    base = two_cell_run(tmp_path / "base", 1.0)
    cand = two_cell_run(tmp_path / "cand", 1.05)
    frame = compare.compare_frames(results.load(base), results.load(cand))
    row = frame.set_index("impl").loc["bspline"]
    assert row["p_value"] < 0.01 and row["verdict"] == "no change"
    # the same data fails a stricter gate
    strict = compare.compare_frames(results.load(base), results.load(cand), compare.GateSettings(threshold=0.02))
    assert strict.set_index("impl").loc["bspline", "verdict"] == "regression"


def test_estimators(tmp_path):
    # One lucky-fast outlier in the candidate: the minimum follows it, p10 and the median barely move.
    base = two_cell_run(tmp_path / "base", 1.0)
    cand = write_run(
        tmp_path / "cand",
        [record("bspline", [[1e-3 * v for v in TIGHT[:5]], [0.5e-3, *[1e-3 * v for v in TIGHT[6:]]]])],
    )
    b, c = results.load(base), results.load(cand)
    by = {
        e: compare.compare_frames(b, c, compare.GateSettings(estimator=e)).iloc[0]["ratio"]
        for e in ("min", "p10", "median", "mean")
    }
    assert by["min"] == pytest.approx(0.5)
    assert by["median"] == pytest.approx(1.0, abs=0.01)
    assert 0.5 < by["p10"] < 1.0
    assert compare.estimator_quantile("p25") == 0.25
    with pytest.raises(UsageError, match="estimator"):
        compare.estimator_quantile("fastest")
    assert run_compare(base, cand, "--estimator", "p999") == 2


def test_rounds_pool_into_process_groups(tmp_path):
    # A candidate directory holding several runs (rounds) is pooled; each process of each round is one group.
    base = two_cell_run(tmp_path / "base", 1.0)
    two_cell_run(tmp_path / "cand" / "r1", 1.3)
    two_cell_run(tmp_path / "cand" / "r2", 1.3)
    (tmp_path / "cand" / "latest-ci").symlink_to("r2")  # as kanbench run leaves beside its run directory
    frame = compare.compare_frames(results.load(base), compare.load_side(tmp_path / "cand"))
    row = frame.set_index("impl").loc["bspline"]
    assert row["cand_processes"] == 4 and row["cand_n"] == 20 and row["base_processes"] == 2
    assert row["verdict"] == "regression"
    assert compare.process_groups([1.0, 2.0, 3.0, 4.0], [1.5, 3.5]) == [[1.0, 2.0], [3.0, 4.0]]
    # medians that do not match an even split: one group rather than a wrong split
    assert compare.process_groups([1.0, 2.0, 3.0, 4.0], [1.0, 3.0]) == [[1.0, 2.0, 3.0, 4.0]]


# --- bad input: exit 2 with the reason --------------------------------------------------------------------------


def test_malformed_line_exits_2_naming_file_and_line(tmp_path, capsys):
    base = two_cell_run(tmp_path / "base", 1.0)
    cand = two_cell_run(tmp_path / "cand", 1.0)
    with open(cand / results.RESULTS, "a") as f:
        f.write('{"schema": 1, "impl": "bspline"}\n')
    assert run_compare(base, cand) == 2
    err = capsys.readouterr().err
    assert "results.jsonl:3" in err and "malformed record" in err


def test_missing_run_exits_2(tmp_path, capsys):
    base = two_cell_run(tmp_path / "base", 1.0)
    assert run_compare(base, tmp_path / "nowhere") == 2
    assert "nowhere" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert run_compare(base, tmp_path / "empty") == 2
    assert "holds no results.jsonl" in capsys.readouterr().err


def test_different_suites_exit_2(tmp_path, capsys):
    base = write_run(tmp_path / "base", [record("bspline", procs(1e-3), suite="ci")])
    cand = write_run(tmp_path / "cand", [record("bspline", procs(1e-3), suite="quick")])
    assert run_compare(base, cand) == 2
    assert "different suites" in capsys.readouterr().err


def test_no_common_cells_exit_2(tmp_path, capsys):
    base = write_run(tmp_path / "base", [record("bspline", procs(1e-3))])
    cand = write_run(tmp_path / "cand", [record("fastkan", procs(1e-3))])
    assert run_compare(base, cand) == 2
    assert "no common cells" in capsys.readouterr().err


def test_ok_record_without_values_exits_2(tmp_path, capsys):
    base = two_cell_run(tmp_path / "base", 1.0)
    bad = record("bspline", procs(1e-3))
    bad.time_s = {**bad.time_s, "values": []}
    cand = write_run(tmp_path / "cand", [bad])
    assert run_compare(base, cand) == 2
    assert (
        "results.jsonl:1: malformed record: field time_s: values must hold at least one value"
        in capsys.readouterr().err
    )


def test_bad_threshold_is_a_usage_error(tmp_path):
    base = two_cell_run(tmp_path / "base", 1.0)
    with pytest.raises(SystemExit) as exc:
        run_compare(base, base, "--alpha", "2")
    assert exc.value.code == 2


# --- deterministic gates and broken cells -----------------------------------------------------------------------


def test_flops_growth_fails_even_with_equal_times(tmp_path, capsys):
    base = two_cell_run(tmp_path / "base", 1.0)
    cand = two_cell_run(tmp_path / "cand", 1.0, flops=1_100_000)
    assert run_compare(base, cand) == 1
    assert "flops" in capsys.readouterr().out
    det = compare.compare_deterministic(results.load(base), results.load(cand))
    row = det[(det["impl"] == "bspline") & (det["metric"] == "flops")].iloc[0]
    assert row["verdict"] == "regression" and row["ratio"] == pytest.approx(1.1)
    # within its own threshold it passes
    assert run_compare(base, cand, "--flops-threshold", "0.2") == 0


def test_memory_gate(tmp_path):
    mib = 2**20
    base = two_cell_run(tmp_path / "base", 1.0, peak_mem_bytes=mib)
    small = two_cell_run(tmp_path / "small", 1.0, peak_mem_bytes=mib + 25_600)  # +2.4%
    big = two_cell_run(tmp_path / "big", 1.0, peak_mem_bytes=2 * mib)
    unmeasured = two_cell_run(tmp_path / "unmeasured", 1.0, peak_mem_bytes=None)
    assert run_compare(base, small) == 0
    assert run_compare(base, big) == 1
    assert run_compare(base, unmeasured) == 0
    det = compare.compare_deterministic(results.load(base), results.load(unmeasured))
    row = det[(det["impl"] == "bspline") & (det["metric"] == "peak_mem_bytes")].iloc[0]
    assert row["verdict"] == "not measured"


def test_memory_gate_slack(tmp_path):
    base = two_cell_run(tmp_path / "base", 1.0, peak_mem_bytes=396_812)
    cand = two_cell_run(tmp_path / "cand", 1.0, peak_mem_bytes=422_412)  # +25,600 bytes, +6.5%
    assert run_compare(base, cand) == 1
    assert run_compare(base, cand, "--mem-slack", "65536") == 0


def test_memory_gate_skips_ungated_phases_and_varying_peaks(tmp_path):
    # Backward peaks measured on CPU wobble between runs of the same code: reported, not gated by default.
    base = two_cell_run(tmp_path / "base", 1.0, phase="backward", peak_mem_bytes=2**20)
    cand = two_cell_run(tmp_path / "cand", 1.0, phase="backward", peak_mem_bytes=2**21)
    assert run_compare(base, cand) == 0
    det = compare.compare_deterministic(results.load(base), results.load(cand))
    assert set(det.loc[det["metric"] == "peak_mem_bytes", "verdict"]) == {"not gated", "no change"}
    assert run_compare(base, cand, "--mem-phases", "forward,backward") == 1
    # A gated phase whose peak differs between the rounds of one side is not judged either.
    two_cell_run(tmp_path / "b" / "r1", 1.0, peak_mem_bytes=2**20)
    two_cell_run(tmp_path / "b" / "r2", 1.0, peak_mem_bytes=2**20 + 2**18)
    two_cell_run(tmp_path / "c" / "r1", 1.0, peak_mem_bytes=2**21)
    two_cell_run(tmp_path / "c" / "r2", 1.0, peak_mem_bytes=2**21)
    det = compare.compare_deterministic(compare.load_side(tmp_path / "b"), compare.load_side(tmp_path / "c"))
    row = det[(det["impl"] == "bspline") & (det["metric"] == "peak_mem_bytes")].iloc[0]
    assert row["verdict"] == "varies" and row["varied"]
    assert run_compare(tmp_path / "b", tmp_path / "c") == 0


def test_cell_broken_in_candidate_fails(tmp_path, capsys):
    base = two_cell_run(tmp_path / "base", 1.0)
    cand = write_run(
        tmp_path / "cand",
        [record("bspline", [], status="error", reason="RuntimeError: boom"), record("mlp", procs(1e-4))],
    )
    assert run_compare(base, cand) == 1
    assert "RuntimeError: boom" in capsys.readouterr().out


# --- output -----------------------------------------------------------------------------------------------------

MARKDOWN_SNAPSHOT = """\
### kanbench compare: **FAIL**

`base` (base) vs `cand` (candidate), suite `ci`: 2 cells: 1 regression, 1 no change.

latency gate: p10 of the per-call times (medians shown for reference); a cell regresses when it is more than 10% \
slower and significant (Mann-Whitney U p < 0.01 and the 99% bootstrap interval of the ratio excludes 1). \
Each cell judged alone (judging implementations against each other needs 3 and 8 cells). Deterministic gates: \
FLOPs per call +5%, peak allocator bytes +5% in forward, forward_inference phases.

Every cell: forward 100x100 G=5 k=3 b8 cpu float32.

| verdict | cell | base median | cand median | change (p10) | 99% interval | p |
|---|---|---|---|---|---|---|
| regression | bspline | 1 ms | 1.31 ms | +30.0% | {ci} | 1.8e-04 |

<details><summary>All 2 cells</summary>

| verdict | cell | base median | cand median | change (p10) | 99% interval | p |
|---|---|---|---|---|---|---|
| regression | bspline | 1 ms | 1.31 ms | +30.0% | {ci} | 1.8e-04 |
| no change | mlp | 100 us | 100 us | +0.0% | {ci_mlp} | 1 |

</details>
"""


def test_markdown_snapshot(tmp_path, capsys):
    base = two_cell_run(tmp_path / "base", 1.0)
    cand = two_cell_run(tmp_path / "cand", 1.3)
    assert run_compare(base, cand, "--format", "markdown") == 1
    out = capsys.readouterr().out
    # The bootstrap intervals come from a seeded generator; read them back rather than hard-code numpy's stream.
    comp = compare.compare_runs(results.load(base), results.load(cand))
    rows = comp.latency.set_index("impl")
    ci = {i: f"{compare.fmt_change(rows.loc[i, 'ci_low'])} .. {compare.fmt_change(rows.loc[i, 'ci_high'])}"
          for i in ("bspline", "mlp")}  # fmt: skip
    assert out == MARKDOWN_SNAPSHOT.format(ci=ci["bspline"], ci_mlp=ci["mlp"])
    assert len(out) < 65536  # fits a GitHub comment


def test_json_and_table_formats(tmp_path, capsys):
    base = two_cell_run(tmp_path / "base", 1.0)
    cand = two_cell_run(tmp_path / "cand", 1.3)
    out_file = tmp_path / "c.json"
    assert run_compare(base, cand, "--format", "json", "-o", str(out_file)) == 1
    data = json.loads(capsys.readouterr().out)
    assert data == json.loads(out_file.read_text())
    assert data["failed"] is True and data["settings"]["estimator"] == "p10"
    assert {r["verdict"] for r in data["latency"]} == {"regression", "no change"}
    assert run_compare(base, cand) == 1
    table = capsys.readouterr().out
    assert table.splitlines()[0].endswith("FAIL") and "bspline" in table


def test_rows_name_every_axis_that_distinguishes_cells(tmp_path, capsys):
    # Cells that differ only in grid_size or in compile (an option) must not print as identical rows.
    def side(path: Path, scale: float) -> Path:
        return write_run(
            path,
            [
                record("bspline", procs(scale * 1e-3), config_hash="g5"),
                record("bspline", procs(1e-3), grid_size=8, config_hash="g8"),
                record("bspline", procs(0.7e-3), options={"compile": True}, config_hash="compiled"),
                record("fastkan", procs(2e-3), options={"use_layernorm": False}, config_hash="noln"),
            ],
        )

    base, cand = side(tmp_path / "base", 1.0), side(tmp_path / "cand", 1.3)
    comp = compare.compare_runs(results.load(base), results.load(cand))
    labels = dict(zip(comp.latency["config_hash"], comp.latency["label"]))
    assert labels == {
        "g5": "bspline G=5",
        "g8": "bspline G=8",
        "compiled": "bspline+compile G=5",
        "noln": "fastkan G=5 use_layernorm=False",
    }
    assert len(set(labels.values())) == len(labels)
    assert comp.shared == "forward 100x100 k=3 b8 cpu float32"  # what every cell has in common, said once
    assert set(comp.deterministic["label"]) == set(labels.values())
    assert run_compare(base, cand, "--format", "markdown") == 1
    md = capsys.readouterr().out
    assert "| regression | bspline G=5 |" in md and "| no change | bspline+compile G=5 |" in md
    assert "Every cell: forward 100x100 k=3 b8 cpu float32." in md
    assert run_compare(base, cand, "--format", "json") == 1
    rows = json.loads(capsys.readouterr().out)["latency"]
    assert {r["label"] for r in rows} == set(labels.values())
    assert {r["grid_size"] for r in rows} == {5, 8} and any(r["options"] == {"compile": True} for r in rows)


def test_labels_from_varying_fields():
    rows = [
        {"impl": "bspline", "phase": "forward", "widths_label": "4x2", "grid_size": 5, "spline_order": 3,
         "batch_size": 8, "device": "cpu", "dtype": "float32", "options": {}},
        {"impl": "bspline", "phase": "backward", "widths_label": "4x2", "grid_size": 5, "spline_order": 3,
         "batch_size": 64, "device": "cpu", "dtype": "float32", "options": {"compile": True}},
    ]  # fmt: skip
    fields = compare.distinguishing_fields(rows)
    assert fields == ("impl", "phase", "batch_size")
    assert [compare.cell_label(r, fields) for r in rows] == ["bspline forward b8", "bspline+compile backward b64"]
    assert compare.shared_label(rows, fields) == "4x2 G=5 k=3 cpu float32"
    assert compare.distinguishing_fields(rows[:1]) == ("impl",)  # one cell: its name, the rest is shared
    assert compare.cell_label({"impl": "mlp", "grid_size": float("nan")}, ("impl", "grid_size")) == "mlp"


def test_gate_settings_validate_and_travel_whole(tmp_path):
    with pytest.raises(UsageError, match="estimator"):
        compare.GateSettings(estimator="fastest")
    with pytest.raises(UsageError, match="alpha"):
        compare.GateSettings(alpha=1.5)
    with pytest.raises(UsageError, match="threshold"):
        compare.GateSettings(threshold=-0.1)
    s = compare.GateSettings(mem_phases=["forward"])
    assert s.mem_phases == ("forward",) and s.quantile == 0.1
    base = two_cell_run(tmp_path / "base", 1.0)
    cand = two_cell_run(tmp_path / "cand", 1.3)
    comp = compare.compare_runs(results.load(base), results.load(cand), compare.GateSettings(threshold=0.5))
    assert comp.settings.threshold == 0.5 and comp.exit_code == 0  # 30% slower is within a 50% threshold
    assert json.loads(compare.to_json(comp))["settings"]["threshold"] == 0.5


def test_regress_takes_the_same_settings_object(tmp_path):
    import argparse

    assert regress.GateSettings is compare.GateSettings
    parser = argparse.ArgumentParser()
    regress.configure_parser(parser)
    args = parser.parse_args(["--threshold", "0.2", "--estimator", "median", "--mem-phases", "forward,backward"])
    assert compare.settings_from_args(args) == compare.GateSettings(
        threshold=0.2, estimator="median", mem_phases=("forward", "backward"), relative=False
    )  # regress judges its interleaved rounds cell by cell
    repo = make_repo(tmp_path / "repo")
    loose = compare.GateSettings(threshold=0.5)  # a 30% slowdown is within it: no regression, no confirmation
    runner = FakeRunner(repo, slow={"bspline": 1.3})
    result = regress.run_gate(repo, rounds=1, settings=loose, out=tmp_path / "out", runner=runner, log=quiet)
    assert result.status == "pass" and result.comparison.settings is loose and len(runner.calls) == 2
    base_run = tmp_path / "baseline"
    FakeRunner(repo)(tmp_path / "elsewhere", repo / "suites" / "ci.toml", base_run, {}, [])
    result = regress.run_gate(repo, baseline=base_run, rounds=1, settings=loose, out=tmp_path / "out2",
                                       runner=FakeRunner(repo, slow={"bspline": 1.3}), log=quiet)  # fmt: skip
    assert result.status == "pass" and result.comparison.settings is loose


def test_environment_differences_are_noted(tmp_path):
    base = write_run(tmp_path / "base", [record("bspline", procs(1e-3))], {"cpu_model": "A", "torch": "2.1"})
    cand = write_run(
        tmp_path / "cand",
        [record("bspline", procs(1e-3))],
        {"cpu_model": "B", "torch": "2.1", "env_vars": {"KANBENCH_SLOWDOWN": "bspline=1.15"}},
    )
    comp = compare.compare_runs(results.load(base), results.load(cand))
    assert any("cpu_model" in n for n in comp.notes)
    assert any("KANBENCH_SLOWDOWN" in n for n in comp.notes)


def test_compare_and_regress_do_not_import_torch():
    code = "import sys, kanbench.analysis.compare, kanbench.analysis.regress, kanbench.text.table\n"
    code += "sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent).returncode == 0


# --- regress orchestration with a fake runner -------------------------------------------------------------------

SUITE = """\
[suite]
name = "ci"
kind = "speed"
implementations = ["bspline", "fastkan", "mlp"]
phases = ["forward", "backward"]

[axes]
widths = [[100, 100]]
grid_size = [5]
batch_size = [8, 64]

[timing]
values = 5
processes = 2

[options.fastkan]
use_layernorm = false
"""


class FakeRunner:
    """Writes a synthetic run for the suite it is given; the candidate's implementations are slowed per a plan."""

    def __init__(self, repo: Path, slow: dict[str, float] | None = None, slow_calls: set[int] | None = None,
                 fail_base: bool = False) -> None:  # fmt: skip
        self.repo, self.slow, self.slow_calls, self.fail_base = repo, slow or {}, slow_calls, fail_base
        self.calls: list[tuple[str, str]] = []  # (side, suite file)
        self.extras: list[list] = []

    def __call__(self, tree: Path, suite: Path, out: Path, env: dict, extra: list) -> regress.RunOutcome:
        side = "cand" if Path(tree).resolve() == self.repo.resolve() else "base"
        self.calls.append((side, str(suite)))
        self.extras.append(list(extra))
        only = selection.parse([extra[i + 1] for i, a in enumerate(extra) if a == "--only"])

        def kept(key: str, value) -> bool:
            return key not in only or str(value) in only[key]

        if side == "base":
            assert "KANBENCH_SLOWDOWN" not in env  # the injection knob never reaches the base side
            if self.fail_base:
                return regress.RunOutcome(2, "kanbench: error: argument command: invalid choice: 'run'")
        data = tomllib.loads(Path(suite).read_text())
        slowed = side == "cand" and (self.slow_calls is None or len(self.calls) in self.slow_calls)
        records = []
        for impl in [i for i in data["suite"]["implementations"] if kept("impl", i)]:
            for batch in [b for b in data["axes"]["batch_size"] if kept("batch_size", b)]:
                for phase in [p for p in data["suite"]["phases"] if kept("phase", p)]:
                    scale = 1e-3 * (self.slow.get(impl, 1.0) if slowed else 1.0)
                    records.append(record(impl, procs(scale), phase=phase, batch_size=batch))
        env_json = {"cpu_model": "synthetic", "hostname": "box"}
        write_run(out, records, env_json)
        return regress.RunOutcome(0, "", 0.0)


def git(repo: Path, *args: str) -> str:
    cmd = [
        "git",
        "-C",
        str(repo),
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.com",
        "-c",
        "commit.gpgsign=false",
        *args,
    ]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def make_repo(path: Path, commits: int = 2, with_kanbench: bool = True) -> Path:
    """A git repository with `commits` commits holding suites/ci.toml (and kanbench/ unless told otherwise)."""
    path.mkdir()
    git(path, "init", "-q")
    for i in range(commits):
        (path / "suites").mkdir(exist_ok=True)
        (path / "suites" / "ci.toml").write_text(SUITE)
        if with_kanbench or i == commits - 1:
            (path / "kanbench").mkdir(exist_ok=True)
            (path / "kanbench" / "__init__.py").write_text(f"# version {i}\n")
            (path / "kanbench" / "run.py").write_text('parser.add_argument("--only")\n')
        (path / "file.txt").write_text(str(i))
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", f"commit {i}")
    return path


def quiet(_message: str) -> None:
    pass


def test_regress_interleaves_and_confirms_a_real_slowdown(tmp_path):
    repo = make_repo(tmp_path / "repo")
    runner = FakeRunner(repo, slow={"bspline": 1.3})
    result = regress.run_gate(repo, rounds=2, out=tmp_path / "out", runner=runner, log=quiet)
    sides = [side for side, _ in runner.calls]
    assert sides == ["base", "cand", "base", "cand", "base", "cand", "base", "cand"]  # ABAB, then ABAB to confirm
    # The re-measure covers only the failing implementation's cells.
    only = selection.parse([runner.extras[-1][runner.extras[-1].index("--only") + 1]])
    assert only["impl"] == {"bspline"} and runner.extras[-2] == runner.extras[-1]
    assert result.status == "fail" and result.exit_code == 1
    assert len(result.confirmed) == 4  # bspline x 2 batch sizes x 2 phases
    assert {h for h, _ in result.confirmed} == {"bspline-b8", "bspline-b64"}
    md = (tmp_path / "out" / "comparison.md").read_text()
    assert "**FAIL**" in md and "Confirmation: 4 of 4" in md
    assert json.loads((tmp_path / "out" / "comparison.json").read_text())["status"] == "fail"


def test_regress_unconfirmed_flag_passes(tmp_path):
    repo = make_repo(tmp_path / "repo")
    # The candidate is slow only in its first-measurement runs (calls 2 and 4), as a burst of interference would be.
    runner = FakeRunner(repo, slow={"bspline": 1.3}, slow_calls={2, 4})
    result = regress.run_gate(repo, rounds=2, out=tmp_path / "out", runner=runner, log=quiet)
    assert len(runner.calls) == 8
    assert result.status == "pass" and result.exit_code == 0
    assert result.confirmed == [] and len(result.comparison.unconfirmed) == 4
    assert "regression, not confirmed" in regress.render(result, "markdown")


def test_regress_no_change_runs_once(tmp_path):
    repo = make_repo(tmp_path / "repo")
    runner = FakeRunner(repo)
    result = regress.run_gate(repo, rounds=3, out=tmp_path / "out", runner=runner, log=quiet)
    assert [s for s, _ in runner.calls] == ["base", "cand"] * 3
    assert result.status == "pass" and result.confirmation is None


def test_regress_without_confirmation_fails_at_once(tmp_path):
    repo = make_repo(tmp_path / "repo")
    runner = FakeRunner(repo, slow={"mlp": 1.3}, slow_calls={2, 4})
    result = regress.run_gate(repo, rounds=2, out=tmp_path / "out", runner=runner, confirm=False, log=quiet)
    assert len(runner.calls) == 4 and result.status == "fail"


def test_regress_first_commit_is_skipped_with_exit_0(tmp_path):
    repo = make_repo(tmp_path / "repo", commits=1)
    runner = FakeRunner(repo)
    result = regress.run_gate(repo, out=tmp_path / "out", runner=runner, log=quiet)
    assert result.status == "skipped" and result.exit_code == 0
    assert "first commit" in result.reason and runner.calls == []
    assert "Nothing was compared" in (tmp_path / "out" / "comparison.md").read_text()


def test_regress_ref_without_kanbench_or_failing_is_skipped(tmp_path):
    repo = make_repo(tmp_path / "repo", with_kanbench=False)
    result = regress.run_gate(repo, out=tmp_path / "out1", runner=FakeRunner(repo), log=quiet)
    assert result.status == "skipped" and "no kanbench package" in result.reason
    repo2 = make_repo(tmp_path / "repo2")
    runner = FakeRunner(repo2, fail_base=True)
    result = regress.run_gate(repo2, out=tmp_path / "out2", runner=runner, log=quiet)
    assert result.status == "skipped" and result.exit_code == 0
    assert "invalid choice: 'run'" in result.reason
    assert [s for s, _ in runner.calls] == ["base"]


def test_regress_falls_back_to_refs_own_suite(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "suites" / "ci.toml").write_text(SUITE + "# a key REF's harness would not know\n")
    fake = FakeRunner(repo)

    def runner(tree, suite, out, env, extra):
        if Path(tree).resolve() != repo.resolve() and "would not know" in Path(suite).read_text():
            fake.calls.append(("base", str(suite)))
            return regress.RunOutcome(2, "unknown key")
        return fake(tree, suite, out, env, extra)

    result = regress.run_gate(repo, rounds=2, out=tmp_path / "out", runner=runner, log=quiet)
    assert result.status == "pass"
    assert [s for s, _ in fake.calls] == ["base", "base", "cand", "base", "cand"]
    assert fake.calls[1][1] != fake.calls[2][1]  # REF ran its own copy of the suite
    assert (tmp_path / "out" / "failed-probe").exists() is False  # the failed attempt left no run behind


def test_regress_against_a_ref_that_does_not_exist_is_bad_input(tmp_path, capsys, monkeypatch):
    repo = make_repo(tmp_path / "repo")
    with pytest.raises(UsageError, match="--against 'no-such-branch': no such commit"):
        regress.run_gate(repo, against="no-such-branch", out=tmp_path / "o1", runner=FakeRunner(repo), log=quiet)
    assert not (tmp_path / "o1").exists()
    monkeypatch.chdir(repo)
    assert main(["regress", "--against", "no-such-branch", "--out", str(tmp_path / "o2")]) == 2
    assert "no such commit" in capsys.readouterr().err and not (tmp_path / "o2").exists()


def test_regress_against_a_missing_baseline_leaves_no_out(tmp_path, capsys, monkeypatch):
    repo = make_repo(tmp_path / "repo")
    monkeypatch.chdir(repo)
    assert main(["regress", "--baseline", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "nope" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_regress_non_git_is_skipped(tmp_path):
    plain = tmp_path / "plain"
    (plain / "suites").mkdir(parents=True)
    (plain / "suites" / "ci.toml").write_text(SUITE)
    result = regress.run_gate(plain, out=tmp_path / "o2", runner=FakeRunner(plain), log=quiet)
    assert result.status == "skipped" and "not a git checkout" in result.reason


def test_regress_shallow_clone_is_skipped_but_a_named_ref_missing_there_is_bad_input(tmp_path):
    repo = make_repo(tmp_path / "repo", commits=3)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(clone)], check=True)
    result = regress.run_gate(clone, out=tmp_path / "out", runner=FakeRunner(clone), log=quiet)
    assert result.status == "skipped" and "shallow clone" in result.reason
    with pytest.raises(UsageError, match="--against 'typo-branch': no such commit .* shallow clone"):
        regress.run_gate(clone, against="typo-branch", out=tmp_path / "o2", runner=FakeRunner(clone), log=quiet)


def test_regress_missing_suite_is_a_usage_error(tmp_path):
    repo = make_repo(tmp_path / "repo")
    with pytest.raises(UsageError, match="no such file"):
        regress.run_gate(repo, suite="suites/none.toml", out=tmp_path / "out", runner=FakeRunner(repo), log=quiet)


def test_regress_inject_slowdown_reaches_only_the_candidate(tmp_path):
    repo = make_repo(tmp_path / "repo")
    seen = []

    def runner(tree, suite, out, env, extra):
        seen.append(env.get("KANBENCH_SLOWDOWN"))
        return FakeRunner(repo)(tree, suite, out, env, extra)

    regress.run_gate(repo, rounds=1, out=tmp_path / "out", runner=runner, cand_slowdown="bspline=1.15", log=quiet)
    assert seen == [None, "bspline=1.15"]


def test_baseline_mode(tmp_path):
    repo = make_repo(tmp_path / "repo")
    baseline = tmp_path / "baseline"
    FakeRunner(repo)(tmp_path / "elsewhere", repo / "suites" / "ci.toml", baseline, {}, [])
    runner = FakeRunner(repo, slow={"fastkan": 1.3})
    result = regress.run_gate(repo, baseline=baseline, rounds=2, out=tmp_path / "out", runner=runner, log=quiet)
    assert [s for s, _ in runner.calls] == ["cand"] * 4  # two rounds, then two to confirm
    assert result.status == "fail" and {h for h, _ in result.confirmed} == {"fastkan-b8", "fastkan-b64"}
    ok = regress.run_gate(repo, baseline=baseline, rounds=1, out=tmp_path / "out2", runner=FakeRunner(repo), log=quiet)
    assert ok.status == "pass"


def test_confirmation_only_spec_selects_the_failing_cells():
    from kanbench import suite as suite_mod
    from kanbench.suite import selection

    full = suite_mod.parse(SUITE, "ci.toml")
    failing = [c for c in full.cells() if c.impl == "fastkan" and c.batch_size == 64]
    import pandas as pd

    frame = pd.DataFrame(
        [{"impl": c.impl, "phase": "backward", "widths_label": "x".join(map(str, c.widths)), "grid_size": c.grid_size,
          "batch_size": c.batch_size, "dtype": c.dtype, "device": c.device} for c in failing]
    )  # fmt: skip
    only = selection.parse([regress.only_spec(frame)])
    kept = selection.cells(full.cells(), only, "ci.toml")
    assert selection.phases(full.phases, only, "ci.toml") == ("backward",)
    assert {c.config_hash for c in kept} == {c.config_hash for c in failing}
    assert regress.knows_only(ROOT)


def test_a_candidate_whose_every_cell_broke_fails_the_gate(tmp_path, capsys):
    base = two_cell_run(tmp_path / "base", 1.0)
    reason = "RuntimeError: boom"
    cand = write_run(tmp_path / "cand", [record(i, [], status="error", reason=reason) for i in ("bspline", "mlp")])
    assert run_compare(base, cand) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and out.count("BROKEN") == 2 and reason in out


INJECTION = "</details>\n\n### kanbench compare: **pass**\n<img src=x onerror=alert(1)>\x1b[2J\x07\rok"


def test_strings_from_runs_cannot_forge_markdown_or_drive_the_terminal(tmp_path, capsys):
    base = two_cell_run(tmp_path / "base", 1.0)
    cand = write_run(tmp_path / "cand", [record("bspline", [], status="error", reason=INJECTION),
                                          record("mlp", procs(1e-4))])  # fmt: skip
    assert run_compare(base, cand, "--format", "markdown") == 1
    md = capsys.readouterr().out
    assert md.count("</details>") == 1 and md.count("<details>") == 1  # only the page's own
    assert "<img" not in md and "\n### kanbench compare: **pass**" not in md and "\x1b" not in md
    assert [line for line in md.splitlines() if line.startswith("###")] == ["### kanbench compare: **FAIL**"]
    assert run_compare(base, cand) == 1
    table = capsys.readouterr().out
    assert not set(table) & {"\x1b", "\x07", "\r"} and "\\x1b[2J\\x07\\rok" in table


# Per-cell factors between two runs of one commit on a noisy machine: cells scatter by about +-15% (a spread of
# about 0.1 in log ratio), and every cell of the candidate run is 8% slower besides.
CELL_NOISE = [1.12, 0.9, 1.05, 0.95, 1.15, 0.88, 1.0, 1.08, 0.93, 1.1, 0.97, 1.03, 0.91, 1.13, 0.96, 1.06]
IMPLS, BATCHES = ("bspline", "fastkan", "rswaf", "mlp"), (1, 8, 64, 256)


def noisy_pair(tmp_path: Path, slow: dict | None = None) -> tuple[Path, Path]:
    """Two runs of 4 implementations x 4 batch sizes whose cells differ by CELL_NOISE and a common 8%; `slow`
    multiplies an implementation's candidate times on top."""
    base, cand = [], []
    for i, (impl, batch) in enumerate((i, b) for i in IMPLS for b in BATCHES):
        t = 1e-3 * (1 + i / 10)
        base.append(record(impl, procs(t), batch_size=batch))
        factor = 1.08 * CELL_NOISE[i] * (slow or {}).get(impl, 1.0)
        cand.append(record(impl, procs(t * factor), batch_size=batch))
    return write_run(tmp_path / "base", base), write_run(tmp_path / "cand", cand)


def test_compare_judges_each_implementation_against_the_others_in_the_same_runs(tmp_path, capsys):
    base, cand = noisy_pair(tmp_path / "same")
    per_cell = compare.compare_runs(results.load(base), results.load(cand), compare.GateSettings(relative=False))
    assert per_cell.failed and len(per_cell.regressions()) >= 3  # every value tight: each cell's test is sure
    comp = compare.compare_runs(results.load(base), results.load(cand))
    assert not comp.failed and set(comp.implementations["verdict"]) == {"no change"}
    assert comp.shift.shift == pytest.approx(1.08, rel=0.03) and 0.05 < comp.shift.spread < 0.2
    assert f"Judged against the runs' own shift: the candidate ran x{comp.shift.shift:.3f} the base" in (
        compare.gate_rule(comp)
    )
    assert comp.shift.shift != 1.0 and not any("ran 8% slower" in n for n in comp.notes)  # within the threshold
    assert run_compare(base, cand) == 0 and run_compare(base, cand, "--per-cell") == 1
    capsys.readouterr()
    base, cand = noisy_pair(tmp_path / "slow", slow={"fastkan": 1.3})  # a real 30% slowdown of one implementation
    comp = compare.compare_runs(results.load(base), results.load(cand))
    rows = comp.implementations.set_index("implementation")
    assert comp.failed and list(comp.implementation_regressions()["implementation"]) == ["fastkan"]
    assert rows.loc["fastkan", "ratio"] == pytest.approx(1.3, rel=0.06) and rows.loc["fastkan", "z"] > 3
    assert set(rows.drop("fastkan")["verdict"]) == {"no change"}
    assert run_compare(base, cand) == 1
    out = capsys.readouterr().out
    assert "slower implementation(s): fastkan" in out and "change vs the runs' shift" in out


def test_a_single_cell_far_beyond_the_pairs_scatter_still_fails(tmp_path):
    base, cand = noisy_pair(tmp_path)
    frame = results.load(cand)
    rows = frame.index[(frame["impl"] == "rswaf") & (frame["batch_size"] == 64)]
    for column in ("time_values", "time_process_medians"):
        frame.loc[rows, column] = frame.loc[rows, column].apply(lambda v: [x * 3 for x in v])
    comp = compare.compare_runs(results.load(base), frame)
    cells = comp.latency.set_index(["impl", "batch_size"])
    assert cells.loc[("rswaf", 64), "verdict"] == "regression" and comp.failed
    assert (cells.drop(("rswaf", 64))["verdict"] != "regression").all()


def test_compare_says_whether_the_runs_share_commit_machine_and_time(tmp_path):
    env = {"cpu_model": "A", "hostname": "vm", "git_commit": "abc123def4567890",
           "run": {"started_utc": "2026-12-03T10:00:00Z"}}  # fmt: skip
    base = write_run(tmp_path / "base", [record("bspline", procs(1e-3))], env)
    same = write_run(tmp_path / "same", [record("bspline", procs(1e-3))], env)
    notes = compare.compare_runs(results.load(base), results.load(same)).notes
    assert "both runs measured commit abc123def456" in notes
    assert "both runs ran on the same machine (hostname 'vm', cpu_model 'A')" in notes
    later = {**env, "hostname": "other", "git_commit": "fff", "run": {"started_utc": "2026-12-03T13:30:00Z"}}
    other = write_run(tmp_path / "other", [record("bspline", procs(1e-3))], later)
    notes = compare.compare_runs(results.load(base), results.load(other)).notes
    assert any("different commits: abc123def456 (base) and fff (candidate)" in n for n in notes)
    assert any("different machines: 'vm' (base) and 'other'" in n for n in notes)
    assert any("3.5 hours apart" in n and "kanbench regress" in n for n in notes)


def test_a_shift_every_implementation_shares_is_said_not_judged(tmp_path):
    base, cand = noisy_pair(tmp_path / "all", slow={i: 1.3 for i in IMPLS})  # 1.08 x 1.3 and the cell noise: 42%
    comp = compare.compare_runs(results.load(base), results.load(cand))
    assert not comp.failed  # judged against each other, nothing moved
    assert any("the candidate ran 42% slower than the base over the median implementation" in n for n in comp.notes)
    assert compare.compare_runs(results.load(base), results.load(cand), compare.GateSettings(relative=False)).failed
    base, cand = noisy_pair(tmp_path / "most", slow={"bspline": 1.3, "fastkan": 1.3, "rswaf": 1.3})
    comp = compare.compare_runs(results.load(base), results.load(cand))  # three of four slower: the median moved
    assert "mlp" in set(comp.implementations.loc[comp.implementations.verdict == "improvement", "implementation"])
    assert any("slower than the base over the median implementation" in n for n in comp.notes)  # and it says so


def _disk_fills_halfway(monkeypatch) -> None:
    """Path.write_text writes half its text, then fails as a full disk does (ENOSPC)."""
    import errno

    def half(self, text, *args, **kwargs):
        with open(self, "w", encoding="utf-8") as f:
            f.write(text[: len(text) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", half)


def test_compare_output_on_a_full_disk_keeps_the_old_file_and_names_it(tmp_path, capsys, monkeypatch):
    base, cand = two_cell_run(tmp_path / "base", 1.0), two_cell_run(tmp_path / "cand", 1.0)
    out = tmp_path / "verdict.json"
    out.write_text('{"old": true}\n')
    _disk_fills_halfway(monkeypatch)
    assert run_compare(base, cand, "--format", "json", "-o", str(out)) == 2
    err = capsys.readouterr().err
    assert f"-o {out}: cannot write the comparison: No space left on device" in err
    assert json.loads(out.read_text()) == {"old": True}  # never truncated to half a verdict
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base", "cand", "verdict.json"]  # no temporary left


def test_regress_outputs_on_a_full_disk_keep_whole_files_and_name_them(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "comparison.json").write_text('{"status": "pass"}\n')
    _disk_fills_halfway(monkeypatch)
    with pytest.raises(UsageError, match=r"out/comparison.md: cannot write the gate's outcome: No space left"):
        regress.write_outputs(regress.GateResult("skipped", reason="x"), out)
    assert json.loads((out / "comparison.json").read_text()) == {"status": "pass"}
    assert sorted(p.name for p in out.iterdir()) == ["comparison.json"]


def test_regress_refuses_an_empty_against_or_baseline_before_anything(tmp_path, capsys, monkeypatch):
    repo = make_repo(tmp_path / "repo")
    runner = FakeRunner(repo)
    with pytest.raises(UsageError, match="--against '': an empty REF"):
        regress.run_gate(repo, against="", out=tmp_path / "o1", runner=runner, log=quiet)
    assert runner.calls == [] and not (tmp_path / "o1").exists()
    monkeypatch.chdir(repo)
    for flag in ("--against", "--baseline"):
        assert main(["regress", flag, "", "--out", str(tmp_path / "o2")]) == 2
        assert f"{flag} '': an empty" in capsys.readouterr().err and not (tmp_path / "o2").exists()
    assert main(["regress", "--out", ""]) == 2  # not the default results/runs/<time>-regress
    assert "--out '': an empty path" in capsys.readouterr().err and not (repo / "results").exists()


def test_compare_and_report_refuse_an_empty_output_path(tmp_path, capsys, monkeypatch):
    base, cand = two_cell_run(tmp_path / "base", 1.0), two_cell_run(tmp_path / "cand", 1.0)
    monkeypatch.chdir(tmp_path)
    assert run_compare(base, cand, "-o", "") == 2  # an unset variable: never quietly no file
    assert "-o '': an empty path" in capsys.readouterr().err
    assert main(["report", str(base), "-o", ""]) == 2  # nor quietly the default reports/<run>.html
    assert "-o '': an empty path" in capsys.readouterr().err and not (tmp_path / "reports").exists()


def test_regress_refuses_a_baseline_of_another_suite_or_clock_before_measuring(tmp_path):
    import dataclasses

    repo = make_repo(tmp_path / "repo")
    other = write_run(tmp_path / "other", [record("bspline", procs(1e-3), suite="quick")])
    runner = FakeRunner(repo)
    with pytest.raises(UsageError, match=r"--baseline .*other: ran suite quick, not ci \("):
        regress.run_gate(repo, baseline=other, out=tmp_path / "o1", runner=runner, log=quiet)
    timed = record("bspline", procs(1e-3))
    counts = dataclasses.replace(timed, unit="instructions", instructions=timed.time_s, time_s=None)
    counted = write_run(tmp_path / "counted", [counts])
    with pytest.raises(UsageError, match="measured with the instructions clock, and this gate measures with the wall"):
        regress.run_gate(repo, baseline=counted, out=tmp_path / "o2", runner=runner, log=quiet)
    env = {"cpu_model": "synthetic", "run": {"timing": {"clock": "thread"}}}
    thread = write_run(tmp_path / "thread", [timed], env)
    with pytest.raises(UsageError, match="measured with the thread clock, and this gate measures with the wall"):
        regress.run_gate(repo, baseline=thread, out=tmp_path / "o3", runner=runner, log=quiet)
    assert runner.calls == [] and not any((tmp_path / o).exists() for o in ("o1", "o2", "o3"))


def test_compare_notes_different_clocks_and_keeps_the_dirty_mark(tmp_path):
    commit = "018eb73788b2aa55cc00112233445566778899aa"
    wall = {"git_commit": commit, "run": {"timing": {"clock": "wall"}}}
    thread = {"git_commit": commit + "-dirty", "run": {"timing": {"clock": "thread"}}}
    base = write_run(tmp_path / "base", [record("bspline", procs(1e-3))], wall)
    cand = write_run(tmp_path / "cand", [record("bspline", procs(1e-3))], thread)
    notes = compare.compare_runs(results.load(base), results.load(cand)).notes
    assert any("different clocks: wall (base) and thread (candidate)" in n for n in notes)
    assert "the runs measured different commits: 018eb73788b2 (base) and 018eb73788b2-dirty (candidate)" in notes
    notes = compare.compare_runs(results.load(cand), results.load(cand)).notes
    assert any(n.startswith("both runs measured commit 018eb73788b2-dirty (a modified checkout") for n in notes)
    assert not any("clocks" in n for n in notes)


def test_compare_output_to_a_device_is_written_through_and_a_link_replaced(tmp_path, capsys):
    base, cand = two_cell_run(tmp_path / "base", 1.0), two_cell_run(tmp_path / "cand", 1.0)
    (tmp_path / "null").symlink_to("/dev/null")  # as `-o /dev/stdout` is: no file to keep whole, nothing to rename
    assert run_compare(base, cand, "--format", "json", "-o", str(tmp_path / "null")) == 0
    assert (tmp_path / "null").is_symlink() and Path("/dev/null").is_char_device()
    (tmp_path / "real.json").write_text("{}")
    (tmp_path / "link.json").symlink_to(tmp_path / "real.json")  # as the store does: never written through a link
    assert run_compare(base, cand, "--format", "json", "-o", str(tmp_path / "link.json")) == 0
    assert json.loads((tmp_path / "link.json").read_text())["failed"] is False
    assert (tmp_path / "real.json").read_text() == "{}" and not (tmp_path / "link.json").is_symlink()


def test_regress_outputs_escape_the_commit_subject_and_the_quoted_run_output(tmp_path, capsys):
    evil = "fix \u202e`**pass**` <img src=x>\x1b[2J"
    skipped = regress.GateResult("skipped", reason=f"REF's kanbench run failed:\n    {evil}", against=f"main ({evil})")
    md, table = regress.render(skipped, "markdown"), regress.render(skipped, "table")
    for text in (md, table):
        assert not set(text) & {"\u202e", "\x1b"} and "\\u202e" in text
    assert "<img" not in md and "**pass**" not in md and md.startswith("### kanbench regress vs main")
    base = two_cell_run(tmp_path / "base", 1.0)
    comp = compare.compare_runs(results.load(base), results.load(base))
    passed = regress.GateResult("pass", against=f"main ({evil})", comparison=comp)
    for fmt in ("markdown", "table"):
        text = regress.render(passed, fmt)
        assert not set(text) & {"\u202e", "\x1b"} and "\\u202e" in text.split("\n")[0]
    assert "<img" not in regress.render(passed, "markdown")
    regress._log(f"base: {evil}")
    assert not set(capsys.readouterr().err) & {"\u202e", "\x1b"}


# --- interleaved runs: paired relative ratios (analysis.judge via compare.relative) ---------------------------------

BASE_TIMES = {"mlp": 1e-4, "mlp-iso": 3e-4, "fastkan": 1e-3, "bspline-fast": 8e-4, "rswaf": 3e-3}


def interleaved_run(path: Path, seed: int, impls=("mlp", "mlp-iso", "fastkan", "bspline-fast"), scale=None,
                    batches=(8, 16, 32, 64), machine: float = 1.0, noise: float = 0.03) -> Path:  # fmt: skip
    """A schema-5 run of synthetic interleaved groups (one per batch): each moment (process, round) slows every
    implementation of the group alike, each value has its own small noise; scale(impl) slows one implementation."""
    import random

    rng = random.Random(seed)
    records = []
    for batch in batches:
        moments = {(p, r): machine * (1 + rng.uniform(0, 0.5)) for p in range(2) for r in range(5)}
        for impl in impls:
            factor = (scale or (lambda i: 1.0))(impl)
            per = [[BASE_TIMES[impl] * factor * moments[(p, r)] * (1 + rng.uniform(0, noise)) for r in range(5)]
                   for p in range(2)]  # fmt: skip
            rec = record(impl, per, batch_size=batch, run_id=path.name, group=f"g{batch}-{path.name}")
            rec.time_s = TimeStats.from_values(per, loops=10, rounds=[list(range(5))] * 2).__dict__
            records.append(rec)
    return write_run(path, records)


def judged(base: Path, cand: Path) -> compare.Comparison:
    return compare.compare_runs(results.load(base), results.load(cand))


def test_interleaved_runs_are_judged_by_paired_relative_ratios(tmp_path):
    comp = judged(interleaved_run(tmp_path / "a", 1), interleaved_run(tmp_path / "b", 2))
    assert set(comp.latency["rule"]) == {"paired"} and not comp.failed


def test_a_slowdown_below_the_threshold_is_not_counted_twice(tmp_path):
    three = ("mlp", "mlp-iso", "fastkan")
    slower = interleaved_run(tmp_path / "b", 2, impls=three, scale=lambda i: 1.07 if i == "fastkan" else 1.0,
                             batches=(8, 16, 32, 64, 128))  # fmt: skip
    comp = judged(interleaved_run(tmp_path / "a", 1, impls=three, batches=(8, 16, 32, 64, 128)), slower)
    assert not comp.failed  # 7% < the 10% threshold (it read +11% when the group shift was taken out twice)
    assert set(comp.latency["rule"]) == {"unpaired"}  # three cannot say which one moved: each cell's own ratio
    four = ("mlp", "mlp-iso", "fastkan", "bspline-fast")
    slower = interleaved_run(tmp_path / "d", 2, impls=four, scale=lambda i: 1.07 if i == "fastkan" else 1.0)
    comp = judged(interleaved_run(tmp_path / "c", 1, impls=four), slower)
    assert not comp.failed and set(comp.latency["rule"]) == {"paired"}
    fast = comp.implementations.set_index("implementation").loc["fastkan", "ratio"]
    assert fast == pytest.approx(1.07, abs=0.03)


def test_a_real_regression_is_caught_and_no_other_implementation_blamed(tmp_path):
    slower = interleaved_run(tmp_path / "b", 2, scale=lambda i: 1.3 if i == "fastkan" else 1.0)
    comp = judged(interleaved_run(tmp_path / "a", 1), slower)
    assert comp.failed and set(comp.implementation_regressions()["implementation"]) == {"fastkan"}
    others = comp.implementations.set_index("implementation").drop("fastkan")
    assert set(others["verdict"]) == {"no change"}


def test_a_machine_slower_as_a_whole_fails_nothing(tmp_path):
    comp = judged(interleaved_run(tmp_path / "a", 1), interleaved_run(tmp_path / "b", 2, machine=1.25))
    assert not comp.failed
    assert any("slower than the base" in note for note in comp.notes)  # the shift is still said


def test_a_new_implementation_in_the_candidate_moves_no_other(tmp_path):
    impls = ("mlp", "mlp-iso", "fastkan", "bspline-fast", "rswaf")
    cand = interleaved_run(tmp_path / "b", 2, impls=impls, scale=lambda i: 1.3 if i == "fastkan" else 1.0)
    comp = judged(interleaved_run(tmp_path / "a", 1), cand)
    assert comp.failed and set(comp.implementation_regressions()["implementation"]) == {"fastkan"}


def test_cells_left_alone_in_their_group_are_judged_raw_against_the_raw_shift(tmp_path):
    base = interleaved_run(tmp_path / "a", 1, batches=(8, 16))
    cand = interleaved_run(tmp_path / "b", 2, batches=(8, 16), machine=1.25)
    lone = [record(i, procs(BASE_TIMES[i] * 1.25 * 1.1), batch_size=64) for i in ("fastkan",)]
    for r in [record(i, procs(BASE_TIMES[i] * 1.1), batch_size=64) for i in ("fastkan",)]:
        results.append(base, r)
    for r in lone:
        results.append(cand, r)
    comp = judged(base, cand)
    rules = dict(zip(comp.latency["config_hash"], comp.latency["rule"]))
    assert rules["fastkan-b64"] == "unpaired" and rules["fastkan-b8"] == "paired"
    assert not comp.failed  # the lone cell moved with the machine: the raw shift takes it out
