"""The course site in headless Chromium: every page loads, every chart is drawn (plotly's SVG), the
console stays free of errors, and no request leaves this machine (the site works offline).

The site is the one tests/test_site.py builds (one build per test run). Without Chromium the tests
are skipped, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import functools
import os
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_site import NAMES, built_site

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [pytest.mark.browser, pytest.mark.slow]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # failures are reported by the tests, not by a line per request
        pass


@pytest.fixture(scope="module")
def server():
    try:
        import playwright  # noqa: F401
    except ImportError:
        reason = "playwright is not installed (pip install -r requirements-dev.txt)"
    else:
        reason = None if CHROMIUM else "no system Chromium (apt-get install chromium)"
    if reason and os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests must run under CI=true: {reason}")
    if reason:
        pytest.skip(reason)
    out, charts = built_site()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(out)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", charts
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        yield chromium
        chromium.close()


def _open(browser, url: str):
    """A page at ``url`` that refuses (and records) every request to another host, and records console errors."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda err: problems.append(f"page error: {err}"))

    def route(r):
        if r.request.url.startswith("http://127.0.0.1:"):
            r.continue_()
        else:
            problems.append(f"request to another host: {r.request.url}")
            r.abort()

    page.route("**/*", route)
    response = page.goto(url, wait_until="load")
    assert response is not None and response.ok, f"{url}: {response and response.status}"
    return page, problems


def test_index_links_every_page(server, browser):
    base, _ = server
    page, problems = _open(browser, f"{base}/index.html")
    try:
        hrefs = page.locator("main ol a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
        assert hrefs == [f"{n[:-6]}.html" for n in NAMES]
        assert not problems, problems
    finally:
        page.close()


@pytest.mark.parametrize("name", NAMES)
def test_page_draws_every_chart_offline(server, browser, name):
    base, charts = server
    page, problems = _open(browser, f"{base}/{name[:-6]}.html")
    try:
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot svg.main-svg').length >= {charts[name]}",
                               timeout=30_000)
        plots = page.locator(".js-plotly-plot")
        assert plots.count() == charts[name], f"{name}: {charts[name]} charts made, {plots.count()} drawn"
        for i in range(plots.count()):
            assert plots.nth(i).locator("svg.main-svg").count() >= 1, f"{name}: chart {i + 1} has no SVG"
        page.wait_for_function("!window.MathJax || !window.MathJax.Hub || window.MathJax.Hub.queue.running === 0",
                               timeout=30_000)
        assert page.locator(".course-nav a", has_text="Open in Colab").count() == 1
        shots = os.environ.get("COURSE_SCREENSHOTS")
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(shots) / f"site-{name[:-6]}.png"))
        assert not problems, f"{name}: {problems}"
    finally:
        page.close()
