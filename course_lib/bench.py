"""``python -m course_lib bench``: measure this machine, then the toy model's decode speed.

    python -m course_lib bench [--device cpu|cuda|mps] [--json out.json] [--fast] [--presets a,b]
                               [--precision fp32] [--threads N] [--context N] [--no-graph]

Steps: (CPU) pick the torch thread count that decodes fastest; measure the machine profile
(bandwidth, matmul FLOP/s, per-op overhead, cache size); time batch-1 decode of each preset
(CPU: cpu-xs..cpu-l fp32; CUDA: gpu-s..7b bf16, eager and in a CUDA graph); print a table and
the R^2 of time against bytes; write everything, with provenance, to JSON.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
from functools import partial

import torch

from . import devices as _devices
from . import generate as _generate
from . import microbench as _mb
from . import model as _model
from .breakdown import decode_breakdown, format_breakdown
from .measure import count_ops, decode_sweep, free_model, linear_fit
from .profile import get_profile

DEFAULT_PRESETS = {"cpu": ["cpu-xs", "cpu-s", "cpu-m", "cpu-l"], "cuda": ["gpu-s", "gpu-m", "gpu-1b", "7b"],
                   "mps": ["gpu-s", "gpu-m", "gpu-1b"]}
DEFAULT_PRECISION = {"cpu": "fp32", "cuda": "bf16", "mps": "fp16"}


def choose_threads(preset="cpu-l", candidates=None, rounds: int = 5, context_len: int = 128,
                   precision: str = "fp32", fast: bool | None = None) -> dict:
    """Time batch-1 CPU decode of ``preset`` at each thread count, interleaved over ``rounds``
    rounds, and pick the count whose *worst* round is fastest (ties: fewer threads).

    Why the worst round, not the median: on a small shared machine a second thread is faster
    while the other core is idle, but when another process wants that core every parallel op
    waits for the descheduled thread and a step can take 10-100x longer. A thread count that is
    fast only when nobody else runs gives numbers a learner cannot reproduce. Restores the
    current thread count. Returns the times per round, medians, worst rounds and the choice."""
    cpus = os.cpu_count() or 1
    candidates = sorted(set(candidates or (1, cpus)))
    original = torch.get_num_threads()
    model = _model.build_model(preset, device="cpu", precision=precision)
    gen = torch.Generator().manual_seed(0)
    context_len = min(context_len, model.config.max_seq_len - 1)
    _generate.prefill(model, torch.randint(0, model.config.vocab_size, (1, context_len), generator=gen))
    token = torch.randint(0, model.config.vocab_size, (1, 1), generator=gen)
    times = {n: [] for n in candidates}
    step = partial(_generate.decode_one_token, model, token, context_len)
    try:
        for _ in range(rounds):
            for n in candidates:
                torch.set_num_threads(n)
                t = _mb.time_fn(step, "cpu",
                                min_run_time=0.3 if _mb.fast_mode(fast) else 0.6)
                times[n].append(t.median_s * 1e3)
    finally:
        torch.set_num_threads(original)
        del model, step
        free_model("cpu")
    medians = {n: sorted(ts)[len(ts) // 2] for n, ts in times.items()}
    worst = {n: max(ts) for n, ts in times.items()}
    chosen = min(candidates, key=lambda n: (worst[n], n))
    return {"preset": preset, "candidates": candidates, "ms_per_token_by_round": times,
            "median_ms": medians, "worst_ms": worst, "chosen": chosen, "rule": "fastest worst round"}


def paired_check(preset: str, device="cpu", precision: str = "fp32", rounds: int = 5, context_len: int = 128,
                 launch_overhead: float = 0.0, fast: bool | None = None,
                 launch_overhead_tight: float | None = None) -> dict:
    """Decode of ``preset`` and the read-bandwidth benchmarks, measured back to back in each of
    ``rounds`` rounds, so each ratio compares numbers taken within a second of each other (on a
    shared machine the bandwidth itself drifts by tens of per cent from minute to minute).

    Per round: achieved bandwidth of the step (weights + KV bytes / median step time) as a share
    of x.sum() bandwidth, of the 256 MiB GEMV bandwidth and of their maximum (the profile's
    read bandwidth and ``launch_overhead`` per op (the bench passes the in-context per-op cost;
    ``launch_overhead_tight``, if given, adds the same prediction with the tight-loop cost).
    Returns the rounds and the medians."""
    from . import perf

    device = _mb.resolve_device(device)
    model = _model.build_model(preset, device=device, precision=precision)
    cfg = model.config
    context_len = min(context_len, cfg.max_seq_len - 1)
    gen = torch.Generator().manual_seed(0)
    _generate.prefill(model, torch.randint(0, cfg.vocab_size, (1, context_len), generator=gen).to(device))
    token = torch.randint(0, cfg.vocab_size, (1, 1), generator=gen).to(device)
    n_ops = count_ops(model, 1, context_len)["aten_ops"]  # eager: every op pays the per-op cost
    kv = (context_len + 1) * perf.kv_cache_bytes_per_token(cfg.n_layers, cfg.n_kv_heads, cfg.head_dim, precision)
    moved = cfg.weight_bytes(precision) + kv
    rows = []
    step = partial(_generate.decode_one_token, model, token, context_len)
    try:
        for _ in range(rounds):
            s = _mb.read_bandwidth(device, fast=True).value
            g = _mb.gemv_bandwidth(device, fast=True).value
            t = _mb.time_fn(step, device,
                            min_run_time=0.3 if _mb.fast_mode(fast) else 0.6).median_s
            read = max(s, g)
            la = perf.launch_aware_decode_time(cfg.weight_bytes(precision), kv, read, n_ops, launch_overhead)
            tight = {}
            if launch_overhead_tight is not None:
                la_t = perf.launch_aware_decode_time(cfg.weight_bytes(precision), kv, read, n_ops, launch_overhead_tight)
                tight = {"launch_aware_tight_ms": la_t * 1e3, "launch_aware_tight_error": (t - la_t) / la_t}
            rows.append({**tight, "sum_bandwidth": s, "gemv_bandwidth": g, "ms_per_token": t * 1e3,
                         "achieved_bandwidth": moved / t, "mbu_vs_read": moved / t / read,
                         "mbu_vs_sum": moved / t / s, "mbu_vs_gemv": moved / t / g,
                         "launch_aware_ms": la * 1e3, "launch_aware_error": (t - la) / la})
    finally:
        del model, step
        free_model(device)

    def med(key):
        vals = sorted(r[key] for r in rows)
        return vals[len(vals) // 2]

    return {"preset": preset, "rounds": rows, "n_ops": n_ops, "launch_overhead": launch_overhead,
            **{f"median_{k}": med(k) for k in rows[0]}}


def provenance(device, argv=None) -> dict:
    """Where and how a benchmark ran: device, software versions, command line, load."""
    device = torch.device(device)
    info = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python -m course_lib bench", *(argv or [])]),
        "device": device.type, "device_name": _devices.device_name(device),
        "torch_version": torch.__version__, "python_version": platform.python_version(),
        "platform": platform.platform(), "cpu": _devices.device_name("cpu"), "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_avg_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update({"cuda_version": torch.version.cuda, "gpu_memory_bytes": props.total_memory,
                     "gpu_sm_count": props.multi_processor_count, "driver_version": _nvidia_driver()})
    return info


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             check=False, capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


def format_table(records: list[dict]) -> str:
    """The bench table as text: one row per decode record (a pure function)."""
    head = (f"{'preset':<8} {'mode':<10} {'weights MB':>10} {'ctx':>4} {'ms/token':>9} {'spread':>6} "
            f"{'bw-only ms':>10} {'launch-aware ms':>15} {'error':>6} {'MBU':>5} {'kernels':>7} {'in cache':>8}")
    lines = [head, "-" * len(head)]
    for r in records:
        err = (r["ms_per_token"] - r["launch_aware_ms"]) / r["launch_aware_ms"]
        lines.append(f"{r['preset']:<8} {r.get('mode', 'eager'):<10} {r['weight_bytes'] / 1e6:>10.1f} "
                     f"{r['context_len']:>4} {r['ms_per_token']:>9.3f} {r['spread']:>6.1%} "
                     f"{r['predicted_ms']:>10.3f} {r['launch_aware_ms']:>15.3f} {err:>+6.0%} "
                     f"{r['mbu_measured']:>5.0%} {r['n_kernels']:>7} {'yes' if r['fits_in_cache'] else 'no':>8}")
    return "\n".join(lines)


def _fits(records: list[dict]) -> dict:
    """time-vs-bytes fits per mode: over all presets and over those not in cache."""
    fits = {}
    for mode in sorted({r["mode"] for r in records}):
        for subset, rows in (("all", [r for r in records if r["mode"] == mode]),
                             ("out_of_cache", [r for r in records if r["mode"] == mode and not r["fits_in_cache"]])):
            if len({r["bytes_per_step"] for r in rows}) >= 2:
                slope, intercept, r2 = linear_fit([r["bytes_per_step"] for r in rows],
                                                  [r["ms_per_step"] / 1e3 for r in rows])
                fits[f"{mode}/{subset}"] = {"n": len(rows), "slope_s_per_byte": slope, "intercept_s": intercept,
                                            "r2": r2, "effective_bandwidth": 1 / slope if slope > 0 else None}
    return fits


def _summary(records: list[dict], profile) -> dict:
    """Headline numbers for the largest preset of each mode."""
    out = {}
    for mode in sorted({r["mode"] for r in records}):
        r = max((x for x in records if x["mode"] == mode), key=lambda x: x["bytes_per_step"])
        achieved = r["bytes_per_step"] / (r["ms_per_step"] / 1e3)
        details = profile.details
        out[mode] = {
            "preset": r["preset"], "achieved_bandwidth": achieved, "mbu_vs_read": r["mbu_measured"],
            "mbu_vs_copy": achieved / profile.copy_bandwidth,
            "mbu_vs_sum": achieved / details["read"]["value"] if "read" in details else None,
            "mbu_vs_gemv": achieved / details["gemv"]["value"] if "gemv" in details else None,
            "mbu_datasheet": r["mbu_datasheet"],
            "launch_aware_error": (r["ms_per_token"] - r["launch_aware_ms"]) / r["launch_aware_ms"],
        }
    return out


def run_bench(device=None, json_path=None, fast: bool = False, presets=None, precision: str | None = None,
              threads: int | None = None, graph: bool | None = None, context_len: int | None = None,
              progress: bool = True, argv=None, out=print) -> dict:
    """Profile the machine, time batch-1 decode of each preset, print a table, optionally write
    JSON. Returns the result dict (provenance, thread choice, profile, records, fits, summary)."""
    started = time.perf_counter()
    device, fast = _mb.resolve_device(device), bool(fast)
    presets = list(presets or DEFAULT_PRESETS[device.type])
    precision = precision or DEFAULT_PRECISION[device.type]
    original_threads = torch.get_num_threads()
    result = {"provenance": provenance(device, argv), "fast": fast, "threads": None}
    try:
        if device.type == "cpu":
            if threads is None:
                largest = max(presets, key=lambda p: _model.get_config(p).weight_bytes(precision))
                result["threads"] = choose_threads(largest, rounds=3 if fast else 5, precision=precision, fast=fast)
                threads = result["threads"]["chosen"]
                tc = result["threads"]
                out(f"threads: {largest} decode, median (worst) of {len(tc['ms_per_token_by_round'][1])} rounds: "
                    + ", ".join(f"{n} thread(s) {tc['median_ms'][n]:.2f} ({tc['worst_ms'][n]:.2f}) ms"
                                for n in tc["candidates"]) + f" -> using {threads}")
            torch.set_num_threads(int(threads))
        profile = get_profile(device, remeasure=True, fast=fast, progress=progress)
        out(profile.summary())
        modes = [False] + ([True] if device.type == "cuda" and graph is not False else [])
        records, skipped = [], {}
        for use_graph in modes:
            for preset in presets:
                try:
                    records += decode_sweep([preset], device, precision, context_len=context_len, graph=use_graph,
                                            profile=profile, fast=fast, progress=progress)
                except ValueError as err:  # does not fit in memory, precision unsupported...
                    skipped[preset] = str(err)
        result.update({"profile": profile.as_dict(), "records": records, "skipped": skipped,
                       "fits": _fits(records), "summary": _summary(records, profile) if records else {}})
        if records:  # explain the largest model: same-time ratios and where its step's time goes
            largest = max((r for r in records if r["mode"] == "eager"), key=lambda r: r["bytes_per_step"])
            result["paired"] = paired_check(largest["preset"], device, precision, rounds=3 if fast else 5,
                                            context_len=largest["context_len"],
                                            launch_overhead=profile.op_overhead, fast=fast,
                                            launch_overhead_tight=profile.launch_overhead)
            model = _model.build_model(largest["preset"], device=device, precision=precision)
            result["breakdown"] = decode_breakdown(model, largest["context_len"], fast=fast)
            del model
            free_model(device)
    finally:
        torch.set_num_threads(original_threads)
    result["provenance"]["load_avg_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    result["runtime_s"] = time.perf_counter() - started
    out("")
    out(format_table(records))
    for name, why in skipped.items():
        out(f"skipped {name}: {why}")
    for name, fit in result["fits"].items():
        bw = f", 1/slope = {fit['effective_bandwidth'] / 1e9:.1f} GB/s" if fit["effective_bandwidth"] else ""
        out(f"time vs bytes ({name}, {fit['n']} presets): R^2 = {fit['r2']:.4f}, "
            f"intercept {fit['intercept_s'] * 1e3:.3f} ms{bw}")
    for mode, s in result["summary"].items():
        out(f"{s['preset']} ({mode}): {s['achieved_bandwidth'] / 1e9:.1f} GB/s = {s['mbu_vs_read']:.0%} of read "
            f"bandwidth, {s['mbu_vs_copy']:.0%} of copy; measured vs launch-aware: {s['launch_aware_error']:+.0%}")
    if "paired" in result:
        p = result["paired"]
        out(f"{p['preset']}, decode and read bandwidth measured back to back ({len(p['rounds'])} rounds, medians): "
            f"{p['median_achieved_bandwidth'] / 1e9:.1f} GB/s = {p['median_mbu_vs_read']:.0%} of read bandwidth "
            f"(x.sum() {p['median_mbu_vs_sum']:.0%}, GEMV {p['median_mbu_vs_gemv']:.0%}); "
            f"measured vs launch-aware {p['median_launch_aware_error']:+.0%} ({p['n_ops']} ops x "
            f"{p['launch_overhead'] * 1e6:.1f} us in context"
            + (f"; with the tight-loop {result['profile']['launch_overhead'] * 1e6:.1f} us/op: "
               f"{p['median_launch_aware_tight_error']:+.0%})" if "median_launch_aware_tight_error" in p else ")"))
        out("")
        out(format_breakdown(result["breakdown"]))
    out(f"bench took {result['runtime_s']:.1f} s")
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=2, default=str)
        out(f"wrote {json_path}")
    return result


def bench_main(argv=None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m course_lib bench", description=__doc__.split("\n")[0])
    parser.add_argument("--device", help="cpu, cuda or mps (default: the best available)")
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument("--fast", action="store_true", help="smaller buffers, shorter runs (a CI smoke run)")
    parser.add_argument("--presets", help="comma-separated presets, e.g. cpu-s,cpu-l")
    parser.add_argument("--precision", help="fp32, bf16 or fp16 (default: fp32 on CPU, bf16 on CUDA)")
    parser.add_argument("--threads", type=int,
                        help="CPU: torch threads (default: of 1 and all cores, the one whose worst round is fastest)")
    parser.add_argument("--context", type=int, help="cached tokens before the timed step (default 128)")
    parser.add_argument("--no-graph", action="store_true", help="CUDA: skip the CUDA-graph sweep")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    presets = [p.strip() for p in args.presets.split(",") if p.strip()] if args.presets else None
    try:
        if args.threads is not None and args.threads < 1:
            raise ValueError(f"threads={args.threads} must be at least 1")
        for p in presets or []:
            _model.get_config(p)
        run_bench(args.device, args.json, args.fast, presets, args.precision, args.threads,
                  False if args.no_graph else None, args.context, not args.no_progress, argv=list(argv or []))
    except ValueError as err:
        parser.error(str(err))
    return 0


if __name__ == "__main__":
    sys.exit(bench_main(sys.argv[1:]))
