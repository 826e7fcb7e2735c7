"""What the benchmark scripts share: where and how they ran (provenance), and a prefill sweep in CUDA graphs."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys

import torch

from course_lib import machine


def provenance(device) -> dict:
    """Device, software versions, command line and machine load, for a benchmark's JSON."""
    device = torch.device(device)
    info = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
            "device": device.type, "device_name": machine.device_name(device), "torch_version": torch.__version__,
            "python_version": platform.python_version(), "platform": platform.platform(),
            "cpu": machine.device_name("cpu"), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_avg_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 check=False, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        info.update({"cuda_version": torch.version.cuda, "gpu_memory_bytes": props.total_memory,
                     "gpu_sm_count": props.multi_processor_count, "driver_version": out.splitlines()[0] if out else None})
    return info
