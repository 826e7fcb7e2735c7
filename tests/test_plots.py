"""plots: pure builders return figures whose data are the perf numbers; readings of measured records."""

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import plotly.graph_objects as go
import pytest

from course_lib import explain, perf, plots, serving, specs
from course_lib.measure import DecodeRecord, PrefillRecord


def decode(preset="a", weight_bytes=1e8, ms=9.0, batch=1, context_len=0, fits_in_cache=False, budget=None,
           iqr=0.2, kernel=10e9, precision="fp32"):
    """A record with round numbers: 12.5 GB/s read; by default a budget of 8 ms + 0.5 ms."""
    return DecodeRecord(preset=preset, device="cpu", precision=precision, mode="eager", batch=batch,
                        context_len=context_len, weight_bytes=weight_bytes, kv_bytes=0.0, flops=1.0, ms_per_step=ms,
                        iqr_ms=iqr * ms, repeats=5, n_ops=10, bandwidth=12.5e9, kernel_bandwidth=kernel,
                        budget=budget or {"memory roof": ms - 1.0, "other small ops": 0.5}, fits_in_cache=fits_in_cache)


def test_tokens_vs_size_marks_the_model():
    fig = plots.tokens_vs_size(7e9, "fp16", 2e12)
    assert isinstance(fig, go.Figure) and fig.data[1].y[0] == pytest.approx(perf.tokens_per_second(7e9, "fp16", 2e12))
    assert fig.layout.xaxis.type == "log"


def test_decode_table_figure_marks_oom():
    rows = perf.decode_table([specs.get("A100")], {"70B": 70e9, "7B": 7e9})
    cells = plots.decode_table_figure(rows).data[0].cells.values
    assert "OOM" in cells[1][0] and "OOM" not in cells[1][1]


def test_machine_vs_catalog_includes_this_machine():
    fig = plots.machine_vs_catalog(12.4e9, specs.catalog())
    assert "this machine (measured)" in fig.data[0].y and 12.4 in fig.data[0].x


def test_components_bars_show_shares_of_bytes():
    fig = plots.components_bars({"toy": {"weights": 3e6, "KV cache": 1e6}, "other": {"weights": 1.0, "KV cache": 1.0}})
    assert [t.name for t in fig.data] == ["weights", "KV cache"]
    assert list(fig.data[0].x) == [75.0, 50.0] and list(fig.data[1].x) == [25.0, 50.0]


def test_measured_vs_bytes_and_prefill_curve():
    recs = [decode("a", 1e8, 9.0), decode("b", 1e7, 1.0, fits_in_cache=True)]
    fig = plots.measured_vs_bytes(recs, 12.5e9)
    assert fig.data[0].y[-1] == pytest.approx(fig.data[0].x[-1] * 1e6 / 12.5e9 * 1e3)  # the line is bytes / bandwidth
    assert list(fig.data[1].y) == [8.5, 0.5]  # the modeled budgets
    measured = fig.data[-1]
    assert list(measured.marker.symbol) == ["circle", "circle-open"] and list(measured.y) == [9.0, 1.0]
    assert list(measured.error_y.array) == pytest.approx([0.9, 0.1])  # half the IQR (20 % of the median)
    pre = plots.prefill_curve([PrefillRecord("a", "cpu", "fp32", 1, n, ms, 0.4, 3, 1e6, 1e9, 1.0, 1.5)
                               for n, ms in ((1, 2.0), (8, 3.0))])
    assert list(pre.data[1].y) == [1.5, 1.5] and list(pre.data[0].error_y.array) == [0.2, 0.2]


def test_roofline_ridge_and_points():
    fig = plots.roofline([{"name": "A100", "peak": 312e12, "bandwidth": 2e12}], [{"label": "b1", "intensity": 1, "flops": 2e12}])
    assert "ridge 156" in fig.data[0].name and max(fig.data[0].y) == pytest.approx(312)
    assert fig.data[1].y[0] == pytest.approx(2)


def test_intensity_and_kv_and_batch_figures():
    fig = plots.intensity_vs_tokens(4096, 4096, 2, 2, {"A100": 156})
    assert fig.data[0].y[0] == pytest.approx(perf.linear_intensity(1, 4096, 4096, 2, 2))
    kv = plots.kv_vs_weights([0, 100], 1e6, 1e9, "x")
    assert list(kv.data[1].y) == [0, 0.1]
    rows = [decode(batch=b, ms=1.0 * b, context_len=16) for b in (1, 2)]
    predicted = [{"label": "predicted", "batch": b, "ms_per_step": 0.5, "tokens_per_s": 2e3 * b, "context_len": 16}
                 for b in (1, 2)]
    sweep = plots.batch_sweep_figure(rows, predicted)
    assert len(sweep.data) == 4 and list(sweep.data[1].y) == [1000.0, 1000.0]  # b tokens per b ms


def test_tensor_parallel_bars_sum_to_the_model():
    fig = plots.tensor_parallel_bars(70e9, "fp16", 3.35e12, 80, 8192, 450e9, 5e-6, max_devices=4)
    total = fig.data[0].y[1] + fig.data[1].y[1]
    assert total == pytest.approx(serving.tensor_parallel_decode_time(70e9, "fp16", 3.35e12, 2, 80, 8192, 450e9, 5e-6) * 1e3)
    assert fig.data[1].y[0] == 0  # one device: no communication


def test_speculative_curve():
    fig = plots.speculative_curve(0.8, 0.1)
    assert fig.data[0].y[3] == pytest.approx(perf.speculative_speedup(0.8, 4, 0.1))


def test_reference_decode_figure():
    rows = [decode("a", 1e9, 2.0), decode("b", 4e9, 3.0)]
    fig = plots.reference_decode(rows, rows, 2e12, "recorded")
    assert len(fig.data) == 3 and fig.data[0].y[-1] == pytest.approx(fig.data[0].x[-1] * 1e9 / 2e12 * 1e3)


def test_batching_claim_by_hand():
    rows = [{"context_len": 16, "batch": 1, "ms_per_step": 10.0}, {"context_len": 16, "batch": 32, "ms_per_step": 20.0}]
    claim = explain.batching_claim(rows, batch=32)  # 32 tokens per 20 ms vs 1 per 10 ms: 16x, steps 2x longer
    assert claim[16] == {"throughput_gain": pytest.approx(16.0), "latency_ratio": 2.0}
    with pytest.raises(ValueError, match="batch"):
        explain.batching_claim(rows, batch=8)
    assert "16.0×" in explain.claim_verdict(claim)[0] and "holds only in part" in explain.claim_verdict(claim)[0]
    # the recorded H200: 32 x 4.657 / 5.817 = 25.6x, 5.817 / 4.657 = 1.25x
    recorded = explain.batching_claim(specs.load_reference()["batch_sweep"], batch=32)
    assert explain.claim_verdict(recorded) == ["context 128: 32 sequences gave 25.6× the tokens/s of one, each step 1.25× "
                                             "as long: the claim holds only in part here."]
    assert "does not hold" in explain.claim_verdict({16: {"throughput_gain": 4.0, "latency_ratio": 8.0}})[0]
    assert "claim holds here" in explain.claim_verdict({16: {"throughput_gain": 31.0, "latency_ratio": 1.03}})[0]


def budget(roof, kernel=0.0, ops=0.0, attention=0.0):
    return {"memory roof": roof, "kernel below the roof": kernel, "compute past the ridge": 0.0,
            "attention (KV reads)": attention, "other small ops": ops}


def test_budget_waterfall_goes_from_the_roof_to_the_measurement():
    r = decode("cpu-l", 235e6, 16.0, budget=budget(8.0, kernel=6.0, ops=0.5, attention=0.3), iqr=0.04)
    fig = plots.budget_waterfall(r)
    steps = fig.data[0]
    assert list(steps.x) == ["memory roof", "kernel below the roof", "attention (KV reads)", "other small ops",
                             "modeled"]  # the zero compute term is left out
    assert list(steps.y[:4]) == [8.0, 6.0, 0.3, 0.5] and steps.text[4] == "14.80"
    # the measurement is a bar of its own (a waterfall's total there would draw the modeled 14.8 ms under it)
    assert list(fig.data[1].x) == ["measured"] and len(fig.data) == 2
    assert fig.data[1].y[0] == 16.0 and fig.data[1].error_y.array[0] == pytest.approx(0.32)


@pytest.mark.parametrize("rec, words", [
    (decode("cpu-l", 235e6, 16.0, budget=budget(8.0, kernel=6.0, ops=0.5, attention=0.3), iqr=0.02),
     ["2.0× the weights' memory line", "kernel-bound", "streaming at 10.0 of 12.5 GB/s (+6.00 ms)", "modeled 14.80 ms", "+8%"]),
    (decode("cpu-l", 235e6, 10.0, budget=budget(8.0, kernel=0.8, ops=0.2), iqr=0.02),
     ["bandwidth-bound", "+11%"]),
    (decode("gpu-s", 23e6, 2.0, budget=budget(0.01, ops=1.9), iqr=0.02), ["launch-bound", "10 small ops at 190.0 µs each"]),
    (decode("cpu-xs", 7e6, 1.0, fits_in_cache=True, budget=budget(0.5)), ["fit in this machine's cache", "does not bind"]),
    (decode("cpu-m", 117e6, 20.0, budget=budget(8.0, kernel=2.5), iqr=0.3), ["unexplained", "Noisy", "re-run"]),
])
def test_explain_decode_branches(rec, words):
    text = explain.explain_decode(rec)
    for w in words:
        assert w in text, (w, text)


def test_explain_precision_compares_time_with_bytes_and_kernels():
    fp32 = decode("cpu-l", 235e6, 16.0, kernel=16e9)
    fp16 = decode("cpu-l", 117.5e6, 7.0, kernel=20e9, precision="fp16")
    bf16 = decode("cpu-l", 117.5e6, 18.0, kernel=8e9, precision="bf16")
    text = explain.explain_precision([fp32, fp16, bf16])
    # fp16: half the bytes, 44 % of the time; kernels: 16 / 20 x 0.5 = 40 %
    assert "fp16 reads 50% of fp32's bytes and took 44% of its time" in text and "predict 40%" in text
    assert "time fell about as much as the bytes" in text
    # bf16: half the bytes but 8 GB/s against 16: the kernels predict 100 %, and it got slower
    assert "it got **slower**" in text and "predict 100%" in text


def test_wrong_way_points_are_named_as_noise():
    rows = [decode(batch=b, ms=ms) for b, ms in ((1, 10.0), (2, 10.2), (4, 9.0), (8, 12.0))]
    flags = explain.wrong_way(rows, "batch")
    assert len(flags) == 1 and flags[0].startswith("batch 2 → 4: 10.2 → 9 ms") and "noise" in flags[0]
    assert explain.wrong_way(rows[:2], "batch") == []  # 2 % slower is within the tolerance, and the right way



# ----------------------------------------------------------------------------- recorded machines
ROOT = Path(__file__).resolve().parents[1]


def recorded(path: str) -> dict:
    rows = json.loads((ROOT / path).read_text())["records"]
    return {(r["preset"], r["mode"]): DecodeRecord.from_dict(r) for r in rows}


# (recorded machine, preset, mode, words the reading must contain): three machines, every branch that occurs
READINGS = [
    # a 2-core AMD EPYC VM, 2026-11-29: its fp32 GEMV streams at ~58 % of its streaming read
    ("benchmarks/results/amd-epyc-2core_2026-11-29.json", "cpu-xs", "eager", ["fit in this machine's cache"]),
    ("benchmarks/results/amd-epyc-2core_2026-11-29.json", "cpu-m", "eager", ["**kernel-bound**", "modeled"]),
    ("benchmarks/results/amd-epyc-2core_2026-11-29.json", "cpu-l", "eager", ["**kernel-bound**", "of 27.0 GB/s"]),
    # a 2-core Intel Xeon VM, 2026-11-27 (version 1's records: a two-term budget that misses a third)
    ("benchmarks/results/cpu-2core_2026-11-27.json", "cpu-s", "eager", ["fit in this machine's cache"]),
    ("benchmarks/results/cpu-2core_2026-11-27.json", "cpu-l", "eager", ["more than the costs this budget", "32% unexplained"]),
    # the recorded H200, 2026-11-29
    ("course_lib/data/reference/nvidia-h200.json", "gpu-1b", "eager", ["**launch-bound**", "waiting for the CPU"]),
    ("course_lib/data/reference/nvidia-h200.json", "7b", "eager", ["**launch-bound**", "(+7.72 ms)", "(−11%)"]),
    ("course_lib/data/reference/nvidia-h200.json", "gpu-m", "cuda-graph", ["**kernel-bound**", "calling the graph", "(+15%)"]),
    ("course_lib/data/reference/nvidia-h200.json", "7b", "cuda-graph", ["1.6× the weights' memory line", "(+6%)"]),
]


@pytest.mark.parametrize("path, preset, mode, words", READINGS)
def test_readings_of_recorded_machines(path, preset, mode, words):
    text = explain.explain_decode(recorded(path)[(preset, mode)])
    for w in words:
        assert w in text, (w, text)
    assert "Noisy" not in text  # these runs were quiet (IQR under 15 % of the median)


def test_budgets_explain_the_recorded_runs():
    # where the gap budget stands on the recorded runs (presets whose weights fit in a cache are out of its scope):
    # out-of-cache CPU presets within 10 %; on the H200 in CUDA graphs within 15.5 % (issue 17's aim, 15 %: gpu-m
    # +15.3 % in the shipped run, +10 % and +8 % in two others that day, benchmarks/results/h200_gpu_reference_*);
    # eager on the H200 within 25 % (launch-bound: the host CPU's speed at issuing ops sets it; 7b gave -22 %,
    # +23 % and -11 % on three hosts the same day)
    amd, h200 = recorded(READINGS[0][0]), recorded(READINGS[-1][0])
    for r in [*amd.values(), *h200.values()]:
        if not r.fits_in_cache:
            assert abs(r.residual) <= (0.10 if r.device == "cpu" else 0.155 if r.mode == "cuda-graph" else 0.25), r


def prefill(n, ms, iqr=0.01, weights=117e6, flops_per_token=1.17e8, memory_ms=3.7, peak=2.06e11):
    """A prefill record of cpu-l in bf16 (KV bytes and attention left out): 117 MB read once,
    2 x 58.7 M FLOPs per token, compute at 206 GFLOP/s (0.568 ms a token)."""
    flops = flops_per_token * n
    return PrefillRecord("cpu-l", "cpu", "bf16", 1, n, ms, iqr * ms, 5, weights, flops, memory_ms, flops / peak * 1e3)


# a quiet AMD EPYC sweep (cpu-l bf16, 2026-11-29): flat to 8 tokens, then linear
AMD_BF16 = [(1, 13.64), (2, 13.46), (4, 14.72), (8, 16.74), (16, 21.18), (32, 30.36), (64, 49.55), (128, 86.57),
            (256, 170.83)]


def test_explain_prefill_reads_flat_then_linear():
    text = explain.explain_prefill([prefill(n, ms) for n, ms in AMD_BF16])
    # 16.74 / 13.64 = 1.23 (flat); 21.18 / 13.64 = 1.55 (not); 170.83 / 86.57 = 1.97x for 2x the tokens
    assert "From 1 to 8 tokens (8× as many) the time stayed within 25 % of 13.64 ms: **flat**" in text
    assert "one read at the streaming rate: 3.70 ms" in text
    # (170.83 - 86.57) / 128 = 0.658 ms a token; 128 x 1.17e8 FLOPs / 84.26 ms = 177.7 GFLOP/s
    assert "from 128 to 256 tokens (2.0× as many) the time grew 2.0×" in text and "0.66 ms" in text
    assert "(177.7 GFLOP/s)" in text
    # the roofline: 3.7 ms / 0.568 ms = 6.5 tokens; 256 x 0.568 = 145.4 ms predicted, 170.83 / 145.4 = 1.17
    assert "turn at about 7 tokens" in text and "1.2× its prediction" in text
    assert "GEMV" not in text and "Noisy" not in text and "noise" not in text


def test_explain_prefill_on_the_recorded_intel_profile():
    # cpu-l in bf16 at the roofline of the recorded Intel Xeon (18.3 GB/s read, 380 GFLOP/s bf16):
    # 117.46 MB / 18.31 GB/s = 6.42 ms flat; 2 x 58.72 M / 380 GFLOP/s = 0.309 ms a token: turn at 21
    prof = json.loads((ROOT / "benchmarks/results/cpu-2core_2026-11-27.json").read_text())["profile"]
    bw, peak = prof["read_bandwidth"], prof["matmul_flops"]["bf16"]
    rows = [prefill(n, max(117.46e6 / bw, 1.1744e8 * n / peak) * 1e3, weights=117.46e6, flops_per_token=1.1744e8,
                    memory_ms=117.46e6 / bw * 1e3, peak=peak) for n in (1, 4, 16, 64, 256)]
    text = explain.explain_prefill(rows)
    assert "From 1 to 16 tokens (16× as many) the time stayed within 25 % of 6.42 ms: **flat**" in text
    assert "Then **linear**: from 64 to 256 tokens (4.0× as many) the time grew 4.0×" in text
    assert "turn at about 21 tokens" in text and "1.0× its prediction" in text


def test_explain_prefill_names_the_step_from_gemv_to_gemm_and_noise():
    # cpu-m fp32 on the same machine: 10.10 -> 14.32 ms from 1 to 2 tokens (1.42x), 117 MB each time
    rows = [prefill(n, ms) for n, ms in ((1, 10.10), (2, 14.32), (4, 17.69), (8, 20.22), (16, 25.16))]
    text = explain.explain_prefill(rows)
    # 117e6 B / 10.10 ms = 11.6 GB/s, / 14.32 ms = 8.2 GB/s; flat from 2 to 4 (17.69 / 14.32 = 1.24)
    assert "jumped 1.4× for one more token" in text and "at 8.2 GB/s against 11.6" in text
    assert "From 2 to 4 tokens (2× as many)" in text
    # 20.22 -> 25.16: 1.24x for 2x the tokens: rising, not yet linear
    assert "Then rising, but less than in proportion: from 4 to 16 tokens (4.0× as many) the time grew 1.4×" in text
    rows[2] = prefill(4, 13.0, iqr=0.3)  # faster than 2 tokens, and noisy
    text = explain.explain_prefill(rows)
    assert "⚠ Noisy at 4 tokens" in text and "faster with more work" in text
    steep = [prefill(n, ms) for n, ms in ((1, 2.0), (4, 8.0), (16, 32.0))]  # compute-bound from the start
    assert "No flat stretch: at 4 tokens the time was already 4.0× that at 1" in explain.explain_prefill(steep)
    with pytest.raises(ValueError, match="three"):
        explain.explain_prefill(steep[:2])


def test_explain_prefill_says_why_the_flat_part_sits_above_the_read():
    # as notebook 02 measured cpu-l (bf16) on the AMD EPYC: 13.84 ms for 1 token against one read in 7.60 ms, the
    # bf16 GEMV streaming at 62 % of the read: 117 MB / 13.84 ms = 8.5 GB/s of 117 MB / 7.60 ms = 15.4 GB/s;
    # the GEMV's roof, 7.60 / 0.62 = 12.26 ms, is 89 % of 13.84
    rows = [prefill(n, ms, memory_ms=7.6) for n, ms in ((1, 13.84), (2, 13.9), (4, 14.6), (8, 16.8), (16, 21.2))]
    text = explain.explain_prefill(rows, {"bf16": 0.62 * 117e6 / 7.6e-3, "fp32": 1.0})
    assert "That floor sits 1.8× above the read: the pass moved the weights at 8.5 GB/s of the 15.4 GB/s" in text
    assert "GEMV timed alone streams at 9.5 GB/s (62% of the read), a roof that accounts for 89% of the time" in text
    assert "GEMV" not in explain.explain_prefill(rows) and "1.8× above the read" in explain.explain_prefill(rows)
    # the recorded H200: 4.75 ms at 1 token, 2.94 ms for one read (1.6x); its bf16 GEMV streams at 3.65 of 4.47 TB/s
    # (82 %), a roof of 2.94 / 0.817 = 3.60 ms: 76 % of 4.75
    ref = specs.load_reference()
    text = explain.explain_prefill(ref["prefill_sweep"], ref["profile"]["gemv_bandwidth"])
    assert "That floor sits 1.6× above the read" in text and "(82% of the read), a roof that accounts for 76%" in text
    # on the roofline (the recorded Intel's sweep above, and a flat part within 25 % of the read): nothing to explain
    assert "floor" not in explain.explain_prefill([prefill(n, ms) for n, ms in ((1, 4.0), (4, 4.2), (16, 4.5))])


def test_explain_prefill_reads_the_recorded_gpu_sweep():
    # the H200, 7B-class in bf16, each length in a CUDA graph: 4.75 ms at 1 token, 5.46 at 128, 6.49 at 192, 6.80 at
    # 255: from 192 to 255 tokens (1.33x as many) only 1.05x the time, not yet in proportion
    text = explain.explain_prefill(specs.load_reference()["prefill_sweep"])
    assert "From 1 to 128 tokens (128× as many) the time stayed within 25 % of 4.75 ms" in text
    assert "Then rising, but less than in proportion: from 128 to 255 tokens" in text and "**linear**" not in text
    assert "turn at about 154 tokens" in text and "noise" not in text and "GEMV" not in text


def test_explain_context_names_attention_per_call():
    # as notebook 02 measured cpu-l on the AMD EPYC: from context 16 to 500 the step grew 1.28x, its bytes 1.07x (the
    # KV cache 7 % of them at 500); the budget's attention term grew 0.30 -> 3.50 ms, 3.20 of the 3.64 ms (88 %)
    def at(ctx, ms, attention):
        return dataclasses.replace(decode(weight_bytes=117e6, ms=ms, context_len=ctx, budget={
            "memory roof": 9.36, "attention (KV reads)": attention}), kv_bytes=ctx * 17600.0)
    records = [at(16, 13.0, 0.3), at(128, 13.9, 1.0), at(500, 16.64, 3.5)]
    text = explain.explain_context(records)
    assert "From context 16 to 500 the step grew 1.28× (3.64 ms more); the bytes it reads, 1.07×." in text
    assert "attention term (its calls timed alone at each context) grew 3.20 ms, 88% of that" in text
    assert "more per call than the KV bytes" in explain.explain_context(records[::-1])  # in any order
    records[-1] = at(500, 16.64, 0.8)  # attention grew 0.5 ms of the 3.64: not the budget's attention
    assert "grew only 0.50 ms: the rest is something it leaves out" in explain.explain_context(records)
    records[-1] = at(500, 13.8, 0.8)  # 1.06x against 1.07x: as the bytes
    assert "grew no more than the bytes did" in explain.explain_context(records)


def test_explain_ttft_tpot():
    step = decode(ms=13.0)  # 13 ms per token
    text = explain.explain_ttft_tpot(prefill(256, 170.83), step, answer_tokens=100)
    # 256 x 13 / 170.83 = 19.5x; 170.83 + 100 x 13 = 1470.83 ms, 88 % decoding
    assert "TTFT: 170.83 ms for the 256-token prompt (1,499 prompt tokens/s)" in text and "(77 tokens/s)" in text
    assert "19× as fast as decode" in text and "= 1.47 s, 88% of it decoding: the answer" in text
    slow = explain.explain_ttft_tpot(prefill(4, 40.0), step, answer_tokens=1)  # 4 x 13 / 40 = 1.3x
    assert "only 1.3× as fast" in slow and "the prompt, not the answer" in slow
    ref = specs.load_reference()  # recorded H200: 255 tokens in 6.8048 ms, a CUDA-graph step of 4.6566 ms: 174.499x
    longest, step = max(ref["prefill_sweep"], key=lambda r: r["prompt_len"]), min(ref["batch_sweep"], key=lambda r: r["batch"])
    assert "174× as fast as decode" in explain.explain_ttft_tpot(longest, step)


def test_prefill_flops_matmuls_vs_attention():
    from course_lib.specs import PRESETS

    cfg = PRESETS["7b"]
    fig = plots.prefill_flops(cfg, [1024, 32768], "7B")
    # 4 n^2 d L at n = 1024: 4 x 1024^2 x 4096 x 32 = 5.50e11 FLOP; matmuls 2 x 1024 x P
    assert fig.data[1].y[0] == pytest.approx(4 * 1024 ** 2 * 4096 * 32 / 1e12)
    assert fig.data[0].y[1] == pytest.approx(2 * 32768 * cfg.matmul_params() / 1e12)
    # equal at P / (2 L d) = 6.573e9 / (2 x 32 x 4096) = 25,076 tokens
    assert "n ≈ 25,076 tokens" in fig.layout.title.text


def test_guess_choices_and_the_biggest_gap():
    choices = ("under 3×", "3–30×", "30–300×", "over 300×")
    assert [explain.pick_choice(v, choices, (3, 30, 300)) for v in (1.0, 3.0, 29.0, 1e4)] == [
        "under 3×", "under 3×", "3–30×", "over 300×"]
    with pytest.raises(ValueError, match="edges"):
        explain.pick_choice(1.0, choices, (30, 3, 300))
    assert explain.choice_verdict("3–30×", "3–30×", "Measured 12×.").endswith("Your guess was right.")
    assert "Your guess was “under 3×”" in explain.choice_verdict("under 3×", "3–30×", "Measured 12×.")
    assert "No guess" in explain.choice_verdict(None, "3–30×", "Measured 12×.")
    kernel = decode(ms=16.0, budget=budget(8.0, kernel=6.0, ops=0.5, attention=0.3))
    assert explain.biggest_gap(kernel) == explain.GAPS["kernel"]
    assert explain.biggest_gap(decode(ms=9.0, budget=budget(8.0, ops=1.5))) == explain.NEAR_THE_LINE  # 9.5 <= 10
    h200, amd = recorded(READINGS[5][0]), recorded(READINGS[0][0])  # the readings above name the same causes
    assert explain.biggest_gap(h200[("gpu-1b", "eager")]) == explain.GAPS["overhead"]
    assert explain.biggest_gap(amd[("cpu-l", "eager")]) == explain.GAPS["kernel"]
    # the precision outcomes: 0.44 of the time for 0.5 of the bytes; 0.7; 1.0; 1.3
    assert [explain.precision_outcome(t, 0.5) for t in (0.44, 0.7, 1.0, 1.3)] == [0, 1, 2, 3]


def test_guess_verdict_reads_the_three_numbers():
    # 4.1 / 6.3 = 0.651 -> 35 % below; 5 / 6.3 = 0.794 -> 21 % below, nearer than the formula
    text = explain.guess_verdict(5, 4.1, 6.3, 0.2)
    assert "The formula said 4.1 ms, 35% below it" in text and "5 ms, was 21% below it: closer" in text
    # 6.4 is within 0.2 of 6.3: noise; 12 / 6.3 = 1.90 -> 90 % above, further off (in ratio) than 4.1
    assert "within the measurement's noise" in explain.guess_verdict(6.4, 4.1, 6.3, 0.2)
    far = explain.guess_verdict(12, 4.1, 6.3)
    assert "90% above it." in far and "closer" not in far
    assert "No guess committed" in explain.guess_verdict(None, 4.1, 6.3)
    # the recorded H200's gpu-s, eager: 5.29 us by the formula, 777 us measured: 147x below
    assert "The formula said 5.29 µs, 146.9× below it." in explain.guess_verdict(None, 5.29, 777, units="µs")
    assert "was 2.0× above it" in explain.guess_verdict(12.6, 4.1, 6.3)
    assert "Measured: 12.5×. The formula said 15×, 20% above it." in explain.guess_verdict(None, 15, 12.5, units="×")
    with pytest.raises(ValueError):
        explain.guess_verdict(1, 1, 0)
    fig = plots.guess_figure(5, 4.1, 6.3, 0.2)
    assert list(fig.data[0].x) == ["your guess", "formula", "measured here"]
    assert list(fig.data[0].error_y.array) == [0, 0, 0.2]
    # a recorded run's bars (notebook 01), and the modeled knee (notebook 03) apart from the roofline's
    assert list(plots.guess_figure(None, 4.1, 6.3, labels=("modeled step", "recorded on NVIDIA H200")).data[0].x) == [
        "modeled step", "recorded on NVIDIA H200"]


# ---------------------------------------------------------------- notebook 03: the batch knee, serving, experts
def sweep(times, iqr=0.0, ctx=16, fixed=0.0):
    """CPU-like batch-sweep records at batches 1, 2, 4, ...; the budget models each step exactly,
    ``fixed`` ms of it per-op overhead that does not grow with the batch."""
    return [decode(batch=2 ** i, ms=t, iqr=iqr, context_len=ctx,
                   budget={"memory roof": t - fixed, "other small ops": fixed}) for i, t in enumerate(times)]


def test_batch_knee_interpolates_on_log_batch():
    # 12.5 ms (1.25 x 10) is crossed between batch 4 (11 ms) and 8 (15 ms): 4 x 2**(1.5 / 4) = 5.187
    (knee, low, high), = explain.batch_knee(sweep([10, 10, 11, 15])).values()
    assert knee == pytest.approx(4 * 2 ** 0.375) and low == high == knee
    (knee, low, high), = explain.batch_knee(sweep([10, 10, 11, 15], iqr=0.1)).values()
    assert low < knee < high  # the noise widens it both ways
    assert explain.batch_knee(sweep([10, 10, 11, 12])) == {16: (None, None, None)}
    # IQR 25 % of each step: batch 1 alone may already read 11.25 ms against 1.25 x 8.75 = 10.94: the earliest knee is 1
    noisy = sweep([10, 10.5, 11, 15], iqr=0.25)
    assert explain.batch_knee(noisy)[16] == (pytest.approx(4 * 2 ** 0.375), 1, None)
    assert "⚠ Noisy at batch 1, 2, 4, 8" in explain.explain_knee(noisy, None, 40.0)
    assert "Noisy" not in explain.explain_knee(sweep([10, 10, 11, 15]), None, 40.0)
    unspread = [{"batch": 2 ** i, "context_len": 16, "ms_per_step": t, "iqr_ms": None, "budget": {"memory roof": t}}
                for i, t in enumerate([10, 10, 11, 15])]  # a run that recorded no spread
    assert "Noisy" not in explain.explain_knee(unspread, None, 40.0)
    with pytest.raises(ValueError, match="batch 1"):
        explain.batch_knee(sweep([10, 10])[1:])


def test_explain_knee_on_the_recorded_h200_and_cpu_like_sweeps():
    ref = specs.load_reference()
    prof = ref["profile"]
    critical = serving.critical_batch(prof["matmul_flops"]["bf16"], prof["read_bandwidth"], "bf16")  # 154
    text = explain.explain_knee(ref["batch_sweep"], 16, critical)
    # recorded: 1.25 x 4.6566 = 5.8208 ms is crossed between batch 32 (5.8170) and 64 (6.8611):
    # 32 x 2 ** ((5.8208 - 5.8170) / (6.8611 - 5.8170)) = 32.1, far below 1.25 x 154
    assert "Measured: 32.1 sequences" in text and "Your guess, 16 sequences" in text and "grew sooner" in text
    assert "up to batch 64 is attention reading each sequence's own KV cache" in text and "than that model" not in text
    ops = [decode(batch=2 ** i, ms=t, budget={"memory roof": 9.0, "other small ops": 1.0 + 0.5 * i}, context_len=16)
           for i, t in enumerate([10, 11, 14, 16])]  # measured: 2 x 2**(1.5 / 3) = 2.83; modeled (10 ... 11.5): none
    text = explain.explain_knee(ops, None, 40.0)
    assert "up to batch 4 is small operations" in text and "than that model, too" in text  # the model has no knee
    ops[3].budget["other small ops"] = 4.0  # modeled 13 at batch 8: knee 4 x 2**(1.5 / 2) = 6.7, far above 2.83
    assert "grew sooner than that model, too" in explain.explain_knee(ops, None, 40.0)
    assert "No guess" not in explain.explain_knee(ref["batch_sweep"], None, critical)
    assert "grew later" in explain.explain_knee(sweep([10, 10, 10, 10, 12, 20], fixed=8), None, 2.0)  # fixed costs hide it
    # knee 8 x 2**(1.5 / 4) = 10.4: close to 1.25 x 8 = 10; after 1.25 x 4 = 5 with no fixed costs: faster matmuls
    assert "close to that" in explain.explain_knee(sweep([10, 10, 10, 11, 15]), 6, 8.0)
    assert "ran faster than the matmul peak" in explain.explain_knee(sweep([10, 10, 10, 11, 15]), 6, 4.0)
    none = explain.explain_knee(sweep([10, 10, 10.5, 11]), 50, 40.0)
    assert "no knee up to batch 8" in none and "That fits" in none and "Your guess: 50" in none


def test_explain_knee_names_the_kernel_switch_at_batch_2():
    # as notebook 03 measured cpu-m (fp32) on the AMD EPYC 2-core machine (critical batch 6.9): the step grew 1.44x
    # from batch 1 to 2 at both contexts, the model of the step (memory roof, kernel, attention) only 8.77 -> 8.82 ms
    def amd(ctx, times, attention):
        return [decode(batch=2 ** i, ms=t, context_len=ctx, budget={"memory roof": 4.0, "kernel below the roof": 4.0,
                                                                   "attention (KV reads)": a, "other small ops": 0.5})
                for i, (t, a) in enumerate(zip(times, attention))]
    records = amd(16, [12.6, 18.1, 18.4, 19.3, 21.5, 26.0], [0.27, 0.32, 0.42, 0.6, 1.0, 1.8]) + amd(
        144, [13.1, 18.9, 19.3, 20.4, 23.1, 28.9], [0.5, 0.6, 0.8, 1.2, 2.0, 3.6])
    text = explain.explain_knee(records, 4, 6.93)
    assert "from batch 1 to 2 it grew 1.44× at context 16, 1.44× at context 144, the model of the step only 1.01×" in text
    assert "GEMV" in text and "attention reading" not in text
    records[7] = decode(batch=2, ms=13.5, context_len=144, budget=records[7].budget)  # 1.03x at 144: not the kernel
    assert "GEMV" not in explain.explain_knee(records, 4, 6.93)


def test_latency_throughput_and_serving_figures():
    rows = [{"label": "predicted", "context_len": 0, "batch": b, "ms_per_step": ms} for b, ms in ((1, 10.0), (8, 20.0))]
    fig = plots.latency_throughput(rows)
    assert list(fig.data[0].x) == [100.0, 400.0] and list(fig.data[0].y) == [100.0, 50.0]  # b / step, 1 / step
    moe = plots.moe_figure({"Mixtral 8x7B": serving.MOE_MODELS["Mixtral 8x7B"]})
    assert moe.data[0].y[0] == pytest.approx(100 * 13 / 47) and moe.data[0].y[-1] > 99  # active -> nearly all
    cap = plots.capacity_figure({"A100": [30, 15]}, {"A100": 153.0}, [4096, 8192])
    assert list(cap.data[0].y) == [30, 15] and list(cap.data[1].y) == [153.0, 153.0]


def test_batch_sweep_figure_draws_the_iqr():
    fig = plots.batch_sweep_figure(sweep([10, 20], iqr=0.1), [])
    assert list(fig.data[0].error_y.array) == pytest.approx([0.5, 1.0])  # half the IQR, in ms
    assert list(fig.data[1].error_y.array) == pytest.approx([5.0, 5.0])  # and in tokens/s: 100 x 0.05, 100 x 0.05


def test_explain_context_needs_two_contexts():
    one = SimpleNamespace(context_len=128, ms_per_step=2.0, predicted_ms=1.0, budget={})
    with pytest.raises(ValueError, match="two or more context lengths"):
        explain.explain_context([one, one])


def test_guess_verdict_names_its_source():
    text = explain.guess_verdict(33, 34.5, 32.1, 2.4, "sequences", "The model of the step")
    assert "was within the measurement's noise: closer than the model of the step." in text
