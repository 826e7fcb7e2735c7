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

Each rank runs one torch thread. On a 2-core CPU the two ranks share the two cores with the
notebook's kernel and the OS: communication and waiting dominate, which is the lesson.

References: Shoeybi et al., "Megatron-LM" (2019), section 3; the PyTorch tutorial "Writing
distributed applications with PyTorch"; the torch.distributed / torch.multiprocessing docs.
"""

from __future__ import annotations

import os
import pickle
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from .machine import check_precision, synchronize, time_interleaved, use_threads
from .model import Attention, Block, KVCache, ToyGPT, build_model, decode_one_token, generate, teacher_forced_logits
from .perf import check_count, check_positive
from .presets import ToyConfig, get_config, preset_name


# ----------------------------------------------------------------------------- splitting the model
def _check_split(config: ToyConfig, world_size) -> int:
    """``world_size`` if n_heads, n_kv_heads and d_ff divide by it (whole heads per rank); else ValueError."""
    world_size = check_count("world_size", world_size)
    for name in ("n_heads", "n_kv_heads", "d_ff"):
        if getattr(config, name) % world_size:
            raise ValueError(f"world_size={world_size} does not divide {name}={getattr(config, name)}: every "
                             f"rank must get the same whole number of heads and MLP columns")
    return world_size


def _linear(weight: torch.Tensor) -> nn.Linear:
    """A bias-free nn.Linear holding its own copy of ``weight`` (out, in)."""
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=False, device="meta")
    layer.weight = nn.Parameter(weight.clone(), requires_grad=False)
    return layer


def _shard_block(full: Block, config: ToyConfig, rank: int, n: int, all_reduce) -> Block:
    """This rank's block: an ordinary Block whose attention has h/N query and h_kv/N KV heads
    (rows of wqkv, columns of wo, its own smaller KV cache) and whose MLP has d_ff/N columns.
    The attention and w_down outputs are partial sums: a forward hook all-reduces each."""
    local = replace(config, d_model=config.d_model // n, n_heads=config.n_heads // n,
                    n_kv_heads=config.n_kv_heads // n, d_ff=config.d_ff // n)  # same head_dim
    dtype, batch = full.w_up.weight.dtype, full.attention.cache.k_cache.shape[0]
    with torch.device("meta"):
        block, attention = Block(config, batch, dtype), Attention(local, batch, dtype)
    q, k, v = full.attention.wqkv.weight.split(full.attention.split_sizes)  # (h·hd, d), (h_kv·hd, d) x 2
    # chunk(n)[rank]: this rank's contiguous 1/N, whole heads (query head i reads KV head i·h_kv/h)
    attention.wqkv = _linear(torch.cat([w.chunk(n)[rank] for w in (q, k, v)]))  # ((h + 2 h_kv)·hd / N, d)
    attention.wo = _linear(full.attention.wo.weight.chunk(n, dim=1)[rank])  # (d, h·hd / N)
    with torch.device(full.w_up.weight.device):
        attention.cache = KVCache(batch, local.n_kv_heads, config.max_seq_len, config.head_dim, dtype)
    block.attn_norm, block.mlp_norm = full.attn_norm, full.mlp_norm  # replicated
    block.attention = attention
    block.w_up = _linear(full.w_up.weight.chunk(n)[rank])  # (d_ff / N, d)
    block.w_down = _linear(full.w_down.weight.chunk(n, dim=1)[rank])  # (d, d_ff / N)
    for partial in (block.attention, block.w_down):
        partial.register_forward_hook(lambda module, args, out: all_reduce(out))  # the returned sum replaces out
    return block


def shard_model(full: ToyGPT, rank: int, world_size: int, all_reduce=None) -> ToyGPT:
    """Rank ``rank``'s tensor-parallel slice of ``full``: a ToyGPT whose blocks hold this rank's
    weight slices and KV cache and share the replicated embedding, norms and LM head with
    ``full``. ``all_reduce(x) -> x`` sums a tensor over the ranks (default: identity, right
    only for world_size 1). prefill, decode_one_token and generate run on it unchanged."""
    world_size = _check_split(full.config, world_size)
    with torch.device("meta"):
        shard = ToyGPT(full.config, full.max_batch, full.dtype)
    shard.embedding, shard.final_norm, shard.lm_head = full.embedding, full.final_norm, full.lm_head
    shard.layers = nn.ModuleList(_shard_block(block, full.config, rank, world_size, all_reduce or (lambda x: x))
                                 for block in full.layers)
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


# ----------------------------------------------------------------------------- the tensor-parallel run
@dataclass
class TensorParallelResult:
    """One tensor-parallel run beside the unsplit model. Times are medians in seconds per decode
    step; comm_s is the time inside the all-reduces (transfer + waiting for the other ranks)."""

    preset: str
    world_size: int
    backend: str
    precision: str
    tokens: list[int]             # prompt + n_tokens new ones, split model
    identical_tokens: bool        # to the unsplit model's
    max_abs_logit_diff: float     # over every position of the output, in one full pass
    step_s: float                 # one tensor-parallel decode step (rank 0's clock)
    compute_s: float              # step_s - comm_s
    comm_s: float
    comm_share: float             # comm_s / step_s
    single_device_step_s: float   # the unsplit model, one process, one thread, timed in the same rounds
    speedup: float                # single_device_step_s / step_s
    allreduces_per_step: int      # 2 per layer
    allreduce_bytes: int          # bytes per all-reduce: the hidden state of one token


@torch.inference_mode()
def _tp_worker(rank: int, world_size: int, device: torch.device, config: ToyConfig, precision: str, seed: int,
               prompt_len: int, n_tokens: int, rounds: int) -> TensorParallelResult | None:
    """One rank: build the full model (same seed everywhere), keep this rank's slice, decode;
    then time one decode step at the last position, in lockstep on every rank. Rank 0 also times
    the unsplit model in the same rounds (the other ranks wait in their next all-reduce)."""
    seconds, comm = [], []  # each all-reduce of the current step (transfer + waiting); their sum per step

    def all_reduce(x: torch.Tensor) -> torch.Tensor:
        synchronize(device)
        start = time.perf_counter()
        dist.all_reduce(x)  # sum, in place
        synchronize(device)
        seconds.append(time.perf_counter() - start)
        return x

    full = build_model(config, device=device, precision=precision, seed=seed)
    shard = shard_model(full, rank, world_size, all_reduce)
    prompt = torch.randint(0, config.vocab_size, (1, prompt_len), generator=torch.Generator().manual_seed(seed)).to(device)
    tokens = generate(shard, prompt, n_tokens)
    logits = teacher_forced_logits(shard, tokens)
    last, pos = tokens[:, -1:], tokens.shape[1] - 1  # decode the last token again (it rewrites its own slot)

    def tp_step():
        seconds.clear()
        decode_one_token(shard, last, pos)
        comm.append(sum(seconds))

    steps = {"tensor parallel": tp_step}
    if rank == 0:
        reference = generate(full, prompt, n_tokens)  # (this fills its KV cache for the timed step)
        steps["one process"] = lambda: decode_one_token(full, last, pos)
    times = time_interleaved(steps, device, rounds=rounds, warmup=2)
    if rank != 0:
        return None
    step, single = times["tensor parallel"].median, times["one process"].median
    comm_s = statistics.median(comm[-rounds:])  # the warm-up steps dropped
    return TensorParallelResult(
        preset=preset_name(config), world_size=world_size, backend=dist.get_backend(), precision=precision,
        tokens=tokens[0].tolist(), identical_tokens=bool(torch.equal(tokens, reference)),
        max_abs_logit_diff=float((logits.float() - teacher_forced_logits(full, tokens).float()).abs().max()),
        step_s=step, compute_s=step - comm_s, comm_s=comm_s, comm_share=comm_s / step,
        single_device_step_s=single, speedup=single / step,
        allreduces_per_step=len(seconds), allreduce_bytes=config.d_model * full.dtype.itemsize)


def run_tensor_parallel(preset_or_config="cpu-m", world_size: int = 2, n_tokens: int = 16, prompt_len: int = 16,
                        precision: str = "fp32", rounds: int = 20, seed: int = 0,
                        timeout: float = 180.0) -> TensorParallelResult:
    """Greedy decoding of the toy GPT split over ``world_size`` processes, checked against the
    unsplit model (tokens, logits) and timed: one decode step, ``rounds`` times after warm-up
    (``machine.time_interleaved``), alternating with rank 0 timing the unsplit model's step.
    ValueError for bad arguments (before any process starts); RuntimeError if a rank fails;
    TimeoutError after ``timeout`` seconds."""
    config = get_config(preset_or_config)
    _check_split(config, world_size)
    check_count("n_tokens", n_tokens)
    check_count("prompt_len", prompt_len)
    if prompt_len + n_tokens > config.max_seq_len:
        raise ValueError(f"prompt_len + n_tokens = {prompt_len + n_tokens} exceeds max_seq_len={config.max_seq_len}")
    precision = check_precision("cuda" if _backend(world_size) == "nccl" else "cpu", precision)
    args = (config, precision, seed, prompt_len, n_tokens, check_count("rounds", rounds))
    return spawn_ranks(_tp_worker, world_size, args, timeout)


# ----------------------------------------------------------------------------- the link itself
@dataclass
class LinkResult:
    """All-reduce times on this machine and the ring model fitted to them (perf.allreduce_time)."""

    world_size: int
    backend: str
    message_bytes: list[int]      # the preset's decode message (one token's hidden state) among them
    seconds: list[float]          # median per all-reduce, one per message size
    latency_s: float              # alpha: per ring step
    bandwidth_Bps: float          # beta: bytes per second


def _allreduce_worker(rank: int, world_size: int, device: torch.device, sizes: list[int], rounds: int) -> list[float]:
    """Median seconds of one all-reduce per message size (fp32), the same calls on every rank."""
    buffers = {size: torch.rand(size // 4, device=device) for size in sizes}
    steps = {size: (lambda x=x: dist.all_reduce(x)) for size, x in buffers.items()}
    return [m.median for m in time_interleaved(steps, device, rounds=rounds, warmup=3).values()]


def measure_allreduce(world_size: int = 2, preset_or_config="cpu-m",
                      message_bytes=(1 << 14, 1 << 18, 1 << 22), rounds: int = 20,
                      timeout: float = 120.0) -> LinkResult:
    r"""Time all-reduces of the preset's decode message (one token's hidden state, fp32) and of
    ``message_bytes`` over ``world_size`` processes, and fit the ring model
    :math:`t = 2(N-1)\,\alpha + \frac{2(N-1)}{N} \cdot m / \beta` by least squares: the link's
    latency alpha and bandwidth beta. With gloo on one machine the "link" is the loopback
    network stack: the fit describes this machine, for ``perf.tensor_parallel_decode_time``."""
    world_size = check_count("world_size", world_size, 2)
    decode_bytes = get_config(preset_or_config).d_model * 4
    sizes = sorted({decode_bytes, *(4 * (check_count("message_bytes", m, 4) // 4) for m in message_bytes)})
    seconds = spawn_ranks(_allreduce_worker, world_size, (sizes, check_count("rounds", rounds)), timeout)
    slope, intercept = statistics.linear_regression(sizes, seconds)
    steps = 2 * (world_size - 1)
    return LinkResult(world_size=world_size, backend=_backend(world_size), message_bytes=sizes, seconds=seconds,
                      latency_s=max(intercept, 0.0) / steps,
                      bandwidth_Bps=steps / world_size / slope if slope > 0 else float("inf"))
