"""The course's toy GPT: a small decoder-only transformer built to be *timed*, not trained.

Scope: the shape in docs/ARCHITECTURE.md and nothing more -- token embedding, pre-norm blocks
(RMSNorm -> fused-QKV attention -> output projection; RMSNorm -> up -> GELU -> down), a final
RMSNorm and an untied LM head, no biases. The weights are random (a fixed seed): every timing
and byte count is that of a real model of the same shape, but the text it writes is nonsense.
There is no positional encoding (real models add RoPE: a few elementwise ops per layer that
change neither the bytes streamed nor the matmul FLOPs); the causal mask alone orders tokens.

Each layer owns a static, preallocated KV cache of shape (max_batch, n_kv_heads, max_seq_len,
head_dim) for K and for V. ``forward(tokens, start_pos)`` writes the new tokens' K and V at
[start_pos, start_pos + T) and attends over the filled prefix [0, start_pos + T);
``static_kv=True`` attends over the whole cache under a mask instead, so that every step has the
same shapes and can be captured in a CUDA graph (see generate.make_graphed_decode).

Parameter, byte and FLOP counts come from ``perf`` (tests check them against this module).

References: nanoGPT ``model.py`` (A. Karpathy) for the layout and presets; gpt-fast
``model.py`` (PyTorch team) for the static KV cache and fused QKV; PyTorch's
``scaled_dot_product_attention`` documentation for the attention mask and grouped-query options.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import devices, perf
from . import precision as _precision

# build_model asks for this much more memory than weights + KV cache, for activations (logits of
# a full-length prefill, MLP hidden states) and allocator slack.
MEMORY_HEADROOM = 1.25


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
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name}={value!r} must be a whole number greater than zero")
        if isinstance(self.norm_eps, bool) or not isinstance(self.norm_eps, (int, float)) or not self.norm_eps > 0:
            raise ValueError(f"norm_eps={self.norm_eps!r} must be a number greater than zero")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads={self.n_heads} must be divisible by n_kv_heads={self.n_kv_heads}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def perf_shape(self) -> dict[str, int]:
        """The keyword arguments perf's shape formulas take, e.g.
        ``perf.forward_flops(**config.perf_shape, n_tokens=1)``."""
        return {"n_layers": self.n_layers, "d_model": self.d_model, "n_heads": self.n_heads,
                "n_kv_heads": self.n_kv_heads, "d_ff": self.d_ff, "vocab_size": self.vocab_size}

    def n_params(self, embedding: bool = True) -> int:
        """Exact parameter count (with or without the embedding table)."""
        return perf.transformer_params(**self.perf_shape, embedding=embedding)

    def weight_bytes(self, precision: str = "fp32") -> float:
        """Weight bytes one decode step streams: everything but the embedding table."""
        return perf.decode_weight_bytes(**self.perf_shape, precision=precision)

    def kv_cache_bytes(self, batch: int = 1, precision: str = "fp32") -> float:
        """Bytes of the static KV cache for ``batch`` sequences of max_seq_len tokens."""
        _check_batch(batch)
        per_token = perf.kv_cache_bytes_per_token(self.n_layers, self.n_kv_heads, self.head_dim, precision)
        return batch * self.max_seq_len * per_token

    def total_bytes(self, batch: int = 1, precision: str = "fp32") -> float:
        """Bytes the model occupies: all weights (embedding included) plus the KV cache."""
        return self.n_params() * perf.bytes_per_param(precision) + self.kv_cache_bytes(batch, precision)


def _check_batch(batch, name: str = "batch") -> int:
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"{name}={batch!r} must be a whole number >= 1")
    return batch


# Streamed bytes exclude the embedding table (a decode step reads one row of it). head_dim is 64,
# except in "tiny" (16) and the two largest GPU presets (128). Numbers computed with perf.
PRESETS: dict[str, ToyConfig] = {
    # tests: 0.12 M params; streamed 0.41 MB fp32 / 0.20 MB bf16; GQA (2 KV heads per 4 query heads)
    "tiny": ToyConfig(vocab_size=256, n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, max_seq_len=64),
    # CPU ladder for sweeps, ~2-5x apart (KV cache fp32 at max_seq_len in brackets):
    # 2.88 M params; streamed 7.3 MB fp32 / 3.7 MB bf16 [2.1 MB]: fits in many CPU caches
    "cpu-xs": ToyConfig(vocab_size=8192, n_layers=4, d_model=128, n_heads=2, max_seq_len=512),
    # 10.5 M params; streamed 33.6 MB fp32 / 16.8 MB bf16 [8.4 MB]: about the size of a big L3
    "cpu-s": ToyConfig(vocab_size=8192, n_layers=8, d_model=256, n_heads=4, max_seq_len=512),
    # 33.6 M params; streamed 117.5 MB fp32 / 58.7 MB bf16 [16.8 MB]: DRAM-bound
    "cpu-m": ToyConfig(vocab_size=8192, n_layers=8, d_model=512, n_heads=8, max_seq_len=512),
    # 67.1 M params; streamed 234.9 MB fp32 / 117.5 MB bf16 [16.8 MB]: DRAM-bound, Binder-safe.
    # Four wide layers rather than eight narrow ones (d 768): half the small ops per step (84
    # dispatched ops, not 204) and weight rows of 4 kB, which one-thread GEMV streams at ~90 %
    # of the 256 MiB GEMV rate (3 kB rows: ~80 %); see benchmarks/README.md. The whole process,
    # torch included, peaks at ~0.6 GiB in fp32 (measured with torch 2.13 on Linux).
    "cpu-l": ToyConfig(vocab_size=8192, n_layers=4, d_model=1024, n_heads=16, max_seq_len=512),
    # GPU presets (KV cache bf16 at max_seq_len in brackets):
    # 19.5 M params; streamed 45.4 MB fp32 / 22.7 MB bf16 [2.1 MB]: launch-bound when eager
    "gpu-s": ToyConfig(vocab_size=32000, n_layers=4, d_model=256, n_heads=4, max_seq_len=512),
    # 105.8 M params; streamed 324.8 MB fp32 / 162.4 MB bf16 [12.6 MB]
    "gpu-m": ToyConfig(vocab_size=32000, n_layers=8, d_model=768, n_heads=12, max_seq_len=512),
    # 936 M params; streamed 3.48 GB fp32 / 1.74 GB bf16 [67 MB]: a 1B-class model
    "gpu-1b": ToyConfig(vocab_size=32000, n_layers=16, d_model=2048, n_heads=16, max_seq_len=512),
    # 6.70 B params; streamed 26.3 GB fp32 / 13.1 GB bf16 [134 MB]: Llama-2-7B's width, depth and
    # heads, with a 4x GELU MLP in place of its SwiGLU (about the same number of parameters)
    "7b": ToyConfig(vocab_size=32000, n_layers=32, d_model=4096, n_heads=32, max_seq_len=256),
}


def get_config(config_or_preset: ToyConfig | str) -> ToyConfig:
    """A ToyConfig as given, or the preset of that name; ValueError listing the presets."""
    if isinstance(config_or_preset, ToyConfig):
        return config_or_preset
    if isinstance(config_or_preset, str) and config_or_preset.strip().lower() in PRESETS:
        return PRESETS[config_or_preset.strip().lower()]
    raise ValueError(f"config_or_preset={config_or_preset!r} is not a ToyConfig or a preset name; "
                     f"presets: {', '.join(PRESETS)}")


# ----------------------------------------------------------------------------- the network
class KVCache(nn.Module):
    """Static K and V buffers for one layer, each (max_batch, n_kv_heads, max_seq_len, head_dim)."""

    def __init__(self, max_batch: int, n_kv_heads: int, max_seq_len: int, head_dim: int, dtype: torch.dtype):
        super().__init__()
        shape = (max_batch, n_kv_heads, max_seq_len, head_dim)
        self.register_buffer("k_cache", torch.zeros(shape, dtype=dtype), persistent=False)
        self.register_buffer("v_cache", torch.zeros(shape, dtype=dtype), persistent=False)

    def write(self, k: torch.Tensor, v: torch.Tensor, start_pos: int):
        """Store K, V (B, nkv, T, hd) at [start_pos, start_pos+T); return the filled prefix."""
        B, _, T, _ = k.shape
        end = start_pos + T
        self.k_cache[:B, :, start_pos:end] = k
        self.v_cache[:B, :, start_pos:end] = v
        return self.k_cache[:B, :, :end], self.v_cache[:B, :, :end]  # (B, nkv, end, hd)

    def write_static(self, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor):
        """Store K, V (B, nkv, T, hd) at ``positions`` (a tensor, so a CUDA graph can replay the
        write at any step); return the whole cache."""
        B = k.shape[0]
        self.k_cache[:B].index_copy_(2, positions, k)
        self.v_cache[:B].index_copy_(2, positions, v)
        return self.k_cache[:B], self.v_cache[:B]  # (B, nkv, max_seq_len, hd)


class Attention(nn.Module):
    """Multi-head (or grouped-query) causal self-attention with a fused QKV projection."""

    def __init__(self, config: ToyConfig, max_batch: int, dtype: torch.dtype):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        q_size, kv_size = self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        self.split_sizes = (q_size, kv_size, kv_size)  # of wqkv's output features
        self.wqkv = nn.Linear(config.d_model, q_size + 2 * kv_size, bias=False, dtype=dtype)
        self.wo = nn.Linear(q_size, config.d_model, bias=False, dtype=dtype)
        self.cache = KVCache(max_batch, self.n_kv_heads, config.max_seq_len, self.head_dim, dtype)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, cache_pos: int | torch.Tensor | None):
        """``cache_pos``: None = no cache (attend over x itself); an int = start position in the
        cache (attend over the filled prefix); a tensor = the new tokens' positions (static path)."""
        B, T, _ = x.shape
        # one view + one transpose + one split (3 ops) instead of a split, 3 views and 3
        # transposes: on a CPU every op costs ~4-10 us of dispatch, as much as streaming 50 kB
        qkv = self.wqkv(x).view(B, T, self.n_heads + 2 * self.n_kv_heads, self.head_dim).transpose(1, 2)
        # q (B, nh, T, hd), k and v (B, nkv, T, hd)
        q, k, v = qkv.split((self.n_heads, self.n_kv_heads, self.n_kv_heads), dim=1)
        if isinstance(cache_pos, torch.Tensor):
            k, v = self.cache.write_static(k, v, cache_pos)  # (B, nkv, S, hd)
        elif cache_pos is not None:
            k, v = self.cache.write(k, v, cache_pos)  # (B, nkv, start_pos + T, hd)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           enable_gqa=self.n_kv_heads != self.n_heads)  # (B, nh, T, hd)
        # (B, nh, 1, hd) is already laid out as (B, 1, nh * hd): one reshape (a view); T > 1 needs the transpose
        y = y.reshape(B, T, -1) if T == 1 else y.transpose(1, 2).reshape(B, T, -1)  # (B, T, nh * hd)
        return self.wo(y)  # (B, T, d)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x)), MLP = down(GELU(up))."""

    def __init__(self, config: ToyConfig, max_batch: int, dtype: torch.dtype):
        super().__init__()
        # RMSNorm (Zhang & Sennrich, 2019): x / rms(x) * weight, no mean subtraction, no bias
        self.attn_norm = nn.RMSNorm(config.d_model, eps=config.norm_eps, dtype=dtype)
        self.attention = Attention(config, max_batch, dtype)
        self.mlp_norm = nn.RMSNorm(config.d_model, eps=config.norm_eps, dtype=dtype)
        self.w_up = nn.Linear(config.d_model, config.d_ff, bias=False, dtype=dtype)
        self.w_down = nn.Linear(config.d_ff, config.d_model, bias=False, dtype=dtype)

    def forward(self, x, mask, cache_pos):
        # in-place residual adds: x is this forward's own activation (the model runs without
        # autograd), so no new buffer is allocated per add
        x = x.add_(self.attention(self.attn_norm(x), mask, cache_pos))
        return x.add_(self.w_down(F.gelu(self.w_up(self.mlp_norm(x)))))  # (B, T, d)


class ToyGPT(nn.Module):
    """The toy decoder. Build it with ``build_model`` (memory guard, seeded init, eval mode);
    constructing it directly leaves PyTorch's default init until ``init_weights`` is called."""

    def __init__(self, config: ToyConfig, max_batch: int = 1, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.config, self.max_batch = config, _check_batch(max_batch, "max_batch")
        # from_pretrained wraps a given tensor and skips nn.Embedding's default normal_ init, which on
        # the meta device (see build_model) would import sympy: +70 MB of RSS for nothing.
        self.embedding = nn.Embedding.from_pretrained(torch.empty(config.vocab_size, config.d_model, dtype=dtype))
        self.layers = nn.ModuleList(Block(config, max_batch, dtype) for _ in range(config.n_layers))
        self.final_norm = nn.RMSNorm(config.d_model, eps=config.norm_eps, dtype=dtype)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False, dtype=dtype)

    @property
    def device(self) -> torch.device:
        return self.lm_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.lm_head.weight.dtype

    @torch.no_grad()
    def init_weights(self, seed: int = 0) -> None:
        """Seeded random weights, drawn on the model's device: normal with std 0.02 for the
        embedding and every matrix, std 1/sqrt(d_model) for the LM head so that logits have unit
        scale at any width, ones for the norms; the KV cache zeroed. The same seed gives the same weights on the
        same device type (CPU and CUDA generators differ)."""
        generator = torch.Generator(device=self.device).manual_seed(seed)
        for name, param in self.named_parameters():
            if name.endswith("norm.weight"):
                param.fill_(1.0)
            else:
                std = self.config.d_model ** -0.5 if name == "lm_head.weight" else 0.02
                param.normal_(0.0, std, generator=generator)
        for layer in self.layers:
            layer.attention.cache.k_cache.zero_()
            layer.attention.cache.v_cache.zero_()

    def check_fits(self, batch: int, length: int) -> None:
        """ValueError unless ``batch`` sequences of ``length`` tokens fit the static cache."""
        if batch > self.max_batch:
            raise ValueError(f"batch={batch} exceeds this model's max_batch={self.max_batch}; "
                             f"build the model with max_batch={batch}")
        if length > self.config.max_seq_len:
            raise ValueError(f"sequence length {length} exceeds max_seq_len={self.config.max_seq_len}; "
                             f"use a shorter prompt, fewer new tokens or a larger max_seq_len")

    def forward(self, tokens: torch.Tensor, start_pos: int | torch.Tensor, static_kv: bool = False):
        """Logits (B, T, vocab) for tokens (B, T) at positions [start_pos, start_pos + T), writing
        their K and V into the cache. With ``static_kv`` (CUDA graphs), ``start_pos`` may be a
        tensor and attention runs over the whole cache under a mask, so shapes never change."""
        B, T = tokens.shape
        if static_kv:
            self.check_fits(B, T)
            q_pos = start_pos + torch.arange(T, device=tokens.device)  # (T,)
            return self._run(tokens, _causal_mask(q_pos, self.config.max_seq_len, self.dtype), q_pos)
        if isinstance(start_pos, bool) or not isinstance(start_pos, int) or start_pos < 0:
            raise ValueError(f"start_pos={start_pos!r} must be a whole number >= 0 (a tensor only with static_kv)")
        self.check_fits(B, start_pos + T)
        if T == 1:  # a single new token may attend every filled slot: no mask needed
            return self._run(tokens, None, start_pos)
        q_pos = torch.arange(start_pos, start_pos + T, device=tokens.device)  # (T,)
        return self._run(tokens, _causal_mask(q_pos, start_pos + T, self.dtype), start_pos)

    def forward_no_cache(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, vocab) of a full causal forward over tokens (B, T), as in training
        (teacher forcing). The KV cache is neither read nor written."""
        q_pos = torch.arange(tokens.shape[1], device=tokens.device)  # (T,)
        return self._run(tokens, _causal_mask(q_pos, len(q_pos), self.dtype), None)

    def _run(self, tokens, mask, cache_pos):
        x = self.embedding(tokens)  # (B, T, d)
        for layer in self.layers:
            x = layer(x, mask, cache_pos)
        return self.lm_head(self.final_norm(x))  # (B, T, vocab)


def _causal_mask(q_pos: torch.Tensor, n_keys: int, dtype: torch.dtype) -> torch.Tensor:
    """(T, n_keys) additive mask: 0 where the query at absolute position p may attend (key slots
    0..p), -inf elsewhere. Built once per forward; SDPA would convert a boolean one in every layer."""
    future = torch.arange(n_keys, device=q_pos.device)[None, :] > q_pos[:, None]  # (T, n_keys)
    return torch.zeros(future.shape, dtype=dtype, device=q_pos.device).masked_fill_(future, float("-inf"))


# ----------------------------------------------------------------------------- building
def check_memory(config: ToyConfig, device: torch.device, precision: str, max_batch: int) -> None:
    """ValueError if weights + KV cache (with MEMORY_HEADROOM) exceed the device's free memory."""
    needed = config.total_bytes(max_batch, precision) * MEMORY_HEADROOM
    free = devices.free_memory(device)
    if needed > free:
        raise ValueError(
            f"this model needs {needed / 1e9:.3g} GB ({precision}, max_batch={max_batch}, "
            f"{config.n_params() / 1e6:.1f} M params, weights + KV cache + headroom) but only "
            f"{free / 1e9:.3g} GB is free on {device.type}; try a smaller preset, a 16-bit "
            f"precision, a smaller max_batch or max_seq_len")


def build_model(config_or_preset: ToyConfig | str, device=None, precision: str = "fp32",
                max_batch: int = 1, seed: int = 0) -> ToyGPT:
    """A ready-to-run ToyGPT: on ``device`` (default: devices.pick_device), in ``precision``,
    seeded random weights, eval mode, no gradients.

    Checks that the precision runs on the device and that the model fits in free memory before
    allocating anything. The modules are first built on the ``meta`` device (shapes only), then
    allocated once, directly on the target device in the target dtype: no second copy.
    """
    config = get_config(config_or_preset)
    device = devices.pick_device(device)
    precision = devices.check_precision_supported(device, precision)
    _check_batch(max_batch, "max_batch")
    if device.type == "cuda":
        # cuDNN's attention builds a new plan for every new KV length: 40-60 ms per decode step
        # until each length has been seen once (seen with bf16 on an H200, torch 2.11). Decoding
        # meets a new length every step, so the course uses the flash / efficient kernels.
        torch.backends.cuda.enable_cudnn_sdp(False)
    check_memory(config, device, precision, max_batch)
    with torch.device("meta"):
        model = ToyGPT(config, max_batch=max_batch, dtype=_precision.torch_dtype(precision))
    model.to_empty(device=device)
    model.requires_grad_(False).eval()
    model.init_weights(seed)
    return model
