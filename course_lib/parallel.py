r"""Tensor parallelism of the toy GPT, for real: N processes, torch.distributed, two all-reduces
per layer (Megatron-LM style).

Each rank holds 1/N of every block's matrices and streams only those bytes per step:

    wqkv    split by heads (column-parallel): rank r gets query heads [r·h/N, (r+1)·h/N) and
            the KV heads they read, [r·h_kv/N, (r+1)·h_kv/N), and caches only those K and V
    wo      split by its input rows (row-parallel): each rank's partial output is summed
            -> all-reduce #1
    w_up    split by output columns (column-parallel): GELU runs on each rank's own slice
    w_down  split by input rows (row-parallel) -> all-reduce #2

so a layer's attention and MLP each end in one all-reduce (sum) of the hidden state,
(batch, tokens, d_model). The embedding, the RMSNorm weights and the LM head are *replicated*
on every rank (simple: each rank computes the same logits and picks the same token). Real
systems also split the LM head by vocabulary and gather the logits, one more collective per
step; here every rank streams the whole LM head, which caps the speed-up below N.

``run_tensor_parallel`` starts N processes (``torch.multiprocessing``, spawn: works from a
Jupyter kernel), gloo on CPU or NCCL when there are N GPUs, runs prefill + greedy decode on
every rank, and returns rank 0's tokens, logits and per-step timings split into communication
(time inside the all-reduces, device synchronised) and compute (the rest), beside the unsplit
model's tokens and logits for the same prompt. ``measure_allreduce`` fits a latency and a
bandwidth to all-reduce times of this machine, for ``perf.tensor_parallel_decode_time``.

References: Shoeybi et al., "Megatron-LM" (2019), section 3 (the column/row split and the two
all-reduces); PyTorch "Writing distributed applications with PyTorch" tutorial and the
``torch.distributed`` / ``torch.multiprocessing`` documentation.
"""

from __future__ import annotations

import os
import queue as _queue
import socket
import time
import traceback
from dataclasses import replace
from datetime import timedelta
from numbers import Integral

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from . import devices
from .generate import decode_one_token, prefill, sample_greedy
from .model import Attention, Block, KVCache, ToyConfig, ToyGPT, build_model, get_config

BACKENDS = ("gloo", "nccl")


# ----------------------------------------------------------------------------- splitting the model
def _check_world_size(world_size) -> int:
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size={world_size!r} must be a whole number >= 1")
    return world_size


def check_split(config: ToyConfig, world_size) -> int:
    """``world_size`` if the config splits evenly over that many ranks; ValueError otherwise.
    Needs n_heads, n_kv_heads and d_ff divisible by it (each rank gets whole heads)."""
    _check_world_size(world_size)
    for name in ("n_heads", "n_kv_heads", "d_ff"):
        value = getattr(config, name)
        if value % world_size:
            raise ValueError(f"world_size={world_size} does not divide {name}={value}: tensor parallelism "
                             f"gives every rank the same whole number of heads and MLP columns")
    return world_size


def _linear(weight: torch.Tensor) -> nn.Linear:
    """A bias-free nn.Linear holding its own copy of ``weight`` (out, in)."""
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=False, device="meta")
    layer.weight = nn.Parameter(weight.clone(), requires_grad=False)
    return layer


class AllReduced(nn.Module):
    """Wraps a module whose output is this rank's partial sum; returns the sum over all ranks."""

    def __init__(self, inner: nn.Module, all_reduce):
        super().__init__()
        self.inner, self.all_reduce = inner, all_reduce

    def forward(self, *args):
        return self.all_reduce(self.inner(*args))


def _rank_slice(size: int, rank: int, world_size: int) -> slice:
    """Rank ``rank``'s contiguous 1/world_size of ``size`` rows or columns."""
    part = size // world_size
    return slice(rank * part, (rank + 1) * part)


def _shard_attention(full: Attention, config: ToyConfig, rank: int, world_size: int, max_batch: int) -> Attention:
    """This rank's attention: its h/N query heads and h_kv/N KV heads (their rows of wqkv, the
    matching columns of wo, a KV cache for those heads only). It is a plain Attention, built
    from a config with d_model/N over n_heads/N heads (same head_dim, this rank's head counts),
    whose wqkv and wo are then replaced by the full model's slices. Its output is a partial sum."""
    n = world_size
    local = replace(config, d_model=config.d_model // n, n_heads=config.n_heads // n, n_kv_heads=config.n_kv_heads // n)
    with torch.device("meta"):
        attention = Attention(local, max_batch, full.wqkv.weight.dtype)
    q, k, v = full.wqkv.weight.split(full.split_sizes, dim=0)  # (h·hd, d), (h_kv·hd, d), (h_kv·hd, d)
    rows_q, rows_kv = _rank_slice(q.shape[0], rank, n), _rank_slice(k.shape[0], rank, n)
    attention.wqkv = _linear(torch.cat([q[rows_q], k[rows_kv], v[rows_kv]]))  # ((h + 2 h_kv)·hd / N, d)
    attention.wo = _linear(full.wo.weight[:, rows_q])  # (d, h·hd / N)
    with torch.device(full.wqkv.weight.device):
        attention.cache = KVCache(max_batch, local.n_kv_heads, config.max_seq_len, local.head_dim,
                                  full.wqkv.weight.dtype)
    return attention


def _shard_block(full: Block, config: ToyConfig, rank: int, world_size: int, max_batch: int, all_reduce) -> Block:
    """This rank's block: a plain Block (same forward) whose attention and w_down produce
    partial sums that :class:`AllReduced` completes, whose w_up is a column slice, and whose
    norms are the full block's own (replicated)."""
    with torch.device("meta"):
        block = Block(config, max_batch, full.w_up.weight.dtype)
    cols = _rank_slice(config.d_ff, rank, world_size)
    block.attn_norm, block.mlp_norm = full.attn_norm, full.mlp_norm
    block.attention = AllReduced(_shard_attention(full.attention, config, rank, world_size, max_batch), all_reduce)
    block.w_up = _linear(full.w_up.weight[cols])  # (d_ff / N, d): column-parallel
    block.w_down = AllReduced(_linear(full.w_down.weight[:, cols]), all_reduce)  # (d, d_ff / N): row-parallel
    return block


def shard_model(full: ToyGPT, rank: int, world_size: int, all_reduce=None) -> ToyGPT:
    """Rank ``rank``'s tensor-parallel slice of ``full``: a ToyGPT whose blocks hold this rank's
    weight slices and KV cache, sharing the replicated embedding, final norm and LM head with
    ``full``. ``all_reduce(x) -> x`` sums a tensor over the ranks (default: identity, right only
    for world_size 1). prefill / decode_one_token / generate work on it unchanged, in lockstep
    on every rank."""
    config = full.config
    check_split(config, world_size)
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank={rank!r} must be a whole number in [0, world_size={world_size})")
    all_reduce = all_reduce or (lambda x: x)
    with torch.device("meta"):
        shard = ToyGPT(config, full.max_batch, full.dtype)
    shard.embedding, shard.final_norm, shard.lm_head = full.embedding, full.final_norm, full.lm_head
    shard.layers = nn.ModuleList(_shard_block(block, config, rank, world_size, full.max_batch, all_reduce)
                                 for block in full.layers)
    left = [name for name, t in [*shard.named_parameters(), *shard.named_buffers()] if t.is_meta]
    if left:  # model.py gained a tensor that this module does not know how to split
        raise RuntimeError(f"shard_model left these tensors unallocated: {', '.join(left)}")
    return shard.eval()


# ----------------------------------------------------------------------------- communication
class TimedAllReduce:
    """``dist.all_reduce`` (sum, in place) that counts its calls and bytes and adds up the time
    spent inside them, with the device synchronised before and after so that only the
    collective is timed (on CPU gloo the call is blocking anyway). The time includes waiting
    for the slowest rank to arrive, as a real step would."""

    def __init__(self, device: torch.device):
        self.device, self.calls, self.bytes, self.seconds = device, 0, 0, 0.0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        devices.synchronize(self.device)
        start = time.perf_counter()
        dist.all_reduce(x)
        devices.synchronize(self.device)
        self.seconds += time.perf_counter() - start
        self.calls, self.bytes = self.calls + 1, self.bytes + x.numel() * x.element_size()
        return x


# ----------------------------------------------------------------------------- launching processes
def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it: bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pick_backend(world_size: int, backend: str | None = None) -> str:
    """"nccl" when asked, or by default when there are >= world_size CUDA GPUs; else "gloo"."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if backend is None:
        return "nccl" if gpus >= world_size and dist.is_nccl_available() else "gloo"
    name = str(backend).strip().lower()
    if name not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not supported; use one of {', '.join(BACKENDS)} or None")
    if name == "nccl" and (gpus < world_size or not dist.is_nccl_available()):
        raise ValueError(f"backend='nccl' needs {world_size} CUDA GPUs and an NCCL build of torch; "
                         f"this machine has {gpus}; use backend='gloo'")
    return name


def rank_device(backend: str, rank: int) -> torch.device:
    """The device a rank computes on: its own GPU with NCCL, the CPU with gloo."""
    return torch.device("cuda", rank) if backend == "nccl" else torch.device("cpu")


def _join_group(rank: int, world_size: int, port: int, backend: str, timeout: float) -> None:
    """Set this process up as one rank (one thread, its GPU) and join the group over TCP."""
    torch.set_num_threads(1)  # one core per rank: N ranks on N cores, no oversubscription
    if backend == "nccl":
        torch.cuda.set_device(rank)
        # cuDNN's attention builds a plan for every new KV length: 40-60 ms per bf16 decode step
        # until each length has been seen once (measured on H200, torch 2.11); the others don't
        torch.backends.cuda.enable_cudnn_sdp(False)
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world_size, timeout=timedelta(seconds=timeout))


def _send(results, message) -> None:
    """Put this process's one message and wait until it is in the pipe."""
    results.put(message)
    results.close()
    results.join_thread()


def _rank_main(rank: int, world_size: int, port: int, backend: str, timeout: float, fn, args, results) -> None:
    """Body of every spawned process: join the group, run ``fn(rank, world_size, backend,
    *args)``, send rank 0's return value (or any rank's traceback) home, leave the group.
    A failing rank reports *before* it leaves, so its error reaches the parent ahead of the
    errors its departure causes on the other ranks."""
    try:
        _join_group(rank, world_size, port, backend, timeout)
    except BaseException:  # noqa: BLE001 - every failure must reach the parent, with its traceback
        _send(results, ("error", rank, traceback.format_exc()))
        return
    try:
        out = fn(rank, world_size, backend, *args)
        message = ("result", rank, out) if rank == 0 else None
    except BaseException:  # noqa: BLE001
        message = ("error", rank, traceback.format_exc())
    if message is not None:
        _send(results, message)
    dist.destroy_process_group()


def spawn_ranks(fn, world_size: int, args: tuple = (), backend: str | None = None, timeout: float = 120.0):
    """Run ``fn(rank, world_size, backend, *args)`` in ``world_size`` fresh processes joined in
    one torch.distributed group; return what rank 0's call returned (it must pickle; send
    numbers, lists or numpy arrays rather than tensors).

    ``fn`` must be importable (a top-level function of a module, not one defined in a notebook
    cell): spawned processes start a new Python and find it by name. Raises RuntimeError with
    the child's traceback if any rank fails, and after ``timeout`` seconds (start-up included)
    if the ranks have not finished; the children are terminated either way, so a hung rank
    never hangs the caller.
    """
    world_size = _check_world_size(world_size)
    backend = pick_backend(world_size, backend)
    if backend == "nccl":  # NVLink multicast stays off (shared GPU hosts require it); children inherit this
        os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
        os.environ["TORCH_SYMM_MEM_DISABLE_MULTICAST"] = "1"
    context = mp.get_context("spawn")
    results = context.Queue()
    port = free_port()
    procs = [context.Process(target=_rank_main, daemon=True,
                             args=(rank, world_size, port, backend, timeout, fn, args, results))
             for rank in range(world_size)]
    for proc in procs:
        proc.start()
    grace = 0.0  # on failure, terminate at once
    try:
        out = _wait_for_result(procs, results, time.monotonic() + timeout, timeout)
        grace = 5.0  # on success, let the ranks leave the group and exit by themselves
        return out
    finally:
        _stop(procs, grace)
        results.close()


def _wait_for_result(procs, results, deadline: float, timeout: float):
    """Rank 0's result from the queue; RuntimeError on a child's error, death or the deadline."""
    while True:
        message = _next_message(results, 0.1)
        if message is None:
            dead = [(rank, p.exitcode) for rank, p in enumerate(procs) if p.exitcode not in (None, 0)]
            if dead:
                message = _next_message(results, 1.0)  # its last words may still be in the pipe
            if message is None and dead:
                rank, code = dead[0]
                raise RuntimeError(f"rank {rank} died with exit code {code} before reporting a result (its "
                                   f"error went to stderr; a script that calls this must guard its top level "
                                   f"with `if __name__ == '__main__':`, as spawned processes re-import it)")
            if message is None and time.monotonic() > deadline:
                raise RuntimeError(f"the {len(procs)} ranks did not finish within timeout={timeout} s "
                                   f"(start-up included); they were terminated")
            if message is None:
                continue
        kind, rank, payload = message
        if kind == "error":
            raise RuntimeError(f"rank {rank} of {len(procs)} failed:\n{payload}{_more_errors(results)}")
        return payload


def _next_message(results, wait: float):
    """The next (kind, rank, payload) from the children, or None after ``wait`` seconds."""
    try:
        return results.get(timeout=wait)
    except _queue.Empty:
        return None


def _more_errors(results, wait: float = 0.5) -> str:
    """Tracebacks other ranks send within ``wait`` seconds (often consequences of the first)."""
    lines = []
    while (message := _next_message(results, wait)) is not None:
        _kind, rank, payload = message
        lines.append(f"\n(then rank {rank} failed too:)\n{payload}")
    return "".join(lines)


def _stop(procs, grace: float) -> None:
    """Let the children exit (up to ``grace`` seconds), then terminate any left."""
    deadline = time.monotonic() + grace
    for proc in procs:
        proc.join(max(deadline - time.monotonic(), 0.0))
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
            proc.join(1.0)


# ----------------------------------------------------------------------------- the tensor-parallel run
def _prompt(config: ToyConfig, prompt_len: int, seed: int) -> torch.Tensor:
    """The seeded random prompt (1, prompt_len) every rank and the reference share."""
    return torch.randint(0, config.vocab_size, (1, prompt_len), generator=torch.Generator().manual_seed(seed))


@torch.inference_mode()
def _timed_decode(model: ToyGPT, prompt: torch.Tensor, n_tokens: int, counter: TimedAllReduce) -> dict:
    """Prefill, then greedy decode until ``n_tokens`` new tokens exist, timing each decode step
    (device synchronised) and reading from ``counter`` the all-reduce time, calls and bytes of
    each step. Returns tokens (1, T + n_tokens), logits (n_tokens, vocab) and per-step lists."""
    T, device = prompt.shape[1], prompt.device
    tokens = torch.empty((1, T + n_tokens), dtype=torch.long, device=device)
    tokens[:, :T] = prompt
    logits = [prefill(model, prompt)]  # each (1, vocab)
    tokens[:, T:T + 1] = sample_greedy(logits[-1])
    steps = {"step_s": [], "comm_s": [], "calls": [], "bytes": []}
    for pos in range(T, T + n_tokens - 1):
        before = (counter.seconds, counter.calls, counter.bytes)
        devices.synchronize(device)
        start = time.perf_counter()
        logits.append(decode_one_token(model, tokens[:, pos:pos + 1], pos))
        tokens[:, pos + 1:pos + 2] = sample_greedy(logits[-1])
        devices.synchronize(device)
        steps["step_s"].append(time.perf_counter() - start)
        for key, now, then in zip(("comm_s", "calls", "bytes"), (counter.seconds, counter.calls, counter.bytes), before):
            steps[key].append(now - then)
    return {"tokens": tokens, "logits": torch.cat(logits), **steps}


def _median(values) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return float(ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2)


def _summary(tp: dict, ref: dict) -> dict:
    """Rank 0's report: tensors as numpy arrays (they cross a process boundary), medians."""
    step, comm = _median(tp["step_s"]), _median(tp["comm_s"])
    single = _median(ref["step_s"])
    calls = tp["calls"][0]
    return {
        "tokens": tp["tokens"].cpu().numpy(), "reference_tokens": ref["tokens"].cpu().numpy(),
        "final_logits": tp["logits"][-1].float().cpu().numpy(),
        "identical_tokens": bool(torch.equal(tp["tokens"], ref["tokens"])),
        "max_abs_logit_diff": float((tp["logits"].float() - ref["logits"].float()).abs().max()),
        "step_s": step, "comm_s": comm, "compute_s": _median(s - c for s, c in zip(tp["step_s"], tp["comm_s"])),
        "comm_share": comm / step, "single_device_step_s": single, "speedup": single / step,
        "allreduces_per_step": calls, "allreduce_bytes": tp["bytes"][0] // max(calls, 1),
        "step_times_s": tp["step_s"], "comm_times_s": tp["comm_s"],
    }


def _tp_worker(rank: int, world_size: int, backend: str, config: ToyConfig, precision: str, seed: int,
               prompt_len: int, n_tokens: int) -> dict | None:
    """One rank of ``run_tensor_parallel``: build the full model (same seed everywhere), keep
    this rank's slice, decode; rank 0 then decodes with the unsplit model as the reference."""
    device = rank_device(backend, rank)
    full = build_model(config, device=device.type, precision=precision, seed=seed)
    counter = TimedAllReduce(device)
    shard = shard_model(full, rank, world_size, counter)
    prompt = _prompt(config, prompt_len, seed).to(device)
    if rank != 0:
        del full  # the shard keeps only its slices and the replicated modules
        _timed_decode(shard, prompt, n_tokens, counter)
        return None
    tp = _timed_decode(shard, prompt, n_tokens, counter)
    del shard
    return _summary(tp, _timed_decode(full, prompt, n_tokens, TimedAllReduce(device)))


def _count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name}={value!r} must be a whole number >= {minimum}")
    return int(value)


def run_tensor_parallel(preset_or_config="cpu-m", world_size: int = 2, n_tokens: int = 16, prompt_len: int = 16,
                        backend: str | None = None, precision: str = "fp32", timeout: float = 120.0,
                        seed: int = 0) -> dict:
    """Greedy decoding of the toy GPT split over ``world_size`` processes (tensor parallelism),
    checked against the unsplit model and timed step by step.

    Every rank builds the model from the same seed, keeps its slice (:func:`shard_model`), and
    runs prefill + ``n_tokens - 1`` decode steps with one torch thread; rank 0 then runs the
    unsplit model on the same prompt, on one thread too. Backend: gloo on CPU, NCCL by
    default when there are >= world_size GPUs (``backend`` forces one). Returns a dict:

    tokens, reference_tokens (1, prompt_len + n_tokens), final_logits (vocab,) as tensors;
    identical_tokens, max_abs_logit_diff (over all steps); per decode step, medians in
    seconds: step_s, comm_s (inside the all-reduces: the transfer *and* any wait for the slower
    rank), compute_s (the rest), comm_share, single_device_step_s (the unsplit model in one
    process, one thread), speedup (single_device_step_s / step_s); allreduces_per_step (2 per
    layer), allreduce_bytes (per all-reduce); step_times_s, comm_times_s (every step);
    world_size, backend, device, precision, preset, n_tokens, prompt_len, wall_s (the whole
    call, process start-up included: ~2-3 s to import torch in each child).

    ValueError for a world size that does not divide the heads, KV heads and d_ff, n_tokens < 2,
    a sequence longer than max_seq_len or an unknown backend; RuntimeError (with the child's
    traceback) if a rank fails, or if the run exceeds ``timeout`` seconds.
    """
    start = time.perf_counter()
    config = get_config(preset_or_config)
    check_split(config, world_size)
    _count("n_tokens", n_tokens, 2)
    _count("prompt_len", prompt_len, 1)
    if prompt_len + n_tokens > config.max_seq_len:
        raise ValueError(f"prompt_len + n_tokens = {prompt_len + n_tokens} exceeds max_seq_len={config.max_seq_len}")
    backend = pick_backend(world_size, backend)
    device_type = rank_device(backend, 0).type
    precision = devices.check_precision_supported(device_type, precision)
    out = spawn_ranks(_tp_worker, world_size, (config, precision, seed, prompt_len, n_tokens), backend, timeout)
    for key in ("tokens", "reference_tokens", "final_logits"):
        out[key] = torch.from_numpy(out[key])
    return {**out, "world_size": world_size, "backend": backend, "device": device_type, "precision": precision,
            "preset": preset_or_config if isinstance(preset_or_config, str) else "custom",
            "n_tokens": n_tokens, "prompt_len": prompt_len, "wall_s": time.perf_counter() - start}


# ----------------------------------------------------------------------------- the link itself
def _allreduce_worker(rank: int, world_size: int, backend: str, sizes: list[int], repeats: int) -> list[float] | None:
    """Median seconds of one all-reduce of each size in bytes (fp32), ranks aligned by a
    barrier before every call."""
    device = rank_device(backend, rank)
    medians = []
    for size in sizes:
        x = torch.rand(max(size // 4, 1), device=device)
        for _ in range(3):  # warm-up: connections, buffers
            dist.all_reduce(x)
        times = []
        for _ in range(repeats):
            dist.barrier()
            devices.synchronize(device)
            t0 = time.perf_counter()
            dist.all_reduce(x)
            devices.synchronize(device)
            times.append(time.perf_counter() - t0)
        medians.append(_median(times))
    return medians if rank == 0 else None


def measure_allreduce(world_size: int = 2, message_bytes=(1 << 10, 1 << 14, 1 << 18, 1 << 22),
                      backend: str | None = None, repeats: int = 20, timeout: float = 120.0) -> dict:
    r"""Time all-reduces of a few message sizes over ``world_size`` processes and fit the ring
    model of ``perf.allreduce_time``, :math:`t = 2(N-1)\,\alpha + \frac{2(N-1)}{N} \cdot m / \beta`,
    by least squares: latency alpha (s) and bandwidth beta (bytes/s) of the link.

    Returns message_bytes, seconds (medians), latency_s, bandwidth_Bps, world_size, backend.
    On one machine with gloo the "link" is the loopback network stack, not a wire: the fit gives
    the default values for the course's interconnect sliders on this machine.
    """
    if _check_world_size(world_size) < 2:
        raise ValueError(f"world_size={world_size} must be at least 2 to measure a link")
    sizes = [_count("message_bytes", m, 4) for m in message_bytes]
    if len(set(sizes)) < 2:
        raise ValueError(f"message_bytes={message_bytes!r} needs at least two different sizes for a fit")
    _count("repeats", repeats, 1)
    backend = pick_backend(world_size, backend)
    seconds = spawn_ranks(_allreduce_worker, world_size, (sizes, repeats), backend, timeout)
    intercept, slope = _line_fit(sizes, seconds)
    steps = 2 * (world_size - 1)
    return {"message_bytes": sizes, "seconds": seconds, "world_size": world_size, "backend": backend,
            "latency_s": max(intercept, 0.0) / steps,
            "bandwidth_Bps": steps / world_size / slope if slope > 0 else float("inf")}


def _line_fit(x: list[float], y: list[float]) -> tuple[float, float]:
    """Least-squares intercept and slope of y = a + b x."""
    mx, my = sum(x) / len(x), sum(y) / len(y)
    slope = sum((xi - mx) * (yi - my) for xi, yi in zip(x, y)) / sum((xi - mx) ** 2 for xi in x)
    return my - slope * mx, slope
