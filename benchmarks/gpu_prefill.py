"""Re-record only the prefill sweep of the recorded GPU run, each prompt length in a CUDA graph.

    python benchmarks/gpu_prefill.py OUT_DIR    (then merge OUT_DIR/prefill.json into the reference)
"""

import json
import sys
from pathlib import Path

from gpu_reference import _jsonable

from course_lib import measure, model, roofs


def main(out: str) -> int:
    profile = roofs.get_profile("cuda")
    toy = model.build_model("7b", device="cuda", precision="bf16")
    sweep = measure.prefill_sweep(toy, [1, 8, 32, 64, 128, 192, 255], profile=profile, graph=True)
    for r in sweep:
        print(f"prefill {r.prompt_len:4d} tokens (CUDA graph): {r.ms:8.3f} ms (IQR {r.iqr_ms:.3f}), "
              f"predicted {r.predicted_ms:8.3f} ms, {r.bound}-bound")
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "prefill.json").write_text(json.dumps(_jsonable(sweep), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
