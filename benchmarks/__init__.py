"""Scripts that measure kanbench's own targets (python benchmarks/NAME.py); shared helpers below."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_suite_text(text: str, name: str, tmp: str | Path, out: str | None = None) -> str:
    """Write a suite's TOML to tmp/name.toml and `kanbench run` it quietly into out (default tmp/run); the run dir."""
    suite = Path(tmp) / f"{name}.toml"
    suite.write_text(text)
    out = out or str(Path(tmp) / "run")
    cmd = [sys.executable, "-m", "kanbench", "run", str(suite), "--out", out, "--quiet"]
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return out
