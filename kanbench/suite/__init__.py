"""Suites: a TOML file -> a validated Suite -> Cells, the points of the sweep.

Every malformed suite raises UsageError naming the file, the key and what is allowed, before anything runs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from ..errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

C = TypeVar("C", bound=Any)
MAX_NAME = 100  # [suite].name: with a timestamp and a shard suffix it stays a legal file name (255 bytes)
MAX_CELLS = 10_000  # `kanbench run` measures more only when told --yes (docs/suite-schema.md)
# Upper bounds that keep a typo from running for days or forking a thousand workers (docs/suite-schema.md).
BOUNDS = {"warmup": 100_000, "values": 10_000, "processes": 64, "threads": 1024, "profile_steps": 1000,
          "min_time": 60.0, "seconds": 7 * 24 * 3600.0}  # fmt: skip
KINDS = ("speed", "accuracy", "profile")
SPEED_PHASES = ("forward", "forward_inference", "backward", "train_step")
DEVICES = ("cpu", "cuda")
DTYPES = ("float32", "float64", "bfloat16", "float16")
AXES_DEFAULTS = {"spline_order": [3], "device": ["cpu"], "dtype": ["float32"], "compile": [False],
                 "precision": ["pure"]}  # fmt: skip
# a Cell's, in order
CELL_AXES = ("widths", "grid_size", "spline_order", "batch_size", "device", "dtype", "compile", "precision")
PRECISIONS = ("pure", "amp")  # pure: model and inputs in the dtype; amp: float32 model under autocast to the dtype
AMP_DTYPES = ("bfloat16", "float16")
CACHES = ("hot", "cold")
AXES_REQUIRED = ("widths", "grid_size", "batch_size")


MODE_OPTIONS = ("compile", "precision", "cache", "cuda_graphs")  # a record's options that impl_label marks


def impl_label(impl: str, options: dict | None) -> str:
    """The implementation's name marked by its cell's modes ("+compile", "+amp", "+cold", "+graphs"), so a cell
    never merges with the eager, pure-precision, hot-cache, ungraphed one."""
    o = options or {}
    marks = (("+compile", o.get("compile")), ("+amp", o.get("precision") == "amp"), ("+cold", o.get("cache") == "cold"),
             ("+graphs", o.get("cuda_graphs")))  # fmt: skip
    return impl + "".join(mark for mark, on in marks if on)


@dataclass(frozen=True)
class Timing:
    """How each (cell, phase) is timed."""

    warmup: int = 2  # un-timed calls before calibration (calibration itself warms up further)
    min_time: float = 0.01  # seconds per measured value; loops are calibrated to reach it
    values: int = 5  # measured values per worker process
    processes: int = 2  # independent worker processes, each measuring every cell
    # torch threads in workers; 0 = torch's default. One by default: a neighbour on a shared core then stalls no
    # parallel region (docs/methodology.md, "Threads on shared machines")
    threads: int = 1
    cell_timeout_s: float = 600.0  # per cell: a worker that takes longer than this x its group's cells is killed
    # "wall" (perf_counter), "thread" (the worker thread's CPU time; CPU, 1 thread only) or "instructions"
    # (instructions counted by valgrind's callgrind; CPU, 1 thread only, valgrind installed)
    clock: str = "wall"
    cache: str = "hot"  # "cold": a buffer of twice the last-level cache zeroed, un-timed, before every call
    cuda_graphs: bool = False  # true: time replays of the phase's call captured in a CUDA graph

    def modes(self) -> tuple[tuple[str, object], ...]:
        """The non-default measurement modes, which every cell's key and label carry."""
        return tuple((k, v) for k, v in (("cache", self.cache), ("cuda_graphs", self.cuda_graphs))
                     if v != getattr(Timing, k))  # fmt: skip


SMOKE = Timing(warmup=0, min_time=0.0002, values=2, processes=1)  # --smoke: for tests, numbers meaningless


@dataclass(frozen=True)
class Limits:
    """Bounds that keep a sweep finite: a cell whose first forward call exceeds max_call_s is skipped."""

    max_call_s: float = 2.0
    impl_max_call_s: dict = field(default_factory=dict)  # e.g. {"pykan": 0.5}

    def for_impl(self, impl: str) -> float:
        """The bound that applies to impl."""
        return float(self.impl_max_call_s.get(impl, self.max_call_s))


@dataclass(frozen=True)
class Profile:
    """torch.profiler schedule and options of a profile run."""

    wait: int = 1
    warmup: int = 2
    active: int = 5
    repeat: int = 1
    record_shapes: bool = True
    profile_memory: bool = True
    with_stack: bool = False


def stable_hash(key: dict) -> str:
    """A short hash of a JSON-able key, the same on every machine and Python version."""
    text = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Planned:
    """What a planned cell of any kind derives the same way from its implementation and its key."""

    impl: str
    source: str

    @property
    def key(self) -> dict:
        raise NotImplementedError

    @property
    def spec(self) -> str:
        """What implementations.get loads: the suite's "module:factory", else the adapter's name."""
        return self.source or self.impl

    @property
    def config_hash(self) -> str:
        """Stable across runs, machines and suites: a hash of the cell's key."""
        return stable_hash(self.key)


@dataclass(frozen=True)
class Cell(Planned):
    """One point of a sweep: an implementation at one shape, device and dtype."""

    impl: str
    widths: tuple[int, ...]
    grid_size: int
    spline_order: int
    batch_size: int
    device: str
    dtype: str
    options: tuple[tuple[str, object], ...] = ()
    compile: bool = False  # timed under torch.compile (compile time is recorded apart, never inside a value)
    source: str = ""  # how the suite named impl when that is not the adapter's own name ("module:factory")
    precision: str = "pure"  # "amp": a float32 model run under autocast to dtype (PRECISIONS)
    modes: tuple[tuple[str, object], ...] = ()  # the suite's non-default [timing] modes (Timing.modes)

    @property
    def key(self) -> dict:
        """Everything that defines the cell, as plain JSON types (how the suite named the adapter is not)."""
        data = asdict(self)
        del data["source"]
        data["widths"] = list(self.widths)
        data["options"] = dict(self.options)
        if not self.compile:
            del data["compile"]  # hashes of eager cells stay what they were before the compile axis existed
        if self.precision == "pure":
            del data["precision"]  # likewise before the precision axis
        data["modes"] = dict(self.modes)
        if not self.modes:
            del data["modes"]
        return data

    @property
    def group_key(self) -> tuple:
        """Cells equal but for the implementation: measured side by side."""
        return (self.widths, self.grid_size, self.spline_order, self.batch_size, self.device, self.dtype, self.compile,
                self.precision, self.modes)  # fmt: skip

    @property
    def group_hash(self) -> str:
        """A stable name of the group: records with the same one in a run were measured together, interleaved."""
        return stable_hash({"group": list(self.group_key)})

    def label(self) -> str:
        """Short human-readable name."""
        w = "x".join(map(str, self.widths))
        impl = impl_label(self.impl, {"compile": self.compile, "precision": self.precision, **dict(self.modes)})
        return f"{impl} {w} G{self.grid_size} k{self.spline_order} b{self.batch_size} {self.device} {self.dtype}"


@dataclass(frozen=True)
class Suite:
    """A validated suite file."""

    path: str
    name: str
    kind: str
    implementations: tuple[str, ...]
    phases: tuple[str, ...]
    axes: dict
    timing: Timing
    limits: Limits
    options: dict  # implementation -> build options
    profile: Profile
    description: str = ""
    text: str = ""  # the file as read, stored in the run directory
    extra: dict = field(default_factory=dict)  # kind-specific tables (accuracy: training, datasets)
    sweeps: tuple[dict, ...] = ()  # every [[axes]] table; `axes` is the first
    sources: dict = field(default_factory=dict)  # adapter name -> "module:factory" as the suite wrote it

    def cell_count(self) -> int:
        """How many cells the sweeps make at most (before overlapping sweeps are merged), without making them."""
        sweeps = self.sweeps or (self.axes,)
        return len(self.implementations) * sum(math.prod(len(a[k]) for k in CELL_AXES) for a in sweeps)

    def spec(self, impl: str) -> str:
        """What implementations.get loads for one of this suite's adapters: how the suite wrote it."""
        return self.sources.get(impl) or impl

    def adapter_name(self, written: str) -> str | None:
        """The adapter name of an implementation as the suite wrote it (a name or "module:factory"), or None."""
        if written in self.implementations:
            return written
        return next((name for name, source in self.sources.items() if source == written), None)

    def cells(self) -> list[Cell]:
        """The union of each sweep's cartesian product, every implementation side by side, in a fixed order."""
        out: dict[str, Cell] = {}
        for a in self.sweeps or (self.axes,):
            for widths, g, k, batch, device, dtype, compiled, precision in itertools.product(
                *(a[key] for key in CELL_AXES)
            ):
                if precision == "amp" and dtype not in AMP_DTYPES:
                    continue  # autocast to float32 is the pure cell: docs/suite-schema.md
                for impl in self.implementations:
                    options = tuple(sorted(self.options.get(impl, {}).items()))
                    source = self.sources.get(impl, "")
                    cell = Cell(impl, tuple(widths), g, k, batch, device, dtype, options, compiled, source, precision,
                                self.timing.modes())  # fmt: skip
                    out.setdefault(cell.config_hash, cell)  # sweeps may overlap
        return list(out.values())


def shard(cells: list[C], spec: str | None, cost: Callable[[C], float] | None = None) -> list[C]:
    """Cells of shard K of N ("K/N", 1-based): whole groups (impls stay side by side), balanced by cost.

    Each device's groups are dealt apart, longest first, each to the shard with the least cost so far, so every
    shard gets about 1/N of the CPU work and 1/N of the GPU work, and shards stay even on a machine where one
    device's cells are skips. cost(cell) (a kind's estimate; default 1 a cell) depends on the suite alone, so every
    machine computes the same partition. Works for the cells of every kind: anything with a group_key.
    """
    if spec is None:
        return cells
    k, n = parse_shard(spec)
    groups = groups_of(cells)
    price = cost or (lambda cell: 1.0)
    costs = [sum(price(c) for c in group) for group in groups]
    by_device: dict[str, list[int]] = {}
    for i, group in enumerate(groups):
        by_device.setdefault(str(getattr(group[0], "device", "")), []).append(i)
    mine = set()
    for indices in by_device.values():
        loads = [0.0] * n
        for i in sorted(indices, key=lambda i: (-costs[i], i)):
            target = min(range(n), key=lambda s: (loads[s], s))
            loads[target] += costs[i]
            if target == k - 1:
                mine.add(i)
    return [c for i, group in enumerate(groups) if i in mine for c in group]


def groups_of(cells: list[C]) -> list[list[C]]:
    """Cells equal but for the implementation (the same group_key), in first-seen order."""
    groups: dict[tuple, list[C]] = {}
    for cell in cells:
        groups.setdefault(cell.group_key, []).append(cell)
    return list(groups.values())


def parse_shard(spec: str) -> tuple[int, int]:
    """ "K/N" -> (K, N) with 1 <= K <= N; UsageError otherwise."""
    try:
        k_text, n_text = spec.split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise UsageError(f"--shard {spec!r}: expected K/N with integers, e.g. 1/2") from None
    if not 1 <= k <= n:
        raise UsageError(f"--shard {spec!r}: K must be between 1 and N (got K={k}, N={n}), e.g. 1/{max(n, 1)}")
    return k, n


class Checker:
    """Type checks that raise UsageError naming the file and key."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, key: str, message: str) -> NoReturn:
        where = key if key.startswith("--") else f"{self.path}: {key}"  # a flag's value came from no file
        raise UsageError(f"{where}: {message}")

    def table(self, data: dict, key: str, allowed: tuple[str, ...]) -> dict:
        value = data.get(key, {})
        if not isinstance(value, dict):
            self.fail(f"[{key}]", f"must be a table, got {type(value).__name__}")
        return self.entries(value, f"[{key}]", allowed)

    def number(self, value, key: str, kind: type, minimum: float, strict: bool = False, maximum: float | None = None):
        ok_type = isinstance(value, kind) or (kind is float and isinstance(value, int))
        if isinstance(value, bool) or not ok_type:
            self.fail(key, f"must be {'an int' if kind is int else 'a number'}, got {value!r}")
        if not math.isfinite(value):
            self.fail(key, f"must be a finite number, got {value!r}")
        if value < minimum or (strict and value == minimum):
            self.fail(key, f"must be {'>' if strict else '>='} {minimum:g}, got {value!r}")
        if maximum is not None and value > maximum:
            self.fail(key, f"must be <= {maximum:g}, got {value!r}")
        return kind(value)

    def seconds(self, value, key: str, maximum: float = BOUNDS["seconds"]) -> float:
        """A duration: a finite number of seconds > 0, at most maximum."""
        return self.number(value, key, float, 0, strict=True, maximum=maximum)

    def choice(self, value, key: str, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            self.fail(key, f"{value!r} is not allowed; allowed: {', '.join(allowed)}")
        return value

    def entries(self, value, key: str, allowed: tuple[str, ...]) -> dict:
        """value must be a table whose keys are all allowed; key names it in messages."""
        if not isinstance(value, dict):
            self.fail(key, f"must be a table, got {value!r}")
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            self.fail(f"{key}.{unknown[0]}", f"unknown key; allowed: {', '.join(allowed)}")
        return value

    def finite(self, value, key: str) -> None:
        """Refuse inf and nan anywhere inside a table (TOML allows them; no setting of a suite means them)."""
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(key, f"must be a finite number, got {value!r}")
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for k, v in items:
            self.finite(v, f"{key}.{k}" if isinstance(k, str) else f"{key}[{k}]")

    def boolean(self, value, key: str) -> bool:
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, got {value!r}")
        return value

    def string_list(self, value, key: str, allowed: tuple[str, ...] | None = None) -> list[str]:
        if not isinstance(value, list) or not value:
            self.fail(key, f"must be a non-empty list of strings, got {value!r}")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.fail(f"{key}[{i}]", f"must be a string, got {item!r}")
            if allowed is not None and item not in allowed:
                self.fail(f"{key}[{i}]", f"{item!r} is not allowed; allowed: {', '.join(allowed)}")
        if len(set(value)) != len(value):
            self.fail(key, f"has duplicates: {value!r}")
        return value

    def int_list(self, value, key: str, minimum: int = 1) -> list[int]:
        if not isinstance(value, list) or not value:
            self.fail(key, f"must be a non-empty list of ints, got {value!r}")
        return [self.number(v, f"{key}[{i}]", int, minimum) for i, v in enumerate(value)]


# The clocks of [timing].clock and the unit of what each measures (kanbench.measure.timing implements them; this module
# imports no torch). The instruction clock does not calibrate: each of its values is the mean of COUNT_LOOPS calls.
CLOCK_UNITS = {"wall": "s", "thread": "s", "instructions": "instructions"}
CLOCKS = tuple(CLOCK_UNITS)
COUNT_LOOPS = 1


def check_timing(check: Checker, table: dict, sweeps: tuple[dict, ...], flags: dict[str, str] | None = None) -> Timing:
    """[timing] as a Timing, every key and rule checked; an error names the flag (flags: key -> flag) that set a key."""

    def at(key: str) -> str:
        return (flags or {}).get(key, f"[timing].{key}")

    def get(key: str) -> Any:
        return table.get(key, getattr(Timing, key))

    lowest = {"warmup": 0, "values": 1, "processes": 1, "threads": 0}  # the int keys
    t = Timing(
        **{key: check.number(get(key), at(key), int, low, maximum=BOUNDS[key]) for key, low in lowest.items()},
        min_time=check.seconds(get("min_time"), at("min_time"), BOUNDS["min_time"]),
        cell_timeout_s=check.seconds(get("cell_timeout_s"), at("cell_timeout_s")),
        clock=check.choice(get("clock"), at("clock"), CLOCKS),
        cache=check.choice(get("cache"), at("cache"), CACHES),
        cuda_graphs=check.boolean(get("cuda_graphs"), at("cuda_graphs")),
    )
    if t.clock != "wall" and (t.cache != "hot" or t.cuda_graphs):
        check.fail(at("clock"), f'{t.clock} cannot go with cache = "cold" or cuda_graphs: use "wall"')
    if t.clock == "wall":
        return t
    what = {"thread": "thread CPU time counts only the calling thread", "instructions": "callgrind serialises "
            "threads and counts them all"}[t.clock]  # fmt: skip
    if t.threads != 1:
        check.fail(at("clock"), f"{what}: it needs threads = 1")
    if any("cuda" in sweep["device"] for sweep in sweeps):
        check.fail(at("clock"), f'{t.clock} cannot time GPU work: use clock = "wall" for cuda cells')
    return t


def timing_with(suite: Suite, flags: dict[str, Any], smoke: bool = False) -> Timing:
    """The suite's timing with --smoke and the command line's flags (None: not given) applied, checked as the file's."""
    t = suite.timing
    if smoke:  # tiny settings for tests; the suite's threads, timeout and clock stay
        t = replace(SMOKE, threads=t.threads, cell_timeout_s=t.cell_timeout_s, clock=t.clock)
    given = {key: value for key, value in flags.items() if value is not None}
    names = {key: "--" + key.replace("_", "-") for key in given}
    return check_timing(Checker(suite.path), {**asdict(t), **given}, suite.sweeps or (suite.axes,), names)


def _axes(check: Checker, raw: object, where: str, kind: str) -> dict:
    """One validated table of axes, with defaults filled in."""
    if not isinstance(raw, dict):
        check.fail(where, f"must be a table of axes, got {type(raw).__name__}")
    allowed: tuple[str, ...] = CELL_AXES
    allowed += ("dataset", "seed") if kind == "accuracy" else ()
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        check.fail(f"{where}.{unknown[0]}", f"unknown axis; allowed: {', '.join(allowed)}")
    for key in AXES_REQUIRED if kind != "accuracy" else ("grid_size",):
        if key not in raw:
            check.fail(f"{where}.{key}", "is required")
    axes = {**AXES_DEFAULTS, **raw}
    if "widths" in axes:
        widths = axes["widths"]
        if not isinstance(widths, list) or not widths:
            check.fail(
                f"{where}.widths", f"must be a non-empty list of width lists such as [[784, 64, 10]], got {widths!r}"
            )
        for i, w in enumerate(widths):
            if not isinstance(w, list) or len(w) < 2:
                check.fail(f"{where}.widths[{i}]", f"must be a list of at least 2 positive ints, got {w!r}")
            check.int_list(w, f"{where}.widths[{i}]")
    for key in ("grid_size", "spline_order", "batch_size"):
        if key in axes:
            check.int_list(axes[key], f"{where}.{key}")
    if "seed" in axes:
        check.int_list(axes["seed"], f"{where}.seed", minimum=0)
    if "dataset" in axes:
        check.string_list(axes["dataset"], f"{where}.dataset")
    check.string_list(axes["device"], f"{where}.device", DEVICES)
    check.string_list(axes["dtype"], f"{where}.dtype", DTYPES)
    if not isinstance(axes["compile"], list) or not axes["compile"]:
        check.fail(f"{where}.compile", f"must be a non-empty list of true/false, got {axes['compile']!r}")
    for i, value in enumerate(axes["compile"]):
        check.boolean(value, f"{where}.compile[{i}]")
    check.string_list(axes["precision"], f"{where}.precision", PRECISIONS)
    if "amp" in axes["precision"] and not set(axes["dtype"]) & set(AMP_DTYPES):
        check.fail(f"{where}.precision", f'"amp" autocasts to bfloat16 or float16, and {where}.dtype has neither')
    return axes


def parse(text: str, path: str = "<suite>") -> Suite:
    """Validate suite TOML text; raises UsageError naming path, key and what is allowed."""
    import implementations

    check = Checker(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise UsageError(f"{path}: not a suite: arrays or tables nested too deeply") from None
    known_tables = ("suite", "axes", "timing", "limits", "options", "profile", "training", "datasets")
    for key in data:
        if key not in known_tables:
            check.fail(key, f"unknown table; allowed: {', '.join(known_tables)}")
    head = check.table(data, "suite", ("name", "kind", "implementations", "phases", "description"))
    name = head.get("name")
    if not isinstance(name, str) or not name or not name.isprintable() or any(c in name for c in "/\\ "):
        check.fail("[suite].name", f"must be a non-empty string of printable characters without slashes or spaces, "
                   f"got {name!r}")  # fmt: skip
    if len(name) > MAX_NAME:
        check.fail("[suite].name", f"must be at most {MAX_NAME} characters (it names run directories), got {len(name)}")
    kind = check.choice(head.get("kind", "speed"), "[suite].kind", KINDS)
    written = check.string_list(head.get("implementations"), "[suite].implementations")
    impls, sources, named = [], {}, {}  # named: as written -> the adapter's own name
    for i, spec in enumerate(written):
        try:
            adapter = implementations.info(spec).name
        except (KeyError, TypeError, ImportError) as exc:
            check.fail(f"[suite].implementations[{i}]", str(exc.args[0]) if exc.args else str(exc))
        if adapter in impls:
            check.fail(f"[suite].implementations[{i}]", f"{spec!r} is {adapter!r}, already listed")
        impls.append(adapter)
        named[spec] = named[adapter] = adapter
        if spec != adapter:
            sources[adapter] = spec
    if kind == "accuracy":
        if "phases" in head:
            check.fail("[suite].phases", "only speed and profile suites have phases")
        phases: list[str] = ["accuracy"]
    else:
        phases = check.string_list(head.get("phases", list(SPEED_PHASES)), "[suite].phases", SPEED_PHASES)

    raw = data.get("axes", {})
    if isinstance(raw, list) and kind != "accuracy":
        if not raw:
            check.fail("[[axes]]", "must hold at least one sweep table")
        sweeps = tuple(_axes(check, table, f"[[axes]][{i}]", kind) for i, table in enumerate(raw))
    else:
        sweeps = (_axes(check, raw, "[axes]", kind),)

    t = check.table(data, "timing", tuple(Timing.__dataclass_fields__))
    timing = check_timing(check, t, sweeps)

    lim = check.table(data, "limits", ("max_call_s", "impl"))
    impl_limits = lim.get("impl", {})
    if not isinstance(impl_limits, dict):
        check.fail("[limits.impl]", f"must be a table of implementation -> {{max_call_s = ...}}, got {impl_limits!r}")
    impl_max = {}
    for impl in impl_limits:
        if impl not in named:
            check.fail(f"[limits.impl.{impl}]", f"names no implementation of this suite; allowed: {', '.join(written)}")
        sub = check.table(impl_limits, impl, ("max_call_s",))
        where = f"[limits.impl.{impl}].max_call_s"
        impl_max[named[impl]] = check.seconds(sub.get("max_call_s"), where)
    limits = Limits(
        max_call_s=check.seconds(lim.get("max_call_s", Limits.max_call_s), "[limits].max_call_s"),
        impl_max_call_s=impl_max,
    )

    raw_options = data.get("options", {})
    if not isinstance(raw_options, dict):
        check.fail("[options]", "must be a table of implementation -> build options")
    options = {}
    for impl, table in raw_options.items():
        if impl not in named:
            check.fail(f"[options.{impl}]", f"names no implementation of this suite; allowed: {', '.join(written)}")
        if not isinstance(table, dict):
            check.fail(f"[options.{impl}]", f"must be a table of build options, got {table!r}")
        check.finite(table, f"[options.{impl}]")
        options[named[impl]] = table

    p = check.table(data, "profile", tuple(Profile.__dataclass_fields__))
    profile = Profile(
        **{
            key: (check.boolean(p[key], f"[profile].{key}") if isinstance(default, bool) else
                  check.number(p[key], f"[profile].{key}", int, 1 if key == "active" else 0,
                               maximum=BOUNDS["profile_steps"]))
            for key, default in asdict(Profile()).items()
            if key in p
        }
    )  # fmt: skip
    if kind != "accuracy":
        for key in ("training", "datasets"):
            if key in data:
                check.fail(f"[{key}]", "only accuracy suites have this table")
    extra = {key: data[key] for key in ("training", "datasets") if key in data}
    description = head.get("description", "")
    if not isinstance(description, str):
        check.fail("[suite].description", f"must be a string, got {description!r}")
    for section, value in extra.items():
        for entry, inner in value.items() if section == "datasets" and isinstance(value, dict) else [("", value)]:
            check.finite(inner, f"[{section}.{entry}]" if entry else f"[{section}]")
    return Suite(
        path, name, kind, tuple(impls), tuple(phases), sweeps[0], timing, limits, options, profile, description, text,
        extra, sweeps, sources,
    )  # fmt: skip


def load(path: str | Path) -> Suite:
    """Read and validate a suite file."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read suite file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 (byte {exc.start + 1}); suite files are UTF-8 TOML") from None
    return parse(text, str(path))
