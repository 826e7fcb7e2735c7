"""Tests for course_lib.generate: prefill/decode against teacher forcing, greedy generation
(consistency, determinism, batch independence), input checks, and the CUDA-graph decode step
(CUDA tests are skipped without a GPU)."""

import pytest
import torch

from course_lib.generate import (
    decode_one_token,
    generate,
    make_graphed_decode,
    prefill,
    sample_greedy,
    teacher_forced_logits,
)
from course_lib.model import build_model

FP32 = {"rtol": 1e-5, "atol": 1e-5}
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def tokens(batch, length, vocab=256, seed=1, device="cpu"):
    ids = torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))
    return ids.to(device)


@pytest.fixture
def tiny():
    return build_model("tiny", device="cpu", max_batch=2)


def decode_logits(model, seq, prompt_len, decode=None):
    """Logits predicting positions prompt_len .. end, via prefill and then one step at a time."""
    decode = decode or (lambda token, pos: decode_one_token(model, token, pos))
    out = [prefill(model, seq[:, :prompt_len])]
    out += [decode(seq[:, p:p + 1], p).clone() for p in range(prompt_len, seq.shape[1])]
    return torch.stack(out, dim=1)  # (B, end - prompt_len + 1, vocab)


def test_teacher_forced_logits_match_step_by_step_decode(tiny):
    seq = tokens(2, 48)
    want = teacher_forced_logits(tiny, seq)[:, 11:]
    torch.testing.assert_close(decode_logits(tiny, seq, 12), want, **FP32)


def test_sample_greedy_takes_the_argmax():
    logits = torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 2.9]])
    assert sample_greedy(logits).tolist() == [[1], [0]]


def test_generate_is_greedy_and_consistent_with_teacher_forcing(tiny):
    prompt = tokens(2, 10)
    out = generate(tiny, prompt, max_new_tokens=20)
    assert out.shape == (2, 30)
    assert torch.equal(out[:, :10], prompt)
    # every generated token is the argmax of the full-sequence logits at the position before it
    assert torch.equal(teacher_forced_logits(tiny, out)[:, 9:-1].argmax(-1), out[:, 10:])


def test_generate_is_deterministic(tiny):
    prompt = tokens(2, 10)
    first = generate(tiny, prompt, max_new_tokens=30)
    assert torch.equal(generate(tiny, prompt, max_new_tokens=30), first)  # the cache is reused
    rebuilt = build_model("tiny", device="cpu", max_batch=2)
    assert torch.equal(generate(rebuilt, prompt, max_new_tokens=30), first)
    other_seed = build_model("tiny", device="cpu", max_batch=2, seed=1)
    assert not torch.equal(generate(other_seed, prompt, max_new_tokens=30), first)


def test_batch_rows_are_independent(tiny):
    prompts = tokens(2, 10)
    batched = generate(tiny, prompts, max_new_tokens=20)
    single = build_model("tiny", device="cpu", max_batch=1)
    for row in range(2):
        assert torch.equal(generate(single, prompts[row:row + 1], max_new_tokens=20), batched[row:row + 1])
    seq = batched
    both = decode_logits(tiny, seq, 10)
    for row in range(2):
        torch.testing.assert_close(decode_logits(single, seq[row:row + 1], 10), both[row:row + 1], **FP32)


def test_generate_shows_progress(tiny, capsys):
    generate(tiny, tokens(1, 4), max_new_tokens=5, progress=True)
    assert "decoding" in capsys.readouterr().err


def test_generate_rejects_what_does_not_fit(tiny):
    with pytest.raises(ValueError, match="max_seq_len=64"):
        generate(tiny, tokens(1, 60), max_new_tokens=5)
    with pytest.raises(ValueError, match="max_batch=2"):
        generate(tiny, tokens(3, 4), max_new_tokens=5)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(tiny, tokens(1, 4), max_new_tokens=0)
    with pytest.raises(ValueError, match="torch.long"):
        generate(tiny, tokens(1, 4).float(), max_new_tokens=5)
    with pytest.raises(ValueError, match="2-D"):
        generate(tiny, tokens(1, 4)[0], max_new_tokens=5)
    generate(tiny, tokens(1, 60), max_new_tokens=4)  # exactly max_seq_len is fine


def test_graphed_decode_needs_cuda(tiny):
    with pytest.raises(ValueError, match="CUDA"):
        make_graphed_decode(tiny)


# ----------------------------------------------------------------------------- CUDA only
@needs_cuda
@pytest.mark.parametrize("precision, tol", [("fp32", {"rtol": 1e-4, "atol": 1e-4}),
                                            ("bf16", {"rtol": 2e-2, "atol": 6e-2})])
@pytest.mark.parametrize("batch", [1, 2])
def test_graphed_decode_matches_eager_decode(precision, tol, batch):
    eager = build_model("tiny", device="cuda", precision=precision, max_batch=batch)
    graphed = build_model("tiny", device="cuda", precision=precision, max_batch=batch)  # same seed
    decode = make_graphed_decode(graphed, batch=batch)  # before prefill: capture writes position 0
    seq = tokens(batch, 40, device="cuda")
    want = decode_logits(eager, seq, 8)
    torch.testing.assert_close(decode_logits(graphed, seq, 8, decode=decode), want, **tol)
    with pytest.raises(ValueError, match="pos=64"):
        decode(seq[:, :1], 64)


@needs_cuda
def test_generate_on_cuda_matches_teacher_forcing():
    model = build_model("tiny", device="cuda", max_batch=2)
    out = generate(model, tokens(2, 10, device="cuda"), max_new_tokens=20)
    assert torch.equal(teacher_forced_logits(model, out)[:, 9:-1].argmax(-1), out[:, 10:])
