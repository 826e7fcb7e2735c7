"""The browser track as a learner meets it: the Lite build (docs/build_lite.py) served by a static web server, opened
in headless Chromium that cannot reach any other host; each explore notebook runs all in Pyodide with no error, each
predict box hides its result until it is skipped and then shows it, the charts draw, and the quiz answers; in 01 the
calculator's slider moves its readout; in 00 picking the recorded GPU changes the numbers. No request may leave this
machine: the runtime and every package come from the site.

The build is the one tests/test_lite.py makes (one per test run). Without Chromium the tests are skipped, except
under CI=true, where that is a failure.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from browsers import chromium, require_browser, serve
from test_lite import NAMES, built_lite

RUN_TIMEOUT = 180  # seconds for one notebook: Pyodide's start and "run all"

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STATE_JS = """() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!panel || !panel.content || !panel.sessionContext || !panel.sessionContext.session
      || !panel.sessionContext.session.kernel) return null;
  const cells = panel.content.model.cells, out = {pending: 0, errors: [], plotly: 0, text: ''};
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    if (c.executionCount === null) out.pending++;
    for (const o of c.outputs.toJSON()) {
      if (o.output_type === 'error') out.errors.push(`cell ${i}: ${o.ename}: ${o.evalue}`);
      if (o.output_type === 'stream') out.text += o.text;
      if (o.data && o.data['application/vnd.plotly.v1+json']) out.plotly++;
    }
  }
  out.status = panel.sessionContext.session.kernel.status;
  return out;
}"""


@pytest.fixture(scope="module")
def server():
    require_browser()
    out, _ = built_lite()
    with serve(out) as url:
        yield url


@pytest.fixture(scope="module")
def browser(server):
    # every host but this machine is unresolvable, for the page, its workers and its service worker alike
    with chromium("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1") as b:
        yield b


@pytest.fixture
def lab(server, browser):
    """open(notebook) -> a page with that notebook in JupyterLite; ``problems`` collects every console error, page
    error, failed response and request to another host (refused)."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    problems: list[str] = []

    def route(r):
        if r.request.url.startswith(server + "/"):
            r.continue_()
        else:
            problems.append(f"request to another host: {r.request.url}")
            r.abort()

    context.route("**/*", route)

    def open_notebook(name: str):
        page = context.new_page()
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
        page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
        page.goto(f"{server}/lab/index.html?path={name}")
        return page

    yield open_notebook, problems
    context.close()


def _real(problems: list[str]) -> list[str]:
    """Every problem counts (the explore track's Markdown asks the site for nothing: course_explore.Markdown)."""
    return list(problems)


def _run_all(page, name: str) -> dict:
    page.wait_for_function(f"() => {{ const s = ({STATE_JS})(); return s && s.status === 'idle'; }}", timeout=120_000)
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")  # not awaited
    deadline = time.time() + RUN_TIMEOUT
    while time.time() < deadline:
        state = page.evaluate(STATE_JS)
        assert not state["errors"], f"{name}: {state['errors']}"
        if state["pending"] == 0 and state["status"] == "idle":
            return state
        time.sleep(1)
    pytest.fail(f"{name}: did not finish within {RUN_TIMEOUT} s: {page.evaluate(STATE_JS)}")


HIDDEN = "The result is ready: commit your guess"  # what a predict box's result area says until a guess is in


def _answer_every_predict_box(page, name: str) -> int:
    """Skip every predict box (as a learner may); each result was hidden before and is shown after. Returns how many."""
    skips = page.get_by_role("button", name="Skip", exact=True)
    count = skips.count()
    if count:
        assert page.get_by_text(HIDDEN).count() >= 1, f"{name}: a predict box showed its answer before any guess"
    for i in range(count):
        skips.nth(i).click()
    page.wait_for_function(f"() => {{ const s = ({STATE_JS})(); return s && s.status === 'idle'; }}", timeout=60_000)
    page.wait_for_timeout(1500)  # the results' views finish drawing
    assert page.get_by_text(HIDDEN).count() == 0, f"{name}: a result stayed hidden after its predict box was skipped"
    assert page.get_by_text("Could not show the result").count() == 0, f"{name}: a reveal failed"
    return count


def test_the_guard_refuses_other_hosts(lab):
    """The check that the site works offline can fail: a request to a CDN is refused and reported."""
    open_notebook, problems = lab
    page = open_notebook(NAMES[0])
    page.evaluate("() => fetch('https://cdn.jsdelivr.net/pyodide/v314.0.7/full/pyodide-lock.json').catch(() => null)")
    assert any("request to another host: https://cdn.jsdelivr.net/" in p for p in problems), problems


@pytest.mark.parametrize("name", NAMES)
def test_explore_notebook_runs_in_the_browser_offline(lab, name):
    open_notebook, problems = lab
    page = open_notebook(name)
    state = _run_all(page, name)
    _answer_every_predict_box(page, name)
    assert "CPU: recorded on AMD EPYC" in state["text"], f"{name}: the recorded machine is not named"
    assert page.get_by_text("Error displaying widget").count() == 0, f"{name}: a widget failed to display"
    drawn = page.locator(".js-plotly-plot").count()
    assert drawn >= max(state["plotly"], 1), f"{name}: {state['plotly']} figures output, {drawn} drawn"
    if name.startswith("01"):
        readout = page.locator(".widget-html", has_text="ms/token").first
        before = readout.inner_text()
        page.locator(".widget-slider", has_text="parameters").first.locator(".noUi-handle").first.focus()
        for _ in range(20):
            page.keyboard.press("ArrowRight")
        page.wait_for_timeout(1500)
        assert readout.inner_text() != before, "moving the parameters slider did not change the calculator's text"
    question = page.locator(".cl-question").filter(has=page.locator("input[type=radio]")).first
    question.locator("input[type=radio]").first.check()
    question.locator("button", has_text="Check").click()
    page.wait_for_timeout(1000)
    assert question.locator(".cl-box").first.inner_text().strip(), f"{name}: the quiz gave no feedback"
    shots = os.environ.get("COURSE_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(shots) / f"lite-{name[:-6]}.png"))
    assert not _real(problems), f"{name}: {problems}"


def test_picking_the_recorded_gpu_changes_the_numbers(lab):
    open_notebook, problems = lab
    page = open_notebook(NAMES[0])
    _run_all(page, NAMES[0])
    menu = page.locator(".widget-dropdown select").first
    options = menu.evaluate("s => [...s.options].map(o => o.text)")
    menu.select_option(index=next(i for i, text in enumerate(options) if text.startswith("GPU:")))
    page.wait_for_timeout(500)
    page.evaluate("() => { const p = window.jupyterapp.shell.currentWidget; p.content.activeCellIndex = 2;"
                  " window.jupyterapp.commands.execute('notebook:run-all-below'); }")
    page.wait_for_function(f"() => {{ const s = ({STATE_JS})(); return s && s.status === 'idle'"
                           " && s.text.includes('GPU: recorded on NVIDIA H200'); }", timeout=60_000)
    assert _answer_every_predict_box(page, NAMES[0])  # 00's profile summary is revealed after its predict box
    assert page.get_by_text("NVIDIA H200 (cuda").count() >= 1  # the profile's summary is the H200's now
    assert not _real(problems), problems
