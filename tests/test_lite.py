"""The browser track (docs/build_lite.py): the explore notebooks, made by rule from notebooks/, run here in CPython
with torch, numpy and psutil absent (as in Pyodide), on each recorded machine; the rule keeps every calculator,
explorer and quiz; course_explore's record classes are the course's own.

One Lite build per test run (``built_lite``) is shared with tests/browser/test_lite_in_browser.py.
"""

from __future__ import annotations

import ast
import atexit
import dataclasses
import functools
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("build_lite", ROOT / "docs" / "build_lite.py")
build_lite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_lite)
NAMES = [p.name for p in sorted(build_lite.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))]
# what makes torch, numpy and psutil absent in the kernel, as they are in the browser
ABSENT = '''import sys
class _Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "numpy", "psutil"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _Absent())
'''


@functools.cache
def built_lite() -> tuple[Path, dict]:
    """(folder, pyodide-lock packages) of one Lite build for the whole test run."""
    out = Path(tempfile.mkdtemp(prefix="course-lite-")) / "lite"
    atexit.register(shutil.rmtree, out.parent, ignore_errors=True)
    return out, build_lite.build(out)


@pytest.fixture(scope="module")
def explored(tmp_path_factory):
    folder = tmp_path_factory.mktemp("explore")
    build_lite.explore_notebooks(folder)
    (folder / "absent").mkdir()
    (folder / "absent" / "sitecustomize.py").write_text(ABSENT)
    return folder


def _original(name: str):
    return nbformat.read(build_lite.NOTEBOOKS / name, as_version=4)


@pytest.mark.slow
@pytest.mark.parametrize("machine", ["cpu", "gpu"])
@pytest.mark.parametrize("name", NAMES)
def test_explore_notebook_runs_without_torch(explored, name, machine):
    from nbclient import NotebookClient

    nb = nbformat.read(explored / name, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("try:\n    import torch\nexcept ImportError:\n    print('torch is absent')"))
    path = os.pathsep.join([str(explored / "absent"), str(ROOT), str(ROOT / "lite")])
    # COURSE_REVEAL=1: each predict box is skipped at once, so every reveal runs (and a broken one fails its cell)
    env = {**os.environ, "PYTHONPATH": path, "COURSE_EXPLORE_MACHINE": machine, "COURSE_LIB_CACHE_DIR": str(explored),
           "COURSE_REVEAL": "1"}
    client = NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(explored)}})
    # No mimic of a front end's Output widget: what a reveal shows then lands in the cell's outputs, where the checks
    # below read it. The mimic also stalls a cell that shows a plotly figure in an Output widget until the timeout:
    # it sends the widget's state on the shell channel while the client awaits the cell's reply there.
    client.comm_open_handlers["jupyter.widget"] = lambda msg: None
    client.execute(env=env)
    errors = [(o.ename, o.evalue) for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, f"{name} on the recorded {machine}: {errors}"
    label = {"cpu": "CPU: recorded on AMD EPYC", "gpu": "GPU: recorded on NVIDIA H200"}[machine]
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert label in printed, f"{name} does not say which recorded machine it shows"
    assert "torch is absent" in printed  # the check above really ran without torch


@pytest.mark.parametrize("name", NAMES)
def test_the_rule_keeps_every_calculator_explorer_and_quiz(explored, name):
    explore = {c.id: c for c in nbformat.read(explored / name, as_version=4).cells}
    tools = [c for c in _original(name).cells if c.cell_type == "code"
             and ("show_quiz(" in c.source or "Explorer(" in c.source or "Calculator(" in c.source)]
    assert tools, f"{name} has no quiz or explorer"
    for cell in tools:
        assert explore[cell.id].cell_type == "code", f"{name}: cell {cell.id} became a note:\n{cell.source}"
    assert all(c.id.startswith("lite-") or c.id in {o.id for o in _original(name).cells} for c in explore.values())
    # nothing of the original is lost: a cell is kept, or a note shows its code
    for cell in _original(name).cells:
        if cell.cell_type == "code" and "google.colab" not in cell.source:
            kept = explore.get(cell.id)
            assert kept is not None or cell.source in explore[f"lite-{cell.id}"].source, f"{name}: {cell.id} vanished"


def test_every_rewrite_still_matches_a_notebook():
    # a rewrite whose cell changed matches nothing and silently stops relabelling (the bandwidth chart once called the
    # recorded machine "this machine (measured)" that way)
    import re
    cells = [c.source for name in NAMES for c in nbformat.read(build_lite.NOTEBOOKS / name, as_version=4).cells
             if c.cell_type == "code"]
    unmatched = [pattern for pattern, _ in build_lite.REWRITES
                 if not any(re.search(pattern, cell, flags=re.M | re.S) for cell in cells)]
    assert not unmatched, unmatched


def test_a_measurement_answered_by_the_recorded_run_says_so():
    cells = build_lite.explore_notebook(nbformat.read(build_lite.NOTEBOOKS / "01_the_bottleneck.ipynb", as_version=4),
                                        "01_the_bottleneck").cells
    ids = [c.id for c in cells]
    note, cell = cells[ids.index("c020") - 1], cells[ids.index("c020")]
    assert note.id == "lite-c020" and note.source.startswith("**Recorded.**") and "picked.decode" in cell.source


def test_a_quiz_says_which_measurements_the_browser_lacks():
    cells = build_lite.explore_notebook(nbformat.read(build_lite.NOTEBOOKS / "02_prefill_vs_decode.ipynb", as_version=4),
                                        "02_prefill_vs_decode").cells
    notes = [c.source for c in cells if c.id.endswith("-quiz")]
    assert len(notes) == 1 and "`prompt_tokens`, `ttft`" in notes[0] and "`bandwidth`" not in notes[0]


def test_recorded_cells_replace_cells_that_measure():
    for (stem, cell_id), (_, code) in build_lite.RECORDED_CELLS.items():
        cell = next((c for c in _original(f"{stem}.ipynb").cells if c.id == cell_id), None)
        assert cell is not None, f"{stem}: no cell {cell_id} any more: update RECORDED_CELLS"
        assert build_lite.needs_torch(ast.parse(build_lite._rewrite(cell.source))), f"{stem}/{cell_id} no longer measures"
        assert not build_lite.needs_torch(ast.parse(code))


@pytest.mark.parametrize(("code", "measures"), [
    ("roofs = []\nroofs.append(1)", False),  # a variable called roofs (notebook 03)
    ("profile = roofs.get_profile()", True), ("x = model.PRESETS['7b']", False), ("toy = model.build_model('cpu-s')", True),
    ("import torch", True), ("ref = specs.load_reference()", False), ("p = get_profile(device)", True),
])
def test_what_needs_torch(code, measures):
    assert build_lite.needs_torch(ast.parse(code)) is measures


def test_quiz_and_solutions_keep_what_they_can_compute():
    cell = ('best = max(demo)\nshow_quiz("04", context={"a": best.alpha, "b": profile.read_bandwidth})\n'
            'checks.reveal_solutions([lambda: f"{perf.x}", lambda: f"{ttft.ms}"])')
    out = build_lite._what_it_can(cell, known={"profile", "perf", "widgets", "show_quiz"})
    assert "best" not in out and '{"b": profile.read_bandwidth}' in out
    assert 'lambda: f"{perf.x}"' in out and "ttft" not in out and "needs the measurements" in out


def test_an_explorer_keeps_the_options_it_can_have():
    cell = 'tp = widgets.TensorParallelExplorer(model="70B", measured=here if tp.device else None, link=(tp.link, 1))'
    out = build_lite._what_it_can(cell, known={"widgets", "here"})
    assert out == 'tp = widgets.TensorParallelExplorer(model="70B")'
    assert build_lite._what_it_can(cell, known={"widgets", "here", "tp"}) == cell


def test_a_predict_box_goes_with_the_measurement_it_reveals():
    """A predict box whose reveal became a note would ask for a guess the browser can never answer."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# title", id="t"), *(
        nbformat.v4.new_code_cell(src, id=i) for i, src in [
            ("setup", "from course_lib import checks, perf"),
            ("g1", 'n = 3\ng1 = checks.Guess("how fast?")\ng1'),
            ("m1", "r = measure.decode_sweep(n)\ng1.reveal(lambda: print(r))"),
            ("g2", 'g2 = checks.Guess("how many bytes?")\ng2'),
            ("m2", "g2.reveal(lambda: print(perf.weight_bytes(7e9, 'fp16')))")])])
    cells = {c.id: c for c in build_lite.explore_notebook(nb, "99_test").cells}
    assert "lite-g1" in cells and "lite-m1" in cells and "g1" not in cells
    assert cells["g2"].cell_type == cells["m2"].cell_type == "code"


def test_course_explore_uses_the_course_own_record_classes():
    """The browser's copies of DecodeRecord and MachineProfile are compiled from course_lib's source: same fields,
    same numbers (torch is here, so the originals can be compared)."""
    from course_lib import measure, roofs

    sys.path.insert(0, str(ROOT / "lite"))
    try:
        import course_explore
    finally:
        sys.path.remove(str(ROOT / "lite"))
    for ours, theirs in ((course_explore.DecodeRecord, measure.DecodeRecord),
                         (course_explore.MachineProfile, roofs.MachineProfile)):
        assert [f.name for f in dataclasses.fields(ours)] == [f.name for f in dataclasses.fields(theirs)]
    for machine in course_explore.machines().values():
        for mine, real in zip(machine.decode, measure.recorded_decode(machine.run, "eager")):
            assert (mine.mbu, mine.modeled_ms, mine.residual) == (real.mbu, real.modeled_ms, real.residual)
        assert machine.decode and machine.profile.summary().startswith(machine.name)
