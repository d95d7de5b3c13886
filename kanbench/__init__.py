"""kanbench: trustworthy benchmarks of Kolmogorov-Arnold Network layers."""

__version__ = "0.1.0"

# The shared GPU acceptance scripts (../shared/gpu-check) import these modules by their names from before the
# folders; they resolve on first use, so `import kanbench` stays cheap.
_MOVED = {"env": "kanbench.measure.env", "memory": "kanbench.measure.memory", "timing": "kanbench.measure.timing"}


def __getattr__(name: str) -> object:
    if name in _MOVED:
        import importlib

        return importlib.import_module(_MOVED[name])
    raise AttributeError(f"module 'kanbench' has no attribute {name!r}")
