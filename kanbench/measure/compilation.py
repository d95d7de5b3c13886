"""torch.compile for one cell: a fresh compiler state, the eager module beside it, and proof that it compiled.

A worker measures many cells in one process, and dynamo's state is per process. Two things then make a later
compiled cell run eager without a word: a code object that ran under a non-infra TorchDispatchMode (FlopCounterMode)
is skipped from then on, and a code object recompiled recompile_limit times (8; every KAN shares LayerStack.forward)
falls back to eager. So every compiled cell starts from torch._dynamo.reset(), anything that counts or inspects ops
runs on the uncompiled module (eager()), hitting the limit raises, and the cell records what dynamo compiled for it
(stats()); a cell that compiled no graph is an error (fell_back()).
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn


def compile_model(model: nn.Module) -> nn.Module:
    """torch.compile(model) from a fresh dynamo state, with the recompile limit an error instead of eager code."""
    torch._dynamo.reset()
    torch._dynamo.config.fail_on_recompile_limit_hit = True
    return cast(nn.Module, torch.compile(model))  # an OptimizedModule


def eager(model: nn.Module) -> nn.Module:
    """The uncompiled module of a compiled one (the same parameters), else the model itself."""
    return getattr(model, "_orig_mod", model)


def snapshot() -> dict[str, int]:
    """Dynamo's cumulative counts now (torch._dynamo.reset leaves them), for stats(since=...)."""
    from torch._dynamo.utils import counters

    return {
        "graphs": counters["stats"]["unique_graphs"],
        "frames": counters["frames"]["ok"],
        "graph_breaks": sum(counters["graph_break"].values()),
    }


def stats(since: dict[str, int]) -> dict[str, Any]:
    """What dynamo compiled since the snapshot, taken before compile_model: graphs, frames, graph breaks, seconds."""
    from torch._dynamo.utils import compilation_time_metrics

    now = snapshot()
    out: dict[str, Any] = {key: now[key] - since[key] for key in now}
    # dynamo's own timer around each frame's compilation (tracing, AOT autograd, Inductor); compile_model's reset
    # cleared it, so its total is this cell's
    out["compile_s"] = sum(compilation_time_metrics.get("_compile.compile_inner", []))
    return out


def fell_back(compiled: dict[str, Any]) -> str | None:
    """Why a compiled cell's numbers would be eager code's (no graph compiled), or None if it compiled."""
    if compiled["graphs"] > 0:
        return None
    return (
        "torch.compile compiled no graph for this cell, so it ran eager code "
        f"({compiled['frames']} frames compiled, {compiled['graph_breaks']} graph breaks); "
        "see TORCH_LOGS=graph_breaks,recompiles for why"
    )
