"""Progress on stderr: cells done, the current cell, and an ETA scaled from the estimate by the pace so far."""

from __future__ import annotations

import sys
import time


def duration(seconds: float) -> str:
    """12.3 s, 4m05s, 1h02m (or "more than a week")."""
    if not seconds < 7 * 24 * 3600:  # also nan and inf: an estimate, never a crash
        return "more than a week"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """A one-line progress bar on a terminal; one line per cell when stderr is not a terminal."""

    def __init__(self, total: int, estimate_s: float, quiet: bool = False, stream=None) -> None:
        self.total, self.done = total, 0
        self.estimate_left = estimate_s
        self.estimate_done = 0.0
        self.start = time.monotonic()
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()

    def eta(self) -> float:
        """Seconds left: the remaining estimate scaled by how the estimate has compared with reality so far."""
        elapsed = time.monotonic() - self.start
        pace = elapsed / self.estimate_done if self.estimate_done > 0 else 1.0
        return max(self.estimate_left, 0.0) * pace

    def _line(self, text: str) -> str:
        pct = 100 * self.done / self.total if self.total else 100
        filled = int(pct // 5)
        bar = "#" * filled + "." * (20 - filled)
        return f"[{bar}] {self.done}/{self.total} {pct:3.0f}% ETA {duration(self.eta())} | {text}"

    def current(self, text: str) -> None:
        """Show the cell being measured now."""
        if not self.quiet and self.tty:
            self.stream.write("\r\033[K" + self._line(text)[:200])
            self.stream.flush()

    def advance(self, label: str, estimate_s: float) -> None:
        """Count one cell as done."""
        self.done += 1
        self.estimate_done += estimate_s
        self.estimate_left -= estimate_s
        if not self.quiet and not self.tty:
            self.stream.write(self._line(f"done {label}") + "\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        """A message on its own line."""
        if not self.quiet:
            self.stream.write(("\r\033[K" if self.tty else "") + text + "\n")
            self.stream.flush()

    def finish(self) -> None:
        """Final line with the wall time."""
        self.note(f"{self.done} cells in {duration(time.monotonic() - self.start)}")
