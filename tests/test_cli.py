"""The command line: estimate, check and their error handling (run as a learner would)."""

import json
import subprocess
import sys

from course_lib import check


def cli(*args):
    return subprocess.run([sys.executable, "-m", "course_lib", *args], capture_output=True, text=True)


def test_estimate_preset_and_json():
    out = cli("estimate", "--params", "7e9", "--precision", "fp16", "--hardware", "A100-80GB")
    assert out.returncode == 0 and "14.00 GB" in out.stdout and "6.87 ms/token" in out.stdout
    data = json.loads(cli("estimate", "--params", "70e9", "--hardware", "A100", "--json").stdout)
    assert data["fits"] is False and data["min_devices"] == 2 and data["weight_bytes"] == 140e9


def test_estimate_with_bandwidth():
    data = json.loads(cli("estimate", "--params", "13e9", "--bandwidth", "3e12", "--json").stdout)
    assert abs(data["tokens_per_s"] - 115.38) < 0.01 and data["fits"] is None


def test_estimate_bad_arguments_exit_2_naming_them():
    for args, flag in [(("--params", "-7", "--bandwidth", "2e12"), "--params"),
                       (("--params", "7e9", "--precision", "fp5", "--hardware", "A100"), "--precision"),
                       (("--params", "7e9", "--hardware", "B9000"), "--hardware"),
                       (("--params", "abc", "--hardware", "A100"), "--params"),
                       (("--params", "7e9"), "--hardware")]:
        out = cli("estimate", *args)
        assert out.returncode == 2, args
        assert flag in out.stderr and "Traceback" not in out.stderr


def test_check_passes_here():
    out = cli("check")
    assert out.returncode == 0, out.stdout
    assert "Verdict: READY" in out.stdout and "torch" in out.stdout and "device" in out.stdout


def test_check_reports_problems_with_a_fix():
    bad = [check.Check("Python", True, "3.11"), check.Check("plotly", False, "missing", "pip install plotly")]
    text, status = check.report(bad)
    assert status == 1 and "NOT READY" in text and "pip install plotly" in text
    missing = check.check_package("surely-not-a-package-xyz", "nothing")
    assert not missing.ok and missing.fix
    assert not check.check_lab_extension("no-such-extension", "x").ok
