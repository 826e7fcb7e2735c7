"""Timing the toy transformer: decode and prefill, sweeps, MBU/MFU, and the ``bench`` command.

Every timing follows the brief's rules: random weights and inputs (never zeros), warm-up, a
synchronised clock, the median of many runs. Every record carries the bytes and FLOPs the step
*really* moves, counted the way it is timed (COURSE_BRIEF, "Traps to avoid"):

* weights: every parameter except the embedding table (a lookup reads one row), LM head
  included: ``ToyConfig.weight_bytes``;
* KV cache: the positions attention reads. The eager step attends over the filled prefix
  [0, pos], i.e. ``context_len + 1`` positions; the CUDA-graph step attends over the whole
  static cache (``max_seq_len`` positions) under a mask, so it is charged for all of them.

Records are plain dicts (one per measurement) that plots.py and pandas take as they are.
Per-step and per-token quantities are kept apart: a step produces ``batch`` tokens, so
``ms_per_token = ms_per_step / batch`` and ``tokens_per_s = batch / step time``; the
predictions ``predicted_ms``, ``launch_aware_ms`` and ``roofline_ms`` are per step.

A decode record (time_decode) holds: preset, device, device_name, precision, batch, threads,
mode ("eager" / "cuda-graph"), context_len, n_params, weight_bytes, kv_positions_read,
kv_bytes, bytes_per_step, bytes_per_token, flops_per_token, ms_per_step, ms_per_token,
tokens_per_s, spread (IQR / median), repeats, bandwidth (the profile's read bandwidth),
predicted_ms (bytes / bandwidth), launch_aware_ms (+ n_kernels x per-op cost), roofline_ms
(max of the memory and compute times), n_kernels, n_aten_ops, n_python_calls,
launch_overhead_s (the per-op cost used: in a CUDA graph the per-kernel replay cost; eager on
the CPU the in-context cost of profile.op_overhead), launch_overhead_tight_s (the tight-loop
per-op cost, for comparison), mbu_measured, mbu_datasheet (None unless the device is in the hardware
catalogue), mfu (against the measured matmul rate), fits_in_cache.

The machine numbers (bandwidth, peak FLOP/s, per-op overhead, cache size) come from the cached
machine profile (profile.py); the microbenchmarks behind it are in microbench.py.
"""

from __future__ import annotations

import math
import re
import weakref
from collections import Counter

import torch

from . import hardware as _hardware
from . import microbench as _mb
from . import model as _model
from . import perf
from .profile import MachineProfile, get_profile

_DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


# ----------------------------------------------------------------------------- utilisation
def _rate(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a finite number greater than zero")
    return float(value)


def mbu(bytes_per_token, tokens_per_s, bandwidth) -> float:
    """Model bandwidth utilisation: bytes moved per token x tokens/s / bandwidth (1.0 = 100 %).

    >>> mbu(1e9, 10, 2e10)
    0.5
    """
    return _rate("bytes_per_token", bytes_per_token) * _rate("tokens_per_s", tokens_per_s) / _rate("bandwidth", bandwidth)


def mfu(flops_per_token, tokens_per_s, peak_flops) -> float:
    """Model FLOP/s utilisation: FLOPs per token x tokens/s / peak FLOP/s (1.0 = 100 %)."""
    return _rate("flops_per_token", flops_per_token) * _rate("tokens_per_s", tokens_per_s) / _rate("peak_flops", peak_flops)


def linear_fit(xs, ys) -> tuple[float, float, float]:
    """Least-squares line y = slope * x + intercept and its R^2 (1.0 = a perfect line)."""
    import numpy as np

    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    if x.ndim != 1 or x.shape != y.shape or len(x) < 2:
        raise ValueError(f"xs and ys must be two 1-D sequences of equal length >= 2, got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("xs and ys must be finite numbers")
    if np.ptp(x) == 0:
        raise ValueError("xs must not all be equal: a line through one x is undefined")
    slope, intercept = np.polyfit(x, y, 1)
    residual = float(((y - (slope * x + intercept)) ** 2).sum())
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - residual / total if total > 0 else 1.0
    return float(slope), float(intercept), r2


def datasheet_hardware(device_name: str):
    """The catalogue entry (hardware.Hardware) matching a torch device name, or None.

    "NVIDIA H100 80GB HBM3" -> H100-SXM, "NVIDIA H100 PCIe" -> H100-PCIe, "NVIDIA A100-SXM4-40GB"
    -> A100-40GB, ... CPUs and Apple GPUs are not matched (their memory system varies).
    """
    name = device_name.upper()
    rules = [(r"H200", "H200"), (r"H100.*NVL", None), (r"H100.*PCIE", "H100-PCIe"), (r"H100", "H100-SXM"),
             (r"A100.*40\s*GB", "A100-40GB"), (r"A100", "A100-80GB"), (r"\bL4\b", "L4"),
             (r"RTX 4090", "RTX-4090"), (r"MI300X", "MI300X")]
    for pattern, entry in rules:
        if re.search(pattern, name):
            return _hardware.get(entry) if entry else None
    return None


# ----------------------------------------------------------------------------- op counting
_OP_COUNTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def count_ops(model, batch: int = 1, context_len: int = 1, graph: bool = False) -> dict:
    """Count what one decode step dispatches (counted once per model and kind of step, cached).

    ``python_calls``: torch functions and Tensor methods called from Python (TorchFunctionMode);
    ``aten_ops``: every ATen op that reaches the dispatcher, ``views`` of them (no kernel);
    ``kernels``: the non-view ATen ops, i.e. the kernels the step runs (a GEMM, a softmax...).

    On CUDA also ``cuda_kernels``: kernels, copies and memsets the GPU ran (torch.profiler).

    The launch-aware model (time_decode's ``n_kernels``) charges, per step:
    eager (CPU or GPU): ``aten_ops`` x the measured per-op cost, because every op, views
    included, passes through Python and the dispatcher on the CPU, and a launch-bound GPU waits
    for exactly that; in a CUDA graph: ``cuda_kernels`` (else ``kernels``) x the per-kernel
    replay cost, since a graph replays kernels only. Ops are counted at the top level:
    ``linear`` is one op, not linear -> t -> mm.
    """
    from torch.overrides import TorchFunctionMode
    from torch.utils._python_dispatch import TorchDispatchMode

    key = (batch, context_len, graph)
    cache = _OP_COUNTS.setdefault(model, {})
    if key in cache:
        return cache[key]

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops, self.views = Counter(), 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops[str(func.overloadpacket)] += 1
            self.views += bool(func.is_view)
            return func(*args, **(kwargs or {}))

    class Calls(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.n = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.n += 1
            return func(*args, **(kwargs or {}))

    token = torch.randint(0, model.config.vocab_size, (batch, 1), device=model.device)
    ops, calls = Ops(), Calls()
    with torch.inference_mode(), calls, ops:
        if graph:  # what make_graphed_decode records: the static-cache step
            model(token, torch.tensor(context_len, device=model.device), static_kv=True)
        else:
            model(token, start_pos=context_len)[:, -1]
    n_ops = sum(ops.ops.values())
    cache[key] = {"python_calls": calls.n, "aten_ops": n_ops, "views": ops.views,
                  "kernels": n_ops - ops.views, "by_op": dict(ops.ops.most_common())}
    if model.device.type == "cuda":  # count the GPU's own kernels and copies as well
        cache[key]["cuda_kernels"] = _profile_cuda_kernels(model, token, context_len, graph)
    return cache[key]


def _profile_cuda_kernels(model, token, context_len: int, graph: bool) -> int | None:
    """Kernels (and memcpy/memset) the GPU runs in one eager decode step, from torch.profiler."""
    import warnings

    from torch.profiler import ProfilerActivity, profile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the profiler warns about its own event buffers
            with torch.inference_mode(), profile(activities=[ProfilerActivity.CUDA]) as prof:
                if graph:
                    model(token, torch.tensor(context_len, device=model.device), static_kv=True)
                else:
                    model(token, start_pos=context_len)
                torch.cuda.synchronize(model.device)
            return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA) or None
    except (RuntimeError, AttributeError, AssertionError):  # no CUPTI, ...: the op count remains
        return None


# ----------------------------------------------------------------------------- timing
def _precision_of(model) -> str:
    return _DTYPE_NAMES[model.dtype]


def _preset_of(config) -> str:
    return next((name for name, c in _model.PRESETS.items() if c == config), "custom")


def _min_time(fast) -> float:
    return 0.3 if _mb.fast_mode(fast) else 1.0


def _base_record(model, profile: MachineProfile, batch: int) -> dict:
    precision = _precision_of(model)
    return {"preset": _preset_of(model.config), "device": model.device.type, "device_name": profile.device_name,
            "precision": precision, "batch": batch, "threads": torch.get_num_threads(),
            "n_params": model.config.n_params(), "weight_bytes": model.config.weight_bytes(precision)}


def time_decode(model, batch: int = 1, context_len: int | None = None, repeats: int | None = None,
                graph: bool = False, profile: MachineProfile | None = None, fast: bool | None = None,
                seed: int = 0) -> dict:
    """Median time of one decode step of ``batch`` sequences after ``context_len`` cached tokens.

    The cache is first filled by a prefill of a random prompt (so attention reads real values),
    then the step at position ``context_len`` is timed repeatedly (``repeats`` single calls, or
    auto-ranged for ~1 s, 0.3 s in fast mode), after warm-up. ``graph=True`` times the CUDA-graph
    step of ``generate.make_graphed_decode``. Returns one record (see the module docstring).
    """
    from . import generate

    if context_len is None:
        context_len = min(128, model.config.max_seq_len // 2)
    if isinstance(context_len, bool) or not isinstance(context_len, int) or context_len < 0:
        raise ValueError(f"context_len={context_len!r} must be a whole number >= 0")
    model.check_fits(batch, context_len + 1)
    device = model.device
    profile = profile or get_profile(device, fast=fast)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    vocab = model.config.vocab_size
    step = generate.make_graphed_decode(model, batch) if graph else (
        lambda tok, pos: generate.decode_one_token(model, tok, pos))
    if context_len:  # fill the cache with real K and V (build the graph first: capture writes slot 0)
        generate.prefill(model, torch.randint(0, vocab, (batch, context_len), generator=gen).to(device))
    token = torch.randint(0, vocab, (batch, 1), generator=gen).to(device)
    t = _mb.time_fn(lambda: step(token, context_len), device, min_run_time=_min_time(fast), warmup=3,
                    repeats=repeats)

    cfg, rec = model.config, _base_record(model, profile, batch)
    precision = rec["precision"]
    kv_positions = cfg.max_seq_len if graph else context_len + 1
    kv_bytes = batch * kv_positions * perf.kv_cache_bytes_per_token(cfg.n_layers, cfg.n_kv_heads, cfg.head_dim, precision)
    bytes_per_step = rec["weight_bytes"] + kv_bytes
    step_s = t.median_s
    flops = perf.forward_flops(**cfg.perf_shape, n_tokens=1, past=context_len, batch=batch)
    ops = count_ops(model, batch, context_len, graph)
    n_kernels = (ops.get("cuda_kernels") or ops["kernels"]) if graph else ops["aten_ops"]  # see count_ops
    overhead = profile.launch_overhead_graph if graph else profile.op_overhead  # eager CPU: in-context cost
    peak = profile.matmul_flops.get(precision)
    hw = datasheet_hardware(profile.device_name)
    tokens_per_s = batch / step_s
    rec.update({
        "mode": "cuda-graph" if graph else "eager", "context_len": context_len, "kv_positions_read": kv_positions,
        "kv_bytes": kv_bytes, "bytes_per_step": bytes_per_step, "bytes_per_token": bytes_per_step / batch,
        "flops_per_token": flops / batch,
        "ms_per_step": step_s * 1e3, "ms_per_token": step_s * 1e3 / batch, "tokens_per_s": tokens_per_s,
        "spread": t.spread, "repeats": t.repeats,
        "bandwidth": profile.bandwidth,
        "predicted_ms": bytes_per_step / profile.bandwidth * 1e3,
        "n_kernels": n_kernels, "n_aten_ops": ops["aten_ops"], "n_python_calls": ops["python_calls"],
        "launch_overhead_s": overhead, "launch_overhead_tight_s": profile.launch_overhead,
        "launch_aware_ms": perf.launch_aware_decode_time(rec["weight_bytes"], kv_bytes, profile.bandwidth,
                                                         n_kernels, overhead) * 1e3,
        "roofline_ms": max(bytes_per_step / profile.bandwidth, flops / peak if peak else 0.0) * 1e3,
        "launch_aware_roofline_ms": (max(bytes_per_step / profile.bandwidth, flops / peak if peak else 0.0)
                                     + n_kernels * overhead) * 1e3,
        "mbu_measured": mbu(bytes_per_step / batch, tokens_per_s, profile.bandwidth),
        "mbu_datasheet": mbu(bytes_per_step / batch, tokens_per_s, hw.bandwidth) if hw else None,
        "mfu": mfu(flops / batch, tokens_per_s, peak) if peak else None,
        "fits_in_cache": bytes_per_step < profile.cache_bytes,
    })
    return rec


def time_prefill(model, prompt_len: int, batch: int = 1, repeats: int | None = None,
                 profile: MachineProfile | None = None, fast: bool | None = None, seed: int = 0) -> dict:
    """Median time of ``generate.prefill`` over a random (batch, prompt_len) prompt: one record
    with ms, prefill tokens/s, FLOPs, MFU and the roofline prediction max(bytes/B, FLOPs/peak)."""
    from . import generate

    if isinstance(prompt_len, bool) or not isinstance(prompt_len, int) or prompt_len < 1:
        raise ValueError(f"prompt_len={prompt_len!r} must be a whole number >= 1")
    model.check_fits(batch, prompt_len)
    device = model.device
    profile = profile or get_profile(device, fast=fast)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    prompt = torch.randint(0, model.config.vocab_size, (batch, prompt_len), generator=gen).to(device)
    t = _mb.time_fn(lambda: generate.prefill(model, prompt), device, min_run_time=_min_time(fast), warmup=2,
                    repeats=repeats)
    cfg, rec = model.config, _base_record(model, profile, batch)
    precision = rec["precision"]
    kv_bytes = batch * prompt_len * perf.kv_cache_bytes_per_token(cfg.n_layers, cfg.n_kv_heads, cfg.head_dim, precision)
    flops = perf.forward_flops(**cfg.perf_shape, n_tokens=prompt_len, past=0, batch=batch)
    moved = rec["weight_bytes"] + kv_bytes  # weights read once, K and V written once
    peak = profile.matmul_flops.get(precision)
    tokens_per_s = batch * prompt_len / t.median_s
    rec.update({
        "prompt_len": prompt_len, "ms": t.median_s * 1e3, "tokens_per_s": tokens_per_s,
        "spread": t.spread, "repeats": t.repeats, "bytes": moved, "flops": flops, "intensity": flops / moved,
        "achieved_flops": flops / t.median_s, "memory_ms": moved / profile.bandwidth * 1e3,
        "compute_ms": flops / peak * 1e3 if peak else None,
        "predicted_ms": max(moved / profile.bandwidth, flops / peak if peak else 0.0) * 1e3,
        "bound": "compute" if peak and flops / peak > moved / profile.bandwidth else "memory",
        "mfu": mfu(flops / (batch * prompt_len), tokens_per_s, peak) if peak else None,
    })
    return rec


# ----------------------------------------------------------------------------- sweeps
def _progress(items, progress: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, disable=not progress, leave=False)


def free_model(device) -> None:
    """Collect garbage and return cached device memory (call after ``del model``)."""
    _mb.free(device)


def decode_sweep(presets, device=None, precision: str = "fp32", batch: int = 1, context_len: int | None = None,
                 graph: bool = False, profile: MachineProfile | None = None, fast: bool | None = None,
                 repeats: int | None = None, progress: bool = True) -> list[dict]:
    """Batch-``batch`` decode records for each preset name or ToyConfig: each model is built,
    timed and freed before the next, so only one is in memory at a time."""
    device = _mb.resolve_device(device)
    profile = profile or get_profile(device, fast=fast)
    records = []
    for preset in _progress(list(presets), progress, "decode sweep"):
        model = _model.build_model(preset, device=device, precision=precision, max_batch=batch)
        try:
            records.append(time_decode(model, batch, context_len, repeats, graph, profile, fast))
        finally:
            del model
            free_model(device)
    return records


def prefill_sweep(model, lengths, batch: int = 1, profile: MachineProfile | None = None, fast: bool | None = None,
                  repeats: int | None = None, progress: bool = True) -> list[dict]:
    """time_prefill records for each prompt length."""
    profile = profile or get_profile(model.device, fast=fast)
    return [time_prefill(model, n, batch, repeats, profile, fast) for n in _progress(list(lengths), progress, "prefill")]


def batch_sweep(model, batches, context_len: int | None = None, profile: MachineProfile | None = None,
                fast: bool | None = None, repeats: int | None = None, progress: bool = True,
                graph: bool = False) -> list[dict]:
    """time_decode records for each batch size (the model needs max_batch >= max(batches));
    ``graph=True`` times CUDA-graph steps, so launch overhead does not hide the knee."""
    profile = profile or get_profile(model.device, fast=fast)
    return [time_decode(model, b, context_len, repeats, graph, profile, fast)
            for b in _progress(list(batches), progress, "batch sweep")]


def context_sweep(model, context_lens, batch: int = 1, profile: MachineProfile | None = None,
                  fast: bool | None = None, repeats: int | None = None, progress: bool = True) -> list[dict]:
    """time_decode records for each context length (KV-cache reads grow with it)."""
    profile = profile or get_profile(model.device, fast=fast)
    return [time_decode(model, batch, c, repeats, False, profile, fast)
            for c in _progress(list(context_lens), progress, "context sweep")]


def parallel_vs_sequential(model, n_tokens: int = 64, seed: int = 0) -> dict:
    """Notebook 01's demonstration: the logits of a known ``n_tokens`` sequence computed in one
    teacher-forced pass, and token by token through the KV cache. Same numbers, very different
    time: the pass reads each weight once for all positions, the loop once per position."""
    from . import generate

    model.check_fits(1, n_tokens)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    tokens = torch.randint(0, model.config.vocab_size, (1, n_tokens), generator=gen).to(model.device)

    def one_by_one():
        return torch.stack([generate.decode_one_token(model, tokens[:, i:i + 1], i) for i in range(n_tokens)], 1)

    parallel = generate.teacher_forced_logits(model, tokens)
    sequential = one_by_one()
    t_par = _mb.time_fn(lambda: generate.teacher_forced_logits(model, tokens), model.device, min_run_time=0.2, warmup=1)
    t_seq = _mb.time_fn(one_by_one, model.device, min_run_time=0.2, warmup=1)
    return {"n_tokens": n_tokens, "parallel_ms": t_par.median_s * 1e3, "sequential_ms": t_seq.median_s * 1e3,
            "max_abs_diff": (parallel - sequential).abs().max().item(),
            "same_argmax": bool((parallel.argmax(-1) == sequential.argmax(-1)).all())}


def batching_claim(records: list[dict], batch: int = 32) -> dict:
    """Test "``batch`` requests give ``batch``x the throughput at the same latency" on batch-sweep
    records: per context length, the tokens/s gain and the step-time ratio of ``batch`` vs 1."""
    by_context: dict = {}
    for r in records:
        by_context.setdefault(r["context_len"], {})[r["batch"]] = r
    result = {}
    for ctx, rows in sorted(by_context.items()):
        if 1 not in rows or batch not in rows:
            raise ValueError(f"batch={batch!r}: the records need batch 1 and batch {batch} at context {ctx}")
        result[ctx] = {"throughput_gain": rows[batch]["tokens_per_s"] / rows[1]["tokens_per_s"],
                       "latency_ratio": rows[batch]["ms_per_step"] / rows[1]["ms_per_step"]}
    return result
