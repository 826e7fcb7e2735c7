"""The install: which Pythons, which torch build, the lock, what a first install downloads, and the
JupyterLab setting that frees a closed notebook's memory (course.py and Binder's postBuild).

Tests marked `network` ask a package index and skip, with the reason, where none answers. The
resolution for every supported Python uses uv, the lock's own tool: pip's --python-version does
not evaluate the lock's markers (python_full_version < '3.11', ...) for the target Python, only
for the one that runs pip, so pip checks the install of the Python that runs the tests."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import venv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from helpers import TreeMemoryPeak, tree_memory
from packaging.specifiers import SpecifierSet

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("course", ROOT / "course.py")
course = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(course)
LOW, HIGH = course.SUPPORTED_PYTHONS
SUPPORTED = [f"3.{minor}" for minor in range(LOW[1], HIGH[1] + 1)]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;#]+)\s*(?:;\s*([^#]+?))?\s*(?:#.*)?$")


def pins(path: Path) -> list[tuple[str, str, str]]:
    """(name, version, marker) of every `name==version` line; names normalised as PEP 503 does."""
    found = [PIN.match(line) for line in path.read_text().splitlines()]
    return [(re.sub(r"[-_.]+", "-", m[1]).lower(), m[2], m[3] or "") for m in found if m]


def lock() -> dict[str, set[str]]:
    locked: dict[str, set[str]] = {}
    for name, version, _ in pins(ROOT / course.LOCK):
        locked.setdefault(name, set()).add(version)
    return locked


# --- which Pythons --------------------------------------------------------------------------------

def test_the_supported_pythons_are_stated_the_same_everywhere():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    allowed = SpecifierSet(project["requires-python"])
    for minor in range(6, 16):
        assert (f"3.{minor}.0" in allowed) == (f"3.{minor}" in SUPPORTED), minor
    classified = [c.rsplit(" ", 1)[1] for c in project["classifiers"] if re.search(r"Python :: 3\.\d+$", c)]
    assert classified == SUPPORTED
    assert f"Python {SUPPORTED[0]} to {SUPPORTED[-1]}" in (ROOT / "README.md").read_text()
    assert (ROOT / "binder" / "runtime.txt").read_text().strip().removeprefix("python-") in SUPPORTED
    assert course.LOCK_COMMAND[course.LOCK_COMMAND.index("--python-version") + 1] == SUPPORTED[0]


@pytest.mark.parametrize("version, system, machine, macos, refused", [
    ((3, 9, 18), "linux", "x86_64", "", True), ((3, 10, 0), "linux", "x86_64", "", False),
    ((3, 13, 9), "win32", "AMD64", "", False), ((3, 14, 0), "linux", "x86_64", "", True),
    ((3, 12, 1), "darwin", "arm64", "14.0", False), ((3, 12, 1), "darwin", "arm64", "13.6.1", True),
    ((3, 12, 1), "darwin", "x86_64", "14.5", True), ((3, 12, 1), "win32", "ARM64", "", True)])
def test_course_py_refuses_what_torch_and_numpy_do_not_support(version, system, machine, macos, refused):
    reason = course.unsupported(version, system, machine, macos)
    assert bool(reason) == refused
    if refused and version[:2] in ((3, 9), (3, 14)):
        assert f"Python {SUPPORTED[0]} to {SUPPORTED[-1]}" in reason and f"this is Python 3.{version[1]}" in reason
    if refused:
        assert "Binder or Colab" in reason


def test_course_py_stops_before_creating_anything_on_an_unsupported_python(tmp_path):
    code = ("import runpy, sys; sys.version_info = (3, 14, 0, 'final', 0); sys.argv = ['course.py', 'open']; "
            "runpy.run_path('course.py', run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "COURSE_VENV": str(tmp_path / "venv")})
    assert out.returncode == 1 and "this is Python 3.14" in out.stderr, out.stderr
    assert not (tmp_path / "venv").exists()


# --- which torch ----------------------------------------------------------------------------------

@pytest.mark.parametrize("system, gpu, flags, build", [
    ("linux", False, set(), "cpu"), ("linux", True, set(), "cuda"), ("linux", True, {"--cpu"}, "cpu"),
    ("linux", False, {"--gpu"}, "cuda"), ("darwin", False, set(), "default"), ("win32", True, {"--gpu"}, "default")])
def test_course_py_picks_torch_s_build(system, gpu, flags, build):
    assert course.torch_build(flags, system, gpu=lambda: gpu) == build
    message = course.build_message(build, flags)
    if build == "cpu":
        assert "CPU build" in message and "--gpu" in message and f"{course.DOWNLOAD_GB['cpu']} GB" in message
    if build == "cuda":
        assert "CUDA build" in message and "--cpu" in message and f"{course.DOWNLOAD_GB['cuda']} GB" in message
    if build == "default":
        assert f"{course.DOWNLOAD_GB['default']} GB" in message
    assert ("Linux only" in message) == (build == "default" and bool(flags))


def test_the_readme_and_the_guide_state_course_py_s_download_sizes():
    readme = (ROOT / "README.md").read_text()
    guide = (ROOT / "docs" / "guide" / "preflight.md").read_text()
    for build, size in course.DOWNLOAD_GB.items():
        assert f"about {size} GB" in readme, build
    assert f"about {course.DOWNLOAD_GB['cpu']} GB" in guide and f"Python {SUPPORTED[0]} to {SUPPORTED[-1]}" in guide


def test_course_py_installs_the_chosen_build_and_switches_builds(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(course, "VENV", tmp_path)
    monkeypatch.setattr(course, "run", lambda *cmd: calls.append([str(c) for c in cmd[3:]]) or 0)
    monkeypatch.setattr(course, "unsupported", lambda: "")
    course.venv_python().parent.mkdir(parents=True)
    course.venv_python().touch()  # an environment exists: no venv is created

    monkeypatch.setattr(course, "torch_build", lambda flags: "cpu")
    course.ensure_env("requirements.txt", set())
    torch_pin = next(v for n, v, _ in pins(ROOT / "requirements.txt") if n == "torch")
    assert calls == [["install", "--upgrade", "--quiet", "pip"],
                     ["install", "--quiet", "--no-deps", f"torch=={torch_pin}+cpu", "--find-links", course.CPU_WHEELS],
                     ["install", "--quiet", "-r", "requirements.txt", "-c", course.LOCK]]
    calls.clear()
    course.ensure_env("requirements.txt", set())
    assert calls == []  # nothing changed: nothing to install
    monkeypatch.setattr(course, "torch_build", lambda flags: "cuda")
    course.ensure_env("requirements.txt", {"--gpu"})
    # an installed X+cpu satisfies torch==X, so it has to go first
    assert calls[0] == ["uninstall", "--yes", "--quiet", "torch"]
    assert calls[2:] == [["install", "--quiet", "-r", "requirements.txt", "-c", course.LOCK]]
    assert (tmp_path / ".torch-build").read_text() == "cuda"


# --- the lock -------------------------------------------------------------------------------------

def test_the_lock_is_current_with_the_requirements():
    text = (ROOT / course.LOCK).read_text()
    assert text.startswith("# This file was autogenerated by uv") and "#    python3 course.py lock\n" in text
    entries = [line for line in text.splitlines() if line and not line.startswith(("#", " "))]
    assert entries and all(PIN.match(line) for line in entries)  # pins only: no editable, no index, no range
    locked = lock()
    for source in ("requirements.txt", "requirements-dev.txt", "binder/requirements.txt"):
        for name, version, _ in pins(ROOT / source):
            assert version.split("+")[0] in locked.get(name, ()), f"{source} pins {name}=={version}; lock: {locked.get(name)}"
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {re.sub(r"[-_.]+", "-", d).lower() for d in declared} <= set(locked)
    assert course.LOCK_COMMAND[course.LOCK_COMMAND.index("compile") + 1] == "requirements-dev.txt"


def test_binder_installs_the_cpu_build_from_the_lock():
    lines = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    constraint = next(line.split()[1] for line in lines if line.startswith("-c "))
    assert (ROOT / "binder" / constraint).resolve() == (ROOT / course.LOCK).resolve()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    assert course.CPU_WHEELS.startswith("https://download.pytorch.org/whl/cpu/")


# --- what the package index says (network) --------------------------------------------------------

def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=15):
            return True
    except OSError:
        return False


def _uv() -> list[str]:
    if importlib.util.find_spec("uv") is not None:
        return [sys.executable, "-m", "uv"]
    if shutil.which("uv"):
        return [shutil.which("uv")]
    pytest.skip("uv is not installed (requirements-dev.txt pins it: python3 course.py test installs it)")


UV_PLATFORMS = {"linux": "x86_64-manylinux_2_28", "linux-arm": "aarch64-manylinux_2_28",
                "macos": "aarch64-apple-darwin", "windows": "x86_64-pc-windows-msvc"}


@pytest.mark.network
@pytest.mark.parametrize("system", sorted(UV_PLATFORMS))
@pytest.mark.parametrize("python", SUPPORTED)
def test_the_lock_resolves_for_every_supported_python(python, system, tmp_path):
    index = os.environ.get("UV_DEFAULT_INDEX") or os.environ.get("UV_INDEX_URL") or "https://pypi.org/simple/"
    if not _answers(index.rstrip("/") + "/pip/"):
        pytest.skip(f"uv's package index {index} does not answer")
    out = tmp_path / "pylock.course.toml"
    resolved = subprocess.run([*_uv(), "pip", "compile", "requirements.txt", "-c", course.LOCK, "--python-version", python,
                               "--python-platform", UV_PLATFORMS[system], "--no-python-downloads", "--quiet",
                               "--format", "pylock.toml", "-o", str(out)], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "MACOSX_DEPLOYMENT_TARGET": "{}.{}".format(*course.MIN_MACOS)})
    assert resolved.returncode == 0, resolved.stderr
    packages = [p for p in tomllib.loads(out.read_text())["packages"] if "version" in p]  # not course_lib itself
    locked = lock()
    assert [(p["name"], p["version"]) for p in packages if p["version"] not in locked.get(p["name"], ())] == []
    total = sum(max(w["size"] for w in p["wheels"]) for p in packages)  # the largest, where several fit
    assert any(p["name"].startswith("nvidia-") for p in packages) == system.startswith("linux")
    if system != "linux-arm":  # PyPI's torch for Linux brings CUDA: what --gpu downloads on x86-64
        stated = course.DOWNLOAD_GB["cuda" if system == "linux" else "default"]
        assert 0.75 < total / (stated * 1e9) < 1.25, f"{total / 1e9:.2f} GB"


def _size(url: str) -> int:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        return os.path.getsize(urllib.request.url2pathname(parts.path))
    with urllib.request.urlopen(urllib.request.Request(url.split("#")[0], method="HEAD"), timeout=60) as response:
        return int(response.headers["Content-Length"])


@pytest.mark.network
@pytest.mark.skipif(sys.platform != "linux", reason="the CPU-or-CUDA choice is Linux's")
def test_a_cpu_only_linux_install_downloads_under_600_mb(tmp_path):
    """What `python3 course.py open` installs on Linux without an NVIDIA GPU, for this Python:
    pip's dry run of course.py's own install steps, in one resolution, from an empty environment."""
    torch_step, everything = course.install_steps("requirements.txt", "cpu")
    if not _answers(course.CPU_WHEELS):  # pip would retry it for every package; pip's own sources may have it
        torch_step = torch_step[:torch_step.index("--find-links")]
    pip = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
    if subprocess.run([*pip, *torch_step], cwd=ROOT, capture_output=True).returncode != 0:  # course.py's first step
        pytest.skip(f"torch's CPU build for Python {sys.version_info[0]}.{sys.version_info[1]} is neither on "
                    f"{course.CPU_WHEELS} (unreachable) nor in pip's configured sources")
    report = tmp_path / "report.json"
    dry_run = subprocess.run([*pip, "--report", str(report), *everything, *torch_step[1:]],
                             cwd=ROOT, capture_output=True, text=True)
    if dry_run.returncode != 0 and re.search(r"NewConnectionError|NameResolutionError|ConnectTimeout", dry_run.stderr):
        pytest.skip("pip's package index does not answer")
    assert dry_run.returncode == 0, dry_run.stderr
    install = json.loads(report.read_text())["install"]
    wheels = [i for i in install if "archive_info" in i["download_info"]]  # not course_lib's own folder
    names = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in install}
    assert names["torch"].endswith("+cpu")
    assert not [n for n in names if n.startswith(("nvidia-", "cuda-", "triton"))]
    with ThreadPoolExecutor(8) as pool:
        total = sum(pool.map(_size, [w["download_info"]["url"] for w in wheels]))
    assert total < 600e6, f"{len(wheels)} wheels, {total / 1e6:.0f} MB"
    assert 0.75 < total / (course.DOWNLOAD_GB["cpu"] * 1e9) < 1.25, f"{total / 1e6:.0f} MB"


# --- JupyterLab shuts a closed notebook's kernel down ---------------------------------------------

def _kernel_shutdown_default(app_settings: Path, tmp_path: Path) -> bool:
    """What JupyterLab's own settings code makes of the notebook tracker's `kernelShutdown`, with the
    application settings in ``app_settings`` and the schemas of the JupyterLab installed here."""
    from jupyterlab_server.settings_utils import get_settings

    schemas = Path(sys.prefix, "share", "jupyter", "lab", "schemas")
    settings, _ = get_settings(str(app_settings), str(schemas), str(tmp_path / "user-settings"),
                               schema_name="@jupyterlab/notebook-extension:tracker")
    return settings["schema"]["properties"]["kernelShutdown"]["default"]


def test_course_py_writes_jupyterlab_s_kernel_shutdown_setting_into_the_environment(tmp_path):
    from jupyterlab.commands import get_app_dir

    prefix = tmp_path / "venv"
    assert not _kernel_shutdown_default(prefix / "share/jupyter/lab/settings", tmp_path)  # JupyterLab's default
    path = course.write_lab_settings(prefix)
    assert _kernel_shutdown_default(path.parent.parent, tmp_path)
    # JupyterLab reads <prefix>/share/jupyter/lab/settings: the application folder of the environment
    if not os.environ.get("JUPYTERLAB_DIR"):
        assert Path(get_app_dir()) / "settings" == Path(sys.prefix) / path.relative_to(prefix).parent.parent


@pytest.mark.skipif(not shutil.which("bash"), reason="Binder's postBuild is a bash script")
def test_binder_s_postbuild_writes_the_same_setting(tmp_path):
    env = tmp_path / "binder-env"
    venv.EnvBuilder(with_pip=False).create(env)  # a Python whose sys.prefix is this folder, as Binder's
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "pip").write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "pip-args"}\n')  # no install here
    (fake / "pip").chmod(0o755)
    path = f"{fake}{os.pathsep}{env / 'bin'}{os.pathsep}{os.environ['PATH']}"
    out = subprocess.run(["bash", "binder/postBuild"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PATH": path})
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "pip-args").read_text().split() == ["install", "--no-deps", "--no-build-isolation", "-e", "."]
    written = env / course.LAB_SETTINGS_FILE
    assert json.loads(written.read_text()) == course.LAB_SETTINGS
    assert _kernel_shutdown_default(written.parent.parent, tmp_path)


# --- the notebook budget counts the processes a kernel starts --------------------------------------

CHILD = "import sys; block = b'x' * 200_000_000; print('ready', flush=True); sys.stdin.read()"
PARENT = f"""import subprocess, sys
child = subprocess.Popen([sys.executable, '-c', {CHILD!r}], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
print(child.pid, flush=True)
child.stdout.readline()
print('held', flush=True)
sys.stdin.readline()
child.stdin.close()
child.wait()
print('gone', flush=True)
sys.stdin.readline()
"""


def test_the_tree_memory_counts_a_child_process_and_its_peak_outlives_it():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        child_pid = int(parent.stdout.readline())
        sampler = TreeMemoryPeak(parent.pid, interval=0.05)
        assert parent.stdout.readline() == "held\n"
        held, child, alone = tree_memory(parent.pid), tree_memory(child_pid), tree_memory_of_one(parent.pid)
        time.sleep(0.3)  # a few samples while the child holds its 200 MB
        parent.stdin.write("\n")
        parent.stdin.flush()
        assert parent.stdout.readline() == "gone\n"
        after, peak = tree_memory(parent.pid), sampler.stop()
    finally:
        parent.kill()
        parent.wait()
    assert child > 200e6
    assert held == pytest.approx(alone + child, rel=0.05)  # the parent's and the child's, summed
    assert held - after > 190e6  # the child's memory left with it...
    assert peak >= 0.95 * held  # ...but the sampled peak kept it
    assert tree_memory(parent.pid) is None  # a process that is gone


def tree_memory_of_one(pid: int) -> float:
    info = psutil.Process(pid).memory_full_info()
    return info.pss if sys.platform == "linux" else info.rss
