"""plots: pure builders return figures whose data are the perf numbers."""

import plotly.graph_objects as go
import pytest

from course_lib import hardware, perf, plots


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


def test_components_bars_shares_add_to_100():
    parts = {"7B": perf.decode_components(32, 4096, 32, 32, 16384, 32000, "fp16", 128)}
    fig = plots.components_bars(parts)
    assert sum(t.x[0] for t in fig.data) == pytest.approx(100)


def test_measured_vs_bytes_and_prefill_curve():
    recs = [{"bytes_per_token": 1e8, "ms_per_token": 9.0, "launch_aware_ms": 8.5, "preset": "a", "fits_in_cache": False},
            {"bytes_per_token": 1e7, "ms_per_token": 1.0, "launch_aware_ms": 0.9, "preset": "b", "fits_in_cache": True}]
    fig = plots.measured_vs_bytes(recs, 12.5e9)
    assert fig.data[0].y[-1] == pytest.approx(fig.data[0].x[-1] * 1e6 / 12.5e9 * 1e3)  # the line is bytes / bandwidth
    assert list(fig.data[-1].marker.symbol) == ["circle", "circle-open"]
    pre = plots.prefill_curve([{"prompt_len": 1, "ms": 2.0, "predicted_ms": 1.5}, {"prompt_len": 8, "ms": 3.0, "predicted_ms": 2.0}])
    assert len(pre.data) == 2


def test_roofline_ridge_and_points():
    fig = plots.roofline([{"name": "A100", "peak": 312e12, "bandwidth": 2e12}], [{"label": "b1", "intensity": 1, "flops": 2e12}])
    assert "ridge 156" in fig.data[0].name and max(fig.data[0].y) == pytest.approx(312)
    assert fig.data[1].y[0] == pytest.approx(2)


def test_intensity_and_kv_and_batch_figures():
    fig = plots.intensity_vs_tokens(4096, 4096, 2, 2, {"A100": 156})
    assert fig.data[0].y[0] == pytest.approx(perf.linear_intensity(1, 4096, 4096, 2, 2))
    kv = plots.kv_vs_weights([0, 100], 1e6, 1e9, "x")
    assert list(kv.data[1].y) == [0, 0.1]
    rows = [{"batch": b, "ms_per_step": 1.0 * b, "tokens_per_s": 1000.0} for b in (1, 2)]
    sweep = plots.batch_sweep_figure(rows, [dict(r, label="predicted") for r in rows])
    assert len(sweep.data) == 4


def test_tensor_parallel_bars_sum_to_the_model():
    fig = plots.tensor_parallel_bars(70e9, "fp16", 3.35e12, 80, 8192, 450e9, 5e-6, max_devices=4)
    total = fig.data[0].y[1] + fig.data[1].y[1]
    assert total == pytest.approx(perf.tensor_parallel_decode_time(70e9, "fp16", 3.35e12, 2, 80, 8192, 450e9, 5e-6) * 1e3)
    assert fig.data[1].y[0] == 0  # one device: no communication


def test_speculative_curve():
    fig = plots.speculative_curve(0.8, 0.1)
    assert fig.data[0].y[3] == pytest.approx(perf.speculative_speedup(0.8, 4, 0.1))


def test_reference_decode_figure():
    rows = [{"bytes_per_token": 1e9, "ms_per_token": 2.0, "preset": "a"}, {"bytes_per_token": 4e9, "ms_per_token": 3.0, "preset": "b"}]
    fig = plots.reference_decode(rows, rows, 2e12, "recorded")
    assert len(fig.data) == 3 and fig.data[0].y[-1] == pytest.approx(fig.data[0].x[-1] * 1e9 / 2e12 * 1e3)
