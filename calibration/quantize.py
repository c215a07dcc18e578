"""fp32 novum ONNX -> INT8 Q/DQ ONNX that runs on ONNX Runtime CPU and builds on TensorRT 10/11.

``quantize_int8(fp32_onnx, out)`` is what ``novum-export --int8`` and ``novum-bench`` call:

1. calibration frames (:mod:`novum.calibration.readers`: synthetic / folder / video, framed as
   the runtime frames them) and, apart from them, held-out frames for the gate;
2. ``quant_pre_process`` then ONNX Runtime ``quantize_static`` in QDQ format, symmetric int8
   activations and per-channel 7-bit weights (``reduce_range``: ONNX Runtime's fused u8s8 kernels
   on x86 CPUs without VNNI saturate int16 sums with 8-bit weights; measured here, that alone
   cost 2 points of top-1 agreement), fp32 biases, on the backbone only; Conv-output Q/DQ pairs
   only where they are exact, and one Q/DQ pair per consumer (:mod:`novum.calibration.recipe`);
   optionally the most sensitive convolutions kept fp32 (:mod:`novum.calibration.fallback`);
   the activation ranges come from the calibration cache when model, frames and method are
   unchanged (:mod:`novum.calibration.cache`);
3. graph checks: every zero point is 0 and the head has no Q/DQ;
4. the accuracy gate (:mod:`novum.calibration.gate`): below the threshold nothing is written and
   a one-line :class:`AccuracyGateError` says so, unless ``allow_degraded``;
5. the calibration record (source, method, seed, sample names, gate result) in ``metadata_props``
   with ``precision=int8``; the file is written atomically.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import onnx

from novum.calibration import cache as calib_cache
from novum.calibration.fallback import search
from novum.calibration.gate import DEFAULT_THRESHOLD, AccuracyGateError, GateReport, compare_models
from novum.calibration.readers import FrameSet, OrtCalibrationReader, calibration_frames
from novum.calibration.recipe import OP_TYPES, RECIPE_VERSION, QdqSummary, QuantizeError, dedicate_qdq, \
    find_parts, inspect_qdq, settle_output_qdq
from novum.contracts.onnx_file import load_onnx, onnx_sha256, read_metadata, save_onnx, set_metadata, staging_dir
from novum.errors import InputError

METHODS = ("minmax", "entropy", "percentile")
DEFAULT_METHOD = "percentile"
DEFAULT_SAMPLES = 64
DEFAULT_HOLDOUT = 200
SEARCH_FRAMES = 64  # calibration frames the fallback search evaluates on
MAX_OPSET = 20  # ORT static INT8 quantization does not support opset >= 21


@dataclass
class Int8Result:
    path: Path | None                       # None when the gate rejected the model
    calib: FrameSet
    method: str
    calibrated: bool                        # False: the ranges came from the cache
    cache_path: Path | None
    summary: QdqSummary
    gate: GateReport | None = None
    fp32_layers: list[str] = field(default_factory=list)   # backbone convs kept in fp32 by the fallback
    timings: dict[str, float] = field(default_factory=dict)


def quantize_int8(fp32_onnx: str | Path, out_path: str | Path, *, calib: str | Path = "demo",
                  method: str = DEFAULT_METHOD, samples: int = DEFAULT_SAMPLES, seed: int = 0,
                  holdout: int = DEFAULT_HOLDOUT, threshold: float = DEFAULT_THRESHOLD,
                  allow_degraded: bool = False, gate: bool = True, cache: bool = True, fallback: int = 0,
                  log: Callable[[str], None] | None = print) -> Path:
    """Write the INT8 Q/DQ model for ``fp32_onnx`` to ``out_path`` and return the path (see module doc).

    ``calib``: ``demo`` (= synthetic frames of the model's classes), a folder of images, a glob or a
    video. ``fallback``: keep up to this many of the most INT8-sensitive convolutions in fp32 when the
    fully quantized backbone misses ``threshold`` on the calibration frames (:mod:`.fallback`).
    Raises :class:`AccuracyGateError` when the held-out top-1 agreement with fp32 is below
    ``threshold`` and ``allow_degraded`` is false (nothing is written then).
    """
    res = quantize(fp32_onnx, out_path, calib=calib, method=method, samples=samples, seed=seed, holdout=holdout,
                   threshold=threshold, allow_degraded=allow_degraded, gate=gate, cache=cache, fallback=fallback,
                   log=log)
    assert res.path is not None
    return res.path


def quantize(fp32_onnx: str | Path, out_path: str | Path, *, calib: str | Path = "demo",
             method: str = DEFAULT_METHOD, samples: int = DEFAULT_SAMPLES, seed: int = 0,
             holdout: int = DEFAULT_HOLDOUT, threshold: float = DEFAULT_THRESHOLD, allow_degraded: bool = False,
             gate: bool = True, cache: bool = True, fallback: int = 0,
             log: Callable[[str], None] | None = print) -> Int8Result:
    """:func:`quantize_int8` returning the details (cache hit, Q/DQ summary, gate report)."""
    say = log or (lambda s: None)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    fp32_onnx, out_path = Path(fp32_onnx), Path(out_path)
    method = str(method).lower()
    if method not in METHODS:
        raise InputError(f"--calib-method {method}: unknown; choose one of {', '.join(METHODS)}")
    if not 0.0 <= threshold <= 1.0:
        raise InputError(f"--int8-threshold {threshold}: must be a fraction in [0, 1], e.g. 0.99")
    if gate and holdout < 1:
        raise InputError(f"--calib-holdout {holdout}: the accuracy gate needs at least one held-out frame")
    meta = read_metadata(fp32_onnx)
    if meta.get("precision", "fp32") != "fp32":
        raise InputError(f"{fp32_onnx}: is a {meta['precision']} model; quantize the fp32 export")
    if int(meta.get("opset", 17)) > MAX_OPSET:
        raise InputError(f"{fp32_onnx}: opset {meta['opset']} is above {MAX_OPSET}, which ONNX Runtime INT8 "
                         f"quantization supports; re-export with --opset 17")
    config = meta["config"]

    t = time.perf_counter()
    calib_set, held = calibration_frames(calib, config, samples, seed, holdout if gate else 0)
    timings["frames"] = time.perf_counter() - t
    say(f"int8 calibration: {calib_set.source} (seed {seed}, method {method})"
        + (f"; accuracy gate on {held.source}" if held is not None else ""))
    if gate and held is None:
        raise InputError(f"--calib {calib}: no frames left for the held-out accuracy gate; pass more data "
                         f"or lower --calib-samples")

    cpath = calib_cache.cache_path(out_path) if cache else None
    recipe = f"{RECIPE_VERSION}:{','.join(OP_TYPES)}"
    key = calib_cache.cache_key(onnx_sha256(fp32_onnx), calib_set.names, calib_set.sha256(), method, recipe)
    entry = calib_cache.load(cpath, key) if cpath is not None else None

    with staging_dir(out_path.parent) as tmp:
        pre = tmp / "pre.onnx"
        with _quiet():
            from onnxruntime.quantization.shape_inference import quant_pre_process

            quant_pre_process(str(fp32_onnx), str(pre), skip_symbolic_shape=True)
        parts = find_parts(onnx.load(str(pre)))
        ort_cache = tmp / "ranges.json"
        reader = None
        if entry is not None:
            ort_cache.write_text(json.dumps(entry.tensors))
            say(f"calibration cache hit: {cpath.name} (same model, frames and method): calibration skipped")
        else:
            reader = OrtCalibrationReader(calib_set.frames, meta.get("input_name", "images"), batch=8)
        t = time.perf_counter()
        if reader is not None:
            _calibrate(pre, reader, method, ort_cache, tmp)
        _quantize_static(pre, tmp / "q.onnx", None, method, parts.backbone, ort_cache)
        timings["quantize"] = time.perf_counter() - t
        calibrated = entry is None
        if calibrated and cpath is not None:
            calib_cache.save(cpath, calib_cache.CacheEntry(key, method, calib_set.names,
                                                           json.loads(ort_cache.read_text())))
            say(f"calibrated in {timings['quantize']:.1f}s; ranges cached in {cpath}")

        fp32_layers: list[str] = []
        if fallback > 0:
            def build(nodes: list[str], path: Path) -> Path:
                _quantize_static(pre, path, None, method, nodes, ort_cache)
                p = load_onnx(path)
                settle_output_qdq(p)
                dedicate_qdq(p)
                onnx.save_model(p, str(path))
                return path

            t = time.perf_counter()
            fb = search(build, parts.backbone, fp32_onnx, calib_set.frames[:SEARCH_FRAMES], threshold, fallback, tmp, say)
            timings["fallback"] = time.perf_counter() - t
            fp32_layers = fb.fp32_layers
            if fp32_layers:
                _quantize_static(pre, tmp / "q.onnx", None, method,
                                 [n for n in parts.backbone if n not in fp32_layers], ort_cache)
        proto = load_onnx(tmp / "q.onnx")
        settle_output_qdq(proto)
        dedicate_qdq(proto)
        summary = inspect_qdq(proto)
        if summary.nonzero_zero_points:
            raise QuantizeError(f"{len(summary.nonzero_zero_points)} Q/DQ nodes have non-zero zero points "
                                f"(e.g. {summary.nonzero_zero_points[0]}); TensorRT needs symmetric quantization")
        if summary.head_qdq:
            raise QuantizeError(f"the matching head got Q/DQ nodes (e.g. {summary.head_qdq[0]}); it must stay fp32")
        if summary.quantized_convs == 0:
            raise QuantizeError("no convolution was quantized; is this a novum-export fp32 ONNX?")
        record = {
            "precision": "int8",
            "int8_recipe": recipe,
            "calib_source": calib_set.source,
            "calib_kind": calib_set.kind,
            "calib_method": method,
            "calib_count": str(len(calib_set)),
            "calib_seed": str(seed),
            "calib_samples": json.dumps(calib_set.names),
            "calib_sha256": calib_set.sha256(),
            "int8_quantized_convs": str(summary.quantized_convs),
            "int8_fp32_layers": json.dumps(fp32_layers),
            "fp32_sha256": onnx_sha256(fp32_onnx),
        }
        set_metadata(proto, record)
        staged = tmp / "int8.onnx"
        onnx.save_model(proto, str(staged))

        report = None
        if gate and held is not None:
            t = time.perf_counter()
            report = compare_models(fp32_onnx, staged, held, threshold)
            timings["gate"] = time.perf_counter() - t
            say(report.table())
            set_metadata(proto, {"int8_gate": json.dumps(report.as_metadata())})
            if not report.passed:
                if not allow_degraded:
                    raise AccuracyGateError(
                        f"INT8 top-1 agreement with fp32 is {100 * report.agreement:.1f}% on {report.frames} held-out "
                        f"frames, below the {100 * threshold:.1f}% threshold; nothing written (try --int8-fallback 6 to keep "
                        f"the most sensitive layers in fp32, another --calib-method, or keep it with --allow-degraded)")
                say(f"WARNING: INT8 AGREES WITH FP32 ON ONLY {100 * report.agreement:.1f}% OF HELD-OUT FRAMES "
                    f"(threshold {100 * threshold:.1f}%); written anyway because of --allow-degraded")
        save_onnx(proto, out_path, tmp)
    timings["total"] = time.perf_counter() - t0
    return Int8Result(out_path, calib_set, method, calibrated, cpath, summary, report, fp32_layers, timings)


# Calibrator settings. ONNX Runtime's quantize_static passes no bin counts, and its entropy default
# (128 bins for 128 quantized bins) leaves one candidate threshold: the min/max. TensorRT's entropy
# calibrator uses 2048 bins; percentile keeps 99.999% of the values.
CALIBRATOR_OPTIONS = {"minmax": {}, "entropy": {"num_bins": 2048, "num_quantized_bins": 128, "symmetric": True},
                      "percentile": {"num_bins": 2048, "percentile": 99.999, "symmetric": True}}


def _calibrate(pre: Path, reader, method: str, ort_cache: Path, tmp: Path) -> None:
    """Run ONNX Runtime's calibrator over ``reader``; write the ranges where quantize_static reads them."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator, save_tensors_data

    cm = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
          "percentile": CalibrationMethod.Percentile}[method]
    with _quiet():
        cal = create_calibrator(pre, list(OP_TYPES), augmented_model_path=str(tmp / "augmented.onnx"),
                                calibrate_method=cm, extra_options=dict(CALIBRATOR_OPTIONS[method]))
        cal.collect_data(reader)
        save_tensors_data(cal.compute_data(), ort_cache)
        del cal


def _quantize_static(pre: Path, out: Path, reader, method: str, nodes: list[str], ort_cache: Path) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    cm = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
          "percentile": CalibrationMethod.Percentile}[method]
    with _quiet():
        quantize_static(str(pre), str(out), reader, quant_format=QuantFormat.QDQ, op_types_to_quantize=list(OP_TYPES),
                        per_channel=True, reduce_range=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        nodes_to_quantize=nodes, calibrate_method=cm, calibration_cache_path=str(ort_cache),
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                       # TensorRT rejects DequantizeLinear of an int32 bias: keep biases fp32
                                       "QuantizeBias": False})


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ONNX Runtime's quantization tools log advice through the root logger and print histogram
    statistics to stdout; keep the CLI output ours."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)
