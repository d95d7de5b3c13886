"""The shape of the code: no import circle inside kanbench, no torch where the design says none, and a
results-schema document that matches the Record."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import types
import typing
from dataclasses import fields
from pathlib import Path

import pytest
from conftest import ROOT

from kanbench.results.record import Record

PACKAGE = ROOT / "kanbench"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every kanbench module that `name` imports, at module level or inside functions."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from . import x` imports the module x when there is one, else a name of the package
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_inside_kanbench_lazy_imports_included():
    found = modules()
    known = set(found)
    graph = {name: imports_of(name, path, known) for name, path in found.items()}
    assert "kanbench.run.session" in graph["kanbench.run"]  # the walk sees imports at all
    assert "kanbench.run.speed" in graph["kanbench.run"]  # ... and those inside functions
    # a package's __init__ importing its own submodules is how packages work, not a circle
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


# The folders' direction (docs/architecture.md): a folder imports only the folders listed for it, so the measuring
# side never reaches the report and the report never reaches the worker side.
LAYERS = {
    "errors": set(),
    "text": {"errors"},
    "suite": {"errors", "text"},
    "results": {"errors", "text", "suite"},
    "measure": {"errors", "text", "suite", "results"},
    "run": {"errors", "text", "suite", "results", "measure"},
    "analysis": {"errors", "text", "suite", "results"},
    "report": {"errors", "text", "suite", "results", "analysis"},
    "api": {"errors", "suite", "results", "run"},
    "cli": {"errors", "text", "results", "measure", "run", "report", "analysis"},
    "__main__": {"cli"},
}


def part_of(module: str) -> str:
    """The top-level folder or module of kanbench that module belongs to ("kanbench.run.speed" -> "run")."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_kanbench_has_at_most_a_dozen_modules_at_its_top_level():
    top = sorted(p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
                 if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").is_file())  # fmt: skip
    assert len(top) <= 12, top
    assert set(top) == set(LAYERS) - {""}, set(top) ^ set(LAYERS)  # every part has a place in the direction


def test_each_folder_imports_only_the_folders_below_it():
    found = modules()
    known = set(found)
    wrong = []
    for name, path in found.items():
        here = part_of(name)
        if not here:
            continue
        for target in imports_of(name, path, known):
            there = part_of(target)
            if there and there != here and there not in LAYERS[here]:
                wrong.append(f"{name} imports {target} ({here} -> {there})")
    assert not wrong, "\n".join(wrong)
    assert "kanbench.results.record" in imports_of("kanbench.run.speed", found["kanbench.run.speed"], known)


def test_only_the_executor_factory_imports_the_ray_plug_in():
    """The core reaches the Ray executor through make_executor alone, which imports it when --executor ray asks."""
    found = modules()
    known = set(found)
    importers = {n for n, path in found.items() if "kanbench.run.ray_executor" in imports_of(n, path, known)}
    assert importers == {"kanbench.run.session"}, importers
    tree = ast.parse(found["kanbench.run.session"].read_text(encoding="utf-8"))
    factory = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "make_executor")
    inside = {id(n) for n in ast.walk(factory)}
    ray_imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "ray_executor"]
    assert ray_imports and all(id(n) in inside for n in ray_imports)


def test_suite_validation_report_compare_and_gate_import_no_torch(tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text((ROOT / "suites" / "quick.toml").read_text(encoding="utf-8"), encoding="utf-8")
    code = (
        "import sys, kanbench.suite, kanbench.report, kanbench.analysis.compare, kanbench.analysis.regress\n"
        "import kanbench.results\n"
        f"s = kanbench.suite.load({str(suite)!r}); s.cells()\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr


# --- docs/results-schema.md holds the Record's real fields and types ---------------------------------------------

DOC_TYPES = {"str": str, "int": int, "float": float, "object": dict, "[int]": list, "bool": bool}


def documented_fields() -> dict[str, str]:
    """field -> type text from the Record table of docs/results-schema.md."""
    text = (ROOT / "docs" / "results-schema.md").read_text(encoding="utf-8")
    table = text.split("## Record", 1)[1].split("\n### ", 1)[0]
    out = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        for name in re.findall(r"`([a-z_]+)`", cells[0]):
            out[name] = cells[1]
    return out


def test_results_schema_doc_names_every_record_field_with_its_type():
    documented = documented_fields()
    hints = typing.get_type_hints(Record)
    assert set(documented) == {f.name for f in fields(Record)}, set(documented) ^ {f.name for f in fields(Record)}
    for name, hint in hints.items():
        doc = documented[name]
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        members = typing.get_args(hint) if union else (hint,)
        nullable = type(None) in members
        assert ("null" in doc) == nullable, f"{name}: documented {doc!r}, the Record says {hint}"
        base = [t for t in members if t is not type(None)][0]
        base = typing.get_origin(base) or base
        wanted = {DOC_TYPES[t.strip()] for t in doc.replace(" or null", "").split(" or ") if t.strip() in DOC_TYPES}
        assert base in wanted, f"{name}: documented {doc!r}, the Record says {hint}"


def test_results_schema_doc_says_the_current_schema_and_device_names():
    from kanbench.results.record import SCHEMA

    text = (ROOT / "docs" / "results-schema.md").read_text(encoding="utf-8")
    assert f"(schema {SCHEMA})" in text.splitlines()[0]
    assert "cuda:0" not in text.split("## Record", 1)[1].split("\n### ", 1)[0]


def test_config_hashes_are_those_of_the_committed_baselines():
    from kanbench import results, suite
    from kanbench.run import accuracy

    for name in ("fast-bspline-2026-11-29-final", "accuracy-quick-2026-11-29"):
        run = ROOT / "results" / "baselines" / name
        parsed = suite.parse((run / "suite.toml").read_text(encoding="utf-8"), name)
        cells = accuracy.plan(parsed).cells if parsed.kind == "accuracy" else parsed.cells()
        assert {c.config_hash for c in cells} == {r.config_hash for r in results.read_records(run)}, name


def test_files_beside_the_code_ship_in_the_wheel():
    """A data file the package reads (the report's claims.toml) is package-data, so an installed kanbench has it."""
    from fnmatch import fnmatch

    from kanbench.suite import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    shipped = pyproject["tool"]["setuptools"].get("package-data", {})
    data = [p for p in PACKAGE.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert data, "claims.toml at least"
    for path in data:
        package = ".".join(path.parent.relative_to(ROOT).parts)
        assert any(fnmatch(path.name, pattern) for pattern in shipped.get(package, [])), path


def test_the_gpu_acceptance_scripts_names_still_import():
    """../shared/gpu-check imports env, memory and timing from kanbench: they are the measure folder's modules."""
    from kanbench import env, memory, timing
    from kanbench.measure import env as env_
    from kanbench.measure import memory as memory_
    from kanbench.measure import timing as timing_

    assert (env, memory, timing) == (env_, memory_, timing_)
    with pytest.raises(ImportError, match="speed"):  # only those three: the rest moved for good
        from kanbench import speed  # noqa: F401
