"""Shared test settings, and the notebook budget check that rides on nbval.

- One torch thread in the tests, and OMP_NUM_THREADS=1 for the notebook kernels nbval starts:
  that is how Binder runs the course (1 CPU), and on a 2-core machine a second thread adds
  little bandwidth but makes timings slow whenever another process is busy.
- While a notebook runs, a background thread samples the memory of its kernel and of every process
  the kernel started (notebook 04's tensor-parallel ranks), summed; after its last cell the peak of
  that sum, the kernel's own peak (Linux VmHWM, which no spike escapes) and the wall time are
  recorded. A notebook whose larger peak is over NOTEBOOK_MEMORY_BUDGET fails, and a table of every
  notebook's figures is printed at the end of the run (and written as JSON if
  COURSE_NOTEBOOK_REPORT names a file).
"""

import json
import os
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import TreeMemoryPeak, peak_rss

torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("COURSE_REVEAL", "1")  # predict boxes show their results at once (widgets.Guess)

NOTEBOOK_MEMORY_BUDGET = 1.2e9  # bytes per notebook, kernel and its processes (Binder gives 2 GB in all)
_NOTEBOOKS: dict[str, dict] = {}
_SAMPLERS: dict[str, TreeMemoryPeak] = {}


def pytest_configure(config):
    config.addinivalue_line("markers", "network: asks a package index (skipped, with the reason, where none answers)")


def _kernel_pid(item) -> int | None:
    kernel = getattr(item.parent, "kernel", None)
    provisioner = getattr(getattr(kernel, "km", None), "provisioner", None)
    process = getattr(provisioner, "process", None)
    return getattr(process, "pid", None)


def _is_notebook_cell(item) -> bool:
    return type(item).__name__ == "IPyNbCell"


def pytest_runtest_setup(item):
    if _is_notebook_cell(item):
        _NOTEBOOKS.setdefault(item.parent.name, {"start": time.perf_counter()})


def pytest_runtest_call(item):
    # the kernel starts in the notebook's own setup, which runs after this file's setup hook
    pid = _kernel_pid(item) if _is_notebook_cell(item) else None
    if pid and item.parent.name not in _SAMPLERS:
        _SAMPLERS[item.parent.name] = TreeMemoryPeak(pid)


def pytest_runtest_teardown(item, nextitem):
    if not _is_notebook_cell(item) or (nextitem is not None and nextitem.parent is item.parent):
        return
    record = _NOTEBOOKS[item.parent.name]
    record["seconds"] = time.perf_counter() - record.pop("start")
    sampler, pid = _SAMPLERS.pop(item.parent.name, None), _kernel_pid(item)
    record["tree_peak_bytes"] = sampler.stop() if sampler else None
    record["peak_rss_bytes"] = peak_rss(pid) if pid else None
    figures = [f for f in (record["tree_peak_bytes"], record["peak_rss_bytes"]) if f is not None]
    peak = max(figures, default=None)
    if peak is not None and peak > NOTEBOOK_MEMORY_BUDGET:
        pytest.fail(f"{item.parent.name}: peak memory {peak / 1e9:.2f} GB (kernel and the processes it started) "
                    f"is over the {NOTEBOOK_MEMORY_BUDGET / 1e9:.1f} GB budget (Binder gives 2 GB)")


def pytest_terminal_summary(terminalreporter):
    if not _NOTEBOOKS:
        return
    terminalreporter.section("notebooks: wall time, kernel peak (VmHWM) and peak with its processes (1 thread)")
    for name, r in _NOTEBOOKS.items():
        memory = "   ".join(f"{r[key] / 2**20:7.0f} MiB" if r.get(key) else "    n/a    "
                           for key in ("peak_rss_bytes", "tree_peak_bytes"))
        terminalreporter.write_line(f"{name:<34} {r.get('seconds', float('nan')):6.1f} s   {memory}")
    target = os.environ.get("COURSE_NOTEBOOK_REPORT")
    if target:
        Path(target).write_text(json.dumps(_NOTEBOOKS, indent=2))
