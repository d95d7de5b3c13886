"""inkan joins the way a user's implementation would: through the entry-point group `kanbench.implementations`
(see pyproject.toml), not the built-in registry. This module imports no torch, so reading the declaration (names,
info, the report's colours) stays cheap; implementations/inkan_model.py is imported when a model is built."""

from __future__ import annotations

from .adapter import Adapter

adapter = Adapter(
    "inkan", "bspline", "implementations.inkan_model:build",
    description="inkan: third-party uniform cubic B-spline KAN (closed-form local bases), eager",
    requires=("inkan",), install_hint="pip install 'kanbench[inkan]'", colour="#08519c",
)  # fmt: skip
