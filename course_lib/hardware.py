"""What devices can do: the datasheet catalogue, and recorded runs on real GPUs.

The figures live in ``data/hardware.json`` (data, not code), each with its source. ``get("H100")``
resolves the short aliases; ``match(torch_device_name)`` finds the entry of a measured GPU;
``custom(...)`` makes an entry for a measured machine ("this machine (measured)").

Recorded runs (``data/reference/<card>.json``, written by ``benchmarks/gpu_reference.py``) let a
notebook show what the same measurements gave on a datacenter GPU: always labelled as
*recorded*, with the card and the date, never as the learner's own. All files are package
data read with importlib.resources, so they are there after a plain ``pip install``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from .perf import normalize_precision


@dataclass(frozen=True)
class Hardware:
    """One device. SI units: bandwidth bytes/s, memory bytes, peak FLOP/s per precision.

    ``memory`` is what the device reports (HBM and DRAM come in binary sizes: an "80 GB" A100
    has 81,920 MiB = 85.9e9 B); ``nominal_memory`` is the decimal figure it is sold and taught as.
    """

    name: str
    bandwidth: float
    memory: float
    peak: tuple[tuple[str, float], ...] = ()
    source: str = ""
    label: str = ""
    kind: str = "gpu"
    aliases: tuple[str, ...] = field(default=(), compare=False)
    nominal_memory: float | None = None
    memory_note: str = ""

    def __post_init__(self):
        for attr in ("bandwidth", "memory"):
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{attr}={value!r} of hardware {self.name!r} must be a positive number")

    def peak_flops(self, precision: str) -> float:
        """Dense peak FLOP/s at ``precision``; ValueError if the catalogue has no figure."""
        name = normalize_precision(precision)
        table = dict(self.peak)
        if name not in table:
            known = ", ".join(table) or "none"
            raise ValueError(f"precision={precision!r}: no peak FLOP/s for {self.name} at {name}; known: {known}")
        return table[name]

    @property
    def precisions(self) -> tuple[str, ...]:
        """Precisions for which a peak FLOP/s figure is known."""
        return tuple(p for p, _ in self.peak)


@lru_cache(maxsize=1)
def _entries() -> tuple[Hardware, ...]:
    text = resources.files("course_lib").joinpath("data/hardware.json").read_text()
    return tuple(
        Hardware(
            name=d["name"], bandwidth=float(d["bandwidth"]), memory=float(d["memory"]),
            peak=tuple((k, float(v)) for k, v in d["peak_flops"].items()),
            source=d["source"], label=d.get("label", d["name"]), kind=d.get("kind", "gpu"),
            aliases=tuple(d.get("aliases", ())), nominal_memory=d.get("memory_nominal"),
            memory_note=d.get("memory_note", ""),
        )
        for d in json.loads(text)["devices"]
    )


def catalog() -> list[Hardware]:
    """All catalogue entries, in file order."""
    return list(_entries())


def names() -> list[str]:
    """Canonical names of the catalogue entries."""
    return [hw.name for hw in _entries()]


def get(name: str) -> Hardware:
    """The entry called ``name`` or one of its aliases (case-insensitive)."""
    if isinstance(name, str):
        key = name.strip().lower()
        for hw in _entries():
            if key == hw.name.lower() or key in (a.lower() for a in hw.aliases):
                return hw
    known = ", ".join(f"{hw.name} ({', '.join(hw.aliases)})" if hw.aliases else hw.name for hw in _entries())
    raise ValueError(f"hardware={name!r} is not in the catalogue; known: {known}")


def custom(name: str, bandwidth: float, memory: float, peak_flops: dict[str, float] | None = None,
           source: str = "measured on this machine") -> Hardware:
    """An entry for a device outside the catalogue, e.g. the learner's measured machine."""
    peak = tuple((normalize_precision(k), float(v)) for k, v in (peak_flops or {}).items())
    return Hardware(name=name, bandwidth=bandwidth, memory=memory, peak=peak, source=source, label=name,
                    kind="measured")


def match(device_name: str) -> Hardware | None:
    """The catalogue entry of a torch device name, or None: "NVIDIA H100 80GB HBM3" -> H100-SXM,
    "NVIDIA A100-SXM4-40GB" -> A100-40GB, ... CPUs and Apple GPUs are not matched (their memory
    systems vary too much for one datasheet figure)."""
    rules = [(r"H200", "H200"), (r"H100.*NVL", None), (r"H100.*PCIE", "H100-PCIe"), (r"H100", "H100-SXM"),
             (r"A100.*40\s*GB", "A100-40GB"), (r"A100", "A100-80GB"), (r"\bL4\b", "L4"),
             (r"RTX 4090", "RTX-4090"), (r"MI300X", "MI300X")]
    for pattern, entry in rules:
        if re.search(pattern, str(device_name).upper()):
            return get(entry) if entry else None
    return None


# ----------------------------------------------------------------------------- recorded runs
def reference_cards() -> list[str]:
    """Names of the recorded cards, e.g. ['nvidia-h200']."""
    folder = resources.files("course_lib").joinpath("data/reference")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


@lru_cache(maxsize=8)
def load_reference(card: str | None = None) -> dict | None:
    """The recorded run of ``card`` (default: the first one), or None if there is none."""
    names = reference_cards()
    if not names:
        return None
    card = names[0] if card is None else card
    if card not in names:
        raise ValueError(f"card={card!r} has no recorded run; recorded: {', '.join(names)}")
    return json.loads(resources.files("course_lib").joinpath(f"data/reference/{card}.json").read_text())


def reference_label(ref: dict) -> str:
    """'recorded on NVIDIA H200, 2026-11-27, torch 2.11' for titles and captions."""
    prov, prof = ref.get("provenance", {}), ref.get("profile", {})
    date = str(prof.get("date") or prov.get("date", ""))[:10]
    name = prof.get("device_name") or prov.get("device_name", "a GPU")
    return f"recorded on {name}, {date}, torch {prof.get('torch_version', '?')}"
