"""The hardware catalogue: datasheet bandwidth, memory and peak FLOP/s, each with its source.

The figures live in ``data/hardware.json`` (data, not code). ``get("H100")`` resolves the short
aliases; ``custom(...)`` makes an entry for a measured machine ("this machine (measured)").
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from . import precision as _precision


@dataclass(frozen=True)
class Hardware:
    """One device. SI units: bandwidth bytes/s, memory bytes, peak FLOP/s per precision."""

    name: str
    bandwidth: float
    memory: float
    peak: tuple[tuple[str, float], ...] = ()
    source: str = ""
    label: str = ""
    kind: str = "gpu"
    aliases: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self):
        for attr in ("bandwidth", "memory"):
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{attr}={value!r} of hardware {self.name!r} must be a positive number")

    def peak_flops(self, precision: str) -> float:
        """Dense peak FLOP/s at ``precision``; ValueError if the catalogue has no figure."""
        name = _precision.normalize(precision)
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
            aliases=tuple(d.get("aliases", ())),
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
    peak = tuple((_precision.normalize(k), float(v)) for k, v in (peak_flops or {}).items())
    return Hardware(name=name, bandwidth=bandwidth, memory=memory, peak=peak, source=source, label=name,
                    kind="measured")
