"""Presenting results: pure figure builders (data in, ``plotly`` figure out), no widgets and no measurement:
the notebooks (and widgets.py) pass in what perf or measure computed. The sentences that read a learner's own
measurements are in explain.py.
"""

from __future__ import annotations

from functools import partial

import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from . import perf, serving
from .explain import field, group_by_context

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


# ----------------------------------------------------------------------------- notebook 00
def machine_vs_catalog(measured_bandwidth: float, hardware_list, measured_label="this machine (measured)") -> go.Figure:
    """Horizontal bars of memory bandwidth (GB/s, log scale): the catalogue and this machine."""
    bars = sorted([(hw.bandwidth / 1e9, hw.label or hw.name, COLORS[0]) for hw in hardware_list]
                  + [(measured_bandwidth / 1e9, measured_label, COLORS[1])], key=lambda bar: bar[0])
    values, names, colors = zip(*bars)
    fig = go.Figure(go.Bar(x=values, y=names, orientation="h", marker_color=colors,
                           text=[f"{v:,.0f} GB/s" for v in values], textposition="outside"))
    return _layout(fig, "Memory bandwidth: your machine vs datasheets", "GB/s (log scale)", "", logx=True,
                   height=120 + 32 * len(names))


# ----------------------------------------------------------------------------- notebook 01
def tokens_vs_size(n_params: float, precision: str, bandwidth: float) -> go.Figure:
    """tokens/s vs model size (log-log) for one precision and bandwidth, current model marked.
    Trace 0 is the curve, trace 1 the marker (widgets.py updates both in place, and marks a model that does not fit)."""
    sizes, tps = perf.size_curve(precision, bandwidth)
    point = perf.tokens_per_second(n_params, precision, bandwidth)
    fig = go.Figure([
        go.Scatter(x=list(sizes), y=list(tps), mode="lines", name=f"bound at {bandwidth / 1e9:,.0f} GB/s, {precision}",
                   line=dict(color=COLORS[0])),
        go.Scatter(x=[n_params], y=[point], mode="markers", name="your model",
                   marker=dict(size=14, color=COLORS[2], symbol="circle")),
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
    fills = [["white"] * len(models)] + [["white" if cell[(m, g)]["fits"] else "#fde0dd" for m in models] for g in gpus]
    fig = go.Figure(go.Table(header=dict(values=["model (weights)"] + gpus, fill_color="#e8eef7", align="left"),
                             cells=dict(values=columns, fill_color=fills, align="left", height=28)))
    fig.update_layout(height=90 + 30 * len(models), margin=dict(l=10, r=10, t=40, b=10),
                      title=f"Batch-1 bound at {rows[0]['precision'].upper()} (pink: the weights do not fit in one device)")
    return fig


def components_bars(parts_by_model: dict[str, dict[str, float]]) -> go.Figure:
    """Share of a decode step's bytes per component, one stacked bar per model."""
    fig = go.Figure()
    names = list(next(iter(parts_by_model.values())))
    totals = [sum(p.values()) for p in parts_by_model.values()]
    for i, comp in enumerate(names):
        shares = [100 * p[comp] / t for p, t in zip(parts_by_model.values(), totals)]
        fig.add_bar(y=list(parts_by_model), x=shares, name=comp, orientation="h", marker_color=COLORS[i % 8],
                    hovertemplate=comp + ": %{x:.2f} %<extra></extra>")
    fig.update_layout(barmode="stack")
    return _layout(fig, "Where a decode step's bytes come from", "% of bytes read per token", "",
                   height=260 + 60 * len(parts_by_model))


def _iqr_bars(records, per: str = "batch"):
    """Symmetric error bars of half the inter-quartile range (per token where ``per`` is set)."""
    return dict(type="data", array=[field(r, "iqr_ms") / 2 / (field(r, per) if per else 1) for r in records], visible=True)


def _bandwidth_line(records, bandwidth: float, unit: float, name: str) -> go.Scatter:
    """The line ms = bytes / bandwidth, from 0 past the records' bytes per token; x in ``unit`` bytes (1e6: MB)."""
    most = max(r.bytes_per_step / r.batch for r in records) * 1.1
    return go.Scatter(x=[0, most / unit], y=[0, most / bandwidth * 1e3], mode="lines", name=name,
                      line=dict(color=COLORS[0], dash="dash"))


def measured_vs_bytes(records, bandwidth: float) -> go.Figure:
    """Measured ms/token (median, IQR error bars) against bytes per token, with the line
    bytes / bandwidth and the modeled budget. Points in cache are drawn hollow."""
    mb = [r.bytes_per_step / r.batch / 1e6 for r in records]
    fig = go.Figure(_bandwidth_line(records, bandwidth, 1e6, f"bytes / {bandwidth / 1e9:.1f} GB/s"))
    fig.add_scatter(x=mb, y=[r.modeled_ms / r.batch for r in records], mode="markers",
                    name="modeled (the gap budget)", marker=dict(symbol="diamond", size=9, color=COLORS[3]))
    fig.add_scatter(x=mb, y=[r.ms_per_token for r in records], mode="markers+text", error_y=_iqr_bars(records),
                    text=[r.preset for r in records], textposition="top left", name="measured (median, IQR)",
                    marker=dict(size=11, color=COLORS[1],
                                symbol=["circle-open" if r.fits_in_cache else "circle" for r in records]))
    return _layout(fig, "Decode: measured vs predicted", "MB read per token (weights + KV cache)", "ms per token")


# ----------------------------------------------------------------------------- notebook 02
def intensity_vs_tokens(d_in: int, d_out: int, weight_bytes: float, act_bytes: float, ridges: dict[str, float]) -> go.Figure:
    """Arithmetic intensity of x @ W against the number of tokens n (1 to 4096), with device ridge points."""
    ns = sorted({int(4096 ** (i / 79)) for i in range(80)})  # 80 log-spaced whole numbers
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
    xs = [field(r, "prompt_len") for r in records]
    fig = go.Figure(go.Scatter(x=xs, y=[field(r, "ms") for r in records], mode="lines+markers",
                               error_y=_iqr_bars(records, per=""), name="measured (median, IQR)",
                               marker=dict(color=COLORS[1])))
    fig.add_scatter(x=xs, y=[field(r, "predicted_ms") for r in records], mode="lines",
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
def roofline(rooflines: list[dict], points: list[dict] = ()) -> go.Figure:
    """Log-log roofline chart. ``rooflines``: dicts with name, peak (FLOP/s), bandwidth (B/s) and
    optional dash; ``points``: dicts with label, intensity (FLOP/B) and flops (attained FLOP/s)."""
    fig = go.Figure()
    for i, roof in enumerate(rooflines):
        xs, ys = perf.roofline_xy(roof["peak"], roof["bandwidth"])
        ridge = perf.ridge_point(roof["peak"], roof["bandwidth"])
        fig.add_scatter(x=xs, y=[y / 1e12 for y in ys], mode="lines", name=f"{roof['name']} (ridge {ridge:,.0f})",
                        line=dict(color=COLORS[i % 8], dash=roof.get("dash", "solid"), width=2.5))
    for j, p in enumerate(points):  # labels alternate above-left and below-right of the roof: neighbours stay readable
        fig.add_scatter(x=[p["intensity"]], y=[p["flops"] / 1e12], mode="markers+text", name=p["label"],
                        text=[p["label"]], textposition="bottom right" if j % 2 == 0 else "top left", showlegend=False,
                        marker=dict(size=12, symbol="diamond", color=COLORS[(j + 4) % 8]))
    return _layout(fig, "The roofline: attainable FLOP/s = min(peak, intensity × bandwidth)",
                   "arithmetic intensity (FLOP per byte)", "TFLOP/s", logx=True, logy=True, height=480)


def batch_sweep_figure(records, predicted: list[dict], title="Batching on this machine") -> go.Figure:
    """Measured (and predicted) decode step time and tokens/s against the batch size. Records
    (measure.DecodeRecord, or dicts with a ``label``) carry batch, ms_per_step, tokens_per_s and
    context_len (one line each); those with an ``iqr_ms`` get error bars of half their IQR."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("time per decode step (ms)", "tokens per second"))
    for i, ((label, ctx), rows) in enumerate(group_by_context(list(records) + list(predicted)).items()):
        name = f"{label}, context {ctx}"
        dash = "dash" if label.startswith("predicted") else None
        xs, iqr = [field(r, "batch") for r in rows], [(field(r, "iqr_ms") or 0.0) / 2 for r in rows]
        for col, key in ((1, "ms_per_step"), (2, "tokens_per_s")):
            ys = [field(r, key) for r in rows]
            bars = iqr if col == 1 else [y * e / field(r, "ms_per_step") for y, e, r in zip(ys, iqr, rows)]
            fig.add_scatter(x=xs, y=ys, mode="lines+markers", name=name, legendgroup=name, showlegend=col == 1,
                            error_y=dict(type="data", array=bars, visible=any(bars)),
                            line=dict(color=COLORS[i % 8], dash=dash), row=1, col=col)
    fig.update_xaxes(type="log", title="batch size")
    fig.update_yaxes(type="log")
    fig.update_layout(template=TEMPLATE, title=title, height=430, legend=dict(orientation="h", y=-0.25))
    return fig


def latency_throughput(records, title="Each user's speed against the total: batching trades one for the other"):
    """Per-user tokens/s (one sequence's speed, 1 / step time) against total tokens/s (batch /
    step time), one line per (label, context), each point marked with its batch size."""
    fig = go.Figure()
    for i, ((label, ctx), rows) in enumerate(group_by_context(records).items()):
        step_s = [field(r, "ms_per_step") / 1e3 for r in rows]
        fig.add_scatter(x=[field(r, "batch") / t for r, t in zip(rows, step_s)], y=[1 / t for t in step_s],
                        mode="lines+markers+text", text=[str(field(r, "batch")) for r in rows], textposition="top right",
                        name=f"{label}, context {ctx}", line=dict(color=COLORS[i % 8],
                                                                  dash="dash" if label.startswith("predicted") else None))
    return _layout(fig, title, "total tokens/s (all sequences)", "tokens/s for each sequence", logx=True, logy=True)


def moe_figure(models: dict, precision: str = "fp16") -> go.Figure:
    """Share of a mixture-of-experts model's weights one decode step streams, against the batch (1 to 512)
    (``models``: name -> (total, active, experts, top_k), as serving.MOE_MODELS)."""
    batches = sorted({int(512 ** (i / 39)) for i in range(40)})  # log-spaced whole batches
    fig = go.Figure()
    for i, (name, (total, active, experts, k)) in enumerate(models.items()):
        gb = [serving.moe_step_bytes(total, active, experts, k, precision, b) / 1e9 for b in batches]
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
    parts = [serving.tensor_parallel_components(n_params, precision, bandwidth, n, n_layers, d_model,
                                             link_bandwidth, link_latency, algorithm=algorithm) for n in ns]
    fig = go.Figure([go.Bar(x=ns, y=[s * 1e3 for s, _ in parts], name="streaming weights (÷ N)", marker_color=COLORS[0]),
                     go.Bar(x=ns, y=[c * 1e3 for _, c in parts], name="all-reduces (2 per layer)", marker_color=COLORS[1])])
    fig.update_layout(barmode="stack")
    return _layout(fig, f"Tensor-parallel decode step ({algorithm} all-reduce)", "devices (N)", "ms per token")


def allreduce_fit(link, decode_bytes: int | None = None) -> go.Figure:
    """A measured all-reduce sweep (medians, half the IQR as error bars) against the fitted alpha-beta line
    (``link``: parallel.LinkResult or its dict), on log axes; the decode message marked."""
    get = partial(field, link)
    sizes, n, algorithm = get("message_bytes"), get("world_size"), get("algorithm")
    grid = [min(sizes) * (max(sizes) / min(sizes)) ** (i / 59) for i in range(60)]
    fitted = [serving.allreduce_time(m, n, get("bandwidth_Bps"), get("latency_s"), algorithm) * 1e6 for m in grid]
    fig = go.Figure(go.Scatter(x=sizes, y=[t * 1e6 for t in get("seconds")], mode="markers", name="measured (median, IQR)",
                               error_y=dict(type="data", array=[q / 2 * 1e6 for q in get("iqr_s")]), marker=dict(size=10)))
    fig.add_scatter(x=grid, y=fitted, mode="lines", name=f"fit: α = {get('latency_s') * 1e6:.0f} µs, "
                    f"β = {get('bandwidth_Bps') / 1e9:.2f} GB/s ({algorithm})", line=dict(color=COLORS[1]))
    if decode_bytes:
        fig.add_vline(x=decode_bytes, line_dash="dot", annotation_text="one token's hidden state")
    return _layout(fig, f"All-reduce over {n} ranks ({get('backend')})", "message (bytes)", "µs per all-reduce",
                   logx=True, logy=True)


def speculative_curve(alpha: float, cost_ratio: float, alphas=(0.5, 0.7, 0.9)) -> go.Figure:
    """Speed-up of speculative decoding against the draft length γ (1 to 16), for a few acceptance rates
    (thin) and the chosen one (thick). Trace 0 is the chosen α (widgets update it in place)."""
    gammas = list(range(1, 17))
    fig = go.Figure()
    fig.add_scatter(x=gammas, y=[perf.speculative_speedup(alpha, g, cost_ratio) for g in gammas], mode="lines+markers",
                    name=f"α = {alpha:.2f} (yours)", line=dict(color=COLORS[1], width=4))
    for i, a in enumerate(alphas):
        fig.add_scatter(x=gammas, y=[perf.speculative_speedup(a, g, cost_ratio) for g in gammas], mode="lines",
                        name=f"α = {a}", line=dict(color=COLORS[(i + 2) % 8], width=1.5, dash="dot"))
    fig.add_scatter(x=[1, 16], y=[1.0, 1.0], mode="lines", name="no speed-up", line=dict(color="gray"))
    return _layout(fig, speculative_title(cost_ratio), "draft length γ", "speed-up over plain decoding")


def speculative_title(cost_ratio: float) -> str:
    return f"Speculative decoding: speed-up vs draft length (draft cost c = {cost_ratio:.2f})"


# ----------------------------------------------------------------------------- recorded GPU runs
def reference_decode(eager, graph, bandwidth: float, label: str) -> go.Figure:
    """A recorded GPU's batch-1 decode records, eager and in a CUDA graph, against
    bytes / bandwidth: small models sit far above the line (launch overhead)."""
    fig = go.Figure(_bandwidth_line(eager + graph, bandwidth, 1e9, "bytes / read bandwidth"))
    for i, (name, rows) in enumerate((("eager PyTorch", eager), ("one CUDA graph per step", graph))):
        fig.add_scatter(x=[r.bytes_per_step / r.batch / 1e9 for r in rows], y=[r.ms_per_token for r in rows],
                        mode="lines+markers+text", text=[r.preset for r in rows], textposition="top left",
                        name=name, marker=dict(size=10, color=COLORS[1 + i]))
    return _layout(fig, f"Batch-1 decode, {label}", "GB read per token", "ms per token")


# ----------------------------------------------------------------------------- reading a decode record
def budget_waterfall(record) -> go.Figure:
    """The gap budget of one decode record as a waterfall: from the memory roof, term by term,
    to the modeled time, then the measured time (with its IQR) and the residual between them."""
    terms = {k: v for k, v in record.budget.items() if abs(v) > 1e-4 * record.modeled_ms}
    names = list(terms) + ["modeled"]  # "measured" is a bar of its own (a waterfall's total would be the modeled sum)
    fig = go.Figure(go.Waterfall(x=names, y=[*terms.values(), 0], measure=["relative"] * len(terms) + ["total"],
                                 text=[f"{v:+.2f}" for v in terms.values()] + [f"{record.modeled_ms:.2f}"],
                                 textposition="outside", connector=dict(line=dict(color="#bbb")),
                                 increasing=dict(marker_color=COLORS[1]), decreasing=dict(marker_color=COLORS[2]),
                                 totals=dict(marker_color=COLORS[0])))
    fig.add_bar(x=["measured"], y=[record.ms_per_step], marker_color=COLORS[3], name="measured (median, IQR)",
                error_y=dict(type="data", array=[record.iqr_ms / 2]), text=[f"{record.ms_per_step:.2f}"],
                textposition="outside")
    title = f"{record.preset} ({record.precision}, {record.mode}): where the step's time goes"
    return _layout(fig, title, "", "ms per step", height=400)


def guess_figure(guess: float | None, predicted: float, measured: float, spread: float = 0.0, units: str = "ms",
                 title: str = "Your guess, the formula and this machine", labels=("formula", "measured here")) -> go.Figure:
    """Three bars side by side: the learner's guess (if any), the prediction and the measurement (named
    by ``labels``, e.g. a recorded run's), with ``spread`` as its error bar (half the IQR, as every error bar here)."""
    names = (["your guess"] if guess is not None else []) + list(labels)
    values = ([guess] if guess is not None else []) + [predicted, measured]
    errors = [0.0] * (len(values) - 1) + [spread]
    fig = go.Figure(go.Bar(x=names, y=values, marker_color=COLORS[:len(values)][::-1],
                           error_y=dict(type="data", array=errors, visible=True),
                           text=[perf.format_number(v, units) for v in values], textposition="outside"))
    return _layout(fig, title, "", units, height=360)


