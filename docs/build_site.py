"""Build the course's website: every notebook executed in fast mode, as static HTML pages (a maintainer script).

    python docs/build_site.py                      # execute the notebooks, write _site/ (open _site/index.html)
    python docs/build_site.py --executed DIR       # reuse executed copies in DIR (written by an earlier build)
    python docs/build_site.py -o OUT --jobs 2      # another folder; two notebooks at a time

One command, no network: the pages load plotly.js and MathJax from the site itself (copied from the
plotly and jupyter-server-mathjax packages), never from a CDN. Each page says which machine computed its
outputs (from ``course_lib.machine``) and has launch links (Binder, Colab) and the executed notebook.

Why nbconvert and not Jupyter Book 2 / MyST: ``jupyter-book build --html`` downloads its theme from
api.mystmd.org at build time, which CI cannot reach; the theme itself is 18 MB of built JavaScript
(too much to vendor) or a bun/Remix/Tailwind build from source (minutes per CI run). nbconvert's
"lab" template (the same renderer as JupyterLab's) with a small template of ours is what remains.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import html
import json
import os
import platform
import re
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
TEMPLATES = ROOT / "docs" / "site"
REPO_URL = re.search(r'^Repository = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
SLUG = REPO_URL.removeprefix("https://github.com/")
# what plotly's HTML output loads from CDNs; the pages load their own copies in the <head> instead
CDN_SCRIPT = re.compile(r'<script[^>]*src="https://(?:cdn\.plot\.ly|cdnjs\.cloudflare\.com)/[^"]*"[^>]*>\s*</script>')
PROGRESS_BAR = re.compile(r"\d+%\|")  # a tqdm bar's text: on a page it would stand frozen at its saved state
NO_GUESS = " (No guess committed: try the next one!)"  # a verdict's nudge: a page has no box to commit a guess in
PLOTLY_DIV = re.compile(r'<div [^>]*class="plotly-graph-div"')


def notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def machine_label(fast: bool) -> dict:
    """What computed the outputs: device (course_lib.machine), cores, OS, torch, date; recorded in the notebook."""
    import torch

    from course_lib import machine

    device = machine.pick_device()
    return {"device": f"{device.type} ({machine.device_name(device)})", "cores": os.cpu_count(),
            "system": f"{platform.system()} {platform.machine()}", "torch": torch.__version__,
            "fast": fast, "date": datetime.date.today().isoformat()}


# the kernels' environment: fast mode, one thread (as on Binder), this checkout's course_lib first;
# predict boxes show their results at once (a static page has no button to commit a guess)
KERNEL_ENV = {"COURSE_FAST": "1", "OMP_NUM_THREADS": "1", "COURSE_THREADS": "1", "COURSE_REVEAL": "1"}


async def execute(path: Path, out: Path, env: dict, timeout: int = 600) -> Path:
    """Run one notebook top to bottom in a fresh kernel (KERNEL_ENV); the copy goes to ``out``."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    # no widget state: the pages show each widget's HTML fallback (a note and a static chart), as nbviewer does
    await NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=False,
                         resources={"metadata": {"path": str(path.parent)}}).async_execute(env=env)
    nb.metadata["course_site"] = machine_label(fast=env["COURSE_FAST"] == "1")
    nbformat.write(nb, out / path.name)
    return out / path.name


def execute_all(out: Path, jobs: int = 1) -> list[Path]:
    """Execute every notebook into ``out``, ``jobs`` kernels at a time. The kernels share a fresh profile
    cache, so every number on the pages was measured by this build (not read from an earlier one)."""
    out.mkdir(parents=True, exist_ok=True)

    async def run_all(env):
        slots = asyncio.Semaphore(max(jobs, 1))

        async def one(path):
            async with slots:
                return await execute(path, out, env)

        return await asyncio.gather(*(one(path) for path in notebooks()))

    with tempfile.TemporaryDirectory(prefix="course-site-profiles-") as cache:
        return asyncio.run(run_all({**os.environ, **KERNEL_ENV, "COURSE_LIB_CACHE_DIR": cache, "PYTHONPATH":
                                    os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}))


def figures_shown(nb) -> int:
    """Charts a notebook's outputs hold: plotly figures (their own MIME type) and explorers (widgets.Explorer)."""
    from course_lib.widgets import Explorer

    explorers = tuple(cls.__name__ + "(" for cls in Explorer.__subclasses__())
    return sum(1 for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
               if "application/vnd.plotly.v1+json" in out.get("data", {})
               or "".join(out.get("data", {}).get("text/plain", "")).startswith(explorers))


def title(nb, fallback: str) -> str:
    """The notebook's first level-1 heading, without Markdown emphasis."""
    first = "".join(nb.cells[0].source) if nb.cells else ""
    heading = next((line.lstrip("# ").strip() for line in first.splitlines() if line.startswith("# ")), fallback)
    return re.sub(r"[*_`]", "", heading)


def label(info: dict | None) -> str:
    """What computed a notebook's outputs, as ``execute`` recorded it."""
    if not info:
        return "on a machine this build did not record"
    mode = "in fast mode (`COURSE_FAST=1`: shorter measurements)" if info["fast"] else "in full mode"
    return (f"when the site was built ({info['date']}), {mode}, on {info['device']}, {info['cores']} CPU cores, "
            f"{info['system']}, torch {info['torch']}")


def for_the_page(nb):
    """A copy of ``nb`` for its page: the build label as its second cell, no CDN scripts in the outputs (the
    page loads plotly.js and MathJax itself), a sentence for widgets with no static form (buttons), and
    neither progress bars nor "no guess committed" nudges (a page has no live bar and no box to commit in)."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    nb.cells.insert(1, nbformat.v4.new_markdown_cell(
        f"**About the outputs on this page:** they were computed {label(nb.metadata.get('course_site'))}. Your "
        "machine will give its own numbers: launch the notebook (links at the top) to measure them.", id="site-label"))
    for cell in nb.cells:
        cell["outputs"] = [out for out in cell.get("outputs", []) if not (
            "application/vnd.jupyter.widget-view+json" in out.get("data", {})
            and PROGRESS_BAR.search("".join(out["data"].get("text/plain", ""))))]
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            for key in ("text/markdown", "text/plain"):
                if key in data:
                    data[key] = "".join(data[key]).replace(NO_GUESS, "")
            if "text" in out:
                out["text"] = "".join(out["text"]).replace(NO_GUESS, "")
            if "text/html" in data:
                data["text/html"] = CDN_SCRIPT.sub("", "".join(data["text/html"]))
            elif "application/vnd.jupyter.widget-view+json" in data:
                data["text/plain"] = "(An interactive control: launch the notebook to use it.)"
    return nb


def nav(name: str, names: list[str], titles: dict[str, str]) -> str:
    """The bar on top of each page: home, previous/next, and for a notebook its launch links and its file."""
    i = names.index(name) if name in names else -1
    links = ['<a href="index.html">Course home</a>'] + [
        f'<a href="{names[j][:-6]}.html" title="{html.escape(titles[names[j]])}">{text}</a>'
        for j, text in ((i - 1, f"← {names[i - 1][:2]}"), (i + 1, f"{names[(i + 1) % len(names)][:2]} →"))
        if i >= 0 and 0 <= j < len(names)]
    launch = [] if i < 0 else [
        f'<a class="launch" href="https://mybinder.org/v2/gh/{SLUG}/HEAD?urlpath=lab/tree/notebooks/{name}">'
        "Launch on Binder</a>",
        f'<a class="launch" href="https://colab.research.google.com/github/{SLUG}/blob/main/notebooks/{name}">'
        "Open in Colab</a>", f'<a class="launch" href="notebooks/{name}" download>Executed notebook (.ipynb)</a>']
    return f'<nav class="course-nav"><span>{" · ".join(links)}</span><span>{"".join(launch)}</span></nav>'


def export(nb, name: str, names: list[str], titles: dict[str, str]) -> str:
    """One page: nbconvert's "lab" HTML through our template (docs/site/course)."""
    from nbconvert import HTMLExporter

    nb.metadata["title"] = titles.get(name, "Why is LLM inference so slow?")
    exporter = HTMLExporter(template_name="course", extra_template_basedirs=[str(TEMPLATES)],
                            mathjax_url="mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe",
                            exclude_input_prompt=True, exclude_output_prompt=True)
    return exporter.from_notebook_node(nb, resources={"course_nav": nav(name, names, titles)})[0]


def index(names: list[str], titles: dict[str, str], nbs: dict) -> str:
    """The home page: the README's introduction (up to its first section), the notebooks, the build label."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## ")[0]
    intro = "\n".join(line for line in readme.splitlines() if not line.startswith("[!["))  # no remote badges
    pages = "\n".join(f"1. [{titles[n]}]({n[:-6]}.html)" for n in names)
    labels = {label(nbs[n].metadata.get("course_site")) for n in names}
    note = (f"Every page shows its notebook as it ran {labels.pop()}." if len(labels) == 1 else
            "Every page shows its notebook as it ran when the site was built, and says which machine ran it.")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text) for text in (
        intro, f"## The notebooks\n\n{pages}", f"{note} Launch a notebook on Binder or Colab (links on each page) "
        f"to run it yourself, or clone [the repository]({REPO_URL}) and run `python3 course.py open`.")])
    return export(nb, "index.html", names, titles)


def assets(out: Path) -> None:
    """plotly.js and MathJax beside the pages: the site makes no request to another host."""
    import jupyter_server_mathjax
    import plotly

    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", out / "plotly.min.js")
    shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", out / "mathjax", dirs_exist_ok=True)


def build(out: Path, executed: Path | None = None, jobs: int = 1) -> dict[str, int]:
    """Write the site to ``out``; returns the number of charts each page's notebook shows."""
    out.mkdir(parents=True, exist_ok=True)
    copies = out / "notebooks"
    if executed is None:
        execute_all(copies, jobs)
    elif executed.resolve() != copies.resolve():
        copies.mkdir(exist_ok=True)
        for path in notebooks():
            shutil.copy(executed / path.name, copies / path.name)
    names = [p.name for p in notebooks()]
    nbs = {n: nbformat.read(copies / n, as_version=4) for n in names}
    titles = {n: title(nbs[n], n) for n in names}
    for n in names:
        (out / f"{n[:-6]}.html").write_text(export(for_the_page(nbs[n]), n, names, titles), encoding="utf-8")
    (out / "index.html").write_text(index(names, titles, nbs), encoding="utf-8")
    assets(out)
    return {n: figures_shown(nbs[n]) for n in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--out", type=Path, default=ROOT / "_site", help="output folder (default: _site/)")
    parser.add_argument("--executed", type=Path, help="a folder of executed notebooks to reuse instead of running them")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks executed at a time (default 1)")
    args = parser.parse_args(argv)
    charts = build(args.out, args.executed, args.jobs)
    print(f"wrote {args.out}/index.html and {len(charts)} pages ({sum(charts.values())} charts)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
