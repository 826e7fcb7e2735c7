"""bench (table, fits, CLI) and the decode-step breakdown, on the "tiny" preset."""

import json

import pytest
import torch

from course_lib import bench, breakdown, devices, microbench, model
from course_lib import profile as prof


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_LIB_CACHE_DIR", str(tmp_path))


def record(preset, mb, ms, cache=False):
    return {"preset": preset, "mode": "eager", "weight_bytes": mb * 1e6, "context_len": 128, "ms_per_token": ms,
            "ms_per_step": ms, "bytes_per_step": mb * 1e6, "spread": 0.01, "predicted_ms": ms * 0.5,
            "launch_aware_ms": ms * 0.8, "mbu_measured": 0.5, "n_kernels": 100, "fits_in_cache": cache}


def test_format_table_lists_presets():
    text = bench.format_table([record("cpu-s", 33.6, 3.0, True), record("cpu-l", 251.7, 20.0)])
    assert "cpu-s" in text and "cpu-l" in text and "ms/token" in text and "251.7" in text
    assert "+25%" in text  # measured vs launch-aware: 20 / 16 - 1


def test_fits_over_all_and_out_of_cache():
    recs = [record("a", 10, 1.0, True), record("b", 20, 2.0), record("c", 40, 4.0)]
    fits = bench._fits(recs)
    assert fits["eager/all"]["r2"] == pytest.approx(1.0)
    assert fits["eager/all"]["effective_bandwidth"] == pytest.approx(1e10)  # 10 MB per ms
    assert fits["eager/out_of_cache"]["n"] == 2


def test_bench_main_rejects_bad_arguments():
    with pytest.raises(SystemExit) as err:
        bench.bench_main(["--threads", "0"])
    assert err.value.code == 2
    with pytest.raises(SystemExit):
        bench.bench_main(["--presets", "no-such-preset"])


def test_breakdown_and_gemv_chain():
    m = model.build_model("tiny", device="cpu")
    chain = breakdown.gemv_chain(m, fast=True)
    cfg = m.config
    norms = (2 * cfg.n_layers + 1) * cfg.d_model * 4
    assert chain["n_matrices"] == 4 * cfg.n_layers + 1 and chain["bytes"] == cfg.weight_bytes("fp32") - norms
    result = breakdown.decode_breakdown(m, context_len=8, steps=20, fast=True)
    names = [c["component"] for c in result["components"]]
    assert names == list(breakdown._COMPONENTS) and result["step_ms"] > 0
    assert all(c["ms"] >= 0 for c in result["components"] if c["component"] != "outside the modules")
    assert "LM head" in breakdown.format_breakdown(result)


def test_run_bench_smoke(tmp_path, monkeypatch):
    fake = prof.MachineProfile(
        device_type="cpu", device_name=devices.device_name("cpu"), torch_version=torch.__version__,
        date="2026-01-01T00:00:00+00:00", dtypes=["fp32"], copy_bandwidth=12e9, read_bandwidth=14e9,
        matmul_flops={"fp32": 1e11}, launch_overhead=5e-6, launch_overhead_graph=None,
        cache_bytes=32 * 2**20, cpu_threads=1, fast=True,
        details={"read": {"value": 13e9}, "gemv": {"value": 14e9}})
    monkeypatch.setattr(bench, "get_profile", lambda *a, **k: fake)
    quick = microbench.Microbench("x", 14e9, "B/s", "fake", "cpu", "fp32", {}, 1, 1.0, 0.0)
    monkeypatch.setattr(microbench, "read_bandwidth", lambda *a, **k: quick)
    monkeypatch.setattr(microbench, "gemv_bandwidth", lambda *a, **k: quick)
    lines = []
    threads = torch.get_num_threads()
    out = tmp_path / "bench.json"
    result = bench.run_bench("cpu", json_path=str(out), fast=True, presets=["tiny"], threads=1, progress=False,
                             out=lines.append)
    data = json.loads(out.read_text())
    assert data["records"][0]["preset"] == "tiny" and data["provenance"]["torch_version"] == torch.__version__
    assert {"date", "command", "device_name", "cpu", "load_avg_1_5_15"} <= set(data["provenance"])
    assert result["paired"]["preset"] == "tiny" and len(result["paired"]["rounds"]) == 3
    assert any("tiny" in line for line in lines)
    assert torch.get_num_threads() == threads  # restored after the bench
