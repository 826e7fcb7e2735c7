r"""Speculative decoding with greedy verification, run for real on the toy GPT.

A cheap *draft* model guesses the next ``gamma`` tokens one at a time; the expensive *target*
model then checks all of them in ONE forward pass over ``gamma + 1`` positions, which costs
about as much as one ordinary decode step while that step is memory-bound (the weights are
streamed once whatever the number of tokens). The target keeps the longest prefix of guesses
that equal its own greedy choice and appends one token of its own (the correction after the
first wrong guess, or a bonus token when every guess was right). So each verification step
yields between 1 and ``gamma + 1`` tokens, and the output is exactly what the target alone
would have written greedily (up to floating-point ties: a pass over several tokens may round
differently from a single-token step).

One round, with ``n`` tokens known and the target's KV cache filled for positions [0, n-1)::

    draft:   x[n-1] -> d1 -> d2 -> ... -> d_gamma        (gamma small decode steps)
    target:  [x[n-1], d1, ..., d_gamma] at positions n-1 .. n-1+gamma, one pass
             argmax  t0,  t1, ...,  t_gamma   (t_i is the target's choice for position n+i)
    accept:  k = longest prefix with d_{i+1} == t_i;  append d1..dk and then t_k

The static KV cache makes rollback free: the target wrote K and V for every position of the
pass, and the slots of rejected guesses are simply overwritten by a later pass before anything
reads them. A draft model keeps its own cache; :class:`ModelDrafter` tracks how much of it
still holds tokens of the accepted sequence, and the next round first feeds it what it lacks.

Drafts, from "always loses" to "can win":

    make_draft(target, noise)       a noisy copy: acceptance dialled from 1 down; as slow as
                                    the target (c ≈ 1), so it never pays, even at alpha = 1
    make_layer_skip_draft(target,k) the target's first k blocks + final norm + LM head, weights
                                    shared: cheap (c ≈ k/L + LM head), but in the toy's *random*
                                    network every block rewrites the residual stream, so almost
                                    nothing is accepted (trained models are kinder)
    make_quantized_draft(target)    int8 weights, the same function up to rounding: alpha ≈ 0.9+;
                                    c is whatever this machine's int8 matmul makes of 1/4 of the
                                    bytes (≈ 0.6-0.75 on a 1-thread x86 CPU: near break-even)
    PromptLookupDrafter()           no model at all: copy what followed the last occurrence of
                                    the current n-gram. Free (c ≈ 0); right whenever the text
                                    repeats itself, which greedy text, the toy's included, does

Trust the measurement over the textbook formula: on a CPU the target's pass over gamma + 1
tokens may cost well over one decode step (small-batch matmuls run below the memory
bandwidth), so :func:`run_speculative_demo` reports that ratio v and a prediction with it.

References: Leviathan, Kalman & Matias, "Fast Inference from Transformers via Speculative
Decoding" (ICML 2023); Chen et al., "Accelerating Large Language Model Decoding with
Speculative Sampling" (2023); Elhoushi et al., "LayerSkip" (2024) and Zhang et al., "Draft &
Verify" (2023) for self-speculation with skipped layers; A. Saxena, "Prompt Lookup Decoding"
(2023) for the n-gram draft; gpt-fast's ``speculative_decode``.
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import devices, perf
from .generate import decode_one_token, generate
from .microbench import time_fn
from .model import ToyGPT, build_model, get_config


# ----------------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class SpeculativeStats:
    """What one speculative generation did and how long it took (seconds)."""

    rounds: int                          # verification passes of the target
    proposed: int                        # draft tokens offered to the target
    accepted: int                        # draft tokens the target kept
    accepted_per_round: tuple[int, ...]  # k of every round (the round made k + 1 tokens)
    rejections: int                      # rounds that stopped at a wrong guess
    new_tokens: int                      # tokens generated (= sum of k + 1 over rounds)
    prefill_time_s: float                # both models' pass over the prompt
    draft_time_s: float                  # time spent proposing (prefill excluded)
    target_time_s: float                 # time spent verifying (prefill excluded)
    wall_time_s: float                   # the whole call

    @property
    def acceptance_rate(self) -> float:
        """Fraction of proposed draft tokens that were kept: accepted / proposed. Guesses after
        the first wrong one are counted as proposed but never had a chance, so this is lower
        than the per-token acceptance probability ``alpha``."""
        return self.accepted / self.proposed if self.proposed else float("nan")

    @property
    def alpha(self) -> float:
        r"""Per-token acceptance probability, the :math:`\alpha` of Leviathan et al.: kept
        guesses / guesses actually judged (each round judges its kept ones plus, if it stopped
        early, one wrong one): accepted / (accepted + rejections)."""
        judged = self.accepted + self.rejections
        return self.accepted / judged if judged else float("nan")

    @property
    def tokens_per_step(self) -> float:
        """Tokens generated per verification pass of the target."""
        return self.new_tokens / self.rounds if self.rounds else float("nan")

    def as_dict(self) -> dict:
        """Fields and derived rates as a plain dict."""
        return {**asdict(self), "acceptance_rate": self.acceptance_rate, "alpha": self.alpha,
                "tokens_per_step": self.tokens_per_step}


class _Stopwatch:
    """Adds up device-synchronised time spent inside ``with watch:`` blocks."""

    def __init__(self, device: torch.device):
        self.device, self.total = device, 0.0

    def __enter__(self):
        devices.synchronize(self.device)
        self._start = time.perf_counter()

    def __exit__(self, *exc):
        devices.synchronize(self.device)
        self.total += time.perf_counter() - self._start


# ----------------------------------------------------------------------------- proposers
class ModelDrafter:
    """Proposes tokens with a draft ToyGPT, greedily, on the draft's own KV cache.

    ``valid`` is how many leading cache positions hold tokens of the accepted sequence. A round
    feeds the draft the known tokens it is missing (one, or two after a round in which every
    guess was kept: the last guess is proposed but never fed back), then decodes greedily.
    """

    def __init__(self, model: ToyGPT):
        self.model, self.valid = model, 0

    def prefill(self, context: torch.Tensor) -> None:
        """Fill the cache with ``context`` (1, T) at positions [0, T)."""
        self.model(context, start_pos=0)
        self.valid = context.shape[1]

    def propose(self, tokens: torch.Tensor, n: int, gamma: int) -> int:
        """Write up to ``gamma`` guesses into tokens[:, n:n+gamma] (tokens (1, L), the first n
        known); return how many were written (here always gamma)."""
        if gamma == 0:
            return 0
        logits = self.model(tokens[:, self.valid:n], start_pos=self.valid)[:, -1]  # (1, vocab)
        for i in range(gamma):
            tokens[:, n + i] = logits.argmax(dim=-1)
            if i < gamma - 1:
                logits = decode_one_token(self.model, tokens[:, n + i:n + i + 1], n + i)  # (1, vocab)
        self.valid = n + gamma - 1
        return gamma

    def keep(self, n_valid: int) -> None:
        """Only tokens [0, n_valid) are confirmed: forget cached guesses past them (the slots are
        simply overwritten later: rollback of a static cache is free)."""
        self.valid = min(self.valid, n_valid)


class PromptLookupDrafter:
    """A draft that is no model: it finds the latest earlier occurrence of the last
    ``max_ngram`` (down to 1) tokens and proposes the tokens that followed it ("prompt lookup
    decoding"; vLLM's n-gram speculator). Free to run, and right whenever the text repeats
    itself, as greedy text (the toy's included) often does. Proposes nothing without a match.
    """

    def __init__(self, max_ngram: int = 3):
        if isinstance(max_ngram, bool) or not isinstance(max_ngram, int) or max_ngram < 1:
            raise ValueError(f"max_ngram={max_ngram!r} must be a whole number >= 1")
        self.max_ngram = max_ngram

    def prefill(self, context: torch.Tensor) -> None:
        """Nothing to prepare: the lookup reads the tokens themselves."""

    def propose(self, tokens: torch.Tensor, n: int, gamma: int) -> int:
        """Write up to ``gamma`` guesses into tokens[:, n:n+gamma]; return how many."""
        seq = tokens[0, :n].tolist()
        for size in range(min(self.max_ngram, n - 1), 0, -1):
            suffix = seq[n - size:]
            for start in range(n - size - 1, -1, -1):  # latest match first
                if seq[start:start + size] == suffix:
                    for i in range(gamma):  # copy what followed; may run into its own copy (a loop)
                        seq.append(seq[start + size + i])
                    tokens[0, n:n + gamma] = torch.tensor(seq[n:], dtype=tokens.dtype)
                    return gamma
        return 0

    def keep(self, n_valid: int) -> None:
        """Nothing cached, nothing to roll back."""


# ----------------------------------------------------------------------------- generation
def _as_drafter(draft, target: ToyGPT):
    """A ToyGPT becomes a ModelDrafter (after checks); a drafter object is used as it is."""
    if not isinstance(draft, ToyGPT):
        if not all(callable(getattr(draft, name, None)) for name in ("prefill", "propose", "keep")):
            raise ValueError(f"draft={type(draft).__name__} must be a ToyGPT or a drafter with "
                             f"prefill(), propose() and keep() (e.g. PromptLookupDrafter)")
        return draft
    if target.config.vocab_size != draft.config.vocab_size:
        raise ValueError(f"the draft's vocab_size={draft.config.vocab_size} differs from the target's "
                         f"{target.config.vocab_size}: their tokens must mean the same thing")
    if draft.device != target.device:
        raise ValueError(f"the draft is on {draft.device} but the target is on {target.device}")
    return ModelDrafter(draft)


def _check_inputs(target: ToyGPT, draft, prompt, max_new_tokens, gamma) -> None:
    for name, value in (("max_new_tokens", max_new_tokens), ("gamma", gamma)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a whole number >= 1")
    if not isinstance(prompt, torch.Tensor) or prompt.dim() != 2 or prompt.dtype != torch.long:
        raise ValueError("prompt must be a 2-D torch.long tensor of token ids (1, length)")
    if prompt.shape[0] != 1 or prompt.shape[1] < 1:
        raise ValueError(f"prompt has shape {tuple(prompt.shape)}; speculative decoding here runs "
                         f"one sequence of at least one token: shape (1, length)")
    if prompt.device != target.device:
        raise ValueError(f"prompt is on {prompt.device} but the target is on {target.device}")
    for model in (target, draft):
        if isinstance(model, ToyGPT):
            model.check_fits(1, prompt.shape[1] + max_new_tokens)


def _accepted_prefix(choice: torch.Tensor, proposal: torch.Tensor) -> int:
    """Length of the longest prefix where the target's choice (1, g) equals the proposal (1, g)."""
    return int((choice == proposal).int().cumprod(dim=-1).sum())


@torch.inference_mode()
def speculative_generate(target: ToyGPT, draft, prompt: torch.Tensor, max_new_tokens: int,
                         gamma: int) -> tuple[torch.Tensor, SpeculativeStats]:
    """Greedy speculative decoding of one sequence: the prompt (1, T) followed by
    ``max_new_tokens`` new tokens, (1, T + max_new_tokens), identical to
    ``generate(target, prompt, max_new_tokens)``; and a :class:`SpeculativeStats`.

    ``draft`` is a ToyGPT with the target's vocabulary (see ``make_draft``,
    ``make_layer_skip_draft``, ``make_quantized_draft``) or a drafter such as
    :class:`PromptLookupDrafter`. Each round the draft proposes ``gamma`` tokens (fewer near
    the end, so that exactly ``max_new_tokens`` come out and no pass writes beyond the cache),
    the target verifies them in one pass and the round yields accepted + 1 tokens.
    ValueError for gamma < 1, models of different vocabularies or devices, a batch other than
    1, or a prompt + new tokens longer than either model's max_seq_len.
    """
    _check_inputs(target, draft, prompt, max_new_tokens, gamma)
    drafter = _as_drafter(draft, target)
    wall_start = time.perf_counter()
    prefill_watch, target_watch, draft_watch = (_Stopwatch(target.device) for _ in range(3))
    T = prompt.shape[1]
    end = T + max_new_tokens
    tokens = torch.empty((1, end), dtype=torch.long, device=prompt.device)
    tokens[:, :T] = prompt
    if T > 1:  # the caches take all but the last prompt token, which round 1 feeds
        with prefill_watch:
            target(prompt[:, :-1], start_pos=0)
            drafter.prefill(prompt[:, :-1])
    n = T  # tokens known; the target's cache holds positions [0, n - 1)
    accepted_per_round, rejections, proposed = [], 0, 0
    while n < end:
        with draft_watch:  # the round makes at most g + 1 tokens: never overshoot
            g = drafter.propose(tokens, n, min(gamma, end - n - 1))
        with target_watch:
            logits = target(tokens[:, n - 1:n + g], start_pos=n - 1)  # (1, g + 1, vocab)
            choice = logits.argmax(dim=-1)  # (1, g + 1): the target's token for positions n .. n+g
        k = _accepted_prefix(choice[:, :g], tokens[:, n:n + g])
        tokens[:, n + k] = choice[:, k]  # the correction, or the bonus token if all g were kept
        drafter.keep(n + k)  # guesses past the first wrong one are stale
        proposed, rejections = proposed + g, rejections + (k < g)
        accepted_per_round.append(k)
        n += k + 1
    stats = SpeculativeStats(
        rounds=len(accepted_per_round), proposed=proposed, accepted=sum(accepted_per_round),
        accepted_per_round=tuple(accepted_per_round), rejections=rejections, new_tokens=max_new_tokens,
        prefill_time_s=prefill_watch.total, draft_time_s=draft_watch.total,
        target_time_s=target_watch.total, wall_time_s=time.perf_counter() - wall_start)
    return tokens, stats


# ----------------------------------------------------------------------------- drafts
@torch.no_grad()
def make_draft(target: ToyGPT, noise: float, seed: int = 0) -> ToyGPT:
    """A copy of the target with Gaussian noise on every weight: W + noise · rms(W) · N(0, 1).

    ``noise`` is relative to each tensor's root-mean-square, so 0 is an exact copy (every guess
    accepted) and larger values agree with the target less often. The copy is as big and as
    slow as the target (cost ratio c ≈ 1): good for dialling the acceptance rate, never for
    speed. Its KV cache is its own.
    """
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise={noise!r} must be a finite number >= 0 (relative to each weight's rms)")
    draft = copy.deepcopy(target)
    generator = torch.Generator(device=draft.device).manual_seed(seed)
    for param in draft.parameters():
        rms = param.float().pow(2).mean().sqrt()
        jitter = torch.randn(param.shape, generator=generator, device=param.device, dtype=param.dtype)
        param.add_(jitter * (noise * rms).to(param.dtype))
    return draft


def _share_weights(target: ToyGPT) -> ToyGPT:
    """A copy of the target that shares every weight tensor with it (no extra memory); only
    the KV caches (buffers) are the copy's own."""
    return copy.deepcopy(target, memo={id(p): p for p in target.parameters()})


def make_layer_skip_draft(target: ToyGPT, n_layers: int) -> ToyGPT:
    """A draft made of the target's first ``n_layers`` blocks, then its final norm and LM head
    ("layer-skip" self-speculation). The weight tensors are the target's own (no copy); only
    the KV cache is the draft's. Its step streams about n_layers / L of the layers' bytes plus
    the whole LM head, so it is genuinely cheaper. (In a trained model the early layers already
    point towards the answer; in the toy's random network every layer rewrites the residual
    stream, so expect a low acceptance rate: measure it.)
    """
    total = target.config.n_layers
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or not 1 <= n_layers <= total:
        raise ValueError(f"n_layers={n_layers!r} must be a whole number from 1 to the target's n_layers={total}")
    draft = _share_weights(target)
    del draft.layers[n_layers:]
    draft.config = replace(target.config, n_layers=n_layers)
    return draft


class Int8Linear(nn.Module):
    """Weight-only int8 linear layer: W ≈ q · s with q an int8 matrix (out, in) and one scale s
    per output row (symmetric, s = max|W_row| / 127). A quarter of the bytes of fp32.

    On the CPU it runs ``torch._weight_int8pack_mm`` with bf16 activations (a fused kernel that
    reads the int8 weights directly); elsewhere it converts the weights to the activations'
    dtype on the fly (correct, but it saves no bandwidth).
    """

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight = linear.weight.detach().float()  # (out, in)
        scale = weight.abs().amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny) / 127  # (out,)
        self.register_buffer("qweight", torch.round(weight / scale[:, None]).to(torch.int8))
        self.register_buffer("scale", scale)
        self.fused = linear.weight.device.type == "cpu" and hasattr(torch, "_weight_int8pack_mm")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fused:
            return F.linear(x, self.qweight.to(x.dtype)) * self.scale.to(x.dtype)
        rows = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)  # (B*T, in)
        y = torch._weight_int8pack_mm(rows, self.qweight, self.scale.to(torch.bfloat16))  # (B*T, out)
        return y.view(*x.shape[:-1], -1).to(x.dtype)  # (B, T, out)


def make_quantized_draft(target: ToyGPT) -> ToyGPT:
    """A draft that is the target with every block's matrices (QKV, output projection, MLP
    up and down) quantised to int8, weight-only, per output row: the same function with a
    little rounding noise, from a quarter of the layers' bytes. The embedding, norms and LM
    head are the target's own tensors, unquantised (quantisation schemes such as GPTQ and AWQ
    usually leave the LM head in 16 bits too). Faithful, and as much cheaper as this machine's
    int8 matmul allows: a bandwidth-bound kernel would make c ≈ 1/4 (plus the LM head).
    """
    draft = _share_weights(target)
    with torch.no_grad():
        for layer in draft.layers:
            layer.attention.wqkv = Int8Linear(layer.attention.wqkv)
            layer.attention.wo = Int8Linear(layer.attention.wo)
            layer.w_up, layer.w_down = Int8Linear(layer.w_up), Int8Linear(layer.w_down)
    return draft


# ----------------------------------------------------------------------------- measuring
def step_time(model: ToyGPT, pos: int, n_tokens: int = 1, repeats: int = 5) -> float:
    """Median seconds of one forward pass over ``n_tokens`` tokens at positions [pos, pos +
    n_tokens) with the cache filled before them (it writes K and V there)."""
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, model.config.vocab_size, (1, n_tokens), generator=generator).to(model.device)
    with torch.inference_mode():
        return time_fn(lambda: model(tokens, start_pos=pos), model.device, warmup=1, repeats=repeats).median_s


def predicted_speedup(alpha: float, gamma: int, cost_ratio: float, verify_ratio: float = 1.0) -> float:
    r"""Expected wall-time speed-up, :math:`\frac{1-\alpha^{\gamma+1}}{1-\alpha} / (\gamma c + v)`.

    ``verify_ratio`` v is the cost of the target's (gamma + 1)-token pass relative to one decode
    step: 1 in the textbook formula (``perf.speculative_speedup``), more once the pass stops
    being purely memory-bound. alpha = 1 (a perfect draft) gives gamma + 1 tokens per step.
    """
    if isinstance(verify_ratio, bool) or not isinstance(verify_ratio, (int, float)) or not 0 < verify_ratio < math.inf:
        raise ValueError(f"verify_ratio={verify_ratio!r} must be a number greater than zero")
    alpha = 1.0 - 1e-12 if alpha == 1 else alpha  # perf rejects alpha = 1 itself; the limit is gamma + 1 tokens
    textbook = perf.speculative_speedup(alpha, gamma, cost_ratio)  # checks alpha, gamma and c
    return textbook * (gamma * cost_ratio + 1.0) / (gamma * cost_ratio + verify_ratio)


def _timed_generate(target: ToyGPT, prompt: torch.Tensor, max_new_tokens: int) -> tuple[torch.Tensor, float]:
    devices.synchronize(target.device)
    start = time.perf_counter()
    out = generate(target, prompt, max_new_tokens)
    devices.synchronize(target.device)
    return out, time.perf_counter() - start


def _demo_drafts(target: ToyGPT, noises, skip_layers, quantized: bool, lookup: bool, seed: int):
    """(description, builder) pairs; each builder makes its draft only when called."""
    layers = target.config.n_layers
    drafts = [({"draft": "noisy copy", "noise": float(x), "layers": layers},
               lambda x=x: make_draft(target, x, seed)) for x in noises]
    drafts += [({"draft": "layer skip", "noise": 0.0, "layers": k},
                lambda k=k: make_layer_skip_draft(target, k)) for k in skip_layers]
    if quantized:
        drafts.append(({"draft": "int8 copy", "noise": 0.0, "layers": layers},
                       lambda: make_quantized_draft(target)))
    if lookup:
        drafts.append(({"draft": "prompt lookup", "noise": 0.0, "layers": 0}, PromptLookupDrafter))
    return drafts


def run_speculative_demo(target_preset="cpu-l", gamma: int = 2, noises=(0.0, 0.05), skip_layers=(1,),
                         quantized: bool = True, lookup: bool = True, max_new_tokens: int = 40,
                         prompt_len: int = 16, device=None, seed: int = 0, threads: int | None = 1,
                         progress: bool = True) -> list[dict]:
    """Speculative decoding on this machine with a few drafts; one plain dict per draft.

    ``gamma`` is 2 by default because on a small x86 CPU (fp32, one thread) the target's pass
    over 3 tokens costs about one decode step while a pass over 4-5 costs about two: measure
    ``verify_ratio`` for other gammas before choosing.

    Builds the target (a preset name or a ToyConfig, fp32) and, for each draft (noisy copies
    for ``noises``, layer-skip drafts for ``skip_layers``, an int8 copy if ``quantized``, a
    prompt-lookup drafter if ``lookup``), times target-only greedy ``generate`` and then
    :func:`speculative_generate` right after it, the same way (whole call, prefill included;
    adjacent runs, so a busy machine hurts both alike).

    Each record holds: draft, noise, layers, gamma; acceptance_rate (accepted / proposed) and
    alpha (per-token); tokens_per_step; cost_ratio c (the draft's time per proposed token /
    the target's decode step, a median of 5); verify_ratio v (the target's pass over gamma + 1
    tokens / one decode step); measured_speedup (target-only time / speculative time);
    predicted_speedup (``perf.speculative_speedup(alpha, gamma, c)``, which assumes v = 1)
    and predicted_speedup_v (with the measured v); identical (same tokens as target-only); the
    times in seconds and the torch thread count. Single runs: expect ±10 % noise.

    ``seed`` seeds the weights and the prompt. How often the prompt-lookup draft is right
    depends on how soon the text starts repeating itself, which changes from seed to seed:
    try several. ``threads``: torch CPU threads during the demo (restored afterwards; None
    keeps the current setting). One thread by default: on a small, shared machine (Binder, 2
    cores) a second thread makes single timings swing by 2x and more.
    """
    config = get_config(target_preset)
    with _torch_threads(threads):
        target = build_model(config, device=device, seed=seed)
        prompt = torch.randint(0, config.vocab_size, (1, prompt_len),
                               generator=torch.Generator().manual_seed(seed)).to(target.device)
        generate(target, prompt, 2)  # warm-up
        target_step = step_time(target, prompt_len)
        verify_ratio = step_time(target, prompt_len, gamma + 1) / target_step
        records = []
        for description, build in tqdm(_demo_drafts(target, noises, skip_layers, quantized, lookup, seed),
                                       disable=not progress, desc="drafts", unit="draft"):
            draft = build()
            reference, baseline_s = _timed_generate(target, prompt, max_new_tokens)
            tokens, stats = speculative_generate(target, draft, prompt, max_new_tokens, gamma)
            del draft
            records.append({
                **description, **_rates(stats, gamma, target_step, verify_ratio),
                "measured_speedup": baseline_s / stats.wall_time_s,
                "identical": bool(torch.equal(tokens, reference)), "baseline_s": baseline_s,
                "speculative_s": stats.wall_time_s, "draft_s": stats.draft_time_s,
                "target_s": stats.target_time_s, "target_step_s": target_step, "rounds": stats.rounds,
                "max_new_tokens": max_new_tokens, "threads": torch.get_num_threads(),
                "preset": target_preset if isinstance(target_preset, str) else "custom",
            })
    return records


def _rates(stats: SpeculativeStats, gamma: int, target_step: float, verify_ratio: float) -> dict:
    """A run's acceptance, tokens per step, cost ratio c = draft time per proposed token /
    target step, and the two predicted speed-ups (v = 1 and the measured v)."""
    if stats.proposed:
        cost_ratio = stats.draft_time_s / stats.proposed / target_step
        predicted = [predicted_speedup(stats.alpha, gamma, cost_ratio, v) for v in (1.0, verify_ratio)]
    else:  # a lookup that never found a match: nothing to predict from
        cost_ratio, predicted = float("nan"), [float("nan")] * 2
    return {"gamma": gamma, "acceptance_rate": stats.acceptance_rate, "alpha": stats.alpha,
            "tokens_per_step": stats.tokens_per_step, "cost_ratio": cost_ratio, "verify_ratio": verify_ratio,
            "predicted_speedup": predicted[0], "predicted_speedup_v": predicted[1]}


@contextmanager
def _torch_threads(threads: int | None):
    """Run the block with ``threads`` torch CPU threads (None: unchanged), then restore."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
