"""Many users and many devices: batching, KV-cache capacity, cost, mixture of experts, all-reduces
and tensor parallelism. Pure Python on perf's formulas (no torch: the browser track has it too), SI units.

perf.py prices one sequence on one device; a server shares each read of the weights among a batch
(until the arithmetic binds at the critical batch), fits as many KV caches as memory allows, and
splits a model over devices at the cost of all-reduces. Bad input gets a ``ValueError`` naming the
argument. At the end, the same numbers in words: the explorer's readout and the reading of a run.
"""

from __future__ import annotations

import math
from dataclasses import asdict

from . import perf
from .perf import check_count, check_non_negative, check_number, check_positive, weight_bytes

__all__ = [
    "critical_batch", "decode_intensity", "batched_decode_time", "max_sequences", "cost_per_million_tokens",
    "moe_experts_touched", "moe_step_bytes", "activation_bytes", "allreduce_time", "fit_allreduce",
    "tensor_parallel_components", "tensor_parallel_decode_time", "tensor_parallel_split",
]

# Shapes of public model families for the tensor-parallel explorer: (parameters, layers, d_model).
# Llama 2 7B and 70B, Llama 3.1 405B, from their published model configurations.
REFERENCE_SHAPES: dict[str, tuple[float, int, int]] = {
    "7B (32 layers, d 4096)": (7e9, 32, 4096), "70B (80 layers, d 8192)": (70e9, 80, 8192),
    "405B (126 layers, d 16384)": (405e9, 126, 16384)}

# Mixture-of-experts models: (total parameters, active per token, routed experts per layer, experts
# each token picks). Mixtral 8x7B: Jiang et al. 2024 ("47B parameters, 13B active"); DeepSeek-V3:
# its technical report (671B total, 37B activated, 256 routed experts of which 8 per token).
MOE_MODELS: dict[str, tuple[float, float, int, int]] = {
    "Mixtral 8x7B": (47e9, 13e9, 8, 2),
    "DeepSeek-V3": (671e9, 37e9, 256, 8),
}


# ----------------------------------------------------------------------------- batching (notebook 03)
def critical_batch(peak_flops, bandwidth, precision: str) -> float:
    """Batch size at which decode turns compute-bound (weights only, no KV reads):
    b* = (peak / B) · (b_param / 2), since each weight byte
    serves 2b / b_param FLOPs at batch b.

    ``precision`` is the *weights'* format; ``peak_flops`` is the peak of the format the math
    runs in. W4A16 (int4 weights, fp16 math): fp16's peak with 0.5 B, a quarter of fp16's b*.
    W8A8 (fp8 weights and math): half the bytes but twice the peak, so b* stays put."""
    return perf.ridge_point(peak_flops, bandwidth) * perf.bytes_per_param(precision) / 2.0


def decode_intensity(n_params, precision: str, batch=1, kv_bytes_per_seq=0.0) -> float:
    """FLOP/byte of one decode step for ``batch`` sequences: 2·P·batch FLOPs over the weights
    read once plus each sequence's own KV cache (which does not amortise)."""
    b = check_count("batch", batch)
    moved = weight_bytes(n_params, precision) + b * check_non_negative("kv_bytes_per_seq", kv_bytes_per_seq)
    return 2.0 * check_positive("n_params", n_params) * b / moved


def batched_decode_time(n_params, precision: str, bandwidth, peak_flops, batch=1, kv_bytes_per_seq=0.0) -> float:
    """Seconds per decode step for ``batch`` sequences (roofline):
    max(2·P·b / peak, (P·b_param + b·kv) / B).

    Tokens/s is ``batch / batched_decode_time(...)``: it rises ~linearly with the batch while
    the step is memory-bound and flattens once it is compute-bound.
    """
    b = check_count("batch", batch)
    moved = weight_bytes(n_params, precision) + b * check_non_negative("kv_bytes_per_seq", kv_bytes_per_seq)
    flops = 2.0 * check_positive("n_params", n_params) * b
    return perf.roofline_time(moved, flops, bandwidth, peak_flops)


def max_sequences(n_params, precision: str, memory, kv_bytes_per_seq) -> int:
    """How many sequences' KV caches fit beside the weights:
    ⌊(memory − P·b_param) / KV bytes per sequence⌋
    (0 when the weights alone do not fit). Activations and the runtime need room too, so a
    server fits fewer; PagedAttention gets closer to this number by wasting less of the memory
    to fragmentation, not by reading fewer bytes per step."""
    free = check_positive("memory", memory) - weight_bytes(n_params, precision)
    return max(0, math.floor(free / check_positive("kv_bytes_per_seq", kv_bytes_per_seq)))


def cost_per_million_tokens(price_per_hour, tokens_per_s) -> float:
    """Dollars per million generated tokens on a device rented at ``price_per_hour``:
    price / (tokens/s · 3600 / 10⁶). Batching divides it by the
    throughput gain."""
    return check_non_negative("price_per_hour", price_per_hour) / (check_positive("tokens_per_s", tokens_per_s)
                                                                   * 3600 / 1e6)


def moe_experts_touched(n_experts, top_k, batch=1) -> float:
    """Expected number of distinct experts one layer reads in a decode step of ``batch``
    tokens, each picking ``top_k`` of ``n_experts`` uniformly at random:
    E·(1 − (1 − k/E)^b): k at batch 1, approaching E as the batch grows. Real routers
    are less even, which touches fewer experts."""
    e, k = check_count("n_experts", n_experts), check_count("top_k", top_k)
    if k > e:
        raise ValueError(f"top_k={k} must be at most n_experts={e}")
    return e * (1.0 - (1.0 - k / e) ** check_count("batch", batch))


def moe_step_bytes(total_params, active_params, n_experts, top_k, precision: str, batch=1) -> float:
    """Weight bytes a mixture-of-experts decode step streams: the shared part (attention,
    embeddings, shared experts) plus the experts the batch touches. With expert size
    p_e = (P_total − P_active) / (E − k) and shared part
    P_active − k·p_e, the bytes run from the active parameters at batch 1 up to
    the total as the batch grows."""
    total, active = check_positive("total_params", total_params), check_positive("active_params", active_params)
    e, k = check_count("n_experts", n_experts), check_count("top_k", top_k)
    if not active < total or not k < e:
        raise ValueError(f"need active_params < total_params and top_k < n_experts; got {active:g}, {total:g}, {k}, {e}")
    expert = (total - active) / (e - k)
    if active < k * expert:
        raise ValueError(f"active_params={active:g} is less than its {k} experts of {expert:g} parameters each")
    return (active - k * expert + moe_experts_touched(e, k, batch) * expert) * perf.bytes_per_param(precision)


# ----------------------------------------------------------------------------- parallelism (notebook 04)
def activation_bytes(precision: str) -> float:
    """Bytes per activation value: 4 for fp32 models, else 2 (quantised weights keep 16-bit
    activations, the common weight-only scheme)."""
    return 4.0 if perf.normalize_precision(precision) == "fp32" else 2.0


# An NVLink 4 / NVSwitch link (H100, H200 SXM): 450 GB/s each way per GPU (H100 datasheet: 900 GB/s in all),
# and a small all-reduce's latency: ~6 us on 2 H100s (NCCL's NVLS algorithm in CUDA graphs, NCCL issue #1259).
NVLINK_BANDWIDTH, NVLINK_LATENCY = 450e9, 6e-6
ALLREDUCE_ALGORITHMS = ("one-shot", "ring")


def _allreduce_terms(n_devices, algorithm: str) -> tuple[int, float]:
    """(latencies, message-sizes of bytes into one device) of one all-reduce over N devices."""
    n = check_count("n_devices", n_devices)
    if algorithm not in ALLREDUCE_ALGORITHMS:
        raise ValueError(f"algorithm={algorithm!r} is not one of {', '.join(ALLREDUCE_ALGORITHMS)}")
    return (2 * (n - 1), 2 * (n - 1) / n) if algorithm == "ring" else (1 if n > 1 else 0, n - 1)


def allreduce_time(message_bytes, n_devices, link_bandwidth, link_latency, algorithm: str = "ring") -> float:
    """Seconds of one all-reduce (every device ends with the sum of all devices' ``message_bytes``)
    over N devices in the alpha-beta model: a message costs the latency alpha (``link_latency``:
    start-up and synchronisation) plus bytes / beta (``link_bandwidth``, into one device). Zero for N = 1.

    ``"ring"`` (Patarasuk & Yuan, 2009; Thakur, Rabenseifner & Gropp, 2005): reduce-scatter, then
    all-gather around a ring, N-1 steps each; each step passes m/N bytes on and waits one latency:
    t = 2(N−1)·α + (2(N−1)/N)·m/β.

    ``"one-shot"`` (NVSwitch servers' small-message all-reduce, e.g. vLLM's custom all-reduce,
    ``cross_device_reduce_1stage``): every device reads the other N-1 whole buffers at once through
    the switch and sums them itself: one latency, N-1 messages into each device:
    t = α + (N−1)·m/β. The latency stays put as N grows, the bytes
    do not (vLLM switches to a two-stage algorithm above ~256-512 KB).

    With one alpha for both, ring is the pessimistic case for decode's small messages: real ring
    steps overlap (NCCL ring, one channel, DGX-A100: 10 us on 2 GPUs, 33.7 us on 8: nccl-tests
    issue #123), and a small all-reduce on NVSwitch H100s takes ~6 us on 2 GPUs (nccl issue #1259).
    """
    m = check_positive("message_bytes", message_bytes)
    latencies, messages = _allreduce_terms(n_devices, algorithm)
    beta, alpha = check_positive("link_bandwidth", link_bandwidth), check_non_negative("link_latency", link_latency)
    return latencies * alpha + messages * m / beta


def fit_allreduce(message_bytes, seconds, n_devices, algorithm: str = "ring") -> tuple[float, float]:
    """(alpha, beta) of ``allreduce_time`` fitted to measured all-reduce times: the line t = a + b m
    by least squares on the *relative* error (``numpy.polyfit``, weights 1/t, so a 4 MB message's
    noise does not drown the small ones' latency); alpha = a / latencies, beta = messages / b.
    A negative intercept (noise) gives alpha = 0; a flat or falling line, beta = inf."""
    import numpy as np

    sizes, times = [check_positive("message_bytes", m) for m in message_bytes], [check_positive("seconds", t) for t in seconds]
    if len(sizes) != len(times) or len(set(sizes)) < 2:
        raise ValueError(f"need one time per message size and two different sizes at least; got {len(sizes)} "
                         f"sizes ({len(set(sizes))} different) and {len(times)} times")
    latencies, messages = _allreduce_terms(check_count("n_devices", n_devices, 2), algorithm)
    slope, intercept = np.polyfit(sizes, times, 1, w=1.0 / np.asarray(times))
    return max(float(intercept), 0.0) / latencies, messages / float(slope) if slope > 0 else math.inf


def tensor_parallel_components(n_params, precision: str, bandwidth, n_devices, n_layers, d_model,
                               link_bandwidth, link_latency, algorithm: str = "one-shot") -> tuple[float, float]:
    """(streaming seconds, communication seconds) of one tensor-parallel decode step; their sum
    is ``tensor_parallel_decode_time``."""
    n = check_count("n_devices", n_devices)
    layers, d = check_count("n_layers", n_layers), check_count("d_model", d_model)
    stream = weight_bytes(n_params, precision) / (n * check_positive("bandwidth", bandwidth))
    return stream, 2 * layers * allreduce_time(d * activation_bytes(precision), n, link_bandwidth, link_latency, algorithm)


def tensor_parallel_decode_time(n_params, precision: str, bandwidth, n_devices, n_layers, d_model,
                                link_bandwidth, link_latency, algorithm: str = "one-shot") -> float:
    """Batch-1 decode step with Megatron-style tensor parallelism over N devices:

        t = P·b_param / (N·B) + 2L·t_allreduce(d·b_a)

    Each device streams 1/N of the weights; every layer needs two all-reduces of the hidden state
    (after attention and after the MLP). Decode's messages are small: the default is the one-shot
    all-reduce NVSwitch servers use for them; ``algorithm="ring"`` is the pessimistic case.
    """
    return sum(tensor_parallel_components(n_params, precision, bandwidth, n_devices, n_layers, d_model,
                                          link_bandwidth, link_latency, algorithm))


def tensor_parallel_split(single_step, n_devices, n_allreduces, message_bytes, link_bandwidth, link_latency,
                          split_share=1.0, algorithm: str = "ring") -> tuple[float, float]:
    """(compute, communication) seconds of a *measured* one-device step split over N devices: its
    split share s divides by N, the rest (work every device repeats) does not, plus the all-reduces:
    t_1·(1 − s + s/N) + n_allreduce·t_allreduce(m)."""
    single, share = check_positive("single_step", single_step), check_number("split_share", split_share)
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"split_share={split_share!r} must be between 0 and 1")
    n, count = check_count("n_devices", n_devices), check_count("n_allreduces", n_allreduces, 0)
    return single * (1.0 - share + share / n), count * allreduce_time(message_bytes, n, link_bandwidth, link_latency, algorithm)


def describe_tensor_parallel(n_params, precision, hw, n, n_layers, d_model, link_bandwidth, link_latency,
                             algorithm="one-shot", max_devices=16) -> str:
    """HTML: whether 1/N of the weights fits, the step at N and its parts, the speed-up over one
    device, the fastest N up to ``max_devices``, and the other all-reduce algorithm at the same N."""
    def steps(algo):
        return {k: tensor_parallel_components(n_params, precision, hw.bandwidth, k, n_layers, d_model, link_bandwidth,
                                           link_latency, algorithm=algo) for k in {*range(1, max_devices + 1), n}}
    try:
        other_name = {"one-shot": "ring", "ring": "one-shot"}.get(algorithm, algorithm)
        parts, other = steps(algorithm), {k: sum(p) for k, p in steps(other_name).items()}
        need, per_device = perf.min_devices(n_params, precision, hw.memory), weight_bytes(n_params, precision) / n
    except ValueError as err:
        return perf.error_html(err)
    (stream, comm), t1 = parts[n], sum(parts[1])
    t, best = stream + comm, min(parts, key=lambda k: sum(parts[k]))
    fit = ("✅ each device holds" if per_device <= hw.memory else
           "<b style='color:#b00'>⚠ does not fit:</b> each device would need")
    lines = [f"{fit} {per_device / 1e9:,.1f} GB of weights ({hw.memory / 1e9:,.1f} GB each, as the device reports it; at "
             f"least {need} device{'s' if need > 1 else ''} for the weights alone)",
             (f"step {1e3 * t:,.3g} ms = {1e3 * stream:,.3g} ms streaming + {1e3 * comm:,.3g} ms in {2 * n_layers} "
              f"{algorithm} all-reduces ({comm / t:.0%})" if n > 1 else f"step {1e3 * t:,.3g} ms, all streaming (one device: "
              "no all-reduces)") + f" → <b>{1 / t:,.1f} tokens/s</b> per sequence"]
    one = "one device" + (" (if one could hold the weights)" if need > 1 else "")
    if n > 1:
        lines.append(f"<b>{t1 / t:.2f}× faster</b> than {one}" if t1 > 1.02 * t else
                     f"<b style='color:#b00'>slower</b> than {one}: {t / t1:.2f}× its time; the all-reduces cost more "
                     "than the streaming they save" if t > 1.02 * t1 else f"about as fast as {one}")
    lines.append(f"fastest N from 1 to {max_devices}: <b>{best}</b> ({1e3 * sum(parts[best]):,.3g} ms)" +
                 ("; beyond it each extra device adds more all-reduce time than it saves" if best < max_devices
                  else f"; adding devices still helps at N = {max_devices}"))
    lines.append(f"with {other_name} all-reduces instead: {1e3 * other[n]:,.3g} ms at N = {n}; fastest N "
                 f"{min(other, key=other.get)}")
    if hw.kind == "measured":
        lines.append("(on one machine the N “devices” would be processes sharing one memory: giving each the full "
                     "bandwidth, as this formula does, is the optimistic case)")
    return "<br>".join(lines)


# ----------------------------------------------------------------------------- reading a tensor-parallel run
# (each reads a TensorParallelResult as a dict, and a recorded run's dict as it is: older ones lack some keys)
def speedup_range(r) -> tuple[float, float]:
    """The speed-up's spread: the least and most favourable reading of the two medians ± half their IQRs."""
    r = r if isinstance(r, dict) else asdict(r)
    single, step = r["single_device_step_s"], r["step_s"]
    s_half, t_half = (r.get("single_device_iqr_s") or 0.0) / 2, (r.get("step_iqr_s") or 0.0) / 2
    return max(single - s_half, 0.0) / (step + t_half), (single + s_half) / max(step - t_half, 1e-12)


def formula_step(r) -> tuple[float, float] | None:
    """(compute, communication) seconds that ``tensor_parallel_split`` predicts from the run's
    own one-device step and fitted link; None without a link."""
    r = r if isinstance(r, dict) else asdict(r)
    if not (link := r.get("link")):
        return None
    return tensor_parallel_split(r["single_device_step_s"], r["world_size"], r["allreduces_per_step"], r["allreduce_bytes"],
                                 link["bandwidth_Bps"], link["latency_s"], r.get("split_share") or 1.0, link["algorithm"])


def _ms(seconds: float) -> str:
    return perf.format_ms(seconds * 1e3)


def explain_tensor_parallel(r) -> str:
    """What one tensor-parallel run says (markdown), computed from its numbers, with a branch for
    each case that occurs: faster, no clear difference or slower; communication's share; the
    computing part against 1/N of the bytes; the link's price against the time inside the
    all-reduces; CPU cores shared or GPUs of their own; noise."""
    r = r if isinstance(r, dict) else asdict(r)
    n, step, single, comm = r["world_size"], r["step_s"], r["single_device_step_s"], r["comm_s"]
    share, count, gloo = r.get("comm_share") or comm / step, r["allreduces_per_step"], r["backend"] == "gloo"
    low, high = speedup_range(r)
    noisy_single = (r.get("single_device_iqr_s") or 0) / single > perf.NOISY
    text = [f"**{n} ranks ({r['backend']}), {r['preset']}**: a decode step took {_ms(step)} split and "
            f"{_ms(single)} in one process: a speed-up of **{single / step:.2f}×**."]
    spread = "the quartiles" if r.get("step_iqr_s") is not None else "the medians (no spread was recorded)"
    if r["backend"] == "nccl" and r.get("timed_step_s") is None:  # runs of version 1: only a clocked step
        text.append("That split step was timed with clocks around every all-reduce, which synchronise the GPU and slow "
                    "the step itself: its speed says little, its share of communication more.")
    elif low > 1:
        text.append(f"Tensor parallelism **won**: even the least favourable reading of {spread} gives {low:.2f}×.")
    elif high < 1:
        text.append(f"Tensor parallelism **lost**: the split step took {step / single:.2f}× the time of the unsplit one "
                    f"(at best {1 / high:.2f}× from {spread}).")
    else:
        text.append(f"Within the noise that is **no clear difference**: {spread} allow {low:.2f}× to {high:.2f}×.")
    text.append(f"Of the split step, {_ms(comm)} ({share:.0%}) was spent inside the {count} all-reduces of "
                f"{r['allreduce_bytes']} bytes: " + ("communication **dominates**." if share >= 0.5 else
                                                     "a large share." if share >= 0.2 else "a small share."))
    if split_share := r.get("split_share"):
        ideal = single * (1 - split_share + split_share / n)
        ratio = r["compute_s"] / ideal
        text.append(f"The computing part took {_ms(r['compute_s'])}, {ratio:.1f}× the {_ms(ideal)} that dividing the split "
                    f"{split_share:.0%} of the bytes by {n} predicts: " + (
                        "it scaled as the bytes do." if 0.85 <= ratio <= 1.15 else
                        "less: the one-process step it divides was noisy (below)." if ratio < 0.85 and noisy_single else
                        "less, as if each rank's share of the weights now came from a faster cache." if ratio < 0.85 else
                        "each rank still runs as many small ops (norms, attention, additions) as one process, and their "
                        "fixed cost does not divide" + ("; a busy or shared core slows it too." if gloo else ".")))
    if predicted := formula_step(r):
        link, each, fitted = r["link"], comm / count, predicted[1] / count
        per = link.get("allreduces_per_graph") or ""  # all-reduces in each sweep graph (gpu_tp.py's results)
        alone = dict(zip(link["message_bytes"], link.get("seconds") or [])).get(r["allreduce_bytes"])  # timed in the sweep
        price = alone if alone and not r.get("graphs") else fitted  # one all-reduce of the step's size, outside the step
        late = (f"the {count} all-reduces in the step's chain took {_ms(each)} each, {each / fitted:.1f}× the {_ms(fitted)} "
                f"of α + m/β. They were timed alone in a graph, where no rank arrives late: the link fitted to the "
                f"sweep's short graphs{per and f' of {per}'} underprices a chain of {count}." if r.get("graphs") else
                f"the other {_ms(comm - count * price)} inside them was waiting for a rank that arrived late"
                + (f" (the sweep timed one of this size alone: {_ms(alone)}, {alone / fitted:.1f}× the fit)." if alone else "."))
        text.append(f"The link, fitted to all-reduces of {len(link['message_bytes'])} sizes ({link['algorithm']} "
                    f"model): α = {_ms(link['latency_s'])}, β = {link['bandwidth_Bps'] / 1e9:.2f} GB/s. It prices "
                    f"the step's all-reduces at {_ms(predicted[1])}; " + (
                        late if each > 1.25 * price else f"the {_ms(comm)} measured is no more than the sweep found for this "
                        f"size alone ({_ms(alone)} each)." if each > 1.25 * fitted else f"about the {_ms(comm)} measured."
                        if each >= 0.8 * fitted else "more than was measured inside the step (the sweep ran at a busier time)."))
        text.append(f"From the one-process step and that link, the formula t₁(1 − s + s/N) + {count} all-reduces "
                    f"predicts {single / sum(predicted):.2f}×.")
    cores = r.get("cpu_count")
    if gloo:  # (runs of version 1 did not record the cores)
        text.append((f"This machine has {cores} CPU cores, so the {n} ranks (one thread each) take all of them and share "
                     "them with every other program on the machine: a rank that loses its core for a moment makes the "
                     "others wait in the next all-reduce, and that waiting counts as communication. " if cores and cores <= n
                     else f"This machine has {cores} CPU cores: each rank can have one to itself. " if cores else "")
                    + "All ranks read from the same memory: on one CPU tensor parallelism divides the bytes per rank, "
                      "not the memory bandwidth, so it helps only as far as one core alone cannot use all of it.")
    else:
        text.append("Each rank has its own GPU and its own memory: the bytes and the bandwidth are both divided.")
        if (r.get("timed_step_s") or step) > 1.1 * step:
            text.append(f"With clocks around every all-reduce (they synchronise the GPU) the step took "
                        f"{_ms(r['timed_step_s'])}: the share and the computing part above are of that slower step.")
    if (r.get("step_iqr_s") or 0) / step > perf.NOISY or noisy_single:
        text.append(f"⚠ Noisy: the middle half of the timings spans more than {perf.NOISY:.0%} of the median (another program "
                    "was busy?); re-run before drawing conclusions.")
    return " ".join(text)
