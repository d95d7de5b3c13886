"""Synthetic run directories for the report's tests: plausible shapes of data, clearly marked as not measured."""

from __future__ import annotations

import hashlib
import json
import math
import random
from pathlib import Path

from kanbench import results
from kanbench.results.record import Record, TimeStats

FAMILIES = {
    "bspline": "bspline", "fastkan": "rbf", "fastkan-noln": "rbf", "rswaf": "rswaf", "pykan": "bspline-original",
    "mlp": "mlp", "mlp-iso": "mlp",
}  # fmt: skip
SPEED_PHASES = ("forward", "forward_inference", "backward", "train_step")
PHASE_COST = {"forward": 1.0, "forward_inference": 0.8, "backward": 1.9, "train_step": 3.3}
# Seconds per FLOP and fixed overhead per call of each implementation: made-up constants, not measurements.
RATE = {"bspline": 4e-11, "fastkan": 2e-11, "fastkan-noln": 1.7e-11, "rswaf": 1.9e-11, "pykan": 9e-11, "mlp": 1e-11,
        "mlp-iso": 1e-11}  # fmt: skip
OVERHEAD = {"bspline": 60e-6, "fastkan": 30e-6, "fastkan-noln": 22e-6, "rswaf": 28e-6, "pykan": 400e-6, "mlp": 8e-6,
            "mlp-iso": 8e-6}  # fmt: skip


def num_basis(impl: str, grid: int, order: int) -> int:
    return 0 if FAMILIES.get(impl) == "mlp" else grid + order


def params(impl: str, widths: list[int], grid: int, order: int) -> int:
    pairs = list(zip(widths[:-1], widths[1:]))
    if impl == "mlp":
        return sum(i * o + o for i, o in pairs)
    if impl == "mlp-iso":
        return params("bspline", widths, grid, order)
    per_edge = grid + order + (2 if impl in ("bspline", "pykan") else 1)
    return sum(i * o * per_edge + 2 * i for i, o in pairs)


def flops(impl: str, widths: list[int], grid: int, order: int, batch: int) -> int:
    edges = sum(i * o for i, o in zip(widths[:-1], widths[1:]))
    scale = 3 if impl == "mlp-iso" else 1
    return 2 * batch * edges * (num_basis(impl, grid, order) + 1) * scale


def config_hash(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def environment(name: str) -> dict:
    return {
        "synthetic": True, "date_utc": "2026-01-02T03:04:05+00:00", "kanbench_version": "0.1.0",
        "git_commit": "0123456789abcdef0123456789abcdef01234567", "python": "3.11.7", "os": "Linux-synthetic",
        "hostname": f"synthetic-{name}", "cpu_model": "Synthetic CPU @ 2.0GHz", "cpu_count": 2, "cpu_affinity": 2,
        "torch": "2.13.0+cpu", "torch_threads": 2, "cuda": {"available": False},
    }  # fmt: skip


def _times(rng: random.Random, median: float, n_proc: int, n_val: int, spread: float) -> TimeStats:
    per_process = [[median * math.exp(rng.gauss(0, spread)) for _ in range(n_val)] for _ in range(n_proc)]
    return TimeStats.from_values(per_process, loops=max(1, int(0.01 / median)))


def write_run(
    root: Path,
    name: str = "20260102-030405-synthetic",
    *,
    impls=("bspline", "fastkan", "fastkan-noln", "rswaf", "pykan", "mlp", "mlp-iso"),
    widths=([100, 100], [784, 64, 10]),
    grids=(5,),
    batches=(8, 64),
    devices=("cpu", "cuda:0"),
    phases=SPEED_PHASES,
    seed: int = 0,
    slowdown: dict | None = None,
    accuracy: bool = True,
    profile: bool = True,
    values: int = 5,
    processes: int = 2,
    machine: dict | None = None,
    suite: str = "synthetic",
    evil: str | None = None,
) -> Path:
    """A run directory of made-up records over the given axes; `slowdown` {impl: factor} makes a candidate run."""
    rng = random.Random(seed)
    run = root / name
    run.mkdir(parents=True)
    env = environment(name)
    if machine:
        env["machine"] = machine
    results.write_environment(run, env)
    order = 3

    def record(impl, phase, device, w, g, b, **kw) -> Record:
        key = {"impl": impl, "widths": w, "grid_size": g, "spline_order": order, "batch_size": b, "device": device,
               "dtype": "float32", "options": {}}  # fmt: skip
        base = dict(
            run_id=name, suite=suite, impl=impl, family=FAMILIES.get(impl, "custom"), phase=phase, device=device,
            dtype="float32", batch_size=b, widths=list(w), grid_size=g, spline_order=order,
            num_basis=num_basis(impl, g, order) if impl in FAMILIES else g + order,
            params=params(impl, w, g, order) if impl in FAMILIES else 1000, params_total=None, status="ok",
            reason=None, time_s=None, peak_mem_bytes=None, flops=None, metrics=None, config_hash=config_hash(key),
        )  # fmt: skip
        base["params_total"] = base["params"]
        base.update(kw)
        return Record(**base)

    for device in devices:
        for w in widths:
            for g in grids:
                for b in batches:
                    for impl in impls:
                        for phase in phases:
                            if device.startswith("cuda"):
                                results.append(run, record(impl, phase, device, w, g, b, status="skipped",
                                                           reason="CUDA is not available on this machine"))  # fmt: skip
                                continue
                            if impl == "pykan" and b > 64:
                                results.append(run, record(impl, phase, device, w, g, b, status="skipped",
                                                           reason="pykan: over the suite's time limit"))  # fmt: skip
                                continue
                            if evil and impl == "rswaf" and phase == "backward" and b == batches[0]:
                                results.append(run, record(impl, phase, device, w, g, b, status="error",
                                                           reason=f"RuntimeError: {evil}"))  # fmt: skip
                                continue
                            f = flops(impl, w, g, order, b) if impl in FAMILIES else 10**6
                            median = (OVERHEAD.get(impl, 5e-5) + RATE.get(impl, 2e-11) * f) * PHASE_COST[phase]
                            median *= (slowdown or {}).get(impl, 1.0)
                            spread = 0.3 if rng.random() < 0.05 else 0.02  # a few noisy cells
                            t = _times(rng, median, processes, values, spread)
                            ph_flops = f * (3 if phase in ("backward", "train_step") else 1)
                            mem = int(4 * b * sum(w) * (num_basis(impl, g, order) + 2) * PHASE_COST[phase])
                            results.append(run, record(impl, phase, device, w, g, b, time_s=t.__dict__,
                                                       peak_mem_bytes=mem, flops=ph_flops,
                                                       flop_per_s=ph_flops / t.median))  # fmt: skip
    if accuracy:
        for impl in [i for i in ("bspline", "fastkan", "rswaf", "mlp") if i in impls]:
            for s in range(3):
                final = {"bspline": 0.972, "fastkan": 0.975, "rswaf": 0.970, "mlp": 0.978}[impl] + rng.gauss(0, 0.001)
                epochs = list(range(1, 6))
                test = [final - 0.05 / e + rng.gauss(0, 0.001) for e in epochs]
                test[-1] = final
                metrics = {
                    "dataset": "mnist", "seed": s, "metric": "test_accuracy", "final_test": final,
                    "best_val": max(test) + 0.001, "test_at_best_val": final, "diverged": impl == "rswaf" and s == 2,
                    "epochs": 5,
                    "train_time_s": 5 * OVERHEAD[impl] * 1e5 * (1 + rng.random() * 0.1),
                    "curve": {"epoch": epochs, "train_loss": [1 / e for e in epochs], "val": test, "test": test,
                              "epoch_time_s": [OVERHEAD[impl] * 1e5] * 5},
                }  # fmt: skip
                key_extra = {"dataset": "mnist", "seed": s}
                rec = record(impl, "accuracy", "cpu", [784, 64, 10], 5, 64, metrics=metrics)
                rec.config_hash = config_hash({"h": rec.config_hash, **key_extra})
                results.append(run, rec)
    if profile:
        for impl in [i for i in impls if i in FAMILIES and i != "pykan"]:
            shares = {"matmul": 0.5, "elementwise": 0.3, "reduction": 0.1, "memory": 0.05}
            if FAMILIES[impl] == "mlp":
                shares = {"matmul": 0.8, "elementwise": 0.15, "memory": 0.03}
            shares["uncategorized"] = 1 - sum(shares.values())
            for phase in ("forward", "backward"):
                cats = {k: {"seconds": v * 1e-4, "share": v} for k, v in shares.items()}
                metrics = {"categories": cats, "total_self_s": 1e-4, "ops_per_call": 40,
                           "coverage": 1 - shares["uncategorized"], "kernels_per_call": None,
                           "trace_dir": f"traces/{impl}/{phase}"}  # fmt: skip
                rec = record(impl, "profile", "cpu", [784, 64, 10], 5, 64, metrics=metrics)
                rec.profiled_phase = phase
                results.append(run, rec)
    return run


def count_instructions(run: Path) -> Path:
    """The run rewritten as the instruction clock writes it: speed records keep counts in `instructions` (a
    made-up 1e9 per second of their time), time_s and flop_per_s null; peak memory and FLOPs stay."""
    lines = (run / results.RESULTS).read_text().splitlines()
    (run / results.RESULTS).unlink()
    for line in lines:
        data = json.loads(line)
        if data["time_s"] is not None:
            counts = {k: _counted(k, v) for k, v in data["time_s"].items()}
            data.update(unit="instructions", instructions=counts, time_s=None, flop_per_s=None)
        results.append(run, Record.from_dict(data))
    environment = json.loads((run / results.ENVIRONMENT).read_text())
    environment["run"] = {"timing": {"clock": "instructions"}}
    results.write_environment(run, environment)
    return run


def _counted(key: str, value):
    if key in ("n", "loops"):
        return value
    return [v * 1e9 for v in value] if isinstance(value, list) else value * 1e9
