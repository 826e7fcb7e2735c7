"""Tests for course_lib.parallel: the tensor-parallel split reproduces the unsplit model (in one
process for world size 1, over two gloo processes for world size 2), the all-reduce count,
input checks, and the launcher's error handling (a failing or hung rank -> RuntimeError)."""

import time

import pytest
import torch
import torch.distributed as dist

from course_lib.generate import generate
from course_lib.model import ToyConfig, build_model
from course_lib.parallel import (
    check_split,
    measure_allreduce,
    run_tensor_parallel,
    shard_model,
    spawn_ranks,
)

# 2 layers, 4 query heads sharing 2 KV heads (GQA), so a 2-way split gives each rank 2 + 1 heads
SMALL = ToyConfig(vocab_size=128, n_layers=2, d_model=32, n_heads=4, n_kv_heads=2, max_seq_len=32)


def fail_on_rank_one(rank, world_size, backend):
    """Spawned by a test: rank 1 raises while rank 0 waits for it in a collective."""
    if rank == 1:
        raise ValueError("planted failure on rank 1")
    dist.barrier()


def sleep_forever(rank, world_size, backend):
    """Spawned by a test: never returns."""
    time.sleep(600)


@pytest.fixture(scope="module")
def tp_run():
    return run_tensor_parallel(SMALL, world_size=2, n_tokens=8, prompt_len=6, backend="gloo", timeout=60)


def test_two_ranks_reproduce_the_unsplit_model(tp_run):
    assert tp_run["backend"] == "gloo" and tp_run["world_size"] == 2
    assert tp_run["identical_tokens"]
    assert tp_run["max_abs_logit_diff"] < 1e-4
    full = build_model(SMALL, device="cpu")
    expected = generate(full, tp_run["tokens"][:, :6], 8)
    assert torch.equal(tp_run["tokens"], expected)
    assert torch.equal(tp_run["reference_tokens"], expected)
    assert tp_run["final_logits"].shape == (SMALL.vocab_size,)


def test_two_allreduces_per_layer_of_one_hidden_state(tp_run):
    assert tp_run["allreduces_per_step"] == 2 * SMALL.n_layers
    assert tp_run["allreduce_bytes"] == SMALL.d_model * 4  # batch 1, one token, fp32
    steps = len(tp_run["step_times_s"])
    assert steps == 8 - 1  # the first new token comes from the prefill
    assert all(0 <= c <= s for c, s in zip(tp_run["comm_times_s"], tp_run["step_times_s"]))
    assert tp_run["compute_s"] > 0 and 0 < tp_run["comm_share"] < 1
    assert tp_run["wall_s"] > tp_run["step_s"] * steps


def test_shards_partition_the_weights():
    full = build_model(SMALL, device="cpu")
    shards = [shard_model(full, rank, 2) for rank in range(2)]
    block, parts = full.layers[0], [s.layers[0] for s in shards]
    assert torch.equal(torch.cat([p.w_up.weight for p in parts]), block.w_up.weight)
    assert torch.equal(torch.cat([p.w_down.inner.weight for p in parts], dim=1), block.w_down.weight)
    assert torch.equal(torch.cat([p.attention.inner.wo.weight for p in parts], dim=1), block.attention.wo.weight)
    q_rows = [p.attention.inner.wqkv.weight[:p.attention.inner.split_sizes[0]] for p in parts]
    assert torch.equal(torch.cat(q_rows), block.attention.wqkv.weight[:SMALL.d_model])
    assert parts[0].attention.inner.cache.k_cache.shape[1] == SMALL.n_kv_heads // 2
    assert shards[0].lm_head is full.lm_head  # replicated, shared


def test_world_size_one_is_the_model_itself():
    full = build_model(SMALL, device="cpu")
    shard = shard_model(full, 0, 1)
    prompt = torch.randint(0, SMALL.vocab_size, (1, 5), generator=torch.Generator().manual_seed(3))
    assert torch.equal(generate(shard, prompt, 10), generate(full, prompt, 10))


@pytest.mark.parametrize("world_size", [0, -1, 1.5, True, 3, 4, 8])
def test_bad_world_sizes_are_value_errors(world_size):
    # 3 does not divide 4 heads; 4 does not divide 2 KV heads; 8 divides neither
    with pytest.raises(ValueError, match="world_size"):
        check_split(SMALL, world_size)
    with pytest.raises(ValueError, match="world_size"):
        run_tensor_parallel(SMALL, world_size=world_size)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_tokens": 1}, "n_tokens"), ({"prompt_len": 0}, "prompt_len"),
    ({"prompt_len": 30, "n_tokens": 8}, "max_seq_len"), ({"backend": "mpi"}, "backend"),
    ({"precision": "int4"}, "precision"),
])
def test_bad_arguments_are_value_errors_before_any_process_starts(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_tensor_parallel(SMALL, **kwargs)


def test_shard_rank_out_of_range():
    with pytest.raises(ValueError, match="rank"):
        shard_model(build_model(SMALL, device="cpu"), 2, 2)


def test_a_failing_rank_raises_runtime_error_with_its_message():
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="rank 1 of 2 failed(.|\n)*planted failure on rank 1"):
        spawn_ranks(fail_on_rank_one, 2, backend="gloo", timeout=60)
    assert time.perf_counter() - start < 30  # rank 0, stuck in the barrier, was terminated


def test_a_hung_rank_times_out():
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="timeout"):
        spawn_ranks(sleep_forever, 2, backend="gloo", timeout=4)
    assert time.perf_counter() - start < 15


def test_measure_allreduce_fits_latency_and_bandwidth():
    result = measure_allreduce(2, message_bytes=(1 << 10, 1 << 16, 1 << 20), backend="gloo", repeats=5, timeout=60)
    assert result["backend"] == "gloo" and len(result["seconds"]) == 3
    assert all(t > 0 for t in result["seconds"])
    assert result["latency_s"] >= 0 and result["bandwidth_Bps"] > 0
    with pytest.raises(ValueError, match="world_size"):
        measure_allreduce(1)
    with pytest.raises(ValueError, match="message_bytes"):
        measure_allreduce(2, message_bytes=(1024, 1024))
