"""The accuracy worker: trains one (implementation, dataset, seed) and evaluates it after every epoch.

Runs inside a worker process of kanbench.measure.pool (serve) or directly (train). Metrics are counted per sample:
accuracy = correct / samples and RMSE = sqrt(sum of squared errors / samples) over the whole split, so a final
partial batch weighs what its samples weigh. A non-finite training loss ends the run as diverged; it is recorded,
not dropped.
"""

from __future__ import annotations

import inspect
import math
import sys
import time
from collections.abc import Callable
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

import implementations

from ..results.record import AccuracyMetrics
from . import datasets
from .reply import Reply
from .worker import model_counts, spec_of

DTYPES = {"float32": torch.float32, "float64": torch.float64}
PROJECTION_STEPS = 10  # training steps timed before projecting the whole run against max_run_s


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: str, batch_size: int) -> float:
    """Accuracy (correct / samples) or RMSE over all samples of a split; rows with non-finite outputs count as wrong."""
    model.eval()
    correct, squared, total = 0, 0.0, 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            out = model(x[start : start + batch_size])
            target = y[start : start + batch_size]
            if task == "classification":
                finite = torch.isfinite(out).all(dim=1)
                correct += int(((out.argmax(dim=1) == target) & finite).sum())
            else:
                squared += float(((out.double() - target.double()) ** 2).sum())
            total += len(target)
    model.train()
    if total == 0:
        return math.nan
    return correct / total if task == "classification" else math.sqrt(squared / total)


def loss_of(out: torch.Tensor, target: torch.Tensor, task: str) -> torch.Tensor:
    """Mean cross-entropy for classification, mean squared error for regression."""
    return F.cross_entropy(out, target) if task == "classification" else F.mse_loss(out, target)


def make_optimizer(params, recipe: dict) -> torch.optim.Optimizer:
    """The optimizer the recipe names (validated by kanbench.run.accuracy)."""
    name, lr, wd = recipe["optimizer"], recipe["lr"], recipe["weight_decay"]
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd, momentum=recipe["momentum"])
    if name == "lbfgs":
        return torch.optim.LBFGS(params, lr=lr, history_size=10, line_search_fn="strong_wolfe")
    raise ValueError(f"unknown optimizer {name!r}")


def build_model(impl: str, widths: list[int], grid_size: int, spline_order: int, options: dict, seed: int):
    """The adapter's model initialised from seed; builders that take their own `seed` (pykan) get it too."""
    adapter = implementations.get(impl)
    torch.manual_seed(seed)
    options = dict(options)
    builder = cast("Callable[..., Any]", adapter.builder)  # Adapter.__post_init__ made a "module:function" callable
    if "seed" in inspect.signature(builder).parameters and "seed" not in options:
        options["seed"] = seed  # pykan reseeds from its own argument, which would otherwise be 0 for every seed
    return adapter.build(widths, grid_size, spline_order, **options)


_loaded: dict[str, datasets.Dataset] = {}


def dataset_for(spec: dict) -> datasets.Dataset:
    """The dataset of a request, kept while consecutive requests use the same one."""
    key = repr(sorted(spec.items()))
    if key not in _loaded:
        _loaded.clear()  # one dataset at a time bounds the worker's memory
        _loaded[key] = datasets.load_spec(spec)
    return _loaded[key]


def tensors(split: datasets.Split, spec: dict, task: str, device, dtype, limit: int | None):
    """A split as tensors on device, normalized as (x - mean) / std, cut to its first `limit` samples."""
    if limit is not None:
        split = split.head(limit)
    x = torch.from_numpy(split.x).to(dtype)
    if spec.get("normalize"):
        mean, std = spec["normalize"]
        x = (x - mean) / std
    y = torch.from_numpy(split.y)
    y = y.long() if task == "classification" else y.to(dtype)
    return x.to(device), y.to(device)


def _projection(model, start, steps, steps_per_epoch, epochs, val, task, eval_batch, n_eval, device) -> float:
    """Seconds the whole run will take: the steps so far scaled to every epoch, plus one timed evaluation batch
    scaled to the validation and test sets of every epoch."""
    _sync(device)
    per_step = (time.perf_counter() - start) / steps
    x, y = val[0][:eval_batch], val[1][:eval_batch]
    begin = time.perf_counter()
    evaluate(model, x, y, task, eval_batch)
    _sync(device)
    per_sample = (time.perf_counter() - begin) / max(len(x), 1)
    return epochs * (per_step * steps_per_epoch + per_sample * n_eval)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train(request: dict, log=None) -> dict:
    """Train one cell as the request describes; returns status, counts and the metrics of docs/results-schema.md."""
    cell, recipe, spec = request["cell"], request["recipe"], request["dataset"]
    device = torch.device("cuda", 0) if cell["device"] == "cuda" else torch.device("cpu")
    dtype = DTYPES[cell["dtype"]]
    data = dataset_for(spec)
    task = data.task
    limit = recipe.get("subset")
    x_tr, y_tr = tensors(data.train, spec, task, device, dtype, limit)
    x_va, y_va = tensors(data.val, spec, task, device, dtype, limit)
    x_te, y_te = tensors(data.test, spec, task, device, dtype, limit)
    seed = cell["seed"]
    model = build_model(spec_of(cell), cell["widths"], cell["grid_size"], cell["spline_order"], cell["options"], seed)
    model = model.to(device=device, dtype=dtype).train()
    result: dict = {"status": "ok", "reason": None, **model_counts(model)}
    optimizer = make_optimizer(model.parameters(), recipe)
    scheduler = (
        torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=recipe["gamma"])
        if recipe["schedule"] == "exponential"
        else None
    )
    shuffle = torch.Generator().manual_seed(seed)
    batch, epochs, n = recipe["batch_size"], recipe["epochs"], len(x_tr)
    steps_per_epoch = math.ceil(n / batch)
    eval_batch = recipe["eval_batch_size"]
    budget = recipe["max_run_s"]
    run_start = time.perf_counter()
    curve: dict[str, list] = {"epoch": [], "train_loss": [], "val": [], "test": [], "epoch_time_s": []}
    diverged, stopped, steps = False, None, 0
    train_time = 0.0
    for epoch in range(1, epochs + 1):
        _sync(device)
        start = time.perf_counter()
        order = torch.randperm(n, generator=shuffle).to(device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        for first in range(0, n, batch):
            index = order[first : first + batch]
            xb, yb = x_tr[index], y_tr[index]

            def closure(xb=xb, yb=yb):
                optimizer.zero_grad(set_to_none=True)
                loss = loss_of(model(xb), yb, task)
                loss.backward()
                return loss

            if recipe["optimizer"] == "lbfgs":
                # LBFGS.step returns the closure's first loss, a Tensor (Optimizer.step's stub says float | None)
                loss = cast(torch.Tensor, optimizer.step(closure))
            else:
                loss = closure()
                optimizer.step()
            loss_sum += loss.detach().double() * len(index)  # per-sample mean over the epoch, not a mean of batches
            steps += 1
            if steps == PROJECTION_STEPS and epoch == 1:
                began = time.perf_counter()
                projected = _projection(model, start, steps, steps_per_epoch, epochs, (x_va, y_va), task, eval_batch,
                                        len(x_va) + len(x_te), device)  # fmt: skip
                if projected > budget:
                    result.update(status="skipped", reason=(
                        f"projected run time {projected:.0f} s (from {PROJECTION_STEPS} timed steps and one evaluation "
                        f"batch) exceeds [training].max_run_s = {budget:g} s"))  # fmt: skip
                    return result
                start += time.perf_counter() - began  # the projection's evaluation is not training time
        _sync(device)
        elapsed = time.perf_counter() - start
        train_time += elapsed
        train_loss = float(loss_sum) / n
        if scheduler is not None:
            scheduler.step()
        diverged = not math.isfinite(train_loss)
        val = evaluate(model, x_va, y_va, task, eval_batch)
        test = evaluate(model, x_te, y_te, task, eval_batch)
        for key, value in zip(curve, (epoch, train_loss, val, test, elapsed)):
            curve[key].append(value)
        if log:
            log(f"epoch {epoch}/{epochs} loss {train_loss:.4g} val {val:.4g} test {test:.4g} ({elapsed:.1f} s)")
        if diverged:
            break
        wall = time.perf_counter() - run_start
        if wall > budget and epoch < epochs:
            stopped = f"stopped after {epoch} of {epochs} epochs: the run took {wall:.0f} s > max_run_s = {budget:g} s"
            break
    higher_is_better = task == "classification"
    finite = [i for i, v in enumerate(curve["val"]) if math.isfinite(v)]
    best = (max if higher_is_better else min)(finite, key=lambda i: curve["val"][i]) if finite else None
    result["metrics"] = AccuracyMetrics(
        dataset=spec["name"], seed=seed,
        metric="test_accuracy" if task == "classification" else "test_rmse",
        final_test=curve["test"][-1],
        best_val=curve["val"][best] if best is not None else math.nan,
        test_at_best_val=curve["test"][best] if best is not None else math.nan,
        diverged=diverged, epochs=len(curve["epoch"]), train_time_s=train_time, curve=curve,
    ).to_dict()  # fmt: skip
    if stopped:
        result.update(status="error", reason=stopped)
    return result


def handle(request: dict) -> Reply:
    """Train one run; a dataset problem is an error reply that says what is wrong with the data."""
    log = None
    if request.get("verbose"):
        label = request.get("label", "")

        def log(text: str) -> None:
            sys.stderr.write(f"  {label}: {text}\n")
            sys.stderr.flush()

    try:
        return Reply.from_dict(train(request, log))
    except datasets.DatasetError as exc:
        return Reply("error", str(exc))
