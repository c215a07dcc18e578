"""Backends behind one interface: ONNX Runtime and torch agree, I/O and metadata are described,
bad models fail with one-line errors, and classification imports no torch."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest

from fakes.runtime_assets import H, W, frames, small_native, small_onnx, write_video
from novum.errors import InputError, NovumError
from novum.runtime.backends import backend_kind, load


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert msg and "\n" not in msg
    return msg


def test_suffix_picks_backend(tmp_path):
    assert backend_kind("m.engine") == backend_kind("m.plan") == "tensorrt"
    assert backend_kind("m.onnx") == "onnxruntime"
    assert backend_kind("m.safetensors") == backend_kind("m.pth") == backend_kind("m.pt") == "torch"
    with pytest.raises(InputError) as e:
        load(tmp_path / "model.tflite")
    assert "unknown model type" in one_line(e)
    with pytest.raises(InputError) as e:
        load(tmp_path / "missing.onnx")
    assert "not found" in one_line(e)


def test_onnxruntime_matches_torch():
    imgs = frames(3, H, W, seed=5)
    with load(small_onnx(), intra_op_threads=1) as ort_b, load(small_native(), device="cpu") as torch_b:
        assert ort_b.kind == "onnxruntime" and torch_b.kind == "torch"
        assert ort_b.output_names == torch_b.output_names == ["scores", "vertex", "vertex_score", "features"]
        assert ort_b.metadata["classes"] == torch_b.metadata["classes"] and len(ort_b.classes) == 12
        assert ort_b.input_size == torch_b.input_size == (H, W)
        spec = ort_b.inputs[0]
        assert spec.name == "images" and spec.dtype == np.uint8 and tuple(spec.shape[1:]) == (H, W, 3)
        a, b = ort_b.infer(imgs), torch_b.infer(imgs)
    assert a["scores"].dtype == np.float32 and a["vertex"].dtype == np.int32
    np.testing.assert_allclose(a["scores"], b["scores"], atol=1e-5)
    assert (a["vertex"] == b["vertex"]).mean() > 0.98
    np.testing.assert_allclose(a["features"], b["features"], atol=1e-4)
    assert (a["scores"].argmax(1) == b["scores"].argmax(1)).all()


def test_single_frame_and_wrong_frames():
    b = load(small_onnx(), intra_op_threads=1)
    out = b.infer(frames(1, H, W)[0])            # [H, W, 3] is a batch of one
    assert out["scores"].shape == (1, 12)
    with pytest.raises(InputError) as e:
        b.infer(frames(1, H + 8, W))
    assert f"[B,{H},{W},3]" in one_line(e)
    with pytest.raises(InputError):
        b.infer(frames(1, H, W).astype(np.float32))
    b.close()


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_provider_comes_from_the_session_not_the_available_list(monkeypatch):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])  # what onnxruntime-gpu says without a GPU
    b = load(small_onnx(), device="auto", intra_op_threads=1)
    assert b.providers == b.session.get_providers()
    assert b.device == "cpu"
    with pytest.raises(NovumError) as e:
        load(small_onnx(), device="cuda")
    assert "fell back to CPU" in one_line(e)


def _edit_config(src: Path, dst: Path, **changes) -> Path:
    """A copy whose novum_config (and the copies of its values kept as their own keys) say ``changes``."""
    proto = onnx.load(str(src))
    for p in proto.metadata_props:
        if p.key == "novum_config":
            cfg = json.loads(p.value)
            cfg.update(changes)
            p.value = json.dumps(cfg)
        elif p.key in changes:
            p.value = json.dumps(changes[p.key])
    onnx.save(proto, str(dst))
    return dst


def test_model_whose_input_size_or_classes_do_not_match(tmp_path):
    bad = _edit_config(small_onnx(), tmp_path / "size.onnx", input_size=[256, 320])
    with pytest.raises(NovumError) as e:
        load(bad)
    assert "128x160" in one_line(e) and "256x320" in str(e.value)
    cfg = json.loads(next(p.value for p in onnx.load(str(small_onnx())).metadata_props if p.key == "novum_config"))
    bad = _edit_config(small_onnx(), tmp_path / "classes.onnx", classes=cfg["classes"][:5], n_list=cfg["n_list"][:5],
                       extents=cfg["extents"] and cfg["extents"][:5])
    with pytest.raises(NovumError) as e:
        load(bad)
    assert "scores has 12 classes but the metadata lists 5" in one_line(e)
    from novum.runtime.results import predict

    with pytest.raises(NovumError) as e:   # a graph with a dynamic class axis is caught on its outputs
        predict({"scores": np.ones((1, 12), np.float32)}, 0, cfg["classes"][:5])
    assert "12" in one_line(e)


def test_corrupt_or_foreign_model_files(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"\x00not an onnx file" * 50)
    with pytest.raises(NovumError) as e:
        load(tmp_path / "junk.onnx")
    assert "re-export" in one_line(e)
    proto = onnx.load(str(small_onnx()))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "plain.onnx"))
    with pytest.raises(NovumError) as e:
        load(tmp_path / "plain.onnx")
    assert "not a novum export" in one_line(e)


def test_classification_imports_no_torch(tmp_path, monkeypatch):
    from fakes import install
    from novum.export.tensorrt import EngineOptions, build_engine

    trt, drv = install(monkeypatch)   # an engine (fake TensorRT) to load without torch too
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    engine = build_engine(small_onnx(), tmp_path / "m.engine", trt=trt, gpu=(drv.DEVICE_NAME, drv.COMPUTE_CAPABILITY),
                          options=EngineOptions(max_batch=2), log=lambda s: None)
    video = write_video(tmp_path / "v.avi", frames(4, 120, 200, seed=3))
    code = textwrap.dedent(f"""
        import sys, json
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import novum.runtime, novum.runtime.backends, novum.runtime.cli
        from novum.runtime.backends import load
        from novum.runtime.run import run
        import numpy as np
        b = load({str(small_onnx())!r}, intra_op_threads=1)
        out = b.infer(np.zeros((1, {H}, {W}, 3), np.uint8))
        from pathlib import Path
        s = run({str(video)!r}, {str(small_onnx())!r}, show=False, quiet=True, jsonl=Path({str(tmp_path / 'o.jsonl')!r}),
                save=Path({str(tmp_path / 'o.mp4')!r}))
        assert s.frames == 4, s.frames
        from fakes import install_modules
        install_modules()
        e = load({str(engine)!r}).infer(np.zeros((2, {H}, {W}, 3), np.uint8))
        assert e["scores"].shape == (2, 12)
        print(json.dumps({{"torch": "torch" in sys.modules, "scores": out["scores"].shape}}))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res == {"torch": False, "scores": [1, 12]}
