"""Interactive controls: sliders and dropdowns -> perf -> a FigureWidget updated in place.

Callbacks here do arithmetic only (perf and serving formulas), never measurements, so they answer
in well under 50 ms at any setting. The longer readouts are pure functions beside their formulas
(``perf.describe_decode``, ``serving.describe_tensor_parallel``) that the tests call directly; bad
values end up as a friendly message, never as an exception.
"""

from __future__ import annotations

import os
import sys

import ipywidgets as W
import plotly.graph_objects as go
import traitlets

from . import perf, plots, serving, specs
from .specs import PRESETS

MEASURED = "this machine (measured)"
CUSTOM = "custom"


def static_frontend() -> bool:
    """Whether widget charts cannot render here: COURSE_STATIC=1 (0: they can), Colab or VS Code."""
    forced = os.environ.get("COURSE_STATIC", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return "google.colab" in sys.modules or any(k in os.environ for k in ("COLAB_RELEASE_TAG", "VSCODE_PID", "VSCODE_CWD"))


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


class Explorer(W.VBox):
    """Controls -> perf -> a readout and a chart updated in place. Subclasses build their controls,
    ``self.readout`` and ``self.figure``, call ``self.watch(*controls)`` and implement ``update()``."""

    children = W.trait_types.TypedTuple(trait=traitlets.Any()).tag(sync=True, **W.widget_serialization)
    NOTE = "<p><i>A static chart at the starting settings: the sliders need JupyterLab with widgets (or Binder).</i></p>"

    @traitlets.validate("children")  # a static self.figure (static_frontend) is shown by _repr_mimebundle_ only
    def _widgets_only(self, proposal):
        return tuple(child for child in proposal["value"] if isinstance(child, W.Widget))

    def _repr_mimebundle_(self, **kwargs):
        """The widget view where widgets render; everywhere, a note, the readout and the chart as HTML."""
        html = self.NOTE + self.readout.value + self.figure.to_html(include_plotlyjs="cdn", full_html=False)
        if not isinstance(self.figure, W.Widget):  # as_widget kept the static figure
            return {"text/html": html, "text/plain": f"{type(self).__name__} (a static chart)"}
        return {**super()._repr_mimebundle_(**kwargs), "text/html": html}

    def watch(self, *controls) -> None:
        """Update whenever one of ``controls`` changes, and once now."""
        for control in controls:
            control.observe(lambda _: self.update(), names="value")
        self.update()

    def update(self) -> None:
        raise NotImplementedError


class DecodeCalculator(Explorer):
    """The notebook-01 calculator: model size, precision, bandwidth and a hardware preset."""

    def __init__(self, n_params=7e9, precision="fp16", preset="A100-80GB", measured=None):
        """``measured``: an optional specs.Hardware for "this machine (measured)"."""
        self.presets = {hw.name: hw for hw in specs.catalog()}
        if measured is not None:
            self.presets[MEASURED] = measured
        hw = self.presets[preset]
        style = dict(description_width="110px")
        layout = W.Layout(width="520px")
        self.size = W.FloatLogSlider(value=n_params, base=10, min=8, max=12, step=0.01, description="parameters",
                                     readout_format=".3g", style=style, layout=layout)
        self.precision = W.Dropdown(options=list(perf.PRECISIONS), value=precision, description="precision",
                                    style=style)
        self.preset = W.Dropdown(options=list(self.presets) + [CUSTOM], value=preset, description="hardware",
                                 style=style)
        self.bandwidth = W.FloatLogSlider(value=hw.bandwidth / 1e9, base=10, min=0, max=4, step=0.01,
                                          description="bandwidth GB/s", readout_format=",.0f", style=style, layout=layout)
        self.memory = W.FloatLogSlider(value=hw.memory / 1e9, base=10, min=0, max=3.3, step=0.01,
                                       description="memory GB", readout_format=",.0f", style=style, layout=layout)
        self.readout = W.HTML()
        self.figure = as_widget(plots.tokens_vs_size(n_params, precision, hw.bandwidth))
        super().__init__([self.preset, self.size, self.precision, self.bandwidth, self.memory, self.readout, self.figure])
        self._syncing = False
        for control in (self.size, self.precision, self.bandwidth, self.memory):
            control.observe(self._on_change, names="value")
        self.preset.observe(self._on_preset, names="value")
        self.update()

    def _on_preset(self, change):
        hw = self.presets.get(change["new"])
        if hw is None:  # "custom": keep the sliders where they are
            return
        self._syncing = True
        try:
            self.bandwidth.value, self.memory.value = hw.bandwidth / 1e9, hw.memory / 1e9
        finally:
            self._syncing = False
        self.update()

    def _on_change(self, change):
        if self._syncing:
            return
        if change["owner"] in (self.bandwidth, self.memory) and self._preset_values() is None:
            self.preset.value = CUSTOM  # the user moved away from the preset's datasheet figures
        self.update()

    # A log slider snaps to its step (10**0.01, 2.3 %): in a browser the A100's 2,039 GB/s comes
    # back as 2,042. Within half a step, the preset's exact figures are the ones meant.
    SNAP = 10 ** 0.005 - 1

    def _preset_values(self) -> tuple[float, float] | None:
        """The selected preset's exact (bandwidth, memory) while the sliders sit on them, else None."""
        hw = self.presets.get(self.preset.value)
        if hw is None:
            return None
        near = all(abs(slider.value / (exact / 1e9) - 1) <= self.SNAP + 1e-9
                   for slider, exact in ((self.bandwidth, hw.bandwidth), (self.memory, hw.memory)))
        return (hw.bandwidth, hw.memory) if near else None

    def update(self):
        """Recompute the readout and redraw the curve and the marker in place."""
        n, prec = self.size.value, self.precision.value
        bw, mem = self._preset_values() or (self.bandwidth.value * 1e9, self.memory.value * 1e9)
        text, fits = perf.describe_decode(n, prec, bw, mem)
        self.readout.value = text
        try:
            sizes, tps = perf.size_curve(prec, bw)
            point = perf.tokens_per_second(n, prec, bw)
        except ValueError:
            return
        fig = self.figure
        with fig.batch_update():
            fig.data[0].x, fig.data[0].y = sizes.tolist(), tps.tolist()  # lists: plotly refuses array.array
            fig.data[0].name = f"bound at {bw / 1e9:,.0f} GB/s, {prec}"
            fig.data[1].x, fig.data[1].y = [n], [point]
            fig.data[1].name = "your model" if fits else "your model (does not fit!)"
            fig.data[1].marker.color = plots.COLORS[2] if fits else plots.COLORS[1]
            fig.data[1].marker.symbol = "circle" if fits else "x"


def _slider(cls, description, **kwargs):
    """A slider as wide as the explorers' others, its label in a 130-pixel column."""
    return cls(description=description, style={"description_width": "130px"}, layout=W.Layout(width="520px"), **kwargs)


class RooflineExplorer(Explorer):
    """Notebook 03: a 7B-class model's decode step on a chosen device's roofline. Weights and
    math have their own precisions (W4A16, W8A8, ...); batch and context sliders move the point
    (KV reads do not amortise, so context pulls it left); the readout adds how many sequences'
    KV caches fit and what a million tokens cost at a price per GPU-hour."""

    SHAPE = PRESETS["7b"]  # a Llama-2-7B-shaped model (32 layers, d 4096, 32 heads)

    def __init__(self, device="A100-80GB", measured=None):
        self.devices = {hw.name: hw for hw in specs.catalog()}
        if measured is not None:
            self.devices[MEASURED] = measured
        math_options = self.devices[device].precisions
        self.device = W.Dropdown(options=list(self.devices), value=device, description="device")
        self.math = W.Dropdown(options=math_options, value="fp16" if "fp16" in math_options else math_options[0],
                               description="math")
        self.weights = W.Dropdown(options=list(perf.PRECISIONS), value=self.math.value, description="weights")
        self.batch = _slider(W.IntSlider, "batch size", value=1, min=1, max=1024)
        self.context = _slider(W.IntSlider, "context (tokens)", value=0, min=0, max=32768, step=256)
        self.price = _slider(W.FloatSlider, "$ per GPU-hour", value=2.5, min=0.0, max=10.0, step=0.05)
        self.readout = W.HTML()
        self.figure, self._roof = None, None
        super().__init__([W.HBox([self.device, self.weights, self.math]), self.batch, self.context, self.price, self.readout])
        self.device.observe(self._on_device, names="value")
        self.watch(self.weights, self.math, self.batch, self.context, self.price)

    def _on_device(self, change):
        options = self.devices[change["new"]].precisions
        keep = self.math.value if self.math.value in options else options[0]
        self.math.options = options
        self.math.value = keep
        self.update()

    def state(self) -> dict:
        """The numbers behind the view (pure arithmetic on the current controls)."""
        hw, wp, mp, b = self.devices[self.device.value], self.weights.value, self.math.value, self.batch.value
        n_params, peak = self.SHAPE.n_params(embedding=False), hw.peak_flops(mp)
        kv_seq = self.context.value * self.SHAPE.kv_bytes_per_token(mp)  # the cache is kept in the math's format
        intensity = serving.decode_intensity(n_params, wp, b, kv_seq)
        step = serving.batched_decode_time(n_params, wp, hw.bandwidth, peak, b, kv_seq)
        batch1 = serving.batched_decode_time(n_params, wp, hw.bandwidth, peak, 1, kv_seq)
        crit, r_kv = serving.critical_batch(peak, hw.bandwidth, wp), kv_seq * peak / hw.bandwidth  # r_kv: ridge x cache bytes
        return {"hw": hw, "peak": peak, "intensity": intensity, "step_s": step, "tokens_per_s": b / step,
                "kv_seq": kv_seq, "weights_held": perf.weight_bytes(self.SHAPE.n_params(), wp),
                "fit": serving.max_sequences(self.SHAPE.n_params(), wp, hw.memory, kv_seq) if kv_seq else None,
                "attained": perf.attainable_flops(intensity, peak, hw.bandwidth),
                "ridge": perf.ridge_point(peak, hw.bandwidth), "critical_batch": crit,  # and with the caches' reads too:
                "compute_from": crit * 2 * n_params / (2 * n_params - r_kv) if r_kv < 2 * n_params else float("inf"),
                "batch1_step_s": batch1, "cost": serving.cost_per_million_tokens(self.price.value, b / step),
                "cost1": serving.cost_per_million_tokens(self.price.value, 1 / batch1)}

    def update(self):
        try:
            s = self.state()
        except ValueError as err:
            self.readout.value = perf.error_html(err)
            return
        hw, b, crit = s["hw"], self.batch.value, s["critical_batch"]
        regime = "compute-bound" if s["intensity"] >= s["ridge"] else "memory-bound"
        lines = [
            f"weights {self.weights.value} ({perf.bytes_per_param(self.weights.value):g} B each), math {self.math.value}: "
            f"ridge {s['ridge']:,.0f} FLOP/byte, critical batch (no KV reads) ≈ <b>{crit:,.0f}</b>; "
            f"intensity <b>{s['intensity']:,.1f} FLOP/byte</b> → <b>{regime}</b>",
            f"step {s['step_s'] * 1e3:,.2f} ms (batch 1: {s['batch1_step_s'] * 1e3:,.2f} ms) → "
            f"<b>{s['tokens_per_s']:,.0f} tokens/s</b> in total, {1 / s['step_s']:,.1f} per sequence; "
            f"at ${self.price.value:.2f} per GPU-hour: <b>${s['cost']:,.3g} per million tokens</b> (batch 1: ${s['cost1']:,.3g})"]
        memory = f"{hw.memory / 1e9:,.1f} GB (as the device reports it)"
        if s["fit"] == 0 or s["weights_held"] > hw.memory:
            room = "do not fit in" if s["weights_held"] > hw.memory else "leave no room for KV caches in"
            lines.append(f"<b style='color:#b00'>⚠ the weights ({s['weights_held'] / 1e9:,.1f} GB) {room} {memory}</b>")
        elif s["fit"] is None:
            lines.append("move the context slider to see how many sequences' KV caches fit in memory")
        else:
            start = s["compute_from"]  # the batch from which compute binds, with these caches read (inf: never)
            cap = ("memory caps the batch before compute does" if s["fit"] < start else "compute caps the batch first") + (
                f" (compute-bound from batch {start:,.0f} with these caches)" if start < float("inf") else
                " (caches this long never let the step turn compute-bound)")
            lines.append(f"{memory} holds the weights ({s['weights_held'] / 1e9:,.1f} GB) and the KV caches of at most "
                         f"<b>{s['fit']:,} sequences</b> of {self.context.value:,} tokens ({s['kv_seq'] / 1e9:,.2f} GB "
                         f"each): {cap}")
            if b > s["fit"]:
                lines.append(f"<b style='color:#b00'>⚠ Out of memory:</b> {b:,} sequences' caches do not fit")
        self.readout.value = "<br>".join(lines)
        roof = (hw.name, self.math.value)
        point = {"label": f"batch {b}", "intensity": s["intensity"], "flops": s["attained"]}
        if roof != self._roof:
            # A new device or precision draws a new chart: restyling the roof line's x and y in
            # place showed wrong lines in JupyterLab, while moving the point in place works.
            self.figure = as_widget(plots.roofline(
                [{"name": f"{hw.name} {self.math.value}", "peak": s["peak"], "bandwidth": hw.bandwidth}], [point]))
            self._roof = roof
            self.children = self.children[:5] + (self.figure,)
            return
        with self.figure.batch_update():
            self.figure.data[1].x, self.figure.data[1].y = [point["intensity"]], [point["flops"] / 1e12]
            self.figure.data[1].text = [point["label"]]


class TensorParallelExplorer(Explorer):
    """Notebook 04: a model split over N devices; streaming shrinks as 1/N, the all-reduces do
    not. The learner picks the all-reduce algorithm (one-shot, or ring: the pessimistic case).
    ``measured`` (specs.custom) with ``link`` (its fitted latency s, bandwidth B/s) adds this
    machine as a device: picking it sets the toy model and the measured link."""

    TOY = "cpu-m"
    MODEL = "70B (80 layers, d 8192)"  # the default, and the model a GPU comes back with from this machine
    MAX_N = 16  # devices the chart draws

    def __init__(self, model=MODEL, device="H100-SXM", measured=None, link=None):
        toy = PRESETS[self.TOY]
        self.models = {**serving.REFERENCE_SHAPES, f"toy {self.TOY} ({toy.n_layers} layers, d {toy.d_model})":
                       (toy.n_params(embedding=False), toy.n_layers, toy.d_model)}
        self.devices = {hw.name: hw for hw in specs.catalog() if hw.kind == "gpu"}
        if measured is not None:
            self.devices[MEASURED] = measured
        self.link_measured = link
        self.model = W.Dropdown(options=list(self.models), value=model, description="model")
        self.device = W.Dropdown(options=list(self.devices), value=device, description="device")
        self.precision = W.Dropdown(options=list(perf.PRECISIONS), value="fp16", description="precision")
        self.algorithm = W.Dropdown(options=list(serving.ALLREDUCE_ALGORITHMS), value="one-shot", description="all-reduce")
        self.n = _slider(W.IntSlider, "devices N", value=2, min=1, max=self.MAX_N)
        self.link = _slider(W.FloatLogSlider, "link GB/s", value=serving.NVLINK_BANDWIDTH / 1e9, base=10, min=-1, max=3,
                            readout_format=",.3g")
        self.latency = _slider(W.FloatLogSlider, "latency α µs", value=serving.NVLINK_LATENCY * 1e6, base=10, min=-1, max=4,
                               readout_format=",.3g")
        self.readout = W.HTML()
        self.figure = as_widget(plots.tensor_parallel_bars(*self._args()))
        super().__init__([W.HBox([self.model, self.device]), W.HBox([self.precision, self.algorithm]), self.n, self.link,
                          self.latency, self.readout, self.figure])
        self.device.observe(self._on_device, names="value")
        self.watch(self.model, self.precision, self.algorithm, self.n, self.link, self.latency)

    def _on_device(self, change):
        """This machine: the toy, fp32 and its link as fitted (ring, gloo's); back to a GPU: 70B, fp16, NVLink, one-shot."""
        if MEASURED in (change["new"], change["old"]):
            here = change["new"] == MEASURED
            latency, bandwidth = (self.link_measured if here and self.link_measured else
                                  (serving.NVLINK_LATENCY, serving.NVLINK_BANDWIDTH))
            self.model.value = list(self.models)[-1] if here else self.MODEL
            self.precision.value, self.algorithm.value = ("fp32", "ring") if here else ("fp16", "one-shot")
            self.latency.value, self.link.value = latency * 1e6, bandwidth / 1e9
        self.update()

    def _args(self):
        n_params, layers, d = self.models[self.model.value]
        return (n_params, self.precision.value, self.devices[self.device.value].bandwidth, layers, d, self.link.value * 1e9,
                self.latency.value * 1e-6, self.MAX_N, self.algorithm.value)

    def update(self):
        n_params, prec, _, layers, d, link, latency, _, algorithm = args = self._args()
        self.readout.value = serving.describe_tensor_parallel(n_params, prec, self.devices[self.device.value], self.n.value,
                                                      layers, d, link, latency, algorithm)
        try:
            fresh = plots.tensor_parallel_bars(*args)
        except ValueError:  # already said in the readout
            return
        with self.figure.batch_update():
            for trace, new in zip(self.figure.data, fresh.data):
                trace.y = new.y
            self.figure.data[0].marker.color = [plots.COLORS[2 if k == self.n.value else 0] for k in range(1, self.MAX_N + 1)]
            self.figure.layout.title.text = fresh.layout.title.text


class SpeculativeExplorer(Explorer):
    """Notebook 04: expected tokens per verification and speed-up for α, γ and draft cost c."""

    COMPARE = (0.5, 0.7, 0.9)  # acceptance rates drawn thin for comparison

    def __init__(self, alpha=0.8, gamma=4, cost_ratio=0.1):
        self.alpha = _slider(W.FloatSlider, "acceptance α", value=alpha, min=0.0, max=0.99, step=0.01)
        self.gamma = _slider(W.IntSlider, "draft length γ", value=gamma, min=1, max=16)
        self.cost = _slider(W.FloatSlider, "draft cost c", value=cost_ratio, min=0.0, max=1.0, step=0.01)
        self.readout = W.HTML()
        self.figure = as_widget(plots.speculative_curve(alpha, cost_ratio, alphas=self.COMPARE))
        super().__init__([self.alpha, self.gamma, self.cost, self.readout, self.figure])
        self.watch(self.alpha, self.gamma, self.cost)

    def update(self):
        a, g, c = self.alpha.value, self.gamma.value, self.cost.value
        tokens = perf.speculative_expected_tokens(a, g)
        speedup = perf.speculative_speedup(a, g, c)
        verdict = "a win" if speedup > 1 else "a <b style='color:#b00'>slow-down</b>"
        self.readout.value = (f"expected tokens per verification pass: <b>{tokens:.2f}</b> (at most γ + 1 = {g + 1}); "
                              f"cost per pass: γ·c + 1 = {g * c + 1:.2f} target steps → "
                              f"speed-up <b>{speedup:.2f}×</b>, {verdict}")
        gammas = list(range(1, 17))
        with self.figure.batch_update():
            self.figure.data[0].y = [perf.speculative_speedup(a, k, c) for k in gammas]
            self.figure.data[0].name, self.figure.layout.title.text = f"α = {a:.2f} (yours)", plots.speculative_title(c)
            for trace, alpha in zip(self.figure.data[1:], self.COMPARE):  # the thin comparison curves
                trace.y = [perf.speculative_speedup(alpha, k, c) for k in gammas]
