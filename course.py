#!/usr/bin/env python3
"""Set up and run the course with nothing but Python 3.10 to 3.13 (standard library only).

    python3 course.py open     create/update .venv, install the course, open JupyterLab
    python3 course.py test     create/update .venv with the test tools, run the whole test suite
    python3 course.py check    create/update .venv, then run the learner pre-flight
    python3 course.py site     create/update .venv with the test tools, build the course site in _site/
    python3 course.py lock     maintainers: regenerate requirements-lock.txt with uv (--upgrade: newest)
    python3 course.py lab-settings   write the course's JupyterLab settings into this Python's
                                     environment (Binder's postBuild)

On Linux, torch comes as a CPU build (about 0.3 GB to download with everything else) unless an
NVIDIA GPU is present, when it is PyPI's CUDA build (about 2.8 GB); `--cpu` or `--gpu` anywhere on
the command line chooses. macOS and Windows get PyPI's torch (CPU, and Apple's GPU through MPS on
Apple silicon; about 0.2 GB).

On Windows use `py course.py open` (and `py course.py test`). Extra arguments after `test` go to
pytest, e.g. `python3 course.py test -k perf`. Set COURSE_VENV to use another environment folder.

Why a script and not a Makefile: it must work the same on Linux, macOS and Windows, before
anything but Python is installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("COURSE_VENV", ROOT / ".venv"))
REQUIREMENTS = {"open": "requirements.txt", "check": "requirements.txt", "test": "requirements-dev.txt",
                "site": "requirements-dev.txt"}
# Every package of requirements-dev.txt, pinned for Python 3.10-3.13 on every platform: pip takes it
# as constraints, so requirements*.txt say what the course needs and the lock fixes the rest.
LOCK = "requirements-lock.txt"
LOCK_COMMAND = ["pip", "compile", "requirements-dev.txt", "--universal", "--python-version", "3.10",
                "--no-emit-package", "course-lib", "--no-python-downloads", "--quiet",
                "--custom-compile-command", "python3 course.py lock", "-o", LOCK]
# numpy 2.2.6 has no wheel for Python 3.14 and torch 2.13.0 none for 3.9 (nor for 3.15)
SUPPORTED_PYTHONS = ((3, 10), (3, 13))
MIN_MACOS = (14, 0)  # torch 2.13.0's Mac wheels are macosx_14_0_arm64
# PyTorch's page of its CPU-only torch wheels (the same versions as PyPI's, without CUDA)
CPU_WHEELS = "https://download.pytorch.org/whl/cpu/torch/"
# What a first install downloads: Linux x86-64 with each build, macOS and Windows with PyPI's torch
# (tests/test_install.py checks these against pip's and uv's resolutions)
DOWNLOAD_GB = {"cpu": 0.3, "cuda": 2.8, "default": 0.2}
# Closing a notebook's tab shuts its kernel down: an idle kernel keeps its memory, and two or three
# of them fill Binder's 2 GB. overrides.d holds defaults that packages own; the user's own
# overrides.json and Settings still win.
LAB_SETTINGS = {"@jupyterlab/notebook-extension:tracker": {"kernelShutdown": True}}
LAB_SETTINGS_FILE = Path("share", "jupyter", "lab", "settings", "overrides.d", "course.json")


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def run(*cmd, **kwargs) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, **kwargs)


def unsupported(version=sys.version_info, system: str = sys.platform, machine: str = platform.machine(),
                macos: str = platform.mac_ver()[0]) -> str:
    """Why the course cannot be installed with this Python on this system ('' when it can)."""
    low, high = SUPPORTED_PYTHONS
    elsewhere = "use Binder or Colab (links in README.md)"
    if not low <= tuple(version[:2]) <= high:
        return (f"The course runs on Python {low[0]}.{low[1]} to {high[0]}.{high[1]}, the versions its pinned "
                f"packages (torch, numpy) publish builds for; this is Python {version[0]}.{version[1]}.\n"
                f"Install one of those (python.org, your package manager, or `uv python install "
                f"{high[0]}.{high[1]}`) and run this script with it, e.g. `python{high[0]}.{high[1]} course.py "
                f"open`, or {elsewhere}.")
    if system == "darwin" and machine == "x86_64":
        return (f"torch publishes no builds for Intel Macs since 2.2.2, and the course needs 2.13.0: {elsewhere}. "
                "On Apple silicon this means that Python runs under Rosetta: install an arm64 (or universal2) "
                "Python from python.org and run this script with it.")
    if system == "darwin" and macos and tuple(int(n) for n in macos.split(".")[:2]) < MIN_MACOS:
        return (f"torch 2.13.0's builds for Macs need macOS {MIN_MACOS[0]} or newer; this is macOS {macos}: "
                f"update macOS, or {elsewhere}.")
    if system == "win32" and machine.upper() == "ARM64":
        return f"torch 2.13.0 has no build for Windows on ARM: {elsewhere}."
    return ""


def nvidia_gpu() -> bool:
    """An NVIDIA driver is installed (its tool, or its kernel module's entry in /proc)."""
    return bool(shutil.which("nvidia-smi")) or Path("/proc/driver/nvidia").exists()


def torch_build(flags: set, system: str = sys.platform, gpu=nvidia_gpu) -> str:
    """'cpu' (PyTorch's CPU build), 'cuda' (PyPI's Linux build, with CUDA) or 'default' (PyPI's, elsewhere)."""
    if not system.startswith("linux"):
        return "default"
    if "--cpu" in flags or "--gpu" in flags:
        return "cpu" if "--cpu" in flags else "cuda"
    return "cuda" if gpu() else "cpu"


def build_message(build: str, flags: set) -> str:
    cpu, cuda = f"about {DOWNLOAD_GB['cpu']} GB", f"about {DOWNLOAD_GB['cuda']} GB"
    if build == "cpu":
        why = "--cpu" if "--cpu" in flags else "No NVIDIA GPU found (no nvidia-smi, no /proc/driver/nvidia)"
        return (f"{why}: installing torch's CPU build from PyTorch's CPU index, {cpu} to download in all "
                f"(PyPI's Linux build brings CUDA: {cuda}). For an NVIDIA GPU, run again with --gpu.")
    if build == "cuda":
        why = "--gpu" if "--gpu" in flags else "NVIDIA GPU found"
        return (f"{why}: installing torch's CUDA build from PyPI, {cuda} to download in all. "
                f"--cpu installs the CPU build instead ({cpu}).")
    note = " (--cpu and --gpu choose torch's build on Linux only)" if flags else ""
    return (f"Installing PyPI's torch for this system (CPU, and Apple's GPU through MPS on Apple silicon), "
            f"about {DOWNLOAD_GB['default']} GB to download in all{note}.")


def pinned(package: str, requirements: str = "requirements.txt") -> str:
    """The version that ``requirements`` pins for ``package`` (the first pin, if markers split it)."""
    text = (ROOT / requirements).read_text()
    return re.search(rf"^{re.escape(package)}==([^\s;#]+)", text, re.M).group(1)


def install_steps(requirements: str, build: str) -> list[list[str]]:
    """pip's arguments, one list per `pip install`."""
    everything = ["-r", requirements, "-c", LOCK]
    if build != "cpu":
        return [everything]
    # torch alone first: pip reads a --find-links page once per package it looks up, and a page it
    # cannot reach (a mirror-only network, CI) costs seconds of retries each time. The second step
    # keeps the CPU build, which satisfies requirements.txt's torch==X, and installs its dependencies.
    return [["--no-deps", f"torch=={pinned('torch')}+cpu", "--find-links", CPU_WHEELS], everything]


def write_lab_settings(prefix: Path) -> Path:
    """Write the course's JupyterLab defaults into the environment at ``prefix``."""
    path = Path(prefix) / LAB_SETTINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(LAB_SETTINGS, indent=2) + "\n")
    return path


def ensure_env(requirements: str, flags: set) -> Path:
    """Create the virtual environment if needed and install `requirements` when they changed."""
    reason = unsupported()
    if reason:
        sys.exit(reason)
    python = venv_python()
    if not python.exists():
        print(f"Creating the course environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    write_lab_settings(VENV)
    build = torch_build(flags)
    files = [ROOT / "requirements.txt", ROOT / requirements, ROOT / LOCK, ROOT / "pyproject.toml"]
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files) + build.encode()).hexdigest()
    stamp, built = VENV / f".installed-{requirements}", VENV / ".torch-build"
    if stamp.exists() and stamp.read_text() == digest:
        return python
    print(build_message(build, flags), flush=True)
    if built.exists() and built.read_text() != build:  # an installed 2.13.0+cpu satisfies torch==2.13.0
        run(python, "-m", "pip", "uninstall", "--yes", "--quiet", "torch")
    print(f"Installing {requirements} (the first time takes a few minutes) ...", flush=True)
    if run(python, "-m", "pip", "install", "--upgrade", "--quiet", "pip") != 0:
        sys.exit("Could not upgrade pip in the course environment.")
    for step in install_steps(requirements, build):
        if run(python, "-m", "pip", "install", "--quiet", *step) != 0:
            hint = (f" It could not get torch's CPU build from PyTorch's CPU index ({CPU_WHEELS}) nor from your "
                    f"package index: check the network, or take PyPI's CUDA build with --gpu "
                    f"(about {DOWNLOAD_GB['cuda']} GB).") if "--no-deps" in step else ""
            sys.exit(f"Installing {requirements} failed: see pip's message above.{hint}")
    built.write_text(build)
    stamp.write_text(digest)
    return python


def lock(rest: list[str]) -> int:
    """Resolve requirements-dev.txt for every supported Python and platform into the lock (needs PyPI)."""
    python = venv_python()
    if not python.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    if run(python, "-m", "pip", "install", "--quiet", f"uv=={pinned('uv', 'requirements-dev.txt')}") != 0:
        sys.exit("Could not install uv, the tool that writes the lock.")
    return run(python, "-m", "uv", *LOCK_COMMAND, *rest)


def main(argv: list[str]) -> int:
    flags = {a for a in argv if a in ("--cpu", "--gpu")}
    argv = [a for a in argv if a not in flags]
    if flags == {"--cpu", "--gpu"}:
        sys.exit("Choose one of --cpu and --gpu.")
    if argv[:1] == ["lock"]:
        return lock(argv[1:])
    if argv[:1] == ["lab-settings"]:  # Binder's postBuild: this Python's environment
        print("wrote", write_lab_settings(Path(sys.prefix)))
        return 0
    if not argv or argv[0] not in REQUIREMENTS:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    python = ensure_env(REQUIREMENTS[command], flags)
    if command == "open":
        return run(python, "-m", "jupyter", "lab", "notebooks/00_start_here.ipynb", *rest)
    if command == "check":
        return run(python, "-m", "course_lib", "check", *rest)
    if command == "site":  # the course site in _site/ (docs/build_site.py --help for its options)
        return run(python, "docs/build_site.py", *rest)
    # the whole suite: unit tests, every notebook through nbval, browser tests
    code = run(python, "-m", "pytest", "tests", "notebooks", "--nbval-lax", "-p", "no:cacheprovider", *rest)
    return 0 if code == 5 and rest else code  # 5 = "no tests collected" is fine for a -k filter


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
