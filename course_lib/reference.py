"""Recorded reference runs on datacenter GPUs (assets/reference/<card>.json).

Most learners run the course on a laptop CPU or Binder. These files let a notebook show what
the same measurements gave on a real GPU -- always labelled as *recorded*, with the card and the
date, never as the learner's own. They are written by ``benchmarks/gpu_reference.py``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "assets" / "reference"


def cards(folder: Path | None = None) -> list[str]:
    """Names of the recorded cards (file stems), e.g. ['nvidia-h100-80gb-hbm3']."""
    folder = folder or REFERENCE_DIR
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


@lru_cache(maxsize=8)
def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def load(card: str | None = None, folder: Path | None = None) -> dict | None:
    """The recorded run of ``card`` (default: the first one), or None if there is none."""
    folder = folder or REFERENCE_DIR
    names = cards(folder)
    if not names:
        return None
    if card is None:
        card = names[0]
    if card not in names:
        raise ValueError(f"card={card!r} has no recorded run; recorded: {', '.join(names)}")
    return _read(folder / f"{card}.json")


def label(ref: dict) -> str:
    """'recorded on NVIDIA H100 80GB HBM3, 2026-11-27, torch 2.11' for titles and captions."""
    prov, prof = ref.get("provenance", {}), ref.get("profile", {})
    date = str(prof.get("date") or prov.get("date", ""))[:10]
    name = prof.get("device_name") or prov.get("device_name", "a GPU")
    return f"recorded on {name}, {date}, torch {prof.get('torch_version', '?')}"


def decode_records(ref: dict, mode: str = "eager") -> list[dict]:
    """Batch-1 decode records of one mode ('eager' or 'cuda-graph'), smallest model first."""
    rows = [r for r in ref.get("records", []) if r.get("mode") == mode]
    return sorted(rows, key=lambda r: r["bytes_per_token"])


def profile_rows(ref: dict, mine=None) -> list[dict]:
    """Side-by-side rows (quantity, recorded GPU, this machine) of the machine profiles, in SI
    units; ``mine`` is this machine's MachineProfile (or None)."""
    prof = ref["profile"]
    mine_d = mine.as_dict() if mine is not None else {}
    rows = [("copy bandwidth (B/s)", "copy_bandwidth"), ("read bandwidth (B/s)", "read_bandwidth"),
            ("per-op overhead, eager (s)", "launch_overhead")]
    out = [{"quantity": q, "reference": prof.get(k), "mine": mine_d.get(k)} for q, k in rows]
    for precision, rate in prof.get("matmul_flops", {}).items():
        out.append({"quantity": f"matmul {precision} (FLOP/s)", "reference": rate,
                    "mine": mine_d.get("matmul_flops", {}).get(precision)})
    if prof.get("launch_overhead_graph"):
        out.append({"quantity": "per-kernel in a CUDA graph (s)", "reference": prof["launch_overhead_graph"], "mine": None})
    return out
