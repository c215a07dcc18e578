"""Inference backends behind one interface, chosen from the model file.

``load(path, **opts) -> Backend``: ``.engine``/``.plan`` -> TensorRT (pycuda), ``.onnx`` -> ONNX
Runtime, ``.safetensors``/``.pth``/``.pt`` -> torch. Only the torch backend imports torch.
"""
from __future__ import annotations

from pathlib import Path

from novum.errors import InputError, NovumError
from novum.runtime.backends.base import Backend, TensorSpec

SUFFIXES = {".engine": "tensorrt", ".plan": "tensorrt", ".onnx": "onnxruntime",
            ".safetensors": "torch", ".pth": "torch", ".pt": "torch"}

__all__ = ["Backend", "TensorSpec", "load", "backend_kind", "SUFFIXES"]


def backend_kind(path: str | Path) -> str:
    p = Path(path)
    kind = SUFFIXES.get(p.suffix.lower())
    if kind is None:
        raise InputError(f"{p}: unknown model type '{p.suffix}'; expected .engine/.plan (TensorRT), .onnx (ONNX Runtime) "
                         f"or .safetensors/.pth (torch)")
    return kind


def load(path: str | Path, **opts: object) -> Backend:
    """Open a model with the backend its suffix names; checks its I/O against its metadata."""
    p = Path(path)
    kind = backend_kind(p)
    if not p.is_file():
        raise InputError(f"{p}: model not found" + ("" if not p.exists() else " (it is a directory)"))
    if kind == "tensorrt":
        from novum.runtime.backends.trt import TensorRTBackend as cls
    elif kind == "onnxruntime":
        from novum.runtime.backends.ort import OrtBackend as cls
    else:
        from novum.runtime.backends.torch_native import TorchBackend as cls
    backend = cls(p, **opts)
    validate(backend)
    return backend


def validate(backend: Backend) -> None:
    """The model's metadata (classes, input size) must agree with its tensors: else one-line errors."""
    meta, name = backend.metadata, backend.path.name
    for key in ("classes", "input_size"):
        if key not in meta:
            raise NovumError(f"{name}: model metadata lacks '{key}'; re-export it with novum-export")
    h, w = backend.input_size
    ins = backend.inputs
    if len(ins) != 1:
        raise NovumError(f"{name}: expected one input (uint8 images [B,H,W,3]), the model has {len(ins)}")
    shape = ins[0].shape
    if len(shape) != 4 or ins[0].dtype.name != "uint8":
        raise NovumError(f"{name}: input {ins[0].name} is {ins[0].dtype.name} {list(shape)}, expected uint8 [B,H,W,3] "
                         f"BGR; re-export with novum-export")
    got = tuple(shape[1:3])
    if all(isinstance(d, int) and d > 0 for d in got) and got != (h, w):
        raise NovumError(f"{name}: input is {got[0]}x{got[1]} but the model config says {h}x{w}; the file and its "
                         f"metadata disagree, re-export it")
    outs = {t.name: t for t in backend.outputs}
    if "scores" not in outs:
        raise NovumError(f"{name}: no 'scores' output; not a novum classification model")
    c = outs["scores"].shape[-1]
    if isinstance(c, int) and c > 0 and c != len(backend.classes):
        raise NovumError(f"{name}: scores has {c} classes but the metadata lists {len(backend.classes)}; "
                         f"the file and its metadata disagree, re-export it")
