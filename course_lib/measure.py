"""Timing the toy transformer, and comparing each timing with perf's predictions.

    time_decode      one decode step of ``batch`` sequences after ``context_len`` cached tokens
    time_prefill     one prompt of ``prompt_len`` tokens in one pass
    *_sweep          the same over presets, prompt lengths, batch sizes or context lengths
    decode_breakdown where a decode step's time goes, component by component (forward hooks)

Every record counts bytes and FLOPs the way the step is timed: weights are every parameter
except the embedding table (a lookup reads one row), LM head included; KV bytes are the cache
positions attention reads (the eager step reads the filled prefix, ``context_len + 1``
positions; the CUDA-graph step reads the whole static cache under a mask). The machine numbers
(bandwidth, peak FLOP/s, per-op cost) come from roofs.get_profile(); predictions come from perf.
Records are small dataclasses: ``dataclasses.asdict(record)`` gives JSON.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from tqdm.auto import tqdm

from . import hardware, perf
from .machine import pick_device, release, synchronize, time_fn
from .model import build_model, decode_one_token, make_graphed_decode, prefill, teacher_forced_logits
from .presets import preset_name
from .roofs import MachineProfile, get_profile

_PRECISION = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


@dataclass
class DecodeRecord:
    """One timed decode step. Times in ms (per step: a step yields ``batch`` tokens)."""

    preset: str
    device: str
    precision: str
    mode: str                   # "eager" or "cuda-graph"
    batch: int
    context_len: int
    weight_bytes: float         # streamed per step
    kv_bytes: float             # KV cache read per step
    flops: float                # matmul FLOPs per step
    ms_per_step: float          # median
    iqr_ms: float               # inter-quartile range of the step time
    repeats: int
    bandwidth: float            # the profile's memory roof (B/s)
    n_ops: int                  # ops charged the per-op cost (eager: torch calls; graph: kernels)
    op_cost: float              # s per op used by the launch-aware prediction
    predicted_ms: float         # bytes / bandwidth: the bound
    launch_aware_ms: float      # + n_ops x op_cost (perf.launch_aware_decode_time)
    roofline_ms: float          # max(bytes / bandwidth, FLOPs / peak) (perf.roofline_time)
    launch_aware_roofline_ms: float  # the roofline + n_ops x op_cost (batched steps)
    fits_in_cache: bool         # bytes per step below the profile's cache size: may beat DRAM
    datasheet_bandwidth: float | None = None  # the device's catalogue bandwidth, where known

    @property
    def bytes_per_step(self) -> float:
        return self.weight_bytes + self.kv_bytes

    @property
    def ms_per_token(self) -> float:
        return self.ms_per_step / self.batch

    @property
    def tokens_per_s(self) -> float:
        return self.batch / (self.ms_per_step / 1e3)

    @property
    def mbu(self) -> float:
        """Model bandwidth utilisation: bytes per step / step time / the measured roof."""
        return self.bytes_per_step / (self.ms_per_step / 1e3) / self.bandwidth

    @property
    def mbu_datasheet(self) -> float | None:
        """The same against the datasheet bandwidth (what published MBU figures divide by)."""
        bw = self.datasheet_bandwidth
        return self.bytes_per_step / (self.ms_per_step / 1e3) / bw if bw else None

    @classmethod
    def from_dict(cls, d: dict) -> DecodeRecord:
        """A record from JSON (also recorded runs of version 1, whose names differ a little)."""
        d = {"n_ops": d.get("n_kernels"), "op_cost": d.get("launch_overhead_s"), "launch_aware_roofline_ms": None,
             "flops": d.get("flops_per_token", 0.0) * d.get("batch", 1),
             "iqr_ms": d.get("spread", 0.0) * d.get("ms_per_step", 0.0), **d}
        return cls(**{f.name: d.get(f.name) for f in fields(cls)})


@dataclass
class PrefillRecord:
    """One timed prefill of ``prompt_len`` tokens (times in ms)."""

    preset: str
    device: str
    precision: str
    batch: int
    prompt_len: int
    ms: float
    iqr_ms: float
    repeats: int
    bytes: float                # weights read once + K and V written once
    flops: float
    memory_ms: float            # bytes / bandwidth
    compute_ms: float | None    # FLOPs / measured matmul rate (None where none was measured)

    @property
    def predicted_ms(self) -> float:
        return max(self.memory_ms, self.compute_ms or 0.0)

    @property
    def bound(self) -> str:
        return "compute" if (self.compute_ms or 0.0) > self.memory_ms else "memory"

    @property
    def tokens_per_s(self) -> float:
        return self.batch * self.prompt_len / (self.ms / 1e3)

    @property
    def intensity(self) -> float:
        return self.flops / self.bytes

    @property
    def achieved_flops(self) -> float:
        return self.flops / (self.ms / 1e3)


def precision_of(model) -> str:
    """The precision name of a model's weights: "fp32", "bf16" or "fp16"."""
    return _PRECISION[model.dtype]


def count_ops(model, batch: int = 1, context_len: int = 1, graph: bool = False) -> int:
    """Ops one decode step pays a fixed cost for. Eager: the torch functions and methods called
    from Python (``TorchFunctionMode``; each goes through Python and the dispatcher, and a
    launch-bound GPU waits for exactly that). In a CUDA graph: the kernels the GPU runs
    (``torch.profiler``), since a replay skips Python entirely."""
    token = torch.zeros((batch, 1), dtype=torch.long, device=model.device)

    def step():
        if graph:
            return model(token, torch.tensor(context_len, device=model.device), static_kv=True)
        return model(token, start_pos=context_len)

    if graph:
        from torch.profiler import ProfilerActivity, profile

        with torch.inference_mode(), profile(activities=[ProfilerActivity.CUDA]) as prof:
            step()
            synchronize(model.device)
        return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)

    class Calls(TorchFunctionMode):
        n = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.n += 1
            return func(*args, **(kwargs or {}))

    with torch.inference_mode(), Calls() as calls:
        step()
    return calls.n


def _fill_cache(model, batch: int, context_len: int, seed: int) -> torch.Tensor:
    """Prefill a random context (so attention reads real values); return a random next token."""
    gen = torch.Generator().manual_seed(seed)
    vocab, device = model.config.vocab_size, model.device
    if context_len:
        prefill(model, torch.randint(0, vocab, (batch, context_len), generator=gen).to(device))
    return torch.randint(0, vocab, (batch, 1), generator=gen).to(device)


def time_decode(model, batch: int = 1, context_len: int | None = None, repeats: int | None = None,
                graph: bool = False, profile: MachineProfile | None = None, fast: bool | None = None,
                seed: int = 0) -> DecodeRecord:
    """Median time of one decode step of ``batch`` sequences at position ``context_len``
    (default: 128, or half the cache), after warm-up; ``graph=True`` replays the step from a
    CUDA graph. ``repeats`` single calls, or auto-ranged for ~1 s (0.3 s in fast mode)."""
    cfg, device = model.config, model.device
    context_len = perf.check_count("context_len", min(128, cfg.max_seq_len // 2) if context_len is None
                                   else context_len, 0)
    model.check_fits(batch, context_len + 1)
    profile = profile or get_profile(device, fast=fast)
    step = make_graphed_decode(model, batch) if graph else (lambda tok, pos: decode_one_token(model, tok, pos))
    token = _fill_cache(model, batch, context_len, seed)  # after the graph: its capture writes slot 0
    m = time_fn(lambda: step(token, context_len), device, 0.3 if profile.fast or fast else 1.0, 3, repeats)
    precision = precision_of(model)
    kv = batch * (cfg.max_seq_len if graph else context_len + 1) * cfg.kv_bytes_per_token(precision)
    weights, flops = cfg.weight_bytes(precision), cfg.forward_flops(1, past=context_len, batch=batch)
    n_ops = count_ops(model, batch, context_len, graph)
    op = profile.op_cost_graph if graph else profile.eager_op_cost
    peak = profile.matmul_flops.get(precision)
    datasheet = hardware.match(profile.device_name)
    roof = perf.roofline_time(weights + kv, flops if peak else 0.0, profile.bandwidth, peak or 1.0)
    return DecodeRecord(
        preset=preset_name(cfg), device=device.type, precision=precision, mode="cuda-graph" if graph else "eager",
        batch=batch, context_len=context_len, weight_bytes=weights, kv_bytes=kv, flops=flops,
        ms_per_step=m.median * 1e3, iqr_ms=m.iqr * 1e3, repeats=len(m.times) * m.number_per_run,
        bandwidth=profile.bandwidth, n_ops=n_ops, op_cost=op,
        predicted_ms=(weights + kv) / profile.bandwidth * 1e3,
        launch_aware_ms=perf.launch_aware_decode_time(weights, kv, profile.bandwidth, n_ops, op) * 1e3,
        roofline_ms=roof * 1e3, launch_aware_roofline_ms=(roof + n_ops * op) * 1e3,
        fits_in_cache=weights + kv < profile.cache_bytes,
        datasheet_bandwidth=datasheet.bandwidth if datasheet else None)


def time_prefill(model, prompt_len: int, batch: int = 1, repeats: int | None = None,
                 profile: MachineProfile | None = None, fast: bool | None = None, seed: int = 0) -> PrefillRecord:
    """Median time of ``prefill`` over a random (batch, prompt_len) prompt, with the roofline's
    memory time (bytes / bandwidth) and compute time (FLOPs / measured matmul rate)."""
    prompt_len = perf.check_count("prompt_len", prompt_len)
    model.check_fits(batch, prompt_len)
    cfg, device = model.config, model.device
    profile = profile or get_profile(device, fast=fast)
    gen = torch.Generator().manual_seed(seed)
    prompt = torch.randint(0, cfg.vocab_size, (batch, prompt_len), generator=gen).to(device)
    m = time_fn(lambda: prefill(model, prompt), device, 0.3 if profile.fast or fast else 1.0, 2, repeats)
    precision = precision_of(model)
    moved = cfg.weight_bytes(precision) + batch * prompt_len * cfg.kv_bytes_per_token(precision)
    flops, peak = cfg.forward_flops(prompt_len, batch=batch), profile.matmul_flops.get(precision)
    return PrefillRecord(preset_name(cfg), device.type, precision, batch, prompt_len, m.median * 1e3, m.iqr * 1e3,
                         len(m.times) * m.number_per_run, moved, flops, moved / profile.bandwidth * 1e3,
                         flops / peak * 1e3 if peak else None)


# ----------------------------------------------------------------------------- sweeps
def _bar(items, progress: bool, desc: str):
    return tqdm(list(items), desc=desc, disable=not progress, leave=False)


def decode_sweep(presets, device=None, precision: str = "fp32", batch: int = 1, context_len: int | None = None,
                 graph: bool = False, profile: MachineProfile | None = None, fast: bool | None = None,
                 repeats: int | None = None, progress: bool = True) -> list[DecodeRecord]:
    """A decode record per preset name or ToyConfig; one model in memory at a time."""
    device = pick_device(device)
    profile = profile or get_profile(device, fast=fast)
    records = []
    for preset in _bar(presets, progress, "decode sweep"):
        model = build_model(preset, device=device, precision=precision, max_batch=batch)
        try:
            records.append(time_decode(model, batch, context_len, repeats, graph, profile, fast))
        finally:
            del model
            release(device)
    return records


def prefill_sweep(model, lengths, batch: int = 1, profile=None, fast=None, repeats=None,
                  progress: bool = True) -> list[PrefillRecord]:
    """A prefill record per prompt length."""
    profile = profile or get_profile(model.device, fast=fast)
    return [time_prefill(model, n, batch, repeats, profile, fast) for n in _bar(lengths, progress, "prefill")]


def batch_sweep(model, batches, context_len: int | None = None, profile=None, fast=None, repeats=None,
                progress: bool = True, graph: bool = False) -> list[DecodeRecord]:
    """A decode record per batch size (build the model with max_batch >= max(batches))."""
    profile = profile or get_profile(model.device, fast=fast)
    return [time_decode(model, b, context_len, repeats, graph, profile, fast)
            for b in _bar(batches, progress, "batch sweep")]


def context_sweep(model, context_lens, batch: int = 1, profile=None, fast=None, repeats=None,
                  progress: bool = True) -> list[DecodeRecord]:
    """A decode record per context length (KV-cache reads grow with it)."""
    profile = profile or get_profile(model.device, fast=fast)
    return [time_decode(model, batch, c, repeats, False, profile, fast)
            for c in _bar(context_lens, progress, "context sweep")]


def batching_claim(records: list[DecodeRecord], batch: int = 32) -> dict:
    """Test "``batch`` requests give ``batch``x the throughput at the same latency" on batch-sweep
    records: per context length, the tokens/s gain and the step-time ratio of ``batch`` vs 1."""
    by_context: dict = defaultdict(dict)
    for r in (DecodeRecord.from_dict(r) if isinstance(r, dict) else r for r in records):
        by_context[r.context_len][r.batch] = r
    result = {}
    for ctx, rows in sorted(by_context.items()):
        if 1 not in rows or batch not in rows:
            raise ValueError(f"batch={batch!r}: the records need batch 1 and batch {batch} at context {ctx}")
        result[ctx] = {"throughput_gain": rows[batch].tokens_per_s / rows[1].tokens_per_s,
                       "latency_ratio": rows[batch].ms_per_step / rows[1].ms_per_step}
    return result


def linear_fit(xs, ys) -> tuple[float, float, float]:
    """Least-squares line y = slope * x + intercept and its R^2 (1.0 = a perfect line)."""
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    if x.ndim != 1 or x.shape != y.shape or len(x) < 2 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"xs and ys must be two 1-D sequences of finite numbers of equal length >= 2, "
                         f"got shapes {x.shape} and {y.shape}")
    if np.ptp(x) == 0:
        raise ValueError("xs must not all be equal: a line through one x is undefined")
    slope, intercept = np.polyfit(x, y, 1)
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float(((y - (slope * x + intercept)) ** 2).sum()) / total if total > 0 else 1.0
    return float(slope), float(intercept), r2


def parallel_vs_sequential(model, n_tokens: int = 64, seed: int = 0) -> dict:
    """Notebook 01's demonstration: the logits of a known sequence computed in one teacher-forced
    pass, and token by token through the KV cache. Same numbers, very different time: the pass
    reads each weight once for all positions, the loop once per position."""
    model.check_fits(1, n_tokens)
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, model.config.vocab_size, (1, n_tokens), generator=gen).to(model.device)

    def one_by_one():
        return torch.stack([decode_one_token(model, tokens[:, i:i + 1], i) for i in range(n_tokens)], 1)

    together, apart = teacher_forced_logits(model, tokens), one_by_one()
    t_par = time_fn(lambda: teacher_forced_logits(model, tokens), model.device, 0.2, 1)
    t_seq = time_fn(one_by_one, model.device, 0.2, 1)
    return {"n_tokens": n_tokens, "parallel_ms": t_par.median * 1e3, "sequential_ms": t_seq.median * 1e3,
            "max_abs_diff": (together - apart).abs().max().item(),
            "same_argmax": bool((together.argmax(-1) == apart.argmax(-1)).all())}


# ----------------------------------------------------------------------------- where the time goes
COMPONENTS = {"embedding": ("embedding",), "norms": ("attn_norm", "mlp_norm", "final_norm"),
              "QKV + output projections": ("wqkv", "wo"), "attention core (SDPA, KV cache)": ("attention",),
              "MLP matrices (up, down)": ("w_up", "w_down"), "LM head": ("lm_head",)}


def decode_breakdown(model, context_len: int = 128, steps: int | None = None, fast: bool | None = None) -> dict:
    """Median time per decode step of each component, from forward hooks that read a
    synchronised clock as each module starts and ends ("attention core" is the attention module
    minus its two projections; "the rest" is GELU, residual adds and Python between modules).
    Also ``gemv_chain_ms``: only the step's weight GEMVs back to back, the lower bound of this
    matmul library. On a GPU the hooks' syncs slow the step: read the shares, not the total."""
    device, cfg = model.device, model.config
    context_len = min(context_len, cfg.max_seq_len - 1)
    token = _fill_cache(model, 1, context_len, 0)
    spans, starts, handles = defaultdict(float), {}, []

    def clock():
        synchronize(device)
        return time.perf_counter()

    def post(name):
        def hook(mod, args, output):
            spans[name] += clock() - starts.pop(id(mod))
        return hook

    for name, mod in model.named_modules():
        key = name.rsplit(".", 1)[-1]
        if key in {k for keys in COMPONENTS.values() for k in keys}:
            handles += [mod.register_forward_pre_hook(lambda mod, args: starts.__setitem__(id(mod), clock())),
                        mod.register_forward_hook(post(key))]
    rows = defaultdict(list)
    try:
        for i in range((steps or (30 if fast else 100)) + 3):
            spans.clear()
            t0 = clock()
            decode_one_token(model, token, context_len)
            total = clock() - t0
            if i >= 3:  # warm-up steps are not recorded
                parts = {c: sum(spans[k] for k in keys) for c, keys in COMPONENTS.items()}
                parts["attention core (SDPA, KV cache)"] -= parts["QKV + output projections"]
                parts["the rest (GELU, adds, Python)"] = total - sum(parts.values())
                for c, v in [*parts.items(), ("step", total)]:
                    rows[c].append(v * 1e3)
    finally:
        for h in handles:
            h.remove()
    weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]
    xs = [torch.rand(1, w.shape[1], dtype=w.dtype, device=device) for w in weights]

    def chain():
        for x, w in zip(xs, weights, strict=True):
            F.linear(x, w)

    with torch.inference_mode():
        gemv = time_fn(chain, device, 0.3 if fast else 1.0)
    step = float(np.median(rows.pop("step")))
    return {"step_ms": step, "context_len": context_len, "gemv_chain_ms": gemv.median * 1e3,
            "gemv_bytes": sum(w.numel() * w.element_size() for w in weights),
            "components": {c: float(np.median(v)) for c, v in rows.items()}}


def recorded_decode(ref: dict, mode: str = "eager") -> list[DecodeRecord]:
    """A recorded run's batch-1 decode records of one mode ('eager' or 'cuda-graph'), smallest first."""
    rows = [DecodeRecord.from_dict(r) for r in ref.get("records", []) if r.get("mode") == mode]
    return sorted(rows, key=lambda r: r.bytes_per_step)
