"""Compare two runs cell by cell and gate on regressions. No torch here.

    kanbench compare results/runs/BASE results/runs/CAND --format markdown

Latency: per (config_hash, phase), the ratio candidate/base of a low quantile of the per-call times (p10 by default:
delays from other work on a shared machine only add time, so the low end of the distribution is what the code
costs), a bootstrap interval that resamples worker processes and then values within them, and a two-sided
Mann-Whitney U test over the raw values. A cell regresses only when it is slower by more than the threshold AND the
difference is significant (p < alpha and the 1 - alpha interval excludes 1). Medians are reported for users.
By default (GateSettings.relative; kanbench regress turns it off) implementations are judged against each other:
an implementation regresses when its cells together are slower than the runs' common shift beyond the threshold
and this pair's own cell-to-cell noise, a single cell only far beyond that noise (relative).

Deterministic gates: FLOPs per call and peak allocator bytes per phase must not grow beyond their own thresholds.
Every scalar speed metric (record.SpeedMetrics) of each common cell is set base beside candidate, not gated.

Exit status: 0 no regression, 1 at least one regression (latency, FLOPs, memory, or a cell that ran in the base and
fails in the candidate), 2 bad input (unreadable runs, different suites, no common cells).

The package, one concept a module: stats (estimators, bootstrap, Mann-Whitney, process groups), cells (reading and
pooling runs, cell labels), gates (GateSettings, the decisions, Comparison), relative (implementations against
each other: the runs' shift and the pair's noise), render (table, markdown, JSON) and
cli (`kanbench compare`). Every threshold and test option lives in one GateSettings, which kanbench regress takes too.
"""

from __future__ import annotations

from .cells import KEY, cell_label, distinguishing_fields, load_side, shared_label
from .command import add_gate_arguments, command, configure_parser, number_arg, settings_from_args
from .gates import Comparison, GateSettings, compare_deterministic, compare_frames, compare_metrics, compare_runs
from .render import fmt_change, gate_rule, render, to_json
from .stats import estimator_quantile, process_groups

__all__ = [
    "KEY", "Comparison", "GateSettings", "add_gate_arguments", "cell_label", "command", "compare_deterministic",
    "compare_frames", "compare_metrics", "compare_runs", "configure_parser", "distinguishing_fields",
    "estimator_quantile", "fmt_change", "gate_rule", "load_side", "number_arg", "process_groups", "render",
    "settings_from_args", "shared_label", "to_json",
]  # fmt: skip
