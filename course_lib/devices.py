"""Which device the course runs on, what it supports, and how much memory is free.

Order of preference: a CUDA GPU, then Apple's MPS, then the CPU; any of them can be forced with
an override ("cpu", "cuda", "mps") or the environment variable COURSE_DEVICE.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from . import precision as _precision

KINDS = ("cpu", "cuda", "mps")


def available_kinds() -> list[str]:
    """Device kinds torch can use on this machine, best first."""
    kinds = []
    if torch.cuda.is_available():
        kinds.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        kinds.append("mps")
    kinds.append("cpu")
    return kinds


def pick_device(override: str | torch.device | None = None) -> torch.device:
    """The device to use: `override`, else $COURSE_DEVICE, else the best available."""
    if isinstance(override, torch.device):
        override = override.type
    choice = override or os.environ.get("COURSE_DEVICE") or None
    if choice is None:
        return torch.device(available_kinds()[0])
    kind = str(choice).strip().lower()
    if kind not in KINDS:
        raise ValueError(f"device={choice!r} is not a device kind; use one of {', '.join(KINDS)}")
    if kind not in available_kinds():
        raise ValueError(
            f"device={choice!r} is not available on this machine; available: "
            f"{', '.join(available_kinds())}"
        )
    return torch.device(kind)


def use_threads(n: int | None = None) -> int:
    """Set torch's CPU threads for measurements: ``n``, else $COURSE_THREADS, else 1.

    One thread is the course's default: on a small shared machine a second thread adds little
    bandwidth, and when another process holds a core every parallel op waits for it (decode can
    become 10x slower). Returns the number set.
    """
    if n is None:
        n = os.environ.get("COURSE_THREADS") or 1
    try:
        n = int(n)
    except (TypeError, ValueError):
        raise ValueError(f"threads={n!r} must be a whole number >= 1") from None
    if n < 1:
        raise ValueError(f"threads={n!r} must be a whole number >= 1")
    torch.set_num_threads(n)
    return n


def device_name(device: torch.device | str) -> str:
    """A human-readable name: the GPU's model, or the CPU's model name where Linux tells it."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple silicon GPU (MPS)"
    return _cpu_model_name()


def _cpu_model_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or platform.machine() or "CPU"


def _cgroup_limit() -> int | None:
    """The container's memory limit minus what it already uses (Binder, Docker), if any."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 1 << 60:
            return max(int(limit) - usage, 0)
    return None


def free_memory(device: torch.device | str) -> int:
    """Bytes that can still be allocated on `device` (RAM, or the GPU's own memory)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    import psutil

    available = int(psutil.virtual_memory().available)
    cgroup = _cgroup_limit()
    return min(available, cgroup) if cgroup is not None else available


def total_memory(device: torch.device | str) -> int:
    """Total bytes of the device's memory (RAM on CPU and MPS, which share it)."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    import psutil

    return int(psutil.virtual_memory().total)


def peak_rss(pid: int | None = None) -> float | None:
    """Peak resident memory (bytes) of process ``pid`` (default: this one), from Linux's VmHWM;
    None where the system does not report it (macOS, Windows) or the process is gone."""
    try:
        status = Path(f"/proc/{pid or os.getpid()}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1]) * 1024
    return None


def synchronize(device: torch.device | str) -> None:
    """Wait until all queued work on `device` has finished (a no-op on the CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def supported_precisions(device: torch.device | str) -> list[str]:
    """Runnable precisions on this device: fp32 always; fp16/bf16 where matmuls work."""
    device = torch.device(device)
    names = ["fp32"]
    for name in ("fp16", "bf16"):
        try:
            dtype = _precision.torch_dtype(name)
            a = torch.ones(4, 4, dtype=dtype, device=device)
            (a @ a).sum().item()
        except (RuntimeError, TypeError):
            continue
        if device.type == "cuda" and name == "bf16" and not torch.cuda.is_bf16_supported():
            continue
        names.append(name)
    return names


def check_precision_supported(device: torch.device | str, precision: str) -> str:
    """Return the canonical precision name, or raise ValueError if `device` cannot run it."""
    name = _precision.normalize(precision)
    _precision.torch_dtype(name)  # raises for storage-only formats such as int4
    supported = supported_precisions(device)
    if name not in supported:
        raise ValueError(
            f"precision={precision!r} does not run on {torch.device(device).type}; "
            f"supported here: {', '.join(supported)}"
        )
    return name
