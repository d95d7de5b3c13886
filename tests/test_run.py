"""`kanbench run` end to end in subprocesses: records, skips, resume after SIGKILL, shard + merge."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, TINY_SUITE, kanbench

from kanbench import results
from kanbench.results.record import PHASES, SCHEMA
from kanbench.suite import parse


def expected_keys(suite_text: str) -> set[tuple[str, str]]:
    suite = parse(suite_text)
    return {(c.config_hash, p) for c in suite.cells() for p in suite.phases}


def test_run_writes_a_complete_run_directory(tiny_run):
    records = results.read_records(tiny_run)
    assert {(r.config_hash, r.phase) for r in records} == expected_keys(TINY_SUITE)
    assert len(records) == len(expected_keys(TINY_SUITE))
    for r in records:
        assert r.phase in PHASES and r.schema == SCHEMA and r.suite == "tiny"
        if r.device == "cuda":
            assert r.status == "skipped" and "CUDA is not available" in r.reason
            continue
        assert r.status == "ok", r.reason
        t = r.time_s
        assert t["n"] == 3 * 2 == len(t["values"]) and len(t["process_medians"]) == 2
        assert t["min"] <= t["median"] <= t["max"] and t["loops"] >= 1
        assert r.peak_mem_bytes is not None and r.peak_mem_bytes > 0
        assert r.params > 0 and r.flops > 0 and r.flop_per_s > 0
    env = json.loads((tiny_run / "environment.json").read_text())
    assert env["torch"] and env["worker_torch_threads"] == 1 and env["run"]["timing"]["values"] == 3
    assert (tiny_run / "suite.toml").read_text() == TINY_SUITE


def test_every_phase_flops_match_the_flop_counter(tiny_run):
    import implementations
    from kanbench.run.speed import phase_flops

    ok = [r for r in results.read_records(tiny_run) if r.status == "ok"]
    assert {r.phase for r in ok} >= {"forward", "backward", "train_step"}
    for r in ok:
        b = implementations.get(r.impl).flop_breakdown(r.widths, r.grid_size, r.spline_order, r.batch_size)
        matmul = {"forward": b["matmul"], "forward_inference": b["matmul"], "backward": b["matmul_backward"],
                  "train_step": b["matmul"] + b["matmul_backward"]}[r.phase]  # fmt: skip
        assert r.metrics["flops_counted_matmul"] == matmul, (r.impl, r.phase)
        assert r.flops == phase_flops(b, r.phase, r.params), (r.impl, r.phase)


def test_pyperf_reads_the_run(tiny_run):
    proc = subprocess.run(
        [sys.executable, "-m", "pyperf", "stats", str(tiny_run / "pyperf.json")], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "bspline forward 6x5x3" in proc.stdout


def test_load_gives_one_row_per_record(tiny_run):
    frame = results.load(tiny_run)
    assert len(frame) == len(expected_keys(TINY_SUITE))
    assert {"impl", "phase", "time_median", "time_iqr", "peak_mem_bytes", "status"} <= set(frame.columns)


def test_dry_run_lists_cells_and_creates_nothing(tmp_path, tiny_suite):
    proc = kanbench("run", str(tiny_suite), "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "16 cells x 3 phases" in proc.stdout and "about" in proc.stdout
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("extra,needle", [(["--shard", "3/2"], "--shard '3/2'"), ([], "[axes].batch_size[0]")])
def test_bad_input_exits_2_without_a_run_directory(tmp_path, extra, needle):
    suite = tmp_path / "bad.toml"
    suite.write_text(TINY_SUITE.replace("batch_size = [4, 8]", "batch_size = [-4]") if not extra else TINY_SUITE)
    proc = kanbench("run", str(suite), *extra, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists()


def test_existing_results_need_resume(tiny_run, tiny_suite):
    proc = kanbench("run", str(tiny_suite), "--out", str(tiny_run))
    assert proc.returncode == 2 and "--resume" in proc.stderr


def test_malformed_line_is_reported_with_file_and_line(tmp_path, tiny_run):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("environment.json", "suite.toml"):
        (broken / name).write_text((tiny_run / name).read_text())
    lines = (tiny_run / "results.jsonl").read_text().splitlines()
    lines[2] = lines[2][:-5] + "oops}"
    (broken / "results.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(results.ResultsError, match=r"results.jsonl:3: malformed record"):
        results.read_records(broken)
    (broken / "results.jsonl").write_text((tiny_run / "results.jsonl").read_text())
    (broken / "environment.json").unlink()
    with pytest.raises(results.ResultsError, match="environment.json: missing"):
        results.load(broken)


RESUME_SUITE = (
    TINY_SUITE.replace('name = "tiny"', 'name = "resume"')
    .replace("batch_size = [4, 8]", "batch_size = [2, 3, 4]")
    .replace('device = ["cpu", "cuda"]', 'device = ["cpu"]')
    .replace("min_time = 0.0005", "min_time = 0.004")
    .replace("processes = 2", "processes = 1")
)


def test_resume_after_sigkill_loses_and_duplicates_nothing(tmp_path):
    suite = tmp_path / "resume.toml"
    suite.write_text(RESUME_SUITE)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kanbench", "run", str(suite), "--out", str(out), "--quiet"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            data = (out / "results.jsonl").read_bytes() if (out / "results.jsonl").exists() else b""
            if data.count(b"\n") >= 8:  # the first group written, two more to come
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # the parent and its workers, mid-run
    finally:
        proc.wait(30)
    before = results.read_records(out, allow_partial_tail=True)
    assert 0 < len(before) < len(expected_keys(RESUME_SUITE))
    assert (out / "environment.json").exists()  # a killed run is still a loadable run
    done = kanbench("run", str(suite), "--out", str(out), "--resume", "--quiet")
    assert done.returncode == 0, done.stderr
    after = results.read_records(out)
    keys = [(r.config_hash, r.phase) for r in after]
    assert len(keys) == len(set(keys)) == len(expected_keys(RESUME_SUITE))
    assert set(keys) == expected_keys(RESUME_SUITE)
    assert all(r.status == "ok" for r in after)


def test_shards_merge_into_the_unsharded_cell_set(tmp_path, tiny_suite):
    outs = []
    for k in (1, 2):
        out = tmp_path / f"shard{k}"
        proc = kanbench("run", str(tiny_suite), "--out", str(out), "--shard", f"{k}/2", "--smoke", "--quiet")
        assert proc.returncode == 0, proc.stderr
        outs.append(out)
    shard_keys = [{(r.config_hash, r.phase) for r in results.read_records(o)} for o in outs]
    assert shard_keys[0] and shard_keys[1] and not shard_keys[0] & shard_keys[1]
    merged = tmp_path / "merged"
    proc = kanbench("merge", *map(str, outs), "--out", str(merged))
    assert proc.returncode == 0, proc.stderr
    assert {(r.config_hash, r.phase) for r in results.read_records(merged)} == expected_keys(TINY_SUITE)
    from kanbench.results import noise

    shard_refs = [noise.read(o) for o in outs]
    assert all(shard_refs) and noise.read(merged) == shard_refs[0] + shard_refs[1]  # the noise of both shards
    again = kanbench("merge", str(outs[0]), str(outs[0]), "--out", str(tmp_path / "dup"))
    assert again.returncode == 2 and "is in both" in again.stderr


def test_merge_refuses_shards_of_different_suites(tmp_path, tiny_run):
    other = tmp_path / "other"
    other.mkdir()
    for name in ("results.jsonl", "environment.json"):
        (other / name).write_text((tiny_run / name).read_text())
    (other / "suite.toml").write_text(TINY_SUITE.replace('name = "tiny"', 'name = "other"'))
    proc = kanbench("merge", str(tiny_run), str(other), "--out", str(tmp_path / "m"))
    assert proc.returncode == 2 and "different suite" in proc.stderr


def test_unavailable_implementation_is_a_skip_record(tmp_path):
    pkg = tmp_path / "ghostimpl.py"
    pkg.write_text(
        "import implementations\n"
        "def adapter():\n"
        "    base = implementations.get('mlp')\n"
        "    return implementations.Adapter('ghost', 'mlp', base.builder, base.counter, base.flop_counter,\n"
        "        requires=('no_such_module_xyz',), install_hint='pip install ghost')\n"
    )
    suite = tmp_path / "ghost.toml"
    suite.write_text(TINY_SUITE.replace('"bspline", "fastkan", "rswaf", "mlp"', '"ghostimpl:adapter"'))
    out = tmp_path / "run"
    proc = kanbench(
        "run", str(suite), "--out", str(out), "--quiet", env={"PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"}
    )
    assert proc.returncode == 0, proc.stderr
    records = results.read_records(out)
    assert records and all(r.status == "skipped" for r in records)
    assert any("pip install ghost" in r.reason for r in records)
