"""Microbenchmarks of this machine: memory bandwidth, matmul FLOP/s, per-op launch overhead.

These numbers are the denominators of the course: MBU divides by a bandwidth, MFU by a peak
FLOP/s, the launch-aware model multiplies a kernel count by a per-kernel overhead. Each
benchmark returns a :class:`Microbench` record that says what was measured and how.

Rules followed everywhere (COURSE_BRIEF, "Traps to avoid"):

* buffers are filled with random data, never zeros;
* buffers are far larger than the caches: 256 MiB on CPU (2 x 128 MiB for the copy), in fast
  mode too, since a 2-core VM here still runs 64-128 MiB working sets partly from a 300 MiB L3;
  at most 256 MiB allocated at once, so it stays Binder-safe; GiBs on a GPU;
* every benchmark warms up, synchronises the device before reading the clock
  (``torch.utils.benchmark.Timer`` with a device-synchronising timer), and reports the median
  with the inter-quartile range as spread;
* the Timer runs at the *current* ``torch.get_num_threads()`` (its own default is 1 thread).

Fast mode (``fast=True`` or ``COURSE_FAST=1``) uses shorter runs, smaller matmuls and fewer
cache-scan sizes so a whole profile takes a few seconds; the bandwidth buffers stay as large.
"""

from __future__ import annotations

import gc
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field

import torch
from torch.utils.benchmark import Timer

from . import devices as _devices

MiB = 1 << 20
GiB = 1 << 30


def fast_mode(fast: bool | None = None) -> bool:
    """``fast`` if given, else whether workshop mode is on (COURSE_WORKSHOP or COURSE_FAST, read now)."""
    from . import workshop

    if fast is not None:
        return bool(fast)
    return workshop.is_enabled()


def resolve_device(device=None) -> torch.device:
    """A torch.device from None (best available), a name or a device; ValueError if unknown."""
    if isinstance(device, torch.device) and device.type in ("cuda", "mps") and device.index is not None:
        return device
    return _devices.pick_device(device)


@dataclass(frozen=True)
class Microbench:
    """One measured rate. ``value`` is in SI units (``unit``), computed from the median time."""

    name: str                # e.g. "copy_bandwidth"
    value: float             # the result: bytes/s, FLOP/s or seconds
    unit: str                # "B/s", "FLOP/s" or "s"
    method: str              # what was timed, in words
    device: str              # torch device type, e.g. "cpu"
    dtype: str               # e.g. "fp32"
    sizes: dict = field(default_factory=dict)   # buffer sizes / shapes, bytes and FLOP per call
    repeats: int = 0         # timed calls in total
    median_s: float = 0.0    # median seconds of one call
    spread: float = 0.0      # inter-quartile range of the call time / median (0.05 = 5 %)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Timing:
    """Median and spread of a callable's run time (seconds per call)."""

    median_s: float
    iqr_s: float
    repeats: int             # calls timed in total
    blocks: int              # timed blocks (each of repeats / blocks calls)

    @property
    def spread(self) -> float:
        return self.iqr_s / self.median_s if self.median_s > 0 else float("nan")


def _sync_timer(device: torch.device):
    def timer() -> float:
        _devices.synchronize(device)
        return time.perf_counter()
    return timer


def time_fn(fn, device=None, min_run_time: float = 0.2, warmup: int = 2, repeats: int | None = None) -> Timing:
    """Time ``fn()`` with ``torch.utils.benchmark.Timer``: warm up, sync, median per call.

    ``repeats=None``: ``blocked_autorange(min_run_time)`` picks the block size and count.
    ``repeats=n``: exactly ``n`` single calls, each timed (for slow calls such as a model step).
    """
    device = torch.device("cpu") if device is None else torch.device(device)
    for _ in range(max(warmup, 0)):
        fn()
    _devices.synchronize(device)
    timer = Timer(stmt="fn()", globals={"fn": fn}, timer=_sync_timer(device),
                  num_threads=torch.get_num_threads())
    if repeats is None:
        m = timer.blocked_autorange(min_run_time=min_run_time)
        times = list(m.times)
        calls = m.number_per_run * len(times)
    else:
        if repeats < 1:
            raise ValueError(f"repeats={repeats!r} must be at least 1")
        times = _time_each(fn, device, int(repeats))
        calls = len(times)
    times.sort()
    median = _quantile(times, 0.5)
    iqr = _quantile(times, 0.75) - _quantile(times, 0.25)
    return Timing(median_s=median, iqr_s=iqr, repeats=calls, blocks=len(times))


def _time_each(fn, device: torch.device, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` single calls (device synced around each, gc paused as
    timeit does). Timer.timeit(1) would add two untimed warm-up calls to every sample."""
    clock = _sync_timer(device)
    enabled = gc.isenabled()
    gc.disable()
    try:
        times = []
        for _ in range(repeats):
            start = clock()
            fn()
            times.append(clock() - start)
    finally:
        if enabled:
            gc.enable()
    return times


def _quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated quantile of an already sorted list (numpy's default method)."""
    pos = (len(sorted_values) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _random(n: int, dtype: torch.dtype, device: torch.device, seed: int = 0) -> torch.Tensor:
    """n random values in [-1, 1) on ``device`` (never zeros: the brief's rule). On the CPU a
    random block of 1 Mi values is repeated: memory traffic does not depend on the values, and
    drawing 256 MiB of fresh random numbers would take longer than the benchmark."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    if device.type == "cpu":  # a 4 MiB random block, tiled: random-looking, non-zero, 15x faster to make
        block = min(n, MiB)
        x = torch.empty(n, dtype=dtype)
        pattern = torch.empty(block, dtype=dtype).uniform_(-1.0, 1.0, generator=gen)
        whole = n // block * block
        x[:whole].view(-1, block).copy_(pattern.expand(n // block, block))
        x[whole:].copy_(pattern[:n - whole])
        return x
    x = torch.empty(n, dtype=dtype, device=device)
    try:  # fill on the device itself where it has a generator (CUDA; MPS in recent torch)
        return x.uniform_(-1.0, 1.0, generator=torch.Generator(device=device).manual_seed(seed))
    except (RuntimeError, TypeError):
        pass
    chunk = 64 * MiB // x.element_size()   # fill through a bounded CPU staging buffer
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        x[start:stop].copy_(torch.empty(stop - start, dtype=torch.float32).uniform_(-1, 1, generator=gen))
    return x


def _default_buffer_bytes(device: torch.device, fast: bool) -> int:
    """One buffer of the copy benchmark (there are two). On CPU 128 MiB in both modes: this
    machine's L3 still speeds up 64-128 MiB working sets, so smaller buffers would measure it."""
    if device.type == "cpu":
        return 128 * MiB
    if device.type == "mps":
        return (256 if fast else 512) * MiB
    return (256 * MiB) if fast else 1 * GiB       # GPU L2 is at most ~100 MB


def _default_read_bytes(device: torch.device, fast: bool) -> int:
    """The buffer of the read benchmarks: 256 MiB on CPU, 2 GiB on CUDA (512 MiB fast)."""
    return 2 * _default_buffer_bytes(device, fast)


def _min_time(fast: bool) -> float:
    return 0.15 if fast else 0.5


def copy_bandwidth(device=None, nbytes: int | None = None, fast: bool | None = None) -> Microbench:
    """Achievable bandwidth of ``dst.copy_(src)``: (bytes read + bytes written) / time.

    Two fp32 buffers of ``nbytes`` each (default 2 x 128 MiB on CPU, 2 x 1 GiB on CUDA).
    """
    device, fast = resolve_device(device), fast_mode(fast)
    nbytes = int(nbytes or _default_buffer_bytes(device, fast))
    n = max(nbytes // 4, 1)
    src = _random(n, torch.float32, device)
    dst = _random(n, torch.float32, device, seed=1)
    t = time_fn(lambda: dst.copy_(src), device, min_run_time=_min_time(fast))
    moved = 2 * n * 4
    return Microbench("copy_bandwidth", moved / t.median_s, "B/s",
                      "dst.copy_(src), fp32; bytes read + bytes written per call / median time",
                      device.type, "fp32", {"buffer_bytes": n * 4, "bytes_per_call": moved},
                      t.repeats, t.median_s, t.spread)


def read_bandwidth(device=None, nbytes: int | None = None, fast: bool | None = None) -> Microbench:
    """Achievable read-dominated bandwidth: ``x.sum()`` over one fp32 buffer of ``nbytes``.

    Default 256 MiB on CPU, 2 GiB on CUDA (512 MiB in fast mode).
    """
    device, fast = resolve_device(device), fast_mode(fast)
    nbytes = int(nbytes or _default_read_bytes(device, fast))
    n = max(nbytes // 4, 1)
    x = _random(n, torch.float32, device)
    t = time_fn(lambda: x.sum(), device, min_run_time=_min_time(fast))
    return Microbench("read_bandwidth", n * 4 / t.median_s, "B/s",
                      "x.sum() over a fp32 buffer; bytes read per call / median time",
                      device.type, "fp32", {"buffer_bytes": n * 4, "bytes_per_call": n * 4},
                      t.repeats, t.median_s, t.spread)


def gemv_bandwidth(device=None, nbytes: int | None = None, fast: bool | None = None,
                   precision: str = "fp32") -> Microbench:
    """Bandwidth of a matrix-vector product ``W @ x`` (the decode step's core operation):
    bytes of W per call / median time. Square W of about ``nbytes`` (default as read_bandwidth)."""
    from . import precision as _precision

    device, fast = resolve_device(device), fast_mode(fast)
    dtype = _precision.torch_dtype(precision)
    nbytes = int(nbytes or _default_read_bytes(device, fast))
    elem = torch.tensor([], dtype=dtype).element_size()
    side = max(math.isqrt(nbytes // elem) // 64 * 64, 64)
    w = _random(side * side, dtype, device).view(side, side)
    x = _random(side, dtype, device, seed=2)
    t = time_fn(lambda: torch.mv(w, x), device, min_run_time=_min_time(fast))
    moved = side * side * elem
    return Microbench("gemv_bandwidth", moved / t.median_s, "B/s",
                      f"torch.mv(W, x), {precision}; bytes of W per call / median time",
                      device.type, precision, {"shape": [side, side], "bytes_per_call": moved},
                      t.repeats, t.median_s, t.spread)


def matmul_precisions(device) -> list[str]:
    """Precisions whose matmul rate the profile measures: fp32 (+ tf32 on CUDA), fp16, bf16."""
    device = resolve_device(device)
    names = _devices.supported_precisions(device)
    if device.type == "cpu":
        names = [p for p in names if p != "fp16"]  # the course runs fp32/bf16 on CPU
    if device.type == "cuda":
        names.insert(1, "tf32")
    return names


def matmul_flops(device=None, precision: str = "fp32", n: int | None = None,
                 fast: bool | None = None) -> Microbench:
    """Achievable dense matmul rate: ``2 n^3`` FLOP per ``torch.mm`` of two n x n matrices.

    ``precision``: fp32, bf16, fp16, or tf32 (CUDA: fp32 inputs with TF32 tensor cores).
    Default n: CPU 2048 (1024 fast), CUDA 8192 (4096 fast), MPS 4096 (2048 fast).
    """
    from . import precision as _precision

    device, fast = resolve_device(device), fast_mode(fast)
    tf32 = precision == "tf32"
    if tf32 and device.type != "cuda":
        raise ValueError(f"precision={precision!r} exists only on CUDA devices; use fp32, fp16 or bf16")
    dtype = torch.float32 if tf32 else _precision.torch_dtype(precision)
    if n is None:
        n = {"cpu": 1024 if fast else 2048, "cuda": 4096 if fast else 8192}.get(device.type, 2048 if fast else 4096)
    a = _random(n * n, dtype, device).view(n, n)
    b = _random(n * n, dtype, device, seed=1).view(n, n)
    c = torch.empty(n, n, dtype=dtype, device=device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("high" if tf32 else "highest")
        try:
            t = time_fn(lambda: torch.mm(a, b, out=c), device, min_run_time=_min_time(fast))
        finally:
            torch.set_float32_matmul_precision(old)
    flops = 2.0 * n ** 3
    return Microbench(f"matmul_flops_{precision}", flops / t.median_s, "FLOP/s",
                      f"torch.mm of two {n}x{n} {precision} matrices; 2*n^3 / median time",
                      device.type, precision, {"n": n, "flop_per_call": flops},
                      t.repeats, t.median_s, t.spread)


def launch_overhead(device=None, n_ops: int = 200, fast: bool | None = None, graph: bool = False) -> Microbench:
    """Time per tiny op when ``n_ops`` of them run back to back (``x.add_(c)`` on 16 floats).

    On a GPU this is the per-kernel launch cost of eager PyTorch (``graph=False``) or of a
    replayed CUDA graph of the same ops (``graph=True``). On the CPU it is PyTorch's per-op
    dispatch overhead (Python -> C++ -> kernel), which small models pay on every op too.
    """
    device, fast = resolve_device(device), fast_mode(fast)
    if graph and device.type != "cuda":
        raise ValueError(f"graph=True needs a CUDA device, not {device.type!r}")
    x = _random(16, torch.float32, device)

    def ops():
        for _ in range(n_ops):
            x.add_(1e-3)

    fn, how = ops, "eager"
    if graph:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            ops()
        torch.cuda.current_stream().wait_stream(stream)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            ops()
        fn, how = g.replay, "one CUDA graph replay"
    t = time_fn(fn, device, min_run_time=0.1 if fast else 0.3)
    what = "dispatch" if device.type == "cpu" else "launch"
    return Microbench("launch_overhead_graph" if graph else "launch_overhead", t.median_s / n_ops, "s",
                      f"{n_ops} x x.add_(c) on 16 floats ({how}); median time / {n_ops}: per-op {what} cost",
                      device.type, "fp32", {"n_ops": n_ops, "numel": 16},
                      t.repeats * n_ops, t.median_s, t.spread)


def launch_overhead_in_context(device=None, ops_per_gap: int = 6, nbytes: int | None = None,
                               fast: bool | None = None, rounds: int | None = None) -> Microbench:
    """Per-op cost of tiny ops that run *between weight streams*, as they do in a decode step.

    ``launch_overhead`` times 200 tiny ops back to back: Python, the dispatcher and the kernel
    all stay in the core's caches, so it is the best case. In a decode step each small op (norm,
    residual add, view, cache write...) runs right after a GEMV has streamed megabytes of
    weights through those caches and evicted that code and data. This benchmark reproduces that:
    a ``nbytes`` buffer (default 256 MiB on CPU, as the read benchmark) cut into 8 MiB matrices;
    call A streams every matrix (``F.linear`` with one row, like decode) and runs
    ``ops_per_gap`` x ``x.add_(c)`` on 16 floats after each; call B only streams. A and B
    alternate, each timed once per round; the result is median(A - B) / number of tiny ops.
    The default of 6 ops per gap is about what the toy model runs between two GEMVs (~200 small
    ops for ~33 GEMVs per step). It is a machine property measured on its own, never fitted on
    the decode timings it then predicts.

    CPU only: on a GPU the weights do not pass through the CPU's caches.
    """
    import torch.nn.functional as F

    device, fast = resolve_device(device), fast_mode(fast)
    if device.type != "cpu":
        raise ValueError(f"launch_overhead_in_context measures CPU caches; device {device.type!r} is not a CPU")
    if isinstance(ops_per_gap, bool) or not isinstance(ops_per_gap, int) or ops_per_gap < 1:
        raise ValueError(f"ops_per_gap={ops_per_gap!r} must be a whole number >= 1")
    nbytes = int(nbytes or _default_read_bytes(device, fast))
    cols = 1024
    rows = max(min(8 * MiB, nbytes) // (4 * cols), 1)
    n_mats = max(nbytes // (4 * rows * cols), 1)
    buf = _random(n_mats * rows * cols, torch.float32, device)
    mats = list(buf.view(n_mats, rows, cols).unbind(0))
    x = _random(cols, torch.float32, device, seed=2).view(1, cols)
    tiny = _random(16, torch.float32, device, seed=3)

    def streams_only():
        for w in mats:
            F.linear(x, w)

    def streams_and_ops():
        for w in mats:
            F.linear(x, w)
            for _ in range(ops_per_gap):
                tiny.add_(1e-3)

    rounds = rounds or (10 if fast else 25)
    with torch.inference_mode():
        for _ in range(2):  # warm-up
            streams_and_ops(), streams_only()
        clock = _sync_timer(device)
        with_ops, without, diffs = [], [], []
        enabled = gc.isenabled()
        gc.disable()
        try:
            for i in range(rounds):
                pair = {}
                for name, fn in ((("a", streams_and_ops), ("b", streams_only)) if i % 2 == 0
                                 else (("b", streams_only), ("a", streams_and_ops))):
                    start = clock()
                    fn()
                    pair[name] = clock() - start
                with_ops.append(pair["a"]), without.append(pair["b"]), diffs.append(pair["a"] - pair["b"])
        finally:
            if enabled:
                gc.enable()
    n_ops = n_mats * ops_per_gap
    diffs.sort()
    median = _quantile(diffs, 0.5)
    per_op = max(median / n_ops, 1e-9)  # the difference of two noisy times can be <= 0
    spread = (_quantile(diffs, 0.75) - _quantile(diffs, 0.25)) / abs(median) if median else float("nan")
    return Microbench("launch_overhead_in_context", per_op, "s",
                      f"{n_mats} cold 8 MiB GEMVs each followed by {ops_per_gap} x x.add_(c) on 16 floats, "
                      f"minus the GEMVs alone (paired, alternating); median difference / {n_ops}",
                      device.type, "fp32",
                      {"n_matrices": n_mats, "matrix_shape": [rows, cols], "ops_per_gap": ops_per_gap,
                       "n_ops": n_ops, "stream_bytes": n_mats * rows * cols * 4,
                       "median_streams_only_s": sorted(without)[len(without) // 2],
                       "median_streams_and_ops_s": sorted(with_ops)[len(with_ops) // 2]},
                      2 * rounds, median, spread)


def free(device) -> None:
    """Return freed buffers to the system / the GPU (call between benchmarks)."""
    device = torch.device(device)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


def cache_estimate(device=None, fast: bool | None = None, dram_bandwidth: float | None = None) -> Microbench:
    """Largest working set that still streams faster than DRAM: the size below which a timing
    may be a cache measurement, not a memory one.

    On CPU: one-thread GEMV bandwidth over matrices of 4 ... 128 MiB (16, 64, 128 in fast mode),
    each the best of two short runs (load from other processes only ever slows a run down),
    against ``dram_bandwidth`` (default: the best of two one-thread 256 MiB GEMVs). The answer is
    the largest size that ran >= 1.2x faster than DRAM (the smallest size if none did), capped by
    the last-level cache Linux reports: a VM often reports the host's whole L3 (300 MiB here)
    but gets only part of it, which is why this is measured. The cliff moves with the load on
    the host, so treat the answer as "about".
    On CUDA: the L2 size from the device properties (default 50 MB). MPS: 32 MB (a default).
    """
    device, fast = resolve_device(device), fast_mode(fast)
    if device.type != "cpu":
        size = 32 * MiB
        if device.type == "cuda":
            size = int(getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0) or 50e6)
        return Microbench("cache_bytes", float(size), "B", "device properties (L2) or a default",
                          device.type, "fp32", {}, 0, 0.0, 0.0)
    sizes = (16, 64, 128) if fast else (4, 16, 32, 48, 64, 96, 128)

    def best_of_two(nbytes):
        return max(gemv_bandwidth(device, nbytes=nbytes, fast=True).value for _ in range(2))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # capacity does not depend on threads; one thread is far less noisy
    try:
        if dram_bandwidth is None:
            dram_bandwidth = best_of_two(256 * MiB)
        rates = {mib: best_of_two(mib * MiB) for mib in sizes}
    finally:
        torch.set_num_threads(threads)
    fast_sizes = [mib for mib, rate in rates.items() if rate >= 1.2 * dram_bandwidth]
    size = max(fast_sizes, default=sizes[0]) * MiB
    llc = sysfs_cache_bytes()
    if llc:
        size = min(size, llc)
    return Microbench("cache_bytes", float(size), "B",
                      "largest GEMV working set running >= 1.2x the one-thread DRAM rate (capped by the reported LLC)",
                      device.type, "fp32",
                      {"gemv_rate_by_MiB": {str(k): v for k, v in rates.items()},
                       "dram_bandwidth": dram_bandwidth, "reported_llc_bytes": llc},
                      2 * len(sizes), 0.0, 0.0)


def sysfs_cache_bytes() -> int | None:
    """Size of the largest CPU cache Linux reports for cpu0 (None where it does not)."""
    from pathlib import Path

    best = None
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (index / "size").read_text().strip().upper()
            scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
            value = int(text.rstrip("KMG")) * scale
        except (OSError, ValueError):
            continue
        best = value if best is None else max(best, value)
    return best
