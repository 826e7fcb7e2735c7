"""Tests for course_lib.speculative: output identical to target-only greedy decoding for every
draft, a perfect draft is always accepted, prompt lookup's empty rounds are counted, input
checks, and the demo's records."""

import json
import math
from dataclasses import asdict

import pytest
import torch

from course_lib.model import ToyConfig, build_model, generate
from course_lib.speculative import (
    PromptLookupDrafter,
    make_bf16_draft,
    make_draft,
    run_speculative_demo,
    speculative_generate,
)


@pytest.fixture(scope="module")
def target():
    return build_model("tiny", device="cpu", seed=1)


def random_prompt(length=8, seed=0):
    return torch.randint(0, 256, (1, length), generator=torch.Generator().manual_seed(seed))


DRAFTS = {
    "perfect copy": lambda t: make_draft(t, 0.0),
    "noisy copy": lambda t: make_draft(t, 0.5, seed=2),
    "bf16 copy": make_bf16_draft,
    "prompt lookup": lambda t: PromptLookupDrafter(),
}


@pytest.mark.parametrize("gamma", [1, 3])
@pytest.mark.parametrize("name", list(DRAFTS))
def test_output_is_identical_to_target_only_greedy_decoding(target, name, gamma):
    prompt = random_prompt()
    tokens, stats = speculative_generate(target, DRAFTS[name](target), prompt, 30, gamma)
    assert torch.equal(tokens, generate(target, prompt, 30))
    assert stats.new_tokens == 30 and stats.accepted <= stats.proposed
    assert stats.rounds + stats.accepted == 30  # every round makes its accepted guesses + 1 token


def test_a_perfect_draft_is_always_accepted(target):
    _, stats = speculative_generate(target, make_draft(target, 0.0), random_prompt(), 30, 4)
    assert stats.alpha == 1.0 and stats.rejections == 0
    assert stats.rounds == 6 and stats.tokens_per_step == 5.0  # 30 tokens in rounds of gamma + 1


def test_a_noisy_draft_is_sometimes_rejected(target):
    _, stats = speculative_generate(target, make_draft(target, 2.0, seed=2), random_prompt(), 30, 2)
    assert stats.rejections > 0 and stats.alpha < 1.0


def test_prompt_lookup_counts_the_rounds_without_a_match(target):
    distinct = torch.arange(10).view(1, 10)  # no n-gram repeats: the first round has nothing to propose
    _, stats = speculative_generate(target, PromptLookupDrafter(), distinct, 20, 2)
    assert stats.empty_rounds >= 1
    assert stats.proposed <= 2 * (stats.rounds - stats.empty_rounds)
    drafter, tokens = PromptLookupDrafter(), torch.tensor([[5, 6, 7, 9, 5, 6, 0, 0]])
    assert drafter.propose(tokens, 6, 2) == 2 and tokens[0, 6:].tolist() == [7, 9]  # copies what followed "5 6"


@pytest.mark.parametrize("gamma", [0, -1, 1.5, True])
def test_bad_gamma_is_a_value_error(target, gamma):
    with pytest.raises(ValueError, match="gamma"):
        speculative_generate(target, PromptLookupDrafter(), random_prompt(), 10, gamma)
    with pytest.raises(ValueError, match="gamma"):
        run_speculative_demo("tiny", gamma=gamma)


def test_bad_inputs_are_value_errors(target):
    with pytest.raises(ValueError, match="preset"):
        run_speculative_demo("no-such-preset")
    other_vocab = build_model(ToyConfig(vocab_size=128, n_layers=1, d_model=64, n_heads=4, max_seq_len=64), "cpu")
    with pytest.raises(ValueError, match="vocab_size"):
        speculative_generate(target, other_vocab, random_prompt(), 8, 2)
    with pytest.raises(ValueError, match="max_seq_len"):
        speculative_generate(target, make_draft(target), random_prompt(), 60, 2)
    with pytest.raises(ValueError, match="noise"):
        make_draft(target, -0.1)
    with pytest.raises(ValueError, match="prompt"):
        speculative_generate(target, make_draft(target), random_prompt().float(), 8, 2)


def test_demo_records(target):
    records = run_speculative_demo("tiny", gamma=2, noises=(0.0,), max_new_tokens=12, seed=1, rounds=1)
    assert [r.draft for r in records] == ["noisy copy", "bf16 copy", "prompt lookup"]
    assert all(r.identical for r in records)
    perfect = records[0]
    assert perfect.alpha == 1.0 and perfect.tokens_per_step == 3.0  # 12 tokens in rounds of 3
    assert perfect.cost_ratio > 0 and math.isfinite(perfect.predicted_speedup)
    json.loads(json.dumps([asdict(r) for r in records]))
