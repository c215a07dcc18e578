"""fp32 novum ONNX -> INT8 Q/DQ ONNX, one graph per target runtime (``novum.contracts.int8``).

``quantize_targets(fp32_onnx, out)`` is what ``novum-export --int8`` calls; ``quantize`` /
``quantize_int8`` make one target's graph:

1. calibration frames (:mod:`novum.calibration.readers`: synthetic / folder / video, framed as
   the runtime frames them) and, apart from them, held-out frames for the gate;
2. ``quant_pre_process``, then ONNX Runtime's calibrator once over every tensor either target
   may quantize (ranges cached next to the model, :mod:`novum.calibration.cache`);
3. per target, ``quantize_static`` in QDQ format with that target's recipe
   (:mod:`novum.calibration.recipe`): TensorRT's symmetric int8 placement, or ONNX Runtime's
   uint8 graph in which every backbone op fuses into an int8 kernel; optionally the most
   sensitive convolutions kept fp32 (:mod:`novum.calibration.fallback`, recorded in metadata);
4. graph checks: the target's zero-point rules, fp32 head, every backbone conv quantized,
   TensorRT's placement rules (tensorrt) or the fusions ONNX Runtime really makes (onnxruntime,
   :mod:`novum.calibration.fusion`);
5. the accuracy gate (:mod:`novum.calibration.gate`): below the threshold nothing is written and
   a one-line :class:`AccuracyGateError` says so, unless ``allow_degraded``;
6. the record (target, recipe, calibration source / method / seed / samples, fusions, gate) in
   ``metadata_props`` with ``precision=int8``; each file is written atomically.
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

import numpy as np
import onnx

from novum.calibration import cache as calib_cache
from novum.calibration.fallback import search
from novum.calibration.fusion import FusionReport, ort_fusion
from novum.calibration.gate import DEFAULT_THRESHOLD, AccuracyGateError, GateReport, compare_models
from novum.calibration.readers import FrameSet, OrtCalibrationReader, calibration_frames
from novum.calibration.recipe import CALIBRATED_OPS, RECIPE_VERSION, RECIPES, QdqSummary, QuantizeError, \
    find_parts, inspect_qdq, keep_outputs_fp32, tie_passthrough_ranges, trt_placement
from novum.contracts.int8 import DEFAULT_CALIB_METHOD, ONNXRUNTIME, TARGET_KEY, TARGETS, TENSORRT, sibling
from novum.contracts.onnx_file import load_onnx, onnx_sha256, read_metadata, save_onnx, set_metadata, staging_dir
from novum.errors import InputError

METHODS = calib_cache.METHODS
DEFAULT_METHOD = DEFAULT_CALIB_METHOD
DEFAULT_SAMPLES = 64
DEFAULT_HOLDOUT = 200
SEARCH_FRAMES = 64  # calibration frames the fallback search evaluates on
MAX_OPSET = 20  # ORT static INT8 quantization does not support opset >= 21


@dataclass
class Int8Result:
    path: Path | None                       # None when the gate rejected the model
    target: str
    calib: FrameSet
    method: str
    calibrated: bool                        # False: the ranges came from the cache
    cache_path: Path | None
    summary: QdqSummary
    gate: GateReport | None = None
    fp32_layers: list[str] = field(default_factory=list)   # backbone convs kept in fp32 by the fallback
    fusion: FusionReport | None = None      # what ONNX Runtime fuses (onnxruntime target)
    timings: dict[str, float] = field(default_factory=dict)


def quantize_int8(fp32_onnx: str | Path, out_path: str | Path, *, target: str = ONNXRUNTIME, calib: str | Path = "demo",
                  method: str = DEFAULT_METHOD, samples: int = DEFAULT_SAMPLES, seed: int = 0,
                  holdout: int = DEFAULT_HOLDOUT, threshold: float = DEFAULT_THRESHOLD,
                  allow_degraded: bool = False, gate: bool = True, cache: bool = True, fallback: int = 0,
                  log: Callable[[str], None] | None = print) -> Path:
    """Write ``target``'s INT8 Q/DQ model for ``fp32_onnx`` to ``out_path``; returns the path.

    ``calib``: ``demo`` (= synthetic frames of the model's classes), a folder of images, a glob or a
    video. ``fallback``: keep up to this many of the most INT8-sensitive convolutions in fp32 when the
    fully quantized backbone misses ``threshold`` on the calibration frames (:mod:`.fallback`).
    Raises :class:`AccuracyGateError` when the held-out top-1 agreement with fp32 is below
    ``threshold`` and ``allow_degraded`` is false (nothing is written then).
    """
    res = quantize(fp32_onnx, out_path, target=target, calib=calib, method=method, samples=samples, seed=seed,
                   holdout=holdout, threshold=threshold, allow_degraded=allow_degraded, gate=gate, cache=cache,
                   fallback=fallback, log=log)
    assert res.path is not None
    return res.path


def quantize(fp32_onnx: str | Path, out_path: str | Path, *, target: str = ONNXRUNTIME, **kw) -> Int8Result:
    """One target's graph written exactly to ``out_path`` (see :func:`quantize_targets` for ``kw``)."""
    return quantize_targets(fp32_onnx, out_path, targets=(target,), paths={target: Path(out_path)}, **kw)[target]


def quantize_targets(fp32_onnx: str | Path, out_path: str | Path, *, targets: tuple[str, ...] | list[str] = TARGETS,
                     paths: dict[str, Path] | None = None, calib: str | Path = "demo", method: str = DEFAULT_METHOD,
                     samples: int = DEFAULT_SAMPLES, seed: int = 0, holdout: int = DEFAULT_HOLDOUT,
                     threshold: float = DEFAULT_THRESHOLD, allow_degraded: bool = False, gate: bool = True,
                     cache: bool = True, fallback: int = 0,
                     log: Callable[[str], None] | None = print) -> dict[str, Int8Result]:
    """The INT8 graphs of ``targets`` from one calibration; ``out_path`` names the onnxruntime
    file (``<stem>_int8.onnx``), the others go next to it (``<stem>_int8_trt.onnx``)."""
    say = log or (lambda s: None)
    t0 = time.perf_counter()
    fp32_onnx, out_path = Path(fp32_onnx), Path(out_path)
    method = str(method).lower()
    targets = list(dict.fromkeys(targets))
    bad = [t for t in targets if t not in TARGETS]
    if bad or not targets:
        raise InputError(f"--int8-target {','.join(bad) or '(none)'}: unknown; choose from {', '.join(TARGETS)} or both")
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
                         f"quantization supports; re-export with --opset 18")
    paths = dict(paths or {})
    for t in targets:
        paths.setdefault(t, out_path if t == ONNXRUNTIME else sibling(out_path, t))

    t = time.perf_counter()
    calib_set, held = calibration_frames(calib, meta["config"], samples, seed, holdout if gate else 0)
    frames_s = time.perf_counter() - t
    say(f"int8 calibration: {calib_set.source} (seed {seed}, method {method})"
        + (f"; accuracy gate on {held.source}" if held is not None else ""))
    if gate and held is None:
        raise InputError(f"--calib {calib}: no frames left for the held-out accuracy gate; pass more data "
                         f"or lower --calib-samples")

    anchor = paths[targets[0]]
    cpath = calib_cache.cache_path(anchor) if cache else None
    key = calib_cache.cache_key(onnx_sha256(fp32_onnx), calib_set.names, calib_set.sha256(), method,
                                f"{RECIPE_VERSION}:{','.join(CALIBRATED_OPS)}")
    entry = calib_cache.load(cpath, key) if cpath is not None else None
    results: dict[str, Int8Result] = {}
    with staging_dir(anchor.parent) as tmp:
        pre = tmp / "pre.onnx"
        with _quiet():
            from onnxruntime.quantization.shape_inference import quant_pre_process

            quant_pre_process(str(fp32_onnx), str(pre), skip_symbolic_shape=True)
        pre_model = onnx.load(str(pre))
        parts = find_parts(pre_model)
        ranges_file = tmp / "ranges.json"
        t = time.perf_counter()
        if entry is not None:
            ranges_file.write_text(json.dumps(entry.tensors))
            say(f"calibration cache hit: {cpath.name} (same model, frames and method): calibration skipped")
        else:
            present = {n.op_type for n in pre_model.graph.node if n.name in set(parts.backbone)}
            per_call = frames_per_call(calib_set.frames.shape[1:3])
            _calibrate(pre, OrtCalibrationReader(calib_set.frames, meta.get("input_name", "images"), batch=min(8, per_call)),
                       method, [op for op in CALIBRATED_OPS if op in present], ranges_file, tmp, per_call)
            if cpath is not None:
                calib_cache.save(cpath, calib_cache.CacheEntry(key, method, calib_set.names,
                                                               json.loads(ranges_file.read_text())))
            say(f"calibrated in {time.perf_counter() - t:.1f}s" + (f"; ranges cached in {cpath}" if cpath else ""))
        calib_s = time.perf_counter() - t
        for target in targets:
            res = _one_target(target, fp32_onnx, pre, pre_model, parts, ranges_file, paths[target], tmp, meta,
                              calib_set, held, method, seed, threshold, allow_degraded, fallback, say)
            res.calibrated, res.cache_path = entry is None, cpath
            res.timings = {"frames": frames_s, "calibrate": calib_s, **res.timings}
            results[target] = res
    for r in results.values():
        r.timings["total"] = time.perf_counter() - t0
    return results


def _one_target(target: str, fp32_onnx: Path, pre: Path, pre_model: onnx.ModelProto, parts, ranges_file: Path,
                out_path: Path, tmp: Path, meta: dict, calib_set: FrameSet, held: FrameSet | None, method: str,
                seed: int, threshold: float, allow_degraded: bool, fallback: int, say) -> Int8Result:
    recipe = RECIPES[target]
    timings: dict[str, float] = {}
    target_ranges = tmp / f"ranges_{target}.json"
    _target_ranges(pre_model, ranges_file, target_ranges)
    work = tmp / target
    work.mkdir(exist_ok=True)

    def build(convs: list[str], path: Path) -> Path:
        """The target's graph with only ``convs`` of the backbone convolutions quantized."""
        skip = set(parts.convs) - set(convs)
        _quantize_static(pre, path, recipe, [n for n in parts.backbone if n not in skip], target_ranges, method)
        if target == TENSORRT or skip:
            p = onnx.load(str(path))
            if target == TENSORRT:
                trt_placement(p)
            else:
                keep_outputs_fp32(p, sorted(skip))
            onnx.save_model(p, str(path))
        return path

    t = time.perf_counter()
    fp32_layers: list[str] = []
    if fallback > 0:
        fb = search(build, parts.convs, fp32_onnx, calib_set.frames[:SEARCH_FRAMES], threshold, fallback, work, say)
        timings["fallback"] = time.perf_counter() - t
        fp32_layers = fb.fp32_layers
    build([c for c in parts.convs if c not in fp32_layers], work / "q.onnx")
    timings["quantize"] = time.perf_counter() - t
    proto = load_onnx(work / "q.onnx")
    summary = inspect_qdq(proto, target)
    if summary.bad_zero_points:
        raise QuantizeError(f"{len(summary.bad_zero_points)} Q/DQ nodes break the {target} zero-point rules "
                            f"(e.g. {summary.bad_zero_points[0]})")
    if summary.head_qdq:
        raise QuantizeError(f"the matching head got Q/DQ nodes (e.g. {summary.head_qdq[0]}); it must stay fp32")
    if not summary.quantized_convs:
        raise QuantizeError("no convolution was quantized; is this a novum-export fp32 ONNX?")
    if summary.placement:
        raise QuantizeError(f"the {target} graph breaks TensorRT's Q/DQ placement: {summary.placement[0]}")
    record = {
        "precision": "int8",
        TARGET_KEY: target,
        "int8_recipe": f"{RECIPE_VERSION}: {recipe.describe()}",
        "int8_activations": recipe.activations,
        "int8_weight_bits": str(recipe.weight_bits),
        "calib_source": calib_set.source,
        "calib_kind": calib_set.kind,
        "calib_method": method,
        "calib_count": str(len(calib_set)),
        "calib_seed": str(seed),
        "calib_samples": json.dumps(calib_set.names),
        "calib_sha256": calib_set.sha256(),
        "int8_quantized_convs": str(len(summary.quantized_convs)),
        "int8_fp32_layers": json.dumps(fp32_layers),
        "fp32_sha256": onnx_sha256(fp32_onnx),
    }
    set_metadata(proto, record)
    staged = work / "int8.onnx"
    onnx.save_model(proto, str(staged))

    fusion = None
    if target == ONNXRUNTIME:
        t = time.perf_counter()
        fusion = ort_fusion(staged)
        timings["fusion_check"] = time.perf_counter() - t
        set_metadata(proto, {"int8_ort_fusion": json.dumps(fusion.as_metadata())})
        say(f"int8 ({target}): ONNX Runtime runs {fusion.summary()}")
        if not fusion.ok(fp32_layers):
            say(f"warning: ONNX Runtime leaves part of this int8 graph unfused ({fusion.problems(fp32_layers)[0]}); "
                f"it may not be faster than fp32")
    else:
        say(f"int8 ({target}): {len(summary.quantized_convs)} int8 convolutions, Q/DQ on their inputs and on the "
            f"residual inputs, zero points 0")

    report = None
    if held is not None:
        t = time.perf_counter()
        report = compare_models(fp32_onnx, staged, held, threshold)
        timings["gate"] = time.perf_counter() - t
        say(report.table(f"INT8 ({target}) accuracy gate"))
        set_metadata(proto, {"int8_gate": json.dumps(report.as_metadata())})
        if not report.passed:
            if not allow_degraded:
                raise AccuracyGateError(
                    f"INT8 ({target}) top-1 agreement with fp32 is {100 * report.agreement:.1f}% on {report.frames} "
                    f"held-out frames, below the {100 * threshold:.1f}% threshold; nothing written (try --int8-fallback 6 "
                    f"to keep the most sensitive layers in fp32, another --calib-method, or keep it with --allow-degraded)")
            say(f"WARNING: INT8 ({target}) AGREES WITH FP32 ON ONLY {100 * report.agreement:.1f}% OF HELD-OUT FRAMES "
                f"(threshold {100 * threshold:.1f}%); written anyway because of --allow-degraded")
    save_onnx(proto, out_path, work)
    return Int8Result(out_path, target, calib_set, method, True, None, summary, report, fp32_layers, fusion, timings)


# Calibrator settings. ONNX Runtime's quantize_static passes no bin counts, and its entropy default
# (128 bins for 128 quantized bins) leaves one candidate threshold: the min/max. TensorRT's entropy
# calibrator uses 2048 bins; percentile keeps 99.999% of the values, cut on both sides (uint8
# activations need the real lower end: 0 after a ReLU).
CALIBRATOR_OPTIONS = {"minmax": {}, "entropy": {"num_bins": 2048, "num_quantized_bins": 128, "symmetric": True},
                      "percentile": {"num_bins": 2048, "percentile": 99.999, "symmetric": False}}


CALL_PIXELS = 64 * 128 * 160   # frame pixels per calibrator call: all 64 demo frames, 2 frames at 640x800


def frames_per_call(hw: tuple[int, int]) -> int:
    """How many frames one calibrator call may take. ONNX Runtime's calibrators keep every calibrated
    tensor of every frame of a call until it ends (about 1.6 GB per frame for the upstream layout at
    640x800); min/max ranges and histograms merge across calls, so memory is bounded by one call's
    frames. (Merged histograms are re-binned: the ranges differ slightly from one call's.)"""
    return max(1, CALL_PIXELS // max(1, int(hw[0]) * int(hw[1])))


class _Frames:
    """A ``CalibrationDataReader`` over ``reader`` that ends after ``limit`` frames' batches."""

    def __init__(self, reader, limit: int) -> None:
        self.reader, self.left = reader, limit

    def get_next(self) -> dict | None:
        if self.left <= 0:
            return None
        batch = self.reader.get_next()
        if batch:
            self.left -= len(next(iter(batch.values())))
        return batch


def _calibrate(pre: Path, reader, method: str, op_types: list[str], out: Path, tmp: Path, per_call: int) -> None:
    """Run ONNX Runtime's calibrator over ``reader``, ``per_call`` frames per call (:func:`frames_per_call`);
    write the ranges where quantize_static reads them. A histogram method's range never reaches past
    the values seen (entropy's is symmetric)."""
    from onnxruntime.quantization.calibrate import TensorData, create_calibrator, save_tensors_data

    with _quiet():
        cal = create_calibrator(pre, op_types, augmented_model_path=str(tmp / "augmented.onnx"),
                                calibrate_method=_ort_method(method), extra_options=dict(CALIBRATOR_OPTIONS[method]))
        while reader.remaining():
            cal.collect_data(_Frames(reader, per_call))
        data = cal.compute_data()
        seen = getattr(getattr(cal, "collector", None), "histogram_dict", None) or {}
        for name, (lo_seen, hi_seen) in ((k, v[2:4]) for k, v in seen.items() if len(v) >= 4):
            if name in data:
                lo, hi = data[name].range_value
                data[name] = TensorData(lowest=np.array(max(float(lo), float(lo_seen)), np.float32),
                                        highest=np.array(min(float(hi), float(hi_seen)), np.float32))
        save_tensors_data(data, out)
        del cal


def _ort_method(method: str):
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}[method]


def _target_ranges(model: onnx.ModelProto, src: Path, dst: Path) -> None:
    """The calibrated ranges with each pass-through op's output tied to its input's."""
    from onnxruntime.quantization.calibrate import load_tensors_data, save_tensors_data

    data = load_tensors_data(src)
    ranges = dict(data.data)
    tie_passthrough_ranges(model, ranges)
    for k, v in ranges.items():
        data[k] = v
    save_tensors_data(data, dst)


def _quantize_static(pre: Path, out: Path, recipe, nodes: list[str], ranges: Path, method: str) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    act = QuantType.QInt8 if recipe.activations == "int8" else QuantType.QUInt8
    extra = {"ActivationSymmetric": recipe.symmetric_activations, "WeightSymmetric": True,
             # TensorRT rejects DequantizeLinear of an int32 bias: keep biases fp32
             "QuantizeBias": False}
    if recipe.exclude_outputs:
        extra["OpTypesToExcludeOutputQuantization"] = list(recipe.exclude_outputs)
    with _quiet():
        quantize_static(str(pre), str(out), None, quant_format=QuantFormat.QDQ, op_types_to_quantize=list(recipe.op_types),
                        per_channel=True, reduce_range=recipe.weight_bits < 8, activation_type=act,
                        weight_type=QuantType.QInt8, nodes_to_quantize=nodes, calibrate_method=_ort_method(method),
                        calibration_cache_path=str(ranges), extra_options=extra)


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
