"""plots: pure builders return figures whose data are the perf numbers."""

import plotly.graph_objects as go
import pytest

from course_lib import hardware, perf, plots
from course_lib.measure import DecodeRecord, PrefillRecord


def decode(preset="a", weight_bytes=1e8, ms=9.0, batch=1, context_len=0, fits_in_cache=False, **over):
    return DecodeRecord(preset=preset, device="cpu", precision="fp32", mode="eager", batch=batch,
                        context_len=context_len, weight_bytes=weight_bytes, kv_bytes=0.0, flops=1.0, ms_per_step=ms,
                        iqr_ms=0.2 * ms, repeats=5, bandwidth=12.5e9, n_ops=10, op_cost=5e-6, predicted_ms=1.0,
                        launch_aware_ms=ms - 0.5, roofline_ms=1.0, launch_aware_roofline_ms=1.0,
                        fits_in_cache=fits_in_cache, **over)


def test_tokens_vs_size_marks_the_model():
    fig = plots.tokens_vs_size(7e9, "fp16", 2e12)
    assert isinstance(fig, go.Figure) and fig.data[1].y[0] == pytest.approx(perf.tokens_per_second(7e9, "fp16", 2e12))
    assert fig.layout.xaxis.type == "log"


def test_decode_table_figure_marks_oom():
    rows = perf.decode_table([hardware.get("A100")], {"70B": 70e9, "7B": 7e9})
    cells = plots.decode_table_figure(rows).data[0].cells.values
    assert "OOM" in cells[1][0] and "OOM" not in cells[1][1]


def test_machine_vs_catalog_includes_this_machine():
    fig = plots.machine_vs_catalog(12.4e9, hardware.catalog())
    assert "this machine (measured)" in fig.data[0].y and 12.4 in fig.data[0].x


def test_components_bars_show_shares_of_bytes():
    fig = plots.components_bars({"toy": {"weights": 3e6, "KV cache": 1e6}, "other": {"weights": 1.0, "KV cache": 1.0}})
    assert [t.name for t in fig.data] == ["weights", "KV cache"]
    assert list(fig.data[0].x) == [75.0, 50.0] and list(fig.data[1].x) == [25.0, 50.0]


def test_measured_vs_bytes_and_prefill_curve():
    recs = [decode("a", 1e8, 9.0), decode("b", 1e7, 1.0, fits_in_cache=True)]
    fig = plots.measured_vs_bytes(recs, 12.5e9)
    assert fig.data[0].y[-1] == pytest.approx(fig.data[0].x[-1] * 1e6 / 12.5e9 * 1e3)  # the line is bytes / bandwidth
    assert list(fig.data[1].y) == [8.5, 0.5]  # launch-aware predictions
    measured = fig.data[-1]
    assert list(measured.marker.symbol) == ["circle", "circle-open"] and list(measured.y) == [9.0, 1.0]
    assert list(measured.error_y.array) == pytest.approx([0.9, 0.1])  # half the IQR (20 % of the median)
    pre = plots.prefill_curve([PrefillRecord("a", "cpu", "fp32", 1, n, ms, 0.4, 3, 1e6, 1e9, 1.0, 1.5)
                               for n, ms in ((1, 2.0), (8, 3.0))])
    assert list(pre.data[1].y) == [1.5, 1.5] and list(pre.data[0].error_y.array) == [0.2, 0.2]


def test_roofline_ridge_and_points():
    fig = plots.roofline([{"name": "A100", "peak": 312e12, "bandwidth": 2e12}], [{"label": "b1", "intensity": 1, "flops": 2e12}])
    assert "ridge 156" in fig.data[0].name and max(fig.data[0].y) == pytest.approx(312)
    assert fig.data[1].y[0] == pytest.approx(2)


def test_intensity_and_kv_and_batch_figures():
    fig = plots.intensity_vs_tokens(4096, 4096, 2, 2, {"A100": 156})
    assert fig.data[0].y[0] == pytest.approx(perf.linear_intensity(1, 4096, 4096, 2, 2))
    kv = plots.kv_vs_weights([0, 100], 1e6, 1e9, "x")
    assert list(kv.data[1].y) == [0, 0.1]
    rows = [decode(batch=b, ms=1.0 * b, context_len=16) for b in (1, 2)]
    predicted = [{"label": "predicted", "batch": b, "ms_per_step": 0.5, "tokens_per_s": 2e3 * b, "context_len": 16}
                 for b in (1, 2)]
    sweep = plots.batch_sweep_figure(rows, predicted)
    assert len(sweep.data) == 4 and list(sweep.data[1].y) == [1000.0, 1000.0]  # b tokens per b ms


def test_tensor_parallel_bars_sum_to_the_model():
    fig = plots.tensor_parallel_bars(70e9, "fp16", 3.35e12, 80, 8192, 450e9, 5e-6, max_devices=4)
    total = fig.data[0].y[1] + fig.data[1].y[1]
    assert total == pytest.approx(perf.tensor_parallel_decode_time(70e9, "fp16", 3.35e12, 2, 80, 8192, 450e9, 5e-6) * 1e3)
    assert fig.data[1].y[0] == 0  # one device: no communication


def test_speculative_curve():
    fig = plots.speculative_curve(0.8, 0.1)
    assert fig.data[0].y[3] == pytest.approx(perf.speculative_speedup(0.8, 4, 0.1))


def test_reference_decode_figure():
    rows = [decode("a", 1e9, 2.0), decode("b", 4e9, 3.0)]
    fig = plots.reference_decode(rows, rows, 2e12, "recorded")
    assert len(fig.data) == 3 and fig.data[0].y[-1] == pytest.approx(fig.data[0].x[-1] * 1e9 / 2e12 * 1e3)
