"""Ad hoc adapters to the original implementations, for side-by-side timing (README.md: how to check them out).

Each module's `adapter()` builds the original's own layers from a checkout outside the repository
($KANBENCH_ORIGINALS, default <repo>/../originals), e.g. implementations.get("benchmarks.originals.chebykan:adapter").
"""
