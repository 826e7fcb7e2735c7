"""Helpers for the tests: a fake machine profile with round numbers, and the memory of a process
and of the processes it started."""

import os
import sys
import threading
from pathlib import Path

import psutil
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


def tree_memory(pid: int) -> float | None:
    """Bytes held now by process ``pid`` and every process it started (children, grandchildren).
    On Linux each process counts its proportional set size (PSS: a page shared by n processes counts
    1/n to each), so libraries that torch's worker processes share with the kernel count once, as
    they do against a container's memory limit; elsewhere, its resident set size. None if ``pid``
    is gone."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0.0
    for process in tree:
        try:
            total += process.memory_full_info().pss if sys.platform == "linux" else process.memory_info().rss
        except psutil.Error:  # it ended between the listing and the reading
            pass
    return total


class TreeMemoryPeak:
    """Samples ``tree_memory(pid)`` in a background thread until ``stop()``, which returns the
    largest sum seen (None if none was read). No OS reports the peak of a process tree, as VmHWM
    does for one process, so the sum is sampled: a spike shorter than ``interval`` can be missed.
    Reading a process's PSS costs ~15 ms for a torch process, so 4 samples a second cost a few
    percent of a core, beside a kernel that measures this machine."""

    def __init__(self, pid: int, interval: float = 0.25):
        self.pid, self.interval, self.peak = pid, interval, None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True, name=f"tree-memory-{pid}")
        self._thread.start()

    def _sample(self):
        while True:
            now = tree_memory(self.pid)
            if now is not None:
                self.peak = max(self.peak or 0.0, now)
            if self._stopping.wait(self.interval):
                return

    def stop(self) -> float | None:
        self._stopping.set()
        self._thread.join()
        return self.peak


# small-op costs of the fake machine: 2 us per call of every kind, 20 us per attention call
FAKE_COSTS = {k: 2e-6 for k in ("rms_norm", "gelu", "add_", "__setitem__", "index_copy_", "view", "other", "module")}
FAKE_COSTS["attention"] = 20e-6
FAKE_COSTS["linear"] = 0.0  # as on a CPU: the kernel roof's chain already paid for each matrix call
