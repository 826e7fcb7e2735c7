"""The bucketed CUDA-graph decode step against eager decode, at every position through every cache bucket.

    PYTHONPATH=. python benchmarks/gpu_graph_check.py          # needs a CUDA GPU; gpu-m and 7b in bf16

Prints the largest logit difference per preset and how many positions pick another token (bf16 sums in another
order can flip a near-tie on random weights; the CUDA tests in tests/test_model.py hold the exact checks).
"""

import sys

import torch

from course_lib import machine
from course_lib import model as m


def main() -> int:
    if not torch.cuda.is_available():
        print("needs a CUDA GPU")
        return 2
    for preset in ("gpu-m", "7b"):
        g, e = (m.build_model(preset, device="cuda", precision="bf16") for _ in range(2))
        S = g.config.max_seq_len
        dec = machine.make_graphed_decode(g)  # before prefilling: capture writes cache slot 0
        seq = torch.randint(0, g.config.vocab_size, (1, S), generator=torch.Generator().manual_seed(0)).cuda()
        m.prefill(g, seq[:, :100])
        m.prefill(e, seq[:, :100])
        worst, flips = 0.0, 0
        for p in range(100, S - 1):
            a, b = dec(seq[:, p:p + 1], p).float(), m.decode_one_token(e, seq[:, p:p + 1], p).float()
            worst, flips = max(worst, (a - b).abs().max().item()), flips + int(a.argmax() != b.argmax())
        print(f"{preset}: max_seq_len {S}, positions 100..{S - 2}: max |logit diff| {worst:.3f}, "
              f"another argmax at {flips} of {S - 101}")
        del g, e, dec
        machine.release("cuda")
    return 0


if __name__ == "__main__":
    sys.exit(main())
