"""Speculative decoding of the trained toy (notebook 04's measurement), repeated, with provenance.

    cd benchmarks && PYTHONPATH=.. python speculative_runs.py [--device cpu] [--runs 3] [--label contended] [--json OUT]

Each run is one ``speculative.run_speculative_demo`` (target "trained", drafts "trained-draft" and
prompt lookup, interleaved rounds): alpha, tokens per verification pass, c, v and the speed-up,
beside the formula's figures. The summary gives, per draft, the median over runs and the spread
(lowest and highest run). The JSON goes to results/speculative_<device>_<date>.json by default;
``--label`` says under what conditions it ran (e.g. "contended": a machine shared with other jobs).
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import asdict
from pathlib import Path

from common import provenance

from course_lib import machine, model, speculative

FIGURES = ("expected_tokens", "predicted_speedup", "round_cost", "modeled_speedup")


def record(r: speculative.DraftResult) -> dict:
    """A DraftResult as JSON, with the figures it derives and the sentence notebook 04 prints."""
    return {**asdict(r), "alpha": r.stats.alpha, "tokens_per_pass": r.stats.tokens_per_pass,
            **{name: getattr(r, name) for name in FIGURES}, "explanation": speculative.explain(r)}


def summary(runs: list[list[dict]]) -> dict:
    """Per draft and figure: the median over runs and the spread (lowest, highest)."""
    out = {}
    for i, first in enumerate(runs[0]):
        rows = [run[i] for run in runs]
        out[first["draft"]] = {key: {"median": statistics.median(r[key] for r in rows),
                                     "spread": [min(r[key] for r in rows), max(r[key] for r in rows)]}
                               for key in ("alpha", "tokens_per_pass", "cost_ratio", "verify_ratio", "speedup",
                                           *FIGURES)}
        out[first["draft"]]["identical_every_run"] = all(r["identical"] for r in rows)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None, help="default: machine.pick_device()")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds per run")
    ap.add_argument("--gamma", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=100)
    ap.add_argument("--prompt", default="Why is LLM inference so slow?")
    ap.add_argument("--label", default="", help='conditions of the run, e.g. "contended"')
    ap.add_argument("--json", default=None, help="output file (default: results/speculative_<device>_<date>.json)")
    args = ap.parse_args()
    device = machine.pick_device(args.device)
    threads = machine.use_threads()
    runs = []
    for i in range(args.runs):
        results = speculative.run_speculative_demo(args.prompt, args.gamma, args.max_new_tokens, device=device,
                                                   rounds=args.rounds)
        runs.append([record(r) for r in results])
        print(f"run {i + 1}: " + "; ".join(f"{r['draft']} alpha {r['alpha']:.2f}, {r['tokens_per_pass']:.2f} tok/pass, "
                                           f"c {r['cost_ratio']:.2f}, v {r['verify_ratio']:.2f}, "
                                           f"speed-up {r['speedup']:.2f}x" for r in runs[-1]), flush=True)
    sizes = {name: {"params": model.PRESETS[name].n_params(), "weight_bytes_fp32": model.PRESETS[name].weight_bytes()}
             for name in ("trained", "trained-draft")}
    info = provenance(device)
    out = {"what": "speculative decoding of the trained toy: notebook 04's measurement, repeated",
           "label": args.label, **info, "precision": "fp32", "threads": threads, "sizes": sizes,
           "settings": {"prompt": args.prompt, "gamma": args.gamma, "max_new_tokens": args.max_new_tokens,
                        "rounds": args.rounds, "repetitions": args.runs},
           "summary": summary(runs), "runs": runs}
    path = Path(args.json or Path(__file__).parent / "results" / f"speculative_{info['device']}_{info['date'][:10]}.json")
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    for draft, s in out["summary"].items():
        print(f"{draft}: speed-up median {s['speedup']['median']:.2f}x (runs {s['speedup']['spread'][0]:.2f}-"
              f"{s['speedup']['spread'][1]:.2f}), formula {s['predicted_speedup']['median']:.2f}x")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
