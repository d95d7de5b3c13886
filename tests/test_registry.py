"""The adapter registry: names, get, availability, "module.path:factory" strings and entry points.

The example of docs/implementations.md is taken from the document itself, installed the way pip would install it
(a module plus a .dist-info with entry_points.txt on sys.path), and held to the same contract as the built-ins.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import implementations

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: kanbench depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "implementations.md"
REQUIRED = ["bspline", "fastkan", "rswaf", "mlp", "pykan", "fastkan-noln", "mlp-iso"]  # issue 2 and DESIGN.md
BUILTIN_NAMES = list(implementations.BUILTIN)


@pytest.fixture
def fresh_entry_points():
    """implementations._entry_points is functools.cache'd: clear it around a test that changes what is installed."""
    cached = implementations._entry_points  # the real one, even if a test monkeypatches the module attribute
    cached.cache_clear()
    yield
    cached.cache_clear()


# --- names, get, available ---


def test_names_lists_builtins_first():
    assert set(REQUIRED) <= set(BUILTIN_NAMES)
    assert implementations.names()[: len(BUILTIN_NAMES)] == BUILTIN_NAMES


@pytest.mark.parametrize("name", implementations.names())
def test_get_and_info_agree(name):
    a = implementations.get(name)
    assert isinstance(a, implementations.Adapter) and a.name == name and a.description
    info = implementations.info(name)
    assert info == implementations.Info(name, a.family, a.description, implementations.names().index(name), a.colour,
                                        a.target, a.has_basis)  # fmt: skip
    assert info.has_basis == (a.family != "mlp" and name not in ("wavkan", "grkan"))
    assert re.fullmatch(r"[\w.]+:\w+", info.target), info.target
    if name in implementations.BUILTIN:
        assert re.fullmatch(r"#[0-9a-f]{6}", info.colour), "every built-in brings its report colour"


def test_families():
    families = {n: implementations.get(n).family for n in REQUIRED}
    assert families == {
        "bspline": "bspline",
        "fastkan": "rbf",
        "rswaf": "rswaf",
        "mlp": "mlp",
        "pykan": "bspline-original",
        "fastkan-noln": "rbf",
        "mlp-iso": "mlp",
    }


@pytest.mark.parametrize("lookup", [implementations.get, implementations.info], ids=["get", "info"])
def test_unknown_name_lists_known_ones_once(lookup):
    with pytest.raises(KeyError) as info:
        lookup("efficient-kan")
    known = ", ".join(implementations.names())
    assert info.value.args == (f"unknown implementation 'efficient-kan'; known: {known} (or 'module.path:factory')",)


def test_pykan_available_when_installed():
    """If kan is installed, the adapter must say available: a broken install must fail here, not skip elsewhere."""
    if importlib.util.find_spec("kan") is None:
        ok, why = implementations.get("pykan").available()
        assert not ok and "pip install 'kanbench[pykan]'" in why
    else:
        assert implementations.get("pykan").available() == (True, "")


@pytest.mark.parametrize("name", [n for n in BUILTIN_NAMES if not implementations.BUILTIN[n].requires])
def test_core_implementations_need_nothing_extra(name):
    assert implementations.get(name).available() == (True, "")


def test_unavailable_adapter_says_how_to_install():
    base = implementations.get("bspline")
    missing = implementations.Adapter(
        "needs-x", "bspline", base.builder, base.counter, base.flop_counter,
        requires=("module_that_does_not_exist",), install_hint="pip install module-that-does-not-exist",
    )  # fmt: skip
    ok, why = missing.available()
    assert not ok
    assert why.startswith("module_that_does_not_exist is not importable (ModuleNotFoundError")
    assert why.endswith(": pip install module-that-does-not-exist")


def test_variant_keeps_requirements_and_fixes_options():
    v = implementations.get("pykan").variant("pykan-g3", grid_range=[-2, 2])
    assert v.requires == ("kan",) and v.install_hint and v.family == "bspline-original"
    assert implementations.get("fastkan-noln").options == {"use_layernorm": False}


# --- "module.path:factory" ---

PLUGIN = """
import implementations

ADAPTER = implementations.get("fastkan").variant("tiny-fastkan", "FastKAN, base branch off", use_base=False)


def factory():
    return ADAPTER


NOT_AN_ADAPTER = 42
"""


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    (tmp_path / "kanbench_test_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "kanbench_test_plugin"
    sys.modules.pop("kanbench_test_plugin", None)


def test_module_factory_string(plugin_module):
    a = implementations.get(f"{plugin_module}:factory")
    assert a.name == "tiny-fastkan" and a.options == {"use_base": False}
    model = a.build([3, 2])
    assert model.layers[0].base is None
    assert a.param_count([3, 2]) == sum(p.numel() for p in model.parameters())
    assert implementations.get(f"{plugin_module}:ADAPTER") is a  # an Adapter object works as well as a factory


def test_module_factory_errors(plugin_module):
    with pytest.raises(KeyError, match="cannot load implementation 'no_such_module_xyz:f'.*No module named"):
        implementations.get("no_such_module_xyz:f")
    with pytest.raises(KeyError, match=f"cannot load implementation '{plugin_module}:missing'.*has no attribute"):
        implementations.get(f"{plugin_module}:missing")
    with pytest.raises(TypeError, match="must be an implementations.Adapter or a factory returning one, got 42"):
        implementations.get(f"{plugin_module}:NOT_AN_ADAPTER")


# --- entry points ---


def fake_entry_points(entries: dict[str, str]):
    """A stand-in for importlib.metadata.entry_points that knows only these entries of kanbench's group."""
    eps = [importlib.metadata.EntryPoint(n, v, implementations.ENTRY_POINT_GROUP) for n, v in entries.items()]

    def entry_points(group=None, **_):
        return [ep for ep in eps if group in (None, implementations.ENTRY_POINT_GROUP)]

    return entry_points


def test_entry_points_join_the_registry(plugin_module, monkeypatch, fresh_entry_points):
    monkeypatch.setattr(
        importlib.metadata,
        "entry_points",
        fake_entry_points({"tiny": f"{plugin_module}:factory", "bspline": f"{plugin_module}:factory"}),
    )
    assert implementations.names() == [*BUILTIN_NAMES, "tiny"], "built-ins win over an entry point of the same name"
    assert implementations.get("tiny").name == "tiny-fastkan"
    assert implementations.get("bspline") is implementations.BUILTIN["bspline"]


def test_entry_point_to_a_non_adapter(plugin_module, monkeypatch, fresh_entry_points):
    bad = importlib.metadata.EntryPoint("bad", f"{plugin_module}:NOT_AN_ADAPTER", implementations.ENTRY_POINT_GROUP)
    monkeypatch.setattr(implementations, "_entry_points", lambda: {"bad": bad})
    assert "bad" in implementations.names()
    with pytest.raises(TypeError, match="entry point 'bad' of group kanbench.implementations must be"):
        implementations.get("bad")


# --- the documented example, installed like pip would ---


def doc_files() -> dict[str, str]:
    """The python blocks of docs/implementations.md whose first line names their file ("# my_kan.py")."""
    files = {}
    for block in re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S):
        first = block.splitlines()[0]
        if re.fullmatch(r"# \w+\.py", first):
            files[first[2:]] = block
    return files


def doc_entry_points() -> dict[str, str]:
    """The entry points the document's pyproject.toml fragment declares for kanbench's group."""
    for block in re.findall(r"```toml\n(.*?)```", DOC.read_text(), flags=re.S):
        table = tomllib.loads(block).get("project", {}).get("entry-points", {})
        if implementations.ENTRY_POINT_GROUP in table:
            return table[implementations.ENTRY_POINT_GROUP]
    raise AssertionError(f"{DOC} has no pyproject.toml fragment for group {implementations.ENTRY_POINT_GROUP}")


@pytest.fixture
def installed_example(tmp_path, monkeypatch, fresh_entry_points):
    """The documented module and a .dist-info declaring the documented entry points, on sys.path."""
    files = doc_files()
    assert {"my_kan.py", "my_kan_entry.py", "my_variants.py"} <= set(files)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    info = tmp_path / "my_kan-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-kan\nVersion: 0.1\n")
    lines = [f"[{implementations.ENTRY_POINT_GROUP}]", *(f"{n} = {v}" for n, v in doc_entry_points().items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in files:
        sys.modules.pop(name[:-3], None)


def test_documented_example_is_a_valid_implementation(installed_example):
    assert doc_entry_points() == {"cheby": "my_kan:adapter"}
    assert "cheby" in implementations.names()[len(BUILTIN_NAMES) :]
    a = implementations.get("cheby")
    assert (a.name, a.family) == ("cheby", "chebyshev")
    assert implementations.get("my_kan:adapter").name == "cheby"
    assert a.available() == (True, "")

    torch.manual_seed(0)
    widths, G, k = [3, 4, 2], 3, 2
    model = a.build(widths, G, k)
    assert a.param_count(widths, G, k) == sum(p.numel() for p in model.parameters() if p.requires_grad)
    x = torch.rand(2, 5, 3) * 2 - 1
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        y = model(x)
    assert y.shape == (2, 5, 2)
    assert a.flop_breakdown(widths, G, k, batch=10)["matmul"] == counter.get_total_flops()
    layer = model.layers[0]
    assert layer.basis(x).shape == (2, 5, 3, G + k)
    with torch.no_grad():  # forward == basis contracted with the coefficients
        torch.testing.assert_close(layer(x), torch.einsum("...im,oim->...o", layer.basis(x), layer.coef))

    model = model.double()
    params = [p.detach().clone().requires_grad_() for p in model.parameters()]

    def f(x, *ps):
        return torch.func.functional_call(model, dict(zip(dict(model.named_parameters()), ps)), (x,))

    assert torch.autograd.gradcheck(f, (torch.rand(2, 3, dtype=torch.float64, requires_grad=True), *params))

    with pytest.raises(ValueError, match=r"\(\.\.\., 3\).*5 != 3"):
        model(torch.rand(2, 5, dtype=torch.float64))
    with pytest.raises(TypeError):
        model(torch.ones(2, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="grid_size must be an int >= 1"):
        a.build(widths, 0, 3)


def test_documented_declaration_reads_without_torch(installed_example):
    """The document's torch-free entry-point module: info() imports neither torch nor the model's module."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(installed_example)])}
    code = (
        "import sys, implementations; i = implementations.info('my_kan_entry:adapter'); "
        "assert (i.name, i.family, i.target) == ('cheby', 'chebyshev', 'my_kan:build'), i; "
        "assert not {'torch', 'my_kan'} & set(sys.modules), sorted({'torch', 'my_kan'} & set(sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    declared, factory = implementations.get("my_kan_entry:adapter"), implementations.get("cheby")
    assert (declared.name, declared.family, declared.description) == (factory.name, factory.family, factory.description)
    assert declared.param_count([3, 4, 2], 3, 2) == factory.param_count([3, 4, 2], 3, 2)
    assert declared.flop_breakdown([3, 4, 2], 3, 2, 5) == factory.flop_breakdown([3, 4, 2], 3, 2, 5)
    assert type(declared.build([3, 2])) is type(factory.build([3, 2]))


def test_documented_variant(installed_example):
    a = implementations.get("my_variants:adapter")
    assert a.name == "fastkan-nobase" and a.build([3, 2]).layers[0].base is None


def test_kanbench_list_shows_the_documented_example(installed_example):
    """`kanbench list` in a fresh interpreter finds the entry point, and prints the line the document shows."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(installed_example)])}
    done = subprocess.run(
        [sys.executable, "-m", "kanbench", "list"], cwd=installed_example, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    row = re.compile(r"cheby\s+chebyshev\s")
    printed = [line.split() for line in done.stdout.splitlines() if row.match(line)]
    documented = [line.split() for line in DOC.read_text().splitlines() if row.match(line)]
    assert printed == documented and len(printed) == 1
