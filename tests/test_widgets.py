"""Widgets: every control to its extremes, the text and the figure follow, nothing raises."""

import sys
import time

import plotly.graph_objects as go
import pytest

from course_lib import perf, plots, serving, specs, widgets


@pytest.fixture
def calc():
    me = specs.custom(widgets.MEASURED, 12.4e9, 2e9, {"fp32": 5e10})
    return widgets.DecodeCalculator(measured=me)


def test_describe_decode_worked_number():
    text, fits = perf.describe_decode(7e9, "fp16", 2e12, 80e9)
    assert "7.00 ms/token" in text and "142.9 tokens/s" in text and fits
    text, fits = perf.describe_decode(70e9, "fp16", 2e12, 80e9)
    assert not fits and "Out of memory" in text and "at least 2" in text


def test_describe_decode_bad_input_is_a_message():
    text, fits = perf.describe_decode(-1, "fp16", 2e12, 80e9)
    assert "Cannot compute" in text and not fits


def test_preset_sets_bandwidth_and_memory(calc):
    calc.preset.value = "H200"
    assert calc.bandwidth.value == pytest.approx(4800) and calc.memory.value == pytest.approx(150.10988032)
    assert "4,800 GB/s" in calc.readout.value
    calc.preset.value = widgets.MEASURED
    assert calc.bandwidth.value == pytest.approx(12.4)


def test_moving_bandwidth_switches_to_custom(calc):
    calc.bandwidth.value = 500
    assert calc.preset.value == widgets.CUSTOM
    assert "500 GB/s" in calc.readout.value


def test_figure_updates_in_place(calc):
    y_before = list(calc.figure.data[0].y)
    calc.precision.value = "int4"
    assert list(calc.figure.data[0].y) != y_before
    calc.size.value = 70e9
    assert calc.figure.data[1].x[0] == pytest.approx(70e9, rel=1e-6)


def test_every_control_at_its_extremes_never_raises_and_is_fast(calc):
    texts = set()
    for control in (calc.size, calc.bandwidth, calc.memory):
        # the log sliders' ends, then absurd values (which the slider clamps to its range)
        for value in (10 ** control.min, 10 ** control.max, 0.0, -5.0, 1e30):
            start = time.perf_counter()
            control.value = value
            assert time.perf_counter() - start < 0.05
            assert 10 ** control.min <= control.value <= 10 ** control.max
            texts.add(calc.readout.value)
    for precision in calc.precision.options:
        calc.precision.value = precision
        texts.add(calc.readout.value)
    for preset in calc.preset.options:
        calc.preset.value = preset
        texts.add(calc.readout.value)
    assert len(texts) > 5 and not any("Cannot compute" in t for t in texts)


def test_oom_marker(calc):
    calc.preset.value = "A100-80GB"
    calc.precision.value = "fp16"
    calc.size.value = 400e9
    assert "Out of memory" in calc.readout.value and calc.figure.data[1].marker.symbol == "x"
    calc.precision.value = "int4"
    calc.size.value = 70e9
    assert "fits" in calc.readout.value and calc.figure.data[1].marker.symbol == "circle"



def _drive_to_extremes(controls, readout, figure):
    """Set every slider to both ends and every dropdown to every option; return the texts seen."""
    texts = set()
    for control in controls:
        if hasattr(control, "options"):
            values = list(control.options)
        elif isinstance(control, widgets.W.FloatLogSlider):
            values = [10 ** control.min, 10 ** control.max]
        else:
            values = [control.min, control.max]
        for value in values:
            start = time.perf_counter()
            control.value = value
            # not a benchmark: a generous bound that only a callback which measures something would break
            assert time.perf_counter() - start < 2.0, (control.description, value)
            texts.add(readout.value)
    assert figure.data and all(len(t.y) for t in figure.data)
    return texts


def test_roofline_explorer_moves_the_point():
    me = specs.custom(widgets.MEASURED, 12.4e9, 2e9, {"fp32": 5e10})
    r = widgets.RooflineExplorer(measured=me)
    x1 = r.figure.data[1].x[0]
    r.batch.value = 64
    assert r.figure.data[1].x[0] == pytest.approx(64 * x1, rel=1e-6)  # intensity ~ batch without KV
    assert "memory-bound" in r.readout.value
    r.batch.value = 1024
    assert "compute-bound" in r.readout.value
    r.context.value = 32768
    assert "Out of memory" in r.readout.value and "memory-bound" in r.readout.value
    texts = _drive_to_extremes([r.device, r.weights, r.math, r.batch, r.context, r.price], r.readout, r.figure)
    assert not any("Cannot compute" in t for t in texts)


def test_roofline_explorer_separates_weight_and_math_precision():
    r = widgets.RooflineExplorer(device="A100-80GB")
    assert "critical batch (no KV reads) ≈ <b>153</b>" in r.readout.value  # 312e12 / 2.039e12, fp16
    r.weights.value = "int4"  # W4A16: a quarter of the bytes per FLOP
    assert "≈ <b>38</b>" in r.readout.value
    r.device.value, r.weights.value, r.math.value = "H100-SXM", "fp8", "fp8"  # W8A8: half the bytes, twice the peak
    assert "≈ <b>295</b>" in r.readout.value


def test_roofline_explorer_kv_capacity_and_cost():
    r = widgets.RooflineExplorer(device="A100-80GB")
    r.price.value = 2.0
    assert "move the context slider" in r.readout.value
    # batch-1 step: 13.15 GB streamed / 2.039 TB/s = 6.45 ms -> 155 tokens/s -> $2 / (155 x 3600 / 1e6) = $3.58
    assert "$3.58 per million tokens" in r.readout.value
    r.context.value = 4096
    # (85.9 - 13.4) GB (weights with the embedding) / 2.147 GB = 33.8: 33 sequences, far below the critical batch
    assert "at most <b>33 sequences</b>" in r.readout.value and "memory caps the batch" in r.readout.value
    # 2.15 GB of cache per sequence x ridge 153 = 329 GFLOP of reach per sequence, above the 2P = 13.1 GFLOP it brings:
    # intensity 2Pb / (W + b kv) stays under the ridge at any batch
    assert "never let the step turn compute-bound" in r.readout.value
    r.context.value = 64  # 33.6 MB each: b = 153 x 13.15 / (13.15 - 153 x 0.0336) = 251
    assert "compute caps the batch first (compute-bound from batch 251 with these caches)" in r.readout.value
    r.context.value = 4096
    r.batch.value = 34
    assert "Out of memory" in r.readout.value
    r.device.value = "L4"  # (24.15 - 13.41) GB / 2.147 GB = 5.003: 5 such caches
    assert "at most <b>5 sequences</b>" in r.readout.value
    r.device.value, r.weights.value = "RTX-4090", "fp32"  # 26.9 GB of weights in 25.8 GB
    assert "do not fit in 25.8 GB" in r.readout.value
    r.context.value = 0  # no caches at all: the weights still do not fit, and the readout still says so
    assert "do not fit in 25.8 GB" in r.readout.value
    # L4: 17.2 GB of cache for one sequence of 32768 tokens, 10.7 GB free beside the weights
    r.device.value, r.weights.value, r.context.value = "L4", "fp16", 32768
    assert "leave no room for KV caches in 24.2 GB" in r.readout.value


def test_tensor_parallel_explorer():
    t = widgets.TensorParallelExplorer(model="405B (126 layers, d 16384)", device="H100-SXM")
    t.n.value = 8
    assert "does not fit" in t.readout.value and "at least 10 devices" in t.readout.value  # 810 GB / 85.5 GB
    t.n.value = 16
    assert "each device holds" in t.readout.value
    before = list(t.figure.data[1].y)
    t.latency.value = 50
    assert list(t.figure.data[1].y) != before
    t.algorithm.value = "ring"
    assert "ring all-reduce" in t.figure.layout.title.text and "with one-shot all-reduces instead" in t.readout.value
    texts = _drive_to_extremes([t.model, t.device, t.precision, t.algorithm, t.n, t.link, t.latency], t.readout, t.figure)
    assert not any("Cannot compute" in x for x in texts)


def test_tensor_parallel_explorer_defaults_tp8_beats_tp4_for_70b():
    # erratum 11: 70B fp16 on H100 SXM with the default one-shot NVLink all-reduce (6 us, 450 GB/s)
    t = widgets.TensorParallelExplorer()
    assert t.model.value.startswith("70B") and t.algorithm.value == "one-shot"
    t.n.value = 4
    step4 = t.figure.data[0].y[3] + t.figure.data[1].y[3]
    assert step4 == pytest.approx(11.425, rel=1e-3)  # 10.448 ms streaming + 160 x 6.11 us
    t.n.value = 8
    step8 = t.figure.data[0].y[7] + t.figure.data[1].y[7]
    assert step8 == pytest.approx(6.225, rel=1e-3) and step8 < step4
    # 41.79 ms on one device (if it fit) / 6.225 = 6.71x
    assert "6.71× faster" in t.readout.value and "fastest N from 1 to 16: <b>16</b>" in t.readout.value
    # ring, the pessimistic case: 140/(N x 3.35) ms + 160 x 12 (N-1) us is least at N = 5 (16.05 ms)
    assert "with ring all-reduces instead: 18.7 ms at N = 8; fastest N 5" in t.readout.value


def test_tensor_parallel_explorer_on_this_machine():
    me = specs.custom(widgets.MEASURED, 10e9, 8e9)
    t = widgets.TensorParallelExplorer(measured=me, link=(300e-6, 1e9))
    t.device.value = widgets.MEASURED
    assert t.model.value.startswith("toy cpu-m") and t.precision.value == "fp32" and t.algorithm.value == "ring"
    assert t.latency.value == pytest.approx(300) and t.link.value == pytest.approx(1.0)
    # cpu-m: 29.4 M streamed params x 4 B / 10 GB/s = 11.75 ms; N=2, ring: 5.87 ms + 16 x (600 + 2.05) us = 15.5 ms
    assert "slower</b> than one device: 1.32× its time" in t.readout.value and "optimistic case" in t.readout.value
    assert "at least 1 device for" in t.readout.value
    t.device.value = "H100-SXM"
    assert t.model.value.startswith("70B") and t.precision.value == "fp16" and t.latency.value == pytest.approx(6)
    assert t.algorithm.value == "one-shot"


def test_describe_tensor_parallel_by_hand():
    h100 = specs.get("H100-SXM")
    text = serving.describe_tensor_parallel(70e9, "fp16", h100, 8, 80, 8192, 450e9, 6e-6)
    assert "each device holds 17.5 GB" in text and "at least 2 devices" in text
    assert "step 6.22 ms = 5.22 ms streaming + 1 ms in 160 one-shot all-reduces (16%)" in text
    assert "(if one could hold the weights)" in text
    one = serving.describe_tensor_parallel(7e9, "fp16", h100, 1, 32, 4096, 450e9, 6e-6)
    assert "faster" not in one and "slower" not in one and "all streaming (one device: no all-reduces)" in one
    # 7B at 16 devices: 14 GB / 16 / 3.35 TB/s = 0.26 ms + 64 x (6 us + 15 x 8 kB / 450 GB/s) = 0.40 ms, the fastest N
    assert "fastest N from 1 to 16: <b>16</b>" in one and "adding devices still helps at N = 16" in one
    assert "Cannot compute" in serving.describe_tensor_parallel(7e9, "fp16", h100, 2, 32, 4096, 450e9, 6e-6, "tree")


def test_speculative_explorer():
    s = widgets.SpeculativeExplorer(alpha=0.8, gamma=4, cost_ratio=0.1)
    assert "3.36" in s.readout.value and "2.40×" in s.readout.value
    s.alpha.value, s.cost.value = 0.1, 1.0
    assert "slow-down" in s.readout.value and "draft cost c = 1.00" in s.figure.layout.title.text  # the title follows c
    texts = _drive_to_extremes([s.alpha, s.gamma, s.cost], s.readout, s.figure)
    assert len(texts) > 3


def test_slider_snapping_keeps_the_preset(calc):
    # a browser snaps the log slider to its step: 2,039 GB/s comes back as 10**3.31 = 2,042
    calc.preset.value = "A100-80GB"
    calc.bandwidth.value = 10 ** 3.31
    calc.memory.value = 10 ** 1.93  # 85.1 for the 85.9 GB an "80 GB" A100 reports
    assert calc.preset.value == "A100-80GB"
    assert "2,039 GB/s" in calc.readout.value and "in 86 GB" in calc.readout.value
    calc.bandwidth.value = 10 ** 3.33  # a real move: a step and a half away
    assert calc.preset.value == widgets.CUSTOM and "2,138 GB/s" in calc.readout.value



@pytest.mark.parametrize("explorer", [widgets.DecodeCalculator, widgets.RooflineExplorer, widgets.TensorParallelExplorer,
                                      widgets.SpeculativeExplorer])
@pytest.mark.parametrize("static", ["0", "1"])
def test_explorers_always_carry_a_static_chart(monkeypatch, explorer, static):
    """Widgets where they render; where they cannot (COURSE_STATIC=1, Colab, VS Code), a note, the readout and a
    static chart; and in both cases that HTML in the output, for static views of a saved notebook."""
    monkeypatch.setenv("COURSE_STATIC", static)
    view = explorer()
    bundle = view._repr_mimebundle_()
    page = bundle["text/html"]
    assert page.count('class="plotly-graph-div"') == 1 and widgets.Explorer.NOTE in page and view.readout.value in page
    assert ("application/vnd.jupyter.widget-view+json" in bundle) is (static == "0")
    assert (view.figure in view.children) is (static == "0") and all(isinstance(c, widgets.W.Widget) for c in view.children)
    before = view.figure.to_json()
    slider = next(c for c in view.children if isinstance(c, (widgets.W.IntSlider, widgets.W.FloatLogSlider,
                                                             widgets.W.FloatSlider)))
    slider.value = slider.max
    assert view.figure.to_json() != before  # the (static or live) figure still follows the controls


@pytest.mark.parametrize("env, colab, static", [
    ({}, False, False), ({"VSCODE_PID": "42"}, False, True), ({"COLAB_RELEASE_TAG": "r"}, False, True),
    ({}, True, True), ({"COURSE_STATIC": "1"}, False, True), ({"COURSE_STATIC": "0", "VSCODE_PID": "42"}, False, False),
])
def test_static_frontend_detects_colab_and_vs_code(monkeypatch, env, colab, static):
    for key in ("COURSE_STATIC", "COLAB_RELEASE_TAG", "VSCODE_PID", "VSCODE_CWD"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", object())
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert widgets.static_frontend() is static
    figure = widgets.as_widget(plots.speculative_curve(0.8, 0.1))
    assert isinstance(figure, go.FigureWidget) is not static and isinstance(figure, go.Figure) is static
