"""Repository hygiene: notebooks are committed without outputs, the README's commands exist."""

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tracked_notebooks():
    out = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True)
    files = [ROOT / f for f in out.stdout.split()] if out.returncode == 0 else []
    return files or sorted(ROOT.glob("notebooks/*.ipynb"))


def test_notebooks_have_no_outputs():
    dirty = []
    for path in tracked_notebooks():
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count")):
                dirty.append(path.name)
                break
    assert not dirty, f"strip outputs with `nbstripout notebooks/*.ipynb`: {dirty}"


def test_readme_names_the_two_commands_and_ci_calls_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "python3 course.py open" in readme and "python3 course.py test" in readme
    assert "python3 course.py test" in (ROOT / ".ci" / "run").read_text()


def _pins(path):
    lines = (ROOT / path).read_text().splitlines()
    return {line.split("==")[0].strip(): line.split("==")[1].split()[0] for line in lines if "==" in line}


def test_binder_pins_match_requirements():
    ours, binder = _pins("requirements.txt"), _pins("binder/requirements.txt")
    assert binder.pop("torch") == ours.pop("torch") + "+cpu"  # Binder gets the CPU-only build
    assert binder == ours


def test_colab_cell_and_links_point_at_the_repository():
    import re  # not tomllib: the course supports Python 3.10

    url = re.search(r'^Repository = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    slug = url.removeprefix("https://github.com/")
    readme = (ROOT / "README.md").read_text()
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        first_code = next(c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
        source = "".join(first_code["source"])
        assert "google.colab" in source and url in source, path.name
        assert f"colab.research.google.com/github/{slug}/blob/main/notebooks/{path.name}" in readme
    assert f"mybinder.org/v2/gh/{slug}/" in readme
