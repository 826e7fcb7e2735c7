"""Tests for course_lib.speculative: output identical to target-only greedy decoding for every
draft, a perfect draft is always accepted, the trained draft guesses far better than an untrained
one, prompt lookup's empty rounds are counted, input checks, the demo's records, and the
explanation's branches (hand-made results and the recorded runs in benchmarks/results/)."""

import copy
import dataclasses
import json
import math
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from course_lib.model import PRESETS, ToyConfig, build_model, encode, generate
from course_lib.speculative import (
    DraftResult,
    PromptLookupDrafter,
    SpeculativeStats,
    explain,
    run_speculative_demo,
    speculative_generate,
)

RESULTS = sorted((Path(__file__).resolve().parents[1] / "benchmarks" / "results").glob("speculative_*.json"))


@pytest.fixture(scope="module")
def target():
    return build_model("tiny", device="cpu", seed=1)


@pytest.fixture(scope="module")
def trained():
    return build_model("trained", device="cpu"), build_model("trained-draft", device="cpu")


def random_prompt(length=8, seed=0):
    return torch.randint(0, 256, (1, length), generator=torch.Generator().manual_seed(seed))


DRAFTS = {
    "perfect copy": copy.deepcopy,
    "another model": lambda t: build_model("tiny", device="cpu", seed=2),
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


@pytest.mark.parametrize("draft", ["trained-draft", "prompt lookup"])
def test_the_trained_pair_writes_what_the_target_alone_writes(trained, draft):
    target, model_draft = trained
    prompt = encode("Why is LLM inference so slow?")
    tokens, stats = speculative_generate(target, model_draft if draft == "trained-draft" else PromptLookupDrafter(),
                                         prompt, 80, 3)
    assert torch.equal(tokens, generate(target, prompt, 80))
    assert stats.rejections > 0 and 0 < stats.alpha < 1  # language: some guesses right, some wrong


def test_the_trained_draft_has_learned_to_guess(trained):
    """Measured on a CPU in fp32: alpha 0.44 for the trained draft (the exact value depends on near-ties,
    so only the gap is tested); an untrained draft of the same shape guesses almost never right."""
    target, model_draft = trained
    untrained = build_model(dataclasses.replace(PRESETS["trained-draft"], max_seq_len=511), device="cpu")
    prompt = encode("Why is LLM inference so slow?")
    learned = speculative_generate(target, model_draft, prompt, 100, 3)[1].alpha
    random_guesses = speculative_generate(target, untrained, prompt, 100, 3)[1].alpha
    assert learned > 0.3 and random_guesses < 0.1


def test_a_perfect_draft_is_always_accepted(target):
    _, stats = speculative_generate(target, copy.deepcopy(target), random_prompt(), 30, 4)
    assert stats.alpha == 1.0 and stats.rejections == 0 and stats.kept_all == 6
    assert stats.rounds == 6 and stats.tokens_per_pass == 5.0  # 30 tokens in rounds of gamma + 1


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
        run_speculative_demo(gamma=gamma)


def test_bad_inputs_are_value_errors(target):
    with pytest.raises(ValueError, match="preset"):
        run_speculative_demo(draft="no-such-preset", max_new_tokens=4, rounds=1)
    with pytest.raises(ValueError, match="non-empty"):
        run_speculative_demo("", rounds=1)
    with pytest.raises(ValueError, match="max_seq_len"):
        run_speculative_demo("x" * 500, max_new_tokens=20, rounds=1)
    other_vocab = build_model(ToyConfig(vocab_size=128, n_layers=1, d_model=64, n_heads=4, max_seq_len=64), "cpu")
    with pytest.raises(ValueError, match="vocab_size"):
        speculative_generate(target, other_vocab, random_prompt(), 8, 2)
    with pytest.raises(ValueError, match="max_seq_len"):
        speculative_generate(target, copy.deepcopy(target), random_prompt(), 60, 2)
    with pytest.raises(ValueError, match="prompt"):
        speculative_generate(target, copy.deepcopy(target), random_prompt().float(), 8, 2)


def test_demo_records():
    records = run_speculative_demo(max_new_tokens=12, rounds=1, repeats=1)
    assert [r.draft for r in records] == ["trained-draft", "prompt lookup"]
    assert all(r.identical and r.gamma == 3 for r in records)
    model, lookup = records
    assert 0 < model.bytes_ratio < 0.3 and lookup.bytes_ratio == 0  # 0.43 M of 1.82 M streamed parameters
    for r in records:
        assert r.cost_ratio > 0 and r.verify_ratio > 0 and r.speedup > 0
        assert r.speedup_quartiles[0] == r.speedup == r.speedup_quartiles[1]  # one round: one ratio
        assert r.stats.new_tokens == 12 and math.isfinite(r.modeled_speedup)
        assert explain(r).startswith(f"**{r.draft}**")
    json.loads(json.dumps([asdict(r) for r in records]))


# ----------------------------------------------------------------------------- the explanation
def result(alpha_counts=(30, 20), rounds=25, empty=0, kept_all=5, c=0.5, v=1.0, speedup=0.8, quartiles=(0.75, 0.85),
           bytes_ratio=0.25, gamma=3, new_tokens=None):
    accepted, rejections = alpha_counts
    stats = SpeculativeStats(new_tokens=new_tokens or rounds + accepted, rounds=rounds, proposed=gamma * (rounds - empty),
                             accepted=accepted, rejections=rejections, empty_rounds=empty, kept_all=kept_all)
    return DraftResult("a draft", gamma, stats, c, bytes_ratio, v, speedup, quartiles, True)


def test_derived_figures_by_hand():
    r = result()  # alpha = 30 / 50 = 0.6, 55 tokens in 25 rounds, 3 guesses a round
    assert r.expected_tokens == pytest.approx((1 - 0.6 ** 4) / 0.4)  # 2.176
    assert r.predicted_speedup == pytest.approx(2.176 / 2.5)
    assert r.round_cost == pytest.approx(3 * 0.5 + 1.0) and r.modeled_speedup == pytest.approx(2.2 / 2.5)


def test_explain_follows_the_numbers():
    text = explain(result())  # 2.20 tokens per pass vs 2.18 expected; modeled 0.88x, measured 0.80x
    assert "α = 0.60" in text and "expects 2.18" in text and "made 2.20" in text and "no earlier match" not in text
    assert "all their guesses" not in text  # within 5 %
    # every guess kept but a shorter last round (10 tokens, gamma 3: 3 + 1, 3 + 1, 1 + 1): kept-all is what alpha says
    short = result(alpha_counts=(7, 0), rounds=3, kept_all=3, new_tokens=10)
    assert short.stats.tokens_per_pass != short.expected_tokens and "all their guesses" not in explain(short)
    assert "more scattered" in explain(result(alpha_counts=(30, 20), rounds=30, kept_all=1))  # 1.83 per pass vs 2.18
    assert "2.50 steps" in text and "0.88×" in text and "took 10% longer" in text
    assert "reads 25%" in text and "a guess cost 50%" in text  # c = 0.5 is twice the bytes share
    assert text.endswith("A slow-down: a round cost more target steps (2.50) than it made tokens.")
    assert "reads" not in explain(result(c=0.3))  # c close to the bytes share: nothing to say


def test_explain_counts_empty_rounds_and_kept_together():
    r = result(alpha_counts=(20, 20), rounds=30, empty=10, kept_all=8, c=0.01, v=1.1, speedup=1.3, quartiles=(1.2, 1.35),
               bytes_ratio=0.0)
    text = explain(r)  # alpha 0.5: 1.875 expected; with 10 empty rounds of 30: (20 * 1.875 + 10) / 30 = 1.58
    assert "In 10 of 30 rounds" in text and "the formula gives 1.58" in text
    assert "made 1.67" in text and "40% of the rounds that proposed kept all" in text and "would give 12%" in text
    # 60 guesses in 30 rounds at c = 0.01, 20 passes over guesses at v = 1.1 and 10 over one token at 1 step each
    assert r.round_cost == pytest.approx(60 / 30 * 0.01 + (20 * 1.1 + 10) / 30) and "; 1 where nothing" in text
    assert "came in runs" in text and text.endswith("A real speed-up.")


def test_explain_flags_noise_and_a_straddle():
    text = explain(result(speedup=1.0, quartiles=(0.7, 1.3)))
    assert "busy" in text and "took" not in text and text.endswith("straddles 1×.")
    assert "proposed nothing" in explain(result(alpha_counts=(0, 0), empty=25, kept_all=0))


def test_explain_a_slow_down_made_outside_c_and_v():
    text = explain(result(c=0.05, speedup=0.8, quartiles=(0.78, 0.82)))  # modeled 2.2 / 1.15 = 1.91x
    assert "took 139% longer" in text and text.endswith("made by the time outside c and v.")
    assert "less than its parts" in explain(result(speedup=1.2, quartiles=(1.15, 1.25)))


def from_record(r: dict) -> DraftResult:
    fields = {f.name for f in dataclasses.fields(DraftResult)}
    return DraftResult(**{**{k: v for k, v in r.items() if k in fields}, "stats": SpeculativeStats(**r["stats"]),
                          "speedup_quartiles": tuple(r["speedup_quartiles"])})


@pytest.mark.skipif(not RESULTS, reason="no recorded speculative runs")
@pytest.mark.parametrize("path", RESULTS, ids=[p.name for p in RESULTS])
def test_explain_reads_the_recorded_runs(path):
    recorded = json.loads(path.read_text())
    assert recorded["settings"]["repetitions"] == len(recorded["runs"]) and recorded["device"]
    for run in recorded["runs"]:
        for r in run:
            result_ = from_record(r)
            text = explain(result_)
            assert r["identical"] and f"{result_.speedup:.2f}×" in text
            assert ("no earlier match" in text) == (result_.stats.empty_rounds > 0)
            low, high = result_.speedup_quartiles
            assert text.endswith("A real speed-up.") == (low > 1) and ("A slow-down" in text) == (high < 1)
            assert result_.modeled_speedup == pytest.approx(r["modeled_speedup"])
