"""Fake ``tensorrt`` runtime (10.x/11.x name-based API) that really computes, for CI without a GPU.

A fake *plan* is ``MAGIC`` + JSON: the TensorRT version that "built" it, the source ONNX (base64),
its I/O tensors (name, mode, dtype, shape with -1 for the dynamic batch) and the optimisation
profile of the input. :func:`build_plan` makes one from a novum ONNX file (the export side may
add ``Builder``/``OnnxParser`` classes that emit the same format).

Faithful parts: ``Runtime.deserialize_cuda_engine`` returns None (and logs the real error) for a
plan of another TensorRT version or a foreign file; ``ICudaEngine`` offers only the name-based
tensor API (no ``num_bindings``/``get_binding_shape``: gone in 10.0); ``set_input_shape`` refuses
shapes outside the profile (returns False, logs "Static dimension mismatch" / profile errors);
output shapes stay -1 until the input shape is set; ``execute_async_v3`` needs an address for
every I/O tensor, reads the input from fake device memory by address, runs the source ONNX
through ONNX Runtime and writes each output to its address, bounds-checked, on the given stream.
"""
from __future__ import annotations

import base64
import enum
import json
from pathlib import Path
from typing import Any

import numpy as np

__version__ = "10.3.0.26"
MAGIC = b"NOVUM-FAKE-TRT-PLAN\n"


class DataType(enum.IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    FP8 = 6
    BF16 = 7
    INT64 = 8
    INT4 = 9


float32, float16, int8, int32, bool_, uint8, int64 = (DataType.FLOAT, DataType.HALF, DataType.INT8, DataType.INT32,
                                                      DataType.BOOL, DataType.UINT8, DataType.INT64)
_NP = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8, DataType.INT32: np.int32,
       DataType.BOOL: np.bool_, DataType.UINT8: np.uint8, DataType.INT64: np.int64}


def nptype(trt_type: DataType) -> type:
    """TensorRT DataType -> numpy type (TypeError for types numpy cannot hold, as the real one)."""
    try:
        return _NP[DataType(trt_type)]
    except (KeyError, ValueError):
        raise TypeError(f"Could not resolve TensorRT datatype to an equivalent numpy datatype: {trt_type}") from None


def _from_np(dtype: Any) -> DataType:
    return {np.dtype(v): k for k, v in _NP.items()}[np.dtype(dtype)]


class TensorIOMode(enum.IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class Logger:
    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = Severity

    def __init__(self, min_severity: "Logger.Severity" = Severity.WARNING) -> None:
        self.min_severity = min_severity
        self.messages: list[tuple[int, str]] = []

    def log(self, severity: "Logger.Severity", msg: str) -> None:
        self.messages.append((int(severity), msg))


def build_plan(onnx_path: str | Path, min_batch: int = 1, opt_batch: int = 1, max_batch: int = 4,
               version: str | None = None, version_compatible: bool = False) -> bytes:
    """A fake serialized engine for a novum ONNX file (dynamic batch profile on ``images``).

    A version-compatible plan embeds the lean runtime: like TensorRT, deserialising it needs
    ``runtime.engine_host_code_allowed = True``."""
    import onnxruntime as ort

    data = Path(onnx_path).read_bytes()
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    H, W, C = (int(d) for d in inp.shape[1:])
    x = np.zeros((1, H, W, C), np.uint8)
    outs = sess.run(None, {inp.name: x})   # resolve static output dims, as a builder does
    tensors = [{"name": inp.name, "mode": int(TensorIOMode.INPUT), "dtype": int(DataType.UINT8), "shape": [-1, H, W, C]}]
    for o, v in zip(sess.get_outputs(), outs):
        tensors.append({"name": o.name, "mode": int(TensorIOMode.OUTPUT), "dtype": int(_from_np(v.dtype)),
                        "shape": [-1, *v.shape[1:]]})
    profile = {inp.name: [[min_batch, H, W, C], [opt_batch, H, W, C], [max_batch, H, W, C]]}
    body = {"version": version or __version__, "tensors": tensors, "profile": profile,
            "onnx": base64.b64encode(data).decode(), "version_compatible": bool(version_compatible)}
    return MAGIC + json.dumps(body).encode()


class Runtime:
    def __init__(self, logger: Logger) -> None:
        self.logger = logger
        self.engine_host_code_allowed = False

    def deserialize_cuda_engine(self, serialized_engine: bytes) -> "ICudaEngine | None":
        data = bytes(serialized_engine)
        if not data.startswith(MAGIC):
            self.logger.log(Logger.ERROR, "IRuntime::deserializeCudaEngine: Error Code 1: Serialization "
                                          "(Serialization assertion magicTagRead == kMAGIC_TAG failed.Magic tag does not match)")
            return None
        body = json.loads(data[len(MAGIC):])
        if body.get("version_compatible") and not self.engine_host_code_allowed:
            self.logger.log(Logger.ERROR, "IRuntime::deserializeCudaEngine: Error Code 1: Serialization (the engine "
                                          "contains host code; set IRuntime::setEngineHostCodeAllowed(true))")
            return None
        if body["version"] != __version__ and not body.get("version_compatible"):
            self.logger.log(Logger.ERROR, "IRuntime::deserializeCudaEngine: Error Code 1: Serialization (Serialization "
                                          "assertion stdVersionRead == kSERIALIZATION_VERSION failed.Version tag does not match.)")
            return None
        return ICudaEngine(body, self.logger)


class ICudaEngine:
    def __init__(self, body: dict, logger: Logger) -> None:
        self._tensors = {t["name"]: t for t in body["tensors"]}
        self._order = [t["name"] for t in body["tensors"]]
        self._profile = {k: [tuple(s) for s in v] for k, v in body["profile"].items()}
        self._onnx = base64.b64decode(body["onnx"])
        self._logger = logger
        self._session = None
        self.num_optimization_profiles = 1
        self.name = "novum-fake-engine"

    @property
    def num_io_tensors(self) -> int:
        return len(self._order)

    def get_tensor_name(self, index: int) -> str:
        return self._order[index]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        t = self._tensors.get(name)
        return TensorIOMode(t["mode"]) if t else TensorIOMode.NONE

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._tensors[name]["shape"])

    def get_tensor_dtype(self, name: str) -> DataType:
        return DataType(self._tensors[name]["dtype"])

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple[int, ...]]:
        if profile_index != 0 or name not in self._profile:
            raise RuntimeError(f"get_tensor_profile_shape: {name} has no shapes in profile {profile_index}")
        return list(self._profile[name])

    def create_execution_context(self) -> "IExecutionContext":
        return IExecutionContext(self)

    def session(self):
        if self._session is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            self._session = ort.InferenceSession(self._onnx, opts, providers=["CPUExecutionProvider"])
        return self._session


class IExecutionContext:
    def __init__(self, engine: ICudaEngine) -> None:
        self.engine = engine
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._addresses: dict[str, int] = {}
        self.executions = 0

    def set_input_shape(self, name: str, shape) -> bool:
        e = self.engine
        shape = tuple(int(d) for d in shape)
        if e.get_tensor_mode(name) != TensorIOMode.INPUT:
            e._logger.log(Logger.ERROR, f"setInputShape: {name} is not an input tensor")
            return False
        want = e.get_tensor_shape(name)
        if len(shape) != len(want) or any(w != -1 and w != s for w, s in zip(want, shape)):
            e._logger.log(Logger.ERROR, f"IExecutionContext::setInputShape: Error Code 3: API Usage Error (Static dimension "
                                        f"mismatch while setting input shape for {name}. Set dimensions are {list(shape)}. "
                                        f"Expected dimensions are {list(want)}.)")
            return False
        lo, _, hi = e._profile[name]
        if any(s < a or s > b for s, a, b in zip(shape, lo, hi)):
            e._logger.log(Logger.ERROR, f"IExecutionContext::setInputShape: Error Code 3: API Usage Error (Parameter check "
                                        f"failed, condition: satisfyProfile. Set dimension {list(shape)} for tensor {name} "
                                        f"does not satisfy any optimization profiles.)")
            return False
        self._shapes[name] = shape
        return True

    def _batch(self) -> int | None:
        ins = [n for n in self.engine._order if self.engine.get_tensor_mode(n) == TensorIOMode.INPUT]
        return self._shapes[ins[0]][0] if ins[0] in self._shapes else None

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        if name in self._shapes:
            return self._shapes[name]
        b = self._batch()
        shape = self.engine.get_tensor_shape(name)
        return tuple((b if b is not None else -1) if d == -1 else d for d in shape)

    def infer_shapes(self) -> list[str]:
        return [] if self._batch() is not None else [n for n in self.engine._order
                                                     if self.engine.get_tensor_mode(n) == TensorIOMode.INPUT]

    @property
    def all_binding_shapes_specified(self) -> bool:
        return not self.infer_shapes()

    def set_tensor_address(self, name: str, memory: int) -> bool:
        if name not in self.engine._tensors:
            self.engine._logger.log(Logger.ERROR, f"setTensorAddress: {name} is not an I/O tensor")
            return False
        self._addresses[name] = int(memory)
        return True

    def get_tensor_address(self, name: str) -> int:
        return self._addresses.get(name, 0)

    def execute_async_v3(self, stream_handle: int) -> bool:
        from fakes.fake_pycuda import driver

        e = self.engine
        missing = [n for n in e._order if n not in self._addresses]
        if missing or self.infer_shapes():
            e._logger.log(Logger.ERROR, f"IExecutionContext::enqueueV3: Error Code 3: API Usage Error (address or "
                                        f"shape not set for {missing or self.infer_shapes()})")
            return False
        stream = driver.STATE.streams.get(int(stream_handle))
        if stream is None and int(stream_handle) != 0:
            e._logger.log(Logger.ERROR, "enqueueV3: invalid stream handle")
            return False
        shapes = {n: self.get_tensor_shape(n) for n in e._order}
        addrs = dict(self._addresses)

        def run() -> None:
            feeds = {}
            for n in e._order:
                if e.get_tensor_mode(n) == TensorIOMode.INPUT:
                    dt = np.dtype(nptype(e.get_tensor_dtype(n)))
                    nbytes = int(np.prod(shapes[n])) * dt.itemsize
                    feeds[n] = driver.device_view(addrs[n], nbytes).view(dt).reshape(shapes[n]).copy()
            names = [n for n in e._order if e.get_tensor_mode(n) == TensorIOMode.OUTPUT]
            outs = e.session().run(names, feeds)
            for n, v in zip(names, outs):
                dt = np.dtype(nptype(e.get_tensor_dtype(n)))
                if tuple(v.shape) != shapes[n]:
                    raise RuntimeError(f"fake engine: {n} computed {v.shape}, context says {shapes[n]}")
                driver.device_view(addrs[n], v.nbytes)[:] = np.ascontiguousarray(v.astype(dt)).reshape(-1).view(np.uint8)
            self.executions += 1

        if stream is None:
            run()
        else:
            stream.enqueue(run)
        return True


# ---------------------------------------------------------------------------------------------
# Builder side (added by the export engineer): Builder / INetworkDefinition / OnnxParser /
# IBuilderConfig / IOptimizationProfile / ITimingCache, names as in TensorRT 10.x and 11.x.
# Faithful parts: no weak-typing precision flags (BuilderFlag.FP16/INT8 are gone in 11.0; a
# builder using them fails here as on 11.x), EXPLICIT_BATCH is absent, a network must be created
# STRONGLY_TYPED (the novum recipe), a profile must cover every dynamic input, build returns None
# (and logs) on failure, the plan is the format Runtime above deserialises.


class NetworkDefinitionCreationFlag(enum.IntEnum):
    STRONGLY_TYPED = 1


class BuilderFlag(enum.IntEnum):
    DEBUG = 2
    GPU_FALLBACK = 3
    REFIT = 5
    DISABLE_TIMING_CACHE = 6
    TF32 = 7
    SPARSE_WEIGHTS = 8
    SAFETY_SCOPE = 9
    DIRECT_IO = 11
    VERSION_COMPATIBLE = 14
    EXCLUDE_LEAN_RUNTIME = 15


class MemoryPoolType(enum.IntEnum):
    WORKSPACE = 0
    DLA_MANAGED_SRAM = 1
    DLA_LOCAL_DRAM = 2
    DLA_GLOBAL_DRAM = 3
    TACTIC_DRAM = 4


class HardwareCompatibilityLevel(enum.IntEnum):
    NONE = 0
    AMPERE_PLUS = 1
    SAME_COMPUTE_CAPABILITY = 2


class IHostMemory(bytes):
    """Serialized plan / cache: supports the buffer protocol like the real one (a bytes subclass,
    since ``__buffer__`` needs Python 3.12)."""

    @property
    def nbytes(self) -> int:
        return len(self)


class ITimingCache:
    def __init__(self, blob: bytes) -> None:
        self.entries: dict = json.loads(blob.decode()) if blob else {}

    def serialize(self) -> IHostMemory:
        return IHostMemory(json.dumps(self.entries).encode())

    def combine(self, input_cache: "ITimingCache", ignore_mismatch: bool) -> bool:
        self.entries.update(input_cache.entries)
        return True

    def reset(self) -> bool:
        self.entries.clear()
        return True


class IOptimizationProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple] = {}

    def set_shape(self, input: str, min, opt, max) -> None:
        lo, op, hi = (tuple(int(d) for d in s) for s in (min, opt, max))
        if not (len(lo) == len(op) == len(hi)) or any(a > b or b > c for a, b, c in zip(lo, op, hi)):
            raise ValueError(f"set_shape: need min <= opt <= max per dimension for {input}")
        self.shapes[input] = (lo, op, hi)

    def get_shape(self, input: str) -> list[tuple]:
        return list(self.shapes.get(input, ()))


class IBuilderConfig:
    def __init__(self) -> None:
        self.flags = {BuilderFlag.TF32}   # TF32 is on by default in TensorRT
        self.pools: dict[MemoryPoolType, int] = {}
        self.profiles: list[IOptimizationProfile] = []
        self.builder_optimization_level = 3
        self.hardware_compatibility_level = HardwareCompatibilityLevel.NONE
        self._cache: ITimingCache | None = None

    def set_memory_pool_limit(self, pool: MemoryPoolType, pool_size: int) -> None:
        self.pools[MemoryPoolType(pool)] = int(pool_size)

    def get_memory_pool_limit(self, pool: MemoryPoolType) -> int:
        return self.pools.get(MemoryPoolType(pool), 0)

    def set_flag(self, flag: BuilderFlag) -> None:
        self.flags.add(BuilderFlag(flag))

    def clear_flag(self, flag: BuilderFlag) -> None:
        self.flags.discard(BuilderFlag(flag))

    def get_flag(self, flag: BuilderFlag) -> bool:
        return BuilderFlag(flag) in self.flags

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, serialized_timing_cache: bytes) -> ITimingCache:
        return ITimingCache(bytes(serialized_timing_cache))

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        self._cache = cache
        return True

    def get_timing_cache(self) -> ITimingCache | None:
        return self._cache


class INetworkDefinition:
    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.onnx_path: str | None = None

    def get_flag(self, flag: NetworkDefinitionCreationFlag) -> bool:
        return bool(self.flags & (1 << int(flag)))


class OnnxParser:
    def __init__(self, network: INetworkDefinition, logger: Logger) -> None:
        self.network, self.logger = network, logger
        self._errors: list[str] = []

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int) -> str:
        return self._errors[index]

    def clear_errors(self) -> None:
        self._errors.clear()

    def parse_from_file(self, model: str) -> bool:
        import onnx

        try:
            onnx.checker.check_model(model)   # path form: external data next to the file is read
        except Exception as e:
            self._errors.append(f"ModelImporter.cpp: Failed to parse ONNX model from file: {model} ({e})")
            return False
        from novum.export.trt_ops import unsupported_nodes

        # like the real parser: a node outside onnx-tensorrt's operator table fails the parse
        refused = unsupported_nodes(model)
        self._errors += [f"ModelImporter.cpp: ERROR: {why} [UNSUPPORTED_NODE]" for why in refused]
        if refused:
            return False
        self.network.onnx_path = model
        return True


class Builder:
    def __init__(self, logger: Logger) -> None:
        self.logger = logger
        self.builds = 0

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        return INetworkDefinition(flags)

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig()

    def create_optimization_profile(self) -> IOptimizationProfile:
        return IOptimizationProfile()

    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> IHostMemory | None:
        if not network.get_flag(NetworkDefinitionCreationFlag.STRONGLY_TYPED):
            self.logger.log(Logger.ERROR, "fake builder: novum networks must be created STRONGLY_TYPED")
            return None
        if network.onnx_path is None:
            self.logger.log(Logger.ERROR, "Network must have at least one output")
            return None
        if len(config.profiles) != 1 or "images" not in config.profiles[0].shapes:
            self.logger.log(Logger.ERROR, "Error Code 4: API Usage Error (Network has dynamic or shape inputs, but "
                                          "no optimization profile has been defined.)")
            return None
        lo, opt, hi = config.profiles[0].shapes["images"]
        if config._cache is not None:
            config._cache.entries[f"build{len(config._cache.entries)}"] = "tactic"
        self.builds += 1
        vc = config.get_flag(BuilderFlag.VERSION_COMPATIBLE)
        return IHostMemory(build_plan(network.onnx_path, lo[0], opt[0], hi[0], version_compatible=vc))
