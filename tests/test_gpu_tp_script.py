"""benchmarks/gpu_tp.py (tensor parallelism on 2 GPUs in CUDA graphs), checked where no GPU is: its dry run
(2 gloo ranks, the tiny preset, the graphs' static-cache step run eagerly) writes every field the GPU run
will, with numbers that hang together and the split model's tokens equal to the unsplit one's."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_tp.py"


def run_script(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's course_lib
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180)


@pytest.mark.slow
def test_dry_run_writes_every_field(tmp_path):
    out = tmp_path / "tp.json"
    done = run_script("--dry-run", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    assert result["dtype"] == "fp32" and result["rounds"] == 2 and result["dry_run"]
    assert {"torch_version", "device_names", "date"} <= result["provenance"].keys()
    assert result["env"] == {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
                             "NVSHMEM_DISABLE_NVLS": "1"}
    (run,) = result["presets"]
    assert "error" not in run, run.get("error")
    assert run["env_in_ranks"] == result["env"]  # what the ranks saw before torch.distributed started
    assert run["preset"] == "cpu-s" and run["backend"] == "gloo" and not run["graphs"]
    assert run["allreduces_per_step"] == 2 * 8 and run["allreduce_bytes"] == 256 * 4  # 8 layers, d 256, fp32
    for key in ("single_ms", "tp_ms", "comm_ms"):
        assert len(run[key]["rounds"]) == 2 and run[key]["median"] > 0 and run[key]["iqr"] >= 0
    assert run["ratio"] == pytest.approx(run["tp_ms"]["median"] / run["single_ms"]["median"])
    assert run["compute_estimate_ms"] == pytest.approx(run["tp_ms"]["median"] - run["comm_ms"]["median"])
    link = run["link"]
    assert link["message_bytes"] == sorted(link["message_bytes"]) and run["allreduce_bytes"] in link["message_bytes"]
    assert len(link["seconds"]) == len(link["message_bytes"]) and all(s > 0 for s in link["seconds"])
    assert link["fit"].keys() == {"ring", "one-shot"} and all(f["alpha_s"] >= 0 for f in link["fit"].values())
    assert run["graph_checks_ok"]  # every comm step summed over both ranks
    assert run["tokens_compared"] == 8 and run["tokens_match"] == 8 and run["first_divergence"] is None
    assert run["tp_tokens"] == run["single_tokens"]


def test_without_two_gpus_it_asks_for_the_dry_run():
    done = run_script()
    assert done.returncode == 2 and "--dry-run" in done.stdout
