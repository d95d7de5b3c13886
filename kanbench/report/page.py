"""The HTML page: one self-contained file with plotly.js inlined once, the figures and the records as JSON, and
every text from results HTML-escaped. A Content-Security-Policy lets only the page's own two scripts run."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd

import kanbench

from ..analysis.compare import Comparison, gate_rule
from ..analysis.compare.gates import short_commit
from ..results.record import PHASES, is_number
from ..text import escape
from .answer import RULE, Answer, Rank, fmt_config, trust
from .claims import Block as ClaimBlock
from .comparison import VERDICT_ORDER, counted, measure, per_call, sorted_cells
from .data import impl_rank, zero_rows
from .figures import Figure
from .summary import SummaryTable, SweepRatio, fmt_ratio, fmt_time

DATA_ID = "kanbench-data"
FIGURES_ID = "kanbench-figures"

STYLE = """
:root { --fg: #1d232b; --muted: #5b6570; --line: #d9dee3; --best: #dff3e3; --bad: #fde2e1; --warn: #fff3d6; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); margin: 0; }
header { padding: 14px 24px 8px; border-bottom: 1px solid var(--line); }
header h1 { font-size: 20px; margin: 0 0 4px; }
nav a { margin-right: 14px; color: #2458a6; text-decoration: none; }
main { padding: 8px 24px 40px; max-width: 1500px; }
section { margin-top: 22px; }
h2 { font-size: 17px; border-bottom: 1px solid var(--line); padding-bottom: 3px; }
h3 { font-size: 15px; margin: 16px 0 4px; }
table { border-collapse: collapse; margin: 6px 0 10px; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f6f8; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num i { font-style: normal; white-space: nowrap; }
td.best { background: var(--best); font-weight: 600; }
tr.regression td { background: var(--bad); }
tr.improvement td { background: var(--best); }
td.best-kan { background: #e3edfb; }
.ratio { display: block; color: var(--muted); font-size: 12px; font-weight: 400; }
.noisy { color: #b15c00; cursor: help; }
.muted, .caption { color: var(--muted); }
.caption { font-size: 13px; margin: 0 0 6px; }
.empty { color: var(--muted); font-style: italic; }
.notice { background: var(--warn); border: 1px solid #f0d48a; padding: 8px 12px; margin: 10px 0; }
.plot { width: 100%; min-height: 320px; }
.scroll { overflow-x: auto; }
.cells { font: 12px/1.5 ui-monospace, monospace; margin: 4px 0 8px 16px; }
code { background: #f4f6f8; padding: 0 3px; }
select { font: inherit; padding: 2px 4px; }
"""

# The page's own code: draw the figures, switch summary configurations, download the embedded records.
SCRIPT = """
(function () {
  "use strict";
  var payload = JSON.parse(document.getElementById("__FIGURES_ID__").textContent);
  var config = {responsive: true, displaylogo: false};
  var drawn = payload.figures.map(function (f) {
    f.figure.layout.template = payload.template;
    return Plotly.newPlot(f.id, f.figure.data, f.figure.layout, config);
  });
  Promise.all(drawn).then(
    function () { document.body.setAttribute("data-rendered", "true"); },
    function (err) { document.body.setAttribute("data-rendered", "error"); console.error(err); });
  var select = document.getElementById("summary-config");
  if (select) {
    select.addEventListener("change", function () {
      document.querySelectorAll(".summary-table").forEach(function (t) { t.hidden = t.id !== select.value; });
    });
  }
  var button = document.getElementById("download-data");
  if (button) {
    button.addEventListener("click", function () {
      var data = JSON.parse(document.getElementById("__DATA_ID__").textContent);
      var lines = [];
      data.runs.forEach(function (run) {
        run.records.forEach(function (row) {
          var record = Object.assign({}, run.constant);
          run.fields.forEach(function (name, i) { record[name] = row[i]; });
          lines.push(JSON.stringify(record));
        });
      });
      var url = URL.createObjectURL(new Blob([lines.join("\\n") + "\\n"], {type: "application/x-ndjson"}));
      var a = document.createElement("a");
      a.href = url;
      a.download = button.getAttribute("data-filename");
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
    });
  }
})();
""".replace("__FIGURES_ID__", FIGURES_ID).replace("__DATA_ID__", DATA_ID)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def e(value) -> str:
    """HTML-escaped text of any value (None as an em dash), NUL, controls and bidi formatting shown escaped."""
    return "—" if _missing(value) else escape.html(value)


def named(value) -> str:
    """A name from a run (implementation, cell label) as e() gives it, isolated in <bdi>: a right-to-left name
    cannot reorder the numbers beside it."""
    return "—" if _missing(value) else escape.html_name(value)


def script_json(text: str) -> str:
    """JSON text made safe inside a <script> element: no "</script>", "<!--" or "&" can appear in it, nor a raw
    bidi formatting character (escape.json_text)."""
    return escape.json_text(text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e"))


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@dataclass
class RunInfo:
    """What the page says about one run in "What was run"."""

    name: str
    path: str
    environment: dict | None
    suites: list[str]
    devices: list[str]
    counts: dict[str, int]
    records: list[dict]


@dataclass
class Page:
    """Everything the page shows, already computed."""

    runs: list[RunInfo]
    frame: pd.DataFrame
    superseded: int
    tables: list[SummaryTable]
    sweep: list[SweepRatio]
    figures: dict[str, list[Figure]]  # section -> figures
    accuracy_table: list[tuple]
    profile_table: list[tuple]
    claims: list[ClaimBlock]
    comparison: Comparison | None
    comparison_figure: Figure | None
    problems: pd.DataFrame
    noisy: pd.DataFrame
    title: str
    warnings: list[str] = field(default_factory=list)
    answer: Answer | None = None


# The HTML every section is built of; what these are given is already escaped.


def _p(html: str, cls: str = "") -> str:
    """A paragraph, of a class where given (notice, caption, empty, muted, cells)."""
    return f'<p class="{cls}">{html}</p>' if cls else f"<p>{html}</p>"


def _num(html) -> str:
    return f'<td class="num">{html}</td>'


def _table(header: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    """A table from already escaped cells; a cell that is not already a <td> is wrapped in one."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _escaped(rows) -> list[list[str]]:
    return [[e(c) for c in row] for row in rows]


def _details(summary: str, body: str) -> str:
    return f"<details><summary>{summary}</summary>{body}</details>"


def _section(key: str, title: str, body: str) -> str:
    """One section of the page, its anchor the nav links to."""
    return f'<section id="{key}"><h2>{title}</h2>{body}</section>'


def sections(page: Page, data_filename: str) -> list[tuple[str, str, str]]:
    """The page's sections in order, as (anchor, title, HTML); a comparison only where two runs were compared (the
    warnings say why not, where one was asked for)."""
    comp = page.comparison
    compared = [("comparison", "Comparison of two runs", comparison_section(page))] if comp is not None else []
    return [
        ("answer", "The answer", answer_section(page)),
        ("run", "What was run", what_was_run(page)),
        ("summary", "Which one, at what cost", summary_section(page)),
        ("scaling", "Scaling", _figures(page, "scaling")),
        ("accuracy", "Accuracy", accuracy_section(page)),
        ("profile", "Profile", profile_section(page)),
        ("claims", "Published claims", claims_section(page)),
        *compared,
        ("notes", "Notes", notes_section(page)),
        ("data", "Data", data_section(page, data_filename)),
    ]


def render(page: Page, plotly_js: str, data_filename: str) -> str:
    """The whole HTML document."""
    drawn = [f for figs in page.figures.values() for f in figs]
    if page.comparison_figure is not None:
        drawn.append(page.comparison_figure)
    plotly_script = "\n" + plotly_js + "\n"
    csp = (
        f"default-src 'none'; script-src {_sha256(plotly_script)} {_sha256(SCRIPT)}; style-src 'unsafe-inline'; "
        "img-src data: blob:; font-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'"
    )
    listed = sections(page, data_filename)
    nav = "".join(f'<a href="#{key}">{title}</a>' for key, title, _ in listed)
    warnings = "".join(_p(e(w), "notice") for w in page.warnings)
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="kanbench {e(kanbench.__version__)}">
<title>{e(page.title)}</title>
<style>{STYLE}</style>
</head>
<body>
<header><h1>{e(page.title)}</h1>
<p class="muted">kanbench {e(kanbench.__version__)} report, generated {e(generated)} · {len(page.frame)} records \
from {len(page.runs)} run(s)</p>
<nav>{nav}</nav></header>
<main>{warnings}{"".join(_section(*s) for s in listed)}</main>
<script id="{DATA_ID}" type="application/json">{embedded_data(page)}</script>
<script id="{FIGURES_ID}" type="application/json">{figures_json(drawn)}</script>
<script>{plotly_script}</script>
<script>{SCRIPT}</script>
</body>
</html>
"""


def figure_html(fig: Figure) -> str:
    """A figure's heading, its plot div (drawn by the page script) or why there is none, and its caption."""
    head = f"<h3>{e(fig.title)}</h3>"
    if fig.figure is None:
        return head + _p(f"No figure: {e(fig.empty_reason)}.", "empty")
    return head + f'<div class="plot" id="fig-{e(fig.key)}"></div>' + _p(e(fig.caption), "caption")


def _figures(page: Page, key: str) -> str:
    return "".join(figure_html(f) for f in page.figures.get(key, []))


def answer_section(page: Page) -> str:
    """First on the page: one configuration's implementations ranked per phase, each gap resolved or not."""
    found = page.answer
    if found is None or not found.ranks:
        if any(t.unit == "instructions" for t in page.tables):
            return _p("Nothing timed to rank: these runs counted instructions (the instruction clock, callgrind) "
                      "rather than time; the counts are in the tables below.", "notice")  # fmt: skip
        return _p("No speed measurements to rank (see Notes).", "notice")
    environments = [info.environment for info in page.runs]
    return "".join([
        _p(f"Configuration: <b>{e(fmt_config(found.config))}</b>. {e(trust(found, environments))}"),
        _p("<b>B-spline against FastKAN</b> (bspline-fast vs fastkan): " + "; ".join(map(e, found.verdict))),
        _ranks_table(found.ranks),
        _p("Fastest first, per phase (where one group of one run holds them all, in the order of their paired "
           "comparison, so a median may stand out of order when values scattered): median time per call and its "
           "ratio to mlp-iso (an MLP with the B-spline KAN's parameter count; the paired ratio where the two were "
           "measured together). &lt;: resolved as faster than the next one; ≈: not, so this data cannot order the "
           "two. Measured together (one group of one run, value by value): resolved when the 95% interval of the "
           "paired ratio lies on one side of 1 and the gap is at least 5%. <sup>u</sup>: not measured together "
           "(other runs, groups or older records), judged by the unpaired rule: interquartile ranges apart and the "
           "gap wider than both sides moving by the run's process spread. Configuration chosen by rule: "
           f"{e(RULE)}; every other configuration is in the tables below.", "caption"),
        _figures(page, "answer"),  # cost against accuracy, with accuracy runs
    ])  # fmt: skip


def _ranks_table(ranks: dict[str, list[Rank]]) -> str:
    depth = max(len(v) for v in ranks.values())
    rows = [[f"{i + 1}", *(_rank_cell(r[i]) if i < len(r) else "<td></td>" for r in ranks.values())]
            for i in range(depth)]  # fmt: skip
    return _table(["rank", *map(e, ranks)], rows)


def _rank_cell(r: Rank) -> str:
    """An implementation's median, its ratio to mlp-iso and whether the gap to the next one is resolved."""
    iso = f' <span class="ratio">{r.vs_iso:.2f}x mlp-iso</span>' if r.vs_iso is not None else ""
    gap = {True: " &lt;", False: " ≈", None: ""}[r.resolved]
    if r.gap is not None and r.gap.rule != "paired":
        gap += "<sup>u</sup>"
    return _num(f"<b>{named(r.impl)}</b> {e(fmt_time(r.median))}{iso}{gap}")


def _env_get(env: dict | None, *keys, default=None):
    value = env
    for k in keys:
        if not isinstance(value, dict):
            return default
        value = value.get(k)
    return default if value is None else value


def _device_text(info: RunInfo) -> str:
    env = info.environment
    parts = []
    for d in info.devices:
        if d.startswith("cuda"):  # environment["gpu"] in newer runs, cuda.devices in older ones
            names = [n for n in [_env_get(env, "gpu", "name", default="")] if n]
            names = names or _env_get(env, "cuda", "devices", default=[])
            driver = _env_get(env, "gpu", "driver_version", default="")
            name = ", ".join(map(str, names)) or "GPU name not recorded"
            parts.append(f"{d} ({name}{', driver ' + str(driver) if driver else ''})")
        else:
            parts.append(f"{d} ({_env_get(env, 'cpu_model', default='CPU model not recorded')})")
    return "; ".join(parts) or "—"


def _commit_html(commit) -> str:
    if not commit:
        return "—"
    return f'<code title="{e(commit)}">{e(short_commit(commit))}</code>'


def _run_row(info: RunInfo) -> list[str]:
    env = info.environment
    counts = ", ".join(f"{n} {s}" for s, n in info.counts.items() if n)
    cores = _env_get(env, "cpu_affinity") or _env_get(env, "cpu_count")
    machine = f"{_env_get(env, 'hostname', default='')} · {_env_get(env, 'os', default='')}"
    machine += f" · {cores} cores" if cores else ""
    threads = _env_get(env, "worker_torch_threads") or _env_get(env, "torch_threads")
    return [
        f"<code>{e(info.name)}</code>", e(", ".join(info.suites)), e(_env_get(env, "date_utc")),
        _commit_html(_env_get(env, "git_commit")), e(machine.strip(' ·')), e(_device_text(info)),
        e(_env_get(env, "torch")), e(threads), e(_env_get(env, "python")), e(counts),
    ]  # fmt: skip


def what_was_run(page: Page) -> str:
    """The runs: suite, machine, torch, device, threads, date, git commit, record counts."""
    header = ["run", "suite", "date (UTC)", "git commit", "machine", "devices measured", "torch", "threads",
              "python", "records"]  # fmt: skip
    out = [_table(header, [_run_row(info) for info in page.runs]), comparison_headline(page.comparison)]
    missing = [info.name for info in page.runs if info.environment is None]
    synthetic = [info.name for info in page.runs if info.environment and info.environment.get("synthetic")]
    if missing:
        out.append(_p(f"environment.json is missing in {e(', '.join(missing))}: machine unknown.", "notice"))
    if synthetic:
        out.append(_p(f"{e(', '.join(synthetic))}: synthetic data for testing, not a measurement.", "notice"))
    if page.superseded:
        out.append(_p("Where runs measured the same cell, the sections below show the later run's record "
                      f"({page.superseded} earlier record(s) set aside here; all stay in the embedded data).",
                      "muted"))  # fmt: skip
    return "".join(out)


def comparison_headline(comp: Comparison | None) -> str:
    """One line for the top of the page: how many cells regressed or improved."""
    if comp is None:
        return ""
    counts = comp.latency["verdict"].value_counts()
    parts = ", ".join(f"{int(counts.get(v, 0))} {v}" for v in ("regression", "improvement", "not significant"))
    slow = comp.implementation_regressions()
    slower = f"; slower implementation(s): {', '.join(slow['implementation'])}" if len(slow) else ""
    return _p(
        f"Comparison of {e(comp.cand_label)} with {e(comp.base_label)}"
        f"{' (the gate fails)' if comp.failed else ''} over {len(comp.latency)} common cells: {e(parts)}, "
        f"{int(counts.get('no change', 0))} no change{e(slower)} "
        '(<a href="#comparison">details</a>).',
        "notice" if comp.failed else "muted",
    )


def summary_section(page: Page) -> str:
    """The first screen's per-implementation table with a configuration picker, and the sweep-wide ratios."""
    if not page.tables:
        if (page.frame["status"] == "ok").sum() == 0:
            return _p("No implementation has a timing: every record of these runs was skipped or failed (see Notes).",
                      "notice")  # fmt: skip
        return _p("These runs hold no speed measurements (only accuracy or profile records).", "notice")
    out = []
    if len(page.tables) > 1:
        options = "".join(f'<option value="summary-{i}">{e(t.title)}</option>' for i, t in enumerate(page.tables))
        out.append(_p(f'<label>Configuration ({len(page.tables)} measured): <select id="summary-config">{options}'
                      "</select></label>"))  # fmt: skip
    out.extend(summary_table_html(t, i) for i, t in enumerate(page.tables))
    out.append(_p(summary_caption(page.tables), "caption"))
    return "".join(out) + _sweep_html(page.sweep)


def summary_table_html(table: SummaryTable, index: int) -> str:
    """One configuration's table: a row per implementation, best cells highlighted, ratios beneath values."""
    columns = [c for c in table.columns if any(cells.get(c) for _, _, cells in table.rows)]
    rows = []
    for impl, family, cells in table.rows:
        row = [f'<b>{named(impl)}</b><span class="ratio">{e(family)}</span>']
        for c in columns:
            entries = cells.get(c, [])
            cls = "num"
            if entries and all(x.best for x in entries):
                cls += " best"
            elif entries and all(x.best or x.best_kan for x in entries):
                cls += " best-kan"
            row.append(f'<td class="{cls}">{_entries_html(entries, c != "accuracy") or "—"}</td>')
        rows.append(row)
    body = _table(["implementation", *map(e, columns)], rows)
    hidden = "" if index == 0 else " hidden"
    return f'<div class="summary-table" id="summary-{index}"{hidden}><h3>{e(table.title)}</h3>{body}</div>'


def _entries_html(entries, with_ratios: bool) -> str:
    parts = []
    for entry in entries:
        mark = ' <span class="noisy" title="noisy: IQR above 10 % of the median">≈</span>' if entry.noisy else ""
        small = []
        if entry.note:
            small.append(e(entry.note))
        if with_ratios and entry.ratios:
            small.append(" · ".join(f"<i>{fmt_ratio(v)} {e(k)}</i>" for k, v in entry.ratios.items()))
        lines = "".join(f'<span class="ratio">{x}</span>' for x in small)
        parts.append(f"<i>{e(entry.text)}{mark}</i>{lines}")
    return "<br>".join(parts)


def summary_caption(tables: list[SummaryTable]) -> str:
    """The summary tables' caption, describing only the columns and marks they show (HTML)."""
    entries = [x for t in tables for _, _, cells in t.rows for c, xs in cells.items() if xs for x in xs]
    shown = {c for t in tables for _, _, cells in t.rows for c, xs in cells.items() if xs}
    refs = [r for r in ("mlp", "mlp-iso") if any(r in x.ratios for x in entries)]
    memory = any(c.startswith("peak memory") for c in shown)
    units = {t.unit for t in tables}
    text = "Median seconds per call of each phase." if units == {"s"} else (
        "Median instructions per call of each phase, counted by callgrind (the instruction clock)." if units == {
            "instructions"} else "Median seconds per call of each phase; in the tables marked so, median "
        "instructions per call counted by callgrind (the instruction clock).")  # fmt: skip
    if refs:
        said = {"mlp": "<code>mlp</code> (same widths)",
                "mlp-iso": "<code>mlp-iso</code> (an MLP scaled to the B-spline KAN's parameter count)"}  # fmt: skip
        text += (" Beneath each value: the value divided by that of " + " and of ".join(said[r] for r in refs)
                 + " in the same configuration.")  # fmt: skip
    lowest = " or ".join(w for u, w in (("s", "lowest time"), ("instructions", "lowest count")) if u in units)
    best = [lowest] + (["lowest memory"] if memory else []) + (
        ["highest accuracy, lowest RMSE"] if "accuracy" in shown else [])  # fmt: skip
    text += (
        f" Green: the best of the column ({', '.join(best)}; for times, also every one the judge cannot resolve "
        "as slower than it); blue: the best KAN where an MLP is best overall."
    )
    if any(x.noisy for x in entries):
        text += ' <span class="noisy">≈</span> marks a noisy timing (IQR above 10 % of the median).'
    if "accuracy" in shown:
        text += (" Accuracy: mean ± standard deviation over seeds of the final test metric of the same "
                 "implementation and widths.")  # fmt: skip
    return text


def _sweep_html(sweep: list[SweepRatio]) -> str:
    """Per implementation and phase, the geometric mean over the sweep of its ratio to each reference MLP."""
    if not sweep:
        return ""
    phases = sorted({s.phase for s in sweep}, key=lambda p: (PHASES.index(p) if p in PHASES else 99, p))
    refs = list(dict.fromkeys(s.reference for s in sweep))
    impls = list(dict.fromkeys(s.impl for s in sorted(sweep, key=lambda s: impl_rank(s.impl))))
    index = {(s.impl, s.phase, s.reference): s for s in sweep}

    def cell(impl: str, phase: str) -> str:
        found = [index[impl, phase, ref] for ref in refs if (impl, phase, ref) in index]
        texts = [f'{fmt_ratio(s.geomean)} {e(s.reference)} <span class="ratio">range {s.low:.3g}–{s.high:.3g}, '
                 f"{s.n} cell{'s' if s.n != 1 else ''}</span>" for s in found]  # fmt: skip
        return _num("".join(texts) or "—")

    rows = [[f"<b>{named(impl)}</b>", *(cell(impl, phase) for phase in phases)] for impl in impls]
    return "<h3>Across the whole sweep</h3>" + _table(["implementation", *map(e, phases)], rows) + _p(
        "Geometric mean over every configuration both were measured in of the median time divided by the reference "
        "MLP's, with the smallest and largest ratio.", "caption")  # fmt: skip


def accuracy_section(page: Page) -> str:
    """Accuracy figures and a table of final metrics."""
    if all(f.figure is None for f in page.figures.get("accuracy", [])) and not page.accuracy_table:
        return _p("No accuracy records in these runs (run an accuracy suite, e.g. suites/mnist.toml).", "empty")
    out = [_figures(page, "accuracy")]
    if page.figures.get("answer"):
        out.append(_p('Accuracy against training time, with its Pareto front, is in <a href="#answer">The answer</a>.',
                      "caption"))  # fmt: skip
    if page.accuracy_table:
        header = ["dataset", "implementation", "widths", "metric", "final test (mean ± std)", "best val", "seeds",
                  "epochs", "train time"]  # fmt: skip
        out.append("<h3>Final metrics</h3>" + _table(header, _escaped(page.accuracy_table)))
    return "".join(out)


def profile_section(page: Page) -> str:
    """Op-category shares and per-call op counts."""
    if all(f.figure is None for f in page.figures.get("profile", [])) and not page.profile_table:
        return _p("No profile records in these runs (run <code>kanbench profile SUITE</code>).", "empty")
    header = ["implementation", "phase", "device", "widths", "batch", "self time per call", "coverage",
              "ATen ops per call", "CUDA kernels per call", "traces"]  # fmt: skip
    return _figures(page, "profile") + (_table(header, _escaped(page.profile_table)) if page.profile_table else "")


def claims_section(page: Page) -> str:
    """Published figures beside ours, each with the device and method it was measured with."""
    out = [_p("Figures quoted from their sources (kept in kanbench/report/claims.toml), not measured here, beside the "
              "matching cells of these runs. Ours: median of synchronised timings (forward and backward are separate "
              "phases) on the device named in the column. Published GPU timings taken without synchronisation "
              "measure kernel launches more than kernels, so compare ratios rather than absolute times. "
              "<code>kanbench run suites/seed-claims.toml</code> measures the FastKAN cells.", "caption")]  # fmt: skip
    if not any(b.measured for b in page.claims):
        out.append(_p("None of these runs measured a cell that matches a published claim.", "empty"))
    for block in page.claims:
        meta = " · ".join(f"{e(k)}: {e(v)}" for k, v in block.meta)
        out.append(f"<h3>{e(block.title)}</h3>" + _p(meta, "caption") + _table([*map(e, block.header)],
                                                                             _escaped(block.rows)))  # fmt: skip
    return "".join(out)


def comparison_section(page: Page) -> str:
    """Candidate / baseline per cell with the regression gate's verdict."""
    comp = page.comparison
    if comp is None:
        return _p("Give two runs (baseline first, candidate second) for a comparison.", "empty")
    counts = comp.latency["verdict"].value_counts()
    alpha = "" if counted(comp) else f", alpha {comp.settings.alpha:g}"
    verdicts = ", ".join(f"{int(counts.get(v, 0))} {e(v)}" for v in VERDICT_ORDER)
    return "".join([
        _p(f"Baseline <code>{e(comp.base_label)}</code>, candidate <code>{e(comp.cand_label)}</code>."),
        *(_p(e(n), "notice") for n in comp.notes),
        _p(f"<b>Verdicts</b> (threshold {measure(comp)[1]:.0%}{alpha}): {verdicts}."),
        _implementations_html(comp),
        figure_html(page.comparison_figure) if page.comparison_figure is not None else "",
        _cells_html(comp),
    ])  # fmt: skip


def _marked(verdict: str) -> str:
    return verdict if verdict in ("regression", "improvement") else ""


def _implementations_html(comp: Comparison) -> str:
    """Each implementation's shift against the shift of the runs as a whole, and the gate's rule."""
    if comp.implementations is None or not len(comp.implementations):
        return ""
    impls = list(comp.implementations.itertuples())
    rows = [[e(r.verdict), named(r.implementation), _num(r.cells), _num(e(fmt_ratio(r.ratio))), _num(f"{r.z:+.1f}")]
            for r in impls]  # fmt: skip
    header = ["verdict", "implementation", "cells", "ratio vs the runs' shift", "z"]
    return ("<h3>Implementations</h3>" + _table(header, rows, [_marked(r.verdict) for r in impls])
            + _p(f"The gate: {e(gate_rule(comp))}", "caption"))  # fmt: skip


def _cells_html(comp: Comparison) -> str:
    """Every common cell's medians, ratio, interval and p; the cells with no change folded away."""
    estimator = "median" if counted(comp) else comp.settings.estimator
    header = ["verdict", "cell", "baseline median", "candidate median", f"ratio ({e(estimator)})", "interval", "p"]
    shown: list[tuple[list[str], str]] = []  # (cells, class) of each row
    quiet: list[tuple[list[str], str]] = []
    for r in sorted_cells(comp).itertuples():
        interval = f"{r.ci_low:.3g}–{r.ci_high:.3g}" if is_number(r.ci_low) and is_number(r.ci_high) else "—"
        cells = [e(r.verdict), named(r.label), *map(_num, (per_call(r.base_median, r.unit),
                 per_call(r.cand_median, r.unit), fmt_ratio(r.ratio), interval,
                 f"{r.p_value:.2g}" if is_number(r.p_value) else "—"))]  # fmt: skip
        (quiet if r.verdict == "no change" else shown).append((cells, _marked(r.verdict)))
    shared = f" Every cell: {e(comp.shared)}." if comp.shared else ""
    how = ("the range of the values' ratios; counts repeat, so no test" if counted(comp) else
           "interval and p from the regression gate (bootstrap over processes and values; Mann-Whitney U)")  # fmt: skip
    out = [_p(f"ratio: candidate / baseline of the {e(measure(comp)[0])}; {e(how)}.{shared}", "caption")]
    if shown:
        out.append(_table(header, [c for c, _ in shown], [k for _, k in shown]))
    if quiet:
        out.append(_details(f"{len(quiet)} cell(s) with no change", _table(header, [c for c, _ in quiet])))
    return "".join(out)


def notes_section(page: Page) -> str:
    """Every skipped or failed record with its reason, and every record whose numbers need a warning beside them."""
    return "".join([
        _problem_notes(page.problems), _diverged_notes(page.frame), *(_flagged(page.frame, *f) for f in FLAGGED),
        _zero_notes(page.frame), _noisy_notes(page.noisy),
    ])  # fmt: skip


WHERE = ["implementation", "phase", "device", "dtype", "widths", "G", "batch"]  # the columns _where fills
# The notes of the cells whose metric column is true: (column, title, when none, what they are, columns, cells)
FLAGGED = [
    ("metric_launch_bound", "Launch-bound cells",
     "None: in every event-timed (CUDA) cell the device took longer than the host took to issue its work.",
     "cell(s) kept the GPU waiting: the host took at least as long to issue the calls as the device took to run "
     "them, so their times measure Python and launch overhead, not the kernels (CUDA graphs or larger batches "
     "would show the kernels).",
     ["device time", "host time"], lambda r: [_num(fmt_time(x)) for x in (r.time_median, r.host_time_median)]),
    ("metric_throttled", "Throttled cells",
     "None: in every CUDA cell whose SM clock was read (nvidia-ml-py) it stayed at or above 75% of its maximum.",
     "cell(s) ran while the GPU's SM clock fell below 75% of its maximum (nvbench's rule: power or thermal "
     "limits, or another process): their times are slower than the device can run.",
     ["lowest SM clock"], lambda r: [_num(e(_clock_text(r.sm_clock_min_mhz, r.sm_clock_max_mhz)))]),
]  # fmt: skip


def _where(r) -> list[str]:
    return [named(r.impl), e(r.phase), e(r.device), e(r.dtype), e(r.widths_label), e(r.grid_size), e(r.batch_size)]


def _note(title: str, empty: str, body: str) -> str:
    """A notes subsection: its heading, then its body, or where it has none what that means."""
    return f"<h3>{title}</h3>" + (body or _p(empty, "empty"))


def _problem_notes(p: pd.DataFrame) -> str:
    body = ""
    if not p.empty:
        p = p.assign(reason=p["reason"].fillna("(no reason given)"))
        groups = list(p.groupby(["status", "reason"], sort=False))
        rows = [[e(status), _num(len(g)), e(reason)] for (status, reason), g in groups]
        body = _p(f"{len(p)} record(s) were not measured. By reason:") + _table(["status", "records", "reason"], rows)
        runs = p["run"].nunique() > 1
        for (status, reason), g in groups:
            lines = "<br>".join(" · ".join([*_where(r)[:5], f"G{e(r.grid_size)}", f"batch {e(r.batch_size)}",
                                            *([e(r.run)] if runs else [])]) for r in g.itertuples())  # fmt: skip
            body += _details(f"{len(g)} {e(status)}: {e(reason)}", _p(lines, "cells"))
    return _note("Skipped and failed cells", "None: every record has status ok.", body)


def _diverged_notes(frame: pd.DataFrame) -> str:
    """The accuracy runs whose loss became non-finite: their final metric says nothing of the model."""
    diverged = frame[(frame["phase"] == "accuracy") & (frame["status"] == "ok")]
    if "metric_diverged" not in diverged:
        return ""
    diverged = diverged[diverged["metric_diverged"].fillna(False).astype(bool)]
    if diverged.empty:
        return ""
    lines = "<br>".join(f"{named(r.impl)} · {e(r.widths_label)} · {e(r.metric_dataset)} · seed {e(r.metric_seed)}"
                        for r in diverged.itertuples())  # fmt: skip
    return ("<h3>Diverged training runs</h3>" + _p(f"{len(diverged)} accuracy run(s) diverged (a non-finite loss); "
            "their final metric is not a measure of the model:") + _p(lines, "cells"))  # fmt: skip


def _flagged(frame, column: str, title: str, empty: str, explain: str, headers: list[str], cells) -> str:
    """A notes subsection: the ok cells whose metric column is true, with cells(row) beside each, or none."""
    if column not in frame:
        return ""
    flagged = frame[(frame["status"] == "ok") & frame[column].eq(True)]
    rows = [[*_where(r), *cells(r)] for r in flagged.itertuples()]
    return _note(title, empty, _p(f"{len(flagged)} {explain}") + _table([*WHERE, *headers], rows) if rows else "")


def _clock_text(low, high) -> str:
    if is_number(low) and is_number(high) and high:
        return f"{low:.0f} of {high:.0f} MHz ({low / high:.0%})"
    return "—"


def _zero_notes(frame: pd.DataFrame) -> str:
    """The ok speed records whose median per call is 0, which every table, ratio, figure and the answer leave out."""
    zero = zero_rows(frame)
    if zero.empty:
        return ""
    rows = [[*_where(r), e(r.unit), e(r.run)] for r in zero.itertuples()]
    return (
        "<h3>Timings of zero</h3>"
        + _p(f"{len(zero)} ok record(s) have a median of 0 per call (the clock did not resolve the call, or the file "
             "was edited): nothing can be ranked against or divided by them, so the tables, ratios, figures and the "
             "answer leave them out.")
        + _table([*WHERE, "unit", "run"], rows)
    )  # fmt: skip


def _noisy_notes(noisy: pd.DataFrame) -> str:
    rows = [[*_where(r), *map(_num, (fmt_time(r.time_median), fmt_time(r.time_iqr), f"{r.iqr_share:.0%}",
             e("" if _missing(r.time_n) else int(r.time_n)))), e(r.run)] for r in noisy.itertuples()]  # fmt: skip
    header = [*WHERE, "median", "IQR", "IQR / median", "values", "run"]
    explain = (f"{len(noisy)} ok timing(s) have an interquartile range above 10 % of their median: the machine was "
               "busy or the cell is unstable; read their ratios with care.")  # fmt: skip
    return _note("Noisy timings", "None: every ok timing has an IQR within 10 % of its median.",
                 _p(explain) + _table(header, rows) if rows else "")  # fmt: skip


def data_section(page: Page, filename: str) -> str:
    """How to get the records back out of the page."""
    return _p(
        "This page is also the data: every record of the run(s) and each environment.json are embedded as JSON in "
        f'<code>&lt;script id="{DATA_ID}" type="application/json"&gt;</code>. '
        f'<button id="download-data" type="button" data-filename="{e(filename)}">Download the records (JSON)</button>'
    ) + _p("The button saves them as JSON lines, like results.jsonl. From Python: "
           "<code>kanbench.report.read_embedded(open(path).read())</code>.", "caption")  # fmt: skip


def pack_records(records: list[dict]) -> dict:
    """Records as {"constant": fields equal in all, "fields": names, "records": [[values]]}: names stored once."""
    names = list(dict.fromkeys(k for r in records for k in r))
    constant = {}
    for name in names:
        first = json.dumps(records[0].get(name), sort_keys=True) if name in records[0] else None
        if first is not None and all(name in r and json.dumps(r[name], sort_keys=True) == first for r in records):
            constant[name] = records[0][name]
    fields = [n for n in names if n not in constant]
    return {"constant": constant, "fields": fields, "records": [[r.get(n) for n in fields] for r in records]}


def unpack_records(run: dict) -> list[dict]:
    """The records of one embedded run, as the dicts of results.jsonl."""
    return [{**run["constant"], **dict(zip(run["fields"], row))} for row in run["records"]]


def embedded_data(page: Page) -> str:
    """The runs as JSON for the page: each environment.json and every record (non-finite numbers as null)."""
    data = {
        "kanbench_report": 1,
        "kanbench_version": kanbench.__version__,
        "runs": [
            {"name": r.name, "path": r.path, "environment": r.environment, **pack_records(r.records)} for r in page.runs
        ],
    }
    return script_json(json.dumps(escape.json_ready(data), separators=(",", ":"), ensure_ascii=False))


def read_embedded(html_text: str) -> dict:
    """The data a report embeds: {"runs": [{"name", "path", "environment", "records": [dict, ...]}]}."""
    start_tag = f'<script id="{DATA_ID}" type="application/json">'
    start = html_text.find(start_tag)
    if start < 0:
        raise ValueError(f"not a kanbench report: no <script id={DATA_ID!r}> element")
    start += len(start_tag)
    data = json.loads(html_text[start : html_text.index("</script>", start)])
    for run in data["runs"]:
        run["records"] = unpack_records(run)
        del run["constant"], run["fields"]
    return data


def figures_json(figures: list[Figure]) -> str:
    """{"template": the shared plotly template, "figures": [{"id", "figure"}]} as JSON, safe inside <script>."""
    from plotly.io.json import to_json_plotly

    template, items = None, []
    for f in figures:
        if f.figure is None:
            continue
        fig = f.figure.to_plotly_json()
        template = fig["layout"].pop("template", template)  # the same default template in every figure
        items.append({"id": f"fig-{f.key}", "figure": fig})
    return script_json(to_json_plotly({"template": template, "figures": items}))
