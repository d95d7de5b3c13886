"""The reference workload: measured in a worker before each group, stored beside the records, summarised as noise."""

from __future__ import annotations

import json

import pytest

from kanbench import results
from kanbench.measure import worker
from kanbench.results import noise


def entry(group, values, device="cpu", process=0):
    return {"group": group, "process": process, "device": device, "values": values, "loops": 10, "utc": 0.0}


def test_drift_is_the_slowest_groups_median_over_the_fastest(tmp_path):
    for e in (entry("a", [1.0, 1.0, 1.1]), entry("a", [1.0, 0.9, 1.0], process=1), entry("b", [1.2, 1.2, 1.3]),
              entry("c", [2.0], device="cuda")):  # fmt: skip
        noise.append(tmp_path, e)
    cpu, cuda = noise.summarize(noise.read(tmp_path))
    assert (cpu.device, cpu.groups, cuda.device, cuda.groups) == ("cpu", 2, "cuda", 1)
    assert cpu.drift == pytest.approx(0.2)  # b's median 1.2 over a's 1.0 (both processes pooled)
    assert cuda.drift == 0.0
    assert "drifted 20% between groups" in cpu.line()


def test_a_torn_or_foreign_line_is_left_out_and_no_file_is_no_noise(tmp_path):
    assert noise.read(tmp_path) == [] and noise.summarize([]) == []
    noise.append(tmp_path, entry("a", [1.0]))
    with open(tmp_path / noise.FILE, "ab") as f:
        f.write(json.dumps({"group": "b", "error": "RuntimeError: boom"}).encode() + b"\n")
        f.write(b'[1, 2]\n{"group": "c", "values": [-1]}\n{"group": "e", "device": null, "values": [1.0]}\n')
        f.write(b'{"group": "f", "values": [Infinity]}\n{"group": "d", "val')
    assert [e["group"] for e in noise.read(tmp_path)] == ["a"]


def test_a_speed_run_times_the_reference_before_every_group_of_every_process(tmp_path):
    from kanbench import cli

    suite = tmp_path / "s.toml"
    suite.write_text("""
[suite]
name = "t"
kind = "speed"
implementations = ["mlp", "fastkan"]
phases = ["forward"]
[axes]
widths = [[4, 3]]
batch_size = [2, 4]
grid_size = [5]
device = ["cpu"]
dtype = ["float32"]
[timing]
warmup = 0
min_time = 0.0005
values = 2
processes = 2
""")
    out = tmp_path / "run"
    assert cli.main(["run", str(suite), "--out", str(out), "--quiet"]) == 0
    found = noise.read(out)
    assert sorted((e["group"], e["process"]) for e in found) == [
        ("4x3 G5 k3 b2 cpu float32", 0), ("4x3 G5 k3 b2 cpu float32", 1),
        ("4x3 G5 k3 b4 cpu float32", 0), ("4x3 G5 k3 b4 cpu float32", 1),
    ]  # fmt: skip
    assert all(len(e["values"]) == worker.REFERENCE_TIMING[2] and e["loops"] >= 1 for e in found)
    assert results.load(out).attrs["reference"] == found
