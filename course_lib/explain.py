"""The sentences that read a learner's own results (measure's records or their dicts, a guess): Markdown
computed from the numbers, never typed, with a branch for each case that occurs, tested against recorded
profiles of more than one machine. Pure Python on perf, so the browser track runs it too."""

from __future__ import annotations

import bisect
import math
from itertools import pairwise

from . import perf
from .perf import format_ms, format_number

_GROWTH_TERMS = {"attention (KV reads)": "attention reading each sequence's own KV cache, which no batch shares",
                 "other small ops": "small operations (norms, activations, cache writes) that grow with the batch",
                 "compute past the ridge": "arithmetic past the ridge", "kernel below the roof": "the matmul kernel"}

# the costs a decode step can pay above its memory roof, as options for a guess (keys: explain_decode's)
GAPS = {"kernel": "the matmul kernel streaming below the memory roof", "overhead": "fixed costs per op (small ops, launches)",
        "attention": "attention reading the KV cache", "compute": "compute past the ridge"}
NEAR_THE_LINE = "none: the modeled step stays within 25 % of the memory roof"
NO_GUESS = " (No guess committed: try the next one!)"

# what a lower precision did to the step time, as options for a guess and as verdicts (same order)
PRECISION_OUTCOMES = ("about half the time", "less time, but not half", "about the same time", "more time")
_PRECISION_VERDICTS = ("time fell about as much as the bytes", "time fell, but less than the bytes",
                       "time did **not** fall", "it got **slower**")


def field(record, key: str, default=None):
    """A field of a record: measure's dataclasses and plain dicts (recorded runs, predictions) alike."""
    return record.get(key, default) if isinstance(record, dict) else getattr(record, key, default)


def group_by_context(records) -> dict:
    """Records grouped by (label, context length), each group sorted by batch."""
    groups: dict = {}
    for r in records:
        groups.setdefault((field(r, "label", "measured"), field(r, "context_len")), []).append(r)
    return {k: sorted(rows, key=lambda r: field(r, "batch")) for k, rows in groups.items()}


def modeled_of(r) -> float:
    """The modeled step (ms): the sum of a decode record's budget."""
    return sum(field(r, "budget").values())


def _crossing(batches, times, target: float) -> float | None:
    """The batch at which ``times`` first reaches ``target``, on log batch (the first if it starts there; None if never)."""
    if times[0] >= target:  # (the earliest knee noisy timings allow can be batch 1 itself)
        return batches[0]
    steps = pairwise(zip(batches, times))
    return next((b0 * (b1 / b0) ** ((target - t0) / (t1 - t0)) for (b0, t0), (b1, t1) in steps if t1 >= target > t0), None)


def batch_knee(records, growth: float = 1.25, modeled: bool = False) -> dict:
    """Per context length, the batch at which a decode step first takes ``growth`` times as long as at batch 1,
    interpolated on log batch between the sizes measured, as (knee, low, high): low and high move every step by half its
    IQR, the earliest and latest knee the noise allows. None where no batch got there. ``modeled``: the modeled steps."""
    knees = {}
    for (_, ctx), rows in group_by_context(records).items():
        if field(rows[0], "batch") != 1:
            raise ValueError(f"the records need batch 1 at context {ctx}")
        batches = [field(r, "batch") for r in rows]
        times = [modeled_of(r) if modeled else field(r, "ms_per_step") for r in rows]
        noise = [0.0 if modeled else (field(r, "iqr_ms") or 0.0) / 2 for r in rows]
        slow, fast = ([t + sign * e for t, e in zip(times, noise)] for sign in (1, -1))
        knees[ctx] = (_crossing(batches, times, growth * times[0]), _crossing(batches, slow, growth * fast[0]),
                      _crossing(batches, fast, growth * slow[0]))
    return knees


def explain_knee(records, guess: float | None, critical: float, growth: float = 1.25) -> str:
    """The batch-sweep reveal: when the step began to grow (measured, modeled, guessed) at the
    shortest context, against the weights-only roofline's knee (``growth`` x the critical batch)."""
    ctx = min(field(r, "context_len") for r in records)
    rows = sorted((r for r in records if field(r, "context_len") == ctx), key=lambda r: field(r, "batch"))
    (knee, low, high), model = batch_knee(rows, growth)[ctx], batch_knee(rows, growth, modeled=True)[ctx][0]
    first, top, roof = rows[0], field(rows[-1], "batch"), growth * critical  # batch_knee checked: rows[0] is batch 1
    if knee is None or model is None:
        said = [f"no knee up to batch {top}" if x is None else f"{x:.1f} sequences" for x in (knee, model)]
        text = (f"Measured at context {ctx}: {said[0]}, the batch at which a step first took {growth:g}× as long as at "
                f"batch 1. The model of the step: {said[1]}." + (f" Your guess: {guess:g}." if guess is not None else ""))
    else:
        text = guess_verdict(guess, model, knee, ((high or top) - (low or knee)) / 2, "sequences",
                             "The model of the step").removesuffix(NO_GUESS)
    text += (f" By the weights-only roofline the step stays flat up to the critical batch, {critical:.1f}, "
             f"and grows {growth:g}× by {roof:.1f}.")
    if noisy := [str(field(r, "batch")) for r in rows if (field(r, "iqr_ms") or 0) > perf.NOISY * field(r, "ms_per_step")]:
        text += f" ⚠ Noisy at batch {', '.join(noisy)}: read this knee loosely, or re-run the cell."
    if knee is None and top < roof:
        return text + f" That fits: the roofline's knee lies beyond batch {top} too."
    if knee is not None and knee < 0.8 * roof:
        past = next(r for r in rows if field(r, "batch") >= knee)  # the first batch past the knee
        grew = {k: v - field(first, "budget").get(k, 0.0) for k, v in field(past, "budget").items()}
        most = max(grew, key=grew.get)
        jumps = {c: (field(g[1], "ms_per_step") / field(g[0], "ms_per_step"), modeled_of(g[1]) / modeled_of(g[0]),
                     field(g[1], "batch")) for (_, c), g in group_by_context(records).items() if len(g) > 1}
        if all(m > 1.15 * mod for m, mod, _ in jumps.values()):  # at every context alike: the step itself, not noise
            return text + (f" This step grew sooner, and at once: from batch 1 to {jumps[ctx][2]} it grew " + ", ".join(
                f"{m:.2f}× at context {c}" for c, (m, _, _) in sorted(jumps.items())) + f", the model of the step only "
                f"{max(v[1] for v in jumps.values()):.2f}×. Likely cause: one sequence runs matrix–vector kernels (GEMV), "
                "two or more run matrix–matrix kernels (GEMM), which stream the weights at another rate (notebook 02).")
        text += (f" This step grew sooner. In the model of the step, most of the growth up to batch {field(past, 'batch')} "
                 f"is {_GROWTH_TERMS.get(most, most)}.")
        if model is None or knee < 0.67 * model:
            text += (" It grew sooner than that model, too: something it leaves out is at work (a busy machine, or "
                     "batched kernels slower than the measured matmul peak).")
        return text
    if knee is None or knee > 1.25 * roof:
        fixed = sum(v for k, v in field(first, "budget").items() if k not in ("memory roof", "compute past the ridge",
                                                                              "attention (KV reads)")) / modeled_of(first)
        return text + (f" This step grew later: {fixed:.0%} of the modeled batch-1 step is costs that grow little with the "
                       "batch (a kernel below the memory roof, per-op overheads) and hide the growth." if fixed >= 0.2 else
                       " This step grew later: the batched matmuls ran faster than the matmul peak measured in notebook 00.")
    return text + " This knee lies close to that."


def guess_verdict(guess: float | None, predicted: float, measured: float, spread: float = 0.0, units: str = "ms",
                  source: str = "The formula") -> str:
    """One sentence: the learner's guess and the prediction (``source``) against the measurement (``spread``: its noise)."""
    perf.check_non_negative("predicted", predicted), perf.check_non_negative("spread", spread)
    perf.check_positive("measured", measured)

    def off(x: float) -> str:
        ratio = x / measured
        if abs(x - measured) <= spread:
            return "within the measurement's noise"
        if ratio >= 2 or ratio <= 0.5:  # far off: a factor reads better than a percentage
            return f"{max(ratio, 1 / max(ratio, 1e-12)):,.1f}× {'above' if x > measured else 'below'} it"
        return f"{abs(ratio - 1):.0%} {'above' if x > measured else 'below'} it"

    text = f"Measured: {format_number(measured, units)}" + (f" (± {format_number(spread, units)} of noise)" if spread else "")
    text += f". {source} said {format_number(predicted, units)}, {off(predicted)}."
    if guess is None:
        return text + NO_GUESS
    text += f" Your guess, {format_number(guess, units)}, was {off(guess)}"
    closer = abs(math.log(max(guess, 1e-12) / measured)) < abs(math.log(max(predicted, 1e-12) / measured))
    return text + (f": closer than {source[0].lower()}{source[1:]}." if closer else ".")


def pick_choice(value: float, choices, edges) -> str:
    """The option a measured ``value`` falls in: ``choices[i]`` covers values up to ``edges[i]``,
    the last one everything above (so there is one edge fewer than choices)."""
    if len(edges) != len(choices) - 1 or list(edges) != sorted(edges):
        raise ValueError(f"edges={edges!r} must be {len(choices) - 1} increasing numbers, one fewer than choices")
    return choices[bisect.bisect_left(list(edges), value)]


def choice_verdict(guess: str | None, answer: str, reading: str) -> str:
    """A sentence for a multiple-choice guess: ``reading`` (what was measured), the right option, the guess."""
    tail = NO_GUESS if guess is None else f" Your guess was “{guess}”."
    return f"{reading} The answer: **{answer}**." + (" Your guess was right." if guess == answer else tail)


def _flops(x: float) -> str:
    return f"{x / 1e12:,.1f} TFLOP/s" if x >= 1e12 else f"{x / 1e9:,.1f} GFLOP/s"


def _budget(r) -> tuple[dict, dict]:
    """A decode record's budget terms (ms), and its gaps above the roof grouped as GAPS."""
    b = {k: r.budget.get(k, 0.0) for k in ("memory roof", "kernel below the roof", "compute past the ridge", "other small ops",
                                           "attention (KV reads)", "waiting for launches", "calling the graph")}
    b["other small ops"] += r.budget.get("per-op overhead", 0.0)  # how recorded runs of version 1 name it
    return b, {"overhead": b["other small ops"] + b["waiting for launches"] + b["calling the graph"], "kernel":
               b["kernel below the roof"], "attention": b["attention (KV reads)"], "compute": b["compute past the ridge"]}


def biggest_gap(r) -> str:
    """The option of GAPS that adds the most to a decode record's modeled step, or NEAR_THE_LINE."""
    b, gaps = _budget(r)
    return NEAR_THE_LINE if r.modeled_ms <= 1.25 * b["memory roof"] else GAPS[max(gaps, key=gaps.get)]


def explain_decode(r) -> str:
    """A decode record read from its numbers: in cache, bandwidth-, kernel- or launch-bound, unexplained, noisy."""
    b, gaps = _budget(r)
    roof = b["memory roof"]
    head = (f"**{r.preset}** ({r.precision}, {r.mode}): {format_ms(r.ms_per_step)} per step, "
            f"{r.ms_per_step / roof:.1f}× the weights' memory line ({format_ms(roof)} for {r.weight_bytes / 1e6:,.0f} MB "
            f"at {r.bandwidth / 1e9:.1f} GB/s).")
    if r.fits_in_cache:
        return head + " Its weights fit in this machine's cache: the memory line does not bind it, nor does this budget."
    per_op, k, bw = b["other small ops"] / max(r.n_ops, 1) * 1e3, r.kernel_bandwidth / 1e9, r.bandwidth / 1e9
    parts = {"the batch-1 matmul kernel streaming " + (f"at {k:.1f} of {bw:.1f} GB/s" if k <= bw else
                                                       f"faster than the plain read ({k:.1f} against {bw:.1f} GB/s)"):
             b["kernel below the roof"], f"{r.n_ops} small ops at {per_op:.1f} µs each": b["other small ops"],
             "attention reading the KV cache": b["attention (KV reads)"], "compute past the ridge": b["compute past the ridge"],
             "the GPU waiting for the CPU to launch ops": b["waiting for launches"],
             "calling the graph (copying the token in, the replay, the wait)": b["calling the graph"]}
    named = [f"{text} ({'+' if ms >= 0 else '−'}{format_ms(abs(ms))})" for text, ms in parts.items() if abs(ms) >= 0.02 * roof]
    overhead, biggest = gaps["overhead"], max(gaps, key=gaps.get)
    fixed_costs = ("**launch-bound**: fixed costs per op outweigh moving the bytes" if r.mode != "cuda-graph" else
                   "held back most by fixed costs per kernel and graph call, not by moving bytes")
    kind = ("**bandwidth-bound**: close to what memory delivers" if max(r.modeled_ms, r.ms_per_step) <= 1.25 * roof else
            "over the memory line by more than the costs this budget prices" if r.modeled_ms <= 1.25 * roof else
            fixed_costs if biggest == "overhead" and overhead > roof else
            "over the memory line by several smaller costs, none dominant" if gaps[biggest] < 0.25 * roof else
            {"kernel": "**kernel-bound**: the matmul kernel, not memory, sets the pace",
             "overhead": "slowed most by fixed costs per op (dispatch, launches, small kernels)",
             "attention": "slowed most by attention reading the KV cache",
             "compute": "**compute-bound**: the batch is past the ridge"}[biggest])
    text = f"{head} It is {kind}. The budget: " + (", ".join(named) or "nothing beyond the memory line")
    residual = f"{r.residual:+.0%}".replace("-", "−")
    text += f"; modeled {format_ms(r.modeled_ms)}, measured {format_ms(r.ms_per_step)} ({residual})."
    if abs(r.residual) > 0.15:
        text += (f" The budget leaves {abs(r.residual):.0%} {'unexplained' if r.residual > 0 else 'too much'}: "
                 "something this model of the step does not contain (or a busy machine) is at work.")
    if r.noisy:
        text += (f" ⚠ Noisy: the middle half of the timings spans {r.iqr_ms / r.ms_per_step:.0%} of the median "
                 "(another program was busy?); re-run the cell before drawing conclusions.")
    return text


def precision_outcome(time_ratio: float, bytes_ratio: float) -> int:
    """Index into PRECISION_OUTCOMES of a time ratio at a bytes ratio (each lower precision's over higher's)."""
    return 0 if time_ratio <= 1.15 * bytes_ratio else 1 if time_ratio < 0.95 else 2 if time_ratio <= 1.05 else 3


def explain_precision(records) -> str:
    """The precision experiment: the same model at two or more precisions. Did halving the
    bytes halve the time? The answer comes from the kernel roofs per precision."""
    base, lines = next((r for r in records if r.precision == "fp32"), records[0]), []
    for r in (r for r in records if r is not base):
        bytes_ratio, time_ratio = r.weight_bytes / base.weight_bytes, r.ms_per_step / base.ms_per_step
        kernel_ratio, modeled_ratio = base.kernel_bandwidth / r.kernel_bandwidth * bytes_ratio, r.modeled_ms / base.modeled_ms
        verdict = _PRECISION_VERDICTS[precision_outcome(time_ratio, bytes_ratio)]
        lines.append(
            f"{r.precision} reads {bytes_ratio:.0%} of {base.precision}'s bytes and took {time_ratio:.0%} of its time "
            f"({format_ms(r.ms_per_step)} vs {format_ms(base.ms_per_step)}): {verdict}. This machine's batch-1 "
            f"{r.precision} kernel streams at {r.kernel_bandwidth / 1e9:.1f} GB/s against "
            f"{base.kernel_bandwidth / 1e9:.1f} GB/s for {base.precision}, so the kernels alone predict {kernel_ratio:.0%}; "
            f"with its other ops (attention, norms) priced at {r.precision} too, the gap budget predicts {modeled_ratio:.0%}."
            + (" ⚠ The timings are noisy: re-run." if r.noisy or base.noisy else ""))
    return "\n\n".join(lines)


def explain_prefill(records, gemv_bandwidth: dict | None = None) -> str:
    """What a prefill sweep (records or dicts) says: a step from one token to two where the library leaves its GEMV
    kernel, a flat stretch (a pass reads the weights once, however many tokens share them) and why it sits above the
    read (``gemv_bandwidth``: the profile's, B/s per precision), then time in proportion to the prompt, the turn, noise."""
    rows = sorted(records, key=lambda r: field(r, "prompt_len"))
    if len(rows) < 3:
        raise ValueError(f"records: a prefill sweep needs at least three prompt lengths, got {len(rows)}")
    n, ms = [field(r, "prompt_len") for r in rows], [field(r, "ms") for r in rows]
    parts, base = [], int(n[:2] == [1, 2] and ms[1] > 1.3 * ms[0])  # base: where the flat stretch starts
    if base:
        gb = [field(r, "bytes") / t / 1e6 for r, t in zip(rows, ms[:2])]
        parts.append(f"From 1 token to 2 the time jumped {ms[1] / ms[0]:.1f}× for one more token: one token runs "
                     "matrix–vector kernels (GEMV), two or more run matrix–matrix kernels (GEMM), which here streamed "
                     f"the weights at {gb[1]:.1f} GB/s against {gb[0]:.1f}.")
    end = next((i for i in range(base + 1, len(rows)) if ms[i] > 1.25 * ms[base]), len(rows)) - 1  # the flat stretch
    parts.append(f"From {n[base]} to {n[end]} tokens ({n[end] / n[base]:.0f}× as many) the time stayed within 25 % of "
                 f"{format_ms(ms[base])}: **flat**, since a pass reads the weights once however many tokens share them "
                 f"(one read at the streaming rate: {format_ms(field(rows[base], 'memory_ms'))})." if end > base else
                 f"No flat stretch: at {n[base + 1]} tokens the time was already {ms[base + 1] / ms[base]:.1f}× that at "
                 f"{n[base]}.")
    floor, read = ms[base] / field(rows[base], "memory_ms"), field(rows[base], "bytes") / field(rows[base], "memory_ms") / 1e6
    gemv = (gemv_bandwidth or {}).get(field(rows[base], "precision")) if n[base] == 1 else None
    if end > base and floor > 1.25:  # the flat part above the read: the kernels' own roof lies below memory's
        parts.append(f"That floor sits {floor:.1f}× above the read: the pass moved the weights at {read / floor:,.1f} GB/s of "
                     f"the {read:,.1f} GB/s a plain read reaches, so its kernels, not memory, set it" + (
                         f": the GEMV timed alone streams at {gemv / 1e9:,.1f} GB/s ({gemv / 1e9 / read:.0%} of the read), "
                         f"a roof that accounts for {read / floor * 1e9 / gemv:.0%} of the time measured." if gemv else "."))
    grow, more = ms[-1] / ms[-2], n[-1] / n[-2]
    if end < len(rows) - 1 and grow - 1 >= 0.8 * (more - 1):  # the extra time about in proportion to the extra tokens
        rate = (field(rows[-1], "flops") - field(rows[-2], "flops")) / (ms[-1] - ms[-2]) * 1e3
        parts.append(f"Then **linear**: from {n[-2]} to {n[-1]} tokens ({more:.1f}× as many) the time grew {grow:.1f}×, "
                     f"about in proportion: each extra token costs {format_ms((ms[-1] - ms[-2]) / (n[-1] - n[-2]))} "
                     f"({_flops(rate)}), so the arithmetic, not the weight read, sets the pace.")
    elif end < len(rows) - 1:
        parts.append(f"Then rising, but less than in proportion: from {n[end]} to {n[-1]} tokens "
                     f"({n[-1] / n[end]:.1f}× as many) the time grew {ms[-1] / ms[end]:.1f}×; at these lengths a pass "
                     "is part weight read, part arithmetic, and longer prompts would show the linear part.")
    if field(rows[0], "compute_ms"):
        turn = n[0] * field(rows[0], "memory_ms") / field(rows[0], "compute_ms")
        parts.append(f"The roofline (the weights once at the streaming read, the FLOPs at the matmul rate measured on "
                     f"large matrices) puts the turn at about {turn:,.0f} tokens. At {n[-1]} tokens the measurement is "
                     f"{ms[-1] / max(field(rows[-1], 'memory_ms'), field(rows[-1], 'compute_ms')):.1f}× its prediction "
                     f"({_flops(field(rows[-1], 'flops') / ms[-1] * 1e3)} achieved).")
    noisy = [str(field(r, "prompt_len")) for r in rows if field(r, "iqr_ms") > perf.NOISY * field(r, "ms")]
    if noisy:
        parts.append(f"⚠ Noisy at {', '.join(noisy)} tokens (the middle half of the timings spans over {perf.NOISY:.0%} of the "
                     "median): re-run the cell before trusting those points.")
    return " ".join(parts + wrong_way(rows, "prompt_len", "ms"))


def explain_ttft_tpot(prefill, decode, answer_tokens: int = 200) -> str:
    """TTFT (a prefill record or dict) and TPOT (a decode record or dict) of one request, how much
    faster prefill gets through tokens, and what the wait for an answer of ``answer_tokens`` is made of."""
    n, ttft, tpot = field(prefill, "prompt_len"), field(prefill, "ms"), field(decode, "ms_per_step")  # a sequence's step
    total = ttft + perf.check_count("answer_tokens", answer_tokens) * tpot
    speed, share = n * tpot / ttft, 1 - ttft / total
    text = (f"TTFT: {format_ms(ttft)} for the {n}-token prompt ({n / ttft * 1e3:,.0f} prompt tokens/s). TPOT: {format_ms(tpot)} "
            f"per generated token ({1e3 / tpot:,.0f} tokens/s). ")
    text += (f"Prefill got through tokens {speed:,.0f}× as fast as decode: it shares each read of the weights among "
             "the prompt's tokens, decode reads them all for every single token. " if speed >= 1.5 else
             f"Prefill got through tokens only {speed:.1f}× as fast as decode here: little gained from sharing "
             "the weight reads (a noisy timing, or fixed costs per pass that dwarf the work?). ")
    return text + (f"An answer of {answer_tokens} tokens to this prompt takes {format_ms(ttft)} + {answer_tokens} × "
                   f"{format_ms(tpot)} = {format_ms(total)}, {share:.0%} of it decoding: "
                   + ("the answer, not the question, makes you wait." if share > 0.5 else
                      "here the prompt, not the answer, makes you wait."))


def explain_context(records) -> str:
    """The context sweep: the step's growth from shortest to longest context, against its bytes and the attention term."""
    if len({r.context_len for r in records}) < 2:
        raise ValueError("explain_context needs records at two or more context lengths")
    a, z = (f(records, key=lambda r: r.context_len) for f in (min, max))
    att = z.budget.get("attention (KV reads)", 0) - a.budget.get("attention (KV reads)", 0)
    grew, ratio = z.ms_per_step - a.ms_per_step, z.ms_per_step / a.ms_per_step
    bytes_ratio = z.predicted_ms / a.predicted_ms
    text = (f"From context {a.context_len} to {z.context_len} the step grew {ratio:.2f}× ({format_ms(abs(grew))} "
            f"{'more' if grew >= 0 else 'less'}); the bytes it reads, {bytes_ratio:.2f}×.")
    if ratio <= 1.05 * bytes_ratio:
        return text + " The time grew no more than the bytes did."
    if att >= 0.5 * grew:
        return text + (f" The budget's attention term (its calls timed alone at each context) grew {format_ms(att)}, "
                       f"{att / grew:.0%} of that: attention costs more per call than the KV bytes it reads.")
    return text + (f" The budget's attention term grew only {format_ms(att)}: the rest is something it leaves out "
                   "(or noise: re-run).")


def wrong_way(records, x: str, y: str = "ms_per_step") -> list[str]:
    """Neighbouring points where more work (prompt, batch, context) took over 5 % less time: noise, not a finding."""
    rows = sorted(records, key=lambda r: field(r, x))
    return [f"{x} {field(a, x)} → {field(b, x)}: {field(a, y):.3g} → {field(b, y):.3g} ms, faster with more work: "
            "that is noise (a busy machine, a cache effect), not a property of the model; re-run the cell."
            for a, b in pairwise(rows) if field(b, y) < 0.95 * field(a, y)]


def batching_claim(records, batch: int = 32) -> dict:
    """Test "``batch`` requests give ``batch``x the throughput at the same latency" on batch-sweep
    records: per context length, the tokens/s gain and the step-time ratio of ``batch`` vs 1."""
    claim = {}
    for (_, ctx), rows in group_by_context(records).items():
        ms = {field(r, "batch"): field(r, "ms_per_step") for r in rows}
        if 1 not in ms or batch not in ms:
            raise ValueError(f"batch={batch!r}: the records need batch 1 and batch {batch} at context {ctx}")
        claim[ctx] = {"throughput_gain": batch * ms[1] / ms[batch], "latency_ratio": ms[batch] / ms[1]}
    return dict(sorted(claim.items()))


def claim_verdict(claim: dict, batch: int = 32) -> list[str]:
    """A sentence per context on ``batching_claim``'s result: did ``batch`` sequences give nearly
    ``batch``x the tokens/s (within 10 %), at least half of that, or less?"""
    return [f"context {ctx}: {batch} sequences gave {g:.1f}× the tokens/s of one, each step {c['latency_ratio']:.2f}× as "
            f"long: the claim {'holds' if g >= 0.9 * batch else 'holds only in part' if g >= 0.5 * batch else 'does not hold'}"
            " here." for ctx, c in claim.items() for g in [c["throughput_gain"]]]
