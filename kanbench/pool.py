"""Worker processes, each a fresh interpreter, that the parent keeps and replaces when one dies or hangs.

The parent never imports torch for the pool: a worker imports its handler ("module:function") after it starts,
so the handler's torch, CUDA context and caches live in the worker only.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import signal
import traceback
from collections.abc import Callable
from typing import Any


def load_handler(target: str) -> Callable[[Any], dict]:
    """The function a "module:function" string names."""
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def serve(conn, threads: int, target: str) -> None:
    """A worker's loop: say hello, then send handler(request) for each request until None or EOF (the parent died).

    An exception becomes an error reply, so one bad cell never ends the worker. Ctrl-C reaches the whole process
    group; only the parent reports it, the worker just stops.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    if threads:
        torch.set_num_threads(threads)
    handler = load_handler(target)
    conn.send({"ready": True, "torch_threads": torch.get_num_threads()})
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request is None:
            return
        try:
            reply = handler(request)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}"
            reply = {"status": "error", "reason": reason, "phases": {}}
        conn.send(reply)


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"killed by {name}" + (", e.g. for memory" if name == "SIGKILL" else "")
    return f"exit status {exitcode}" if exitcode is not None else "no exit status yet"


class WorkerPool:
    """`size` worker processes started with spawn, each serving `target` ("module:function" of a handler)."""

    def __init__(self, size: int, threads: int, target: str) -> None:
        self.context = mp.get_context("spawn")
        self.threads = threads
        self.target = target
        self.workers: list = [None] * size
        self.torch_threads: int | None = None
        for i in range(size):
            self._start(i)

    def _start(self, index: int) -> None:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=serve, args=(child, self.threads, self.target), daemon=True)
        process.start()
        child.close()
        try:
            hello = parent.recv()
        except EOFError:
            process.join(5)
            raise RuntimeError(f"worker for {self.target} died while starting ({_death(process.exitcode)})") from None
        self.torch_threads = hello["torch_threads"]
        self.workers[index] = (process, parent)

    def _kill(self, index: int) -> None:
        process, conn = self.workers[index]
        process.kill()
        process.join(5)
        conn.close()

    def measure(self, index: int, request: Any, timeout: float) -> dict:
        """The worker's reply; an error reply (and a fresh worker) if it dies or exceeds timeout seconds."""
        process, conn = self.workers[index]
        try:
            conn.send(request)
            if conn.poll(timeout):
                return conn.recv()
            reason = f"worker exceeded [timing].cell_timeout_s = {timeout:g} s and was killed"
        except (EOFError, OSError):
            process.join(5)
            reason = f"worker process died ({_death(process.exitcode)})"
        self._kill(index)
        self._start(index)
        return {"status": "error", "reason": reason, "phases": {}}

    def close(self) -> None:
        """Ask every worker to stop, then make sure it has."""
        for _, conn in filter(None, self.workers):
            try:
                conn.send(None)
            except OSError:
                pass
        for process, conn in filter(None, self.workers):
            process.join(10)
            if process.is_alive():
                process.kill()
            conn.close()
