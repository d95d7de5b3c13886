"""flashkan joins as inkan does: through the entry-point group `kanbench.implementations` (see pyproject.toml). This
module imports no torch; implementations/flashkan_model.py is imported when a model is built."""

from __future__ import annotations

from .adapter import Adapter

adapter = Adapter(
    "flashkan", "bspline", "implementations.flashkan_model:build",
    description="flashkan: third-party cubic B-spline KAN (truncated powers, no scaler), eager basis",
    requires=("flashkan",), install_hint="pip install 'kanbench[flashkan]'", colour="#e377c2",
)  # fmt: skip
