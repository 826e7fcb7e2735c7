"""A plain install works: the wheel carries every data file, and the recorded GPU runs load from
a fresh virtual environment outside the repository (as after `pip install git+...` on Colab)."""

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_installs_and_loads_its_data(tmp_path):
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    wheel = next(tmp_path.glob("course_lib-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for data in ("hardware.json", "quiz.schema.json", "quiz.css", "quizzes/01.json", "reference/nvidia-h200.json"):
        assert f"course_lib/data/{data}" in names, data

    env = tmp_path / "fresh-venv"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    # specs needs only the standard library; run it away from the repository, so only the wheel can answer
    code = ("from course_lib import specs; ref = specs.load_reference(); "
            "print(specs.__file__); print(specs.reference_label(ref)); print(len(specs.catalog()))")
    out = subprocess.run([python, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    where, label, entries = out.stdout.splitlines()
    assert str(env) in where and label.startswith("recorded on NVIDIA H200") and int(entries) >= 10
