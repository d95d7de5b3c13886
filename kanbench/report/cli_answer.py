"""`kanbench answer RUN... [--format text|json]`: the report's answer in the terminal, or as JSON for scripts and CI.

The same answer the HTML report opens with (kanbench.report.answer), read from the run directories alone: no
torch, nothing re-run. Exit 0 with an answer, 2 when the runs hold no speed record to rank.
"""

from __future__ import annotations

import argparse
import json

from ..errors import UsageError
from ..results import noise
from ..text import escape
from . import answer, data


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of `kanbench answer`."""
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run directories (a results.jsonl each)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="text (default) or json")


def command(args: argparse.Namespace) -> int:
    """Print the answer of the runs."""
    runs = data.read_runs(args.runs)
    df, _ = data.combine(runs)
    machine_noise = noise.of_runs([r.path for r in runs])
    found = answer.build(df, machine_noise)
    if found is None:
        counted = "unit" in df and (df["unit"] == "instructions").any()
        why = ("they counted instructions ([timing].clock = \"instructions\"), which the answer does not rank; "
               "`kanbench report` shows the counts" if counted else "the answer needs a speed run")  # fmt: skip
        raise UsageError(f"{escape.terminal(', '.join(args.runs))}: no ok timed record to rank: {why}")
    environments = [r.environment for r in runs]
    if args.format == "json":
        print(json.dumps(escape.json_ready(answer.to_json(found, environments)), indent=2, allow_nan=False))
    else:
        print(answer.to_text(found, environments))
    return 0
