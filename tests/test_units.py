"""kanbench.text.units and kanbench.text.table: one formatter per quantity, one aligned-column table."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from kanbench.text import table, units


@pytest.mark.parametrize(
    "seconds, text",
    [
        (1.5, "1.5 s"),  # the terminal summary once printed this as "1.5e+03 ms"
        (12.25, "12.2 s"),
        (1500.0, "1500 s"),  # beyond the largest unit: whole seconds, never exponent notation
        (0.0314, "31.4 ms"),
        (1e-3, "1 ms"),
        (742e-6, "742 us"),
        (999.7e-6, "1 ms"),  # rounds up into the next unit rather than "1e+03 us"
        (8.5e-9, "8.5 ns"),
        (0.25e-9, "0.25 ns"),
        (0.0, "0 ns"),
    ],
)
def test_fmt_time(seconds, text):
    assert units.fmt_time(seconds) == text


def test_missing_values_read_the_same_everywhere():
    for fmt in (units.fmt_time, units.fmt_bytes, units.fmt_flops):
        assert fmt(None) == units.MISSING == "-"
        assert fmt(math.nan) == "-" and fmt(math.inf) == "-"
        assert fmt(None, missing="—") == "—"


def test_fmt_time_html_spelling():
    assert units.fmt_time(742e-6, micro="µs") == "742 µs"
    assert units.fmt_time(2e-3, micro="µs") == "2 ms"


@pytest.mark.parametrize(
    "n, text",
    [
        (0, "0 B"),
        (512, "512 B"),
        (1000, "1000 B"),  # whole bytes below 1 KiB
        (4096, "4 KiB"),
        (150_000, "146 KiB"),
        (1_048_000, "0.999 MiB"),  # 1023.4 KiB would round to "1.02e+03 KiB"
        (3 * 2**19, "1.5 MiB"),
        (5 * 2**30, "5 GiB"),
        (2048 * 2**30, "2048 GiB"),
    ],
)
def test_fmt_bytes(n, text):
    assert units.fmt_bytes(n) == text


def test_fmt_flops():
    assert units.fmt_flops(999) == "999 FLOP"
    assert units.fmt_flops(1_000_000) == "1 MFLOP"
    assert units.fmt_flops(2.5e9) == "2.5 GFLOP"
    assert units.fmt_flops(9.9e14) == "990 TFLOP" and units.fmt_flops(2e15) == "2 PFLOP"


def test_table_fits_long_names():
    text = table.render(["impl", "forward"], [["chebykan:adapter", "1.2 ms"], ["mlp", "80 us"]], align="lr")
    assert text.splitlines() == [
        "impl              forward",
        "chebykan:adapter   1.2 ms",
        "mlp                 80 us",
    ]


def test_table_alignment_and_shape():
    rows = [["a", "1", "22"], ["bbb", "333", "4"]]
    assert table.render(["x", "y", "z"], rows).splitlines() == ["x    y    z", "a    1    22", "bbb  333  4"]
    # the last letter of align covers the columns it does not name; lines carry no trailing spaces
    assert table.render(["x", "y", "z"], rows, align="lr").splitlines() == ["x      y   z", "a      1  22",
                                                                           "bbb  333   4"]  # fmt: skip
    assert table.render(["name", "v"], [["a", ""]]).splitlines()[1] == "a"
    assert table.render([], [["a", "bb"], ["ccc", "d"]]) == "a    bb\nccc  d"
    assert table.render([], []) == ""
    assert table.render(["n"], [[3]]) == "n\n3"  # non-strings are shown with str()
    with pytest.raises(ValueError, match="row 1 has 1 cells"):
        table.render(["x", "y"], [["a"]])
    with pytest.raises(ValueError, match="align"):
        table.render(["x"], [["a"]], align="c")


def test_units_and_table_do_not_import_torch():
    code = "import sys, kanbench.text.units, kanbench.text.table; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent).returncode == 0
