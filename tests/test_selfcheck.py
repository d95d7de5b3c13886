"""`kanbench selfcheck`: the checks pass on a sound harness here, and each one can fail."""

from __future__ import annotations

import os

import pytest
from conftest import kanbench

from kanbench.errors import UsageError
from kanbench.measure import selfcheck, timing
from kanbench.suite import BOUNDS


def test_selfcheck_on_cpu_prints_one_line_per_check(tmp_path):
    proc = kanbench("selfcheck", "--device", "cpu", env={**os.environ, "KANBENCH_CACHE": str(tmp_path)})
    lines = proc.stdout.splitlines()
    verdicts = {line.split()[1]: line.split()[0] for line in lines if line.startswith(("PASS", "FAIL"))}
    assert list(verdicts) == list(selfcheck.CHECKS), proc.stdout + proc.stderr
    # these hold on any sound machine, loaded or not; gemm and stability report this machine's state
    assert verdicts["sync"] == verdicts["memory"] == verdicts["overhead"] == "PASS", proc.stdout
    assert proc.returncode == (1 if "FAIL" in verdicts.values() else 0), proc.stdout
    assert lines[-1].startswith(f"{list(verdicts.values()).count('PASS')} passed")


def test_sync_check_fails_when_a_region_reads_the_clock_before_the_sync(monkeypatch):
    def early_clock(call, sync, context=None, clock=None):
        def run(loops):
            start = timing.time.perf_counter()
            for _ in range(loops):
                call()
            elapsed = timing.time.perf_counter() - start
            sync()  # too late: the device work is not inside the region
            return elapsed

        return run

    assert selfcheck.check_sync("cpu").ok
    monkeypatch.setattr(timing, "loop_timer", early_clock)
    result = selfcheck.check_sync("cpu")
    assert not result.ok and "synchronised" in result.detail


def test_verdicts_say_what_was_needed():
    assert selfcheck.sync_verdict(0.02, 0.0201, 0.0002).ok
    assert not selfcheck.sync_verdict(0.02, 0.018, 0.0002).ok  # missed device work
    assert not selfcheck.sync_verdict(0.02, 0.0201, 0.015).ok  # the control waited: it proves nothing
    assert selfcheck.memory_verdict(12 * 2**20, 12 * 2**20 + 2**16).ok
    bad = selfcheck.memory_verdict(12 * 2**20, 13 * 2**20)
    assert not bad.ok and "8.33% off" in bad.detail
    assert selfcheck.gemm_verdict(60e9, 100e9, 2048).ok
    assert "stale" in selfcheck.gemm_verdict(120e9, 100e9, 2048).detail
    assert "throttled" in selfcheck.gemm_verdict(10e9, 100e9, 2048).detail
    assert not selfcheck.overhead_verdict(0.5e-3, 1e-8).ok
    steady = [1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.0]
    assert selfcheck.stability_verdict(steady, None).ok
    assert not selfcheck.stability_verdict([1.0, 1.3, 0.7, 1.0, 1.5, 0.8, 1.0, 1.2], None).ok
    throttled = selfcheck.stability_verdict(steady, (1200.0, 1980.0))
    assert not throttled.ok and "1200 of 1980 MHz" in throttled.detail


def test_a_check_that_raises_is_a_fail(monkeypatch):
    def broken(device, threads):
        raise RuntimeError("no allocator events")

    monkeypatch.setattr(selfcheck, "CHECKS", {"memory": broken})
    lines: list[str] = []
    (result,) = selfcheck.run_checks("cpu", 1, lines.append)
    assert not result.ok and lines == ["FAIL memory     raised RuntimeError: no allocator events"]


BAD_REQUESTS = [
    (["--device", "cuda"], "CUDA is not available"),
    (["--threads", "-1"], "--threads must be >= 0"),
    (["--threads", "99999"], f"--threads must be >= 0 and <= {BOUNDS['threads']}"),
]


@pytest.mark.parametrize(("args", "message"), BAD_REQUESTS)
def test_bad_requests_exit_2(args, message):
    import torch

    if args[0] == "--device" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = kanbench("selfcheck", *args)
    assert proc.returncode == 2 and message in proc.stderr


@pytest.mark.parametrize("cache", ["corrupt", "read-only HOME"])
def test_a_roofline_cache_problem_is_not_a_gemm_fail(tmp_path, monkeypatch, capsys, cache):
    """The gemm check compares against a ceiling measured afresh (faked here) and says so; it never 'raised'."""
    from kanbench.measure import machine

    def measure(device, threads, dtype="float32"):
        return {"peak_flop_per_s": 1e12, "peak_bytes_per_s": 1e10, "method": "fake"}

    monkeypatch.setattr(machine, "measure", measure)
    monkeypatch.setattr(machine, "SIZES", {**machine.SIZES, "cpu": (64, 2**20)})  # a GEMM that takes no time
    monkeypatch.setattr(selfcheck, "CHECKS", {"gemm": selfcheck.check_gemm})
    if cache == "corrupt":
        monkeypatch.setenv("KANBENCH_CACHE", str(tmp_path))
        (tmp_path / "machine.json").write_text("{")
    else:
        monkeypatch.delenv("KANBENCH_CACHE", raising=False)
        (tmp_path / "home").write_text("")  # a HOME that ~/.cache/kanbench cannot be made in
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
    lines: list[str] = []
    selfcheck.run_checks("cpu", 1, lines.append)
    assert lines[0].split()[1] == "gemm" and "64x64 float32 matmul" in lines[0] and "raised" not in lines[0], lines
    assert "roofline cache" in capsys.readouterr().err


@pytest.mark.parametrize("threads", [-3, BOUNDS["threads"] + 1, 99_999])
def test_selfcheck_refuses_threads_outside_the_suites_bound(monkeypatch, threads):
    """Refused before torch is told: 99,999 threads crashed it (exit 139). Nothing here sets threads or measures."""
    import argparse

    import torch

    monkeypatch.setattr(torch, "set_num_threads", lambda n: pytest.fail(f"torch.set_num_threads({n})"))
    monkeypatch.setattr(selfcheck, "run_checks", lambda *a, **k: pytest.fail("checks ran"))
    with pytest.raises(UsageError, match=rf"--threads must be >= 0 and <= {BOUNDS['threads']} .*got {threads}"):
        selfcheck.command(argparse.Namespace(device="cpu", threads=threads))
