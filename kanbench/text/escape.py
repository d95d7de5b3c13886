"""Strings and values from a run, made safe for where they are shown (terminal, Markdown, HTML, JSON). No torch here.

Records carry text that kanbench did not write: error reasons from an implementation's code, suite and
implementation names. On a terminal an ESC, BEL or CR in them would move the cursor or rewrite the line; in a
pull-request comment, Markdown or raw HTML would forge the verdict. Every such string passes through here.
"""

from __future__ import annotations

import html as _html
import math
import re

# Unicode's bidirectional formatting characters (embeddings, overrides, isolates, marks) and line separators: an
# implementation name holding U+202E shows every character after it right to left, digits of the numbers beside it
# included. They are as unsafe as control characters wherever text is shown, so they are escaped with them.
_BIDI = "\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{_BIDI}]")
# In HTML newlines and tabs are harmless white space; NUL, the other controls and bidi formatting are not.
_HTML_UNSAFE = re.compile(f"[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f{_BIDI}]")
_MARKDOWN = re.compile(r"([\\`*_\[\]|~#])")


def _escaped(match: re.Match) -> str:
    char = match.group(0)
    code = ord(char)
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")


def terminal(text: object) -> str:
    """One line with every control character (ESC, BEL, CR, newline, ...) and bidi formatting character shown
    escaped, e.g. \\x1b, \\u202e."""
    return _CONTROL.sub(_escaped, str(text))


def markdown(text: object) -> str:
    """Text that renders as itself inside Markdown (a table cell, a list item): no markup, no raw HTML."""
    plain = terminal(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN.sub(r"\\\1", plain)


def html(text: object) -> str:
    """Text for an HTML page: NUL, control and bidi formatting characters shown escaped (\\x00, \\u202e), then
    &, <, > and quotes as entities."""
    return _html.escape(_HTML_UNSAFE.sub(_escaped, str(text)), quote=True)


def html_name(text: object) -> str:
    """A name from a run (an implementation, a cell label) in HTML: html() inside <bdi>, so a name in a
    right-to-left script cannot reorder the numbers beside it."""
    return f"<bdi>{html(text)}</bdi>"


_BIDI_ONLY = re.compile(f"[{_BIDI}]")


def json_text(text: str) -> str:
    """JSON text with bidi formatting characters and line separators written as \\uXXXX escapes (they can only
    stand inside its strings, which decode the same), so no file kanbench writes holds one raw."""
    return _BIDI_ONLY.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


def json_ready(value: object) -> object:
    """value as strict JSON (JSON.parse rejects NaN and Infinity): numpy scalars as Python's, non-finite numbers as
    null, keys as strings."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    return None if isinstance(value, float) and not math.isfinite(value) else value
