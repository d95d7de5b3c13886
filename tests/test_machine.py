"""The roofline ceilings: positive, finite, and measured once per machine."""

from __future__ import annotations

import argparse
import json
import math
import os

import pytest
from conftest import kanbench

from kanbench import results
from kanbench.errors import UsageError
from kanbench.measure import machine
from kanbench.suite import BOUNDS


def test_measure_returns_positive_finite_figures():
    f = machine.measure("cpu", threads=1, gemm_n=128, copy_bytes=2**20)
    assert math.isfinite(f["peak_flop_per_s"]) and f["peak_flop_per_s"] > 1e6
    assert math.isfinite(f["peak_bytes_per_s"]) and f["peak_bytes_per_s"] > 1e6


def test_figures_are_cached_per_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("KANBENCH_CACHE", str(tmp_path))
    calls = []

    def fake_measure(device, threads, dtype="float32"):
        calls.append((device, threads))
        return {"device": device, "threads": threads, "peak_flop_per_s": 1e9, "peak_bytes_per_s": 1e9, "method": "x"}

    monkeypatch.setattr(machine, "measure", fake_measure)
    assert machine.figures("cpu", 1, measure_missing=False) is None and not calls
    first = machine.figures("cpu", 1)
    again = machine.figures("cpu", 1)
    assert first == again and calls == [("cpu", 1)]  # the second call reads the cache
    machine.figures("cpu", 2)  # another thread count is another machine configuration
    assert calls == [("cpu", 1), ("cpu", 2)]
    assert (tmp_path / "machine.json").exists()


def test_machine_peak_shapes():
    assert results.peak_for({"peak_flop_per_s": 1e12}, "peak_flop_per_s", "cuda:0", "float32") == 1e12
    assert results.peak_for({"peak_flop_per_s": {"float32": 2e12}}, "peak_flop_per_s", "cpu", "float32") == 2e12
    nested = {"peak_flop_per_s": {"cuda": {"float32": 3e12, "bfloat16": 9e12}}}
    assert results.peak_for(nested, "peak_flop_per_s", "cuda:0", "bfloat16") == 9e12
    assert results.peak_for(nested, "peak_flop_per_s", "cpu", "float32") is None
    assert results.peak_for(None, "peak_flop_per_s", "cpu", "float32") is None
    assert results.peak_for({}, "peak_bytes_per_s", "cpu", "float32") is None
    # a run over several devices keeps each device's ceilings apart
    run = {"peak_flop_per_s": 1.0, "by_device": {"cuda": {"peak_flop_per_s": {"float32": 5e13, "bfloat16": 7e14}}}}
    assert results.peak_for(run, "peak_flop_per_s", "cuda:0", "bfloat16") == 7e14
    assert results.peak_for(run, "peak_flop_per_s", "cuda", "float16") is None  # never another dtype's ceiling


# ---- a corrupt or unwritable cache is repaired or only costs time, never a traceback ------------------------------

GOOD = {"device": "cpu", "threads": 1, "peak_flop_per_s": 5e10, "peak_bytes_per_s": 2e10, "method": "fake"}


@pytest.fixture
def fake_measure(monkeypatch):
    """machine.measure replaced by one that returns GOOD at once and records its calls (no GEMM is timed)."""
    calls: list[tuple[str, int, str]] = []

    def measure(device, threads, dtype="float32"):
        calls.append((device, threads, dtype))
        return {**GOOD, "device": device, "dtype": dtype}

    monkeypatch.setattr(machine, "measure", measure)
    return calls


def _entry(**changes) -> dict:
    return {machine.machine_key("cpu", 1): {**GOOD, **changes}}


CORRUPT = {
    "truncated": lambda: b"{",
    "empty": lambda: b"",
    "a list": lambda: b"[1, 2]",
    "a string": lambda: b'"machine"',
    "binary": lambda: bytes(range(256)),
    "deeply nested": lambda: b"[" * 100_000,
    "NaN peak": lambda: json.dumps(_entry(peak_flop_per_s=math.nan)).encode(),
    "infinite peak": lambda: json.dumps(_entry(peak_bytes_per_s=math.inf)).encode(),
    "zero peak": lambda: json.dumps(_entry(peak_flop_per_s=0)).encode(),
    "boolean peak": lambda: json.dumps(_entry(peak_flop_per_s=True)).encode(),
    "string peak": lambda: json.dumps(_entry(peak_flop_per_s="5e10")).encode(),
    "no method": lambda: json.dumps({machine.machine_key("cpu", 1): {"peak_flop_per_s": 1e9}}).encode(),
    "entry a list": lambda: json.dumps({machine.machine_key("cpu", 1): [1e9, 1e9]}).encode(),
}


@pytest.mark.parametrize("content", CORRUPT.values(), ids=CORRUPT.keys())
@pytest.mark.parametrize("refresh", [False, True], ids=["cached", "refresh"])
def test_a_corrupt_roofline_cache_is_measured_again_and_rewritten(tmp_path, monkeypatch, capsys, fake_measure,
                                                                  content, refresh):  # fmt: skip
    monkeypatch.setenv("KANBENCH_CACHE", str(tmp_path))
    (tmp_path / "machine.json").write_bytes(content())
    found = machine.figures("cpu", 1, refresh=refresh)
    assert found["peak_flop_per_s"] == GOOD["peak_flop_per_s"] and fake_measure == [("cpu", 1, "float32")]
    assert f"roofline cache {tmp_path / 'machine.json'}" in capsys.readouterr().err
    repaired = json.loads((tmp_path / "machine.json").read_text())  # strict JSON again: no NaN, the entry kept
    assert repaired == {found["key"]: {**GOOD, "dtype": "float32"}}
    assert machine.figures("cpu", 1) == found and len(fake_measure) == 1  # read from the repaired cache


def test_a_sound_entry_survives_a_bad_neighbour(tmp_path, monkeypatch, fake_measure):
    monkeypatch.setenv("KANBENCH_CACHE", str(tmp_path))
    cache = {**_entry(), "cpu | other machine": {**GOOD, "peak_flop_per_s": "fast"}}
    (tmp_path / "machine.json").write_text(json.dumps(cache))
    assert machine.figures("cpu", 1)["peak_flop_per_s"] == GOOD["peak_flop_per_s"] and not fake_measure


def test_kanbench_machine_repairs_a_corrupt_cache_and_exits_0(tmp_path, monkeypatch, capsys, fake_measure):
    monkeypatch.setenv("KANBENCH_CACHE", str(tmp_path))
    (tmp_path / "machine.json").write_text("{")
    args = argparse.Namespace(device=["cpu"], threads=1, dtype=None, refresh=True)
    assert machine.command(args) == 0
    out = capsys.readouterr()
    assert "peak matmul 50.0 GFLOP/s, copy 20.0 GB/s" in out.out and "unreadable (JSONDecodeError" in out.err


def test_an_unwritable_roofline_cache_only_costs_time(tmp_path, monkeypatch, capsys, fake_measure):
    """A cache directory that cannot be made (a read-only HOME; here its parent is a file): figures, and a warning."""
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("KANBENCH_CACHE", str(tmp_path / "file" / "kanbench"))
    found = machine.figures("cpu", 1)
    assert found["peak_flop_per_s"] == GOOD["peak_flop_per_s"]
    assert "cannot write" in capsys.readouterr().err and not list(tmp_path.glob("file*/**/*.tmp"))


def test_peak_for_refuses_non_finite_ceilings():
    for bad in (math.nan, math.inf, -1.0, 0, True):
        assert results.peak_for({"peak_flop_per_s": bad}, "peak_flop_per_s", "cpu", "float32") is None


def test_a_corrupt_cache_is_repaired_even_when_nothing_is_measured(tmp_path, monkeypatch, capsys, fake_measure):
    monkeypatch.setenv("KANBENCH_CACHE", str(tmp_path))
    (tmp_path / "machine.json").write_text(json.dumps({**_entry(), "cpu | elsewhere": {**GOOD, "method": None}}))
    assert machine.figures("cpu", 1, measure_missing=False)["method"] == "fake" and not fake_measure
    assert json.loads((tmp_path / "machine.json").read_text()) == _entry()
    assert "'cpu | elsewhere': no method" in capsys.readouterr().err
    assert machine.figures("cpu", 2, measure_missing=False) is None and not capsys.readouterr().err


# ---- --threads is bounded as a suite's [timing].threads is ---------------------------------------------------------


@pytest.mark.parametrize("threads", [-3, -1, BOUNDS["threads"] + 1, 99_999])
def test_kanbench_machine_refuses_threads_outside_the_suites_bound(monkeypatch, fake_measure, threads):
    args = argparse.Namespace(device=["cpu"], threads=threads, dtype=None, refresh=False)
    with pytest.raises(UsageError, match=rf"--threads must be >= 0 and <= {BOUNDS['threads']} .*got {threads}"):
        machine.command(args)
    assert not fake_measure  # refused before anything is measured (99,999 threads crashed torch: exit 139)


def test_kanbench_machine_threads_exit_2_on_the_command_line():
    proc = kanbench("machine", "--threads", "-3")
    assert proc.returncode == 2 and f"--threads must be >= 0 and <= {BOUNDS['threads']}" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_no_home_directory_only_costs_time(monkeypatch, capsys, fake_measure):
    """No HOME and no passwd entry (a container's arbitrary uid): Path.home() raises; figures are measured anyway."""

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.delenv("KANBENCH_CACHE", raising=False)
    monkeypatch.setattr(machine.Path, "home", no_home)
    assert machine.figures("cpu", 1, measure_missing=False) is None
    assert machine.figures("cpu", 1)["peak_flop_per_s"] == GOOD["peak_flop_per_s"] and len(fake_measure) == 1
    assert "no roofline cache (no home directory; set KANBENCH_CACHE" in capsys.readouterr().err


def test_a_roofline_cache_that_is_no_regular_file_or_huge_is_not_read(tmp_path, monkeypatch, capsys, fake_measure):
    monkeypatch.setenv("KANBENCH_CACHE", str(tmp_path))
    os.mkfifo(tmp_path / "machine.json")  # reading it would block until some writer came
    assert machine.load_cache(tmp_path / "machine.json") == ({}, ["not a regular file"])
    (tmp_path / "machine.json").unlink()
    (tmp_path / "machine.json").write_bytes(b" " * (machine.MAX_CACHE_BYTES + 1))
    assert "over 1048576 bytes" in machine.load_cache(tmp_path / "machine.json")[1][0]
    assert machine.figures("cpu", 1)["peak_flop_per_s"] == GOOD["peak_flop_per_s"]  # measured and rewritten
    assert json.loads((tmp_path / "machine.json").read_text())
