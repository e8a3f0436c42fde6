"""The HTML report of real short runs, opened in a real browser (Debian's chromium, driven by Playwright).

Every plot must be drawn (plotly's SVG present, with traces), the page must log no console
error and request nothing but its own file://. The screenshot's path is in every assertion
message (pytest keeps tmp_path of the last runs), for a look at what failed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
                 "--disable-component-update", "--disable-sync", "--disable-quic"]


class Page:
    """What the browser saw: requests, console errors, and per plot the number of drawn traces."""

    def __init__(self, requests: list[str], errors: list[str], plots: dict[str, int], verdict: str, shot: Path):
        self.requests, self.errors, self.plots, self.verdict, self.shot = requests, errors, plots, verdict, shot

    def __repr__(self) -> str:
        return f"Page(plots={self.plots}, errors={self.errors}, requests={self.requests}, screenshot={self.shot})"


def open_in_chromium(html: Path, shot: Path, profile: Path, width: int = 1280) -> Page:
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as exc:
        pytest.skip(f"SKIPPED LOUDLY: the Python package playwright is missing ({exc}); `make test` installs it")
    if not Path(CHROMIUM).exists():
        pytest.skip("SKIPPED LOUDLY: chromium is not installed (Debian package chromium; `make test` installs it)")
    requests: list[str] = []
    errors: list[str] = []
    with sync_playwright() as p:
        try:
            # a fresh profile (user data dir) per test; Playwright only drives the Debian browser
            context = p.chromium.launch_persistent_context(
                str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": width, "height": 900})
        except Error as exc:
            pytest.skip(f"SKIPPED LOUDLY: chromium did not start: {str(exc).splitlines()[0]}")
        try:
            def route(r) -> None:  # record every request; let only the report's own file through
                requests.append(r.request.url)
                r.continue_() if r.request.url.startswith("file://") else r.abort()

            context.route("**/*", route)
            page = context.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.goto(html.as_uri(), wait_until="load")
            drawn = ("document.querySelectorAll('.plot').length > 0 && "
                     "[...document.querySelectorAll('.plot')].every(p => p.querySelector('svg.main-svg'))")
            page.wait_for_function(drawn, timeout=20_000)
            plots = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.plot')].map(p => [
                p.dataset.plot,
                p.querySelector('svg.main-svg') && p.querySelector('svg.main-svg').getBoundingClientRect().height > 0
                    ? p.querySelectorAll('g.trace').length : 0]))""")
            verdict = page.inner_text(".verdict")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            context.close()
    return Page(requests, errors, plots, verdict, shot)


def run_with_report(url: str, out: Path, *args: str) -> None:
    proc = run_cli("run", url, "-d", "2s", "-c", "4", "-w", "1", "-q", "--out", str(out), "--report", *args,
                   timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (out / "report.html").exists(), proc.stderr


def check(page: Page, expected_plots: set[str]) -> None:
    assert set(page.plots) == expected_plots, page
    assert all(traces > 0 for traces in page.plots.values()), page
    assert page.errors == [], page
    assert all(u.startswith("file://") for u in page.requests) and len(page.requests) == 1, page


def test_report_of_a_real_run_renders_offline(twload_server, tmp_path):
    server = twload_server()
    run_with_report(server.url, tmp_path / "run")
    samples = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert all("ports_in_use" in s and "time_wait" in s for s in samples)  # what section 4 draws
    page = open_in_chromium(tmp_path / "run" / "report.html", tmp_path / "report.png", tmp_path / "profile")
    print(f"screenshot: {page.shot}")
    check(page, {"throughput", "latency", "distribution", "ports"})
    assert "requests in" in page.verdict and "req/s" in page.verdict, page.verdict


def test_two_runs_compared_render_offline(twload_server, tmp_path):
    server = twload_server()
    run_with_report(server.url, tmp_path / "keepalive")
    run_with_report(server.url, tmp_path / "rst", "--close", "rst")
    html = tmp_path / "compare.html"
    proc = run_cli("report", str(tmp_path / "keepalive"), str(tmp_path / "rst"), "--format", "html", "-o", str(html))
    assert proc.returncode == 0, proc.stderr
    page = open_in_chromium(html, tmp_path / "compare.png", tmp_path / "profile")
    print(f"screenshot: {page.shot}")
    check(page, {"throughput", "latency", "distribution", "ports"})
    assert "keepalive" in page.verdict and "rst" in page.verdict, page.verdict


def test_report_of_a_killed_run_renders(tmp_path):
    """No summary.json (SIGKILL): the page still draws every plot and says the run did not finish."""
    from tests.unit.run_folders import Second, plan_json, write_run

    seconds = [Second(latencies_us=[300 + i for i in range(100)], connect_us=[90], connections_opened=1, time_wait=0),
               Second(latencies_us=[400] * 80, errors={"ECONNRESET": 2}, time_wait=0)]
    run = write_run(tmp_path / "killed", seconds, plan=plan_json())
    proc = run_cli("report", str(run), "--format", "html")
    assert proc.returncode == 0 and "did not finish" in proc.stderr, proc.stderr
    page = open_in_chromium(run / "report.html", tmp_path / "killed.png", tmp_path / "profile")
    print(f"screenshot: {page.shot}")
    check(page, {"throughput", "latency", "distribution", "ports"})
    assert "did not finish" in page.verdict, page.verdict
