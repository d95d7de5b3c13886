"""Accuracy suites (kind = "accuracy"): validate the [training] and [datasets] tables, train every
(implementation, dataset, widths, seed) in a worker process, write one `accuracy` Record each, and aggregate
the seeds to mean and standard deviation.

    [axes]                      grid_size (required), spline_order, device, dtype (float32 | float64),
                                dataset (which [datasets.NAME] tables to run; default all), seed (default 0, 1, 2)
    [training]                  optimizer, lr, weight_decay, momentum, schedule, gamma, epochs, batch_size,
                                eval_batch_size, max_run_s, workers, gpu_workers (runs trained at once on
                                one GPU; default 1, so train times are not contended)
    [datasets.NAME]             widths (required), normalize = [mean, std], implementations, n_train, n_val,
                                n_test, data_seed, data_dir, validate_on ("val" | "test"), and any [training]
                                key but workers and gpu_workers (per-dataset override)

Records carry time_s = null: epoch wall times live in metrics.curve.epoch_time_s and metrics.train_time_s, so the
timing tools (pyperf export, compare) never mistake a training run for a timed phase. No torch is imported at module
level: `aggregate` serves the report.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from typing import Any

from ..measure import datasets
from ..measure.reply import Reply
from ..results import seeds
from ..results.record import Identity, Record, make
from ..suite import BOUNDS, Checker, Planned, Suite, tomllib
from . import progress
from .kind import BaseKind, Presentation, Request

OPTIMIZERS = ("adamw", "adam", "sgd", "lbfgs")
SCHEDULES = ("none", "exponential")
ACCURACY_DTYPES = ("float32", "float64")
DEFAULT_SEEDS = (0, 1, 2)
RECIPE_DEFAULTS: dict = {
    "optimizer": "adamw",
    "lr": 1e-3,
    "weight_decay": 0.0,
    "momentum": None,  # sgd only; 0.9 when not given
    "schedule": "none",
    "gamma": None,  # exponential only, required there: lr *= gamma after every epoch
    "epochs": 10,
    "batch_size": 64,
    "eval_batch_size": 256,
    "max_run_s": 3600.0,  # wall time of one run, training + evaluation: projected after 10 steps, checked per epoch
}
TRAINING_KEYS = (*RECIPE_DEFAULTS, "workers", "gpu_workers")
DATA_KEYS = ("widths", "normalize", "implementations", "n_train", "n_val", "n_test", "data_seed", "data_dir",
             "validate_on")  # fmt: skip
FUNCTION_SIZE_DEFAULT = 1000
SMOKE_EPOCHS, SMOKE_SUBSET = 1, 256
UNHASHED_RECIPE = ("max_run_s", "eval_batch_size")  # bounds and batching of evaluation, not the result
EFFECTIVE_FLOP_S = 4e9  # for estimates only, the bar rescales by real pace (docs/methodology.md, "Progress")


@dataclass(frozen=True)
class TrainCell(Planned):
    """One training run: an implementation on a dataset at one shape and seed, with its recipe."""

    impl: str
    dataset: str
    widths: tuple[int, ...]
    grid_size: int
    spline_order: int
    device: str
    dtype: str
    seed: int
    options: tuple[tuple[str, Any], ...]
    recipe: tuple[tuple[str, Any], ...]
    data: tuple[tuple[str, Any], ...]  # dataset spec: normalize, sizes, data_seed, data_dir, source
    source: str = ""  # how the suite named impl when that is not the adapter's own name ("module:factory")

    @property
    def key(self) -> dict:
        """Everything that defines the run's result, as plain JSON types (no machine-specific paths)."""
        return {
            "phase": "accuracy", "impl": self.impl, "dataset": self.dataset, "widths": list(self.widths),
            "grid_size": self.grid_size, "spline_order": self.spline_order, "device": self.device,
            "dtype": self.dtype, "seed": self.seed, "options": dict(self.options),
            "recipe": {k: v for k, v in self.recipe if k not in UNHASHED_RECIPE},
            "data": {k: v for k, v in self.data if k != "data_dir"},
        }  # fmt: skip

    @property
    def group_key(self) -> tuple:
        """Runs equal but for the implementation: trained side by side, kept together by --shard."""
        return (self.dataset, self.widths, self.grid_size, self.spline_order, self.device, self.dtype, self.seed)

    def label(self) -> str:
        """Short human-readable name."""
        w = "x".join(map(str, self.widths))
        return f"{self.impl} {self.dataset} {w} G{self.grid_size} seed {self.seed}"


@dataclass(frozen=True)
class Plan:
    """A validated accuracy suite: the runs in order, and how many train at once."""

    cells: list[TrainCell]
    workers: int
    threads: int
    gpu_workers: int = 1  # of those, at most this many on one GPU at once


def _recipe(raw: dict, base: dict, where: str, check: Checker) -> dict:
    """Training settings of raw over base, checked; `where` is the table name for errors."""
    r = dict(base)
    given = {k: raw[k] for k in RECIPE_DEFAULTS if k in raw}
    if "optimizer" in given:
        r["optimizer"] = check.choice(given["optimizer"], f"{where}.optimizer", OPTIMIZERS)
    if "schedule" in given:
        r["schedule"] = check.choice(given["schedule"], f"{where}.schedule", SCHEDULES)
    for key, kind, minimum, strict in (
        ("lr", float, 0, True),
        ("weight_decay", float, 0, False),
        ("epochs", int, 1, False),
        ("batch_size", int, 1, False),
        ("eval_batch_size", int, 1, False),
        ("max_run_s", float, 0, True),
    ):
        if key in given:
            r[key] = check.number(given[key], f"{where}.{key}", kind, minimum, strict)
    if "gamma" in given:
        r["gamma"] = check.number(given["gamma"], f"{where}.gamma", float, 0, strict=True, maximum=1)
    if "momentum" in given:
        r["momentum"] = check.number(given["momentum"], f"{where}.momentum", float, 0, maximum=1)
    return r


def _finish_recipe(r: dict, table: dict, where: str, check: Checker) -> dict:
    """Rules across keys, once a dataset's overrides are applied; errors name the table that set the key."""

    def at(key: str) -> str:
        return f"{where if key in table else '[training]'}.{key}"

    if r["schedule"] == "exponential" and r["gamma"] is None:
        check.fail(at("schedule").rsplit(".", 1)[0] + ".gamma",
                   'is required with schedule = "exponential" (lr *= gamma after every epoch)')  # fmt: skip
    if r["schedule"] == "none" and r["gamma"] is not None:
        check.fail(at("gamma"), 'applies only to schedule = "exponential"')
    if r["momentum"] is not None and r["optimizer"] != "sgd":
        check.fail(at("momentum"), f'applies only to optimizer = "sgd", not {r["optimizer"]!r}')
    if r["optimizer"] == "sgd" and r["momentum"] is None:
        r["momentum"] = 0.9
    if r["optimizer"] == "lbfgs" and r["weight_decay"]:
        check.fail(at("weight_decay"), "torch's LBFGS has no weight decay; use 0 or another optimizer")
    return r


def _data_spec(name: str, raw: dict, where: str, check: Checker) -> dict:
    """The dataset keys of [datasets.NAME], checked against what that dataset accepts."""
    spec: dict = {"name": name, "normalize": None}
    is_function = name in datasets.FUNCTIONS
    if "normalize" in raw:
        value = raw["normalize"]
        if not (isinstance(value, list) and len(value) == 2):
            check.fail(f"{where}.normalize", f"must be [mean, std] (inputs become (x - mean) / std), got {value!r}")
        mean = check.number(value[0], f"{where}.normalize[0]", float, -math.inf)
        std = check.number(value[1], f"{where}.normalize[1]", float, 0, strict=True)
        spec["normalize"] = [mean, std]
    for key in ("n_train", "n_val", "n_test"):
        if key in raw and not is_function:
            check.fail(f"{where}.{key}", f"only the generated function tasks ({', '.join(datasets.FUNCTIONS)}) have it")
        spec[key] = check.number(raw.get(key, FUNCTION_SIZE_DEFAULT), f"{where}.{key}", int, 1)
    if "data_seed" in raw and name == "mnist":
        check.fail(f"{where}.data_seed", "MNIST has a fixed split; data_seed applies to digits and function tasks")
    spec["data_seed"] = check.number(raw.get("data_seed", 0), f"{where}.data_seed", int, 0)
    if "validate_on" in raw:
        # only stored when set, so the config hashes of suites without it stay what they were
        spec["validate_on"] = check.choice(raw["validate_on"], f"{where}.validate_on", datasets.VALIDATE_ON)
    if "data_dir" in raw:
        if name != "mnist":
            check.fail(f"{where}.data_dir", "only mnist reads files")
        if not isinstance(raw["data_dir"], str) or not raw["data_dir"]:
            check.fail(f"{where}.data_dir", f"must be a directory path, got {raw['data_dir']!r}")
        spec["data_dir"] = raw["data_dir"]
    return spec


def _widths(value, where: str, spec: datasets.Spec, check: Checker) -> list[tuple[int, ...]]:
    example = f"[[{spec.n_inputs}, 64, {spec.n_outputs}]]" if spec.n_inputs > 10 else f"[[{spec.n_inputs}, 5, 1]]"
    if not isinstance(value, list) or not value:
        check.fail(where, f"must be a non-empty list of width lists such as {example}, got {value!r}")
    out = []
    for i, w in enumerate(value):
        key = f"{where}[{i}]"
        if not isinstance(w, list) or len(w) < 2:
            check.fail(key, f"must be a list of at least 2 positive ints such as {example[1:-1]}, got {w!r}")
        w = tuple(check.number(v, f"{key}[{j}]", int, 1) for j, v in enumerate(w))
        if w[0] != spec.n_inputs or w[-1] != spec.n_outputs:
            check.fail(key, f"{spec.name} has {spec.n_inputs} inputs and {spec.n_outputs} outputs, so widths must "
                       f"start with {spec.n_inputs} and end with {spec.n_outputs}, got {list(w)}")  # fmt: skip
        out.append(w)
    return out


def plan(suite: Suite, smoke: bool = False, data_dir: str | None = None, flags: dict[str, Any] | None = None) -> Plan:
    """Validate an accuracy suite's tables and the command line's flags (None: not given; --processes sets
    [training].workers) and list its runs; UsageError naming the file and key, or the flag, and what is allowed."""
    check = Checker(suite.path)
    given = {key: value for key, value in (flags or {}).items() if value is not None}
    for key in sorted(given.keys() - {"processes"}):
        check.fail("--" + key.replace("_", "-"), "applies to speed suites only; accuracy suites set [training] instead")
    raw = tomllib.loads(suite.text) if suite.text else {}
    for section, allowed in (("timing", ("threads",)), ("limits", ()), ("profile", ())):
        for key in raw.get(section, {}):
            if key in allowed:
                continue
            hint = " (bound a run's time with [training].max_run_s)" if section == "limits" else ""
            message = f"does not apply to accuracy suites; allowed: {', '.join(allowed) or 'none'}"
            check.fail(f"[{section}].{key}", message + hint)
    raw_axes = raw.get("axes", {})
    for key, instead in (("widths", "[datasets.NAME].widths"), ("batch_size", "[training].batch_size")):
        if isinstance(raw_axes, dict) and key in raw_axes:
            check.fail(f"[axes].{key}", f"accuracy suites set this per dataset or recipe: use {instead}")
    if isinstance(raw_axes, dict) and raw_axes.get("compile", [False]) != [False]:
        check.fail("[axes].compile", "accuracy suites train eager models only; allowed: [false]")
    if isinstance(raw_axes, dict) and raw_axes.get("precision", ["pure"]) != ["pure"]:
        check.fail("[axes].precision", 'accuracy suites train in the dtype itself; allowed: ["pure"]')
    for i, dtype in enumerate(suite.axes["dtype"]):
        check.choice(dtype, f"[axes].dtype[{i}]", ACCURACY_DTYPES)
    seeds = list(suite.axes.get("seed", DEFAULT_SEEDS))
    if len(set(seeds)) != len(seeds):
        check.fail("[axes].seed", f"has duplicates: {seeds!r}")

    training = check.entries(suite.extra.get("training", {}), "[training]", TRAINING_KEYS)
    base = _recipe(training, RECIPE_DEFAULTS, "[training]", check)
    at = "--processes" if "processes" in given else "[training].workers"
    workers = check.number(given.get("processes", training.get("workers", 1)), at, int, 1, maximum=BOUNDS["processes"])
    gpu_workers = check.number(training.get("gpu_workers", 1), "[training].gpu_workers", int, 1,
                               maximum=BOUNDS["processes"])  # fmt: skip

    tables = suite.extra.get("datasets", {})
    if not isinstance(tables, dict) or not tables:
        example = "[datasets.digits] widths = [[64, 32, 10]]"
        check.fail("[datasets]", f"needs at least one [datasets.NAME] table, e.g. {example}; known datasets: "
                   + ", ".join(datasets.SPECS))  # fmt: skip
    for name, table in tables.items():
        if name not in datasets.SPECS:
            check.fail(f"[datasets.{name}]", f"unknown dataset; known: {', '.join(datasets.SPECS)}")
        if not isinstance(table, dict):
            check.fail(f"[datasets.{name}]", f"must be a table with at least widths, got {table!r}")
    chosen = list(suite.axes.get("dataset", tables))
    for i, name in enumerate(chosen):
        if name not in datasets.SPECS:
            check.fail(f"[axes].dataset[{i}]", f"unknown dataset {name!r}; known: {', '.join(datasets.SPECS)}")
        if name not in tables:
            check.fail(f"[axes].dataset[{i}]", f"{name!r} has no [datasets.{name}] table (it sets widths at least)")

    cells = []
    for name in [*chosen, *(n for n in tables if n not in chosen)]:  # unused tables are checked too
        where = f"[datasets.{name}]"
        table = check.entries(tables[name], where, (*DATA_KEYS, *RECIPE_DEFAULTS))
        if "widths" not in table:
            check.fail(f"{where}.widths", "is required")
        widths = _widths(table["widths"], f"{where}.widths", datasets.SPECS[name], check)
        recipe = _finish_recipe(_recipe(table, base, where, check), table, where, check)
        spec = _data_spec(name, table, where, check)
        if name not in chosen:
            continue
        if name == "mnist":
            source = datasets.locate_mnist(spec.get("data_dir") or data_dir)
            spec["data_dir"] = str(source.files[0].parent) if source.kind == "idx" else None
            spec["source"] = "idx" if source.kind == "idx" else f"{datasets.MNIST_PACKAGE} pickle"
        impls = table.get("implementations", list(suite.implementations))
        if not isinstance(impls, list) or not impls:
            check.fail(f"{where}.implementations", f"must be a non-empty list of names, got {impls!r}")
        for i, impl in enumerate(impls):
            if suite.adapter_name(impl) is None:
                check.fail(f"{where}.implementations[{i}]", f"{impl!r} is not in [suite].implementations "
                           f"({', '.join(suite.implementations)})")  # fmt: skip
        impls = [suite.adapter_name(impl) for impl in impls]
        if smoke:
            recipe = {**recipe, "epochs": SMOKE_EPOCHS, "subset": SMOKE_SUBSET}
        axes = suite.axes
        recipe_items, spec_items = tuple(sorted(recipe.items())), tuple(sorted(spec.items()))
        for w, g, k, device, dtype in itertools.product(
            widths, axes["grid_size"], axes["spline_order"], axes["device"], axes["dtype"]
        ):
            # Implementation-major, in suite order: an interrupted run holds every seed of the first implementations,
            # so their mean and spread exist (accuracy does not drift with the machine the way timings do).
            for impl in impls:
                options = tuple(sorted(suite.options.get(impl, {}).items()))
                for seed in seeds:
                    cells.append(TrainCell(impl, name, w, g, k, device, dtype, seed, options, recipe_items, spec_items,
                                           suite.sources.get(impl, "")))  # fmt: skip
    return Plan(cells, workers, suite.timing.threads, gpu_workers)


def split_sizes(cell: TrainCell) -> tuple[int, int, int]:
    """(train, val, test) sample counts a run will use, without loading the data."""
    spec, recipe = dict(cell.data), dict(cell.recipe)
    if cell.dataset == "mnist":
        sizes = (50_000, 10_000, 10_000)
    elif cell.dataset == "digits":
        sizes = (1077, 360, 360)
    else:
        sizes = (spec["n_train"], spec["n_val"], spec["n_test"])
    if spec.get("validate_on") == "test":
        sizes = (sizes[0] + sizes[1], sizes[2], sizes[2])
    limit = recipe.get("subset")
    return tuple(min(s, limit) for s in sizes) if limit else sizes


def estimate_seconds(cell: TrainCell) -> float:
    """Rough wall time of one run from analytic FLOPs (training step ~ 3x forward) at EFFECTIVE_FLOP_S."""
    import implementations

    recipe = dict(cell.recipe)
    n_train, n_val, n_test = split_sizes(cell)
    try:
        adapter = implementations.get(cell.spec)
        per_sample = adapter.flops(list(cell.widths), cell.grid_size, cell.spline_order, 1, **dict(cell.options))
    except Exception:
        per_sample = 0
    steps = math.ceil(n_train / recipe["batch_size"]) * recipe["epochs"]
    evaluations = 20 if recipe["optimizer"] == "lbfgs" else 1  # torch's LBFGS step: up to 20 closure calls
    flop = recipe["epochs"] * per_sample * (3 * n_train * evaluations + n_val + n_test)
    rate = EFFECTIVE_FLOP_S * (20 if cell.device == "cuda" else 1)
    # the FLOPs at the effective rate, + per-step overhead of small batches + model and data setup
    return min(flop / rate + steps * evaluations * 3e-4 + 1.0, recipe["max_run_s"] * 1.1 + 5)


def check_datasets(cells: list[TrainCell]) -> None:
    """Load every dataset the runs use once, so a missing or corrupt file stops the run before any training."""
    done = set()
    for cell in cells:
        spec = dict(cell.data)
        key = json.dumps(spec, sort_keys=True)
        if key in done:
            continue
        done.add(key)
        datasets.load_spec(spec)


def request_of(cell: TrainCell, verbose: bool) -> dict:
    """What a worker needs to train a cell."""
    return {
        "cell": {"impl": cell.impl, "source": cell.source, "widths": list(cell.widths), "grid_size": cell.grid_size,
                 "spline_order": cell.spline_order, "device": cell.device, "dtype": cell.dtype, "seed": cell.seed,
                 "options": dict(cell.options)},
        "recipe": dict(cell.recipe), "dataset": dict(cell.data), "label": cell.label(), "verbose": verbose,
    }  # fmt: skip


def identity(cell: TrainCell, suite_name: str) -> Identity:
    """The identity of a training run's Record: its batch size is the recipe's, its options carry recipe and data."""
    import implementations

    info = implementations.info(cell.spec)
    data = {k: v for k, v in cell.data if k != "data_dir"}
    recipe = dict(cell.recipe)
    return Identity(
        suite=suite_name, impl=cell.impl, family=info.family, device=cell.device, dtype=cell.dtype,
        batch_size=recipe["batch_size"], widths=cell.widths, grid_size=cell.grid_size,
        spline_order=cell.spline_order, num_basis=cell.grid_size + cell.spline_order if info.has_basis else 0,
        options={**dict(cell.options), "recipe": recipe, "data": data}, config_hash=cell.config_hash,
    )  # fmt: skip


def make_record(cell: TrainCell, suite_name: str, run_id: str, reply: Reply) -> Record:
    """The `accuracy` Record of one run from the worker's reply (or a skip reply made here): one process trains it,
    so the record is that reply's."""
    metric = "test_accuracy" if datasets.SPECS[cell.dataset].task == "classification" else "test_rmse"
    metrics = reply.metrics or {"dataset": cell.dataset, "seed": cell.seed, "metric": metric}
    if reply.status == "ok":
        from .speed import record_notes

        metrics = {**metrics, **record_notes(cell.spec, dict(cell.options))}
    return make(identity(cell, suite_name), run_id, "accuracy", reply.status, reply.reason, counts=reply.counts,
                metrics=metrics)  # fmt: skip


class AccuracyPresentation(Presentation):
    """What an accuracy run shows: each run's estimate and result, mean and spread over seeds."""

    kind: AccuracyKind

    def planned(self, cells: list[TrainCell]) -> str:
        """Runs, and how many train at once."""
        return f"{len(cells)} training runs, {self.kind.lanes} at a time"

    def listed(self, cell: TrainCell) -> str:
        """The run's estimate."""
        return f"  ~{progress.duration(estimate_seconds(cell))}"

    def outcome(self, cell: TrainCell, records: list[Record]) -> str:
        """': 97.12 % in 3.1 s' for the progress line."""
        r = records[0]
        m = r.metrics or {}
        if r.status != "ok" or "final_test" not in m:
            return f": {r.status}: {(r.reason or '').splitlines()[0] if r.reason else ''}"
        value = m["final_test"]
        text = f"{100 * value:.2f} %" if m["metric"] == "test_accuracy" else f"RMSE {value:.4g}"
        return ": " + text + (" (diverged)" if m["diverged"] else "") + f" in {m['train_time_s']:.1f} s"

    def summary(self, records: list[Record]) -> str:
        """Mean and spread over seeds."""
        import pandas as pd

        from ..results import flatten

        return format_table(aggregate(pd.DataFrame([flatten(r) for r in records])))


class AccuracyKind(BaseKind):
    """Train every run of an accuracy suite, `lanes` at a time, each in a worker process of its own."""

    name = "accuracy"
    handler = "kanbench.measure.training:handle"
    presents = AccuracyPresentation
    cell_by_cell = True  # a group is every implementation of a seed (MNIST: tens of minutes): keep each run as it ends

    def __init__(self, suite: Suite, plan: Plan, cells: list[TrainCell], workers: int, smoke: bool, verbose: bool):
        self.suite, self.plan, self._cells, self.smoke, self.verbose = suite, plan, cells, smoke, verbose
        self.lanes, self.threads = workers, plan.threads

    def cells(self) -> list[TrainCell]:
        """Every run, implementation-major."""
        return self._cells

    def keys(self, cell: TrainCell) -> list[tuple[str, str, str | None]]:
        """One accuracy Record per run."""
        return [(cell.config_hash, "accuracy", None)]

    def estimate(self, cell: TrainCell) -> float:
        """Rough wall time of one run."""
        return estimate_seconds(cell)

    def settings(self) -> dict:
        """Effective settings, stored in environment.json and checked on --resume."""
        data = sorted({str(dict(c.data).get("data_dir")) for c in self._cells if dict(c.data).get("data_dir")})
        return {"workers": self.lanes, "smoke": self.smoke, "data": data}  # data: the MNIST files it read

    def before_workers(self, cells: list[TrainCell], environment: dict, bar: progress.Progress) -> None:
        """Say how many runs train at once."""
        on_gpu = sum(c.device == "cuda" for c in cells)
        gpu = (
            f" (cuda runs {self.plan.gpu_workers} at a time: [training].gpu_workers)"
            if on_gpu and self.lanes > 1
            else ""
        )
        bar.note(f"training {len(cells)} run(s), {self.lanes} at a time{gpu}")

    def shared_device(self, group: list[TrainCell]) -> tuple[str, int] | None:
        """cuda runs share the one visible GPU: [training].gpu_workers of them at once (default 1)."""
        return ("cuda", self.plan.gpu_workers) if group[0].device == "cuda" else None

    def requests(self, group: list[TrainCell], group_index: int) -> list[Request]:
        """One request per run; the worker stops itself at max_run_s, long before the timeout."""
        return [Request(0, c, request_of(c, self.verbose), 2 * dict(c.recipe)["max_run_s"] + 600, c.label())
                for c in group]  # fmt: skip

    def records(self, cell: TrainCell, replies: list[Reply], run_id: str) -> list[Record]:
        """The run's accuracy Record."""
        return [make_record(cell, self.suite.name, run_id, replies[0])]

    def skip_records(self, cell: TrainCell, reason: str, run_id: str) -> list[Record]:
        """A skipped accuracy Record."""
        return [make_record(cell, self.suite.name, run_id, Reply("skipped", reason))]


AGGREGATE_KEYS = ("dataset", "metric", "impl", "widths", "grid_size", "spline_order", "device", "dtype")


def aggregate(frame):
    """Mean and sample standard deviation over seeds of every (dataset, implementation, shape) of `ok` records.

    Takes kanbench.results.load(run) (or the report's combined frame). Statistics are over the seeds whose value is
    finite (kanbench.results.seeds); `seeds` counts every ok record, `diverged` those whose training loss became
    non-finite. The std of a single seed is NaN.
    """
    import pandas as pd

    columns = [*AGGREGATE_KEYS, "params", "seeds", "diverged", "final_test_mean", "final_test_std",
               "test_at_best_val_mean", "test_at_best_val_std", "best_val_mean", "best_val_std", "epochs",
               "train_time_s_mean", "epoch_time_s_mean"]  # fmt: skip
    if frame is None or len(frame) == 0 or "metric_final_test" not in frame:
        return pd.DataFrame(columns=columns)
    frame = frame.assign(widths=["x".join(map(str, w)) for w in frame["widths"]])
    rows = []
    for key, g in seeds.models(frame, ("metric_dataset", "metric_metric", *AGGREGATE_KEYS[2:])):
        row = {**dict(zip(AGGREGATE_KEYS, key)), "params": g["params"].iloc[0], "seeds": len(g),
               "diverged": int(g["metric_diverged"].fillna(False).astype(bool).sum()),
               "epochs": int(g["metric_epochs"].max()), "train_time_s_mean": seeds.over(g, "train_time_s").mean,
               "epoch_time_s_mean": seeds.spread(g["metric_train_time_s"] / g["metric_epochs"]).mean}  # fmt: skip
        for name in ("final_test", "test_at_best_val", "best_val"):
            row[f"{name}_mean"], row[f"{name}_std"] = seeds.over(g, name).mean, seeds.over(g, name).std
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def format_table(agg) -> str:
    """The aggregate as a terminal table: accuracies in %, RMSE as is; columns as wide as their longest name."""
    from ..text import table

    if len(agg) == 0:
        return "no ok accuracy records"
    rows = []
    for _, r in agg.iterrows():
        runs = f"{r['seeds']}" + (f" ({r['diverged']} div)" if r["diverged"] else "")
        final = seeds.text(r["final_test_mean"], r["final_test_std"], r["metric"])
        at_best = seeds.text(r["test_at_best_val_mean"], r["test_at_best_val_std"], r["metric"])
        row = [r["dataset"], r["impl"], r["widths"], str(int(r["params"] or 0)), runs, final, at_best]
        rows.append([*row, f"{r['epoch_time_s_mean']:.2f}"])
    header = ["dataset", "impl", "widths", "params", "seeds", "final test", "test@best val", "s/epoch"]
    return table.render(header, rows, align="lllrrllr")
