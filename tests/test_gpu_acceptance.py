"""benchmarks/gpu_acceptance.py: a plausible simulated GPU run passes, each kind of implausible one fails."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not installed; run from the repository

from benchmarks import gpu_acceptance  # noqa: E402
from kanbench import results  # noqa: E402
from kanbench.results.record import Record, TimeStats  # noqa: E402

GPU = {"name": "NVIDIA H200", "driver_version": "580.65", "sm_clock_max_mhz": 1980}
MACHINE = {"by_device": {"cuda": {"peak_flop_per_s": {"float32": 5e13, "bfloat16": 7e14, "float16": 7e14}}}}


def record(phase="forward", dtype="float32", status="ok", reason=None, options=None, **metrics) -> Record:
    base = {"flops_counted_matmul": 1, "first_call_s": [1e-3], "first_forward_s": [1e-3],
            "host_time_s": TimeStats.from_values([[5e-6] * 5], 10).__dict__, "launch_bound": False}  # fmt: skip
    if phase == "profile":
        base = {"kernels_per_call": 7.0}
    return Record(
        run_id="r", suite="s", impl="mlp", family="mlp", phase=phase, device="cuda", dtype=dtype, batch_size=64,
        widths=[784, 64, 10], grid_size=5, spline_order=3, num_basis=0, params=10, params_total=10, status=status,
        reason=reason, peak_mem_bytes=1024 if status == "ok" and phase != "profile" else None, flops=None,
        config_hash=f"{phase}{dtype}{options}", options=options or {},
        profiled_phase="forward" if phase == "profile" else None,
        time_s=TimeStats.from_values([[2e-5] * 5], 10).__dict__ if status == "ok" and phase != "profile" else None,
        metrics={**base, **metrics} if status == "ok" else None,
    )  # fmt: skip


def good() -> dict[str, list[Record]]:
    return {
        "speed": [record(dtype=d) for d in ("float32", "bfloat16")]
        + [record(dtype="float16", status="error", reason="forward gave 3 non-finite value(s) of 640")],
        "compile": [record(), record(options={"compile": True},
                                     compiled=[{"graphs": 1, "frames": 1, "graph_breaks": 0, "compile_s": 2.0}])],
        "profile": [record("profile")],
    }  # fmt: skip


def write(tmp_path, runs, machine=MACHINE, gpu=GPU):
    for name, records in runs.items():
        (tmp_path / name).mkdir()
        results.create(tmp_path / name)
        for r in records:
            results.append(tmp_path / name, r)
        results.write_environment(tmp_path / name, {"gpu": gpu, "machine": machine})
    (tmp_path / "report.html").write_text("x" * 20_000)
    return tmp_path


def levels(tmp_path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for f in gpu_acceptance.verdict(tmp_path, "cuda"):
        found.setdefault(f.level, []).append(f.text)
    return found


def test_a_plausible_run_passes_with_the_float16_overflow_warned(tmp_path):
    found = levels(write(tmp_path, good()))
    assert "FAIL" not in found, found["FAIL"]
    assert any("non-finite" in w for w in found["WARN"])
    assert gpu_acceptance.main([str(tmp_path)]) == 0


def broken(change):
    runs = good()
    change(runs)
    return runs


@pytest.mark.parametrize(
    ("runs", "machine", "needle"),
    [
        (broken(lambda r: r["speed"].append(record(phase="backward", fraction_of_peak=1.7))), MACHINE,
         "1.70 of the float32 ceiling"),
        (broken(lambda r: r["speed"][0].metrics.pop("host_time_s")), MACHINE, "not timed by CUDA events"),
        (broken(lambda r: r["speed"].append(record(phase="backward", status="error", reason="CUDA error: boom"))),
         MACHINE, "error: CUDA error: boom"),
        (broken(lambda r: r["compile"][1].metrics.update(compiled=[{"graphs": 0}])), MACHINE, "compiled no graph"),
        (broken(lambda r: r["profile"][0].metrics.update(kernels_per_call=None)), MACHINE, "no CUDA kernels"),
        (good(), {"by_device": {"cuda": {"peak_flop_per_s": {"float32": 5e13, "bfloat16": 6e13, "float16": 7e14}}}},
         "not above twice float32's"),
        (good(), {"by_device": {"cuda": {"peak_flop_per_s": {"float32": 5e13}}}}, "no cuda ceiling for bfloat16"),
    ],
)  # fmt: skip
def test_an_implausible_run_fails_saying_why(tmp_path, runs, machine, needle):
    found = levels(write(tmp_path, copy.deepcopy(runs), machine))
    assert any(needle in f for f in found.get("FAIL", [])), found
    assert gpu_acceptance.main([str(tmp_path)]) == 1


def test_a_missing_gpu_description_and_a_small_report_fail(tmp_path):
    write(tmp_path, good(), gpu={})
    (tmp_path / "report.html").write_text("tiny")
    fails = levels(tmp_path)["FAIL"]
    assert any("no GPU description" in f for f in fails) and any("report" in f for f in fails)
