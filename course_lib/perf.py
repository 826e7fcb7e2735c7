"""The analytical model of LLM inference speed on one device: pure formulas, SI units, no torch.

Everything here is arithmetic on sizes and rates, so a slider can call it thousands of times a
second and a test can check it by hand. Units: bytes, seconds, bytes/s, FLOP, FLOP/s.

The one idea (batch-1 decode streams every weight once per token):

    t_token ≈ (P·b_param + KV bytes) / B_mem

It is a *lower bound*. ``decode_budget`` adds back, term by term, what a real step pays (a
kernel slower than memory, a fixed cost per op, attention's KV reads, compute past the ridge);
measure.py puts that modeled time beside what the toy model really does. A *roof* is a rate no
step can beat (the memory roof: bytes/s of a plain read); the *ridge* is the FLOPs per byte past
which arithmetic, not memory, sets the pace (``ridge_point``, notebook 03). Speculative decoding
(more than one token per pass of the weights) is here too; many users and many devices
(batching, KV capacity, cost, mixture of experts, tensor parallelism) are in serving.py. At the
end, the calculator's readout: the bound put in words (``describe_decode``, HTML).

Every function rejects bad input (unknown precision, zero/negative/NaN sizes and rates, alpha
outside [0, 1), gamma < 1, ...) with a ``ValueError`` that names the argument. The ``check_*``
validators below are the course's one family of input checks: other modules use them too.
"""

from __future__ import annotations

import html
import math
from array import array
from numbers import Real

__all__ = [
    "bytes_per_param", "weight_bytes", "kv_cache_bytes_per_token", "decode_time", "tokens_per_second",
    "params_for_speed", "roofline_time", "decode_budget", "fits", "min_devices", "ridge_point", "linear_intensity",
    "attainable_flops", "decode_attention_intensity", "prefill_time", "speculative_expected_tokens", "speculative_speedup",
    "decode_table",
]

# Bytes per parameter of each number format; int4 packs two weights in a byte. The calculator
# accepts all of them; the toy transformer can only *run* the ones with a torch dtype (RUNNABLE).
PRECISIONS: dict[str, float] = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
RUNNABLE: tuple[str, ...] = ("fp32", "fp16", "bf16")

# Model sizes of the course's "models x GPUs" table (parameters).
MODEL_SIZES: dict[str, float] = {"1.3B": 1.3e9, "7B": 7e9, "13B": 13e9, "70B": 70e9, "405B": 405e9}
# A timing whose inter-quartile range is above this share of its median is called noisy (and says so).
NOISY = 0.15


# ----------------------------------------------------------------------------- validation
def check_number(name: str, value) -> float:
    """``value`` as a finite float; ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name}={value!r} must be a number")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}={value!r} must be a finite number")
    return value


def check_positive(name: str, value) -> float:
    """``value`` as a float greater than zero; ValueError naming ``name`` otherwise."""
    value = check_number(name, value)
    if value <= 0:
        raise ValueError(f"{name}={value!r} must be greater than zero")
    return value


def check_non_negative(name: str, value) -> float:
    """``value`` as a float, zero or more; ValueError naming ``name`` otherwise."""
    value = check_number(name, value)
    if value < 0:
        raise ValueError(f"{name}={value!r} must be zero or more")
    return value


def check_count(name: str, value, minimum: int = 1) -> int:
    """A whole number >= minimum (floats such as 4.0 are accepted, 4.5 is not)."""
    number = check_number(name, value)
    if number != int(number) or number < minimum:
        raise ValueError(f"{name}={value!r} must be a whole number >= {minimum}")
    return int(number)


def normalize_precision(precision: str) -> str:
    """Canonical lower-case precision name; ValueError for anything unknown."""
    if isinstance(precision, str) and precision.strip().lower() in PRECISIONS:
        return precision.strip().lower()
    raise ValueError(f"precision={precision!r} is not a known precision; use one of {', '.join(PRECISIONS)}")


# ----------------------------------------------------------------------------- sizes
def bytes_per_param(precision: str) -> float:
    """Bytes per parameter: fp32 4, fp16 2, bf16 2, fp8 1, int8 1, int4 0.5."""
    return PRECISIONS[normalize_precision(precision)]


def weight_bytes(n_params, precision: str) -> float:
    """Bytes of the weights: P·b_param."""
    return check_positive("n_params", n_params) * bytes_per_param(precision)


def kv_cache_bytes_per_token(n_layers, n_kv_heads, head_dim, precision: str) -> float:
    """Bytes the KV cache holds for one token of context:
    2·L·h_kv·d_head·b (K and V, every layer; b: bytes per value at ``precision``)."""
    return (2 * check_count("n_layers", n_layers) * check_count("n_kv_heads", n_kv_heads)
            * check_count("head_dim", head_dim) * bytes_per_param(precision))


# ----------------------------------------------------------------------------- decode, batch 1
def decode_time(n_params, precision: str, bandwidth, kv_bytes=0.0) -> float:
    """Seconds per token at batch 1, bandwidth-bound: t = (P·b_param + kv_bytes) / B.

    ``kv_bytes`` is the KV cache read per step (context x bytes per token). A lower bound: real
    runs are slower (decode_budget says by how much and why).
    """
    moved = weight_bytes(n_params, precision) + check_non_negative("kv_bytes", kv_bytes)
    return moved / check_positive("bandwidth", bandwidth)


def tokens_per_second(n_params, precision: str, bandwidth) -> float:
    """Upper bound on batch-1 tokens per second: ``1 / decode_time(...)``."""
    return 1.0 / decode_time(n_params, precision, bandwidth)


def params_for_speed(tokens_per_s, precision: str, bandwidth) -> float:
    """Largest model (parameters) that can still reach ``tokens_per_s`` at batch 1:
    P = B / (tokens/s · b_param) (the bound solved for P)."""
    return check_positive("bandwidth", bandwidth) / (check_positive("tokens_per_s", tokens_per_s)
                                                     * bytes_per_param(precision))


def size_curve(precision: str, bandwidth: float):
    """(sizes, tokens/s) of the batch-1 bound from 1e8 to 1e12 parameters, 60 log-spaced points, as arrays of floats."""
    sizes = [1e8 * 1e4 ** (i / 59) for i in range(60)]  # no numpy: it runs in Pyodide too
    return array("d", sizes), array("d", [tokens_per_second(n, precision, bandwidth) for n in sizes])


def roofline_time(moved_bytes, flops, bandwidth, peak_flops) -> float:
    """Time of work that moves ``moved_bytes`` and does ``flops``, whichever roof binds:
    max(bytes / B, FLOPs / peak)."""
    return max(check_non_negative("moved_bytes", moved_bytes) / check_positive("bandwidth", bandwidth),
               check_non_negative("flops", flops) / check_positive("peak_flops", peak_flops))


def decode_budget(weight_bytes, flops, stream_bandwidth, kernel_bandwidth, op_counts: dict, op_costs: dict,
                  peak_flops=None, launch_costs: dict | None = None) -> dict[str, float]:
    """The gap budget of one decode step: from the memory roof to a modeled step time, term by
    term (seconds), each predicted from microbenchmarks of this machine and the model's shape,
    never from timing the step itself. Their sum is the modeled time.

    ======================  ==============================================================
    memory roof             W / B_stream: weights at what memory delivers
    kernel below the roof   W / B_kernel − W / B_stream: the batch-1
                            matmul kernel streams slower than memory (negative if faster)
    compute past the ridge  max(0, FLOPs / peak − W / B_kernel)
                            (zero at batch 1; large batches become compute-bound)
    attention (KV reads)    calls × the cost of one attention call at this context
    other small ops         Σ_k n_k·t_k over norms, GELU, adds, cache writes, views,
                            module calls: each kind's count times its measured cost
    calling the graph       a CUDA-graph step only (kind ``"graph call"``): copying the inputs
                            in, the replay and the wait, beyond the kernels
    ======================  ==============================================================

    ``op_counts`` and ``op_costs`` map a kind of op to its count per step and its seconds per call;
    ``peak_flops=None`` (not measured) leaves compute out.
    With ``launch_costs`` (eager on a GPU: the CPU's seconds to issue each kind of op), the GPU
    runs while the CPU issues, so a last term adds only what issuing takes beyond the GPU's work:
    ``waiting for launches`` = max(0, Σ_k n_k·l_k − the terms above).
    """
    w = check_positive("weight_bytes", weight_bytes)  # the times below are seconds
    kernel_s = w / check_positive("kernel_bandwidth", kernel_bandwidth)
    compute_s = 0.0 if peak_flops is None else check_non_negative("flops", flops) / check_positive("peak_flops", peak_flops)

    def priced(costs: dict) -> dict:
        missing = set(op_counts) - set(costs)
        if missing:
            raise ValueError(f"op_counts has kinds without a cost: {sorted(missing)}")
        return {k: check_count(f"op_counts[{k!r}]", n, 0) * check_non_negative(f"cost of {k!r}", costs[k])
                for k, n in op_counts.items()}

    ops = priced(op_costs)
    attention, call = ops.pop("attention", 0.0), ops.pop("graph call", None)
    budget = {"memory roof": w / check_positive("stream_bandwidth", stream_bandwidth),
              "kernel below the roof": kernel_s - w / stream_bandwidth,
              "compute past the ridge": max(0.0, compute_s - kernel_s),
              "attention (KV reads)": attention, "other small ops": sum(ops.values())}
    if call is not None:
        budget["calling the graph"] = call
    if launch_costs is not None:
        budget["waiting for launches"] = max(0.0, sum(priced(launch_costs).values()) - sum(budget.values()))
    return budget


def fits(n_params, precision: str, memory, kv_bytes=0.0) -> bool:
    """Do the weights (plus ``kv_bytes`` of cache) fit in ``memory`` bytes?"""
    needed = weight_bytes(n_params, precision) + check_non_negative("kv_bytes", kv_bytes)
    return needed <= check_positive("memory", memory)


def min_devices(n_params, precision: str, device_memory, kv_bytes=0.0) -> int:
    """Fewest devices whose memory holds the weights (plus ``kv_bytes`` of cache): ``ceil(bytes / device_memory)``.

    Activations and the runtime need room too, so real deployments use more (and tensor
    parallelism likes powers of two).
    """
    needed = weight_bytes(n_params, precision) + check_non_negative("kv_bytes", kv_bytes)
    ratio = needed / check_positive("device_memory", device_memory)
    return max(1, math.ceil(ratio - 1e-12))  # tolerance: 160e9 / 80e9 is exactly 2 devices


# ----------------------------------------------------------------------------- roofline
def ridge_point(peak_flops, bandwidth) -> float:
    """Arithmetic intensity (FLOP/byte) where the roofline turns from memory- to compute-bound."""
    return check_positive("peak_flops", peak_flops) / check_positive("bandwidth", bandwidth)


def linear_intensity(n_tokens, d_in, d_out, weight_bytes, act_bytes) -> float:
    """FLOP/byte of ``x @ W`` for n tokens, W of shape (d_in, d_out):

        I = 2·n·d_in·d_out / (d_in·d_out·b_w + n·(d_in + d_out)·b_a)

    ``weight_bytes`` and ``act_bytes`` are bytes per element. At n = 1 and 2-byte values this
    is just under 1 FLOP/byte; it grows ~linearly with n until the activations dominate.
    """
    n = check_count("n_tokens", n_tokens)
    d_in, d_out = check_count("d_in", d_in), check_count("d_out", d_out)
    b_w, b_a = check_positive("weight_bytes", weight_bytes), check_positive("act_bytes", act_bytes)
    return 2.0 * n * d_in * d_out / (d_in * d_out * b_w + n * (d_in + d_out) * b_a)


def attainable_flops(intensity, peak_flops, bandwidth) -> float:
    """The roofline: min(peak, I·B) FLOP/s at arithmetic intensity I."""
    return min(check_positive("peak_flops", peak_flops),
               check_positive("intensity", intensity) * check_positive("bandwidth", bandwidth))


def roofline_xy(peak_flops: float, bandwidth: float):
    """(intensities, attainable FLOP/s) of one roofline from 0.1 to 10,000 FLOP/byte: on log-log axes
    it is exactly two straight pieces, so three points (the ends and the ridge) draw it."""
    lo, hi = 0.1, 1e4
    ridge = min(max(ridge_point(peak_flops, bandwidth), lo), hi)
    xs = [lo, ridge, hi]
    return xs, [attainable_flops(x, peak_flops, bandwidth) for x in xs]


def decode_attention_intensity(n_heads, n_kv_heads, precision: str) -> float:
    """FLOP/byte of attention during decode: each query head does 4·d_head FLOPs per cached
    token (QK^T and AV) while the cache supplies 2·d_head·b bytes per KV head (b per value), so
    I = 2·(h / h_kv) / b, whatever the context or batch (each sequence has its own cache).
    Grouped-query attention (fewer KV heads) is what raises it."""
    heads, kv_heads = check_count("n_heads", n_heads), check_count("n_kv_heads", n_kv_heads)
    if heads % kv_heads:
        raise ValueError(f"n_heads={heads} must be divisible by n_kv_heads={kv_heads}")
    return 2.0 * heads / kv_heads / bytes_per_param(precision)


def prefill_time(n_params, n_tokens, precision: str, bandwidth, peak_flops) -> float:
    """Seconds to process an n-token prompt in one pass (roofline, attention ignored):
    max(2·P·n / peak, P·b_param / B)."""
    flops = 2.0 * check_positive("n_params", n_params) * check_count("n_tokens", n_tokens)
    return roofline_time(weight_bytes(n_params, precision), flops, bandwidth, peak_flops)


# ----------------------------------------------------------------------------- speculative decoding
def _alpha_gamma(alpha, gamma) -> tuple[float, int]:
    a, g = check_number("alpha", alpha), check_count("gamma", gamma)
    if not 0.0 <= a < 1.0:
        raise ValueError(f"alpha={alpha!r} must be in [0, 1): it is the chance a draft token is accepted")
    if g > 1000:  # also keeps gamma * cost_ratio finite
        raise ValueError(f"gamma={gamma!r}: a draft of more than 1000 tokens per step is not meaningful")
    return a, g


def speculative_expected_tokens(alpha, gamma) -> float:
    """Expected tokens per verification step with draft length gamma and acceptance rate alpha
    (Leviathan et al., 2023): (1 − α^(γ+1)) / (1 − α)."""
    a, g = _alpha_gamma(alpha, gamma)
    return (1.0 - a ** (g + 1)) / (1.0 - a)


def speculative_speedup(alpha, gamma, cost_ratio) -> float:
    """Wall-time speed-up over plain decoding: expected tokens / (γ·c + 1), where c
    is the cost of one draft step relative to one target step. Below 1 it is a slow-down."""
    a, g = _alpha_gamma(alpha, gamma)
    return speculative_expected_tokens(a, g) / (g * check_non_negative("cost_ratio", cost_ratio) + 1.0)


# ----------------------------------------------------------------------------- the models x GPUs table
def decode_estimate(n_params, precision: str, bandwidth, memory=None, kv_bytes=0.0) -> dict:
    """One model on one device at batch 1: the weights' bytes, the bound (ms/token, tokens/s) and,
    given ``memory``, whether the weights and cache fit and on how many such devices at least."""
    t = decode_time(n_params, precision, bandwidth, kv_bytes)
    return {"n_params": float(n_params), "precision": normalize_precision(precision),
            "weight_bytes": weight_bytes(n_params, precision), "kv_bytes": kv_bytes,
            "ms_per_token": t * 1e3, "tokens_per_s": 1.0 / t,
            "fits": None if memory is None else fits(n_params, precision, memory, kv_bytes),
            "min_devices": None if memory is None else min_devices(n_params, precision, memory, kv_bytes)}


def decode_table(hardware_list, model_sizes=None, precision: str = "fp16") -> list[dict]:
    """The "models x GPUs" table: a ``decode_estimate`` for every model size (default MODEL_SIZES)
    and device (objects with ``name``, ``bandwidth`` and ``memory``, e.g. specs.Hardware)."""
    return [{"model": label, "hardware": hw.name, **decode_estimate(n_params, precision, hw.bandwidth, hw.memory)}
            for label, n_params in (MODEL_SIZES if model_sizes is None else model_sizes).items()
            for hw in hardware_list]


# ----------------------------------------------------------------------------- in words (the calculators' readouts)
def format_number(x: float, units: str = "", digits: int = 3) -> str:
    """3 significant figures, whole numbers in full below 1e7, then the unit: ``115 tokens/s``, ``1.3e10``, ``5%``, ``4×``."""
    whole = math.floor(math.log10(abs(x))) + 1 if 1e-3 <= abs(x) < 1e7 else 0  # digits before the point
    mantissa, _, exponent = f"{float(x):.{max(digits, whole)}g}".partition("e")
    return mantissa + (f"e{int(exponent)}" if exponent else "") + ("" if units in ("", "%", "×") else " ") + units


def format_ms(ms: float) -> str:
    """A time given in ms, in the unit that reads best: ``1.20 s``, ``4.10 ms``, ``37 µs``."""
    return f"{ms / 1e3:.2f} s" if ms >= 1e3 else f"{ms:.2f} ms" if ms >= 0.1 else f"{ms * 1e3:.0f} µs"


def error_html(err: Exception) -> str:
    """A refused input as a friendly line of HTML, for a readout (widgets never raise)."""
    return f"<b style='color:#b00'>Cannot compute that:</b> {html.escape(str(err))}"


def describe_decode(n_params: float, precision: str, bandwidth: float, memory: float | None) -> tuple[str, bool]:
    """HTML summary of the batch-1 bound and whether the weights fit; (text, fits)."""
    try:
        estimate = decode_estimate(n_params, precision, bandwidth, memory)
    except ValueError as err:
        return error_html(err), False
    gb = estimate["weight_bytes"] / 1e9
    lines = [
        f"<b>{n_params / 1e9:,.2f} billion parameters</b> × {bytes_per_param(precision):g} bytes "
        f"({precision}) = <b>{gb:,.1f} GB</b> of weights to stream per token",
        f"at {bandwidth / 1e9:,.0f} GB/s → <b>{estimate['ms_per_token']:,.2f} ms/token</b> → "
        f"<b>{estimate['tokens_per_s']:,.1f} tokens/s</b> at best (batch 1; against datasheet bandwidth, real systems reach "
        "roughly 50–70 % of this)",
    ]
    if memory is not None:
        if estimate["fits"]:
            lines.append(f"✅ fits: {gb:,.1f} GB of weights in {memory / 1e9:,.0f} GB "
                         "(the KV cache and activations need room too)")
        else:
            int4 = weight_bytes(n_params, "int4") / 1e9
            lines.append(f"<b style='color:#b00'>⚠ Out of memory:</b> {gb:,.1f} GB of weights do not fit in "
                         f"{memory / 1e9:,.0f} GB. You would need at least {estimate['min_devices']} such devices, or "
                         f"quantisation (int4: {int4:,.1f} GB).")
    return "<br>".join(lines), memory is None or estimate["fits"]
