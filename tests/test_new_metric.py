"""A new speed metric is two edits: docs/architecture.md's example, applied to a copy of kanbench, is written by a
real run and shows in results.load, the report (its frame and the records its page embeds) and compare's JSON,
with no other file edited."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pandas as pd
from conftest import CACHE, ROOT

from kanbench.analysis import compare
from kanbench.results import record

SUITE = """
[suite]
name = "newmetric"
kind = "speed"
implementations = ["mlp"]
phases = ["forward"]

[axes]
widths = [[5, 3]]
grid_size = [3]
batch_size = [4]

[timing]
processes = 1
threads = 1
"""

# What the copy reads back, in a process that imports the copy (this one imports the checkout).
READ_BACK = """
import json, sys
import kanbench
from kanbench import results
from kanbench.cli import main
from kanbench.report import data

run, html, out = sys.argv[1:]
frame = results.load(run)
combined, _ = data.combine(data.read_runs([run]))
report = main(["report", run, "-o", html])
compared = main(["compare", run, run, "--format", "json", "-o", out])
print(json.dumps({
    "kanbench": kanbench.__file__, "report": report, "compare": compared,
    "batch": frame["batch_size"].tolist(), "median": frame["time_median"].tolist(),
    "load": frame["metric_samples_per_s"].tolist(), "combined": combined["metric_samples_per_s"].tolist(),
}))
"""


def the_two_edits() -> dict[str, tuple[str, str]]:
    """{file: (where, code)} of the example's code blocks, as the page shows them."""
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n# (kanbench/[\w/]+\.py), ([^\n]*)\n(.*?)```", doc, re.S)
    return {path: (where, code) for path, where, code in blocks}


def apply(source: str, where: str, code: str) -> str:
    """source with code inserted where the page says: "before `a line`" or "at the end of class Name"."""
    before = re.fullmatch(r"before `(.+)`", where)
    if before:
        at = source.index(before.group(1))
        at = source.rindex("\n", 0, at) + 1
        return source[:at] + code + source[at:]
    name = re.fullmatch(r"at the end of class (\w+)", where)
    assert name, f"the page says where to edit as 'before `line`' or 'at the end of class Name', got {where!r}"
    at = source.index("\n\n\n", source.index(f"class {name.group(1)}(")) + 1
    return source[:at] + code + source[at:]


def run(*args: str, copy: Path, cwd: Path) -> subprocess.CompletedProcess:
    """Python with the copy first on the path (cwd too: `python -m` puts it first)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(copy), str(ROOT)]), "KANBENCH_CACHE": str(CACHE)}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def test_a_metric_added_in_two_files_reaches_load_report_and_compare(tmp_path):
    edits = the_two_edits()
    assert sorted(edits) == ["kanbench/results/record.py", "kanbench/run/speed.py"]
    assert "samples_per_s" not in {f.name for f in fields(record.SpeedMetrics)}  # the checkout lacks it
    copy = tmp_path / "copy"
    shutil.copytree(ROOT / "kanbench", copy / "kanbench", ignore=shutil.ignore_patterns("__pycache__"))
    for path, (where, code) in edits.items():
        source = (copy / path).read_text(encoding="utf-8")
        (copy / path).write_text(apply(source, where, code), encoding="utf-8")
    (tmp_path / "s.toml").write_text(SUITE)

    proc = run("-m", "kanbench", "run", "s.toml", "--smoke", "--quiet", "--out", "run", copy=copy, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    proc = run("-c", READ_BACK, "run", "report.html", "compare.json", copy=copy, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    got = json.loads(proc.stdout.splitlines()[-1])
    assert Path(got["kanbench"]).is_relative_to(copy) and got["report"] == got["compare"] == 0
    value = got["batch"][0] / got["median"][0]
    assert got["load"] == got["combined"] == [value]  # results.load, and the frame the report is drawn from

    from kanbench.report import read_embedded

    embedded = read_embedded((tmp_path / "report.html").read_text(encoding="utf-8"))
    assert [r["metrics"]["samples_per_s"] for r in embedded["runs"][0]["records"]] == [value]
    rows = json.loads((tmp_path / "compare.json").read_text())["metrics"]
    assert {"metric": "samples_per_s", "base": value, "cand": value, "ratio": 1.0, "label": "mlp"}.items() <= next(
        r for r in rows if r["metric"] == "samples_per_s"
    ).items()


def test_compare_sets_each_scalar_metric_side_by_side():
    def side(*rounds: dict) -> pd.DataFrame:
        return pd.DataFrame(
            [{"config_hash": "h", "phase": "forward", "impl": "mlp", "status": "ok", "time_values": [1e-3],
              **{f"metric_{k}": v for k, v in m.items()}} for m in rounds]
        )  # fmt: skip

    base = side({"bytes_estimate": 100, "launch_bound": True}, {"bytes_estimate": 100, "launch_bound": False})
    cand = side({"bytes_estimate": 300, "launch_bound": True, "first_call_s": 1.0}, {"bytes_estimate": 200})
    rows = compare.compare_metrics(base, cand).set_index("metric")
    assert rows.loc["bytes_estimate", ["base", "cand", "ratio"]].tolist() == [100, 250, 2.5]  # rounds: the median
    assert rows.loc["launch_bound", ["base", "cand", "ratio"]].tolist() == [None, True, None]  # rounds disagree
    assert "first_call_s" not in rows.index  # a list per process: no scalar, no row
