"""precision names and device selection."""

import pytest
import torch

from course_lib import devices, precision


def test_normalize_and_dtypes():
    assert precision.normalize(" BF16 ") == "bf16"
    assert precision.torch_dtype("fp16") is torch.float16
    with pytest.raises(ValueError, match="cannot run"):
        precision.torch_dtype("int4")
    with pytest.raises(ValueError, match="fp32, fp16"):
        precision.normalize("half")


def test_pick_device_defaults_and_overrides(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    assert devices.pick_device().type == devices.available_kinds()[0]
    assert devices.pick_device("CPU").type == "cpu"
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert devices.pick_device().type == "cpu"
    with pytest.raises(ValueError, match="device='tpu'"):
        devices.pick_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_unavailable_device_is_a_clear_error():
    with pytest.raises(ValueError, match="not available"):
        devices.pick_device("cuda")


def test_memory_and_precisions_on_cpu():
    cpu = torch.device("cpu")
    assert 0 < devices.free_memory(cpu) <= devices.total_memory(cpu)
    assert "fp32" in devices.supported_precisions(cpu)
    assert devices.check_precision_supported(cpu, "FP32") == "fp32"
    with pytest.raises(ValueError):
        devices.check_precision_supported(cpu, "int8")
    assert devices.device_name(cpu)
    devices.synchronize(cpu)


def test_use_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("COURSE_THREADS", "2")
        assert devices.use_threads() == 2 and torch.get_num_threads() == 2
        assert devices.use_threads(1) == 1
        with pytest.raises(ValueError, match="threads"):
            devices.use_threads(0)
        monkeypatch.setenv("COURSE_THREADS", "many")
        with pytest.raises(ValueError, match="threads"):
            devices.use_threads()
    finally:
        torch.set_num_threads(before)


def test_peak_rss_of_this_process():
    import sys

    peak = devices.peak_rss()
    if sys.platform.startswith("linux"):
        assert peak is not None and peak > 10e6  # torch alone is far more than 10 MB
    assert devices.peak_rss(2**22 + 12345) is None  # no such process
