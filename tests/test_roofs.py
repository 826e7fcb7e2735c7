"""roofs: the microbenchmarks on small buffers (sane values, never thresholds) and the profile cache."""

import json
import math

import pytest
import torch
from helpers import make_profile

from course_lib import roofs

MiB = 1 << 20


def sane(roof, per_call):
    assert math.isfinite(roof.value) and roof.value > 0 and roof.repeats >= 1 and roof.method
    assert roof.value == pytest.approx(per_call / roof.median_s)


def test_bandwidth_roofs_count_bytes_as_documented():
    sane(roofs.copy_bandwidth("cpu", fast=True, nbytes=2 * MiB), 2 * MiB)  # read + written
    sane(roofs.read_bandwidth("cpu", fast=True, nbytes=MiB), MiB)
    # the kernel roof cycles the given shapes until it holds nbytes: 3 MiB + 1 MiB, twice = 8 MiB
    gemv = roofs.gemv_bandwidth("cpu", "fp32", shapes=[(768, 1024), (256, 1024)], nbytes=8 * MiB, fast=True)
    sane(gemv, 8 * MiB)
    assert "over 4 cold matrices" in gemv.method


def test_matmul_roof():
    sane(roofs.matmul_flops("cpu", "fp32", n=64, fast=True), 2 * 64 ** 3)
    with pytest.raises(ValueError, match="cannot run"):
        roofs.matmul_flops("cpu", "int4", n=8)


def test_small_op_costs_cover_every_kind_a_step_counts():
    from course_lib import measure, model

    tiny = model.build_model("tiny")
    for graph in (False, True):
        costs = roofs.small_op_costs("cpu", "fp32", tiny.config, 1, 9, graph, torch.get_num_threads(), True)
        assert set(measure.count_ops(tiny, 1, 8, graph)) <= set(costs)  # the budget can price every call
        assert all(c >= 0 and math.isfinite(c) for c in costs.values())
    assert roofs.kernel_roof("cpu", "fp32", tiny.config, torch.get_num_threads(), True) > 0
    assert roofs.best_layout("cpu", "fp32", tiny.config, torch.get_num_threads(), True) in ("out_in", "in_out")
    # an in_out chain stores each matrix transposed: the same bytes, the method says x @ W
    flipped = roofs.gemv_bandwidth("cpu", "fp32", shapes=[(768, 1024)], nbytes=6 * MiB, fast=True, layout="in_out")
    sane(flipped, 6 * MiB)


def test_a_real_fast_profile_is_complete():
    p = roofs.measure_profile("cpu", fast=True)
    assert p.fast and p.device_type == "cpu" and p.threads == torch.get_num_threads()
    assert set(p.gemv_bandwidth) >= set(p.matmul_flops) >= {"fp32"}
    assert p.op_cost >= 0 and p.op_cost_graph is None and p.bandwidth == p.read_bandwidth
    assert p.kernel_efficiency("fp32") == p.gemv_bandwidth["fp32"] / p.read_bandwidth
    assert p.details["read"]["value"] == p.read_bandwidth
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
    from course_lib import hardware

    rows = roofs.compare_with_recorded(hardware.load_reference(), fake_profile)
    by_name = {q: (rec, mine) for q, rec, mine in rows}
    assert by_name["read bandwidth (B/s)"] == (pytest.approx(4.39e12, rel=0.01), 14e9)
    assert by_name["per-kernel in a CUDA graph (s)"][1] is None  # a CPU has no CUDA graphs
