"""Print the small-op costs that price a CUDA-graph decode step's budget (roofs.small_op_costs), per preset.

    PYTHONPATH=.. python gpu_op_costs.py [--presets gpu-s,gpu-m,gpu-1b,7b] [--precision bf16] [--out x.json]

Each op is timed between cold 8 MiB GEMVs in a CUDA graph (with - without); "graph call" is what calling a
graphed step costs beyond its kernels (copying token and position in, the replay, the wait for it).
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from common import provenance

from course_lib import machine, roofs
from course_lib.specs import get_config


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", default="gpu-s,gpu-m,gpu-1b,7b")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    device = torch.device("cuda")
    result = {"provenance": provenance(device), "costs_us": {}}
    for name in args.presets.split(","):
        cfg = get_config(name)
        kv = machine.graph_bucket(args.context, cfg.max_seq_len)  # the slots the graphed step attends over
        costs = roofs.small_op_costs("cuda", args.precision, cfg, 1, kv, True, torch.get_num_threads(), False)
        result["costs_us"][name] = {k: v * 1e6 for k, v in costs.items()}
        print(name, "  ".join(f"{k} {v * 1e6:.2f}" for k, v in costs.items()), "(µs per call)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
