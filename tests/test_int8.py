"""INT8 (Q/DQ) quantization: the TensorRT contract, closeness to fp32 on ORT CPU, cache, gate, metadata."""
from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from novum.calibration.quantize import quantize

SIZE = (128, 160)
HEAD_TYPES = {"MatMul", "ReduceMax", "ArgMax", "ReduceL2", "ReduceSum"}


@pytest.fixture(scope="module")
def fp32_onnx(tmp_path_factory, small_model):
    from novum.export.onnx import export_onnx

    return export_onnx(small_model, tmp_path_factory.mktemp("int8") / "small.onnx", features=True)


@pytest.fixture(scope="module")
def int8(fp32_onnx):
    return quantize(fp32_onnx, fp32_onnx.parent / "small_int8.onnx", samples=8, holdout=12, threshold=0.0, log=None)


def _zero_point(name: str, graph: onnx.GraphProto) -> np.ndarray:
    for t in graph.initializer:
        if t.name == name:
            return numpy_helper.to_array(t)
    for n in graph.node:
        if n.op_type == "Constant" and n.output[0] == name:
            return numpy_helper.to_array(n.attribute[0].t)
    raise AssertionError(f"zero point {name} is neither an initializer nor a Constant")


def test_qdq_zero_points_are_zero_and_head_stays_fp32(int8):
    m = onnx.load(str(int8.path))
    g = m.graph
    qdq = [n for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert len(qdq) > 20
    for n in qdq:  # TensorRT: "zero point must be 0"
        assert len(n.input) == 3 and np.all(_zero_point(n.input[2], g) == 0), n.name
        if n.op_type == "QuantizeLinear":
            assert _zero_point(n.input[2], g).dtype == np.int8
    producer = {o: n for n in g.node for o in n.output}
    # TensorRT dequantizes int8 only: weights are int8 initializers, activations come from a Q, biases stay fp32
    inits = {t.name: t for t in g.initializer}
    for n in qdq:
        if n.op_type == "DequantizeLinear":
            src = inits.get(n.input[0])
            assert (src.data_type == onnx.TensorProto.INT8) if src is not None else \
                producer[n.input[0]].op_type == "QuantizeLinear", n.name
    # the head reads no dequantized tensor and no Q/DQ node lies downstream of the L2 normalisation
    head_nodes = [n for n in g.node if n.op_type in HEAD_TYPES]
    assert {n.op_type for n in head_nodes} == HEAD_TYPES
    for n in head_nodes:
        assert all(producer.get(i) is None or producer[i].op_type != "DequantizeLinear" for i in n.input), n.name
    norm = next(n for n in g.node if n.op_type == "ReduceL2")
    downstream, frontier = set(), [norm.input[0]]
    while frontier:
        t = frontier.pop()
        for n in g.node:
            if t in n.input and n.name not in downstream:
                downstream.add(n.name)
                frontier.extend(n.output)
    assert not [n.name for n in qdq if n.name in downstream]
    proj = producer[norm.input[0]]  # the feature projection keeps fp32 weights
    assert proj.op_type == "Conv" and all(producer.get(i) is None for i in proj.input[1:])
    # every backbone convolution is quantized (weights through DequantizeLinear, int8 per channel)
    convs = [n for n in g.node if n.op_type == "Conv" and n is not proj]
    assert convs and all(producer[n.input[1]].op_type == "DequantizeLinear" for n in convs)
    assert int8.summary.ok and int8.summary.quantized_convs == len(convs)


def test_inspect_qdq_catches_violations(int8):
    from novum.calibration.recipe import inspect_qdq

    m = onnx.load(str(int8.path))
    dq = next(n for n in m.graph.node if n.op_type == "DequantizeLinear")
    zp = next(t for t in m.graph.initializer if t.name == dq.input[2])
    arr = numpy_helper.to_array(zp).copy()
    arr.flat[0] = 3
    zp.CopyFrom(numpy_helper.from_array(arr, zp.name))
    act = next(n for n in m.graph.node if n.op_type == "QuantizeLinear")  # per-tensor activation scale / zero point
    mm = next(n for n in m.graph.node if n.op_type == "MatMul")
    x = mm.input[1]  # the features: now through a Q/DQ pair
    m.graph.node.extend([onnx.helper.make_node("QuantizeLinear", [x, *act.input[1:]], ["x_q"], name="bad_q"),
                         onnx.helper.make_node("DequantizeLinear", ["x_q", *act.input[1:]], ["x_dq"], name="bad_dq")])
    mm.input[1] = "x_dq"
    s = inspect_qdq(m)
    assert dq.name in s.nonzero_zero_points and {mm.name, "bad_q", "bad_dq"} <= set(s.head_qdq) and not s.ok


def test_int8_runs_on_ort_cpu_close_to_fp32(fp32_onnx, int8):
    """Stated tolerance (random-weight small model, structured frames): per-pixel feature cosine
    mean >= 0.97 and min >= 0.85; winning similarity (vertex_score, in [0, 1]) mean abs error <= 0.02."""
    from factories import structured_frames
    from novum.runtime.backends.ort import run_onnx

    frames = structured_frames(6, *SIZE, seed=5)
    a, b = run_onnx(fp32_onnx, frames), run_onnx(int8.path, frames)
    assert b["scores"].shape == a["scores"].shape and np.isfinite(b["scores"]).all()
    cos = (a["features"] * b["features"]).sum(1)
    assert cos.mean() >= 0.97 and cos.min() >= 0.85, (cos.mean(), cos.min())
    assert np.abs(a["vertex_score"] - b["vertex_score"]).mean() <= 0.02
    assert not np.array_equal(a["features"], b["features"])  # it really is a different (quantized) graph


def test_metadata_records_the_calibration(int8):
    from novum.contracts.onnx_file import read_metadata

    meta = read_metadata(int8.path)
    assert meta["precision"] == "int8" and meta["calib_method"] == "percentile"
    assert json.loads(meta["calib_samples"]) == int8.calib.names and len(int8.calib.names) == 8
    assert meta["calib_count"] == "8" and meta["calib_seed"] == "0" and meta["calib_kind"] == "synthetic"
    gate = json.loads(meta["int8_gate"])
    assert gate["frames"] == 12 and gate["agreement"] == pytest.approx(int8.gate.agreement)
    assert meta["config"].input_size == SIZE  # the fp32 metadata travels along


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
    other = quantize(fp32_onnx, out, method="minmax", **kw)
    assert other.calibrated
    quantize(fp32_onnx, out, **kw)
    for name in first.calib.names:  # same file names, new pixels
        cv2.imwrite(str(folder / name), 255 - cv2.imread(str(folder / name)))
    changed = quantize(fp32_onnx, out, **kw)
    assert changed.calibrated and changed.calib.names == first.calib.names


def test_cli_gate_fails_loudly_then_allow_degraded(small_model, tmp_path, capsys):
    from novum.checkpoint import save_native
    from novum.export.cli import main

    ckpt = save_native(small_model, tmp_path / "small.safetensors")
    args = ["--checkpoint", str(ckpt), "--output-dir", str(tmp_path / "out"), "--calib", "demo",
            "--calib-samples", "6", "--calib-holdout", "48", "--int8-threshold", "1.0", "--no-engine"]
    rc = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and err[0].startswith("error: INT8 top-1 agreement") and "--allow-degraded" in err[0]
    assert not (tmp_path / "out" / "small_int8.onnx").exists()  # nothing degraded left behind
    rc = main(args + ["--allow-degraded"])
    cap = capsys.readouterr()
    assert rc == 0 and "WARNING: INT8 AGREES" in cap.out and "calibration skipped" in cap.out
    assert (tmp_path / "out" / "small_int8.onnx").is_file()


def test_ort_cpu_fuses_every_conv_with_a_quantized_output(int8, tmp_path):
    """One Q/DQ pair per consumer lets ONNX Runtime turn every DQ -> Conv -> Q into QLinearConv."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(int8.path), so, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]
    g = onnx.load(str(int8.path)).graph
    producer = {o: n for n in g.node for o in n.output}
    q_out = [n for n in g.node if n.op_type == "QuantizeLinear" and producer.get(n.input[0]) is not None
             and producer[n.input[0]].op_type == "Conv"]
    assert q_out and ops.count("QLinearConv") == len(q_out)


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


def test_fallback_layers_stay_fp32_in_the_graph_and_metadata(fp32_onnx, tmp_path, monkeypatch):
    import novum.calibration.quantize as quantize_module
    from novum.calibration.fallback import FallbackResult
    from novum.calibration.recipe import find_parts
    from novum.contracts.onnx_file import read_metadata

    backbone = find_parts(onnx.load(str(fp32_onnx))).backbone
    chosen = [backbone[0], backbone[5]]
    monkeypatch.setattr(quantize_module, "search", lambda *a, **k: FallbackResult(chosen, 1.0, 0.5))
    r = quantize(fp32_onnx, tmp_path / "fb_int8.onnx", samples=4, fallback=2, gate=False, log=None)
    assert r.fp32_layers == chosen
    g = onnx.load(str(r.path)).graph
    producer = {o: n for n in g.node for o in n.output}
    kept = [n for n in g.node if n.name in chosen]
    assert len(kept) == 2 and all(producer.get(n.input[1]) is None for n in kept)  # fp32 weights
    assert r.summary.ok and r.summary.quantized_convs == len(backbone) - 2
    assert json.loads(read_metadata(r.path)["int8_fp32_layers"]) == chosen


def test_conv_output_qdq_only_where_exact(int8):
    """A Conv output keeps its Q/DQ pair only when it reaches (through ReLU / MaxPool) quantizers of
    the same scale, so the second rounding is exact; the projection's input is never quantized."""
    g = onnx.load(str(int8.path)).graph
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    scale = {t.name: float(numpy_helper.to_array(t)) for t in g.initializer if t.dims == []}
    checked = 0
    for q in g.node:
        if q.op_type != "QuantizeLinear" or producer.get(q.input[0]) is None or producer[q.input[0]].op_type != "Conv":
            continue
        (dq,) = consumers[q.output[0]]
        t = dq.output[0]
        while len(consumers[t]) == 1 and consumers[t][0].op_type in ("Relu", "MaxPool"):
            t = consumers[t][0].output[0]
        nxt = consumers[t]
        assert t != dq.output[0] and nxt and all(n.op_type == "QuantizeLinear" for n in nxt), q.name
        assert {scale[n.input[1]] for n in nxt} == {scale[q.input[1]]}, q.name
        checked += 1
    norm = next(n for n in g.node if n.op_type == "ReduceL2")
    proj = producer[norm.input[0]]
    assert checked > 0 and producer[proj.input[0]].op_type != "DequantizeLinear"
