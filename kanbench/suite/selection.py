"""`--only key=value,...`: a subset of a suite's cells, e.g. `--only impl=mlp,impl=fastkan,phase=forward`.

A key given twice matches either value; different keys must all match. Values compare as the cell's label
writes them: widths as 784x64x10, booleans as true/false.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import UsageError
from . import CELL_AXES

CELL_KEYS = ("impl", *CELL_AXES, "dataset", "seed")  # accuracy cells have no batch_size or compile, but a seed
KEYS = (*CELL_KEYS, "phase")

Selection = dict[str, set[str]]


def parse(specs: Sequence[str] | None) -> Selection:
    """{key: accepted values} from every --only argument; UsageError naming a malformed or unknown key."""
    selection: Selection = {}
    for spec in specs or ():
        for part in spec.split(","):
            key, sep, value = part.strip().partition("=")
            if not sep or not key or not value:
                raise UsageError(f"--only {spec!r}: expected key=value pairs separated by commas, e.g. impl=mlp")
            if key not in KEYS:
                raise UsageError(f"--only {spec!r}: unknown key {key!r}; allowed: {', '.join(KEYS)}")
            selection.setdefault(key, set()).add(value)
    return selection


def canonical(specs: Sequence[str] | None) -> list[str] | None:
    """The --only arguments in one spelling (sorted key=value), so --resume sees the same filter however written."""
    selection = parse(specs)
    return sorted(f"{k}={v}" for k, vs in selection.items() for v in vs) or None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    return str(value)


def cells(found: list[Any], selection: Selection, where: str) -> list[Any]:
    """The cells every cell key of the selection matches; UsageError if it matches none."""
    wanted = {k: v for k, v in selection.items() if k in CELL_KEYS}
    if not wanted:
        return found
    for key in wanted:
        if found and not hasattr(found[0], key):
            raise UsageError(f"--only {key}=...: {where} cells have no {key}")

    def values(cell: Any, key: str) -> set[str]:
        shown = {_text(getattr(cell, key))}
        source: str = getattr(cell, "source", "")
        return shown | {source} if key == "impl" and source else shown  # the adapter's name or the suite's spelling

    for key, accepted in wanted.items():
        present = set().union(*(values(c, key) for c in found)) if found else set()
        unknown = sorted(accepted - present)
        if unknown:  # a typo beside a good value would otherwise pass unnoticed
            listed = ", ".join(sorted(present)[:20]) + (", ..." if len(present) > 20 else "")
            raise UsageError(f"--only {key}={unknown[0]}: no cell of {where} has it; it has {listed}")
    kept = [c for c in found if all(values(c, k) & v for k, v in wanted.items())]
    if not kept:
        shown = ",".join(f"{k}={v}" for k, vs in sorted(wanted.items()) for v in sorted(vs))
        raise UsageError(f"--only {shown} selects no cell of {where}")
    return kept


def phases(found: Sequence[str], selection: Selection, where: str) -> tuple[str, ...]:
    """The phases the selection keeps, in suite order; UsageError if it keeps none."""
    wanted = selection.get("phase")
    if not wanted:
        return tuple(found)
    unknown = sorted(wanted - set(found))
    if unknown:
        raise UsageError(f"--only phase={unknown[0]}: {where} measures {', '.join(found)}")
    return tuple(p for p in found if p in wanted)
