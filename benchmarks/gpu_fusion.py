"""How close is the toy's CUDA-graph decode step to its GEMV-only lower bound, and what closes the gap?

    cd benchmarks && PYTHONPATH=.. python gpu_fusion.py [--preset 7b] [--out results/gpu_fusion.json]

Measured in the same interleaved rounds (ratios, not absolute times, are the result):
  gemv_only   the step's weight GEMVs alone (the same matrices, batch 1), one CUDA graph
  course      the course's decode step (machine.make_graphed_decode)
  compiled    the same step through torch.compile in each of --compile-modes (Inductor fuses the
              small elementwise kernels: norms, GELU, residual adds), then captured in a CUDA graph
Also counts the kernels one eager step launches, by name (torch.profiler).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from common import provenance

from course_lib import machine, model

HERE = Path(__file__).resolve().parent


def kernel_counts(toy, pos: int) -> collections.Counter:
    token = torch.zeros((1, 1), dtype=torch.long, device=toy.device)
    positions = torch.tensor(pos, device=toy.device)
    with torch.inference_mode(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        toy(token, positions, static_kv=True)
        torch.cuda.synchronize()
    return collections.Counter(e.name[:60] for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)


def gemv_only(toy):
    linears = [m for m in toy.modules() if isinstance(m, torch.nn.Linear)]
    inputs = [torch.randn(1, 1, m.in_features, device=toy.device, dtype=toy.dtype) for m in linears]

    def step():
        for x, m in zip(inputs, linears):
            F.linear(x, m.weight)

    return machine.graphed(step), len(linears)


def compiled_step(toy, mode: str):
    compiled = torch.compile(toy, mode=mode, dynamic=False, fullgraph=True)
    token = torch.zeros((1, 1), dtype=torch.long, device=toy.device)
    pos = torch.tensor(100, device=toy.device)

    def step():
        with torch.inference_mode():
            compiled(token, pos, static_kv=True)

    for _ in range(3):
        step()
    return machine.graphed(step)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="7b")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--compile-modes", default="default,max-autotune-no-cudagraphs")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "gpu_fusion.json")
    args = ap.parse_args(argv)
    device = torch.device("cuda")
    toy = model.build_model(args.preset, device=device, precision="bf16")
    counts = kernel_counts(toy, 100)
    print(f"eager step: {sum(counts.values())} kernels; most common: {counts.most_common(12)}")
    gemv, n_gemv = gemv_only(toy)
    decode = machine.make_graphed_decode(toy)
    token = torch.zeros((1, 1), dtype=torch.long, device=device)
    fns = {"gemv_only": gemv, "course": lambda: decode(token, 100)}
    for mode in args.compile_modes.split(","):
        try:
            fns[f"compiled ({mode})"] = compiled_step(toy, mode)
        except Exception as err:  # report, keep the other figures
            print(f"torch.compile ({mode}) failed: {err.__class__.__name__}: {str(err)[:300]}")
    times = machine.time_interleaved(fns, device, rounds=args.rounds, warmup=3, calls=50)
    base = times["gemv_only"].median
    result = {"provenance": provenance(device), "preset": args.preset, "precision": "bf16", "rounds": args.rounds,
              "calls_per_round": 50, "gemv_count": n_gemv, "eager_kernels": sum(counts.values()),
              "kernels_by_name": dict(counts.most_common()),
              "steps": {k: {"median_ms": m.median * 1e3, "iqr_ms": m.iqr * 1e3, "vs_gemv_only": m.median / base}
                        for k, m in times.items()}}
    for k, v in result["steps"].items():
        print(f"{k:40s} {v['median_ms']:.3f} ms (IQR {v['iqr_ms']:.3f})  {v['vs_gemv_only']:.2f}x GEMV-only")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
