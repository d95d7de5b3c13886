"""The store refuses what it cannot trust: every corrupt run is an error naming file, line and field, for
kanbench.results.load, report, compare and merge alike (exit 2, never a traceback, never exit 0)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kanbench import cli, results
from kanbench.results.record import Identity, Record, TimeStats, make

IDENT = Identity(suite="s", impl="mlp", family="mlp", device="cpu", dtype="float32", batch_size=4, widths=(3, 2),
                 grid_size=3, spline_order=3, num_basis=0, options={}, config_hash="0123456789abcdef")  # fmt: skip


def good_records() -> list[Record]:
    out = []
    for phase in ("forward", "backward"):
        r = make(IDENT, "run", phase, counts={"params": 8, "params_total": 8})
        r.time_s = TimeStats.from_values([[1e-4, 1.1e-4, 1.2e-4]], 10).__dict__
        r.flops, r.peak_mem_bytes = 48, 1024
        r.metrics = {"flops_counted_matmul": 48, "first_call_s": [1e-3], "first_forward_s": [1e-3]}
        out.append(r)
    return out


def write_run(path: Path, lines: list[str] | None = None, environment: object = None) -> Path:
    path.mkdir(parents=True)
    lines = lines if lines is not None else [json.dumps(r.to_dict()) for r in good_records()]
    (path / results.RESULTS).write_text("".join(line + "\n" for line in lines))
    (path / results.ENVIRONMENT).write_text(json.dumps(environment if environment is not None else {"torch": "x"}))
    (path / results.SUITE).write_text('[suite]\nname = "s"\nimplementations = ["mlp"]\n')
    return path


def line(**changes) -> str:
    data = good_records()[0].to_dict()
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".")
            data[outer] = {**data[outer], inner: value}
        else:
            data[key] = value
    return json.dumps(data, allow_nan=True)


def second() -> str:
    return json.dumps(good_records()[1].to_dict())


# (case, lines of results.jsonl or a callable that damages the run, what the message must name)
CASES = {
    "invalid json": ([second(), '{"schema": 2,'], "results.jsonl:2: malformed record"),
    "not an object": (["[1, 2]"], "results.jsonl:1: malformed record: a record must be a JSON object"),
    "missing field": (
        [json.dumps({k: v for k, v in json.loads(line()).items() if k != "impl"})],
        "lacks field(s) impl",
    ),
    "time_s a string": ([line(time_s="fast")], "field time_s: must be an object"),
    "widths an int": ([line(widths=7)], "field widths: must be a list"),
    "widths a string": ([line(widths="3x2")], "field widths: must be a list"),
    "batch_size a string": ([line(batch_size="4")], "field batch_size: must be an int"),
    "metrics a list": ([line(metrics=[1])], "field metrics: must be an object or null"),
    "config_hash an int": ([line(config_hash=12)], "field config_hash: must be a string"),
    "flops a string": ([line(flops="48")], "field flops: must be an int"),
    "unknown phase": ([line(phase="sideways")], "field phase: must be one of"),
    "unknown status": ([line(status="meh")], "field status: must be one of"),
    "nan timing": ([line(**{"time_s.median": float("nan")})], "field time_s: median must be a finite number"),
    "inf timing": ([line(**{"time_s.max": float("inf")})], "field time_s: max must be a finite number"),
    "negative timing": ([line(**{"time_s.min": -1.0})], "field time_s: min must be a finite number >= 0"),
    "empty timings": ([line(**{"time_s.values": []})], "field time_s: values must hold at least one value"),
    "negative memory": ([line(peak_mem_bytes=-5)], "field peak_mem_bytes: must be an int >= 0"),
    "duplicate record": ([line(), second(), line()], "results.jsonl:3: duplicate record"),
    "empty file": ([], "holds no records"),
    "nested too deeply": (["[" * 100_000 + "]" * 100_000], "results.jsonl:1: malformed record: nested too deeply"),
}


def damaged(tmp_path: Path, case: str) -> Path:
    run = tmp_path / "bad"
    if case in CASES:
        return write_run(run, CASES[case][0])
    write_run(run)
    if case == "non-UTF-8 byte":
        (run / results.RESULTS).write_bytes(b'{"schema": 2, "impl": "ml\xff"}\n')
    elif case == "results.jsonl a directory":
        (run / results.RESULTS).unlink()
        (run / results.RESULTS).mkdir()
    elif case == "environment missing":
        (run / results.ENVIRONMENT).unlink()
    elif case == "environment malformed":
        (run / results.ENVIRONMENT).write_text("{oops")
    elif case == "environment not an object":
        (run / results.ENVIRONMENT).write_text("[1, 2]")
    elif case == "environment run not an object":
        (run / results.ENVIRONMENT).write_text('{"run": 5}')
    elif case == "environment shard not a string":
        (run / results.ENVIRONMENT).write_text('{"run": {"shard": 3}}')
    elif case == "environment nested too deeply":
        (run / results.ENVIRONMENT).write_text("[" * 100_000 + "]" * 100_000)
    return run


OTHER = {
    "non-UTF-8 byte": "results.jsonl:1: not UTF-8",
    "results.jsonl a directory": "results.jsonl: not a file",
    "environment missing": "environment.json: missing",
    "environment malformed": "environment.json:1: malformed JSON",
    "environment not an object": "environment.json: must hold a JSON object",
    "environment run not an object": "environment.json: field run must be an object",
    "environment shard not a string": "environment.json: field run.shard must be a string",
    "environment nested too deeply": "environment.json: malformed JSON: nested too deeply",
}
ALL = {**{k: v[1] for k, v in CASES.items()}, **OTHER}


def test_a_good_run_loads_and_blank_lines_and_crlf_are_fine(tmp_path):
    lines = [json.dumps(r.to_dict()) + "\r" for r in good_records()]
    run = write_run(tmp_path / "ok", [lines[0], "", "   ", lines[1]])
    assert len(results.load(run)) == 2


@pytest.mark.parametrize("case", sorted(ALL))
def test_results_load_names_file_line_and_field(tmp_path, case):
    with pytest.raises(results.ResultsError, match=None) as info:
        results.load(damaged(tmp_path, case))
    assert ALL[case] in str(info.value) and str(tmp_path / "bad") in str(info.value)


@pytest.mark.parametrize("command", ["report", "compare", "merge"])
@pytest.mark.parametrize("case", sorted(ALL))
def test_report_compare_and_merge_exit_2(tmp_path, capsys, case, command):
    bad, good = damaged(tmp_path, case), write_run(tmp_path / "good")
    argv = {
        "report": ["report", str(bad), "-o", str(tmp_path / "r.html")],
        "compare": ["compare", str(good), str(bad)],
        "merge": ["merge", str(good), str(bad), "--out", str(tmp_path / "merged")],
    }[command]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kanbench {command}: error: ") and ALL[case] in err and "Traceback" not in err, err
    assert not (tmp_path / "r.html").exists()


def shard_run(path: Path, k: int, n: int, records: list[Record], planned: list[Record]) -> Path:
    run = write_run(path, [json.dumps(r.to_dict()) for r in records], {"run": {"shard": f"{k}/{n}"}})
    rows = [[*r.key, f"mlp 3x2 b{r.batch_size}"] for r in planned]
    results.write_json(run / results.PLANNED, {"records": rows})
    return run


def test_merge_refuses_a_lone_or_unfinished_shard_unless_allowed(tmp_path, capsys):
    forward, backward = good_records()
    backward.config_hash = "fedcba9876543210"  # another cell, the other shard's
    one = shard_run(tmp_path / "one", 1, 2, [forward], [forward])
    out = tmp_path / "merged"
    assert cli.main(["merge", str(one), "--out", str(out)]) == 2
    assert "shard(s) 2/2 missing" in capsys.readouterr().err and not out.exists()
    two = shard_run(tmp_path / "two", 2, 2, [], [backward])  # killed before its first record
    (two / results.RESULTS).write_text(json.dumps(backward.to_dict()).replace('"backward"', '"forward"') + "\n")
    assert cli.main(["merge", str(one), str(two), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "lacks 1 of its 1 planned records (mlp 3x2 b4 backward)" in err and "--resume" in err and not out.exists()
    assert cli.main(["merge", str(one), str(two), "--out", str(out), "--allow-partial"]) == 0
    merged = results.read_records(out)
    assert len(merged) == 2 and results.read_environment(out)["run"]["complete"] is False


def test_a_refused_merge_leaves_no_out_and_a_retry_works(tmp_path, capsys):
    good = write_run(tmp_path / "good")
    bad = write_run(tmp_path / "bad", [line(flops="many")])
    out = tmp_path / "merged"
    assert cli.main(["merge", str(good), str(bad), "--out", str(out)]) == 2
    assert not out.exists() and not list(tmp_path.glob(".merged.*"))
    assert cli.main(["merge", str(good), "--out", str(out)]) == 0
    assert len(results.read_records(out)) == 2 and not list(tmp_path.glob(".merged.*"))
    capsys.readouterr()
    assert cli.main(["merge", str(good), "--out", str(out)]) == 2
    assert "exists and is not an empty directory" in capsys.readouterr().err


def test_merge_refuses_shards_measured_with_different_settings(tmp_path, capsys):
    forward, backward = good_records()
    backward.config_hash = "fedcba9876543210"
    one = shard_run(tmp_path / "one", 1, 2, [forward], [forward])
    two = shard_run(tmp_path / "two", 2, 2, [backward], [backward])
    for path, only in ((one, ["impl=mlp"]), (two, None)):
        env = results.read_environment(path)
        env["run"].update(only=only, timing={"values": 3})
        results.write_environment(path, env)
    assert cli.main(["merge", str(one), str(two), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "different settings" in err and "only" in err and not (tmp_path / "m").exists()


def test_an_empty_shard_merges_and_the_merged_run_keeps_the_umask(tmp_path):
    forward = good_records()[0]
    one = shard_run(tmp_path / "one", 1, 2, [forward], [forward])
    two = shard_run(tmp_path / "two", 2, 2, [], [])  # its shard held no group at all
    out = tmp_path / "m"
    assert cli.main(["merge", str(one), str(two), "--out", str(out)]) == 0
    assert len(results.read_records(out)) == 1
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask
