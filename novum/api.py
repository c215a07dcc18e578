"""Orchestration: the one module that chains the layers (see docs/architecture.md, "Layers").

- :func:`export` (``novum-export``): checkpoint -> ONNX fp32 -> fp16 / int8 -> TensorRT engines
  -> verification against torch;
- :func:`run` (``novum-run``): a checkpoint is exported to ONNX once and cached
  (:func:`cached_onnx`), then the runtime runs the model file (:func:`novum.runtime.run.run`);
- :func:`bench` (``novum-bench``): every precision exported, engines built where possible, then
  measured by :func:`novum.runtime.bench.measure`.

Below this module the layers only depend downwards: the runtime knows model files, never the
exporter; export and calibration never import each other. Checkpoints and the ONNX exporter need
torch (the ``[torch]`` extra), imported when a checkpoint is handled; running an exported model
needs none. Every file is
written atomically; a failed export leaves the files of the steps that finished (each complete)
and nothing half-written, and removes an output folder it created that stays empty.

Input size: a model is exported at the size it was trained at. ``imgsz`` may only differ with
``force_imgsz`` (then a warning, and the size the model was trained at is recorded next to the
exported one: ``trained_input_size`` in the metadata): at another size the object scale the model
sees changes, and torch and ONNX agreeing with each other says nothing about its accuracy.
"""
from __future__ import annotations

import dataclasses
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from novum.bundled import DEMO_CLIP, demo_clip_path, demo_model_path
from novum.calibration.quantize import quantize_targets
from novum.contracts.cache import cache_dir
from novum.contracts.framing import Framer
from novum.contracts.int8 import ONNXRUNTIME, TENSORRT
from novum.contracts.onnx_file import DEFAULT_EXPORTER, DEFAULT_MAX_BATCH, OPSET
from novum.errors import InputError, NovumError
from novum.export.fp16 import convert_fp16
from novum.export.frames import load_frames, render_frames
from novum.export.tensorrt import EngineOptions, build_engine, engine_unavailable_reason
from novum.export.triton import write_export_repository
from novum.export.verify import verify as run_verify
from novum.extras import require
from novum.io import sha256_file
from novum.runtime import bench as measuring
from novum.runtime import run as running
from novum.runtime.backends import backend_kind
from novum.runtime.gstreamer import CaptureOptions
from novum.runtime.pipeline import RunSummary
from novum.runtime.speed import compare_speed, speed_report

NATIVE = {".safetensors", ".pth", ".pt"}     # checkpoints: exported to ONNX (cached) before novum-run runs them


@dataclass
class ExportResult:
    onnx: dict[str, Path] = field(default_factory=dict)      # precision -> .onnx
    engines: dict[str, Path] = field(default_factory=dict)   # precision -> .engine
    engine_skipped: str | None = None                         # why no engine was built
    triton: dict[str, Path] = field(default_factory=dict)     # Triton model name -> folder (--triton)
    verify: Any = None                                        # VerifyReport with --verify
    int8_speed: Any = None                                    # SpeedComparison of the int8 graph on this CPU
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
           timing_cache: str | Path | None = None, name: str | None = None, opset: int | None = None,
           fp16_head: str = "fp16", verify_frames: int = 8, verify_images: str | Path | None = None,
           mesh_dir: str | Path | None = None, log: Callable[[str], None] = print,
           int8_options: dict[str, Any] | None = None, triton: str | Path | None = None,
           triton_instances: int = 1, force_imgsz: bool = False,
           exporter: str = DEFAULT_EXPORTER) -> ExportResult:
    """Export a checkpoint (native ``.safetensors`` or upstream ``.pth``; default: the demo model).

    ``engine=None`` builds TensorRT engines when TensorRT and a GPU are present, else says why not.
    ``int8_options`` go to ``novum.calibration.quantize.quantize_targets`` (targets, calib, method, samples,
    ...; ``speed_rounds``: rounds of the int8 vs fp32 timing on this CPU, 0 = none). ``int8`` writes one
    graph per target (``<stem>_int8.onnx`` for ONNX Runtime, ``<stem>_int8_trt.onnx`` for TensorRT,
    ``novum.contracts.int8``); the int8 engine is built from the TensorRT one.
    ``exporter``: ``dynamo`` (default) or ``torchscript``; ``opset`` defaults to the exporter's.
    ``triton``: also write a Triton model repository there (:mod:`novum.export.triton`).
    ``imgsz`` other than the trained size needs ``force_imgsz`` (see the module docstring).
    """
    require("torch", "exporting a checkpoint")
    from novum.export.onnx import resolve_opset   # torch

    resolve_opset(exporter, opset)   # a bad --exporter / --opset fails before the model loads
    if batch < 1:
        raise InputError(f"--batch must be >= 1, got {batch}")
    if triton_instances < 1:
        raise InputError(f"--triton-instances must be >= 1, got {triton_instances}")
    out = Path(output_dir)
    created = _missing_dirs(out) + (_missing_dirs(Path(triton)) if triton is not None else [])
    try:
        return _export(checkpoint, out, fp16=fp16, int8=int8, batch=batch, imgsz=imgsz, engine=engine,
                       workspace=workspace, verify=verify, features=features, strict_fp32=strict_fp32,
                       version_compatible=version_compatible, hardware_compatible=hardware_compatible,
                       timing_cache=timing_cache, name=name, opset=opset, fp16_head=fp16_head,
                       verify_frames=verify_frames, verify_images=verify_images, mesh_dir=mesh_dir, log=log,
                       int8_options=int8_options, triton=triton, triton_instances=triton_instances,
                       force_imgsz=force_imgsz, exporter=exporter)
    except BaseException:
        for d in created:            # deepest first: only folders this export made and left empty
            try:
                d.rmdir()
            except OSError:
                pass
        raise


def _export(checkpoint, out: Path, *, fp16, int8, batch, imgsz, engine, workspace, verify, features, strict_fp32,
            version_compatible, hardware_compatible, timing_cache, name, opset, fp16_head, verify_frames,
            verify_images, mesh_dir, log, int8_options, triton, triton_instances, force_imgsz,
            exporter) -> ExportResult:
    from novum.export.onnx import export_onnx, resolve_opset   # torch

    res = ExportResult()
    _check_writable(out)
    if triton is not None:
        _check_writable(Path(triton))
    src = Path(checkpoint) if checkpoint is not None else demo_model_path()
    res.source = src

    t = _step(res, "load")
    model = _load(src, mesh_dir)
    if imgsz is not None:
        model.config = resized_config(model.config, imgsz, force=force_imgsz, log=log)
    res.source_sha256 = sha256_file(src)
    cfg = model.config
    log(f"loaded {src.name} ({_kind(src)}, {cfg.backbone.arch}, {cfg.num_classes} classes, input "
        f"{cfg.input_size[0]}x{cfg.input_size[1]}) in {_done(res, 'load', t):.1f}s")
    stem = name or src.stem

    t = _step(res, "onnx_fp32")
    res.onnx["fp32"] = export_onnx(model, out / f"{stem}.onnx", features=features, max_batch=batch, opset=opset,
                                   source_sha256=res.source_sha256, exporter=exporter)
    log(f"wrote {res.onnx['fp32']} (fp32, {exporter} exporter, opset {resolve_opset(exporter, opset)}) "
        f"in {_done(res, 'onnx_fp32', t):.1f}s")
    if fp16:
        t = _step(res, "onnx_fp16")
        res.onnx["fp16"] = convert_fp16(res.onnx["fp32"], out / f"{stem}_fp16.onnx", head=fp16_head)
        log(f"wrote {res.onnx['fp16']} (fp16, head {fp16_head}) in {_done(res, 'onnx_fp16', t):.1f}s")
    if int8:
        t = _step(res, "onnx_int8")
        opts = dict(int8_options or {})
        speed_rounds = int(opts.pop("speed_rounds", 5))
        made = quantize_targets(res.onnx["fp32"], out / f"{stem}_int8.onnx", **{"log": log, **opts})
        for target, r in made.items():
            res.onnx[INT8_KEY[target]] = r.path
        log(f"wrote {', '.join(f'{r.path} (int8, {t8})' for t8, r in made.items())} in {_done(res, 'onnx_int8', t):.1f}s")
        if speed_rounds > 0:
            int8_speed(res, speed_rounds, cfg.input_size, log)

    rebuild = rebuild_command({
        "checkpoint": src, "output_dir": out, "name": name, "fp16": fp16, "int8": int8, "batch": batch, "imgsz": imgsz,
        "workspace": workspace, "strict_fp32": strict_fp32, "version_compatible": version_compatible,
        "hardware_compatible": hardware_compatible, "features": features, "opset": opset,
        "exporter": exporter if exporter != DEFAULT_EXPORTER else None, "mesh_dir": mesh_dir,
        "force_imgsz": force_imgsz and tuple(cfg.input_size) != tuple(cfg.trained_size),
        **({"fp16_head": fp16_head} if fp16 else {}), **((int8_options or {}) if int8 else {}),
        "int8_target": _int8_target_choice((int8_options or {}).get("targets")) if int8 else None})
    _engines(res, out, stem, engine, batch, workspace, strict_fp32, version_compatible, hardware_compatible,
             timing_cache, rebuild, log)
    if triton is not None:
        t = _step(res, "triton")
        res.triton = write_export_repository(triton, res.onnx, res.engines, max_batch=batch,
                                             instances=triton_instances, log=log)
        _done(res, "triton", t)

    if verify:
        t = _step(res, "verify")
        frames, source = None, None
        if verify_images:
            frames = load_frames(verify_images, verify_frames, *cfg.input_size)
            source = f"{len(frames)} images from {verify_images}"
        targets = list(res.onnx.values()) + list(res.engines.values())
        # the engines were built by this run, from its own ONNX files: their host code (version-compatible
        # plans) is trusted here
        res.verify = run_verify(model, targets, frames=frames, n_frames=verify_frames, frame_source=source,
                                allow_engine_host_code=True, log=log)
        log(f"verification on {res.verify.frame_source} ({_done(res, 'verify', t):.1f}s):")
        log(res.verify.table())
        log(res.verify.reasons())
        for w in res.verify.warnings:
            log(f"warning: {w}")
    return res


INT8_KEY = {ONNXRUNTIME: "int8", TENSORRT: "int8_trt"}   # ExportResult.onnx keys of the int8 graphs


def int8_speed(res: ExportResult, rounds: int, input_size: tuple[int, int], log: Callable[[str], None]) -> None:
    """Time the ONNX Runtime int8 graph against fp32 on this CPU (side by side) and say whether it pays."""
    path = res.onnx.get("int8")
    if path is None:
        log(f"int8 speed: not measured (no {ONNXRUNTIME} int8 graph; the TensorRT graph runs its convolutions in fp32 "
            f"on ONNX Runtime)")
        return
    t = _step(res, "int8_speed")
    res.int8_speed = compare_speed(res.onnx["fp32"], path, render_frames(1, *input_size, seed=0), rounds=rounds)
    for line in speed_report(res.int8_speed):
        log(line)
    _done(res, "int8_speed", t)


def resized_config(config, imgsz: tuple[int, int], force: bool = False, log: Callable[[str], None] | None = None):
    """The config at another input size (focal scaled with the height, as the framing is).

    Sizes the backbone cannot take are refused; a size other than the trained one needs ``force``
    (then a warning), and the trained size is kept in ``trained_input_size``."""
    from novum.config import MIN_INPUT_SIDE

    h, w = (int(v) for v in imgsz)
    if h < MIN_INPUT_SIDE or w < MIN_INPUT_SIDE or h % config.stride or w % config.stride:
        raise InputError(f"--imgsz {h} {w}: height and width must be multiples of {config.stride} and at least "
                         f"{MIN_INPUT_SIDE} (the backbone downsamples by 32)")
    trained = tuple(config.trained_size)
    focal = config.focal * h / config.input_size[0]
    if (h, w) == trained:
        return dataclasses.replace(config, input_size=(h, w), focal=focal, trained_input_size=None)
    th, tw = trained
    if not force:
        raise InputError(f"--imgsz {h} {w}: the model was trained at {th}x{tw}; at another size it sees objects at "
                         f"another scale and its accuracy is unknown; drop --imgsz, or add --force-imgsz to export anyway")
    if log is not None:
        log(f"warning: exporting at {h}x{w}, but the model was trained at {th}x{tw} (--force-imgsz): objects appear "
            f"at {h / th:.2f}x the trained scale unless the input is framed for it; accuracy at this size is not verified")
    return dataclasses.replace(config, input_size=(h, w), focal=focal, trained_input_size=trained)


def _engines(res: ExportResult, out: Path, stem: str, engine: bool | None, batch: int, workspace: float,
             strict_fp32: bool, version_compatible: bool, hardware_compatible: str | None, timing_cache,
             rebuild: str, log: Callable[[str], None]) -> None:
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
    # the int8 engine is always built from the TensorRT int8 graph (int8_trt), named <stem>_int8.engine
    wanted = [p for p in ("fp16", "int8_trt") if p in res.onnx] or ["fp32"]
    if "int8" in res.onnx and "int8_trt" not in res.onnx:
        log(f"no int8 engine: {res.onnx['int8'].name} is the ONNX Runtime int8 graph; add --int8-target tensorrt")
    for prec in wanted:
        t = _step(res, f"engine_{prec}")
        suffix = "" if prec == "fp32" else f"_{prec.split('_')[0]}"
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


def _missing_dirs(out: Path) -> list[Path]:
    """The folders of ``out`` (itself and parents) that do not exist yet, deepest first."""
    missing = []
    p = out.absolute()
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    return missing


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise InputError(f"{out}: output folder is not writable ({e.strerror}); pass a writable --output-dir") from None


# export() parameter (or int8 option) -> its novum-export option. The sidecar's "rebuild with"
# command repeats every one that shapes the ONNX files or the engine, so following it rebuilds the
# same engine; REBUILD_IGNORES are the options that do not (tests hold the two lists to the parser).
REBUILD_FLAGS = {
    "checkpoint": "--checkpoint", "onnx": "--onnx", "output_dir": "--output-dir", "name": "--name", "fp16": "--fp16",
    "int8": "--int8", "calib": "--calib", "method": "--calib-method", "samples": "--calib-samples",
    "seed": "--calib-seed", "holdout": "--calib-holdout", "threshold": "--int8-threshold", "fallback": "--int8-fallback",
    "allow_degraded": "--allow-degraded", "batch": "--batch", "imgsz": "--imgsz", "workspace": "--workspace",
    "strict_fp32": "--strict-fp32", "version_compatible": "--version-compatible",
    "hardware_compatible": "--hardware-compatible", "features": "--features", "fp16_head": "--fp16-head",
    "opset": "--opset", "exporter": "--exporter", "mesh_dir": "--mesh-dir", "force_imgsz": "--force-imgsz",
    "int8_target": "--int8-target",
}
REBUILD_IGNORES = ("--engine", "--timing-cache", "--verify", "--verify-frames", "--verify-images", "--triton",
                   "--triton-instances", "--int8-speed-rounds")


def _int8_target_choice(targets) -> str | None:
    """novum-export's --int8-target value for quantize_targets' ``targets`` (None: the default)."""
    if not targets:
        return None
    t = tuple(dict.fromkeys(targets))
    return "both" if set(t) == {ONNXRUNTIME, TENSORRT} else t[0]


def rebuild_command(values: dict[str, Any]) -> str:
    """The novum-export command that rebuilds an engine from these export() values (in
    :data:`REBUILD_FLAGS` order; None and False are left out)."""
    args = ["novum-export"]
    for key, flag in REBUILD_FLAGS.items():
        v = values.get(key)
        if v is None or v is False:
            continue
        if v is True:
            args.append(flag)
        elif isinstance(v, (tuple, list)):
            args += [flag, *map(str, v)]
        else:
            args += [flag, str(v)]
    return shlex.join(args + ["--engine"]) + " on this machine"


def build_engines(onnx: str | Path, output_dir: str | Path = "exports", *, batch: int = DEFAULT_MAX_BATCH,
                  workspace: float = 4.0, strict_fp32: bool = False, version_compatible: bool = False,
                  hardware_compatible: str | None = None, timing_cache: str | Path | None = None,
                  name: str | None = None, log: Callable[[str], None] = print) -> ExportResult:
    """``novum-export --onnx``: a TensorRT engine from an existing novum ONNX file (made elsewhere,
    e.g. on a desktop), on the machine that will run it. Needs no torch: the precision, input size
    and classes come from the file's metadata."""
    from novum.contracts.onnx_file import read_metadata

    src = Path(onnx)
    if not src.is_file():
        raise InputError(f"{src}: ONNX file not found")
    if batch < 1:
        raise InputError(f"--batch must be >= 1, got {batch}")
    meta = read_metadata(src)
    res = ExportResult(source=src, source_sha256=sha256_file(src))
    res.onnx[meta.get("precision", "fp32")] = src
    why = engine_unavailable_reason()
    if why:
        raise NovumError(f"no TensorRT engine can be built here: {why}")
    out = Path(output_dir)
    _check_writable(out)
    rebuild = rebuild_command({"onnx": src, "output_dir": out, "name": name, "batch": batch, "workspace": workspace,
                               "strict_fp32": strict_fp32, "version_compatible": version_compatible,
                               "hardware_compatible": hardware_compatible})
    opts = EngineOptions(max_batch=batch, workspace_gib=workspace, strict_fp32=strict_fp32,
                         version_compatible=version_compatible, hardware_compatible=hardware_compatible,
                         timing_cache=Path(timing_cache) if timing_cache else None)
    prec = meta.get("precision", "fp32")
    t = _step(res, f"engine_{prec}")
    res.engines[prec] = build_engine(src, out / f"{name or src.stem}.engine", options=opts, rebuild_command=rebuild, log=log)
    _done(res, f"engine_{prec}", t)
    return res


def _step(res: ExportResult, name: str) -> float:
    return time.perf_counter()


def _done(res: ExportResult, name: str, t0: float) -> float:
    res.timings[name] = time.perf_counter() - t0
    return res.timings[name]


# ----------------------------------------------------------------------------------------------
# novum-run: which model file to run


def cached_onnx(checkpoint: Path, features: bool = False, quiet: bool = False) -> Path:
    """The ONNX export of ``checkpoint`` from the cache, exporting it on first use (needs torch once).

    ``<cache>/exports/<name>-<sha256 of the checkpoint, 12 hex>[-features].onnx`` in
    :func:`novum.contracts.cache.cache_dir`; a changed checkpoint gets a new file.
    """
    digest = sha256_file(checkpoint)[:12]
    folder = cache_dir() / "exports"
    out = folder / f"{checkpoint.stem}-{digest}{'-features' if features else ''}.onnx"
    if out.is_file():
        return out
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{folder}: cannot create the export cache ({e.strerror}); set NOVUM_CACHE to a writable "
                         f"folder or run with --backend torch") from None
    require("torch", f"running the checkpoint {checkpoint.name} (exported to ONNX on first use)",
            "run an exported model: --model model.onnx")
    if not quiet:
        print(f"exporting {checkpoint.name} to ONNX once (cached at {out})", file=sys.stderr, flush=True)
    from novum.checkpoint import load_model
    from novum.export.onnx import export_onnx

    export_onnx(load_model(checkpoint), out, features=features, source_sha256=sha256_file(checkpoint))
    return out


def resolve_model(model: str | Path | None, backend: str = "auto", features: bool = False,
                  quiet: bool = False) -> tuple[Path, Path | None]:
    """(file to load, native checkpoint it came from or None) for ``--model`` / ``--backend``.

    A native checkpoint (``.safetensors``, upstream ``.pth``; default: the bundled demo model) runs
    on ONNX Runtime through its cached export, so a classification run needs no torch after the
    first one; ``--backend torch`` runs it directly. An ONNX model or a TensorRT engine runs as given.
    """
    path = Path(model).expanduser() if model else demo_model_path()
    kind = backend_kind(path)
    if not path.is_file():
        raise InputError(f"{path}: model not found")
    native = path if path.suffix.lower() in NATIVE else None
    if backend in ("auto", "onnxruntime") and native is not None:
        return cached_onnx(native, features, quiet), native
    if backend != "auto" and backend != kind:
        raise InputError(f"{path.name} is a {kind} model; --backend {backend} cannot run it "
                         f"(use --backend auto, or export it with novum-export)")
    return path, native


def run(source: str, model: str | Path | None = None, *, backend: str = "auto", device: str = "auto",
        threads: int = 0, keep_all: bool = False, show: bool | None = None, pose_model: str | Path | None = None,
        quiet: bool = False, server: str | None = None, capture: CaptureOptions | None = None,
        allow_engine_host_code: bool = False,
        **opts: object) -> RunSummary:
    """``novum-run``: resolve ``model`` (:func:`resolve_model`), then :func:`novum.runtime.run.run`.

    ``opts`` are :class:`novum.runtime.pipeline.RunOptions` fields; ``show=None`` opens a window
    where one can open and otherwise runs headless, saying so unless ``quiet``
    (:func:`novum.runtime.run.window_wanted`). ``server``: a Triton server runs the model (``model``
    = its name there). ``capture``: the camera's size, rate and flip.
    ``allow_engine_host_code``: load a version-compatible TensorRT engine (it embeds host code that
    TensorRT runs: only for engines from a source you trust).
    """
    window = running.window_wanted(show)     # first: --show without a window fails before any export
    if server:
        if backend != "auto" or device != "auto" or threads:
            raise InputError("--backend, --device and --threads choose a local runtime; with --server the server runs "
                             "the model (drop them, or drop --server)")
        return running.run(source, model, keep_all=keep_all, show=show, pose_model=pose_model, quiet=quiet,
                           server=server, capture=capture, **opts)
    # features are exported only when a pose can be asked for (--pose-every, or the 'p' key in a window)
    path, native = resolve_model(model, backend, features=bool(opts.get("pose_every")) or window, quiet=quiet)
    return running.run(source, path, device=device, threads=threads, keep_all=keep_all, show=show,
                       pose_model=pose_model or native, quiet=quiet, capture=capture,
                       allow_engine_host_code=allow_engine_host_code, **opts)


# ----------------------------------------------------------------------------------------------
# novum-bench: make every precision, then measure


def bench(model: str | Path | None = None, source: str | None = None, *, frames: int = 32, runs: int = 50,
          warmup: int = 5, rounds: int = 3, threads: int = 0, workdir: str | Path | None = None,
          engines: list[str | Path] = (), allow_engine_host_code: bool = False,
          log: Callable[[str], None] = print) -> tuple[list[measuring.Row], dict[str, Any]]:
    """Export ``model`` (default: the demo model) to every precision, build TensorRT engines where
    possible, and measure each (:func:`novum.runtime.bench.measure`); returns the rows and run info.

    ``workdir=None``: the files go to a temporary folder, removed however the run ends.
    ``engines``: model files made elsewhere (``.engine``/``.plan``, ``.onnx``), measured as extra rows
    against the same torch reference; ``allow_engine_host_code`` lets version-compatible engines
    among them load (they embed host code that TensorRT runs: only from a source you trust)."""
    require("torch", "novum-bench (it exports the checkpoint and measures torch too)")
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="novum-bench-") as tmp:
            rows, info = _bench(model, source, frames, runs, warmup, rounds, threads, Path(tmp), log, temporary=True,
                                engines=engines, allow_engine_host_code=allow_engine_host_code)
        for r in rows:      # the files are gone with their folder (not the --engines given)
            if str(r.file).startswith(tmp):
                r.file = ""
        return rows, info
    return _bench(model, source, frames, runs, warmup, rounds, threads, Path(workdir), log, temporary=False,
                  engines=engines, allow_engine_host_code=allow_engine_host_code)


def _bench(model, source, frames: int, runs: int, warmup: int, rounds: int, threads: int, work: Path,
           log: Callable[[str], None], temporary: bool, engines: list[str | Path] = (),
           allow_engine_host_code: bool = False) -> tuple[list[measuring.Row], dict[str, Any]]:
    import torch

    from novum.checkpoint import load_model
    from novum.export.onnx import export_onnx

    if threads:
        torch.set_num_threads(threads)
    ckpt = Path(model) if model else demo_model_path()
    work.mkdir(parents=True, exist_ok=True)
    net = load_model(ckpt)
    cfg = net.config
    imgs, video, what = _bench_frames(source, cfg.input_size, frames, work)
    log(f"model {ckpt.name} ({cfg.backbone.arch}, {cfg.num_classes} classes, {cfg.input_size[0]}x{cfg.input_size[1]}); "
        f"frames: {what}; work dir {work}" + (" (temporary, removed at the end)" if temporary else ""))

    files: dict[tuple[str, str], Path | str] = {("torch", "fp32"): ckpt}
    onnx32 = work / f"{ckpt.stem}.onnx"
    files[("onnxruntime", "fp32")] = export_onnx(net, onnx32, max_batch=8)
    try:
        files[("onnxruntime", "fp16")] = convert_fp16(onnx32, work / f"{ckpt.stem}_fp16.onnx")
    except Exception as e:  # noqa: BLE001 - shown in the table
        files[("onnxruntime", "fp16")] = f"failed: {measuring.short_error(e)}"
    int8_trt = None
    try:
        # the accuracy gate is relaxed here: the table's top-1 column reports the agreement instead
        made = quantize_targets(onnx32, work / f"{ckpt.stem}_int8.onnx", allow_degraded=True, log=log)
        files[("onnxruntime", "int8")] = made[ONNXRUNTIME].path
        int8_trt = made[TENSORRT].path
    except Exception as e:  # noqa: BLE001
        files[("onnxruntime", "int8")] = f"failed: {measuring.short_error(e)}"
    why = engine_unavailable_reason()
    for prec in ("fp32", "fp16", "int8"):
        src_onnx = int8_trt if prec == "int8" else files.get(("onnxruntime", prec))
        if why:
            files[("tensorrt", prec)] = f"unavailable: {why}"
        elif isinstance(src_onnx, Path):
            try:
                files[("tensorrt", prec)] = build_engine(src_onnx, work / f"{ckpt.stem}_{prec}.engine",
                                                         options=EngineOptions(max_batch=8), log=log)
            except Exception as e:  # noqa: BLE001
                files[("tensorrt", prec)] = f"failed: {measuring.short_error(e)}"

    entries = [(kind, prec, f) for (kind, prec), f in files.items()]
    entries += [(backend_kind(p), "?", Path(p)) for p in engines]
    rows = measuring.measure(entries, imgs, video, frames=frames, runs=runs, warmup=warmup, rounds=rounds,
                             threads=threads, workdir=work, allow_engine_host_code=allow_engine_host_code, log=log)
    info = {"model": str(ckpt), "model_sha256": sha256_file(ckpt), "frames": what, "runs": runs, "rounds": rounds,
            "batch": 1, "threads": threads or "default", "machine": measuring.machine()}
    int8 = files.get(("onnxruntime", "int8"))
    if isinstance(int8, Path):   # int8 vs fp32 timed side by side (the rows above ran one after the other)
        cmp = compare_speed(onnx32, int8, imgs[:1], rounds=max(5, rounds), threads=threads)
        info["int8_speed"] = {"speedup": cmp.speedup, "rounds": cmp.ratios, "fp32_ms": cmp.fp32_ms,
                              "int8_ms": cmp.int8_ms, "lines": speed_report(cmp)}
    return rows, info


def _bench_frames(source: str | None, input_size: tuple[int, int], n: int, work: Path) -> tuple[np.ndarray, Path, str]:
    """Framed frames for agreement/latency, and the video the pipeline runs on: ``source``, else the
    demo clip, else a video of rendered frames written to ``work``."""
    if source is None:
        src_path = DEMO_CLIP if DEMO_CLIP.is_file() else None
    elif source == "demo":
        src_path = demo_clip_path()
    else:
        src_path = Path(source)
    if src_path is not None:
        imgs = measuring.video_frames(src_path, input_size, n)
        return imgs, src_path, f"{src_path.name} ({len(imgs)} frames)"
    H, W = input_size
    big = render_frames(n, 2 * H, 2 * W, seed=0)
    video = work / "bench_clip.mp4"
    wr = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (2 * W, 2 * H))
    for f in big:
        wr.write(f)
    wr.release()
    framer = Framer(input_size)
    return np.stack([framer(f)[0] for f in big]), video, f"{n} rendered frames (no demo clip; generated video)"
