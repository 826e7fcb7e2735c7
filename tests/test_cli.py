"""The command line: estimate, check, bench and quiz, and their error handling (run as a learner would)."""

import json
import subprocess
import sys

from course_lib.__main__ import Check, format_budget, format_table, report, run_checks


def cli(*args):
    return subprocess.run([sys.executable, "-m", "course_lib", *args], capture_output=True, text=True)


def test_estimate_preset_and_json():
    out = cli("estimate", "--params", "7e9", "--precision", "fp16", "--hardware", "A100-80GB")
    assert out.returncode == 0 and "14.00 GB" in out.stdout and "6.87 ms/token" in out.stdout
    data = json.loads(cli("estimate", "--params", "70e9", "--hardware", "A100", "--json").stdout)
    assert data["fits"] is False and data["min_devices"] == 2 and data["weight_bytes"] == 140e9
    # with 80 GB of KV cache read per token: (14 + 80) GB at 2,039 GB/s = 46.1 ms; 94 GB do not fit in 85.9 GB: 2 devices
    out = cli("estimate", "--params", "7e9", "--hardware", "A100-80GB", "--kv-bytes", "80e9").stdout
    assert "KV cache read:  80.00 GB" in out and "46.10 ms/token" in out and "needs at least 2 such devices" in out


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
    bad = [Check("Python", True, "3.11"), Check("plotly", False, "missing", "pip install plotly")]
    text, status = report(bad)
    assert status == 1 and "NOT READY" in text and "pip install plotly" in text
    assert report(bad[:1])[1] == 0
    names = [c.name for c in run_checks()]
    assert names[:2] == ["Python", "torch"] and "lab extension anywidget" in names


def test_bench_runs_and_writes_json(tmp_path):
    out = cli("bench", "--fast", "--presets", "tiny", "--no-progress", "--json", str(tmp_path / "b.json"))
    assert out.returncode == 0, out.stderr
    assert "tiny" in out.stdout and "modeled ms" in out.stdout and "gap budget of tiny" in out.stdout
    data = json.loads((tmp_path / "b.json").read_text())
    rec = data["records"][0]
    assert rec["preset"] == "tiny" and rec["mode"] == "eager" and rec["ms_per_token"] > 0
    assert rec["modeled_ms"] == sum(rec["budget"].values()) and rec["mbu_stream"] > 0 and rec["mbu_kernel"] > 0
    assert rec["fits_in_cache"] is True
    assert data["profile"]["device_type"] == "cpu"


def test_bench_bad_arguments_exit_2():
    for args in (("--presets", "gpt-5"), ("--precision", "int4"), ("--threads", "0"), ("--device", "tpu")):
        out = cli("bench", "--fast", *args)
        assert out.returncode == 2 and "Traceback" not in out.stderr, args


def test_format_table_by_hand():
    from course_lib.measure import DecodeRecord

    r = DecodeRecord(preset="cpu-l", device="cpu", precision="fp32", mode="eager", batch=1, context_len=128,
                     weight_bytes=251.7e6, kv_bytes=0.0, flops=1.0, ms_per_step=20.0, iqr_ms=0.5, repeats=9, n_ops=84,
                     bandwidth=14e9, kernel_bandwidth=12e9, budget={"memory roof": 15.0, "other small ops": 1.0},
                     fits_in_cache=False)
    text = format_table([r])
    assert "cpu-l" in text and "251.7" in text and "+25%" in text  # measured vs modeled: 20 / 16 - 1
    budget = format_budget(r)
    assert "memory roof" in budget and "=   16.000" in budget and "(+25% against the model)" in budget


def test_quiz_answer_key():
    out = cli("quiz", "--answers", "01")
    assert out.returncode == 0 and "ms-7b-a100" in out.stdout
    assert cli("quiz", "--answers", "99").returncode == 2
