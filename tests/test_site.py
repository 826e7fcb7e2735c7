"""The course site (docs/build_site.py): every notebook, executed once in fast mode, as a static page
that shows every chart the notebook made, offline, labelled with the machine that computed it.

The build is shared with tests/browser/test_site_in_browser.py (``built_site``). To iterate on the
pages without executing the notebooks again, set COURSE_SITE_EXECUTED to a folder of executed copies
(e.g. _site/notebooks from ``python docs/build_site.py``).
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import os
import re
import shutil
import tempfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("build_site", ROOT / "docs" / "build_site.py")
build_site = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_site)
NAMES = [p.name for p in build_site.notebooks()]


@functools.cache
def built_site() -> tuple[Path, dict[str, int]]:
    """(folder, charts per notebook) of one site build for the whole test run (two kernels at a time)."""
    executed = os.environ.get("COURSE_SITE_EXECUTED")
    out = Path(tempfile.mkdtemp(prefix="course-site-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    return out, build_site.build(out, Path(executed) if executed else None, jobs=2)


@pytest.fixture(scope="module")
def site():
    return built_site()


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_every_chart_is_on_the_page(site, name):
    out, charts = site
    nb = nbformat.read(out / "notebooks" / name, as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, f"{name}: {[(o.ename, o.evalue) for o in errors]}"
    page = (out / f"{name[:-6]}.html").read_text(encoding="utf-8")
    drawn = len(build_site.PLOTLY_DIV.findall(page))
    assert charts[name] >= 1 and drawn == charts[name], f"{name}: {charts[name]} charts in the notebook, {drawn} on the page"


@pytest.mark.slow
def test_pages_load_nothing_from_other_hosts_and_say_what_computed_them(site):
    out, _ = site
    for path in [out / "index.html", *(out / f"{n[:-6]}.html" for n in NAMES)]:
        page = path.read_text(encoding="utf-8")
        remote = re.findall(r'<(?:script|img|iframe)[^>]+src="(https?:[^"]+)"|<link[^>]+href="(https?:[^"]+)"', page)
        assert not remote, f"{path.name} loads {remote}"
        if path.name != "index.html":
            info = nbformat.read(out / "notebooks" / f"{path.stem}.ipynb", as_version=4).metadata["course_site"]
            assert info["device"] in page and "fast mode" in page and f"{info['cores']} CPU cores" in page
            assert f"colab.research.google.com/github/{build_site.SLUG}/blob/main/notebooks/{path.stem}.ipynb" in page
            assert f"mybinder.org/v2/gh/{build_site.SLUG}/HEAD?urlpath=lab/tree/notebooks/{path.stem}.ipynb" in page
    index = (out / "index.html").read_text(encoding="utf-8")
    assert all(f'href="{n[:-6]}.html"' in index for n in NAMES) and "fast mode" in index
    assert (out / "plotly.min.js").stat().st_size > 1e6 and (out / "mathjax" / "MathJax.js").exists()


def test_explorers_are_counted_as_charts():
    """figures_shown counts plotly outputs and explorer widgets, and nothing else."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=[
        nbformat.v4.new_output("display_data", {"application/vnd.plotly.v1+json": {}, "text/html": "<div>"}),
        nbformat.v4.new_output("display_data", {"text/plain": "RooflineExplorer(children=(HBox(...",
                                                "text/html": "<div>"}),
        nbformat.v4.new_output("display_data", {"text/plain": "VBox(children=(Button(description='Show solutions'"}),
        nbformat.v4.new_output("stream", name="stdout", text="DecodeCalculator(")])])
    assert build_site.figures_shown(nb) == 2


def test_the_label_says_what_is_unknown():
    assert "did not record" in build_site.label(None)
    text = build_site.label({"date": "2026-01-02", "fast": False, "device": "cuda (H100)", "cores": 8,
                             "system": "Linux x86_64", "torch": "2.13.0"})
    assert "full mode" in text and "cuda (H100), 8 CPU cores" in text


def test_a_page_drops_progress_bars_and_guess_nudges():
    import nbformat

    bar = nbformat.v4.new_output("display_data", data={
        "application/vnd.jupyter.widget-view+json": {"model_id": "x", "version_major": 2, "version_minor": 0},
        "text/plain": "decode sweep, interleaved rounds:   0%|          | 0/3 [00:00<?, ?it/s]"})
    box = nbformat.v4.new_output("display_data", data={
        "application/vnd.jupyter.widget-view+json": {"model_id": "y", "version_major": 2, "version_minor": 0},
        "text/plain": "VBox(children=(...))"})
    verdict = nbformat.v4.new_output("display_data", data={
        "text/markdown": "Measured: 5 ms. The formula said 4 ms, 20% below it. (No guess committed: try the next one!)",
        "text/plain": "<IPython.core.display.Markdown object>"})
    printed = nbformat.v4.new_output("stream", name="stdout", text="The answer: **x**. (No guess committed: try the next one!)\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", outputs=[bar, box, verdict, printed])])
    outs = build_site.for_the_page(nb).cells[0].outputs
    assert len(outs) == 3 and "launch the notebook" in outs[0]["data"]["text/plain"]  # the control stays, the bar goes
    assert outs[1]["data"]["text/markdown"] == "Measured: 5 ms. The formula said 4 ms, 20% below it."
    assert outs[2]["text"] == "The answer: **x**.\n"
