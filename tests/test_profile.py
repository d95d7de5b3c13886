"""kanbench profile: traces that TensorBoard and Perfetto read, and an op breakdown that adds up."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import torch
from conftest import ROOT, kanbench

from kanbench import cli, results
from kanbench.measure import opcategories

PHASES = ("forward", "backward", "train_step")
PROFILE_SUITE = """
[suite]
name = "tiny-profile"
kind = "profile"
implementations = ["bspline", "fastkan", "mlp"]
phases = ["forward", "backward", "train_step"]

[axes]
widths = [[6, 5, 3]]
grid_size = [3]
batch_size = [4]
device = ["cpu", "cuda"]

[timing]
threads = 1

[profile]
wait = 0
warmup = 1
active = 2
repeat = 1
record_shapes = true
profile_memory = true
"""


@pytest.fixture(scope="module")
def profiled(tmp_path_factory) -> tuple[Path, Path, list]:
    """A real `kanbench profile` of the tiny suite: (run dir, trace root, records)."""
    base = tmp_path_factory.mktemp("profile")
    suite = base / "tiny-profile.toml"
    suite.write_text(PROFILE_SUITE)
    run_dir, traces = base / "run", base / "profiles" / "tiny"
    proc = kanbench("profile", str(suite), "--out", str(run_dir), "--traces", str(traces), "--quiet")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return run_dir, traces, results.read_records(run_dir)


def ok_records(records: list) -> list:
    return [r for r in records if r.status == "ok"]


def test_one_profile_record_per_cell_and_phase(profiled):
    run_dir, _, records = profiled
    assert all(r.phase == "profile" for r in records)
    keys = [(r.config_hash, r.profiled_phase) for r in records]
    assert len(keys) == len(set(keys)) == 2 * 3 * len(PHASES)  # cpu and cuda cells, three impls, three phases
    cpu = [r for r in records if r.device == "cpu"]
    assert {r.status for r in cpu} == {"ok"}, [r.reason for r in cpu if r.status != "ok"]
    frame = results.load(run_dir)
    assert {"profiled_phase", "metric_total_self_s", "metric_coverage", "metric_ops_per_call"} <= set(frame.columns)


def test_cuda_cells_are_profiled_or_skipped_with_a_reason(profiled):
    cuda = [r for r in profiled[2] if r.device == "cuda"]
    if torch.cuda.is_available():
        assert {r.status for r in cuda} == {"ok"}, [r.reason for r in cuda]
        for r in cuda:
            assert r.metrics["kernels_per_call"] > 0 and r.metrics["total_device_s"] > 0
    else:
        assert {r.status for r in cuda} == {"skipped"}
        assert all("CUDA is not available" in r.reason and r.profiled_phase in PHASES for r in cuda)


def test_traces_are_chrome_trace_json(profiled):
    _, traces, records = profiled
    for r in ok_records(records):
        files = r.metrics["trace_files"]
        assert files, f"{r.impl} {r.profiled_phase}: no trace file"
        for name in files:
            path = Path(name)
            assert path.parent == Path(r.metrics["trace_dir"]) and path.parent.parent == traces
            assert path.name.startswith(f"{r.profiled_phase}.") and path.name.endswith(".pt.trace.json")
            data = json.loads(path.read_text())
            events = data["traceEvents"]
            names = {e.get("name", "") for e in events if e.get("ph") == "X"}
            assert any(n.startswith("ProfilerStep#") for n in names)
            if r.impl != "mlp":
                assert opcategories.BASIS_RANGE in names


def test_categories_add_up_and_cover_the_profiled_time(profiled):
    for r in ok_records(profiled[2]):
        m, where = r.metrics, f"{r.impl} {r.profiled_phase}"
        assert list(m["categories"]) == list(opcategories.CATEGORIES)
        seconds = sum(c["seconds"] for c in m["categories"].values())
        assert math.isclose(seconds, m["total_self_s"], rel_tol=1e-9)
        # the profiled total measured independently: wall time of the profiled calls less their untimed setup
        assert m["wall_s"] > 0 and abs(seconds - m["wall_s"]) <= 0.05 * m["wall_s"], (where, seconds, m["wall_s"])
        assert math.isclose(sum(c["share"] for c in m["categories"].values()), 1.0, rel_tol=1e-9)
        assert m["coverage"] >= 0.95, (where, m["top_ops"])
        assert m["ops_per_call"] > 0 and m["profiled_calls"] == 2
        if r.device == "cpu":
            assert m["kernels_per_call"] is None and m["device_categories"] is None


def test_attribution_by_enclosing_range_and_autograd_link(profiled):
    by = {(r.impl, r.profiled_phase): r.metrics for r in ok_records(profiled[2]) if r.device == "cpu"}
    for impl in ("bspline", "fastkan"):
        for phase in PHASES:
            cats = by[impl, phase]["categories"]
            assert by[impl, phase]["attribution"] == "ranges"
            # backward has no basis range: its basis ops are found through the autograd sequence numbers
            assert cats["basis"]["seconds"] > 0 and cats["matmul"]["seconds"] > 0, (impl, phase, cats)
    for phase in PHASES:
        assert by["fastkan", phase]["categories"]["norm"]["seconds"] > 0  # LayerNorm inside basis() is norm
        assert by["mlp", phase]["categories"]["basis"]["seconds"] == 0
        assert by["mlp", phase]["attribution"] == "none"
    assert by["bspline", "train_step"]["categories"]["optimizer"]["seconds"] > 0
    assert by["bspline", "forward"]["categories"]["autograd"]["seconds"] == 0
    # basis ops in other categories would mean the enclosing range was ignored
    for m in by.values():
        for op in m["top_ops"]:
            if op["name"] in ("aten::tanh", "aten::exp", "aten::ge", "aten::lt", "aten::bitwise_and"):
                assert op["category"] == "basis", op


def test_a_speed_suite_can_be_profiled(tmp_path, capsys):
    suite = tmp_path / "speed.toml"
    suite.write_text(
        '[suite]\nname = "s"\nkind = "speed"\nimplementations = ["mlp"]\nphases = ["forward"]\n'
        "[axes]\nwidths = [[4, 3]]\ngrid_size = [3]\nbatch_size = [2]\n[timing]\nthreads = 1\n"
    )
    code = cli.main(["profile", str(suite), "--out", str(tmp_path / "run"), "--traces", str(tmp_path / "t"), "--smoke"])
    assert code == 0
    (record,) = results.read_records(tmp_path / "run")
    assert record.status == "ok" and record.profiled_phase == "forward" and record.metrics["profiled_calls"] == 1
    assert "tensorboard --logdir" in capsys.readouterr().out


@pytest.mark.parametrize(
    "suite_text, out, message",
    [
        (PROFILE_SUITE, "{blocker}/run", "--out"),
        ('[suite]\nname = "a"\nkind = "accuracy"\nimplementations = ["mlp"]\n[axes]\ngrid_size = [3]\n', None, "kind"),
        (PROFILE_SUITE.replace('"mlp"]', '"no-such-kan"]'), None, "no-such-kan"),
    ],
    ids=["unwritable-out", "accuracy-suite", "unknown-implementation"],
)
def test_bad_input_exits_2_with_a_message(tmp_path, capsys, suite_text, out, message):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")  # a path under a file cannot be created, even by root
    suite = tmp_path / "suite.toml"
    suite.write_text(suite_text)
    args = ["profile", str(suite), "--traces", str(tmp_path / "t")]
    args += ["--out", out.format(blocker=blocker) if out else str(tmp_path / "run")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "kanbench profile: error:" in err and message in err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_tensorboard_plugin_lists_the_run(profiled):
    # Starting TensorBoard costs ~10 s: opt-in locally, always on in CI (.ci/run sets KANBENCH_TENSORBOARD=1).
    if os.environ.get("KANBENCH_TENSORBOARD") != "1":
        pytest.skip("starts a TensorBoard server: set KANBENCH_TENSORBOARD=1 to run it (CI does)")
    missing = [m for m in ("tensorboard", "torch_tb_profiler") if importlib.util.find_spec(m) is None]
    assert not missing, f"{', '.join(missing)} not installed: the optional extra, pip install 'kanbench[profile]'"
    _, traces, records = profiled
    logdir = traces.parent
    expected = {f"{traces.name}/{Path(r.metrics['trace_dir']).name}" for r in ok_records(records)}
    port = free_port()
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1",
               "--port", str(port), "--load_fast", "false"]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}/data/plugin/pytorch_profiler"
    runs: list = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and server.poll() is None:
            try:
                runs = get_json(f"{base}/runs")["runs"]
                if expected <= set(runs):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
                pass
            time.sleep(0.5)
        assert expected <= set(runs), f"plugin runs {runs}, expected {sorted(expected)}; exit {server.poll()}"
        run = sorted(expected)[0]
        views = get_json(f"{base}/views?run={urllib.parse.quote(run)}")
        assert {"Overview", "Operator", "Trace", "Memory"} <= set(views), views
        workers = get_json(f"{base}/workers?run={urllib.parse.quote(run)}&view=Overview")
        assert set(PHASES) <= set(workers), workers
    finally:
        server.terminate()
        try:
            server.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()


def test_every_category_is_documented():
    docs = [ROOT / "docs" / "methodology.md"]
    texts = [p.read_text(encoding="utf-8") for p in docs if p.exists()]
    assert any(all(f"| `{c}` |" in text for c in opcategories.CATEGORIES) for text in texts), "category table"


def test_basis_ranges_wrap_and_restore_only_the_models_own_basis():
    import implementations
    from kanbench.measure.profile_worker import basis_ranges

    kan_spline = pytest.importorskip("kan.spline", reason="pykan is not installed: pip install 'kanbench[pykan]'")
    original = kan_spline.B_batch
    adapter = implementations.get("pykan")
    pykan = adapter.build([3, 2], 3, 3)
    with basis_ranges(pykan, adapter.basis_functions(pykan)) as wrapped:  # pykan's adapter names B_batch
        assert wrapped == 2 and kan_spline.B_batch is not original  # the layer view's basis and pykan's own
        assert kan_spline.B_batch.__wrapped__ is original
    assert kan_spline.B_batch is original and "basis" not in vars(pykan.layers[0])
    mlp = implementations.get("mlp")
    model = mlp.build([3, 2], 3, 3)
    with basis_ranges(model, mlp.basis_functions(model)) as wrapped:
        assert wrapped == 0 and kan_spline.B_batch is original  # kan is imported, but this model is not pykan's
    bspline = implementations.get("bspline")
    model = bspline.build([3, 4, 2], 3, 3)
    x = torch.rand(5, 3)
    expected = model(x)
    with basis_ranges(model, bspline.basis_functions(model)) as wrapped:
        assert wrapped == 2 and torch.equal(model(x), expected)
    assert all("basis" not in vars(layer) for layer in model.layers)


def test_basis_ranges_cover_a_forward_that_calls_basis_rows():
    """bspline-fast's forward gets its basis from basis_rows, never basis: that must be in the range too."""
    import implementations
    from kanbench.measure.profile_worker import basis_ranges

    model = implementations.get("bspline-fast").build([3, 4, 2], 3, 3)
    x = torch.rand(5, 3, requires_grad=True)  # the second layer's basis then goes through the autograd Function
    expected = model(x)
    with basis_ranges(model) as wrapped, torch.profiler.profile() as prof:
        out = model(x)
    assert wrapped == 2 and torch.equal(out, expected)
    assert sum(e.name == opcategories.BASIS_RANGE for e in prof.events()) >= 2
    assert all(name not in vars(layer) for layer in model.layers for name in ("basis", "basis_rows"))


def test_the_profilers_native_chatter_is_filtered_and_everything_else_kept(capfd):
    import os

    from kanbench.measure.profile_worker import native_stderr_filtered

    with native_stderr_filtered():
        os.write(2, b"USDT:2026-12-01 SyncActivityProfilerHandler.cpp:52] profiler_start\n")
        os.write(2, b"a real warning from native code\n")
        os.write(2, b"STAGE:2026-12-01 ActivityProfilerController.cpp:294] Completed Stage: Warm Up\n")
    err = capfd.readouterr().err
    assert err == "a real warning from native code\n"
