"""The GPU's description and clocks (nvml, simulated here), ceilings per dtype, and a parent that never touches CUDA."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from conftest import TINY_SUITE

import implementations
from kanbench.analysis.compare import gates
from kanbench.measure import checks, env, gpu, machine, timing, worker
from kanbench.measure.reply import Reply
from kanbench.results.record import Record
from kanbench.run import session, speed
from kanbench.suite import parse


class FakeNvml(types.ModuleType):
    """The parts of pynvml kanbench reads, for one GPU whose SM clock follows `clocks`."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM = 1, 2

    def __init__(self, clocks=(1980,)):
        super().__init__("pynvml")
        self.clocks = list(clocks)

    def nvmlInit(self):
        pass

    def nvmlDeviceGetHandleByUUID(self, uuid):
        assert uuid == "GPU-1234", uuid  # found by the visible device's UUID, not nvml's index
        return "handle"

    def nvmlDeviceGetUUID(self, handle):
        return b"GPU-1234"

    def nvmlSystemGetDriverVersion(self):
        return "580.65"

    def nvmlDeviceGetClockInfo(self, handle, which):
        return self.clocks.pop(0) if which == self.NVML_CLOCK_SM and len(self.clocks) > 1 else self.clocks[0]

    def nvmlDeviceGetMaxClockInfo(self, handle, which):
        return 1980 if which == self.NVML_CLOCK_SM else 3201

    def nvmlDeviceGetPowerManagementLimit(self, handle):
        return 700_000

    def nvmlDeviceGetPersistenceMode(self, handle):
        return 1

    def nvmlDeviceGetComputeMode(self, handle):
        return 3

    def nvmlDeviceGetMigMode(self, handle):
        raise RuntimeError("NVMLError_NotSupported")

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle):
        return 0x1 | 0x4 | 0x40  # idle (not a slowdown), power cap, hardware thermal


@pytest.fixture
def fake_gpu(monkeypatch):
    nvml = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: types.SimpleNamespace(uuid="1234"))
    return nvml


def test_nvml_state_reads_every_field_and_says_which_are_unsupported(fake_gpu):
    state = gpu.nvml_state(0)
    assert state["uuid"] == "GPU-1234" and state["driver_version"] == "580.65"
    assert (state["sm_clock_max_mhz"], state["mem_clock_max_mhz"], state["power_limit_w"]) == (1980, 3201, 700)
    assert state["persistence_mode"] is True and state["compute_mode"] == "exclusive_process"
    assert state["throttle_reasons"] == ["sw_power_cap", "hw_thermal"]
    assert state["mig_mode"] is None and state["nvml_unsupported"] == {"mig_mode": "RuntimeError"}


def test_without_nvml_the_fields_are_absent_with_the_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    assert gpu.nvml_state(0) == {"nvml_reason": gpu.NVML_MISSING}
    assert gpu.sm_clock_reader(0) is None


def test_a_cell_whose_clock_fell_below_three_quarters_of_its_maximum_is_throttled(fake_gpu):
    fake_gpu.clocks = [1980, 1900, 1400, 1950]
    log = worker.ClockLog(torch.device("cpu"))
    log.read = gpu.sm_clock_reader(0)
    ticks = iter(range(100))
    run = timing.loop_timer(lambda: None, lambda: None, clock=lambda: float(next(ticks)))
    timing.measure(run, 0, 0.0, 4, loops=1, after=log.sample)  # one clock read after each value
    assert log.seen == {"min": 1400.0, "max": 1980.0}
    assert gpu.throttled(1400, 1980) is True and gpu.throttled(1500, 1980) is False
    assert gpu.throttled(None, 1980) is None
    assert worker.ClockLog(torch.device("cpu")).read is None  # no clock off CUDA


def test_speed_records_carry_the_clock_and_the_ceiling_of_their_own_dtype():
    suite = parse(TINY_SUITE.replace('dtype = ["float32"]', 'dtype = ["bfloat16"]'))
    cells = [c for c in suite.cells() if c.device == "cpu"][:1]
    kind = speed.SpeedKind(suite, suite.timing, cells, ("forward",), smoke=False)
    kind.peaks = {"cpu": {"peak_flop_per_s": {"float32": 1e15, "bfloat16": 1e9}, "peak_bytes_per_s": 1e9}}
    phase = {"status": "ok", "reason": None, "values": [1e-3] * 3, "loops": 1, "peak_mem_bytes": 100,
             "sm_clock_mhz": {"min": 1300.0, "max": 1980.0}}  # fmt: skip
    replies = [Reply.from_dict({"status": "ok", "phases": {"forward": phase}, "params": 10, "params_total": 10,
                                "family": "bspline", "num_basis": 6})]  # fmt: skip
    (record,) = kind.records(cells[0], replies, "run")
    assert record.metrics["throttled"] is True and record.metrics["sm_clock_mhz"] == {"min": 1300.0, "max": 1980.0}
    assert record.metrics["fraction_of_peak"] == pytest.approx(record.flop_per_s / 1e9)  # bfloat16's, not float32's
    assert Record.from_dict(record.to_dict()).metrics == record.metrics  # the store's own check accepts it


def test_ceilings_are_per_dtype_and_the_matmul_mode_is_in_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("KANBENCH_CACHE", str(tmp_path))
    measured = []

    def fake_measure(device, threads, dtype="float32"):
        measured.append(dtype)
        return {"peak_flop_per_s": {"float32": 1e11, "bfloat16": 4e11}[dtype], "peak_bytes_per_s": 2e10,
                "method": dtype}  # fmt: skip

    monkeypatch.setattr(machine, "measure", fake_measure)
    assert machine.ceilings("cpu", 1, ["float32", "bfloat16"], measure_missing=False)["peak_flop_per_s"] == {}
    found = machine.ceilings("cpu", 1, ["float32", "bfloat16"])
    assert found["peak_flop_per_s"] == {"float32": 1e11, "bfloat16": 4e11} and found["peak_bytes_per_s"] == 2e10
    assert "precision=highest" in found["key"]["float32"] and "precision" not in found["key"]["bfloat16"]
    machine.ceilings("cpu", 1, ["bfloat16"])
    assert measured == ["float32", "bfloat16"]  # cached per dtype
    monkeypatch.setattr(torch, "get_float32_matmul_precision", lambda: "high")  # another float32 mode
    machine.ceilings("cpu", 1, ["float32", "bfloat16"])
    assert measured == ["float32", "bfloat16", "float32"]


def test_gemm_size_keeps_a_slow_dtype_short():
    assert machine.gemm_size(1 / 80e9, 2048) == 2048  # float32 here: 2048^3 x 2 at 80 GFLOP/s is 0.2 s
    slow = machine.gemm_size(1 / 0.5e9, 2048)  # float16 on a CPU without it: 0.5 GFLOP/s
    assert 256 <= slow < 2048 and 2 * slow**3 * (1 / 0.5e9) <= machine.GEMM_CALL_S * 1.01


def test_the_run_parent_never_initialises_cuda(monkeypatch):
    """On a machine with a GPU: the fingerprint and the ceilings come without CUDA in this process."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the parent initialised CUDA")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    for name in ("_lazy_init", "init", "get_device_name", "get_device_properties", "synchronize", "current_device"):
        monkeypatch.setattr(torch.cuda, name, forbidden)
    asked = []

    def fake_probe(device, dtypes, threads, measure):
        asked.append((device, dtypes))
        ceilings = {"peak_flop_per_s": dict.fromkeys(dtypes, 1e14)} if dtypes else None
        return {"status": "ok", "gpu": {"name": "NVIDIA H200", "uuid": "GPU-1"}, "ceilings": ceilings}

    monkeypatch.setattr(gpu, "probe_in_worker", fake_probe)
    fingerprint = env.fingerprint()
    assert fingerprint["cuda"] == {"available": True, "cuda_version": torch.version.cuda, "device_count": 1}
    suite = parse(TINY_SUITE.replace('dtype = ["float32"]', 'dtype = ["float32", "float16"]'))
    peaks, described = speed.device_peaks(suite.cells(), 1, measure=False)
    assert asked == [("cuda", ["float16", "float32"])] and described["name"] == "NVIDIA H200"
    assert set(peaks) == {"cpu", "cuda"} and peaks["cuda"]["peak_flop_per_s"]["float16"] == 1e14
    environment: dict = {}
    session.describe_gpu(suite.cells(), environment, 1)  # another kind's run: the description alone
    assert environment["gpu"]["uuid"] == "GPU-1" and asked[-1] == ("cuda", [])


def test_the_probe_runs_in_a_worker_process(tmp_path, monkeypatch):
    monkeypatch.setenv("KANBENCH_CACHE", str(tmp_path))
    reply = gpu.probe_in_worker("cpu", ["float32"], 1, measure=False)
    assert reply["gpu"] is None and reply["ceilings"]["peak_flop_per_s"] == {}  # nothing cached, nothing measured


def test_compare_says_when_the_runs_used_different_gpus_or_drivers():
    import pandas as pd

    def side(name, uuid, driver):
        frame = pd.DataFrame()
        frame.attrs["environment"] = {"gpu": {"name": name, "uuid": uuid, "driver_version": driver}}
        return frame

    same = gates.environment_notes(side("H200", "GPU-1", "580"), side("H200", "GPU-1", "580"))
    assert not any("different" in n for n in same)
    notes = gates.environment_notes(side("H200", "GPU-1", "580"), side("H200", "GPU-2", "575"))
    assert any("different GPUs: 'GPU-1'" in n for n in notes) and any("different GPU drivers" in n for n in notes)
    models = gates.environment_notes(side("H100", "GPU-1", "580"), side("H200", "GPU-2", "580"))
    assert [n for n in models if "different" in n] == ["the runs used different GPU models: 'H100' (base) vs 'H200' "
                                                       "(candidate)"]  # fmt: skip


class Doubled(torch.autograd.Function):
    """Identity forward, twice the gradient: a device kernel whose backward is wrong."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return 2 * grad


class WrongBackward(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return Doubled.apply(self.inner(x))


def perturbed(model):
    with torch.no_grad():
        next(model.parameters()).add_(1e-6)  # a device whose kernel is off by a little
    return model


@pytest.mark.parametrize("name", implementations.names())
def test_every_implementation_can_be_checked_against_the_cpu(name):
    adapter = implementations.get(name)
    if not adapter.available()[0]:
        pytest.skip(adapter.available()[1])
    checks.agrees_with_cpu(adapter, {}, "cpu")  # the machinery (same weights, every gradient) runs for every one


def test_a_device_that_differs_from_the_cpu_is_not_timed(monkeypatch):
    adapter = implementations.get("bspline")
    with pytest.raises(AssertionError, match=r"output on cpu differs from the CPU's by up to"):
        checks.agrees_with_cpu(adapter, {}, "cpu", move=perturbed)
    with pytest.raises(AssertionError, match=r"input gradient on cpu differs"):
        checks.agrees_with_cpu(adapter, {}, "cpu", move=WrongBackward)
    with pytest.raises(AssertionError, match=r"float64 gradcheck failed: the backward does not match"):
        checks.gradcheck_model(adapter, {}, move=WrongBackward)
    # the worker asks for both before a non-CPU device's first cell of an implementation
    asked = []
    monkeypatch.setattr(checks, "gradcheck_model", lambda a, o, device="cpu", **k: asked.append(("grad", device)))
    monkeypatch.setattr(checks, "agrees_with_cpu", lambda a, o, device, **k: asked.append(("cpu", device)))
    assert checks.check_once("mlp", {"bias": False}, "cuda") is None
    assert asked == [("grad", "cpu"), ("grad", "cuda:0"), ("cpu", "cuda:0")]
    assert checks.check_once("mlp", {"bias": False}, "cuda") is None and len(asked) == 3  # once per process


def test_the_report_lists_throttled_and_launch_bound_cells(tmp_path):
    from kanbench import results
    from kanbench.report import build_page, data, page
    from kanbench.results.record import TimeStats

    def record(impl, config_hash, **metrics):
        return Record(
            run_id="r", suite="s", impl=impl, family="mlp", phase="forward", device="cuda", dtype="bfloat16",
            batch_size=8, widths=[4, 2], grid_size=5, spline_order=3, num_basis=0, params=10, params_total=10,
            status="ok", reason=None, peak_mem_bytes=1, flops=None, config_hash=config_hash, options={},
            time_s=TimeStats.from_values([[1e-5] * 5], loops=10).__dict__,
            metrics={"flops_counted_matmul": None, "first_call_s": [1e-3], "first_forward_s": [1e-3], **metrics},
        )  # fmt: skip

    host = TimeStats.from_values([[2e-5] * 5], loops=10).__dict__
    run = tmp_path / "r"
    run.mkdir()
    results.create(run)
    for r in (record("mlp", "h1", sm_clock_mhz={"min": 1200.0, "max": 1980.0}, throttled=True),
              record("mlp-iso", "h2", host_time_s=host, launch_bound=True, sm_clock_mhz={"min": 1980.0, "max": 1980.0},
                     throttled=False)):  # fmt: skip
        results.append(run, r)
    results.write_environment(run, {"gpu": {"name": "NVIDIA H200", "driver_version": "580.65"}})
    built = build_page(data.read_runs([run]))
    assert "cuda (NVIDIA H200, driver 580.65)" in page.what_was_run(built)
    html = page.notes_section(built)
    throttled = html.split("<h3>Throttled cells</h3>")[1].split("<h3>")[0]
    assert "1 cell(s) ran while the GPU's SM clock fell below 75%" in throttled
    assert "1200 of 1980 MHz (61%)" in throttled
    assert "mlp-iso" not in throttled
    assert "1 cell(s) kept the GPU waiting" in html.split("<h3>Launch-bound cells</h3>")[1]
