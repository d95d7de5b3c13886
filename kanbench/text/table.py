"""Plain-text tables whose columns are as wide as their longest cell. No torch here.

>>> print(render(["impl", "forward"], [["chebykan:adapter", "1.2 ms"], ["mlp", "80 us"]], align="lr"))
impl              forward
chebykan:adapter   1.2 ms
mlp                 80 us
"""

from __future__ import annotations

GAP = "  "


def _alignments(align: str | None, columns: int) -> str:
    """One of "l" / "r" per column: align's letters, its last letter repeated for the columns it does not name."""
    if not align:
        return "l" * columns
    if set(align) - {"l", "r"}:
        raise ValueError(f"align {align!r}: use one letter l (left) or r (right) per column, e.g. 'lrr'")
    return (align + align[-1] * columns)[:columns]


def render(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    """The header and rows as aligned columns two spaces apart, no trailing spaces and no final newline.

    header may be empty (no header line). align holds one letter per column, "l" or "r", the last letter applying
    to the columns after it ("lr": first column left, the rest right); None aligns every column left. Every row
    must have as many cells as the header (or as the first row, without a header); cells are shown with str().
    """
    lines = [list(map(str, header))] if header else []
    lines += [list(map(str, row)) for row in rows]
    if not lines:
        return ""
    columns = len(lines[0])
    for number, line in enumerate(rows, start=1):
        if len(line) != columns:
            raise ValueError(f"row {number} has {len(line)} cells, the table {columns} columns: {list(line)!r}")
    sides = _alignments(align, columns)
    widths = [max(len(line[c]) for line in lines) for c in range(columns)]
    return "\n".join(
        GAP.join(cell.rjust(w) if side == "r" else cell.ljust(w) for cell, w, side in zip(line, widths, sides)).rstrip()
        for line in lines
    )
