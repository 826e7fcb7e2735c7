"""The machine-profile cache: round trip, corrupt files, remeasure, invalidation."""

import json

import pytest
import torch

from course_lib import devices, microbench
from course_lib import profile as prof


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_LIB_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def fake_profile(fast=False, **over) -> prof.MachineProfile:
    values = {"device_type": "cpu", "device_name": devices.device_name("cpu"), "torch_version": torch.__version__,
              "date": "2026-01-01T00:00:00+00:00", "dtypes": ["fp32", "bf16"], "copy_bandwidth": 12e9,
              "read_bandwidth": 14e9, "matmul_flops": {"fp32": 1e11, "bf16": 5e10}, "launch_overhead": 5e-6,
              "launch_overhead_graph": None, "cache_bytes": 32 * 2**20, "cpu_threads": torch.get_num_threads(),
              "fast": fast}
    values.update(over)
    return prof.MachineProfile(**values)


@pytest.fixture
def measured(monkeypatch):
    """Replace the (slow) measurement by a counter returning a fixed profile."""
    calls = []

    def measure(device=None, fast=None, progress=False):
        calls.append(fast)
        return fake_profile(fast=bool(fast))

    monkeypatch.setattr(prof, "measure_profile", measure)
    return calls


def test_cache_location_follows_the_environment(cache_dir):
    assert prof.cache_dir() == cache_dir
    assert prof.profile_path("cpu") == cache_dir / "profile-cpu.json"


def test_round_trip_and_reuse(measured, cache_dir):
    first = prof.get_profile("cpu", fast=False)
    assert measured == [False] and (cache_dir / "profile-cpu.json").exists()
    second = prof.get_profile("cpu", fast=False)
    assert measured == [False]  # read from the cache, not measured again
    assert second == first and second.bandwidth == 14e9 and second.peak_flops("bf16") == 5e10
    with pytest.raises(ValueError, match="fp16"):
        second.peak_flops("fp16")
    assert "GB/s" in second.summary()


def test_remeasure_flag(measured):
    prof.get_profile("cpu")
    prof.get_profile("cpu", remeasure=True)
    assert len(measured) == 2


@pytest.mark.parametrize("content", ["{not json", "[]", "", json.dumps({"device_type": "cpu"}),
                                     "null", json.dumps({**fake_profile().as_dict(), "read_bandwidth": -1}),
                                     json.dumps({**fake_profile().as_dict(), "matmul_flops": {"fp32": "fast"}})])
def test_corrupt_cache_is_remeasured_not_an_error(measured, cache_dir, content):
    cache_dir.mkdir(parents=True)
    (cache_dir / "profile-cpu.json").write_text(content)
    p = prof.get_profile("cpu")
    assert measured == [False] and p.read_bandwidth == 14e9
    assert prof.load_profile(cache_dir / "profile-cpu.json") == p  # and the file is repaired


def test_stale_profiles_are_remeasured(measured, cache_dir):
    path = cache_dir / "profile-cpu.json"
    prof.save_profile(fake_profile(torch_version="0.0.1"), path)
    prof.get_profile("cpu")
    prof.save_profile(fake_profile(cpu_threads=torch.get_num_threads() + 1), path)
    prof.get_profile("cpu")
    prof.save_profile(fake_profile(device_name="another CPU"), path)
    prof.get_profile("cpu")
    assert len(measured) == 3


def test_fast_profile_serves_fast_requests_only(measured, cache_dir):
    prof.save_profile(fake_profile(fast=True), cache_dir / "profile-cpu.json")
    assert prof.get_profile("cpu", fast=True).fast and measured == []
    assert not prof.get_profile("cpu", fast=False).fast and measured == [False]
    assert not prof.get_profile("cpu", fast=True).fast and measured == [False]  # full serves fast too


def test_unwritable_cache_warns_and_still_returns(measured, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("COURSE_LIB_CACHE_DIR", str(blocker / "sub"))
    with pytest.warns(UserWarning, match="could not cache"):
        p = prof.get_profile("cpu")
    assert p.read_bandwidth == 14e9


def test_measure_profile_for_real_with_small_buffers(monkeypatch):
    monkeypatch.setattr(microbench, "_default_buffer_bytes", lambda device, fast: 1 << 20)
    monkeypatch.setattr(microbench, "cache_estimate", lambda device, fast=None, dram_bandwidth=None: microbench.Microbench(
        "cache_bytes", 32.0 * 2**20, "B", "stub", "cpu", "fp32", {}, 0, 0.0, 0.0))
    real_matmul = microbench.matmul_flops
    monkeypatch.setattr(microbench, "matmul_flops", lambda d, p, fast=None: real_matmul(d, p, n=128, fast=True))
    p = prof.measure_profile("cpu", fast=True)
    assert prof._well_formed(p) and p.fast and p.device_type == "cpu"
    assert p.read_bandwidth == max(p.details["read"]["value"], p.details["gemv"]["value"])
    assert set(p.matmul_flops) == set(p.dtypes) >= {"fp32"}
    assert p.launch_overhead_graph is None and p.cpu_threads == torch.get_num_threads()
    assert p.launch_overhead_in_context == p.details["launch_context"]["value"] == p.op_overhead


def test_in_context_overhead_is_what_eager_decode_is_charged():
    p = fake_profile(launch_overhead_in_context=2e-5)
    assert p.op_overhead == 2e-5 and prof._well_formed(p)
    assert fake_profile().op_overhead == 5e-6  # not measured (GPU, old profile): the tight loop
    assert not prof._well_formed(fake_profile(launch_overhead_in_context=-1.0))
    assert "in context" in p.summary()
