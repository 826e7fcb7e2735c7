#!/usr/bin/env python3
"""Set up and run the course with nothing but Python >= 3.10 (standard library only).

    python3 course.py open     create/update .venv, install the course, open JupyterLab
    python3 course.py test     create/update .venv with the test tools, run the whole test suite
    python3 course.py check    create/update .venv, then run the learner pre-flight

On Windows use `py course.py open` (and `py course.py test`). Extra arguments after `test` go to
pytest, e.g. `python3 course.py test -k perf`. Set COURSE_VENV to use another environment folder.

Why a script and not a Makefile: it must work the same on Linux, macOS and Windows, before
anything but Python is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("COURSE_VENV", ROOT / ".venv"))
REQUIREMENTS = {"open": "requirements.txt", "check": "requirements.txt", "test": "requirements-dev.txt"}


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def run(*cmd, **kwargs) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, **kwargs)


def ensure_env(requirements: str) -> Path:
    """Create the virtual environment if needed and install `requirements` when they changed."""
    if sys.version_info < (3, 10):  # noqa: UP036 (this script runs before the venv, on any Python)
        sys.exit(f"The course needs Python 3.10 or newer; this is {sys.version.split()[0]}.")
    python = venv_python()
    if not python.exists():
        print(f"Creating the course environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    files = [ROOT / "requirements.txt", ROOT / requirements, ROOT / "pyproject.toml"]
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()
    stamp = VENV / f".installed-{requirements}"
    if stamp.exists() and stamp.read_text() == digest:
        return python
    print(f"Installing {requirements} (the first time takes a few minutes) ...", flush=True)
    if run(python, "-m", "pip", "install", "--upgrade", "--quiet", "pip") != 0:
        sys.exit("Could not upgrade pip in the course environment.")
    if run(python, "-m", "pip", "install", "--quiet", "-r", requirements) != 0:
        sys.exit(f"Installing {requirements} failed: see pip's message above.")
    stamp.write_text(digest)
    return python


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in REQUIREMENTS:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    python = ensure_env(REQUIREMENTS[command])
    if command == "open":
        return run(python, "-m", "jupyter", "lab", "notebooks/00_start_here.ipynb", *rest)
    if command == "check":
        return run(python, "-m", "course_lib", "check", *rest)
    # the whole suite: unit tests, every notebook through nbval, browser tests
    code = run(python, "-m", "pytest", "tests", "notebooks", "--nbval-lax", "-p", "no:cacheprovider", *rest)
    return 0 if code == 5 and rest else code  # 5 = "no tests collected" is fine for a -k filter


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
