"""Export: ONNX Runtime vs torch for fp32 and fp16 (small model and upstream architecture)."""
from __future__ import annotations

import copy
import dataclasses

import numpy as np
import onnx
import onnx.shape_inference
import pytest
import torch

from factories import make_small_model, structured_frames
from novum.contracts.onnx_file import EXPORTERS, read_metadata
from novum.export.fp16 import convert_fp16
from novum.export.frames import render_frames
from novum.export.onnx import DEFAULT_OPSETS, export_onnx, shape_from_cast
from novum.export.trt_ops import unsupported_nodes
from novum.export.verify import TOLERANCES, compare, verify
from novum.io import sha256_file
from novum.runtime.backends.ort import run_onnx


@pytest.fixture(scope="session", params=EXPORTERS)
def small_exports(request, small_model, tmp_path_factory):
    """fp32 and fp16 exports of the small model, by each exporter (dynamo, the default; torchscript)."""
    d = tmp_path_factory.mktemp(f"export_small_{request.param}")
    fp32 = export_onnx(small_model, d / "small.onnx", features=True, max_batch=4, source_sha256="ab" * 32,
                       exporter=request.param)
    fp16 = convert_fp16(fp32, d / "small_fp16.onnx")
    return {"fp32": fp32, "fp16": fp16, "exporter": request.param}


@pytest.fixture(scope="session")
def frames():
    return np.concatenate([render_frames(6, 128, 160, seed=3), structured_frames(4, 128, 160, seed=4)])


def torch_ref(model, frames):
    with torch.no_grad():
        out = model.predict_bgr(torch.from_numpy(frames))
    return {k: v.numpy() for k, v in out.items()}


def test_fp32_onnx_matches_torch(small_model, small_exports, frames):
    ref = torch_ref(small_model, frames)
    out = run_onnx(small_exports["fp32"], frames)
    assert list(out) == ["scores", "vertex", "vertex_score", "features"]
    assert out["scores"].dtype == np.float32 and out["vertex"].dtype == np.int32
    assert out["vertex"].shape == (len(frames), 16, 20)
    assert np.abs(out["scores"] - ref["scores"]).max() <= 1e-5
    assert (out["scores"].argmax(1) == ref["scores"].argmax(1)).all()
    diff = out["vertex"] != ref["vertex"]
    assert diff.mean() <= 1e-3  # identical except at float ties
    assert np.abs(out["vertex_score"] - ref["vertex_score"]).max() <= 1e-5
    assert np.abs(out["features"] - ref["features"]).max() <= 1e-5
    # padding rows vote for nobody: -1 appears exactly where torch has -1
    assert ((out["vertex"] == -1) == (ref["vertex"] == -1)).mean() >= 0.999


def test_dynamic_batch(small_model, small_exports, frames):
    ref = torch_ref(small_model, frames[:3])
    for b in (1, 3):
        out = run_onnx(small_exports["fp32"], frames[:b])
        assert out["scores"].shape == (b, 12)
        assert np.abs(out["scores"] - ref["scores"][:b]).max() <= 1e-5


def test_declared_shapes_dynamic_batch_static_hw(small_exports):
    """Batch is the only symbolic dim; every other declared dim is the static size ORT returns."""
    for prec in ("fp32", "fp16"):
        proto = onnx.load(str(small_exports[prec]), load_external_data=False)
        declared = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
                    for v in list(proto.graph.input) + list(proto.graph.output)}
        assert declared == {"images": ["batch", 128, 160, 3], "scores": ["batch", 12], "vertex": ["batch", 16, 20],
                            "vertex_score": ["batch", 16, 20], "features": ["batch", 64, 16, 20]}, prec


def test_metadata_round_trip(small_model, small_exports):
    exporter = small_exports["exporter"]
    opset = DEFAULT_OPSETS[exporter]
    for prec in ("fp32", "fp16"):
        path = small_exports[prec]
        meta = read_metadata(path)
        assert dataclasses.replace(meta["config"], framing=None) == small_model.config   # + the measured framing
        assert meta["precision"] == prec and meta["opset"] == opset and meta["exporter"] == exporter
        assert meta["classes"] == list(small_model.classes)
        assert meta["input_format"] == "uint8 NHWC BGR" and meta["input_size"] == [128, 160]
        assert meta["n_list"] == list(small_model.config.n_list) and meta["max_n"] == small_model.config.max_n
        assert meta["outputs"] == ["scores", "vertex", "vertex_score", "features"]
        assert meta["source_sha256"] == "ab" * 32 and meta["novum_version"]
        proto = onnx.load(str(path))
        assert [o.name for o in proto.graph.output] == meta["outputs"]
        assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == opset
        inp = proto.graph.input[0]
        assert inp.name == "images" and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
        dims = [d.dim_value or d.dim_param for d in inp.type.tensor_type.shape.dim]
        assert dims[1:] == [128, 160, 3] and isinstance(dims[0], str)
        # TensorRT takes a uint8 network input only into a Cast
        assert {n.op_type for n in proto.graph.node if "images" in n.input} == {"Cast"}


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_head_never_materialises_full_matrix(small_model, tmp_path, exporter):
    """Every similarity tensor of the exported head has at most max_n rows; the dense one has C*max_n."""
    cfg = small_model.config

    def matmul_rows(path):
        g = onnx.shape_inference.infer_shapes(onnx.load(str(path))).graph
        shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in g.value_info}
        return [shapes[n.output[0]][-2] for n in g.node if n.op_type == "MatMul"]

    blocks = matmul_rows(export_onnx(small_model, tmp_path / "b.onnx", exporter=exporter))
    dense = matmul_rows(export_onnx(small_model, tmp_path / "d.onnx", dense_head=True, exporter=exporter))
    assert blocks == [cfg.max_n] * cfg.num_classes
    assert dense == [cfg.num_vertex_rows]


def test_fp16_onnx_within_tolerance(small_model, small_exports, frames):
    ref = torch_ref(small_model, frames)
    out = run_onnx(small_exports["fp16"], frames)
    assert {k: v.dtype for k, v in out.items()} == {"scores": np.float32, "vertex": np.int32,
                                                     "vertex_score": np.float32, "features": np.float32}
    cfg = small_model.config
    rep = compare(ref, out, "fp16", "onnxruntime", "fp16", 16 * 20, cfg.num_vertex_rows)
    assert rep.ok, rep.checks
    tol = TOLERANCES["fp16"]
    assert np.abs(out["scores"] - ref["scores"]).max() <= tol.scores_limit(16 * 20, cfg.num_vertex_rows)
    assert (out["vertex"] == ref["vertex"]).mean() >= tol.vertex_agree
    assert rep.top1 >= 0.9  # raw agreement, near-ties included


def test_fp16_graph_precision_layout(small_exports):
    """Convolutions and matching GEMMs in fp16; L2 normalisation and score sums in fp32."""
    path = small_exports["fp16"]
    proto = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    g = proto.graph
    types = {v.name: v.type.tensor_type.elem_type for v in list(g.value_info) + list(g.input) + list(g.output)}
    types.update({t.name: t.data_type for t in g.initializer})
    f16, f32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT

    def in_type(op):
        return {types.get(n.input[0]) for n in g.node if n.op_type == op}

    assert in_type("Conv") == {f16}
    assert in_type("MatMul") == {f16}
    assert in_type("ReduceL2") == {f32}
    assert in_type("ReduceSum") == {f32}
    weights = [t for t in g.initializer if t.data_type in (f16, f32) and np.prod(t.dims) > 16]  # not mean/std
    assert weights and all(t.data_type == f16 for t in weights)
    onnx.checker.check_model(proto)


def test_fp16_survives_large_feature_norms(small_model, tmp_path, frames):
    """Feature norms far above 256 overflow an fp16 sum of squares; the normalisation stays fp32."""
    big = copy.deepcopy(small_model)
    with torch.no_grad():
        big.backbone.out_layer.weight.mul_(1000.0)
        norms = big.backbone.net(big.preprocess(torch.from_numpy(frames[:2])))
        norms = torch.nn.functional.conv2d(norms, big.backbone.out_layer.weight[:, :, None, None]).norm(dim=1)
    assert norms.min() > 256
    fp16 = convert_fp16(export_onnx(big, tmp_path / "big.onnx"), tmp_path / "big_fp16.onnx")
    rep = verify(big, [fp16], frames=frames[:4])
    assert rep.ok, rep.table()
    out = run_onnx(fp16, frames[:2])
    assert (out["vertex_score"] > 0.3).all()  # a zeroed feature would give 0.5 everywhere


def test_verify_detects_a_wrong_model(small_exports, frames):
    other = make_small_model(seed=5)
    rep = verify(other, [small_exports["fp32"]], frames=frames[:4])
    assert not rep.ok
    assert "NO" in rep.table()


def test_upstream_checkpoint_cli_fp32_fp16(upstream_ckpt, upstream_model, tmp_path, capsys):
    from novum.export.cli import main

    out = tmp_path / "exp"
    rc = main(["--checkpoint", str(upstream_ckpt), "--output-dir", str(out), "--imgsz", "128", "160", "--fp16",
               "--no-engine", "--verify", "--verify-frames", "4", "--force-imgsz"])   # CPU-sized, not its 640x800
    captured = capsys.readouterr()
    text = captured.out
    assert rc == 0, text
    assert "trained at 640x800" in captured.err and "not verified" in captured.err
    fp32, fp16 = out / f"{upstream_ckpt.stem}.onnx", out / f"{upstream_ckpt.stem}_fp16.onnx"
    assert sorted(p.name for p in out.iterdir()) == sorted([fp32.name, fp16.name])
    meta = read_metadata(fp16)
    assert meta["input_size"] == [128, 160] and meta["precision"] == "fp16"
    assert meta["source_sha256"] == sha256_file(upstream_ckpt)
    assert meta["n_list"] == list(upstream_model.config.n_list) and meta["max_n"] == 1130
    assert meta["novum_config"]["backbone"]["arch"] == "resnetext50"
    assert "| scores |" in text and "| NO |" not in text
    # the exported graph computes what torch computes on the upstream architecture
    fr = structured_frames(3, 128, 160, seed=7)
    ref = torch_ref(upstream_model, fr)
    o32 = run_onnx(fp32, fr)
    assert np.abs(o32["scores"] - ref["scores"]).max() <= 1e-5
    assert (o32["scores"].argmax(1) == ref["scores"].argmax(1)).all()
    assert (o32["vertex"] == ref["vertex"]).mean() >= 0.999
    o16 = run_onnx(fp16, fr)
    rep = compare(ref, o16, "fp16", "onnxruntime", "fp16", 16 * 20, 12 * 1130)
    assert rep.ok, rep.checks


def test_vertex_check_accepts_ties_between_duplicate_rows_only():
    """Duplicated cuboid vertices (unwelded edges) learn the same feature: a different winning row
    with the same similarity is a tie, not an error; a genuinely different row is."""
    from novum.export.verify import compare

    rng = np.random.default_rng(0)
    bank = rng.normal(size=(8, 4))
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    bank[5] = bank[2]                                            # row 5 duplicates row 2
    feat = np.zeros((1, 4, 2, 2))
    feat[0, :, 0, 0] = bank[2]                                   # pixel (0, 0) matches rows 2 and 5 equally
    feat[0, :, 1, 1] = bank[7]
    ref = {"scores": np.array([[0.3, 0.1]]), "vertex": np.array([[[2, 0], [1, 7]]], np.int32),
           "vertex_score": np.ones((1, 2, 2), np.float32), "features": feat}
    tie = dict(ref, vertex=np.array([[[5, 0], [1, 7]]], np.int32))
    wrong = dict(ref, vertex=np.array([[[2, 0], [1, 3]]], np.int32))
    check = {c.output: c for c in compare(ref, tie, "t", "ort", "fp32", 4, 8, bank=bank).checks}["vertex"]
    assert check.ok and check.agreement == 1.0
    check = {c.output: c for c in compare(ref, wrong, "w", "ort", "fp32", 4, 8, bank=bank).checks}["vertex"]
    assert not check.ok and check.agreement == 0.75
    check = {c.output: c for c in compare(ref, tie, "t", "ort", "fp32", 4, 8).checks}["vertex"]   # no bank: exact rows
    assert not check.ok


@pytest.mark.slow
@pytest.mark.parametrize("exporter", EXPORTERS)
def test_upstream_size_export_parity(upstream_model, tmp_path, exporter):
    """The README's export table at full size: the upstream-layout model (ResNet-50 resnetext,
    640x800) exported to ONNX fp32 and fp16 and verified against torch on rendered frames."""
    fp32 = export_onnx(upstream_model, tmp_path / "upstream.onnx", max_batch=2, exporter=exporter)
    fp16 = convert_fp16(fp32, tmp_path / "upstream_fp16.onnx")
    rep = verify(upstream_model, [fp32, fp16], n_frames=2)
    assert rep.ok, rep.table()
    scores = {t.precision: next(c for c in t.checks if c.output == "scores") for t in rep.targets}
    assert scores["fp32"].max_abs <= 1e-5 and scores["fp16"].agreement == 1.0


def test_graphs_use_only_what_tensorrt_parses(small_exports):
    """fp32 and fp16 graphs of both exporters: every op, input type and restriction in TensorRT
    10.x's ONNX operator table (novum.export.trt_ops; INT8: tests/test_int8.py)."""
    for prec in ("fp32", "fp16"):
        assert unsupported_nodes(onnx.load(str(small_exports[prec]))) == [], (small_exports["exporter"], prec)


def test_a_shape_read_from_the_uint8_input_moves_after_its_cast(small_exports):
    """What export_onnx does to the dynamo graph: TensorRT refuses a Shape on the uint8 input."""
    proto = onnx.load(str(small_exports["fp32"]))
    cast = next(n for n in proto.graph.node if n.op_type == "Cast" and n.input[0] == "images")
    proto.graph.node.insert(0, onnx.helper.make_node("Shape", ["images"], ["images_shape"], name="uint8_shape"))
    proto.graph.node.append(onnx.helper.make_node("Identity", ["images_shape"], ["shape_copy"], name="use"))
    problems = unsupported_nodes(proto)
    assert len(problems) == 1 and problems[0].startswith("uint8_shape (Shape): input type UINT8"), problems
    shape_from_cast(proto)
    assert unsupported_nodes(proto) == []
    nodes = list(proto.graph.node)
    shape = next(n for n in nodes if n.name == "uint8_shape")
    assert shape.input[0] == cast.output[0] and nodes.index(shape) == nodes.index(cast) + 1


def test_int8_score_cosine_is_checked_on_decisive_frames_only():
    """A frame whose scores all lie within the tolerance has no direction to keep: only the absolute
    bound applies there. A decisive frame whose direction changes still fails."""
    rng = np.random.default_rng(0)
    C, rows, pixels = 12, 12 * 268, 320
    lim = TOLERANCES["int8"].scores_limit(pixels, rows)
    flat = rng.uniform(0, lim / 4, (4, C))                          # margins < 2*lim: not decisive
    flat_out = flat + rng.uniform(-lim / 2, lim / 2, flat.shape)    # cosine far below 0.99, err < lim
    assert (np.sort(flat, 1)[:, -1] - np.sort(flat, 1)[:, -2] < 2 * lim).all()
    rep = compare({"scores": flat}, {"scores": flat_out}, "t", "onnxruntime", "int8", pixels, rows)
    assert rep.decisive == 0 and rep.ok, rep.checks
    clear = np.zeros((1, C))
    clear[0, 0], clear[0, 1] = 3 * lim, 0.5 * lim                   # margin 2.5 x lim: decisive
    turned = clear.copy()
    turned[0, 2:] = 0.95 * lim                                      # each class moves by < lim, cosine 0.71
    both = compare({"scores": np.concatenate([flat, clear])}, {"scores": np.concatenate([flat_out, turned])},
                   "t", "onnxruntime", "int8", pixels, rows)
    assert both.decisive == 1 and not both.ok
    assert both.checks[0].cosine < TOLERANCES["int8"].scores_cos and both.checks[0].max_abs <= lim


@pytest.mark.parametrize("precision,ok", [("int8", True), ("fp16", False)])
def test_vertex_score_bound_quantile(precision, ok):
    """int8 bounds 99% of the cells' vertex_score error (percentile calibration clips on purpose); the
    other precisions bound the largest error."""
    rng = np.random.default_rng(1)
    ref = {"scores": np.eye(3)[None].repeat(2, 0)[:, 0], "vertex_score": rng.uniform(0.5, 1, (2, 16, 20))}
    out = {"scores": ref["scores"].copy(), "vertex_score": ref["vertex_score"] + 1e-4}
    tail = rng.choice(ref["vertex_score"].size, 3, replace=False)    # 3 of 640 cells (0.5%) move by 5e-2
    out["vertex_score"].reshape(-1)[tail] += 5e-2
    rep = compare(ref, out, "t", "onnxruntime", precision, 320, 100)
    check = [c for c in rep.checks if c.output == "vertex_score"][0]
    assert check.max_abs == pytest.approx(5e-2 + 1e-4)
    assert check.ok is ok, check


def test_int8_tie_gap_is_a_rounding_gap_not_the_score_tail_bound():
    """int8 bounds vertex_score at 3e-2 (its clipped tail) but two rows tie only within 2e-2: a row
    whose similarity (cos/2 + 0.5) is 2.5e-2 below the reference's winner is a different answer, one
    1.5e-2 below is a tie."""
    from novum.export.verify import TOLERANCES, compare

    t8 = TOLERANCES["int8"]
    assert t8.vertex_score_atol == 3e-2 and t8.tie_atol == 2e-2
    assert TOLERANCES["fp16"].tie_atol == TOLERANCES["fp16"].vertex_score_atol
    feat = np.zeros((1, 4, 1, 1))
    feat[0, 0, 0, 0] = 1.0
    bank = np.zeros((3, 4))
    for row, cos in ((0, 1.0), (1, 1.0 - 3e-2), (2, 1.0 - 5e-2)):
        bank[row, 0], bank[row, 1] = cos, np.sqrt(1 - cos * cos)
    ref = {"scores": np.array([[0.9, 0.1]]), "vertex": np.zeros((1, 1, 1), np.int32),
           "vertex_score": np.ones((1, 1, 1), np.float32), "features": feat}
    agree = {}
    for row in (1, 2):
        out = dict(ref, vertex=np.full((1, 1, 1), row, np.int32))
        checks = compare(ref, out, "t", "ort", "int8", 1, 3, bank=bank).checks
        agree[row] = next(c for c in checks if c.output == "vertex").agreement
    assert agree == {1: 1.0, 2: 0.0}
