"""Tensor parallelism measured several times: notebook 04's run (``parallel.run_tensor_parallel``:
the decode step split over ranks and unsplit in one process, in the same interleaved rounds, then
the link's all-reduce sweep), repeated, written as JSON with provenance.

    python benchmarks/tp_runs.py [--preset cpu-m] [--precision fp32] [--runs 3] [--note "..."] [--out FILE]

One run is noisy on a shared machine; three show how far a figure moves from run to run. The
JSON holds the device, dtype, sizes, repetitions and, per run and across runs, the medians and
their spreads (IQR within a run, min-max across runs). Say in --note what else ran on the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import statistics
import time
from pathlib import Path

from common import provenance

from course_lib import parallel, specs

RESULTS = Path(__file__).parent / "results"


def across(runs: list[dict], key: str, scale: float = 1.0) -> dict:
    """Median, min and max of one figure across runs (a dotted key reaches into the link)."""
    values = [scale * (r[key] if "." not in key else r[key.split(".")[0]][key.split(".")[1]]) for r in runs]
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="cpu-m")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--note", default="", help="the machine's state, e.g. 'contended: shared with other jobs'")
    parser.add_argument("--out", type=Path, help="default: results/tp_runs_<device>_<date>.json")
    args = parser.parse_args(argv)
    started, runs = time.time(), []
    for i in range(args.runs):
        result = dataclasses.asdict(parallel.run_tensor_parallel(args.preset, args.world_size, precision=args.precision,
                                                                 timeout=600))
        runs.append(result)
        print(f"run {i + 1}: split {result['step_s'] * 1e3:.2f} ms (IQR {result['step_iqr_s'] * 1e3:.2f}), one process "
              f"{result['single_device_step_s'] * 1e3:.2f} ms (IQR {result['single_device_iqr_s'] * 1e3:.2f}), speed-up "
              f"{result['speedup']:.2f}x, communication {result['comm_share']:.0%}; link alpha "
              f"{result['link']['latency_s'] * 1e6:.0f} us, beta {result['link']['bandwidth_Bps'] / 1e9:.2f} GB/s",
              flush=True)
    first, config = runs[0], specs.get_config(args.preset)
    out = {
        "provenance": {**provenance(first["device"]), "load_avg_after": list(os.getloadavg())},
        "note": args.note,
        "device": first["device"], "backend": first["backend"], "dtype": first["precision"], "layout": first["layout"],
        "sizes": {"preset": args.preset, "world_size": args.world_size, "weight_bytes": config.weight_bytes(args.precision),
                  "context_len": first["context_len"], "allreduce_bytes": first["allreduce_bytes"],
                  "allreduces_per_step": first["allreduces_per_step"], "link_message_bytes": first["link"]["message_bytes"]},
        "repetitions": {"runs": args.runs, "timed_steps_per_run": first["repeats"]},
        "summary": {"speedup": across(runs, "speedup"), "step_ms": across(runs, "step_s", 1e3),
                    "single_device_ms": across(runs, "single_device_step_s", 1e3),
                    "comm_share": across(runs, "comm_share"), "link_alpha_us": across(runs, "link.latency_s", 1e6),
                    "link_beta_GBps": across(runs, "link.bandwidth_Bps", 1e-9)},
        "runs": [{k: v for k, v in r.items() if k != "tokens"} for r in runs],
        "runtime_s": time.time() - started,
    }
    where = f"cpu-{os.cpu_count()}core" if first["device"] == "cpu" else f"cuda-{args.world_size}gpu"
    path = args.out or RESULTS / f"tp_runs_{where}_{_dt.date.today().isoformat()}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    s = out["summary"]
    print(f"wrote {path}: speed-up median {s['speedup']['median']:.2f}x (runs {s['speedup']['min']:.2f}-"
          f"{s['speedup']['max']:.2f}), split {s['step_ms']['median']:.2f} ms, one process "
          f"{s['single_device_ms']['median']:.2f} ms, in {out['runtime_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
