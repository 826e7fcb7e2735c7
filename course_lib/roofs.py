"""This machine's roofs: the rates that predictions divide by, measured once and cached.

    copy_bandwidth     dst.copy_(src): bytes read + written per second
    read_bandwidth     the streaming-read roof, x.sum(): what memory can deliver
    gemv_bandwidth     the kernel roof: the toy's own decode op (one-row F.linear, same dtype and
                       weight layout) over cold matrices: what the matmul library achieves
    matmul_flops       dense matmul FLOP/s per precision
    small_op_costs     seconds per call of each kind of small op a decode step makes (norm,
                       GELU, add, cache write, attention...), on a model's own shapes: on a CPU
                       between cold weight streams, as in the step; on a GPU per launch or per
                       replay from a CUDA graph
    get_profile        the machine-wide roofs as a MachineProfile, cached on disk for every notebook

Rules: random inputs (never zeros); bandwidth buffers far larger than the caches (256 MiB on
CPU, in fast mode too, since a VM's L3 still speeds up 64-128 MiB; GiBs on a GPU).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import statistics
import warnings
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Measurement

from .machine import (
    MiB,
    device_name,
    fast_mode,
    graphed,
    pick_device,
    random_tensor,
    release,
    supported_precisions,
    time_fn,
    time_interleaved,
    torch_dtype,
)
from .presets import get_config


@dataclass(frozen=True)
class Roof:
    """One measured rate: ``value`` in SI units (B/s, FLOP/s or s), from the median time."""

    value: float
    median_s: float
    iqr_s: float
    repeats: int
    method: str

    @classmethod
    def of(cls, m: Measurement, per_call: float, method: str) -> Roof:
        return cls(per_call / m.median, m.median, m.iqr, len(m.times) * m.number_per_run, method)


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


# the preset whose matrices and cache the kernel and attention roofs are measured on, per device
REFERENCE_PRESET = {"cpu": "cpu-l", "cuda": "7b", "mps": "gpu-1b"}


def _cold_copies(shapes, dtype, device, nbytes: int) -> list[torch.Tensor]:
    """Random tensors of ``shapes``, cycled until they hold ``nbytes``: each is cold (evicted
    from the caches by the others) when its turn comes, as every weight is in a decode step."""
    elem, out, total = torch.empty((), dtype=dtype).element_size(), [], 0
    while total < nbytes:
        shape = shapes[len(out) % len(shapes)]
        out.append(random_tensor(shape, dtype, device, seed=len(out)))
        total += math.prod(shape) * elem
    return out


def gemv_bandwidth(device, precision: str = "fp32", shapes=None, nbytes: int | None = None,
                   fast: bool | None = None, layout: str = "out_in") -> Roof:
    """The kernel roof: the toy's own decode op (one-row ``F.linear(x, W)`` with W stored
    (out, in), or ``x @ W`` with W stored (in, out) for ``layout="in_out"``) over cold matrices of
    the toy's own shapes (default: those of REFERENCE_PRESET), ``nbytes`` in all (default: the
    bandwidth buffer): bytes of W / median time. What the matmul library achieves at batch 1,
    which can be well below what memory delivers. On a GPU the chain is replayed from a CUDA
    graph, so that launch costs (priced separately) do not hide it."""
    device, fast = pick_device(device), fast_mode(fast)
    dtype = torch_dtype(precision)
    shapes = shapes or get_config(REFERENCE_PRESET[device.type]).matrix_shapes()
    flip = {"out_in": False, "in_out": True}[layout]
    mats = _cold_copies([s[::-1] for s in shapes] if flip else shapes, dtype, device, nbytes or _buffer_bytes(device, fast))
    xs = {n: random_tensor((1, n), dtype, device, seed=7) for n in {w.shape[0 if flip else 1] for w in mats}}

    def chain():
        for w in mats:
            xs[w.shape[0]] @ w if flip else F.linear(xs[w.shape[1]], w)

    with torch.inference_mode():
        m = time_fn(graphed(chain) if device.type == "cuda" else chain, device, 0.15 if fast else 0.5)
    return Roof.of(m, sum(w.numel() * w.element_size() for w in mats),
                   f"F.linear(x[1, in], W[out, in]), {precision}, over {len(mats)} cold matrices of shapes {shapes[:5]}...")


@lru_cache(maxsize=32)
def kernel_roof(device_type: str, precision: str, config, threads: int, fast: bool, layout: str = "out_in") -> float:
    """The kernel roof (B/s) on one toy's own matrix shapes and weight layout, measured once per
    process (the arguments are the cache key; pass torch.get_num_threads()). A model with narrow
    rows streams slower than the profile's reference preset, so its budget needs its own roof."""
    roof = gemv_bandwidth(device_type, precision, shapes=config.matrix_shapes(), fast=fast, layout=layout).value
    release(device_type)
    return roof


def best_layout(device_type: str, precision: str, config, threads: int, fast: bool) -> str:
    """The weight layout whose batch-1 kernel streams this toy's matrices faster here: "out_in"
    (nn.Linear's, ``F.linear``) or "in_out" (``x @ W``). Kernel quality differs by CPU vendor,
    dtype and layout (one AMD CPU streams fp32 faster in (in, out) and fp16 50x slower): measured."""
    rates = {layout: kernel_roof(device_type, precision, config, threads, fast, layout) for layout in ("out_in", "in_out")}
    return max(rates, key=rates.get)


def matmul_flops(device, precision: str = "fp32", n: int | None = None, fast: bool | None = None) -> Roof:
    """Dense ``torch.mm`` of two n x n matrices: 2 n^3 FLOP / median time."""
    device, fast = pick_device(device), fast_mode(fast)
    dtype = torch_dtype(precision)
    n = n or {"cpu": 1024 if fast else 2048, "cuda": 4096 if fast else 8192}.get(device.type, 2048)
    a, b = random_tensor((n, n), dtype, device), random_tensor((n, n), dtype, device, 1)
    c = torch.empty(n, n, dtype=dtype, device=device)
    m = time_fn(lambda: torch.mm(a, b, out=c), device, 0.15 if fast else 0.5)
    return Roof.of(m, 2.0 * n ** 3, f"torch.mm of two {n}x{n} {precision} matrices; 2 n^3 / median time")


# ----------------------------------------------------------------------------- the small ops
def _small_ops(config, dtype, device, batch: int, kv_positions: int, graph: bool) -> dict:
    """One callable per kind of small op a decode step of ``config`` makes, on its shapes. The
    kinds are the names TorchFunctionMode reports (measure.count_ops); "view" stands for the
    metadata-only calls (views, slices, attribute reads), "other" for any other small op (a
    multiply), "module" for an nn.Module call."""
    d, h, kvh, hd, n = config.d_model, config.n_heads, config.n_kv_heads, config.head_dim, kv_positions
    x, y = random_tensor((batch, 1, d), dtype, device, 1), random_tensor((batch, 1, d), dtype, device, 2)
    hidden = random_tensor((batch, 1, config.d_ff), dtype, device, 3)
    # one cache per layer, visited in turn: the step's attention reads a different, cold cache each
    # time (as many as fit in a quarter of a bandwidth buffer, and at least two)
    per_layer = 2 * batch * kvh * config.max_seq_len * hd * dtype.itemsize
    layers = max(2, min(config.n_layers, _buffer_bytes(device, True) // 4 // per_layer))
    caches = [tuple(random_tensor((batch, kvh, config.max_seq_len, hd), dtype, device, 2 * i + s) for s in (20, 21))
              for i in range(layers)]
    k, turn = caches[0][0], iter(range(1 << 62))
    q, new = random_tensor((batch, h, 1, hd), dtype, device, 6), random_tensor((batch, kvh, 1, hd), dtype, device, 7)
    norm, empty, pos = torch.nn.RMSNorm(d, dtype=dtype, device=device), torch.nn.Identity(), torch.tensor([n - 1], device=device)
    w = random_tensor((8, d), dtype, device, 9)  # a matrix too small to stream: what remains is the call
    mask = torch.zeros(1, config.max_seq_len, dtype=dtype, device=device)  # the CUDA-graph step's additive mask
    def attention():
        ck, cv = caches[next(turn) % len(caches)]
        if graph:  # the static-cache step attends over every slot, under a mask
            return F.scaled_dot_product_attention(q, ck, cv, attn_mask=mask, enable_gqa=kvh != h)
        return F.scaled_dot_product_attention(q, ck[:, :, :n], cv[:, :, :n], enable_gqa=kvh != h)

    return {"attention": attention, "rms_norm": lambda: norm(x), "gelu": lambda: F.gelu(hidden),
            "add_": lambda: y.add_(x), "index_copy_": lambda: k.index_copy_(2, pos, new),
            "__setitem__": lambda: k.__setitem__((slice(0, batch), slice(None), slice(n - 1, n)), new),
            "view": lambda: x.view(batch, 1, h, hd), "other": lambda: x.mul(2.0), "module": lambda: empty(x),
            "linear": lambda: F.linear(x, w)}


@lru_cache(maxsize=64)
def small_op_costs(device_type: str, precision: str, config, batch: int, kv_positions: int, graph: bool,
                   threads: int, fast: bool) -> dict[str, float]:
    """Seconds per call of each kind of small op of a decode step (``_small_ops``), measured
    once per process (the arguments are the cache key; pass torch.get_num_threads()).

    Eager (a CPU, or a GPU's launches): each op runs twice after each of 16 cold 8 MiB GEMVs on
    the CPU, as ops do in the step, where every weight matrix (or, on a GPU, the model's Python
    between launches) has just evicted the CPU's caches; cost = (with - without) / calls, timed
    in interleaved rounds. In a CUDA graph: 50 calls replayed from one graph; cost = time / 50."""
    device, dtype = pick_device(device_type), torch_dtype(precision)
    ops = _small_ops(config, dtype, device, batch, kv_positions, graph)
    with torch.inference_mode():
        if not (graph and device.type == "cuda"):  # eager anywhere; the static step on a CPU too
            mats = random_tensor((16, 2048, 1024), torch.float32, "cpu").unbind(0)  # cold streams, on the CPU
            x = random_tensor((1, 1024), torch.float32, "cpu")

            def after_streams(op):
                def run():
                    for w in mats:
                        F.linear(x, w)
                        op()
                        op()
                return run

            t = time_interleaved({k: after_streams(op) for k, op in {"none": lambda: None, **ops}.items()
                                  if not (k == "linear" and device.type == "cpu")},
                                 device, rounds=5 if fast else 9, calls=2)
            # the median of paired differences (each call against the bare streams of the same round):
            # a slow minute on a shared machine moves both sides of a pair alike
            costs = {k: max(statistics.median(a - b for a, b in zip(t[k].times, t["none"].times)), 0.0)
                     / (2 * len(mats)) for k in t if k != "none"}
        else:
            costs = {k: _repeated(op, device, graph) for k, op in ops.items()}
    if device.type == "cpu" or graph:  # the kernel roof's chain already paid for each matrix call
        costs["linear"] = 0.0
    release(device)
    return costs


def _repeated(op, device, graph: bool, n: int = 50) -> float:
    def many():
        for _ in range(n):
            op()

    return time_fn(graphed(many) if graph else many, device, 0.2).median / n


def cache_bytes(device, fast: bool | None = None) -> float:
    """Working sets below this size may run from cache and beat memory (flag them). CPU: the
    largest of 16 and 64 MiB whose GEMV chain runs >= 1.2x the rate over the bandwidth buffer
    (16 MiB if neither: a VM often reports the host's whole L3 but gets only part of it).
    GPU: the L2 size."""
    device = pick_device(device)
    if device.type == "cuda":
        return float(getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0) or 50e6)
    if device.type != "cpu":
        return float(32 * MiB)
    shapes = [(2048, 1024)]  # 8 MiB matrices
    dram = gemv_bandwidth(device, shapes=shapes, fast=True).value
    faster = [mib for mib in (16, 64) if gemv_bandwidth(device, shapes=shapes, nbytes=mib * MiB, fast=True).value >= 1.2 * dram]
    return float(max(faster, default=16) * MiB)


# ----------------------------------------------------------------------------- the profile
SCHEMA = 5  # 5: kernel roofs on the toy's shapes; small-op costs as a decode step makes them


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
    op_cost: float                    # s per small op (an RMSNorm on the reference preset's width): on a
                                      # CPU between cold weight streams, on a GPU per eager launch
    op_cost_graph: float | None = None  # CUDA: the same op replayed from a CUDA graph
    cache_bytes: float = 0.0          # working sets below this may run from cache
    schema: int = SCHEMA
    details: dict = field(default_factory=dict)  # roof name -> Roof as a dict (how it was measured)

    @property
    def bandwidth(self) -> float:
        """The memory roof: what a streaming read gets from memory (MBU divides by it)."""
        return self.read_bandwidth

    def kernel_efficiency(self, precision: str) -> float:
        """The decode GEMV kernel's rate as a share of the streaming read: 1.0 means the
        matmul library streams weights as fast as memory delivers them."""
        return self.kernel_bandwidth(precision) / self.read_bandwidth

    def kernel_bandwidth(self, precision: str) -> float:
        """The decode GEMV kernel roof at ``precision``; ValueError if it was not measured."""
        if precision not in self.gemv_bandwidth:
            raise ValueError(f"precision={precision!r}: no kernel roof measured on {self.device_type}; "
                             f"measured: {', '.join(self.gemv_bandwidth)}")
        return self.gemv_bandwidth[precision]

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
        lines += [f"  decode GEMV kernel, {p:>4}:      {r / 1e9:8.1f} GB/s = {self.kernel_efficiency(p):4.0%} of the read"
                  for p, r in self.gemv_bandwidth.items()]
        lines += [f"  matmul {p:>5}:                {r / 1e12:8.3f} TFLOP/s" for p, r in self.matmul_flops.items()]
        where = "between cold weight streams" if self.device_type == "cpu" else "eager launch"
        lines.append(f"  per small op (an RMSNorm):     {self.op_cost * 1e6:8.2f} us ({where})")
        if self.op_cost_graph is not None:
            lines.append(f"  per-kernel in a CUDA graph:    {self.op_cost_graph * 1e6:8.2f} us")
        return "\n".join(lines + [f"  cache (smaller working sets may beat memory): {self.cache_bytes / MiB:.0f} MiB"])


def _op_roof(device, graph: bool, fast: bool) -> Roof:
    cost = small_op_costs(device.type, "fp32", get_config(REFERENCE_PRESET[device.type]), 1, 129, graph,
                          torch.get_num_threads(), fast)["rms_norm"]
    return Roof(cost, cost, 0.0, 1, "an RMSNorm call on the reference preset's width, as small_op_costs measures it")


def measure_profile(device=None, fast: bool | None = None, progress: bool = False) -> MachineProfile:
    """Run every roof on ``device`` and return the profile (nothing is cached)."""
    from tqdm.auto import tqdm

    device, fast = pick_device(device), fast_mode(fast)
    precisions = supported_precisions(device)
    matmuls = [p for p in precisions if not (device.type == "cpu" and p == "fp16")]  # CPUs run fp16 GEMM slowly
    steps = {"copy": lambda: copy_bandwidth(device, fast), "read": lambda: read_bandwidth(device, fast),
             **{f"gemv_{p}": (lambda p=p: gemv_bandwidth(device, p, fast=fast)) for p in precisions},
             **{f"matmul_{p}": (lambda p=p: matmul_flops(device, p, fast=fast)) for p in matmuls},
             "op": lambda: _op_roof(device, False, fast)}
    if device.type == "cuda":
        steps["op_graph"] = lambda: _op_roof(device, True, fast)
    roofs = {}
    for name, run in tqdm(steps.items(), desc="measuring this machine", disable=not progress, leave=False):
        roofs[name] = run()
        release(device)  # the benchmark's buffers are garbage now
    return MachineProfile(
        device_type=device.type, device_name=device_name(device), torch_version=torch.__version__,
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), threads=torch.get_num_threads(),
        fast=fast, copy_bandwidth=roofs["copy"].value, read_bandwidth=roofs["read"].value,
        gemv_bandwidth={p: roofs[f"gemv_{p}"].value for p in precisions},
        matmul_flops={p: roofs[f"matmul_{p}"].value for p in matmuls}, op_cost=roofs["op"].value,
        op_cost_graph=roofs["op_graph"].value if "op_graph" in roofs else None,
        cache_bytes=cache_bytes(device, fast),
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
        rates = [profile.copy_bandwidth, profile.read_bandwidth, profile.op_cost, *profile.gemv_bandwidth.values(),
                 *profile.matmul_flops.values()]
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
