"""specs: the toy's exact counts by hand and the presets' documented sizes; the device catalogue is complete,
sourced and resolvable."""

import pytest

from course_lib import specs
from course_lib.specs import PRESETS, ToyConfig, get_config, preset_name

# 1 layer, d 8, 2 heads (head_dim 4), 1 KV head, ff 32, vocab 10
SMALL = ToyConfig(vocab_size=10, n_layers=1, d_model=8, n_heads=2, n_kv_heads=1, d_ff=32, max_seq_len=4)


def test_counts_by_hand():
    # qkv 8*(2+2)*4 = 128, out 8*8 = 64, mlp 2*8*32 = 512 -> 704; lm head 8*10 = 80 -> 784
    assert SMALL.matmul_params() == 784
    # norms (2*1+1)*8 = 24, embedding 80
    assert SMALL.n_params() == 784 + 24 + 80
    assert SMALL.weight_bytes("fp32") == 808 * 4
    # K and V, 1 layer, 1 KV head of 4 values, 2 bytes: 16 B per token; 4 slots x batch 3
    assert SMALL.kv_bytes_per_token("fp16") == 16
    assert SMALL.kv_cache_bytes(batch=3, precision="fp16") == 3 * 4 * 16
    # dense 2*1*3*784, attention 4*1 layer*2 heads*4*3 new*(2 past + 3) keys
    assert SMALL.forward_flops(n_tokens=3, past=2) == 2 * 3 * 784 + 4 * 2 * 4 * 3 * 5


def test_decode_components_by_hand():
    parts = SMALL.decode_components("fp32", context_len=5)
    assert parts["embedding lookup (one row)"] == 8 * 4
    assert parts["attention projections (Q, K, V, output)"] == (128 + 64) * 4
    assert parts["KV cache reads"] == 5 * 2 * 4 * 4
    assert parts["MLP (up and down)"] == 512 * 4
    assert parts["norms"] == 24 * 4
    assert parts["LM head (vocabulary projection)"] == 80 * 4


def test_preset_sizes_match_their_comments():
    # the comments in specs.py quote these (MB = 1e6 bytes)
    assert PRESETS["tiny"].weight_bytes("fp32") / 1e6 == pytest.approx(0.43, abs=0.005)
    assert PRESETS["cpu-l"].weight_bytes("fp32") / 1e6 == pytest.approx(234.9, abs=0.05)
    assert PRESETS["7b"].weight_bytes("bf16") / 1e9 == pytest.approx(13.1, abs=0.05)
    assert PRESETS["7b"].n_params() / 1e9 == pytest.approx(6.70, abs=0.005)


def test_defaults_and_lookup():
    cfg = ToyConfig(vocab_size=16, n_layers=1, d_model=8, n_heads=2, max_seq_len=4)
    assert cfg.n_kv_heads == 2 and cfg.d_ff == 32 and cfg.head_dim == 4
    assert get_config(" CPU-L ") is PRESETS["cpu-l"] and get_config(cfg) is cfg
    assert preset_name(PRESETS["cpu-m"]) == "cpu-m" and preset_name(cfg) == "custom"


@pytest.mark.parametrize("kwargs, name", [
    (dict(d_model=10, n_heads=3), "d_model"),
    (dict(n_heads=4, n_kv_heads=3), "n_heads"),
    (dict(n_layers=0), "n_layers"),
    (dict(n_layers=2.0), "n_layers"),
    (dict(norm_eps=0), "norm_eps"),
])
def test_bad_shapes_name_the_argument(kwargs, name):
    base = dict(vocab_size=16, n_layers=1, d_model=8, n_heads=2, max_seq_len=4)
    with pytest.raises(ValueError, match=name):
        ToyConfig(**{**base, **kwargs})
    with pytest.raises(ValueError, match="presets"):
        get_config("gpt-5")


# ----------------------------------------------------------------------------- the device catalogue
REQUIRED = ["A100-40GB", "A100-80GB", "H100-SXM", "H100-PCIe", "H200", "L4", "RTX-4090", "MI300X",
            "Apple-M2", "DDR5-desktop"]


def test_required_devices_present():
    assert set(REQUIRED) <= {hw.name for hw in specs.catalog()}


def test_every_entry_has_a_source_and_positive_figures():
    for hw in specs.catalog():
        assert len(hw.source) > 20, hw.name
        assert hw.bandwidth > 0 and hw.memory > 0
        assert hw.precisions and all(v > 0 for _, v in hw.peak)


def test_aliases_resolve():
    assert specs.get("A100").name == "A100-80GB"
    assert specs.get("h100").name == "H100-SXM"
    assert specs.get(" H100-sxm ").name == "H100-SXM"


def test_datasheet_figures_from_the_brief():
    assert specs.get("A100-40GB").bandwidth == 1.555e12
    assert specs.get("A100-80GB").bandwidth == 2.039e12
    assert specs.get("H100").bandwidth == 3.35e12 and specs.get("H100").peak_flops("bf16") == 989e12
    assert specs.get("H100-PCIe").peak_flops("FP16") == 756e12
    assert specs.get("H200").nominal_memory == 141e9 and specs.get("H200").bandwidth == 4.8e12
    assert specs.get("L4").bandwidth == 0.30e12
    assert specs.get("MI300X").peak_flops("fp16") == 1307.4e12
    assert specs.get("DDR5-desktop").bandwidth == pytest.approx(5600e6 * 8 * 2)


def test_memory_is_what_the_device_reports_and_says_how_it_is_rounded():
    mib = 2 ** 20
    assert specs.get("A100-80GB").memory == 81_920 * mib  # = 85.9e9 B, sold as "80 GB"
    assert specs.get("A100-40GB").memory == 40_960 * mib
    assert specs.get("H100-SXM").memory == 81_559 * mib
    ref = specs.load_reference()  # the recorded H200 run reports its own memory
    assert specs.get("H200").memory == ref["provenance"]["gpu_memory_bytes"]
    for hw in specs.catalog():
        # binary sizes: always more than the decimal figure on the box, by at most 2**30 / 1e9 - 1 = 7.4 %
        assert hw.nominal_memory and 1 < hw.memory / hw.nominal_memory < 1.074, hw.name
        assert len(hw.memory_note) > 20 and ("sold" in hw.memory_note or "reports" in hw.memory_note), hw.name


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match="A100-80GB") as err:
        specs.get("B9000")
    assert "hardware='B9000'" in str(err.value)
    with pytest.raises(ValueError):
        specs.get(None)


def test_missing_precision_is_a_clear_error():
    with pytest.raises(ValueError, match="no peak FLOP/s"):
        specs.get("Apple-M2").peak_flops("fp8")
    with pytest.raises(ValueError, match="precision"):
        specs.get("H100").peak_flops("fp7")


def test_custom_entry_and_validation():
    me = specs.custom("this machine (measured)", 12.4e9, 2e9, {"FP32": 5e10})
    assert me.peak_flops("fp32") == 5e10 and me.kind == "measured"
    with pytest.raises(ValueError, match="bandwidth"):
        specs.custom("bad", -1, 1)


@pytest.mark.parametrize("name, entry", [("NVIDIA H100 80GB HBM3", "H100-SXM"), ("NVIDIA H100 PCIe", "H100-PCIe"),
                                         ("NVIDIA A100-SXM4-40GB", "A100-40GB"), ("NVIDIA A100-SXM4-80GB", "A100-80GB"),
                                         ("NVIDIA H200", "H200"), ("NVIDIA L4", "L4"), ("NVIDIA L40S", None),
                                         ("NVIDIA H100 NVL", None), ("Intel(R) Xeon(R) Processor", None)])
def test_match_a_measured_device_to_its_datasheet(name, entry):
    hw = specs.match(name)
    assert (hw.name if hw else None) == entry


def test_the_shipped_recorded_run_has_what_notebooks_use():
    ref = specs.load_reference()
    assert specs.load_reference("nvidia-h200") == ref  # the only card, so the default
    assert specs.reference_label(ref).startswith("recorded on NVIDIA H200, 2026-")
    assert {r["batch"] for r in ref["batch_sweep"]} >= {1, 32} and ref["prefill_sweep"]
    assert ref["provenance"]["device"] == "cuda"
    with pytest.raises(ValueError, match="nvidia-h200"):
        specs.load_reference("nvidia-b200")
