r"""Speculative decoding with greedy verification, run for real on the toy GPT.

A cheap *draft* guesses the next ``gamma`` tokens; the expensive *target* checks all of them in
ONE forward pass over ``gamma + 1`` positions, which costs about one decode step while that step
is memory-bound (the weights are streamed once whatever the number of tokens). The target keeps
the longest prefix of guesses equal to its own greedy choices and adds one token of its own, so
a round yields 1 to ``gamma + 1`` tokens and the output is exactly what the target alone writes.

One round, with ``n`` tokens known and the target's KV cache filled for positions [0, n-1)::

    draft:   x[n-1] -> d1 -> ... -> d_gamma                (cheap guesses)
    target:  [x[n-1], d1, ..., d_gamma] at positions n-1 .. n-1+gamma, one pass
             argmax t0, t1, ..., t_gamma                   (t_i: the target's token for n+i)
    accept:  k = longest prefix with d_{i+1} == t_i;  append d1..dk, then t_k

The static KV cache makes rollback free: slots written for rejected guesses are overwritten by a
later pass before anything reads them.

Drafts (any object with ``propose`` and ``keep`` works):

    make_draft(target, noise)   a noisy copy of the target: alpha up to 1, but c ≈ 1, so it loses
    make_bf16_draft(target)     the target in bf16: alpha near 1 from half the bytes; c depends
                                on how fast this machine's bf16 matmul is
    PromptLookupDrafter()       no model, c ≈ 0: copy what followed an earlier occurrence of the
                                latest n-gram; without a match a round is a plain decode step

References: Leviathan, Kalman & Matias, "Fast Inference from Transformers via Speculative
Decoding" (ICML 2023); A. Saxena, "Prompt Lookup Decoding" (2023); gpt-fast's ``speculative_decode``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import perf
from .machine import check_precision, time_interleaved
from .model import ToyGPT, build_model, decode_one_token, generate, get_config
from .perf import check_count, check_non_negative


# ----------------------------------------------------------------------------- drafts
class ModelDrafter:
    """Proposes tokens greedily with a draft ToyGPT on its own KV cache. ``valid`` counts the
    leading cache slots that hold tokens of the accepted sequence; a round first feeds the draft
    the known tokens it lacks: the whole prompt in the first round, then one (or two after a
    round that kept every guess)."""

    def __init__(self, model: ToyGPT):
        self.model, self.valid = model, 0

    def propose(self, tokens: torch.Tensor, n: int, gamma: int) -> int:
        """Write ``gamma`` guesses into tokens[:, n:n+gamma] (the first n are known); return gamma."""
        if gamma == 0:
            return 0
        logits = self.model(tokens[:, self.valid:n], start_pos=self.valid)[:, -1]  # (1, vocab)
        for i in range(gamma):
            tokens[:, n + i] = logits.argmax(dim=-1)
            if i < gamma - 1:
                logits = decode_one_token(self.model, tokens[:, n + i:n + i + 1], n + i)
        self.valid = n + gamma - 1
        return gamma

    def keep(self, n_valid: int) -> None:
        """Only tokens [0, n_valid) are confirmed: later cached guesses are stale."""
        self.valid = min(self.valid, n_valid)


class PromptLookupDrafter:
    """No model: find the latest earlier occurrence of the last ``max_ngram`` (down to 1) tokens
    and propose the tokens that followed it ("prompt lookup decoding", vLLM's n-gram speculator).
    Free to run; right whenever the text repeats itself, as greedy text often does."""

    max_ngram = 3

    def propose(self, tokens: torch.Tensor, n: int, gamma: int) -> int:
        """Write up to ``gamma`` guesses into tokens[:, n:n+gamma]; return how many (0: no match)."""
        seq = tokens[0, :n].tolist()
        for size in range(min(self.max_ngram, n - 1), 0, -1):
            for start in range(n - size - 1, -1, -1):  # latest match first
                if seq[start:start + size] == seq[n - size:]:
                    for i in range(gamma):  # copy what followed; may run into its own copy (a loop)
                        seq.append(seq[start + size + i])
                    tokens[0, n:n + gamma] = torch.tensor(seq[n:], dtype=tokens.dtype)
                    return gamma
        return 0

    def keep(self, n_valid: int) -> None:
        """Nothing cached, nothing to roll back."""


@torch.no_grad()
def make_draft(target: ToyGPT, noise: float = 0.0, seed: int = 0) -> ToyGPT:
    """A copy of the target with its own KV cache and Gaussian noise on every weight,
    W + noise · rms(W) · N(0, 1): 0 is an exact copy (every guess accepted); more noise, fewer."""
    noise = check_non_negative("noise", noise)
    draft = copy.deepcopy(target)
    generator = torch.Generator(device=draft.device).manual_seed(seed)
    for param in draft.parameters():
        rms = param.float().pow(2).mean().sqrt()
        jitter = torch.randn(param.shape, generator=generator, device=param.device, dtype=param.dtype)
        param.add_(jitter * (noise * rms).to(param.dtype))
    return draft


def make_bf16_draft(target: ToyGPT) -> ToyGPT:
    """A bf16 copy of the target (weights and KV cache): the same function up to rounding, from
    half the bytes of fp32. Cheaper only where this machine's bf16 matmul is fast."""
    check_precision(target.device, "bf16")
    return copy.deepcopy(target).to(torch.bfloat16)


# ----------------------------------------------------------------------------- generation
@dataclass
class SpeculativeStats:
    """What one speculative generation did."""

    rounds: int        # verification passes of the target
    proposed: int      # draft tokens offered
    accepted: int      # draft tokens kept
    rejections: int    # rounds that stopped at a wrong guess
    empty_rounds: int  # rounds in which the draft proposed nothing (prompt lookup without a match)
    new_tokens: int

    @property
    def alpha(self) -> float:
        """Per-token acceptance, Leviathan et al.'s alpha: kept guesses / guesses judged (the
        kept ones plus one wrong one per rejection). NaN if nothing was proposed."""
        judged = self.accepted + self.rejections
        return self.accepted / judged if judged else float("nan")

    @property
    def tokens_per_step(self) -> float:
        """Tokens generated per verification pass of the target."""
        return self.new_tokens / self.rounds


@torch.inference_mode()
def speculative_generate(target: ToyGPT, draft, prompt: torch.Tensor, max_new_tokens: int,
                         gamma: int) -> tuple[torch.Tensor, SpeculativeStats]:
    """Greedy speculative decoding of one sequence: prompt (1, T) + ``max_new_tokens`` tokens,
    identical to ``generate(target, prompt, max_new_tokens)``, and a :class:`SpeculativeStats`.

    ``draft``: a ToyGPT with the target's vocabulary (``make_draft``, ``make_bf16_draft``) or a
    drafter such as :class:`PromptLookupDrafter`. Near the end a round proposes fewer than
    ``gamma`` tokens, so that exactly ``max_new_tokens`` come out.
    """
    gamma, max_new_tokens = check_count("gamma", gamma), check_count("max_new_tokens", max_new_tokens)
    if not isinstance(prompt, torch.Tensor) or prompt.dtype != torch.long or prompt.dim() != 2 or prompt.shape[0] != 1:
        raise ValueError("prompt must be a torch.long tensor of shape (1, length)")
    if isinstance(draft, ToyGPT) and draft.config.vocab_size != target.config.vocab_size:
        raise ValueError(f"the draft's vocab_size={draft.config.vocab_size} differs from the target's "
                         f"{target.config.vocab_size}: their tokens must mean the same thing")
    drafter = ModelDrafter(draft) if isinstance(draft, ToyGPT) else draft
    T, end = prompt.shape[1], prompt.shape[1] + max_new_tokens
    target.check_fits(1, end)  # (a draft model checks its own at its first pass)
    tokens = F.pad(prompt, (0, max_new_tokens))  # the prompt, then room for the new tokens
    if T > 1:  # the target's cache takes all but the last prompt token, which round 1 feeds
        target(prompt[:, :-1], start_pos=0)
    n, stats = T, SpeculativeStats(0, 0, 0, 0, 0, max_new_tokens)  # n: tokens known
    while n < end:
        g = drafter.propose(tokens, n, min(gamma, end - n - 1))  # never make more than end - n tokens
        choice = target(tokens[:, n - 1:n + g], start_pos=n - 1).argmax(dim=-1)  # (1, g + 1): tokens n .. n+g
        k = int((choice[:, :g] == tokens[:, n:n + g]).int().cumprod(dim=-1).sum())  # accepted prefix
        tokens[:, n + k] = choice[:, k]  # the correction, or the bonus token if all g were kept
        drafter.keep(n + k)
        stats.rounds += 1
        stats.proposed += g
        stats.accepted += k
        stats.rejections += k < g
        stats.empty_rounds += g == 0 and n + 1 < end  # (the last round may have no room to propose)
        n += k + 1
    return tokens, stats


# ----------------------------------------------------------------------------- measuring
@dataclass
class DraftResult:
    """One draft in :func:`run_speculative_demo`; the ratios are of median times."""

    draft: str                # "noisy copy", "bf16 copy" or "prompt lookup"
    noise: float              # for the noisy copy; 0 otherwise
    gamma: int
    alpha: float              # measured per-token acceptance
    tokens_per_step: float    # measured tokens per verification pass
    empty_rounds: int         # rounds without a proposal (prompt lookup without a match)
    cost_ratio: float         # c: the draft's time per proposed token / the target's decode step
    verify_ratio: float       # v: the target's pass over gamma + 1 tokens / its decode step
    predicted_speedup: float  # perf.speculative_speedup(alpha, gamma, c): assumes v = 1
    measured_speedup: float   # target-only generate / speculative_generate, whole calls
    identical: bool           # same tokens as target-only greedy decoding


@torch.inference_mode()
def _measure_draft(target: ToyGPT, draft, name: str, noise: float, prompt: torch.Tensor, max_new_tokens: int,
                   gamma: int, rounds: int) -> DraftResult:
    """Time, in the same alternating rounds (``machine.time_interleaved``): target-only
    ``generate``, :func:`speculative_generate`, and near the end of the text one target decode
    step, the target's pass over g + 1 tokens (v = pass / step) and a draft round of g guesses
    (c = round / g / step). Those three reuse the KV caches as they are: values do not change times."""
    expected = generate(target, prompt, max_new_tokens)
    drafter = ModelDrafter(draft) if isinstance(draft, ToyGPT) else draft
    g = min(gamma, max_new_tokens)
    n = expected.shape[1] - g  # guesses for the last g slots: the verification pass ends at the last one
    guesses, out = expected.clone(), {}

    def draft_round():
        drafter.keep(n - 1)  # feed one token, guess g
        drafter.propose(guesses, n, g)

    times = time_interleaved({
        "baseline": lambda: generate(target, prompt, max_new_tokens),
        "speculative": lambda: out.update(spec=speculative_generate(target, draft, prompt, max_new_tokens, gamma)),
        "step": lambda: target(expected[:, n - 1:n], start_pos=n - 1),
        "verify": lambda: target(expected[:, n - 1:n + g], start_pos=n - 1),
        "draft": draft_round,
    }, target.device, rounds=rounds, warmup=1)
    tokens, stats = out["spec"]
    step = times["step"].median
    c = times["draft"].median / g / step
    alpha = min(stats.alpha, 1 - 1e-9)  # perf's formula needs alpha < 1; the limit is gamma + 1 tokens
    predicted = perf.speculative_speedup(alpha, gamma, c) if stats.proposed else float("nan")
    return DraftResult(draft=name, noise=noise, gamma=gamma, alpha=stats.alpha, tokens_per_step=stats.tokens_per_step,
                       empty_rounds=stats.empty_rounds, cost_ratio=c, verify_ratio=times["verify"].median / step,
                       predicted_speedup=predicted, measured_speedup=times["baseline"].median / times["speculative"].median,
                       identical=bool(torch.equal(tokens, expected)))


def run_speculative_demo(target_preset="cpu-m", gamma: int = 2, noises=(0.0,), bf16: bool = True,
                         lookup: bool = True, max_new_tokens: int = 40, prompt_len: int = 16, device=None,
                         seed: int = 0, rounds: int = 5) -> list[DraftResult]:
    """One :class:`DraftResult` per draft (a noisy copy per value of ``noises``, a bf16 copy,
    prompt lookup) for the preset in fp32 on a seeded random prompt; how soon greedy text repeats
    (what prompt lookup feeds on) changes with the seed. ``gamma`` is 2 by default: on a small
    CPU a pass over 3 tokens costs about one decode step, over 5 about two (``verify_ratio``)."""
    config = get_config(target_preset)
    gamma = check_count("gamma", gamma)
    target = build_model(config, device=device, seed=seed)
    prompt = torch.randint(0, config.vocab_size, (1, check_count("prompt_len", prompt_len)),
                           generator=torch.Generator().manual_seed(seed)).to(target.device)
    drafts = [("noisy copy", x, lambda x=x: make_draft(target, x, seed)) for x in map(float, noises)]
    drafts += [("bf16 copy", 0.0, lambda: make_bf16_draft(target))] if bf16 else []
    drafts += [("prompt lookup", 0.0, PromptLookupDrafter)] if lookup else []
    return [_measure_draft(target, build(), name, noise, prompt, max_new_tokens, gamma, rounds)
            for name, noise, build in drafts]
