"""Interleaved rounds end to end: a worker measures a group value by value, records keep the pairing, the answer
judges paired where it can and says when it could not (old records, other runs, other groups)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT, kanbench

from kanbench import results
from kanbench.analysis import judge
from kanbench.measure import timing, worker
from kanbench.measure.reply import Reply
from kanbench.report import answer, data
from kanbench.results.record import Record
from kanbench.run.kind import Request

TIMING = {"warmup": 1, "min_time": 0.0002, "values": 3, "clock": "wall"}


def cell(impl: str) -> dict:
    return {"impl": impl, "widths": [5, 4], "grid_size": 3, "spline_order": 3, "batch_size": 2, "device": "cpu",
            "dtype": "float32", "options": {}}  # fmt: skip


def test_a_worker_measures_its_group_in_rounds_in_the_order_its_seed_gives():
    cells = [{"cell": cell(i), "config_hash": f"h-{i}", "max_call_s": 60.0} for i in ("mlp", "fastkan")]
    found = worker.measure_group(cells, ["forward", "backward"], TIMING, first=True, seed=7)
    assert len(found) == 2 and all(r["status"] == "ok" for r in found)
    entries = [r["phases"][p] for r in found for p in ("forward", "backward")]
    assert all(e["rounds"] == [0, 1, 2] and len(e["values"]) == 3 for e in entries)
    # every round holds each of the four (cell, phase) slots once, at the positions the seed shuffles them to
    order = timing.shuffled_rounds(4, 3, 7)
    assert [[e["positions"][r] for e in entries] for r in range(3)] == [[o.index(i) for i in range(4)] for o in order]
    assert all("peak_mem_bytes" in e and "flops_counted" in e for e in entries)  # the first process


def test_a_group_reply_is_split_per_cell_and_a_failed_reply_is_every_cells():
    request = Request(0, ("a", "b"), {}, 10.0, "group")
    reply = {"cells": [{"status": "ok", "params": 1}, {"status": "ok", "params": 2}], "process": 1, "seed": 5,
             "reference": {"n": 9}}  # fmt: skip
    assert request.answers(reply) == [("a", Reply(params=1, process=1, seed=5, reference={"n": 9})),
                                      ("b", Reply(params=2, process=1, seed=5))]  # fmt: skip
    died = {"status": "error", "reason": "worker died", "phases": {}}
    assert request.answers(died) == [("a", Reply(**died)), ("b", Reply(**died))]
    assert Request(0, "a", {}, 1.0, "one").answers({"params": 1}) == [("a", Reply(params=1))]
    with pytest.raises(ValueError, match="Reply has no key.s. x; it has"):  # a key the reply does not declare
        Request(0, "a", {}, 1.0, "one").answers({"x": 1})


@pytest.fixture(scope="module")
def paired_run(tmp_path_factory) -> Path:
    suite = tmp_path_factory.mktemp("suite") / "pair.toml"
    suite.write_text("""
[suite]
name = "pair"
kind = "speed"
implementations = ["fastkan", "mlp", "mlp-iso"]
phases = ["forward", "train_step"]

[axes]
widths = [[784, 64, 10]]
grid_size = [5]
batch_size = [8]
device = ["cpu"]

[timing]
warmup = 1
min_time = 0.001
values = 4
processes = 2
threads = 1
""")
    out = tmp_path_factory.mktemp("runs") / "pair-run"
    proc = kanbench("run", str(suite), "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return out


def test_records_keep_each_values_process_and_round_and_their_group(paired_run):
    records = results.read_records(paired_run)
    assert len({r.group for r in records}) == 1 and records[0].group
    for r in records:
        assert r.time_s["process"] == [0] * 4 + [1] * 4 and r.time_s["round"] == [0, 1, 2, 3] * 2
        assert len(r.metrics["interleaved"]["seed"]) == 2 and len(r.metrics["interleaved"]["position"]) == 8
    frame = results.load(paired_run)
    assert list(frame["time_round"].iloc[0]) == [0, 1, 2, 3] * 2 and frame["group"].notna().all()


def test_the_answer_judges_a_paired_run_paired_and_prints_it_as_json(paired_run):
    proc = kanbench("answer", str(paired_run), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["config"]["widths_label"] == "784x64x10" and set(found["phases"]) == {"forward", "train_step"}
    ranked = found["phases"]["forward"]
    assert [r["impl"] for r in ranked][-1] != "mlp" and {r["impl"] for r in ranked} == {"fastkan", "mlp", "mlp-iso"}
    assert all(r["rule"] == "paired" for r in ranked[:-1]) and ranked[-1]["rule"] is None
    assert all(isinstance(r["median"], float) and r["median"] > 0 for r in ranked)
    assert next(r for r in ranked if r["impl"] == "mlp-iso")["vs_iso"] == pytest.approx(1.0)
    assert found["not_together"] == [] and found["min_effect"] == judge.MIN_EFFECT
    text = kanbench("answer", str(paired_run))
    assert text.returncode == 0 and "forward:" in text.stdout and "(paired)" in text.stdout


def test_runs_measured_apart_are_judged_unpaired_and_the_answer_says_so(paired_run, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    for name in ("environment.json", "suite.toml"):
        (other / name).write_bytes((paired_run / name).read_bytes())
    env = json.loads((other / "environment.json").read_text())
    env["hostname"] = "elsewhere"
    (other / "environment.json").write_text(json.dumps(env))
    lines = [json.loads(line) for line in (paired_run / "results.jsonl").read_text().splitlines()]
    moved = [{**r, "run_id": "other"} for r in lines if r["impl"] == "fastkan"]
    (other / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in moved))
    kept = paired_run.parent / "kept"
    kept.mkdir(exist_ok=True)
    for name in ("environment.json", "suite.toml"):
        (kept / name).write_bytes((paired_run / name).read_bytes())
    (kept / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines if r["impl"] != "fastkan"))
    runs = data.read_runs([kept, other])
    df, _ = data.combine(runs)
    found = answer.build(df)
    rules = {r.impl: r.gap.rule for r in found.ranks["forward"] if r.gap is not None}
    fast = [r.impl for r in found.ranks["forward"]]
    around = [fast[i] for i in range(len(fast) - 1) if "fastkan" in (fast[i], fast[i + 1])]
    assert all(rules[i] == "unpaired" for i in around)  # a gap to or from fastkan: no pairing joins them
    text = answer.trust(found, [r.environment for r in runs])
    assert "the timings come from 2 runs (kept, other)" in text and "different hostname" in text


def test_two_runs_of_the_same_name_are_never_paired(paired_run, tmp_path):
    copy = tmp_path / paired_run.name  # another directory, the same name
    copy.mkdir()
    for name in ("environment.json", "suite.toml", "results.jsonl"):
        (copy / name).write_bytes((paired_run / name).read_bytes())
    lines = [json.loads(line) for line in (paired_run / "results.jsonl").read_text().splitlines()]
    (copy / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines if r["impl"] == "fastkan"))
    first = tmp_path / "first"
    first.mkdir()
    (first / paired_run.name).mkdir()
    one = first / paired_run.name
    for name in ("environment.json", "suite.toml"):
        (one / name).write_bytes((paired_run / name).read_bytes())
    (one / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines if r["impl"] != "fastkan"))
    runs = data.read_runs([one, copy])
    found = answer.build(data.combine(runs)[0])
    assert found.runs == (f"{paired_run.name} (run 1)", f"{paired_run.name} (run 2)")
    fast = [r.impl for r in found.ranks["forward"]]
    around = [r for r in found.ranks["forward"][:-1] if "fastkan" in (r.impl, fast[fast.index(r.impl) + 1])]
    assert around and all(r.gap.rule == "unpaired" for r in around)


def test_the_text_answer_escapes_names_and_the_json_config_holds_numbers(paired_run, tmp_path):
    run = tmp_path / "named"
    run.mkdir()
    for name in ("environment.json", "suite.toml"):
        (run / name).write_bytes((paired_run / name).read_bytes())
    lines = [json.loads(line) for line in (paired_run / "results.jsonl").read_text().splitlines()]
    for r in lines:
        if r["impl"] == "fastkan":
            r["impl"] = "fastkan\n     9. mlp-iso  1 ns FAKE\u2028x"
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    text = kanbench("answer", str(run))
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert not any(line.lstrip().startswith("9. mlp-iso") for line in lines)  # no forged rank line
    assert all("fastkan\\n" in line for line in lines if "FAKE" in line) and "\u2028" not in text.stdout
    config = json.loads(kanbench("answer", str(run), "--format", "json").stdout)["config"]
    assert all(isinstance(config[k], int) for k in ("grid_size", "spline_order", "batch_size"))


def test_old_records_without_pairing_are_read_and_judged_by_the_unpaired_rule(tmp_path):
    baseline = ROOT / "results" / "baselines" / "fast-bspline-2026-11-29-final"
    old = results.read_records(baseline)
    assert old and all(r.group is None for r in old)
    assert all(not (r.time_s or {}).get("process") for r in old)
    df, _ = data.combine(data.read_runs([baseline]))
    found = answer.build(df)
    gaps = found.gaps()
    assert gaps and all(g.rule == "unpaired" for g in gaps)
    assert "0 judged paired" in answer.trust(found, [])
    assert found.resolvable is None  # no paired gap: nothing to say about what pairing resolves
    line = json.loads((baseline / "results.jsonl").read_text().splitlines()[0])
    assert Record.from_dict(line).schema == 5  # read and upgraded


def test_a_value_key_list_of_the_wrong_length_is_refused(paired_run):
    line = json.loads((paired_run / "results.jsonl").read_text().splitlines()[0])
    line["time_s"]["round"] = [0, 1]
    with pytest.raises(ValueError, match="round must hold one entry per value"):
        Record.from_dict(line)


def test_a_cell_a_resume_measures_alone_is_not_paired_with_the_earlier_session(paired_run, tmp_path):
    run = tmp_path / "resumed"
    run.mkdir()
    for name in ("environment.json", "suite.toml", "planned.json"):
        (run / name).write_bytes((paired_run / name).read_bytes())
    lines = [json.loads(line) for line in (paired_run / "results.jsonl").read_text().splitlines()]
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines if r["impl"] != "fastkan"))
    proc = kanbench("run", str(run / "suite.toml"), "--out", str(run), "--resume", "--quiet")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    groups = {r.impl: r.group for r in results.read_records(run)}
    assert groups["fastkan"] != groups["mlp"] == groups["mlp-iso"]
    found = answer.build(data.combine(data.read_runs([run]))[0])
    ranked = found.ranks["forward"]
    i = [r.impl for r in ranked].index("fastkan")
    touching = [g for g in (ranked[i].gap, ranked[i - 1].gap if i else None) if g is not None]
    assert touching and all(g.rule == "unpaired" for g in touching)


def test_a_sticky_error_building_a_later_model_measures_nothing(monkeypatch):
    real, rounds = worker.prepare, []

    def prepare(cell, config_hash, max_call_s, clock="wall"):
        if cell["impl"] == "fastkan":
            return None, {"status": "error", "reason": "CUDA error: illegal address", "phases": {}, "restart": True}
        return real(cell, config_hash, max_call_s, clock)

    monkeypatch.setattr(worker, "prepare", prepare)
    monkeypatch.setattr(timing, "measure_rounds", lambda *a, **k: rounds.append(a))
    cells = [{"cell": cell(i), "config_hash": f"h-{i}", "max_call_s": 60.0} for i in ("mlp", "fastkan", "rswaf")]
    found = worker.measure_group(cells, ["forward"], TIMING, first=False, seed=1)
    assert rounds == [] and len(found) == 3 and all(r["restart"] for r in found)
    assert found[0]["phases"]["forward"]["reason"].startswith("not measured: building a model hit")
    assert found[2]["phases"]["forward"]["status"] == "error"
