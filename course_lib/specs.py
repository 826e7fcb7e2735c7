"""What the course computes with: the toy GPT's shapes, real devices' datasheets, and runs recorded
on real GPUs. Pure Python (no torch), so the calculators can use them anywhere.

The toy (``ToyConfig``, the ``PRESETS``) with exact counts of its parameters, bytes and FLOPs.
The architecture these counts describe (model.py builds it): token embedding, pre-norm blocks
(RMSNorm -> fused-QKV attention -> output projection; RMSNorm -> up -> GELU -> down), a final
RMSNorm and an untied LM head, no biases. Tests check every count against the real model.

The devices (``Hardware``): figures in ``data/hardware.json`` (data, not code), each with its
source. ``get("H100")`` resolves the short aliases; ``match(torch_device_name)`` finds the entry
of a measured GPU; ``custom(...)`` makes one for a measured machine ("this machine (measured)").

Recorded runs (``data/reference/<card>.json``, written by ``benchmarks/gpu_reference.py``) let a
notebook show what the same measurements gave on a datacenter GPU: always labelled as
*recorded*, with the card and the date, never as the learner's own. All files are package
data read with importlib.resources, so they are there after a plain ``pip install``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from .perf import bytes_per_param, check_count, check_positive, kv_cache_bytes_per_token, normalize_precision


@dataclass(frozen=True, kw_only=True)
class ToyConfig:
    """Shape of a toy GPT. All sizes are positive whole numbers; keyword arguments only."""

    vocab_size: int
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int | None = None  # fewer K/V heads than query heads = grouped-query attention; None: n_heads
    d_ff: int | None = None  # MLP hidden width; None: 4 * d_model, as in GPT-2
    max_seq_len: int  # length of the static KV cache: prompt + generated tokens must fit
    norm_eps: float = 1e-5

    def __post_init__(self):
        if self.n_kv_heads is None:
            object.__setattr__(self, "n_kv_heads", self.n_heads)
        if self.d_ff is None and isinstance(self.d_model, int):
            object.__setattr__(self, "d_ff", 4 * self.d_model)
        for name in ("vocab_size", "n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff", "max_seq_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name}={value!r} must be a whole number greater than zero")
            check_count(name, value)
        check_positive("norm_eps", self.norm_eps)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads={self.n_heads} must be divisible by n_kv_heads={self.n_kv_heads}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def matrix_shapes(self) -> list[tuple[int, int]]:
        """(out, in) of every weight matrix one decode step multiplies with, in step order: each
        layer's fused QKV, output projection, MLP up and down; then the LM head."""
        d, qkv = self.d_model, (self.n_heads + 2 * self.n_kv_heads) * self.head_dim
        layer = [(qkv, d), (d, self.n_heads * self.head_dim), (self.d_ff, d), (d, self.d_ff)]
        return layer * self.n_layers + [(self.vocab_size, d)]

    def matmul_params(self) -> int:
        """Parameters in those matrices (no embedding table, no norm weights)."""
        return sum(rows * cols for rows, cols in self.matrix_shapes())

    def n_params(self, embedding: bool = True) -> int:
        """Exact parameter count: matrices, two RMSNorm weights per layer, the final norm, and
        (if ``embedding``) the embedding table."""
        norms = (2 * self.n_layers + 1) * self.d_model
        return self.matmul_params() + norms + (self.vocab_size * self.d_model if embedding else 0)

    def weight_bytes(self, precision: str = "fp32") -> float:
        """Weight bytes one decode step streams: every parameter except the embedding table (a
        lookup reads only one row of it)."""
        return self.n_params(embedding=False) * bytes_per_param(precision)

    def kv_bytes_per_token(self, precision: str = "fp32") -> float:
        """KV-cache bytes of one token of context (K and V, every layer)."""
        return kv_cache_bytes_per_token(self.n_layers, self.n_kv_heads, self.head_dim, precision)

    def kv_cache_bytes(self, batch: int = 1, precision: str = "fp32") -> float:
        """Bytes of the static KV cache for ``batch`` sequences of max_seq_len tokens."""
        return check_count("batch", batch) * self.max_seq_len * self.kv_bytes_per_token(precision)

    def total_bytes(self, batch: int = 1, precision: str = "fp32") -> float:
        """Bytes the model occupies: all weights (embedding included) plus the KV cache."""
        return self.n_params() * bytes_per_param(precision) + self.kv_cache_bytes(batch, precision)

    def forward_flops(self, n_tokens: int, past: int = 0, batch: int = 1) -> float:
        """Matmul FLOPs of a forward pass over ``n_tokens`` new tokens after ``past`` cached ones:

            2·b·n·P_matmul + 4·b·L·h·d_head·n·(past + n)

        The second term is attention (QK^T and AV over every key position, causal mask not
        subtracted, as a dense kernel computes it). Norms, softmax, GELU and residual adds are
        left out: a fraction of a percent of the total.
        """
        n, b = check_count("n_tokens", n_tokens), check_count("batch", batch)
        keys = check_count("past", past, 0) + n
        return 2.0 * b * n * self.matmul_params() + 4.0 * b * self.n_layers * self.n_heads * self.head_dim * n * keys

    def decode_components(self, precision: str, context_len: int = 0) -> dict[str, float]:
        """Bytes read by one batch-1 decode step, by component, in the order the step runs."""
        b, d, layers = bytes_per_param(precision), self.d_model, self.n_layers
        qkv, out, up, down = (rows * cols for rows, cols in self.matrix_shapes()[:4])  # the first layer's matrices
        return {
            "embedding lookup (one row)": d * b,
            "attention projections (Q, K, V, output)": layers * (qkv + out) * b,
            "KV cache reads": check_count("context_len", context_len, 0) * self.kv_bytes_per_token(precision),
            "MLP (up and down)": layers * (up + down) * b,
            "norms": (2 * layers + 1) * d * b,
            "LM head (vocabulary projection)": d * self.vocab_size * b,
        }


# Streamed bytes exclude the embedding table (a decode step reads one row of it); MB = 1e6 bytes. head_dim is 64,
# except in "tiny" (16) and the two largest GPU presets (128).
PRESETS: dict[str, ToyConfig] = {
    # tests: 0.12 M params; streamed 0.43 MB fp32 / 0.21 MB bf16 (0.41 / 0.20 MiB); GQA (2 KV heads per 4 query heads)
    "tiny": ToyConfig(vocab_size=256, n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, max_seq_len=64),
    # CPU ladder for sweeps, ~2-5x apart (KV cache fp32 at max_seq_len in brackets):
    # 2.88 M params; streamed 7.3 MB fp32 [2.1 MB]: fits in many CPU caches
    "cpu-xs": ToyConfig(vocab_size=8192, n_layers=4, d_model=128, n_heads=2, max_seq_len=512),
    # 10.5 M params; streamed 33.6 MB fp32 [8.4 MB]: about the size of a big L3
    "cpu-s": ToyConfig(vocab_size=8192, n_layers=8, d_model=256, n_heads=4, max_seq_len=512),
    # 33.6 M params; streamed 117.5 MB fp32 [16.8 MB]: DRAM-bound
    "cpu-m": ToyConfig(vocab_size=8192, n_layers=8, d_model=512, n_heads=8, max_seq_len=512),
    # 67.1 M params; streamed 234.9 MB fp32 [16.8 MB]: DRAM-bound, Binder-safe. Four wide layers
    # rather than eight narrow ones: half the small ops per step and 4 kB weight rows, which
    # one-thread GEMV streams better than 3 kB rows. Peaks at ~0.6 GiB of process memory in fp32.
    "cpu-l": ToyConfig(vocab_size=8192, n_layers=4, d_model=1024, n_heads=16, max_seq_len=512),
    # GPU presets (KV cache bf16 at max_seq_len in brackets):
    # 19.5 M params; streamed 22.7 MB bf16 [2.1 MB]: launch-bound when eager
    "gpu-s": ToyConfig(vocab_size=32000, n_layers=4, d_model=256, n_heads=4, max_seq_len=512),
    # 105.8 M params; streamed 162.4 MB bf16 [12.6 MB]
    "gpu-m": ToyConfig(vocab_size=32000, n_layers=8, d_model=768, n_heads=12, max_seq_len=512),
    # 936 M params; streamed 1.74 GB bf16 [67 MB]: a 1B-class model
    "gpu-1b": ToyConfig(vocab_size=32000, n_layers=16, d_model=2048, n_heads=16, max_seq_len=512),
    # 6.70 B params; streamed 13.1 GB bf16 [134 MB]: Llama-2-7B's width, depth and heads, with a
    # 4x GELU MLP in place of its SwiGLU (about the same number of parameters)
    "7b": ToyConfig(vocab_size=32000, n_layers=32, d_model=4096, n_heads=32, max_seq_len=256),
    # Trained on the course's own text, one byte per token (benchmarks/train_toy.py; weights in data/weights/):
    # 1.87 M params, 3.7 MB in fp16; its draft for speculative decoding, 0.46 M params
    "trained": ToyConfig(vocab_size=256, n_layers=4, d_model=192, n_heads=6, max_seq_len=512),
    "trained-draft": ToyConfig(vocab_size=256, n_layers=2, d_model=128, n_heads=4, max_seq_len=512),
}


def get_config(config_or_preset: ToyConfig | str) -> ToyConfig:
    """A ToyConfig as given, or the preset of that name; ValueError listing the presets."""
    if isinstance(config_or_preset, ToyConfig):
        return config_or_preset
    if isinstance(config_or_preset, str) and config_or_preset.strip().lower() in PRESETS:
        return PRESETS[config_or_preset.strip().lower()]
    raise ValueError(f"config_or_preset={config_or_preset!r} is not a ToyConfig or a preset name; "
                     f"presets: {', '.join(PRESETS)}")


def preset_name(config: ToyConfig) -> str:
    """The name of the preset equal to ``config``, or "custom"."""
    return next((name for name, c in PRESETS.items() if c == config), "custom")


# ----------------------------------------------------------------------------- the devices
@dataclass(frozen=True)
class Hardware:
    """One device. SI units: bandwidth bytes/s, memory bytes, peak FLOP/s per precision.

    ``memory`` is what the device reports (HBM and DRAM come in binary sizes: an "80 GB" A100
    has 81,920 MiB = 85.9e9 B); ``nominal_memory`` is the decimal figure it is sold and taught as.
    """

    name: str
    bandwidth: float
    memory: float
    peak: tuple[tuple[str, float], ...] = ()
    source: str = ""
    label: str = ""
    kind: str = "gpu"
    aliases: tuple[str, ...] = field(default=(), compare=False)
    nominal_memory: float | None = None
    memory_note: str = ""

    def __post_init__(self):
        for attr in ("bandwidth", "memory"):
            check_positive(f"{attr} of hardware {self.name!r}", getattr(self, attr))

    def peak_flops(self, precision: str) -> float:
        """Dense peak FLOP/s at ``precision``; ValueError if the catalogue has no figure."""
        name = normalize_precision(precision)
        table = dict(self.peak)
        if name not in table:
            known = ", ".join(table) or "none"
            raise ValueError(f"precision={precision!r}: no peak FLOP/s for {self.name} at {name}; known: {known}")
        return table[name]

    @property
    def precisions(self) -> tuple[str, ...]:
        """Precisions for which a peak FLOP/s figure is known."""
        return tuple(p for p, _ in self.peak)


@lru_cache(maxsize=1)
def _entries() -> tuple[Hardware, ...]:
    text = resources.files("course_lib").joinpath("data/hardware.json").read_text()
    return tuple(
        Hardware(
            name=d["name"], bandwidth=float(d["bandwidth"]), memory=float(d["memory"]),
            peak=tuple((k, float(v)) for k, v in d["peak_flops"].items()),
            source=d["source"], label=d.get("label", d["name"]), kind=d.get("kind", "gpu"),
            aliases=tuple(d.get("aliases", ())), nominal_memory=d.get("memory_nominal"),
            memory_note=d.get("memory_note", ""),
        )
        for d in json.loads(text)["devices"]
    )


def catalog() -> list[Hardware]:
    """All catalogue entries, in file order."""
    return list(_entries())


def get(name: str) -> Hardware:
    """The entry called ``name`` or one of its aliases (case-insensitive)."""
    if isinstance(name, str):
        key = name.strip().lower()
        for hw in _entries():
            if key == hw.name.lower() or key in (a.lower() for a in hw.aliases):
                return hw
    known = ", ".join(f"{hw.name} ({', '.join(hw.aliases)})" if hw.aliases else hw.name for hw in _entries())
    raise ValueError(f"hardware={name!r} is not in the catalogue; known: {known}")


def custom(name: str, bandwidth: float, memory: float, peak_flops: dict[str, float] | None = None,
           source: str = "measured on this machine") -> Hardware:
    """An entry for a device outside the catalogue, e.g. the learner's measured machine."""
    peak = tuple((normalize_precision(k), float(v)) for k, v in (peak_flops or {}).items())
    return Hardware(name=name, bandwidth=bandwidth, memory=memory, peak=peak, source=source, label=name,
                    kind="measured")


def match(device_name: str) -> Hardware | None:
    """The catalogue entry of a torch device name, or None: "NVIDIA H100 80GB HBM3" -> H100-SXM,
    "NVIDIA A100-SXM4-40GB" -> A100-40GB, ... CPUs and Apple GPUs are not matched (their memory
    systems vary too much for one datasheet figure)."""
    rules = [(r"H200", "H200"), (r"H100.*NVL", None), (r"H100.*PCIE", "H100-PCIe"), (r"H100", "H100-SXM"),
             (r"A100.*40\s*GB", "A100-40GB"), (r"A100", "A100-80GB"), (r"\bL4\b", "L4"),
             (r"RTX 4090", "RTX-4090"), (r"MI300X", "MI300X")]
    for pattern, entry in rules:
        if re.search(pattern, str(device_name).upper()):
            return get(entry) if entry else None
    return None


# ----------------------------------------------------------------------------- recorded runs
@lru_cache(maxsize=8)
def load_reference(card: str | None = None) -> dict | None:
    """The recorded run of ``card`` (e.g. "nvidia-h200"; default: the first one), or None if there is none."""
    folder = resources.files("course_lib").joinpath("data/reference")
    names = sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))
    if not names:
        return None
    card = names[0] if card is None else card
    if card not in names:
        raise ValueError(f"card={card!r} has no recorded run; recorded: {', '.join(names)}")
    return json.loads(folder.joinpath(f"{card}.json").read_text())


def reference_label(ref: dict) -> str:
    """'recorded on NVIDIA H200, 2026-11-27, torch 2.11' for titles and captions (from the run's machine profile)."""
    profile = ref["profile"]
    return f"recorded on {profile['device_name']}, {profile['date'][:10]}, torch {profile['torch_version']}"
