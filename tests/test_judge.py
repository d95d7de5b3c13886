"""The one judge (kanbench.analysis.judge): paired ratios with their own interval, the unpaired rule, and bursts."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from kanbench.analysis import judge
from kanbench.analysis.judge import Sample
from kanbench.results.record import quantile

PROCESSES, ROUNDS = 3, 4


def timings(base: float, effects: dict[str, float], seed: int = 0, noise: float = 0.05, process_drift: float = 0.3,
            together: str | None = "run/g1") -> dict[str, Sample]:  # fmt: skip
    """Samples of implementations measured together: impl's value = base x effect x the moment's slowness x its own
    noise. The moment (process, round) slows every implementation alike, by up to process_drift per process."""
    rng = random.Random(seed)
    moments = {(p, r): (1 + rng.uniform(0, process_drift)) * (1 + rng.uniform(0, 0.2))
               for p in range(PROCESSES) for r in range(ROUNDS)}  # fmt: skip
    out = {}
    for impl, effect in effects.items():
        keys = list(moments)
        values = [base * effect * moments[k] * math.exp(rng.gauss(0, noise)) for k in keys]
        out[impl] = sample(values, keys, together)
    return out


def sample(values: list[float], keys: list[tuple[int, int]], together: str | None = "run/g1") -> Sample:
    s = sorted(values)
    return Sample(quantile(s, 0.5), quantile(s, 0.25), quantile(s, 0.75), tuple(values), tuple(keys), together)


def test_a_known_gap_measured_together_is_resolved_with_its_ratio_and_interval():
    found = timings(1e-3, {"a": 1.0, "b": 1.3})
    gap = judge.judge(found["a"], found["b"])
    assert gap.rule == judge.PAIRED and gap.pairs == PROCESSES * ROUNDS
    assert gap.ratio == pytest.approx(1.3, rel=0.06)
    assert gap.low < gap.ratio < gap.high and gap.low > 1
    assert gap.resolved and gap.a_faster
    back = judge.judge(found["b"], found["a"])
    assert back.resolved and not back.a_faster and back.ratio == pytest.approx(1 / gap.ratio)


def test_no_difference_and_a_difference_below_the_smallest_effect_are_not_resolved():
    same = timings(1e-3, {"a": 1.0, "b": 1.0}, seed=3)
    assert not judge.judge(same["a"], same["b"]).resolved
    tiny = timings(1e-3, {"a": 1.0, "b": 1.03}, seed=4, noise=0.001)  # a clear 3%, below MIN_EFFECT
    gap = judge.judge(tiny["a"], tiny["b"])
    assert gap.low > 1 and not gap.resolved


def test_pairing_resolves_what_the_unpaired_rule_cannot_when_the_machine_drifts():
    found = timings(1e-3, {"a": 1.0, "b": 1.25}, seed=5, process_drift=1.5)
    assert judge.judge(found["a"], found["b"]).resolved
    # the same values, not measured together: the drift between moments hides the gap
    apart = judge.judge(Sample(found["a"].median, found["a"].low, found["a"].high),
                        Sample(found["b"].median, found["b"].low, found["b"].high))  # fmt: skip
    assert apart.rule == judge.UNPAIRED and not apart.resolved


def burst(s: Sample, factor: float, rounds: tuple[int, ...]) -> Sample:
    """s with the given rounds of process 0 slowed by factor: a burst of interference."""
    values = [v * factor if k[0] == 0 and k[1] in rounds else v for v, k in zip(s.values, s.keys)]
    return sample(values, list(s.keys))


@pytest.mark.parametrize("who", ["both", "a", "b"])
def test_a_burst_on_one_cell_does_not_flip_a_verdict(who):
    found = timings(1e-3, {"a": 1.0, "b": 1.25}, seed=7)
    a, b = found["a"], found["b"]
    # one round slowed 3x: on both sides (the usual case, interleaved) or on one side only
    gap = judge.judge(burst(a, 3.0, (1,)) if who != "b" else a, burst(b, 3.0, (1,)) if who != "a" else b)
    assert gap.resolved and gap.ratio > 1  # b is still resolved as the slower
    assert gap.ratio == pytest.approx(1.25, rel=0.12)
    # two rounds of one process slowed 3x on one side only: the verdict may be lost, never turned round
    harsh = judge.judge(burst(a, 3.0, (1, 2)) if who != "b" else a, burst(b, 3.0, (1, 2)) if who != "a" else b)
    assert not (harsh.resolved and harsh.ratio < 1)


def test_timings_of_different_runs_or_groups_are_judged_unpaired():
    found = timings(1e-3, {"a": 1.0, "b": 2.0})
    other = timings(1e-3, {"b": 2.0}, together="other/g1")["b"]
    gap = judge.judge(found["a"], other)
    assert gap.rule == judge.UNPAIRED and gap.low is None
    assert judge.judge(found["a"], Sample(2e-3, 1.9e-3, 2.1e-3)).rule == judge.UNPAIRED  # an old record: no keys


def test_the_unpaired_rule_needs_the_iqrs_apart_and_the_gap_beyond_the_process_spread():
    a, b = Sample(1.0, 0.99, 1.01), Sample(1.5, 1.49, 1.51)
    assert judge.unpaired(a, b).resolved and judge.unpaired(a, b, margin=0.1).resolved
    assert not judge.unpaired(a, b, margin=0.3).resolved  # 1.5 < 1.3^2
    assert not judge.unpaired(a, Sample(1.5, 1.0, 2.0)).resolved  # IQRs overlap
    assert judge.process_spread([[1.0, 1.3], [2.0, 2.0], [1.0]], quantile=1.0) == pytest.approx(0.3)


def test_the_bootstrap_is_reproducible_and_handles_uneven_processes():
    logs = {0: [0.1, 0.2, 0.15], 1: [0.12, 0.18], 2: [0.2]}
    first, second = judge.bootstrap_median(logs), judge.bootstrap_median(logs)
    assert (first == second).all() and 0.1 <= first.min() and first.max() <= 0.2


def test_a_slower_implementation_between_two_runs_is_found_by_its_paired_relative_ratio():
    def run(seed: float, slow: float) -> dict[str, dict[int, list[float]]]:
        found = timings(1e-3, {"a": 1.0, "b": 2.0 * slow, "c": 3.0, "d": 0.5}, seed=seed, process_drift=0.6)
        return judge.relative_logs({name: (list(s.values), list(s.keys)) for name, s in found.items()})

    base, same, slower = run(11, 1.0), run(12, 1.0), run(13, 1.15)
    assert not judge.between(base["b"], same["b"]).resolved
    gap = judge.between(base["b"], slower["b"])
    # b is 15% slower; against the group's median at each moment (a and b straddle it), its cost grows by half
    # of that and the others' falls by the other half: compare centres each group on its median ratio
    ratios = [judge.between(base[n], slower[n]).ratio for n in ("a", "b", "c", "d")]
    centre = math.exp(statistics.median(math.log(r) for r in ratios))
    assert gap.low > 1 and gap.ratio / centre == pytest.approx(1.15, rel=0.06)
    three = {n: ([v], [(0, 0)]) for n, v in (("a", 1.0), ("b", 2.0), ("c", 3.0))}
    assert judge.relative_logs(three) == {}  # three cannot say which moved: each one's reference is the other two


def test_resolvable_is_the_smallest_effect_widened_by_the_typical_paired_interval():
    narrow = judge.Gap(1.3, 1.29, 1.31, True, judge.PAIRED)
    wide = judge.Gap(1.3, 1.0, 1.7, False, judge.PAIRED)
    edge = 1 + judge.MIN_EFFECT  # a gap resolves when its interval clears this
    assert judge.resolvable([narrow]) == pytest.approx(edge * math.sqrt(1.31 / 1.29))
    assert judge.resolvable([wide]) == pytest.approx(edge * math.sqrt(1.7 / 1.0))
    assert judge.resolvable([judge.Gap(2.0, None, None, True, judge.UNPAIRED)]) is None


def test_too_few_pairs_or_processes_that_disagree_are_not_resolved():
    found = timings(1e-3, {"a": 1.0, "b": 1.5})
    few = [Sample(s.median, s.low, s.high, s.values[:6], s.keys[:6], s.together) for s in (found["a"], found["b"])]
    assert judge.judge(*few).rule == judge.UNPAIRED  # 6 pairs < MIN_PAIRS
    keys = [(p, r) for p in range(2) for r in range(6)]
    a = sample([1.0] * 12, keys)
    b = sample([1.3] * 6 + [0.97] * 6, keys)  # process 1 sees the other order
    gap = judge.judge(a, b)
    assert gap.rule == judge.PAIRED and not gap.resolved
