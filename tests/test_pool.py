"""The worker pool replaces a worker whose CUDA context a sticky error poisoned, and keeps one after an OOM."""

from __future__ import annotations

import pytest
import torch

from kanbench.measure import phases, pool, worker


def test_a_sticky_cuda_error_replaces_the_worker_and_out_of_memory_does_not():
    workers = pool.WorkerPool(1, 1, "pool_handlers:handle")
    try:
        first = workers.measure(0, "pid", 120)["pid"]
        oom = workers.measure(0, "oom", 120)
        assert oom["status"] == "error" and "out of memory" in oom["reason"] and not oom["restart"]
        assert workers.measure(0, "pid", 120)["pid"] == first
        crash = workers.measure(0, "crash", 120)
        assert crash["status"] == "error" and "illegal memory access" in crash["reason"] and crash["restart"]
        assert workers.measure(0, "pid", 120)["pid"] != first  # a fresh process serves the next cell
    finally:
        workers.close()


@pytest.mark.parametrize(
    ("exc", "sticky"),
    [(RuntimeError("CUDA error: device-side assert triggered"), True),
     (RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED when calling cublasSgemm"), True),
     (torch.OutOfMemoryError("CUDA out of memory"), False),
     (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), False),
     (ValueError("CUDA error in a message of another type"), False)],
)  # fmt: skip
def test_sticky_device_errors(exc, sticky):
    assert pool.sticky_device_error(exc) is sticky


def test_a_phase_with_a_sticky_error_ends_the_cell_and_asks_for_a_restart(monkeypatch):
    real = phases.phase_run

    def failing(name, w, *args):
        if name == "backward":
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real(name, w, *args)

    monkeypatch.setattr(phases, "phase_run", failing)
    cell = {"impl": "mlp", "widths": [4, 3], "grid_size": 3, "spline_order": 3, "batch_size": 2, "device": "cpu",
            "dtype": "float32", "options": {}}  # fmt: skip
    timing = {"warmup": 0, "min_time": 0.0001, "values": 2, "clock": "wall"}
    result = worker.measure_cell(cell, "h", ["forward", "backward", "train_step"], timing, 60.0, False)
    assert result["restart"] is True
    # values are taken in interleaved rounds after every phase is set up: forward was set up, never measured, and
    # cannot be once the process's CUDA context is broken
    unmeasured = {"status": "error", "reason": "not measured: backward hit" + worker.STICKY_NOTE}
    assert result["phases"]["forward"] == unmeasured
    assert "sticky CUDA error" in result["phases"]["backward"]["reason"]
    assert result["phases"]["train_step"] == {"status": "error", "reason": "not measured: backward hit"
                                              + worker.STICKY_NOTE}  # fmt: skip


def test_lanes_share_a_gpu_one_group_at_a_time():
    import io
    import threading
    import time

    from kanbench.run import progress
    from kanbench.run.kind import BaseKind, Request
    from kanbench.run.local_executor import LocalExecutor

    running = {"cuda": 0, "cpu": 0}
    most = {"cuda": 0, "cpu": 0}
    lock = threading.Lock()

    class FakePool:
        def measure(self, slot, payload, timeout):
            with lock:
                running[payload] += 1
                most[payload] = max(most[payload], running[payload])
            time.sleep(0.05)
            with lock:
                running[payload] -= 1
            return {"status": "ok"}

    class Kind(BaseKind):
        lanes = 3

        def requests(self, group, index):
            return [Request(0, c, c, 10.0, c) for c in group]

        def shared_device(self, group):
            return ("cuda", 1) if group[0] == "cuda" else None

    class Executor(LocalExecutor):
        def _pool(self):
            return FakePool()

    groups = [["cuda"], ["cpu"], ["cpu"], ["cuda"], ["cuda"], ["cpu"]]
    bar = progress.Progress(len(groups), 1.0, quiet=True, stream=io.StringIO())
    out = list(Executor(Kind(), bar).run(groups))
    assert len(out) == 6
    assert most["cuda"] == 1 and most["cpu"] >= 2  # the GPU's groups in turn, the CPU's side by side


@pytest.mark.parametrize("lanes", [1, 2])
@pytest.mark.parametrize("cell_by_cell", [True, False])
def test_a_groups_cells_are_handed_on_as_each_is_measured(lanes, cell_by_cell):
    """With cell_by_cell (accuracy: a group trains every implementation of a seed, tens of minutes) the executor
    hands each cell on as soon as it is measured, so a run stopped mid-group keeps its finished cells; without it
    (speed) a group's cells come together, and a broken group is measured again whole, side by side."""
    import io

    from kanbench.run import progress
    from kanbench.run.kind import BaseKind, Request
    from kanbench.run.local_executor import LocalExecutor

    measured: list[str] = []
    seen_before: dict[str, list[str]] = {}

    class FakePool:
        def measure(self, slot, payload, timeout):
            if payload == "killed":
                raise KeyboardInterrupt
            measured.append(payload)
            return {"status": "ok"}

    class Kind(BaseKind):
        def requests(self, group, index):
            return [Request(0, c, c, 10.0, c) for c in group]

    Kind.lanes, Kind.cell_by_cell = lanes, cell_by_cell

    class Executor(LocalExecutor):
        def _pool(self):
            return FakePool()

    bar = progress.Progress(3, 1.0, quiet=True, stream=io.StringIO())
    handed: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        for cell, _replies in Executor(Kind(), bar).run([["a", "b", "killed"]]):
            seen_before[cell] = list(measured)
            handed.append(cell)
    assert handed == (["a", "b"] if cell_by_cell else [])  # before the group's third run was interrupted
    if cell_by_cell and lanes == 1:  # one lane: each as soon as its request was answered (lanes run on meanwhile)
        assert seen_before == {"a": ["a"], "b": ["a", "b"]}


def test_a_stopped_run_starts_no_more_groups():
    """Ctrl-C in the session (or an error writing a record) while lanes measure: no lane asks for another cell
    and the queued groups never start (they used to run to the end, their records unwritten)."""
    import io
    import threading
    import time

    from kanbench.run import progress
    from kanbench.run.kind import BaseKind, Request
    from kanbench.run.local_executor import LocalExecutor

    asked: list[str] = []
    gate = threading.Event()  # every request but the first waits until the run has been stopped

    class FakePool:
        def measure(self, slot, payload, timeout):
            asked.append(payload)
            if payload != "g0c0":
                gate.wait(10)
            return {"status": "ok"}

    class Kind(BaseKind):
        lanes, cell_by_cell = 2, True

        def requests(self, group, index):
            return [Request(0, c, c, 10.0, c) for c in group]

    class Executor(LocalExecutor):
        def _pool(self):
            return FakePool()

    groups = [[f"g{g}c{c}" for c in range(5)] for g in range(20)]
    bar = progress.Progress(100, 1.0, quiet=True, stream=io.StringIO())
    with pytest.raises(KeyboardInterrupt):
        for _cell, _replies in Executor(Kind(), bar).run(groups):
            raise KeyboardInterrupt  # the session stops at the first cell handed on
    gate.set()  # the lanes' requests in flight return now
    time.sleep(0.2)  # and then they would ask for more, if they did not stop
    assert set(asked) <= {"g0c0", "g0c1", "g1c0"}  # the first cell, and what each lane was in when it stopped
