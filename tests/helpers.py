"""Helpers for the tests: a fake machine profile with round numbers, and peak memory of a process."""

import os
from pathlib import Path

import torch

from course_lib import machine
from course_lib.roofs import MachineProfile


def make_profile(**over) -> MachineProfile:
    """A profile of this CPU with round numbers: 14 GB/s read, 10 GB/s fp32 GEMV, 100 GFLOP/s
    fp32 matmul, 8 us per small op, 32 MiB of cache."""
    values = dict(device_type="cpu", device_name=machine.device_name("cpu"), torch_version=torch.__version__,
                  date="2026-01-01T00:00:00+00:00", threads=torch.get_num_threads(), fast=True,
                  copy_bandwidth=12e9, read_bandwidth=14e9, gemv_bandwidth={"fp32": 10e9, "bf16": 6e9},
                  matmul_flops={"fp32": 1e11, "bf16": 5e10}, op_cost=8e-6,
                  cache_bytes=32 * 2**20)
    return MachineProfile(**{**values, **over})


def peak_rss(pid: int | None = None) -> float | None:
    """Peak resident memory (bytes) of process ``pid`` (default: this one), from Linux's VmHWM;
    None where the system does not report it (macOS, Windows) or the process is gone."""
    try:
        status = Path(f"/proc/{pid or os.getpid()}/status").read_text()
    except OSError:
        return None
    return next((float(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM:")), None)


# small-op costs of the fake machine: 2 us per call of every kind, 20 us per attention call
FAKE_COSTS = {k: 2e-6 for k in ("rms_norm", "gelu", "add_", "__setitem__", "index_copy_", "view", "other", "module")}
FAKE_COSTS["attention"] = 20e-6
FAKE_COSTS["linear"] = 0.0  # as on a CPU: the kernel roof's chain already paid for each matrix call
