"""Timing the toy transformer, and comparing each timing with perf's predictions.

    decode_sweep     a decode step per preset and precision, in interleaved rounds (a slow minute
                     hits every point alike); batch_sweep, context_sweep and prefill_sweep likewise
    time_decode      one decode step (a sweep of one point)

Every record counts bytes and FLOPs the way the step is timed: weights are every parameter
except the embedding table (a lookup reads one row), LM head included; KV bytes are the cache
positions attention reads (the eager step reads the filled prefix, ``context_len + 1``
positions; the CUDA-graph step its bucket, machine.graph_bucket, under a mask). The modeled side of
a decode record is the gap budget (perf.decode_budget) from this machine's roofs (roofs.py);
the check beside it, timing the step's own parts with hooks, is benchmarks/breakdown.py.
Records are small dataclasses: ``dataclasses.asdict(record)`` gives JSON.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields

import torch
from torch.utils.benchmark import Measurement
from tqdm.auto import trange

from . import machine, perf, specs
from .machine import MiB, fast_mode, graphed, make_graphed_decode, measurement, pick_device, release, time_interleaved
from .model import build_model, decode_one_token, prefill
from .roofs import MachineProfile, best_layout, get_profile, kernel_roof, small_op_costs
from .specs import get_config, preset_name

HOLD_TOGETHER = 256 * MiB  # a CPU sweep whose models hold more than this rebuilds them round by round


@dataclass
class DecodeRecord:
    """One timed decode step beside its modeled budget. Times in ms, per step (a step yields
    ``batch`` tokens); the budget's terms come from perf.decode_budget and the profile."""

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
    n_ops: int                  # the small ops "other small ops" prices: every call but matrix products and attention
                                # (version 1's recorded runs: every kernel, which their "per-op overhead" priced)
    bandwidth: float            # the streaming-read roof (B/s)
    kernel_bandwidth: float     # the decode GEMV kernel roof at this precision (B/s)
    budget: dict                # term -> ms (perf.decode_budget's seconds x 1e3): the modeled step, term by term
    fits_in_cache: bool         # bytes per step below the profile's cache size: may beat DRAM
    datasheet_bandwidth: float | None = None  # the device's catalogue bandwidth, where known
    layout: str = "out_in"      # how the weights were stored: (out, in) for F.linear, (in, out) for x @ W

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
    def predicted_ms(self) -> float:
        """The bandwidth bound (perf.decode_time's formula): all bytes, weights and KV, at the streaming-read roof.
        The budget's "memory roof" is its weights part."""
        return self.bytes_per_step / self.bandwidth * 1e3

    @property
    def modeled_ms(self) -> float:
        """The budget's total: the prediction the measurement is compared with."""
        return sum(self.budget.values())

    @property
    def residual(self) -> float:
        """Measured / modeled - 1: what the budget does not explain (+0.1 = 10 % slower)."""
        return self.ms_per_step / self.modeled_ms - 1

    @property
    def noisy(self) -> bool:
        return self.iqr_ms > perf.NOISY * self.ms_per_step

    @property
    def mbu(self) -> float:
        """Model bandwidth utilisation against the streaming-read roof, a fraction (0.55 = 55 %)."""
        return self.bytes_per_step / (self.ms_per_step / 1e3) / self.bandwidth

    @property
    def mbu_kernel(self) -> float:
        """The same against the decode GEMV kernel's roof: how close the step gets to its kernel."""
        return self.bytes_per_step / (self.ms_per_step / 1e3) / self.kernel_bandwidth

    @property
    def mbu_datasheet(self) -> float | None:
        """The same against the datasheet bandwidth (what published MBU figures divide by)."""
        bw = self.datasheet_bandwidth
        return self.bytes_per_step / (self.ms_per_step / 1e3) / bw if bw else None

    @classmethod
    def from_dict(cls, d: dict) -> DecodeRecord:
        """A record from JSON (a recorded run): its fields; derived figures stored beside them are ignored."""
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


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


_KINDS = {"scaled_dot_product_attention": "attention", "rms_norm": "rms_norm", "gelu": "gelu", "add_": "add_",
          "__setitem__": "__setitem__", "index_copy_": "index_copy_", "linear": "linear", "matmul": "linear",
          # metadata only: no kernel, no data touched (in a CUDA graph they cost nothing)
          **dict.fromkeys(("view", "transpose", "split", "reshape", "__getitem__", "__get__", "t"), "view")}


def count_ops(model, batch: int = 1, context_len: int = 1, graph: bool = False) -> dict[str, int]:
    """The calls one decode step makes, by kind: torch functions and methods as they are called
    from Python (``TorchFunctionMode``), and nn.Module calls ("module"). Metadata-only calls count
    as "view", any other call as "other". ``graph=True`` counts the static-cache step a CUDA graph records."""
    token = torch.zeros((batch, 1), dtype=torch.long, device=model.device)
    counts = Counter()

    class Calls(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            counts[_KINDS.get(getattr(func, "__name__", ""), "other")] += 1
            return func(*args, **(kwargs or {}))

    hook = torch.nn.modules.module.register_module_forward_pre_hook(lambda module, args: counts.update(["module"]))
    position = torch.tensor(context_len, device=model.device) if graph else context_len  # a tensor in the graph step
    try:
        with torch.inference_mode(), Calls():
            model(token, position, static_kv=graph, n_keys=_kv_positions(model.config, context_len, graph))
    finally:
        hook.remove()
    return dict(counts)


def _op_costs(device: str, precision: str, cfg, batch: int, kv_positions: int, graph: bool, fast: bool):
    """(seconds per call of each kind of small op, the CPU's seconds to launch each, or None) for a decode step.
    An eager step on a GPU pays both: the GPU runs each op as in a graph while the CPU issues the later ones."""
    eager_gpu, threads = device == "cuda" and not graph, torch.get_num_threads()
    costs = small_op_costs(device, precision, cfg, batch, kv_positions, graph or eager_gpu, threads, fast)
    return costs, small_op_costs(device, precision, cfg, batch, kv_positions, False, threads, fast) if eager_gpu else None


def _random_tokens(model, batch: int, length: int, seed: int = 0) -> torch.Tensor:
    """Random token ids of shape (batch, length) on the model's device (the same on every device)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.config.vocab_size, (batch, length), generator=gen).to(model.device)


def _kv_positions(config, context_len: int, graph: bool) -> int:
    """Cache slots a decode step after ``context_len`` tokens reads: the filled ones and its own, or its graph's bucket."""
    return machine.graph_bucket(context_len, config.max_seq_len) if graph else context_len + 1


def _context_len(config, context_len: int | None) -> int:
    """``context_len``, checked; by default 128 cached tokens, or half the cache if that is fewer."""
    return perf.check_count("context_len", min(128, config.max_seq_len // 2) if context_len is None else context_len, 0)


def decode_step(model, batch: int = 1, context_len: int | None = None, graph: bool = False):
    """A ready-to-time decode step (a callable) after a random context, so attention reads real values. Every call
    runs the same step, at position ``context_len`` (the cache does not grow: 50 calls are 50 timings of one step,
    not 50 tokens). ``graph=True`` replays it from a CUDA graph (captured before the prefill: capture writes slot 0)."""
    context_len = _context_len(model.config, context_len)
    model.check_fits(batch, context_len + 1)
    step = make_graphed_decode(model, batch) if graph else (lambda tok, pos: decode_one_token(model, tok, pos))
    if context_len:
        prefill(model, _random_tokens(model, batch, context_len))
    token = _random_tokens(model, batch, 1, seed=1)
    return lambda: step(token, context_len)


def decode_record(model, m: Measurement, profile: MachineProfile, batch: int = 1, context_len: int | None = None,
                  graph: bool = False) -> DecodeRecord:
    """The record of a timed decode step: bytes and FLOPs as the step runs them, its budget from the profile's roofs."""
    cfg, context_len, precision = model.config, _context_len(model.config, context_len), machine.precision_of(model)
    kv_positions = _kv_positions(cfg, context_len, graph)
    kv = batch * kv_positions * cfg.kv_bytes_per_token(precision)
    weights, flops = cfg.weight_bytes(precision), cfg.forward_flops(1, past=context_len, batch=batch)
    device = model.device.type
    kernel = kernel_roof(device, precision, cfg, torch.get_num_threads(), profile.fast, model.layout)
    counts = count_ops(model, batch, context_len, graph)
    op_counts = counts | {"graph call": 1} if graph else counts  # a graphed step is also one call of its graph
    costs, launches = _op_costs(device, precision, cfg, batch, kv_positions, graph, profile.fast)
    budget = perf.decode_budget(weights, flops, profile.read_bandwidth, kernel, op_counts, costs,
                                profile.matmul_flops.get(precision), launches)
    datasheet = specs.match(profile.device_name)
    return DecodeRecord(
        preset=preset_name(cfg), device=device, precision=precision, mode="cuda-graph" if graph else "eager",
        batch=batch, context_len=context_len, weight_bytes=weights, kv_bytes=kv, flops=flops,
        ms_per_step=m.median * 1e3, iqr_ms=m.iqr * 1e3, repeats=len(m.times) * m.number_per_run,
        n_ops=sum(n for kind, n in counts.items() if kind not in ("linear", "attention")),
        bandwidth=profile.read_bandwidth, kernel_bandwidth=kernel,
        budget={term: s * 1e3 for term, s in budget.items()}, fits_in_cache=weights + kv < profile.cache_bytes,
        datasheet_bandwidth=datasheet.bandwidth if datasheet else None, layout=model.layout)


def prefill_record(model, m: Measurement, profile: MachineProfile, prompt_len: int, batch: int = 1) -> PrefillRecord:
    """The record of a timed prefill, with the roofline's memory and compute times from the profile."""
    cfg, precision = model.config, machine.precision_of(model)
    moved = cfg.weight_bytes(precision) + batch * prompt_len * cfg.kv_bytes_per_token(precision)
    flops, peak = cfg.forward_flops(prompt_len, batch=batch), profile.matmul_flops.get(precision)
    return PrefillRecord(preset_name(cfg), model.device.type, precision, batch, prompt_len, m.median * 1e3,
                         m.iqr * 1e3, len(m.times) * m.number_per_run, moved, flops,
                         moved / profile.read_bandwidth * 1e3, flops / peak * 1e3 if peak else None)


# ----------------------------------------------------------------------------- sweeps
def _interleave(steps: dict, device, fast: bool | None, rounds: int | None, progress: bool, calls: int | None = None):
    """Time a sweep's points in 3 interleaved rounds (5 in full mode), 5 timed calls each (10 in full mode)."""
    fast = fast_mode(fast)
    return time_interleaved(steps, device, rounds or (3 if fast else 5), warmup=2, calls=calls or (5 if fast else 10),
                            progress=progress)


def decode_sweep(presets, device=None, precision: str | list[str] = "fp32", batch: int = 1,
                 context_len: int | None = None, graph: bool = False, profile: MachineProfile | None = None,
                 fast: bool | None = None, rounds: int | None = None, progress: bool = True) -> list[DecodeRecord]:
    """A decode record per preset (name or ToyConfig) and precision (one or a list), timed in
    interleaved rounds; each model stores its weights in the layout that streams faster here
    (roofs.best_layout). build_model refuses, with a clear message, what does not fit."""
    device, fast = pick_device(device), fast_mode(fast)
    profile = profile or get_profile(device, fast=fast)
    precisions = [precision] if isinstance(precision, str) else list(precision)
    pairs, layouts, threads = [(p, q) for p in presets for q in precisions], {}, torch.get_num_threads()
    for p, q in pairs:  # measure each model's roofs first: their buffers and the models never share memory
        cfg = get_config(p)
        layouts[p, q] = best_layout(device.type, q, cfg, threads, profile.fast)  # measures both layouts' kernel roofs
        _op_costs(device.type, q, cfg, batch, _kv_positions(cfg, _context_len(cfg, context_len), graph), graph, profile.fast)

    def build(p, q):
        return build_model(p, device=device, precision=q, max_batch=batch, layout=layouts[p, q])

    # small ladders (and any on a GPU) stay in memory together; a larger CPU ladder is rebuilt in
    # every round, one model at a time (the learner's RAM is the memory being measured, and Binder
    # has 2 GB). Either way the rounds are interleaved, so a slow minute hits every point alike.
    if device.type != "cpu" or sum(get_config(p).total_bytes(batch, q) for p, q in pairs) <= HOLD_TOGETHER:
        models = [build(p, q) for p, q in pairs]
        try:
            times = _interleave({i: decode_step(m, batch, context_len, graph) for i, m in enumerate(models)},
                                device, fast, rounds, progress)
            return [decode_record(m, times[i], profile, batch, context_len, graph) for i, m in enumerate(models)]
        finally:
            del models
            release(device)
    n_rounds, times, records = rounds or (3 if fast else 5), [[] for _ in pairs], {}
    for r in trange(n_rounds, desc="decode sweep, interleaved rounds", disable=not progress, leave=False):
        order = range(len(pairs)) if r % 2 == 0 else reversed(range(len(pairs)))  # alternate the order, round by round
        for i in order:
            toy = build(*pairs[i])
            step = decode_step(toy, batch, context_len, graph)
            times[i] += _interleave({i: step}, device, fast, 1, False)[i].times
            if r == n_rounds - 1:  # its last round: all its timings are in
                records[i] = decode_record(toy, measurement(times[i]), profile, batch, context_len, graph)
            del toy, step
            release(device)
    return [records[i] for i in range(len(pairs))]


def time_decode(model, batch: int = 1, context_len: int | None = None, graph: bool = False,
                profile: MachineProfile | None = None, fast: bool | None = None, rounds: int | None = None) -> DecodeRecord:
    """One decode step after ``context_len`` cached tokens (default: 128, or half the cache): a batch_sweep of one point."""
    return batch_sweep(model, [batch], context_len, profile, fast, rounds, progress=False, graph=graph)[0]


def batch_sweep(model, batches, context_len: int | None = None, profile=None, fast=None, rounds=None,
                progress: bool = True, graph: bool = False) -> list[DecodeRecord]:
    """A decode record per batch size, interleaved (build the model with max_batch >= max(batches))."""
    profile = profile or get_profile(model.device, fast=fast)
    steps = {b: decode_step(model, b, context_len, graph) for b in batches}
    times = _interleave(steps, model.device, fast, rounds, progress)
    return [decode_record(model, times[b], profile, b, context_len, graph) for b in batches]


def context_sweep(model, context_lens, batch=1, profile=None, fast=None, rounds=None, progress=True) -> list[DecodeRecord]:
    """A decode record per context length (KV-cache reads grow with it), interleaved."""
    profile = profile or get_profile(model.device, fast=fast)
    steps = {c: decode_step(model, batch, c) for c in sorted(context_lens)}  # the longest prefill last: all filled
    times = _interleave(steps, model.device, fast, rounds, progress)
    return [decode_record(model, times[c], profile, batch, c) for c in context_lens]


def prefill_sweep(model, lengths, batch=1, profile=None, fast=None, rounds=None, progress=True,
                  graph: bool = False) -> list[PrefillRecord]:
    """A prefill record per prompt length, interleaved. ``graph=True`` (CUDA) replays each length from
    its own CUDA graph (the static-cache path), so launches do not hide how time grows with the prompt."""
    profile = profile or get_profile(model.device, fast=fast)
    prompts = {n: _random_tokens(model, batch, perf.check_count("prompt_len", n), seed=n) for n in lengths}
    model.check_fits(batch, max(prompts))
    start = torch.zeros((), dtype=torch.long, device=model.device)
    steps = {n: graphed(lambda p=p: model(p, start, static_kv=True)) if graph else (lambda p=p: prefill(model, p))
             for n, p in prompts.items()}
    times = _interleave(steps, model.device, fast, rounds, progress, calls=3 if fast_mode(fast) else 5)
    return [prefill_record(model, times[n], profile, n, batch) for n in prompts]


def recorded_decode(ref: dict, mode: str = "eager") -> list[DecodeRecord]:
    """A recorded run's batch-1 decode records of one mode ('eager' or 'cuda-graph'), smallest first."""
    rows = [DecodeRecord.from_dict(r) for r in ref.get("records", []) if r.get("mode") == mode]
    return sorted(rows, key=lambda r: r.bytes_per_step)
