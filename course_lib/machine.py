"""This machine: which device the course runs on, and the one timing harness.

    pick_device        a CUDA GPU, else Apple's MPS, else the CPU (or COURSE_DEVICE / an override)
    check_memory       does a toy model of this shape fit in the memory still free?
    time_fn            THE timing harness: warm up, synchronise, median and IQR per call
    time_interleaved   several callables timed in alternating rounds (fair on a noisy machine)
    random_tensor      benchmark inputs: random values, never zeros
    graphed            work captured in a CUDA graph; make_graphed_decode: a decode step per cache bucket

Every measurement in the course goes through ``time_fn`` or ``time_interleaved`` (roofs.py
measures the machine's roofs with them, measure.py times the toy model). Fast mode
(COURSE_FAST=1, the one switch, used by Binder and workshops) shortens the runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import math
import os
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import psutil
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.benchmark import Measurement, Timer
from torch.utils.benchmark.utils.common import TaskSpec

from .perf import RUNNABLE, check_count, normalize_precision

MiB = 1 << 20
KINDS = ("cpu", "cuda", "mps")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def fast_mode(fast: bool | None = None) -> bool:
    """``fast`` if given, else whether COURSE_FAST is set to 1/true/yes/on (read now)."""
    if fast is not None:
        return bool(fast)
    return os.environ.get("COURSE_FAST", "").strip().lower() in ("1", "true", "yes", "on")


# ----------------------------------------------------------------------------- the device
def available_kinds() -> list[str]:
    """Device kinds torch can use on this machine, best first."""
    mps = getattr(torch.backends, "mps", None)
    return (["cuda"] if torch.cuda.is_available() else []) + (["mps"] if mps and mps.is_available() else []) + ["cpu"]


def pick_device(override: str | torch.device | None = None) -> torch.device:
    """The device to use: ``override``, else $COURSE_DEVICE, else the best available."""
    if isinstance(override, torch.device):
        if override.type in ("cuda", "mps") and override.index is not None:
            return override
        override = override.type
    choice = override or os.environ.get("COURSE_DEVICE") or available_kinds()[0]
    kind = str(choice).strip().lower()
    if kind not in KINDS:
        raise ValueError(f"device={choice!r} is not a device kind; use one of {', '.join(KINDS)}")
    if kind not in available_kinds():
        raise ValueError(f"device={choice!r} is not available on this machine; available: "
                         f"{', '.join(available_kinds())}")
    return torch.device(kind)


def device_name(device) -> str:
    """A human-readable name: the GPU's model, or the CPU's model name where the OS tells it."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple silicon GPU (MPS)"
    with contextlib.suppress(OSError):  # not Linux
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "CPU"


def torch_dtype(precision: str) -> torch.dtype:
    """The torch dtype that runs ``precision``; ValueError for storage-only formats (int4...)."""
    name = normalize_precision(precision)
    if name not in DTYPES:
        raise ValueError(f"precision={precision!r} can be used in the calculators but the toy model "
                         f"cannot run it; run one of {', '.join(RUNNABLE)}")
    return DTYPES[name]


def precision_of(model) -> str:
    """The precision name of a model's weights: "fp32", "bf16" or "fp16"."""
    return next(name for name, dtype in DTYPES.items() if dtype == model.dtype)


def supported_precisions(device) -> list[str]:
    """Runnable precisions on this device: fp32 always; fp16/bf16 where a matmul works."""
    device, names = torch.device(device), ["fp32"]
    for name in ("fp16", "bf16"):
        try:
            a = torch.ones(4, 4, dtype=DTYPES[name], device=device)
            (a @ a).sum().item()
        except (RuntimeError, TypeError):
            continue
        if not (device.type == "cuda" and name == "bf16" and not torch.cuda.is_bf16_supported()):
            names.append(name)
    return names


def check_precision(device, precision: str) -> str:
    """The canonical precision name, or ValueError if ``device`` cannot run it."""
    name, supported = normalize_precision(precision), supported_precisions(device)
    torch_dtype(name)  # a storage-only format (int4...) gets its own message
    if name not in supported:
        raise ValueError(f"precision={precision!r} does not run on {torch.device(device).type}; "
                         f"supported here: {', '.join(supported)}")
    return name


def use_threads(n: int | None = None) -> int:
    """Set torch's CPU threads: ``n``, else $COURSE_THREADS, else 1. Returns the number set.

    One thread is the course's default: on a small shared machine a second thread adds little
    bandwidth, and when another process holds a core every parallel op waits for it."""
    value = (os.environ.get("COURSE_THREADS") or "1") if n is None else n
    try:
        n = check_count("threads", int(value) if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(f"threads={value!r} must be a whole number >= 1") from None
    torch.set_num_threads(n)
    return n


def container_limit() -> tuple[int, int] | None:
    """(limit, usage) in bytes of this container's memory (Binder, Docker: cgroup v2 or v1), or None if unlimited."""
    v1 = "/sys/fs/cgroup/memory/memory."
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         (v1 + "limit_in_bytes", v1 + "usage_in_bytes")):
        try:
            cap, used = Path(limit).read_text().strip(), int(Path(usage).read_text())
        except (OSError, ValueError):
            continue
        if cap.isdigit() and int(cap) < 1 << 60:
            return int(cap), used
    return None


def free_memory(device) -> int:
    """Bytes that can still be allocated on ``device``: GPU memory, or RAM within any container limit."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    free, limit = int(psutil.virtual_memory().available), container_limit()
    return free if limit is None else min(free, max(limit[0] - limit[1], 0))


def total_memory(device) -> int:
    """Total bytes of the device's memory (RAM on CPU and MPS, which share it; within any container limit)."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    total, limit = int(psutil.virtual_memory().total), container_limit()
    return total if limit is None else min(total, limit[0])


# build_model asks for this much more memory than weights + KV cache, for activations (logits of
# a full-length prefill, MLP hidden states) and allocator slack.
MEMORY_HEADROOM = 1.25


def check_memory(config, device: torch.device, precision: str, max_batch: int) -> None:
    """ValueError if weights + KV cache (with MEMORY_HEADROOM) exceed the device's free memory."""
    needed = config.total_bytes(max_batch, precision) * MEMORY_HEADROOM
    free = free_memory(device)
    if needed > free:
        raise ValueError(
            f"this model needs {needed / 1e9:.3g} GB ({precision}, max_batch={max_batch}, "
            f"{config.n_params() / 1e6:.1f} M params, weights + KV cache + headroom) but only "
            f"{free / 1e9:.3g} GB is free on {device.type}; try a smaller preset, a 16-bit "
            f"precision, a smaller max_batch or max_seq_len")


def synchronize(device) -> None:
    """Wait until all queued work on ``device`` has finished (a no-op on the CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def release(device) -> None:
    """Give freed buffers back to the system or the GPU (call after ``del model``)."""
    gc.collect()
    kind = torch.device(device).type
    if kind == "cuda":
        torch.cuda.empty_cache()
    elif kind == "mps":
        torch.mps.empty_cache()
    else:  # glibc keeps freed tensors of a few MB in its heap; give them back (Binder has 2 GB in all)
        with contextlib.suppress(OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to trim
            ctypes.CDLL("libc.so.6").malloc_trim(0)


# ----------------------------------------------------------------------------- the timing harness
def _clock(device):
    def now() -> float:
        synchronize(device)
        return time.perf_counter()
    return now


def time_fn(fn, device="cpu", min_run_time: float = 0.2, warmup: int = 2, repeats: int | None = None) -> Measurement:
    """Time ``fn()`` with ``torch.utils.benchmark``: warm up, synchronise the device around the
    clock, and return its ``Measurement`` (``.median``, ``.iqr``, ``.times`` in seconds per call).

    ``repeats=None``: ``blocked_autorange(min_run_time)`` picks block size and count.
    ``repeats=n``: exactly n single calls, each timed (for slow calls such as a model step).
    The Timer runs at the current ``torch.get_num_threads()`` (its own default is 1 thread).
    """
    for _ in range(warmup):
        fn()
    if repeats is None:
        timer = Timer("fn()", globals={"fn": fn}, timer=_clock(device), num_threads=torch.get_num_threads())
        return timer.blocked_autorange(min_run_time=min_run_time)
    return time_interleaved({"fn": fn}, device, check_count("repeats", repeats), warmup=0)["fn"]


def time_interleaved(fns: dict, device="cpu", rounds: int = 5, warmup: int = 1, calls: int = 1,
                     progress: bool = False) -> dict[str, Measurement]:
    """Time each callable ``calls`` times (each call timed) in every round, alternating their
    order round by round, so that a slow minute on a shared machine hits all of them alike.
    One Measurement per name (median, IQR) over all its timed calls.

    Written here rather than taken from torch.utils.benchmark because its Timer measures one
    statement at a time; comparisons in this course are ratios measured in the same rounds."""
    from tqdm.auto import trange

    clock, names = _clock(device), list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    enabled = gc.isenabled()
    gc.disable()  # as timeit does
    try:
        for i in trange(check_count("rounds", rounds), desc="interleaved rounds", disable=not progress, leave=False):
            for name in (names if i % 2 == 0 else names[::-1]):
                for _ in range(check_count("calls", calls)):
                    start = clock()
                    fns[name]()
                    times[name].append(clock() - start)
    finally:
        if enabled:
            gc.enable()
    return {name: measurement(ts, str(name)) for name, ts in times.items()}


def measurement(times: list[float], name: str = "fn") -> Measurement:
    """Seconds per call (one sample per call) as a ``torch.utils.benchmark.Measurement``."""
    return Measurement(1, list(times), TaskSpec(stmt=name, setup="", num_threads=torch.get_num_threads()))


def graphed(fn, warmup: int = 1):
    """``fn`` captured in a CUDA graph after ``warmup`` calls on a side stream (as the documentation advises):
    its replay, which runs the same kernels without Python or launches in between."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    g = torch.cuda.CUDAGraph()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a graph of metadata-only ops is empty, and torch says so
        with torch.cuda.graph(g):
            fn()

    def replay(_keep=fn):  # holds fn, and so the tensors the graph reads: freed, their memory could be reused
        g.replay()

    return replay


def random_tensor(shape, dtype: torch.dtype, device, seed: int = 0) -> torch.Tensor:
    """Random values in [-1, 1) (never zeros): a 1 Mi-value random block, drawn on the CPU, tiled with a shift per
    tile (memory traffic does not depend on the values, and drawing 256 MiB afresh is slow)."""
    n, gen = math.prod(shape), torch.Generator().manual_seed(seed)
    block = torch.empty(min(n, MiB), dtype=torch.float32).uniform_(-1.0, 1.0, generator=gen).to(dtype)
    x = torch.empty(n, dtype=dtype, device=device)
    for i, start in enumerate(range(0, n, block.numel())):  # chunked: no second full-size copy
        chunk = block[:n - start].roll(i)
        x[start:start + chunk.numel()].copy_(chunk)
    return x.view(shape)


def graph_bucket(pos: int, max_seq_len: int) -> int:
    """The cache slots a graphed decode step at ``pos`` attends over: the smallest power of two from 128
    above pos, capped at max_seq_len (a graph's shapes are fixed; past 128 it reads < 2x the filled slots)."""
    return min(max_seq_len, max(128, 1 << pos.bit_length()))


def graph_attention():
    """Attention kernels for CUDA graphs, cuDNN's first where it runs (16-bit, recent GPUs): it plans each
    new shape anew (build_model turns it off for eager decode), and a graph's shape is planned once, at capture."""
    return sdpa_kernel([SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                        SDPBackend.MATH], set_priority=True)


def make_graphed_decode(model, batch: int = 1) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """Capture one whole decode step of a ``model.ToyGPT`` in CUDA graphs; return ``decode(token (batch, 1), pos) ->
    logits (batch, vocab)``, a drop-in for ``decode_one_token`` at this batch size.

    The step runs on the static-cache path: fixed shapes, attention over a fixed number of cache slots
    under a mask. One graph per bucket of lengths (``graph_bucket``: 128, 256, ..., max_seq_len), all
    captured now, not at first use: capture then stays out of timed steps, and each graph holds only
    its activations (weights and cache are shared; the presets have at most 3 buckets). The returned
    logits are a static buffer that the next call overwrites (clone them to keep them).

    Build the graphs before prefilling: warm-up and capture write K and V at cache position 0.
    """
    device, S = model.device, model.config.max_seq_len
    if device.type != "cuda":
        raise ValueError(f"CUDA graphs need a CUDA device; this model is on {device.type}")
    model.check_fits(batch, 1)
    static_token = torch.zeros((batch, 1), dtype=torch.long, device=device)
    static_pos = torch.zeros((), dtype=torch.long, device=device)
    replays, logits = {}, {}
    with torch.inference_mode(), graph_attention():
        for n in sorted({graph_bucket(pos, S) for pos in range(S)}):
            def step(n=n):  # the captured call's logits stay: the buffer each replay of this bucket overwrites
                logits[n] = model(static_token, static_pos, static_kv=True, n_keys=n)[:, -1]  # (batch, vocab)
            replays[n] = graphed(step, warmup=3)

    def decode(token: torch.Tensor, pos: int) -> torch.Tensor:
        if not 0 <= pos < S:  # out of range would be a device-side assert
            raise ValueError(f"pos={pos} must be in [0, max_seq_len={S})")
        static_token.copy_(token)
        static_pos.fill_(pos)
        n = graph_bucket(pos, S)
        replays[n]()
        return logits[n]

    return decode
