"""Research checks for CPUs, kept out of the learner's library.

    python benchmarks/cpu_checks.py threads [--preset cpu-l] [--rounds 5]
    python benchmarks/cpu_checks.py paired  [--preset cpu-l] [--rounds 5]

threads: batch-1 decode of a preset at 1 thread and at all cores, in interleaved rounds, and the
count whose *worst* round is fastest. Why the worst round: on a small shared machine a second
thread is faster while the other core is idle, but when another process wants that core every
parallel op waits for the descheduled thread, and a step can take 10-100x longer.

paired: the decode step beside the streaming-read and GEMV roofs, interleaved in the same
rounds, so each ratio compares numbers taken within a second of each other (on a shared
machine bandwidth drifts by tens of per cent from minute to minute).

Both print a small table and write JSON with provenance to --json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
from common import provenance

from course_lib import machine, measure, model


def _step(preset: str, context_len: int = 128):
    toy = model.build_model(preset, device="cpu")
    return toy, measure.decode_step(toy, 1, context_len)


def choose_threads(preset: str = "cpu-l", rounds: int = 5) -> dict:
    _, step = _step(preset)
    counts, original, times = sorted({1, os.cpu_count() or 1}), torch.get_num_threads(), {}
    try:
        for n in counts:  # interleaving thread counts inside one round would mix their warm-ups
            torch.set_num_threads(n)
            times[n] = [t * 1e3 for t in machine.time_fn(step, "cpu", repeats=rounds * 5, warmup=3).times]
    finally:
        torch.set_num_threads(original)
    chosen = min(counts, key=lambda n: (max(times[n]), n))
    return {"preset": preset, "ms_by_threads": times, "chosen": chosen, "rule": "fastest worst step"}


def paired(preset: str = "cpu-l", rounds: int = 5) -> dict:
    toy, step = _step(preset)
    precision = machine.precision_of(toy)
    moved = toy.config.weight_bytes(precision) + 129 * toy.config.kv_bytes_per_token(precision)
    x = machine.random_tensor((64 << 20,), torch.float32, "cpu")  # 256 MiB: the streaming-read roof
    mats = machine.random_tensor((32, 2048, 1024), machine.torch_dtype(precision), "cpu").unbind(0)
    v = machine.random_tensor((1, 1024), machine.torch_dtype(precision), "cpu", seed=1)

    def gemv():  # the kernel roof: one-row F.linear over cold 8 MiB matrices, as in roofs.gemv_bandwidth
        for w in mats:
            torch.nn.functional.linear(v, w)

    with torch.inference_mode():
        m = machine.time_interleaved({"decode": step, "read": x.sum, "gemv": gemv}, "cpu", rounds=rounds)
    rows = [{"decode_bandwidth": moved / d, "read_bandwidth": x.numel() * 4 / r,
             "gemv_bandwidth": sum(w.numel() * w.element_size() for w in mats) / g}
            for d, r, g in zip(m["decode"].times, m["read"].times, m["gemv"].times)]
    for row in rows:
        row["mbu_stream"] = row["decode_bandwidth"] / row["read_bandwidth"]
        row["mbu_kernel"] = row["decode_bandwidth"] / row["gemv_bandwidth"]
    median = {k: sorted(r[k] for r in rows)[len(rows) // 2] for k in rows[0]}
    return {"preset": preset, "precision": precision, "rounds": rows, "median": median}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("check", choices=["threads", "paired"])
    parser.add_argument("--preset", default="cpu-l")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = (choose_threads if args.check == "threads" else paired)(args.preset, args.rounds)
    result["provenance"] = provenance("cpu")
    print(json.dumps({k: v for k, v in result.items() if k != "provenance"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
