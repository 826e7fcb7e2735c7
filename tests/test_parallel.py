"""Tests for course_lib.parallel: two gloo ranks reproduce the unsplit model, the shards
partition the weights, bad inputs are ValueErrors, a failing or hung rank raises (no hang)."""

import json
import time
from dataclasses import asdict

import pytest
import torch
import torch.distributed as dist

from course_lib.model import build_model, generate, get_config
from course_lib.parallel import measure_allreduce, run_tensor_parallel, shard_model, spawn_ranks

TINY = get_config("tiny")  # 4 query heads sharing 2 KV heads: a 2-way split gives each rank 2 + 1


def fail_on_rank_one(rank, world_size, device):
    """Spawned by a test: rank 1 raises while rank 0 waits for it in a collective."""
    if rank == 1:
        raise ValueError("planted failure on rank 1")
    dist.barrier()


def sleep_forever(rank, world_size, device):
    """Spawned by a test: never returns."""
    time.sleep(600)


def test_two_ranks_reproduce_the_unsplit_model():
    result = run_tensor_parallel("tiny", world_size=2, n_tokens=8, prompt_len=6, rounds=2, timeout=90)
    prompt = torch.tensor([result.tokens[:6]])
    expected = generate(build_model(TINY, device="cpu"), prompt, 8)[0].tolist()
    assert result.tokens == expected and result.identical_tokens
    assert result.max_abs_logit_diff < 1e-4
    assert result.allreduces_per_step == 2 * TINY.n_layers
    assert result.allreduce_bytes == TINY.d_model * 4  # one token's hidden state, fp32
    assert result.backend == "gloo" and result.preset == "tiny"
    json.dumps(asdict(result))  # a plain record


def test_shards_partition_the_weights():
    full = build_model(TINY, device="cpu")
    shards = [shard_model(full, rank, 2) for rank in range(2)]
    block, parts = full.layers[0], [s.layers[0] for s in shards]
    assert torch.equal(torch.cat([p.w_up.weight for p in parts]), block.w_up.weight)
    assert torch.equal(torch.cat([p.w_down.weight for p in parts], dim=1), block.w_down.weight)
    assert torch.equal(torch.cat([p.attention.wo.weight for p in parts], dim=1), block.attention.wo.weight)
    q, k, v = block.attention.wqkv.weight.split(block.attention.split_sizes)
    pieces = [p.attention.wqkv.weight.split(p.attention.split_sizes) for p in parts]
    for i, whole in enumerate((q, k, v)):
        assert torch.equal(torch.cat([piece[i] for piece in pieces]), whole)
    assert parts[0].attention.cache.k_cache.shape[1] == TINY.n_kv_heads // 2
    norms = TINY.n_layers * 2 * TINY.d_model  # replicated; every matrix is halved
    shard_params = sum(p.numel() for p in shards[0].layers.parameters())
    assert 2 * shard_params == sum(p.numel() for p in full.layers.parameters()) + norms


def test_one_shard_is_the_model_itself():
    full = build_model(TINY, device="cpu")
    prompt = torch.randint(0, TINY.vocab_size, (1, 5), generator=torch.Generator().manual_seed(3))
    assert torch.equal(generate(shard_model(full, 0, 1), prompt, 10), generate(full, prompt, 10))


@pytest.mark.parametrize("world_size", [0, -1, 1.5, True, 3, 8])  # 3 and 8 do not divide the heads
def test_bad_world_sizes_are_value_errors(world_size):
    with pytest.raises(ValueError, match="world_size"):
        run_tensor_parallel("tiny", world_size=world_size)


@pytest.mark.parametrize("kwargs, match", [
    ({"preset_or_config": "no-such-preset"}, "preset"), ({"n_tokens": 0}, "n_tokens"),
    ({"prompt_len": 60, "n_tokens": 8}, "max_seq_len"), ({"precision": "int4"}, "precision"),
])
def test_bad_arguments_are_value_errors_before_any_process_starts(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_tensor_parallel(**{"preset_or_config": "tiny", **kwargs})


def test_bad_link_arguments():
    with pytest.raises(ValueError, match="world_size"):
        measure_allreduce(1)
    with pytest.raises(ValueError, match="preset"):
        measure_allreduce(2, "no-such-preset")


def test_a_failing_rank_raises_with_its_message():
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="rank 1 of 2 failed(.|\n)*planted failure on rank 1"):
        spawn_ranks(fail_on_rank_one, 2, timeout=60)
    assert time.perf_counter() - start < 50  # rank 0, stuck in the barrier, was stopped: no hang


def test_a_hung_rank_times_out():
    with pytest.raises(TimeoutError, match="timeout"):
        spawn_ranks(sleep_forever, 2, timeout=5)


def test_measure_allreduce_includes_the_decode_message():
    link = measure_allreduce(2, "tiny", message_bytes=(1 << 12, 1 << 20), rounds=3, timeout=60)
    assert link.message_bytes == [TINY.d_model * 4, 1 << 12, 1 << 20]
    assert len(link.seconds) == 3 and all(s > 0 for s in link.seconds)
    assert link.latency_s >= 0 and link.bandwidth_Bps > 0
