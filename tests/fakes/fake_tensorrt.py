"""Fake ``tensorrt`` modules, one per release, that really compute (through ONNX Runtime), for CI.

``module(version)`` returns a fresh module object shaped like that TensorRT release's Python
bindings: its enums have exactly that release's members and values, and of the methods and
properties the fake implements, only those the release has are visible (the others raise
AttributeError, so ``hasattr`` is False). The per-release surface is ``trt_surface.json``, read
from TensorRT's own binding sources (``make_trt_surface.py``; docs/tensorrt.md). Releases:

- ``10.3.0.30``: JetPack 6 (no ``HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY``),
- ``10.13.0.35``: the release ``tensorrt-stubs`` describes (checked against them in CI),
- ``11.1.0.106``: TensorRT 11 (no weak-typing builder flags, no ``EXPLICIT_BATCH``,
  ``STRONGLY_TYPED`` is 0 and ignored: networks are always strongly typed).

A fake *plan* is ``MAGIC`` + JSON: the version that built it, the device (name, compute
capability), its flags, the source ONNX (base64), its I/O tensors and the input's optimisation
profile. Faithful parts: ``deserialize_cuda_engine`` returns None (and logs the real error) for a
foreign file, a plain plan of another version, a plan for another GPU, and a version-compatible
plan unless ``engine_host_code_allowed``; only the name-based tensor API exists;
``set_input_shape`` refuses shapes outside the profile; ``execute_async_v3`` needs an address for
every tensor, reads and writes fake device memory by address on the given stream; a timing cache
carries a header (version, device) and ``set_timing_cache`` returns False for a cache of another
device unless ``ignore_mismatch``; a cache of another version is refused at creation.
"""
from __future__ import annotations

import base64
import enum
import functools
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from novum.gpu import version_tuple as vtuple

MAGIC = b"NOVUM-FAKE-TRT-PLAN\n"
CACHE_MAGIC = "novum-fake-timing-cache"
SURFACE: dict[str, Any] = json.loads(Path(__file__).with_name("trt_surface.json").read_text())
VERSIONS = tuple(sorted(SURFACE, key=lambda v: tuple(int(p) for p in v.split("."))))
JETPACK6, STUBS, TRT11 = VERSIONS   # "10.3.0.30", "10.13.0.35", "11.1.0.106"
DEFAULT_VERSION = JETPACK6

_NP_NAMES = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "BOOL": np.bool_,
             "UINT8": np.uint8, "INT64": np.int64}
_MODULE_ATTRS = {"float32": "FLOAT", "float16": "HALF", "bfloat16": "BF16", "int8": "INT8", "int32": "INT32",
                 "int64": "INT64", "bool": "BOOL", "uint8": "UINT8", "fp8": "FP8", "int4": "INT4", "fp4": "FP4",
                 "e8m0": "E8M0"}


def _device() -> tuple[str, tuple[int, int]]:
    from fakes.fake_pycuda import driver

    return driver.DEVICE_NAME, tuple(driver.COMPUTE_CAPABILITY)


class _Absent:
    """A member this release does not have: reading or writing it raises AttributeError."""

    def __init__(self, name: str, version: str) -> None:
        self.name, self.version = name, version

    def __get__(self, obj: Any, owner: type) -> Any:
        raise AttributeError(f"'{owner.__name__}' object has no attribute '{self.name}' (not in TensorRT {self.version})")

    def __set__(self, obj: Any, value: Any) -> None:
        raise AttributeError(f"'{type(obj).__name__}' object has no attribute '{self.name}' (not in TensorRT {self.version})")


# ---------------------------------------------------------------------------------------------
# implementation classes (the union of what the releases offer); ``self._trt`` is the module of
# the release, for its enums. State lives in underscore attributes only.


class _Logger:
    def __init__(self, min_severity: Any = None) -> None:
        self._min = min_severity if min_severity is not None else self._trt.Logger.Severity.WARNING
        self._messages: list[tuple[int, str]] = []

    @property
    def min_severity(self) -> Any:
        return self._min

    @min_severity.setter
    def min_severity(self, value: Any) -> None:
        self._min = value

    def log(self, severity: Any, msg: str) -> None:
        self._messages.append((int(severity), msg))


class _IHostMemory(bytes):
    """Serialized plan / cache: a bytes subclass (the buffer protocol, as the real one)."""

    @property
    def nbytes(self) -> int:
        return len(self)


class _ITimingCache:
    def __init__(self, header: dict | None, entries: dict, usable: bool = True) -> None:
        self._header, self._entries, self._usable = header, dict(entries), usable

    def serialize(self) -> _IHostMemory:
        return self._trt.IHostMemory(json.dumps({"magic": CACHE_MAGIC, "header": self._header, "entries": self._entries}).encode())

    def combine(self, input_cache: "_ITimingCache", ignore_mismatch: bool) -> bool:
        if input_cache._header and self._header and input_cache._header["version"] != self._header["version"]:
            return False
        if not ignore_mismatch and input_cache._header and self._header and input_cache._header != self._header:
            return False
        self._entries.update(input_cache._entries)
        return True

    def reset(self) -> bool:
        self._entries.clear()
        return True


class _IOptimizationProfile:
    def __init__(self) -> None:
        self._shapes: dict[str, tuple] = {}

    def set_shape(self, input: str, min: Any, opt: Any, max: Any) -> None:  # noqa: A002 - the real names
        lo, op, hi = (tuple(int(d) for d in s) for s in (min, opt, max))
        if not (len(lo) == len(op) == len(hi)) or any(a > b or b > c for a, b, c in zip(lo, op, hi)):
            raise ValueError(f"set_shape: need min <= opt <= max per dimension for {input}")
        self._shapes[input] = (lo, op, hi)

    def get_shape(self, input: str) -> list[tuple]:  # noqa: A002
        return list(self._shapes.get(input, ()))


class _IBuilderConfig:
    def __init__(self, logger: _Logger) -> None:
        self._logger = logger
        self._flags = {self._trt.BuilderFlag.TF32}   # TF32 is on by default in TensorRT
        self._pools: dict[Any, int] = {}
        self._profiles: list[_IOptimizationProfile] = []
        self._level = 3
        self._hw = self._trt.HardwareCompatibilityLevel.NONE
        self._cache: _ITimingCache | None = None

    @property
    def flags(self) -> int:
        return sum(1 << int(f) for f in self._flags)

    @flags.setter
    def flags(self, value: int) -> None:
        self._flags = {f for f in self._trt.BuilderFlag if int(value) >> int(f) & 1}

    @property
    def builder_optimization_level(self) -> int:
        return self._level

    @builder_optimization_level.setter
    def builder_optimization_level(self, value: int) -> None:
        self._level = int(value)

    @property
    def hardware_compatibility_level(self) -> Any:
        return self._hw

    @hardware_compatibility_level.setter
    def hardware_compatibility_level(self, value: Any) -> None:
        self._hw = self._trt.HardwareCompatibilityLevel(int(value))

    @property
    def num_optimization_profiles(self) -> int:
        return len(self._profiles)

    def set_memory_pool_limit(self, pool: Any, pool_size: int) -> None:
        self._pools[self._trt.MemoryPoolType(int(pool))] = int(pool_size)

    def get_memory_pool_limit(self, pool: Any) -> int:
        return self._pools.get(self._trt.MemoryPoolType(int(pool)), 0)

    def set_flag(self, flag: Any) -> None:
        self._flags.add(self._trt.BuilderFlag(int(flag)))

    def clear_flag(self, flag: Any) -> None:
        self._flags.discard(self._trt.BuilderFlag(int(flag)))

    def get_flag(self, flag: Any) -> bool:
        return self._trt.BuilderFlag(int(flag)) in self._flags

    def add_optimization_profile(self, profile: _IOptimizationProfile) -> int:
        self._profiles.append(profile)
        return len(self._profiles) - 1

    def create_timing_cache(self, serialized_timing_cache: Any) -> _ITimingCache:
        blob = bytes(serialized_timing_cache)
        name, cc = _device()
        make = self._trt.ITimingCache
        here = {"version": self._trt.__version__, "device": [name, list(cc)]}
        if not blob:
            return make(here, {})
        try:
            data = json.loads(blob.decode())
            assert data["magic"] == CACHE_MAGIC
        except Exception:
            self._logger.log(self._trt.Logger.ERROR, "Error Code 1: Internal Error (Timing cache: the serialized cache is corrupt)")
            return make(here, {}, usable=False)
        if data["header"]["version"] != self._trt.__version__:
            self._logger.log(self._trt.Logger.ERROR, "Error Code 1: Internal Error (Timing cache was created by a different "
                                                     "TensorRT version)")
            return make(data["header"], data["entries"], usable=False)
        return make(data["header"], data["entries"])

    def set_timing_cache(self, cache: _ITimingCache, ignore_mismatch: bool) -> bool:
        here = [_device()[0], list(_device()[1])]
        if not cache._usable or (not ignore_mismatch and cache._header["device"] != here):
            self._logger.log(self._trt.Logger.ERROR, "IBuilderConfig::setTimingCache: Error Code 3: API Usage Error "
                                                     "(Timing cache verification failed: the cache was made on a device "
                                                     "with different properties)")
            return False
        self._cache = cache
        return True

    def get_timing_cache(self) -> _ITimingCache | None:
        return self._cache


class _INetworkDefinition:
    def __init__(self, flags: int) -> None:
        self._flags_int = int(flags)
        self._onnx: str | None = None

    @property
    def flags(self) -> int:
        return self._flags_int

    def get_flag(self, flag: Any) -> bool:
        return bool(self._flags_int & (1 << int(flag)))


class _OnnxParser:
    def __init__(self, network: _INetworkDefinition, logger: _Logger) -> None:
        self._network, self._logger = network, logger
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
            onnx.checker.check_model(model)   # the path form: external data next to the file is read
        except Exception as e:
            self._errors.append(f"ModelImporter.cpp: Failed to parse ONNX model from file: {model} ({e})")
            return False
        from novum.export.trt_ops import unsupported_nodes

        # like the real parser: a node outside onnx-tensorrt's operator table fails the parse
        refused = unsupported_nodes(model)
        self._errors += [f"ModelImporter.cpp: ERROR: {why} [UNSUPPORTED_NODE]" for why in refused]
        if refused:
            return False
        self._network._onnx = model
        return True


class _Builder:
    def __init__(self, logger: _Logger) -> None:
        self._logger = logger
        self._builds = 0

    def create_network(self, flags: int = 0) -> _INetworkDefinition:
        return self._trt.INetworkDefinition(flags)

    def create_builder_config(self) -> _IBuilderConfig:
        return self._trt.IBuilderConfig(self._logger)

    def create_optimization_profile(self) -> _IOptimizationProfile:
        return self._trt.IOptimizationProfile()

    def build_serialized_network(self, network: _INetworkDefinition, config: _IBuilderConfig) -> _IHostMemory | None:
        trt, log = self._trt, self._logger.log
        if vtuple(trt.__version__)[0] < 11 and not network.get_flag(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED):
            log(trt.Logger.ERROR, "fake builder: novum networks must be created STRONGLY_TYPED")
            return None
        if network._onnx is None:
            log(trt.Logger.ERROR, "Network must have at least one output")
            return None
        if len(config._profiles) != 1 or "images" not in config._profiles[0]._shapes:
            log(trt.Logger.ERROR, "Error Code 4: API Usage Error (Network has dynamic or shape inputs, but no optimization "
                                  "profile has been defined.)")
            return None
        lo, opt, hi = config._profiles[0]._shapes["images"]
        if config._cache is not None:
            config._cache._entries[f"tactic{len(config._cache._entries)}"] = self._builds
        self._builds += 1
        return trt.IHostMemory(build_plan(network._onnx, lo[0], opt[0], hi[0], version=trt.__version__,
                                       version_compatible=config.get_flag(trt.BuilderFlag.VERSION_COMPATIBLE),
                                       hardware_compatibility=config.hardware_compatibility_level.name))


class _Runtime:
    def __init__(self, logger: _Logger) -> None:
        self._logger = logger
        self._host_code = False

    @property
    def engine_host_code_allowed(self) -> bool:
        return self._host_code

    @engine_host_code_allowed.setter
    def engine_host_code_allowed(self, value: bool) -> None:
        self._host_code = bool(value)

    def deserialize_cuda_engine(self, serialized_engine: Any) -> "_ICudaEngine | None":
        trt = self._trt
        data = bytes(serialized_engine)

        def fail(msg: str) -> None:
            self._logger.log(trt.Logger.ERROR, f"IRuntime::deserializeCudaEngine: Error Code 1: Serialization ({msg})")

        if not data.startswith(MAGIC):
            return fail("Serialization assertion magicTagRead == kMAGIC_TAG failed.Magic tag does not match")
        body = json.loads(data[len(MAGIC):])
        built, here = vtuple(body["version"]), vtuple(trt.__version__)
        if body.get("version_compatible"):
            if not self._host_code:
                return fail("the engine contains host code; set IRuntime::setEngineHostCodeAllowed(true) to load it")
            ok = (here[0] == built[0] and here >= built) or (built[0], here[0]) in {(8, 10), (10, 11)}
        else:
            ok = body["version"] == trt.__version__
        if not ok:
            return fail("Serialization assertion stdVersionRead == kSERIALIZATION_VERSION failed.Version tag does not match")
        cc = tuple(_device()[1])
        built_cc = tuple(body.get("device", [None, list(cc)])[1])
        hw = body.get("hardware_compatibility", "NONE")
        if not (cc == built_cc or (hw == "AMPERE_PLUS" and cc >= (8, 0))):
            return fail(f"engine plan file is generated on an incompatible device, expecting compute {cc[0]}.{cc[1]} "
                        f"got compute {built_cc[0]}.{built_cc[1]}, please rebuild")
        return trt.ICudaEngine(body, self._logger)


class _ICudaEngine:
    def __init__(self, body: dict, logger: _Logger) -> None:
        self._tensors = {t["name"]: t for t in body["tensors"]}
        self._order = [t["name"] for t in body["tensors"]]
        self._profile = {k: [tuple(s) for s in v] for k, v in body["profile"].items()}
        self._onnx = base64.b64decode(body["onnx"])
        self._logger = logger
        self._session = None

    @property
    def num_io_tensors(self) -> int:
        return len(self._order)

    @property
    def num_optimization_profiles(self) -> int:
        return 1

    @property
    def name(self) -> str:
        return "novum-fake-engine"

    def get_tensor_name(self, index: int) -> str:
        return self._order[index]

    def get_tensor_mode(self, name: str) -> Any:
        t = self._tensors.get(name)
        return self._trt.TensorIOMode.INPUT if t and t["mode"] == "input" else (
            self._trt.TensorIOMode.OUTPUT if t else self._trt.TensorIOMode.NONE)

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._tensors[name]["shape"])

    def get_tensor_dtype(self, name: str) -> Any:
        return getattr(self._trt.DataType, self._tensors[name]["dtype"])

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple[int, ...]]:
        if profile_index != 0 or name not in self._profile:
            raise RuntimeError(f"get_tensor_profile_shape: {name} has no shapes in profile {profile_index}")
        return list(self._profile[name])

    def create_execution_context(self, strategy: Any = None) -> "_IExecutionContext":
        return self._trt.IExecutionContext(self)

    def _session_(self):
        if self._session is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            self._session = ort.InferenceSession(self._onnx, opts, providers=["CPUExecutionProvider"])
        return self._session


class _IExecutionContext:
    def __init__(self, engine: _ICudaEngine) -> None:
        self._engine = engine
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._addresses: dict[str, int] = {}
        self._executions = 0

    @property
    def engine(self) -> _ICudaEngine:
        return self._engine

    def set_input_shape(self, name: str, shape: Any) -> bool:
        e, err = self._engine, self._trt.Logger.ERROR
        shape = tuple(int(d) for d in shape)
        if e.get_tensor_mode(name) != self._trt.TensorIOMode.INPUT:
            e._logger.log(err, f"setInputShape: {name} is not an input tensor")
            return False
        want = e.get_tensor_shape(name)
        if len(shape) != len(want) or any(w != -1 and w != s for w, s in zip(want, shape)):
            e._logger.log(err, f"IExecutionContext::setInputShape: Error Code 3: API Usage Error (Static dimension mismatch "
                               f"while setting input shape for {name}. Set dimensions are {list(shape)}. Expected "
                               f"dimensions are {list(want)}.)")
            return False
        lo, _, hi = e._profile[name]
        if any(s < a or s > b for s, a, b in zip(shape, lo, hi)):
            e._logger.log(err, f"IExecutionContext::setInputShape: Error Code 3: API Usage Error (Parameter check failed, "
                               f"condition: satisfyProfile. Set dimension {list(shape)} for tensor {name} does not satisfy "
                               f"any optimization profiles.)")
            return False
        self._shapes[name] = shape
        return True

    def _batch(self) -> int | None:
        ins = [n for n in self._engine._order if self._engine._tensors[n]["mode"] == "input"]
        return self._shapes[ins[0]][0] if ins[0] in self._shapes else None

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        if name in self._shapes:
            return self._shapes[name]
        b = self._batch()
        return tuple((b if b is not None else -1) if d == -1 else d for d in self._engine.get_tensor_shape(name))

    def infer_shapes(self) -> list[str]:
        return [] if self._batch() is not None else [n for n in self._engine._order
                                                     if self._engine._tensors[n]["mode"] == "input"]

    @property
    def all_binding_shapes_specified(self) -> bool:
        return not self.infer_shapes()

    def set_tensor_address(self, name: str, memory: int) -> bool:
        if name not in self._engine._tensors:
            self._engine._logger.log(self._trt.Logger.ERROR, f"setTensorAddress: {name} is not an I/O tensor")
            return False
        self._addresses[name] = int(memory)
        return True

    def get_tensor_address(self, name: str) -> int:
        return self._addresses.get(name, 0)

    def execute_async_v3(self, stream_handle: int) -> bool:
        from fakes.fake_pycuda import driver

        e = self._engine
        missing = [n for n in e._order if n not in self._addresses]
        if missing or self.infer_shapes():
            e._logger.log(self._trt.Logger.ERROR, f"IExecutionContext::enqueueV3: Error Code 3: API Usage Error (address "
                                                  f"or shape not set for {missing or self.infer_shapes()})")
            return False
        stream = driver.STATE.streams.get(int(stream_handle))
        if stream is None and int(stream_handle) != 0:
            e._logger.log(self._trt.Logger.ERROR, "enqueueV3: invalid stream handle")
            return False
        shapes = {n: self.get_tensor_shape(n) for n in e._order}
        addrs = dict(self._addresses)
        dtypes = {n: np.dtype(_NP_NAMES[e._tensors[n]["dtype"]]) for n in e._order}

        def run() -> None:
            feeds = {}
            for n in e._order:
                if e._tensors[n]["mode"] == "input":
                    nbytes = int(np.prod(shapes[n])) * dtypes[n].itemsize
                    feeds[n] = driver.device_view(addrs[n], nbytes).view(dtypes[n]).reshape(shapes[n]).copy()
            names = [n for n in e._order if e._tensors[n]["mode"] == "output"]
            for n, v in zip(names, e._session_().run(names, feeds)):
                if tuple(v.shape) != shapes[n]:
                    raise RuntimeError(f"fake engine: {n} computed {v.shape}, context says {shapes[n]}")
                driver.device_view(addrs[n], v.nbytes)[:] = np.ascontiguousarray(v.astype(dtypes[n])).reshape(-1).view(np.uint8)
            self._executions += 1

        if stream is None:
            run()
        else:
            stream.enqueue(run)
        return True


_IMPLS = {"Logger": _Logger, "Builder": _Builder, "IBuilderConfig": _IBuilderConfig, "INetworkDefinition": _INetworkDefinition,
          "OnnxParser": _OnnxParser, "IOptimizationProfile": _IOptimizationProfile, "ITimingCache": _ITimingCache,
          "IHostMemory": _IHostMemory, "Runtime": _Runtime, "ICudaEngine": _ICudaEngine, "IExecutionContext": _IExecutionContext}


def public_names(impl: type) -> set[str]:
    """What an implementation class offers (methods and properties, not underscore names)."""
    return {n for c in impl.__mro__ if c.__module__ == __name__ for n in vars(c) if not n.startswith("_")}


# ---------------------------------------------------------------------------------------------


def build_plan(onnx_path: str | Path, min_batch: int = 1, opt_batch: int = 1, max_batch: int = 4,
               version: str = DEFAULT_VERSION, version_compatible: bool = False,
               hardware_compatibility: str = "NONE", device: tuple[str, tuple[int, int]] | None = None) -> bytes:
    """A fake serialized engine for a novum ONNX file (dynamic batch profile on ``images``).

    A version-compatible plan embeds the lean runtime: like TensorRT, deserialising it needs
    ``runtime.engine_host_code_allowed = True``."""
    import onnxruntime as ort

    data = Path(onnx_path).read_bytes()
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    H, W, C = (int(d) for d in inp.shape[1:])
    outs = sess.run(None, {inp.name: np.zeros((1, H, W, C), np.uint8)})   # static output dims, as a builder resolves
    names = {np.dtype(v): k for k, v in _NP_NAMES.items()}
    tensors = [{"name": inp.name, "mode": "input", "dtype": "UINT8", "shape": [-1, H, W, C]}]
    tensors += [{"name": o.name, "mode": "output", "dtype": names[v.dtype], "shape": [-1, *v.shape[1:]]}
                for o, v in zip(sess.get_outputs(), outs)]
    name, cc = device or _device()
    body = {"version": version, "device": [name, list(cc)], "tensors": tensors,
            "profile": {inp.name: [[min_batch, H, W, C], [opt_batch, H, W, C], [max_batch, H, W, C]]},
            "onnx": base64.b64encode(data).decode(), "version_compatible": bool(version_compatible),
            "hardware_compatibility": hardware_compatibility}
    return MAGIC + json.dumps(body).encode()


def nptype_of(trt: ModuleType):
    def nptype(trt_type: Any) -> type:
        """TensorRT DataType -> numpy type (TypeError for types numpy cannot hold, as the real one)."""
        try:
            return _NP_NAMES[trt.DataType(int(trt_type)).name]
        except (KeyError, ValueError):
            raise TypeError(f"Could not resolve TensorRT datatype to an equivalent numpy datatype. {trt_type}") from None
    return nptype


@functools.lru_cache(maxsize=None)
def _template(version: str) -> dict[str, Any]:
    if version not in SURFACE:
        raise ValueError(f"no fake for TensorRT {version}; known: {', '.join(VERSIONS)}")
    return SURFACE[version]


def module(version: str = DEFAULT_VERSION) -> ModuleType:
    """A fresh fake ``tensorrt`` module with exactly ``version``'s surface (see the module docstring)."""
    surface = _template(version)
    mod = ModuleType("tensorrt", f"fake TensorRT {version} (tests/fakes)")
    mod.__version__ = version
    mod.__file__ = __file__
    for name, members in surface["enums"].items():
        setattr(mod, name, enum.IntEnum(name, dict(sorted(members.items(), key=lambda kv: kv[1])), module="tensorrt"))
    for attr, member in _MODULE_ATTRS.items():
        if attr in surface["module_attrs"]:
            setattr(mod, attr, getattr(mod.DataType, member))
    for name, impl in _IMPLS.items():
        allowed = set(surface["classes"][name])
        ns: dict[str, Any] = {"_trt": mod, "__module__": "tensorrt", "__qualname__": name}
        ns.update({n: _Absent(n, version) for n in public_names(impl) - allowed})
        cls = type(name, (impl,), ns)
        setattr(mod, name, cls)
    sev = enum.IntEnum("Severity", {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2, "INFO": 3, "VERBOSE": 4}, module="tensorrt")
    mod.Logger.Severity = sev
    for s in sev:
        setattr(mod.Logger, s.name, s)
    mod.nptype = nptype_of(mod)
    return mod


def current() -> ModuleType:
    """The fake module installed as ``tensorrt`` (tests that need the module they installed)."""
    return sys.modules["tensorrt"]
