"""Train the course's "trained" toy and its draft on text the course owns, one byte per token.

    cd benchmarks && PYTHONPATH=.. python train_toy.py [--device cuda] [--steps 2000] [--out ../course_lib/data/weights]

Training text: the notebooks' Markdown and code, the library's and the benchmarks' source, and
the docs (everything under docs/ except the generated instructor guide). README.md is kept out
and reported as held-out text; every 20th 4 kB stretch of the training text is the validation
split that picks the checkpoint. Writes ``trained.pt`` and ``trained-draft.pt`` (fp16 state
dicts, loaded by ``model.build_model("trained")``) and ``trained.json`` (provenance and losses).

The model is the course's ToyGPT, unchanged, except that training adds residuals out of place:
the library's blocks add in place because they only ever run without autograd.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import subprocess
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from course_lib import model as toy

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT = ROOT / "README.md"
SAMPLE_PROMPT = "Decoding one token at a time is slow because"


def corpus_files() -> list[Path]:
    files = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "course_lib").glob("*.py"))
    files += sorted((ROOT / "benchmarks").glob("*.py")) + sorted((ROOT / "tests").rglob("*.py"))
    files += sorted((ROOT / "docs").rglob("*.md"))
    return [f for f in files if f.name != "INSTRUCTOR_GUIDE.md"]  # generated from docs/guide: a duplicate


def text_of(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        return "\n\n".join("".join(c["source"]) for c in cells)
    return path.read_text(encoding="utf-8")


def as_bytes(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8).long()


def train_forward(block, x, mask, cache_pos, dropout: float = 0.0):
    """Block.forward with out-of-place residual adds (autograd needs the inputs it saved) and
    dropout on each residual branch while training (the corpus is small: without it the model
    learns the training text by heart within a few hundred steps)."""
    x = x + F.dropout(block.attention(block.attn_norm(x), mask, cache_pos), dropout, block.training)
    return x + F.dropout(block.w_down(F.gelu(block.w_up(block.mlp_norm(x)))), dropout, block.training)


@torch.no_grad()
def mean_loss(model, data: torch.Tensor, context: int, batch: int = 64) -> float:
    """Mean next-byte cross-entropy (nats) over ``data`` cut into consecutive windows."""
    n = (len(data) - 1) // context
    starts = torch.arange(n) * context
    total, count = 0.0, 0
    for i in range(0, n, batch):
        s = starts[i:i + batch]
        x = torch.stack([data[j:j + context] for j in s]).to(model.device)
        y = torch.stack([data[j + 1:j + 1 + context] for j in s]).to(model.device)
        with torch.autocast(model.device.type, torch.bfloat16, enabled=model.device.type == "cuda"):
            logits = model.forward_no_cache(x)
        total += F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="sum").item()
        count += y.numel()
    return total / count


def train(name: str, train_data, val_data, held_out, args) -> dict:
    config = toy.get_config(name)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    net = toy.ToyGPT(config, dtype=torch.float32).to(device)
    net.init_weights(args.seed)
    for block in net.layers:
        block.forward = functools.partial(train_forward, block, dropout=args.dropout)
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0.1, betas=(0.9, 0.95))
    ctx, best, best_state, log = args.context, math.inf, None, []
    start = time.perf_counter()
    for step in range(args.steps + 1):
        if step % args.eval_every == 0 or step == args.steps:
            net.eval()
            val = mean_loss(net, val_data, ctx)
            net.train()
            log.append({"step": step, "val_loss": round(val, 4)})
            print(f"{name} step {step:5d}  val {val:.3f} nats/byte  ({time.perf_counter() - start:.0f} s)", flush=True)
            if val < best:
                best, best_state = val, {k: v.detach().clone() for k, v in net.state_dict().items()}
        if step == args.steps:
            break
        lr = args.lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        i = torch.randint(len(train_data) - ctx - 1, (args.batch,))
        x = torch.stack([train_data[j:j + ctx] for j in i]).to(device)
        y = torch.stack([train_data[j + 1:j + 1 + ctx] for j in i]).to(device)
        with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
            logits = net.forward_no_cache(x)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
    net.load_state_dict(best_state)
    net.eval()
    # what ships: fp16 weights (the KV cache buffers are not persistent, so not saved)
    state = {k: v.half().cpu() for k, v in net.state_dict().items()}
    torch.save(state, Path(args.out) / f"{name}.pt")
    shipped = toy.ToyGPT(config, dtype=torch.float32)
    shipped.load_state_dict({k: v.float() for k, v in state.items()})
    shipped.to(device).eval()
    prompt = as_bytes(SAMPLE_PROMPT)[None].to(device)
    sample = bytes(toy.generate(shipped, prompt, 160)[0, prompt.shape[1]:].tolist()).decode("utf-8", "replace")
    print(f"{name} sample: {SAMPLE_PROMPT!r} -> {sample!r}")
    return {"sample_prompt": SAMPLE_PROMPT, "sample_greedy": sample,
            "preset": name, "steps": args.steps, "batch": args.batch, "context": ctx, "lr": args.lr, "dropout": args.dropout,
            "best_val_loss": round(best, 4),
            "held_out_loss_fp16_weights": round(mean_loss(shipped, held_out, ctx), 4),
            "val_loss_fp16_weights": round(mean_loss(shipped, val_data, ctx), 4),
            "seconds": round(time.perf_counter() - start, 1), "log": log}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "course_lib" / "data" / "weights"))
    args = ap.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    files = corpus_files()
    text = "\n\n".join(text_of(f) for f in files)
    data = as_bytes(text)
    # validation: every 20th stretch of 4 kB, so it samples all kinds of text (prose, code, docs)
    chunks = list(data.split(4096))
    train_data = torch.cat([c for i, c in enumerate(chunks) if i % 20 != 10])
    val_data = torch.cat([c for i, c in enumerate(chunks) if i % 20 == 10])
    held_out = as_bytes(HELD_OUT.read_text(encoding="utf-8"))
    print(f"corpus: {len(files)} files, {len(data):,} bytes; held out: README.md, {len(held_out):,} bytes")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    record = {
        "what": "byte-level toy GPTs trained on the course's own text by benchmarks/train_toy.py",
        "commit": commit, "device": torch.cuda.get_device_name() if args.device == "cuda" else args.device,
        "torch": torch.__version__, "corpus_files": [str(f.relative_to(ROOT)) for f in files],
        "corpus_bytes": len(data), "corpus_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "held_out": "README.md", "held_out_bytes": len(held_out),
        "models": [train(name, train_data, val_data, held_out, args) for name in ("trained", "trained-draft")],
    }
    (Path(args.out) / "trained.json").write_text(json.dumps(record, indent=1) + "\n")
    for m in record["models"]:
        print(f"{m['preset']}: held-out (README) {m['held_out_loss_fp16_weights']} nats/byte, "
              f"val {m['val_loss_fp16_weights']}")


if __name__ == "__main__":
    main()
