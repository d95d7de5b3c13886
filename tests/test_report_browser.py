"""The report in a real browser: Chromium headless, offline, over the DevTools protocol on a pipe (no extra package).

Needs Debian's chromium (apt-get install -y chromium); skipped with the reason when no browser is installed, or
failed instead where KANBENCH_REQUIRE_BROWSER is set (CI). KANBENCH_BROWSER names another Chromium binary.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import time
from pathlib import Path

import pytest
import report_synthetic

from kanbench import report

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT_S = 60.0


def find_browser() -> str | None:
    """KANBENCH_BROWSER, else the first Chromium on PATH."""
    explicit = os.environ.get("KANBENCH_BROWSER")
    if explicit:
        return explicit
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


class Browser:
    """Headless Chromium driven over --remote-debugging-pipe: requests on fd 3, replies on fd 4, NUL-separated."""

    def __init__(self, executable: str, profile: Path, log: Path):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The child expects the pipe on fds 3 and 4; move ours above them first so the dup2s cannot collide.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser_r, from_browser_w)]
        for fd in (to_browser_r, from_browser_w):
            os.close(fd)
        args = [
            executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--mute-audio", f"--user-data-dir={profile}", "--remote-debugging-pipe",
            # No network: every host resolves to nothing and any proxy use fails.
            "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--window-size=1400,900",
            "about:blank",
        ]  # fmt: skip
        log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, log_fd, 1),
            (os.POSIX_SPAWN_DUP2, log_fd, 2),
            (os.POSIX_SPAWN_DUP2, high[0], 3),
            (os.POSIX_SPAWN_DUP2, high[1], 4),
        ]
        try:
            self.pid = os.posix_spawn(executable, args, os.environ, file_actions=actions, setsid=True)
        finally:
            for fd in (*high, log_fd):
                os.close(fd)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one command and return its result; events that arrive meanwhile are kept in self.events."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str | None = None, timeout: float = TIMEOUT_S) -> dict:
        """The first event called method (of that session, if given), already received or still to come."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for i in range(seen, len(self.events)):
                event = self.events[i]
                if event.get("method") == method and (session is None or event.get("sessionId") == session):
                    return self.events.pop(i)
            seen = len(self.events)
            self.events.append(self._read(deadline))

    def drain(self, seconds: float) -> None:
        """Collect the events that arrive within some seconds."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                self.events.append(self._read(deadline))
        except TimeoutError:
            pass

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("no reply from the browser")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("the browser closed the DevTools pipe (did it crash? see its log)")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        """Ask the browser to quit; kill its process group if it does not."""
        try:
            self.send("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        for _ in range(50):
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.1)
        else:
            os.killpg(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self._to_browser)
        os.close(self._from_browser)


# Runs in the page once it has loaded: every plot div must hold a plotly SVG with drawn traces.
CHECK_PLOTS = """
(() => {
  const divs = Array.from(document.querySelectorAll("div.plot"));
  return JSON.stringify({
    rendered: document.body.getAttribute("data-rendered"),
    plots: divs.map(d => ({
      id: d.id,
      svg: d.querySelectorAll("svg.main-svg").length,
      traces: d.querySelectorAll("g.trace").length,
      points: d.querySelectorAll("g.trace path, g.trace .point").length,
      data: Array.isArray(d.data) ? d.data.length : 0,
    })),
    scripts: Array.from(document.scripts).map(s => s.type || "text/javascript"),
    alerts: window.__alerts || 0,
    answer: (() => {  // where the answer's verdict and first ranked row end, against the window's height
      const section = document.querySelector("#answer");
      if (!section) return null;
      const rows = section.querySelectorAll("table tr");
      const verdict = Array.from(section.querySelectorAll("p")).find(p => p.textContent.includes("against FastKAN"));
      return {firstRow: rows.length > 1 ? rows[1].getBoundingClientRect().bottom : null,
              verdict: verdict ? verdict.getBoundingClientRect().bottom : null, viewport: window.innerHeight};
    })(),
  });
})()
"""


def load_report(browser: Browser, html: Path, out_dir: Path) -> tuple[dict, list[str], list[str]]:
    """Open the report in a new tab, wait until its figures are drawn, save screenshots to out_dir.

    Returns what CHECK_PLOTS found, the console errors, and every URL the page requested.
    """
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.send(f"{domain}.enable", session=session)
    metrics = {"width": 1400, "height": 900, "deviceScaleFactor": 1, "mobile": False}
    browser.send("Emulation.setDeviceMetricsOverride", metrics, session=session)
    # A page that calls alert() would block; count the calls instead.
    counter = {"source": "window.__alerts = 0; window.alert = () => { window.__alerts++; };"}
    browser.send("Page.addScriptToEvaluateOnNewDocument", counter, session=session)
    browser.send("Page.navigate", {"url": html.resolve().as_uri()}, session=session)
    browser.wait_event("Page.loadEventFired", session)
    deadline = time.monotonic() + TIMEOUT_S
    probe = {"expression": "document.body.getAttribute('data-rendered')", "returnByValue": True}
    while not browser.send("Runtime.evaluate", probe, session=session)["result"].get("value"):
        if time.monotonic() > deadline:
            break  # the check below reports what was (not) drawn
        time.sleep(0.2)
    found = browser.send("Runtime.evaluate", {"expression": CHECK_PLOTS, "returnByValue": True}, session=session)
    check = json.loads(found["result"]["value"])
    out_dir.mkdir(parents=True, exist_ok=True)
    shot = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)
    (out_dir / "report-first-screen.png").write_bytes(base64.b64decode(shot["data"]))
    full = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=session)
    (out_dir / "report-full.png").write_bytes(base64.b64decode(full["data"]))
    browser.drain(0.5)
    browser.send("Target.closeTarget", {"targetId": target})
    errors, urls = [], []
    for event in browser.events:
        if event.get("sessionId") != session:
            continue
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description"))) for a in params.get("args", []))
            errors.append(f"console.{params['type']}: {args}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            errors.append("exception: " + str(details.get("exception", {}).get("description", details.get("text"))))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            errors.append("log: " + params["entry"].get("text", ""))
        elif method == "Network.requestWillBeSent":
            urls.append(params.get("request", {}).get("url", ""))
    return check, errors, urls


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Browser:
    """One headless Chromium for the module; each test opens its report in a new tab."""
    path = find_browser()
    if not path:
        why = (
            "no Chromium found (looked for " + ", ".join(BROWSERS) + " on PATH and KANBENCH_BROWSER); install it "
            "with: apt-get install -y chromium"
        )
        if os.environ.get("KANBENCH_REQUIRE_BROWSER"):
            pytest.fail(why + " (KANBENCH_REQUIRE_BROWSER is set, as in CI)")
        pytest.skip(why)
    home = tmp_path_factory.mktemp("chromium")
    instance = Browser(path, home / "profile", home / "chromium.log")
    yield instance
    instance.close()


def _assert_page_works(check: dict, errors: list[str], urls: list[str]) -> None:
    assert errors == [], f"console errors: {errors}"
    offsite = [u for u in urls if not u.startswith(("file:", "data:", "blob:", "about:"))]
    assert offsite == [], f"the page asked the network for {offsite}"
    assert check["rendered"] == "true", f"the page's figures did not finish drawing: {check['rendered']!r}"
    assert check["plots"], "no plot divs on the page"
    for plot in check["plots"]:
        assert plot["svg"] >= 1 and plot["data"] >= 1 and plot["traces"] >= 1 and plot["points"] >= 1, plot
    assert check["scripts"].count("text/javascript") == 2, check["scripts"]  # plotly.js and the page's own
    assert check["alerts"] == 0, "a script from the results ran"
    answer = check["answer"]  # the answer on the first screen at 1400 x 900, without scrolling
    assert answer and answer["firstRow"] is not None and answer["verdict"] is not None, answer
    assert max(answer["firstRow"], answer["verdict"]) <= answer["viewport"], answer


def test_single_run_report_renders(browser: Browser, tmp_path: Path) -> None:
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    impls = ("bspline", "fastkan", "fastkan-noln", "rswaf", "pykan", "mlp", "mlp-iso", evil)
    run = report_synthetic.write_run(tmp_path / "runs", impls=impls, evil=evil)
    html = report.write_report([run], tmp_path / "report.html")
    check, errors, urls = load_report(browser, html, tmp_path)
    _assert_page_works(check, errors, urls)
    ids = {p["id"] for p in check["plots"]}
    assert {"fig-time-vs-width", "fig-time-vs-batch", "fig-memory-vs-batch", "fig-accuracy-final",
            "fig-learning-curves", "fig-accuracy-pareto", "fig-profile-categories"} <= ids  # fmt: skip
    assert (tmp_path / "report-first-screen.png").stat().st_size > 10_000


def test_comparison_report_renders(browser: Browser, tmp_path: Path) -> None:
    base = report_synthetic.write_run(tmp_path / "runs", "base", accuracy=False, profile=False, devices=("cpu",))
    cand = report_synthetic.write_run(tmp_path / "runs", "cand", accuracy=False, profile=False, devices=("cpu",),
                                      seed=1, slowdown={"fastkan": 1.5})  # fmt: skip
    html = report.write_report([base, cand], tmp_path / "compare.html")
    check, errors, urls = load_report(browser, html, tmp_path)
    _assert_page_works(check, errors, urls)
    assert "fig-comparison" in {p["id"] for p in check["plots"]}


def test_tiny_real_run_report_renders(browser: Browser, tiny_run: Path, tmp_path: Path) -> None:
    html = report.write_report([tiny_run], tmp_path / "real.html")
    check, errors, urls = load_report(browser, html, tmp_path)
    _assert_page_works(check, errors, urls)
    ids = {p["id"] for p in check["plots"]}
    assert {"fig-time-vs-batch", "fig-roofline"} <= ids  # the tiny suite sweeps batch 4, 8; it has ceilings
