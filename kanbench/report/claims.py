"""Published figures about KAN implementations (claims.toml beside this file) set beside the cells of our runs that
measure the same thing. The figures are quotations, never our results."""

from __future__ import annotations

import math
import types
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import pandas as pd

from ..analysis import judge
from ..results import seeds
from ..suite import tomllib
from .answer import in_config, process_spread, sample
from .data import timing_rows
from .summary import fmt_ratio, fmt_time

CLAIMS_FILE = Path(__file__).with_name("claims.toml")


@dataclass(frozen=True)
class Timing:
    """A published time of one implementation in one phase ("forward", "backward" or "forward+backward")."""

    impl: str  # our adapter that implements the same layer
    phase: str
    seconds: float
    label: str  # what the source calls it


@dataclass(frozen=True, kw_only=True)
class Claim:
    """What every published claim has: what it is about, at which widths, where it was measured and how."""

    key: str
    subject: str
    widths: tuple[int, ...]
    device: str
    method: str
    source: str
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class TimeClaim(Claim):
    """Published times at one shape on one device, compared as times and as ratios to the first entry."""

    timings: tuple[Timing, ...]
    batch_size: int | None = None  # None: the source does not say
    widths_by_impl: dict[str, tuple[int, ...]] = field(default_factory=dict)  # where the source used other widths


@dataclass(frozen=True, kw_only=True)
class RatioClaim(Claim):
    """A published speed-up of one implementation over another, without absolute times."""

    phase: str
    slower: str
    faster: str
    ratio: float


@dataclass(frozen=True, kw_only=True)
class AccuracyClaim(Claim):
    """A published accuracy of one implementation on a dataset after some epochs."""

    impl: str
    dataset: str
    value: str
    epochs: int | None = None


KINDS: dict[str, type[Claim]] = {"time": TimeClaim, "ratio": RatioClaim, "accuracy": AccuracyClaim}


class ClaimsError(ValueError):
    """A claims file that does not parse, or a claim in it with a missing, unknown or wrong field."""


def load(path: Path = CLAIMS_FILE) -> list[Claim]:
    """The claims of a claims file: its time claims, then its ratio claims, then its accuracy claims."""
    try:
        tables = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ClaimsError(f"{path}: {exc}") from exc
    claims: list[Claim] = []
    for kind, entries in tables.items():
        if kind not in KINDS or not isinstance(entries, list):
            raise ClaimsError(f"{path}: {kind!r} is not a list of claims; allowed: [[{']], [['.join(KINDS)}]]")
        for i, entry in enumerate(entries):
            key = entry.get("key", f"number {i + 1}") if isinstance(entry, dict) else f"number {i + 1}"
            claims.append(_make(KINDS[kind], entry, f"{path}: {kind} claim {key!r}"))
    keys = [c.key for c in claims]
    if len(set(keys)) < len(keys):
        raise ClaimsError(f"{path}: claim {next(k for k in keys if keys.count(k) > 1)!r} is there twice")
    # the page shows the kinds in this order whatever the file's order
    return sorted(claims, key=lambda c: list(KINDS.values()).index(type(c)))


def _make(cls: Any, entry: Any, where: str, prefix: str = "") -> Any:
    """An instance of the dataclass cls from a TOML table, each field checked against its type hint."""
    if not isinstance(entry, dict):
        raise ClaimsError(f"{where}: {f'field {prefix[:-1]!r}' if prefix else 'the claim'} should be a table")
    entry = dict(entry)
    if cls is RatioClaim and "seconds" in entry:  # the source gives both times: the claim is their ratio
        seconds = _value(tuple[float, ...], entry.pop("seconds"), where, "seconds")
        if len(seconds) != 2 or "ratio" in entry:
            raise ClaimsError(f"{where}: field 'seconds' should be [slower's, faster's] and stand without 'ratio'")
        entry["ratio"] = seconds[0] / seconds[1]
    names = [f.name for f in fields(cls)]
    for name in entry:
        if name not in names:
            raise ClaimsError(f"{where}: unknown field {prefix + name!r}; allowed: {', '.join(names)}")
    for f in fields(cls):
        if f.name not in entry and f.default is MISSING and f.default_factory is MISSING:
            raise ClaimsError(f"{where}: missing field {prefix + f.name!r}")
    hints = get_type_hints(cls)
    return cls(**{name: _value(hints[name], value, where, prefix + name) for name, value in entry.items()})


def _value(hint: Any, value: Any, where: str, name: str) -> Any:
    """value as the type hint says (a TOML list becomes a tuple), or a ClaimsError naming the claim and field."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is types.UnionType:  # `int | None`: None is the field left out
        return _value(args[0], value, where, name)
    if origin is tuple and isinstance(value, list):
        return tuple(_value(args[0], v, where, f"{name}[{i}]") for i, v in enumerate(value))
    if origin is dict and isinstance(value, dict):
        return {k: _value(args[1], v, where, f"{name}.{k}") for k, v in value.items()}
    if is_dataclass(hint):
        return _make(hint, value, where, f"{name}.")
    if hint is str and isinstance(value, str):
        return value
    # every number in a claim is a count, a size, a time or a ratio: positive
    number = (int,) if hint is int else (int, float)
    if hint in (int, float) and isinstance(value, number) and not isinstance(value, bool) and value > 0:
        return hint(value)
    wanted = {str: "a string", int: "a positive integer", float: "a positive number", tuple: "a list", dict: "a table"}
    raise ClaimsError(f"{where}: field {name!r} should be {wanted[origin or hint]}, not {value!r}")


@dataclass
class Block:
    """One claim as the page shows it: a title, where and how it was measured, and a table (already text)."""

    title: str
    meta: list[tuple[str, str]]
    header: list[str]
    rows: list[list[str]]
    measured: bool  # whether our runs had a matching cell


def _timing_of(rows: pd.DataFrame, impl: str, phase: str, widths: tuple, batch: int | None, device: str):
    label = "x".join(map(str, widths))
    sel = rows[(rows["impl"] == impl) & (rows["widths_label"] == label) & (rows["device"] == device)]
    if batch is not None:
        sel = sel[sel["batch_size"] == batch]
    if (sel["dtype"] == "float32").any():
        sel = sel[sel["dtype"] == "float32"]  # the published figures are float32
    hits = [sel[sel["phase"] == p] for p in phase.split("+")]  # "forward+backward": the sum of the two
    return None if any(hit.empty for hit in hits) else sum(float(hit["time_median"].iloc[-1]) for hit in hits)


def speedup(reference_s: float, seconds: float) -> str:
    """How much faster (or slower) seconds is than reference_s, e.g. "×3.33 faster"."""
    r = reference_s / seconds
    return f"{fmt_ratio(r)} faster" if r >= 1 else f"{fmt_ratio(1 / r)} slower"


def _devices(rows: pd.DataFrame) -> list[str]:
    return sorted(set(rows["device"]), key=lambda d: (d == "cpu", d))


def _meta(claim: Claim) -> list[tuple[str, str]]:
    meta = [("published on", claim.device), ("their method", claim.method), ("source", claim.source)]
    return meta + ([("note", claim.note)] if claim.note else [])


def _time_block(claim: TimeClaim, rows: pd.DataFrame, devices: list[str]) -> Block:
    table, measured = [], False
    for t in claim.timings:
        widths = claim.widths_by_impl.get(t.impl, claim.widths)
        ref = next(r for r in claim.timings if r.phase == t.phase)
        published = fmt_time(t.seconds)
        if t is not ref:
            published += f" ({speedup(ref.seconds, t.seconds)})"
        ours = []
        for device in devices:
            mine = _timing_of(rows, t.impl, t.phase, widths, claim.batch_size, device)
            if mine is None:
                ours.append("—")
                continue
            measured = True
            text = fmt_time(mine)
            theirs = _timing_of(
                rows, ref.impl, ref.phase, claim.widths_by_impl.get(ref.impl, claim.widths), claim.batch_size, device
            )
            if t is not ref and theirs:
                text += f" ({speedup(theirs, mine)})"
            ours.append(text)
        shape = "x".join(map(str, widths))
        table.append([t.label, f"{t.impl} {shape}", t.phase.replace("+", " + "), published, *ours])
    where = f", batch {claim.batch_size}" if claim.batch_size else ""
    header = ["published as", "ours", "phase", f"published ({claim.device})", *[f"ours ({d})" for d in devices]]
    meta = [*_meta(claim), ("ratios", "each time against the first row of the same phase")]
    return Block(claim.subject + where, meta, header, table, measured)


def _ratio_block(claim: RatioClaim, rows: pd.DataFrame, devices: list[str]) -> Block:
    label = "x".join(map(str, claim.widths))
    sel = rows[(rows["widths_label"] == label) & (rows["phase"] == claim.phase)]
    ours, measured = [], False
    for device in devices:
        parts = []
        for batch in sorted(set(sel.loc[sel["device"] == device, "batch_size"])):
            slow = _timing_of(sel, claim.slower, claim.phase, claim.widths, batch, device)
            fast = _timing_of(sel, claim.faster, claim.phase, claim.widths, batch, device)
            if slow and fast:
                parts.append(f"batch {batch}: {fmt_ratio(slow / fast)}")
        measured = measured or bool(parts)
        ours.append(", ".join(parts) or "—")
    header = ["comparison", f"published ({claim.device})", *[f"ours ({d})" for d in devices]]
    row = [f"{claim.faster} faster than {claim.slower} ({claim.phase})", fmt_ratio(claim.ratio), *ours]
    return Block(claim.subject, _meta(claim), header, [row], measured)


def _bspline_block(rows: pd.DataFrame) -> Block:
    """Is a B-spline KAN inherently slower than FastKAN? The closed-form B-spline against FastKAN, cell by cell."""
    title = "Is a B-spline KAN inherently slower than FastKAN?"
    meta = [
        ("claim", "FastKAN's case rests on Gaussian RBFs being faster than B-splines"),
        ("how we test it", "bspline-fast computes exactly bspline's function (closed-form bases) at the same "
                           "basis count; a ratio near 1 means the gap is the implementation, not the mathematics"),
    ]  # fmt: skip
    header = ["device", "shape", "G", "batch", "phase", "bspline", "bspline-fast", "fastkan", "fast / fastkan",
              "judged"]  # fmt: skip
    table, ratios, gaps = [], [], []
    keys = ["device", "widths_label", "grid_size", "batch_size", "phase", "dtype"]
    for key, g in rows[rows["impl"].isin(["bspline", "bspline-fast", "fastkan"])].groupby(keys, sort=False):
        last = {impl: t.iloc[-1].to_dict() for impl, t in g.groupby("impl")}
        if "bspline-fast" not in last or "fastkan" not in last or key[4] not in ("forward", "train_step"):
            continue
        config = dict(zip(["device", "widths_label", "grid_size", "batch_size", "dtype"], [*key[:4], key[5]]))
        margin = process_spread(in_config(rows, config))  # the unpaired rule's spread, as the answer takes it
        gap = judge.judge(sample(last["fastkan"]), sample(last["bspline-fast"]), margin)  # bspline-fast / fastkan
        ratios.append(gap.ratio)
        gaps.append(gap)
        b = fmt_time(float(last["bspline"]["time_median"])) if "bspline" in last else "—"
        said = ("resolved" if gap.resolved else "not resolved") + f" ({gap.rule})"
        table.append([key[0], key[1], str(key[2]), str(key[3]), key[4], b,
                      fmt_time(float(last["bspline-fast"]["time_median"])),
                      fmt_time(float(last["fastkan"]["time_median"])), fmt_ratio(gap.ratio), said])  # fmt: skip
    if ratios:
        geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        faster = sum(g.resolved and g.ratio > 1 for g in gaps)
        slower = sum(g.resolved and g.ratio < 1 for g in gaps)
        spread = (f"geometric mean x{geo:.2f} over {len(ratios)} cells, from x{min(ratios):.2f} to x{max(ratios):.2f}; "
                  f"FastKAN resolved faster in {faster} of them, bspline-fast in {slower}")  # fmt: skip
        answer = "No" if geo <= 1.2 else "Yes, on these cells"
        meta.insert(0, ("verdict from these runs", f"{answer}: bspline-fast time / FastKAN time, {spread}"))
    return Block(title, meta, header, table, bool(ratios))


def _accuracy_block(claims: list[AccuracyClaim], df: pd.DataFrame) -> Block:
    acc = df[(df["phase"] == "accuracy") & (df["status"] == "ok")]
    table, measured = [], False
    for claim in claims:
        label = "x".join(map(str, claim.widths))
        mine = acc[(acc["impl"] == claim.impl) & (acc["widths_label"] == label)]
        mine = mine[mine["metric_dataset"].astype(str).str.lower() == claim.dataset]
        cells = [f"{seeds.text(o.mean, o.bar, 'test_accuracy')} ({o.n} seed{'s' if o.n != 1 else ''})" if o.n else "—"
                 for o in (seeds.over(mine, "best_val"), seeds.over(mine, "final_test"))]  # fmt: skip
        epochs = sorted({int(e) for e in mine["metric_epochs"].dropna()}) if "metric_epochs" in mine else []
        measured = measured or not mine.empty
        published = claim.value + (f" after {claim.epochs} epochs" if claim.epochs else "")
        source = f"{claim.source}; {claim.method}" + (f"; {claim.note}" if claim.note else "")
        table.append([
            claim.subject, published, claim.device, source, *cells, ", ".join(map(str, epochs)) or "—",
            ", ".join(sorted(set(mine["device"]))) or "—",
        ])  # fmt: skip
    header = ["model", "published", "published on", "source and method", "ours: best validation",
              "ours: final test", "our epochs", "ours on"]  # fmt: skip
    meta = [("ours", "mean ± standard deviation over seeds of the accuracy records of the same implementation, "
             "widths and dataset")]  # fmt: skip
    return Block("Accuracy on MNIST", meta, header, table, measured)


def claim_blocks(df: pd.DataFrame) -> list[Block]:
    """Every published claim beside our matching measurements ("—" where our runs have no matching cell)."""
    rows = timing_rows(df)
    devices = _devices(rows) or ["this machine"]
    claims = load()
    blocks: list[Block] = []
    for claim in claims:
        if isinstance(claim, TimeClaim):
            blocks.append(_time_block(claim, rows, devices))
        elif isinstance(claim, RatioClaim):
            blocks.append(_ratio_block(claim, rows, devices))
    blocks.append(_bspline_block(rows))
    blocks.append(_accuracy_block([c for c in claims if isinstance(c, AccuracyClaim)], df))
    return blocks
