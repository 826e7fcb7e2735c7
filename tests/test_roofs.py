"""roofs: what each microbenchmark counts (with a fake clock), a real fast profile (sane values, never thresholds),
and the profile cache."""

import json
import math

import pytest
import torch
from helpers import make_profile

from course_lib import machine, roofs

MiB = 1 << 20


@pytest.fixture
def one_ms_per_call(monkeypatch):
    """machine.time_fn replaced: it runs the timed function once and reports 1 ms per call, so
    that a roof must be exactly the bytes (or FLOPs) it documents / 1e-3 s."""
    def fake(fn, device="cpu", min_run_time=0.2, warmup=2, repeats=None):
        fn()
        return machine.measurement([1e-3] * 3)

    monkeypatch.setattr(machine, "time_fn", fake)


def test_bandwidth_roofs_count_bytes_as_documented(one_ms_per_call):
    assert roofs.copy_bandwidth("cpu", nbytes=2 * MiB) == 2 * MiB / 1e-3  # two 1 MiB buffers: read + written
    assert roofs.read_bandwidth("cpu", nbytes=MiB) == MiB / 1e-3
    # the kernel roof cycles the given shapes until they hold nbytes: 3 MiB + 1 MiB, twice = 8 MiB
    assert roofs.gemv_bandwidth("cpu", "fp32", shapes=[(768, 1024), (256, 1024)], nbytes=8 * MiB) == 8 * MiB / 1e-3
    # stored (in, out) for x @ W: the same bytes (two 3 MiB matrices)
    assert roofs.gemv_bandwidth("cpu", "fp32", shapes=[(768, 1024)], nbytes=6 * MiB, layout="in_out") == 6 * MiB / 1e-3
    with pytest.raises(ValueError, match="layout='rows'"):
        roofs.gemv_bandwidth("cpu", shapes=[(8, 8)], layout="rows")


def test_matmul_roof(one_ms_per_call):
    assert roofs.matmul_flops("cpu", "fp32", n=64) == 2 * 64 ** 3 / 1e-3
    with pytest.raises(ValueError, match="cannot run"):
        roofs.matmul_flops("cpu", "int4", n=8)


def test_small_op_costs_cover_every_kind_a_step_counts():
    from course_lib import measure, model

    tiny = model.build_model("tiny")
    for graph in (False, True):
        costs = roofs.small_op_costs("cpu", "fp32", tiny.config, 1, 9, graph, torch.get_num_threads(), True)
        assert set(measure.count_ops(tiny, 1, 8, graph)) <= set(costs)  # the budget can price every call
        assert all(c >= 0 and math.isfinite(c) for c in costs.values()) and costs["linear"] == 0.0  # paid by the kernel roof
    assert roofs.kernel_roof("cpu", "fp32", tiny.config, torch.get_num_threads(), True) > 0
    assert roofs.best_layout("cpu", "fp32", tiny.config, torch.get_num_threads(), True) in ("out_in", "in_out")


def test_a_real_fast_profile_is_complete():
    p = roofs.measure_profile("cpu", fast=True)
    assert p.fast and p.device_type == "cpu" and p.threads == torch.get_num_threads()
    assert set(p.gemv_bandwidth) >= set(p.matmul_flops) >= {"fp32"}
    rates = [p.copy_bandwidth, p.read_bandwidth, *p.gemv_bandwidth.values(), *p.matmul_flops.values()]
    assert all(r > 0 and math.isfinite(r) for r in rates)
    assert p.op_cost >= 0 and p.op_cost_graph is None and p.cache_bytes in (16 * MiB, 64 * MiB)
    assert "decode GEMV kernel" in p.summary() and "of the read" in p.summary()


@pytest.fixture
def measured(monkeypatch):
    """Replace the (slow) measurement by a counter returning a fixed profile."""
    monkeypatch.delenv("COURSE_FAST", raising=False)
    calls = []

    def fake(device=None, fast=None, progress=False):
        calls.append(fast)
        return make_profile(fast=bool(fast))

    monkeypatch.setattr(roofs, "measure_profile", fake)
    return calls


def test_cache_round_trip_and_reuse(measured):
    first = roofs.get_profile("cpu", fast=False)
    assert measured == [False] and roofs.profile_path("cpu").exists()
    assert roofs.get_profile("cpu", fast=False) == first and measured == [False]  # from the cache
    roofs.get_profile("cpu", remeasure=True)
    assert len(measured) == 2
    assert first.peak_flops("bf16") == 5e10
    with pytest.raises(ValueError, match="fp16"):
        first.peak_flops("fp16")


@pytest.mark.parametrize("content", ["{not json", "[]", "", "null", json.dumps({"device_type": "cpu"}),
                                     json.dumps({**make_profile().__dict__, "read_bandwidth": -1}),
                                     json.dumps({**make_profile().__dict__, "matmul_flops": {"fp32": "fast"}}),
                                     json.dumps({**make_profile().__dict__, "schema": 2})])
def test_corrupt_or_old_cache_is_remeasured_not_an_error(measured, content):
    path = roofs.profile_path("cpu")
    path.parent.mkdir(parents=True)
    path.write_text(content)
    assert roofs.get_profile("cpu").read_bandwidth == 14e9 and measured == [False]
    assert roofs.load_profile(path) is not None  # and the file was repaired


@pytest.mark.parametrize("change", [dict(torch_version="0.0.1"), dict(device_name="another CPU"),
                                    dict(threads=torch.get_num_threads() + 1)])
def test_a_profile_of_another_setup_is_remeasured(measured, change):
    path = roofs.profile_path("cpu")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(make_profile(**change).__dict__))
    roofs.get_profile("cpu")
    assert len(measured) == 1


def test_a_fast_profile_serves_fast_requests_only(measured):
    path = roofs.profile_path("cpu")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(make_profile(fast=True).__dict__))
    assert roofs.get_profile("cpu", fast=True).fast and measured == []
    assert not roofs.get_profile("cpu", fast=False).fast and measured == [False]


def test_unwritable_cache_warns_and_still_returns(measured, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("COURSE_LIB_CACHE_DIR", str(blocker / "sub"))
    with pytest.warns(UserWarning, match="could not cache"):
        assert roofs.get_profile("cpu").read_bandwidth == 14e9


def test_compare_with_the_recorded_gpu(fake_profile):
    from course_lib import specs
    rows = roofs.compare_with_recorded(specs.load_reference(), fake_profile)
    by_name = {q: (rec, mine) for q, rec, mine in rows}
    assert by_name["read bandwidth (B/s)"] == (pytest.approx(4.47e12, rel=0.01), 14e9)
    assert by_name["one RMSNorm in a CUDA graph (s)"][1] is None  # a CPU has no CUDA graphs
