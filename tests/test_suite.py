"""Suite validation and cell expansion."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT

from kanbench.errors import UsageError
from kanbench.suite import groups_of, parse, parse_shard, shard, timing_with

GOOD = """
[suite]
name = "t"
kind = "speed"
implementations = ["bspline", "mlp"]
phases = ["forward", "backward"]

[axes]
widths = [[4, 3], [5, 4, 2]]
grid_size = [3, 5]
batch_size = [2]
device = ["cpu", "cuda"]
dtype = ["float32"]

[timing]
warmup = 1
min_time = 0.001
values = 2
processes = 1
"""


def bad(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


def test_good_suite_expands_to_the_cartesian_product():
    suite = parse(GOOD, "good.toml")
    cells = suite.cells()
    assert len(cells) == 2 * 2 * 1 * 2 * 1 * 2  # widths x grid x batch x device x dtype x impls
    assert suite.timing.values == 2 and suite.phases == ("forward", "backward")
    assert [c.impl for c in cells[:2]] == ["bspline", "mlp"]  # implementations side by side
    assert len({c.config_hash for c in cells}) == len(cells)
    assert parse(GOOD, "other.toml").cells()[0].config_hash == cells[0].config_hash  # stable


@pytest.mark.parametrize(
    "old,new,where",
    [
        ('kind = "speed"', 'kind = "speed"\ncolour = "red"', "[suite].colour"),
        ("[timing]", "[timings]", "timings"),
        ('["bspline", "mlp"]', '["bspline", "nope"]', "[suite].implementations[1]"),
        ("grid_size = [3, 5]", "grid_size = []", "[axes].grid_size"),
        ("grid_size = [3, 5]", "grid_size = 3", "[axes].grid_size"),
        ("batch_size = [2]", 'batch_size = ["2"]', "[axes].batch_size[0]"),
        ("batch_size = [2]", "batch_size = [-8]", "[axes].batch_size[0]"),
        ("widths = [[4, 3], [5, 4, 2]]", "widths = [[4]]", "[axes].widths[0]"),
        ('device = ["cpu", "cuda"]', 'device = ["tpu"]', "[axes].device[0]"),
        ('phases = ["forward", "backward"]', 'phases = ["sideways"]', "[suite].phases[0]"),
        ("values = 2", "values = 0", "[timing].values"),
        ("min_time = 0.001", 'min_time = "fast"', "[timing].min_time"),
        ('kind = "speed"', 'kind = "fast"', "[suite].kind"),
        ("batch_size = [2]\n", "", "[axes].batch_size"),
        ("processes = 1", 'processes = 1\nclock = "sundial"', "[timing].clock"),
        ("processes = 1", 'processes = 1\nclock = "thread"\nthreads = 1', "[timing].clock"),  # cuda cells
    ],
)
def test_bad_suites_name_file_and_key(old, new, where):
    with pytest.raises(UsageError) as info:
        parse(bad(old, new), "suites/bad.toml")
    message = str(info.value)
    assert message.startswith("suites/bad.toml: ") and where in message, message


def test_unknown_implementation_lists_known_ones_once():
    with pytest.raises(UsageError, match="unknown implementation 'nope'; known: bspline, bspline-fast") as info:
        parse(bad('["bspline", "mlp"]', '["bspline", "nope"]'), "s.toml")
    assert str(info.value).count("known:") == 1 and str(info.value).count("fastkan,") == 1


def test_invalid_toml_is_a_usage_error():
    with pytest.raises(UsageError, match="not valid TOML"):
        parse("[suite\nname=", "x.toml")


@pytest.mark.parametrize("spec", ["3/2", "0/2", "a/b", "1", "1/0"])
def test_bad_shard_specs(spec):
    with pytest.raises(UsageError, match="--shard"):
        parse_shard(spec)


def test_shards_partition_the_cells_by_group():
    cells = parse(GOOD, "s.toml").cells()
    parts = [shard(cells, f"{k}/3") for k in (1, 2, 3)]
    assert sorted(c.config_hash for p in parts for c in p) == sorted(c.config_hash for c in cells)
    for part in parts:  # implementations of one group stay together
        groups = {c.group_key for c in part}
        assert all(sum(c.group_key == g for c in part) == 2 for g in groups)


def test_several_axes_tables_are_a_union_without_duplicates():
    text = (
        GOOD.replace("[axes]", "[[axes]]")
        + """
[[axes]]
widths = [[4, 3]]
grid_size = [3, 7]
batch_size = [2]
"""
    )
    suite = parse(text, "union.toml")
    cells = suite.cells()
    assert len(cells) == 16 + 2  # the second sweep adds only G=7 (G=3 on cpu is already there)
    assert len({c.config_hash for c in cells}) == len(cells)
    with pytest.raises(UsageError, match=r"\[\[axes\]\]\[1\].batch_size"):
        parse(text.replace("grid_size = [3, 7]\nbatch_size = [2]", "grid_size = [3, 7]"), "union.toml")


def test_compile_axis_doubles_cells_and_keeps_eager_hashes():
    eager = parse(GOOD, "s.toml").cells()
    both = parse(GOOD.replace('dtype = ["float32"]', 'dtype = ["float32"]\ncompile = [false, true]'), "s.toml").cells()
    assert len(both) == 2 * len(eager)
    assert {c.config_hash for c in eager} == {c.config_hash for c in both if not c.compile}
    with pytest.raises(UsageError, match=r"\[axes\].compile\[0\]"):
        parse(GOOD.replace('dtype = ["float32"]', 'dtype = ["float32"]\ncompile = ["yes"]'), "s.toml")


def test_thread_clock_needs_one_thread_and_the_cpu():
    cpu_only = GOOD.replace('device = ["cpu", "cuda"]', 'device = ["cpu"]')
    assert (
        parse(cpu_only.replace("processes = 1", 'processes = 1\nclock = "thread"\nthreads = 1')).timing.clock
        == "thread"
    )
    assert parse(cpu_only.replace("processes = 1", 'processes = 1\nclock = "thread"')).timing.threads == 1  # default
    with pytest.raises(UsageError, match="threads = 1"):
        parse(cpu_only.replace("processes = 1", 'processes = 1\nclock = "thread"\nthreads = 2'))


@pytest.mark.parametrize(
    "key,value,message",
    [("values", 100_000, "must be <= 10000, got 100000"), ("processes", 0, "must be >= 1, got 0"),
     ("min_time", -1.0, "must be > 0, got -1.0"), ("min_time", float("inf"), "must be a finite number, got inf")],
)  # fmt: skip
def test_a_flag_gets_the_message_its_file_value_gets(key, value, message):
    text = GOOD[: GOOD.index("[timing]")] + f"[timing]\n{key} = {value}\n"
    with pytest.raises(UsageError) as from_file:
        parse(text, "s.toml")
    with pytest.raises(UsageError) as from_flag:
        timing_with(parse(GOOD, "s.toml"), {key: value, "clock": None})
    assert str(from_file.value) == f"s.toml: [timing].{key}: {message}"
    assert str(from_flag.value) == f"--{key.replace('_', '-')}: {message}"


def test_a_clock_flag_meets_every_rule_of_the_file():
    cpu_only = GOOD.replace('device = ["cpu", "cuda"]', 'device = ["cpu"]')
    assert timing_with(parse(cpu_only), {"clock": "thread"}).clock == "thread"
    refused = [
        (GOOD, "--clock: thread cannot time GPU work"),
        (cpu_only + "threads = 2\n", "--clock: thread CPU time counts only the calling thread"),
        (cpu_only + 'cache = "cold"\n', '--clock: thread cannot go with cache = "cold"'),
    ]
    for text, message in refused:
        with pytest.raises(UsageError, match=message):
            timing_with(parse(text), {"clock": "thread"})


def test_smoke_keeps_the_suites_threads_and_clock_and_flags_apply_over_it():
    cpu_only = GOOD.replace('device = ["cpu", "cuda"]', 'device = ["cpu"]') + 'clock = "thread"\ncell_timeout_s = 9\n'
    t = timing_with(parse(cpu_only), {"values": 7, "min_time": None}, smoke=True)
    assert (t.warmup, t.min_time, t.values, t.processes) == (0, 0.0002, 7, 1)
    assert (t.threads, t.cell_timeout_s, t.clock) == (1, 9.0, "thread")


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parent.parent / "suites").glob("*.toml")), ids=str)
def test_every_shipped_suite_is_valid(path, monkeypatch):
    """Each suite in suites/ loads (names, axes, options all valid) and plans at least one cell."""
    from kanbench import suite as suite_module

    monkeypatch.chdir(path.parent.parent)  # ad hoc adapters (benchmarks.originals...) resolve from the repo root
    monkeypatch.syspath_prepend(str(path.parent.parent))
    loaded = suite_module.load(path)
    assert loaded.kind == "accuracy" or loaded.cell_count() > 0


@pytest.mark.parametrize("n", [2, 3])
def test_shards_balance_each_devices_estimated_time(n):
    """default.toml: round-robin gave one of two shards every CPU cell (6m43s against 8 s on a machine without CUDA)."""
    from kanbench.run import speed
    from kanbench.suite import load

    suite = load(ROOT / "suites" / "default.toml")
    kind = speed.SpeedKind(suite, suite.timing, suite.cells(), suite.phases, smoke=False)
    cells = kind.cells()
    parts = [shard(cells, f"{k}/{n}", kind.estimate) for k in range(1, n + 1)]
    hashes = [c.config_hash for part in parts for c in part]
    assert sorted(hashes) == sorted(c.config_hash for c in cells)  # a partition: nothing lost, nothing twice
    for device in ("cpu", "cuda"):
        times = [sum(kind.estimate(c) for c in part if c.device == device) for part in parts]
        largest = max(sum(kind.estimate(c) for c in g) for g in groups_of(cells) if g[0].device == device)
        assert max(times) - min(times) <= largest, (device, times)  # whole groups: never closer than one group
        if n == 2:
            assert max(times) <= 1.2 * min(times), (device, times)  # the target for two shards
    for part in parts:  # whole groups: every implementation of a shape in the same shard
        assert all(len({c.impl for c in part if c.group_key == g.group_key}) == len(suite.implementations)
                   for g in part)  # fmt: skip
