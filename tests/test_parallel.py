"""Tests for course_lib.parallel: two gloo ranks reproduce the unsplit model, the shards
partition the weights (in both layouts), bad inputs are ValueErrors, a failing or hung rank
raises (no hang), and the explanation of a run follows its numbers (made-up and recorded runs)."""

import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from course_lib import plots, serving, specs
from course_lib.model import build_model, generate, get_config
from course_lib.parallel import run_tensor_parallel, shard_model, spawn_ranks
from course_lib.serving import explain_tensor_parallel, formula_step, speedup_range

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
    result = run_tensor_parallel("tiny", world_size=2, n_tokens=8, prompt_len=6, layout="out_in", rounds=2, calls=2,
                                 link_bytes=(1 << 12,), timeout=90)
    prompt = torch.tensor([result.tokens[:6]])
    expected = generate(build_model(TINY, device="cpu"), prompt, 8)[0].tolist()
    assert result.tokens == expected and result.identical_tokens
    assert result.max_abs_logit_diff < 1e-4
    assert result.allreduces_per_step == 2 * TINY.n_layers
    assert result.allreduce_bytes == TINY.d_model * 4  # one token's hidden state, fp32
    assert result.backend == "gloo" and result.preset == "tiny" and result.layout == "out_in"
    assert result.context_len == 32 and result.repeats == 4  # half the 64-slot cache; 2 rounds x 2 calls
    assert result.step_s > 0 and result.step_iqr_s >= 0 and result.single_device_iqr_s >= 0
    assert result.compute_s + result.comm_s == pytest.approx(result.timed_step_s)
    assert result.speedup == pytest.approx(result.single_device_step_s / result.step_s)
    assert 0 < result.split_share < 1 and result.cpu_count == os.cpu_count()
    # the link: one float, the decode message and the asked size, with alpha and beta fitted
    assert result.link.message_bytes == [4, TINY.d_model * 4, 1 << 12]
    assert len(result.link.seconds) == 3 and all(s > 0 for s in result.link.seconds)
    assert result.link.latency_s >= 0 and result.link.bandwidth_Bps > 0 and result.link.algorithm == "ring"
    json.dumps(asdict(result))  # a plain record


def test_two_ranks_in_the_in_out_layout():
    result = run_tensor_parallel("tiny", world_size=2, n_tokens=6, prompt_len=4, layout="in_out", rounds=1, calls=1,
                                 link_bytes=(), timeout=90)
    assert result.identical_tokens and result.max_abs_logit_diff < 1e-4 and result.layout == "in_out"
    assert result.link is None


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


def test_shards_of_an_in_out_model_keep_its_layout():
    full = build_model(TINY, device="cpu", layout="in_out")
    shards = [shard_model(full, rank, 2) for rank in range(2)]
    assert all(s.layout == "in_out" and hasattr(s.layers[0].w_up, "weight_t") for s in shards)
    # w_down is split by its input features: the rows of a weight stored (in, out)
    assert torch.equal(torch.cat([s.layers[0].w_down.weight_t for s in shards]), full.layers[0].w_down.weight_t)


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


@pytest.mark.parametrize("kwargs, match", [
    ({"link_bytes": (2,)}, "message_bytes"), ({"layout": "diagonal"}, "layout"), ({"context_len": 64}, "max_seq_len"),
    ({"rounds": 0}, "rounds"), ({"calls": -1}, "calls"),
])
def test_bad_timing_and_link_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_tensor_parallel("tiny", **{"layout": "out_in", **kwargs})


def test_a_failing_rank_raises_with_its_message():
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="rank 1 of 2 failed(.|\n)*planted failure on rank 1"):
        spawn_ranks(fail_on_rank_one, 2, timeout=60)
    assert time.perf_counter() - start < 50  # rank 0, stuck in the barrier, was stopped: no hang


def test_a_hung_rank_times_out():
    with pytest.raises(TimeoutError, match="timeout"):
        spawn_ranks(sleep_forever, 2, timeout=5)


# ---------------------------------------------------------------- reading a run
LINK = {"algorithm": "ring", "message_bytes": [4, 2048, 65536], "latency_s": 50e-6, "bandwidth_Bps": 1e9}


def run(**changes):
    """A made-up CPU run with round numbers: 10 ms in one process; split, 6 ms computing and
    1.5 ms in 16 all-reduces of 2048 B; 80 % of the bytes split; the link alpha 50 us, beta 1 GB/s."""
    record = {"preset": "cpu-m", "world_size": 2, "backend": "gloo", "step_s": 7.5e-3, "step_iqr_s": 0.2e-3,
              "single_device_step_s": 10e-3, "single_device_iqr_s": 0.4e-3, "comm_s": 1.5e-3, "compute_s": 6e-3,
              "comm_share": 0.2, "timed_step_s": 7.5e-3, "allreduces_per_step": 16, "allreduce_bytes": 2048,
              "split_share": 0.8, "cpu_count": 2, "link": LINK}
    return {**record, **changes}


def test_explanation_of_a_win_by_hand():
    r = run()
    # speed-up 10 / 7.5 = 1.33; least favourable (10 - 0.2) / (7.5 + 0.1) = 1.29, most (10.2) / (7.4) = 1.38
    assert speedup_range(r) == pytest.approx((9.8 / 7.6, 10.2 / 7.4))
    # the formula: 10 x (0.2 + 0.4) = 6 ms + 16 x (2 x 50 us + 2048 B / 1 GB/s) = 1.633 ms -> 10 / 7.633 = 1.31x
    compute, comm = formula_step(r)
    assert compute == pytest.approx(6e-3) and comm == pytest.approx(16 * 102.048e-6)
    text = explain_tensor_parallel(r)
    for part in ("**1.33×**", "**won**", "1.29×", "1.50 ms (20%)", "a large share", "1.0× the 6.00 ms",
                 "scaled as the bytes do", "α = 50 µs, β = 1.00 GB/s", "1.63 ms; about the 1.50 ms measured",
                 "predicts 1.31×", "2 CPU cores, so the 2 ranks", "same memory"):
        assert part in text, part
    assert "Noisy" not in text and "lost" not in text


@pytest.mark.parametrize("changes, expected, absent", [
    # 10 / 12.5 = 0.80x, at best 10.2 / 12.4 = 0.82: lost; 6.5 of 12.5 ms in all-reduces
    ({"step_s": 12.5e-3, "timed_step_s": 12.5e-3, "comm_s": 6.5e-3, "comm_share": 0.52},
     ["**lost**", "1.25× the time", "at best 1.22× from", "communication **dominates**", "other 4.87 ms inside them was waiting"],
     ["won"]),
    # the sweep timed the step's 2048-byte all-reduce alone at 0.15 ms, 1.47x the fit's 2 x 50 us + 2048 B / 1 GB/s:
    # 6.5 - 16 x 0.15 = 4.10 ms left for waiting
    ({"step_s": 12.5e-3, "timed_step_s": 12.5e-3, "comm_s": 6.5e-3, "comm_share": 0.52,
      "link": {**LINK, "seconds": [6e-5, 1.5e-4, 2e-4]}},
     ["other 4.10 ms inside them was waiting", "alone: 0.15 ms, 1.5× the fit"], []),
    # 3.2 ms / 16 = 0.20 ms each, 2x the fit's 0.10 ms but under the 0.30 ms the sweep found alone at 2048 bytes: no waiting
    ({"comm_s": 3.2e-3, "link": {**LINK, "seconds": [6e-5, 3e-4, 4e-4]}},
     ["the 3.20 ms measured is no more than the sweep found for this size alone (0.30 ms each)"],
     ["arrived late", "was waiting for a rank"]),
    # quartiles spanning 1: no clear difference, and noisy (3 ms of 10 is 30 %)
    ({"step_s": 9.5e-3, "single_device_iqr_s": 3e-3}, ["no clear difference", "Noisy"], ["won", "lost"]),
    # computing took 9 ms against 6: small ops and a shared core; few all-reduces: a small share
    ({"compute_s": 9e-3, "comm_s": 0.5e-3, "comm_share": 0.05, "step_s": 9.5e-3, "timed_step_s": 9.5e-3},
     ["1.5× the 6.00 ms", "as many small ops", "busy or shared core", "a small share", "more than was measured"], []),
    # the same on GPUs: the small ops, but no shared core
    ({"backend": "nccl", "compute_s": 9e-3}, ["1.5× the 6.00 ms", "fixed cost does not divide."], ["busy or shared core"]),
    # a GPU run in CUDA graphs, communication timed alone: 3.2 ms / 16 = 0.20 ms per all-reduce in the chain against
    # 2 x 50 us + 2048 B / 1 GB/s = 0.10 ms from the link: the fit underprices the chain, no rank arrived late
    ({"backend": "nccl", "graphs": True, "comm_s": 3.2e-3, "step_s": 9.2e-3, "timed_step_s": 9.2e-3},
     ["chain took 0.20 ms each, 2.0× the 0.10 ms of α + m/β", "short graphs underprices a chain of 16"], ["arrived late"]),
    ({"backend": "nccl", "graphs": True, "comm_s": 3.2e-3, "link": {**LINK, "allreduces_per_graph": 8}},
     ["short graphs of 8 underprices a chain of 16"], ["arrived late"]),
    ({"compute_s": 3e-3}, ["0.5× the 6.00 ms", "faster cache"], ["Noisy"]),
    # the same, but the one-process step it divides was noisy (3 ms of 10): noise, not a cache
    ({"compute_s": 3e-3, "single_device_iqr_s": 3e-3}, ["was noisy (below)", "Noisy"], ["faster cache"]),
    ({"cpu_count": None}, ["same memory"], ["None", "CPU cores"]),  # a gloo run of version 1: no cores recorded
    ({"cpu_count": 8}, ["8 CPU cores: each rank can have one to itself"], ["take all of them"]),
    ({"link": None, "split_share": None}, [], ["α =", "predicts", "dividing the split"]),
    ({"backend": "nccl", "timed_step_s": 9e-3}, ["its own GPU", "the step took 9.00 ms", "**won**"], ["CPU cores"]),
    ({"backend": "nccl"}, ["its own GPU", "**won**"], ["clocks around", "CPU cores"]),
    # a run of version 1: a clocked GPU step and no spread: no verdict on its speed
    ({"backend": "nccl", "timed_step_s": None, "step_iqr_s": None, "single_device_iqr_s": None},
     ["its own GPU", "timed with clocks", "says little"], ["won", "lost", "quartiles"]),
    ({"step_iqr_s": None, "single_device_iqr_s": None}, ["**won**", "the medians (no spread was recorded)"], ["quartiles"]),
])
def test_explanation_branches(changes, expected, absent):
    text = explain_tensor_parallel(run(**changes))
    for part in expected:
        assert part in text, part
    for part in absent:
        assert part not in text, part


def recorded_runs() -> list[dict]:
    """Every recorded TP run: the benchmarks' (tp_runs*.json) and the packaged GPU reference's."""
    runs = [r for path in sorted(Path(__file__).parents[1].glob("benchmarks/results/tp_runs*.json"))
            for r in json.loads(path.read_text())["runs"]]
    return runs + [r for r in (specs.load_reference() or {}).get("tensor_parallel", []) if "error" not in r]


def test_explanation_of_recorded_runs_follows_their_numbers():
    runs = recorded_runs()
    assert {r["backend"] for r in runs} >= {"gloo", "nccl"}  # a CPU machine and a GPU machine at least
    for r in runs:
        text = explain_tensor_parallel(r)
        low, high = speedup_range(r)
        verdict = ("timed with clocks" if r["backend"] == "nccl" and r.get("timed_step_s") is None else
                   "**won**" if low > 1 else "**lost**" if high < 1 else "no clear difference")
        assert verdict in text and f"**{r['single_device_step_s'] / r['step_s']:.2f}×**" in text
        assert ("CPU cores" in text) == (r["backend"] == "gloo")
        if r.get("link"):  # the formula from the run's own numbers
            predicted = sum(serving.tensor_parallel_split(r["single_device_step_s"], 2, r["allreduces_per_step"],
                                                       r["allreduce_bytes"], r["link"]["bandwidth_Bps"],
                                                       r["link"]["latency_s"], r["split_share"], r["link"]["algorithm"]))
            assert f"predicts {r['single_device_step_s'] / predicted:.2f}×" in text
            comm = formula_step(r)[1]
            if r["comm_s"] > 1.5 * comm:  # more inside the all-reduces than the link prices: why, by how they were timed
                chain = "chain took" in text and f"each, {r['comm_s'] / comm:.1f}× the" in text
                assert (chain, "arrived late" in text) == ((True, False) if r.get("graphs") else (False, True))
        assert ("busy or shared core" in text) <= (r["backend"] == "gloo")
    graphed = [r for r in runs if r.get("graphs") and r.get("link") and r["comm_s"] > 1.5 * formula_step(r)[1]]
    assert graphed and "took 19 µs each, 1.9× the 10 µs" in explain_tensor_parallel(graphed[0])  # the H200 7b run


def test_allreduce_fit_figure_by_hand():
    link = {"world_size": 2, "backend": "gloo", "algorithm": "ring", "message_bytes": [4, 2048, 1 << 20],
            "seconds": [100e-6, 102e-6, 1.1e-3], "iqr_s": [5e-6, 5e-6, 50e-6], "latency_s": 50e-6, "bandwidth_Bps": 1e9}
    fig = plots.allreduce_fit(link, decode_bytes=2048)
    assert list(fig.data[0].y) == pytest.approx([100, 102, 1100])
    assert list(fig.data[0].error_y.array) == pytest.approx([2.5, 2.5, 25])  # half the IQR, as every error bar
    # the line at 1 MiB: 2 x 50 us + 1048576 B / 1 GB/s = 1148.6 us
    assert fig.data[1].y[-1] == pytest.approx(1148.576) and "α = 50 µs, β = 1.00 GB/s (ring)" in fig.data[1].name
