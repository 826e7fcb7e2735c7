"""The course's toy GPT and how it generates text, in the style of nanoGPT and gpt-fast.

Scope: token embedding, pre-norm blocks (RMSNorm -> fused-QKV attention -> output projection;
RMSNorm -> up -> GELU -> down), a final RMSNorm and an untied LM head, no biases; shapes and
exact counts in specs.py. Random weights (a fixed seed): the timings and bytes of a real model of
the same shape, but nonsense text; "trained" and "trained-draft" load weights trained on the course's
own text, one byte per token (``encode``, ``decode``). No positional encoding (RoPE would add a few
elementwise ops per layer, changing neither the bytes streamed nor the matmul FLOPs).

Each layer owns a static, preallocated KV cache, K and V in one buffer (max_batch, 2 * n_kv_heads,
max_seq_len, head_dim). ``forward(tokens, start_pos)`` writes the new tokens' K and V at
[start_pos, start_pos + T) and attends over the filled prefix; ``static_kv=True`` attends over the
first ``n_keys`` slots under a mask instead, so shapes depend on ``n_keys`` only (CUDA graphs).

Generation, as small named steps:

    prefill            the whole prompt in one pass: fills the KV cache, returns the last logits
    decode_one_token   one new token at position ``pos``: reads the cache, appends its K and V
    generate           prefill, then decode one token at a time (each input is the last output),
                       greedy or sampled (``sampler``)
    teacher_forced_logits   the training-style pass over a known sequence (no cache)
    machine.make_graphed_decode   one whole decode step captured in a CUDA graph

References: nanoGPT's ``model.py``, gpt-fast's ``model.py`` and ``generate.py``, PyTorch's CUDA-graph docs.
"""

from __future__ import annotations

from importlib import resources

import torch
import torch.nn.functional as F
from torch import nn

from .machine import check_memory, check_precision, fast_mode, pick_device, torch_dtype
from .perf import check_count, check_non_negative
from .roofs import best_layout
from .specs import PRESETS, ToyConfig, get_config, preset_name  # noqa: F401  (re-exported for notebooks)

WEIGHTS = resources.files(__package__) / "data" / "weights"  # <preset>.pt: fp16 state dicts (benchmarks/train_toy.py)
TRAINED = ("trained", "trained-draft")


# ----------------------------------------------------------------------------- the network
class KVCache(nn.Module):
    """Static K and V of one layer in ONE buffer ``kv_cache`` (max_batch, 2 * n_kv_heads, max_seq_len, head_dim),
    K in the first n_kv_heads rows: the fused QKV output's K and V rows are one slice, so one write
    per step stores both. ``k_cache`` and ``v_cache`` are views of the two halves."""

    def __init__(self, max_batch: int, n_kv_heads: int, max_seq_len: int, head_dim: int, dtype: torch.dtype):
        super().__init__()
        self.n_kv_heads, shape = n_kv_heads, (max_batch, 2 * n_kv_heads, max_seq_len, head_dim)
        self.register_buffer("kv_cache", torch.zeros(shape, dtype=dtype), persistent=False)

    k_cache = property(lambda self: self.kv_cache[:, :self.n_kv_heads])  # (max_batch, nkv, S, hd), a view
    v_cache = property(lambda self: self.kv_cache[:, self.n_kv_heads:])

    def write(self, kv: torch.Tensor, start_pos: int | torch.Tensor, n_keys: int | None = None) -> torch.Tensor:
        """Store KV (B, 2 nkv, T, hd) at [start_pos, start_pos+T), return the filled prefix; or, with ``start_pos``
        a tensor of positions (static path: a CUDA graph replays the write at any step), store it there by
        one index_copy_ and return the first ``n_keys`` slots."""
        B, T = kv.shape[0], kv.shape[2]
        if isinstance(start_pos, torch.Tensor):
            self.kv_cache[:B].index_copy_(2, start_pos, kv)
            return self.kv_cache[:B, :, :n_keys]  # (B, 2 nkv, n_keys, hd)
        self.kv_cache[:B, :, start_pos:start_pos + T] = kv
        return self.kv_cache[:B, :, :start_pos + T]  # (B, 2 nkv, start_pos + T, hd)


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
        q, kv = qkv.split((self.n_heads, 2 * self.n_kv_heads), dim=1)  # q (B, nh, T, hd), kv (B, 2 nkv, T, hd)
        if cache_pos is not None:  # the static path reads as many slots as its mask has keys
            kv = self.cache.write(kv, cache_pos, None if mask is None else mask.shape[-1])
        k, v = kv.split(self.n_kv_heads, dim=1)  # K rows, then V rows
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


class InOutLinear(nn.Module):
    """A bias-free linear layer with its weight stored (in, out) and applied as ``x @ W``: on some
    machines this layout's batch-1 kernel streams faster than nn.Linear's (out, in)."""

    def __init__(self, weight_t: torch.Tensor):
        super().__init__()
        self.weight_t = nn.Parameter(weight_t, requires_grad=False)  # (in, out)

    def forward(self, x):
        return x @ self.weight_t  # (B, T, out)


class ToyGPT(nn.Module):
    """The toy decoder. Build it with ``build_model`` (memory guard, seeded init, eval mode);
    constructing it directly leaves PyTorch's default init until ``init_weights`` is called."""

    def __init__(self, config: ToyConfig, max_batch: int = 1, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.config, self.max_batch = config, check_count("max_batch", max_batch)
        self.layout = "out_in"  # how the weight matrices are stored (build_model may transpose them)
        # from_pretrained wraps a given tensor and skips nn.Embedding's default normal_ init, which on
        # the meta device (see build_model) would import sympy: +70 MB of RSS for nothing.
        self.embedding = nn.Embedding.from_pretrained(torch.empty(config.vocab_size, config.d_model, dtype=dtype))
        self.layers = nn.ModuleList(Block(config, max_batch, dtype) for _ in range(config.n_layers))
        self.final_norm = nn.RMSNorm(config.d_model, eps=config.norm_eps, dtype=dtype)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False, dtype=dtype)

    device = property(lambda self: self.final_norm.weight.device)  # a torch.device
    dtype = property(lambda self: self.final_norm.weight.dtype)  # a torch.dtype

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
            layer.attention.cache.kv_cache.zero_()

    def check_fits(self, batch: int, length: int) -> None:
        """ValueError unless ``batch`` sequences of ``length`` tokens fit the static cache."""
        if batch > self.max_batch:
            raise ValueError(f"batch={batch} exceeds this model's max_batch={self.max_batch}; "
                             f"build the model with max_batch={batch}")
        if length > self.config.max_seq_len:
            raise ValueError(f"sequence length {length} exceeds max_seq_len={self.config.max_seq_len}; "
                             f"use a shorter prompt, fewer new tokens or a larger max_seq_len")

    def forward(self, tokens: torch.Tensor, start_pos: int | torch.Tensor, static_kv: bool = False,
                n_keys: int | None = None):
        """Logits (B, T, vocab) for tokens (B, T) at positions [start_pos, start_pos + T), writing
        their K and V into the cache. With ``static_kv`` (CUDA graphs), ``start_pos`` may be a tensor and
        attention runs over cache slots [0, n_keys) (default: all max_seq_len) under a mask: shapes set by n_keys."""
        B, T = tokens.shape
        if static_kv:
            n_keys = self.config.max_seq_len if n_keys is None else n_keys
            self.check_fits(B, max(T, n_keys))
            q_pos = start_pos + torch.arange(T, device=tokens.device)  # (T,)
            return self._run(tokens, _causal_mask(q_pos, n_keys, self.dtype), q_pos)
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
def build_model(config_or_preset: ToyConfig | str, device=None, precision: str = "fp32",
                max_batch: int = 1, seed: int = 0, layout: str = "out_in") -> ToyGPT:
    """A ready-to-run ToyGPT: on ``device`` (default: machine.pick_device), in ``precision``, seeded
    random weights (the TRAINED presets: their shipped weights), eval mode, no gradients. ``layout``:
    how weight matrices are stored, "out_in" (nn.Linear), "in_out" (InOutLinear, the same function)
    or "auto" (whichever streams faster on this device, measured by roofs.best_layout).

    Checks that the precision runs on the device and that the model fits in free memory before
    allocating anything. The modules are first built on the ``meta`` device (shapes only), then
    allocated once, directly on the target device in the target dtype: no second copy.
    """
    config = get_config(config_or_preset)
    device = pick_device(device)
    precision = check_precision(device, precision)
    check_count("max_batch", max_batch)
    if device.type == "cuda":
        # cuDNN's attention plans each new KV length anew, 40-60 ms a step (bf16, H200, torch 2.11), and eager
        # decoding meets a new length every step: flash / efficient kernels here (CUDA graphs, whose shapes are
        # fixed, turn cuDNN back on at capture: machine.make_graphed_decode).
        torch.backends.cuda.enable_cudnn_sdp(False)
    if layout not in ("out_in", "in_out", "auto"):
        raise ValueError(f"layout={layout!r} must be 'out_in', 'in_out' or 'auto'")
    check_memory(config, device, precision, max_batch)
    with torch.device("meta"):
        model = ToyGPT(config, max_batch=max_batch, dtype=torch_dtype(precision))
    model.to_empty(device=device)
    model.requires_grad_(False).eval()
    model.init_weights(seed)  # (also zeroes the KV cache)
    if (name := preset_name(config)) in TRAINED:
        load_weights(model, name)
    if layout == "auto":
        layout = best_layout(device.type, precision, config, torch.get_num_threads(), fast_mode())
    if layout == "in_out":  # the same weights, stored transposed, one matrix at a time
        for name in [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]:
            model.set_submodule(name, InOutLinear(model.get_submodule(name).weight.t().contiguous()))
    model.layout = layout
    return model


def load_weights(model: ToyGPT, name: str) -> None:
    """Copy the shipped weights ``WEIGHTS/<name>.pt`` into ``model`` (cast to its dtype, on its device)."""
    path = WEIGHTS / f"{name}.pt"
    if not path.is_file():
        raise ValueError(f"the weights of preset {name!r} are missing ({path}): reinstall course_lib, "
                         "or train them with benchmarks/train_toy.py")
    with path.open("rb") as file:
        model.load_state_dict(torch.load(file, map_location=model.device, weights_only=True))


def encode(text: str, device=None) -> torch.Tensor:
    """The trained presets' tokenizer: the UTF-8 bytes of ``text`` as a (1, T) long tensor."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"text={text!r} must be a non-empty string")
    return torch.tensor([list(text.encode("utf-8"))], dtype=torch.long, device=device)


def decode(tokens) -> str:
    """Byte tokens (a tensor or list, any shape) as text; a broken UTF-8 sequence becomes '�'."""
    return bytes(torch.as_tensor(tokens).flatten().tolist()).decode("utf-8", errors="replace")


# ----------------------------------------------------------------------------- generation
def _check_tokens(model: ToyGPT, tokens: torch.Tensor, name: str) -> None:
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.dtype != torch.long:
        raise ValueError(f"{name} must be a 2-D torch.long tensor of token ids (batch, length)")
    if tokens.device != model.device:
        raise ValueError(f"{name} is on {tokens.device} but the model is on {model.device}")


@torch.inference_mode()
def prefill(model: ToyGPT, prompt: torch.Tensor) -> torch.Tensor:
    """Run the prompt (B, T) through the model in one pass, writing its K and V into cache
    positions [0, T). Returns the logits of the last position, (B, vocab)."""
    _check_tokens(model, prompt, "prompt")
    return model(prompt, start_pos=0)[:, -1]  # (B, vocab)


@torch.inference_mode()
def decode_one_token(model: ToyGPT, token: torch.Tensor, pos: int) -> torch.Tensor:
    """One decode step: token (B, 1) at position ``pos``, attending to cache positions [0, pos].
    Returns its logits, (B, vocab)."""
    return model(token, start_pos=pos)[:, -1]  # (B, vocab)


def sample_greedy(logits: torch.Tensor) -> torch.Tensor:
    """The most likely next token for each row of logits (B, vocab): (B, 1)."""
    return logits.argmax(dim=-1, keepdim=True)


def sampler(temperature: float = 0.0, top_k: int | None = None, seed: int = 0):
    """``pick(logits (B, vocab)) -> (B, 1)``: greedy at temperature 0, else a seeded draw from the
    softmax of logits / temperature over the ``top_k`` likeliest tokens."""
    top_k = None if top_k is None else check_count("top_k", top_k)
    if check_non_negative("temperature", temperature) == 0:
        return sample_greedy
    generator = torch.Generator().manual_seed(seed)

    def pick(logits: torch.Tensor) -> torch.Tensor:
        scaled = logits.float().cpu() / temperature
        if top_k and top_k < scaled.shape[-1]:
            scaled = scaled.masked_fill(scaled < scaled.topk(top_k, dim=-1).values[:, -1:], float("-inf"))
        return torch.multinomial(scaled.softmax(-1), 1, generator=generator).to(logits.device)

    return pick


@torch.inference_mode()
def generate(model: ToyGPT, prompt: torch.Tensor, max_new_tokens: int, temperature: float = 0.0,
             top_k: int | None = None, seed: int = 0) -> torch.Tensor:
    """The prompt (B, T) and ``max_new_tokens`` new tokens, (B, T + new): greedy, or sampled with a
    ``temperature`` > 0 (``sampler``). ValueError if the batch or the length exceeds the model's
    max_batch or max_seq_len."""
    _check_tokens(model, prompt, "prompt")
    max_new_tokens, pick = check_count("max_new_tokens", max_new_tokens), sampler(temperature, top_k, seed)
    B, T = prompt.shape
    model.check_fits(B, T + max_new_tokens)
    tokens = torch.empty((B, T + max_new_tokens), dtype=torch.long, device=prompt.device)
    tokens[:, :T] = prompt
    tokens[:, T:T + 1] = pick(prefill(model, prompt))
    for pos in range(T, T + max_new_tokens - 1):
        logits = decode_one_token(model, tokens[:, pos:pos + 1], pos)
        tokens[:, pos + 1:pos + 2] = pick(logits)
    return tokens


@torch.inference_mode()
def teacher_forced_logits(model: ToyGPT, tokens: torch.Tensor) -> torch.Tensor:
    """Logits (B, T, vocab) for every position of a known sequence in one parallel pass
    (teacher forcing, as in training): no KV cache, no token-by-token loop."""
    _check_tokens(model, tokens, "tokens")
    return model.forward_no_cache(tokens)
