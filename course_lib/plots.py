"""Presenting results: pure figure builders (data in, ``plotly`` figure out), and the sentences
that read a learner's own measurements (``explain_*``), computed from the records, never typed.

No widgets and no measurement here: the notebooks (and widgets.py) pass in records that perf or
measure computed. ``as_widget`` turns a figure into a FigureWidget where the front end supports
it (JupyterLab, Notebook 7), and keeps the static figure where it does not (``static_frontend``).
"""

from __future__ import annotations

import bisect
import math
import os
import sys
from array import array
from collections import defaultdict

import plotly.graph_objects as go
import plotly.io as pio

from . import perf

TEMPLATE = "plotly_white"
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#e377c2"]


def _layout(fig: go.Figure, title: str, x: str, y: str, *, logx=False, logy=False, height=420) -> go.Figure:
    fig.update_layout(template=TEMPLATE, title=title, height=height, margin=dict(l=60, r=20, t=60, b=60),
                      legend=dict(orientation="h", yanchor="top", y=-0.18, x=0))
    # axis types only where log is wanted: forcing "linear" would break category axes (bar labels)
    fig.update_xaxes(title=x, **({"type": "log"} if logx else {}))
    fig.update_yaxes(title=y, **({"type": "log"} if logy else {}))
    return fig


# A Jupyter kernel's figures carry plotly's MIME type (JupyterLab draws it) and, from its "colab" renderer, HTML that
# loads plotly.js itself, which static views draw (nbconvert, nbviewer, the course's site, a saved notebook).
if pio.renderers.default in ("plotly_mimetype", "vscode"):
    pio.renderers.default += "+colab"


def static_frontend() -> bool:
    """Whether widget charts cannot render here: COURSE_STATIC=1 (0: they can), Colab or VS Code."""
    forced, keys = os.environ.get("COURSE_STATIC", "").strip(), ("COLAB_RELEASE_TAG", "VSCODE_PID", "VSCODE_CWD")
    return forced == "1" if forced in ("0", "1") else "google.colab" in sys.modules or any(k in os.environ for k in keys)


def as_widget(fig: go.Figure):
    """A ``go.FigureWidget`` (updatable in place) or, if widgets cannot render here, ``fig``."""
    if static_frontend():
        return fig
    try:
        return go.FigureWidget(fig)
    except Exception as err:  # e.g. anywidget missing or a front end without widget support
        print(f"(Interactive chart unavailable here: {err.__class__.__name__}. Showing a static chart; "
              "re-run the cell after changing a control.)")
        return fig


# ----------------------------------------------------------------------------- notebook 00
def machine_vs_catalog(measured_bandwidth: float, hardware_list, measured_label="this machine (measured)") -> go.Figure:
    """Horizontal bars of memory bandwidth (GB/s, log scale): the catalogue and this machine."""
    names = [hw.label or hw.name for hw in hardware_list] + [measured_label]
    values = [hw.bandwidth / 1e9 for hw in hardware_list] + [measured_bandwidth / 1e9]
    colors = [COLORS[0]] * len(hardware_list) + [COLORS[1]]
    order = sorted(range(len(values)), key=values.__getitem__)
    fig = go.Figure(go.Bar(x=[values[i] for i in order], y=[names[i] for i in order], orientation="h",
                           marker_color=[colors[i] for i in order],
                           text=[f"{values[i]:,.0f} GB/s" for i in order], textposition="outside"))
    return _layout(fig, "Memory bandwidth: your machine vs datasheets", "GB/s (log scale)", "", logx=True,
                   height=120 + 32 * len(names))


# ----------------------------------------------------------------------------- notebook 01
def size_curve(precision: str, bandwidth: float, n_min=1e8, n_max=1e12, points=60):
    """(sizes, tokens/s) of the batch-1 bound across model sizes, log-spaced, as arrays of floats."""
    sizes = [n_min * (n_max / n_min) ** (i / (points - 1)) for i in range(points)]  # no numpy: it runs in Pyodide too
    return array("d", sizes), array("d", [perf.tokens_per_second(n, precision, bandwidth) for n in sizes])


def tokens_vs_size(n_params: float, precision: str, bandwidth: float, fits: bool = True) -> go.Figure:
    """tokens/s vs model size (log-log) for one precision and bandwidth, current model marked.
    Trace 0 is the curve, trace 1 the marker (widgets.py updates both in place)."""
    sizes, tps = size_curve(precision, bandwidth)
    point = perf.tokens_per_second(n_params, precision, bandwidth)
    fig = go.Figure([
        go.Scatter(x=list(sizes), y=list(tps), mode="lines", name=f"bound at {bandwidth / 1e9:,.0f} GB/s, {precision}",
                   line=dict(color=COLORS[0])),
        go.Scatter(x=[n_params], y=[point], mode="markers", name="your model" if fits else "your model (does not fit!)",
                   marker=dict(size=14, color=COLORS[2] if fits else COLORS[1], symbol="circle" if fits else "x")),
    ])
    return _layout(fig, "Batch-1 decode: the bandwidth bound", "parameters", "tokens/s (upper bound)",
                   logx=True, logy=True)


def decode_table_figure(rows: list[dict]) -> go.Figure:
    """The models x GPUs table (rows from perf.decode_table) as a plotly Table, OOM marked."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    gpus = list(dict.fromkeys(r["hardware"] for r in rows))
    cell = {(r["model"], r["hardware"]): r for r in rows}

    def text(r):
        return f"{r['ms_per_token']:.1f} ms · {r['tokens_per_s']:.0f} tok/s" + ("" if r["fits"] else
               f" · OOM (needs {r['min_devices']})")

    columns = [models] + [[text(cell[(m, g)]) for m in models] for g in gpus]
    fills = [["white"] * len(models)] + [["#fde0dd" if not cell[(m, g)]["fits"] else "white" for m in models]
                                         for g in gpus]
    fig = go.Figure(go.Table(header=dict(values=["model (weights)"] + gpus, fill_color="#e8eef7", align="left"),
                             cells=dict(values=columns, fill_color=fills, align="left", height=28)))
    fig.update_layout(height=90 + 30 * len(models), margin=dict(l=10, r=10, t=40, b=10),
                      title=f"Batch-1 bound at {rows[0]['precision'].upper()} (pink: the weights do not fit in one device)")
    return fig


def components_bars(parts_by_model: dict[str, dict[str, float]]) -> go.Figure:
    """Share of a decode step's bytes per component, one stacked bar per model."""
    fig = go.Figure()
    names = list(next(iter(parts_by_model.values())))
    for i, comp in enumerate(names):
        totals = [sum(p.values()) for p in parts_by_model.values()]
        shares = [100 * p[comp] / t for p, t in zip(parts_by_model.values(), totals)]
        fig.add_bar(y=list(parts_by_model), x=shares, name=comp, orientation="h", marker_color=COLORS[i % 8],
                    hovertemplate=comp + ": %{x:.2f} %<extra></extra>")
    fig.update_layout(barmode="stack")
    return _layout(fig, "Where a decode step's bytes come from", "% of bytes read per token", "",
                   height=260 + 60 * len(parts_by_model))


def _val(record, key: str):
    """A field of a record: measure's dataclasses and plain dicts alike."""
    return record[key] if isinstance(record, dict) else getattr(record, key)


def _iqr_bars(records, key: str = "iqr_ms", per: str = "batch"):
    """Symmetric error bars of half the inter-quartile range (per token where ``per`` is set)."""
    return dict(type="data", array=[_val(r, key) / 2 / (_val(r, per) if per else 1) for r in records], visible=True)


def measured_vs_bytes(records, bandwidth: float, title="Decode: measured vs predicted") -> go.Figure:
    """Measured ms/token (median, IQR error bars) against bytes per token, with the line
    bytes / bandwidth and the modeled budget. Points in cache are drawn hollow."""
    xs = [r.bytes_per_step / r.batch for r in records]
    grid = [max(xs) * 1.1 * i / 49 for i in range(50)]
    fig = go.Figure()
    fig.add_scatter(x=[g / 1e6 for g in grid], y=[g / bandwidth * 1e3 for g in grid], mode="lines",
                    name=f"bytes / {bandwidth / 1e9:.1f} GB/s", line=dict(color=COLORS[0], dash="dash"))
    fig.add_scatter(x=[x / 1e6 for x in xs], y=[r.modeled_ms / r.batch for r in records], mode="markers",
                    name="modeled (the gap budget)", marker=dict(symbol="diamond", size=9, color=COLORS[3]))
    fig.add_scatter(x=[x / 1e6 for x in xs], y=[r.ms_per_token for r in records], mode="markers+text", error_y=_iqr_bars(records),
                    text=[r.preset for r in records], textposition="top left", name="measured (median, IQR)",
                    marker=dict(size=11, color=COLORS[1],
                                symbol=["circle-open" if r.fits_in_cache else "circle" for r in records]))
    return _layout(fig, title, "MB read per token (weights + KV cache)", "ms per token")


# ----------------------------------------------------------------------------- notebook 02
def intensity_vs_tokens(d_in: int, d_out: int, weight_bytes: float, act_bytes: float, ridges: dict[str, float],
                        n_max: int = 4096) -> go.Figure:
    """Arithmetic intensity of x @ W against the number of tokens n, with device ridge points."""
    ns = sorted({int(n_max ** (i / 79)) for i in range(80)})  # 80 log-spaced whole numbers from 1 to n_max
    fig = go.Figure(go.Scatter(x=ns, y=[perf.linear_intensity(int(n), d_in, d_out, weight_bytes, act_bytes) for n in ns],
                               mode="lines", name=f"linear {d_in}x{d_out}", line=dict(color=COLORS[0], width=3)))
    for i, (name, ridge) in enumerate(ridges.items()):  # lines as traces: hline shapes break log autorange
        fig.add_scatter(x=[ns[0], ns[-1]], y=[ridge, ridge], mode="lines", name=f"{name} ridge {ridge:.0f}",
                        line=dict(dash="dot", color=COLORS[(i + 1) % 8]))
    return _layout(fig, "Arithmetic intensity grows with the tokens per weight load", "tokens processed together (n)",
                   "FLOP per byte", logx=True, logy=True)


def prefill_curve(records, title="Prefill time vs prompt length") -> go.Figure:
    """Measured prefill time (median, IQR error bars) and the roofline prediction against
    prompt length; records are measure.PrefillRecord or dicts with the same keys."""
    xs = [_val(r, "prompt_len") for r in records]
    fig = go.Figure(go.Scatter(x=xs, y=[_val(r, "ms") for r in records], mode="lines+markers",
                               error_y=_iqr_bars(records, per=""), name="measured (median, IQR)",
                               marker=dict(color=COLORS[1])))
    fig.add_scatter(x=xs, y=[_val(r, "predicted_ms") for r in records], mode="lines",
                    name="roofline prediction", line=dict(color=COLORS[0], dash="dash"))
    return _layout(fig, title, "prompt length (tokens, log scale)", "ms (log scale)", logx=True, logy=True)


def kv_vs_weights(context_lens, kv_bytes_per_token: float, weight_bytes: float, label: str) -> go.Figure:
    """Bytes read per decode step: weights (flat) and KV cache (growing with the context)."""
    ctx = [float(c) for c in context_lens]
    fig = go.Figure([
        go.Scatter(x=ctx, y=[weight_bytes / 1e9] * len(ctx), name="weights", mode="lines", line=dict(color=COLORS[0])),
        go.Scatter(x=ctx, y=[c * kv_bytes_per_token / 1e9 for c in ctx], name="KV cache", mode="lines",
                   line=dict(color=COLORS[1])),
    ])
    return _layout(fig, f"{label}: bytes read per decode step", "context length (tokens)", "GB per step")


def prefill_flops(config, lengths, label: str) -> go.Figure:
    """FLOPs of one prefill pass against the prompt length n (log-log): the matmuls, 2·n·P (linear),
    and attention's scores and weighted sum, 4·n²·d per layer (quadratic), from config.forward_flops.
    The title names the n where the two are equal: P / (2·L·d)."""
    ns = [int(n) for n in lengths]
    matmul = [2 * n * config.matmul_params() / 1e12 for n in ns]
    attention = [config.forward_flops(n) / 1e12 - m for n, m in zip(ns, matmul)]
    equal = config.matmul_params() / (2 * config.n_layers * config.n_heads * config.head_dim)
    fig = go.Figure([go.Scatter(x=ns, y=matmul, name="matmuls: 2·n·P", mode="lines+markers",
                                line=dict(color=COLORS[0])),
                     go.Scatter(x=ns, y=attention, name="attention: 4·n²·d per layer", mode="lines+markers",
                                line=dict(color=COLORS[1]))])
    return _layout(fig, f"{label}: attention's FLOPs equal the matmuls' at n ≈ {equal:,.0f} tokens",
                   "prompt length n (tokens)", "TFLOP per prefill pass", logx=True, logy=True)


# ----------------------------------------------------------------------------- notebook 03
INTENSITY_RANGE = (0.1, 1e4)


def roofline_xy(peak_flops: float, bandwidth: float):
    """(intensities, attainable FLOP/s) of one roofline over INTENSITY_RANGE: on log-log axes it
    is exactly two straight pieces, so three points (the ends and the ridge) draw it."""
    lo, hi = INTENSITY_RANGE
    ridge = min(max(perf.ridge_point(peak_flops, bandwidth), lo), hi)
    xs = [lo, ridge, hi]
    return xs, [perf.attainable_flops(x, peak_flops, bandwidth) for x in xs]


def roofline(rooflines: list[dict], points: list[dict] = ()) -> go.Figure:
    """Log-log roofline chart. ``rooflines``: dicts with name, peak (FLOP/s), bandwidth (B/s) and
    optional dash; ``points``: dicts with label, intensity (FLOP/B) and flops (attained FLOP/s)."""
    fig = go.Figure()
    for i, roof in enumerate(rooflines):
        xs, ys = roofline_xy(roof["peak"], roof["bandwidth"])
        ridge = perf.ridge_point(roof["peak"], roof["bandwidth"])
        fig.add_scatter(x=xs, y=[y / 1e12 for y in ys], mode="lines", name=f"{roof['name']} (ridge {ridge:,.0f})",
                        line=dict(color=COLORS[i % 8], dash=roof.get("dash", "solid"), width=2.5))
    for j, p in enumerate(points):  # labels alternate above-left and below-right of the roof: neighbours stay readable
        fig.add_scatter(x=[p["intensity"]], y=[p["flops"] / 1e12], mode="markers+text", name=p["label"],
                        text=[p["label"]], textposition="bottom right" if j % 2 == 0 else "top left",
                        showlegend=False,
                        marker=dict(size=12, symbol="diamond", color=COLORS[(j + 4) % 8]))
    return _layout(fig, "The roofline: attainable FLOP/s = min(peak, intensity × bandwidth)",
                   "arithmetic intensity (FLOP per byte)", "TFLOP/s", logx=True, logy=True, height=480)


def _groups(records) -> dict:
    """Records grouped by (label, context length), each group sorted by batch."""
    groups: dict = {}
    for r in records:
        key = (r.get("label", "measured") if isinstance(r, dict) else "measured", _val(r, "context_len"))
        groups.setdefault(key, []).append(r)
    return {k: sorted(rows, key=lambda r: _val(r, "batch")) for k, rows in groups.items()}


def batch_sweep_figure(records, predicted: list[dict], title="Batching on this machine") -> go.Figure:
    """Measured (and predicted) decode step time and tokens/s against the batch size. Records
    (measure.DecodeRecord, or dicts with a ``label``) carry batch, ms_per_step, tokens_per_s and
    context_len (one line each); those with an ``iqr_ms`` get error bars of half their IQR."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("time per decode step (ms)", "tokens per second"))
    for i, ((label, ctx), rows) in enumerate(_groups(list(records) + list(predicted)).items()):
        name = label if ctx is None else f"{label}, context {ctx}"
        style = dict(dash="dash") if label.startswith("predicted") else {}
        xs, iqr = [_val(r, "batch") for r in rows], [_iqr(r) / 2 for r in rows]
        for col, key in ((1, "ms_per_step"), (2, "tokens_per_s")):
            ys = [_val(r, key) for r in rows]
            bars = iqr if col == 1 else [y * e / _val(r, "ms_per_step") for y, e, r in zip(ys, iqr, rows)]
            fig.add_scatter(x=xs, y=ys, mode="lines+markers", name=name, legendgroup=name, showlegend=col == 1,
                            error_y=dict(type="data", array=bars, visible=any(bars)),
                            line=dict(color=COLORS[i % 8], **style), row=1, col=col)
    fig.update_xaxes(type="log", title="batch size")
    fig.update_yaxes(type="log")
    fig.update_layout(template=TEMPLATE, title=title, height=430, legend=dict(orientation="h", y=-0.25))
    return fig


def _iqr(r) -> float:
    return (r.get("iqr_ms", 0.0) if isinstance(r, dict) else r.iqr_ms) or 0.0


def _modeled(r) -> float:
    return sum(r["budget"].values()) if isinstance(r, dict) else r.modeled_ms


def latency_throughput(records, title="Each user's speed against the total: batching trades one for the other"):
    """Per-user tokens/s (one sequence's speed, 1 / step time) against total tokens/s (batch /
    step time), one line per (label, context), each point marked with its batch size."""
    fig = go.Figure()
    for i, ((label, ctx), rows) in enumerate(_groups(records).items()):
        step_s = [_val(r, "ms_per_step") / 1e3 for r in rows]
        fig.add_scatter(x=[_val(r, "batch") / t for r, t in zip(rows, step_s)], y=[1 / t for t in step_s],
                        mode="lines+markers+text", text=[str(_val(r, "batch")) for r in rows], textposition="top right",
                        name=f"{label}, context {ctx}", line=dict(color=COLORS[i % 8],
                                                                  dash="dash" if label.startswith("predicted") else None))
    return _layout(fig, title, "total tokens/s (all sequences)", "tokens/s for each sequence", logx=True, logy=True)


def batch_knee(records, growth: float = 1.25, modeled: bool = False) -> dict:
    """Per context length, the batch at which a decode step first takes ``growth`` times as long
    as at batch 1, interpolated on log batch between the sizes measured, as (knee, low, high):
    low and high move every step by half its IQR, the earliest and latest knee the noise allows.
    None where no batch got there. ``modeled``: the modeled steps instead (no noise)."""
    def cross(batches, times, target):
        for (b0, t0), (b1, t1) in zip(zip(batches, times), zip(batches[1:], times[1:])):
            if t1 >= target > t0:
                return b0 * (b1 / b0) ** ((target - t0) / (t1 - t0))
        return None

    knees = {}
    for (_, ctx), rows in _groups(records).items():
        if _val(rows[0], "batch") != 1:
            raise ValueError(f"the records need batch 1 at context {ctx}")
        batches = [_val(r, "batch") for r in rows]
        times = [_modeled(r) if modeled else _val(r, "ms_per_step") for r in rows]
        noise = [0.0 if modeled else _iqr(r) / 2 for r in rows]
        knees[ctx] = tuple(cross(batches, [t + sign * e for t, e in zip(times, noise)], growth * (times[0] - sign * noise[0]))
                           for sign in (0, 1, -1))
    return knees


_GROWTH_TERMS = {"attention (KV reads)": "attention reading each sequence's own KV cache, which no batch shares",
                 "other small ops": "small operations (norms, activations, cache writes) that grow with the batch",
                 "compute past the ridge": "arithmetic past the ridge", "kernel below the roof": "the matmul kernel"}


def explain_knee(records, guess: float | None, critical: float, growth: float = 1.25) -> str:
    """The batch-sweep reveal: when the step began to grow (measured, modeled, guessed) at the
    shortest context, against the weights-only roofline's knee (``growth`` x the critical batch)."""
    ctx = min(_val(r, "context_len") for r in records)
    rows = [r for r in records if _val(r, "context_len") == ctx]
    (knee, low, high), model = batch_knee(rows, growth)[ctx], batch_knee(rows, growth, modeled=True)[ctx][0]
    top, roof = max(_val(r, "batch") for r in rows), growth * critical
    if knee is None or model is None:
        def said(x):
            return f"no knee up to batch {top}" if x is None else f"{x:.1f} sequences"
        text = (f"Measured at context {ctx}: {said(knee)}, the batch at which a step first took {growth:g}× as long "
                f"as at batch 1. The model of the step: {said(model)}."
                + (f" Your guess: {guess:g}." if guess is not None else ""))
    else:
        text = guess_verdict(guess, model, knee, ((high or top) - (low or knee)) / 2, "sequences").split(" (No guess")[0]
    text += (f" By the weights-only roofline the step stays flat up to the critical batch, {critical:.1f}, "
             f"and grows {growth:g}× by {roof:.1f}.")
    first = min(rows, key=lambda r: _val(r, "batch"))
    fixed = sum(v for k, v in _val(first, "budget").items() if k not in ("memory roof", "compute past the ridge",
                                                                          "attention (KV reads)")) / _modeled(first)
    if knee is None and top < roof:
        return text + f" That fits: the roofline's knee lies beyond batch {top} too."
    if knee is not None and knee < 0.8 * roof:
        past = min((r for r in rows if _val(r, "batch") >= knee), key=lambda r: _val(r, "batch"))
        grew = {k: v - _val(first, "budget").get(k, 0.0) for k, v in _val(past, "budget").items()}
        text += (f" This step grew sooner. In the model of the step, most of the growth up to batch {_val(past, 'batch')} "
                 f"is {_GROWTH_TERMS.get(max(grew, key=grew.get), max(grew, key=grew.get))}.")
        if model is not None and knee < 0.67 * model:
            text += (" It grew sooner than that model, too: something it leaves out is at work (a busy machine, or "
                     "batched kernels slower than the measured matmul peak).")
        return text
    if (knee is None or knee > 1.25 * roof) and fixed >= 0.2:
        return text + (f" This step grew later: {fixed:.0%} of a batch-1 step is fixed costs (a kernel below the memory "
                       "roof, per-op overheads) that do not grow with the batch and hide the growth.")
    if knee is None or knee > 1.25 * roof:
        return text + " This step grew later: the batched matmuls ran faster than the matmul peak measured in notebook 00."
    return text + " This knee lies close to that."


def moe_figure(models: dict, precision: str = "fp16", max_batch: int = 512) -> go.Figure:
    """Share of a mixture-of-experts model's weights one decode step streams, against the batch
    (``models``: name -> (total, active, experts, top_k), as perf.MOE_MODELS)."""
    batches = sorted({int(max_batch ** (i / 39)) for i in range(40)})  # log-spaced whole batches, 1 .. max_batch
    fig = go.Figure()
    for i, (name, (total, active, experts, k)) in enumerate(models.items()):
        gb = [perf.moe_step_bytes(total, active, experts, k, precision, b) / 1e9 for b in batches]
        full = perf.weight_bytes(total, precision) / 1e9
        fig.add_scatter(x=batches, y=[100 * g / full for g in gb], mode="lines",
                        name=f"{name}: {gb[0]:,.0f} GB at batch 1, {full:,.0f} GB in all",
                        customdata=gb, hovertemplate="batch %{x}: %{customdata:,.0f} GB per step<extra></extra>",
                        line=dict(color=COLORS[i % 8], width=3))
    return _layout(fig, f"Mixture of experts: weights read per decode step ({precision})", "batch size",
                   "% of all the weights read per step", logx=True)


def capacity_figure(curves: dict, critical: dict, context_lens) -> go.Figure:
    """Most sequences whose KV caches fit beside the weights, against the context length (solid),
    and each device's critical batch (dotted). ``curves``: name -> counts per context length."""
    fig = go.Figure()
    for i, (name, counts) in enumerate(curves.items()):
        fig.add_scatter(x=list(context_lens), y=counts, mode="lines", name=f"{name}: sequences that fit",
                        line=dict(color=COLORS[i % 8], width=3))
        fig.add_scatter(x=[context_lens[0], context_lens[-1]], y=[critical[name]] * 2, mode="lines",
                        name=f"{name}: critical batch {critical[name]:.0f}", line=dict(color=COLORS[i % 8], dash="dot"))
    return _layout(fig, "What caps the batch: memory for KV caches, or the critical batch?", "context length (tokens)",
                   "sequences (batch size)", logx=True, logy=True)


# ----------------------------------------------------------------------------- notebook 04
def tensor_parallel_bars(n_params, precision, bandwidth, n_layers, d_model, link_bandwidth, link_latency,
                         max_devices=16, algorithm="one-shot") -> go.Figure:
    """Stacked bars of the tensor-parallel decode step for N = 1..max_devices: weight streaming
    (shrinks as 1/N) and the all-reduces. Ring: both terms of each all-reduce grow with N, the
    latency 2(N-1)α and the bytes 2(N-1)/N·m/β. One-shot: the latency α stays put, the bytes
    (N-1)·m/β grow (tiny for decode's messages)."""
    ns = list(range(1, max_devices + 1))
    parts = [perf.tensor_parallel_components(n_params, precision, bandwidth, n, n_layers, d_model,
                                             link_bandwidth, link_latency, algorithm=algorithm) for n in ns]
    fig = go.Figure([go.Bar(x=ns, y=[s * 1e3 for s, _ in parts], name="streaming weights (÷ N)", marker_color=COLORS[0]),
                     go.Bar(x=ns, y=[c * 1e3 for _, c in parts], name="all-reduces (2 per layer)", marker_color=COLORS[1])])
    fig.update_layout(barmode="stack")
    return _layout(fig, f"Tensor-parallel decode step ({algorithm} all-reduce)", "devices (N)", "ms per token")


def allreduce_fit(link, decode_bytes: int | None = None) -> go.Figure:
    """A measured all-reduce sweep (medians, IQR as error bars) against the fitted alpha-beta line
    (``link``: parallel.LinkResult or its dict), on log axes; the decode message marked."""
    get = link.get if isinstance(link, dict) else lambda key: getattr(link, key)
    sizes, n, algorithm = get("message_bytes"), get("world_size"), get("algorithm")
    grid = [min(sizes) * (max(sizes) / min(sizes)) ** (i / 59) for i in range(60)]
    fitted = [perf.allreduce_time(m, n, get("bandwidth_Bps"), get("latency_s"), algorithm) * 1e6 for m in grid]
    fig = go.Figure(go.Scatter(x=sizes, y=[t * 1e6 for t in get("seconds")], mode="markers", name="measured (median, IQR)",
                               error_y=dict(type="data", array=[q * 1e6 for q in get("iqr_s")]), marker=dict(size=10)))
    fig.add_scatter(x=grid, y=fitted, mode="lines", name=f"fit: α = {get('latency_s') * 1e6:.0f} µs, "
                    f"β = {get('bandwidth_Bps') / 1e9:.2f} GB/s ({algorithm})", line=dict(color=COLORS[1]))
    if decode_bytes:
        fig.add_vline(x=decode_bytes, line_dash="dot", annotation_text="one token's hidden state")
    return _layout(fig, f"All-reduce over {n} ranks ({get('backend')})", "message (bytes)", "µs per all-reduce",
                   logx=True, logy=True)


def speculative_curve(alpha: float, cost_ratio: float, max_gamma: int = 16, alphas=(0.5, 0.7, 0.9)) -> go.Figure:
    """Speed-up of speculative decoding against the draft length γ, for a few acceptance rates
    (thin) and the chosen one (thick). Trace 0 is the chosen α (widgets update it in place)."""
    gammas = list(range(1, max_gamma + 1))
    fig = go.Figure()
    fig.add_scatter(x=gammas, y=[perf.speculative_speedup(alpha, g, cost_ratio) for g in gammas], mode="lines+markers",
                    name=f"α = {alpha:.2f} (yours)", line=dict(color=COLORS[1], width=4))
    for i, a in enumerate(alphas):
        fig.add_scatter(x=gammas, y=[perf.speculative_speedup(a, g, cost_ratio) for g in gammas], mode="lines",
                        name=f"α = {a}", line=dict(color=COLORS[(i + 2) % 8], width=1.5, dash="dot"))
    fig.add_scatter(x=[1, max_gamma], y=[1.0, 1.0], mode="lines", name="no speed-up", line=dict(color="gray"))
    return _layout(fig, f"Speculative decoding: speed-up vs draft length (draft cost c = {cost_ratio:.2f})",
                   "draft length γ", "speed-up over plain decoding")


# ----------------------------------------------------------------------------- recorded GPU runs
def reference_decode(eager, graph, bandwidth: float, label: str) -> go.Figure:
    """A recorded GPU's batch-1 decode records, eager and in a CUDA graph, against
    bytes / bandwidth: small models sit far above the line (launch overhead)."""
    grid = [max(r.bytes_per_step / r.batch for r in eager + graph) * 1.05 * i / 49 for i in range(50)]
    fig = go.Figure(go.Scatter(x=[g / 1e9 for g in grid], y=[g / bandwidth * 1e3 for g in grid], mode="lines",
                               name="bytes / read bandwidth", line=dict(color=COLORS[0], dash="dash")))
    for i, (name, rows) in enumerate((("eager PyTorch", eager), ("one CUDA graph per step", graph))):
        fig.add_scatter(x=[r.bytes_per_step / r.batch / 1e9 for r in rows], y=[r.ms_per_token for r in rows],
                        mode="lines+markers+text", text=[r.preset for r in rows], textposition="top left",
                        name=name, marker=dict(size=10, color=COLORS[1 + i]))
    return _layout(fig, f"Batch-1 decode, {label}", "GB read per token", "ms per token")


# ----------------------------------------------------------------------------- reading a decode record
def budget_waterfall(record, title: str | None = None) -> go.Figure:
    """The gap budget of one decode record as a waterfall: from the memory roof, term by term,
    to the modeled time, then the measured time (with its IQR) and the residual between them."""
    terms = {k: v for k, v in record.budget.items() if abs(v) > 1e-4 * record.modeled_ms}
    names = list(terms) + ["modeled", "measured"]
    fig = go.Figure(go.Waterfall(x=names, y=[*terms.values(), 0, 0], measure=["relative"] * len(terms) + ["total"] * 2,
                                 text=[f"{v:+.2f}" for v in terms.values()] + [f"{record.modeled_ms:.2f}", ""],
                                 textposition="outside", connector=dict(line=dict(color="#bbb")),
                                 increasing=dict(marker_color=COLORS[1]), decreasing=dict(marker_color=COLORS[2]),
                                 totals=dict(marker_color=COLORS[0])))
    fig.add_bar(x=["measured"], y=[record.ms_per_step], marker_color=COLORS[3], name="measured (median, IQR)",
                error_y=dict(type="data", array=[record.iqr_ms / 2]), text=[f"{record.ms_per_step:.2f}"],
                textposition="outside")
    label = title or f"{record.preset} ({record.precision}, {record.mode}): where the step's time goes"
    return _layout(fig, label, "", "ms per step", height=400)


def _num(x: float, units: str) -> str:
    return f"{x:.3g}{'' if units == '×' else ' '}{units}"


def guess_figure(guess: float | None, predicted: float, measured: float, spread: float = 0.0,
                 units: str = "ms", title: str = "Your guess, the formula and this machine") -> go.Figure:
    """Three bars side by side: the learner's guess (if any), the formula's prediction and the
    measurement, with its spread (e.g. the IQR) as an error bar."""
    names = (["your guess"] if guess is not None else []) + ["formula", "measured here"]
    values = ([guess] if guess is not None else []) + [predicted, measured]
    errors = [0.0] * (len(values) - 1) + [spread]
    fig = go.Figure(go.Bar(x=names, y=values, marker_color=COLORS[:len(values)][::-1],
                           error_y=dict(type="data", array=errors, visible=True),
                           text=[_num(v, units) for v in values], textposition="outside"))
    return _layout(fig, title, "", units, height=360)


def guess_verdict(guess: float | None, predicted: float, measured: float, spread: float = 0.0, units: str = "ms") -> str:
    """One sentence comparing the learner's guess and the formula with the measurement, computed
    from the three numbers (``spread``: the measurement's noise, e.g. its IQR)."""
    for name, value in (("predicted", predicted), ("measured", measured), ("spread", spread)):
        perf.check_non_negative(name, value)
    if measured <= 0:
        raise ValueError("measured must be greater than zero")

    def off(x: float) -> str:
        ratio = x / measured
        if abs(x - measured) <= spread:
            return "within the measurement's noise"
        if ratio >= 2 or ratio <= 0.5:  # far off: a factor reads better than a percentage
            return f"{max(ratio, 1 / max(ratio, 1e-12)):,.1f}× {'above' if x > measured else 'below'} it"
        return f"{abs(ratio - 1):.0%} {'above' if x > measured else 'below'} it"

    text = f"Measured: {_num(measured, units)}" + (f" (± {spread:.2g} {units} of noise)" if spread else "") + ". "
    text += f"The formula said {_num(predicted, units)}, {off(predicted)}."
    if guess is None:
        return text + " (No guess committed: try the next one!)"
    text += f" Your guess, {_num(guess, units)}, was {off(guess)}"
    closer = abs(math.log(max(guess, 1e-12) / measured)) < abs(math.log(max(predicted, 1e-12) / measured))
    return text + (": closer than the formula." if closer else ".")


def pick_choice(value: float, choices, edges) -> str:
    """The option a measured ``value`` falls in: ``choices[i]`` covers values up to ``edges[i]``,
    the last one everything above (so there is one edge fewer than choices)."""
    if len(edges) != len(choices) - 1 or list(edges) != sorted(edges):
        raise ValueError(f"edges={edges!r} must be {len(choices) - 1} increasing numbers, one fewer than choices")
    return choices[bisect.bisect_left(list(edges), value)]


def choice_verdict(guess: str | None, answer: str, reading: str) -> str:
    """A sentence for a multiple-choice guess: ``reading`` (what was measured), the right option, the guess."""
    text = f"{reading} The answer: **{answer}**."
    if guess is None:
        return text + " (No guess committed: try the next one!)"
    return text + (" Your guess was right." if guess == answer else f" Your guess was “{guess}”.")


def _ms(x: float) -> str:
    return f"{x / 1e3:.2f} s" if x >= 1e3 else f"{x:.2f} ms" if x >= 0.1 else f"{x * 1e3:.0f} µs"


def _flops(x: float) -> str:
    return f"{x / 1e12:,.1f} TFLOP/s" if x >= 1e12 else f"{x / 1e9:,.1f} GFLOP/s"


# the costs a decode step can pay above its memory roof, as options for a guess (keys: explain_decode's)
GAPS = {"kernel": "the matmul kernel streaming below the memory roof", "overhead": "fixed costs per op (small ops, launches)",
        "attention": "attention reading the KV cache", "compute": "compute past the ridge"}
NEAR_THE_LINE = "none: the modeled step stays within 25 % of the memory roof"


def _budget(r) -> tuple[dict, dict]:
    """A decode record's budget terms (ms), and its gaps above the roof grouped as GAPS."""
    b = {k: r.budget.get(k, 0.0) for k in ("memory roof", "kernel below the roof", "compute past the ridge",
                                           "attention (KV reads)", "other small ops", "waiting for launches")}
    b["other small ops"] += r.budget.get("per-op overhead", 0.0)  # how recorded runs of version 1 name it
    return b, {"kernel": b["kernel below the roof"], "overhead": b["other small ops"] + b["waiting for launches"],
               "attention": b["attention (KV reads)"], "compute": b["compute past the ridge"]}


def biggest_gap(r) -> str:
    """The option of GAPS that adds the most to a decode record's modeled step, or NEAR_THE_LINE."""
    b, gaps = _budget(r)
    return NEAR_THE_LINE if r.modeled_ms <= 1.25 * b["memory roof"] else GAPS[max(gaps, key=gaps.get)]


def explain_decode(r) -> str:
    """What one decode record says, in a sentence or three computed from its numbers, with a
    branch for each case that occurs: in cache, noisy, bandwidth-, kernel- or launch-bound, and
    a residual the budget does not explain."""
    b, gaps = _budget(r)
    roof = b["memory roof"]
    head = (f"**{r.preset}** ({r.precision}, {r.mode}): {_ms(r.ms_per_step)} per step, "
            f"{r.ms_per_step / roof:.1f}× the memory line ({_ms(roof)} for {r.weight_bytes / 1e6:,.0f} MB "
            f"at {r.bandwidth / 1e9:.1f} GB/s).")
    if r.fits_in_cache:
        return head + (" Its weights fit in this machine's cache, so they need not come from memory at all: "
                       "the memory line does not bind it, and neither does this budget.")
    per_op = b["other small ops"] / max(r.n_ops, 1) * 1e3
    parts = {f"the batch-1 matmul kernel streaming at {r.kernel_bandwidth / 1e9:.1f} of {r.bandwidth / 1e9:.1f} GB/s":
             b["kernel below the roof"], f"{r.n_ops} ops at {per_op:.1f} µs each": b["other small ops"],
             "attention reading the KV cache": b["attention (KV reads)"], "compute past the ridge": b["compute past the ridge"],
             "the GPU waiting for the CPU to launch ops": b["waiting for launches"]}
    named = [f"{text} ({'+' if ms >= 0 else '−'}{_ms(abs(ms))})" for text, ms in parts.items() if abs(ms) >= 0.02 * roof]
    overhead, biggest = gaps["overhead"], max(gaps, key=gaps.get)
    kind = ("**bandwidth-bound**: close to what memory delivers" if r.modeled_ms <= 1.25 * roof else
            "**launch-bound**: fixed costs per op outweigh moving the bytes" if biggest == "overhead" and overhead > roof else
            "over the memory line by several smaller costs, none dominant" if gaps[biggest] < 0.25 * roof else
            {"kernel": "**kernel-bound**: the matmul kernel, not memory, sets the pace",
             "overhead": "slowed most by fixed costs per op (dispatch, launches, small kernels)",
             "attention": "slowed most by attention reading the KV cache",
             "compute": "**compute-bound**: the batch is past the ridge"}[biggest])
    text = f"{head} It is {kind}. The budget: " + (", ".join(named) or "nothing beyond the memory line")
    text += f"; modeled {_ms(r.modeled_ms)}, measured {_ms(r.ms_per_step)} ({r.residual:+.0%})."
    if abs(r.residual) > 0.15:
        text += (f" The budget leaves {abs(r.residual):.0%} {'unexplained' if r.residual > 0 else 'too much'}: "
                 "something this model of the step does not contain (or a busy machine) is at work.")
    if r.noisy:
        text += (f" ⚠ Noisy: the middle half of the timings spans {r.iqr_ms / r.ms_per_step:.0%} of the median "
                 "(another program was busy?); re-run the cell before drawing conclusions.")
    return text


# what a lower precision did to the step time, as options for a guess and as verdicts (same order)
PRECISION_OUTCOMES = ("about half the time", "less time, but not half", "about the same time", "more time")
_PRECISION_VERDICTS = ("time fell about as much as the bytes", "time fell, but less than the bytes",
                       "time did **not** fall", "it got **slower**")


def precision_outcome(time_ratio: float, bytes_ratio: float) -> int:
    """Index into PRECISION_OUTCOMES of a time ratio (lower / higher precision) at a bytes ratio:
    up to 1.15x the bytes ratio, below 0.95, up to 1.05, or above."""
    return 0 if time_ratio <= 1.15 * bytes_ratio else 1 if time_ratio < 0.95 else 2 if time_ratio <= 1.05 else 3


def explain_precision(records) -> str:
    """The precision experiment: the same model at two or more precisions. Did halving the
    bytes halve the time? The answer comes from the kernel roofs per precision."""
    base = next((r for r in records if r.precision == "fp32"), records[0])
    lines = []
    for r in records:
        if r is base:
            continue
        bytes_ratio, time_ratio = r.weight_bytes / base.weight_bytes, r.ms_per_step / base.ms_per_step
        kernel_ratio, modeled_ratio = base.kernel_bandwidth / r.kernel_bandwidth * bytes_ratio, r.modeled_ms / base.modeled_ms
        verdict = _PRECISION_VERDICTS[precision_outcome(time_ratio, bytes_ratio)]
        lines.append(
            f"{r.precision} reads {bytes_ratio:.0%} of {base.precision}'s bytes and took {time_ratio:.0%} of its time "
            f"({_ms(r.ms_per_step)} vs {_ms(base.ms_per_step)}): {verdict}. This machine's batch-1 {r.precision} kernel "
            f"streams at {r.kernel_bandwidth / 1e9:.1f} GB/s against {base.kernel_bandwidth / 1e9:.1f} GB/s for "
            f"{base.precision}, so the kernels alone predict {kernel_ratio:.0%}; with its other ops (attention, norms) "
            f"priced at {r.precision} too, the gap budget predicts {modeled_ratio:.0%}."
            + (" ⚠ The timings are noisy: re-run." if r.noisy or base.noisy else ""))
    return "\n\n".join(lines)


def explain_prefill(records) -> str:
    """What a prefill sweep (records or dicts) says, computed from it: a step from one token to two
    where the library leaves its matrix-vector kernel, a flat stretch (a pass reads the weights
    once, however many tokens share them), then time in proportion to the prompt (the arithmetic
    binds), where the roofline puts the turn, and the points that are noise."""
    rows = sorted(records, key=lambda r: _val(r, "prompt_len"))
    if len(rows) < 3:
        raise ValueError(f"records: a prefill sweep needs at least three prompt lengths, got {len(rows)}")
    n, ms = [_val(r, "prompt_len") for r in rows], [_val(r, "ms") for r in rows]
    parts, base = [], 0
    if n[:2] == [1, 2] and ms[1] > 1.3 * ms[0]:
        gb = [_val(r, "bytes") / t / 1e6 for r, t in zip(rows, ms[:2])]
        parts.append(f"From 1 token to 2 the time jumped {ms[1] / ms[0]:.1f}× for one more token: one token runs "
                     "matrix–vector kernels (GEMV), two or more run matrix–matrix kernels (GEMM), which here streamed "
                     f"the weights at {gb[1]:.1f} GB/s against {gb[0]:.1f}.")
        base = 1
    end = base
    while end + 1 < len(rows) and ms[end + 1] <= 1.25 * ms[base]:
        end += 1
    parts.append(f"From {n[base]} to {n[end]} tokens ({n[end] / n[base]:.0f}× as many) the time stayed within 25 % of "
                 f"{_ms(ms[base])}: **flat**, since a pass reads the weights once however many tokens share them "
                 f"(one read at the streaming rate: {_ms(_val(rows[base], 'memory_ms'))})." if end > base else
                 f"No flat stretch: at {n[base + 1]} tokens the time was already {ms[base + 1] / ms[base]:.1f}× that at "
                 f"{n[base]}.")
    grow, more = ms[-1] / ms[-2], n[-1] / n[-2]
    if end < len(rows) - 2 and grow >= 0.8 * more:
        rate = (_val(rows[-1], "flops") - _val(rows[-2], "flops")) / (ms[-1] - ms[-2]) * 1e3
        parts.append(f"Then **linear**: from {n[-2]} to {n[-1]} tokens ({more:.1f}× as many) the time grew {grow:.1f}×, "
                     f"about in proportion: each extra token costs {_ms((ms[-1] - ms[-2]) / (n[-1] - n[-2]))} "
                     f"({_flops(rate)}), so the arithmetic, not the weight read, sets the pace.")
    elif end < len(rows) - 1:
        parts.append(f"Then rising, but less than in proportion: from {n[end]} to {n[-1]} tokens "
                     f"({n[-1] / n[end]:.1f}× as many) the time grew {ms[-1] / ms[end]:.1f}×; at these lengths a pass "
                     "is part weight read, part arithmetic, and longer prompts would show the linear part.")
    first, last = rows[0], rows[-1]
    if _val(first, "compute_ms"):
        turn = n[0] * _val(first, "memory_ms") / _val(first, "compute_ms")
        parts.append(f"The roofline (the weights once at the streaming read, the FLOPs at the matmul rate measured on "
                     f"large matrices) puts the turn at about {turn:,.0f} tokens. At {n[-1]} tokens the measurement is "
                     f"{ms[-1] / max(_val(last, 'memory_ms'), _val(last, 'compute_ms')):.1f}× its prediction "
                     f"({_flops(_val(last, 'flops') / ms[-1] * 1e3)} achieved).")
    noisy = [str(_val(r, "prompt_len")) for r in rows if _val(r, "iqr_ms") > 0.15 * _val(r, "ms")]
    if noisy:
        parts.append(f"⚠ Noisy at {', '.join(noisy)} tokens (the middle half of the timings spans over 15 % of the "
                     "median): re-run the cell before trusting those points.")
    return " ".join(parts + wrong_way(rows, "prompt_len", "ms"))


def explain_ttft_tpot(prefill, decode, answer_tokens: int = 200) -> str:
    """TTFT (a prefill record or dict) and TPOT (a decode record or dict) of one request, how much
    faster prefill gets through tokens, and what the wait for an answer of ``answer_tokens`` is made of."""
    n, ttft, tpot = _val(prefill, "prompt_len"), _val(prefill, "ms"), _val(decode, "ms_per_token")
    speed, total = n * tpot / ttft, ttft + perf.check_count("answer_tokens", answer_tokens) * tpot
    text = (f"TTFT: {_ms(ttft)} for the {n}-token prompt ({n / ttft * 1e3:,.0f} prompt tokens/s). TPOT: {_ms(tpot)} "
            f"per generated token ({1e3 / tpot:,.0f} tokens/s). ")
    text += (f"Prefill got through tokens {speed:,.0f}× as fast as decode: it shares each read of the weights among "
             "the prompt's tokens, decode reads them all for every single token. " if speed >= 1.5 else
             f"Prefill got through tokens only {speed:.1f}× as fast as decode here: little gained from sharing "
             "the weight reads (a noisy timing, or fixed costs per pass that dwarf the work?). ")
    share = 1 - ttft / total
    return text + (f"An answer of {answer_tokens} tokens to this prompt takes {_ms(ttft)} + {answer_tokens} × "
                   f"{_ms(tpot)} = {_ms(total)}, {share:.0%} of it decoding: "
                   + ("the answer, not the question, makes you wait." if share > 0.5 else
                      "here the prompt, not the answer, makes you wait."))


def wrong_way(records, x: str, y: str = "ms_per_step", tolerance: float = 0.05) -> list[str]:
    """Neighbouring points where more work took less time (a longer prompt, a bigger batch, a
    longer context faster by more than ``tolerance``): noise to be named and re-run, not a finding."""
    rows = sorted(records, key=lambda r: _val(r, x))
    return [f"{x} {_val(a, x)} → {_val(b, x)}: {_val(a, y):.3g} → {_val(b, y):.3g} ms, faster with more work: "
            "that is noise (a busy machine, a cache effect), not a property of the model; re-run the cell."
            for a, b in zip(rows, rows[1:]) if _val(b, y) < (1 - tolerance) * _val(a, y)]


def batching_claim(records, batch: int = 32) -> dict:
    """Test "``batch`` requests give ``batch``x the throughput at the same latency" on batch-sweep
    records: per context length, the tokens/s gain and the step-time ratio of ``batch`` vs 1."""
    by_context: dict = defaultdict(dict)
    for r in records:
        by_context[_val(r, "context_len")][_val(r, "batch")] = _val(r, "ms_per_step")
    result = {}
    for ctx, ms in sorted(by_context.items()):
        if 1 not in ms or batch not in ms:
            raise ValueError(f"batch={batch!r}: the records need batch 1 and batch {batch} at context {ctx}")
        result[ctx] = {"throughput_gain": batch * ms[1] / ms[batch], "latency_ratio": ms[batch] / ms[1]}
    return result


def claim_verdict(claim: dict, batch: int = 32) -> list[str]:
    """A sentence per context on ``batching_claim``'s result: did ``batch`` sequences give nearly
    ``batch``x the tokens/s (within 10 %), at least half of that, or less?"""
    def verdict(gain):
        return ("holds" if gain >= 0.9 * batch else "holds only in part" if gain >= 0.5 * batch else "does not hold")
    return [f"context {ctx}: {batch} sequences gave {c['throughput_gain']:.1f}× the tokens/s of one, each step "
            f"{c['latency_ratio']:.2f}× as long: the claim {verdict(c['throughput_gain'])} here." for ctx, c in claim.items()]


