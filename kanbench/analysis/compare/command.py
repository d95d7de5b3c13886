"""`kanbench compare BASE CAND`, and the gate flags that kanbench regress shares. No torch here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .cells import load_side
from .gates import COUNT_THRESHOLD, DEFAULT_ESTIMATOR, MEM_GATED_PHASES, MEM_SLACK_BYTES, GateSettings, compare_runs
from .render import render


def number_arg(kind: type, low: float, high: float, example: str, low_open: bool = False) -> Callable[[str], Any]:
    """An argparse type: a number of kind (int or float) in [low, high), or (low, high) when low_open."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number such as {example}, got {text!r}") from None
        if not ((low < value) if low_open else (low <= value)) or not value < high:  # refuses nan too
            span = f"{'(' if low_open else '['}{low}, {high})"
            raise argparse.ArgumentTypeError(f"expected a number in {span} such as {example}, got {text!r}")
        return value

    return parse


_fraction = number_arg(float, 0, 10, "0.10 (10%)")
_alpha = number_arg(float, 0, 1, "0.01", low_open=True)


def _phases(text: str) -> tuple[str, ...]:
    from ...results.record import PHASES

    names = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in names if p not in PHASES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown phase(s) {', '.join(unknown)}; known: {', '.join(PHASES)}")
    return names


def add_gate_arguments(parser: argparse.ArgumentParser, relative: bool = True) -> None:
    """The thresholds and test settings that compare and regress share (read back with settings_from_args);
    relative: judge implementations against each other (compare; --per-cell turns it off), or each cell alone with
    no choice (regress: its confirmation re-measures narrowed suites, too few implementations to judge that way)."""
    if relative:
        parser.add_argument(
            "--per-cell",
            dest="relative",
            action="store_false",
            help="judge each cell alone, not each implementation against the others in the runs",
        )
    parser.add_argument(
        "--threshold",
        type=_fraction,
        default=0.10,
        help="latency: fail when more than this fraction slower (default 0.10)",
    )
    parser.add_argument("--alpha", type=_alpha, default=0.01, help="significance level (default 0.01)")
    parser.add_argument(
        "--count-threshold",
        type=_fraction,
        default=COUNT_THRESHOLD,
        help=f'instruction counts ([timing].clock = "instructions"): fail when more than this fraction higher '
        f"(default {COUNT_THRESHOLD:g})",
    )
    parser.add_argument(
        "--estimator",
        default=DEFAULT_ESTIMATOR,
        help="statistic the latency gate compares: p10 (default), min, median, mean or pNN",
    )
    parser.add_argument(
        "--flops-threshold",
        type=_fraction,
        default=0.05,
        help="FLOPs per call: fail when more than this fraction higher (default 0.05)",
    )
    parser.add_argument(
        "--mem-threshold",
        type=_fraction,
        default=0.05,
        help="peak allocator bytes per phase: fail when more than this fraction higher (default 0.05) ...",
    )
    parser.add_argument(
        "--mem-slack",
        type=int,
        default=MEM_SLACK_BYTES,
        help=f"... and more than this many bytes higher (default {MEM_SLACK_BYTES})",
    )
    parser.add_argument(
        "--mem-phases",
        type=_phases,
        default=MEM_GATED_PHASES,
        help=f"phases whose peak memory is gated, comma-separated (default {','.join(MEM_GATED_PHASES)})",
    )


def settings_from_args(args: argparse.Namespace) -> GateSettings:
    """The GateSettings of the flags add_gate_arguments defined; UsageError for a bad estimator name."""
    return GateSettings(
        threshold=args.threshold,
        alpha=args.alpha,
        estimator=args.estimator,
        flops_threshold=args.flops_threshold,
        mem_threshold=args.mem_threshold,
        mem_slack=args.mem_slack,
        mem_phases=args.mem_phases,
        count_threshold=args.count_threshold,
        relative=getattr(args, "relative", False),
    )


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of `kanbench compare`."""
    parser.add_argument("base", help="base run directory (or a directory of run directories, pooled)")
    parser.add_argument("cand", help="candidate run directory (or a directory of run directories, pooled)")
    add_gate_arguments(parser)
    parser.add_argument("--format", choices=("table", "markdown", "json"), default="table", help="output format")
    parser.add_argument("-o", "--output", help="also write the output to this file")


def write_output(output: str, text: str) -> None:
    """Write -o whole (results.write_text): a full disk or a crash leaves the old file, never half a verdict."""
    from ... import results
    from ...errors import UsageError

    if not output.strip():  # an unset variable: never quietly no file
        raise UsageError(f"-o {output!r}: an empty path; give a file to write the comparison to")
    path = Path(output)
    if path.is_dir():
        raise UsageError(f"-o {path}: is a directory; give a file path")
    try:
        results.write_text(path, text)
    except OSError as exc:
        raise UsageError(f"-o {path}: cannot write the comparison: {exc.strerror or exc}") from None


def command(args: argparse.Namespace) -> int:
    """Compare two runs; exit 1 when any gate fails."""
    settings = settings_from_args(args)  # a bad estimator is a usage error before any file is read
    comp = compare_runs(load_side(args.base), load_side(args.cand), settings)
    text = render(comp, args.format)
    sys.stdout.write(text)
    if args.output is not None:
        write_output(args.output, text)
    return comp.exit_code
