"""Strings from a run, made safe for where they are shown. No torch here.

Records carry text that kanbench did not write: error reasons from an implementation's code, suite and
implementation names. On a terminal an ESC, BEL or CR in them would move the cursor or rewrite the line; in a
pull-request comment, Markdown or raw HTML would forge the verdict. Every such string passes through here.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MARKDOWN = re.compile(r"([\\`*_\[\]|~#])")


def _escaped(match: re.Match) -> str:
    char = match.group(0)
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, f"\\x{ord(char):02x}")


def terminal(text: object) -> str:
    """One line with every control character (ESC, BEL, CR, newline, ...) shown escaped, e.g. \\x1b."""
    return _CONTROL.sub(_escaped, str(text))


def markdown(text: object) -> str:
    """Text that renders as itself inside Markdown (a table cell, a list item): no markup, no raw HTML."""
    plain = terminal(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN.sub(r"\\\1", plain)
