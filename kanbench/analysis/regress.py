"""`kanbench regress`: the interleaved latency gate of the working tree against a git ref. No torch here.

    kanbench regress                       # against the merge base with the upstream branch, else HEAD~1
    kanbench regress --against main --rounds 3
    kanbench regress --baseline results/baselines/ci-mybox   # a stored run, for dedicated machines

REF's tree is exported (git archive) into a temporary directory. Then, round by round, the CI suite is run as a
fresh `python -m kanbench run SUITE --out DIR` process with PYTHONPATH and the working directory set to one tree:
REF, then the working tree, then REF, ... (ABAB), so drift of the machine lands on both sides alike. The rounds of
each side are pooled and compared (kanbench.analysis.compare). A latency regression is re-measured once, with another
`--rounds` ABAB pairs restricted to the failing implementations, phases and shapes, and fails the gate only when
the re-measure flags it again; FLOPs and memory regressions need no confirmation (they are deterministic).

A suite timed with `[timing].clock = "instructions"` (suites/ci.toml) is gated on callgrind's instruction counts:
they repeat within a fraction of a percent whatever the machine is doing, so one round per side is enough, the two
sides run at once, and nothing is re-measured. Without valgrind the gate says so and falls back to the thread
clock (`kanbench run --clock thread`) with its rounds and confirmation.

When REF cannot be had (not a git checkout, a shallow clone, the first commit, REF without kanbench, or REF's
`kanbench run` fails on the suite) the gate says why and exits 0 without comparing.

KANBENCH_SLOWDOWN ("impl=factor[,impl=factor]", off by default) makes the harness do extra busy work in the
named implementations, to test that the gate catches a slowdown. regress never passes it to the base side; the
candidate inherits it from the environment, or gets it from --inject-slowdown.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .. import results
from ..errors import UsageError
from ..results import RESULTS
from ..text import escape
from . import compare
from .compare import GateSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SLOWDOWN_ENV = "KANBENCH_SLOWDOWN"
DEFAULT_SUITE = "suites/ci.toml"
DEFAULT_ROUNDS = 3
RUN_TIMEOUT_S = 1800.0
EXIT_OK, EXIT_REGRESSION = 0, 1


class RefUnavailable(Exception):
    """REF cannot be measured here; the gate is skipped (exit 0) with this reason."""


@dataclass
class RunOutcome:
    """What one `kanbench run` process left: its exit status and the end of its output."""

    returncode: int
    output_tail: str = ""
    seconds: float = 0.0


# A runner measures one suite with one tree's kanbench into out; tests inject a fake one.
Runner = Callable[[Path, Path, Path, dict, list], RunOutcome]


def subprocess_runner(tree: Path, suite: Path, out: Path, env: dict, extra: list) -> RunOutcome:
    """Run `python -m kanbench run SUITE --out OUT --quiet` as a fresh process on tree's code."""
    cmd = [sys.executable, "-m", "kanbench", "run", str(suite), "--out", str(out), "--quiet", *extra]
    # The working directory and PYTHONPATH both point at the tree: `python -m` puts the working directory first.
    env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH", "")]))}
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        return RunOutcome(124, f"timed out after {exc.timeout:.0f} s", time.perf_counter() - start)
    tail = (done.stdout + done.stderr)[-4000:]
    return RunOutcome(done.returncode, tail, time.perf_counter() - start)


@dataclass
class Side:
    """One side of the comparison: which tree's code runs, on which suite file, with which environment."""

    name: str  # "base" or "cand"
    tree: Path
    suite: Path
    env: dict
    extra: list = field(default_factory=list)  # arguments for this side's `kanbench run` only


def run_ok(out: Path, outcome: RunOutcome) -> bool:
    """True when the run left records to compare (a non-zero exit with whole results still counts)."""
    path = out / RESULTS
    return path.exists() and path.stat().st_size > 0 and outcome.returncode in (0, 1)


# --- git --------------------------------------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    """stdout of a git command in repo; RefUnavailable naming the command if it fails."""
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        raise RefUnavailable(f"git {' '.join(args)} failed: {exc}") from None
    if done.returncode != 0:
        raise RefUnavailable(f"git {' '.join(args)}: {done.stderr.strip() or 'failed'}")
    return done.stdout.strip()


def default_ref(repo: Path) -> str:
    """The merge base with the upstream branch when HEAD is ahead of it, else HEAD~1."""
    try:
        upstream = git(repo, "rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}")
        base = git(repo, "merge-base", "HEAD", upstream)
        if base != git(repo, "rev-parse", "HEAD"):
            return base
    except RefUnavailable:
        pass  # no upstream branch (a detached CI checkout, a local branch)
    return "HEAD~1"


def resolve_ref(repo: Path, ref: str | None) -> tuple[str, str]:
    """(commit, description) of REF; RefUnavailable saying why it cannot be had, UsageError for an empty REF."""
    if ref is not None and not ref.strip():  # an unset CI variable: never quietly the default REF instead
        raise UsageError(
            f"--against {ref!r}: an empty REF (an unset variable?); give a branch, tag or commit, or leave "
            "--against out for the default (the merge base with the upstream branch, else HEAD~1)"
        )
    try:
        git(repo, "rev-parse", "--git-dir")
    except RefUnavailable:
        raise RefUnavailable(f"{repo} is not a git checkout, so there is no REF to compare against") from None
    given = ref is not None
    ref = ref or default_ref(repo)
    try:
        commit = git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except RefUnavailable:
        shallow = git(repo, "rev-parse", "--is-shallow-repository") == "true"
        if given:  # a REF the user named that is not here is a typo or an unfetched ref: bad input, not a pass
            hint = " (this is a shallow clone: fetch it first)" if shallow else " (give a branch, tag or commit)"
            raise UsageError(f"--against {ref!r}: no such commit in {repo}{hint}") from None
        if shallow:
            why = "this is a shallow clone (fetch the history, e.g. actions/checkout with fetch-depth: 0)"
        elif ref == "HEAD~1":
            try:
                git(repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
                why = "HEAD is the first commit"
            except RefUnavailable:
                why = "the repository has no commits yet"
        else:
            why = "no such commit"
        raise RefUnavailable(f"REF {ref!r} cannot be had: {why}") from None
    subject = git(repo, "log", "-1", "--format=%h %s", commit)
    subject = subject if len(subject) <= 60 else subject[:57] + "..."
    return commit, f"{ref} ({subject})"


def export_tree(repo: Path, commit: str, dest: Path) -> None:
    """Write the files of commit into dest with git archive (the repository itself is left untouched)."""
    with subprocess.Popen(["git", "-C", str(repo), "archive", "--format=tar", commit], stdout=subprocess.PIPE) as proc:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, filter="data")
            else:  # pragma: no cover - Python without extraction filters; git archive output is trusted
                tar.extractall(dest)
    if proc.returncode != 0:
        raise RefUnavailable(f"git archive {commit[:12]} failed with status {proc.returncode}")


# --- narrowing the confirmation to the failing cells -------------------------------------------------------------


def only_spec(failing) -> str:
    """`kanbench run --only` text for the implementations, phases and axis values of the failing cells.

    The product of those values may hold a few more cells than failed; it never misses one.
    """
    values = {
        "impl": failing["impl"],
        "phase": failing["phase"],
        "widths": failing["widths_label"],
        "grid_size": failing["grid_size"],
        "batch_size": failing["batch_size"],
        "dtype": failing["dtype"],
        "device": [str(d).split(":")[0] for d in failing["device"]],
    }
    return ",".join(f"{key}={v}" for key, column in values.items() for v in dict.fromkeys(map(str, column)))


def knows_only(tree: Path) -> bool:
    """Whether the tree's `kanbench run` takes --only (a REF from before it had none is re-measured whole)."""
    paths = (tree / "kanbench" / "run" / "__init__.py", tree / "kanbench" / "run.py")  # today's layout, the flat one
    return any(p.exists() and '"--only"' in p.read_text(encoding="utf-8", errors="replace") for p in paths)


# --- the gate ---------------------------------------------------------------------------------------------------


@dataclass
class GateResult:
    """The outcome of the gate: skipped (with why), pass or fail, and what it measured."""

    status: str  # "skipped", "pass", "fail"
    reason: str = ""
    against: str = ""
    comparison: compare.Comparison | None = None
    confirmation: compare.Comparison | None = None
    confirmed: list = field(default_factory=list)  # (config_hash, phase) of confirmed latency regressions
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """1 when the gate failed; 0 when it passed or was skipped."""
        return EXIT_REGRESSION if self.status == "fail" else EXIT_OK


def _log(message: str) -> None:
    text = "\n".join(escape.terminal(line) for line in message.splitlines())  # it quotes git and the runs' output
    print(f"kanbench regress: {text}", file=sys.stderr, flush=True)


def measure_rounds(
    sides: list[Side], rounds: int, out: Path, runner: Runner, extra: list, log=_log, done: dict | None = None
) -> dict[str, list[Path]]:
    """Run the sides in turn, `rounds` times (ABAB...), each run a fresh process into out/SIDE/rN.

    done maps a side to run directories it already has (the base's probe run is its round 1).
    """
    runs: dict[str, list[Path]] = {s.name: list((done or {}).get(s.name, [])) for s in sides}
    for r in range(1, rounds + 1):
        for side in sides:
            if len(runs[side.name]) >= r:
                continue
            run_dir = out / side.name / f"r{r}"
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            outcome = runner(side.tree, side.suite, run_dir, side.env, [*extra, *side.extra])
            log(f"round {r}/{rounds} {side.name}: exit {outcome.returncode} in {outcome.seconds:.0f} s -> {run_dir}")
            if not run_ok(run_dir, outcome):
                raise _RunFailed(side, run_dir, outcome)
            runs[side.name].append(run_dir)
    return runs


class _RunFailed(Exception):
    def __init__(self, side: Side, run_dir: Path, outcome: RunOutcome) -> None:
        super().__init__(f"{side.name} run in {run_dir} failed with status {outcome.returncode}")
        self.side, self.run_dir, self.outcome = side, run_dir, outcome

    def describe(self) -> str:
        tail = self.outcome.output_tail.strip().splitlines()[-8:]
        return f"{self}:\n    " + "\n    ".join(tail or ["(no output)"])


def _pooled(run_dirs: list[Path]):
    import pandas as pd

    frames = [results.load(d) for d in run_dirs]
    frame = pd.concat(frames, ignore_index=True)
    frame.attrs["environment"] = frames[0].attrs.get("environment", {})
    frame.attrs["run_dir"] = str(run_dirs[0].parent)
    return frame


def _confirm(
    comp: compare.Comparison, sides: list[Side], base_frame, rounds: int, out: Path, runner: Runner, extra: list,
    settings: GateSettings, log=_log,
) -> tuple[compare.Comparison, list]:  # fmt: skip
    """Re-measure the failing cells (another `rounds` ABAB pairs of a narrowed suite) and compare again."""
    failing = comp.regressions()
    confirm_sides = []
    for side in sides:
        only = ["--only", only_spec(failing)] if knows_only(side.tree) else []
        if not only:
            log(f"{side.name}'s kanbench has no `run --only`; re-measuring its whole suite")
        confirm_sides.append(Side(side.name, side.tree, side.suite, side.env, only))
    log(f"{len(failing)} cell(s) flagged; re-measuring them to confirm ({rounds} more round(s))")
    runs = measure_rounds(confirm_sides, rounds, out / "confirm", runner, extra, log)
    base = _pooled(runs["base"]) if "base" in runs else base_frame
    confirmation = compare.compare_runs(base, _pooled(runs["cand"]), settings)
    again = set(map(tuple, confirmation.regressions()[compare.KEY].itertuples(index=False)))
    confirmed = [k for k in map(tuple, failing[compare.KEY].itertuples(index=False)) if k in again]
    return confirmation, confirmed


def _decide(result: GateResult, comp: compare.Comparison, confirmed: list) -> GateResult:
    flagged = set(map(tuple, comp.regressions()[compare.KEY].itertuples(index=False)))
    comp.unconfirmed = flagged - set(confirmed)
    result.comparison, result.confirmed = comp, confirmed
    result.status = "fail" if comp.failed else "pass"
    return result


def _conclude(result: GateResult, comp, sides: list, base_frame, g: _Gate, out: Path) -> GateResult:
    """Confirm flagged cells by re-measuring them (unless confirm is off), decide, write the outputs."""
    confirmed: list = []
    if g.confirm and len(comp.regressions()):
        try:
            result.confirmation, confirmed = _confirm(
                comp, sides, base_frame, g.rounds, out, g.runner, g.extra, g.settings, g.log
            )
        except _RunFailed as exc:
            raise UsageError(f"the confirmation re-measure failed: {exc.describe()}") from None
    elif not g.confirm:
        confirmed = [tuple(k) for k in comp.regressions()[compare.KEY].itertuples(index=False)]
    result = _decide(result, comp, confirmed)
    result.seconds = time.perf_counter() - g.start
    write_outputs(result, out)
    return result


@dataclass(frozen=True)
class GateClock:
    """How the gate measures a suite: instruction counts (one round per side, at once, no confirmation) or time."""

    counts: bool
    extra: tuple[str, ...] = ()  # `kanbench run` arguments both sides get (the fallback's --clock thread)
    name: str = "wall"  # the clock the runs will use: wall, thread or instructions

    @property
    def unit(self) -> str:
        """What the runs' values will count (Record.unit)."""
        return "instructions" if self.counts else "s"


def gate_clock(suite_path: Path, log=_log, which: Callable[[str], str | None] | None = None) -> GateClock:
    """The suite's clock as the gate will use it; an instruction clock without valgrind falls back, saying so."""
    import shutil

    table = _timing_table(suite_path) or {}
    if table.get("clock") != "instructions":
        return GateClock(False, name=str(table.get("clock", "wall")))
    if (which or shutil.which)("valgrind"):
        log("instruction counts (callgrind): one round per side, both sides at once, no confirmation re-measure")
        return GateClock(True, name="instructions")
    log("valgrind is not installed, so this gate falls back from instruction counts to the thread clock (noisier: "
        "rounds and a confirmation re-measure); install valgrind (Debian/Ubuntu: apt-get install valgrind) for "
        "the instruction-count gate")  # fmt: skip
    return GateClock(False, ("--clock", "thread"), "thread")


@dataclass
class _Gate:
    """What both gates hold once their arguments are read: the clock, the rounds, how and where runs go."""

    start: float
    repo: Path
    suite_path: Path
    clock: GateClock
    rounds: int
    confirm: bool
    settings: GateSettings
    extra: list
    out: Path | None
    runner: Runner
    cand_slowdown: str | None
    log: Callable[[str], None]


def run_gate(
    repo: Path,
    suite: str | Path = DEFAULT_SUITE,
    against: str | None = None,
    rounds: int | None = None,
    settings: GateSettings | None = None,
    out: Path | None = None,
    runner: Runner = subprocess_runner,
    extra: list | None = None,
    cand_slowdown: str | None = None,
    confirm: bool = True,
    log=_log,
    baseline: Path | None = None,
) -> GateResult:
    """The interleaved gate of the working tree at repo against the git ref `against` (see the module doc), or,
    given baseline, against that stored run (for a dedicated machine whose noise the stored run shares)."""
    start = time.perf_counter()
    repo = Path(repo).resolve()
    suite_path = _suite_in(repo, suite)
    clock = gate_clock(suite_path, log)
    g = _Gate(start, repo, suite_path, clock, rounds or (1 if clock.counts else DEFAULT_ROUNDS),
              confirm and not clock.counts, settings or GateSettings(relative=False), [*(extra or []), *clock.extra],
              out, runner, cand_slowdown, log)  # fmt: skip
    return _against_baseline(g, Path(baseline)) if baseline is not None else _against_ref(g, against)


def _against_ref(g: _Gate, against: str | None) -> GateResult:
    """run_gate against a git ref: REF exported to a temporary tree, both sides measured in interleaved rounds."""
    start, repo, suite_path, clock, rounds = g.start, g.repo, g.suite_path, g.clock, g.rounds
    settings, extra, runner, log = g.settings, g.extra, g.runner, g.log
    unavailable: RefUnavailable | None = None
    try:
        resolved = resolve_ref(repo, against)  # a REF that does not exist is a UsageError, before --out exists
    except RefUnavailable as exc:
        resolved, unavailable = ("", ""), exc
    out = _out_dir(repo, g.out)
    base_env, cand_env = _envs(g.cand_slowdown)
    with tempfile.TemporaryDirectory(prefix="kanbench-ref-") as tmp:
        ref_tree = Path(tmp) / "tree"
        try:
            if unavailable is not None:
                raise unavailable
            commit, against_text = resolved
            ref_tree.mkdir()
            export_tree(repo, commit, ref_tree)
            if not (ref_tree / "kanbench" / "__init__.py").exists():
                raise RefUnavailable(f"REF {against_text} has no kanbench package to run the suite with")
        except RefUnavailable as exc:
            return _skipped(str(exc), out, start, log)
        log(f"base: {against_text}, exported to {ref_tree}; candidate: the working tree {repo}")
        base = Side("base", ref_tree, suite_path, base_env)
        cand = Side("cand", repo, suite_path, cand_env)
        result = GateResult("pass", against=against_text)
        try:
            with ThreadPoolExecutor(max_workers=1) as pool:
                # counts do not care what else the machine runs: the candidate's round 1 runs beside the base's
                early = pool.submit(measure_rounds, [cand], 1, out, runner, extra, log) if clock.counts else None
                try:
                    base, probe = _probe_base(base, ref_tree, repo, suite_path, out, runner, extra, log)
                finally:
                    done = {"cand": early.result()["cand"]} if early is not None else {}
        except RefUnavailable as exc:
            return _skipped(str(exc), out, start, log, against_text)
        except _RunFailed as exc:
            raise UsageError(f"the working tree's kanbench run failed: {exc.describe()}") from None
        try:
            runs = measure_rounds([base, cand], rounds, out, runner, extra, log, done={"base": [probe], **done})
        except _RunFailed as exc:
            if exc.side.name == "base":
                return _skipped(f"REF's kanbench run failed: {exc.describe()}", out, start, log, against_text)
            raise UsageError(f"the working tree's kanbench run failed: {exc.describe()}") from None
        try:
            comp = compare.compare_runs(_pooled(runs["base"]), _pooled(runs["cand"]), settings)
        except UsageError as exc:
            return _skipped(f"REF's runs cannot be compared with the working tree's: {exc}", out, start, log,
                            against_text)  # fmt: skip
        return _conclude(result, comp, [base, cand], None, g, out)


def _timing_table(path: Path) -> dict | None:
    """The [timing] table of a suite file, or None if it does not parse."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")).get("timing", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None


def _probe_base(
    base: Side, ref_tree: Path, repo: Path, suite_path: Path, out: Path, runner: Runner, extra: list, log=_log
) -> tuple[Side, Path]:
    """Round 1 of the base side; if REF cannot run the working tree's suite, try REF's own copy of it."""
    candidates = [suite_path]
    try:
        own = ref_tree / suite_path.relative_to(repo)
        if own.exists() and own.read_bytes() != suite_path.read_bytes():
            if _timing_table(own) == _timing_table(suite_path):
                candidates.append(own)
            else:  # another clock, thread count or loop length: the two sides' numbers would not be comparable
                log(f"REF's own {own.name} times differently ([timing] differs); it is not used for the base side")
    except ValueError:
        pass  # the suite lies outside the repository: REF has no copy of it
    failures = []
    run_dir = out / "base" / "r1"
    for attempt, suite in enumerate(candidates):
        if attempt and run_dir.exists():  # keep the failed attempt for inspection, out of the way of round 1
            run_dir.rename(out / "failed-probe")
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        outcome = runner(base.tree, suite, run_dir, base.env, extra)
        log(f"round 1 base: exit {outcome.returncode} in {outcome.seconds:.0f} s -> {run_dir}")
        if run_ok(run_dir, outcome):
            if attempt:
                log(f"REF could not run {suite_path}; using REF's own {suite} for the base side")
            return Side(base.name, base.tree, suite, base.env), run_dir
        failures.append(_RunFailed(base, run_dir, outcome).describe())
    raise RefUnavailable("REF's kanbench cannot run the suite: " + "\n".join(failures))


def _against_baseline(g: _Gate, baseline: Path) -> GateResult:
    """run_gate against a stored run: only the working tree is measured."""
    base_frame = compare.load_side(baseline)  # before --out exists: a bad baseline leaves nothing behind
    check_baseline(base_frame, baseline, g.suite_path, g.clock)  # before measuring: a wrong one costs no rounds
    out = _out_dir(g.repo, g.out)
    _, cand_env = _envs(g.cand_slowdown)
    cand = Side("cand", g.repo, g.suite_path, cand_env)
    result = GateResult("pass", against=f"baseline {baseline}")
    try:
        runs = measure_rounds([cand], g.rounds, out, g.runner, g.extra, g.log)
    except _RunFailed as exc:
        raise UsageError(f"the working tree's kanbench run failed: {exc.describe()}") from None
    comp = compare.compare_runs(base_frame, _pooled(runs["cand"]), g.settings)
    comp.notes.extend(_baseline_notes(base_frame, runs["cand"][0]))
    return _conclude(result, comp, [cand], base_frame, g, out)


def check_baseline(base_frame, baseline: Path, suite_path: Path, clock: GateClock) -> None:
    """UsageError unless the stored run measured the same suite with the clock this gate will use: what
    compare_runs would refuse after every round, said before the first."""
    suite = _suite_name(suite_path)
    ran = sorted(set(base_frame["suite"].astype(str)))
    if suite is not None and ran != [suite]:
        raise UsageError(
            f"--baseline {baseline}: ran suite {', '.join(ran)}, not {suite} ({suite_path}); give a baseline of "
            f"{suite}, or --suite the file it ran"
        )
    units = sorted(set(base_frame["unit"].astype(str))) if "unit" in base_frame else ["s"]
    stored = compare.gates.clock_of(base_frame.attrs.get("environment") or {})
    if units != [clock.unit] or (stored is not None and stored != clock.name):
        had = stored or ("instructions" if units == ["instructions"] else "a clock of seconds")
        hint = " (valgrind is missing here: the gate falls back to the thread clock)" if clock.extra else ""
        raise UsageError(
            f"--baseline {baseline}: measured with the {had} clock, and this gate measures with the {clock.name} "
            f"clock{hint}; runs of different clocks are not comparable: record the baseline with the same clock"
        )


def _suite_name(path: Path) -> str | None:
    """[suite].name of a suite file, or None if it does not parse (the run then says what is wrong)."""
    try:
        name = tomllib.loads(path.read_text(encoding="utf-8")).get("suite", {}).get("name")
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def _baseline_notes(base_frame, cand_run: Path) -> list[str]:
    benv, cenv = base_frame.attrs.get("environment") or {}, results.read_environment(cand_run)
    if benv.get("hostname") and cenv.get("hostname") and benv["hostname"] != cenv["hostname"]:
        return [f"the baseline was measured on {benv['hostname']!r}, this run on {cenv['hostname']!r}: a baseline "
                "gate is meaningful only on the machine that recorded it"]  # fmt: skip
    return []


def _suite_in(repo: Path, suite: str | Path) -> Path:
    path = Path(suite)
    path = path if path.is_absolute() else repo / path
    if not path.is_file():
        raise UsageError(f"suite {suite}: no such file in {repo} (the CI suite is {DEFAULT_SUITE})")
    return path


def _out_dir(repo: Path, out: Path | None) -> Path:
    if out is None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        out = repo / "results" / "runs" / f"{stamp}-regress"
    out = Path(out).resolve()
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out {out}: exists and is not empty; give a new directory")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _envs(cand_slowdown: str | None) -> tuple[dict, dict]:
    base_env = {k: v for k, v in os.environ.items() if k != SLOWDOWN_ENV}
    cand_env = dict(os.environ)
    if cand_slowdown:
        cand_env[SLOWDOWN_ENV] = cand_slowdown
    return base_env, cand_env


def _skipped(reason: str, out: Path, start: float, log=_log, against: str = "") -> GateResult:
    result = GateResult("skipped", reason=reason, against=against, seconds=time.perf_counter() - start)
    log(f"gate skipped, nothing compared: {reason}")
    write_outputs(result, out)
    return result


# --- output -----------------------------------------------------------------------------------------------------


def render(result: GateResult, fmt: str = "markdown") -> str:
    """The gate's outcome in one of the formats table, markdown, json."""
    title = f"kanbench regress vs {result.against}" if result.against else "kanbench regress"
    if result.status == "skipped":
        if fmt == "json":
            import json

            return json.dumps({"status": "skipped", "reason": result.reason, "against": result.against}) + "\n"
        # the reason quotes git and the runs' output: escaped line by line, as every string from outside is
        if fmt == "markdown":
            reason = "  \n".join(escape.markdown(line) for line in result.reason.splitlines())
            return f"### {escape.markdown(title)}: skipped\n\nNothing was compared: {reason}\n"
        reason = "\n".join(escape.terminal(line) for line in result.reason.splitlines())
        return f"{escape.terminal(title)}: skipped\nNothing was compared: {reason}\n"
    comparison = result.comparison
    assert comparison is not None  # only a skipped gate compares nothing
    text = compare.render(comparison, fmt, title)
    if fmt == "json":
        import json

        data = json.loads(text)
        data["status"] = result.status
        data["confirmed"] = [list(k) for k in result.confirmed]
        data["seconds"] = round(result.seconds, 1)
        if result.confirmation is not None:
            data["confirmation"] = json.loads(compare.to_json(result.confirmation))
        return json.dumps(data, indent=2) + "\n"
    flagged = len(result.confirmed) + len(comparison.unconfirmed)
    if flagged:
        text += (
            f"\nConfirmation: {len(result.confirmed)} of {flagged} flagged cell(s) were slower again when re-measured "
            "(another interleaved set of rounds of just those cells); only confirmed cells fail the gate.\n"
        )
    text += f"\nGate wall time: {result.seconds:.0f} s.\n"
    return text


def write_outputs(result: GateResult, out: Path) -> None:
    """comparison.md and comparison.json in the gate's output directory (CI uploads them as artifacts)."""
    for name, fmt in (("comparison.md", "markdown"), ("comparison.json", "json")):
        try:
            results.write_text(out / name, render(result, fmt))  # whole or not at all: CI parses the JSON
        except OSError as exc:
            raise UsageError(f"{out / name}: cannot write the gate's outcome: {exc.strerror or exc}") from None


# --- command line -----------------------------------------------------------------------------------------------


_positive = compare.number_arg(int, 1, math.inf, "3")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of `kanbench regress`."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--against",
        metavar="REF",
        help="git ref to compare with (default: merge base with the upstream branch, else HEAD~1)",
    )
    where.add_argument(
        "--baseline",
        metavar="RUN_DIR",
        help="compare with a stored run (e.g. results/baselines/NAME) instead of a git ref",
    )
    parser.add_argument("--suite", default=DEFAULT_SUITE, help=f"speed suite to run (default {DEFAULT_SUITE})")
    parser.add_argument(
        "--rounds",
        type=_positive,
        help=f"interleaved rounds per side, each a fresh process (default {DEFAULT_ROUNDS}; 1 for instruction counts)",
    )
    compare.add_gate_arguments(parser, relative=False)
    parser.add_argument("--processes", type=_positive, help="override the suite's [timing].processes")
    parser.add_argument("--values", type=_positive, help="override the suite's [timing].values")
    parser.add_argument("--no-confirm", action="store_true", help="fail on the first measurement, without re-measuring")
    parser.add_argument(
        "--inject-slowdown",
        metavar="IMPL=FACTOR",
        help=f"set {SLOWDOWN_ENV} on the candidate side only, to test the gate (e.g. bspline=1.15)",
    )
    parser.add_argument(
        "--out", help="directory for the runs and comparison.md/json (default results/runs/<UTC time>-regress)"
    )
    parser.add_argument("--format", choices=("table", "markdown", "json"), default="table", help="output format")


def command(args: argparse.Namespace) -> int:
    """Run the gate; exit 1 on a confirmed regression, 0 on a pass or when REF cannot be had."""
    settings = compare.settings_from_args(args)  # a bad estimator is a usage error before anything runs
    if args.inject_slowdown and not re.fullmatch(
        r"\s*[^=,\s]+=\d+(\.\d+)?\s*(,\s*[^=,\s]+=\d+(\.\d+)?\s*)*", args.inject_slowdown
    ):
        raise UsageError(
            f"--inject-slowdown {args.inject_slowdown!r}: expected IMPL=FACTOR[,IMPL=FACTOR], e.g. bspline=1.15"
        )
    extra = []
    if args.processes:
        extra += ["--processes", str(args.processes)]
    if args.values:
        extra += ["--values", str(args.values)]
    common = dict(
        suite=args.suite, rounds=args.rounds, settings=settings, out=Path(args.out) if args.out is not None else None,
        extra=extra, cand_slowdown=args.inject_slowdown, confirm=not args.no_confirm,
    )  # fmt: skip
    repo = Path.cwd()
    for flag, value in (("--baseline", args.baseline), ("--out", args.out)):
        if value is not None and not value.strip():  # an unset variable: never quietly the default
            raise UsageError(f"{flag} {value!r}: an empty path (an unset variable?); give a directory")
    baseline = Path(args.baseline) if args.baseline is not None else None
    result = run_gate(repo, against=args.against, baseline=baseline, **common)
    sys.stdout.write(render(result, args.format))
    return result.exit_code
