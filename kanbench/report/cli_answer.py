"""`kanbench answer RUN... [--format text|json]`: the report's answer in the terminal, or as JSON for scripts and CI.

The same answer the HTML report opens with (kanbench.report.answer), read from the run directories alone: no
torch, nothing re-run. Exit 0 with an answer, 2 when the runs hold no speed record to rank.
"""

from __future__ import annotations

import argparse
import json

from kanbench import escape, reference
from kanbench.errors import UsageError

from . import answer, data


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of `kanbench answer`."""
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run directories (a results.jsonl each)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="text (default) or json")


def command(args: argparse.Namespace) -> int:
    """Print the answer of the runs."""
    runs = data.read_runs(args.runs)
    df, _ = data.combine(runs)
    noise = [n for r in runs for n in reference.summarize(reference.read(r.path))]
    found = answer.build(df, noise)
    if found is None:
        raise UsageError(f"{', '.join(args.runs)}: no ok speed record to rank (the answer needs a speed run)")
    environments = {r.name: r.environment for r in runs}
    if args.format == "json":
        print(json.dumps(answer.to_json(found, environments), indent=2, default=str))
    else:
        print("\n".join(escape.terminal(line) for line in answer.to_text(found, environments).splitlines()))
    return 0
