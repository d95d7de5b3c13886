"""`kanbench table`: Markdown that renders as a table, LaTeX that parses as booktabs, CSV that round-trips."""

from __future__ import annotations

import io
import re

import markdown as markdown_lib
import pandas as pd
import pytest
from report_synthetic import write_run

from kanbench import cli
from kanbench.report import data, paper

EVIL = 'my|imp*l_&%$#{}\\^<b>x</b>"×'  # no "~": Python-Markdown, unlike GitHub, keeps the backslash of "\\~"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("table")
    run = write_run(root, impls=("bspline", "fastkan", "mlp", "mlp-iso", EVIL), widths=([784, 64, 10],),
                    devices=("cpu",), profile=False)  # fmt: skip
    return data.read_runs([run])


def test_markdown_renders_one_table_per_configuration_with_every_cell(runs):
    text = paper.build(runs, "markdown")
    html = markdown_lib.markdown(text, extensions=["tables"])
    assert html.count("<table>") == 2  # batch 8 and batch 64
    header_cells = len(re.findall(r"<th[ >]", html)) // 2
    for row in re.findall(r"<tr>(.*?)</tr>", html, flags=re.S)[1:]:
        assert len(re.findall(r"<t[dh][ >]", row)) == header_cells
    assert "<b>" not in html  # raw HTML in a name is text, not markup
    assert 'my|imp*l_&amp;%$#{}\\^&lt;b&gt;x&lt;/b&gt;"×</td>' in html
    assert "commit 0123456789ab" in text and "torch 2.13.0+cpu" in text


def _unlatex(cell: str) -> str:
    """A cell of the table read back as text: every command kanbench.report.paper writes, undone."""
    commands = {v: k for k, v in paper._LATEX.items()}
    out, i = [], 0
    keys = sorted(commands, key=len, reverse=True)
    while i < len(cell):
        found = next((k for k in keys if cell.startswith(k, i)), None)
        if found is None:
            assert cell[i] not in "\\&%$#_{}~^", f"unescaped {cell[i]!r} at {i} of {cell!r}"
            out.append(cell[i])
            i += 1
        else:
            out.append(commands[found])
            i += len(found)
    return "".join(out)


def _split_row(line: str) -> list[str]:
    assert line.endswith(" \\\\")
    return re.split(r"(?<!\\) & ", line[: -len(" \\\\")])


def test_latex_is_booktabs_with_every_string_escaped(runs):
    text = paper.build(runs, "latex", where=["batch_size=64"])
    lines = text.splitlines()
    begin = lines.index("\\toprule")
    end = lines.index("\\bottomrule")
    spec = re.fullmatch(r"\\begin\{tabular\}\{([lr]+)\}", lines[begin - 1])
    assert spec is not None
    columns = len(spec.group(1))
    assert lines[begin + 2] == "\\midrule"
    rows = [_split_row(line) for line in [lines[begin + 1], *lines[begin + 3 : end]]]
    assert all(len(r) == columns for r in rows)
    names = [_unlatex(r[0]) for r in rows[1:]]
    assert EVIL in names
    assert text.count("\\begin{table}") == text.count("\\end{table}") == 1
    # braces balance once the escaped ones are taken out
    bare = text.replace("\\{", "").replace("\\}", "")
    depth = 0
    for ch in bare:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0


@pytest.mark.parametrize("text", [EVIL, "a\nb\x1b[31m", "50% of $x_1$ {y} #2 ~ ^ \\end{table}"])
def test_latex_escape_reads_back_as_the_text(text):
    assert _unlatex(paper.latex_escape(text)) == paper.escape.terminal(text)


def test_csv_round_trips_through_pandas(runs):
    text = paper.build(runs, "csv")
    back = pd.read_csv(io.StringIO(text))
    df, _ = data.combine(runs)
    frame = paper.entries(df, "train_step")
    assert list(back.columns[: len(frame.columns)]) == list(frame.columns)
    assert len(back) == len(frame) == 10
    assert list(back["impl"]) == list(frame["impl"])
    assert EVIL in set(back["impl"])
    pd.testing.assert_series_equal(back["time_median_s"], frame["time_median_s"], check_exact=False, rtol=1e-15)
    assert (back["commit"] == "0123456789ab").all()


def test_sweep_axis_has_a_column_per_value(runs):
    text = paper.build(runs, "markdown", phase="forward", axis="batch_size")
    assert "| Implementation | batch\\_size 8 | batch\\_size 64 |" in text
    assert text.count("| :---") == 0 and text.count("|:---|---:|---:|") == 1


def test_ratio_to_mlp_is_the_median_ratio(runs):
    df, _ = data.combine(runs)
    frame = paper.entries(df, "forward")
    row = frame[(frame["impl"] == "fastkan") & (frame["batch_size"] == 8)].iloc[0]
    mlp = frame[(frame["impl"] == "mlp") & (frame["batch_size"] == 8)].iloc[0]
    assert row["ratio_mlp"] == pytest.approx(row["time_median_s"] / mlp["time_median_s"])


def test_diverged_seeds_are_counted(tmp_path):
    run = write_run(tmp_path, impls=("rswaf", "mlp"), widths=([784, 64, 10],), devices=(), profile=False)
    rows = {line.split(" | ")[0]: line for line in paper.build(data.read_runs([run]), "markdown").splitlines()}
    assert rows["| rswaf"].endswith("(n=3, 1 diverged) |")  # the synthetic rswaf diverged in one of three seeds
    assert rows["| mlp"].endswith("(n=3) |")


def test_accuracy_only_runs_make_a_table(tmp_path):
    run = write_run(tmp_path, impls=("fastkan", "mlp"), widths=([784, 64, 10],), devices=(), profile=False)
    text = paper.build(data.read_runs([run]), "markdown")
    assert "Accuracy (mnist)" in text and "time" not in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--where", "batch_size=7"], "--where batch_size=7: no row has it; present: 64, 8"),
        (["--where", "colour=red"], "unknown key 'colour'"),
        (["--phase", "accuracy"], "--phase accuracy: the runs hold no ok timing of it"),
        (["--axis", "colour"], "invalid choice"),
    ],
)
def test_bad_input_exits_2_naming_it(runs, capsys, argv, message):
    with pytest.raises(SystemExit) if "--axis" in argv else _nothing():
        assert cli.main(["table", str(runs[0].path), *argv]) == 2
    assert message in capsys.readouterr().err


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_cli_writes_the_file(runs, tmp_path, capsys):
    out = tmp_path / "t.tex"
    assert cli.main(["table", str(runs[0].path), "--format", "latex", "-o", str(out)]) == 0
    assert out.read_text().startswith("% kanbench table: needs \\usepackage{booktabs}")


def test_the_table_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, kanbench.report.paper; assert 'torch' not in sys.modules, 'torch imported'"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
