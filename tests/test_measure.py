"""measure: records count bytes and FLOPs as the step is timed; predictions come from perf.
On the "tiny" preset with a fake profile (fast; no timing thresholds)."""

import dataclasses

import pytest

from course_lib import machine, measure, model, specs


@pytest.fixture(scope="module")
def tiny():
    return model.build_model("tiny", device="cpu", max_batch=2)


def test_count_ops_by_kind(tiny):
    counts = measure.count_ops(tiny, 1, 8)
    layers = tiny.config.n_layers
    # per layer: two norms, one GELU, two residual adds, one attention call, one cache write (K and V: one buffer);
    # plus the final norm; matrix products are left to the kernel roof
    assert counts["rms_norm"] == 2 * layers + 1 and counts["gelu"] == layers and counts["add_"] == 2 * layers
    assert counts["attention"] == layers and counts["__setitem__"] == layers
    assert counts["linear"] == 4 * layers + 1  # Q/K/V, output, up, down; the LM head
    flipped = measure.count_ops(model.build_model(tiny.config, max_batch=2, layout="in_out"), 1, 8)
    assert flipped == counts  # x @ W counts as the same matrix call
    # module calls: the model, embedding, final norm, LM head; per layer the block, two norms,
    # attention and its two matrices, and the two MLP matrices
    assert counts["module"] == 4 + 8 * layers
    graph = measure.count_ops(tiny, 1, 8, graph=True)
    assert graph["index_copy_"] == layers and "__setitem__" not in graph  # the static cache's writes
    assert (graph["linear"], graph["attention"]) == (4 * layers + 1, layers)  # as eager (recorded runs' n_ops rely on it)
    one, four = (measure.count_ops(model.build_model(dataclasses.replace(tiny.config, n_layers=n)), 1, 8)
                 for n in (1, 4))
    assert all(four[k] - counts[k] == 2 * (counts[k] - one[k]) for k in counts)  # every layer makes the same calls


def test_a_graph_step_reads_its_bucket_of_the_cache():
    # the recorded H200, context 128: a graph step's KV bytes are its bucket's slots (256 where the cache has them),
    # an eager step's the 128 filled slots and its own
    ref = specs.load_reference()
    for mode in ("cuda-graph", "eager"):
        for r in measure.recorded_decode(ref, mode):
            cfg = model.get_config(r.preset)
            slots = machine.graph_bucket(r.context_len, cfg.max_seq_len) if mode == "cuda-graph" else r.context_len + 1
            assert r.context_len == 128 and r.kv_bytes == slots * cfg.kv_bytes_per_token(r.precision), (r.preset, mode)


def test_time_decode_record_by_hand(tiny, fake_machine):
    r = measure.time_decode(tiny, batch=1, context_len=8, profile=fake_machine, fast=True, rounds=2)
    cfg = tiny.config
    kv = 9 * cfg.kv_bytes_per_token("fp32")  # 8 cached + 1 new position read
    w = cfg.weight_bytes("fp32")
    assert (r.preset, r.precision, r.mode, r.repeats) == ("tiny", "fp32", "eager", 2 * 5)  # fast: 5 calls a round
    assert r.weight_bytes == w and r.kv_bytes == kv and r.flops == cfg.forward_flops(1, past=8)
    assert r.bandwidth == 14e9 and r.predicted_ms == pytest.approx((w + kv) / 14e9 * 1e3)
    # the budget, term by term: memory roof at 14 GB/s, the kernel at 10 GB/s, attention calls at
    # 20 us, every other call at 2 us; batch 1 is far below the ridge
    counts = measure.count_ops(tiny, 1, 8)
    assert r.budget["memory roof"] == pytest.approx(w / 14e9 * 1e3)
    assert r.budget["kernel below the roof"] == pytest.approx((w / 10e9 - w / 14e9) * 1e3)
    assert r.budget["compute past the ridge"] == 0.0
    assert r.budget["attention (KV reads)"] == pytest.approx(cfg.n_layers * 20e-3)
    others = sum(counts.values()) - counts["attention"] - counts["linear"]  # matrix calls: priced in the kernel roof
    assert r.budget["other small ops"] == pytest.approx(others * 2e-3) and r.n_ops == others
    assert r.modeled_ms == pytest.approx((w / 10e9 + cfg.n_layers * 20e-6 + others * 2e-6) * 1e3)  # kernel + calls
    assert r.residual == pytest.approx(r.ms_per_step / r.modeled_ms - 1)
    assert r.ms_per_token == r.ms_per_step and r.tokens_per_s == pytest.approx(1e3 / r.ms_per_step)
    assert r.mbu == pytest.approx((w + kv) / (r.ms_per_step / 1e3) / 14e9)
    assert r.mbu_kernel == pytest.approx((w + kv) / (r.ms_per_step / 1e3) / 10e9)
    assert r.fits_in_cache and r.mbu_datasheet is None and r.iqr_ms >= 0
    assert dataclasses.asdict(r)["kv_bytes"] == kv


def test_batch_counts_kv_per_sequence(tiny, fake_machine):
    one = measure.time_decode(tiny, batch=1, context_len=4, profile=fake_machine, rounds=1)
    two = measure.time_decode(tiny, batch=2, context_len=4, profile=fake_machine, rounds=1)
    assert two.kv_bytes == 2 * one.kv_bytes and two.weight_bytes == one.weight_bytes
    assert two.ms_per_token == two.ms_per_step / 2 and two.tokens_per_s == pytest.approx(2e3 / two.ms_per_step)


def test_bad_arguments(tiny, fake_machine):
    with pytest.raises(ValueError, match="max_seq_len"):
        measure.time_decode(tiny, context_len=tiny.config.max_seq_len, profile=fake_machine)
    with pytest.raises(ValueError, match="max_batch"):
        measure.time_decode(tiny, batch=3, profile=fake_machine)
    with pytest.raises(ValueError, match="context_len"):
        measure.time_decode(tiny, context_len=-1, profile=fake_machine)
    with pytest.raises(ValueError, match="prompt_len"):
        measure.prefill_sweep(tiny, [0], profile=fake_machine)
    with pytest.raises(ValueError, match="max_seq_len"):
        measure.prefill_sweep(tiny, [tiny.config.max_seq_len + 1], profile=fake_machine)


def test_prefill_record(tiny, fake_machine):
    [r] = measure.prefill_sweep(tiny, [16], profile=fake_machine, fast=True, rounds=1, progress=False)
    cfg = tiny.config
    assert r.flops == cfg.forward_flops(16)
    assert r.bytes == cfg.weight_bytes("fp32") + 16 * cfg.kv_bytes_per_token("fp32")  # K and V written once
    assert r.memory_ms == pytest.approx(r.bytes / 14e9 * 1e3) and r.compute_ms == pytest.approx(r.flops / 1e11 * 1e3)
    assert r.predicted_ms == max(r.memory_ms, r.compute_ms) and r.bound in ("memory", "compute")
    assert r.tokens_per_s == pytest.approx(16e3 / r.ms)


def test_sweeps_interleave_their_points(tiny, fake_machine):
    recs = measure.decode_sweep(["tiny", model.PRESETS["tiny"]], "cpu", ["fp32", "bf16"], profile=fake_machine,
                                fast=True, progress=False)
    assert [(r.preset, r.precision) for r in recs] == [("tiny", "fp32"), ("tiny", "bf16")] * 2
    assert all(r.repeats == 3 * 5 for r in recs)  # fast: 3 interleaved rounds of 5 timed calls
    pre = measure.prefill_sweep(tiny, [4, 8], profile=fake_machine, fast=True, progress=False)
    assert [r.prompt_len for r in pre] == [4, 8] and pre[0].repeats == 3 * 3
    assert [r.batch for r in measure.batch_sweep(tiny, [1, 2], 4, profile=fake_machine, fast=True,
                                                  progress=False)] == [1, 2]
    ctx = measure.context_sweep(tiny, [16, 0], profile=fake_machine, rounds=3, progress=False)
    assert [r.context_len for r in ctx] == [16, 0] and ctx[0].kv_bytes > ctx[1].kv_bytes and ctx[0].repeats == 3 * 10


def test_a_large_cpu_ladder_is_rebuilt_round_by_round(fake_machine, monkeypatch):
    monkeypatch.setattr(measure, "HOLD_TOGETHER", 0)  # as if the two tiny models were too large to hold
    built = []
    real = measure.build_model
    monkeypatch.setattr(measure, "build_model", lambda *a, **k: built.append(a[0]) or real(*a, **k))
    recs = measure.decode_sweep(["tiny", model.PRESETS["tiny"]], "cpu", "fp32", profile=fake_machine, rounds=3,
                                fast=True, progress=False)
    assert len(built) == 2 * 3  # each model built once per round
    assert [r.repeats for r in recs] == [3 * 5, 3 * 5] and all(r.ms_per_step > 0 for r in recs)


def test_recorded_runs_load_as_records():
    from course_lib import specs
    graph = measure.recorded_decode(specs.load_reference(), "cuda-graph")
    assert [r.preset for r in graph] == ["gpu-s", "gpu-m", "gpu-1b", "7b"]
    assert graph[-1].mode == "cuda-graph" and 0.5 < graph[-1].mbu < 1.0 and graph[-1].flops > 0
