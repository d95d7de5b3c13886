"""The type check: mypy over kanbench and implementations, configured in pyproject.toml ([tool.mypy]), is clean.

Runs in the test environment (tox -e test, so CI) to need no second install of torch. Skipped only where mypy is
not installed, and failed instead in CI (CI=true), where the test extra always installs it.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_is_clean():
    if importlib.util.find_spec("mypy") is None:
        why = "mypy is not installed (pip install -e '.[test]')"
        if os.environ.get("CI") == "true":
            pytest.fail(why + "; in CI (CI=true) the type check must run")
        pytest.skip(why)
    # No arguments: the files, Python version and per-package settings all come from pyproject.toml.
    proc = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"mypy exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
