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

    a ToyGPT (ModelDrafter)   a smaller model with the target's vocabulary, e.g. "trained-draft"
                              for "trained": guesses from what it learned, at a cost c per guess
    PromptLookupDrafter()     no model, c ≈ 0: copy what followed an earlier occurrence of the
                              latest n-gram; without a match a round is a plain decode step

References: Leviathan, Kalman & Matias, "Fast Inference from Transformers via Speculative
Decoding" (ICML 2023); A. Saxena, "Prompt Lookup Decoding" (2023); gpt-fast's ``speculative_decode``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F

from . import perf
from .machine import time_interleaved
from .model import ToyGPT, build_model, decode_one_token, encode, generate
from .perf import check_count


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


# ----------------------------------------------------------------------------- generation
@dataclass
class SpeculativeStats:
    """What one speculative generation did."""

    new_tokens: int
    rounds: int = 0        # verification passes of the target
    proposed: int = 0      # draft tokens offered
    accepted: int = 0      # draft tokens kept
    rejections: int = 0    # rounds that stopped at a wrong guess
    empty_rounds: int = 0  # rounds in which the draft proposed nothing (prompt lookup without a match)
    kept_all: int = 0      # rounds that proposed and kept every guess

    @property
    def alpha(self) -> float:
        """Per-token acceptance, Leviathan et al.'s alpha: kept guesses / guesses judged (the
        kept ones plus one wrong one per rejection). NaN if nothing was proposed."""
        judged = self.accepted + self.rejections
        return self.accepted / judged if judged else float("nan")

    @property
    def tokens_per_pass(self) -> float:
        """Tokens generated per verification pass of the target."""
        return self.new_tokens / self.rounds


@torch.inference_mode()
def speculative_generate(target: ToyGPT, draft, prompt: torch.Tensor, max_new_tokens: int,
                         gamma: int) -> tuple[torch.Tensor, SpeculativeStats]:
    """Greedy speculative decoding of one sequence: prompt (1, T) + ``max_new_tokens`` tokens,
    identical to ``generate(target, prompt, max_new_tokens)``, and a :class:`SpeculativeStats`.

    ``draft``: a ToyGPT with the target's vocabulary (e.g. "trained-draft" for "trained") or a
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
    n, stats = T, SpeculativeStats(max_new_tokens)  # n: tokens known
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
        stats.kept_all += 0 < g == k
        stats.empty_rounds += g == 0 and n + 1 < end  # (the last round may have no room to propose)
        n += k + 1
    return tokens, stats


# ----------------------------------------------------------------------------- measuring
@dataclass
class DraftResult:
    """One draft in :func:`run_speculative_demo`. Times are medians of interleaved rounds; the
    speed-up is the median of the per-round ratios (target alone / speculative)."""

    draft: str                # "trained-draft" (a model) or "prompt lookup"
    gamma: int
    stats: SpeculativeStats   # alpha, tokens per pass, empty rounds, ...
    cost_ratio: float         # c: the draft's time per guess / one target decode step
    bytes_ratio: float        # the draft model's weight bytes per step / the target's (0: no model)
    verify_ratio: float       # v: the target's pass over gamma + 1 tokens / one decode step
    speedup: float            # measured: target-only generate / speculative_generate, whole calls (median round)
    speedup_quartiles: tuple  # (25th, 75th percentile) of the per-round ratios: the noise
    identical: bool           # the same tokens as target-only greedy decoding

    @property
    def expected_tokens(self) -> float:
        """perf's tokens per pass for the measured alpha (NaN if nothing was proposed)."""
        return self._formula(perf.speculative_expected_tokens)

    @property
    def predicted_speedup(self) -> float:
        """perf's speed-up for the measured alpha and c: expected tokens / (gamma c + 1)."""
        return self._formula(perf.speculative_speedup, self.cost_ratio)

    def _formula(self, formula, *args) -> float:  # perf needs alpha < 1; at 1 the formulas tend to their limits
        return formula(min(self.stats.alpha, 1 - 1e-9), self.gamma, *args) if self.stats.proposed else float("nan")

    @property
    def round_cost(self) -> float:
        """What one round cost, in target decode steps: guesses made per round × c, plus v for a pass over the
        guesses, or 1 for a round that proposed nothing (its pass checks one token: a decode step)."""
        st = self.stats
        return st.proposed / st.rounds * self.cost_ratio + ((st.rounds - st.empty_rounds) * self.verify_ratio
                                                            + st.empty_rounds) / st.rounds

    @property
    def modeled_speedup(self) -> float:
        """Measured tokens per pass / measured round cost."""
        return self.stats.tokens_per_pass / self.round_cost


def explain(r: DraftResult) -> str:
    """Where this draft's measured speed-up parts from the formula, in sentences computed from its numbers."""
    st, e, (low, high) = r.stats, r.expected_tokens, r.speedup_quartiles
    if not st.proposed:
        return f"**{r.draft}** proposed nothing: every round was a plain decode step."
    text = (f"**{r.draft}**: from α = {st.alpha:.2f} and γ = {r.gamma} the formula expects {e:.2f} tokens per pass; "
            f"this run made {st.tokens_per_pass:.2f}.")
    full = st.rounds - st.empty_rounds
    if st.empty_rounds:
        e = (full * e + st.empty_rounds) / st.rounds
        text += (f" In {st.empty_rounds} of {st.rounds} rounds it found no earlier match and proposed nothing: those"
                 f" passes made 1 token each, and counting them the formula gives {e:.2f}.")
    kept, independent = st.kept_all / full, st.alpha ** r.gamma  # independent guesses: alpha**gamma of rounds keep all
    if abs(st.tokens_per_pass / e - 1) > 0.05 and abs(kept - independent) > 0.05:
        text += (f" {kept:.0%} of the rounds that proposed kept all their guesses; independent guesses (the formula's"
                 f" assumption) would give {independent:.0%}: here right guesses came"
                 f" {'in runs' if kept > independent else 'more scattered'}.")
    text += (f" A round cost {st.proposed / st.rounds:.2f} guesses at c = {r.cost_ratio:.2f} each, plus a verification"
             f" pass of v = {r.verify_ratio:.2f} decode steps (the formula counts 1"
             + ("; 1 where nothing was proposed" if st.empty_rounds else "") + f"): {r.round_cost:.2f} steps for"
             f" {st.tokens_per_pass:.2f} tokens, {r.modeled_speedup:.2f}× (the formula: {r.predicted_speedup:.2f}×).")
    if r.bytes_ratio and r.cost_ratio > 1.5 * r.bytes_ratio:
        text += (f" The draft reads {r.bytes_ratio:.0%} of the target's weight bytes per step, yet a guess cost"
                 f" {r.cost_ratio:.0%} of a target step: at this size, time does not follow bytes (the fixed cost of"
                 " each small operation counts, as in notebook 01's gap budget).")
    text += f" Measured: {r.speedup:.2f}× (middle half of the rounds: {low:.2f}–{high:.2f}×)."
    extra = r.modeled_speedup / r.speedup - 1  # the whole run's time beyond its parts
    if high - low > 0.3 * r.speedup:
        text += " The machine was busy during the run: read the measurement loosely."
    elif extra > 0.1:
        text += (f" The run took {extra:.0%} longer than its parts: time not in c or v, such as each round's"
                 " bookkeeping (comparing guesses, reading how many were kept).")
    elif extra < -0.1:
        text += f" The run took {-extra:.0%} less than its parts, which were timed apart from it, near the end of the text."
    if low > 1:
        return text + " A real speed-up."
    if high < 1:
        return text + (f" A slow-down: a round cost more target steps ({r.round_cost:.2f}) than it made tokens."
                       if r.round_cost > st.tokens_per_pass else " A slow-down, made by the time outside c and v.")
    return text + " No clear difference from plain decoding: the middle half of the rounds straddles 1×."


@torch.inference_mode()
def run_speculative_demo(prompt: str = "Why is LLM inference so slow?", gamma: int = 3, max_new_tokens: int = 100,
                         target="trained", draft="trained-draft", device=None, rounds: int = 5,
                         repeats: int = 8) -> list[DraftResult]:
    """The trained toy decoding ``prompt`` alone and with two drafts, its draft model and prompt lookup.
    Timed in the same alternating rounds (``machine.time_interleaved``): target-only ``generate`` (a
    decode step: its time / max_new_tokens), :func:`speculative_generate` with each draft, and near the
    end of the text ``repeats`` in a row (one call of a millisecond is at the mercy of a busy machine)
    of the target's pass over gamma + 1 tokens (v = pass / step) and of a draft round of gamma guesses
    (c = round / gamma / step); those reuse the KV caches as they are: values do not change times."""
    gamma, repeats = check_count("gamma", gamma), check_count("repeats", repeats)
    target = build_model(target, device=device)
    tokens = encode(prompt, target.device)
    expected = generate(target, tokens, max_new_tokens)
    drafts = {draft: build_model(draft, device=target.device), "prompt lookup": PromptLookupDrafter()}
    g = min(gamma, max_new_tokens)
    n = expected.shape[1] - g  # guesses for the last g slots: the verification pass ends at the last one
    guesses, outputs = expected.clone(), {}

    def speculate(name):
        outputs[name] = speculative_generate(target, drafts[name], tokens, max_new_tokens, gamma)

    def draft_rounds(drafter):
        for _ in range(repeats):
            drafter.keep(n - 1)  # (a model: feed one token, then guess g)
            drafter.propose(guesses, n, g)

    fns = {"target alone": lambda: generate(target, tokens, max_new_tokens),
           "verify": lambda: [target(expected[:, n - 1:n + g], start_pos=n - 1) for _ in range(repeats)]}
    for name, d in drafts.items():
        fns[name] = partial(speculate, name)
        fns[f"{name} round"] = partial(draft_rounds, ModelDrafter(d) if isinstance(d, ToyGPT) else d)
    times = time_interleaved(fns, target.device, rounds=rounds, warmup=1)
    alone = times["target alone"]
    step = alone.median / max_new_tokens
    results = []
    for name in drafts:
        ratios = torch.tensor(alone.times, dtype=torch.float64) / torch.tensor(times[name].times)  # round by round
        low, mid, high = ratios.quantile(torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)).tolist()
        (out, stats), d = outputs[name], drafts[name]
        results.append(DraftResult(
            draft=name, gamma=gamma, stats=stats, cost_ratio=times[f"{name} round"].median / repeats / g / step,
            bytes_ratio=d.config.weight_bytes() / target.config.weight_bytes() if isinstance(d, ToyGPT) else 0.0,
            verify_ratio=times["verify"].median / repeats / step, speedup=mid, speedup_quartiles=(low, high),
            identical=bool(torch.equal(out, expected))))
    return results
