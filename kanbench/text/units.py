"""Times, bytes and FLOPs as short text: one place picks the unit and the digits. No torch here.

Three significant digits in the unit that keeps the number in [1, 1000): 1.5 s, 31.4 ms, 742 us, 8 ns; 4 KiB,
1.5 MiB; 12.3 MFLOP. A number never turns into exponent notation: 999.7 us reads 1 ms, and beyond the largest unit
the integer part is printed whole (1500 s). None, NaN and infinities read as MISSING.
"""

from __future__ import annotations

import math

MISSING = "-"
TIME_UNITS = (("ns", 1e-9), ("us", 1e-6), ("ms", 1e-3), ("s", 1.0))
BYTE_UNITS = (("B", 1), ("KiB", 2**10), ("MiB", 2**20), ("GiB", 2**30))
FLOP_UNITS = (("FLOP", 1), ("kFLOP", 1e3), ("MFLOP", 1e6), ("GFLOP", 1e9), ("TFLOP", 1e12), ("PFLOP", 1e15))
COUNT_UNITS = (("instr", 1), ("k instr", 1e3), ("M instr", 1e6), ("G instr", 1e9))


def _scaled(value: float | None, units: tuple[tuple[str, float], ...], missing: str) -> str:
    """value in the largest unit it reaches, three significant digits, never in exponent notation."""
    if value is None or not math.isfinite(value):
        return missing
    magnitude = abs(value)
    i = max((j for j, (_, scale) in enumerate(units) if magnitude >= scale), default=0)
    if i == 0 and units[0][1] == 1:
        return f"{value:.0f} {units[0][0]}"  # whole bytes or FLOPs: no fractions of the base unit
    text = f"{value / units[i][1]:.3g}"
    # Rounding can reach 1000 (999.7 us -> "1e+03"): that is the next unit's 1.
    if abs(float(text)) >= 1000 and i + 1 < len(units):
        i += 1
        text = f"{value / units[i][1]:.3g}"
    if "e" in text:  # beyond the largest unit
        text = f"{value / units[i][1]:.0f}"
    return f"{text} {units[i][0]}"


def fmt_time(seconds: float | None, missing: str = MISSING, micro: str = "us") -> str:
    """Seconds as ns, us, ms or s with three significant digits; micro spells the microsecond (HTML: "µs")."""
    text = _scaled(seconds, TIME_UNITS, missing)
    return text[:-2] + micro if text.endswith(" us") else text


def fmt_bytes(n: float | None, missing: str = MISSING) -> str:
    """Bytes as B, KiB, MiB or GiB (binary prefixes) with three significant digits."""
    return _scaled(n, BYTE_UNITS, missing)


def fmt_flops(n: float | None, missing: str = MISSING) -> str:
    """FLOPs as FLOP, kFLOP, MFLOP, GFLOP, TFLOP or PFLOP (decimal prefixes) with three significant digits."""
    return _scaled(n, FLOP_UNITS, missing)


def fmt_instructions(n: float | None, missing: str = MISSING) -> str:
    """Instruction counts as instr, k, M or G instr (decimal prefixes) with three significant digits."""
    return _scaled(n, COUNT_UNITS, missing)


def fmt_value(value: float | None, unit: str, missing: str = MISSING) -> str:
    """A per-call value of a speed record in its unit: "s" (a time) or "instructions"."""
    return fmt_instructions(value, missing) if unit == "instructions" else fmt_time(value, missing)
