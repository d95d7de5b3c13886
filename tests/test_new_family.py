"""A new family is one file and one registry line: docs/implementations.md's example, registered through an entry
point from a temporary directory, goes through run, report and compare with no edit of kanbench or its tests."""

from __future__ import annotations

import json
import os
import re

from conftest import ROOT, kanbench

from kanbench import results

SUITE = """
[suite]
name = "newfamily"
kind = "speed"
implementations = ["cheby", "mlp"]
phases = ["forward", "train_step"]

[axes]
widths = [[5, 4, 3]]
grid_size = [3]
batch_size = [4]

[timing]
processes = 1
threads = 1
"""


def test_a_family_from_one_file_and_one_registry_line_runs_reports_and_compares(tmp_path):
    doc = (ROOT / "docs" / "implementations.md").read_text(encoding="utf-8")
    source = re.search(r"```python\n(# my_kan\.py\n.*?)```", doc, re.S).group(1)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "my_kan.py").write_text(source)  # the one file
    dist = plugins / "my_kan-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-kan\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[kanbench.implementations]\ncheby = my_kan:adapter\n")  # the one line
    env = {"PYTHONPATH": os.pathsep.join([str(plugins), str(ROOT)])}

    listing = kanbench("list", env=env)
    assert listing.returncode == 0 and re.search(r"^cheby\s+chebyshev\s+yes", listing.stdout, re.M), listing.stdout
    suite = tmp_path / "newfamily.toml"
    suite.write_text(SUITE)
    run = tmp_path / "run"
    proc = kanbench("run", str(suite), "--smoke", "--quiet", "--out", str(run), env=env)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    records = results.read_records(run)
    assert {(r.impl, r.family, r.phase, r.status) for r in records} == {
        (impl, family, phase, "ok") for impl, family in (("cheby", "chebyshev"), ("mlp", "mlp"))
        for phase in ("forward", "train_step")
    }  # fmt: skip
    cheby = next(r for r in records if r.impl == "cheby")
    assert cheby.num_basis == 6 and cheby.params == (5 * 4 + 4 * 3) * 6

    html = tmp_path / "report.html"
    proc = kanbench("report", str(run), "-o", str(html))  # the report needs no plugin: it reads the records
    assert proc.returncode == 0, proc.stderr
    assert "cheby" in html.read_text(encoding="utf-8")

    proc = kanbench("compare", str(run), str(run), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    latency = json.loads(proc.stdout)["latency"]
    assert {row["impl"] for row in latency} == {"cheby", "mlp"} and not json.loads(proc.stdout)["failed"]
