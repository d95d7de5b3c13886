"""Plausibility of a GPU acceptance run (benchmarks/gpu_acceptance.sh): one PASS / WARN / FAIL line per check.

    python benchmarks/gpu_acceptance.py [--device cuda|cpu] OUT_DIR

OUT_DIR holds the run directories speed/, compile/ and profile/ and report.html. Exit 1 on any FAIL. What is
implausible, and why:
- an error record, but for non-finite outputs in float16 / bfloat16 (a reduced-precision overflow the record
  explains; a WARN), or a skip but for limits.max_call_s (an implementation that is not installed is a WARN);
- a CUDA time not from CUDA events (no host_time_s), or under 1 us per call (no KAN phase runs that fast: a missed
  region), or a fraction of peak above 1.05 on CUDA (FLOPs overcounted or a region that missed device work; on a
  CPU only a WARN: its float16 matmul can be slower than the elementwise work the FLOPs include);
- ceilings missing for a dtype, or bfloat16's not above twice float32's (TF32 off: tensor cores run bfloat16 far
  faster), or no GPU description in environment.json;
- a compiled cell that compiled no graph, a CUDA profile record without kernels, a report under 10 kB.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kanbench import results  # noqa: E402
from kanbench.results import peak_for  # noqa: E402
from kanbench.results.record import Record  # noqa: E402

DTYPES = ("float32", "bfloat16", "float16")
MIN_CALL_S = 1e-6
MAX_FRACTION = 1.05
ALLOWED_SKIPS = ("limits.max_call_s",)
MISSING = "is not importable"  # an optional implementation not installed: said (WARN), not a measurement fault


@dataclass(frozen=True)
class Finding:
    """One line of the verdict."""

    level: str  # "PASS", "WARN" or "FAIL"
    text: str

    def line(self) -> str:
        """PASS|WARN|FAIL text."""
        return f"{self.level:4} {self.text}"


def _where(r: Record) -> str:
    mode = "+compile" if (r.options or {}).get("compile") else ""
    return f"{r.impl}{mode} {r.phase} {r.device} {r.dtype}"


def outcomes(records: list[Record], name: str) -> list[Finding]:
    """Every record ok, or a skip / a reduced-precision overflow that says so."""
    out = []
    for r in records:
        reason = r.reason or ""
        if r.status == "skipped" and MISSING in reason:
            out.append(Finding("WARN", f"{name}: {_where(r)} not measured: {reason}"))
        elif r.status == "skipped" and not any(a in reason for a in ALLOWED_SKIPS):
            out.append(Finding("FAIL", f"{name}: {_where(r)} skipped: {reason}"))
        elif r.status == "error" and "non-finite" in reason and r.dtype in ("float16", "bfloat16"):
            out.append(Finding("WARN", f"{name}: {_where(r)}: {reason.splitlines()[0]}"))
        elif r.status == "error":
            out.append(Finding("FAIL", f"{name}: {_where(r)} error: {reason.splitlines()[0] if reason else '?'}"))
    ok = sum(r.status == "ok" for r in records)
    if not ok:
        out.append(Finding("FAIL", f"{name}: no ok record of {len(records)}"))
    else:
        out.append(Finding("PASS", f"{name}: {ok} of {len(records)} records ok"))
    return out


def timings(records: list[Record], environment: dict, device: str) -> list[Finding]:
    """Every ok time event-timed on CUDA, above MIN_CALL_S, and under the ceiling of its own dtype."""
    out = []
    machine = environment.get("machine") or {}
    checked = 0
    for r in records:
        if r.status != "ok" or not r.time_s:
            continue
        checked += 1
        metrics = r.metrics or {}
        median = r.time_s["median"]
        if median < MIN_CALL_S:
            out.append(Finding("FAIL", f"{_where(r)}: {median * 1e6:.3g} us a call, below {MIN_CALL_S * 1e6:g} us"))
        if device == "cuda" and "host_time_s" not in metrics:
            out.append(Finding("FAIL", f"{_where(r)}: no host_time_s: not timed by CUDA events"))
        fraction = metrics.get("fraction_of_peak")
        if fraction is not None and fraction > MAX_FRACTION:
            ceiling = peak_for(machine, "peak_flop_per_s", r.device, r.dtype)
            # a CPU's float16 / bfloat16 matmul can be slower than its elementwise work, which the FLOPs include
            level = "FAIL" if device == "cuda" else "WARN"
            out.append(Finding(level, f"{_where(r)}: {fraction:.2f} of the {r.dtype} ceiling ({ceiling:.3g} FLOP/s)"))
        if not r.peak_mem_bytes:
            out.append(Finding("FAIL", f"{_where(r)}: peak memory {r.peak_mem_bytes!r}: the allocator saw nothing"))
        if metrics.get("throttled"):
            out.append(Finding("WARN", f"{_where(r)}: SM clock fell to {metrics['sm_clock_mhz']} MHz (throttled)"))
    if not any(f.level == "FAIL" for f in out):
        events = "event-timed, " if device == "cuda" else ""
        out.append(Finding("PASS", f"{checked} ok timings: {events}>= 1 us, at most {MAX_FRACTION} of peak"))
    return out


def ceilings(environment: dict, device: str) -> list[Finding]:
    """The GPU described and a ceiling per dtype, bfloat16's well above float32's."""
    if device != "cuda":
        return []
    out = []
    gpu = environment.get("gpu") or {}
    if not gpu.get("name"):
        out.append(Finding("FAIL", f"environment.json has no GPU description: {gpu or 'absent'}"))
    else:
        clocks = "" if gpu.get("sm_clock_max_mhz") else f" (no clocks: {gpu.get('nvml_reason')})"
        out.append(Finding("PASS", f"GPU {gpu['name']}, driver {gpu.get('driver_version')}{clocks}"))
    found = {d: peak_for(environment.get("machine"), "peak_flop_per_s", "cuda", d) for d in DTYPES}
    missing = [d for d, v in found.items() if not v]
    if missing:
        out.append(Finding("FAIL", f"no cuda ceiling for {', '.join(missing)}"))
    elif found["bfloat16"] < 2 * found["float32"]:  # type: ignore[operator]
        out.append(Finding("FAIL", f"bfloat16 ceiling {found['bfloat16']:.3g} not above twice float32's "
                                   f"{found['float32']:.3g} FLOP/s: TF32 on, or the ceilings mixed up"))  # fmt: skip
    else:
        text = ", ".join(f"{d} {v / 1e12:.1f}" for d, v in found.items() if v)
        out.append(Finding("PASS", f"ceilings (TFLOP/s): {text}"))
    return out


def _compiled(r: Record) -> list:
    return (r.metrics or {}).get("compiled") or [None]  # no entry at all: nothing proves it compiled


def compiled(records: list[Record]) -> list[Finding]:
    """Every ok compiled record compiled at least one graph in every process."""
    cells = [r for r in records if (r.options or {}).get("compile") and r.status == "ok"]
    bad = [r for r in cells if not all(c and c.get("graphs", 0) >= 1 for c in _compiled(r))]
    if not cells:
        return [Finding("FAIL", "compile: no ok compiled record")]
    if bad:
        return [Finding("FAIL", f"compile: {_where(r)} compiled no graph") for r in bad]
    return [Finding("PASS", f"compile: {len(cells)} compiled records, each with a graph compiled")]


def kernels(records: list[Record], device: str) -> list[Finding]:
    """Every ok CUDA profile record counted kernels per call."""
    ok = [r for r in records if r.status == "ok"]
    if device != "cuda":
        return [Finding("PASS", f"profile: {len(ok)} ok records (kernels not checked off CUDA)")]
    bad = [r for r in ok if not ((r.metrics or {}).get("kernels_per_call") or 0) >= 1]
    if bad or not ok:
        return [Finding("FAIL", f"profile: {_where(r)} has no CUDA kernels per call") for r in bad] or [
            Finding("FAIL", "profile: no ok record")
        ]
    return [Finding("PASS", f"profile: {len(ok)} records, {min(r.metrics['kernels_per_call'] for r in ok):.0f}+ "
                            "kernels per call")]  # fmt: skip


def verdict(out_dir: Path, device: str) -> list[Finding]:
    """Every check of one acceptance run."""
    findings: list[Finding] = []
    runs = {}
    for name in ("speed", "compile", "profile"):
        try:
            runs[name] = (results.read_records(out_dir / name), results.read_environment(out_dir / name))
        except Exception as exc:
            findings.append(Finding("FAIL", f"{name}: cannot read {out_dir / name}: {exc}"))
    if "speed" in runs:
        records, environment = runs["speed"]
        findings += outcomes(records, "speed") + timings(records, environment, device) + ceilings(environment, device)
    if "compile" in runs:
        records, environment = runs["compile"]
        findings += outcomes(records, "compile") + timings(records, environment, device) + compiled(records)
    if "profile" in runs:
        records, _ = runs["profile"]
        findings += outcomes(records, "profile") + kernels(records, device)
    report = out_dir / "report.html"
    size = report.stat().st_size if report.exists() else 0
    findings.append(Finding("PASS" if size > 10_000 else "FAIL", f"report {report}: {size} bytes"))
    return findings


def main(argv: list[str] | None = None) -> int:
    """Print the findings; exit 1 on any FAIL."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    args = parser.parse_args(argv)
    findings = verdict(args.out_dir, args.device)
    for f in findings:
        print(f.line())
    failed = sum(f.level == "FAIL" for f in findings)
    print(f"{len(findings) - failed} passed or warned, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
