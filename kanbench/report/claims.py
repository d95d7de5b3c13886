"""Published figures about KAN implementations, copied from their sources with the device and method of each,
and the cells of our runs that measure the same thing. The numbers here are quotations, never our results."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from kanbench import judge

from .answer import in_config, process_spread, sample
from .data import timing_rows
from .summary import accuracy_entry, fmt_ratio, fmt_time

FAST_KAN = "https://github.com/ZiyaoLi/fast-kan"
FAST_KAN_PAPER = 'arXiv:2405.06721 (Li, "Kolmogorov-Arnold Networks are Radial Basis Function Networks")'
EFFICIENT_KAN = "https://github.com/Blealtan/efficient-kan"
FASTER_KAN = "https://github.com/AthanasiosDelis/faster-kan"
KAN_BENCHMARKING = "https://github.com/Jerry-Master/KAN-benchmarking"
RELU_KAN = "https://github.com/quiqi/relu_kan"
RELU_KAN_METHOD = (
    "time.time() around 500 full-batch Adam steps on 1000 points (MSE), one run; ours: the median train step, so "
    "the ratio is per step; their KAN is pykan of 2024 with its defaults (symbolic branch on), ours pykan in its "
    "speed configuration"
)


@dataclass(frozen=True)
class Timing:
    """A published time of one implementation in one phase ("forward", "backward" or "forward+backward")."""

    impl: str  # our adapter that implements the same layer
    phase: str
    seconds: float
    label: str  # what the source calls it


@dataclass(frozen=True)
class TimeClaim:
    """Published times at one shape on one device, compared as times and as ratios to the first entry."""

    key: str
    subject: str
    widths: tuple[int, ...]
    batch_size: int | None  # None: the source does not say
    timings: tuple[Timing, ...]
    device: str
    method: str
    source: str
    note: str = ""
    widths_by_impl: dict = field(default_factory=dict)  # impl -> widths where the source used other widths


@dataclass(frozen=True)
class RatioClaim:
    """A published speed-up of one implementation over another, without absolute times."""

    key: str
    subject: str
    widths: tuple[int, ...]
    phase: str
    slower: str
    faster: str
    ratio: float
    device: str
    method: str
    source: str
    note: str = ""


@dataclass(frozen=True)
class AccuracyClaim:
    """A published accuracy of one implementation on a dataset after some epochs."""

    key: str
    subject: str
    impl: str
    widths: tuple[int, ...]
    dataset: str
    value: str
    epochs: int | None
    device: str
    method: str
    source: str
    note: str = ""


CLAIMS = (
    TimeClaim(
        "fastkan-forward",
        "FastKAN vs efficient B-spline KAN, forward, one 100 → 100 layer",
        (100, 100),
        8,
        (
            Timing("bspline", "forward", 742e-6, "efficient-kan KANLinear(100, 100)"),
            Timing("fastkan-noln", "forward", 223e-6, "FastKANLayer(100, 100), LayerNorm off"),
        ),
        "NVIDIA V100",
        "IPython %timeit -r10 -n1000 without CUDA synchronisation (so it times kernel launches, not kernels)",
        f"{FAST_KAN} README; {FAST_KAN_PAPER}",
        'published as "3.33x faster"',
    ),
    TimeClaim(
        "fastkan-forward-backward",
        "FastKAN vs efficient B-spline KAN, forward + backward (.sum().backward()), one 100 → 100 layer",
        (100, 100),
        8,
        (
            Timing("bspline", "forward+backward", 1.16e-3, "efficient-kan KANLinear(100, 100)"),
            Timing("fastkan", "forward+backward", 925e-6, "FastKANLayer(100, 100), LayerNorm on"),
        ),
        "NVIDIA V100",
        "IPython %timeit without CUDA synchronisation",
        f"{FAST_KAN} README",
        "ours is the sum of our forward and backward medians, measured separately with synchronisation",
    ),
    TimeClaim(
        "kan-benchmarking-gpu",
        "KAN-benchmarking, 1000 → 1000 → 1, batch 100, GPU",
        (1000, 1000, 1),
        100,
        (
            Timing("bspline", "forward", 4.76e-3, "efficient-kan"),
            Timing("bspline", "backward", 4.54e-3, "efficient-kan"),
            Timing("fastkan", "forward", 1.44e-3, "fast-kan"),
            Timing("fastkan", "backward", 2.13e-3, "fast-kan"),
            Timing("rswaf", "forward", 1.20e-3, "faster-kan"),
            Timing("rswaf", "backward", 2.01e-3, "faster-kan"),
            Timing("mlp", "forward", 0.49e-3, "MLP, 10x hidden"),
            Timing("mlp", "backward", 1.07e-3, "MLP, 10x hidden"),
            Timing("chebykan", "forward", 1.03e-3, "ChebyKAN, degree 9"),
            Timing("chebykan", "backward", 1.21e-3, "ChebyKAN, degree 9"),
            Timing("fourierkan", "forward", 17.93e-3, "FourierKAN, gridsize 5 (peak 1.96 GB)"),
            Timing("fourierkan", "backward", 14.40e-3, "FourierKAN, gridsize 5"),
            Timing("wavkan", "forward", 28.55e-3, "Wav-KAN (peak 5.28 GB)"),
            Timing("wavkan", "backward", 65.31e-3, "Wav-KAN"),
            Timing("relukan", "forward", 3.22e-3, "ReLU-KAN"),
            Timing("relukan", "backward", 55.12e-3, "ReLU-KAN"),
        ),
        "NVIDIA RTX A5000",
        "one CUDA event pair around one call, mean of 10 repetitions after 1 warm-up; backward is loss.backward()",
        f"{KAN_BENCHMARKING} README and benchmark.py",
        "a second committed table of the same setup differs by up to ~65 %; ChebyKAN degree 9 and FourierKAN "
        "gridsize 5 are 10 bases per edge (suites/zoo-claims.toml builds ours so, and Wav-KAN at its own widths); "
        "Wav-KAN's and ReLU-KAN's settings are not stated",
        {"mlp": (1000, 10000, 1)},
    ),
    TimeClaim(
        "kan-benchmarking-cpu",
        "KAN-benchmarking, 1000 → 1000 → 1, batch 100, CPU",
        (1000, 1000, 1),
        100,
        (
            Timing("bspline", "forward", 31.98e-3, "efficient-kan"),
            Timing("bspline", "backward", 44.49e-3, "efficient-kan"),
            Timing("fastkan", "forward", 9.96e-3, "fast-kan"),
            Timing("fastkan", "backward", 17.06e-3, "fast-kan"),
            Timing("rswaf", "forward", 10.58e-3, "faster-kan"),
            Timing("rswaf", "backward", 15.42e-3, "faster-kan"),
            Timing("mlp", "forward", 9.77e-3, "MLP, 10x hidden"),
            Timing("mlp", "backward", 7.27e-3, "MLP, 10x hidden"),
        ),
        "Intel i9-10900X",
        "mean of 10 repetitions after 1 warm-up",
        f"{KAN_BENCHMARKING} README",
        "a second committed table of the same setup differs by up to ~65 %",
        {"mlp": (1000, 10000, 1)},
    ),
    RatioClaim(
        "fasterkan-forward",
        "FasterKAN (RSWAF) vs FastKAN, forward, 784 → 256 → 10",
        (784, 256, 10),
        "forward",
        "fastkan",
        "rswaf",
        1.5,
        "NVIDIA RTX 3050 Ti",
        "not stated",
        f"{FASTER_KAN} README",
        "measured with 16 bases for FastKAN/FasterKAN (ours: G + k = 8 for every KAN)",
    ),
    RatioClaim(
        "fasterkan-backward",
        "FasterKAN (RSWAF) vs FastKAN, backward, 784 → 256 → 10",
        (784, 256, 10),
        "backward",
        "fastkan",
        "rswaf",
        1.2,
        "NVIDIA RTX 3050 Ti",
        "not stated",
        f"{FASTER_KAN} README",
        "measured with 16 bases for FastKAN/FasterKAN (ours: G + k = 8 for every KAN)",
    ),
    *(
        RatioClaim(
            f"relukan-{f}-{where}",
            f"ReLU-KAN vs the original KAN, training, {f} on {' → '.join(map(str, widths))}, G = {G} ({where.upper()})",
            widths,
            "train_step",
            "pykan",
            "relukan",
            kan / relu,
            f"a {where.upper()}, model not stated",
            RELU_KAN_METHOD,
            f'{RELU_KAN} README (speed table; exp_speed.py), the basis of its "20 times faster"',
            f"published {kan} s vs {relu} s; ours at batch 1000 in suites/zoo-claims.toml",
        )
        for f, widths, G, where, kan, relu in (
            ("f4", (2, 5, 1), 5, "cpu", 11.30, 1.57),
            ("f4", (2, 5, 1), 5, "gpu", 23.12, 1.08),
            ("f5", (4, 4, 2, 1), 10, "cpu", 19.23, 2.26),
            ("f5", (4, 4, 2, 1), 10, "gpu", 34.38, 1.15),
        )
    ),
    AccuracyClaim(
        "fastkan-mnist",
        "FastKAN on MNIST, 784 → 64 → 10",
        "fastkan",
        (784, 64, 10),
        "mnist",
        "about 97.5-97.6 % validation accuracy (plateau)",
        20,
        "not stated",
        "AdamW lr 1e-3 wd 1e-4, ExponentialLR 0.8, batch 64, inputs (x - 0.5)/0.5; read off the repository's curve",
        f"{FAST_KAN} README",
        "a figure of 97.9 % is often quoted; no primary source for it is known",
    ),
    AccuracyClaim(
        "bspline-mnist",
        "efficient B-spline KAN on MNIST, 784 → 64 → 10",
        "bspline",
        (784, 64, 10),
        "mnist",
        "about 97 % validation accuracy",
        10,
        "not stated",
        "the same recipe as FastKAN's",
        f"{EFFICIENT_KAN} README",
    ),
    AccuracyClaim(
        "fasterkan-mnist",
        "FasterKAN (RSWAF) on MNIST, 784 → 256 → 10",
        "rswaf",
        (784, 256, 10),
        "mnist",
        "97.7 % validation accuracy",
        15,
        "not stated",
        "not stated",
        f"{FASTER_KAN} README",
    ),
)


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
    medians = []
    for p in phase.split("+"):
        hit = sel[sel["phase"] == p]
        if hit.empty:
            return None
        medians.append(float(hit["time_median"].iloc[-1]))
    return sum(medians)


def speedup(reference_s: float, seconds: float) -> str:
    """How much faster (or slower) seconds is than reference_s, e.g. "×3.33 faster"."""
    r = reference_s / seconds
    return f"{fmt_ratio(r)} faster" if r >= 1 else f"{fmt_ratio(1 / r)} slower"


def _devices(rows: pd.DataFrame) -> list[str]:
    return sorted(set(rows["device"]), key=lambda d: (d == "cpu", d))


def _meta(device: str, method: str, source: str, note: str) -> list[tuple[str, str]]:
    meta = [("published on", device), ("their method", method), ("source", source)]
    return meta + ([("note", note)] if note else [])


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
    meta = _meta(claim.device, claim.method, claim.source, claim.note)
    meta.append(("ratios", "each time against the first row of the same phase"))
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
    return Block(claim.subject, _meta(claim.device, claim.method, claim.source, claim.note), header, [row], measured)


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
        cells = []
        for column in ("metric_best_val", "metric_final_test"):
            values = [float(v) for v in mine[column].dropna()] if column in mine else []
            entry = accuracy_entry(claim.dataset, "test_accuracy", values) if values else None
            cells.append(f"{entry.text} ({len(values)} seed{'s' if len(values) != 1 else ''})" if entry else "—")
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
    blocks: list[Block] = []
    for claim in CLAIMS:
        if isinstance(claim, TimeClaim):
            blocks.append(_time_block(claim, rows, devices))
        elif isinstance(claim, RatioClaim):
            blocks.append(_ratio_block(claim, rows, devices))
    blocks.append(_bspline_block(rows))
    blocks.append(_accuracy_block([c for c in CLAIMS if isinstance(c, AccuracyClaim)], df))
    return blocks
