"""Greedy generation with the toy GPT, as small named steps (in the style of gpt-fast).

    prefill            the whole prompt in one pass: fills the KV cache, returns the last logits
    decode_one_token   one new token at position ``pos``: reads the cache, appends its K and V
    sample_greedy      the most likely next token
    generate           prefill, then decode one token at a time (each input is the last output)

``teacher_forced_logits`` is the training-style pass over a known sequence (no cache), whose
logits a correct cache reproduces step by step. ``make_graphed_decode`` captures one whole
decode step in a CUDA graph, removing the per-kernel launch cost that dominates small models
on a GPU.

References: gpt-fast ``generate.py`` (PyTorch team); "Accelerating PyTorch with CUDA Graphs"
and the ``torch.cuda.graphs`` documentation (warm-up on a side stream, static buffers).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import trange

from .model import ToyGPT


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


@torch.inference_mode()
def generate(model: ToyGPT, prompt: torch.Tensor, max_new_tokens: int, progress: bool = False) -> torch.Tensor:
    """Greedy generation: the prompt (B, T) followed by ``max_new_tokens`` new tokens, (B, T + new).

    Raises ValueError if the batch exceeds the model's max_batch or T + max_new_tokens exceeds
    its max_seq_len. ``progress`` shows a tqdm bar over the decode steps.
    """
    _check_tokens(model, prompt, "prompt")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens!r} must be a whole number >= 1")
    B, T = prompt.shape
    model.check_fits(B, T + max_new_tokens)
    tokens = torch.empty((B, T + max_new_tokens), dtype=torch.long, device=prompt.device)
    tokens[:, :T] = prompt
    tokens[:, T:T + 1] = sample_greedy(prefill(model, prompt))
    for pos in trange(T, T + max_new_tokens - 1, disable=not progress, desc="decoding", unit="tok"):
        logits = decode_one_token(model, tokens[:, pos:pos + 1], pos)
        tokens[:, pos + 1:pos + 2] = sample_greedy(logits)
    return tokens


@torch.inference_mode()
def teacher_forced_logits(model: ToyGPT, tokens: torch.Tensor) -> torch.Tensor:
    """Logits (B, T, vocab) for every position of a known sequence in one parallel pass
    (teacher forcing, as in training): no KV cache, no token-by-token loop."""
    _check_tokens(model, tokens, "tokens")
    return model.forward_no_cache(tokens)


def make_graphed_decode(model: ToyGPT, batch: int = 1) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """Capture one whole decode step in a CUDA graph; return ``decode(token (batch, 1), pos) ->
    logits (batch, vocab)``, a drop-in for ``decode_one_token`` at this batch size.

    The step runs on the static-cache path (attention over all max_seq_len slots under a mask),
    so its shapes never change and one graph serves every position: each call copies the token
    and position into static input buffers and replays the recorded kernels. The returned
    logits are a static buffer that the next call overwrites (clone them to keep them).

    Build the graph before prefilling: warm-up and capture write K and V at cache position 0.
    """
    device = model.device
    if device.type != "cuda":
        raise ValueError(f"CUDA graphs need a CUDA device; this model is on {device.type}")
    model.check_fits(batch, 1)
    static_token = torch.zeros((batch, 1), dtype=torch.long, device=device)
    static_pos = torch.zeros((), dtype=torch.long, device=device)

    with torch.inference_mode():
        side = torch.cuda.Stream(device)  # warm up off the default stream, as the docs advise
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(3):
                model(static_token, static_pos, static_kv=True)
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_logits = model(static_token, static_pos, static_kv=True)[:, -1]  # (batch, vocab)

    def decode(token: torch.Tensor, pos: int) -> torch.Tensor:
        if not 0 <= pos < model.config.max_seq_len:  # out of range would be a device-side assert
            raise ValueError(f"pos={pos} must be in [0, max_seq_len={model.config.max_seq_len})")
        static_token.copy_(token)
        static_pos.fill_(pos)
        graph.replay()
        return static_logits

    return decode
