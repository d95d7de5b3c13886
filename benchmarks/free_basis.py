"""How fast could any B-spline basis make `bspline`? An oracle with a free basis, timed beside the real ones.

    python benchmarks/free_basis.py [--out DIR]

`free-basis` is bspline-fast whose basis costs nothing: each layer returns the basis it computed on its first call
(the harness feeds the same x every call, so the outputs stay right) and a zero input gradient. Everything else,
SiLU branch, scaler product C * s, matmuls, autograd and AdamW, is bspline-fast's own. So bspline / free-basis is the
largest speed-up over `bspline` that a faster basis evaluation can buy in eager PyTorch with this parametrisation;
issue 8's 3x forward and 2x train-step targets are out of reach wherever it is below them. Not an implementation:
never use it for anything but this bound.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import run_suite_text  # noqa: E402
from implementations import Adapter, bspline_fast  # noqa: E402
from implementations.common import LayerStack, check_widths, edges  # noqa: E402

SUITE = """
[suite]
name = "free-basis"
kind = "speed"
implementations = ["bspline", "bspline-fast", "benchmarks.free_basis:adapter", "inkan", "fastkan"]
phases = ["forward", "backward", "train_step"]

[[axes]]
widths = [[100, 100]]
grid_size = [5]
batch_size = [8]

[[axes]]
widths = [[784, 64, 10]]
grid_size = [5]
batch_size = [64]

[timing]
warmup = 5
min_time = 0.02
values = 7
processes = 2
threads = 1
"""


class FreeBasisLayer(bspline_fast.BSplineFastKANLayer):
    """bspline-fast with the basis of its first call replayed (see the module docstring)."""

    def basis_rows(self, x: torch.Tensor) -> torch.Tensor:
        cached = getattr(self, "_cached", None)
        if cached is None or cached.shape[::2] != x.shape or cached.dtype != x.dtype:
            self._cached = cached = super().basis_rows(x)
        return cached

    def basis_grad(self, grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def build(widths: Sequence[int], grid_size: int = 5, spline_order: int = 3, **options) -> LayerStack:
    """The oracle model: FreeBasisLayer per pair of widths."""
    widths = check_widths(widths)
    return LayerStack([FreeBasisLayer(i, o, grid_size, spline_order, **options) for i, o in edges(widths)])


adapter = Adapter(
    "free-basis", "bspline", build, bspline_fast.param_count, bspline_fast.flop_breakdown,
    "bspline-fast with a free basis: the bound on what a faster basis can buy (benchmarks/free_basis.py)",
)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="run directory (default: a temporary one)")
    args = parser.parse_args()
    from kanbench import results

    with tempfile.TemporaryDirectory() as tmp:
        out = run_suite_text(SUITE, "free-basis", tmp, args.out)
        df = results.load(out)
    df = df[df["status"] == "ok"].replace({"impl": {"benchmarks.free_basis:adapter": "free-basis"}})
    times = df.set_index(["widths_label", "phase", "impl"])["time_median"]
    print(f"{'shape':14s} {'phase':11s} {'bspline':>9s} {'fast':>9s} {'free':>9s} {'inkan':>9s} {'fastkan':>9s}"
          f"  {'bspline/fast':>12s} {'bound':>6s}")  # fmt: skip
    for (shape, phase), g in times.groupby(level=[0, 1], sort=False):
        t = g.droplevel([0, 1])
        cols = [f"{t.get(name, float('nan')) * 1e6:8.0f}u" for name in ("bspline", "bspline-fast", "free-basis",
                                                                          "inkan", "fastkan")]  # fmt: skip
        print(f"{shape:14s} {phase:11s} {' '.join(cols)}  {t['bspline'] / t['bspline-fast']:11.2f}x "
              f"{t['bspline'] / t['free-basis']:5.2f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
