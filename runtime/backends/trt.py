"""TensorRT backend over pycuda (TensorRT 10.x and 11.x, name-based tensor API only).

One engine, one execution context, one stream. Pinned host buffers and device buffers are sized
once from the engine's shapes at the optimisation profile's maximum batch; each call sets the
input shape (checked against the profile first), copies in asynchronously, runs
``execute_async_v3`` and copies the outputs back on the same stream.

CUDA contexts belong to threads (pycuda keeps one context stack per thread and aborts the process
when a thread ends with a context still pushed). The backend retains device 0's primary context
(the one torch and the CUDA runtime use, so they share it) without making it current anywhere,
and pushes it around every CUDA call and pops it after, on whichever thread calls: the pipeline
creates, runs and closes backends on different threads. It never imports ``pycuda.autoprimaryctx``
(that pushes on the importing thread and pops only at exit).

Before deserialising, the engine's sidecar (``<engine>.json``) is compared with this machine's
TensorRT version and GPU, so a foreign engine fails with a one-line "rebuild with ..." error. A
version-compatible plan embeds host code that TensorRT runs: it is loaded only when the user
allows it (``allow_engine_host_code``), never because a file says so.
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from novum.contracts.sidecar import check_sidecar, sidecar_config
from novum.errors import InputError, NovumError
from novum.gpu import import_pycuda, import_tensorrt
from novum.runtime.backends.base import Backend, TensorSpec

HOST_CODE_OPT_IN = "--allow-engine-host-code (API: allow_engine_host_code=True)"


class TensorRTBackend(Backend):
    kind = "tensorrt"

    def __init__(self, path: str | Path, *, allow_engine_host_code: bool = False, **_: object) -> None:
        super().__init__(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: engine not found")
        self.cuda_context = None
        trt, why = import_tensorrt()
        if trt is None:
            raise NovumError(f"{self.path.name}: cannot run a TensorRT engine here: {why}; or run the .onnx model with "
                             f"ONNX Runtime")
        cuda, why = import_pycuda()
        if cuda is None:
            raise NovumError(f"{self.path.name}: cannot run a TensorRT engine here: {why}; or run the .onnx model with "
                             f"ONNX Runtime")
        self.trt, self.cuda = trt, cuda
        try:
            dev = cuda.Device(0)
            self.gpu_name = str(dev.name())
            self.compute_capability = tuple(int(v) for v in dev.compute_capability())
            self.cuda_context = dev.retain_primary_context()   # current nowhere until pushed
        except cuda.Error as e:
            raise NovumError(f"{self.path.name}: CUDA is not usable here ({' '.join(str(e).split())[:120]}); run the "
                             f".onnx model with ONNX Runtime") from None
        side = check_sidecar(self.path, trt.__version__, self.gpu_name, self.compute_capability)
        for w in side.get("warnings", []):
            print(f"warning: {w}", file=sys.stderr)
        if side.get("version_compatible") and not allow_engine_host_code:
            raise NovumError(f"{self.path.name} is a version-compatible engine: it embeds host code that TensorRT runs; "
                             f"load it only from a source you trust, with {HOST_CODE_OPT_IN}")
        self.metadata = sidecar_config(side, self.path)
        self.precision = str(side.get("precision", "fp32"))
        self.device = "cuda"
        self.host: dict[str, np.ndarray] = {}
        self.dev: dict[str, Any] = {}
        self.stream = None
        with self._current():
            self._load(allow_engine_host_code)

    def _load(self, allow_host_code: bool) -> None:
        trt = self.trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        if allow_host_code:   # the user's choice; a version-compatible plan embeds the lean runtime
            self.runtime.engine_host_code_allowed = True
        self.engine = self.runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            hint = "" if allow_host_code else f"; a version-compatible engine (host code) also needs {HOST_CODE_OPT_IN}"
            raise NovumError(f"{self.path}: TensorRT {trt.__version__} could not deserialise this engine (another "
                             f"TensorRT version or GPU, or a damaged file; see its log above){hint}; rebuild with "
                             f"novum-export --engine on this machine")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        for n in names:
            is_in = self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(n)))
            self.io.append(TensorSpec(n, tuple(self.engine.get_tensor_shape(n)), dtype, is_in))
        if len(self.inputs) != 1:
            raise NovumError(f"{self.path}: expected one input tensor, the engine has {len(self.inputs)}")
        self.input_name = self.inputs[0].name
        shape = self.inputs[0].shape
        if -1 in shape:
            lo, opt, hi = (tuple(s) for s in self.engine.get_tensor_profile_shape(self.input_name, 0))
        else:
            lo = opt = hi = tuple(shape)
        self.profile = (lo, opt, hi)
        self.min_batch, self.max_batch = int(lo[0]), int(hi[0])

    @contextlib.contextmanager
    def _current(self) -> Iterator[None]:
        """The primary context, current on the calling thread for the block (pushed, then popped:
        the thread's context stack is as it was after, so any thread may call and then end)."""
        self.cuda_context.push()
        try:
            yield
        finally:
            self.cuda.Context.pop()

    def activate(self) -> "TensorRTBackend":
        with self._current():
            super().activate()
        return self

    def deactivate(self) -> None:
        if self.cuda_context is not None:
            with self._current():
                super().deactivate()

    def infer(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        with self._current():
            return super().infer(frames)

    # buffers are sized once, at the profile's maximum shapes
    def _activate(self) -> None:
        cuda, ctx = self.cuda, self.context
        self._set_shape(self.profile[2])
        for t in self.io:
            shape = tuple(ctx.get_tensor_shape(t.name))
            if any(d < 0 for d in shape):
                raise NovumError(f"{self.path}: cannot size tensor {t.name} {list(shape)} from the engine's profile")
            count = int(np.prod(shape))
            self.host[t.name] = cuda.pagelocked_empty(count, t.dtype)
            self.dev[t.name] = cuda.mem_alloc(max(1, count * t.dtype.itemsize))
            ctx.set_tensor_address(t.name, int(self.dev[t.name]))
        self.stream = cuda.Stream()

    def _set_shape(self, shape: tuple[int, ...]) -> None:
        ok = self.context.set_input_shape(self.input_name, tuple(int(d) for d in shape))
        if ok is False:
            raise NovumError(f"{self.path}: TensorRT refused input shape {list(shape)} for {self.input_name} "
                             f"(profile {[list(s) for s in self.profile]})")
        missing = self.context.infer_shapes()
        if missing:
            raise NovumError(f"{self.path}: TensorRT cannot infer shapes of {list(missing)}")

    def check_frames(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames)
        b = frames.shape[0] if frames.ndim == 4 else 1
        if not self.min_batch <= b <= self.max_batch:
            raise InputError(f"{self.path.name}: batch {b} is outside the engine's optimisation profile "
                             f"(batch {self.min_batch}..{self.max_batch}); infer batches in that range or rebuild "
                             f"with novum-export --engine --max-batch {b}")
        saved, self.max_batch = self.max_batch, None
        try:
            return super().check_frames(frames)
        finally:
            self.max_batch = saved

    def _infer(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        cuda, ctx, stream = self.cuda, self.context, self.stream
        self._set_shape(frames.shape)
        n = frames.size
        staged = self.host[self.input_name][:n]
        staged[:] = frames.reshape(-1)
        cuda.memcpy_htod_async(self.dev[self.input_name], staged, stream)
        if ctx.execute_async_v3(stream.handle) is False:
            raise NovumError(f"{self.path}: TensorRT execution failed (see the TensorRT log above)")
        shapes = {}
        for t in self.outputs:
            shapes[t.name] = tuple(ctx.get_tensor_shape(t.name))
            cuda.memcpy_dtoh_async(self.host[t.name][:int(np.prod(shapes[t.name]))], self.dev[t.name], stream)
        stream.synchronize()
        return {name: self.host[name][:int(np.prod(s))].reshape(s).copy() for name, s in shapes.items()}

    def _deactivate(self) -> None:
        for d in self.dev.values():
            d.free()
        self.dev.clear()
        self.host.clear()
        self.stream = None

    def close(self) -> None:
        """Free the buffers and TensorRT's objects (their device memory) with the context current."""
        if self.cuda_context is None:
            return
        with self._current():
            super().close()
            self.context = None
            self.engine = None
            self.runtime = None
        # pycuda releases the retained primary context when this object is collected on the thread that
        # retained it; collected on another thread, it skips the release (one retain count stays until exit)
        self.cuda_context = None
