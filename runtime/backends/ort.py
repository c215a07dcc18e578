"""ONNX Runtime backend: CUDA or TensorRT execution provider when the session really has it, else CPU.

The provider actually used comes from ``session.get_providers()``, never from
``get_available_providers()`` (onnxruntime-gpu lists CUDA even where it cannot load it).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from novum.contracts.int8 import ONNXRUNTIME, TENSORRT, int8_target, require_target, sibling
from novum.contracts.onnx_file import decode_metadata, read_raw_metadata
from novum.errors import InputError, NovumError
from novum.extras import require
from novum.runtime.backends.base import Backend, TensorSpec

ORT_DTYPES = {
    "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(int32)": np.int32, "tensor(int64)": np.int64,
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64, "tensor(bool)": np.bool_,
}
PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


class OrtBackend(Backend):
    """``device``: auto (CUDA if the session gets it, else CPU) | cpu | cuda | tensorrt.
    ``intra_op_threads`` / ``inter_op_threads``: ONNX Runtime thread pools (0 = its default).
    ``spin``: let idle pool threads busy-wait (ORT's default). Off here by default: in the
    pipeline, spinning threads take the CPU that decoding and encoding need on a small machine."""

    kind = "onnxruntime"

    def __init__(self, path: str | Path, device: str = "auto", intra_op_threads: int = 0,
                 inter_op_threads: int = 0, spin: bool = False, **_: object) -> None:
        super().__init__(path)
        ort = require("onnxruntime", f"running {self.path.name}")

        if device not in ("auto", *PROVIDERS):
            raise InputError(f"unknown device '{device}' for ONNX Runtime; use auto, cpu, cuda or tensorrt")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(intra_op_threads)
        opts.inter_op_num_threads = int(inter_op_threads)
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "1" if spin else "0")
        available = ort.get_available_providers()
        wanted = PROVIDERS["cpu"] if device == "auto" and "CUDAExecutionProvider" not in available else \
            PROVIDERS["cuda" if device == "auto" else device]
        wanted = [p for p in wanted if p in available] or ["CPUExecutionProvider"]
        if device == "tensorrt":  # TensorRT cannot build ONNX Runtime's uint8 int8 graph
            require_target(read_raw_metadata(self.path), TENSORRT, self.path, "ONNX Runtime's TensorRT provider")
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=wanted)
        except Exception as e:  # ORT raises its own Fail/InvalidGraph/NoSuchFile types
            msg = " ".join(str(e).split())[:200]
            if "INVALID_PROTOBUF" in msg or "Protobuf parsing failed" in msg:
                raise NovumError(f"{self.path}: ONNX Runtime cannot load the model: the file is broken (truncated, or "
                                 f"not an ONNX model); re-export it with novum-export") from None
            raise NovumError(f"{self.path}: ONNX Runtime cannot load the model ({msg}); re-export it with novum-export") from None
        self.providers = self.session.get_providers()
        used = self.providers[0]
        if device in ("cuda", "tensorrt") and used == "CPUExecutionProvider":
            raise NovumError(f"{self.path.name}: ONNX Runtime fell back to CPU although --device {device} was asked "
                             f"(install onnxruntime-gpu with CUDA 13 + cuDNN 9, or use --device cpu)")
        self.device = {"CPUExecutionProvider": "cpu", "CUDAExecutionProvider": "cuda",
                       "TensorrtExecutionProvider": "tensorrt"}.get(used, used)
        self.io = [TensorSpec(t.name, tuple(t.shape), np.dtype(ORT_DTYPES.get(t.type, np.float32)), True)
                   for t in self.session.get_inputs()]
        self.io += [TensorSpec(t.name, tuple(t.shape), np.dtype(ORT_DTYPES.get(t.type, np.float32)), False)
                    for t in self.session.get_outputs()]
        try:
            props = self.session.get_modelmeta().custom_metadata_map
        except UnicodeDecodeError:
            raise NovumError(f"{self.path}: the ONNX metadata is not UTF-8 text (a damaged file); re-export it with "
                             f"novum-export") from None
        meta = decode_metadata(props, self.path)
        self.metadata = meta["novum_config"]
        self.precision = meta.get("precision") or _guess_precision(self.path)
        self.int8_target = int8_target(meta)
        self._input_name = self.inputs[0].name
        b = self.inputs[0].shape[0]
        self.max_batch = b if isinstance(b, int) and b > 0 else None  # a dynamic batch has no limit in ORT

    def describe(self) -> str:
        text = super().describe()
        if self.int8_target == TENSORRT and self.device == "cpu":
            text += (f"\nnote: this is the TensorRT int8 graph; ONNX Runtime runs its convolutions in fp32 "
                     f"(use {sibling(self.path, ONNXRUNTIME).name} on a CPU)")
        return text

    def _infer(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        outs = self.session.run(None, {self._input_name: frames})
        return dict(zip(self.output_names, outs))

    def _deactivate(self) -> None:
        pass


def run_onnx(path: str | Path, frames: np.ndarray, providers: list[str] | None = None,
             max_batch: int | None = None, threads: int = 0) -> dict[str, np.ndarray]:
    """All outputs of an ONNX file on ``frames`` (a plain ONNX Runtime session, CPU unless
    ``providers`` say otherwise, batched by ``max_batch``, ``threads`` intra-op threads, 0 = ONNX
    Runtime's default): what verification, the INT8 accuracy gate and benchmarks compare."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = int(threads)
    sess = ort.InferenceSession(str(path), so, providers=providers or ["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    step = max_batch or len(frames)
    parts = [sess.run(names, {sess.get_inputs()[0].name: frames[i:i + step]}) for i in range(0, len(frames), step)]
    return {n: np.concatenate([p[j] for p in parts]) for j, n in enumerate(names)}


def _guess_precision(path: Path) -> str:
    name = path.name.lower()
    return "fp16" if "fp16" in name else "int8" if "int8" in name else "fp32"
