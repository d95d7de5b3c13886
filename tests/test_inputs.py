"""Hostile inputs and places, as a user would try them: each is exit 2 with the path and the reason (or the
documented behaviour), never a traceback, and no run damages another."""

from __future__ import annotations

import errno
import os
import signal
import struct
import subprocess
import sys
import time

import pytest
from conftest import ROOT, SMALL_SUITE, kanbench, write_suite

from kanbench import cli, results
from kanbench.measure import datasets
from kanbench.results.record import Identity, make
from kanbench.run import session
from kanbench.suite import MAX_CELLS, parse


def usage(capsys, argv: list[str]) -> str:
    """stderr of a command that must exit 2 without a traceback."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith(f"kanbench {argv[0]}: error: "), err
    return err


def test_unwritable_places_are_named_with_the_os_reason(tmp_path, capsys, monkeypatch):
    suite = write_suite(tmp_path)
    assert "/proc/self/run" in usage(capsys, ["run", str(suite), "--smoke", "--out", "/proc/self/run"])
    monkeypatch.chdir("/proc/self")  # a working directory where results/runs cannot be made, even as root
    assert "results/runs" in usage(capsys, ["run", str(suite), "--smoke"])
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    only = ["--only", "impl=mlp,phase=forward"]
    assert cli.main(["run", str(suite), "--smoke", "--quiet", "--out", str(run), *only]) == 0
    capsys.readouterr()
    assert "ending in .html" in usage(capsys, ["report", str(run), "-o", str(tmp_path)])
    (tmp_path / "d.html").mkdir()
    assert "is a directory" in usage(capsys, ["report", str(run), "-o", str(tmp_path / "d.html")])
    assert "cannot write the report" in usage(capsys, ["report", str(run), "-o", "/proc/self/r.html"])
    assert "--alpha nan" in usage(capsys, ["report", str(run), str(run), "--alpha", "nan"])


def test_odd_suite_names_and_files(tmp_path, capsys):
    for name, needle in (("x" * 300, "at most 100 characters"), ("a\\u0000b", "printable"), ("a\\u001bb", "printable")):
        path = write_suite(tmp_path, SMALL_SUITE.replace('name = "tiny"', f'name = "{name}"'))
        assert needle in usage(capsys, ["run", str(path), "--dry-run"])
    binary = tmp_path / "latin1.toml"
    binary.write_bytes(SMALL_SUITE.replace('name = "tiny"', 'name = "tiny"\ndescription = "caf\xe9"').encode("latin-1"))
    assert "not UTF-8" in usage(capsys, ["run", str(binary), "--dry-run"])


def test_a_stored_suite_that_is_not_utf8_refuses_resume(tmp_path, capsys):
    suite, run = write_suite(tmp_path), tmp_path / "run"
    run.mkdir()
    (run / results.SUITE).write_bytes(b"\xff\xfe garbage")
    assert "differs from" in usage(capsys, ["run", str(suite), "--resume", "--out", str(run)])


def test_out_never_clobbers_user_files(tmp_path, capsys, monkeypatch):
    suite = write_suite(tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert "holds other files" in usage(capsys, ["run", str(suite), "--smoke", "--out", str(mine)])
    assert (mine / "notes.txt").read_text() == "keep me" and sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results" / "runs").mkdir(parents=True)
    (tmp_path / "results" / "runs" / "latest-tiny").write_text("my file")
    assert "latest-tiny exists and is not a link" in usage(capsys, ["run", str(suite), "--smoke"])
    assert (tmp_path / "results" / "runs" / "latest-tiny").read_text() == "my file"
    assert sorted(p.name for p in (tmp_path / "results" / "runs").iterdir()) == ["latest-tiny"]


def test_huge_sweeps_are_summarised_and_need_yes(tmp_path, capsys):
    wide = SMALL_SUITE.replace("batch_size = [4]", f"batch_size = {list(range(1, 3001))}")
    path = write_suite(tmp_path, wide)
    count = parse(wide).cell_count()
    assert count > MAX_CELLS
    err = usage(capsys, ["run", str(path)])
    assert f"{count:,} cells" in err and "--yes" in err and not (tmp_path / "results").exists()
    assert "not listed" in usage(capsys, ["run", str(path), "--dry-run"])
    medium = write_suite(
        tmp_path, SMALL_SUITE.replace("batch_size = [4]", f"batch_size = {list(range(1, 201))}"), "m.toml"
    )
    assert cli.main(["run", str(medium), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) <= session.DRY_RUN_LINES and "more cells not listed" in out[-2] and "800 cells" in out[-1]


@pytest.mark.parametrize(
    "flag,value,needle",
    [("--values", "100000", "--values: must be <= 10000"), ("--processes", "1000", "--processes: must be <= 64")],
)
def test_upper_bounds_on_values_processes_and_threads(tmp_path, capsys, flag, value, needle):
    assert needle in usage(capsys, ["run", str(write_suite(tmp_path)), flag, value, "--dry-run"])
    too_many = write_suite(tmp_path, SMALL_SUITE.replace("threads = 1", "threads = 100000"), "t.toml")
    assert "[timing].threads: must be <= 1024" in usage(capsys, ["run", str(too_many), "--dry-run"])


@pytest.mark.parametrize("spec", ["bspline=fast", "bspline=nan", "bspline=0.5", "=2"])
def test_a_malformed_slowdown_knob_is_refused_in_the_parent(tmp_path, capsys, monkeypatch, spec):
    monkeypatch.setenv("KANBENCH_SLOWDOWN", spec)
    monkeypatch.chdir(tmp_path)
    assert "KANBENCH_SLOWDOWN" in usage(capsys, ["run", str(write_suite(tmp_path)), "--smoke"])
    assert not (tmp_path / "results").exists()


def test_an_ad_hoc_factory_in_the_working_directory_works_with_the_console_script(tmp_path):
    (tmp_path / "localkan.py").write_text(
        "import implementations\n"
        "def adapter():\n"
        "    return implementations.get('mlp').variant('localkan', 'the MLP under a local name')\n"
    )
    suite = write_suite(tmp_path, SMALL_SUITE.replace('"bspline", "fastkan", "rswaf", "mlp"', '"localkan:adapter"'))
    script = [sys.executable, "-c", "import sys; from kanbench.cli import main; sys.exit(main())"]  # the entry point
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([*script, "run", str(suite), "--smoke", "--quiet", "--out", "run", "--only", "phase=forward"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert [(r.impl, r.status) for r in results.read_records(tmp_path / "run")] == [("localkan", "ok")]


def test_a_full_disk_leaves_no_torn_line(tmp_path, monkeypatch):
    ident = Identity("s", "mlp", "mlp", "cpu", "float32", 4, (3, 2), 3, 3, 0, {}, "abc")
    run = tmp_path / "run"
    run.mkdir()
    results.append(run, make(ident, "run", "forward", "skipped", "no"))
    real_write = os.write

    def half_then_full(fd, data):
        real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(OSError, match="No space left") as info:
        results.append(run, make(ident, "run", "backward", "skipped", "no"))
    assert info.value.filename == str(run / results.RESULTS)
    monkeypatch.setattr(os, "write", real_write)
    text = (run / results.RESULTS).read_text()
    assert text.endswith("\n") and text.count("\n") == 1


def test_idx_headers_whose_dimensions_overflow_are_refused(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**31) + b"\0" * 16)
    with pytest.raises(datasets.DatasetError, match="IDX header declares shape"):
        datasets.read_idx(path)


def test_ctrl_c_is_reported_by_the_parent_only(tmp_path):
    slow = SMALL_SUITE.replace("min_time = 0.0005", "min_time = 0.05").replace("values = 3", "values = 50")
    suite = write_suite(tmp_path, slow)
    proc = subprocess.Popen(
        [sys.executable, "-m", "kanbench", "run", str(suite), "--out", str(tmp_path / "run")],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
        # a job started in the background of a non-interactive shell (nohup ... &) inherits SIGINT ignored, and so
        # would this child; reset it, as a terminal's foreground job has it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (tmp_path / "run" / results.ENVIRONMENT).exists():
        time.sleep(0.1)
    time.sleep(4)  # workers started and measuring
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends: the whole foreground process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "KeyboardInterrupt" not in err and "Traceback" not in err and "interrupted" in err, err


def test_a_worker_killed_by_a_signal_is_named(tmp_path):
    from kanbench.measure.pool import _death

    assert _death(-signal.SIGKILL) == "killed by SIGKILL, e.g. for memory"
    assert _death(-signal.SIGSEGV) == "killed by SIGSEGV" and _death(3) == "exit status 3"


def test_two_runs_on_one_out_cannot_both_write(tmp_path):
    suite = write_suite(tmp_path, SMALL_SUITE.replace("min_time = 0.0005", "min_time = 0.02"))
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "kanbench", "run", str(suite), "--out", str(out), "--quiet"],
                             cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out / session.LOCK).exists():
        time.sleep(0.05)
    second = kanbench("run", str(suite), "--out", str(out), "--quiet")
    again = kanbench("run", str(suite), "--out", str(out), "--resume", "--quiet")
    first.communicate(timeout=300)
    assert first.returncode == 0
    assert second.returncode == 2 and "being written by process" in second.stderr, second.stderr
    assert again.returncode == 2 and "being written by process" in again.stderr, again.stderr
    keys = [r.key for r in results.read_records(out)]
    assert len(keys) == len(set(keys)) == 12


BAD_MODELS = """
import torch
from torch import nn
import implementations


class Bad(nn.Module):
    def __init__(self, widths, mode):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(widths[0], widths[-1])])
        self.mode = mode

    def forward(self, x):
        y = self.layers[0](x)
        return y[:, :1] if self.mode == "shape" else y * float("nan")


def build(widths, grid_size=5, spline_order=3, mode="shape"):
    return Bad(widths, mode)


def param_count(widths, grid_size=5, spline_order=3, mode="shape"):
    return widths[0] * widths[-1] + widths[-1]


def flop_breakdown(widths, grid_size, spline_order, batch, mode="shape"):
    return {"matmul": 2 * batch * widths[0] * widths[-1], "elementwise": 0}


def adapter():
    return implementations.Adapter("bad", "mlp", build, param_count, flop_breakdown)
"""


@pytest.mark.parametrize("mode,needle", [("shape", "forward gave shape (4, 1), expected (4, 3)"),
                                         ("nan", "forward gave 12 non-finite value(s) of 12")])  # fmt: skip
def test_a_wrong_forward_says_what_was_wrong(tmp_path, monkeypatch, mode, needle):
    from kanbench.measure import checks, worker

    # the forward's own check, not gradcheck's
    monkeypatch.setattr(checks, "check_once", lambda impl, options, device="cpu": None)
    (tmp_path / "badmodels.py").write_text(BAD_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    cell = {"impl": "bad", "source": "badmodels:adapter", "widths": [6, 3], "grid_size": 3, "spline_order": 3,
            "batch_size": 4, "device": "cpu", "dtype": "float32", "options": {"mode": mode}}  # fmt: skip
    timing = {"warmup": 0, "min_time": 1e-4, "values": 1}
    reply = worker.measure_cell(cell, "h", ["forward"], timing, 2.0, True)
    assert reply["status"] == "error" and reply["reason"].startswith(needle), reply["reason"]


def test_deeply_nested_suites_and_huge_numbers_are_refused(tmp_path, capsys):
    deep = write_suite(tmp_path, SMALL_SUITE + "\n[limits]\nx = " + "[" * 5000 + "]" * 5000 + "\n", "deep.toml")
    assert "nested too deeply" in usage(capsys, ["run", str(deep), "--dry-run"])
    slow = write_suite(tmp_path, SMALL_SUITE.replace("min_time = 0.0005", "min_time = 1e308"), "slow.toml")
    assert "[timing].min_time: must be <= 60" in usage(capsys, ["run", str(slow), "--dry-run"])
    assert "--min-time: must be <= 60" in usage(capsys, ["run", str(write_suite(tmp_path)), "--min-time", "1e308"])


def test_links_in_a_run_directory_are_never_followed(tmp_path, capsys):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    suite, run = write_suite(tmp_path), tmp_path / "run"
    run.mkdir()
    (run / session.LOCK).symlink_to(precious)
    assert "lock file" in usage(capsys, ["run", str(suite), "--smoke", "--out", str(run)])
    assert precious.read_text() == "keep me"
    other = tmp_path / "other.jsonl"
    other.write_text("")
    target = tmp_path / "linked"
    target.mkdir()
    (target / results.RESULTS).symlink_to(other)
    ident = Identity("s", "mlp", "mlp", "cpu", "float32", 4, (3, 2), 3, 3, 0, {}, "abc")
    with pytest.raises(OSError, match="a link is refused"):
        results.append(target, make(ident, "run", "forward", "skipped", "no"))
    assert other.read_text() == ""


def test_the_cell_limit_counts_what_only_and_shard_leave(tmp_path, capsys):
    wide = SMALL_SUITE.replace("batch_size = [4]", f"batch_size = {list(range(1, 3001))}")
    path = write_suite(tmp_path, wide)
    assert cli.main(["run", str(path), "--dry-run", "--shard", "1/100"]) == 0
    assert "120 cells x 3 phases" in capsys.readouterr().out
    assert cli.main(["run", str(path), "--dry-run", "--only", "impl=mlp,batch_size=7"]) == 0
    assert "1 cells x 3 phases" in capsys.readouterr().out
