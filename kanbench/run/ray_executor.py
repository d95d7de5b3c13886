"""Cell groups as Ray tasks: one whole GPU per cuda group, the suite's threads in CPUs per cpu group, any node.

`kanbench run SUITE --executor ray [--address ADDRESS]`. The run session plans, skips, writes every Record and
shows progress exactly as with the local executor (it stays the only writer); each group of cells becomes one Ray
task that starts the group's worker processes (kanbench.measure.pool) on the node Ray chose, measures the group there as
the local executor would, and returns the replies with the node's fingerprint. A group's processes thus share one
node, so like is compared with like. Ray sets CUDA_VISIBLE_DEVICES for a task that asked for a GPU: "cuda" inside
it is that GPU, held by that task alone. A task whose Ray worker or node died is retried up to MAX_RETRIES times;
after that its cells become error records saying why. Without --address a local Ray starts over this machine's
CPUs and GPUs; a cluster named by --address (or RAY_ADDRESS) gets CONNECT_WAIT_S seconds to answer (Ray itself
retries for about 12 minutes). SIGTERM of the driver unwinds like Ctrl-C (Ray is shut down, environment.json says
the run is incomplete) and exits 143, as a local run killed by it does. Ray is imported only here, and only when
asked for (the `ray` extra).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import Terminated, UsageError
from ..measure.env import ENV_VARS
from ..measure.reply import Reply
from . import progress
from .executor import CONNECT_WAIT_S, Skipped

MAX_RETRIES = 2  # Ray re-runs a task whose worker process or node died this many times
INSTALL_HINT = "pip install 'kanbench[ray]' (or: pip install 'ray[default]')"
NO_GPU = "the Ray cluster has no GPU (ray.cluster_resources() lists none)"
INIT = {"include_dashboard": False, "logging_level": "WARNING", "log_to_driver": False, "configure_logging": True}
RAY_RESOURCE = {"num_cpus": "CPU", "num_gpus": "GPU"}  # a task's ask -> the name in a node's resources


def import_ray():
    """The ray module, or UsageError (exit 2) saying how to install it."""
    try:
        import ray
    except Exception as exc:  # a broken or half-installed ray raises what it likes while importing
        if isinstance(exc, ImportError) and exc.name == "ray":
            raise UsageError(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}") from None
        raise UsageError(f"--executor ray needs Ray, and `import ray` failed ({type(exc).__name__}: {exc}); "
                         f"reinstall it: {INSTALL_HINT}") from None  # fmt: skip
    return ray


class _NoAnswer(Exception):
    """ray.init was still trying to reach the cluster when the wait ran out."""


class _NotMainThreadNote(logging.Filter):
    """Drops Ray's warning that a thread other than the main one set no SIGTERM handler (the executor sets one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "not the main thread" not in record.getMessage()


def _within(wait_s: float, call: Callable[[], None]) -> None:
    """call() in a daemon thread, waited for wait_s seconds: _NoAnswer if still running then (it is left to
    finish or die with the process: Ray's connect cannot be cancelled), else what call raised."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:  # handed to the waiting thread, which raises it
            outcome.append(exc)

    quiet = _NotMainThreadNote()
    logging.getLogger("ray._private.worker").addFilter(quiet)
    try:
        thread = threading.Thread(target=target, name="ray-init", daemon=True)
        thread.start()
        thread.join(wait_s)
    finally:
        logging.getLogger("ray._private.worker").removeFilter(quiet)
    if not outcome:
        raise _NoAnswer()
    if outcome[0] is not None:
        raise outcome[0]


def what_answers(address: str, timeout_s: float = 2.0) -> str:
    """What a TCP connection to address says, for an error message: refused, unreachable, or that it opens."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return f"{address!r} is not host:port"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return "a TCP connection to it opens, so something listens there, but no Ray head (GCS) answered"
    except OSError as exc:
        return f"connecting to it: {exc.strerror or exc}"


def connect(ray: Any, address: str | None, wait_s: float | None = None) -> None:
    """ray.init: a local Ray without an address; a cluster at address (or RAY_ADDRESS) within wait_s seconds
    (default CONNECT_WAIT_S), else UsageError naming the address and the wait (exit 2)."""
    joined = address or os.environ.get("RAY_ADDRESS")
    wait_s = CONNECT_WAIT_S if wait_s is None else wait_s
    try:
        if joined:
            _within(wait_s, lambda: ray.init(address=address, **INIT))
        else:  # a local Ray: its own processes start, nothing remote to wait for
            ray.init(address=None, **INIT)
    except _NoAnswer:
        named = address or f"{joined} (RAY_ADDRESS)"
        raise UsageError(f"--executor ray: no Ray cluster answered at {named} within {wait_s:g} s "
                         f"({what_answers(joined or '')}); start one there (`ray start --head --port PORT`), correct "
                         "--address, or leave it out to start a local Ray") from None  # fmt: skip
    except Exception as exc:
        where = f"at {joined}" if joined else "on this machine"
        raise UsageError(f"--executor ray: cannot start or reach Ray {where}: {exc}") from None


def resources(device: str, threads: int) -> dict[str, float]:
    """What one group's task asks Ray for: a whole GPU for a cuda group (and a CPU to drive it); the suite's
    thread count in CPUs for a cpu group (its worker processes measure one at a time)."""
    if device.startswith("cuda"):
        return {"num_gpus": 1, "num_cpus": 1}
    return {"num_cpus": max(threads, 1)}


def _amounts(ask: dict[str, float]) -> str:
    """{"num_cpus": 4} -> "4 cpus"."""
    return ", ".join(f"{v:g} {k.removeprefix('num_')}" for k, v in ask.items())


def _largest(nodes: list[dict], ask: dict[str, float]) -> str:
    """What the best-stocked live nodes have of what a task asks for, in words."""
    if not nodes:
        return "the cluster shows no live node"
    most = {k: max(n.get(RAY_RESOURCE[k], 0) for n in nodes) for k in ask}
    return f"the largest has {_amounts(most)}"


def _remedy(ask: dict[str, float], nodes: list[dict]) -> str:
    """What would let a group that fits no node run."""
    if "num_gpus" in ask:
        return "add a node with a GPU and a CPU to drive it"
    cpus = int(max((n.get("CPU", 0) for n in nodes), default=0))
    return f"lower [timing].threads (or [training].threads) to at most {cpus}, or add a larger node"


def node_info() -> dict:
    """Who ran a task: Ray's node id, the host, and the GPU Ray gave it (its UUID), if any."""
    import platform

    import ray

    info: dict[str, Any] = {"node_id": ray.get_runtime_context().get_node_id(), "hostname": platform.node()}
    gpus = ray.get_gpu_ids()
    if gpus:
        info["ray_gpu_ids"] = [str(g) for g in gpus]
        info["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
        found = gpu_uuid(info["cuda_visible_devices"])
        info["gpu_uuid" if found.startswith(("GPU-", "MIG-")) else "gpu_uuid_reason"] = found
    return info


def gpu_uuid(visible: str | None) -> str:
    """The UUID of the first GPU in CUDA_VISIBLE_DEVICES, read without initialising CUDA in this process (the
    task's process only starts the workers; a CUDA context here would hold memory on the GPU they measure), or why
    it cannot be told. An index is read as nvml numbers GPUs (PCI bus order), which is CUDA's order only with
    CUDA_DEVICE_ORDER=PCI_BUS_ID; the workers' own environment.json gpu entry names the GPU they used."""
    first = (visible or "").split(",")[0].strip()
    if first.startswith(("GPU-", "MIG-")):
        return first
    if not first.isdigit():
        return f"CUDA_VISIBLE_DEVICES is {visible!r}: no GPU index or UUID to read"
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        return "nvidia-ml-py is not installed (pip install 'kanbench[gpu]'): no UUID for GPU " + first
    try:
        pynvml.nvmlInit()
        uuid = pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(int(first)))
        return uuid.decode() if isinstance(uuid, bytes) else str(uuid)
    except Exception as exc:  # no driver on a node that declared a GPU
        return f"nvml could not read GPU {first}: {type(exc).__name__}: {exc}"


def measure_group(handler: str, processes: int, threads: int, under: str | None, device: str,
                  requests: list[tuple[int, Any, float]]) -> dict:  # fmt: skip
    """Inside a Ray task: the group's worker processes on this node, every request served in order, then stopped.

    A cuda group on a node where torch sees no GPU (a declared GPU that is not there) is skipped, saying so.
    """
    from ..measure import env
    from ..measure.pool import WorkerPool

    node = node_info()
    node["fingerprint"] = env.fingerprint()
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            reason = (f"node {node['hostname']} ({node['node_id'][:12]}) was given a GPU by Ray but "
                      "torch.cuda.is_available() is False there")  # fmt: skip
            return {"skipped": reason, "node": node}
    pool = WorkerPool(processes, threads, handler, under)
    try:
        replies = [pool.measure(slot, payload, timeout) for slot, payload, timeout in requests]
    finally:
        pool.close()
    return {"replies": replies, "node": node, "torch_threads": pool.torch_threads}


class RayExecutor:
    """Groups as Ray tasks over a cluster (or a local Ray): as many at once as the cluster's resources allow."""

    def __init__(self, kind: Any, address: str | None = None) -> None:
        if address is not None and not address.strip():  # an unset variable, as in --address "$RAY_HEAD"
            raise UsageError("--executor ray: --address is empty; give the Ray cluster's host:port (or auto), or "
                             "leave --address out to start a local Ray")  # fmt: skip
        self.ray = import_ray()
        self.kind = kind
        self.bar = progress.Progress(0, 0.0, quiet=True)
        self.torch_threads: int | None = None
        self.nodes: dict[str, dict] = {}  # node id -> fingerprint of every node that ran a group
        self.placed: dict[int, dict] = {}  # id(cell) -> the node (id, host, GPU) that measured it
        self.terminated = False  # SIGTERM arrived: an interrupted wait is Terminated, not Ctrl-C
        self.sigterm_before: Any = None  # the SIGTERM handler to put back on close (None: this set none)
        self.started = not self.ray.is_initialized()
        self._trap_sigterm()  # before init too: joining a cluster may take CONNECT_WAIT_S
        try:
            if self.started:  # workers inherit the driver's environment (CUDA and thread variables) as local ones do
                connect(self.ray, address)
        except BaseException:
            self._untrap_sigterm()  # no executor to close: the caller's handler is back now
            raise
        self._trap_sigterm()  # again: Ray's init sets its own (sys.exit(15)) and its C++ core one that dumps a stack

    def _trap_sigterm(self) -> None:
        """SIGTERM raises Terminated in the main thread (Python's handler replaces Ray's), so the run unwinds."""
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers; a driver run from a thread keeps Ray's
        previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        if self.sigterm_before is None:
            self.sigterm_before = signal.SIG_DFL if previous is None else previous

    def _untrap_sigterm(self) -> None:
        """SIGTERM's handler as it was before this executor."""
        if self.sigterm_before is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.sigterm_before)
            self.sigterm_before = None

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.terminated = True
        raise Terminated("the driver received SIGTERM")

    def attach(self, bar: progress.Progress) -> None:
        """Progress goes here from now on."""
        self.bar = bar

    def cluster(self) -> dict[str, float]:
        """The cluster's resources (CPU, GPU, memory, nodes)."""
        total = self.ray.cluster_resources()
        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        return {"CPU": float(total.get("CPU", 0)), "GPU": float(total.get("GPU", 0)), "nodes": float(len(nodes))}

    def gpus(self) -> str:
        """Whether cuda cells can run: "" where the cluster has a GPU (the driver needs none), else why not."""
        return "" if self.cluster()["GPU"] > 0 else NO_GPU

    def lanes(self, groups: list[list[Any]]) -> int:
        """How many of these groups the cluster runs at once (the ETA divides by it)."""
        have = self.cluster()
        cpu_groups = [g for g in groups if not str(getattr(g[0], "device", "cpu")).startswith("cuda")]
        gpu_groups = len(groups) - len(cpu_groups)
        per_cpu_group = resources("cpu", self.kind.threads)["num_cpus"]
        cpu_slots = min(len(cpu_groups), int(max(have["CPU"] - min(gpu_groups, have["GPU"]), 0) // per_cpu_group))
        return max(1, cpu_slots + min(gpu_groups, int(have["GPU"])))

    def placement(self, groups: list[list[Any]]) -> list[str]:
        """Lines for --dry-run: the cluster, what each group asks for, how many run at once."""
        have = self.cluster()
        lines = [f"Ray cluster: {have['nodes']:.0f} node(s), {have['CPU']:g} CPUs, {have['GPU']:g} GPUs"]
        for group in groups:
            ask = resources(str(group[0].device), self.kind.threads)
            lines.append(f"  group {group[0].label().split(' ', 1)[1]} ({len(group)} cells): one task, {_amounts(ask)}")
        lines.append(f"{len(groups)} group task(s), up to {self.lanes(groups)} at once")
        return lines

    def check_fits(self, groups: list[list[Any]]) -> None:
        """UsageError when a group asks for more than any one live node has: Ray would wait for it forever."""
        nodes = [n.get("Resources", {}) for n in self.ray.nodes() if n.get("Alive")]
        for group in groups:
            ask = resources(str(group[0].device), self.kind.threads)
            if any(all(node.get(RAY_RESOURCE[k], 0) >= v for k, v in ask.items()) for node in nodes):
                continue
            raise UsageError(f"--executor ray: the group {group[0].label()} asks for {_amounts(ask)} on one node, "
                             f"which no live node has ({_largest(nodes, ask)}); {_remedy(ask, nodes)}: Ray would "
                             "wait for such a node forever")  # fmt: skip

    def run(self, groups: list[list[Any]]) -> Iterator[tuple[Any, list[Reply] | Skipped]]:
        """(cell, replies of every worker that measured it, or Skipped), group by group as tasks finish."""
        try:
            yield from self._run(groups)
        except KeyboardInterrupt as exc:  # Ray's wait turns any signal handler's exception into KeyboardInterrupt
            if self.terminated and not isinstance(exc, Terminated):
                raise Terminated("the driver received SIGTERM") from None
            raise

    def _run(self, groups: list[list[Any]]) -> Iterator[tuple[Any, list[Reply] | Skipped]]:
        self.check_fits(groups)  # the session checked before writing; a caller of run() alone is checked here
        # a cluster's nodes do not share the driver's environment: send what the workers read (thread and CUDA
        # variables, an injected slowdown); a local Ray's workers have it already
        passed = {k: os.environ[k] for k in (*ENV_VARS, "KANBENCH_SLOWDOWN") if k in os.environ}
        options = {"runtime_env": {"env_vars": passed}} if passed else {}
        task = self.ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False, **options)(measure_group)
        pending: dict[Any, tuple[list[Any], list]] = {}
        have = self.cluster()
        self.bar.note(f"Ray: {len(groups)} group task(s) over {have['nodes']:.0f} node(s), {have['CPU']:g} CPUs, "
                      f"{have['GPU']:g} GPUs")  # fmt: skip
        self.bar.begin()
        for index, group in enumerate(groups):
            requests = self.kind.requests(group, index)
            wire = [(r.slot, r.payload, r.timeout_s) for r in requests]
            ask = resources(str(group[0].device), self.kind.threads)
            ref = task.options(**ask).remote(self.kind.handler, self.kind.processes, self.kind.threads,
                                             self.kind.under, str(group[0].device), wire)  # fmt: skip
            pending[ref] = (group, requests)
        while pending:
            done, _ = self.ray.wait(list(pending), num_returns=1)
            ref = done[0]
            group, requests = pending.pop(ref)
            yield from self._finished(ref, group, requests)

    def _finished(self, ref: Any, group: list[Any], requests: list) -> Iterator[tuple[Any, list[Reply] | Skipped]]:
        try:
            result = self.ray.get(ref)
        except Exception as exc:  # retries spent: the worker or node kept dying, or the task itself raised
            died = isinstance(exc, (self.ray.exceptions.WorkerCrashedError, self.ray.exceptions.NodeDiedError))
            how = f"its process or node died {MAX_RETRIES + 1} times" if died else "it raised"
            first = str(exc).splitlines()[0] if str(exc) else ""
            reason = f"the Ray task for this group failed ({how}): {type(exc).__name__}: {first}"
            for cell in group:
                yield cell, [Reply("error", reason)]
            return
        node = result["node"]
        fingerprint = node.pop("fingerprint", None)
        self.nodes.setdefault(node["node_id"], fingerprint or {})
        for cell in group:
            self.placed[id(cell)] = node
        if "skipped" in result:
            for cell in group:
                yield cell, Skipped(result["skipped"])
            return
        self.torch_threads = self.torch_threads or result.get("torch_threads")
        replies: dict[int, list[Reply]] = {id(c): [] for c in group}
        for request, reply in zip(requests, result["replies"]):
            for cell, part in request.answers(reply):
                replies[id(cell)].append(part)
        for cell in group:
            yield cell, replies[id(cell)]

    def node_of(self, cell: Any) -> dict | None:
        """The node that measured cell (None before it ran)."""
        return self.placed.get(id(cell))

    def close(self) -> None:
        """Shut down the Ray this executor started (a cluster it joined keeps running); SIGTERM as it was."""
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()
        self._untrap_sigterm()
