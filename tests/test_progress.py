"""Progress: an ETA from whole groups' pace, and a log line at least every HEARTBEAT_S without a terminal."""

from __future__ import annotations

import io

import pytest

from kanbench.run import progress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_eta_follows_the_pace_of_finished_groups_not_of_a_groups_first_cell():
    clock, out = Clock(), io.StringIO()
    bar = progress.Progress(6, 6.0, stream=out, clock=clock)  # two groups of three cells, estimated 1 s a cell
    clock.now = 4.0
    bar.begin()  # workers up after 4 s: start-up is no cell's time
    clock.now = 10.0  # the first group took twice its estimate; its three cells are reported together
    bar.advance("a1", 3.0, settles=True)  # the first cell of a finished group carries the group's estimate
    prior = progress.PRIOR_SHARE * 6.0  # the estimate, as if this much of it had run at its own pace
    assert bar.eta() == pytest.approx(3.0 * (6.0 + prior) / (3.0 + prior))  # 3 s of estimate left at about 2x
    bar.advance("a2", 0.0)
    bar.advance("a3", 0.0)
    assert bar.eta() == pytest.approx(3.0 * (6.0 + prior) / (3.0 + prior))  # no jump within the group's lines
    clock.now = 16.0
    for label in ("b1", "b2", "b3"):
        bar.advance(label, 3.0 if label == "b1" else 0.0, settles=label == "b1")
    assert bar.eta() == 0.0
    assert out.getvalue().count("done ") == 6


def test_once_a_second_group_finished_the_first_groups_one_time_costs_leave_the_pace():
    clock = Clock()
    bar = progress.Progress(3, 3.0, stream=io.StringIO(), clock=clock)
    bar.begin()
    for now in (3.0, 4.0):  # the first group took 3x its estimate (first calls, gradchecks), the second 1x
        clock.now = now
        bar.advance("a", 1.0, settles=True)
    assert bar.pace() == pytest.approx(1.0) and bar.eta() == pytest.approx(1.0)


def test_one_slow_early_group_moves_the_eta_less_than_its_own_pace():
    clock = Clock()
    bar = progress.Progress(10, 10.0, stream=io.StringIO(), clock=clock)
    bar.begin()
    for now in (1.0, 2.5):  # the second group took 1.5x its estimate
        clock.now = now
        bar.advance("a", 1.0, settles=True)
    assert 1.0 < bar.pace() < 1.5  # between the estimate's pace and the one group's
    assert bar.pace() == pytest.approx((1.5 + 1.5) / (1.0 + 1.5))


def test_without_a_terminal_a_line_names_the_cell_when_the_log_was_silent():
    clock, out = Clock(), io.StringIO()
    bar = progress.Progress(2, 2.0, stream=out, clock=clock)
    bar.current("bspline 784x64x10 (process 1/2)")
    assert out.getvalue() == ""  # just started: nothing to say yet
    clock.now = progress.HEARTBEAT_S + 1
    bar.current("bspline 784x64x10 (process 2/2)")
    assert "measuring bspline 784x64x10 (process 2/2)" in out.getvalue()
    bar.current("fastkan 784x64x10 (process 1/2)")
    assert "fastkan" not in out.getvalue()  # a line was just written


def test_the_end_of_run_line_groups_skips_whose_reasons_differ_only_in_numbers():
    from types import SimpleNamespace

    from kanbench.run import session

    def skip(reason):
        return SimpleNamespace(status="skipped", reason=reason, impl="pykan", phase="forward", profiled_phase=None)

    records = [skip("one forward call took 0.285 s > limits.max_call_s = 0.25 s"),
               skip("one forward call took 0.288 s > limits.max_call_s = 0.25 s"),
               *[skip("CUDA is not available on this machine")] * 3]  # fmt: skip
    lines = session.status_line(records).splitlines()
    assert lines[1:] == ["  2 skipped: one forward call took 0.285 s > limits.max_call_s = 0.25 s (e.g.; 2 variants)",
                         "  3 skipped: CUDA is not available on this machine"]  # fmt: skip
