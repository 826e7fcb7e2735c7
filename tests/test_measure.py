"""Model timing, MBU/MFU, fits and sweeps on the "tiny" preset (fast; no timing thresholds)."""

import math

import pytest
import torch

from course_lib import devices, measure, model, perf
from course_lib import profile as prof

RECORD_KEYS = {"preset", "device", "precision", "batch", "context_len", "weight_bytes", "kv_bytes",
               "bytes_per_step", "bytes_per_token", "ms_per_step", "ms_per_token", "tokens_per_s", "predicted_ms",
               "launch_aware_ms", "roofline_ms", "mbu_measured", "mbu_datasheet", "mfu", "fits_in_cache", "repeats",
               "spread", "n_kernels", "n_aten_ops", "mode", "threads", "flops_per_token"}


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_LIB_CACHE_DIR", str(tmp_path))


@pytest.fixture
def profile():
    return prof.MachineProfile(
        device_type="cpu", device_name=devices.device_name("cpu"), torch_version=torch.__version__,
        date="2026-01-01T00:00:00+00:00", dtypes=["fp32"], copy_bandwidth=12e9, read_bandwidth=14e9,
        matmul_flops={"fp32": 1e11}, launch_overhead=5e-6, launch_overhead_graph=None,
        cache_bytes=32 * 2**20, cpu_threads=torch.get_num_threads(), fast=True)


@pytest.fixture(scope="module")
def tiny():
    return model.build_model("tiny", device="cpu", max_batch=2)


def test_mbu_and_mfu_by_hand():
    assert measure.mbu(1e9, 10, 2e10) == pytest.approx(0.5)
    assert measure.mfu(14e9, 10, 312e12) == pytest.approx(14e10 / 312e12)
    for bad in (0, -1.0, math.nan, math.inf, "1e9", True, None):
        with pytest.raises(ValueError):
            measure.mbu(bad, 10, 2e10)
        with pytest.raises(ValueError):
            measure.mfu(1e9, 10, bad)
    with pytest.raises(ValueError, match="tokens_per_s"):
        measure.mbu(1e9, 0, 2e10)


def test_linear_fit_by_hand():
    assert measure.linear_fit([1, 2, 3], [2, 4, 6]) == pytest.approx((2.0, 0.0, 1.0))
    # mean x 1.5, mean y 2.5; Sxy = 4, Sxx = 5, Syy = 5 -> slope 0.8, intercept 1.3, R^2 = 16/25
    assert measure.linear_fit([0, 1, 2, 3], [1, 3, 2, 4]) == pytest.approx((0.8, 1.3, 0.64))
    for xs, ys in (([1], [1]), ([1, 2], [1]), ([2, 2, 2], [1, 2, 3]), ([1, math.nan], [1, 2])):
        with pytest.raises(ValueError):
            measure.linear_fit(xs, ys)


@pytest.mark.parametrize("name, entry", [("NVIDIA H100 80GB HBM3", "H100-SXM"), ("NVIDIA H100 PCIe", "H100-PCIe"),
                                         ("NVIDIA A100-SXM4-40GB", "A100-40GB"), ("NVIDIA A100-SXM4-80GB", "A100-80GB"),
                                         ("NVIDIA H200", "H200"), ("NVIDIA L4", "L4"), ("NVIDIA L40S", None),
                                         ("NVIDIA H100 NVL", None), ("Intel(R) Xeon(R) Processor", None)])
def test_datasheet_match(name, entry):
    hw = measure.datasheet_hardware(name)
    assert (hw.name if hw else None) == entry


def test_count_ops_counts_every_linear_once(tiny):
    ops = measure.count_ops(tiny, 1, 8)
    cfg = tiny.config
    assert ops["by_op"]["aten.linear"] == 4 * cfg.n_layers + 1  # qkv, out, up, down per layer + LM head
    assert ops["by_op"]["aten.scaled_dot_product_attention"] == cfg.n_layers
    assert ops["aten_ops"] == ops["kernels"] + ops["views"] and ops["kernels"] > 0
    assert measure.count_ops(tiny, 1, 8) is ops  # cached per model


def test_time_decode_record(tiny, profile):
    r = measure.time_decode(tiny, batch=1, context_len=8, repeats=5, profile=profile)
    assert RECORD_KEYS <= set(r)
    cfg = tiny.config
    kv = 9 * perf.kv_cache_bytes_per_token(cfg.n_layers, cfg.n_kv_heads, cfg.head_dim, "fp32")  # 8 cached + 1 new
    assert r["preset"] == "tiny" and r["precision"] == "fp32" and r["mode"] == "eager"
    assert r["weight_bytes"] == cfg.weight_bytes("fp32") and r["kv_bytes"] == kv
    assert r["bytes_per_step"] == r["bytes_per_token"] == cfg.weight_bytes("fp32") + kv
    assert r["ms_per_token"] > 0 and r["tokens_per_s"] == pytest.approx(1e3 / r["ms_per_token"])
    assert r["predicted_ms"] == pytest.approx(r["bytes_per_step"] / 14e9 * 1e3)
    assert r["launch_aware_ms"] == pytest.approx(r["predicted_ms"] + r["n_kernels"] * 5e-6 * 1e3)
    assert r["launch_aware_roofline_ms"] == pytest.approx(r["roofline_ms"] + r["n_kernels"] * 5e-6 * 1e3)
    assert r["n_kernels"] == r["n_aten_ops"]  # on the CPU every dispatched op is charged
    assert r["launch_overhead_s"] == profile.op_overhead and r["launch_overhead_tight_s"] == profile.launch_overhead
    assert r["mbu_measured"] == pytest.approx(r["bytes_per_token"] * r["tokens_per_s"] / 14e9)
    assert r["mbu_datasheet"] is None and r["fits_in_cache"] is True and r["repeats"] == 5
    assert r["mfu"] == pytest.approx(r["flops_per_token"] * r["tokens_per_s"] / 1e11)


def test_time_decode_batch_counts_kv_per_sequence(tiny, profile):
    one = measure.time_decode(tiny, batch=1, context_len=4, repeats=3, profile=profile)
    two = measure.time_decode(tiny, batch=2, context_len=4, repeats=3, profile=profile)
    assert two["kv_bytes"] == 2 * one["kv_bytes"] and two["weight_bytes"] == one["weight_bytes"]
    assert two["bytes_per_token"] == pytest.approx(two["bytes_per_step"] / 2)
    assert two["tokens_per_s"] == pytest.approx(2e3 / two["ms_per_step"])


def test_time_decode_rejects_bad_arguments(tiny, profile):
    with pytest.raises(ValueError, match="max_seq_len"):
        measure.time_decode(tiny, context_len=tiny.config.max_seq_len, profile=profile)
    with pytest.raises(ValueError, match="max_batch"):
        measure.time_decode(tiny, batch=3, profile=profile)
    with pytest.raises(ValueError, match="context_len"):
        measure.time_decode(tiny, context_len=-1, profile=profile)
    with pytest.raises(ValueError, match="prompt_len"):
        measure.time_prefill(tiny, 0, profile=profile)


def test_time_prefill_record(tiny, profile):
    r = measure.time_prefill(tiny, 16, repeats=3, profile=profile)
    assert r["flops"] == perf.forward_flops(**tiny.config.perf_shape, n_tokens=16)
    assert r["tokens_per_s"] == pytest.approx(16e3 / r["ms"])
    assert r["predicted_ms"] == pytest.approx(max(r["memory_ms"], r["compute_ms"]))
    assert r["bound"] in ("memory", "compute") and r["intensity"] > 0 and r["prompt_len"] == 16


def test_sweeps_return_tidy_records(tiny, profile):
    recs = measure.decode_sweep(["tiny", model.PRESETS["tiny"]], "cpu", profile=profile, repeats=2, progress=False)
    assert [r["preset"] for r in recs] == ["tiny", "tiny"] and all(RECORD_KEYS <= set(r) for r in recs)
    assert [r["prompt_len"] for r in measure.prefill_sweep(tiny, [4, 8], profile=profile, repeats=2,
                                                            progress=False)] == [4, 8]
    assert [r["batch"] for r in measure.batch_sweep(tiny, [1, 2], 4, profile=profile, repeats=2,
                                                     progress=False)] == [1, 2]
    ctx = measure.context_sweep(tiny, [0, 16], profile=profile, repeats=2, progress=False)
    assert [r["context_len"] for r in ctx] == [0, 16] and ctx[1]["kv_bytes"] > ctx[0]["kv_bytes"]


def test_parallel_vs_sequential_same_logits():
    from course_lib import model as _model

    toy = _model.build_model("tiny", device="cpu")
    demo = measure.parallel_vs_sequential(toy, n_tokens=16)
    assert demo["same_argmax"] and demo["max_abs_diff"] < 1e-4
    assert demo["parallel_ms"] > 0 and demo["sequential_ms"] > 0


def test_batching_claim_hand_checked():
    rows = [{"context_len": 16, "batch": 1, "tokens_per_s": 100.0, "ms_per_step": 10.0},
            {"context_len": 16, "batch": 32, "tokens_per_s": 1600.0, "ms_per_step": 20.0}]
    claim = measure.batching_claim(rows, batch=32)
    assert claim[16] == {"throughput_gain": 16.0, "latency_ratio": 2.0}
    with pytest.raises(ValueError, match="batch"):
        measure.batching_claim(rows, batch=8)
