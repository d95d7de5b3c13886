"""kanbench: trustworthy benchmarks of Kolmogorov-Arnold Network layers."""

__version__ = "0.1.0"
