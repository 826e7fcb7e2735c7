"""Build the browser track: the explore notebooks in JupyterLite, on Pyodide, with no server and no CDN.

    python docs/build_lite.py                  # writes _site/lite/ (open it through any static web server)
    python docs/build_lite.py -o OUT           # another folder

What it does, in order (one command; it needs PyPI and the npm registry at build time, nothing at run time):
1. the Pyodide runtime (Python 3.14 in WebAssembly) from the npm package pinned in package.json/package-lock.json
   (``npm ci`` runs when node_modules/pyodide is missing);
2. the Python packages the kernel and the course load: the pure-Python wheels pinned in lite/requirements.txt (from
   PyPI, cached in build/lite-wheels/), the kernel's own wheels from jupyterlite-pyodide-kernel, and course_lib
   built from this checkout without torch, numpy and psutil;
3. a pyodide-lock.json of our own that lists exactly those wheels, served beside the runtime, and preloaded at
   kernel start, so that no package is looked up anywhere else (the npm package's lock points at a CDN);
4. the explore notebooks, made from notebooks/ by the rule below (``explore_notebook``), which read the recorded
   machines of lite/course_explore (built as a wheel with the recorded CPU run inside);
5. ``jupyter lite build`` with exactly the front-end extensions the course needs (LAB_EXTENSIONS), as this environment
   installed them.

The result is a static folder: serve it with any web server (GitHub Pages, ``python -m http.server``); a page opened
from the file system cannot start web workers. tests/test_lite.py and tests/browser/test_lite_in_browser.py test it.

Why our own lock file: jupyterlite-pyodide-kernel's PyodideLockAddon solves one with uv and pyodide-lock, which needs
Python >= 3.12 (the course supports 3.10) and fetches the packages it does not find from the Pyodide CDN.
"""

from __future__ import annotations

import argparse
import ast
import email.parser
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LITE = ROOT / "lite"
WHEEL_CACHE = ROOT / "build" / "lite-wheels"
# Pyodide 314: CPython 3.14.2 on Emscripten; the markers that decide which dependencies a wheel needs there
PYODIDE_ENV = {"sys_platform": "emscripten", "platform_system": "Emscripten", "os_name": "posix",
               "platform_machine": "wasm32", "implementation_name": "cpython", "platform_python_implementation": "CPython",
               "python_version": "3.14", "python_full_version": "3.14.2", "platform_release": "", "platform_version": "",
               "implementation_version": "3.14.2", "extra": ""}
RUNTIME_FILES = ("pyodide.mjs", "pyodide.js", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "package.json")
KERNEL_WHEELS = ("ipykernel", "pyodide_kernel", "piplite", "widgetsnbextension-4")  # the kernel's shims
# what the course imports besides the kernel; preloaded with it, so a notebook's first cell has everything
COURSE_PACKAGES = ["course-lib", "course-explore", "plotly", "nbformat", "ipywidgets", "anywidget", "tqdm", "jsonschema"]
# what jupyterlite-pyodide-kernel installs at start unless they are preloaded (its worker's initKernel, by these names)
KERNEL_PACKAGES = ["micropip", "piplite", "ipykernel", "comm", "pyodide-kernel", "jedi", "ipython"]
KERNEL_PLUGIN = "@jupyterlite/pyodide-kernel-extension:kernel"
# the front ends: the Pyodide kernel, ipywidgets' manager, anywidget (plotly's FigureWidget) and plotly's renderer
LAB_EXTENSIONS = ["@jupyterlite/pyodide-kernel-extension", "@jupyter-widgets/jupyterlab-manager", "anywidget",
                  "jupyterlab-plotly"]
# course_lib's dependencies in the browser: requirements.txt's, less torch, psutil and numpy (not used there)
LITE_DEPENDENCIES = ["plotly", "anywidget", "ipywidgets", "tqdm", "jsonschema"]


def run(*cmd, **kwargs) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def pyodide_runtime(dest: Path) -> dict:
    """Copy the Pyodide core from node_modules (``npm ci`` first if needed); returns its lock file's ``info``."""
    source = ROOT / "node_modules" / "pyodide"
    if not (source / "pyodide.asm.wasm").exists():
        run("npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", cwd=ROOT)
    dest.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_FILES:
        shutil.copy(source / name, dest / name)
    return json.loads((source / "pyodide-lock.json").read_text())["info"]


def pypi_wheels() -> list[Path]:
    """The pinned pure-Python wheels of lite/requirements.txt, downloaded once into build/lite-wheels/."""
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    run(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--platform", "any",
        "--implementation", "py", "--abi", "none", "--python-version", "3.14", "-d", WHEEL_CACHE,
        "-r", LITE / "requirements.txt")
    pins = [line.split("#")[0].strip() for line in (LITE / "requirements.txt").read_text().splitlines()]
    wanted = {_canonical(p.split("==")[0]): p.split("==")[1] for p in pins if p}
    wheels = [w for w in WHEEL_CACHE.glob("*.whl") if wanted.get(_canonical(w.name.split("-")[0])) == w.name.split("-")[1]]
    missing = set(wanted) - {_canonical(w.name.split("-")[0]) for w in wheels}
    if missing:
        raise SystemExit(f"no wheel downloaded for {sorted(missing)}")
    return wheels


def labextension(name: str) -> Path:
    """Where this environment installed the JupyterLab extension ``name`` (pip installs them with the packages)."""
    from jupyter_core.paths import jupyter_path

    for base in jupyter_path("labextensions"):
        if (Path(base) / name / "package.json").exists():
            return Path(base) / name
    raise SystemExit(f"the JupyterLab extension {name} is not installed: pip install -r requirements-dev.txt")


def kernel_wheels() -> list[Path]:
    """The wheels jupyterlite-pyodide-kernel ships for the kernel itself (an IPython kernel for Pyodide)."""
    folder = labextension("@jupyterlite/pyodide-kernel-extension") / "static" / "pypi"
    return [w for w in folder.glob("*.whl") if w.name.startswith(KERNEL_WHEELS)]


def local_wheels(dest: Path) -> list[Path]:
    """course_lib from this checkout, as a wheel whose dependencies are LITE_DEPENDENCIES and without the toy's weights
    (the browser runs no model; `pip install .` and its wheel are unchanged), and lite/course_explore with the recorded
    CPU run inside."""
    with tempfile.TemporaryDirectory(prefix="course-lite-wheels-") as tmp:
        lib, explore = Path(tmp) / "course_lib", Path(tmp) / "course_explore"
        shutil.copytree(ROOT / "course_lib", lib / "course_lib", ignore=shutil.ignore_patterns("__pycache__", "weights"))
        for name in ("README.md", "LICENSE"):
            shutil.copy(ROOT / name, lib / name)
        pyproject, n = re.subn(r"^dependencies = \[.*\]$", f"dependencies = {json.dumps(LITE_DEPENDENCIES)}",
                               (ROOT / "pyproject.toml").read_text(), flags=re.M)
        assert n == 1, "pyproject.toml: no one-line dependencies list to replace"
        (lib / "pyproject.toml").write_text(pyproject.replace(', "data/weights/*"', ""))
        shutil.copytree(LITE / "course_explore", explore / "course_explore", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(LITE / "pyproject.toml", explore / "pyproject.toml")
        (explore / "course_explore" / "recorded").mkdir()
        cpu_run = _recorded_cpu_name()
        shutil.copy(ROOT / "benchmarks" / "results" / cpu_run, explore / "course_explore" / "recorded" / cpu_run)
        run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", dest, lib, explore)
    return [next(dest.glob("course_lib-*.whl")), next(dest.glob("course_explore-*.whl"))]


def _recorded_cpu_name() -> str:
    """RECORDED_CPU of lite/course_explore, read from its source (importing it needs course_lib's dependencies)."""
    return re.search(r'^RECORDED_CPU = "([^"]+)"', (LITE / "course_explore" / "__init__.py").read_text(), re.M).group(1)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_entry(wheel: Path) -> dict:
    """A pyodide-lock.json entry for a pure-Python wheel: its dependencies under Pyodide's markers, its imports."""
    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = email.parser.Parser().parsestr(z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode())
    depends = sorted({_canonical(Requirement(r).name) for r in meta.get_all("Requires-Dist") or []
                      if not Requirement(r).marker or Requirement(r).marker.evaluate(PYODIDE_ENV)})
    imports = sorted({n.split("/")[0].removesuffix(".py") for n in names
                      if not n.split("/")[0].endswith((".dist-info", ".data")) and (n.endswith(".py") or "/" in n)})
    return {"name": _canonical(meta["Name"]), "version": meta["Version"], "file_name": wheel.name,
            "install_dir": "site", "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(), "package_type": "package",
            "imports": imports, "depends": depends, "unvendored_tests": False, "shared_library": False}


def write_lock(folder: Path, info: dict, wheels: list[Path]) -> dict:
    """Copy ``wheels`` into ``folder`` and write its pyodide-lock.json; every dependency must be among them."""
    packages = {}
    for wheel in wheels:
        shutil.copy(wheel, folder / wheel.name)
        entry = lock_entry(folder / wheel.name)
        packages[entry["name"]] = entry
    missing = {(name, dep) for name, p in packages.items() for dep in p["depends"] if dep not in packages}
    if missing:
        raise SystemExit(f"dependencies with no wheel in lite/requirements.txt: {sorted(missing)}")
    (folder / "pyodide-lock.json").write_text(json.dumps({"info": info, "packages": packages}, indent=1, sort_keys=True))
    return packages


# ----------------------------------------------------------------------------- the explore notebooks
NOTEBOOKS = ROOT / "notebooks"
TORCH_MODULES = {"torch", "machine", "roofs", "measure", "parallel", "speculative"}  # and model, but for its shapes
SHAPES = {"PRESETS", "get_config"}  # what `model` re-exports from specs: the toy's shapes, no torch
# the torch-free spelling of what a notebook reads from the measured machine: the picked recorded one (course_explore)
REWRITES = [
    # IPython's Markdown(text) first asks whether the text names a file; in the browser that asks the site (a 404
    # and a console error per text), so the explore track imports a Markdown that shows the text as given
    (r"^(from IPython\.display import [^\n]*\bMarkdown\b[^\n]*)$",
     r"\1\nfrom course_explore import Markdown  # no file-name probe (see course_explore.Markdown)"),
    (r"^device = machine\.pick_device\(\)$", "picked = explore.chosen()  # the recorded machine picked above\n"
                                              "device = picked.device\nexplore.relabel_explorers(picked)"),
    (r"\bget_profile\(device, progress=True\)", "picked.profile"),
    (r"^(\w+) = specs\.custom\(widgets\.MEASURED,.*?\)$",
     r"\1 = picked.hardware  # its roofs as an explorer entry (None: no memory size recorded)"),
    (r'plots\.machine_vs_catalog\(profile\.read_bandwidth, specs\.catalog\(\), f"this machine\{threads\} \(measured\)"\)',
     'plots.machine_vs_catalog(profile.read_bandwidth, specs.catalog(), f"{picked.name}{threads} (recorded)")'),
    (r'f"Your machine\'s streaming read\{threads\}:', 'f"The recorded {picked.name}\'s streaming read{threads}:'),
    (r"^records = measure\.decode_sweep\(presets, .*?\)$",
     "records = [r for r in picked.decode if r.preset in presets]  # the recorded machine's batch-1 decode sweep\n"
     "assert [r.preset for r in records] == presets, f\"{picked.name} has no record of some of {presets}\""),
    (r"\bmeasure\.recorded_decode\(", "explore.recorded_decode("),
    (r"\broofs\.compare_with_recorded\(", "explore.compare_with_recorded("),
]
# cells that measure and have a stand-in: ("recorded", code) reads what every recorded machine holds from the picked
# one; ("shape", code) gives the toy's shape, where the cells after it read only that of the model the cell built
RECORDED_CELLS = {
    ("01_the_bottleneck", "c004"): ("shape", 'toy_name = "cpu-s" if device.type == "cpu" else "gpu-m"\n'
                                             "toy = explore.shape_only(toy_name)  # toy.config: its sizes, no model"),
}
INTRO = ("**Explore in the browser.** This copy of the notebook runs in your browser (Python in WebAssembly, nothing "
         "to install) without PyTorch, so it cannot measure your machine or run the toy model. It reads a machine that "
         "the course recorded with the same code instead: pick one below (a 2-core CPU or an NVIDIA H200 GPU). Where "
         "the text says *your machine*, read *the recorded machine*. A cell that measures is replaced by a note with "
         "its code; to run it on your own machine, open the full course (Binder, Colab, or `python3 course.py open`).")
PICKER = "import course_explore as explore\n\nexplore.picker()  # the cells below read the machine picked here"
NOTES = {"measure": "**Measured in the full course.** This cell runs the toy model or times your machine, which needs "
                    "PyTorch: the browser cannot run it (the text below may speak of its output, which only the full "
                    "course shows).",
         "recorded": "**Recorded.** In the full course this cell measures your machine; here the picked machine's "
                     "recorded run answers (the cell after this note). The original code:",
         "shape": "**Measured in the full course.** This cell runs the toy model, which needs PyTorch. The cell after "
                  "this note gives the toy's shape (its sizes, from `course_lib.specs`), which is all the cells "
                  "below read of it. The original code:",
         "depends": "**Skipped in the browser.** This cell reads {} from a measurement above (the text below may "
                    "speak of its output, which only the full course shows).",
         "quiz": "**In the browser** this track has no measurement of {}: the questions about those ask for a "
                 "measurement it cannot make. Answer the others, or open the full course to measure them.",
         "predict": "**Skipped in the browser.** This predict box asks about a measurement that needs PyTorch (below): "
                    "the browser could not show you the answer."}
# the setup cell's toy model (notebook 02 builds it there): its shape only, which is what the cells that run here read
TOY = r"^(\w+) = model\.build_model\(([^,()]+)\b.*\)(\s*#.*)?$"
TOY_SHAPE = r"\1 = explore.shape_only(\2)  # the toy's shape (its sizes), no model: the browser runs none"
BUILTINS = set(dir(__import__("builtins"))) | {"display", "get_ipython"}  # IPython adds display to the builtins


def _names(tree: ast.AST) -> tuple[set[str], set[str]]:
    """(names a piece of code reads, names it binds); lambda arguments and loop variables count as bound."""
    used, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (bound if isinstance(node.ctx, ast.Store) else used).add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
    return used, bound


def _missing(tree: ast.AST, known: set[str]) -> set[str]:
    used, bound = _names(tree)
    return used - bound - known - BUILTINS


def needs_torch(tree: ast.AST, known: set[str] = frozenset()) -> bool:
    """Whether code calls the measuring half of course_lib (a module of TORCH_MODULES, a model beyond its shapes)."""
    bound = _names(tree)[1] | set(known)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            base = node.value.id
            if base == "model" and node.attr not in SHAPES or base in TORCH_MODULES and base not in bound:
                return True
        if isinstance(node, ast.Name) and node.id == "get_profile" or isinstance(node, ast.Import) and any(
                a.name == "torch" for a in node.names):
            return True
    return False


def _rewrite(source: str) -> str:
    for pattern, replacement in REWRITES:
        source = re.sub(pattern, replacement, source, flags=re.M | re.S)
    return source


def _setup_cell(source: str) -> str:
    """The setup cell without torch: the torch-free imports, and the picked recorded machine for the measured one."""
    keep = []
    for stmt in ast.parse(source).body:
        text = re.sub(TOY, TOY_SHAPE, _rewrite(ast.get_source_segment(source, stmt)), flags=re.S)
        if isinstance(stmt, ast.ImportFrom) and stmt.module == "course_lib":
            # every module but the measuring ones (any new torch-free module of course_lib comes along by itself)
            text = f"from course_lib import {', '.join(sorted({a.name for a in stmt.names} - TORCH_MODULES - {'model'}))}"
            if any(a.name == "model" for a in stmt.names):
                text += "\nfrom course_lib import specs as model  # the toy's shapes only: the browser runs no model"
        elif isinstance(stmt, ast.ImportFrom) and stmt.module.startswith("course_lib.") and (
                stmt.module.split(".")[1] in TORCH_MODULES | {"model"}):
            continue  # from course_lib.roofs import get_profile
        elif needs_torch(ast.parse(text)):
            continue  # threads, the device's name and free memory, the torch import: nothing to say in the browser
        keep.append(text)
    return "\n".join(keep) + "\nprint(picked.label)"


def _what_it_can(source: str, known: set[str]) -> str:
    """A cell less what needs a missing measurement, where that leaves something to learn: reveal_solutions keeps the
    solutions it can compute (the others say what they need) and show_quiz the measurements it can have (its measured
    questions then ask for them); statements that still need a missing name go. Any other cell is returned as is."""
    tree = ast.parse(source)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and (
        isinstance(n.func, ast.Attribute) and n.func.attr == "reveal_solutions" or
        isinstance(n.func, ast.Name) and n.func.id == "show_quiz" or _is_tool(n))]
    if not calls:
        return source
    known, edits = set(known), []  # (start, end, text) in the cell's source
    starts = [0, *(i + 1 for i, ch in enumerate(source) if ch == "\n")]
    span = lambda node: (starts[node.lineno - 1] + node.col_offset, starts[node.end_lineno - 1] + node.end_col_offset)  # noqa: E731
    text = lambda node: ast.get_source_segment(source, node)  # noqa: E731
    for stmt in tree.body:
        call = next((c for c in calls if c in set(ast.walk(stmt))), None)
        if call is not None and _is_tool(call):  # an explorer goes without the options it cannot have: its defaults
            if any(_missing(k.value, known) for k in call.keywords):
                kept = [*map(text, call.args), *(f"{k.arg}={text(k.value)}" for k in call.keywords
                                                 if not _missing(k.value, known))]
                edits.append((*span(call), f"{text(call.func)}({', '.join(kept)})"))
        for arg in [] if call is None or _is_tool(call) else [*call.args, *(k.value for k in call.keywords)]:
            if isinstance(arg, ast.List) and any(_missing(e, known) for e in arg.elts):
                items = [text(e) if not _missing(e, known) else
                         f"lambda: {f'{i + 1}. (This one needs the measurements of the full course.)'!r}"
                         for i, e in enumerate(arg.elts)]
                edits.append((*span(arg), "[\n    " + ",\n    ".join(items) + ",\n]"))
            elif isinstance(arg, ast.Dict) and any(_missing(v, known) for v in arg.values):
                items = [f"{text(k)}: {text(v)}" for k, v in zip(arg.keys, arg.values) if not _missing(v, known)]
                edits.append((*span(arg), "{" + ", ".join(items) + "}"))
        if call is None and _missing(stmt, known):
            edits.append((*span(stmt), ""))  # e.g. `best = max(demo, ...)`: the quiz then goes without it
        else:
            known |= _names(stmt)[1]
    for start, end, new in sorted(edits, reverse=True):
        source = source[:start] + new + source[end:]
    return "\n".join(line for line in source.splitlines() if line.strip())


def _quiz_keys(source: str) -> set[str]:
    """The measurements a ``show_quiz(..., context={...})`` call in ``source`` passes (its dict literal's keys)."""
    return {k.value for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "show_quiz"
            for kw in n.keywords if kw.arg == "context" and isinstance(kw.value, ast.Dict)
            for k in kw.value.keys if isinstance(k, ast.Constant)}


def _is_tool(call: ast.Call) -> bool:
    """A call that makes an explorer or a calculator (``widgets.DecodeCalculator(...)``)."""
    return isinstance(call.func, ast.Attribute) and call.func.attr.endswith(("Explorer", "Calculator"))


def _note(kind: str, source: str, cell_id: str, missing: set[str] = frozenset()):
    import nbformat

    text = NOTES[kind].format(", ".join(f"`{n}`" for n in sorted(missing)))
    return nbformat.v4.new_markdown_cell(f"{text}\n\n```python\n{source}\n```", id=f"lite-{cell_id}")


def explore_notebook(nb, name: str):
    """The explore version of notebook ``name`` (an nbformat node), by rule: the Colab cell goes; an introduction and
    the machine picker follow the title; the setup cell reads the picked recorded machine; a cell that needs torch
    becomes a note with its code (followed by RECORDED_CELLS' recorded answer where there is one), and so does a cell
    that reads what such a cell computed, and a predict box that no cell left here reveals; solutions, the quiz and
    the explorers keep what they can. Every other cell stays as it is."""
    unrevealed = set()
    while True:  # dropping a predict box can leave another one unrevealed: until none is left
        explore, found = _explore(nb, name, unrevealed)
        if not found - unrevealed:
            return explore
        unrevealed |= found


def _guesses(tree: ast.AST) -> set[str]:
    """The names a cell binds to a predict box (``x = checks.Guess(...)``)."""
    return {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Attribute) and node.value.func.attr == "Guess"
            for t in node.targets if isinstance(t, ast.Name)}


def _explore(nb, name: str, unrevealed: set[str]):
    """(the explore notebook with the cells ``unrevealed`` as notes, the ids of its predict boxes no later cell reads)"""
    import nbformat

    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    cells = [nb.cells[0], nbformat.v4.new_markdown_cell(INTRO, id="lite-intro"),
             nbformat.v4.new_code_cell(PICKER, id="lite-picker")]
    known = {"explore"}
    for cell in nb.cells[1:]:
        source = "".join(cell.source)
        if cell.cell_type != "code":
            cells.append(cell)
            continue
        if "google.colab" in source:
            continue
        new = _setup_cell(source) if "pick_device()" in source else _rewrite(source)
        if "picked.decode" in new and "picked.decode" not in source:  # a measurement answered by the recorded run: say so
            cells.append(_note("recorded", source, cell.id))
        if needs_torch(ast.parse(new), known):
            kind, stand_in = RECORDED_CELLS.get((name, cell.id), ("measure", None))
            cells.append(_note(kind, source, cell.id))
            if stand_in:
                cells.append(nbformat.v4.new_code_cell(stand_in, id=f"lite-{cell.id}-{kind}"))
                known |= _names(ast.parse(stand_in))[1]
            continue
        if cell.id in unrevealed:
            cells.append(_note("predict", source, cell.id))
            continue
        new = _what_it_can(new, known)
        if dropped := _quiz_keys(source) - _quiz_keys(new):  # measured questions that will ask for what it cannot have
            cells.append(nbformat.v4.new_markdown_cell(NOTES["quiz"].format(", ".join(f"`{k}`" for k in sorted(dropped))),
                                                       id=f"lite-{cell.id}-quiz"))
        missing = _missing(ast.parse(new), known)
        if missing or not new.strip():
            cells.append(_note("depends", source, cell.id, missing))
            continue
        cell.source, cell.outputs, cell.execution_count = new, [], None
        known |= _names(ast.parse(new))[1]
        cells.append(cell)
    nb.cells = cells
    nb.metadata["kernelspec"] = {"name": "python", "display_name": "Python (Pyodide)", "language": "python"}
    code = [(c.id, ast.parse(c.source)) for c in cells if c.cell_type == "code"]
    found = {cid for i, (cid, tree) in enumerate(code) if _guesses(tree) and not any(
        _guesses(tree) & _names(later)[0] for _, later in code[i + 1:])}
    return nb, found


def explore_notebooks(dest: Path) -> list[Path]:
    """Write the explore version of every notebook into ``dest``."""
    import nbformat

    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        nbformat.write(explore_notebook(nbformat.read(path, as_version=4), path.stem), dest / path.name)
    return sorted(dest.glob("*.ipynb"))


def build(out: Path) -> dict:
    """Write the browser track to ``out``; returns its pyodide-lock.json's packages."""
    with tempfile.TemporaryDirectory(prefix="course-lite-") as tmp:
        lite_dir = Path(tmp)
        pyodide = lite_dir / "static" / "pyodide"
        info = pyodide_runtime(pyodide)
        packages = write_lock(pyodide, info, [*pypi_wheels(), *kernel_wheels(), *local_wheels(lite_dir / "wheels")])
        explore_notebooks(lite_dir / "files")
        preload = [*KERNEL_PACKAGES, *COURSE_PACKAGES]
        if set(preload) - set(packages):
            raise SystemExit(f"preloaded but not in the lock: {sorted(set(preload) - set(packages))}")
        config = {"jupyter-config-data": {"exposeAppInBrowser": True, "litePluginSettings": {KERNEL_PLUGIN: {
            "disablePyPIFallback": True, "loadPyodideOptions": {"packages": preload}}}}}
        (lite_dir / "jupyter-lite.json").write_text(json.dumps(config, indent=1))
        # exactly the extensions the course needs, not whatever else this environment has installed
        (lite_dir / "jupyter_lite_config.json").write_text(json.dumps(
            {"LiteBuildConfig": {"ignore_sys_prefix": ["federated_extensions"]},
             "FederatedExtensionAddon": {"extra_labextensions_path": [str(lite_dir / "labextensions")]}}))
        for name in LAB_EXTENSIONS:
            shutil.copytree(labextension(name), lite_dir / "labextensions" / name)
        if out.exists():
            shutil.rmtree(out)
        run(sys.executable, "-m", "jupyterlite_core", "build", "--lite-dir", lite_dir, "--contents", lite_dir / "files",
            "--output-dir", out.resolve(), "--no-sourcemaps", "--no-unused-shared-packages", cwd=lite_dir)
    return packages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--out", type=Path, default=ROOT / "_site" / "lite", help="output folder (default: _site/lite/)")
    args = parser.parse_args(argv)
    build(args.out)
    print(f"wrote {args.out}/: open {args.out}/lab/index.html?path=00_start_here.ipynb through a web server")
    return 0


if __name__ == "__main__":
    sys.exit(main())
