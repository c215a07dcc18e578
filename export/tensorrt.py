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
from novum.gpu import cuda_driver, import_tensorrt
from novum.io import atomic_path, atomic_write_bytes

# --hardware-compatible choice -> the first TensorRT with that HardwareCompatibilityLevel member
HW_LEVELS = {"ampere_plus": "8.6", "same_compute_capability": "10.9"}


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


def engine_unavailable_reason() -> str | None:
    """Why no engine can be built here (None when TensorRT and a GPU are present). The GPU is asked
    from the CUDA driver (:mod:`novum.gpu`), not torch: no torch, or a CPU-only one, is fine."""
    trt, why = import_tensorrt()
    return why if trt is None else cuda_driver().error


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
    if trt is None:
        trt, why = import_tensorrt()
        if trt is None:
            raise EngineBuildError(f"no engine can be built here: {why}")
    if gpu is None:
        driver = cuda_driver()
        if not driver.gpus:
            raise EngineBuildError(f"no engine can be built here: {driver.error}; build it on the machine that will run it")
        gpu = (driver.gpus[0].name, driver.gpus[0].compute_capability)
    o = options or EngineOptions()
    hw_level = _hardware_level(trt, o.hardware_compatible)
    H, W = meta["input_size"]
    lo, opt, hi = o.min_batch, o.opt_batch or o.max_batch, o.max_batch
    if not 1 <= lo <= opt <= hi:
        raise EngineBuildError(f"invalid batch profile min={lo} opt={opt} max={hi}; need 1 <= min <= opt <= max")

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # strongly typed: an opt-in flag on 10.x; on 11.x always on (the flag is deprecated, ignored, may go)
    typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    network = builder.create_network(0 if typed is None else 1 << int(typed))
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
    if hw_level is not None:
        config.hardware_compatibility_level = hw_level
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, (lo, H, W, 3), (opt, H, W, 3), (hi, H, W, 3))
    config.add_optimization_profile(profile)

    cache_path = Path(o.timing_cache) if o.timing_cache else default_timing_cache(trt.__version__, gpu[1])
    cache, warm = _timing_cache(config, cache_path, log)

    log(f"building TensorRT {trt.__version__} engine for {gpu[0]} (batch {lo}..{hi}, {meta['precision']}"
        f"{', strict fp32' if o.strict_fp32 else ''}); this can take minutes"
        + (" (timing cache warm)" if warm else ""))
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
    if cache is not None:
        try:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(cache_path, bytes(memoryview(cache.serialize())))
        except OSError as e:  # a read-only cache folder must not fail the build, only slow the next one
            log(f"warning: cannot save the timing cache to {cache_path} ({e.strerror}); the next build will be slow")
    log(f"engine {engine_path.name} built in {seconds:.1f}s")
    return engine_path


def _hardware_level(trt: ModuleType, choice: str | None) -> Any:
    """The HardwareCompatibilityLevel member for ``--hardware-compatible`` (None for none); a
    one-line error when this TensorRT predates it (SAME_COMPUTE_CAPABILITY arrived in 10.9)."""
    if not choice:
        return None
    if choice not in HW_LEVELS:
        raise EngineBuildError(f"unknown hardware compatibility '{choice}'; use one of {', '.join(sorted(HW_LEVELS))}")
    levels = trt.HardwareCompatibilityLevel
    member = {"ampere_plus": getattr(levels, "AMPERE_PLUS", None),
              "same_compute_capability": getattr(levels, "SAME_COMPUTE_CAPABILITY", None)}[choice]
    if member is None:
        others = [c for c in HW_LEVELS if c != choice]
        raise EngineBuildError(f"--hardware-compatible {choice} needs TensorRT {HW_LEVELS[choice]} or newer; this machine "
                               f"has TensorRT {trt.__version__} (JetPack 6 ships 10.3); use {' or '.join(others)} or "
                               f"leave the option out")
    return member


def _timing_cache(config: Any, path: Path, log: Callable[[str], None]) -> tuple[Any, bool]:
    """(cache attached to ``config`` or None, whether it came warm from ``path``). A cache TensorRT
    refuses (another GPU or TensorRT version, or damaged) is reported and replaced by a fresh one,
    which the build then saves over it."""
    prev = path.read_bytes() if path.is_file() else b""
    if prev:
        try:
            cache = config.create_timing_cache(prev)
        except Exception:  # noqa: BLE001 - a damaged file: TensorRT may raise instead of refusing
            cache = None
        if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
            return cache, True
        log(f"warning: TensorRT refused the timing cache {path} (made on another GPU or TensorRT version, or damaged); "
            f"building with a fresh one, which replaces it")
    cache = config.create_timing_cache(b"")
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        log("warning: TensorRT refused a new timing cache; building without one")
        return None, False
    return cache, False


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
