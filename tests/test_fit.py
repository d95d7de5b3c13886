"""`kanbench fit`: bytes of training fitted over batches, the largest batch within a budget, verified."""

from __future__ import annotations

import pytest

from kanbench import cli
from kanbench.errors import UsageError
from kanbench.measure import fit

MiB = 2**20


@pytest.mark.parametrize(
    "text, expected",
    [("24GiB", 24 * 2**30), ("512 MiB", 512 * MiB), ("1.5GB", 1_500_000_000), ("1000000", 1_000_000), ("4kib", 4096)],
)
def test_budget_sizes(text, expected):
    assert fit.parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["24 furlongs", "", "-1GiB", "0", "GiB"])
def test_bad_budget_names_the_forms_allowed(text):
    with pytest.raises(UsageError, match="--budget"):
        fit.parse_bytes(text)


def test_widths():
    assert fit.parse_widths("784,64,10") == fit.parse_widths("784x64x10") == [784, 64, 10]
    with pytest.raises(UsageError, match="at least two positive integers"):
        fit.parse_widths("784")


def test_line_and_largest_batch():
    line = fit.fit_line([(16, 1000 + 16 * 10), (32, 1000 + 32 * 10), (64, 1000 + 64 * 10)])
    assert line.fixed == pytest.approx(1000) and line.per_sample == pytest.approx(10)
    assert line.largest(2000) == 100
    assert line.largest(1005) == 0  # batch 1 needs 1010
    assert fit.Line(100, 0).largest(200) == fit.MAX_BATCH


def quiet(_: str) -> None:
    pass


def recorder(peak):
    seen = []

    def measure(batch: int) -> int:
        seen.append(batch)
        return peak(batch)

    return measure, seen


def test_a_peak_that_activations_overtake_is_refined_near_the_answer():
    # AdamW's step is the peak at small batches (flat), activations beyond: the small batches alone predict 2x
    def peak(b):
        return max(10 * MiB + 2000 * b, 4 * MiB + 6000 * b)

    measure, seen = recorder(peak)
    found = fit.predict(measure, 64 * MiB, quiet)
    true = (64 * MiB - 4 * MiB) // 6000
    assert found.small.per_sample == pytest.approx(2000)  # the small batches' line
    assert found.predicted == found.first_prediction == true and not found.wrong
    assert found.verified_peak == peak(true) <= 64 * MiB
    assert seen[:4] == list(fit.SMALL_BATCHES) and seen[-1] == true  # verified by training at it


def test_a_wrong_prediction_is_said_and_made_again():
    def peak(b):  # bytes grow faster near the answer than anywhere the fit measured
        return 1 * MiB + 1000 * b + (50_000 * (b - 9000) if b > 9000 else 0)

    found = fit.predict(peak, 10 * MiB, quiet)
    assert found.wrong and "measured" in found.wrong[0] and "> budget 10 MiB" in found.wrong[0]
    assert found.predicted < found.first_prediction
    assert found.verified_peak is not None and found.verified_peak <= 10 * MiB
    assert found.fits


def test_a_prediction_that_leaves_the_budget_unused_is_said_and_searched_upward():
    # a lean layer's blocks: bytes grow steeply until a block is full (500 rows), then slowly
    def peak(b):
        return 1 * MiB + 15_000 * min(b, 500) + 450 * max(0, b - 500)

    measure, seen = recorder(peak)
    found = fit.predict(measure, 9 * MiB, quiet)
    true = fit.bisect(peak, 9 * MiB, 1, quiet)
    assert found.first_prediction < 0.3 * true and found.predicted <= true
    assert found.predicted >= 0.97 * true  # within the search's bracket
    assert found.wrong and "of the budget unused" in found.wrong[0]
    assert found.verified_peak == peak(found.predicted) <= 9 * MiB and found.predicted in seen
    assert len(seen) <= len(fit.SMALL_BATCHES) + 2 * fit.REFINE_ROUNDS + fit.VERIFICATIONS


def test_running_out_of_memory_counts_as_not_fitting():
    # the small batches say 100,000; the device runs out of memory from 6,000 (the budget is more than it has)
    def peak(b):
        return None if b >= 6000 else 1 * MiB + 1000 * b

    found = fit.predict(peak, 100 * MiB, quiet)
    assert found.fits and found.predicted < 6000 and found.verified_peak == peak(found.predicted)
    assert fit.bisect(peak, 100 * MiB, found.predicted, quiet) == 5999


def test_cuda_out_of_memory_is_recognised():
    import torch

    assert fit.out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert fit.out_of_memory(
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
    )
    assert not fit.out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))


def test_a_line_that_misleads_below_the_small_batches_still_ends_on_a_batch_that_fits():
    def peak(b):  # fixed bytes at the budget: batch 16 does not fit, batch 4 does
        return 10 * MiB - 4096 + 1000 * b

    found = fit.predict(peak, 10 * MiB, quiet)
    assert found.predicted in (1, 2, 4) and found.verified_peak == peak(found.predicted) <= 10 * MiB


def test_nothing_fits():
    found = fit.predict(lambda b: 100 * MiB + b, 10 * MiB, quiet)
    assert found.predicted == 0 and not found.fits


def test_bisect_finds_the_exact_largest_batch():
    def peak(b):
        return 1000 + 37 * b

    for start in (1, 50, 5000):
        assert fit.bisect(peak, 100_000, start, quiet) == (100_000 - 1000) // 37
    measure, seen = recorder(peak)
    known = {2600: peak(2600), 2700: peak(2700)}  # a bracket already measured: bisect inside it only
    assert fit.bisect(measure, 100_000, 1, quiet, known) == (100_000 - 1000) // 37
    assert all(2600 < b < 2700 for b in seen) and len(seen) <= 7
    assert fit.bisect(lambda b: 10**9, 100, 64, quiet) == 0


def test_cli_on_the_cpu_verifies_and_exits_0(capsys):
    assert cli.main(["fit", "--widths", "6,5,3", "--grid-size", "3", "--budget", "256KiB", "mlp", "fastkan"]) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert lines[0].startswith("budget 256 KiB on cpu float32; widths 6x5x3, G=3 k=3")
    assert lines[1].split()[:4] == ["impl", "fixed", "per", "sample"]
    assert [line.split()[0] for line in lines[2:4]] == ["mlp", "fastkan"]
    assert "fit: [2/2] fastkan: verifying batch" in out.err  # the progress line
    assert "fit: mlp: largest batch" in out.err  # each answer as it comes


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--widths", "6,3"], "--budget is required on the CPU"),
        (["--widths", "6,3", "--budget", "1 parsec"], "--budget '1 parsec': expected a size"),
        (["--widths", "6", "--budget", "1MiB"], "--widths '6'"),
        (["--widths", "6,3", "--budget", "1MiB", "no-such-kan"], "unknown implementation 'no-such-kan'"),
        (["--widths", "6,3", "--budget", "1MiB", "--device", "tpu"], "--device 'tpu': allowed: cpu, cuda, cuda:N"),
    ],
)
def test_bad_input_exits_2(capsys, argv, message):
    assert cli.main(["fit", *argv]) == 2
    assert message in capsys.readouterr().err
