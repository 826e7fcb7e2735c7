"""Tensor parallelism of the toy GPT on 2 GPUs, every decode step replayed from a CUDA graph.

    python benchmarks/gpu_tp.py [--presets gpu-1b,7b] [--rounds 7] [--replays 50] [--out FILE]
    python benchmarks/gpu_tp.py --dry-run --out /tmp/tp.json   # tiny preset, few rounds: the script end to end

What and how. Two ranks (``parallel.spawn_ranks``: one process per GPU, NCCL; NVLink multicast off) each
hold their half of the model (``parallel.shard_model``: two all-reduces per layer, ``dist.all_reduce`` in a
forward hook). Each rank records its whole decode step in one CUDA graph (``machine.make_graphed_decode``: static
KV cache, warm-up on a side stream, the all-reduces inside the graph), so the step runs without Python,
launches or a synchronisation per collective. Timed with CUDA events around ``--replays`` back-to-back
replays, in ``--rounds`` interleaved rounds (the order flips each round; one warm-up round first), beside:
  - the unsplit model's graphed step on rank 0 (rank 1 waits), so TP / single comes from one run;
  - a graph of only the step's all-reduces (2 per layer, batch x d_model each): communication alone;
    the step minus it estimates the computing part;
  - a sweep of message sizes (2 KiB .. 32 MiB, x4, and the decode message), 8 all-reduces per graph,
    with the link's alpha (latency) and beta (bytes/s) fitted by ``serving.fit_allreduce``.
Then the tokens: 32 greedy tokens from one prompt, split (graphed) and unsplit (graphed), compared; bf16
sums in another order can flip a near-tie, so the first divergence and its top-2 logit margin are recorded.
Medians and IQRs over the rounds; JSON with provenance. Without 2 GPUs (``--dry-run`` on a CPU) the same code
runs with gloo and no graphs: the graphs' static-cache step eagerly, timed with the CPU's clock.
"""

from __future__ import annotations

import os

# NVLink multicast stays off (a rule of the shared GPU hosts), before torch.distributed starts; the ranks inherit it.
NO_MULTICAST = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
os.environ.update(NO_MULTICAST)

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from common import provenance  # noqa: E402

from course_lib import parallel, serving  # noqa: E402
from course_lib.machine import make_graphed_decode, measurement, release, synchronize  # noqa: E402
from course_lib.model import build_model  # noqa: E402
from course_lib.specs import get_config  # noqa: E402

RESULTS = Path(__file__).parent / "results"
PER_GRAPH = 8  # all-reduces in each sweep graph


def all_reduce(x: torch.Tensor) -> torch.Tensor:
    dist.all_reduce(x)  # sum over the ranks, in place
    return x


def capture(fn, device):
    """``fn`` recorded in a CUDA graph after 3 warm-up calls on a side stream (the PyTorch CUDA-graph docs'
    recipe, as make_graphed_decode does); returns the replay. On the CPU: ``fn`` itself."""
    if device.type != "cuda":
        return fn
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def per_call(fn, n: int, device) -> float:
    """Seconds per call of ``fn`` over ``n`` back-to-back calls: CUDA events around them all (no sync in between)."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(n):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / n
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def interleaved(fns: dict, rounds: int, n: int, flag: torch.Tensor) -> dict:
    """{name: {median, iqr, rounds} in ms per call}: each name timed over ``n`` calls per round, the order flipped
    every round, round 0 a warm-up. Every rank runs the same names in the same order; a name whose fn is None
    on this rank is skipped there (that rank waits in the next all-reduce of ``flag``, which lines the ranks up)."""
    names, samples = list(fns), {name: [] for name in fns}
    for r in range(rounds + 1):
        for name in names if r % 2 == 0 else names[::-1]:
            all_reduce(flag)
            synchronize(flag.device)  # both ranks start together
            if fns[name] is not None:
                seconds = per_call(fns[name], n, flag.device)
                if r:
                    samples[name].append(seconds)
    all_reduce(flag)
    out = {}
    for name, times in samples.items():
        m = measurement(times) if times else None
        out[name] = {"median": m.median * 1e3, "iqr": m.iqr * 1e3, "rounds": [t * 1e3 for t in times]} if m else None
    return out


def greedy(model, decode, prompt: torch.Tensor, n: int) -> tuple[list[int], list[float]]:
    """``n`` greedy tokens after ``prompt`` (eager prefill, then ``decode(token, pos)``), and each step's
    top-2 logit margin (a small margin: a near-tie that summing in another order may flip)."""
    logits, tokens, margins = model(prompt, 0)[:, -1], [], []
    for pos in range(prompt.shape[1], prompt.shape[1] + n):
        top = logits.float().topk(2, dim=-1).values[0]
        margins.append(top[0] - top[1])
        tokens.append(logits.argmax(dim=-1, keepdim=True))  # (1, 1)
        if len(tokens) < n:
            logits = decode(tokens[-1], pos)  # (graphed: a static buffer, overwritten by the next call)
    return torch.cat(tokens, dim=1)[0].tolist(), torch.stack(margins).tolist()


@torch.inference_mode()
def worker(rank: int, world: int, device: torch.device, preset: str, precision: str, rounds: int, replays: int,
           sweep_bytes: list[int], n_tokens: int) -> dict | None:
    """One rank (spawned by parallel.spawn_ranks, process group joined): build, capture, check, time."""
    started, graphs, config = time.time(), device.type == "cuda", get_config(preset)
    flag = torch.zeros(1, device=device)
    all_reduce(flag)  # the NCCL communicator is created here, eagerly, before any capture
    synchronize(device)
    full = build_model(config, device=device, precision=precision, seed=0)  # same seed: same weights on every rank
    shard = parallel.shard_model(full, rank, world, all_reduce)
    if rank != 0:
        del full  # rank 1 keeps only its shard (and the replicated embedding, norms and LM head it shares)
        release(device)

    def decoder(model):  # decode(token, pos) -> logits: the graphed step; without graphs, the same path eagerly
        if graphs:
            return make_graphed_decode(model)
        return lambda token, pos: model(token, torch.tensor(pos), static_kv=True)[:, -1]

    decode = {"tp": decoder(shard), "single": decoder(full) if rank == 0 else None}  # rank 0 also runs it unsplit

    # the tokens: split and unsplit, from the same prompt (after the graphs: their capture wrote cache slot 0)
    prompt = torch.randint(0, config.vocab_size, (1, 32), generator=torch.Generator().manual_seed(1)).to(device)
    tp_tokens, tp_margins = greedy(shard, decode["tp"], prompt, n_tokens)
    if rank == 0:
        single_tokens, single_margins = greedy(full, decode["single"], prompt, n_tokens)
    all_reduce(flag)

    # communication alone: the step's all-reduces (2 per layer, one token's hidden state each), and the sweep
    dtype, msg = shard.dtype, config.d_model * shard.dtype.itemsize
    step_buf = torch.ones(1, 1, config.d_model, dtype=dtype, device=device)
    comm = capture(lambda: [all_reduce(step_buf) for _ in range(2 * config.n_layers)], device)
    sizes = sorted({*sweep_bytes, msg})
    bufs = {m: torch.ones(m // dtype.itemsize, dtype=dtype, device=device) for m in sizes}
    sweep = {m: capture(lambda b=bufs[m]: [all_reduce(b) for _ in range(PER_GRAPH)], device) for m in sizes}
    checks = []  # a replay from ones must give 2^k after k all-reduces of 2 ranks: the graphs really communicate
    for buf, replay, k in [(step_buf, comm, 2 * config.n_layers)] + [(bufs[m], sweep[m], PER_GRAPH) for m in sizes]:
        buf.fill_(1)
        replay()
        checks.append(bool((buf == float(world ** k)).all()))  # exact: bf16 holds 2^64 (the timed replays then
        # double the values on to inf, which costs the link nothing)

    pos = min(128, config.max_seq_len - 1)  # the step's cost does not depend on it (graphs read every cache slot)
    token = torch.zeros(1, 1, dtype=torch.long, device=device)
    steps = {name: None if d is None else (lambda d=d: d(token, pos)) for name, d in decode.items()}
    times = interleaved({**steps, "comm": comm}, rounds, replays, flag)
    link = interleaved(sweep, rounds, max(replays // 5, 2), flag)
    if rank != 0:
        return None
    seconds = [link[m]["median"] / 1e3 / PER_GRAPH for m in sizes]
    fits = {alg: serving.fit_allreduce(sizes, seconds, world, alg) for alg in ("ring", "one-shot")}
    ring = fits["ring"]  # beta = inf where noise made the line flat: no finite fit to price the step with
    fit_comm = 2 * config.n_layers * serving.allreduce_time(msg, world, ring[1], ring[0], "ring") * 1e3 \
        if math.isfinite(ring[1]) else None
    fits = {alg: {"alpha_s": a, "beta_Bps": b if math.isfinite(b) else None} for alg, (a, b) in fits.items()}
    diverge = next((i for i, (a, b) in enumerate(zip(tp_tokens, single_tokens)) if a != b), None)
    single, tp, comm_ms = times["single"], times["tp"], times["comm"]
    return {
        "preset": preset, "n_layers": config.n_layers, "d_model": config.d_model, "n_heads": config.n_heads,
        "weight_bytes": config.weight_bytes(precision), "backend": dist.get_backend(), "graphs": graphs,
        "timed_pos": pos, "allreduces_per_step": 2 * config.n_layers, "allreduce_bytes": msg,
        "single_ms": single, "tp_ms": tp, "comm_ms": comm_ms,
        "ratio": tp["median"] / single["median"], "speedup": single["median"] / tp["median"],
        "compute_estimate_ms": tp["median"] - comm_ms["median"],
        "comm_per_allreduce_us": comm_ms["median"] * 1e3 / (2 * config.n_layers),
        "link": {"message_bytes": sizes, "seconds": seconds, "allreduces_per_graph": PER_GRAPH,
                 "iqr_s": [link[m]["iqr"] / 1e3 / PER_GRAPH for m in sizes], "fit": fits, "fit_comm_ms": fit_comm},
        "graph_checks_ok": all(checks),
        "tokens_compared": n_tokens, "tokens_match": sum(a == b for a, b in zip(tp_tokens, single_tokens)),
        "first_divergence": diverge, "tp_tokens": tp_tokens, "single_tokens": single_tokens,
        "margin_at_divergence": None if diverge is None else {"single": single_margins[diverge],
                                                               "tp": tp_margins[diverge]},
        "smallest_single_margin": min(single_margins),
        "nccl_version": ".".join(map(str, torch.cuda.nccl.version())) if graphs else None,  # (major, minor, patch)
        "env_in_ranks": {k: os.environ.get(k) for k in NO_MULTICAST},
        "runtime_s": time.time() - started,
    }


def as_record(run: dict, dtype: str) -> dict:
    """One preset's run in the recorded reference's ``tensor_parallel`` form (what notebook 04 and
    ``explain_tensor_parallel`` read): seconds, the split share of the step's bytes, the fitted link."""
    config = get_config(run["preset"])
    item = 2 if dtype in ("bf16", "fp16") else 4
    # the 2026-11-29 run predates the bucketed graph step: its graphs read every cache slot
    total = config.weight_bytes(dtype) + config.max_seq_len * config.kv_bytes_per_token(dtype)
    unsplit = config.d_model * config.vocab_size * item + (2 * config.n_layers + 1) * config.d_model * item
    one_shot = run["link"]["fit"]["one-shot"]
    ms = lambda key, part: run[key][part] / 1e3  # noqa: E731
    return {"preset": run["preset"], "world_size": 2, "backend": "nccl", "device": "cuda", "precision": dtype,
            "graphs": True, "step_s": ms("tp_ms", "median"), "step_iqr_s": ms("tp_ms", "iqr"),
            "timed_step_s": ms("tp_ms", "median"),  # no clocks inside the step: the timed step is the step
            "single_device_step_s": ms("single_ms", "median"), "single_device_iqr_s": ms("single_ms", "iqr"),
            "comm_s": ms("comm_ms", "median"), "comm_iqr_s": ms("comm_ms", "iqr"),
            "compute_s": ms("tp_ms", "median") - ms("comm_ms", "median"),
            "comm_share": run["comm_ms"]["median"] / run["tp_ms"]["median"],
            "speedup": run["single_ms"]["median"] / run["tp_ms"]["median"],
            "allreduces_per_step": run["allreduces_per_step"], "allreduce_bytes": run["allreduce_bytes"],
            "split_share": (total - unsplit) / total,
            "identical_tokens": run["tokens_match"] == run["tokens_compared"],
            "tokens_match": run["tokens_match"], "tokens_compared": run["tokens_compared"],
            "first_divergence": run["first_divergence"], "margin_at_divergence": run["margin_at_divergence"],
            "link": {"world_size": 2, "backend": "nccl", "algorithm": "one-shot",
                     "message_bytes": run["link"]["message_bytes"], "seconds": run["link"]["seconds"],
                     "iqr_s": run["link"]["iqr_s"], "allreduces_per_graph": run["link"]["allreduces_per_graph"],
                     "latency_s": one_shot["alpha_s"],
                     "bandwidth_Bps": one_shot["beta_Bps"]}}


def into_reference(result: Path, reference: Path) -> int:
    """Replace the recorded reference's tensor-parallel runs by the runs of ``result``."""
    out, ref = json.loads(result.read_text()), json.loads(reference.read_text())
    ref["tensor_parallel"] = [as_record(r, out["dtype"]) for r in out["presets"] if "error" not in r]
    prov = out["provenance"]
    ref["tensor_parallel_note"] = (f"recorded {prov['date'][:10]} by benchmarks/gpu_tp.py on 2 {prov['device_names'][0]}s "
                                   f"(NCCL {out['presets'][0].get('nccl_version')}): each rank's whole decode step, "
                                   f"all-reduces included, replayed from a CUDA graph; {out['rounds']} interleaved rounds "
                                   f"of {out['replays_per_round']} replays; communication timed as a graph of the step's "
                                   f"all-reduces alone; the link fitted to a sweep of message sizes ({result.name})")
    reference.write_text(json.dumps(ref, indent=1) + "\n")
    print(f"{reference}: {len(ref['tensor_parallel'])} tensor-parallel runs from {result}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", default="gpu-1b,7b")
    parser.add_argument("--precision", help="default: bf16 on GPUs, fp32 on the CPU")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--replays", type=int, default=50, help="graph replays per round (sweep: a fifth)")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=220.0, help="seconds per preset, start-up included")
    parser.add_argument("--dry-run", action="store_true", help="cpu-s, 2 rounds of 3, a small sweep, 8 tokens")
    parser.add_argument("--out", type=Path, help="default: results/<card>x2_tp_graph_<date>.json")
    parser.add_argument("--into", nargs=2, type=Path, metavar=("RESULT", "REFERENCE"),
                        help="put the runs of a RESULT this script wrote into a recorded REFERENCE (no GPUs needed)")
    args = parser.parse_args(argv)
    if args.into:
        return into_reference(*args.into)
    on_gpus = torch.cuda.is_available() and torch.cuda.device_count() >= 2
    if not (on_gpus or args.dry_run):
        print("needs 2 CUDA GPUs (or --dry-run: the CPU, eagerly, with gloo)")
        return 2
    presets, rounds, replays, tokens, top = args.presets.split(","), args.rounds, args.replays, args.tokens, 32 << 20
    if args.dry_run:
        presets, rounds, replays, tokens, top = ["cpu-s"], 2, 3, 8, 32 << 10
    precision = args.precision or ("bf16" if on_gpus else "fp32")
    sweep = [2048 * 4 ** i for i in range(20) if 2048 * 4 ** i <= top]
    started, runs = time.time(), []
    for preset in presets:
        try:
            run = parallel.spawn_ranks(worker, 2, (preset, precision, rounds, replays, sweep, tokens), args.timeout)
        except (RuntimeError, TimeoutError, ValueError) as err:  # recorded; the other presets still run
            run = {"preset": preset, "error": str(err)[-3000:]}
        runs.append(run)
        print(f"{preset}: {'error' if 'error' in run else 'done'} at {time.time() - started:.0f} s", flush=True)
    device = torch.device("cuda" if on_gpus else "cpu")
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if on_gpus else ["cpu"]
    out = {"provenance": {**provenance(device), "device_names": names}, "what": __doc__.split("\n")[0],
           "world_size": 2, "dtype": precision, "batch": 1, "rounds": rounds, "replays_per_round": replays,
           "sweep_replays_per_round": max(replays // 5, 2), "dry_run": args.dry_run, "env": dict(NO_MULTICAST),
           "presets": runs, "runtime_s": time.time() - started}
    card = re.sub(r"[^a-z0-9]+", "-", names[0].lower()).removeprefix("nvidia-") if on_gpus else "cpu"
    path = args.out or RESULTS / f"{card}x2_tp_graph_{_dt.date.today().isoformat()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{'preset':8} {'single ms':>16} {'TP ms':>16} {'TP/single':>9} {'comm ms':>16} {'compute':>8} "
          f"{'alpha us':>8} {'beta GB/s':>9} {'tokens':>7} checks")
    for r in runs:
        if "error" in r:
            print(f"{r['preset']:8} ERROR {r['error'][-600:]}")
            continue
        fit = r["link"]["fit"]["one-shot"]
        print(f"{r['preset']:8} " + " ".join(f"{r[k]['median']:8.3f} ({r[k]['iqr']:5.3f})" for k in ("single_ms", "tp_ms"))
              + f" {r['ratio']:9.2f} {r['comm_ms']['median']:8.3f} ({r['comm_ms']['iqr']:5.3f}) "
              f"{r['compute_estimate_ms']:8.3f} {fit['alpha_s'] * 1e6:8.2f} {(fit['beta_Bps'] or math.inf) / 1e9:9.1f} "
              f"{r['tokens_match']:3}/{r['tokens_compared']:<3} {'ok' if r['graph_checks_ok'] else 'FAILED'}")
    print("ms: median (IQR) over the rounds; compute = TP - comm; alpha, beta: the one-shot fit of the sweep "
          "(on 2 GPUs the ring fit has the same beta and half the alpha); checks: the graphs' all-reduces summed")
    print(f"wrote {path} in {out['runtime_s']:.0f} s")
    return 0 if all("error" not in r for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
