"""Worker processes, each a fresh interpreter, that the parent keeps and replaces when one dies or hangs.

The parent never imports torch for the pool: a worker imports its handler ("module:function") after it starts,
so the handler's torch, CUDA context and caches live in the worker only.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import multiprocessing.resource_tracker
import multiprocessing.spawn
import os
import shlex
import shutil
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from typing import Any


def load_handler(target: str) -> Callable[[Any], Any]:
    """The function a "module:function" string names."""
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def sticky_device_error(exc: BaseException) -> bool:
    """Whether exc is a CUDA error that poisons this process's CUDA context (an illegal address, a device-side
    assert, a failed kernel): every later CUDA call in the process fails with it too, under other cells' names.
    Out of memory is not one: the caching allocator recovers from it."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return False
    accelerator_error = getattr(torch, "AcceleratorError", None)
    if accelerator_error is not None and isinstance(exc, accelerator_error):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(mark in text for mark in STICKY_MARKS)


STICKY_MARKS = ("CUDA error", "device-side assert", "illegal memory access", "CUBLAS_STATUS_EXECUTION_FAILED",
                "cudaErrorLaunchFailure", "unspecified launch failure")  # fmt: skip


def serve(conn, threads: int, target: str) -> None:
    """A worker's loop: say hello, then send handler(request) for each request until None or EOF (the parent died).

    An exception becomes an error reply, so one bad cell never ends the worker; a reply with "restart" true (or a
    sticky CUDA error escaping the handler) ends it after the reply is sent, and the pool starts a fresh one.
    Ctrl-C reaches the whole process group; only the parent reports it, the worker just stops.
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
            reply = {"status": "error", "reason": reason, "phases": {}, "restart": sticky_device_error(exc)}
        if is_dataclass(reply) and not isinstance(reply, type):  # a typed reply (measure.reply) goes as plain data
            reply = asdict(reply)
        conn.send(reply)
        if reply.get("restart"):
            return


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"killed by {name}" + (", e.g. for memory" if name == "SIGKILL" else "")
    return f"exit status {exitcode}" if exitcode is not None else "no exit status yet"


VALGRIND_HINT = "install valgrind (Debian/Ubuntu: apt-get install valgrind) or use another [timing].clock"
# Instrumentation starts off (torch imports several times faster); kanbench.measure.timing.callgrind_clock switches
# it on before the first count.
CALLGRIND_OPTIONS = ("--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no", "--dump-line=no")
# valgrind runs AVX2/FMA code far slower than SSE code, so workers under callgrind use torch's and MKL's SSE kernels:
# counts are of that code path (docs/methodology.md, "Instruction counts", says what it misses).
CALLGRIND_ENV = {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}


def callgrind_wrapper(directory: str, valgrind: str | None = None) -> str:
    """An executable in directory that runs this Python under callgrind, its dumps and log in directory."""
    valgrind = valgrind or shutil.which("valgrind")
    if not valgrind:
        raise RuntimeError(f'clock = "instructions" needs valgrind on PATH, and there is none: {VALGRIND_HINT}')
    if not shutil.which("callgrind_control"):
        raise RuntimeError(f'clock = "instructions" needs callgrind_control (valgrind) on PATH: {VALGRIND_HINT}')
    from .timing import CALLGRIND_DIR_ENV

    command = [valgrind, *CALLGRIND_OPTIONS, f"--callgrind-out-file={directory}/callgrind.out.%p",
               f"--log-file={directory}/valgrind.%p.log", sys.executable]  # fmt: skip
    path = os.path.join(directory, "python-under-callgrind")
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"#!/bin/sh\nexport {CALLGRIND_DIR_ENV}={shlex.quote(directory)}\n")
        f.writelines(f"export {k}={shlex.quote(v)}\n" for k, v in CALLGRIND_ENV.items())
        f.write(f'exec {" ".join(map(shlex.quote, command))} "$@"\n')
    os.chmod(path, 0o755)
    return path


class WorkerPool:
    """`size` worker processes started with spawn, each serving `target` ("module:function" of a handler).

    under="callgrind" starts each worker under valgrind's callgrind with collection off, for the instruction
    clock (kanbench.measure.timing.callgrind_clock); the dumps go to a temporary directory removed on close.
    """

    def __init__(self, size: int, threads: int, target: str, under: str | None = None) -> None:
        self.context = mp.get_context("spawn")
        self.threads = threads
        self.target = target
        self.workers: list = [None] * size
        self.closed = False
        self.torch_threads: int | None = None
        self.scratch: str | None = None
        self.executable: str | None = None
        if under == "callgrind":
            self.scratch = tempfile.mkdtemp(prefix="kanbench-callgrind-")
            self.executable = callgrind_wrapper(self.scratch)
        elif under is not None:
            raise ValueError(f"WorkerPool(under={under!r}): only None or 'callgrind'")
        try:
            for i in range(size):
                self._start(i)
        except BaseException:  # a worker that failed to start, or Ctrl-C while starting: stop those already up
            self.close()
            raise

    def _start(self, index: int) -> None:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=serve, args=(child, self.threads, self.target), daemon=True)
        if self.executable:
            # spawn reads the executable when the process starts; set it for this start only, so no other pool
            # (or a later one in this parent) inherits the wrapper
            multiprocessing.resource_tracker.ensure_running()  # spawned with the executable too: not under valgrind
            previous = multiprocessing.spawn.get_executable()
            self.context.set_executable(self.executable)
            try:
                process.start()
            finally:
                self.context.set_executable(previous)
        else:
            process.start()
        child.close()
        try:
            hello = parent.recv()
        except EOFError:
            process.join(5)
            raise RuntimeError(
                f"worker for {self.target} died while starting ({_death(process.exitcode)}){self._log_tail()}"
            ) from None
        except BaseException:  # Ctrl-C while it starts: it is not in self.workers yet, so stop it here
            process.kill()
            process.join(5)
            raise
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
                reply = conn.recv()
                if isinstance(reply, dict) and reply.get("restart"):  # its CUDA context is poisoned: a fresh one
                    self._kill(index)
                    self._start(index)
                return reply
            # speed: [timing].cell_timeout_s times the cells of the group it was measuring
            reason = f"worker exceeded its limit of {timeout:g} s ([timing].cell_timeout_s per cell) and was killed"
        except (EOFError, OSError):
            process.join(5)
            reason = f"worker process died ({_death(process.exitcode)})"
        self._kill(index)
        if not self.closed:  # close() ended it while a lane waited on it: the run is stopping
            self._start(index)
        return {"status": "error", "reason": reason, "phases": {}}

    def _log_tail(self) -> str:
        """The end of the valgrind logs, for a worker that died under it."""
        if not self.scratch:
            return ""
        tails = []
        for name in sorted(os.listdir(self.scratch)):
            if name.startswith("valgrind."):
                with open(os.path.join(self.scratch, name), encoding="utf-8", errors="replace") as f:
                    tails.append("".join(f.readlines()[-5:]))
        return ("; valgrind said:\n" + "\n".join(tails)) if tails else ""

    def close(self) -> None:
        """Ask every worker to stop, then make sure it has."""
        self.closed = True
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
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)
