"""The instruction clock (callgrind): the Record's unit, the gate's own threshold, the errors without valgrind,
and, where valgrind is installed (always in CI), real counts of a workload of known size."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT
from test_compare import SUITE, git, quiet, record

from kanbench import results
from kanbench.analysis import compare, regress
from kanbench.cli import main
from kanbench.errors import UsageError
from kanbench.results.record import Record
from kanbench.suite import load as parse_suite

HAS_VALGRIND = bool(shutil.which("valgrind"))


def counted(impl: str, values: list[float], **extra) -> Record:
    """An ok record of the instruction clock: values are instructions per call."""
    r = record(impl, [values], **extra)
    return dataclasses.replace(r, unit="instructions", instructions=r.time_s, time_s=None, flop_per_s=None)


def frame(records: list[Record], name: str) -> pd.DataFrame:
    f = pd.DataFrame([results.flatten(r) for r in records])
    f.attrs.update(environment={}, run_dir=name)
    return f


# --- the Record says its unit -------------------------------------------------------------------------------------


def test_a_counted_record_keeps_its_values_in_instructions():
    r = counted("mlp", [1.0e6, 1.001e6, 0.999e6])
    back = Record.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.unit == "instructions" and back.instructions["median"] == 1.0e6 and back.time_s is None
    row = results.flatten(back)
    assert row["instructions_median"] == 1.0e6 and row["time_median"] is None
    line = r.to_dict()
    with pytest.raises(ValueError, match="field time_s: a record of unit 'instructions' keeps its values"):
        Record.from_dict({**line, "time_s": line["instructions"]})
    with pytest.raises(ValueError, match="field instructions: an ok forward record of unit 'instructions'"):
        Record.from_dict({**line, "instructions": None})
    with pytest.raises(ValueError, match="field unit: must be one of s, instructions"):
        Record.from_dict({**line, "unit": "cycles"})


# --- the gate judges counts by their own threshold ------------------------------------------------------------------


def test_counts_gate_on_a_small_threshold_without_a_test():
    base = frame([counted("bspline", [1.000e6, 1.0004e6, 0.9998e6]), counted("mlp", [2e5, 2e5, 2e5])], "base")
    same = frame([counted("bspline", [1.0003e6, 0.9999e6, 1.0001e6]), counted("mlp", [2e5, 2e5, 2.0002e5])], "cand")
    slower = frame([counted("bspline", [1.03e6, 1.03e6, 1.0301e6]), counted("mlp", [2e5, 2e5, 2e5])], "cand")
    assert not compare.compare_runs(base, same).failed
    comp = compare.compare_runs(base, slower)
    verdicts = dict(zip(comp.latency["impl"], comp.latency["verdict"]))
    assert verdicts == {"bspline": "regression", "mlp": "no change"} and comp.failed
    assert set(comp.latency["unit"]) == {"instructions"}
    # a 3% rise passes a 5% threshold; the rule and the units say what was judged
    assert not compare.compare_runs(base, slower, compare.GateSettings(count_threshold=0.05)).failed
    text = compare.render(comp, "table")
    assert "instruction-count gate" in text and "M instr" in text and "Mann-Whitney" not in text


def test_counts_and_seconds_are_never_compared():
    timed = frame([record("bspline", [[1e-3, 1.01e-3, 1.02e-3]])], "base")
    counts = frame([counted("bspline", [1e6, 1e6, 1e6])], "cand")
    with pytest.raises(UsageError, match="the base measured s and the candidate instructions"):
        compare.compare_runs(timed, counts)


# --- suites, errors, fallback --------------------------------------------------------------------------------------

CPU_SUITE = """
[suite]
name = "counts"
kind = "speed"
implementations = ["mlp"]
phases = ["forward"]

[axes]
widths = [[4, 2]]
grid_size = [3]
batch_size = [2]
device = ["cpu"]

[timing]
threads = 1
clock = "instructions"
"""


def test_the_instruction_clock_needs_one_thread_and_the_cpu(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(CPU_SUITE)
    assert parse_suite(path).timing.clock == "instructions"
    for text, message in ((CPU_SUITE.replace("threads = 1\n", "threads = 2\n"), "it needs threads = 1"),
                          (CPU_SUITE.replace('["cpu"]', '["cpu", "cuda"]'), "cannot time GPU work")):  # fmt: skip
        path.write_text(text)
        with pytest.raises(UsageError, match=message):
            parse_suite(path)


def test_run_without_valgrind_says_how_to_get_it(tmp_path, capsys, monkeypatch):
    path = tmp_path / "s.toml"
    path.write_text(CPU_SUITE)
    monkeypatch.setenv("PATH", str(tmp_path))  # no valgrind here
    assert main(["run", str(path), "--out", str(tmp_path / "run")]) == 2
    assert "apt-get install valgrind" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing started, nothing left behind


def test_the_gate_falls_back_to_the_thread_clock_without_valgrind(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(CPU_SUITE)
    said: list[str] = []
    clock = regress.gate_clock(path, said.append, which=lambda _: None)
    assert clock == regress.GateClock(False, ("--clock", "thread"), "thread")
    assert "falls back from instruction counts to the thread clock" in said[0] and "apt-get install valgrind" in said[0]
    assert regress.gate_clock(path, said.append, which=lambda _: "/usr/bin/valgrind").counts
    path.write_text(CPU_SUITE.replace('clock = "instructions"\n', ""))
    assert regress.gate_clock(path, said.append) == regress.GateClock(False)


class CountRunner:
    """Writes instruction-count runs; the candidate's counts of `slow` implementations are scaled."""

    def __init__(self, repo: Path, slow: dict[str, float]) -> None:
        self.repo, self.slow, self.calls = repo, slow, []

    def __call__(self, tree, suite, out, env, extra):
        side = "cand" if Path(tree).resolve() == self.repo.resolve() else "base"
        self.calls.append((side, list(extra)))
        scale = self.slow if side == "cand" else {}
        records = [counted(impl, [1e6 * scale.get(impl, 1.0)] * 3, phase=phase)
                   for impl in ("bspline", "mlp") for phase in ("forward", "backward")]  # fmt: skip
        out.mkdir(parents=True, exist_ok=True)
        for r in records:
            results.append(out, r)
        results.write_environment(out, {"cpu_model": "synthetic"})
        return regress.RunOutcome(0, "", 0.0)


def test_the_counts_gate_runs_one_round_per_side_and_confirms_nothing(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "suites").mkdir(parents=True)
    (repo / "kanbench").mkdir()
    (repo / "kanbench" / "__init__.py").write_text("")
    (repo / "suites" / "ci.toml").write_text(
        SUITE.replace("processes = 2", 'processes = 1\nthreads = 1\nclock = "instructions"')
    )
    git(repo, "init", "-q")
    for i in range(2):
        (repo / "f").write_text(str(i))
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", str(i))
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    runner = CountRunner(repo, {"bspline": 1.05})
    result = regress.run_gate(repo, out=tmp_path / "out", runner=runner, log=quiet)
    assert sorted(side for side, _ in runner.calls) == ["base", "cand"]  # one round each, no re-measure
    assert result.status == "fail" and result.confirmed and {h for h, _ in result.confirmed} == {"bspline-b8"}
    runner = CountRunner(repo, {"bspline": 1.01})  # within the 2% threshold
    assert regress.run_gate(repo, out=tmp_path / "out2", runner=runner, log=quiet).status == "pass"


# --- real counts under callgrind -------------------------------------------------------------------------------------


def need_valgrind() -> None:
    if not HAS_VALGRIND:
        if os.environ.get("CI"):
            pytest.fail("valgrind is missing in CI: .ci/run installs it (apt-get install valgrind)")
        pytest.skip("valgrind is not installed (apt-get install valgrind)")


LOOP_SUITE = """
[suite]
name = "loop-counts"
kind = "speed"
implementations = ["loop_adapter:adapter"]
phases = ["forward"]

[axes]
widths = [[1, 1], [2, 1], [4, 1], [8, 1]]
grid_size = [3]
batch_size = [1]
device = ["cpu"]

[timing]
warmup = 2
values = 3
processes = 1
threads = 1
clock = "instructions"
"""


def test_counts_of_a_python_loop_scale_linearly(tmp_path):
    """N = 10,000 to 80,000 iterations of the slowdown's busy loop under callgrind: each doubling adds twice the
    instructions of the last one within 1%, and every value of a cell repeats within 0.5%."""
    need_valgrind()
    suite = tmp_path / "loop.toml"
    suite.write_text(LOOP_SUITE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), str(ROOT)])}
    done = subprocess.run([sys.executable, "-m", "kanbench", "run", str(suite), "--out", str(tmp_path / "run"),
                           "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    records = sorted(results.read_records(tmp_path / "run"), key=lambda r: r.widths[0])
    assert [r.unit for r in records] == ["instructions"] * 4 and all(r.time_s is None for r in records)
    medians = [r.instructions["median"] for r in records]
    for r in records:
        assert max(r.instructions["values"]) / min(r.instructions["values"]) < 1.005, r.instructions["values"]
    steps = [b - a for a, b in zip(medians, medians[1:])]  # 10,000, 20,000, 40,000 more iterations
    assert steps[0] > 0
    for a, b in zip(steps, steps[1:]):
        assert b / a == pytest.approx(2.0, rel=0.01), medians
