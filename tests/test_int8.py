"""INT8 (Q/DQ): one graph per target. TensorRT's placement and zero points, what ONNX Runtime really
fuses (its optimized graph), the onnx-tensorrt op table, closeness to fp32, cache, gate, metadata,
the wrong-target refusals and the speed report."""
from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from novum.calibration.fusion import ort_fusion
from novum.calibration.quantize import DEFAULT_METHOD, METHODS, quantize, quantize_targets
from novum.calibration.recipe import find_parts, inspect_qdq, trt_placement_issues
from novum.contracts.int8 import ONNXRUNTIME, TENSORRT
from novum.export.trt_ops import unsupported_nodes

SIZE = (128, 160)
HEAD_TYPES = {"MatMul", "ReduceMax", "ArgMax", "ReduceL2", "ReduceSum"}


@pytest.fixture(scope="module")
def fp32_onnx(tmp_path_factory, small_model):
    from novum.export.onnx import export_onnx

    return export_onnx(small_model, tmp_path_factory.mktemp("int8") / "small.onnx", features=True)


@pytest.fixture(scope="module")
def int8(fp32_onnx):
    """Both targets' graphs from one calibration (gate on, threshold 0: the tests read its report)."""
    return quantize_targets(fp32_onnx, fp32_onnx.parent / "small_int8.onnx", samples=8, holdout=12, threshold=0.0,
                            log=None)


def _upstream_layout_int8(model, d, input_size=(64, 96)):
    from novum.export.onnx import export_onnx

    cfg = model.config
    model.config = dataclasses.replace(cfg, input_size=input_size, focal=cfg.focal * input_size[0] / cfg.input_size[0])
    try:
        fp32 = export_onnx(model, d / "up.onnx")
    finally:
        model.config = cfg
    return fp32, quantize_targets(fp32, d / "up_int8.onnx", samples=4, gate=False, log=None)


@pytest.fixture(scope="module")
def upstream_int8(tmp_path_factory):
    """The upstream layout (ResNet-50 bottlenecks [3, 4, 6, 3], 4 stages, the DoubleConv/Up decoder,
    upstream's 12 classes and bank), narrow (stem width 8) so that CI can afford it; the full-width
    model runs the same checks in the slow test below."""
    import torch

    from factories import randomize_bn
    from novum.config import upstream_config
    from novum.model import NovumModel

    cfg = upstream_config()
    cfg = dataclasses.replace(cfg, backbone=dataclasses.replace(cfg.backbone, width=8, decoder_out=64))
    model = NovumModel(cfg, generator=torch.Generator().manual_seed(0)).eval()
    randomize_bn(model, 0)
    return _upstream_layout_int8(model, tmp_path_factory.mktemp("int8_upstream"))


def _graph(path) -> onnx.GraphProto:
    return onnx.load(str(path)).graph


def _producers(g):
    return {o: n for n in g.node for o in n.output}


def _array(name: str, g: onnx.GraphProto) -> np.ndarray:
    for t in g.initializer:
        if t.name == name:
            return numpy_helper.to_array(t)
    for n in g.node:
        if n.op_type == "Constant" and n.output[0] == name:
            return numpy_helper.to_array(n.attribute[0].t)
    raise AssertionError(f"{name} is neither an initializer nor a Constant")


def _assert_trt_graph(path):
    """TensorRT's explicit-quantization rules, checked on the file itself."""
    g = _graph(path)
    producer = _producers(g)
    inits = {t.name for t in g.initializer}
    qdq = [n for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert len(qdq) > 20
    for n in qdq:  # int8, zero point 0
        zp = _array(n.input[2], g)
        assert zp.dtype == np.int8 and np.all(zp == 0), n.name
        if n.op_type == "DequantizeLinear":
            assert n.input[0] in inits or producer[n.input[0]].op_type == "QuantizeLinear", n.name
    parts = find_parts(onnx.load(str(path)))
    convs = [n for n in g.node if n.name in set(parts.convs)]
    assert convs and convs[-1].name == parts.projection
    for c in convs:  # every backbone conv, projection included: int8 data and weight inputs, fp32 output
        assert producer[c.input[0]].op_type == "DequantizeLinear", c.name
        w = producer[c.input[1]]
        assert w.op_type == "DequantizeLinear" and w.input[0] in inits, c.name
        assert _array(w.input[1], g).shape == (_array(w.input[0], g).shape[0],), c.name  # per-channel
        for q in (n for n in g.node if c.output[0] in n.input and n.op_type == "QuantizeLinear"):
            # a conv output is quantized only as the residual input of an Add (a downsampling branch)
            dq = [n for n in g.node if q.output[0] in n.input]
            adds = [n for d in dq for n in g.node if d.output[0] in n.input]
            assert adds and all(a.op_type == "Add" for a in adds), f"{c.name}: output quantized"
    for add in (n for n in g.node if n.name in set(parts.backbone) and n.op_type == "Add"):
        dq = [i for i in add.input if producer[i].op_type == "DequantizeLinear"]
        other = [producer[i] for i in add.input if i not in dq]
        assert len(dq) == 1 and len(other) == 1 and other[0].op_type == "Conv", add.name  # residual input only
    assert not trt_placement_issues(onnx.load(str(path)))
    assert not unsupported_nodes(path)  # the onnx-tensorrt op table supports every node
    head = set(parts.head)
    assert not [n.name for n in g.node if n.name in head and n.op_type in ("QuantizeLinear", "DequantizeLinear")]


def _assert_ort_graph(path, fp32_path, allowed_fp32=()):
    """ONNX Runtime's optimized graph: every backbone conv a QLinearConv, every residual Add a
    QLinearAdd, no standalone Q/DQ, fp32 only where ONNX Runtime has no int8 kernel (bilinear Resize)."""
    rep = ort_fusion(path)
    convs = find_parts(onnx.load(str(fp32_path))).convs
    assert rep.int8_convs == len(convs) - len(allowed_fp32), rep.summary()
    assert not rep.problems(allowed_fp32), rep.problems(allowed_fp32)
    backbone_adds = sum(1 for n in _graph(fp32_path).node
                        if n.op_type == "Add" and n.name in set(find_parts(onnx.load(str(fp32_path))).backbone))
    assert rep.ops.get("QLinearAdd", 0) == backbone_adds, rep.ops
    assert set(rep.fp32_islands) <= {"Resize"}, rep.fp32_islands
    return rep


def test_trt_graph_follows_tensorrts_explicit_quantization_rules(int8):
    r = int8[TENSORRT]
    assert r.path.name == "small_int8_trt.onnx" and r.summary.ok and not r.summary.fp32_convs
    _assert_trt_graph(r.path)


def test_ort_graph_every_backbone_conv_runs_int8(int8, fp32_onnx):
    r = int8[ONNXRUNTIME]
    assert r.path.name == "small_int8.onnx"
    rep = _assert_ort_graph(r.path, fp32_onnx)
    assert r.fusion is not None and r.fusion.int8_convs == rep.int8_convs
    g = _graph(r.path)  # uint8 activations with zero points, int8 symmetric weights
    inits = {t.name for t in g.initializer}
    act = [_array(n.input[2], g) for n in g.node if n.op_type == "QuantizeLinear"]
    assert act and all(z.dtype == np.uint8 for z in act) and any(z != 0 for z in act)
    w = [_array(n.input[2], g) for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    assert w and all(z.dtype == np.int8 and np.all(z == 0) for z in w)


def test_upstream_layout_graphs_pass_both_checks(upstream_int8):
    fp32, made = upstream_int8
    _assert_trt_graph(made[TENSORRT].path)
    _assert_ort_graph(made[ONNXRUNTIME].path, fp32)


def test_local_contrast_normalisation_stays_fp32_in_both_graphs(tmp_path):
    """A 2-stage model with ``input_norm: local`` (the bundled model's kind): the normalisation (box
    means, a square root, an epsilon Add, a division) is preprocessing, kept fp32; the int8 region
    starts at the first Conv, and both graphs pass their checks."""
    from factories import make_small_model
    from novum.export.onnx import export_onnx

    fp32 = export_onnx(make_small_model(stages=2, input_norm="local"), tmp_path / "local.onnx")
    parts = find_parts(onnx.load(str(fp32)))
    pre_ops = {n.op_type for n in _graph(fp32).node if n.name in set(parts.pre)}
    assert {"AveragePool", "Sqrt", "Add", "Div"} <= pre_ops and not pre_ops & {"Conv"}
    made = quantize_targets(fp32, tmp_path / "local_int8.onnx", samples=8, holdout=12, threshold=0.0, log=None)
    for target, r in made.items():
        assert r.summary.ok and not r.summary.fp32_convs, target
        g = _graph(r.path)
        producer = {o: n for n in g.node for o in n.output}
        for n in (n for n in g.node if n.op_type in ("Sqrt", "AveragePool", "ReduceMean")):
            assert all(producer.get(i) is None or producer[i].op_type != "DequantizeLinear" for i in n.input), (target, n.name)
    _assert_trt_graph(made[TENSORRT].path)
    _assert_ort_graph(made[ONNXRUNTIME].path, fp32)


@pytest.fixture(scope="module")
def torchscript_int8(tmp_path_factory, small_model):
    from novum.export.onnx import export_onnx

    fp32 = export_onnx(small_model, tmp_path_factory.mktemp("int8_ts") / "small.onnx", features=True,
                       exporter="torchscript")
    return fp32, quantize_targets(fp32, fp32.parent / "small_int8.onnx", samples=8, holdout=12, threshold=0.0,
                                  log=None)


def test_the_torchscript_graph_takes_the_same_recipe(torchscript_int8):
    """The fixtures above export with the default exporter (dynamo); the TorchScript graph
    (--exporter torchscript) passes the same graph checks and stays as close to fp32."""
    from factories import structured_frames
    from novum.runtime.backends.ort import run_onnx

    fp32, made = torchscript_int8
    assert all(r.summary.ok for r in made.values())
    _assert_trt_graph(made[TENSORRT].path)
    _assert_ort_graph(made[ONNXRUNTIME].path, fp32)
    frames = structured_frames(6, *SIZE, seed=5)
    a = run_onnx(fp32, frames)
    for r in made.values():
        cos = (a["features"] * run_onnx(r.path, frames)["features"]).sum(1)
        assert cos.mean() >= 0.97 and cos.min() >= 0.85, (r.target, cos.mean(), cos.min())


@pytest.mark.slow
def test_full_upstream_model_graphs_pass_both_checks(upstream_model, tmp_path):
    fp32, made = _upstream_layout_int8(upstream_model, tmp_path, input_size=(128, 160))
    _assert_trt_graph(made[TENSORRT].path)
    _assert_ort_graph(made[ONNXRUNTIME].path, fp32)


def test_graph_checks_fail_on_graphs_that_break_them(int8, fp32_onnx, tmp_path):
    """The checks above can fail: the TensorRT graph on ONNX Runtime leaves every conv in fp32 behind
    Q/DQ pairs; ONNX Runtime's uint8 graph breaks TensorRT's rules and op table."""
    rep = ort_fusion(int8[TENSORRT].path)
    assert rep.int8_convs == 0 and len(rep.fp32_convs) == len(find_parts(onnx.load(str(fp32_onnx))).convs)
    assert rep.standalone and not rep.ok()
    ort_graph = onnx.load(str(int8[ONNXRUNTIME].path))
    assert trt_placement_issues(ort_graph)
    assert any("UINT8" in u for u in unsupported_nodes(ort_graph))
    assert any("zero point must be 0" in u for u in unsupported_nodes(ort_graph))
    # an fp32 op slipped in front of a residual Add keeps it (and the op) in fp32 between int8 tensors
    m = onnx.load(str(int8[ONNXRUNTIME].path))
    add = next(n for n in m.graph.node if n.op_type == "Add" and n.name in set(find_parts(m).backbone))
    m.graph.node.append(onnx.helper.make_node("Sigmoid", [add.input[0]], ["squashed"], name="extra_sigmoid"))
    add.input[0] = "squashed"
    onnx.save(m, tmp_path / "bad.onnx")
    bad = ort_fusion(tmp_path / "bad.onnx")
    assert any("Sigmoid" in p for p in bad.problems()) and not bad.ok(), bad.summary()


def test_inspect_qdq_catches_violations(int8):
    m = onnx.load(str(int8[TENSORRT].path))
    dq = next(n for n in m.graph.node if n.op_type == "DequantizeLinear")
    zp = next(t for t in m.graph.initializer if t.name == dq.input[2])
    arr = numpy_helper.to_array(zp).copy()
    arr.flat[0] = 3
    zp.CopyFrom(numpy_helper.from_array(arr, zp.name))
    act = next(n for n in m.graph.node if n.op_type == "QuantizeLinear")
    mm = next(n for n in m.graph.node if n.op_type == "MatMul")
    x = mm.input[1]  # the features: now through a Q/DQ pair
    m.graph.node.extend([onnx.helper.make_node("QuantizeLinear", [x, *act.input[1:]], ["x_q"], name="bad_q"),
                         onnx.helper.make_node("DequantizeLinear", ["x_q", *act.input[1:]], ["x_dq"], name="bad_dq")])
    mm.input[1] = "x_dq"
    s = inspect_qdq(m, TENSORRT)
    assert dq.name in s.bad_zero_points and {mm.name, "bad_q", "bad_dq"} <= set(s.head_qdq) and not s.ok
    assert any("bad_dq" in p for p in s.placement)
    u8 = inspect_qdq(onnx.load(str(int8[ONNXRUNTIME].path)), TENSORRT)   # uint8 zero points: not for TensorRT
    assert u8.bad_zero_points and inspect_qdq(onnx.load(str(int8[ONNXRUNTIME].path)), ONNXRUNTIME).ok


@pytest.mark.parametrize("target", [ONNXRUNTIME, TENSORRT])
def test_int8_runs_on_ort_cpu_close_to_fp32(fp32_onnx, int8, target):
    """Stated tolerance (random-weight small model, structured frames): per-pixel feature cosine
    mean >= 0.97 and min >= 0.85; winning similarity (vertex_score, in [0, 1]) mean abs error <= 0.02."""
    from factories import structured_frames
    from novum.runtime.backends.ort import run_onnx

    frames = structured_frames(6, *SIZE, seed=5)
    a, b = run_onnx(fp32_onnx, frames), run_onnx(int8[target].path, frames)
    assert b["scores"].shape == a["scores"].shape and np.isfinite(b["scores"]).all()
    cos = (a["features"] * b["features"]).sum(1)
    assert cos.mean() >= 0.97 and cos.min() >= 0.85, (cos.mean(), cos.min())
    assert np.abs(a["vertex_score"] - b["vertex_score"]).mean() <= 0.02
    assert not np.array_equal(a["features"], b["features"])  # it really is a different (quantized) graph


def test_metadata_records_target_recipe_and_calibration(int8):
    from novum.contracts.onnx_file import read_metadata

    for target, r in int8.items():
        meta = read_metadata(r.path)
        assert meta["precision"] == "int8" and meta["int8_target"] == target and meta["calib_method"] == DEFAULT_METHOD
        assert meta["int8_activations"] == ("uint8" if target == ONNXRUNTIME else "int8")
        assert meta["int8_weight_bits"] == ("7" if target == ONNXRUNTIME else "8")
        assert json.loads(meta["calib_samples"]) == r.calib.names and len(r.calib.names) == 8
        assert meta["calib_count"] == "8" and meta["calib_seed"] == "0" and meta["calib_kind"] == "synthetic"
        assert json.loads(meta["int8_fp32_layers"]) == [] and int(meta["int8_quantized_convs"]) == len(r.summary.quantized_convs)
        gate = json.loads(meta["int8_gate"])
        assert gate["frames"] == 12 and gate["agreement"] == pytest.approx(r.gate.agreement)
        assert meta["config"].input_size == SIZE  # the fp32 metadata travels along
    fusion = json.loads(read_metadata(int8[ONNXRUNTIME].path)["int8_ort_fusion"])
    assert fusion["fp32_convs"] == 0 and fusion["standalone_qdq"] == 0 and fusion["int8_convs"] > 10


def test_calibration_is_fed_in_bounded_calls_with_the_same_minmax_ranges(fp32_onnx, tmp_path, monkeypatch):
    """ONNX Runtime's calibrators hold every tensor of every frame of a call: large inputs are fed a few
    frames per call (the ranges merge); min/max ranges are the same as from one call."""
    import onnxruntime.quantization.calibrate as ort_cal

    from novum.calibration import quantize as q

    assert q.frames_per_call((128, 160)) == 64 and q.frames_per_call((640, 800)) == 2
    calls: list[int] = []
    real = ort_cal.MinMaxCalibrater.collect_data

    def counted(self, reader):
        calls.append(0)
        return real(self, reader)

    monkeypatch.setattr(ort_cal.MinMaxCalibrater, "collect_data", counted)
    kw = dict(samples=12, gate=False, log=None, method="minmax")
    whole = quantize(fp32_onnx, tmp_path / "a" / "m_int8.onnx", **kw)
    assert len(calls) == 1
    calls.clear()
    monkeypatch.setattr(q, "CALL_PIXELS", 5 * 128 * 160)           # 5 frames per call: 12 frames in 3 calls
    split = quantize(fp32_onnx, tmp_path / "b" / "m_int8.onnx", **kw)
    assert len(calls) == 3
    a, b = (json.loads(r.cache_path.read_text())["tensors"] for r in (whole, split))
    assert a == b and len(a["data"]) > 5


def test_cache_reused_then_invalidated_when_data_change(fp32_onnx, tmp_path):
    from factories import structured_frames

    folder = tmp_path / "frames"
    folder.mkdir()
    imgs = structured_frames(6, 120, 150, seed=7)
    for i, img in enumerate(imgs):
        cv2.imwrite(str(folder / f"f{i}.png"), img)
    out = tmp_path / "m_int8.onnx"
    kw = dict(calib=folder, samples=4, gate=False, log=None)
    first = quantize(fp32_onnx, out, **kw)
    assert first.calibrated and first.cache_path.is_file()
    data = out.read_bytes()
    again = quantize(fp32_onnx, out, **kw)
    assert not again.calibrated and out.read_bytes() == data  # ranges from the cache: same model
    trt = quantize(fp32_onnx, tmp_path / "m_int8_trt.onnx", target=TENSORRT, **kw)
    assert trt.calibrated  # the cache sits next to the file it was made for
    other = quantize(fp32_onnx, out, method=next(m for m in METHODS if m != DEFAULT_METHOD), **kw)   # not the default
    assert other.calibrated
    quantize(fp32_onnx, out, **kw)
    for name in first.calib.names:  # same file names, new pixels
        cv2.imwrite(str(folder / name), 255 - cv2.imread(str(folder / name)))
    changed = quantize(fp32_onnx, out, **kw)
    assert changed.calibrated and changed.calib.names == first.calib.names


def test_cli_gate_fails_loudly_then_allow_degraded_and_speed_report(small_model, tmp_path, capsys):
    from novum.checkpoint import save_native
    from novum.export.cli import main

    ckpt = save_native(small_model, tmp_path / "small.safetensors")
    args = ["--checkpoint", str(ckpt), "--output-dir", str(tmp_path / "out"), "--calib", "demo",
            "--calib-samples", "6", "--calib-holdout", "48", "--int8-threshold", "1.0", "--no-engine",
            "--int8-speed-rounds", "1"]
    rc = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and err[0].startswith("error: INT8 (onnxruntime) top-1 agreement")
    assert "--allow-degraded" in err[0]
    assert not (tmp_path / "out" / "small_int8.onnx").exists()  # nothing degraded left behind
    rc = main(args + ["--allow-degraded"])
    cap = capsys.readouterr()
    assert rc == 0 and "WARNING: INT8 (onnxruntime) AGREES" in cap.out and "calibration skipped" in cap.out
    assert (tmp_path / "out" / "small_int8.onnx").is_file() and (tmp_path / "out" / "small_int8_trt.onnx").is_file()
    assert "int8 speed on this machine" in cap.out and "int8 / fp32 speed" in cap.out and "avx2" in cap.out


def test_cli_int8_target_and_speed_options_reach_the_api(monkeypatch):
    import novum.api as api
    from novum.api import ExportResult
    from novum.export.cli import main

    seen = {}
    monkeypatch.setattr(api, "export", lambda *a, **k: seen.update(k) or ExportResult())   # the CLI imports it per call
    assert main(["--int8", "--int8-target", "tensorrt", "--int8-speed-rounds", "0"]) == 0
    assert seen["int8"] and seen["int8_options"]["targets"] == ("tensorrt",) and seen["int8_options"]["speed_rounds"] == 0
    assert main(["--calib", "demo"]) == 0 and seen["int8_options"]["targets"] == ("onnxruntime", "tensorrt")


def test_wrong_target_is_refused_in_one_line(int8, monkeypatch, tmp_path):
    from fakes import install
    from novum.errors import InputError
    from novum.export.tensorrt import EngineBuildError, build_engine
    from novum.runtime.backends import load

    trt, drv = install(monkeypatch)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    gpu = (drv.DEVICE_NAME, drv.COMPUTE_CAPABILITY)
    with pytest.raises(EngineBuildError) as e:
        build_engine(int8[ONNXRUNTIME].path, tmp_path / "x.engine", trt=trt, gpu=gpu, log=lambda s: None)
    msg = str(e.value)
    assert "\n" not in msg and "small_int8.onnx" in msg and "use small_int8_trt.onnx" in msg and "uint8" in msg
    assert not (tmp_path / "x.engine").exists()
    with pytest.raises(InputError, match="use small_int8_trt.onnx"):
        load(int8[ONNXRUNTIME].path, device="tensorrt")
    with load(int8[TENSORRT].path, device="cpu") as b:  # runs on the CPU, and says it is the slow choice there
        assert "TensorRT int8 graph" in b.describe() and "small_int8.onnx" in b.describe()


def test_fake_tensorrt_builds_and_runs_the_trt_int8_graph(int8, monkeypatch, tmp_path):
    """The fake parser checks every node against the op table: the TensorRT graph builds and its
    engine computes what ONNX Runtime computes; the ONNX Runtime graph would fail the parse."""
    from factories import structured_frames
    from fakes import install
    from novum.export.tensorrt import EngineOptions, build_engine
    from novum.runtime.backends import load

    trt, drv = install(monkeypatch)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    eng = build_engine(int8[TENSORRT].path, tmp_path / "small_int8.engine", trt=trt,
                       gpu=(drv.DEVICE_NAME, drv.COMPUTE_CAPABILITY), options=EngineOptions(max_batch=2), log=lambda s: None)
    x = structured_frames(2, *SIZE, seed=3)
    with load(eng) as b, load(int8[TENSORRT].path, intra_op_threads=1) as o:
        assert b.precision == "int8"
        np.testing.assert_allclose(b.infer(x)["scores"], o.infer(x)["scores"], atol=1e-6)
    parser = trt.OnnxParser(trt.Builder(trt.Logger()).create_network(1), trt.Logger())
    assert not parser.parse_from_file(str(int8[ONNXRUNTIME].path))
    assert any("UINT8" in parser.get_error(i) for i in range(parser.num_errors))


def test_op_table_flags_what_tensorrt_cannot_parse(fp32_onnx, tmp_path):
    from novum.export.fp16 import convert_fp16

    assert not unsupported_nodes(fp32_onnx) and not unsupported_nodes(convert_fp16(fp32_onnx, tmp_path / "h.onnx"))
    m = onnx.load(str(fp32_onnx))
    m.graph.node.append(onnx.helper.make_node("Det", ["x"], ["y"], name="det"))
    k = onnx.numpy_helper.from_array(np.array([5000], np.int64), "k")
    m.graph.initializer.append(k)
    m.graph.node.append(onnx.helper.make_node("TopK", [m.graph.output[0].name, "k"], ["v", "i"], name="topk"))
    bad = unsupported_nodes(m)
    assert any(b.startswith("det (Det)") for b in bad) and any("K must be less than 3840" in b for b in bad)


def test_fallback_search_keeps_the_worst_layers_until_top1_holds(monkeypatch, tmp_path):
    """The search on fake models: layer a flips 6 frames, b flips 1, c none; a and b stay fp32."""
    import novum.calibration.fallback as fallback
    from novum.calibration.fallback import search

    ref = np.tile([[3.0, 1.0, 0.0]], (10, 1))
    flips = {"a": [0, 1, 2, 3, 4, 9], "b": [5], "c": []}
    size = {"a": 0.5, "b": 0.2, "c": 0.01}

    def build(nodes, path):
        path.write_text(json.dumps(nodes))
        return path

    def fake_run(path, frames, max_batch=None):
        if path.name == "fp32.onnx":
            return {"scores": ref.copy()}
        s = ref.copy()
        for n in json.loads(path.read_text()):
            s += size[n]
            s[flips[n], 1] += 10.0
        return {"scores": s}

    monkeypatch.setattr(fallback, "run_onnx", fake_run)
    r = search(build, ["a", "b", "c"], tmp_path / "fp32.onnx", np.zeros((10, 1)), 1.0, 3, tmp_path)
    assert r.fp32_layers == ["a", "b"] and r.agreement == 1.0 and r.full_agreement == pytest.approx(0.3)
    assert r.sensitivity["a"] > r.sensitivity["b"] > r.sensitivity["c"]
    none = search(build, ["a", "b", "c"], tmp_path / "fp32.onnx", np.zeros((10, 1)), 0.3, 3, tmp_path)
    assert none.fp32_layers == [] and not none.sensitivity  # good enough already: no search


def test_fallback_layers_stay_fp32_in_both_graphs_and_metadata(fp32_onnx, tmp_path, monkeypatch):
    import novum.calibration.quantize as q
    from novum.calibration.fallback import FallbackResult
    from novum.contracts.onnx_file import read_metadata

    convs = find_parts(onnx.load(str(fp32_onnx))).convs
    chosen = [convs[0], convs[5]]
    monkeypatch.setattr(q, "search", lambda *a, **k: FallbackResult(chosen, 1.0, 0.5))
    made = quantize_targets(fp32_onnx, tmp_path / "fb_int8.onnx", samples=4, fallback=2, gate=False, log=None)
    for target, r in made.items():
        assert r.fp32_layers == chosen and r.summary.ok
        assert r.summary.fp32_convs == chosen and len(r.summary.quantized_convs) == len(convs) - 2
        g = _graph(r.path)
        producer = _producers(g)
        kept = [n for n in g.node if n.name in chosen]
        assert len(kept) == 2 and all(producer.get(n.input[1]) is None for n in kept)  # fp32 weights
        assert json.loads(read_metadata(r.path)["int8_fp32_layers"]) == chosen
    rep = ort_fusion(made[ONNXRUNTIME].path)
    assert len(rep.fp32_convs) == 2 and rep.ok(chosen) and not rep.ok()


def test_cpu_flags_and_speed_report(tmp_path, fp32_onnx, int8):
    from novum.runtime.speed import SpeedComparison, compare_speed, cpu_info, speed_report

    avx2 = tmp_path / "avx2"
    avx2.write_text("processor : 0\nmodel name : AMD EPYC 7B13\nflags : fpu sse avx avx2 fma\n\n")
    vnni = tmp_path / "vnni"
    vnni.write_text("processor : 0\nmodel name : Intel Xeon\nflags : avx2 avx512f avx512_vnni amx_int8\n")
    a, v = cpu_info(avx2), cpu_info(vnni)
    assert not a.vnni and v.vnni and "avx512_vnni no" in a.line() and "avx512_vnni yes" in v.line()
    assert "cannot be expected" in a.int8_note() and v.int8_note() is None
    assert cpu_info(tmp_path / "missing").model.startswith("unknown")
    slow = SpeedComparison([10.0, 10.0, 10.0], [12.0, 11.0, 12.5], threads=1, batch=1, iters=3)
    lines = speed_report(slow, a)
    assert slow.speedup < 1 and lines[1].startswith("warning: int8 is not faster") and "AVX2 but no VNNI" in lines[2]
    fast = SpeedComparison([10.0, 10.0, 10.0], [4.0, 5.0, 4.5], threads=1, batch=1, iters=3)
    assert fast.speedup == pytest.approx(2.22, abs=0.01) and len(speed_report(fast, v)) == 1
    real = compare_speed(fp32_onnx, int8[ONNXRUNTIME].path, np.zeros((1, *SIZE, 3), np.uint8), rounds=2, iters=1, threads=1)
    assert len(real.ratios) == 2 and all(t > 0 for t in real.fp32_ms + real.int8_ms)
