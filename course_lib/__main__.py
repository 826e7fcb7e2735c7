"""Command line: `python -m course_lib check | estimate | bench | quiz`.

    python -m course_lib check
    python -m course_lib estimate --params 7e9 --precision fp16 --hardware A100-80GB [--json]
    python -m course_lib estimate --params 7e9 --precision int4 --bandwidth 2e12 --memory 80e9
    python -m course_lib bench [--device cpu|cuda|mps] [--json out.json] [--fast] [--presets a,b]
    python -m course_lib quiz --answers 01

`check` is the learner's pre-flight (versions, device, free memory, JupyterLab extensions); `bench`
measures this machine's roofs and times batch-1 decode of the toy presets against perf's predictions.
Research tools (thread choice, paired checks, the GPU recorder) are in the repository's benchmarks/.
Bad arguments exit with status 2 and a message naming the argument.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from . import perf, specs

MIN_FREE_MEMORY = 1.5e9  # bytes: the CPU notebooks peak near 1.2 GB
REQUIRED_PACKAGES = {"torch": "the toy transformer", "numpy": "numbers", "ipywidgets": "sliders and quizzes",
                     "plotly": "charts", "anywidget": "plotly's FigureWidget", "jupyterlab": "the notebooks",
                     "tqdm": "progress bars"}
# JupyterLab front-end extensions without which widgets show "Error displaying widget"
LAB_EXTENSIONS = {"@jupyter-widgets/jupyterlab-manager": "jupyterlab_widgets", "anywidget": "anywidget",
                  "jupyterlab-plotly": "plotly"}
DEFAULT_PRESETS = {"cpu": "cpu-xs,cpu-s,cpu-m,cpu-l", "cuda": "gpu-s,gpu-m,gpu-1b,7b", "mps": "gpu-s,gpu-m,gpu-1b"}
DEFAULT_PRECISION = {"cpu": "fp32", "cuda": "bf16", "mps": "fp16"}


# ----------------------------------------------------------------------------- check
@dataclass(frozen=True)
class Check:
    """One line of the pre-flight report, and how to fix it if it failed."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def run_checks() -> list[Check]:
    """Every pre-flight check, in the order printed."""
    ok = sys.version_info >= (3, 10)
    checks = [Check("Python", ok, platform.python_version(), "" if ok else "install Python 3.10 to 3.13")]
    for dist, purpose in REQUIRED_PACKAGES.items():
        try:
            checks.append(Check(dist, True, metadata.version(dist)))
        except metadata.PackageNotFoundError:
            checks.append(Check(dist, False, f"missing (needed for {purpose})",
                                "run `python3 course.py open`, or `pip install -r requirements.txt`"))
    if all(c.ok for c in checks if c.name == "torch"):
        from . import machine

        device = machine.pick_device()
        free = machine.free_memory(device)
        checks.append(Check("device", True, f"{device.type}: {machine.device_name(device)} "
                            f"(runs {', '.join(machine.supported_precisions(device))})"))
        checks.append(Check("free memory", free >= MIN_FREE_MEMORY, f"{free / 1e9:.1f} GB free on {device.type}",
                            "close other programs: the notebooks need about 1.5 GB"))
        if device.type == "cpu":
            checks.append(Check("GPU", True, "none found: the course runs on the CPU (fine; notebooks also show "
                                "recorded GPU reference runs)"))
    try:
        from jupyter_core.paths import jupyter_path

        folders = [Path(p) for p in jupyter_path("labextensions")]
    except ImportError:
        folders = []
    for name, dist in LAB_EXTENSIONS.items():
        found = next((f for f in folders if (f / name / "package.json").exists()), None)
        checks.append(Check(f"lab extension {name}", found is not None,
                            f"installed in {found}" if found else "not found: widgets or charts would not display",
                            f"`pip install --force-reinstall {dist}` in the course environment, "
                            "then restart JupyterLab"))
    return checks


def report(checks: list[Check]) -> tuple[str, int]:
    """The printed report and the exit status (0 only when every check passed)."""
    lines = ["Course pre-flight: 'Why is LLM inference so slow?'", ""]
    lines += [f"  [{'ok  ' if c.ok else 'FAIL'}] {c.name:<40} {c.detail}" for c in checks]
    problems = [c for c in checks if not c.ok]
    if problems:
        lines += ["", f"Verdict: NOT READY - {len(problems)} problem(s) to fix:"]
        return "\n".join(lines + [f"  - {c.name}: {c.fix}" for c in problems]), 1
    return "\n".join(lines + ["", "Verdict: READY - open the course with `python3 course.py open`."]), 0


# ----------------------------------------------------------------------------- estimate
def _estimate(args, parser) -> int:
    try:
        if args.hardware is not None:
            hw = specs.get(args.hardware)
            bandwidth, memory, device = hw.bandwidth, hw.memory, hw.name
        else:
            bandwidth, memory, device = args.bandwidth, args.memory, "custom"
        result = {"device": device, "bandwidth": bandwidth, "memory": memory,
                  **perf.decode_estimate(args.params, args.precision, bandwidth, memory, args.kv_bytes)}
    except ValueError as err:
        parser.error(_name_flag(str(err)))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.params:.3g} parameters at {result['precision']} on {device} ({bandwidth / 1e9:,.0f} GB/s)")
    print(f"  weights:        {result['weight_bytes'] / 1e9:,.2f} GB")
    if result["kv_bytes"]:
        print(f"  KV cache read:  {result['kv_bytes'] / 1e9:,.2f} GB per token (counted in the bound and in the fit)")
    print(f"  bound:          {result['ms_per_token']:.2f} ms/token  = {result['tokens_per_s']:,.1f} tokens/s "
          "(batch 1, bandwidth only: a lower bound on time)")
    if memory is not None:
        verdict = "yes" if result["fits"] else (f"NO - needs at least {result['min_devices']} such devices "
                                                "(or quantisation)")
        print(f"  fits in {memory / 1e9:,.0f} GB: {verdict}")
    return 0


# perf's argument names -> the command-line flags a user typed
_FLAGS = {"n_params": "--params", "precision": "--precision", "bandwidth": "--bandwidth",
          "memory": "--memory", "kv_bytes": "--kv-bytes", "hardware": "--hardware"}


def _name_flag(message: str) -> str:
    """Prefix perf's error message with the flag it is about, e.g. 'argument --params: ...'."""
    flag = _FLAGS.get(message.split("=", 1)[0])
    return f"argument {flag}: {message}" if flag else message


# ----------------------------------------------------------------------------- bench
def format_table(records) -> str:
    """The bench table as text: one row per decode record (a pure function)."""
    head = (f"{'preset':<8} {'mode':<10} {'prec':<5} {'layout':<6} {'weights MB':>10} {'ms/token':>9} {'IQR':>6} {'bound ms':>9} "
            f"{'modeled ms':>10} {'error':>6} {'MBU':>5} {'of kernel':>9} {'in cache':>8}")
    rows = [f"{r.preset:<8} {r.mode:<10} {r.precision:<5} {r.layout:<6} {r.weight_bytes / 1e6:>10.1f} {r.ms_per_token:>9.3f} "
            f"{r.iqr_ms / r.ms_per_step:>6.1%} {r.predicted_ms:>9.3f} {r.modeled_ms:>10.3f} {r.residual:>+6.0%} "
            f"{r.mbu:>5.0%} {r.mbu_kernel:>9.0%} {'yes' if r.fits_in_cache else 'no':>8}" for r in records]
    return "\n".join([head, "-" * len(head), *rows])


def format_budget(r) -> str:
    """A record's gap budget as a text waterfall: each term, its running total, a bar."""
    scale, total, lines = 40 / max(r.ms_per_step, r.modeled_ms), 0.0, [f"gap budget of {r.preset} ({r.mode}):"]
    for term, ms in r.budget.items():
        total += ms
        lines.append(f"  {term:<24} {ms:+9.3f} ms  = {total:8.3f}  {' ' * int(scale * (total - max(ms, 0)))}"
                     f"{'#' * max(int(scale * abs(ms)), 1 if ms else 0)}")
    lines.append(f"  {'measured (median)':<24} {r.ms_per_step:9.3f} ms  ({r.residual:+.0%} against the model)")
    return "\n".join(lines)


def _bench(args, parser) -> int:
    from . import machine, measure, roofs

    try:
        device = machine.pick_device(args.device)
        names = [p.strip() for p in (args.presets or DEFAULT_PRESETS[device.type]).split(",") if p.strip()]
        for p in names:
            specs.get_config(p)
        precision = machine.check_precision(device, args.precision or DEFAULT_PRECISION[device.type])
        machine.use_threads(args.threads)
    except ValueError as err:
        parser.error(str(err))
    progress, graphs = not args.no_progress, [False, True] if device.type == "cuda" and not args.no_graph else [False]
    profile = roofs.get_profile(device, remeasure=True, fast=args.fast, progress=progress)
    print(profile.summary())
    records, skipped = [], {}
    for graph in graphs:
        for preset in names:  # one at a time: a preset that does not fit is skipped, not the whole run
            try:
                records += measure.decode_sweep([preset], device, precision, context_len=args.context, graph=graph,
                                                profile=profile, fast=args.fast, progress=progress)
            except ValueError as err:
                skipped[preset] = str(err)
    print("\n" + format_table(records))
    for mode in sorted({r.mode for r in records}):  # the largest preset of each mode, term by term
        print("\n" + format_budget(max((r for r in records if r.mode == mode), key=lambda r: r.bytes_per_step)))
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    if args.json:
        rows = [{**asdict(r), "ms_per_token": r.ms_per_token, "modeled_ms": r.modeled_ms, "mbu_stream": r.mbu,
                 "mbu_kernel": r.mbu_kernel} for r in records]
        Path(args.json).write_text(json.dumps({"device_name": profile.device_name, "profile": asdict(profile),
                                               "records": rows, "skipped": skipped}, indent=2))
        print(f"wrote {args.json}")
    return 0


# ----------------------------------------------------------------------------- the parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m course_lib", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="pre-flight: will the course work on this machine?")
    est = sub.add_parser("estimate", help="batch-1 decode bound for a model on a device")
    est.add_argument("--params", type=float, required=True, help="parameters, e.g. 7e9")
    est.add_argument("--precision", default="fp16", help="fp32, fp16, bf16, fp8, int8 or int4")
    device = est.add_mutually_exclusive_group(required=True)
    device.add_argument("--hardware", help=f"a catalogue device: {', '.join(hw.name for hw in specs.catalog())}")
    device.add_argument("--bandwidth", type=float, help="memory bandwidth in bytes/s, e.g. 2e12")
    est.add_argument("--memory", type=float, help="device memory in bytes (with --bandwidth)")
    est.add_argument("--kv-bytes", type=float, default=0.0,
                     help="KV-cache bytes read per generated token (context length x bytes per token of context)")
    est.add_argument("--json", action="store_true", help="print JSON")
    bench = sub.add_parser("bench", help="measure this machine's roofs and the toy model's decode speed")
    bench.add_argument("--device", help="cpu, cuda or mps (default: the best available)")
    bench.add_argument("--json", help="write the results to this JSON file")
    bench.add_argument("--fast", action="store_true", help="shorter runs (a smoke run)")
    bench.add_argument("--presets", help="comma-separated presets, e.g. cpu-s,cpu-l")
    bench.add_argument("--precision", help="fp32, bf16 or fp16 (default: fp32 on CPU, bf16 on CUDA)")
    bench.add_argument("--threads", type=int, help="CPU threads (default: $COURSE_THREADS or 1)")
    bench.add_argument("--context", type=int, help="cached tokens before the timed step (default 128)")
    bench.add_argument("--no-graph", action="store_true", help="CUDA: skip the CUDA-graph sweep")
    bench.add_argument("--no-progress", action="store_true", help="no progress bars")
    quiz = sub.add_parser("quiz", help="instructors: print a notebook's quiz answer key")
    quiz.add_argument("--answers", required=True, metavar="NN", help="notebook number, e.g. 01")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "check":
        text, status = report(run_checks())
        print(text)
        return status
    if args.command == "estimate":
        return _estimate(args, parser)
    if args.command == "bench":
        return _bench(args, parser)
    from .checks import answer_key

    try:
        print(answer_key(args.answers))
    except ValueError as err:
        parser.error(f"argument --answers: {err}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
