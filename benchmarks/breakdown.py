"""The check beside the gap budget: time each part of a real decode step with module hooks.

    python benchmarks/breakdown.py [--preset cpu-l] [--device cpu] [--context 128]

The budget (course_lib.perf.decode_budget) predicts the step from microbenchmarks; this times the
step's own parts in place (a forward hook reads a synchronised clock as each module starts and
ends), so its parts add up to the step by construction and explain nothing on their own. Beside
the budget, they show which term is off when the two disagree. On a GPU the hooks' syncs slow
the step: read the shares, not the total.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F

from course_lib import machine, measure, model, roofs

COMPONENTS = {"embedding": ("embedding",), "norms": ("attn_norm", "mlp_norm", "final_norm"),
              "QKV + output projections": ("wqkv", "wo"), "attention core (SDPA, KV cache)": ("attention",),
              "MLP matrices (up, down)": ("w_up", "w_down"), "LM head": ("lm_head",)}


def decode_breakdown(toy, context_len: int = 128, steps: int = 100) -> dict:
    """Median ms per decode step of each component ("attention core" is the attention module
    minus its two projections; "the rest" is GELU, residual adds and Python between modules),
    and ``gemv_chain_ms``: the step's weight GEMVs alone, back to back."""
    device = toy.device
    step = measure.decode_step(toy, 1, context_len)
    spans, starts, handles = defaultdict(float), {}, []

    def clock():
        machine.synchronize(device)
        return time.perf_counter()

    def post(name):
        def hook(mod, args, output):
            spans[name] += clock() - starts.pop(id(mod))
        return hook

    names = {k for keys in COMPONENTS.values() for k in keys}
    for name, mod in toy.named_modules():
        if name.rsplit(".", 1)[-1] in names:
            handles += [mod.register_forward_pre_hook(lambda mod, args: starts.__setitem__(id(mod), clock())),
                        mod.register_forward_hook(post(name.rsplit(".", 1)[-1]))]
    rows = defaultdict(list)
    try:
        for i in range(steps + 3):
            spans.clear()
            t0 = clock()
            step()
            total = clock() - t0
            if i >= 3:  # warm-up steps are not recorded
                parts = {c: sum(spans[k] for k in keys) for c, keys in COMPONENTS.items()}
                parts["attention core (SDPA, KV cache)"] -= parts["QKV + output projections"]
                parts["the rest (GELU, adds, Python)"] = total - sum(parts.values())
                for c, v in [*parts.items(), ("step", total)]:
                    rows[c].append(v * 1e3)
    finally:
        for h in handles:
            h.remove()
    weights = [m.weight for m in toy.modules() if isinstance(m, torch.nn.Linear)]
    xs = [torch.rand(1, w.shape[1], dtype=w.dtype, device=device) for w in weights]

    def chain():
        for x, w in zip(xs, weights):
            F.linear(x, w)

    with torch.inference_mode():
        gemv = machine.time_fn(chain, device, 1.0)
    return {"step_ms": float(np.median(rows.pop("step"))), "gemv_chain_ms": gemv.median * 1e3,
            "components": {c: float(np.median(v)) for c, v in rows.items()}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="cpu-l")
    parser.add_argument("--device")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--context", type=int, default=128)
    args = parser.parse_args(argv)
    machine.use_threads()
    device = machine.pick_device(args.device)
    toy = model.build_model(args.preset, device=device, precision=args.precision)
    profile = roofs.get_profile(device)
    record = measure.time_decode(toy, context_len=args.context, profile=profile)
    parts = decode_breakdown(toy, args.context)
    print("modeled (gap budget, from microbenchmarks):")
    for term, ms in record.budget.items():
        print(f"  {term:<34} {ms:8.3f} ms")
    print(f"  {'modeled':<34} {record.modeled_ms:8.3f} ms; measured {record.ms_per_step:.3f} ms")
    print("timed in place (module hooks):")
    for part, ms in parts["components"].items():
        print(f"  {part:<34} {ms:8.3f} ms")
    print(f"  {'whole step':<34} {parts['step_ms']:8.3f} ms; the weight GEMVs alone: {parts['gemv_chain_ms']:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
