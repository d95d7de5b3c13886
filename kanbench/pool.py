"""Worker processes, each a fresh interpreter, that the parent keeps and replaces when one dies or hangs."""

from __future__ import annotations

import multiprocessing as mp


class WorkerPool:
    """`size` worker processes started with spawn; measure() sends one request to one of them.

    `serve(conn, threads)` is the worker's loop (kanbench.worker.serve by default): it first sends
    {"torch_threads": n}, then answers each request with a dict until it receives None.
    """

    def __init__(self, size: int, threads: int, serve=None) -> None:
        self.context = mp.get_context("spawn")
        self.threads = threads
        self.serve = serve
        self.workers: list = [None] * size
        self.torch_threads: int | None = None
        for i in range(size):
            self._start(i)

    def _start(self, index: int) -> None:
        from . import worker

        parent, child = self.context.Pipe()
        target = self.serve or worker.serve
        process = self.context.Process(target=target, args=(child, self.threads), daemon=True)
        process.start()
        child.close()
        hello = parent.recv()
        self.torch_threads = hello["torch_threads"]
        self.workers[index] = (process, parent)

    def _kill(self, index: int) -> None:
        process, conn = self.workers[index]
        process.kill()
        process.join(5)
        conn.close()

    def measure(self, index: int, request: tuple, timeout: float) -> dict:
        """The worker's reply; an error reply (and a fresh worker) if it dies or exceeds timeout seconds."""
        process, conn = self.workers[index]
        try:
            conn.send(request)
            if conn.poll(timeout):
                return conn.recv()
            reason = f"worker exceeded [timing].cell_timeout_s = {timeout:g} s and was killed"
        except (EOFError, OSError, BrokenPipeError):
            reason = f"worker process died (exit code {process.exitcode}), e.g. killed for memory"
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
