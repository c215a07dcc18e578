"""The model ``novum-serve`` runs: novum's own runtime backend inside Triton's Python backend.

The repository's ``1/model.py`` only imports :class:`TritonPythonModel` from here. Triton's
dynamic batcher hands :meth:`TritonPythonModel.execute` a list of requests (each a batch of
frames); they are checked one by one, concatenated, run through the runtime backend (ONNX Runtime,
or TensorRT over pycuda on a GPU instance) in chunks of at most its maximum batch, and split back
in request order. A request the backend rejects gets its own error response; the others are served.

Tensors cross into and out of Triton through DLPack, not ``as_numpy()`` / ``Tensor(name, array)``:
the stub in the nvidia-pytriton wheel was compiled against numpy 1.x, and under numpy 2 those two
read an array's item size from the old descriptor layout (it comes out 0: every output is then
refused with "output tensor shape does not match size of output"). DLPack does not touch numpy's
descriptor. The stub renames a capsule it consumed to "used_dlpack", where numpy's deleter expects
"used_dltensor" (the DLPack name); :func:`_out` renames it, else numpy prints a ValueError
traceback into the server log for every output tensor. Needs no torch.
"""
from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from novum.errors import NovumError

INPUT = "images"
_USED = ctypes.c_char_p(b"used_dltensor")   # kept alive: the capsule keeps a pointer to it
_set_name = ctypes.pythonapi.PyCapsule_SetName
_set_name.argtypes = [ctypes.py_object, ctypes.c_char_p]
_set_name.restype = ctypes.c_int


def _pb() -> Any:
    import triton_python_backend_utils as pb_utils  # only inside Triton's Python-backend stub

    return pb_utils


def _one_line(e: BaseException) -> str:
    msg = " ".join(str(e).split()) or type(e).__name__
    return msg if isinstance(e, NovumError) else f"{type(e).__name__}: {msg}"


def _out(pb: Any, name: str, array: np.ndarray) -> Any:
    capsule = np.ascontiguousarray(array).__dlpack__()
    tensor = pb.Tensor.from_dlpack(name, capsule)
    _set_name(capsule, _USED)
    return tensor


class TritonPythonModel:
    """Triton's Python-backend interface: ``initialize`` / ``execute`` / ``finalize``."""

    def initialize(self, args: dict[str, str]) -> None:
        from novum.runtime.backends import load

        self.pb = _pb()
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        path = Path(args["model_repository"]) / args["model_version"] / params.get("novum_model_file", "model.onnx")
        gpu = args.get("model_instance_kind") == "GPU"
        if gpu:   # one stub process per instance: pick this instance's GPU for pycuda
            os.environ["CUDA_DEVICE"] = str(args.get("model_instance_device_id", "0"))
        device = params.get("novum_device", "auto")
        if device == "auto" and not gpu:
            device = "cpu"
        threads = int(params.get("novum_threads", "0") or 0)
        try:
            self.backend = load(path, device=device, intra_op_threads=threads).activate()
        except NovumError as e:
            raise self.pb.TritonModelException(f"novum: {_one_line(e)}") from None
        self.outputs = self.backend.output_names
        self.name = args.get("model_name", path.parent.parent.name)

    def execute(self, requests: list[Any]) -> list[Any]:
        pb = self.pb
        frames: list[np.ndarray | None] = []
        errors: list[str | None] = []
        for r in requests:
            try:
                x = np.from_dlpack(pb.get_input_tensor_by_name(r, INPUT))
                frames.append(self.backend.check_frames(x))   # Triton keeps each request <= max_batch_size
                errors.append(None)
            except Exception as e:  # noqa: BLE001 - becomes this request's error response
                frames.append(None)
                errors.append(_one_line(e))
        good = [f for f in frames if f is not None]
        outs: dict[str, np.ndarray] = {}
        if good:
            try:
                outs = self.infer(np.concatenate(good) if len(good) > 1 else good[0])
            except Exception as e:  # noqa: BLE001 - the whole batch failed: every request hears why
                msg = _one_line(e)
                errors = [err or msg for err in errors]
        responses, offset = [], 0
        for r, f, err in zip(requests, frames, errors):
            if err is not None:
                responses.append(pb.InferenceResponse(output_tensors=[], error=pb.TritonError(err)))
                offset += 0 if f is None else len(f)
                continue
            wanted = set(r.requested_output_names() or self.outputs)
            n = len(f)
            tensors = [_out(pb, k, outs[k][offset:offset + n]) for k in self.outputs if k in wanted]
            responses.append(pb.InferenceResponse(output_tensors=tensors))
            offset += n
        return responses

    def infer(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """All frames through the backend, in chunks of at most its maximum batch."""
        step = self.backend.max_batch or len(frames)
        parts = [self.backend.infer(frames[i:i + step]) for i in range(0, len(frames), step)]
        return parts[0] if len(parts) == 1 else {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def finalize(self) -> None:
        backend = getattr(self, "backend", None)
        if backend is not None:
            backend.close()
