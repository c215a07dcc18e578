"""Which runtime an INT8 (Q/DQ) ONNX file is made for, and the check every reader of it makes.

TensorRT and ONNX Runtime's CPU kernels want different int8 graphs (docs/architecture.md, "INT8"),
so ``novum-export --int8`` writes one per target and records it under ``int8_target``:

- ``tensorrt`` (``<stem>_int8_trt.onnx``): int8 activations and weights, every zero point 0 (TensorRT
  requires it); Q/DQ on the inputs of the convolutions and on the residual input of each Add, as
  TensorRT's explicit-quantization rules place them. The engine builder accepts only this one.
- ``onnxruntime`` (``<stem>_int8.onnx``): uint8 activations with zero points, int8 weights; Q/DQ
  around every backbone op so ONNX Runtime fuses each into an int8 kernel (QLinearConv,
  QLinearAdd, ...). TensorRT cannot build it (it dequantizes int8 only, with zero points of 0).

INT8 files written before targets existed carry no key: they were symmetric int8 (TensorRT's kind).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from novum.errors import InputError

TARGET_KEY = "int8_target"
ONNXRUNTIME = "onnxruntime"
TENSORRT = "tensorrt"
TARGETS = (ONNXRUNTIME, TENSORRT)
CALIB_METHODS = ("minmax", "entropy", "percentile")   # ONNX Runtime's calibrators
DEFAULT_CALIB_METHOD = "percentile"   # both graphs of the bundled model pass the gate with it (README, INT8)
FILE_SUFFIX = {ONNXRUNTIME: "_int8", TENSORRT: "_int8_trt"}
DESCRIPTION = {
    ONNXRUNTIME: "ONNX Runtime CPU int8 graph (uint8 activations with zero points, int8 weights)",
    TENSORRT: "TensorRT int8 graph (symmetric int8, zero points 0)",
}


def int8_target(meta: Mapping[str, Any]) -> str | None:
    """The target of a model's metadata: None for fp32 / fp16 files, ``tensorrt`` for older int8 files."""
    if meta.get("precision") != "int8":
        return None
    return str(meta.get(TARGET_KEY) or TENSORRT)


def sibling(path: str | Path, target: str) -> Path:
    """The file the other target's graph has next to ``path`` (``m_int8.onnx`` <-> ``m_int8_trt.onnx``)."""
    p = Path(path)
    stem = p.stem
    for suffix in sorted(FILE_SUFFIX.values(), key=len, reverse=True):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return p.with_name(stem + FILE_SUFFIX[target] + p.suffix)


def require_target(meta: Mapping[str, Any], want: str, path: str | Path, consumer: str) -> None:
    """Raise a one-line :class:`InputError` when ``path`` is an int8 graph made for another runtime."""
    got = int8_target(meta)
    if got is None or got == want:
        return
    p = Path(path)
    raise InputError(f"{p.name}: the {DESCRIPTION.get(got, got + ' int8 graph')} cannot run on {consumer}; "
                     f"use {sibling(p, want).name} (novum-export --int8 writes both)")
