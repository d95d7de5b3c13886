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


PRIOR_SHARE = 0.15  # the estimate counts as this share of the run measured at its own pace (1)
HEARTBEAT_S = 10.0  # without a terminal, a line at least this often while cells are measured


class Progress:
    """A one-line progress bar on a terminal; without one, a line per cell and a line naming the cell being
    measured whenever HEARTBEAT_S passed without one (so a log under tox never sits silent for minutes)."""

    def __init__(self, total: int, estimate_s: float, quiet: bool = False, stream=None, clock=time.monotonic) -> None:
        self.total, self.done = total, 0
        self.estimate_left = self.estimate_total = estimate_s
        self.estimate_done = 0.0
        self.clock = clock
        self.start = self.last_line = self.origin = clock()
        self.settles: list[tuple[float, float]] = []  # (seconds since origin, estimate done) at each group's end
        self.begun = False
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()

    def eta(self) -> float:
        """Seconds left: the remaining estimate scaled by the pace (see pace)."""
        return max(self.estimate_left, 0.0) * self.pace()

    def pace(self) -> float:
        """Real seconds per estimated second: the finished groups' pace (a part of a group says nothing: a speed
        group's cells finish together, in its last process), leaving out the first group once another has
        finished (it carries each worker's one-time costs), shrunk towards 1 by PRIOR_SHARE of the whole estimate,
        so one slow early group cannot swing the ETA (docs/methodology.md, "Progress")."""
        marks = [(0.0, 0.0), *self.settles]
        first, last = (marks[1], marks[-1]) if len(marks) > 2 else (marks[0], marks[-1])
        real, done = last[0] - first[0], last[1] - first[1]
        prior = PRIOR_SHARE * self.estimate_total
        return (real + prior) / (done + prior) if done + prior > 0 else 1.0

    def _line(self, text: str) -> str:
        pct = 100 * self.done / self.total if self.total else 100
        filled = int(pct // 5)
        bar = "#" * filled + "." * (20 - filled)
        return f"[{bar}] {self.done}/{self.total} {pct:3.0f}% ETA {duration(self.eta())} | {text}"

    def begin(self) -> None:
        """The first workers are up: the pace is measured from now (their start-up is not a cell's time)."""
        if not self.begun:
            self.begun, self.origin = True, self.clock()

    def current(self, text: str) -> None:
        """Show the cell being measured now (without a terminal: only when HEARTBEAT_S passed silently)."""
        if self.quiet:
            return
        if self.tty:
            self.stream.write("\r\033[K" + self._line(text)[:200])
            self.stream.flush()
        elif self.clock() - self.last_line >= HEARTBEAT_S:
            self._write(self._line(f"measuring {text}"))

    def advance(self, label: str, estimate_s: float, settles: bool = False) -> None:
        """Count one cell as done and estimate_s as spent; settles: the work up to here has finished whole (the
        last cell of a finished group), so the pace up to now is known."""
        self.done += 1
        self.estimate_done += estimate_s
        self.estimate_left -= estimate_s
        if settles:
            self.settles.append((self.clock() - self.origin, self.estimate_done))
        if not self.quiet and not self.tty:
            self._write(self._line(f"done {label}"))

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()
        self.last_line = self.clock()

    def note(self, text: str) -> None:
        """A message on its own line."""
        if not self.quiet:
            self._write(("\r\033[K" if self.tty else "") + text)

    def finish(self) -> None:
        """Final line with the wall time."""
        self.note(f"{self.done} cells in {duration(self.clock() - self.start)}")
