"""The op breakdown: torch.profiler events of the profiled steps -> self time per category, per call.

Each step of the profiler schedule is one call of the phase. Events are classified by kanbench.measure.opcategories;
backward nodes are linked to the forward op that created them through the autograd sequence number, so the
backward of the basis counts as basis although no basis range encloses it.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable

from torch.autograd import DeviceType

from . import opcategories as oc

EXCLUDED = None  # the category of events inside an untimed range
NOT_KERNELS = ("Memcpy", "Memset")  # device activities that are copies, not kernels
TOP_OPS = 12


def _ancestors(event) -> Iterable:
    """The event, its parent, its parent's parent, ..."""
    while event is not None:
        yield event
        event = event.cpu_parent


class Breakdown:
    """Self time per category, op and kernel counts of every profiled call (step) of one phase, over all cycles."""

    def __init__(self, device_activity: bool) -> None:
        self.device_activity = device_activity
        self.step_self: list[dict[str, float]] = []  # per step: category -> self CPU us
        self.step_device: list[dict[str, float]] = []  # per step: category -> kernel us
        self.step_wall: list[float] = []  # per step: wall us less the untimed ranges
        self.ops = 0
        self.kernels = 0
        self.basis_ranges = 0
        self.step_ops: list[Counter] = []  # per step: (op name, category) -> self CPU us
        self.step_op_calls: list[Counter] = []  # per step: (op name, category) -> calls

    def add(self, events: list) -> None:
        """Account the events of one profiler cycle (prof.events() in on_trace_ready)."""
        cpu = [e for e in events if e.device_type == DeviceType.CPU and not e.is_async]
        steps = sorted((e for e in cpu if e.name.startswith(oc.STEP_PREFIX)), key=lambda e: e.time_range.start)
        if not steps:
            raise ValueError("no ProfilerStep events in the profiled cycle: was prof.step() called after each call?")
        main_thread = steps[0].thread
        basis_by_name = not any(e.name == oc.BASIS_RANGE for e in cpu)
        self.basis_ranges += sum(e.name == oc.BASIS_RANGE for e in cpu)
        forward_of = self._forward_categories(cpu, basis_by_name)
        cache: dict[int, str | None] = {}
        index = {id(s): i for i, s in enumerate(steps)}
        self_us: list[defaultdict[str, float]] = [defaultdict(float) for _ in steps]
        device_us: list[defaultdict[str, float]] = [defaultdict(float) for _ in steps]
        wall = [s.cpu_time_total for s in steps]
        op_us: list[Counter] = [Counter() for _ in steps]
        op_calls: list[Counter] = [Counter() for _ in steps]
        waited = [0.0 for _ in steps]  # the step thread's wait for backward nodes run by CUDA's autograd device thread
        for e in cpu:
            chain = list(_ancestors(e))
            i = next((index[id(a)] for a in chain if id(a) in index), None)
            if i is None:
                if e.thread == main_thread:
                    continue  # outside every step: e.g. the Python frames that drive the steps (with_stack)
                root = chain[-1]  # another thread's event: the step whose span holds it
                i = next((j for j, s in enumerate(steps) if s.time_range.start <= root.time_range.start
                          < s.time_range.end), None)  # fmt: skip
                if i is None:
                    continue
                if e is root and e.name.startswith(oc.EVALUATE_PREFIX):
                    waited[i] += e.cpu_time_total
            category = self._category(e, basis_by_name, forward_of, cache)
            if category is EXCLUDED:
                if e.name == oc.UNTIMED_RANGE and e.thread == main_thread and not self._excluded_above(e):
                    wall[i] -= e.cpu_time_total
                continue
            self_us[i][category] += e.self_cpu_time_total
            if e.name.startswith("aten::"):
                self.ops += 1
            if e.kernels:
                self.kernels += sum(not k.name.startswith(NOT_KERNELS) for k in e.kernels)
                device_us[i][category] += sum(k.duration for k in e.kernels)
            op_us[i][e.name, category] += e.self_cpu_time_total
            op_calls[i][e.name, category] += 1
        for i in range(len(steps)):
            self_us[i]["python"] -= min(waited[i], self_us[i]["python"])
        self.step_self += self_us
        self.step_device += device_us
        self.step_wall += wall
        self.step_ops += op_us
        self.step_op_calls += op_calls

    @staticmethod
    def _excluded_above(event) -> bool:
        return any(a.name == oc.UNTIMED_RANGE for a in _ancestors(event.cpu_parent))

    def _forward_categories(self, cpu: list, basis_by_name: bool) -> dict[int, str]:
        """Sequence number -> category of the forward op that made the autograd node with that number.

        Ops that make no node record the current number too; the one that makes the node is the last to start.
        """
        forward_of: dict[int, str] = {}
        cache: dict[int, str | None] = {}
        for e in sorted(cpu, key=lambda e: e.time_range.start):
            if e.sequence_nr < 0 or any(a.name.startswith(oc.EVALUATE_PREFIX) for a in _ancestors(e)):
                continue
            category = self._category(e, basis_by_name, {}, cache, honour_untimed=False)
            if category is not None:
                forward_of[e.sequence_nr] = category
        return forward_of

    def _category(self, e, basis_by_name: bool, forward_of: dict, cache: dict, honour_untimed: bool = True):
        """The category of e's self time (EXCLUDED inside an untimed range); see kanbench.measure.opcategories."""
        key = id(e)
        if key in cache:
            return cache[key]
        chain = list(_ancestors(e))
        if honour_untimed and any(a.name == oc.UNTIMED_RANGE for a in chain):
            category = EXCLUDED
        else:
            category = oc.self_category(e.name)
            for a in chain if category is None else ():
                category = oc.subtree_category(a.name)
                if category is None and a.name.startswith(oc.EVALUATE_PREFIX):
                    category = forward_of.get(a.sequence_nr)
                if category is not None:
                    break
            if category is None and getattr(e, "is_python_function", False):
                category = "python"  # a Python frame (with_stack) outside every subtree category
            for a in chain if category is None else ():
                category = oc.own_category(a.name, basis_by_name)
                if category is not None:
                    break
            category = category or "uncategorized"
        cache[key] = category
        return category

    def metrics(self) -> dict:
        """Per-call metrics of the phase: means over the faster half of the profiled calls (docs/methodology.md)."""
        n = len(self.step_self)
        if not n:
            raise ValueError("nothing was profiled: no cycle reached on_trace_ready")
        # Interference from other processes only adds time: the faster half of the calls, ranked by wall time,
        # is the undisturbed picture. Each of them is a whole call, so their categories still add up to their wall.
        used = sorted(range(n), key=self.step_wall.__getitem__)[: math.ceil(n / 2)]
        categories = _means([self.step_self[i] for i in used])
        total = sum(categories.values())
        device = _means([self.step_device[i] for i in used])
        device_total = sum(device.values())
        op_us = sum((self.step_ops[i] for i in used), Counter())
        op_calls = sum((self.step_op_calls[i] for i in used), Counter())
        top = [
            {"name": name, "category": cat, "seconds": us / len(used) / 1e6, "calls": op_calls[name, cat] / len(used)}
            for (name, cat), us in op_us.most_common(TOP_OPS)
        ]
        return {
            "categories": _shares(categories, total),
            "total_self_s": total / 1e6,
            "wall_s": statistics.fmean(self.step_wall[i] for i in used) / 1e6,
            "coverage": 1 - categories["uncategorized"] / total if total else 0.0,
            "ops_per_call": self.ops / n,
            "kernels_per_call": self.kernels / n if self.device_activity else None,
            "device_categories": _shares(device, device_total) if self.device_activity else None,
            "total_device_s": device_total / 1e6 if self.device_activity else None,
            "attribution": "ranges" if self.basis_ranges else "names",
            "profiled_calls": n,
            "calls_used": len(used),
            "top_ops": top,
        }


def _means(per_step: list[dict[str, float]]) -> dict[str, float]:
    """Category -> mean over the steps (us); a step without the category counts as 0."""
    return {c: statistics.fmean(step.get(c, 0.0) for step in per_step) for c in oc.CATEGORIES}


def _shares(us: dict[str, float], total: float) -> dict[str, dict[str, float]]:
    """Category -> {"seconds", "share"}."""
    return {c: {"seconds": v / 1e6, "share": v / total if total else 0.0} for c, v in us.items()}
