"""This machine's roofs: the rates that predictions divide by, measured once and cached.

    copy_bandwidth     dst.copy_(src): bytes read + written per second
    read_bandwidth     the streaming-read roof, x.sum(): what memory can deliver
    gemv_bandwidth     the kernel roof: the toy's own decode op (one-row F.linear, same dtype and
                       weight layout) over cold matrices: what the matmul library achieves
    matmul_flops       dense matmul FLOP/s per precision
    op_cost            seconds per tiny op (CPU dispatch, GPU launch, or inside a CUDA graph)
    get_profile        all of them as a MachineProfile, cached on disk for every notebook

Rules: random inputs (never zeros); bandwidth buffers far larger than the caches (256 MiB on
CPU, in fast mode too, since a VM's L3 still speeds up 64-128 MiB; GiBs on a GPU).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Measurement
from torch.utils.benchmark.utils.common import TaskSpec

from .machine import (
    MiB,
    device_name,
    fast_mode,
    pick_device,
    random_tensor,
    release,
    supported_precisions,
    time_fn,
    time_interleaved,
    torch_dtype,
)


@dataclass(frozen=True)
class Roof:
    """One measured rate: ``value`` in SI units (B/s, FLOP/s or s), from the median time."""

    value: float
    median_s: float
    iqr_s: float
    repeats: int
    method: str

    @classmethod
    def of(cls, m: Measurement, per_call: float, method: str, divide: bool = True) -> Roof:
        value = per_call / m.median if divide else m.median / per_call
        return cls(value, m.median, m.iqr, len(m.times) * m.number_per_run, method)


def _buffer_bytes(device: torch.device, fast: bool) -> int:
    """Bytes of a bandwidth buffer: 256 MiB on CPU in both modes (a VM's L3 still speeds up
    64-128 MiB working sets), 2 GiB on a GPU (512 MiB fast; GPU L2 is at most ~100 MB)."""
    return 256 * MiB if device.type == "cpu" else (512 if fast else 2048) * MiB


def copy_bandwidth(device, fast: bool | None = None, nbytes: int | None = None) -> Roof:
    """``dst.copy_(src)`` over two fp32 buffers of ``nbytes`` / 2 each: (read + written) / time."""
    device, fast = pick_device(device), fast_mode(fast)
    n = (nbytes or _buffer_bytes(device, fast)) // 8
    src, dst = random_tensor((n,), torch.float32, device), random_tensor((n,), torch.float32, device, 1)
    m = time_fn(lambda: dst.copy_(src), device, 0.15 if fast else 0.5)
    return Roof.of(m, 8 * n, "dst.copy_(src), fp32; bytes read + written / median time")


def read_bandwidth(device, fast: bool | None = None, nbytes: int | None = None) -> Roof:
    """The streaming-read roof: ``x.sum()`` over one fp32 buffer of ``nbytes``."""
    device, fast = pick_device(device), fast_mode(fast)
    x = random_tensor(((nbytes or _buffer_bytes(device, fast)) // 4,), torch.float32, device)
    m = time_fn(lambda: x.sum(), device, 0.15 if fast else 0.5)
    return Roof.of(m, x.numel() * 4, "x.sum() over a fp32 buffer; bytes read / median time")


def gemv_bandwidth(device, precision: str = "fp32", cols: int = 1024, nbytes: int | None = None,
                   fast: bool | None = None) -> Roof:
    """The kernel roof: one-row ``F.linear(x, W)`` (the toy's decode op, its dtype and its
    (out, in) weight layout) over a chain of cold 8 MiB matrices ``cols`` wide, streaming
    ``nbytes`` in all (default: the bandwidth buffer): bytes of W / median time."""
    device, fast = pick_device(device), fast_mode(fast)
    dtype, nbytes = torch_dtype(precision), nbytes or _buffer_bytes(device, fast)
    elem = torch.empty((), dtype=dtype).element_size()
    rows = max(min(8 * MiB, nbytes) // (elem * cols), 1)
    mats = random_tensor((max(nbytes // (elem * rows * cols), 1), rows, cols), dtype, device).unbind(0)
    x = random_tensor((1, cols), dtype, device, seed=2)

    def chain():
        for w in mats:
            F.linear(x, w)

    with torch.inference_mode():
        m = time_fn(chain, device, 0.15 if fast else 0.5)
    return Roof.of(m, len(mats) * rows * cols * elem,
                   f"F.linear(x[1, {cols}], W[{rows}, {cols}]) over {len(mats)} cold matrices, {precision}")


def matmul_flops(device, precision: str = "fp32", n: int | None = None, fast: bool | None = None) -> Roof:
    """Dense ``torch.mm`` of two n x n matrices: 2 n^3 FLOP / median time."""
    device, fast = pick_device(device), fast_mode(fast)
    dtype = torch_dtype(precision)
    n = n or {"cpu": 1024 if fast else 2048, "cuda": 4096 if fast else 8192}.get(device.type, 2048)
    a, b = random_tensor((n, n), dtype, device), random_tensor((n, n), dtype, device, 1)
    c = torch.empty(n, n, dtype=dtype, device=device)
    m = time_fn(lambda: torch.mm(a, b, out=c), device, 0.15 if fast else 0.5)
    return Roof.of(m, 2.0 * n ** 3, f"torch.mm of two {n}x{n} {precision} matrices; 2 n^3 / median time")


def op_cost(device, graph: bool = False, n_ops: int = 200, fast: bool | None = None) -> Roof:
    """Seconds per tiny op (``x.add_(c)`` on 16 floats) when ``n_ops`` run back to back: the
    per-op dispatch cost on a CPU, the per-kernel launch cost on a GPU, or (``graph=True``) the
    per-kernel cost of the same ops replayed from one CUDA graph."""
    device, fast = pick_device(device), fast_mode(fast)
    x = random_tensor((16,), torch.float32, device)

    def ops():
        for _ in range(n_ops):
            x.add_(1e-3)

    fn = ops
    if graph:
        if device.type != "cuda":
            raise ValueError(f"graph=True needs a CUDA device, not {device.type!r}")
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            ops()
        torch.cuda.current_stream().wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            ops()
        fn = g.replay
    m = time_fn(fn, device, 0.1 if fast else 0.3)
    return Roof.of(m, n_ops, f"{n_ops} x x.add_(c) on 16 floats{' in one CUDA graph' if graph else ''}; "
                   f"median / {n_ops}", divide=False)


def op_cost_in_context(device="cpu", ops_per_gap: int = 6, fast: bool | None = None) -> Roof:
    """CPU: seconds per tiny op run *between cold weight streams*, as in a decode step, where
    each GEMV evicts the dispatcher's code and data from the caches. Chains of cold 8 MiB
    GEMVs with and without ``ops_per_gap`` tiny ops after each, timed interleaved; the median
    difference / number of tiny ops. (6 per gap is about what the toy runs between GEMVs.)"""
    device, fast = pick_device(device), fast_mode(fast)
    if device.type != "cpu":
        raise ValueError(f"op_cost_in_context measures CPU caches; device {device.type!r} is not a CPU")
    mats = random_tensor((32, 2048, 1024), torch.float32, device).unbind(0)
    x, tiny = random_tensor((1, 1024), torch.float32, device, 2), random_tensor((16,), torch.float32, device, 3)

    def run(ops: int):
        for w in mats:
            F.linear(x, w)
            for _ in range(ops):
                tiny.add_(1e-3)

    with torch.inference_mode():
        t = time_interleaved({"with": lambda: run(ops_per_gap), "without": lambda: run(0)},
                             device, rounds=10 if fast else 25)
    diffs = sorted(a - b for a, b in zip(t["with"].times, t["without"].times, strict=True))
    diff = Measurement(1, diffs, TaskSpec(stmt="difference", setup=""))
    n_ops = len(mats) * ops_per_gap
    return Roof(max(diff.median / n_ops, 1e-9), diff.median, diff.iqr, len(diffs),
                f"32 cold 8 MiB GEMVs each followed by {ops_per_gap} tiny ops, minus the GEMVs alone "
                f"(interleaved); median difference / {n_ops}")


def cache_bytes(device, gemv_roof: float | None = None, fast: bool | None = None) -> float:
    """Working sets below this size may run from cache and beat memory (flag them). CPU: the
    largest of 16, 64 MiB whose GEMV chain ran >= 1.2x the 256 MiB rate (16 MiB if none), as
    a VM often reports the host's whole L3 but gets only part of it. GPU: the L2 size."""
    device = pick_device(device)
    if device.type == "cuda":
        return float(getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0) or 50e6)
    if device.type != "cpu":
        return float(32 * MiB)
    dram = gemv_roof or gemv_bandwidth(device, fast=True).value
    fast_sizes = [mib for mib in (16, 64) if gemv_bandwidth(device, nbytes=mib * MiB, fast=True).value >= 1.2 * dram]
    return float(max(fast_sizes, default=16) * MiB)


# ----------------------------------------------------------------------------- the profile
SCHEMA = 3  # 3: kernel roofs per precision, op costs renamed


@dataclass
class MachineProfile:
    """This machine's roofs, in SI units (bytes/s, FLOP/s, seconds, bytes)."""

    device_type: str                  # "cpu", "cuda" or "mps"
    device_name: str                  # e.g. "NVIDIA H200", the CPU's model name
    torch_version: str
    date: str                         # ISO 8601, UTC
    threads: int                      # torch.get_num_threads() during the measurement
    fast: bool                        # measured in fast mode
    copy_bandwidth: float             # dst.copy_(src): (read + written) bytes / s
    read_bandwidth: float             # streaming read, x.sum(): bytes / s
    gemv_bandwidth: dict[str, float]  # precision -> the decode op's kernel roof, bytes / s
    matmul_flops: dict[str, float]    # precision -> dense matmul FLOP/s
    op_cost: float                    # s per tiny op, eager, back to back
    op_cost_in_context: float | None = None  # CPU: s per tiny op between cold weight streams
    op_cost_graph: float | None = None       # CUDA: s per kernel replayed from a CUDA graph
    cache_bytes: float = 0.0          # working sets below this may run from cache
    schema: int = SCHEMA
    details: dict = field(default_factory=dict)  # roof name -> Roof as a dict (how it was measured)

    @property
    def bandwidth(self) -> float:
        """The memory roof decode is compared with: the best read rate measured (stream or GEMV)."""
        return max(self.read_bandwidth, *self.gemv_bandwidth.values())

    @property
    def eager_op_cost(self) -> float:
        """Per-op cost of an eager decode step: on the CPU the in-context cost, else the tight loop."""
        return self.op_cost_in_context or self.op_cost

    def peak_flops(self, precision: str) -> float:
        """Measured matmul FLOP/s at ``precision``; ValueError if it was not measured."""
        if precision not in self.matmul_flops:
            raise ValueError(f"precision={precision!r} was not measured on {self.device_type}; "
                             f"measured: {', '.join(self.matmul_flops)}")
        return self.matmul_flops[precision]

    def summary(self) -> str:
        """A few lines for a notebook or the bench."""
        lines = [f"{self.device_name} ({self.device_type}, torch {self.torch_version}, {self.threads} thread(s)"
                 f"{', fast mode' if self.fast else ''}, measured {self.date})",
                 f"  copy bandwidth (read + write): {self.copy_bandwidth / 1e9:8.1f} GB/s",
                 f"  streaming read (x.sum()):      {self.read_bandwidth / 1e9:8.1f} GB/s"]
        lines += [f"  decode GEMV kernel, {p:>4}:      {r / 1e9:8.1f} GB/s" for p, r in self.gemv_bandwidth.items()]
        lines += [f"  matmul {p:>5}:                {r / 1e12:8.3f} TFLOP/s" for p, r in self.matmul_flops.items()]
        lines.append(f"  per-op cost (eager):           {self.op_cost * 1e6:8.2f} us (tight loop)")
        if self.op_cost_in_context is not None:
            lines.append(f"  per-op cost in context:        {self.op_cost_in_context * 1e6:8.2f} us "
                         "(between weight streams)")
        if self.op_cost_graph is not None:
            lines.append(f"  per-kernel in a CUDA graph:    {self.op_cost_graph * 1e6:8.2f} us")
        return "\n".join(lines + [f"  cache (smaller working sets may beat memory): {self.cache_bytes / MiB:.0f} MiB"])


def measure_profile(device=None, fast: bool | None = None, progress: bool = False) -> MachineProfile:
    """Run every roof on ``device`` and return the profile (nothing is cached)."""
    from tqdm.auto import tqdm

    device, fast = pick_device(device), fast_mode(fast)
    precisions = [p for p in supported_precisions(device) if not (device.type == "cpu" and p == "fp16")]
    steps = {"copy": lambda: copy_bandwidth(device, fast), "read": lambda: read_bandwidth(device, fast),
             **{f"gemv_{p}": (lambda p=p: gemv_bandwidth(device, p, fast=fast)) for p in precisions},
             **{f"matmul_{p}": (lambda p=p: matmul_flops(device, p, fast=fast)) for p in precisions},
             "op": lambda: op_cost(device, fast=fast)}
    if device.type == "cpu":
        steps["op_in_context"] = lambda: op_cost_in_context(device, fast=fast)
    if device.type == "cuda":
        steps["op_graph"] = lambda: op_cost(device, graph=True, fast=fast)
    roofs = {}
    for name, run in tqdm(steps.items(), desc="measuring this machine", disable=not progress, leave=False):
        roofs[name] = run()
        release(device)  # the benchmark's buffers are garbage now
    return MachineProfile(
        device_type=device.type, device_name=device_name(device), torch_version=torch.__version__,
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), threads=torch.get_num_threads(),
        fast=fast, copy_bandwidth=roofs["copy"].value, read_bandwidth=roofs["read"].value,
        gemv_bandwidth={p: roofs[f"gemv_{p}"].value for p in precisions},
        matmul_flops={p: roofs[f"matmul_{p}"].value for p in precisions}, op_cost=roofs["op"].value,
        op_cost_in_context=roofs["op_in_context"].value if "op_in_context" in roofs else None,
        op_cost_graph=roofs["op_graph"].value if "op_graph" in roofs else None,
        cache_bytes=cache_bytes(device, roofs["gemv_fp32"].value, fast),
        details={name: asdict(r) for name, r in roofs.items()})


def profile_path(device=None) -> Path:
    """``$COURSE_LIB_CACHE_DIR`` or ``~/.cache/course_lib``, one file per device type."""
    folder = os.environ.get("COURSE_LIB_CACHE_DIR") or Path.home() / ".cache" / "course_lib"
    return Path(folder).expanduser() / f"profile-{pick_device(device).type}.json"


def load_profile(path) -> MachineProfile | None:
    """The profile stored at ``path``; None if it is missing, unreadable, malformed or old."""
    try:
        data = json.loads(Path(path).read_text())
        profile = MachineProfile(**{f.name: data[f.name] for f in fields(MachineProfile) if f.name in data})
        rates = [profile.copy_bandwidth, profile.read_bandwidth, profile.op_cost,
                 *profile.gemv_bandwidth.values(), *profile.matmul_flops.values()]
        ok = profile.schema == SCHEMA and profile.matmul_flops and all(float(r) > 0 and math.isfinite(r) for r in rates)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return profile if ok else None


def get_profile(device=None, remeasure: bool = False, fast: bool | None = None,
                progress: bool = False) -> MachineProfile:
    """This machine's profile: from the cache if it still describes this device as it runs now
    (same name, torch version and threads; a full-mode request replaces a fast-mode profile),
    else measured and cached. A missing or corrupt cache file means "measure again"."""
    device, fast = pick_device(device), fast_mode(fast)
    path = profile_path(device)
    cached = None if remeasure else load_profile(path)
    if cached and (cached.device_name, cached.torch_version, cached.threads) == (
            device_name(device), torch.__version__, torch.get_num_threads()) and (fast or not cached.fast):
        return cached
    profile = measure_profile(device, fast, progress)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(profile), indent=2))
        os.replace(tmp, path)  # atomic: a reader never sees half a file
    except OSError as err:
        warnings.warn(f"could not cache the machine profile at {path}: {err}", stacklevel=2)
    return profile


def compare_with_recorded(ref: dict, mine: MachineProfile | None = None) -> list[tuple[str, float, float | None]]:
    """(quantity, recorded GPU, this machine) rows of a recorded run's roofs beside this
    machine's, in SI units (recorded runs of version 1 name two of them differently)."""
    rec = ref["profile"]
    rows = [("copy bandwidth (B/s)", rec.get("copy_bandwidth"), mine and mine.copy_bandwidth),
            ("read bandwidth (B/s)", rec.get("read_bandwidth"), mine and mine.read_bandwidth),
            ("per-op cost, eager (s)", rec.get("op_cost", rec.get("launch_overhead")), mine and mine.op_cost)]
    rows += [(f"matmul {p} (FLOP/s)", rate, mine and mine.matmul_flops.get(p)) for p, rate in rec["matmul_flops"].items()]
    graph = rec.get("op_cost_graph", rec.get("launch_overhead_graph"))
    return rows + ([("per-kernel in a CUDA graph (s)", graph, mine and mine.op_cost_graph)] if graph else [])
