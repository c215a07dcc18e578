"""Triton model repositories: every config.pbtxt parsed with Triton's own protobuf schema
(tritonclient's model_config_pb2) and matched against the ONNX file's real I/O (ONNX Runtime)."""
from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from novum.checkpoint import save_native
from novum.errors import InputError
from novum.export.cli import main as export_main
from novum.contracts.onnx_file import read_metadata
from novum.contracts.triton_repository import ModelSpec, RepoOptions, TensorSpec, config_text, write_model

try:  # optional third-party piece ([serve] extra): Triton's schema
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc
except ImportError:  # pragma: no cover - depends on the install
    mc = None

needs_schema = pytest.mark.skipif(mc is None, reason="needs tritonclient (pip install -e '.[serve]') for Triton's "
                                                     "model-config schema")
ORT_TO_TRITON = {"tensor(uint8)": "TYPE_UINT8", "tensor(float)": "TYPE_FP32", "tensor(int32)": "TYPE_INT32",
                 "tensor(float16)": "TYPE_FP16", "tensor(int64)": "TYPE_INT64"}


def parse(path):
    return text_format.Parse(path.read_text(), mc.ModelConfig())


def check_against_onnx(cfg, onnx_path, max_batch: int) -> None:
    """The config's I/O is the ONNX graph's: names, order, Triton types, dims after the batch axis."""
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert cfg.max_batch_size == max_batch
    for declared, real in ((cfg.input, sess.get_inputs()), (cfg.output, sess.get_outputs())):
        assert [t.name for t in declared] == [t.name for t in real]
        for t, r in zip(declared, real):
            assert mc.DataType.Name(t.data_type) == ORT_TO_TRITON[r.type]
            assert isinstance(r.shape[0], str)                       # ORT: dynamic batch axis ...
            assert list(t.dims) == list(r.shape[1:])                  # ... the rest static and equal
    assert [o.name for o in cfg.output if o.label_filename] == ["scores"]
    assert cfg.HasField("dynamic_batching") and cfg.dynamic_batching.max_queue_delay_microseconds == 1000
    meta = read_metadata(onnx_path)
    assert json.loads(cfg.parameters["novum_config"].string_value) == meta["novum_config"]
    assert cfg.parameters["novum_precision"].string_value == meta["precision"]


@pytest.fixture(scope="module")
def native(small_model, tmp_path_factory):
    return save_native(small_model, tmp_path_factory.mktemp("tri") / "small.safetensors")


@needs_schema
def test_export_triton_repository_matches_onnx_io(native, small_model, tmp_path, capsys):
    out, repo = tmp_path / "e", tmp_path / "repo"
    assert export_main(["--checkpoint", str(native), "--output-dir", str(out), "--fp16", "--features", "--batch", "4",
                        "--no-engine", "--triton", str(repo)]) == 0
    assert "wrote Triton model repository" in capsys.readouterr().out
    assert sorted(p.name for p in repo.iterdir()) == ["small", "small_fp16"]   # nothing staged left behind
    for name in ("small", "small_fp16"):
        folder = repo / name
        assert sorted(p.name for p in folder.iterdir()) == ["1", "config.pbtxt", "labels.txt"]
        assert (folder / "1" / "model.onnx").read_bytes() == (out / f"{name}.onnx").read_bytes()
        cfg = parse(folder / "config.pbtxt")
        assert cfg.name == name and cfg.platform == "onnxruntime_onnx" and not cfg.backend
        check_against_onnx(cfg, out / f"{name}.onnx", max_batch=4)
        assert [mc.ModelInstanceGroup.Kind.Name(g.kind) for g in cfg.instance_group] == ["KIND_AUTO"]
        assert [g.count for g in cfg.instance_group] == [1]
        assert (folder / "labels.txt").read_text().splitlines() == list(small_model.config.classes)
    assert [o.name for o in parse(repo / "small" / "config.pbtxt").output][-1] == "features"


@needs_schema
def test_engine_becomes_a_tensorrt_plan_model_on_the_gpu(native, tmp_path, monkeypatch):
    """With (the fake) TensorRT and a GPU present: the plan on tensorrt_plan, every model on KIND_GPU."""
    from fakes import install

    install(monkeypatch)   # the fake tensorrt, pycuda and CUDA driver (a GPU, found as novum.gpu finds one)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out, repo = tmp_path / "e", tmp_path / "repo"
    assert export_main(["--checkpoint", str(native), "--output-dir", str(out), "--fp16", "--batch", "2",
                        "--triton", str(repo), "--triton-instances", "2"]) == 0
    assert sorted(p.name for p in repo.iterdir()) == ["small", "small_fp16", "small_fp16_trt"]
    plan = repo / "small_fp16_trt"
    cfg = parse(plan / "config.pbtxt")
    assert cfg.platform == "tensorrt_plan"
    check_against_onnx(cfg, out / "small_fp16.onnx", max_batch=2)       # the plan has its ONNX file's I/O
    assert (plan / "1" / "model.plan").read_bytes() == (out / "small_fp16.engine").read_bytes()
    assert json.loads((plan / "1" / "model.plan.json").read_text())["precision"] == "fp16"   # sidecar travels along
    for name in ("small", "small_fp16", "small_fp16_trt"):
        groups = parse(repo / name / "config.pbtxt").instance_group
        assert [(mc.ModelInstanceGroup.Kind.Name(g.kind), g.count) for g in groups] == [("KIND_GPU", 2)]


@needs_schema
def test_python_variant_for_novum_serve(tmp_path):
    """novum-serve's repository: same layout and I/O, backend python, plus model.py."""
    from fakes.runtime_assets import small_onnx
    from novum.runtime.serve.server import ServeOptions, TritonServer

    repo = TritonServer(small_onnx(), ServeOptions(name="cam")).write_repository(tmp_path / "r")
    cfg = parse(repo / "cam" / "config.pbtxt")
    assert cfg.backend == "python" and not cfg.platform
    check_against_onnx(cfg, small_onnx(), max_batch=4)                   # the export's --batch (metadata)
    assert [mc.ModelInstanceGroup.Kind.Name(g.kind) for g in cfg.instance_group] == ["KIND_CPU"]
    assert cfg.parameters["novum_model_file"].string_value == "model.onnx"
    assert sorted(p.name for p in (repo / "cam" / "1").iterdir()) == ["model.onnx", "model.py"]


@needs_schema
def test_hostile_strings_round_trip_through_the_schema(tmp_path):
    classes = ['say "hi"', "back\\slash", "caf\u00e9 \u732b"]
    spec = ModelSpec([TensorSpec("images", "uint8", (8, 8, 3))], [TensorSpec("scores", "float32", (3,))],
                     {"classes": classes, "input_size": [8, 8]})
    folder = write_model(tmp_path, "m", _dummy(tmp_path), spec, RepoOptions(max_batch=2), platform="onnxruntime_onnx")
    cfg = parse(folder / "config.pbtxt")
    assert json.loads(cfg.parameters["novum_config"].string_value)["classes"] == classes
    assert (folder / "labels.txt").read_text(encoding="utf-8").splitlines() == classes


def test_bad_names_and_classes_are_one_line_errors(tmp_path):
    spec = ModelSpec([TensorSpec("images", "uint8", (8, 8, 3))], [TensorSpec("scores", "float32", (2,))],
                     {"classes": ["a", "b\nc"], "input_size": [8, 8]})
    with pytest.raises(InputError, match="cannot go into a Triton labels file"):
        write_model(tmp_path, "m", _dummy(tmp_path), spec, RepoOptions(), platform="onnxruntime_onnx")
    with pytest.raises(InputError, match="not a usable Triton model name"):
        config_text("../up", spec, RepoOptions(), platform="onnxruntime_onnx")
    spec.outputs = [TensorSpec("scores", "float32", (-1,))]
    spec.novum_config["classes"] = ["a", "b"]
    with pytest.raises(InputError, match="Triton needs them static"):
        write_model(tmp_path, "m", _dummy(tmp_path), spec, RepoOptions(), platform="onnxruntime_onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dummy.bin"]   # nothing half-written


def test_rewriting_a_model_replaces_it_whole(tmp_path):
    spec = ModelSpec([TensorSpec("images", "uint8", (8, 8, 3))], [TensorSpec("scores", "float32", (1,))],
                     {"classes": ["a"], "input_size": [8, 8]})
    d = _dummy(tmp_path)
    write_model(tmp_path / "r", "m", d, spec, RepoOptions(max_batch=2), platform="onnxruntime_onnx")
    (tmp_path / "r" / "m" / "1" / "stale.txt").write_text("old")
    write_model(tmp_path / "r", "m", d, spec, RepoOptions(max_batch=5), platform="onnxruntime_onnx")
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["m"]
    assert sorted(p.name for p in (tmp_path / "r" / "m" / "1").iterdir()) == ["model.onnx"]
    assert "max_batch_size: 5" in (tmp_path / "r" / "m" / "config.pbtxt").read_text()


def _dummy(tmp_path):
    p = tmp_path / "dummy.bin"   # model bytes; not parsed
    p.write_bytes(np.arange(10, dtype=np.uint8).tobytes())
    return p
