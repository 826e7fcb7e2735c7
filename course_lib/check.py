"""`python -m course_lib check`: the pre-flight for learners and workshop attendees.

Each check is a small function returning a `Check`; `run_checks()` collects them and `report()`
turns them into text with a verdict and the fix for each problem.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

MIN_PYTHON = (3, 10)
MIN_FREE_MEMORY = 1.5e9  # bytes: the CPU notebooks peak near 1.2 GB
REQUIRED_PACKAGES = {  # distribution -> what the course needs it for
    "torch": "the toy transformer",
    "numpy": "numbers",
    "ipywidgets": "sliders and quizzes",
    "plotly": "charts",
    "anywidget": "plotly's FigureWidget",
    "jupyterlab": "the notebooks",
    "tqdm": "progress bars",
}
# JupyterLab front-end extensions without which widgets show "Error displaying widget"
LAB_EXTENSIONS = {
    "@jupyter-widgets/jupyterlab-manager": "jupyterlab_widgets",
    "anywidget": "anywidget",
    "jupyterlab-plotly": "plotly",
}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def check_python() -> Check:
    version = platform.python_version()
    ok = sys.version_info >= MIN_PYTHON
    return Check("Python", ok, version, "" if ok else "install Python 3.10 or newer")


def check_package(dist: str, purpose: str) -> Check:
    try:
        version = metadata.version(dist)
    except metadata.PackageNotFoundError:
        return Check(dist, False, f"missing (needed for {purpose})",
                     "run `python3 course.py open`, or `pip install -r requirements.txt`")
    return Check(dist, True, version)


def lab_extension_dirs() -> list[Path]:
    try:
        from jupyter_core.paths import jupyter_path
    except ImportError:
        return []
    return [Path(p) for p in jupyter_path("labextensions")]


def check_lab_extension(name: str, dist: str) -> Check:
    for folder in lab_extension_dirs():
        if (folder / name / "package.json").exists():
            return Check(f"lab extension {name}", True, f"installed in {folder}")
    return Check(f"lab extension {name}", False, "not found: widgets or charts would not display",
                 f"`pip install --force-reinstall {dist}` in the course environment, then restart JupyterLab")


def check_device() -> list[Check]:
    try:
        from . import devices
    except ImportError as err:  # torch missing: reported by check_package already
        return [Check("device", False, f"cannot import torch ({err})", "install torch", required=True)]
    device = devices.pick_device()
    name = devices.device_name(device)
    precisions = ", ".join(devices.supported_precisions(device))
    free = devices.free_memory(device)
    checks = [Check("device", True, f"{device.type}: {name} (runs {precisions})")]
    enough = free >= MIN_FREE_MEMORY
    checks.append(Check("free memory", enough, f"{free / 1e9:.1f} GB free on {device.type}",
                        "" if enough else "close other programs: the notebooks need about 1.5 GB"))
    if device.type == "cpu":
        checks.append(Check("GPU", True, "none found: the course runs on the CPU (fine; notebooks "
                            "also show recorded GPU reference runs)", required=False))
    return checks


def run_checks() -> list[Check]:
    checks = [check_python()]
    checks += [check_package(dist, purpose) for dist, purpose in REQUIRED_PACKAGES.items()]
    if all(c.ok for c in checks if c.name == "torch"):
        checks += check_device()
    checks += [check_lab_extension(name, dist) for name, dist in LAB_EXTENSIONS.items()]
    return checks


def report(checks: list[Check]) -> tuple[str, int]:
    """The printed report and the exit status (0 only when every required check passed)."""
    lines = ["Course pre-flight: 'Why is LLM inference so slow?'", ""]
    for c in checks:
        mark = "ok  " if c.ok else ("FAIL" if c.required else "note")
        lines.append(f"  [{mark}] {c.name:<40} {c.detail}")
    problems = [c for c in checks if not c.ok and c.required]
    lines.append("")
    if problems:
        lines.append(f"Verdict: NOT READY - {len(problems)} problem(s) to fix:")
        lines += [f"  - {c.name}: {c.fix}" for c in problems]
        return "\n".join(lines), 1
    lines.append("Verdict: READY - open the course with `python3 course.py open`.")
    return "\n".join(lines), 0


def main() -> int:
    text, status = report(run_checks())
    print(text)
    return status
