"""Record a reference run of the course on a GPU, for notebooks to show to CPU-only learners.

    python benchmarks/gpu_reference.py OUT_DIR [--fast]

Writes OUT_DIR/<card>.json with provenance and: the machine profile (roofs), batch-1 decode of
every GPU preset eager and in a CUDA graph, the decode breakdown of the largest, a batch sweep
(CUDA graphs) and a prefill sweep of the 7B-class toy, and, when two GPUs are present, the
tensor-parallel toy over NCCL. Copy the file to course_lib/data/reference/: the notebooks read
it from there (package data) and label it as recorded.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import time
from pathlib import Path

# NVLink multicast stays off on shared hosts (see the device notes); children inherit this.
os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")

import torch  # noqa: E402
from breakdown import decode_breakdown  # noqa: E402
from common import provenance  # noqa: E402

from course_lib import machine, measure, model, parallel, roofs  # noqa: E402
from course_lib.__main__ import format_budget, format_table  # noqa: E402


def _card_name(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _jsonable(records):
    extra = ("ms_per_token", "tokens_per_s", "mbu", "modeled_ms", "predicted_ms", "bound")
    return [{**dataclasses.asdict(r), **{k: getattr(r, k) for k in extra if hasattr(r, k)}} for r in records]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--fast", action="store_true")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("needs a CUDA GPU")
        return 2
    args.out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    device = torch.device("cuda")
    profile = roofs.get_profile(device, remeasure=True, fast=args.fast)
    print(profile.summary())
    result = {"provenance": provenance(device), "fast": args.fast, "profile": dataclasses.asdict(profile),
              "records": []}
    records = []
    for graph in (False, True):
        records += measure.decode_sweep(["gpu-s", "gpu-m", "gpu-1b", "7b"], device, "bf16", graph=graph,
                                        profile=profile, fast=args.fast, progress=False)
    print(format_table(records))
    for r in records:
        print(format_budget(r))
    result["records"] = _jsonable(records)
    toy = model.build_model("7b", device=device, precision="bf16")
    result["breakdown"] = decode_breakdown(toy, steps=30 if args.fast else 100)
    del toy
    machine.release(device)
    # the 7B-class toy in CUDA graphs: launch overhead out of the way, so the knee shows
    batches = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    toy = model.build_model("7b", device=device, precision="bf16", max_batch=batches[-1])
    sweep = measure.batch_sweep(toy, batches, context_len=128, profile=profile, fast=args.fast, progress=False,
                                graph=True)
    print(format_table(sweep))
    result["batch_sweep"] = _jsonable(sweep)
    # each prompt length replayed from its own CUDA graph: eager prefill of short prompts is launch-bound
    prefill = measure.prefill_sweep(toy, [1, 8, 32, 64, 128, 192, 255], profile=profile, fast=args.fast,
                                    progress=False, graph=True)
    for r in prefill:
        print(f"prefill {r.prompt_len:4d} tokens (CUDA graph): {r.ms:8.3f} ms, predicted {r.predicted_ms:8.3f} ms")
    result["prefill_sweep"] = _jsonable(prefill)
    del toy
    machine.release(device)
    if torch.cuda.device_count() >= 2:
        for preset in ("gpu-1b", "7b"):
            try:
                tp = parallel.run_tensor_parallel(preset, world_size=2, n_tokens=32, prompt_len=32,
                                                  precision="bf16", timeout=300)
                tp = dataclasses.asdict(tp) if dataclasses.is_dataclass(tp) else dict(tp)
                result.setdefault("tensor_parallel", []).append(
                    {k: v for k, v in tp.items() if not isinstance(v, torch.Tensor)})
            except (RuntimeError, ValueError) as err:
                result.setdefault("tensor_parallel", []).append({"preset": preset, "error": str(err)})
    result["reference_runtime_s"] = time.time() - started
    name = _card_name(torch.cuda.get_device_name(0))
    path = args.out_dir / f"{name}.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {path} in {result['reference_runtime_s']:.0f} s")
    for tp in result.get("tensor_parallel", []):
        if "error" in tp:
            print(f"TP {tp['preset']}: {tp['error'][:300]}")
        else:
            print(f"TP {tp['preset']} x{tp['world_size']} {tp['backend']}: step {tp['step_s'] * 1e3:.3f} ms, "
                  f"comm {tp['comm_share']:.0%}, identical {tp['identical_tokens']}, "
                  f"single device {tp['single_device_step_s'] * 1e3:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
