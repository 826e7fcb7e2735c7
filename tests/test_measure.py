"""measure: records count bytes and FLOPs as the step is timed; predictions come from perf.
On the "tiny" preset with a fake profile (fast; no timing thresholds)."""

import dataclasses
import math

import pytest

from course_lib import measure, model


@pytest.fixture(scope="module")
def tiny():
    return model.build_model("tiny", device="cpu", max_batch=2)


def test_count_ops_counts_torch_calls(tiny):
    # each layer calls at least its 4 matrices, SDPA, 2 norms, 2 residual adds and GELU; then the
    # embedding, the final norm and the LM head; every layer adds the same number of calls
    n = {layers: measure.count_ops(model.build_model(dataclasses.replace(tiny.config, n_layers=layers)), 1, 8)
         for layers in (1, 2, 4)}
    per_layer = n[2] - n[1]
    assert per_layer >= 10 and n[4] - n[2] == 2 * per_layer and n[1] - per_layer >= 3
    assert measure.count_ops(tiny, 1, 8) == n[2]


def test_time_decode_record_by_hand(tiny, fake_profile):
    r = measure.time_decode(tiny, batch=1, context_len=8, repeats=5, profile=fake_profile)
    cfg = tiny.config
    kv = 9 * cfg.kv_bytes_per_token("fp32")  # 8 cached + 1 new position read
    assert (r.preset, r.precision, r.mode, r.repeats) == ("tiny", "fp32", "eager", 5)
    assert r.weight_bytes == cfg.weight_bytes("fp32") and r.kv_bytes == kv
    assert r.flops == cfg.forward_flops(1, past=8)
    # the memory roof is the larger of the streaming read (14 GB/s) and the GEMV roof (10 GB/s)
    assert r.bandwidth == 14e9 and r.predicted_ms == pytest.approx((r.weight_bytes + kv) / 14e9 * 1e3)
    # eager on a CPU: every op pays the in-context cost (8 us in the fake profile)
    assert r.op_cost == 8e-6 and r.launch_aware_ms == pytest.approx(r.predicted_ms + r.n_ops * 8e-3)
    assert r.roofline_ms == pytest.approx(max(r.predicted_ms, r.flops / 1e11 * 1e3))
    assert r.launch_aware_roofline_ms == pytest.approx(r.roofline_ms + r.n_ops * 8e-3)
    assert r.ms_per_token == r.ms_per_step and r.tokens_per_s == pytest.approx(1e3 / r.ms_per_step)
    assert r.mbu == pytest.approx((r.weight_bytes + kv) / (r.ms_per_step / 1e3) / 14e9)
    assert r.fits_in_cache and r.mbu_datasheet is None and r.iqr_ms >= 0
    assert dataclasses.asdict(r)["kv_bytes"] == kv


def test_batch_counts_kv_per_sequence(tiny, fake_profile):
    one = measure.time_decode(tiny, batch=1, context_len=4, repeats=3, profile=fake_profile)
    two = measure.time_decode(tiny, batch=2, context_len=4, repeats=3, profile=fake_profile)
    assert two.kv_bytes == 2 * one.kv_bytes and two.weight_bytes == one.weight_bytes
    assert two.ms_per_token == two.ms_per_step / 2 and two.tokens_per_s == pytest.approx(2e3 / two.ms_per_step)


def test_bad_arguments(tiny, fake_profile):
    with pytest.raises(ValueError, match="max_seq_len"):
        measure.time_decode(tiny, context_len=tiny.config.max_seq_len, profile=fake_profile)
    with pytest.raises(ValueError, match="max_batch"):
        measure.time_decode(tiny, batch=3, profile=fake_profile)
    with pytest.raises(ValueError, match="context_len"):
        measure.time_decode(tiny, context_len=-1, profile=fake_profile)
    with pytest.raises(ValueError, match="prompt_len"):
        measure.time_prefill(tiny, 0, profile=fake_profile)


def test_time_prefill_record(tiny, fake_profile):
    r = measure.time_prefill(tiny, 16, repeats=3, profile=fake_profile)
    cfg = tiny.config
    assert r.flops == cfg.forward_flops(16)
    assert r.bytes == cfg.weight_bytes("fp32") + 16 * cfg.kv_bytes_per_token("fp32")  # K and V written once
    assert r.memory_ms == pytest.approx(r.bytes / 14e9 * 1e3) and r.compute_ms == pytest.approx(r.flops / 1e11 * 1e3)
    assert r.predicted_ms == max(r.memory_ms, r.compute_ms) and r.bound in ("memory", "compute")
    assert r.tokens_per_s == pytest.approx(16e3 / r.ms) and r.intensity == r.flops / r.bytes


def test_sweeps(tiny, fake_profile):
    recs = measure.decode_sweep(["tiny", model.PRESETS["tiny"]], "cpu", profile=fake_profile, repeats=2, progress=False)
    assert [r.preset for r in recs] == ["tiny", "tiny"]
    assert [r.prompt_len for r in measure.prefill_sweep(tiny, [4, 8], profile=fake_profile, repeats=2,
                                                         progress=False)] == [4, 8]
    assert [r.batch for r in measure.batch_sweep(tiny, [1, 2], 4, profile=fake_profile, repeats=2,
                                                  progress=False)] == [1, 2]
    ctx = measure.context_sweep(tiny, [0, 16], profile=fake_profile, repeats=2, progress=False)
    assert [r.context_len for r in ctx] == [0, 16] and ctx[1].kv_bytes > ctx[0].kv_bytes


def test_linear_fit_by_hand():
    assert measure.linear_fit([1, 2, 3], [2, 4, 6]) == pytest.approx((2.0, 0.0, 1.0))
    # mean x 1.5, mean y 2.5; Sxy = 4, Sxx = 5, Syy = 5 -> slope 0.8, intercept 1.3, R^2 = 16/25
    assert measure.linear_fit([0, 1, 2, 3], [1, 3, 2, 4]) == pytest.approx((0.8, 1.3, 0.64))
    for xs, ys in (([1], [1]), ([1, 2], [1]), ([2, 2, 2], [1, 2, 3]), ([1, math.nan], [1, 2])):
        with pytest.raises(ValueError):
            measure.linear_fit(xs, ys)


def test_parallel_vs_sequential_gives_the_same_logits(tiny):
    demo = measure.parallel_vs_sequential(tiny, n_tokens=16)
    assert demo["same_argmax"] and demo["max_abs_diff"] < 1e-4 and demo["sequential_ms"] > 0


def test_batching_claim_by_hand():
    rows = [{"context_len": 16, "batch": 1, "ms_per_step": 10.0}, {"context_len": 16, "batch": 32, "ms_per_step": 20.0}]
    claim = measure.batching_claim(rows, batch=32)  # 32 tokens per 20 ms vs 1 per 10 ms: 16x, steps 2x longer
    assert claim[16] == {"throughput_gain": pytest.approx(16.0), "latency_ratio": 2.0}
    with pytest.raises(ValueError, match="batch"):
        measure.batching_claim(rows, batch=8)


def test_decode_breakdown_names_every_part(tiny):
    b = measure.decode_breakdown(tiny, context_len=8, steps=5)
    assert set(b["components"]) == set(measure.COMPONENTS) | {"the rest (GELU, adds, Python)"}
    assert b["step_ms"] > 0 and b["gemv_chain_ms"] > 0
    assert b["gemv_bytes"] == tiny.config.weight_bytes("fp32") - (2 * tiny.config.n_layers + 1) * 64 * 4  # no norms


def test_recorded_runs_load_as_records():
    from course_lib import hardware

    graph = measure.recorded_decode(hardware.load_reference(), "cuda-graph")
    assert [r.preset for r in graph] == ["gpu-s", "gpu-m", "gpu-1b", "7b"]
    assert graph[-1].mode == "cuda-graph" and 0.5 < graph[-1].mbu < 1.0 and graph[-1].flops > 0
