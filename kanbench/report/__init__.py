"""Write one self-contained, offline HTML report from one or more runs.

    kanbench report results/runs/20261129-140000-quick              # -> reports/20261129-140000-quick.html
    kanbench report BASE_RUN CAND_RUN -o reports/compare.html      # adds the candidate / baseline comparison

Reads results files only (never imports torch, never re-runs a model). With two runs of the same suite, the first is the
baseline and the second the candidate; where both measured a cell, the other sections show the later run's record.
Runs of different suites (a speed run and an accuracy run, as `tox -e bench` makes) fill one report together.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import pandas as pd

from .. import results
from ..errors import UsageError
from ..results import ResultsError, noise, seeds
from . import answer, claims, data, figures, page, summary
from .comparison import compare_runs, comparison_figure
from .page import read_embedded

__all__ = ["configure_parser", "command", "write_report", "build_page", "read_embedded"]

DEFAULT_DIR = "reports"
SIZE_WARNING_BYTES = 6 * 2**20


def _counts(frame: pd.DataFrame) -> dict[str, int]:
    return {s: int((frame["status"] == s).sum()) for s in ("ok", "skipped", "error")}


def _accuracy_table(df: pd.DataFrame) -> list[tuple]:
    rows = []
    for key, g in seeds.models(df, ("metric_dataset", "impl", "widths_label")):
        final, times, metric = seeds.over(g, "final_test"), seeds.over(g, "train_time_s"), seeds.metric_of(g)
        best, scale = seeds.over(g, "best_val").values, 100.0 if "accuracy" in metric else 1.0
        if final.n:
            rows.append((
                *key, metric, seeds.text(final.mean, final.bar, metric),
                f"{(max if scale == 100 else min)(best) * scale:.4g}" if best else "—", final.n,
                ", ".join(map(str, sorted({int(e) for e in seeds.over(g, "epochs").values}))) or "—",
                summary.fmt_time(times.mean) if times.n else "—",
            ))  # fmt: skip
    rows.sort(key=lambda r: (str(r[0]), data.impl_rank(r[1]), str(r[2])))
    return rows


def _profile_table(df: pd.DataFrame) -> list[tuple]:
    prof = df[(df["phase"] == "profile") & (df["status"] == "ok")]
    rows = []
    for r in prof.itertuples():
        m = r.metrics if isinstance(r.metrics, dict) else {}
        coverage = m.get("coverage")
        rows.append((
            r.impl, r.profiled_phase, r.device, r.widths_label, r.batch_size,
            summary.fmt_time(m["total_self_s"]) if isinstance(m.get("total_self_s"), (int, float)) else "—",
            f"{coverage:.0%}" if isinstance(coverage, (int, float)) and math.isfinite(coverage) else "—",
            m.get("ops_per_call"), m.get("kernels_per_call"), m.get("trace_dir"),
        ))  # fmt: skip
    rows.sort(key=lambda r: (data.impl_rank(r[0]), str(r[1]), str(r[2]), str(r[3]), r[4]))
    return rows


def build_page(runs: list[data.Run], threshold: float = 0.10, alpha: float = 0.01) -> page.Page:
    """Everything the report shows, computed from the runs."""
    df, superseded = data.combine(runs)
    machine_noise = noise.of_runs([r.path for r in runs])
    environments = {r.name: r.environment for r in runs}
    infos = [
        page.RunInfo(
            r.name, str(r.path), r.environment, sorted(set(r.frame["suite"].astype(str))),
            sorted(set(r.frame.loc[r.frame["status"] == "ok", "device"].astype(str))), _counts(r.frame), r.records,
        )
        for r in runs
    ]  # fmt: skip
    sections = {
        "scaling": [
            figures.scaling_figure(df, "width"),
            figures.scaling_figure(df, "grid"),
            figures.scaling_figure(df, "batch"),
            figures.memory_figure(df),
            figures.flops_figure(df, environments),
            figures.roofline_figure(df, environments),
        ],
        "accuracy": figures.accuracy_figures(df),
        "profile": [figures.profile_figure(df, "categories")],
    }
    # the cost-vs-accuracy chart answers "which one" with the ranks, so it stands in the answer when there is one
    cost = [f for f in sections["accuracy"] if f.key == figures.PARETO_KEY and f.figure is not None]
    if cost:
        sections["answer"] = cost
        sections["accuracy"] = [f for f in sections["accuracy"] if f.key != figures.PARETO_KEY]
    device_profile = figures.profile_figure(df, "device_categories")
    if device_profile.figure is not None:  # only CUDA profiles carry device time
        sections["profile"].append(device_profile)
    comparison = comp_figure = None
    warnings = []
    suites = [sorted(set(r.frame["suite"].astype(str))) for r in runs]
    if len(runs) == 2 and suites[0] == suites[1]:  # two runs of one suite: baseline and candidate
        try:
            comparison = compare_runs(runs[0], runs[1], threshold, alpha)
            comp_figure = comparison_figure(comparison)
        except (UsageError, ResultsError) as exc:
            warnings.append(f"No comparison of {runs[1].name} with {runs[0].name}: the regression gate declined: {exc}")
    names = [r.name for r in runs]
    title = "kanbench: " + (f"{names[1]} vs {names[0]}" if comparison is not None else ", ".join(names))
    if len(runs) > 2:
        warnings.append(f"{len(runs)} runs given: the comparison view needs exactly two (baseline, candidate).")
    return page.Page(
        runs=infos, frame=df, superseded=superseded, tables=summary.summary_tables(df),
        sweep=summary.sweep_ratios(df), figures=sections, accuracy_table=_accuracy_table(df),
        profile_table=_profile_table(df), claims=claims.claim_blocks(df), comparison=comparison,
        comparison_figure=comp_figure, problems=summary.problem_records(df), noisy=summary.noisy_records(df),
        title=title, warnings=warnings, answer=answer.build(df, machine_noise),
    )  # fmt: skip


def default_output(runs: list[data.Run]) -> Path:
    """reports/<run-name>.html, or reports/<candidate>-vs-<baseline>.html for two runs."""
    names = [r.name for r in runs]
    stem = f"{names[1]}-vs-{names[0]}" if len(names) == 2 else "+".join(names)
    return Path(DEFAULT_DIR) / f"{stem}.html"


def write_report(
    run_paths: list[str | os.PathLike], output: str | os.PathLike | None = None, threshold: float = 0.10,
    alpha: float = 0.01,
) -> Path:  # fmt: skip
    """Read the runs, build the page and write it; returns the path written."""
    import plotly.offline

    if not (math.isfinite(threshold) and threshold >= 0):
        raise UsageError(f"--threshold {threshold}: must be a finite fraction >= 0, e.g. 0.10")
    if not (math.isfinite(alpha) and 0 < alpha < 1):
        raise UsageError(f"--alpha {alpha}: must lie in (0, 1), e.g. 0.01")
    if output is not None and not str(output).strip():  # an unset variable: never quietly the default path
        raise UsageError(f"-o {str(output)!r}: an empty path; give a file ending in .html, or leave -o out")
    runs = data.read_runs(list(run_paths))
    out = Path(output) if output is not None else default_output(runs)
    if out.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"-o {out}: the report is an HTML file; give a path ending in .html")
    if out.is_dir():
        raise UsageError(f"-o {out}: is a directory; give a file path ending in .html")
    built = build_page(runs, threshold, alpha)
    text = page.render(built, plotly.offline.get_plotlyjs(), out.with_suffix(".jsonl").name)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(out, text)  # a reader never sees half a report
    except OSError as exc:
        raise UsageError(f"-o {out}: cannot write the report: {exc.strerror or exc}") from None
    return out


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of `kanbench report`."""
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run directories (two: baseline, then candidate)")
    parser.add_argument("-o", "--output", metavar="FILE.html", help=f"default: {DEFAULT_DIR}/<run-name>.html")
    parser.add_argument("--threshold", type=float, default=0.10, help="comparison: relative change that counts")
    parser.add_argument("--alpha", type=float, default=0.01, help="comparison: significance level")


def command(args: argparse.Namespace) -> int:
    """Write the report and print its path."""
    out = write_report(args.runs, args.output, args.threshold, args.alpha)
    size = out.stat().st_size
    if size > SIZE_WARNING_BYTES:
        print(f"note: the report is {summary.fmt_bytes(size)}, above the 6 MiB target", file=sys.stderr)
    print(out)
    return 0
