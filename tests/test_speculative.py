"""Tests for course_lib.speculative: output identical to target-only greedy decoding for every
kind of draft and several gammas, acceptance accounting, drafts (noise, layer skip, int8,
prompt lookup), prediction formula, input checks, and the demo's records."""

import math

import pytest
import torch

from course_lib import perf
from course_lib.generate import generate
from course_lib.model import ToyConfig, build_model
from course_lib.speculative import (
    PromptLookupDrafter,
    make_draft,
    make_layer_skip_draft,
    make_quantized_draft,
    predicted_speedup,
    run_speculative_demo,
    speculative_generate,
)

CONFIG = ToyConfig(vocab_size=256, n_layers=3, d_model=64, n_heads=4, n_kv_heads=2, max_seq_len=96)
NEW = 40


@pytest.fixture(scope="module")
def target():
    return build_model(CONFIG, device="cpu")


def prompt(length=7, seed=1):
    return torch.randint(0, CONFIG.vocab_size, (1, length), generator=torch.Generator().manual_seed(seed))


DRAFTS = {
    "copy": lambda t: make_draft(t, 0.0),
    "small noise": lambda t: make_draft(t, 0.03, seed=1),
    "large noise": lambda t: make_draft(t, 1.0, seed=2),
    "layer skip": lambda t: make_layer_skip_draft(t, 1),
    "int8": make_quantized_draft,
    "prompt lookup": lambda t: PromptLookupDrafter(),
}


@pytest.mark.parametrize("gamma", [1, 3, 5])
@pytest.mark.parametrize("kind", list(DRAFTS))
def test_output_is_target_only_greedy_output(target, kind, gamma):
    draft = DRAFTS[kind](target)
    for length in (1, 7):
        expected = generate(target, prompt(length), NEW)
        tokens, stats = speculative_generate(target, draft, prompt(length), NEW, gamma)
        assert torch.equal(tokens, expected), (kind, gamma, length)
        check_accounting(stats, gamma)


def check_accounting(stats, gamma):
    assert stats.new_tokens == NEW == sum(k + 1 for k in stats.accepted_per_round)
    assert stats.rounds == len(stats.accepted_per_round)
    assert stats.accepted == sum(stats.accepted_per_round) <= stats.proposed <= gamma * stats.rounds
    assert all(0 <= k <= gamma for k in stats.accepted_per_round)
    assert stats.rejections <= stats.rounds
    assert stats.tokens_per_step == pytest.approx(NEW / stats.rounds)
    assert min(stats.draft_time_s, stats.target_time_s, stats.prefill_time_s) >= 0
    assert stats.wall_time_s >= stats.draft_time_s + stats.target_time_s


@pytest.mark.parametrize("gamma", [1, 2, 4, 6])
def test_a_perfect_draft_is_always_accepted(target, gamma):
    _, stats = speculative_generate(target, make_draft(target, 0.0), prompt(), NEW, gamma)
    assert stats.acceptance_rate == 1.0 and stats.alpha == 1.0 and stats.rejections == 0
    *full, last = stats.accepted_per_round
    assert all(k == gamma for k in full)  # gamma + 1 tokens per step ...
    assert last <= gamma  # ... except where the end cuts the last round short
    assert stats.rounds == math.ceil(NEW / (gamma + 1))


def test_noise_lowers_acceptance(target):
    rates = [speculative_generate(target, make_draft(target, noise, seed=0), prompt(), NEW, 4)[1].alpha
             for noise in (0.0, 0.03, 1.0)]
    assert rates[0] == 1.0 > rates[1] > rates[2]


def test_acceptance_rate_and_alpha(target):
    _, stats = speculative_generate(target, make_draft(target, 0.05), prompt(), NEW, 4)
    assert stats.acceptance_rate == pytest.approx(stats.accepted / stats.proposed)
    assert stats.alpha == pytest.approx(stats.accepted / (stats.accepted + stats.rejections))
    assert stats.acceptance_rate <= stats.alpha  # guesses after a miss count as proposed, not judged
    assert stats.as_dict()["alpha"] == stats.alpha


def test_layer_skip_draft_shares_weights_but_not_the_cache(target):
    draft = make_layer_skip_draft(target, 2)
    assert len(draft.layers) == 2 and draft.config.n_layers == 2
    assert draft.lm_head.weight is target.lm_head.weight
    assert draft.layers[1].w_up.weight is target.layers[1].w_up.weight
    assert draft.layers[0].attention.cache.k_cache is not target.layers[0].attention.cache.k_cache
    assert len(target.layers) == CONFIG.n_layers
    with pytest.raises(ValueError, match="n_layers"):
        make_layer_skip_draft(target, 0)
    with pytest.raises(ValueError, match="n_layers"):
        make_layer_skip_draft(target, CONFIG.n_layers + 1)


def test_noisy_draft_is_a_separate_copy(target):
    before = target.lm_head.weight.clone()
    draft = make_draft(target, 0.5)
    assert torch.equal(target.lm_head.weight, before)
    assert not torch.equal(draft.lm_head.weight, before)
    assert torch.equal(make_draft(target, 0.0).lm_head.weight, before)
    with pytest.raises(ValueError, match="noise"):
        make_draft(target, -0.1)


def test_int8_draft_is_close_and_small(target):
    draft = make_quantized_draft(target)
    layer, original = draft.layers[0].w_up, target.layers[0].w_up.weight
    assert layer.qweight.dtype == torch.int8
    dequantised = layer.qweight.float() * layer.scale[:, None]
    assert (dequantised - original).abs().max() <= layer.scale.max() / 2 + 1e-7  # rounding error only
    x = torch.randn(1, 3, CONFIG.d_model)
    assert torch.allclose(layer(x), x @ original.T, atol=0.05)


def test_prompt_lookup_copies_what_followed_the_last_match():
    tokens = torch.tensor([[5, 6, 7, 8, 5, 6, 0, 0, 0]])
    assert PromptLookupDrafter().propose(tokens, 6, 3) == 3
    assert tokens[0, 6:].tolist() == [7, 8, 5]
    loop = torch.tensor([[9, 4, 4, 0, 0, 0]])  # a run of 4s continues as 4s
    assert PromptLookupDrafter().propose(loop, 3, 3) == 3 and loop[0, 3:].tolist() == [4, 4, 4]
    assert PromptLookupDrafter().propose(torch.tensor([[1, 2, 3, 0]]), 3, 1) == 0  # no match
    with pytest.raises(ValueError, match="max_ngram"):
        PromptLookupDrafter(0)


def test_predicted_speedup_matches_perf():
    assert predicted_speedup(0.8, 4, 0.1) == pytest.approx(perf.speculative_speedup(0.8, 4, 0.1))
    assert predicted_speedup(1.0, 4, 0.0) == pytest.approx(5.0)  # a perfect free draft: gamma + 1
    assert predicted_speedup(0.8, 4, 0.1, verify_ratio=2.0) == pytest.approx(3.3616 / 2.4)


@pytest.mark.parametrize("gamma", [0, -1, 1.5, True])
def test_gamma_must_be_a_positive_whole_number(target, gamma):
    with pytest.raises(ValueError, match="gamma"):
        speculative_generate(target, make_layer_skip_draft(target, 1), prompt(), 8, gamma)


def test_input_checks(target):
    draft = make_layer_skip_draft(target, 1)
    other_vocab = build_model(ToyConfig(vocab_size=128, n_layers=1, d_model=64, n_heads=4, max_seq_len=96),
                              device="cpu")
    with pytest.raises(ValueError, match="vocab_size"):
        speculative_generate(target, other_vocab, prompt(), 8, 2)
    with pytest.raises(ValueError, match="max_seq_len"):
        speculative_generate(target, draft, prompt(90), 8, 2)
    short = build_model(ToyConfig(vocab_size=256, n_layers=1, d_model=64, n_heads=4, max_seq_len=16), device="cpu")
    with pytest.raises(ValueError, match="max_seq_len"):
        speculative_generate(target, short, prompt(), 20, 2)  # the draft's cache is too short
    with pytest.raises(ValueError, match="max_new_tokens"):
        speculative_generate(target, draft, prompt(), 0, 2)
    with pytest.raises(ValueError, match="shape"):
        speculative_generate(target, draft, prompt().repeat(2, 1), 8, 2)
    with pytest.raises(ValueError, match="prompt"):
        speculative_generate(target, draft, prompt().float(), 8, 2)
    with pytest.raises(ValueError, match="drafter"):
        speculative_generate(target, object(), prompt(), 8, 2)


def test_demo_records(target):
    threads = torch.get_num_threads()
    records = run_speculative_demo(CONFIG, gamma=3, noises=(0.0, 0.5), skip_layers=(1,), max_new_tokens=16,
                                   prompt_len=5, device="cpu", threads=threads + 1, progress=False)
    assert torch.get_num_threads() == threads  # restored
    assert all(r["threads"] == threads + 1 and r["preset"] == "custom" for r in records)
    assert [r["draft"] for r in records] == ["noisy copy", "noisy copy", "layer skip", "int8 copy", "prompt lookup"]
    assert all(r["identical"] for r in records)
    perfect = records[0]
    assert perfect["alpha"] == 1.0 and perfect["tokens_per_step"] == pytest.approx(16 / 4)
    for r in records:
        assert r["measured_speedup"] > 0 and r["verify_ratio"] > 0
        if math.isnan(r["acceptance_rate"]):  # a lookup that never matched proposes nothing
            assert math.isnan(r["predicted_speedup"]) and math.isnan(r["cost_ratio"])
        else:
            assert r["predicted_speedup"] == pytest.approx(predicted_speedup(r["alpha"], 3, r["cost_ratio"]))
