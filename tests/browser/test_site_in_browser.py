"""The course site in headless Chromium: every page loads, every chart is drawn (plotly's SVG), the
console stays free of errors, and no request leaves this machine (the site works offline).

The site is the one tests/test_site.py builds (one build per test run). Without Chromium the tests
are skipped, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from browsers import chromium, require_browser, serve
from test_site import NAMES, built_site

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def server():
    require_browser()
    out, charts = built_site()
    with serve(out) as url:
        yield url, charts


@pytest.fixture(scope="module")
def browser(server):
    with chromium() as b:
        yield b


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
