"""Command line: `python -m course_lib check | estimate | bench | quiz | guide`.

    python -m course_lib check
    python -m course_lib estimate --params 7e9 --precision fp16 --hardware A100-80GB [--json]
    python -m course_lib estimate --params 7e9 --precision int4 --bandwidth 2e12 --memory 80e9
    python -m course_lib bench [--device cpu|cuda|mps] [--json out.json] [--fast]
    python -m course_lib quiz --answers 01
    python -m course_lib guide [-o docs/INSTRUCTOR_GUIDE.md]

Bad arguments exit with status 2 and a message naming the argument.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import hardware, perf


def _estimate(args, parser) -> int:
    if (args.hardware is None) == (args.bandwidth is None):
        parser.error("argument --hardware/--bandwidth: give exactly one of --hardware NAME or --bandwidth BYTES_PER_S")
    try:
        if args.hardware is not None:
            hw = hardware.get(args.hardware)
            bandwidth, memory, device = hw.bandwidth, hw.memory, hw.name
        else:
            bandwidth, memory, device = args.bandwidth, args.memory, "custom"
        t = perf.decode_time(args.params, args.precision, bandwidth, kv_bytes=args.kv_bytes)
        result = {
            "device": device, "n_params": args.params, "precision": args.precision.lower(),
            "bandwidth": bandwidth, "memory": memory,
            "weight_bytes": perf.weight_bytes(args.params, args.precision),
            "kv_bytes": args.kv_bytes, "ms_per_token": t * 1e3, "tokens_per_s": 1 / t,
            "fits": None if memory is None else perf.fits(args.params, args.precision, memory, args.kv_bytes),
            "min_devices": None if memory is None else perf.min_devices(args.params, args.precision, memory),
        }
    except ValueError as err:
        parser.error(_name_flag(str(err)))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.params:.3g} parameters at {result['precision']} on {device} ({bandwidth / 1e9:,.0f} GB/s)")
    print(f"  weights:        {result['weight_bytes'] / 1e9:,.2f} GB")
    print(f"  bound:          {result['ms_per_token']:.2f} ms/token  = {result['tokens_per_s']:,.1f} tokens/s "
          "(batch 1, bandwidth only: a lower bound on time)")
    if memory is not None:
        verdict = "yes" if result["fits"] else f"NO - needs at least {result['min_devices']} such devices (or quantisation)"
        print(f"  fits in {memory / 1e9:,.0f} GB: {verdict}")
    return 0


# perf's argument names -> the command-line flags a user typed
_FLAGS = {"n_params": "--params", "precision": "--precision", "bandwidth": "--bandwidth",
          "memory": "--memory", "kv_bytes": "--kv-bytes", "hardware": "--hardware"}


def _name_flag(message: str) -> str:
    """Prefix perf's error message with the flag it is about, e.g. 'argument --params: ...'."""
    flag = _FLAGS.get(message.split("=", 1)[0])
    return f"argument {flag}: {message}" if flag else message


def _positive_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (use e.g. 7e9)") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m course_lib", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="pre-flight: will the course work on this machine?")
    est = sub.add_parser("estimate", help="batch-1 decode bound for a model on a device")
    est.add_argument("--params", type=_positive_float, required=True, help="parameters, e.g. 7e9")
    est.add_argument("--precision", default="fp16", help="fp32, fp16, bf16, fp8, int8 or int4")
    est.add_argument("--hardware", help=f"a catalogue device: {', '.join(hardware.names())}")
    est.add_argument("--bandwidth", type=_positive_float, help="memory bandwidth in bytes/s, e.g. 2e12")
    est.add_argument("--memory", type=_positive_float, help="device memory in bytes (with --bandwidth)")
    est.add_argument("--kv-bytes", type=_positive_float, default=0.0, help="KV-cache bytes read per token")
    est.add_argument("--json", action="store_true", help="print JSON")
    # bench has its own parser (course_lib.bench): main() hands it the arguments untouched
    sub.add_parser("bench", help="measure this machine and the toy model's decode speed", add_help=False)
    quiz = sub.add_parser("quiz", help="instructors: print a notebook's quiz answer key")
    quiz.add_argument("--answers", required=True, metavar="NN", help="notebook number, e.g. 01")
    guide = sub.add_parser("guide", help="instructors: print the workshop guide (Markdown)")
    guide.add_argument("-o", "--output", metavar="PATH", help="write it to PATH (UTF-8) instead of printing it")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        from .bench import bench_main

        return bench_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "check":
        from .check import main as check_main

        return check_main()
    if args.command == "estimate":
        return _estimate(args, parser)
    if args.command == "guide":
        from .workshop import instructor_guide

        text = instructor_guide()
        if not args.output:
            print(text, end="")
            return 0
        try:
            with open(args.output, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
        except OSError as err:
            parser.error(f"argument --output: cannot write {args.output!r}: {err.strerror}")
        return 0
    from .quiz import answer_key

    try:
        print(answer_key(args.answers))
    except ValueError as err:
        parser.error(f"argument --answers: {err}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
