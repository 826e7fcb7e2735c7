"""perf: every worked number of the course brief, hand-checked values, and property tests."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import perf, serving, specs

# ---------------------------------------------------------------- worked numbers (COURSE_BRIEF.md)


def test_7b_fp16_on_a100_teaching_figure():
    # 7e9 params x 2 B = 14 GB; 14e9 / 2e12 = 7 ms; 1 / 7 ms = 142.86 tok/s ("about 140")
    assert perf.weight_bytes(7e9, "fp16") == 14e9
    assert perf.decode_time(7e9, "fp16", 2e12) == pytest.approx(7e-3)
    assert perf.tokens_per_second(7e9, "fp16", 2e12) == pytest.approx(142.857, rel=1e-4)


def test_70b_fp16_does_not_fit_one_80gb_gpu():
    assert perf.weight_bytes(70e9, "fp16") == 140e9
    assert perf.decode_time(70e9, "fp16", 2e12) == pytest.approx(70e-3)
    assert perf.tokens_per_second(70e9, "fp16", 2e12) == pytest.approx(14.2857, rel=1e-4)
    assert not perf.fits(70e9, "fp16", 80e9)
    assert perf.min_devices(70e9, "fp16", 80e9) == 2


def test_70b_on_h100():
    # 140e9 / 3.35e12 = 41.79 ms -> 23.93 tok/s
    assert perf.decode_time(70e9, "fp16", 3.35e12) == pytest.approx(41.791e-3, rel=1e-4)
    assert perf.tokens_per_second(70e9, "fp16", 3.35e12) == pytest.approx(23.93, rel=1e-3)


def test_70b_int4_on_a100_fits():
    # 70e9 x 0.5 = 35 GB; 35e9 / 2e12 = 17.5 ms -> 57.1 tok/s
    assert perf.decode_time(70e9, "int4", 2e12) == pytest.approx(17.5e-3)
    assert perf.tokens_per_second(70e9, "int4", 2e12) == pytest.approx(57.14, rel=1e-3)
    assert perf.fits(70e9, "int4", 80e9)


def test_13b_fp16_at_3tbs():
    # 26e9 / 3e12 = 8.667 ms -> 115.4 tok/s
    assert perf.decode_time(13e9, "fp16", 3e12) == pytest.approx(8.6667e-3, rel=1e-4)
    assert perf.tokens_per_second(13e9, "fp16", 3e12) == pytest.approx(115.38, rel=1e-3)


def test_h100_vs_a100_speedup_is_the_bandwidth_ratio():
    ratio = perf.tokens_per_second(7e9, "fp16", 3.35e12) / perf.tokens_per_second(7e9, "fp16", 2e12)
    assert ratio == pytest.approx(1.675)


def test_ridge_points():
    assert perf.ridge_point(312e12, 2.0e12) == pytest.approx(156)
    assert perf.ridge_point(312e12, 1.555e12) == pytest.approx(200.6, rel=1e-3)
    assert perf.ridge_point(989e12, 3.35e12) == pytest.approx(295.2, rel=1e-3)


def test_speculative_worked_example():
    # (1 - 0.8^5) / 0.2 = (1 - 0.32768) / 0.2 = 3.3616
    assert perf.speculative_expected_tokens(0.8, 4) == pytest.approx(3.3616)
    # c = 0.1: 3.3616 / 1.4 = 2.4011
    assert perf.speculative_speedup(0.8, 4, 0.1) == pytest.approx(2.40114, rel=1e-5)
    assert perf.speculative_expected_tokens(0.0, 4) == 1.0  # nothing accepted: the verified token only
    assert perf.speculative_speedup(0.0, 4, 0.5) == pytest.approx(1 / 3)  # a slow-down


# ---------------------------------------------------------------- other hand-checked values


def test_bytes_per_param_table():
    assert [perf.bytes_per_param(p) for p in ("fp32", "fp16", "bf16", "fp8", "int8", "int4")] == [4, 2, 2, 1, 1, 0.5]
    assert perf.bytes_per_param("BF16") == 2


def test_decode_time_with_kv():
    # (14e9 + 1e9) / 2e12 = 7.5 ms
    assert perf.decode_time(7e9, "fp16", 2e12, kv_bytes=1e9) == pytest.approx(7.5e-3)


def test_decode_estimate_by_hand():
    # 70B fp16 = 140 GB + 10 GB of cache on 80 GB: 75 ms/token, does not fit, ceil(140 / 80) = 2 devices for the weights
    e = perf.decode_estimate(70e9, "FP16", 2e12, 80e9, kv_bytes=10e9)
    assert e["precision"] == "fp16" and e["weight_bytes"] == 140e9 and e["ms_per_token"] == pytest.approx(75.0)
    assert e["tokens_per_s"] == pytest.approx(1 / 75e-3) and e["fits"] is False and e["min_devices"] == 2
    assert perf.decode_estimate(7e9, "fp16", 2e12, 80e9, kv_bytes=60e9)["fits"] is True  # 74 GB <= 80 GB
    assert perf.decode_estimate(7e9, "fp16", 2e12)["fits"] is None  # no memory given: no verdict


def test_params_for_speed_inverts_the_bound():
    # 89.6 GB/s, 20 tok/s, int4: 89.6e9 / 20 / 0.5 = 8.96e9 parameters
    assert perf.params_for_speed(20, "int4", 89.6e9) == pytest.approx(8.96e9)
    assert perf.tokens_per_second(perf.params_for_speed(143, "fp16", 2e12), "fp16", 2e12) == pytest.approx(143)
    with pytest.raises(ValueError, match="tokens_per_s"):
        perf.params_for_speed(0, "fp16", 2e12)


def test_cost_per_million_tokens():
    # H100 3.35 TB/s, 7B fp16: 3.35e12 / 14e9 = 239.29 tok/s = 0.86143 M tokens an hour; $2 / 0.86143 = $2.32
    tps = perf.tokens_per_second(7e9, "fp16", 3.35e12)
    assert serving.cost_per_million_tokens(2.0, tps) == pytest.approx(2.3217, rel=1e-4)
    assert serving.cost_per_million_tokens(3.0, 32 * tps) == pytest.approx(3.4826 / 32, rel=1e-4)  # a batch shares the hour
    with pytest.raises(ValueError, match="tokens_per_s"):
        serving.cost_per_million_tokens(2.0, 0)
    assert serving.cost_per_million_tokens(0, 240) == 0  # free hardware: free tokens


def test_critical_batch():
    # A100 fp16: 156 FLOP/B x 2 B / 2 = 156 sequences; fp32 doubles bytes per weight -> 312
    assert serving.critical_batch(312e12, 2e12, "fp16") == pytest.approx(156)
    assert serving.critical_batch(312e12, 2e12, "fp32") == pytest.approx(312)
    assert serving.critical_batch(312e12, 2e12, "int4") == pytest.approx(39)
    # W4A16 on the datasheet A100-80GB: fp16 peak, int4 bytes: 312e12 / 2.039e12 x 0.5 / 2 = 38.25 (fp16: 153)
    assert serving.critical_batch(312e12, 2.039e12, "int4") == pytest.approx(38.25, abs=0.01)
    assert serving.critical_batch(312e12, 2.039e12, "fp16") == pytest.approx(153.0, abs=0.05)
    # W8A8 on an H100 SXM: fp8 peak 1979e12 with 1-byte weights = bf16's 989e12 with 2 bytes (295)
    assert serving.critical_batch(1979e12, 3.35e12, "fp8") == pytest.approx(295.4, abs=0.1)
    assert serving.critical_batch(989e12, 3.35e12, "bf16") == pytest.approx(295.2, abs=0.1)


def test_linear_intensity():
    # n=1, 4096x4096, 2-byte: 2*4096^2 / (4096^2*2 + 8192*2) = 33554432 / 33570816 = 0.99951
    assert perf.linear_intensity(1, 4096, 4096, 2, 2) == pytest.approx(0.999512, rel=1e-5)
    # n=512: 2*512*4096^2 / (4096^2*2 + 512*8192*2) = 1.718e10 / 4.194e7 = 409.6
    assert perf.linear_intensity(512, 4096, 4096, 2, 2) == pytest.approx(409.6)


def test_kv_cache_bytes_per_token():
    # 7B-like: 2 x 32 layers x 32 heads x 128 x 2 B = 524288 B = 0.5 MiB
    assert perf.kv_cache_bytes_per_token(32, 32, 128, "fp16") == 524288
    # GQA with 8 KV heads: a quarter
    assert perf.kv_cache_bytes_per_token(32, 8, 128, "fp16") == 131072


def test_prefill_time_roofline():
    # 7B fp16 on A100: memory 7 ms; compute 2*7e9*n/312e12 -> compute-bound above n ~ 156
    assert perf.prefill_time(7e9, 1, "fp16", 2e12, 312e12) == pytest.approx(7e-3)
    assert perf.prefill_time(7e9, 1000, "fp16", 2e12, 312e12) == pytest.approx(2 * 7e9 * 1000 / 312e12)


def test_batched_decode_time():
    # below the knee: step time = weights / bandwidth; above: compute
    assert serving.batched_decode_time(7e9, "fp16", 2e12, 312e12, batch=8) == pytest.approx(7e-3)
    assert serving.batched_decode_time(7e9, "fp16", 2e12, 312e12, batch=1000) == pytest.approx(2 * 7e9 * 1000 / 312e12)
    # KV reads add per sequence: 8 x 1e9 B / 2e12 = +4 ms
    assert serving.batched_decode_time(7e9, "fp16", 2e12, 312e12, batch=8, kv_bytes_per_seq=1e9) == pytest.approx(11e-3)


def test_roofline_and_attention_intensity():
    assert perf.attainable_flops(1.0, 312e12, 2e12) == 2e12            # memory-bound: I x B
    assert perf.attainable_flops(1000, 312e12, 2e12) == 312e12          # compute-bound: the peak
    assert perf.attainable_flops(156, 312e12, 2e12) == pytest.approx(312e12)  # the ridge
    assert perf.decode_attention_intensity(32, 32, "fp16") == 1.0      # 2 x 1 / 2 bytes
    assert perf.decode_attention_intensity(32, 8, "fp16") == 4.0       # GQA: 4 query heads share a KV head
    with pytest.raises(ValueError, match="intensity"):
        perf.attainable_flops(0, 1, 1)


def test_decode_intensity():
    assert serving.decode_intensity(7e9, "fp16", batch=1) == pytest.approx(1.0)
    assert serving.decode_intensity(7e9, "fp16", batch=32) == pytest.approx(32.0)
    assert serving.decode_intensity(7e9, "fp16", batch=2, kv_bytes_per_seq=7e9) == pytest.approx(28e9 / 28e9)


def test_min_devices_405b():
    # 810 GB / 80 GB = 10.125 -> 11 GPUs for the weights alone
    assert perf.min_devices(405e9, "fp16", 80e9) == 11
    assert perf.min_devices(1e9, "fp16", 80e9) == 1
    assert perf.min_devices(80e9, "fp16", 80e9) == 2
    assert perf.min_devices(7e9, "fp16", 80e9, kv_bytes=80e9) == 2  # 14 GB of weights + 80 GB of cache = 94 GB


def test_ring_allreduce_by_hand():
    # ring, N=2: 2 steps of latency + 2*(1/2) * m / beta
    assert serving.allreduce_time(1e6, 2, 1e9, 1e-5) == pytest.approx(2e-5 + 1e-3)
    assert serving.allreduce_time(1e6, 2, 1e9, 1e-5, "ring") == pytest.approx(2e-5 + 1e-3)
    # N=4, 16 KiB over NVLink: 6 latencies + 1.5 x 16384 B / 450 GB/s = 30 us + 0.0546 us
    assert serving.allreduce_time(16384, 4, 450e9, 5e-6) == pytest.approx(30e-6 + 5.4613e-8, rel=1e-4)
    assert serving.allreduce_time(1e6, 1, 1e9, 1e-5) == 0.0


def test_one_shot_allreduce_by_hand():
    # one latency + (N-1) whole messages into each device
    assert serving.allreduce_time(1e6, 2, 1e9, 1e-5, "one-shot") == pytest.approx(1e-5 + 1e-3)
    # N=8, 16 KiB: 6 us + 7 x 16384 / 450e9 = 6 us + 0.2549 us
    assert serving.allreduce_time(16384, 8, 450e9, 6e-6, "one-shot") == pytest.approx(6.2549e-6, rel=1e-4)
    assert serving.allreduce_time(1e6, 1, 1e9, 1e-5, "one-shot") == 0.0
    # its latency term does not grow with N; the ring's grows as 2(N-1)
    tiny = [serving.allreduce_time(4, n, 1e12, 6e-6, "one-shot") for n in (2, 4, 8, 16)]
    assert max(tiny) == pytest.approx(6e-6, rel=1e-4)
    assert serving.allreduce_time(4, 16, 1e12, 6e-6, "ring") == pytest.approx(30 * 6e-6, rel=1e-4)
    with pytest.raises(ValueError, match="algorithm"):
        serving.allreduce_time(1e6, 2, 1e9, 1e-5, "tree")


def test_tensor_parallel_by_hand():
    one = serving.tensor_parallel_decode_time(7e9, "fp16", 2e12, 1, 32, 4096, 300e9, 5e-6)
    assert one == pytest.approx(7e-3)
    # N=2, ring: 3.5 ms + 64 all-reduces of 8192 B: each 2*5us + 8192/300e9 = 10.0273 us -> 0.6417 ms
    two = serving.tensor_parallel_decode_time(7e9, "fp16", 2e12, 2, 32, 4096, 300e9, 5e-6, algorithm="ring")
    assert two == pytest.approx(3.5e-3 + 64 * (1e-5 + 8192 / 300e9))
    # the default is one-shot: 5 us + 8192/300e9 each
    assert serving.tensor_parallel_decode_time(7e9, "fp16", 2e12, 2, 32, 4096, 300e9, 5e-6) == pytest.approx(
        3.5e-3 + 64 * (5e-6 + 8192 / 300e9))


def test_tp8_beats_tp4_for_70b_on_h100_and_ring_is_the_pessimistic_case():
    # erratum 11. 70B fp16 on H100 SXM (3.35 TB/s), 80 layers, d 8192 (16 KiB messages), NVLink defaults
    def step(n, algorithm):
        return serving.tensor_parallel_decode_time(70e9, "fp16", 3.35e12, n, 80, 8192, serving.NVLINK_BANDWIDTH,
                                                serving.NVLINK_LATENCY, algorithm=algorithm)
    # one-shot: 140e9 / (4 x 3.35e12) = 10.448 ms + 160 x (6 us + 3 x 16384 / 450e9) = 0.977 ms
    assert step(4, "one-shot") == pytest.approx(10.4478e-3 + 0.97747e-3, rel=1e-4)
    # 5.224 ms + 160 x (6 us + 7 x 16384 / 450e9) = 1.0008 ms
    assert step(8, "one-shot") == pytest.approx(5.2239e-3 + 1.00078e-3, rel=1e-4)
    assert step(8, "one-shot") < step(4, "one-shot")
    # ring: 160 x 14 x 6 us = 13.4 ms of latency at N=8 against 160 x 6 x 6 us = 5.8 ms at N=4
    assert step(8, "ring") > step(4, "ring") > step(4, "one-shot")


def test_fit_allreduce_recovers_a_line_by_hand():
    sizes = [4, 2048, 65536, 1 << 20]
    # ring over 2: t = 2 alpha + m / beta with alpha = 50 us, beta = 2 GB/s
    times = [2 * 50e-6 + m / 2e9 for m in sizes]
    alpha, beta = serving.fit_allreduce(sizes, times, 2)
    assert alpha == pytest.approx(50e-6, rel=1e-6) and beta == pytest.approx(2e9, rel=1e-6)
    # the same times read as one-shot: one latency of 100 us, (N-1) = 1 message
    assert serving.fit_allreduce(sizes, times, 2, "one-shot") == pytest.approx((100e-6, 2e9), rel=1e-6)
    # ring over 4: intercept 6 alpha, slope 1.5 / beta
    times4 = [6 * 10e-6 + 1.5 * m / 5e9 for m in sizes]
    assert serving.fit_allreduce(sizes, times4, 4) == pytest.approx((10e-6, 5e9), rel=1e-6)
    # noise that makes the intercept negative: alpha 0, not a negative latency; a falling line: beta inf
    assert serving.fit_allreduce([1e3, 1e6], [1e-6, 2e-3], 2)[0] == 0.0
    assert serving.fit_allreduce([1e3, 1e6], [2e-3, 1e-3], 2)[1] == math.inf


def test_fit_allreduce_weighs_relative_error():
    # a 10 % error on the largest message barely moves the latency fitted from the small ones
    sizes = [4, 4096, 65536, 1 << 22]
    times = [2 * 50e-6 + m / 2e9 for m in sizes]
    times[-1] *= 1.10
    alpha, _ = serving.fit_allreduce(sizes, times, 2)
    assert alpha == pytest.approx(50e-6, rel=0.05)


@pytest.mark.parametrize("args, match", [
    (([1e3], [1e-3], 2), "two different sizes"), (([1e3, 1e3], [1e-3, 2e-3], 2), "two different sizes"),
    (([1e3, 1e6], [1e-3], 2), "one time per message size"), (([1e3, 1e6], [1e-3, 0.0], 2), "seconds"),
    (([1e3, 1e6], [1e-3, 2e-3], 1), "n_devices"), (([1e3, 1e6], [1e-3, 2e-3], 2, "tree"), "algorithm"),
])
def test_fit_allreduce_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        serving.fit_allreduce(*args)


def test_tensor_parallel_split_by_hand():
    # 10 ms on one device, 80 % of it split: 10 x (0.2 + 0.8 / 2) = 6 ms; 32 ring all-reduces of
    # 2048 B at alpha 50 us, beta 1 GB/s: 32 x (100 us + 2.048 us) = 3.2655 ms
    compute, comm = serving.tensor_parallel_split(10e-3, 2, 32, 2048, 1e9, 50e-6, split_share=0.8)
    assert compute == pytest.approx(6e-3) and comm == pytest.approx(3.265536e-3)
    assert serving.tensor_parallel_split(10e-3, 1, 32, 2048, 1e9, 50e-6) == (10e-3, 0.0)
    with pytest.raises(ValueError, match="split_share"):
        serving.tensor_parallel_split(10e-3, 2, 32, 2048, 1e9, 50e-6, split_share=1.5)


def test_decode_budget_by_hand():
    # 1 GB of weights: 1 ms at 1 TB/s streaming, 2 ms at the 0.5 TB/s kernel; 10 norms at 5 us,
    # 4 attention calls at 25 us; 2 GFLOP at 1 PFLOP/s is far below the kernel time
    b = perf.decode_budget(1e9, 2e9, 1e12, 0.5e12, {"rms_norm": 10, "attention": 4},
                           {"rms_norm": 5e-6, "attention": 25e-6, "gelu": 1.0}, 1e15)
    assert b == pytest.approx({"memory roof": 1e-3, "kernel below the roof": 1e-3, "compute past the ridge": 0.0,
                               "attention (KV reads)": 100e-6, "other small ops": 50e-6})
    # a batch past the ridge: 4e12 FLOP at 1 PFLOP/s = 4 ms, 2 ms beyond the kernel's 2 ms
    assert perf.decode_budget(1e9, 4e12, 1e12, 0.5e12, {}, {}, 1e15)["compute past the ridge"] == pytest.approx(2e-3)
    with pytest.raises(ValueError, match="without a cost"):
        perf.decode_budget(1e9, 0, 1e12, 1e12, {"gelu": 1}, {})
    # eager on a GPU: 1000 calls at 10 us take 10 ms to issue, 8 ms more than the GPU's 2 ms of work
    eager = perf.decode_budget(1e9, 0, 1e12, 1e12, {"other": 1000}, {"other": 1e-6}, None, {"other": 10e-6})
    assert eager["waiting for launches"] == pytest.approx(10e-3 - 1e-3 - 1e-3)
    fast_cpu = perf.decode_budget(1e9, 0, 1e12, 1e12, {"other": 10}, {"other": 1e-6}, None, {"other": 10e-6})
    assert fast_cpu["waiting for launches"] == 0.0  # issuing 0.1 ms hides under 1 ms of GPU work
    # a CUDA-graph step: one call at 40 us is its own term, last; 10 norms at 2 us stay "other small ops"
    graph = perf.decode_budget(1e9, 0, 1e12, 1e12, {"rms_norm": 10, "graph call": 1}, {"rms_norm": 2e-6, "graph call": 40e-6})
    assert list(graph)[-2:] == ["other small ops", "calling the graph"] and graph["calling the graph"] == pytest.approx(40e-6)
    assert graph["other small ops"] == pytest.approx(20e-6) and "calling the graph" not in eager


def test_roofline_time_takes_the_binding_roof():
    # 1 GB at 1 TB/s = 1 ms; 1e12 FLOP at 1e15 FLOP/s = 1 ms: equal at the ridge
    assert perf.roofline_time(1e9, 1e12, 1e12, 1e15) == pytest.approx(1e-3)
    assert perf.roofline_time(1e9, 1e13, 1e12, 1e15) == pytest.approx(10e-3)  # compute-bound
    assert perf.roofline_time(2e9, 0, 1e12, 1e15) == pytest.approx(2e-3)  # memory-bound


def test_decode_table_marks_oom():
    gpus = [specs.get(n) for n in ("A100", "H100", "H200")]
    rows = perf.decode_table(gpus, precision="fp16")
    assert len(rows) == 15
    by = {(r["model"], r["hardware"]): r for r in rows}
    assert by[("7B", "A100-80GB")]["fits"] and not by[("70B", "A100-80GB")]["fits"]
    assert by[("70B", "H200")]["fits"]  # 140 GB < 150.1 GB (sold as 141 GB)
    assert not by[("405B", "H200")]["fits"] and by[("405B", "H200")]["min_devices"] == 6
    assert by[("13B", "H100-SXM")]["ms_per_token"] == pytest.approx(26e9 / 3.35e12 * 1e3)


def test_max_sequences_kv_capacity():
    # 7B fp16 (13.5 GB) on 80 GB at 4,096 tokens of 0.5 MiB: (80 - 13.5) GB / 2.147 GB = 30.97 -> 30
    kv = 4096 * perf.kv_cache_bytes_per_token(32, 32, 128, "fp16")
    assert kv == pytest.approx(2.147e9, rel=1e-3)
    assert serving.max_sequences(6.75e9, "fp16", 80e9, kv) == 30
    assert serving.max_sequences(6.75e9, "fp16", 2**30 * 80, kv) == 33  # the 85.9e9 B an "80 GB" A100 reports
    assert serving.max_sequences(70e9, "fp16", 80e9, kv) == 0  # 140 GB of weights leave no room at all


def test_moe_experts_and_bytes():
    # Mixtral (8 experts, top 2): 2 at batch 1; 8 x (1 - 0.75^2) = 3.5 at batch 2; 8 x (1 - 0.75^8) = 7.20 at batch 8
    assert serving.moe_experts_touched(8, 2, 1) == pytest.approx(2)
    assert serving.moe_experts_touched(8, 2, 2) == pytest.approx(3.5)
    assert serving.moe_experts_touched(8, 2, 8) == pytest.approx(7.1990, rel=1e-4)
    # DeepSeek-V3 (256, top 8) at batch 32: 256 x (1 - (31/32)^32) = 163.3
    assert serving.moe_experts_touched(256, 8, 32) == pytest.approx(163.30, rel=1e-3)
    # Mixtral 47B/13B: experts of 34/6 = 5.67B, shared 13 - 11.33 = 1.67B; fp16 at batch 1 = the active 26 GB,
    # at batch 2: (1.667 + 3.5 x 5.667) x 2 = 43.0 GB, and it never exceeds the total 94 GB
    assert serving.moe_step_bytes(47e9, 13e9, 8, 2, "fp16", 1) == pytest.approx(26e9)
    assert serving.moe_step_bytes(47e9, 13e9, 8, 2, "fp16", 2) == pytest.approx(43.0e9, rel=1e-3)
    assert serving.moe_step_bytes(47e9, 13e9, 8, 2, "fp16", 4096) == pytest.approx(94e9)
    with pytest.raises(ValueError, match="top_k"):
        serving.moe_experts_touched(8, 9)
    with pytest.raises(ValueError, match="active_params"):
        serving.moe_step_bytes(13e9, 47e9, 8, 2, "fp16")


# ---------------------------------------------------------------- invalid input raises ValueError, naming the argument


@pytest.mark.parametrize("call, name", [
    (lambda: perf.decode_time(-1, "fp16", 2e12), "n_params"),
    (lambda: perf.decode_time(7e9, "fp16", 0), "bandwidth"),
    (lambda: perf.decode_time(7e9, "fp16", float("nan")), "bandwidth"),
    (lambda: perf.decode_time(7e9, "fp5", 2e12), "precision"),
    (lambda: perf.decode_time(7e9, "fp16", 2e12, kv_bytes=-1), "kv_bytes"),
    (lambda: perf.fits(7e9, "fp16", 0), "memory"),
    (lambda: perf.min_devices(7e9, "fp16", float("inf")), "device_memory"),
    (lambda: perf.ridge_point(0, 1), "peak_flops"),
    (lambda: serving.critical_batch(1, 1, None), "precision"),
    (lambda: perf.linear_intensity(0, 1, 1, 2, 2), "n_tokens"),
    (lambda: perf.linear_intensity(1.5, 1, 1, 2, 2), "n_tokens"),
    (lambda: perf.kv_cache_bytes_per_token(32, 0, 128, "fp16"), "n_kv_heads"),
    (lambda: perf.prefill_time(7e9, 10, "fp16", 2e12, -1), "peak_flops"),
    (lambda: perf.speculative_expected_tokens(1.0, 4), "alpha"),
    (lambda: perf.speculative_expected_tokens(-0.1, 4), "alpha"),
    (lambda: perf.speculative_expected_tokens(0.5, 0), "gamma"),
    (lambda: perf.speculative_speedup(0.5, 4, -1), "cost_ratio"),
    (lambda: serving.tensor_parallel_decode_time(7e9, "fp16", 2e12, 0, 32, 4096, 3e11, 5e-6), "n_devices"),
    (lambda: serving.tensor_parallel_decode_time(7e9, "fp16", 2e12, 2, 32, 4096, 3e11, -5e-6), "link_latency"),
    (lambda: perf.decode_time(True, "fp16", 2e12), "n_params"),
    (lambda: perf.decode_time("7e9", "fp16", 2e12), "n_params"),
    (lambda: perf.roofline_time(1e9, 1e9, 1e12, 0), "peak_flops"),
    (lambda: perf.check_count("layers", 2.5), "layers"),
    (lambda: serving.max_sequences(7e9, "fp16", 80e9, 0), "kv_bytes_per_seq"),
    (lambda: serving.cost_per_million_tokens(-1, 100), "price_per_hour"),
    (lambda: serving.cost_per_million_tokens(2, 0), "tokens_per_s"),
    (lambda: serving.moe_experts_touched(8, 2, 0), "batch"),
])
def test_invalid_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


anything = st.one_of(st.none(), st.booleans(), st.text(max_size=5), st.integers(-10**6, 10**6),
                     st.floats(allow_nan=True, allow_infinity=True))


@settings(max_examples=300, deadline=None)
@given(n=anything, prec=st.one_of(st.sampled_from(["fp16", "int4", "FP32", "fp5", ""]), anything),
       bw=anything, kv=anything)
def test_decode_time_raises_only_value_error(n, prec, bw, kv):
    try:
        t = perf.decode_time(n, prec, bw, kv_bytes=kv)
    except ValueError:
        return
    assert t > 0 and math.isfinite(t)


@settings(max_examples=200, deadline=None)
@given(a=anything, g=anything, c=anything)
def test_speculative_raises_only_value_error(a, g, c):
    try:
        s = perf.speculative_speedup(a, g, c)
    except ValueError:
        return
    assert s > 0


positive = st.floats(min_value=1e3, max_value=1e15, allow_nan=False, allow_infinity=False)
precisions = st.sampled_from(["fp32", "fp16", "bf16", "fp8", "int8", "int4"])


@given(n=positive, p=precisions, bw=positive, factor=st.floats(1.0, 100.0))
def test_more_bandwidth_is_never_slower(n, p, bw, factor):
    assert perf.decode_time(n, p, bw * factor) <= perf.decode_time(n, p, bw)


@given(n=positive, p=precisions, bw=positive, factor=st.floats(1.0, 100.0), kv=st.floats(0, 1e12))
def test_more_bytes_is_never_faster(n, p, bw, factor, kv):
    assert perf.decode_time(n * factor, p, bw, kv) >= perf.decode_time(n, p, bw, kv)
    assert perf.decode_time(n, p, bw, kv * factor) >= perf.decode_time(n, p, bw, kv)


@given(a=st.floats(0, 0.999), g=st.integers(1, 16))
def test_speculative_expected_tokens_bounds(a, g):
    e = perf.speculative_expected_tokens(a, g)
    assert 1.0 <= e <= g + 1 + 1e-9


@given(b=st.integers(1, 4096))
def test_batched_throughput_never_falls_with_batch(b):
    t1 = serving.batched_decode_time(7e9, "fp16", 2e12, 312e12, batch=b)
    t2 = serving.batched_decode_time(7e9, "fp16", 2e12, 312e12, batch=b + 1)
    assert (b + 1) / t2 >= b / t1 - 1e-9


def test_tensor_parallel_components_sum():
    s, c = serving.tensor_parallel_components(70e9, "fp16", 3.35e12, 4, 80, 8192, 450e9, 5e-6)
    assert s == pytest.approx(140e9 / (4 * 3.35e12))
    # 160 ring all-reduces of 8192 x 2 B over 4 devices: 6 latency steps + 1.5 x 16384 B / 450 GB/s each
    ring = serving.tensor_parallel_components(70e9, "fp16", 3.35e12, 4, 80, 8192, 450e9, 5e-6, algorithm="ring")[1]
    assert ring == pytest.approx(160 * (6 * 5e-6 + 1.5 * 16384 / 450e9))
    # one-shot (the default): 1 latency + 3 x 16384 B / 450 GB/s each
    assert c == pytest.approx(160 * (5e-6 + 3 * 16384 / 450e9))
    assert set(serving.REFERENCE_SHAPES) and all(p > 0 for p, _, _ in serving.REFERENCE_SHAPES.values())


def test_format_number_and_format_ms():
    cases = {115.384: "115", 3.3616: "3.36", 524288: "524288", 0.5: "0.5", 1.3e10: "1.3e10", 2.4e-5: "2.4e-5",
             0: "0", -8.666: "-8.67", 11: "11"}
    assert {x: perf.format_number(x) for x in cases} == cases
    assert [perf.format_number(x, u) for x, u in [(4.1234, "ms"), (25.63, "×"), (12.0, "%")]] == ["4.12 ms", "25.6×", "12%"]
    assert [perf.format_ms(ms) for ms in (1234.5, 4.1, 0.1, 0.0372)] == ["1.23 s", "4.10 ms", "0.10 ms", "37 µs"]
