"""How close is the toy's CUDA-graph decode step to its GEMV-only lower bound, and what closes the gap?

    cd benchmarks && PYTHONPATH=.. python gpu_fusion.py [--preset 7b] [--max-seq-len 4096] [--out results/x.json]
    cd benchmarks && PYTHONPATH=.. python gpu_fusion.py --budget [--out results/y.json]
    cd benchmarks && PYTHONPATH=.. python gpu_fusion.py --dry-run [--budget]      # CPU, tiny preset, no graphs

Default mode: measured in the same interleaved rounds (ratios to gemv_only, not absolute times, are the result):
  gemv_only     the step's weight GEMVs alone (the same matrices, batch 1), one CUDA graph ("(in_out)": the
                same matrices stored (in, out), as build_model(layout="in_out") does)
  course        the course's decode step (machine.make_graphed_decode): before issue 17 (the results of 2026-11-29)
                attention over all max_seq_len slots; since, filled + one_write + cudnn are ported into it
  variants      the step changed one idea at a time, cumulatively (classes below, written to move into
                course_lib/model.py), at each --positions:
                  filled       attention over the filled cache slots only: one graph per bucket of cache
                               lengths (powers of two from --min-bucket, then max_seq_len), the cache and
                               mask sliced to the bucket, the replay picking the smallest bucket above pos
                  one_write    K and V in one cache buffer, stored by one index_copy_ per layer (not two)
                  addmm        each residual add folded into the GEMM before it (x.addmm_(h, W): cuBLAS's
                               beta = 1), 2 elementwise kernels per layer fewer
                  matmul_attn  attention as baddbmm (scores + mask) -> softmax -> bmm: 3 small kernels in
                               place of the fused SDPA kernel, which for one query parallelises over heads only
                  cudnn        SDPA restricted to cuDNN's kernel (fixed shapes per bucket, so its per-shape
                               plan is built once, at capture)
  compiled      torch.compile of the course step (--compile-modes) and of --compile-variants, then captured
                in CUDA graphs
Every timed step is first checked against the course step's logits at the same position, from the same random
KV-cache contents (max abs difference, bf16 tolerance). Kernels per eager step are counted (torch.profiler).

--budget: for gpu-m and 7b, where the GEMV part of the gap budget goes: the kernel roof's chain (roofs), the
step's GEMVs with dependent and with independent inputs, each once and --repeat times in one graph (slope =
in-graph time, intercept = per-replay overhead), and a chain of tiny GEMVs (8 rows) = the fixed cost per GEMV.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import copy
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from common import provenance
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from course_lib import machine, model, roofs
from course_lib.specs import get_config

HERE = Path(__file__).resolve().parent
TOLERANCE = {torch.float32: 1e-4, torch.float16: 0.05, torch.bfloat16: 0.1}  # max |logit diff|; logits ~N(0, 1)


# ----------------------------------------------------------------------------- the variants (model.py candidates)
class SplitKVCache(nn.Module):
    """The course's KV cache before issue 17: K and V of one layer in two buffers (max_batch, n_kv_heads, max_seq_len,
    head_dim), each stored by its own write. (FusedKVCache, one buffer and one write, is now model.KVCache.)"""

    def __init__(self, max_batch: int, n_kv_heads: int, max_seq_len: int, head_dim: int, dtype, device=None):
        super().__init__()
        shape = (max_batch, n_kv_heads, max_seq_len, head_dim)
        self.register_buffer("k_cache", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v_cache", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def write(self, k: torch.Tensor, v: torch.Tensor, start_pos: int | torch.Tensor, n_keys: int | None = None):
        """Store K, V (B, nkv, T, hd) at [start_pos, start_pos+T) or at ``start_pos`` (a tensor of positions, then
        returning the first ``n_keys`` slots); return the filled prefix."""
        B, T = k.shape[0], k.shape[2]
        if isinstance(start_pos, torch.Tensor):
            self.k_cache[:B].index_copy_(2, start_pos, k)
            self.v_cache[:B].index_copy_(2, start_pos, v)
            return self.k_cache[:B, :, :n_keys], self.v_cache[:B, :, :n_keys]
        self.k_cache[:B, :, start_pos:start_pos + T] = k
        self.v_cache[:B, :, start_pos:start_pos + T] = v
        return self.k_cache[:B, :, :start_pos + T], self.v_cache[:B, :, :start_pos + T]


FusedKVCache = model.KVCache  # the one_write variant, ported into the course (issue 17)


def in_out_weight(linear: nn.Module) -> torch.Tensor:
    """A bias-free linear layer's matrix as (in, out), a view: nn.Linear stores (out, in), InOutLinear (in, out)."""
    return linear.weight.t() if isinstance(linear, nn.Linear) else linear.weight_t


class FastAttention(model.Attention):
    """model.Attention, plus: the static path attends over the first ``mask.shape[-1]`` cache slots only; with a
    FusedKVCache one write stores K and V (SplitKVCache: two); ``attention`` "matmul" (baddbmm, softmax, bmm) or "sdpa";
    ``residual``: add the output projection into this tensor within the GEMM (addmm_) and return it."""

    attention = "sdpa"

    def forward(self, x, mask, cache_pos, residual: torch.Tensor | None = None):
        B, T, _ = x.shape
        nh, nkv, hd = self.n_heads, self.n_kv_heads, self.head_dim
        qkv = self.wqkv(x).view(B, T, nh + 2 * nkv, hd).transpose(1, 2)  # (B, nh + 2 nkv, T, hd)
        n_keys = mask.shape[-1] if mask is not None else None  # static path: the bucket's cache length
        if isinstance(self.cache, FusedKVCache):
            q, kv = qkv.split((nh, 2 * nkv), dim=1)  # kv (B, 2 nkv, T, hd): K rows then V rows
            if cache_pos is not None:
                kv = self.cache.write(kv, cache_pos, n_keys)
            k, v = kv.split(nkv, dim=1)
        else:
            q, k, v = qkv.split((nh, nkv, nkv), dim=1)
            if cache_pos is not None:
                k, v = self.cache.write(k, v, cache_pos, n_keys)
        if self.attention == "matmul":
            y = matmul_attention(q, k, v, mask)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=nkv != nh)  # (B, nh, T, hd)
        y = y.reshape(B, T, -1) if T == 1 else y.transpose(1, 2).reshape(B, T, -1)  # (B, T, nh * hd)
        return self.wo(y) if residual is None else add_linear(residual, y, self.wo)


def add_linear(x: torch.Tensor, h: torch.Tensor, linear: nn.Module) -> torch.Tensor:
    """x += linear(h) in one cuBLAS call (the GEMM's beta = 1 adds x), in place; returns x (B, T, d)."""
    x.view(-1, x.shape[-1]).addmm_(h.reshape(-1, h.shape[-1]), in_out_weight(linear))
    return x


def matmul_attention(q, k, v, mask):
    """softmax(q k^T / sqrt(hd) + mask) v in three plain ops: q (B, nh, T, hd), k and v (B, nkv, S, hd).
    The nh / nkv query heads that share a KV head (grouped-query attention) become rows of one matrix."""
    B, nh, T, hd = q.shape
    nkv, S, group = k.shape[1], k.shape[2], nh // k.shape[1]
    q3, k3, v3 = q.reshape(B * nkv, group * T, hd), k.reshape(B * nkv, S, hd), v.reshape(B * nkv, S, hd)
    if mask is None:
        scores = torch.bmm(q3, k3.transpose(1, 2)).mul_(hd ** -0.5)
    else:  # rows ordered (group, T): the (T, S) mask repeats per group
        scores = torch.baddbmm(mask if group == 1 else mask.repeat(group, 1), q3, k3.transpose(1, 2), alpha=hd ** -0.5)
    return torch.bmm(scores.softmax(dim=-1), v3).view(B, nh, T, hd)


class FastBlock(model.Block):
    """model.Block with ``addmm``: both residual adds done by the GEMMs before them (wo and w_down)."""

    addmm = False

    def forward(self, x, mask, cache_pos):
        if not self.addmm:
            return super().forward(x, mask, cache_pos)
        x = self.attention(self.attn_norm(x), mask, cache_pos, residual=x)
        return add_linear(x, F.gelu(self.w_up(self.mlp_norm(x))), self.w_down)


class FastGPT(model.ToyGPT):
    """ToyGPT whose static path takes ``n_keys``: attend over cache slots [0, n_keys) only (the mask sliced too)."""

    def forward(self, tokens, start_pos, static_kv: bool = False, n_keys: int | None = None):
        if not static_kv or n_keys is None:
            return super().forward(tokens, start_pos, static_kv)
        if not 0 < n_keys <= self.config.max_seq_len:
            raise ValueError(f"n_keys={n_keys} must be in [1, max_seq_len={self.config.max_seq_len}]")
        B, T = tokens.shape
        self.check_fits(B, T)
        q_pos = start_pos + torch.arange(T, device=tokens.device)  # (T,)
        return self._run(tokens, model._causal_mask(q_pos, n_keys, self.dtype), q_pos)


@dataclasses.dataclass(frozen=True)
class Variant:
    one_write: bool = False
    addmm: bool = False
    attention: str = "sdpa"  # "sdpa", "matmul" or "cudnn" (SDPA with only cuDNN's kernel allowed)
    layout: str = "out_in"

    @property
    def name(self) -> str:
        parts = ["filled"] + ["one_write"] * self.one_write + ["addmm"] * self.addmm
        parts += {"sdpa": [], "matmul": ["matmul_attn"], "cudnn": ["cudnn"]}[self.attention]
        return "+".join(parts) + (" (in_out)" if self.layout == "in_out" else "")


ALL_VARIANTS = {v.name: v for v in (Variant(w, a, att, lay) for w in (False, True) for a in (False, True)
                                    for att in ("sdpa", "matmul", "cudnn") for lay in ("out_in", "in_out"))}
VARIANTS = [Variant(), Variant(one_write=True), Variant(one_write=True, addmm=True),  # the default timed set
            Variant(one_write=True, addmm=True, attention="matmul"),
            Variant(one_write=True, addmm=True, attention="cudnn"),
            Variant(one_write=True, addmm=True, attention="matmul", layout="in_out")]


def make_variant(toy: model.ToyGPT, variant: Variant) -> FastGPT:
    """A FastGPT sharing ``toy``'s weights (not copied) with its own KV cache. Built by copying the module tree
    and swapping classes, so that the benchmark needs no second set of weights; in model.py these classes would
    simply be the ones constructed."""
    fast = copy.deepcopy(toy, memo={id(p): p for p in toy.parameters()})  # shared parameters, new buffers
    fast.__class__ = FastGPT
    for block in fast.layers:
        block.__class__, block.addmm = FastBlock, variant.addmm
        att = block.attention
        att.__class__, att.attention = FastAttention, "matmul" if variant.attention == "matmul" else "sdpa"
        if not variant.one_write:  # the deep copy has its own model.KVCache (one buffer): the old two instead
            old = att.cache.k_cache
            att.cache = SplitKVCache(old.shape[0], old.shape[1], old.shape[2], old.shape[3], old.dtype, old.device)
    return fast


# ----------------------------------------------------------------------------- one graph per cache length
def bucket_sizes(max_seq_len: int, smallest: int = 128) -> list[int]:
    """Cache lengths to capture: powers of two from ``smallest`` below max_seq_len, then max_seq_len."""
    sizes, n = [], smallest
    while n < max_seq_len:
        sizes.append(n)
        n *= 2
    return sizes + [max_seq_len]


def bucket_for(pos: int, sizes: list[int]) -> int:
    """The smallest cache length in ``sizes`` that holds slots 0..pos."""
    fits = [n for n in sizes if n > pos]
    if pos < 0 or not fits:
        raise ValueError(f"pos={pos} must be in [0, {max(sizes)})")
    return min(fits)


@dataclasses.dataclass
class Step:
    """One way to run a decode step: ``call(tokens (B, 1), pos (a 0-d tensor), n_keys) -> logits (B, 1, vocab)``."""
    model: model.ToyGPT  # whose KV cache the step reads and writes
    call: Callable
    sizes: list[int]  # the cache lengths it may attend over (one graph each)
    cudnn: bool = False  # SDPA limited to cuDNN's kernel

    def context(self):
        return sdpa_kernel([SDPBackend.CUDNN_ATTENTION]) if self.cudnn else contextlib.nullcontext()


def make_bucketed_decode(step: Step, batch: int = 1, graph: bool = True) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """``decode(token (batch, 1), pos) -> logits (batch, vocab)`` for the smallest of ``step.sizes`` above pos.
    graph=True: one CUDA graph per size, captured now as machine.make_graphed_decode does (static token and position
    buffers, warm-up on a side stream; warm-up and capture write K and V at cache position 0); False: eager."""
    device = step.model.device
    static_token = torch.zeros((batch, 1), dtype=torch.long, device=device)
    static_pos = torch.zeros((), dtype=torch.long, device=device)
    replays, outputs = {}, {}
    if graph:
        with torch.inference_mode(), step.context():
            for n in step.sizes:
                side = torch.cuda.Stream(device)
                side.wait_stream(torch.cuda.current_stream(device))
                with torch.cuda.stream(side):
                    for _ in range(3):
                        step.call(static_token, static_pos, n)
                torch.cuda.current_stream(device).wait_stream(side)
                replays[n] = torch.cuda.CUDAGraph()
                with torch.cuda.graph(replays[n]):
                    outputs[n] = step.call(static_token, static_pos, n)[:, -1]  # (batch, vocab)

    def decode(token: torch.Tensor, pos: int) -> torch.Tensor:
        n = bucket_for(pos, step.sizes)
        if not graph:
            with torch.inference_mode(), step.context():
                return step.call(token, torch.tensor(pos, device=device), n)[:, -1]
        static_token.copy_(token)
        static_pos.fill_(pos)
        replays[n].replay()
        return outputs[n]

    return decode


def course_step(toy: model.ToyGPT) -> Step:
    return Step(toy, lambda t, p, n: toy(t, p, static_kv=True), [toy.config.max_seq_len])


def variant_step(fast: FastGPT, variant: Variant, sizes: list[int]) -> Step:
    return Step(fast, lambda t, p, n: fast(t, p, static_kv=True, n_keys=n), sizes, cudnn=variant.attention == "cudnn")


# ----------------------------------------------------------------------------- checks and counts
def fill_caches(toy: model.ToyGPT, seed: int = 1) -> None:
    """Random K and V in every slot of every layer (the same for every model of this config and seed), so that
    a step that attends to a slot it should not (or misses one) changes the logits."""
    gen = torch.Generator(device=toy.device).manual_seed(seed)
    for layer in toy.layers:
        for buf in (layer.attention.cache.k_cache, layer.attention.cache.v_cache):
            buf.copy_(torch.randn(buf.shape, generator=gen, device=toy.device, dtype=buf.dtype))


def logits_at(decode, toy: model.ToyGPT, pos: int, token: int = 7) -> torch.Tensor:
    fill_caches(toy)
    tokens = torch.full((1, 1), token, dtype=torch.long, device=toy.device)
    return decode(tokens, pos).float().clone()


def compare(ref: torch.Tensor, out: torch.Tensor, dtype: torch.dtype) -> dict:
    diff = (out - ref).abs().max().item()
    return {"max_abs_diff": diff, "tolerance": TOLERANCE[dtype], "argmax_equal": bool((out.argmax(-1) == ref.argmax(-1)).all()),
            "ok": diff <= TOLERANCE[dtype]}


def cuda_kernels(fn, device) -> collections.Counter:
    """The CUDA kernels one eager call of ``fn`` launches, by name (empty off CUDA)."""
    if torch.device(device).type != "cuda":
        return collections.Counter()
    with torch.inference_mode(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return collections.Counter(e.name[:60] for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)


def kernel_counts(step: Step, pos: int) -> collections.Counter:
    """CUDA kernels of one eager step at ``pos``, by name (empty off CUDA)."""
    device = step.model.device
    token, positions = torch.zeros((1, 1), dtype=torch.long, device=device), torch.tensor(pos, device=device)

    def run():
        with step.context():
            step.call(token, positions, bucket_for(pos, step.sizes))

    return cuda_kernels(run, device)


def graph_if_cuda(fn, device):
    """``fn`` replayed from a CUDA graph (on CUDA), holding on to ``fn`` and so to the tensors the graph reads: a
    bare ``machine.graphed(fn)`` lets them be freed, and its replay then crashed (a segfault, 7b --budget)."""
    if torch.device(device).type != "cuda":
        return fn
    replay = machine.graphed(fn)

    def run():
        replay()

    run.graphed_fn = fn  # keeps fn, and so the tensors its graph reads, alive
    return run


def gemv_only(toy: model.ToyGPT):
    linears = [m for m in toy.modules() if isinstance(m, (nn.Linear, model.InOutLinear))]
    inputs = [torch.randn(1, 1, in_out_weight(m).shape[0], device=toy.device, dtype=toy.dtype) for m in linears]

    def step():
        for x, m in zip(inputs, linears):
            m(x)

    with torch.inference_mode():
        return graph_if_cuda(step, toy.device), len(linears)


def timed_report(fns: dict, device, rounds: int, calls: int, baselines: dict) -> dict:
    """Median and IQR per name from interleaved rounds, with the ratio to each baseline name."""
    times = machine.time_interleaved(fns, device, rounds=rounds, warmup=3, calls=calls)
    steps = {}
    for name, m in times.items():
        steps[name] = {"median_ms": m.median * 1e3, "iqr_ms": m.iqr * 1e3}
        for label, base in baselines.items():
            if base in times:
                steps[name][label] = m.median / times[base].median
    return steps


# ----------------------------------------------------------------------------- default mode: the variants
def run_variants(args, device, dtype) -> dict:
    graph = device.type == "cuda"
    config = get_config(args.preset)
    if args.max_seq_len:
        config = dataclasses.replace(config, max_seq_len=args.max_seq_len)
    S = config.max_seq_len
    positions = [p for p in args.positions if p < S]
    if not positions:
        raise ValueError(f"no position in {args.positions} is below max_seq_len={S}")
    all_sizes = bucket_sizes(S, args.min_bucket)
    sizes = sorted({bucket_for(p, all_sizes) for p in positions})  # only the buckets that will be timed
    print(f"{args.preset}: max_seq_len {S}, positions {positions}, buckets {sizes} of {all_sizes}")
    layouts = sorted({v.layout for v in args.variants}) or ["out_in"]
    toys = {layout: model.build_model(config, device=device, precision=args.precision, layout=layout)
            for layout in ["out_in", *[lay for lay in layouts if lay != "out_in"]]}
    toy = toys["out_in"]
    steps = {"course": course_step(toy)}
    decodes = {"course": machine.make_graphed_decode(toy) if graph else make_bucketed_decode(steps["course"], graph=False)}
    timed_at = {"course": positions[:1]}  # its step is the same at every position
    for v in args.variants:
        if v.attention == "cudnn" and not graph:
            print(f"{v.name}: skipped (cuDNN attention runs on CUDA only)")
            continue
        steps[v.name] = variant_step(make_variant(toys[v.layout], v), v, sizes)
        timed_at[v.name] = positions
    compile_seconds = {}
    for mode in args.compile_modes if graph else []:
        compiled = torch.compile(toy, mode=mode, dynamic=False, fullgraph=True)
        steps[f"compiled {mode}: course"] = Step(toy, lambda t, p, n, c=compiled: c(t, p, static_kv=True), [S])
        timed_at[f"compiled {mode}: course"] = positions[:1]
    for name in args.compile_variants if graph else []:
        v = next(v for v in args.variants if v.name == name)
        fast = make_variant(toys[v.layout], v)
        compiled = torch.compile(fast, mode="default", dynamic=False, fullgraph=True)
        step_sizes = sorted({bucket_for(p, all_sizes) for p in args.compile_positions if p < S})
        steps[f"compiled default: {name}"] = Step(fast, lambda t, p, n, c=compiled: c(t, p, static_kv=True, n_keys=n),
                                                  step_sizes, cudnn=v.attention == "cudnn")
        timed_at[f"compiled default: {name}"] = [p for p in args.compile_positions if p < S]
    for name, step in steps.items():
        if name in decodes:
            continue
        start = time.perf_counter()
        try:
            decodes[name] = make_bucketed_decode(step, graph=graph)
        except Exception as err:  # report, keep the other figures (cuDNN may refuse a mask, Inductor may fail)
            print(f"{name}: failed to build: {err.__class__.__name__}: {str(err)[:300]}")
            timed_at.pop(name)
            continue
        if name.startswith("compiled"):
            compile_seconds[name] = time.perf_counter() - start
            print(f"{name}: compiled and captured in {compile_seconds[name]:.0f} s")

    checks, fns = {}, {}
    refs = {p: logits_at(decodes["course"], toy, p) for p in positions + args.compile_positions if p < S}
    for p in positions:  # the bf16 noise between two right answers: the eager step over the filled prefix
        checks[f"course eager @{p}"] = compare(refs[p], logits_at(lambda t, p: model.decode_one_token(toy, t, p), toy, p),
                                               dtype)
    token = torch.zeros((1, 1), dtype=torch.long, device=device)
    for name, at in timed_at.items():
        for p in at:
            label = name if name == "course" else f"{name} @{p}"
            checks[label] = compare(refs[p], logits_at(decodes[name], steps[name].model, p), dtype)
            fns[label] = lambda d=decodes[name], p=p: d(token, p)
    for label, c in checks.items():
        print(f"check {label:55s} max|diff| {c['max_abs_diff']:.3g} (tol {c['tolerance']})"
              f" argmax {'same' if c['argmax_equal'] else 'DIFFERS'} {'ok' if c['ok'] else 'MISMATCH'}")

    counts = {name: kernel_counts(step, timed_at[name][0]) for name, step in steps.items() if name in timed_at}
    for name, c in counts.items():
        print(f"eager kernels {name:45s} {sum(c.values())}")
    for layout, t in toys.items():
        fns["gemv_only" + ("" if layout == "out_in" else f" ({layout})")], n_gemv = gemv_only(t)
    results = timed_report(fns, device, args.rounds, args.calls, {"vs_gemv_only": "gemv_only",
                                                                   "vs_gemv_only_in_out": "gemv_only (in_out)"})
    for k, v in results.items():
        ratio = v.get("vs_gemv_only", float("nan"))
        print(f"{k:60s} {v['median_ms']:.3f} ms (IQR {v['iqr_ms']:.3f})  {ratio:.3f}x GEMV-only")
    return {"preset": args.preset, "max_seq_len": S, "precision": args.precision, "positions": positions,
            "buckets_captured": sizes, "buckets_all": all_sizes, "rounds": args.rounds, "calls_per_round": args.calls,
            "gemv_count": n_gemv, "compile_seconds": compile_seconds, "checks": checks,
            "eager_kernels": {name: sum(c.values()) for name, c in counts.items()},
            "kernels_by_name": {name: dict(c.most_common()) for name, c in counts.items()}, "steps": results}


# ----------------------------------------------------------------------------- --budget: the GEMVs' own costs
def gemv_chain(weights: list[torch.Tensor], dependent: bool, seed: int = 3):
    """One batch-1 F.linear per (out, in) matrix in order. dependent: each input is the previous output, truncated
    to the next matrix's width (a view: no extra kernel); else each matrix has its own random input."""
    device, dtype = weights[0].device, weights[0].dtype
    gen = torch.Generator(device=device).manual_seed(seed)
    widest = max(w.shape[1] for w in weights)
    xs = [torch.randn(1, w.shape[1], generator=gen, device=device, dtype=dtype) for w in weights]
    x0 = torch.randn(1, widest, generator=gen, device=device, dtype=dtype)
    if dependent and any(a.shape[0] < b.shape[1] for a, b in zip(weights, weights[1:])):
        raise ValueError("a dependent chain needs each matrix's output at least as wide as the next one's input")

    def run():
        x = x0
        for w, xi in zip(weights, xs):
            x = F.linear(x[:, :w.shape[1]] if dependent else xi, w)

    return run


def random_matrices(shapes, dtype, device, copies: int, seed: int = 5) -> list[torch.Tensor]:
    """``copies`` x the matrices (out, in), scaled by 1/sqrt(in) so a dependent chain keeps unit-scale values."""
    gen = torch.Generator(device=device).manual_seed(seed)
    return [torch.randn(s, generator=gen, device=device, dtype=dtype) * s[1] ** -0.5 for _ in range(copies) for s in shapes]


def roof_chain_size(shapes, nbytes: int, itemsize: int) -> tuple[int, int]:
    """Matrices and bytes in roofs.gemv_bandwidth's chain: the shapes cycled until nbytes (its loop)."""
    n = total = 0
    while total < nbytes:
        out, n_in = shapes[n % len(shapes)]
        total, n = total + out * n_in * itemsize, n + 1
    return n, total


def budget(preset: str, device, precision: str, rounds: int, calls: int, repeat: int, nbytes: int | None,
           fast: bool) -> dict:
    dtype, graph = machine.torch_dtype(precision), torch.device(device).type == "cuda"
    shapes = get_config(preset).matrix_shapes()
    n, itemsize = len(shapes), dtype.itemsize
    step_bytes = sum(o * i for o, i in shapes) * itemsize
    # distinct matrices for each repeat while they fit in 8 GiB (each stays cold); beyond, the step alone is far
    # larger than any L2, so the repeats reuse one set
    copies = repeat if step_bytes * repeat <= 8 * 2**30 else 1
    mats = random_matrices(shapes, dtype, device, copies)
    one, repeated = mats[:n], mats if copies > 1 else mats * repeat
    tiny = random_matrices([(8, i) for _, i in shapes], dtype, device, 1)
    with torch.inference_mode():
        roof_before = roofs.gemv_bandwidth(device, precision, shapes=shapes, nbytes=nbytes, fast=fast)
        fns = {"independent": gemv_chain(one, False), f"independent x{repeat}": gemv_chain(repeated, False),
               "dependent": gemv_chain(one, True), f"dependent x{repeat}": gemv_chain(repeated, True),
               "tiny": gemv_chain(tiny, False), f"tiny x{repeat}": gemv_chain(tiny * repeat, False)}
        counts, tiny_counts = cuda_kernels(fns["dependent"], device), cuda_kernels(fns["tiny"], device)
        fns = {name: graph_if_cuda(fn, device) for name, fn in fns.items()}
        # the main mode's gemv_only: the model's own weights, each called as the model calls it ((1, 1, in) input)
        toy = model.build_model(preset, device=device, precision=precision)
        fns["gemv_only (model)"] = gemv_only(toy)[0]
        steps = timed_report(fns, device, rounds, calls, {"vs_independent": "independent"})
        roof_after = roofs.gemv_bandwidth(device, precision, shapes=shapes, nbytes=nbytes, fast=fast)
    roof = (roof_before + roof_after) / 2
    chain_n, chain_bytes = roof_chain_size(shapes, nbytes or (2048 if graph else 256) * 2**20, itemsize)  # roofs' sizes
    t = {k: v["median_ms"] for k, v in steps.items()}
    derived = {"roof_bytes_per_s": [roof_before, roof_after], "roof_chain_matrices": chain_n,
               "roof_chain_per_gemv_us": chain_bytes / roof / chain_n * 1e6,
               "step_bytes": step_bytes, "n_gemv": n, "copies_for_repeats": copies,
               "splitk_reduce_kernels_per_step": sum(c for k, c in counts.items() if "splitKreduce" in k),
               "kernels_by_name": dict(counts.most_common()), "tiny_kernels_by_name": dict(tiny_counts.most_common()),
               "splitk_reduce_kernels_tiny": sum(c for k, c in tiny_counts.items() if "splitKreduce" in k),
               "roof_step_ms": step_bytes / roof * 1e3, "roof_per_gemv_us": step_bytes / roof / n * 1e6}
    for kind in ("independent", "dependent", "tiny"):
        slope = (t[f"{kind} x{repeat}"] - t[kind]) / (repeat - 1)  # ms per pass of the n GEMVs inside a graph
        derived[f"{kind}_in_graph_ms"] = slope
        derived[f"{kind}_per_replay_overhead_ms"] = t[kind] - slope
        derived[f"{kind}_per_gemv_us"] = slope / n * 1e3
    fixed = derived["tiny_per_gemv_us"] * 1e-3  # ms per GEMV that moves (almost) no bytes
    derived["fixed_term_ms"] = n * fixed
    derived["roof_plus_fixed_ms"] = derived["roof_step_ms"] + n * fixed
    derived["roof_plus_fixed_plus_replay_ms"] = derived["roof_plus_fixed_ms"] + derived["independent_per_replay_overhead_ms"]
    derived["measured_independent_ms"] = t["independent"]
    derived["gemv_only_model_ms"] = t["gemv_only (model)"]
    # the gap (measured - roof) split into: the graph's replay overhead, and the GEMVs' own excess inside the graph
    derived["gap_ms"] = t["independent"] - derived["roof_step_ms"]
    derived["gap_in_graph_ms"] = derived["independent_in_graph_ms"] - derived["roof_step_ms"]
    print(f"\n{preset}: {n} GEMVs, {step_bytes / 1e6:.1f} MB; roof {roof / 1e9:.0f} GB/s "
          f"(before {roof_before / 1e9:.0f}, after {roof_after / 1e9:.0f}; its chain: {chain_n} matrices)")
    for k, v in steps.items():
        print(f"  {k:20s} {v['median_ms']:.4f} ms (IQR {v['iqr_ms']:.4f})")
    for k in ("roof_step_ms", "roof_per_gemv_us", "roof_chain_per_gemv_us", "gap_ms", "gap_in_graph_ms",
              "independent_in_graph_ms", "independent_per_replay_overhead_ms",
              "independent_per_gemv_us", "dependent_in_graph_ms", "dependent_per_gemv_us", "tiny_per_gemv_us",
              "fixed_term_ms", "roof_plus_fixed_ms", "roof_plus_fixed_plus_replay_ms", "measured_independent_ms",
              "gemv_only_model_ms", "splitk_reduce_kernels_per_step", "splitk_reduce_kernels_tiny"):
        print(f"  {k:40s} {derived[k]:.4f}")
    del toy, mats, one, repeated, tiny, fns  # before the next preset's matrices
    machine.release(device)
    return {"preset": preset, "precision": precision, "rounds": rounds, "calls_per_round": calls, "repeat": repeat,
            "steps": steps, "derived": derived}


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default=None, help="default 7b (--dry-run: tiny)")
    ap.add_argument("--max-seq-len", type=int, default=None, help="override the preset's cache length")
    ap.add_argument("--positions", default="100,1000,3000", help="those below max_seq_len are used")
    ap.add_argument("--min-bucket", type=int, default=None, help="smallest captured cache length (128; dry run 16)")
    ap.add_argument("--variants", default=",".join(v.name for v in VARIANTS), help="names as in VARIANTS; '' = none")
    ap.add_argument("--compile-modes", default="", help="torch.compile modes for the course step, e.g. default")
    ap.add_argument("--compile-variants", default="", help="variant names to torch.compile (mode default)")
    ap.add_argument("--compile-positions", default="100")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--precision", default=None, help="default bf16 (--dry-run: fp32)")
    ap.add_argument("--budget", action="store_true", help="the GEMV budget for --budget-presets instead")
    ap.add_argument("--budget-presets", default="gpu-m,7b")
    ap.add_argument("--repeat", type=int, default=4, help="--budget: passes of the GEMVs in the repeated graphs")
    ap.add_argument("--dry-run", action="store_true", help="CPU, small preset, eager: checks every code path")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "gpu_fusion.json")
    args = ap.parse_args(argv)
    dry = args.dry_run
    device = torch.device("cpu" if dry else "cuda")
    args.preset = args.preset or ("tiny" if dry else "7b")
    args.precision = args.precision or ("fp32" if dry else "bf16")
    args.min_bucket = args.min_bucket or (16 if dry else 128)
    if dry and args.positions == ap.get_default("positions"):
        args.positions = "5,40"
    args.positions = [int(p) for p in args.positions.split(",") if p]
    args.compile_positions = [int(p) for p in args.compile_positions.split(",") if p]
    by_name = ALL_VARIANTS
    unknown = [n for n in args.variants.split(",") + args.compile_variants.split(",") if n and n not in by_name]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; known: {list(by_name)}")
    args.variants = [by_name[n] for n in args.variants.split(",") if n]
    args.compile_variants = [n for n in args.compile_variants.split(",") if n]
    args.variants += [by_name[n] for n in args.compile_variants if by_name[n] not in args.variants]
    args.compile_modes = [m for m in args.compile_modes.split(",") if m]
    if args.repeat < 2:
        raise ValueError(f"--repeat={args.repeat} must be at least 2 (the slope needs two points)")
    if dry:
        args.rounds, args.calls = min(args.rounds, 2), 1
    result = {"provenance": provenance(device), "dry_run": dry}
    if args.budget:
        presets = [args.preset] if dry else args.budget_presets.split(",")
        result["budget"] = {p: budget(p, device, args.precision, args.rounds, args.calls, args.repeat,
                                      2**20 if dry else None, fast=dry) for p in presets}
    else:
        result.update(run_variants(args, device, machine.torch_dtype(args.precision)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    bad = [k for k, c in result.get("checks", {}).items() if not c["ok"]]
    if bad:
        print(f"LOGITS MISMATCH: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
