"""hardware: the catalogue is complete, sourced and resolvable."""

import pytest

from course_lib import hardware

REQUIRED = ["A100-40GB", "A100-80GB", "H100-SXM", "H100-PCIe", "H200", "L4", "RTX-4090", "MI300X",
            "Apple-M2", "DDR5-desktop"]


def test_required_devices_present():
    assert set(REQUIRED) <= set(hardware.names())


def test_every_entry_has_a_source_and_positive_figures():
    for hw in hardware.catalog():
        assert len(hw.source) > 20, hw.name
        assert hw.bandwidth > 0 and hw.memory > 0
        assert hw.precisions and all(v > 0 for _, v in hw.peak)


def test_aliases_resolve():
    assert hardware.get("A100").name == "A100-80GB"
    assert hardware.get("h100").name == "H100-SXM"
    assert hardware.get(" H100-sxm ").name == "H100-SXM"


def test_datasheet_figures_from_the_brief():
    assert hardware.get("A100-40GB").bandwidth == 1.555e12
    assert hardware.get("A100-80GB").bandwidth == 2.039e12
    assert hardware.get("H100").bandwidth == 3.35e12 and hardware.get("H100").peak_flops("bf16") == 989e12
    assert hardware.get("H100-PCIe").peak_flops("FP16") == 756e12
    assert hardware.get("H200").nominal_memory == 141e9 and hardware.get("H200").bandwidth == 4.8e12
    assert hardware.get("L4").bandwidth == 0.30e12
    assert hardware.get("MI300X").peak_flops("fp16") == 1307.4e12
    assert hardware.get("DDR5-desktop").bandwidth == pytest.approx(5600e6 * 8 * 2)


def test_memory_is_what_the_device_reports_and_says_how_it_is_rounded():
    mib = 2 ** 20
    assert hardware.get("A100-80GB").memory == 81_920 * mib  # = 85.9e9 B, sold as "80 GB"
    assert hardware.get("A100-40GB").memory == 40_960 * mib
    assert hardware.get("H100-SXM").memory == 81_559 * mib
    ref = hardware.load_reference()  # the recorded H200 run reports its own memory
    assert hardware.get("H200").memory == ref["provenance"]["gpu_memory_bytes"]
    for hw in hardware.catalog():
        # binary sizes: always more than the decimal figure on the box, by at most 2**30 / 1e9 - 1 = 7.4 %
        assert hw.nominal_memory and 1 < hw.memory / hw.nominal_memory < 1.074, hw.name
        assert len(hw.memory_note) > 20 and ("sold" in hw.memory_note or "reports" in hw.memory_note), hw.name


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match="A100-80GB") as err:
        hardware.get("B9000")
    assert "hardware='B9000'" in str(err.value)
    with pytest.raises(ValueError):
        hardware.get(None)


def test_missing_precision_is_a_clear_error():
    with pytest.raises(ValueError, match="no peak FLOP/s"):
        hardware.get("Apple-M2").peak_flops("fp8")
    with pytest.raises(ValueError, match="precision"):
        hardware.get("H100").peak_flops("fp7")


def test_custom_entry_and_validation():
    me = hardware.custom("this machine (measured)", 12.4e9, 2e9, {"FP32": 5e10})
    assert me.peak_flops("fp32") == 5e10 and me.kind == "measured"
    with pytest.raises(ValueError, match="bandwidth"):
        hardware.custom("bad", -1, 1)


@pytest.mark.parametrize("name, entry", [("NVIDIA H100 80GB HBM3", "H100-SXM"), ("NVIDIA H100 PCIe", "H100-PCIe"),
                                         ("NVIDIA A100-SXM4-40GB", "A100-40GB"), ("NVIDIA A100-SXM4-80GB", "A100-80GB"),
                                         ("NVIDIA H200", "H200"), ("NVIDIA L4", "L4"), ("NVIDIA L40S", None),
                                         ("NVIDIA H100 NVL", None), ("Intel(R) Xeon(R) Processor", None)])
def test_match_a_measured_device_to_its_datasheet(name, entry):
    hw = hardware.match(name)
    assert (hw.name if hw else None) == entry


def test_the_shipped_recorded_run_has_what_notebooks_use():
    assert hardware.reference_cards() == ["nvidia-h200"]
    ref = hardware.load_reference()
    assert hardware.reference_label(ref).startswith("recorded on NVIDIA H200, 2026-")
    assert {r["batch"] for r in ref["batch_sweep"]} >= {1, 32} and ref["prefill_sweep"]
    assert ref["provenance"]["device"] == "cuda"
    with pytest.raises(ValueError, match="nvidia-h200"):
        hardware.load_reference("nvidia-b200")
