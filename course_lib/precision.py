"""Number formats: how many bytes one parameter takes, and which torch dtype runs it.

The analytical model (perf.py) accepts every format below; the toy transformer can only *run*
the ones with a native torch dtype (fp32, fp16, bf16). FP8, INT8 and INT4 are here for the
bandwidth arithmetic: a quantised weight is fewer bytes to stream, which is the whole point.
"""

from __future__ import annotations

# bytes per parameter of each format; int4 packs two weights in a byte.
BYTES_PER_PARAM: dict[str, float] = {
    "fp32": 4.0,
    "fp16": 2.0,
    "bf16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
}

# the catalogue key under which a device lists its dense peak FLOP/s for this format
PEAK_FLOPS_KEY: dict[str, str] = {
    "fp32": "fp32",
    "fp16": "fp16",
    "bf16": "bf16",
    "fp8": "fp8",
    "int8": "int8",
    "int4": "int4",
}

NAMES: tuple[str, ...] = tuple(BYTES_PER_PARAM)
RUNNABLE: tuple[str, ...] = ("fp32", "fp16", "bf16")


def normalize(precision: str) -> str:
    """Canonical lower-case name of a precision; ValueError for anything unknown."""
    if isinstance(precision, str):
        name = precision.strip().lower()
        if name in BYTES_PER_PARAM:
            return name
    raise ValueError(
        f"precision={precision!r} is not a known precision; use one of {', '.join(NAMES)}"
    )


def bytes_per_param(precision: str) -> float:
    """Bytes one parameter occupies: fp32 4, fp16/bf16 2, fp8/int8 1, int4 0.5."""
    return BYTES_PER_PARAM[normalize(precision)]


def torch_dtype(precision: str):
    """The torch dtype that runs this precision; ValueError for storage-only formats."""
    import torch  # imported here so the pure model never needs torch

    name = normalize(precision)
    dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if name not in dtypes:
        raise ValueError(
            f"precision={precision!r} can be used in the bandwidth calculator but the toy model "
            f"cannot run it; run one of {', '.join(RUNNABLE)}"
        )
    return dtypes[name]
