"""Where a decode step's time goes: per-component timing of the toy model's decode step.

``decode_breakdown`` times each part of one batch-1 decode step with forward hooks on the
model's modules (the clock is read, after a device sync, when each module starts and ends):
the weight matrices (Q/K/V and output projections, MLP up/down, LM head), the attention core
(split, cache write, scaled-dot-product attention over the cache, reshape), the norms, GELU and
residual adds, and what runs outside the modules. ``gemv_chain`` is the lower bound: only the
step's matrix-vector products, back to back, with nothing in between.

On a GPU the hooks' syncs serialise the step, so there the shares describe a slowed-down step;
on the CPU (where the ops run synchronously anyway) they cost ~1 us each.
"""

from __future__ import annotations

import time
from collections import defaultdict

import torch
import torch.nn.functional as F

from . import devices as _devices
from . import generate as _generate
from . import microbench as _mb
from . import perf

_COMPONENTS = ("embedding", "norms", "QKV + output projections", "attention core (SDPA, KV cache, reshapes)",
               "MLP matrices (up, down)", "GELU + residual adds", "LM head", "outside the modules")


def _matrices(model) -> list[torch.Tensor]:
    return [mod.weight for mod in model.modules() if isinstance(mod, torch.nn.Linear)]


def gemv_chain(model, fast: bool | None = None) -> dict:
    """Time only the decode step's weight GEMVs (every nn.Linear of the model, batch 1, in
    order, nothing else): the best this matmul library does on these shapes, and the bytes
    over that time as a bandwidth."""
    device = model.device
    weights = _matrices(model)
    gen = torch.Generator().manual_seed(0)
    xs = [torch.rand(1, w.shape[1], generator=gen).to(device=device, dtype=w.dtype) for w in weights]

    def chain():
        for x, w in zip(xs, weights):
            F.linear(x, w)

    with torch.inference_mode():
        t = _mb.time_fn(chain, device, min_run_time=0.3 if _mb.fast_mode(fast) else 1.0)
    nbytes = sum(w.numel() * w.element_size() for w in weights)
    return {"n_matrices": len(weights), "bytes": nbytes, "ms": t.median_s * 1e3, "spread": t.spread,
            "bandwidth": nbytes / t.median_s}


def decode_breakdown(model, context_len: int = 128, steps: int | None = None, fast: bool | None = None) -> dict:
    """Median time per decode step of each component (see the module docstring).

    Returns ``{"step_ms", "components": [{"component", "ms", "share", "bytes", "bandwidth"}, ...],
    "gemv_chain": gemv_chain(model)}``; the component times add up to the step time.
    """
    device, cfg = model.device, model.config
    context_len = min(context_len, cfg.max_seq_len - 1)
    steps = steps or (30 if _mb.fast_mode(fast) else 100)
    gen = torch.Generator().manual_seed(0)
    if context_len:
        _generate.prefill(model, torch.randint(0, cfg.vocab_size, (1, context_len), generator=gen).to(device))
    token = torch.randint(0, cfg.vocab_size, (1, 1), generator=gen).to(device)

    def clock():
        _devices.synchronize(device)
        return time.perf_counter()

    spans: dict[str, float] = defaultdict(float)
    starts: dict[int, float] = {}

    def pre(mod, args):
        starts[id(mod)] = clock()

    def post_for(name):
        def post(mod, args, output):
            spans[name] += clock() - starts.pop(id(mod))
        return post

    handles = []
    for name, mod in model.named_modules():
        key = name.rsplit(".", 1)[-1] if name else "model"
        if key in ("model", "embedding", "attn_norm", "mlp_norm", "final_norm", "attention", "wqkv", "wo",
                   "w_up", "w_down", "lm_head") or (name.startswith("layers.") and name.count(".") == 1):
            key = "block" if name.startswith("layers.") and name.count(".") == 1 else key
            handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post_for(key))]
    per_step = defaultdict(list)
    try:
        for i in range(steps + 3):
            spans.clear()
            t0 = clock()
            _generate.decode_one_token(model, token, context_len)
            total = clock() - t0
            if i >= 3:  # warm-up steps are not recorded
                s = spans
                parts = {
                    "embedding": s["embedding"],
                    "norms": s["attn_norm"] + s["mlp_norm"] + s["final_norm"],
                    "QKV + output projections": s["wqkv"] + s["wo"],
                    "attention core (SDPA, KV cache, reshapes)": s["attention"] - s["wqkv"] - s["wo"],
                    "MLP matrices (up, down)": s["w_up"] + s["w_down"],
                    "GELU + residual adds": s["block"] - s["attn_norm"] - s["attention"] - s["mlp_norm"]
                    - s["w_up"] - s["w_down"],
                    "LM head": s["lm_head"],
                    "outside the modules": total - s["model"],
                }
                parts["outside the modules"] += s["model"] - sum(v for k, v in parts.items() if k != "outside the modules")
                for k, v in parts.items():
                    per_step[k].append(v)
                per_step["step"].append(total)
    finally:
        for h in handles:
            h.remove()

    def median(xs):
        return sorted(xs)[len(xs) // 2]

    b = model.lm_head.weight.element_size()
    d, L = cfg.d_model, cfg.n_layers
    kv = (context_len + 1) * perf.kv_cache_bytes_per_token(L, cfg.n_kv_heads, cfg.head_dim,
                                                           "fp32" if b == 4 else "bf16")
    nbytes = {"embedding": d * b, "norms": (2 * L + 1) * d * b,
              "QKV + output projections": sum(layer.attention.wqkv.weight.numel() + layer.attention.wo.weight.numel()
                                              for layer in model.layers) * b,
              "attention core (SDPA, KV cache, reshapes)": kv,
              "MLP matrices (up, down)": sum(layer.w_up.weight.numel() + layer.w_down.weight.numel()
                                             for layer in model.layers) * b,
              "GELU + residual adds": 0, "LM head": model.lm_head.weight.numel() * b, "outside the modules": 0}
    step = median(per_step["step"])
    comps = []
    for name in _COMPONENTS:
        ms = median(per_step[name]) * 1e3
        comps.append({"component": name, "ms": ms, "share": ms / (step * 1e3), "bytes": nbytes[name],
                      "bandwidth": nbytes[name] / (ms / 1e3) if nbytes[name] and ms > 0 else None})
    return {"step_ms": step * 1e3, "context_len": context_len, "steps": steps, "components": comps,
            "gemv_chain": gemv_chain(model, fast)}


def format_breakdown(result: dict) -> str:
    """The breakdown as a small text table."""
    lines = [f"decode step {result['step_ms']:.3f} ms (median of {result['steps']}, context {result['context_len']})",
             f"{'component':<44} {'ms':>8} {'share':>6} {'MB':>8} {'GB/s':>6}"]
    for c in result["components"]:
        bw = f"{c['bandwidth'] / 1e9:6.1f}" if c["bandwidth"] else "     -"
        lines.append(f"{c['component']:<44} {c['ms']:8.3f} {c['share']:6.1%} {c['bytes'] / 1e6:8.2f} {bw}")
    g = result["gemv_chain"]
    lines.append(f"only the {g['n_matrices']} weight GEMVs, back to back: {g['ms']:.3f} ms = "
                 f"{g['bandwidth'] / 1e9:.1f} GB/s over {g['bytes'] / 1e6:.1f} MB")
    return "\n".join(lines)
