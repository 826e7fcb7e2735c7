"""benchmarks/gpu_fusion.py on the CPU: every variant's code path run eagerly (--dry-run), its logits checked."""

import json
import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_fusion  # noqa: E402

from course_lib import model  # noqa: E402


def test_buckets_cover_every_position_with_the_smallest_length():
    assert gpu_fusion.bucket_sizes(4096) == [128, 256, 512, 1024, 2048, 4096]
    assert gpu_fusion.bucket_sizes(256) == [128, 256] and gpu_fusion.bucket_sizes(100) == [100]
    sizes = [128, 256, 300]
    assert [gpu_fusion.bucket_for(p, sizes) for p in (0, 127, 128, 255, 256, 299)] == [128, 128, 256, 256, 300, 300]
    for bad in (-1, 300):
        with pytest.raises(ValueError):
            gpu_fusion.bucket_for(bad, sizes)


def test_dry_run_checks_every_variant_against_the_course_step(tmp_path):
    out = tmp_path / "dry.json"
    assert gpu_fusion.main(["--dry-run", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    names = {v.name for v in gpu_fusion.VARIANTS if v.attention != "cudnn"}  # cuDNN runs on CUDA only
    assert {f"{n} @{p}" for n in names for p in (5, 40)} | {"course"} <= set(result["checks"])
    assert all(c["ok"] and c["argmax_equal"] for c in result["checks"].values())
    assert result["buckets_captured"] == [16, 64] and result["steps"]["gemv_only"]["vs_gemv_only"] == 1.0


def test_the_check_catches_a_step_that_misses_its_own_slot():
    # attending over slots [0, pos) drops the token's own K and V: the logits must differ beyond tolerance
    toy = model.build_model("tiny", device="cpu")
    fast = gpu_fusion.make_variant(toy, gpu_fusion.Variant(one_write=True))
    course = gpu_fusion.make_bucketed_decode(gpu_fusion.course_step(toy), graph=False)
    ref = gpu_fusion.logits_at(course, toy, 40)
    broken = gpu_fusion.Step(fast, lambda t, p, n: fast(t, p, static_kv=True, n_keys=n - 24), [64])  # 40 slots
    assert not gpu_fusion.compare(ref, gpu_fusion.logits_at(gpu_fusion.make_bucketed_decode(broken, graph=False),
                                                             fast, 40), torch.float32)["ok"]
    right = gpu_fusion.make_bucketed_decode(gpu_fusion.variant_step(fast, gpu_fusion.Variant(), [16, 64]), graph=False)
    assert gpu_fusion.compare(ref, gpu_fusion.logits_at(right, fast, 40), torch.float32)["ok"]


def test_dry_run_budget_derives_per_gemv_costs(tmp_path):
    out = tmp_path / "budget.json"
    assert gpu_fusion.main(["--dry-run", "--budget", "--out", str(out)]) == 0
    derived = json.loads(out.read_text())["budget"]["tiny"]["derived"]
    assert derived["n_gemv"] == 9 and derived["step_bytes"] == 4 * sum(o * i for o, i in
                                                                       model.get_config("tiny").matrix_shapes())
    assert derived["roof_chain_matrices"] >= 9 and all(math.isfinite(v) for v in derived.values() if isinstance(v, float))
