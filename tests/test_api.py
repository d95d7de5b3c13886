"""kanbench.api.run_suite: a suite (file or dict) run from Python, its results as a DataFrame."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from kanbench import api
from kanbench.errors import UsageError
from kanbench.suite import toml_text

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

HERE = Path(__file__).parent


def test_a_suite_dict_is_written_as_toml_that_reads_back():
    data = {
        "suite": {"name": "x", "implementations": ["mlp", "a.b:C"], "phases": ["forward"]},
        "axes": {"widths": [[3, 2]], "grid_size": [5], "batch_size": [4], "device": ["cpu"]},
        "options": {"a.b:C": {"degree": 3, "scale": 0.5, "flag": True, "name": 'q"uote\n'}},
        "timing": {"values": 2},
    }
    assert tomllib.loads(toml_text.dumps(data)) == data
    sweeps = {"suite": {"name": "y"}, "axes": [{"widths": [[2, 2]]}, {"widths": [[3, 3]]}]}
    assert tomllib.loads(toml_text.dumps(sweeps)) == sweeps


def test_a_class_from_a_notebook_is_refused_saying_to_put_it_in_a_module():
    class Mine(torch.nn.Module):
        pass

    Mine.__module__ = "__main__"
    with pytest.raises(UsageError, match=r"\[suite\].implementations\[0\]: .*Mine is defined in __main__.*put the "
                       r"class in a module \(e.g. my_kan.py beside the notebook\)"):  # fmt: skip
        api.run_suite({"suite": {"name": "x", "implementations": [Mine]}, "axes": {"widths": [[2, 2]]}})


def test_a_class_inside_a_function_is_refused():
    class Local(torch.nn.Module):
        pass

    with pytest.raises(UsageError, match="defined inside a function"):
        api.spec_of(Local, "[suite].implementations[0]")


def test_a_bad_suite_dict_names_the_key(tmp_path):
    with pytest.raises(UsageError, match=r"<suite dict>: \[axes\].grid_size: is required"):
        api.run_suite({"suite": {"name": "x", "implementations": ["mlp"]}, "axes": {"widths": [[2, 2]]}},
                      out=tmp_path / "run")  # fmt: skip
    assert not (tmp_path / "run").exists()


def test_run_suite_runs_a_dict_with_a_class_and_returns_the_frame(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))  # spawned workers get this sys.path
    import own_classes

    suite = {
        "suite": {"name": "nb", "implementations": [own_classes.RBFLayer, "mlp"], "phases": ["forward"]},
        "axes": {"widths": [[6, 5, 3]], "grid_size": [3], "batch_size": [4], "device": ["cpu"]},
        "timing": {"warmup": 1, "min_time": 0.0005, "values": 2, "processes": 1, "threads": 1},
    }
    try:
        df = api.run_suite(suite, out=tmp_path / "run", quiet=True)
    finally:
        sys.modules.pop("own_classes", None)
    assert df.attrs["exit_status"] == 0 and df.attrs["run_dir"] == str(tmp_path / "run")
    assert sorted(df["impl"]) == ["mlp", "own_classes:RBFLayer"]
    assert (df["status"] == "ok").all() and (df["time_median"] > 0).all()
    assert (tmp_path / "run" / "suite.toml").read_text().count('"own_classes:RBFLayer"') == 1


def test_a_worker_importing_the_script_again_is_told_to_guard_the_call(monkeypatch):
    import multiprocessing

    monkeypatch.setattr(multiprocessing, "parent_process", lambda: object())
    with pytest.raises(UsageError, match='under `if __name__ == "__main__":`'):
        api.run_suite("suites/quick.toml")
