"""The registry reads without torch: names, info and the report's order and colours import no model module."""

from __future__ import annotations

import importlib.metadata
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

import implementations
from kanbench.report import data, figures

ROOT = Path(__file__).resolve().parents[1]

LAZY_MODEL = """
CALLS = []


def build(widths, grid_size=5, spline_order=3, seed=0, **options):
    CALLS.append("build")
    return ("model", list(widths), grid_size, spline_order, seed, options)


def param_count(widths, grid_size=5, spline_order=3, **options):
    return 7


def flop_breakdown(widths, grid_size, spline_order, batch, **options):
    return {"matmul": 2 * batch, "elementwise": batch}
"""
LAZY_DECLARATION = """
import implementations

adapter = implementations.Adapter("lazy-one", "toy", "kanbench_lazy_model:build", description="a declared adapter")
"""


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_names_and_info_import_no_torch():
    done = run_python(
        "import sys, implementations; implementations.names(); "
        "[implementations.info(n) for n in implementations.names()]; "
        "assert 'torch' not in sys.modules, 'torch was imported'; "
        "families = {a.target.partition(':')[0] for a in implementations.BUILTIN.values()}; "
        "assert not families & set(sys.modules), sorted(families & set(sys.modules))"
    )
    assert done.returncode == 0, done.stderr


def test_report_imports_no_torch():
    done = run_python(
        "import sys, implementations, kanbench.report; from kanbench.report import data, figures; "
        "figures.colors(implementations.names() + ['not-registered']); data.ordered_impls(implementations.names()); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    assert done.returncode == 0, done.stderr


def test_a_spec_and_the_entry_point_reach_the_same_adapter():
    spec = "implementations.inkan_adapter:adapter"
    assert implementations.get(spec).name == implementations.get("inkan").name == "inkan"
    assert implementations.info(spec) == implementations.info("inkan")
    assert implementations.info("inkan").order == implementations.names().index("inkan")


@pytest.fixture
def lazy_modules(tmp_path, monkeypatch):
    (tmp_path / "kanbench_lazy_model.py").write_text(LAZY_MODEL)
    (tmp_path / "kanbench_lazy_declaration.py").write_text(LAZY_DECLARATION)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "kanbench_lazy_declaration:adapter"
    for name in ("kanbench_lazy_model", "kanbench_lazy_declaration"):
        sys.modules.pop(name, None)


def test_a_declared_adapter_imports_its_module_on_first_use(lazy_modules):
    a = implementations.get(lazy_modules)
    info = implementations.info(lazy_modules)
    assert (info.name, info.family, info.target) == ("lazy-one", "toy", "kanbench_lazy_model:build")
    assert info.order == len(implementations.names()), "a name not registered sorts after the registered ones"
    assert a.available() == (True, "")
    assert "kanbench_lazy_model" not in sys.modules
    assert a.param_count([3, 2]) == 7, "counter defaults to param_count next to the builder"
    assert a.flops([3, 2], batch=4) == 12, "flop_counter defaults to flop_breakdown next to the builder"
    assert "seed" in inspect.signature(a.builder).parameters  # kanbench.measure.training asks the builder for `seed`
    assert a.build([3, 2], 4, 2, x=1) == ("model", [3, 2], 4, 2, 0, {"x": 1})
    assert a.variant("lazy-two", x=2).build([3, 2])[-1] == {"x": 2}


def test_adapter_declarations_that_cannot_work_say_why(tmp_path):
    with pytest.raises(TypeError, match="Adapter 'x' needs a counter"):
        implementations.Adapter("x", "toy", lambda widths, grid_size, spline_order: None)
    with pytest.raises(ValueError, match="must look like 'module.path:function', got 'no_colon'"):
        implementations.Adapter("x", "toy", "no_colon")
    with pytest.raises(TypeError, match="builder must be a callable or a 'module.path:function' string, got 42"):
        implementations.Adapter("x", "toy", 42, "a:b", "a:c")
    missing = implementations.Adapter("x", "toy", "kanbench_no_such_module_xyz:build")
    with pytest.raises(ImportError, match="cannot load 'kanbench_no_such_module_xyz:build'.*No module named"):
        missing.build([3, 2])


def test_a_factory_entry_point_is_loaded_by_info(monkeypatch, lazy_modules):
    ep = importlib.metadata.EntryPoint("lazy", lazy_modules, implementations.ENTRY_POINT_GROUP)
    monkeypatch.setattr(implementations, "_entry_points", lambda: {"lazy": ep})
    assert implementations.names()[-1] == "lazy"
    assert implementations.info("lazy").order == len(implementations.names()) - 1
    assert implementations.info("lazy").family == "toy"


def test_report_order_and_colours_come_from_the_registry(monkeypatch):
    data.registered.cache_clear()
    broken = importlib.metadata.EntryPoint("broken", "kanbench_no_such_module_xyz:adapter", "kanbench.implementations")
    monkeypatch.setattr(implementations, "_entry_points", lambda: {"broken": broken})
    try:
        impls = ["zzz", "broken", "mlp", "bspline+compile", "bspline-fast", "bspline"]
        assert data.ordered_impls(impls) == ["bspline", "bspline-fast", "mlp", "broken", "bspline+compile", "zzz"]
        palette = figures.colors(impls)
        for name in ("bspline", "bspline-fast", "mlp"):
            assert palette[name] == implementations.info(name).colour
        for name in ("zzz", "broken", "bspline+compile"):  # not registered here (or broken): a palette colour
            assert palette[name] in figures.PALETTE
            assert figures.colors([name])[name] == palette[name], "the same colour whatever else is in the figure"
    finally:
        data.registered.cache_clear()
