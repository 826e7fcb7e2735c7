"""The machine profile: this machine's measured bandwidth, matmul rates and launch overhead,
measured once and cached on disk so that every notebook reuses the same numbers.

``get_profile()`` returns the cached profile when it still describes this machine (same device
name, torch version, torch thread count, schema; a full-mode request does not accept a
fast-mode profile) and measures a new one otherwise, or when asked (``remeasure=True``). A
missing, unreadable or corrupt cache file means "measure again", never an error.

Cache location: ``$COURSE_LIB_CACHE_DIR`` or ``~/.cache/course_lib``, one file per device type:
``profile-cpu.json``, ``profile-cuda.json``, ``profile-mps.json``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from . import devices as _devices
from . import microbench as _mb

SCHEMA = 2  # 2: launch_overhead_in_context


@dataclass
class MachineProfile:
    """Measured capabilities of one device. SI units: bytes/s, FLOP/s, seconds, bytes."""

    device_type: str                  # "cpu", "cuda" or "mps"
    device_name: str                  # e.g. "NVIDIA H100 80GB HBM3", the CPU model name
    torch_version: str
    date: str                         # ISO 8601, UTC, when it was measured
    dtypes: list[str]                 # precisions whose matmul rate was measured
    copy_bandwidth: float             # dst.copy_(src): (read + written) bytes / s
    read_bandwidth: float             # best read-dominated rate: max(x.sum(), W @ x) bytes / s
    matmul_flops: dict[str, float]    # precision -> achieved dense matmul FLOP/s
    launch_overhead: float            # s per tiny op, eager (CPU: per-op dispatch cost)
    launch_overhead_graph: float | None  # s per kernel inside a CUDA graph (None off CUDA)
    cache_bytes: float                # working sets below this may run from cache
    cpu_threads: int                  # torch.get_num_threads() during the measurement
    fast: bool                        # measured in fast mode (smaller buffers, shorter runs)
    # s per tiny op run between cold weight streams, as in a decode step (CPU only; None elsewhere)
    launch_overhead_in_context: float | None = None
    schema: int = SCHEMA
    details: dict = field(default_factory=dict)  # benchmark name -> Microbench.as_dict()

    @property
    def bandwidth(self) -> float:
        """The bandwidth decode is compared with (MBU): the achievable read bandwidth."""
        return self.read_bandwidth

    @property
    def op_overhead(self) -> float:
        """The per-op cost the eager launch-aware model charges: on the CPU the in-context cost
        (tiny ops between cold weight streams, as in a decode step), elsewhere the tight-loop
        ``launch_overhead`` (a GPU's weights never pass through the CPU's caches)."""
        return self.launch_overhead_in_context or self.launch_overhead

    def peak_flops(self, precision: str) -> float:
        """Measured matmul FLOP/s at ``precision``; ValueError if it was not measured."""
        if precision not in self.matmul_flops:
            raise ValueError(f"precision={precision!r} was not measured on {self.device_type}; "
                             f"measured: {', '.join(self.matmul_flops)}")
        return self.matmul_flops[precision]

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """A few lines for a notebook or the bench."""
        lines = [(f"{self.device_name} ({self.device_type}, torch {self.torch_version}, "
                  f"{self.cpu_threads} thread(s){', fast mode' if self.fast else ''}, measured {self.date})"),
                 f"  copy bandwidth (read + write): {self.copy_bandwidth / 1e9:8.1f} GB/s",
                 f"  read bandwidth:                {self.read_bandwidth / 1e9:8.1f} GB/s"]
        for name, rate in self.matmul_flops.items():
            lines.append(f"  matmul {name:>5}:                {rate / 1e12:8.3f} TFLOP/s")
        lines.append(f"  per-op overhead (eager):       {self.launch_overhead * 1e6:8.2f} us (tight loop)")
        if self.launch_overhead_in_context is not None:
            lines.append(f"  per-op overhead in context:    {self.launch_overhead_in_context * 1e6:8.2f} us "
                         "(between cold weight streams, as in decode)")
        if self.launch_overhead_graph is not None:
            lines.append(f"  per-kernel in a CUDA graph:    {self.launch_overhead_graph * 1e6:8.2f} us")
        lines.append(f"  cache (working sets below may beat memory): {self.cache_bytes / 2**20:.0f} MiB")
        return "\n".join(lines)


def cache_dir() -> Path:
    """``$COURSE_LIB_CACHE_DIR`` or ``~/.cache/course_lib``."""
    env = os.environ.get("COURSE_LIB_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "course_lib"


def profile_path(device=None) -> Path:
    device = _mb.resolve_device(device)
    return cache_dir() / f"profile-{device.type}.json"


def measure_profile(device=None, fast: bool | None = None, progress: bool = False) -> MachineProfile:
    """Run every microbenchmark on ``device`` and return the profile (nothing is cached)."""
    device, fast = _mb.resolve_device(device), _mb.fast_mode(fast)
    results = {}
    steps = [("copy", lambda: _mb.copy_bandwidth(device, fast=fast)),
             ("read", lambda: _mb.read_bandwidth(device, fast=fast)),
             ("gemv", lambda: _mb.gemv_bandwidth(device, fast=fast)),
             ("launch", lambda: _mb.launch_overhead(device, fast=fast))]
    if device.type == "cpu":
        steps.append(("launch_context", lambda: _mb.launch_overhead_in_context(device, fast=fast)))
    if device.type == "cuda":
        steps.append(("launch_graph", lambda: _mb.launch_overhead(device, fast=fast, graph=True)))
    precisions = _mb.matmul_precisions(device)
    steps += [(f"matmul_{p}", lambda p=p: _mb.matmul_flops(device, p, fast=fast)) for p in precisions]
    def cache():  # the scan runs on one thread; reuse the GEMV rate as its reference if that did too
        one_thread = device.type == "cpu" and torch.get_num_threads() == 1
        return _mb.cache_estimate(device, fast=fast, dram_bandwidth=results["gemv"].value if one_thread else None)

    steps.append(("cache", cache))
    iterator = steps
    if progress:
        from tqdm.auto import tqdm
        iterator = tqdm(steps, desc="measuring this machine", leave=False)
    for name, run in iterator:
        results[name] = run()
        _mb.free(device)  # the benchmark's buffers are garbage now: give them back
    graph = results.get("launch_graph")
    return MachineProfile(
        device_type=device.type, device_name=_devices.device_name(device), torch_version=torch.__version__,
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), dtypes=precisions,
        copy_bandwidth=results["copy"].value,
        read_bandwidth=max(results["read"].value, results["gemv"].value),
        matmul_flops={p: results[f"matmul_{p}"].value for p in precisions},
        launch_overhead=results["launch"].value,
        launch_overhead_graph=graph.value if graph else None,
        launch_overhead_in_context=results["launch_context"].value if "launch_context" in results else None,
        cache_bytes=results["cache"].value, cpu_threads=torch.get_num_threads(), fast=fast,
        details={name: r.as_dict() for name, r in results.items()},
    )


def load_profile(path) -> MachineProfile | None:
    """The profile stored at ``path``, or None if it is missing, unreadable or malformed."""
    try:
        data = json.loads(Path(path).read_text())
        profile = MachineProfile(**{f.name: data[f.name] for f in fields(MachineProfile) if f.name in data})
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return profile if _well_formed(profile) else None


def _well_formed(p: MachineProfile) -> bool:
    def rate(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0

    return (p.schema == SCHEMA and all(isinstance(s, str) for s in (p.device_type, p.device_name, p.torch_version))
            and rate(p.copy_bandwidth) and rate(p.read_bandwidth) and rate(p.launch_overhead)
            and rate(p.cache_bytes) and isinstance(p.matmul_flops, dict) and p.matmul_flops
            and all(rate(v) for v in p.matmul_flops.values())
            and (p.launch_overhead_graph is None or rate(p.launch_overhead_graph))
            and (p.launch_overhead_in_context is None or rate(p.launch_overhead_in_context))
            and isinstance(p.cpu_threads, int) and isinstance(p.fast, bool))


def save_profile(profile: MachineProfile, path) -> bool:
    """Write the profile atomically; False (with a warning) if the location is not writable."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
            json.dump(profile.as_dict(), f, indent=2)
        os.replace(f.name, path)
    except OSError as err:
        warnings.warn(f"could not cache the machine profile at {path}: {err}", stacklevel=2)
        return False
    return True


def is_current(profile: MachineProfile, device, fast: bool) -> bool:
    """Does a cached profile still describe ``device`` as it runs now?"""
    device = _mb.resolve_device(device)
    return (profile.device_type == device.type
            and profile.device_name == _devices.device_name(device)
            and profile.torch_version == torch.__version__
            and profile.cpu_threads == torch.get_num_threads()
            and (fast or not profile.fast))  # a full-mode request replaces a fast-mode profile


def get_profile(device=None, remeasure: bool = False, fast: bool | None = None,
                progress: bool = False) -> MachineProfile:
    """This machine's profile: from the cache if it is current, else measured and cached.

    ``fast=None`` reads COURSE_FAST. ``remeasure=True`` always measures (and updates the cache).
    """
    device, fast = _mb.resolve_device(device), _mb.fast_mode(fast)
    path = profile_path(device)
    if not remeasure:
        cached = load_profile(path)
        if cached is not None and is_current(cached, device, fast):
            return cached
    profile = measure_profile(device, fast=fast, progress=progress)
    save_profile(profile, path)
    return profile
