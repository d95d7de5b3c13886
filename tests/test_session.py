"""The run session that every suite kind shares: lock, resume settings, --only, profile --resume/--shard, and the
validation it does before anything runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SMALL_SUITE, kanbench, write_suite

from kanbench import cli, results
from kanbench.errors import UsageError
from kanbench.results import record
from kanbench.run import session
from kanbench.suite import parse


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with session.locked(run_dir):
        with pytest.raises(UsageError, match=rf"is being written by process {os.getpid()} "):
            with session.locked(run_dir):
                pass
        proc = kanbench("run", str(write_suite(tmp_path)), "--out", str(run_dir), "--smoke")
        assert proc.returncode == 2 and f"process {os.getpid()}" in proc.stderr, proc.stderr
    with session.locked(run_dir):  # released with its holder: nothing stale blocks the next writer
        pass


def test_a_lock_left_by_a_killed_run_does_not_block_resume(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from kanbench.run import session\n"
         f"with session.locked(Path({str(run_dir)!r})):\n    print('held', flush=True); time.sleep(60)"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    assert "process" in (run_dir / session.LOCK).read_text()  # the file is still there, the lock is not
    with session.locked(run_dir):
        pass


def test_only_selects_cells_and_phases(tmp_path, capsys):
    suite = write_suite(tmp_path)
    assert cli.main(["run", str(suite), "--dry-run", "--only", "impl=mlp,impl=fastkan,phase=forward"]) == 0
    out = capsys.readouterr().out
    assert "2 cells x 1 phases" in out and " mlp " in out and "bspline" not in out
    for bad, needle in (("impl=nope", "impl=nope: no cell of"), ("impl=mlp,impl=nope", "impl=nope: no cell of"),
                        ("impl=mlp,batch_size=8", "batch_size=8: no cell of"), ("colour=red", "unknown key 'colour'"),
                        ("impl", "expected key=value"), ("phase=accuracy", "--only phase=accuracy")):  # fmt: skip
        assert cli.main(["run", str(suite), "--dry-run", "--only", bad]) == 2
        assert needle in capsys.readouterr().err


@pytest.fixture(scope="module")
def only_run(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """(suite, run, process) of one `run --smoke --only impl=mlp,phase=forward`, read by the tests that need one."""
    where = tmp_path_factory.mktemp("only")
    suite, out = write_suite(where), where / "run"
    proc = kanbench("run", str(suite), "--smoke", "--quiet", "--out", str(out), "--only", "impl=mlp,phase=forward")
    return suite, out, proc


def test_only_runs_just_those_records(only_run):
    _, out, proc = only_run
    assert proc.returncode == 0, proc.stderr
    records = results.read_records(out)
    assert [(r.impl, r.phase, r.status) for r in records] == [("mlp", "forward", "ok")]
    assert "1 records: 1 ok, 0 skipped, 0 error" in proc.stdout


def test_resume_refuses_other_settings(only_run, capsys):
    suite, out, proc = only_run
    assert proc.returncode == 0, proc.stderr
    env_before = json.loads((out / "environment.json").read_text())
    assert cli.main(["run", str(suite), "--resume", "--quiet", "--out", str(out), "--only", "impl=mlp"]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "timing" in err and "phases" in err, err
    assert cli.main(["run", str(suite), "--resume", "--smoke", "--quiet", "--out", str(out), "--shard", "1/2"]) == 2
    assert "shard: None then, '1/2' now" in capsys.readouterr().err
    assert json.loads((out / "environment.json").read_text()) == env_before


@pytest.mark.parametrize(
    "old,new,needle",
    [
        ("min_time = 0.0005", "min_time = inf", "[timing].min_time: must be a finite number"),
        ("min_time = 0.0005", "min_time = nan", "[timing].min_time: must be a finite number"),
        ("threads = 1", "threads = 1\ncell_timeout_s = inf", "[timing].cell_timeout_s: must be a finite number"),
        ("threads = 1", "threads = 1\n[limits]\nmax_call_s = inf", "[limits].max_call_s: must be a finite number"),
        ("threads = 1", "threads = 1\n[options.fastkan]\nscale = nan", "[options.fastkan].scale: must be a finite"),
    ],
)
def test_non_finite_numbers_are_refused(old, new, needle):
    with pytest.raises(UsageError) as info:
        parse(SMALL_SUITE.replace(old, new), "s.toml")
    assert needle in str(info.value)


def test_non_finite_flags_and_refused_build_options_exit_2_before_anything_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    suite = write_suite(tmp_path)
    for flag, needle in (("inf", "must be a finite number"), ("nan", "must be a finite number"), ("-1", "must be > 0")):
        assert cli.main(["run", str(suite), "--min-time", flag]) == 2
        assert f"--min-time: {needle}" in capsys.readouterr().err
    bad = write_suite(tmp_path, SMALL_SUITE + "\n[options.fastkan]\nno_such_option = 3\n", "bad.toml")
    assert cli.main(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "[options.fastkan]" in err and "no_such_option" in err
    assert not (tmp_path / "results").exists()


def test_an_adapter_reached_ad_hoc_or_by_entry_point_gives_one_impl_and_hash():
    pytest.importorskip("inkan")
    by_name = parse(SMALL_SUITE.replace('"bspline", "fastkan", "rswaf", "mlp"', '"inkan"'))
    ad_hoc = parse(
        SMALL_SUITE.replace('"bspline", "fastkan", "rswaf", "mlp"', '"implementations.inkan_adapter:adapter"')
    )
    assert ad_hoc.implementations == by_name.implementations == ("inkan",)
    assert [(c.impl, c.config_hash) for c in ad_hoc.cells()] == [(c.impl, c.config_hash) for c in by_name.cells()]
    assert ad_hoc.cells()[0].source == "implementations.inkan_adapter:adapter"


def test_profile_gains_shard_and_resume(tmp_path):
    suite, out = write_suite(tmp_path), tmp_path / "prof"
    args = ("profile", str(suite), "--smoke", "--quiet", "--out", str(out), "--traces", str(tmp_path / "traces"))
    proc = kanbench(*args, "--shard", "1/2", "--only", "impl=mlp,impl=fastkan,phase=forward")
    assert proc.returncode == 0, proc.stderr
    first = results.read_records(out)
    assert {(r.impl, r.phase, r.profiled_phase) for r in first} <= {("mlp", "profile", "forward"),
                                                                     ("fastkan", "profile", "forward")}  # fmt: skip
    assert first and all(r.status == "ok" for r in first)
    proc = kanbench(*args, "--shard", "1/2", "--only", "impl=mlp,impl=fastkan,phase=forward", "--resume")
    assert proc.returncode == 0 and "already done" not in proc.stdout, proc.stderr
    assert [r.key for r in results.read_records(out)] == [r.key for r in first]  # nothing measured twice


def test_schema_1_records_are_upgraded_on_read():
    line = {"schema": 1, "run_id": "r", "suite": "s", "impl": "mlp", "family": "mlp", "phase": "profile",
            "device": "cpu", "dtype": "float32", "batch_size": 4, "widths": [2, 2], "grid_size": 3,
            "spline_order": 3, "num_basis": 0, "params": 6, "params_total": 6, "status": "ok", "reason": None,
            "time_s": None, "peak_mem_bytes": None, "flops": 8, "metrics": {"phase": "forward", "coverage": 1.0},
            "config_hash": "abc", "options": {}}  # fmt: skip
    r = record.Record.from_dict(line)
    assert r.schema == record.SCHEMA and r.profiled_phase == "forward" and r.metrics == {"coverage": 1.0}
    with pytest.raises(ValueError, match="field batch_size: must be an int >= 1"):
        record.Record.from_dict({**line, "batch_size": "4"})
    with pytest.raises(ValueError, match="field profiled_phase"):
        record.Record.from_dict({**line, "schema": 2})


def test_committed_baselines_still_load():
    for run in sorted(p for p in (ROOT / "results" / "baselines").iterdir() if p.is_dir()):
        frame = results.load(run)
        assert len(frame) and set(frame["schema"]) == {record.SCHEMA}, run


def test_metrics_are_typed_per_kind():
    base = {"schema": 2, "run_id": "r", "suite": "s", "impl": "mlp", "family": "mlp", "device": "cpu",
            "dtype": "float32", "batch_size": 4, "widths": [2, 2], "grid_size": 3, "spline_order": 3, "num_basis": 0,
            "params": 6, "params_total": 6, "status": "ok", "reason": None, "peak_mem_bytes": None, "flops": None,
            "config_hash": "abc", "options": {}, "time_s": None}  # fmt: skip
    accuracy = {"dataset": "digits", "seed": 0, "metric": "test_accuracy", "final_test": 0.9, "diverged": False,
                "epochs": 1, "train_time_s": 2.5, "curve": {"epoch": [1], "test": [0.9]}}  # fmt: skip
    assert record.Record.from_dict({**base, "phase": "accuracy", "metrics": accuracy}).metrics == accuracy
    with pytest.raises(ValueError, match="field metrics.final_test: must be int or float"):
        record.Record.from_dict({**base, "phase": "accuracy", "metrics": {**accuracy, "final_test": "0.9"}})
    with pytest.raises(ValueError, match="field metrics.dataset: an ok accuracy record must have it"):
        record.Record.from_dict(
            {**base, "phase": "accuracy", "metrics": {**accuracy, "dataset": None} | {}}
            | {"metrics": {k: v for k, v in accuracy.items() if k != "dataset"}}
        )
    with pytest.raises(ValueError, match="field metrics.curve.epoch: must be a list of numbers"):
        record.Record.from_dict({**base, "phase": "accuracy", "metrics": {**accuracy, "curve": {"epoch": ["a"]}}})
    with pytest.raises(ValueError, match="field metrics.diverged: must be bool"):
        record.Record.from_dict({**base, "phase": "accuracy", "metrics": {**accuracy, "diverged": 1}})
    profile = {**base, "phase": "profile", "profiled_phase": "forward", "metrics": {"coverage": "all"}}
    with pytest.raises(ValueError, match="field metrics.coverage"):
        record.Record.from_dict(profile)
    with pytest.raises(ValueError, match="field metrics: must be an object or null"):
        record.Record.from_dict({**base, "phase": "accuracy", "metrics": [1]})


def test_resume_keeps_the_filter_however_spelled_and_refuses_another_slowdown(tmp_path, capsys, monkeypatch):
    suite, out = write_suite(tmp_path), tmp_path / "run"
    only = ["--only", "impl=mlp,phase=forward"]
    assert cli.main(["run", str(suite), "--smoke", "--quiet", "--out", str(out), *only]) == 0
    spelled = ["--only", "phase=forward", "--only", "impl=mlp"]
    link = tmp_path / "latest-tiny"  # the run made it beside itself
    assert link.is_symlink()
    capsys.readouterr()
    assert cli.main(["run", str(suite), "--smoke", "--quiet", "--out", str(link), "--resume", *spelled]) == 0
    assert link.is_symlink() and link.resolve() == out.resolve()  # resumed through the link, the link intact
    assert {r.run_id for r in results.read_records(out)} == {"run"}
    monkeypatch.setenv("KANBENCH_SLOWDOWN", "mlp=5")
    assert cli.main(["run", str(suite), "--smoke", "--quiet", "--out", str(out), "--resume", *spelled]) == 2
    assert "slowdown: None then, 'mlp=5' now" in capsys.readouterr().err
