"""The `kanbench` command line. Exit status: 0 success, 1 a gate failed, 2 bad input or usage."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys

import kanbench

from .errors import Terminated, UsageError
from .results import ResultsError
from .text import escape, table

EXIT_OK, EXIT_GATE, EXIT_USAGE = 0, 1, 2
EXIT_TERMINATED = 128 + signal.SIGTERM  # what a shell reports for a process SIGTERM ended (the local executor's)


def cmd_list(args: argparse.Namespace) -> int:
    import implementations

    rows = []
    for name in implementations.names():
        adapter = implementations.get(name)
        ok, why = adapter.available()
        params = adapter.param_count([784, 64, 10], 5, 3)
        rows.append([name, adapter.family, "yes" if ok else "no", f"{params:,}", adapter.description if ok else why])
    print(table.render(["name", "family", "available", "params[784,64,10]", "description"], rows))
    print("\ndefaults: grid_size G=5, spline_order k=3 -> G + k = 8 basis functions per edge for every KAN")
    return EXIT_OK


def cmd_env(args: argparse.Namespace) -> int:
    import torch

    from .measure import gpu
    from .measure.env import fingerprint

    found = fingerprint()
    if torch.cuda.is_available():  # this process is no run's parent: it may describe the GPU itself
        found["gpu"] = gpu.describe(0)
    print(json.dumps(found, indent=2, sort_keys=True))
    return EXIT_OK


# Subcommands that live in their own modules. Each module defines configure_parser(parser) and
# command(args) -> int, and imports torch (if at all) inside functions, so `kanbench report` and
# `kanbench compare` never import it.
MODULE_COMMANDS = [
    ("run", "kanbench.run", "run a suite into a new run directory"),
    ("merge", "kanbench.results.merge", "merge shards of one suite into one run"),
    ("report", "kanbench.report", "write one offline HTML report from runs"),
    ("table", "kanbench.report.paper", "the runs' numbers as a Markdown, LaTeX (booktabs) or CSV table for a paper"),
    ("answer", "kanbench.report.cli_answer", "print the report's answer (ranks, resolved gaps) as text or JSON"),
    ("compare", "kanbench.analysis.compare", "compare two runs; exit 1 on a significant regression"),
    ("regress", "kanbench.analysis.regress", "interleaved latency gate of the working tree against a git ref"),
    ("profile", "kanbench.run:profile", "torch.profiler traces and op breakdowns of a suite's cells"),
    ("fit", "kanbench.measure.fit", "the largest batch whose training fits a memory budget, measured and verified"),
    ("machine", "kanbench.measure.machine", "measure this device's peak FLOP/s and memory bandwidth"),
    ("selfcheck", "kanbench.measure.selfcheck", "prove the measurements on this machine (sync, memory, GEMM, noise)"),
]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with `only`, just that subcommand's module is imported (fast, and isolated)."""
    parser = argparse.ArgumentParser(prog="kanbench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"kanbench {kanbench.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="implementations, availability, defaults").set_defaults(func=cmd_list)
    sub.add_parser("env", help="print this machine's environment fingerprint").set_defaults(func=cmd_env)
    for name, module_name, help_text in MODULE_COMMANDS:
        if only is not None and name != only:
            sub.add_parser(name, help=help_text)
            continue
        module_path, _, prefix = module_name.partition(":")  # "module:profile" -> configure_profile_parser, ...
        module = importlib.import_module(module_path)
        sub_parser = sub.add_parser(name, help=help_text, description=module.__doc__)
        getattr(module, f"configure_{prefix}_parser" if prefix else "configure_parser")(sub_parser)
        sub_parser.set_defaults(func=getattr(module, f"{prefix}_command" if prefix else "command"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    argv = sys.argv[1:] if argv is None else argv
    if os.getcwd() not in sys.path and "" not in sys.path:
        # "module:factory" in the current directory works with the console script as with `python -m kanbench`
        # (last, so it never shadows an installed package; spawned workers inherit sys.path)
        sys.path.append(os.getcwd())
    first = next((a for a in argv if not a.startswith("-")), None)
    known = {"list", "env", *(name for name, _, _ in MODULE_COMMANDS)}
    args = build_parser(first if first in known else None).parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, ResultsError) as exc:
        print(f"kanbench {args.command}: error: {escape.terminal(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # an unwritable --out, a read-only mount, a full disk: the path and the OS's reason
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"kanbench {args.command}: error: {escape.terminal(where)}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except Terminated:  # an executor that trapped SIGTERM (Ray) to shut down cleanly first
        print("terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
