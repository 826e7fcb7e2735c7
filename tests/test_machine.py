"""machine: device choice, precisions, threads, memory, and the one timing harness."""

import pytest
import torch

from course_lib import machine


def test_pick_device_defaults_and_overrides(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    assert machine.pick_device().type == machine.available_kinds()[0]
    assert machine.pick_device(" CPU ").type == "cpu" and machine.pick_device(torch.device("cpu", 0)) == torch.device("cpu")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert machine.pick_device().type == "cpu"
    with pytest.raises(ValueError, match="device='tpu' is not a device kind"):
        machine.pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available on this machine"):
            machine.pick_device("cuda")


def test_precisions_and_dtypes():
    assert machine.torch_dtype(" BF16 ") is torch.bfloat16
    assert "fp32" in machine.supported_precisions("cpu")
    assert machine.check_precision("cpu", "FP32") == "fp32"
    with pytest.raises(ValueError, match="cannot run it"):
        machine.torch_dtype("int4")
    with pytest.raises(ValueError, match="not a known precision"):
        machine.check_precision("cpu", "fp5")


def test_memory_and_name(monkeypatch):
    assert 0 < machine.free_memory("cpu") <= machine.total_memory("cpu")
    assert machine.device_name("cpu")
    # in a 2 GB container (Binder) with 1.5 GB used: the calculator's "this machine" holds 2 GB, 0.5 GB are free
    monkeypatch.setattr(machine, "container_limit", lambda: (2_000_000_000, 1_500_000_000))
    assert machine.total_memory("cpu") == 2_000_000_000 and machine.free_memory("cpu") <= 500_000_000


def test_use_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("COURSE_THREADS", "2")
        assert machine.use_threads() == 2 and torch.get_num_threads() == 2
        assert machine.use_threads(1) == 1 and torch.get_num_threads() == 1
        for bad in (0, -1, "two", 1.5):
            with pytest.raises(ValueError, match="threads"):
                machine.use_threads(bad)
    finally:
        torch.set_num_threads(before)


def test_fast_mode_is_one_environment_variable(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "yes")
    assert machine.fast_mode() is True and machine.fast_mode(False) is False
    monkeypatch.setenv("COURSE_FAST", "0")
    assert machine.fast_mode() is False and machine.fast_mode(True) is True


def test_time_fn_repeats_count_calls_and_return_a_measurement():
    calls = []
    m = machine.time_fn(lambda: calls.append(1), "cpu", warmup=2, repeats=7)
    assert len(calls) == 9 and len(m.times) == 7  # 2 warm-up + 7 timed, one call per sample
    assert m.median > 0 and m.iqr >= 0
    with pytest.raises(ValueError, match="repeats"):
        machine.time_fn(lambda: None, "cpu", repeats=0)
    auto = machine.time_fn(lambda: sum(range(100)), "cpu", min_run_time=0.01)
    assert auto.median > 0 and auto.number_per_run >= 1


def test_time_interleaved_alternates_the_order():
    order = []
    m = machine.time_interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")},
                                 rounds=3, warmup=0)
    assert order == ["a", "b", "b", "a", "a", "b"]  # each round reversed: drift hits both alike
    assert set(m) == {"a", "b"} and len(m["a"].times) == 3


def test_median_and_iqr_are_torchs_by_hand(monkeypatch):
    # four calls taking 1, 2, 3, 4 ticks: median 2.5, IQR (linear quantiles) 3.25 - 1.75 = 1.5
    ticks = iter([0, 1, 1, 3, 3, 6, 6, 10])
    monkeypatch.setattr(machine.time, "perf_counter", lambda: next(ticks))
    m = machine.time_interleaved({"f": lambda: None}, rounds=4, warmup=0)["f"]
    assert m.times == [1, 2, 3, 4] and m.median == 2.5 and m.iqr == pytest.approx(1.5)


def test_random_tensor_has_no_zeros_and_is_seeded():
    x = machine.random_tensor((3, 1 << 20), torch.float32, "cpu")
    assert x.shape == (3, 1 << 20) and (x != 0).float().mean() > 0.99 and x.std() > 0.5
    assert not torch.equal(x[0], x[1])  # tiled blocks are shifted, not copies
    assert torch.equal(machine.random_tensor((100,), torch.bfloat16, "cpu", seed=3),
                       machine.random_tensor((100,), torch.bfloat16, "cpu", seed=3))
