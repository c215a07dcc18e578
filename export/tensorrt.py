"""TensorRT engine builder, written to the API that TensorRT 10.x (JetPack 6: 10.3) and 11.x share.

Strongly typed network (precision comes from the ONNX file: fp32, fp16 casts, or Q/DQ), tensors
addressed by name, one optimisation profile over the batch range, a persistent timing cache,
``strict_fp32`` clears TF32, optional version-compatible / hardware-compatible plans. No weak
typing flags (``BuilderFlag.FP16``/``INT8`` are gone in 11.0). The plan is written with a JSON
sidecar (:mod:`novum.contracts.sidecar`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from novum.contracts.cache import cache_dir
from novum.contracts.int8 import TENSORRT, require_target
from novum.contracts.onnx_file import INPUT_NAME, onnx_sha256, read_metadata
from novum.contracts.sidecar import write_sidecar
from novum.errors import InputError, NovumError
from novum.io import atomic_path, atomic_write_bytes

HW_LEVELS = {"ampere_plus": "AMPERE_PLUS", "same_compute_capability": "SAME_COMPUTE_CAPABILITY"}


class EngineBuildError(NovumError):
    """TensorRT could not parse the ONNX file or build the engine."""


@dataclass
class EngineOptions:
    max_batch: int = 8
    opt_batch: int | None = None          # default: max_batch
    min_batch: int = 1
    workspace_gib: float = 4.0
    strict_fp32: bool = False             # clear TF32: a reference fp32 engine
    version_compatible: bool = False
    hardware_compatible: str | None = None  # "ampere_plus" | "same_compute_capability"
    optimization_level: int = 3
    timing_cache: Path | None = None      # default: default_timing_cache(...)


def import_tensorrt() -> ModuleType | None:
    try:
        import tensorrt
    except ImportError:
        return None
    return tensorrt


def gpu_info() -> tuple[str, tuple[int, int]] | None:
    """(name, compute capability) of CUDA device 0, or None without a usable GPU."""
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        return torch.cuda.get_device_name(0), tuple(torch.cuda.get_device_capability(0))
    except Exception:
        return None


def engine_unavailable_reason() -> str | None:
    """Why no engine can be built here (None when TensorRT and a GPU are present)."""
    if import_tensorrt() is None:
        return "TensorRT is not installed (pip install '.[trt]' on a machine with an NVIDIA GPU)"
    if gpu_info() is None:
        return "no CUDA GPU is visible"
    return None


def default_timing_cache(trt_version: str, compute_capability: tuple[int, int]) -> Path:
    """``<cache>/timing-trt<version>-sm<cc>.cache`` (:func:`novum.contracts.cache.cache_dir`): reused by every later build."""
    return cache_dir() / f"timing-trt{trt_version}-sm{''.join(map(str, compute_capability))}.cache"


def build_engine(onnx_path: str | Path, engine_path: str | Path, *, options: EngineOptions | None = None,
                 gpu: tuple[str, tuple[int, int]] | None = None, rebuild_command: str | None = None,
                 trt: ModuleType | None = None, log: Callable[[str], None] = print) -> Path:
    """Build ``engine_path`` (+ ``.json`` sidecar) from a novum ONNX file; returns the engine path.

    ``trt`` and ``gpu`` default to the installed ``tensorrt`` and CUDA device 0 (tests pass fakes).
    An int8 file must be the TensorRT int8 graph (``int8_target`` tensorrt, ``novum.contracts.int8``).
    """
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    meta = read_metadata(onnx_path)
    try:
        require_target(meta, TENSORRT, onnx_path, "TensorRT")
    except InputError as e:
        raise EngineBuildError(str(e)) from None
    trt = trt or import_tensorrt()
    if trt is None:
        raise EngineBuildError("TensorRT is not installed; pip install '.[trt]' on a machine with an NVIDIA GPU")
    gpu = gpu or gpu_info()
    if gpu is None:
        raise EngineBuildError("no CUDA GPU is visible; build the engine on the machine that will run it")
    o = options or EngineOptions()
    H, W = meta["input_size"]
    lo, opt, hi = o.min_batch, o.opt_batch or o.max_batch, o.max_batch
    if not 1 <= lo <= opt <= hi:
        raise EngineBuildError(f"invalid batch profile min={lo} opt={opt} max={hi}; need 1 <= min <= opt <= max")

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # reads external .data next to the file too
        errs = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        first = " ".join((errs[0] if errs else "unknown error").split())[:200]
        raise EngineBuildError(f"{onnx_path.name}: TensorRT {trt.__version__} cannot parse it ({first})")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(o.workspace_gib * (1 << 30)))
    config.builder_optimization_level = int(o.optimization_level)
    if o.strict_fp32:
        config.clear_flag(trt.BuilderFlag.TF32)
    if o.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if o.hardware_compatible:
        if o.hardware_compatible not in HW_LEVELS:
            raise EngineBuildError(f"unknown hardware compatibility '{o.hardware_compatible}'; use {sorted(HW_LEVELS)}")
        config.hardware_compatibility_level = getattr(trt.HardwareCompatibilityLevel, HW_LEVELS[o.hardware_compatible])
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, (lo, H, W, 3), (opt, H, W, 3), (hi, H, W, 3))
    config.add_optimization_profile(profile)

    cache_path = Path(o.timing_cache) if o.timing_cache else default_timing_cache(trt.__version__, gpu[1])
    prev = cache_path.read_bytes() if cache_path.is_file() else b""
    cache = config.create_timing_cache(prev)
    config.set_timing_cache(cache, ignore_mismatch=False)

    log(f"building TensorRT {trt.__version__} engine for {gpu[0]} (batch {lo}..{hi}, {meta['precision']}"
        f"{', strict fp32' if o.strict_fp32 else ''}); this can take minutes"
        + (" (timing cache warm)" if prev else ""))
    t0 = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineBuildError(f"{onnx_path.name}: TensorRT {trt.__version__} failed to build an engine (see its log "
                               f"above); try a larger --workspace or a smaller --batch")
    seconds = time.perf_counter() - t0
    with atomic_path(engine_path) as tmp:
        with open(tmp, "wb") as f:
            f.write(memoryview(plan))
        info = sidecar_info(meta, trt.__version__, gpu, o, onnx_sha256(onnx_path), onnx_path.name, rebuild_command)
        write_sidecar(engine_path, info)  # sidecar first: a visible engine always has one
    try:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(cache_path, bytes(memoryview(cache.serialize())))
    except OSError as e:  # a read-only cache folder must not fail the build, only slow the next one
        log(f"warning: cannot save the timing cache to {cache_path} ({e.strerror}); the next build will be slow")
    log(f"engine {engine_path.name} built in {seconds:.1f}s")
    return engine_path


def sidecar_info(meta: dict[str, Any], trt_version: str, gpu: tuple[str, tuple[int, int]], o: EngineOptions,
                 onnx_sha: str, onnx_name: str, rebuild_command: str | None) -> dict[str, Any]:
    H, W = meta["input_size"]
    return {
        "tensorrt_version": trt_version,
        "gpu_name": gpu[0],
        "compute_capability": list(gpu[1]),
        "precision": meta.get("precision", "fp32"),
        "strict_fp32": bool(o.strict_fp32),
        "version_compatible": bool(o.version_compatible),
        "hardware_compatibility": o.hardware_compatible or "none",
        "profile": {"images": [[o.min_batch, H, W, 3], [o.opt_batch or o.max_batch, H, W, 3], [o.max_batch, H, W, 3]]},
        "onnx": onnx_name,
        "onnx_sha256": onnx_sha,
        "source_sha256": meta.get("source_sha256", ""),
        "classes": list(meta.get("classes", [])),
        "input_size": [H, W],
        "input_format": meta.get("input_format"),
        "outputs": meta.get("outputs"),
        "config": meta.get("novum_config"),
        "novum_version": meta.get("novum_version"),
        "rebuild_command": rebuild_command or "novum-export --checkpoint <model> --engine",
    }
