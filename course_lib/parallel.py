r"""Tensor parallelism of the toy GPT, for real: N processes, torch.distributed, two all-reduces
per layer (Megatron-LM style). Each rank holds 1/N of every block's matrices:

    wqkv    by heads (column-parallel): its h/N query heads, the h_kv/N KV heads they read, their cache
    wo      by input columns (row-parallel): partial outputs, summed    -> all-reduce #1
    w_up    by output rows (column-parallel): GELU on each rank's slice
    w_down  by input columns (row-parallel)                             -> all-reduce #2

The embedding, norms and LM head are replicated: every rank computes the same logits and picks
the same token, so the ranks stay in lockstep. (Real systems also split the LM head.)

Ranks are started with ``torch.multiprocessing.start_processes`` (spawn: works from Jupyter);
gloo on the CPU, NCCL when there are N GPUs. A failing or hung rank stops them all (spawn_ranks).

Each rank runs one torch thread and times notebook 01's decode step (``measure.decode_step``) with
the course's one harness (``machine.time_interleaved``); rank 0 times the unsplit model in the same
rounds: the one-device baseline. The same processes then time all-reduces and fit the link's alpha
and beta (``serving.fit_allreduce``). ``serving.explain_tensor_parallel`` reads a result.

References: Shoeybi et al., "Megatron-LM" (2019), section 3; the PyTorch tutorial "Writing
distributed applications with PyTorch"; the torch.distributed / torch.multiprocessing docs.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from . import serving
from .machine import check_precision, fast_mode, measurement, release, synchronize, time_interleaved, use_threads
from .measure import decode_step
from .model import Attention, Block, InOutLinear, KVCache, ToyGPT, build_model, generate, teacher_forced_logits
from .perf import check_count, check_positive
from .roofs import best_layout
from .specs import ToyConfig, get_config, preset_name


# ----------------------------------------------------------------------------- splitting the model
def _check_split(config: ToyConfig, world_size) -> int:
    """``world_size`` if n_heads, n_kv_heads and d_ff divide by it (whole heads per rank); else ValueError."""
    world_size = check_count("world_size", world_size)
    for name in ("n_heads", "n_kv_heads", "d_ff"):
        if getattr(config, name) % world_size:
            raise ValueError(f"world_size={world_size} does not divide {name}={getattr(config, name)}: every "
                             f"rank must get the same whole number of heads and MLP columns")
    return world_size


def _weight(layer: nn.Module) -> torch.Tensor:
    """The (out, in) weight of an nn.Linear or of model.InOutLinear (stored (in, out))."""
    return layer.weight_t.t() if isinstance(layer, InOutLinear) else layer.weight


def _linear(weight: torch.Tensor, layout: str) -> nn.Module:
    """A bias-free layer holding its own copy of ``weight`` (out, in), stored in ``layout`` as build_model does."""
    if layout == "in_out":  # a copy even where the transposed slice is contiguous: no view keeps the full matrix alive
        return InOutLinear(weight.t().clone(memory_format=torch.contiguous_format))
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=False, device="meta")
    layer.weight = nn.Parameter(weight.clone(), requires_grad=False)
    return layer


def _shard_block(full: Block, config: ToyConfig, rank: int, n: int, all_reduce, layout: str) -> Block:
    """This rank's block: an ordinary Block whose attention has h/N query and h_kv/N KV heads
    (rows of wqkv, columns of wo, its own smaller KV cache) and whose MLP has d_ff/N columns.
    The attention and w_down outputs are partial sums: a forward hook all-reduces each."""
    local = replace(config, d_model=config.d_model // n, n_heads=config.n_heads // n,
                    n_kv_heads=config.n_kv_heads // n, d_ff=config.d_ff // n)  # same head_dim
    dtype, batch = full.attn_norm.weight.dtype, full.attention.cache.k_cache.shape[0]
    with torch.device("meta"):
        block, attention = Block(config, batch, dtype), Attention(local, batch, dtype)
    q, k, v = _weight(full.attention.wqkv).split(full.attention.split_sizes)  # (h·hd, d), (h_kv·hd, d) x 2
    # chunk(n)[rank]: this rank's contiguous 1/N, whole heads (query head i reads KV head i·h_kv/h)
    attention.wqkv = _linear(torch.cat([w.chunk(n)[rank] for w in (q, k, v)]), layout)  # ((h + 2 h_kv)·hd / N, d)
    attention.wo = _linear(_weight(full.attention.wo).chunk(n, dim=1)[rank], layout)  # (d, h·hd / N)
    with torch.device(full.attn_norm.weight.device):
        attention.cache = KVCache(batch, local.n_kv_heads, config.max_seq_len, config.head_dim, dtype)
    block.attn_norm, block.mlp_norm = full.attn_norm, full.mlp_norm  # replicated
    block.attention = attention
    block.w_up = _linear(_weight(full.w_up).chunk(n)[rank], layout)  # (d_ff / N, d)
    block.w_down = _linear(_weight(full.w_down).chunk(n, dim=1)[rank], layout)  # (d, d_ff / N)
    for partial in (block.attention, block.w_down):
        partial.register_forward_hook(lambda module, args, out: all_reduce(out))  # the returned sum replaces out
    return block


def shard_model(full: ToyGPT, rank: int, world_size: int, all_reduce=None) -> ToyGPT:
    """Rank ``rank``'s tensor-parallel slice of ``full``: a ToyGPT whose blocks hold this rank's
    weight slices (in ``full``'s weight layout) and KV cache and share the replicated embedding,
    norms and LM head with ``full``. ``all_reduce(x) -> x`` sums a tensor over the ranks (default: identity, right
    only for world_size 1). prefill, decode_one_token and generate run on it unchanged."""
    world_size = _check_split(full.config, world_size)
    with torch.device("meta"):
        shard = ToyGPT(full.config, full.max_batch, full.dtype)
    shard.embedding, shard.final_norm, shard.lm_head = full.embedding, full.final_norm, full.lm_head
    shard.layers = nn.ModuleList(_shard_block(block, full.config, rank, world_size, all_reduce or (lambda x: x),
                                              full.layout) for block in full.layers)
    shard.layout = full.layout
    return shard.eval()


# ----------------------------------------------------------------------------- starting the ranks
def _backend(world_size: int) -> str:
    """"nccl" when there are >= world_size CUDA GPUs and torch has NCCL; else "gloo" (CPU)."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return "nccl" if gpus >= world_size and dist.is_nccl_available() else "gloo"


def _rank_main(rank: int, world_size: int, backend: str, folder: str, timeout: float, fn, args) -> None:
    """Body of every spawned process: one thread, join the group, run ``fn(rank, world_size,
    device, *args)`` (device: its own GPU with NCCL, else the CPU); rank 0 writes its return
    value to ``folder``/result.pickle."""
    use_threads(1)
    device = torch.device("cuda", rank) if backend == "nccl" else torch.device("cpu")
    if backend == "nccl":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method=f"file://{folder}/rendezvous", rank=rank,
                            world_size=world_size, timeout=timedelta(seconds=timeout))
    out = fn(rank, world_size, device, *args)
    if rank == 0:  # (if it fails later, or is stopped, the parent raises and never reads the file)
        with open(f"{folder}/result.pickle", "wb") as f:
            pickle.dump(out, f)
    dist.destroy_process_group()


def spawn_ranks(fn, world_size: int, args: tuple = (), timeout: float = 120.0):
    """Run ``fn(rank, world_size, device, *args)`` in ``world_size`` new processes joined in one
    torch.distributed group; return rank 0's return value (it must pickle). ``fn`` must be a
    module's top-level function (spawned processes import it by name; a script calling this needs
    ``if __name__ == "__main__":``). RuntimeError with the traceback if a rank fails; TimeoutError
    after ``timeout`` seconds (start-up included). Either way no rank is left running."""
    world_size, timeout = check_count("world_size", world_size), check_positive("timeout", timeout)
    backend = _backend(world_size)
    if backend == "nccl":  # NVLink multicast stays off (shared GPU hosts require it); children inherit this
        os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
    with tempfile.TemporaryDirectory(prefix="course-tp-") as folder:
        ranks = mp.start_processes(_rank_main, (world_size, backend, folder, timeout, fn, args), nprocs=world_size,
                                   join=False, daemon=True, start_method="spawn")
        deadline = time.monotonic() + timeout
        try:
            while not ranks.join(timeout=max(deadline - time.monotonic(), 0.0), grace_period=2.0):
                if time.monotonic() >= deadline:
                    for process in ranks.processes:
                        process.kill()
                        process.join()
                    raise TimeoutError(f"the {world_size} ranks did not finish within timeout={timeout} s "
                                       f"(start-up included); they were stopped")
        except (mp.ProcessRaisedException, mp.ProcessExitedException) as error:
            raise RuntimeError(f"rank {error.error_index} of {world_size} failed:{error}") from None
        with open(f"{folder}/result.pickle", "rb") as f:
            return pickle.load(f)


# ----------------------------------------------------------------------------- the link
@dataclass
class LinkResult:
    """All-reduce times measured between the ranks, and the alpha-beta model fitted to them
    (``serving.fit_allreduce``; gloo's all-reduce is a ring)."""

    world_size: int
    backend: str
    algorithm: str                # the all-reduce model fitted
    message_bytes: list[int]      # the decode message (one token's hidden state) among them
    seconds: list[float]          # median per all-reduce, one per message size
    iqr_s: list[float]            # their inter-quartile ranges
    latency_s: float              # alpha
    bandwidth_Bps: float          # beta: bytes per second


def _time_link(device: torch.device, world_size: int, sizes: list[int], rounds: int, calls: int) -> LinkResult:
    """Every rank: time all-reduces of each size in interleaved rounds, the same calls everywhere."""
    buffers = {size: torch.ones(size // 4, device=device) for size in sizes}
    steps = {size: (lambda x=x: dist.all_reduce(x)) for size, x in buffers.items()}
    times = time_interleaved(steps, device, rounds=rounds, warmup=3, calls=calls)
    seconds = [times[size].median for size in sizes]
    return LinkResult(world_size, dist.get_backend(), "ring", sizes, seconds, [times[size].iqr for size in sizes],
                      *serving.fit_allreduce(sizes, seconds, world_size, "ring"))


# ----------------------------------------------------------------------------- the tensor-parallel run
@dataclass
class TensorParallelResult:
    """One tensor-parallel run beside the unsplit model. Times are seconds per decode step:
    medians and inter-quartile ranges over ``repeats`` timed steps each."""

    preset: str
    world_size: int
    backend: str
    device: str
    precision: str
    layout: str                   # weight layout of both models, as notebook 01 picks it
    tokens: list[int]             # prompt + n_tokens new ones, split model
    identical_tokens: bool        # to the unsplit model's
    max_abs_logit_diff: float     # over every position of the output, in one full pass
    context_len: int              # tokens cached before the timed step
    repeats: int                  # timed steps of each kind
    step_s: float                 # one tensor-parallel decode step (rank 0's clock)
    step_iqr_s: float
    comm_s: float                 # inside the all-reduces: transfer + waiting for the other ranks
    comm_iqr_s: float
    compute_s: float              # timed step - comm_s
    comm_share: float             # comm_s / timed step
    timed_step_s: float           # the step with clocks around every all-reduce (on a GPU they sync it)
    single_device_step_s: float   # the unsplit model, one process, one thread, timed in the same rounds
    single_device_iqr_s: float
    speedup: float                # single_device_step_s / step_s
    allreduces_per_step: int      # 2 per layer
    allreduce_bytes: int          # bytes per all-reduce: the hidden state of one token
    split_share: float            # of the unsplit step's bytes (weights + KV reads), the part TP divides
    cpu_count: int                # of the machine that ran it
    link: LinkResult | None = None


@torch.inference_mode()
def _tp_worker(rank: int, world_size: int, device: torch.device, config: ToyConfig, precision: str, layout: str,
               seed: int, prompt_len: int, n_tokens: int, context_len: int, rounds: int, calls: int,
               link_sizes: list[int]) -> TensorParallelResult | None:
    """One rank: build the full model (same seed everywhere), keep this rank's slice, decode and
    check; then time notebook 01's decode step in lockstep on every rank, rank 0 also timing the
    unsplit model in the same rounds (the other ranks wait in their next all-reduce); then the link."""
    seconds, comm, clocks = [], [], {"on": True}  # each all-reduce of the current step; their sum per step

    def clock() -> float:  # as the harness's: the device synchronised before the clock is read
        synchronize(device)
        return time.perf_counter()

    def all_reduce(x: torch.Tensor) -> torch.Tensor:
        start = clock() if clocks["on"] else None
        dist.all_reduce(x)  # sum, in place
        if start is not None:
            seconds.append(clock() - start)
        return x

    if rank == 0:  # the other ranks build, slice and drop their full copy first: less memory at once
        dist.barrier()
    full = build_model(config, device=device, precision=precision, seed=seed, layout=layout)
    shard = shard_model(full, rank, world_size, all_reduce)
    if rank != 0:  # only rank 0 runs the unsplit model
        del full
        release(device)
        dist.barrier()
    prompt = torch.randint(0, config.vocab_size, (1, prompt_len), generator=torch.Generator().manual_seed(seed)).to(device)
    tokens = generate(shard, prompt, n_tokens)
    logits = teacher_forced_logits(shard, tokens)
    if rank == 0:
        reference, full_logits = generate(full, prompt, n_tokens), teacher_forced_logits(full, tokens)
    release(device)  # the checks' temporaries: the ranks share a small machine's memory with the notebook
    step = decode_step(shard, 1, context_len)  # notebook 01's timed step, the same tokens on every rank

    def timed_step():
        seconds.clear()
        step()
        comm.append(sum(seconds))

    def plain_step():  # on a GPU the clocks sync around every all-reduce, which slows the step itself
        clocks["on"] = False
        step()
        clocks["on"] = True

    steps = {"tensor parallel": timed_step, **({"no clocks": plain_step} if device.type == "cuda" else {})}
    if rank == 0:
        steps["one process"] = decode_step(full, 1, context_len)
    times = time_interleaved(steps, device, rounds=rounds, warmup=2, calls=calls)
    link = _time_link(device, world_size, link_sizes, rounds, calls) if link_sizes else None
    if rank != 0:
        return None
    timed, single = times["tensor parallel"], times["one process"]
    plain = times.get("no clocks", timed)
    comm_m = measurement(comm[-rounds * calls:])  # the warm-up steps dropped
    comm_s, comm_iqr = comm_m.median, comm_m.iqr
    parts = config.decode_components(precision, context_len + 1)  # the bytes one step reads, by component
    streamed = sum(parts.values()) - parts["embedding lookup (one row)"]  # (as weight_bytes: the embedding excluded)
    replicated = parts["norms"] + parts["LM head (vocabulary projection)"]  # read whole by every rank
    return TensorParallelResult(
        preset=preset_name(config), world_size=world_size, backend=dist.get_backend(), device=device.type,
        precision=precision, layout=full.layout, tokens=tokens[0].tolist(), identical_tokens=bool(torch.equal(tokens, reference)),
        max_abs_logit_diff=float((logits.float() - full_logits.float()).abs().max()), context_len=context_len,
        repeats=rounds * calls, step_s=plain.median, step_iqr_s=plain.iqr, comm_s=comm_s, comm_iqr_s=comm_iqr,
        compute_s=timed.median - comm_s, comm_share=comm_s / timed.median, timed_step_s=timed.median,
        single_device_step_s=single.median, single_device_iqr_s=single.iqr, speedup=single.median / plain.median,
        allreduces_per_step=2 * config.n_layers, allreduce_bytes=config.d_model * full.dtype.itemsize,
        split_share=(streamed - replicated) / streamed,
        cpu_count=os.cpu_count() or 1, link=link)


def run_tensor_parallel(preset_or_config="cpu-m", world_size: int = 2, n_tokens: int = 16, prompt_len: int = 16,
                        precision: str = "fp32", context_len: int | None = None, layout: str = "auto", rounds: int | None = None,
                        calls: int | None = None, link_bytes=(1 << 16, 1 << 19, 1 << 22), seed: int = 0,
                        fast: bool | None = None, timeout: float = 180.0) -> TensorParallelResult:
    """Greedy decoding of the toy GPT split over ``world_size`` processes, checked against the
    unsplit model (tokens, logits); then notebook 01's decode step (``context_len`` cached tokens,
    default 128 or half the cache, ``layout="auto"``: the weight layout that streams faster here, one thread), timed
    split and unsplit in the same interleaved rounds (``rounds`` x ``calls``, default as notebook
    01's decode sweep: 5 x 10, fast mode 3 x 5); then all-reduces of one float, the decode message and
    ``link_bytes`` (empty: no link) with the fitted alpha and beta. ValueError for bad arguments
    (before any process starts); RuntimeError if a rank fails; TimeoutError after ``timeout`` s."""
    config = get_config(preset_or_config)
    _check_split(config, world_size)
    check_count("n_tokens", n_tokens)
    check_count("prompt_len", prompt_len)
    context_len = check_count("context_len", min(128, config.max_seq_len // 2) if context_len is None else context_len)
    lengths = {"prompt_len + n_tokens": prompt_len + n_tokens, "context_len + 1": context_len + 1}
    for name, length in lengths.items():
        if length > config.max_seq_len:
            raise ValueError(f"{name} = {length} exceeds max_seq_len={config.max_seq_len}")
    device_type = "cuda" if _backend(world_size) == "nccl" else "cpu"
    precision = check_precision(device_type, precision)
    if layout not in ("out_in", "in_out", "auto"):
        raise ValueError(f"layout={layout!r} must be 'out_in', 'in_out' or 'auto'")
    fast = fast_mode(fast)
    if layout == "auto":  # as notebook 01's decode sweep, at the ranks' one thread
        layout = best_layout(device_type, precision, config, 1, fast)
    rounds = check_count("rounds", (3 if fast else 5) if rounds is None else rounds)
    calls = check_count("calls", (5 if fast else 10) if calls is None else calls)
    sizes = {4, config.d_model * 4, *(4 * (check_count("message_bytes", m, 4) // 4) for m in link_bytes)}  # fp32
    sizes = sorted(sizes) if link_bytes else []  # one float, the decode message and link_bytes; none: no link
    args = (config, precision, layout, seed, prompt_len, n_tokens, context_len, rounds, calls, sizes)
    return spawn_ranks(_tp_worker, world_size, args, timeout)
