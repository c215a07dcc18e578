"""Optional pieces (pip extras) and the one-line error that names the extra to install.

The core install (numpy, onnx) with one OpenCV (``[desktop]``, ``[headless]`` or the system's:
:mod:`novum.opencv`) runs exported models; the rest comes with extras: ``[torch]`` (training,
export, checkpoints, pose), ``[cpu]`` / ``[gpu]`` (ONNX Runtime), ``[trt]`` (TensorRT + pycuda). A command that reaches a missing piece ends with one line naming
it (``novum.cli_util.run_cli`` turns the ModuleNotFoundError into it).
"""
from __future__ import annotations

from types import ModuleType

from novum.errors import NovumError

# top-level module -> (what it is, the pip install that brings it)
EXTRAS: dict[str, tuple[str, str]] = {
    "torch": ("torch", "pip install 'novum[torch]'"),
    "safetensors": ("safetensors", "pip install 'novum[torch]'"),
    "onnxscript": ("onnxscript", "pip install 'novum[torch]'"),
    "onnxruntime": ("ONNX Runtime", "pip install 'novum[cpu]' (or 'novum[gpu]' on a CUDA machine, never both)"),
    "tensorrt": ("TensorRT", "pip install 'novum[trt]' on a machine with an NVIDIA GPU"),
    "pycuda": ("pycuda", "pip install 'novum[trt]' (it compiles against the CUDA toolkit)"),
}


class MissingExtraError(NovumError):
    """An optional dependency is not installed."""


def missing_extra_message(e: ModuleNotFoundError, purpose: str | None = None,
                          alternative: str | None = None) -> str | None:
    """The one-line message for a missing optional module, or None when ``e`` is about anything
    else (a broken in-tree module must stay a real error)."""
    top = (e.name or "").split(".")[0]
    if top not in EXTRAS:
        return None
    what, fix = EXTRAS[top]
    return f"{purpose or 'this'} needs {what}, which is not installed: {fix}" + (f"; or {alternative}" if alternative else "")


def require(module: str, purpose: str, alternative: str | None = None) -> ModuleType:
    """``import module``, or a :class:`MissingExtraError` that says which extra brings it (and
    ``alternative``, another way that needs no extra)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        msg = missing_extra_message(e, purpose, alternative)
        if msg is None:
            raise
        raise MissingExtraError(msg) from None
