"""The browser track's stand-in for measuring: machines recorded with the course's own code, to pick from.

The full course measures the learner's machine with torch (course_lib.roofs, course_lib.measure). The browser
has no torch, so the explore notebooks (docs/build_lite.py) read runs recorded on real machines instead, always
labelled as recorded:

    a CPU   benchmarks/results/<RECORDED_CPU>        (python -m course_lib bench --json, on a 2-core AMD EPYC VM)
    a GPU   course_lib/data/reference/nvidia-h200.json (benchmarks/gpu_reference.py, specs.load_reference())

The record classes (MachineProfile, DecodeRecord) and the functions that read them are the course's own:
``_borrow`` compiles just their definitions from course_lib's source, because the modules that hold them import
torch at the top. So the two tracks share one definition and cannot drift apart.
"""

from __future__ import annotations

import ast
import json
import os
import sys
from dataclasses import asdict, dataclass, field, fields
from functools import cache
from importlib import resources
from pathlib import Path
from types import ModuleType, SimpleNamespace

from course_lib import perf, specs, widgets
from course_lib.specs import get_config

RECORDED_CPU = "amd-epyc-2core_2026-11-29_auto-layout-2.json"


class Markdown:
    """Markdown text to display, as IPython.display.Markdown shows it, without its first step: asking whether the
    text names a file. In the browser's kernel that asks the site for the text as a path (a 404 for each text)."""

    def __init__(self, data: str):
        self.data = data

    def _repr_markdown_(self) -> str:
        return self.data
RECORDED_GPU = "nvidia-h200"
_chosen = {"key": os.environ.get("COURSE_EXPLORE_MACHINE", "cpu")}  # the tests run every notebook on each


def _name_of(node: ast.stmt) -> str | None:
    if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
        return node.name
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    return None


def _borrow(module: str, *names: str) -> ModuleType:
    """The top-level definitions ``names`` of course_lib/<module>.py, compiled without the module's imports."""
    tree = ast.parse(resources.files("course_lib").joinpath(f"{module}.py").read_text("utf-8"))
    body = [node for node in tree.body if _name_of(node) in names]
    missing = set(names) - {_name_of(node) for node in body}
    if missing:
        raise ImportError(f"course_lib/{module}.py no longer defines {sorted(missing)}")
    copy = sys.modules.setdefault(f"{__name__}.{module}", ModuleType(f"{__name__}.{module}"))  # dataclasses looks it up
    copy.__dict__.update(dataclass=dataclass, field=field, fields=fields, asdict=asdict, MiB=1 << 20,
                         perf=perf, specs=specs)
    future = ast.parse("from __future__ import annotations").body
    exec(compile(ast.Module([*future, *body], []), f"course_lib/{module}.py", "exec"), copy.__dict__)
    return copy


_roofs = _borrow("roofs", "SCHEMA", "MachineProfile", "compare_with_recorded")
_measure = _borrow("measure", "DecodeRecord", "recorded_decode")
MachineProfile, compare_with_recorded = _roofs.MachineProfile, _roofs.compare_with_recorded
DecodeRecord, recorded_decode = _measure.DecodeRecord, _measure.recorded_decode


@dataclass(frozen=True)
class Device:
    """What the notebooks read of a torch device: its type ("cpu", "cuda")."""

    type: str


@dataclass
class Recorded:
    """One recorded machine: its profile, its decode records, and the raw run (for anything else it holds)."""

    key: str
    run: dict
    precision: str  # the precision its decode sweep ran at

    @property
    def name(self) -> str:
        return self.run["profile"]["device_name"]

    @property
    def label(self) -> str:
        """'GPU: recorded on NVIDIA H200, 2026-11-29, torch 2.11.0+cu130'"""
        return f"{'CPU' if self.device.type == 'cpu' else 'GPU'}: {specs.reference_label(self.run)}"

    @property
    def device(self) -> Device:
        return Device(self.run["profile"]["device_type"])

    @property
    def profile(self) -> MachineProfile:
        data = self.run["profile"]
        return MachineProfile(**{f.name: data[f.name] for f in fields(MachineProfile) if f.name in data})

    @property
    def memory(self) -> float | None:
        """Bytes of device memory, where the run recorded them (a GPU's); None otherwise."""
        return self.run.get("provenance", {}).get("gpu_memory_bytes")

    @property
    def hardware(self) -> specs.Hardware | None:
        """An entry for the explorers (measured bandwidth and FLOP/s), or None without a recorded memory size."""
        if self.memory is None:
            return None
        p = self.profile
        return specs.custom(f"{self.name} (recorded)", p.read_bandwidth, self.memory, p.matmul_flops,
                               source=specs.reference_label(self.run))

    @property
    def decode(self) -> list[DecodeRecord]:
        """The batch-1 decode sweep (eager, at ``precision``), smallest model first."""
        return [r for r in recorded_decode(self.run, "eager") if r.precision == self.precision]


@cache
def machines() -> dict[str, Recorded]:
    """The recorded machines: "cpu" and "gpu"."""
    here = Path(__file__).resolve().parent
    # in the browser the run is package data; in a checkout (the tests) it is read where the benchmark wrote it
    cpu = next(p for p in (here / "recorded" / RECORDED_CPU, here.parents[1] / "benchmarks" / "results" / RECORDED_CPU)
               if p.exists())
    return {"cpu": Recorded("cpu", json.loads(cpu.read_text("utf-8")), "fp32"),
            "gpu": Recorded("gpu", specs.load_reference(RECORDED_GPU), "bf16")}


def chosen() -> Recorded:
    """The machine picked with ``picker()`` (the CPU until one is picked)."""
    return machines()[_chosen["key"]]


def picker():
    """A dropdown of the recorded machines; the cells below read the one picked when they run."""
    import ipywidgets as W

    options = [(m.label, key) for key, m in machines().items()]
    menu = W.Dropdown(options=options, value=_chosen["key"], description="machine", layout=W.Layout(width="640px"))
    note = W.HTML()

    def on_pick(change):
        _chosen["key"] = change["new"]
        note.value = ("Picked. Now run the cells below again (<b>Run › Run Selected Cell and All Below</b>) "
                      "to see this machine's numbers.")

    menu.observe(on_pick, names="value")
    return W.VBox([menu, note])


def shape_only(preset: str) -> SimpleNamespace:
    """A stand-in for a toy model where only its shape is read (``toy.config``): the browser runs no model."""
    return SimpleNamespace(config=get_config(preset))


def relabel_explorers(machine: Recorded) -> None:
    """The explorers call the measured entry "this machine (measured)"; here it is a recorded machine."""
    widgets.MEASURED = f"{machine.name} (recorded)"
