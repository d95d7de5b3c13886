"""A suite given as a Python dict, written as the TOML text a run directory keeps (suite.toml). No torch here.

Only what suites use: tables (nested, e.g. [options."my_kan:Layer"]), arrays of tables ([[axes]]), strings,
integers, floats, booleans and (nested) arrays. What the suite means is kanbench.suite's to check.
"""

from __future__ import annotations

import json
import math
import re

from ..errors import UsageError

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def key(name: object, where: str) -> str:
    """A TOML key: bare where it can be, else a quoted string."""
    if not isinstance(name, str):
        raise UsageError(f"{where}: a key must be a string, got {name!r}")
    return name if _BARE.fullmatch(name) else json.dumps(name, ensure_ascii=False)


def value(v: object, where: str) -> str:
    """A TOML value of a string, number, boolean or list of them."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON's escapes are TOML's basic-string escapes
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x, f"{where}[{i}]") for i, x in enumerate(v)) + "]"
    raise UsageError(f"{where}: {v!r} is no TOML value (strings, numbers, booleans, lists and tables)")


def _table(path: list[str], body: dict, lines: list[str], header: str) -> None:
    where = ".".join(path)
    lines.append(header)
    for name, v in body.items():
        if not isinstance(v, dict):
            lines.append(f"{key(name, where)} = {value(v, f'{where}.{name}')}")
    for name, v in body.items():
        if isinstance(v, dict):
            sub = [*path, key(name, where)]
            lines.append("")
            _table(sub, v, lines, f"[{'.'.join(sub)}]")


def dumps(data: dict) -> str:
    """TOML text of a suite dict: {"suite": {...}, "axes": {...} or [{...}, ...], "options": {NAME: {...}}, ...}."""
    if not isinstance(data, dict):
        raise UsageError(f"a suite dict must be a dict of tables, got {type(data).__name__}")
    lines: list[str] = []
    for name, body in data.items():
        head = key(name, "suite dict")
        if isinstance(body, list) and body and all(isinstance(b, dict) for b in body):
            for i, each in enumerate(body):
                _table([f"{head}[{i}]"], each, lines, f"[[{head}]]")
                lines.append("")
        elif isinstance(body, dict):
            _table([head], body, lines, f"[{head}]")
            lines.append("")
        else:
            raise UsageError(f"suite dict: {name!r} must be a table (a dict) or a list of tables, got {body!r}")
    return "\n".join(lines)
