"""This machine's roofs: the rates that predictions divide by, measured once and cached.

    copy_bandwidth     dst.copy_(src): bytes read + written per second
    read_bandwidth     the streaming-read roof, x.sum(): what memory can deliver
    gemv_bandwidth     the kernel roof: the toy's decode op (a one-row matrix product) over cold
                       matrices: what the matmul library achieves at batch 1
    matmul_flops       dense matmul FLOP/s per precision
    small_op_costs     seconds per call of each kind of small op a decode step makes (norm, GELU,
                       add, cache write, attention...), on a model's own shapes
    get_profile        the machine-wide roofs as a MachineProfile, cached on disk for every notebook

Rules: random inputs (never zeros); bandwidth buffers far larger than the caches (256 MiB on a
CPU, in fast mode too, since a VM's L3 still speeds up 64-128 MiB; GiBs on a GPU).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import statistics
import warnings
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import machine
from .machine import MiB
from .specs import get_config

REFERENCE_PRESET = {"cpu": "cpu-l", "cuda": "7b", "mps": "gpu-1b"}  # whose shapes the profile's kernel roof uses
LAYOUTS = ("out_in", "in_out")  # weights stored (out, in) for F.linear, as nn.Linear does, or (in, out) for x @ W


def _rate(fn, device, fast: bool, per_call: float) -> float:
    """``per_call`` (bytes or FLOPs) / the median time of ``fn``, timed for 0.5 s (0.15 s in fast mode)."""
    return per_call / machine.time_fn(fn, device, 0.15 if fast else 0.5).median


def _buffer_bytes(device: torch.device, fast: bool) -> int:
    """Bytes of a bandwidth buffer: 256 MiB on a CPU, 2 GiB on a GPU (512 MiB fast; its L2 is ~100 MB at most)."""
    return 256 * MiB if device.type == "cpu" else (512 if fast else 2048) * MiB


def copy_bandwidth(device, fast: bool | None = None, nbytes: int | None = None) -> float:
    """Bytes/s of ``dst.copy_(src)`` over two fp32 buffers of ``nbytes`` / 2 each: (read + written) / time."""
    device, fast = machine.pick_device(device), machine.fast_mode(fast)
    n = (nbytes or _buffer_bytes(device, fast)) // 8
    src, dst = machine.random_tensor((n,), torch.float32, device), machine.random_tensor((n,), torch.float32, device, 1)
    return _rate(lambda: dst.copy_(src), device, fast, 8 * n)


def read_bandwidth(device, fast: bool | None = None, nbytes: int | None = None) -> float:
    """The streaming-read roof (bytes/s): ``x.sum()`` over one fp32 buffer of ``nbytes``."""
    device, fast = machine.pick_device(device), machine.fast_mode(fast)
    x = machine.random_tensor(((nbytes or _buffer_bytes(device, fast)) // 4,), torch.float32, device)
    return _rate(x.sum, device, fast, 4 * x.numel())


def gemv_bandwidth(device, precision: str = "fp32", shapes=None, nbytes: int | None = None,
                   fast: bool | None = None, layout: str = "out_in") -> float:
    """The kernel roof (bytes/s): the toy's decode op, ``F.linear(x, W)`` on one row (``x @ W`` for
    ``layout="in_out"``), over cold matrices of the toy's (out, in) ``shapes`` (default:
    REFERENCE_PRESET's), ``nbytes`` in all: what the matmul library achieves at batch 1, which can
    be well below what memory delivers. A GPU replays the chain from a CUDA graph: no launch costs."""
    device, fast, dtype = machine.pick_device(device), machine.fast_mode(fast), machine.torch_dtype(precision)
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r} must be one of {', '.join(LAYOUTS)}")
    shapes = shapes or get_config(REFERENCE_PRESET[device.type]).matrix_shapes()
    stored = [(n_in, n_out) for n_out, n_in in shapes] if layout == "in_out" else shapes
    # the shapes cycled until they hold nbytes: each matrix is cold (evicted from the caches by
    # the others) when its turn comes, as every weight is in a decode step
    mats, total = [], 0
    while total < (nbytes or _buffer_bytes(device, fast)):
        mats.append(machine.random_tensor(stored[len(mats) % len(stored)], dtype, device, seed=len(mats)))
        total += mats[-1].numel() * mats[-1].element_size()
    xs = {n_in: machine.random_tensor((1, n_in), dtype, device, seed=7) for _, n_in in shapes}

    def chain():
        for w in mats:
            xs[w.shape[0]] @ w if layout == "in_out" else F.linear(xs[w.shape[1]], w)

    with torch.inference_mode():
        return _rate(machine.graphed(chain) if device.type == "cuda" else chain, device, fast, total)


@lru_cache(maxsize=32)
def kernel_roof(device_type: str, precision: str, config, threads: int, fast: bool, layout: str = "out_in") -> float:
    """The kernel roof (B/s) on one toy's own matrix shapes and weight layout, measured once per
    process (the arguments are the cache key; pass torch.get_num_threads()). A model with narrow
    rows streams slower than the profile's reference preset, so its budget needs its own roof."""
    roof = gemv_bandwidth(device_type, precision, shapes=config.matrix_shapes(), fast=fast, layout=layout)
    machine.release(device_type)
    return roof


def best_layout(device_type: str, precision: str, config, threads: int, fast: bool) -> str:
    """The weight layout whose batch-1 kernel streams this toy's matrices faster here: "out_in"
    (nn.Linear's, ``F.linear``) or "in_out" (``x @ W``). Kernel quality differs by CPU vendor,
    dtype and layout (one AMD CPU streams fp32 faster in (in, out) and fp16 50x slower): measured."""
    rates = {layout: kernel_roof(device_type, precision, config, threads, fast, layout) for layout in LAYOUTS}
    return max(rates, key=rates.get)


def matmul_flops(device, precision: str = "fp32", n: int | None = None, fast: bool | None = None) -> float:
    """FLOP/s of a dense ``torch.mm`` of two n x n matrices: 2 n^3 FLOP / median time."""
    device, fast, dtype = machine.pick_device(device), machine.fast_mode(fast), machine.torch_dtype(precision)
    n = n or {"cpu": 1024 if fast else 2048, "cuda": 4096 if fast else 8192}.get(device.type, 2048)
    a, b = machine.random_tensor((n, n), dtype, device), machine.random_tensor((n, n), dtype, device, 1)
    c = torch.empty(n, n, dtype=dtype, device=device)
    return _rate(lambda: torch.mm(a, b, out=c), device, fast, 2.0 * n**3)


def cache_bytes(device) -> float:
    """Working sets below this size may run from cache and beat memory. GPU: the L2 size. CPU: the
    largest of 16 and 64 MiB whose GEMV chain runs >= 1.2x the rate over a bandwidth buffer (16 MiB
    if neither: a VM often reports the host's whole L3 but gets only part of it)."""
    device = machine.pick_device(device)
    if device.type == "cuda":
        return float(getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0) or 50e6)
    if device.type != "cpu":
        return float(32 * MiB)
    shapes = [(2048, 1024)]  # 8 MiB matrices
    dram = gemv_bandwidth(device, shapes=shapes, fast=True)
    faster = [mib for mib in (16, 64) if gemv_bandwidth(device, shapes=shapes, nbytes=mib * MiB, fast=True) >= 1.2 * dram]
    return float(max(faster, default=16) * MiB)


# ----------------------------------------------------------------------------- the small ops
def _small_ops(config, dtype, device, batch: int, kv_positions: int, graph: bool) -> dict:
    """One callable per kind of small op a decode step of ``config`` makes (the kinds measure.count_ops
    sorts calls into), on its shapes: "view" stands for metadata-only calls (views, slices, attribute
    reads), "other" for any other small op, "module" for an nn.Module call, "linear" for a matrix call."""
    d, h, kvh, hd, n = config.d_model, config.n_heads, config.n_kv_heads, config.head_dim, kv_positions

    def rand(*shape, seed):
        return machine.random_tensor(shape, dtype, device, seed)

    x, y, hidden = rand(batch, 1, d, seed=1), rand(batch, 1, d, seed=2), rand(batch, 1, config.d_ff, seed=3)
    q, new = rand(batch, h, 1, hd, seed=6), rand(batch, 2 * kvh, 1, hd, seed=7)
    # one K-and-V cache per layer (model.KVCache), visited in turn, so that attention reads a cold cache
    # each time (as many layers as fit in a quarter of a bandwidth buffer, and at least two)
    cache_shape = (batch, 2 * kvh, config.max_seq_len, hd)
    layers = max(2, min(config.n_layers, _buffer_bytes(device, True) // 4 // (math.prod(cache_shape) * dtype.itemsize)))
    caches = [rand(*cache_shape, seed=i + 20) for i in range(layers)]
    # the eager step reads its n filled slots; the CUDA-graph step its bucket of n slots, under an additive mask
    mask = torch.zeros(1, n, dtype=dtype, device=device) if graph else None

    def attention():
        k, v = caches[0][:, :, :n].split(kvh, dim=1)
        caches.append(caches.pop(0))  # the next call reads the next layer's cache
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=kvh != h)

    kv_cache, pos = caches[0], torch.tensor([n - 1], device=device)

    def cache_write():  # the eager step's kv_cache[:, :, position] = new
        kv_cache[:batch, :, n - 1:n] = new

    norm, identity = torch.nn.RMSNorm(d, dtype=dtype, device=device), torch.nn.Identity()
    w = rand(8, d, seed=9)  # a matrix too small to stream: what remains is the call
    return {"attention": attention, "rms_norm": lambda: norm(x), "gelu": lambda: F.gelu(hidden),
            "add_": lambda: y.add_(x), "index_copy_": lambda: kv_cache.index_copy_(2, pos, new),
            "__setitem__": cache_write, "view": lambda: x.view(batch, 1, h, hd), "other": lambda: x.mul(2.0),
            "module": lambda: identity(x), "linear": lambda: F.linear(x, w)}


@lru_cache(maxsize=64)
def small_op_costs(device_type: str, precision: str, config, batch: int, kv_positions: int, graph: bool,
                   threads: int, fast: bool) -> dict[str, float]:
    """Seconds per call of each kind of small op of a decode step (``_small_ops``), each between cold weight streams
    as in the step (in a CUDA graph with ``graph``, plus "graph call": calling a graphed step, beyond its kernels).
    Measured once per process (the arguments are the cache key; pass torch.get_num_threads())."""
    device, dtype = machine.pick_device(device_type), machine.torch_dtype(precision)
    ops = _small_ops(config, dtype, device, batch, kv_positions, graph)
    if device.type == "cpu" or graph:
        del ops["linear"]  # the kernel roof's chain already paid for each matrix call
    with torch.inference_mode():
        if graph and device.type == "cuda":
            with machine.graph_attention():  # the kernels make_graphed_decode captures
                costs = _costs_between_streams(ops, device, fast, graph=True) | {"graph call": _call_cost(ops["other"], device)}
        else:
            costs = _costs_between_streams(ops, device, fast)
    machine.release(device)
    return {"linear": 0.0, **costs}  # a matrix call costs nothing here unless measured (eager on a GPU: its launch)


def _costs_between_streams(ops: dict, device, fast: bool, graph: bool = False) -> dict[str, float]:
    """Each op runs twice after each of 16 cold 8 MiB GEMVs, as in the step, where each weight has just evicted
    the caches (a norm's weight, K and V come from memory). With ``graph``, each run is one CUDA graph.
    Cost: the median of (with - without) over interleaved rounds, per call."""
    where = device if graph else "cpu"  # eager: the CPU streams while the GPU's queue holds the op
    mats = machine.random_tensor((16, 2048, 1024), torch.float32, where).unbind(0)
    x = machine.random_tensor((1, 1024), torch.float32, where)

    def after_streams(op):
        def run():
            for w in mats:
                F.linear(x, w)
                op()
                op()
        return machine.graphed(run) if graph else run

    runs = {kind: after_streams(op) for kind, op in {"none": lambda: None, **ops}.items()}
    t = machine.time_interleaved(runs, device, rounds=5 if fast else 9, calls=2 if device.type == "cpu" else 10)
    return {kind: max(statistics.median(a - b for a, b in zip(t[kind].times, t["none"].times)), 0.0) / (2 * len(mats))
            for kind in ops}


def _call_cost(op, device) -> float:
    """Seconds a call of a graphed step costs beyond its kernels, timed call by call as steps are: copy
    token and position in and replay (as make_graphed_decode's ``decode``), ``op`` the whole graph, less
    ``op``'s cost in a graph of 50."""
    token, static_token, pos = (torch.ones((1, 1), dtype=torch.long, device=device) for _ in range(3))
    one, many = machine.graphed(op), machine.graphed(lambda: [op() for _ in range(50)])
    call = lambda: (static_token.copy_(token), pos.fill_(5), one())  # noqa: E731
    t = machine.time_interleaved({"call": call, "many": many}, device, rounds=5, calls=20)
    return max(t["call"].median - t["many"].median / 50, 0.0)


# ----------------------------------------------------------------------------- the profile
SCHEMA = 6  # 5: kernel roofs on the toy's shapes; small-op costs as a decode step makes them; 6: in graphs too


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
    read_bandwidth: float             # streaming read, x.sum(): bytes / s (the memory roof MBU divides by)
    gemv_bandwidth: dict[str, float]  # precision -> the decode op's kernel roof, bytes / s
    matmul_flops: dict[str, float]    # precision -> dense matmul FLOP/s
    op_cost: float                    # s per small op (an RMSNorm of REFERENCE_PRESET), as small_op_costs prices it
    op_cost_graph: float | None = None  # CUDA: the same op between cold streams in a CUDA graph
    cache_bytes: float = 0.0          # working sets below this may run from cache
    schema: int = SCHEMA

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
        lines += [f"  decode GEMV kernel, {p:>4}:      {rate / 1e9:8.1f} GB/s = {rate / self.read_bandwidth:4.0%} of the read"
                  for p, rate in self.gemv_bandwidth.items()]
        lines += [f"  matmul {p:>5}:                {rate / 1e12:8.3f} TFLOP/s" for p, rate in self.matmul_flops.items()]
        where = "between cold weight streams" if self.device_type == "cpu" else "eager launch"
        lines.append(f"  one RMSNorm (a small op):      {self.op_cost * 1e6:8.2f} µs ({where}; budgets price each kind)")
        if self.op_cost_graph is not None:
            lines.append(f"  one RMSNorm in a CUDA graph:   {self.op_cost_graph * 1e6:8.2f} µs")
        lines.append(f"  cache (smaller working sets may beat memory): {self.cache_bytes / MiB:.0f} MiB")
        return "\n".join(lines)


def measure_profile(device=None, fast: bool | None = None, progress: bool = False) -> MachineProfile:
    """Run every roof on ``device`` and return the profile (nothing is cached)."""
    device, fast = machine.pick_device(device), machine.fast_mode(fast)

    def per_op_cost(graph: bool) -> float:  # the profile's one per-op figure: an RMSNorm on the reference width
        config = get_config(REFERENCE_PRESET[device.type])
        return small_op_costs(device.type, "fp32", config, 1, 129, graph, torch.get_num_threads(), fast)["rms_norm"]

    precisions = machine.supported_precisions(device)
    matmuls = [p for p in precisions if not (device.type == "cpu" and p == "fp16")]  # CPUs run fp16 GEMM slowly
    steps = {"copy": lambda: copy_bandwidth(device, fast), "read": lambda: read_bandwidth(device, fast),
             **{f"gemv_{p}": (lambda p=p: gemv_bandwidth(device, p, fast=fast)) for p in precisions},
             **{f"matmul_{p}": (lambda p=p: matmul_flops(device, p, fast=fast)) for p in matmuls},
             "op": lambda: per_op_cost(False), "cache": lambda: cache_bytes(device),
             **({"op_graph": lambda: per_op_cost(True)} if device.type == "cuda" else {})}
    found = {}
    for name, run in tqdm(steps.items(), desc="measuring this machine", disable=not progress, leave=False):
        found[name] = run()
        machine.release(device)  # the benchmark's buffers are garbage now
    return MachineProfile(
        device_type=device.type, device_name=machine.device_name(device), torch_version=torch.__version__,
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), threads=torch.get_num_threads(),
        fast=fast, copy_bandwidth=found["copy"], read_bandwidth=found["read"],
        gemv_bandwidth={p: found[f"gemv_{p}"] for p in precisions}, matmul_flops={p: found[f"matmul_{p}"] for p in matmuls},
        op_cost=found["op"], op_cost_graph=found.get("op_graph"), cache_bytes=found["cache"])


def profile_path(device=None) -> Path:
    """``$COURSE_LIB_CACHE_DIR`` or ``~/.cache/course_lib``, one file per device type."""
    folder = os.environ.get("COURSE_LIB_CACHE_DIR") or Path.home() / ".cache" / "course_lib"
    return Path(folder).expanduser() / f"profile-{machine.pick_device(device).type}.json"


def load_profile(path) -> MachineProfile | None:
    """The profile stored at ``path``; None if it is missing, unreadable, malformed or old."""
    try:
        data = json.loads(Path(path).read_text())
        profile = MachineProfile(**{f.name: data[f.name] for f in fields(MachineProfile) if f.name in data})
        rates = [profile.copy_bandwidth, profile.read_bandwidth, profile.op_cost, *profile.gemv_bandwidth.values(),
                 *profile.matmul_flops.values()]
        ok = profile.schema == SCHEMA and profile.matmul_flops and all(float(r) > 0 and math.isfinite(r) for r in rates)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return profile if ok else None


def get_profile(device=None, remeasure: bool = False, fast: bool | None = None, progress: bool = False) -> MachineProfile:
    """This machine's profile: from the cache if it still describes this device as it runs now
    (same name, torch version and threads; a full-mode request replaces a fast-mode profile),
    else measured and cached. A missing or corrupt cache file means "measure again"."""
    device, fast = machine.pick_device(device), machine.fast_mode(fast)
    path = profile_path(device)
    cached = None if remeasure else load_profile(path)
    if cached and (cached.device_name, cached.torch_version, cached.threads) == (
            machine.device_name(device), torch.__version__, torch.get_num_threads()) and (fast or not cached.fast):
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
    """(quantity, recorded GPU, this machine) rows: a recorded run's roofs beside this machine's, in SI units."""
    rec = ref["profile"]
    rows = [("copy bandwidth (B/s)", rec["copy_bandwidth"], mine and mine.copy_bandwidth),
            ("read bandwidth (B/s)", rec["read_bandwidth"], mine and mine.read_bandwidth),
            ("one RMSNorm, eager (s)", rec["op_cost"], mine and mine.op_cost)]
    rows += [(f"matmul {p} (FLOP/s)", rate, mine and mine.matmul_flops.get(p)) for p, rate in rec["matmul_flops"].items()]
    if rec.get("op_cost_graph"):
        rows.append(("one RMSNorm in a CUDA graph (s)", rec["op_cost_graph"], mine and mine.op_cost_graph))
    return rows
