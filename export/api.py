"""``export(...)``: checkpoint -> ONNX (fp32, fp16, int8) -> TensorRT engines -> verification.

The one library function behind ``novum-export``. Every file is written atomically; a failure
leaves the files of the steps that finished (each complete) and nothing half-written.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import shlex
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from novum.errors import InputError, NovumError
from novum.export.onnx import DEFAULT_MAX_BATCH, OPSET


@dataclass
class ExportResult:
    onnx: dict[str, Path] = field(default_factory=dict)      # precision -> .onnx
    engines: dict[str, Path] = field(default_factory=dict)   # precision -> .engine
    engine_skipped: str | None = None                         # why no engine was built
    verify: Any = None                                        # VerifyReport with --verify
    timings: dict[str, float] = field(default_factory=dict)   # step -> seconds
    source: Path | None = None
    source_sha256: str = ""

    @property
    def ok(self) -> bool:
        return self.verify is None or self.verify.ok


def export(checkpoint: str | Path | None = None, output_dir: str | Path = "exports", *, fp16: bool = False,
           int8: bool = False, batch: int = DEFAULT_MAX_BATCH, imgsz: tuple[int, int] | None = None,
           engine: bool | None = None, workspace: float = 4.0, verify: bool = False, features: bool = False,
           strict_fp32: bool = False, version_compatible: bool = False, hardware_compatible: str | None = None,
           timing_cache: str | Path | None = None, name: str | None = None, opset: int = OPSET,
           fp16_head: str = "fp16", verify_frames: int = 8, verify_images: str | Path | None = None,
           mesh_dir: str | Path | None = None, log: Callable[[str], None] = print,
           int8_options: dict[str, Any] | None = None) -> ExportResult:
    """Export a checkpoint (native ``.safetensors`` or upstream ``.pth``; default: the demo model).

    ``engine=None`` builds TensorRT engines when TensorRT and a GPU are present, else says why not.
    ``int8_options`` go to ``novum.calibration.quantize.quantize_int8`` (calib, method, samples, ...).
    """
    from novum.bundled import demo_model_path
    from novum.io import sha256_file

    res = ExportResult()
    if batch < 1:
        raise InputError(f"--batch must be >= 1, got {batch}")
    out = Path(output_dir)
    _check_writable(out)
    int8_fn = _int8_quantizer() if int8 else None
    src = Path(checkpoint) if checkpoint is not None else demo_model_path()
    res.source = src

    t = _step(res, "load")
    model = _load(src, mesh_dir)
    if imgsz is not None:
        model.config = resized_config(model.config, imgsz)
    res.source_sha256 = sha256_file(src)
    cfg = model.config
    log(f"loaded {src.name} ({_kind(src)}, {cfg.backbone.arch}, {cfg.num_classes} classes, input "
        f"{cfg.input_size[0]}x{cfg.input_size[1]}) in {_done(res, 'load', t):.1f}s")
    stem = name or src.stem

    from novum.export.onnx import export_onnx

    t = _step(res, "onnx_fp32")
    res.onnx["fp32"] = export_onnx(model, out / f"{stem}.onnx", features=features, max_batch=batch, opset=opset,
                                   source_sha256=res.source_sha256)
    log(f"wrote {res.onnx['fp32']} (fp32, opset {opset}) in {_done(res, 'onnx_fp32', t):.1f}s")
    if fp16:
        from novum.export.fp16 import convert_fp16

        t = _step(res, "onnx_fp16")
        res.onnx["fp16"] = convert_fp16(res.onnx["fp32"], out / f"{stem}_fp16.onnx", head=fp16_head)
        log(f"wrote {res.onnx['fp16']} (fp16, head {fp16_head}) in {_done(res, 'onnx_fp16', t):.1f}s")
    if int8_fn is not None:
        t = _step(res, "onnx_int8")
        res.onnx["int8"] = Path(int8_fn(res.onnx["fp32"], out / f"{stem}_int8.onnx", **{"log": log, **(int8_options or {})}))
        log(f"wrote {res.onnx['int8']} (int8) in {_done(res, 'onnx_int8', t):.1f}s")

    _engines(res, out, stem, engine, batch, workspace, strict_fp32, version_compatible, hardware_compatible,
             timing_cache, _rebuild_command(src, out, fp16, int8, batch, cfg.input_size, features, name), log)

    if verify:
        from novum.export.verify import verify as run_verify

        t = _step(res, "verify")
        frames, source = None, None
        if verify_images:
            from novum.export.frames import load_frames

            frames = load_frames(verify_images, verify_frames, *cfg.input_size)
            source = f"{len(frames)} images from {verify_images}"
        targets = list(res.onnx.values()) + list(res.engines.values())
        res.verify = run_verify(model, targets, frames=frames, n_frames=verify_frames, frame_source=source, log=log)
        log(f"verification on {res.verify.frame_source} ({_done(res, 'verify', t):.1f}s):")
        log(res.verify.table())
        log(res.verify.reasons())
    return res


def resized_config(config, imgsz: tuple[int, int]):
    """The config at another input size (focal scaled with the height, as the framing is)."""
    h, w = (int(v) for v in imgsz)
    if h <= 0 or w <= 0 or h % config.stride or w % config.stride:
        raise InputError(f"--imgsz {h} {w}: height and width must be positive multiples of {config.stride}")
    return dataclasses.replace(config, input_size=(h, w), focal=config.focal * h / config.input_size[0])


def _engines(res: ExportResult, out: Path, stem: str, engine: bool | None, batch: int, workspace: float,
             strict_fp32: bool, version_compatible: bool, hardware_compatible: str | None, timing_cache,
             rebuild: str, log: Callable[[str], None]) -> None:
    from novum.export.tensorrt import EngineOptions, build_engine, engine_unavailable_reason

    if engine is False:
        res.engine_skipped = "--no-engine"
        return
    why = engine_unavailable_reason()
    if why:
        res.engine_skipped = why
        log(f"no TensorRT engine built: {why}; the ONNX files run with ONNX Runtime")
        return
    opts = EngineOptions(max_batch=batch, workspace_gib=workspace, strict_fp32=strict_fp32,
                         version_compatible=version_compatible, hardware_compatible=hardware_compatible,
                         timing_cache=Path(timing_cache) if timing_cache else None)
    wanted = [p for p in ("fp16", "int8") if p in res.onnx] or ["fp32"]
    for prec in wanted:
        t = _step(res, f"engine_{prec}")
        suffix = "" if prec == "fp32" else f"_{prec}"
        res.engines[prec] = build_engine(res.onnx[prec], out / f"{stem}{suffix}.engine", options=opts,
                                         rebuild_command=rebuild, log=log)
        _done(res, f"engine_{prec}", t)


def _load(src: Path, mesh_dir):
    from novum.checkpoint import import_upstream, load_model

    if mesh_dir is not None and src.suffix != ".safetensors":
        return import_upstream(src, mesh_dir=mesh_dir)
    return load_model(src)


def _kind(src: Path) -> str:
    from novum.checkpoint import checkpoint_kind

    return "novum checkpoint" if checkpoint_kind(src) == "native" else "upstream NOVUM checkpoint"


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise InputError(f"{out}: output folder is not writable ({e.strerror}); pass a writable --output-dir") from None


def _int8_quantizer() -> Callable[..., Path]:
    if importlib.util.find_spec("novum.calibration.quantize") is None:
        raise NovumError("INT8 is not available in this build (novum.calibration.quantize is missing); export --fp16 instead")
    from novum.calibration import quantize

    fn = getattr(quantize, "quantize_int8", None)
    if fn is None:
        raise NovumError("INT8 is not available in this build (no quantize_int8 in novum.calibration.quantize)")
    return fn


def _rebuild_command(src: Path, out: Path, fp16: bool, int8: bool, batch: int, size, features: bool,
                     name: str | None) -> str:
    args = ["novum-export", "--checkpoint", str(src), "--output-dir", str(out), "--batch", str(batch),
            "--imgsz", str(size[0]), str(size[1])]
    args += ["--fp16"] if fp16 else []
    args += ["--int8"] if int8 else []
    args += ["--features"] if features else []
    args += ["--name", name] if name else []
    return shlex.join(args + ["--engine"]) + " on this machine"


def _step(res: ExportResult, name: str) -> float:
    return time.perf_counter()


def _done(res: ExportResult, name: str, t0: float) -> float:
    res.timings[name] = time.perf_counter() - t0
    return res.timings[name]
