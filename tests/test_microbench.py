"""Microbenchmarks: tiny sizes, short runs; values checked for sanity, never against a threshold."""

import math

import pytest
import torch

from course_lib import microbench as mb

MiB = 1 << 20


def _sane(r: mb.Microbench, unit: str):
    assert r.unit == unit
    assert math.isfinite(r.value) and r.value > 0
    assert r.median_s > 0 and r.repeats >= 1 and r.spread >= 0
    assert r.device == "cpu" and r.method and r.sizes
    assert set(r.as_dict()) >= {"name", "value", "unit", "method", "sizes", "repeats", "median_s", "spread"}


def test_bandwidth_benchmarks_are_positive_with_units():
    copy = mb.copy_bandwidth("cpu", nbytes=MiB, fast=True)
    _sane(copy, "B/s")
    assert copy.sizes["bytes_per_call"] == 2 * MiB  # read + written
    _sane(mb.read_bandwidth("cpu", nbytes=MiB, fast=True), "B/s")
    gemv = mb.gemv_bandwidth("cpu", nbytes=MiB, fast=True)
    _sane(gemv, "B/s")
    side = gemv.sizes["shape"][0]
    assert gemv.sizes["bytes_per_call"] == side * side * 4


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_matmul_flops(precision):
    r = mb.matmul_flops("cpu", precision, n=64, fast=True)
    _sane(r, "FLOP/s")
    assert r.sizes["flop_per_call"] == 2 * 64 ** 3 and r.dtype == precision


def test_launch_overhead_and_errors():
    r = mb.launch_overhead("cpu", n_ops=20, fast=True)
    _sane(r, "s")
    assert r.value == pytest.approx(r.median_s / 20)
    with pytest.raises(ValueError, match="graph=True"):
        mb.launch_overhead("cpu", graph=True)
    with pytest.raises(ValueError, match="tf32"):
        mb.matmul_flops("cpu", "tf32")
    with pytest.raises(ValueError, match="int4"):
        mb.matmul_flops("cpu", "int4", n=8)
    assert "fp32" in mb.matmul_precisions("cpu") and "tf32" not in mb.matmul_precisions("cpu")


def test_time_fn_counts_calls_and_rejects_bad_repeats():
    calls = []
    t = mb.time_fn(lambda: calls.append(1), "cpu", warmup=2, repeats=7)
    assert t.blocks == 7 and t.repeats == 7 and len(calls) == 9  # 2 warm-up + 7 timed
    assert t.median_s > 0 and t.iqr_s >= 0
    with pytest.raises(ValueError, match="repeats"):
        mb.time_fn(lambda: None, "cpu", repeats=0)
    assert mb._quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5


def test_buffers_are_random_not_zeros():
    x = mb._random(10_000, torch.float32, torch.device("cpu"))
    assert (x != 0).float().mean() > 0.99 and x.std() > 0.1


def test_fast_mode_reads_the_environment(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    assert mb.fast_mode() is True and mb.fast_mode(False) is False
    monkeypatch.setenv("COURSE_FAST", "0")
    assert mb.fast_mode() is False


def test_default_cpu_buffers_stay_above_cache_and_binder_safe():
    cpu = torch.device("cpu")
    for fast in (True, False):
        assert 2 * mb._default_buffer_bytes(cpu, fast) == mb._default_read_bytes(cpu, fast) == 256 * MiB


def test_cache_estimate_finds_the_cliff(monkeypatch):
    def fake_gemv(device=None, nbytes=None, fast=None, precision="fp32"):
        rate = 25e9 if nbytes <= 48 * MiB else 14e9  # fast up to 48 MiB, DRAM-like above (no 4 MiB in fast)
        return mb.Microbench("gemv_bandwidth", rate, "B/s", "fake", "cpu", "fp32", {}, 1, 1.0, 0.0)

    monkeypatch.setattr(mb, "gemv_bandwidth", fake_gemv)
    monkeypatch.setattr(mb, "sysfs_cache_bytes", lambda: 300 * MiB)
    r = mb.cache_estimate("cpu", fast=False)
    assert r.value == 48 * MiB and r.unit == "B"
    monkeypatch.setattr(mb, "sysfs_cache_bytes", lambda: 32 * MiB)  # the reported LLC caps it
    assert mb.cache_estimate("cpu", fast=False).value == 32 * MiB
    # nothing beats DRAM by 1.2x: the smallest size scanned
    assert mb.cache_estimate("cpu", fast=False, dram_bandwidth=30e9).value == 4 * MiB


def test_sysfs_cache_bytes_is_a_size_or_none():
    llc = mb.sysfs_cache_bytes()
    assert llc is None or (isinstance(llc, int) and llc >= 1024)


def test_launch_overhead_in_context_is_per_op_and_cpu_only():
    r = mb.launch_overhead_in_context("cpu", ops_per_gap=2, nbytes=4 * MiB, rounds=3)
    _sane(r, "s")
    assert r.sizes["n_ops"] == r.sizes["n_matrices"] * 2 and r.sizes["stream_bytes"] <= 4 * MiB
    assert r.repeats == 6 and "minus the GEMVs alone" in r.method
    with pytest.raises(ValueError, match="ops_per_gap"):
        mb.launch_overhead_in_context("cpu", ops_per_gap=0)
