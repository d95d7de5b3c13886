"""Run a suite from Python (a notebook, a script) and get its results as a pandas DataFrame.

    from kanbench.api import run_suite

    df = run_suite("suites/quick.toml")                                   # a suite file
    df = run_suite({                                                      # or the same tables as a dict
        "suite": {"name": "mine", "implementations": [MyLayer, "fastkan", "mlp"]},  # classes, or "module:Class"
        "axes": {"widths": [[784, 64, 10]], "grid_size": [5], "batch_size": [64]},
        "options": {MyLayer: {"degree": 7}},
    }, out="runs/mine")

It is `kanbench run`: the same validation (kanbench.suite), worker processes, run directory and records; the frame
is kanbench.results.load of that directory (`df.attrs["run_dir"]`, `df.attrs["exit_status"]`). Worker processes
import every class they time, so a class must live in a module (a .py file beside the notebook): one defined in a
notebook cell or a script's `__main__` is refused with a message saying so. In a script (not a notebook), call it
under `if __name__ == "__main__":`: the worker processes are spawned, and spawning imports the script again.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
from pathlib import Path
from typing import Any

from implementations.wrap import NOTEBOOK_HINT

from . import results, run
from . import suite as suite_module
from .errors import UsageError
from .suite import toml_text


def spec_of(obj: Any, where: str) -> str:
    """ "module:Qualname" of a class or function given in a suite dict; a string is kept as written."""
    if isinstance(obj, str):
        return obj
    module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not callable(obj) or not module or not name:
        raise UsageError(f"{where}: {obj!r} is neither a name, a 'module:Class' string nor a class or function")
    if module == "__main__":
        raise UsageError(f"{where}: {name} is defined in __main__; {NOTEBOOK_HINT.format(name=name)}")
    if "<locals>" in name:
        raise UsageError(f"{where}: {module}.{name} is defined inside a function; worker processes import what they "
                         f"time: define it at the top level of its module")  # fmt: skip
    return f"{module}:{name}"


def suite_text(data: dict) -> str:
    """The TOML text of a suite dict, its classes and functions written as "module:Class"."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    head = data.get("suite")
    if isinstance(head, dict) and isinstance(head.get("implementations"), (list, tuple)):
        head["implementations"] = [spec_of(obj, f"[suite].implementations[{i}]")
                                   for i, obj in enumerate(head["implementations"])]  # fmt: skip
    if isinstance(data.get("options"), dict):
        data["options"] = {spec_of(k, f"[options] key {k!r}"): v for k, v in data["options"].items()}
    return toml_text.dumps(data)


def run_suite(
    suite: str | os.PathLike | dict,
    out: str | os.PathLike | None = None,
    *,
    only: list[str] | None = None,
    smoke: bool = False,
    quiet: bool = False,
):
    """Run a suite (a TOML file or a dict of its tables) as `kanbench run` does; return the results DataFrame.

    out: the run directory (default results/runs/<UTC time>-<name>); only: `--only` filters ("impl=mlp,...");
    smoke: tiny timing settings (numbers meaningless); bad input raises kanbench.errors.UsageError.
    """
    if multiprocessing.parent_process() is not None:  # a spawned worker importing the caller's script again
        raise UsageError("kanbench.api.run_suite was called while a worker process imported the script that calls "
                         "it: worker processes are spawned and import the main module, so in a script put the call "
                         'under `if __name__ == "__main__":`')  # fmt: skip
    if isinstance(suite, dict):
        loaded = suite_module.parse(suite_text(suite), "<suite dict>")
    else:
        loaded = suite_module.load(Path(suite))
    parser = argparse.ArgumentParser(prog="kanbench run")
    run.configure_parser(parser)
    if out is None:  # the default directory, made after the suite validated so a refused suite leaves nothing
        out = results.new_run_dir(Path("results") / "runs", loaded.name)
    argv = [str(loaded.path), "--out", str(out), *(f"--only={o}" for o in only or ())]
    argv += ["--smoke"] * smoke + ["--quiet"] * quiet
    args: argparse.Namespace = parser.parse_args(argv)
    status = run.run_suite(loaded, args)
    frame = results.load(out)
    frame.attrs["exit_status"] = status
    return frame
