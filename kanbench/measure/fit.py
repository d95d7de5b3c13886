"""`kanbench fit --widths 784,64,10 --grid-size 5 [--budget 24GiB] [--device cuda] [IMPL...]`: the batch that fits.

For each implementation: the memory of training (model, AdamW state, inputs and two train steps; tensor memory on
the CPU, what the caching allocator reserves on CUDA) measured at a few small batches and fitted as fixed bytes +
bytes per sample; fitted again at a half and three quarters of that prediction, where the slope near the answer is;
and the largest batch whose predicted peak stays within the budget (default on CUDA: the device's free memory; on
the CPU --budget is required). The prediction is then verified by training at that batch; when that peak exceeds
the budget (or runs out of memory) the prediction was wrong: it says so and predicts again from the measured point.
`--bisect` also finds the true largest batch by measuring (slow: it is how the predictions were checked,
docs/methodology.md "The batch that fits"). Exit 0 when every verified batch fits,
1 when one does not fit even at batch 1 or a verification failed, 2 on bad input.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import UsageError
from ..text import escape, table, units

SMALL_BATCHES = (16, 32, 64, 128)  # where bytes per sample are measured: small enough for any budget worth asking
MAX_BATCH = 2**24  # a prediction is capped here (bytes that barely grow with the batch)
VERIFICATIONS = 8  # trainings after the prediction, at most: the prediction, then a search where it was wrong
SLACK = 0.03  # a verified batch using less of the budget than 1 - SLACK was predicted too low
BRACKET = 0.01  # the search stops when the batches measured to fit and not to fit are this close (relative)
REFINE_ROUNDS = 3  # fits near the answer after the small batches' first guess
REFINED = 0.03  # ... until a fit moves the prediction by less than this (relative)
UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
         "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}  # fmt: skip
_BYTES = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([a-zA-Z]*)\s*")


def parse_bytes(text: str, where: str = "--budget") -> int:
    """Bytes of "24GiB", "512 MiB", "1.5GB" or "1000000"; UsageError naming the forms allowed."""
    match = _BYTES.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in UNITS:
        raise UsageError(f"{where} {text!r}: expected a size such as 24GiB, 512MiB, 1.5GB or 1000000 (bytes); units: "
                         f"B, KB, MB, GB, TB (powers of 1000), KiB, MiB, GiB, TiB (powers of 1024)")  # fmt: skip
    value = int(float(match.group(1)) * UNITS[unit])
    if value <= 0:
        raise UsageError(f"{where} {text!r}: must be more than 0 bytes")
    return value


def parse_widths(text: str) -> list[int]:
    """784,64,10 (or 784x64x10) as a list of at least two positive widths."""
    parts = re.split(r"[,x]", text.strip())
    if len(parts) < 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise UsageError(f"--widths {text!r}: expected at least two positive integers, e.g. 784,64,10")
    return [int(p) for p in parts]


@dataclass(frozen=True)
class Line:
    """Peak bytes of training at batch b, fitted as fixed + per_sample * b (least squares)."""

    fixed: float
    per_sample: float

    def at(self, batch: int) -> float:
        """The predicted peak bytes at batch."""
        return self.fixed + self.per_sample * batch

    def largest(self, budget: int) -> int:
        """The largest batch whose predicted peak is within budget (0: not even batch 1; capped at MAX_BATCH)."""
        if self.per_sample <= 0:
            return MAX_BATCH if self.at(1) <= budget else 0
        return max(0, min(MAX_BATCH, math.floor((budget - self.fixed) / self.per_sample)))


def fit_line(points: list[tuple[int, int]]) -> Line:
    """The least-squares line through (batch, peak bytes) points."""
    n = len(points)
    mx = sum(b for b, _ in points) / n
    my = sum(p for _, p in points) / n
    sxx = sum((b - mx) ** 2 for b, _ in points)
    slope = sum((b - mx) * (p - my) for b, p in points) / sxx if sxx else 0.0
    return Line(my - slope * mx, slope)


@dataclass
class Fit:
    """One implementation's answer: the fitted line, the predicted batch and what training at it measured."""

    impl: str
    line: Line | None = None  # the line near the answer (the small batches' where they are near enough)
    small: Line | None = None  # the line of the small batches alone
    predicted: int = 0
    first_prediction: int = 0
    verified_peak: int | None = None  # peak bytes measured at `predicted`
    wrong: list[str] = field(default_factory=list)  # each prediction that did not fit, said so
    true_batch: int | None = None  # --bisect: the largest batch measured to fit
    error: str = ""

    @property
    def fits(self) -> bool:
        """Whether training at the predicted batch was measured within the budget."""
        return not self.error and self.predicted > 0 and self.verified_peak is not None


def out_of_memory(exc: BaseException) -> bool:
    """Whether exc is an allocation that failed (CUDA's OutOfMemoryError, the CPU allocator's RuntimeError)."""
    import torch

    text = str(exc)
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)
    )


def train_peak(impl: str, widths: list[int], grid_size: int, spline_order: int, batch: int, device: str,
               dtype: str) -> int | None:  # fmt: skip
    """Peak bytes of training from nothing: build the model, make the batch, two AdamW train steps; None when it ran
    out of memory. On the CPU tensor memory; on CUDA what the caching allocator reserved (what the free memory pays)."""
    import gc

    import torch

    import implementations

    from . import memory
    from .worker import DTYPES, resolve_device

    adapter = implementations.get(impl)
    where, kind = resolve_device(device), DTYPES[dtype]

    def train() -> None:
        torch.manual_seed(0)
        model = adapter.build(widths, grid_size, spline_order).to(device=where, dtype=kind).train()
        x = torch.rand(batch, widths[0], device=where, dtype=kind) * 2 - 1
        target = torch.randn(batch, widths[-1], device=where, dtype=kind)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        for _ in range(2):  # the second step is the steady state: AdamW's moments exist while activations live
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.mse_loss(model(x), target).backward()
            optimizer.step()

    try:
        if where.type == "cuda":
            return memory.peak_cuda(train, where, reserved=True)
        return memory.peak_bytes(train, where)
    except Exception as exc:
        if not out_of_memory(exc):
            raise
        gc.collect()  # the failed step's tensors, before the next measurement
        if where.type == "cuda":
            torch.cuda.empty_cache()
        return None


Measure = Callable[[int], "int | None"]  # batch -> peak bytes, None: out of memory


def over(peak: int | None, budget: int) -> bool:
    """Whether a measured peak (None: out of memory) exceeds the budget."""
    return peak is None or peak > budget


def predict(measure: Measure, budget: int, say: Callable[[str], None], batches: tuple[int, ...] = SMALL_BATCHES) -> Fit:
    """Fit the line at the small batches, refine it near the answer, and verify by training at the prediction."""
    found = Fit("")
    seen: dict[int, int | None] = {}  # every batch trained at: its peak bytes (None: out of memory)

    def measured(batch: int) -> int | None:
        if batch not in seen:
            seen[batch] = measure(batch)
        return seen[batch]

    points = []
    for i, b in enumerate(batches, start=1):
        say(f"batch {b} ({i}/{len(batches)})")
        peak = measured(b)
        if peak is None:
            found.error = f"batch {b} ran out of memory: the small batches the fit measures do not fit"
            return found
        points.append((b, peak))
    found.small = found.line = fit_line(points)
    predicted = found.line.largest(budget)
    # The small batches' slope need not hold near the answer (docs/methodology.md, "The batch that fits"): fit again
    # at a half and three quarters of the prediction, until the prediction stays where those probes expected it.
    for _ in range(REFINE_ROUNDS):
        half, three_quarters = predicted // 2, predicted * 3 // 4
        if half <= batches[-1]:
            break  # the small batches are near enough
        say(f"refining at batches {half:,} and {three_quarters:,}")
        at_half, at_three_quarters = measured(half), measured(three_quarters)
        if at_half is None or at_three_quarters is None:  # out of memory: the answer is below the probe
            predicted = half if at_half is not None else predicted // 4
            continue
        found.line = fit_line([(half, at_half), (three_quarters, at_three_quarters)])
        before, predicted = predicted, found.line.largest(budget)
        if abs(predicted - before) <= REFINED * before:
            break
    found.predicted = found.first_prediction = predicted
    if predicted == 0:
        return found
    return verify(found, measured, budget, say, seen)


def verify(found: Fit, measure: Measure, budget: int, say: Callable[[str], None], seen: dict[int, int | None]) -> Fit:
    """Train at the prediction. Where it does not fit, or leaves more than SLACK of the budget unused, the prediction
    was wrong: say so, and search on between the largest batch measured to fit and the smallest measured not to (a
    secant through their peaks, Illinois-weighted), at most VERIFICATIONS trainings. The answer is always a batch
    trained at and measured within the budget."""
    first = found.first_prediction
    candidate: int | None = first
    weights = {"lo": 1.0, "hi": 1.0}
    last = ""
    for _ in range(VERIFICATIONS):
        if candidate is None:
            break
        say(f"verifying batch {candidate:,}")
        peak = measure(candidate)
        moved = "hi" if over(peak, budget) else "lo"
        if moved == last:  # Illinois: the end that stayed twice weighs half, so the secant leaves it
            weights["hi" if moved == "lo" else "lo"] /= 2
        else:
            weights = {"lo": 1.0, "hi": 1.0}
        last = moved
        if moved == "lo" and peak is not None and peak >= (1 - SLACK) * budget:
            break
        candidate = _next(seen, budget, weights)
    fitting = [(b, p) for b, p in seen.items() if p is not None and p <= budget]
    if not fitting:
        found.predicted, found.verified_peak = 0, None
        found.error = f"no batch trained at fits the budget (down to batch {min(seen):,})"
        return found
    found.predicted, found.verified_peak = max(fitting)
    at_first = seen.get(first)
    if over(at_first, budget):
        what = "ran out of memory" if at_first is None else f"measured {units.fmt_bytes(at_first)}"
        found.wrong.append(f"batch {first:,} {what} > budget {units.fmt_bytes(budget)}: {found.predicted:,} fits")
    elif found.predicted > first and at_first is not None:
        found.wrong.append(f"batch {first:,} left {units.fmt_bytes(budget - at_first)} of the budget unused: "
                           f"{found.predicted:,} fits too")  # fmt: skip
    return found


def _next(seen: dict[int, int | None], budget: int, weights: dict[str, float]) -> int | None:
    """The next batch to train at, between the largest measured to fit and the smallest measured not to; None when
    the bracket is narrower than BRACKET (or nothing above a fitting batch is known and nothing suggests more)."""
    fitting = [(b, p) for b, p in seen.items() if p is not None and p <= budget]
    if not fitting:  # not even the smallest batch trained at: try half of it
        return min(seen) // 2 or None
    lo = max(fitting)
    above = [(b, p) for b, p in seen.items() if b > lo[0]]
    if not above:  # everything trained at fits: extend the line through the two largest, at most doubling
        below = [(b, p) for b, p in seen.items() if p is not None and b < lo[0]]
        if not below or lo[1] >= (1 - SLACK) * budget:
            return None
        guess = fit_line([max(below), lo]).largest(budget)
        return min(guess, 2 * lo[0]) if guess > lo[0] else None
    hi = min(above)
    if hi[0] - lo[0] <= max(1, BRACKET * lo[0]):
        return None
    if hi[1] is None:  # out of memory: no number to interpolate
        return (lo[0] + hi[0]) // 2
    room = (budget - lo[1]) * weights["lo"]
    excess = (hi[1] - budget) * weights["hi"]
    guess = lo[0] + math.floor((hi[0] - lo[0]) * room / (room + excess)) if room + excess > 0 else lo[0] + 1
    return min(max(guess, lo[0] + 1), hi[0] - 1)


def bisect(
    measure: Measure, budget: int, start: int, say: Callable[[str], None], seen: dict[int, int | None] | None = None
) -> int:
    """The largest batch whose measured peak fits the budget (exactly: the next batch does not), from `start`, or
    from the bracket that the batches in `seen` (already measured) give."""
    lo, hi = 0, None  # lo fits (0: nothing known), hi does not
    fitting = [b for b, p in (seen or {}).items() if not over(p, budget)]
    if fitting:
        lo = max(fitting)
        hi = min((b for b, p in (seen or {}).items() if b > lo), default=None)
    b = max(1, start) if hi is None or not lo else lo
    while hi is None or lo == 0:  # grow or shrink by 1.25 until a batch that fits and one that does not are known
        say(f"bisecting: batch {b:,}")
        if not over(measure(b), budget):
            lo = b
            if hi is not None:
                break
            b = min(MAX_BATCH, math.ceil(b * 1.25) + 1)
            if lo == MAX_BATCH:
                return lo
        else:
            hi = b
            if b == 1:
                return 0
            b = max(1, math.floor(b / 1.25))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        say(f"bisecting: batch {mid:,} in [{lo:,}, {hi:,})")
        if not over(measure(mid), budget):
            lo = mid
        else:
            hi = mid
    return lo


def default_budget(device: str) -> int:
    """The device's free memory (CUDA); the CPU has no default."""
    if device == "cpu":
        raise UsageError("--budget is required on the CPU (e.g. --budget 8GiB): the memory you give training")
    import torch

    from .worker import resolve_device

    if not torch.cuda.is_available():
        raise UsageError(f"--device {device}: CUDA is not available on this machine")
    free, _ = torch.cuda.mem_get_info(resolve_device(device))
    return int(free)


class Progress:
    """One progress line on standard error, rewritten in place on a terminal."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()

    def __call__(self, text: str) -> None:
        line = f"fit: {escape.terminal(text)}"
        if self.tty:
            self.stream.write("\r\x1b[2K" + line[:200])
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def line(self, text: str) -> None:
        """A line that stays (on a terminal, the progress line is cleared first)."""
        if self.tty:
            self.stream.write("\r\x1b[2K")
        self.stream.write(f"fit: {escape.terminal(text)}\n")
        self.stream.flush()

    def done(self) -> None:
        """End the line."""
        if self.tty:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()


def summary(found: Fit) -> str:
    """One implementation's answer in a line."""
    if found.error and not found.predicted:
        return f"{found.impl}: {found.error}"
    peak = f"{units.fmt_bytes(found.verified_peak)} measured" if found.verified_peak is not None else "not verified"
    text = f"{found.impl}: largest batch {found.predicted:,} ({peak}, first prediction {found.first_prediction:,})"
    return text + (f"; bisected {found.true_batch:,}" if found.true_batch is not None else "")


def render(fits: list[Fit], budget: int, bisected: bool) -> str:
    """The answer as an aligned table, one row per implementation."""
    header = ["impl", "fixed", "per sample", "per sample there", "largest batch", "peak there", "of budget"]
    header += ["bisected", "first off", "answer off"] if bisected else []
    rows = []
    for f in fits:
        if f.line is None or f.small is None:
            rows.append([f.impl, "error"] + [""] * (len(header) - 2))
            continue
        peak = f.verified_peak
        largest = f"{f.predicted:,}" + (" (capped)" if f.predicted == MAX_BATCH else "")
        if f.wrong:
            largest += f" (first {f.first_prediction:,}: wrong)"
        row = [f.impl, units.fmt_bytes(f.small.fixed), units.fmt_bytes(f.small.per_sample),
               units.fmt_bytes(f.line.per_sample), largest if f.predicted else "none (batch 1 does not fit)",
               units.fmt_bytes(peak), f"{peak / budget:.0%}" if peak is not None else units.MISSING]  # fmt: skip
        if bisected:
            true = f.true_batch
            row += [f"{true:,}" if true is not None else units.MISSING,
                    f"{(f.first_prediction - true) / true:+.1%}" if true else units.MISSING,
                    f"{(f.predicted - true) / true:+.1%}" if true else units.MISSING]  # fmt: skip
        rows.append(row)
    return table.render(header, rows, align="lr")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of `kanbench fit`."""
    parser.add_argument("impls", nargs="*", metavar="IMPL", help="implementations (default: every available one)")
    parser.add_argument("--widths", required=True, help="the network's widths, e.g. 784,64,10")
    parser.add_argument("--grid-size", type=int, default=5, help="G (default 5)")
    parser.add_argument("--spline-order", type=int, default=3, help="k (default 3)")
    parser.add_argument("--budget", help="memory for training, e.g. 24GiB (default on CUDA: the device's free memory)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64", "bfloat16", "float16"))
    parser.add_argument("--bisect", action="store_true", help="also find the true largest batch by measuring (slow)")


def command(args: argparse.Namespace) -> int:
    """Measure, predict and verify the largest batch of each implementation."""
    import implementations

    widths = parse_widths(args.widths)
    if args.grid_size < 1 or args.spline_order < 0:
        raise UsageError(f"--grid-size must be >= 1 and --spline-order >= 0, got {args.grid_size}, {args.spline_order}")
    if args.device != "cpu" and not re.fullmatch(r"cuda(:\d+)?", args.device):
        raise UsageError(f"--device {args.device!r}: allowed: cpu, cuda, cuda:N")
    budget = parse_bytes(args.budget) if args.budget else default_budget(args.device)
    impls = args.impls or [n for n in implementations.names() if implementations.get(n).available()[0]]
    for name in impls:
        try:
            implementations.get(name)
        except (KeyError, TypeError, ImportError) as exc:
            raise UsageError(str(exc.args[0]) if exc.args else str(exc)) from None
    shape = f"widths {'x'.join(map(str, widths))}, G={args.grid_size} k={args.spline_order}"
    print(
        f"budget {units.fmt_bytes(budget)} on {args.device} {args.dtype}; {shape}; first measured at batches "
        f"{', '.join(map(str, SMALL_BATCHES))}"
    )
    progress = Progress()
    fits = []
    for i, name in enumerate(impls, start=1):
        cache: dict[int, int | None] = {}  # --bisect trains at batches the prediction already measured

        def measure(batch: int, name: str = name, cache: dict[int, int | None] = cache) -> int | None:
            if batch not in cache:
                cache[batch] = train_peak(name, widths, args.grid_size, args.spline_order, batch, args.device,
                                          args.dtype)  # fmt: skip
            return cache[batch]

        def say(text: str, name: str = name, i: int = i) -> None:
            progress(f"[{i}/{len(impls)}] {name}: {text}")

        try:
            found = predict(measure, budget, say)
            if args.bisect:
                found.true_batch = bisect(measure, budget, found.predicted or found.first_prediction, say, cache)
        except Exception as exc:  # one implementation that cannot train must not hide the others' answers
            found = Fit("", error=f"{type(exc).__name__}: {exc}")
        found.impl = name
        fits.append(found)
        progress.line(summary(found))  # a long run keeps each answer as it comes
    progress.done()
    print(render(fits, budget, args.bisect))
    for f in fits:
        for line in f.wrong:
            print(f"{escape.terminal(f.impl)}: prediction wrong: {escape.terminal(line)}")
        if f.error:
            print(f"{escape.terminal(f.impl)}: {escape.terminal(f.error)}")
    return 0 if all(f.fits for f in fits) else 1
