"""The TensorRT/pycuda backend's bookkeeping, in CI, against the fake tensorrt + pycuda
(tests/fakes: documented API surface, real computation through ONNX Runtime, device memory by
address); and one real-GPU test marked ``gpu``."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from fakes import install
from fakes.runtime_assets import H, W, frames, small_onnx, write_video
from novum.errors import InputError, NovumError
from novum.runtime.backends import load


def _ort_reference(imgs: np.ndarray) -> dict[str, np.ndarray]:
    with load(small_onnx(), intra_op_threads=1) as b:
        return b.infer(imgs)


@pytest.fixture()
def fake(monkeypatch, tmp_path):
    """(trt, driver, engine path): fakes injected, a batch 1..4 engine built by novum.export."""
    from novum.export.tensorrt import EngineOptions, build_engine

    trt, drv = install(monkeypatch)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    engine = build_engine(small_onnx(), tmp_path / "small.engine", trt=trt, gpu=(drv.DEVICE_NAME, drv.COMPUTE_CAPABILITY),
                          options=EngineOptions(min_batch=1, opt_batch=2, max_batch=4), log=lambda s: None)
    return trt, drv, engine


def test_outputs_equal_onnxruntime(fake):
    trt, drv, engine = fake
    imgs = frames(3, H, W, seed=11)
    with load(engine) as b:
        assert b.kind == "tensorrt" and b.device == "cuda"
        assert b.output_names == ["scores", "vertex", "vertex_score", "features"]
        assert b.classes == load(small_onnx()).classes and b.input_size == (H, W)
        out = b.infer(imgs)
    ref = _ort_reference(imgs)
    assert set(out) == set(ref)
    for k in ref:
        assert out[k].dtype == ref[k].dtype and out[k].shape == ref[k].shape, k
        np.testing.assert_allclose(out[k], ref[k], atol=1e-6, err_msg=k)


def test_buffers_sized_from_engine_shapes_dtypes_and_addresses(fake):
    trt, drv, engine = fake
    b = load(engine).activate()
    eng = b.engine
    assert not hasattr(eng, "num_bindings") and not hasattr(b.context, "execute_async_v2")  # gone in TensorRT 10
    want = {"images": ((4, H, W, 3), np.uint8), "scores": ((4, 12), np.float32),
            "vertex": ((4, H // 8, W // 8), np.int32), "vertex_score": ((4, H // 8, W // 8), np.float32),
            "features": ((4, 64, H // 8, W // 8), np.float32)}
    names = [eng.get_tensor_name(i) for i in range(eng.num_io_tensors)]
    assert sorted(names) == sorted(want)
    for name, (shape, dtype) in want.items():
        host, dev = b.host[name], b.dev[name]
        assert drv.is_pagelocked(host) and host.dtype == dtype and host.size == int(np.prod(shape)), name
        assert dev.size == int(np.prod(shape)) * np.dtype(dtype).itemsize, name
        assert b.context.get_tensor_address(name) == int(dev) != 0, name
    assert len({int(d) for d in b.dev.values()}) == len(want)   # distinct device buffers
    out = b.infer(frames(2, H, W, seed=1))
    assert out["scores"].shape == (2, 12) and out["vertex"].dtype == np.int32
    copies = drv.STATE.log
    assert copies and all(c["pinned"] and c["async"] for c in copies)
    assert [c["op"] for c in copies] == ["htod"] + ["dtoh"] * 4
    assert copies[0]["nbytes"] == 2 * H * W * 3                    # only the frames in this batch
    assert copies[1]["nbytes"] == 2 * 12 * 4
    assert b.context.executions == 1
    b.close()
    assert not drv.STATE.allocations                               # everything freed


def test_version_compatible_engine_allows_host_code(monkeypatch, tmp_path):
    """A version-compatible plan embeds the lean runtime: the backend must set
    runtime.engine_host_code_allowed (from the sidecar) or deserialisation fails."""
    from novum.export.tensorrt import EngineOptions, build_engine

    trt, drv = install(monkeypatch)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    engine = build_engine(small_onnx(), tmp_path / "vc.engine", trt=trt, gpu=(drv.DEVICE_NAME, drv.COMPUTE_CAPABILITY),
                          options=EngineOptions(max_batch=2, version_compatible=True), log=lambda s: None)
    assert trt.Runtime(trt.Logger()).deserialize_cuda_engine(engine.read_bytes()) is None   # flag not set
    with load(engine) as b:
        assert b.runtime.engine_host_code_allowed is True
        assert b.infer(frames(1, H, W, seed=3))["scores"].shape == (1, 12)


def test_dynamic_batch_within_profile_and_clear_error_outside(fake):
    trt, drv, engine = fake
    b = load(engine)
    for n in (1, 4, 2):
        out = b.infer(frames(n, H, W, seed=n))
        assert out["scores"].shape == (n, 12) and out["features"].shape == (n, 64, H // 8, W // 8)
        np.testing.assert_allclose(out["scores"], _ort_reference(frames(n, H, W, seed=n))["scores"], atol=1e-6)
    with pytest.raises(InputError) as e:
        b.infer(frames(5, H, W))
    msg = str(e.value)
    assert "\n" not in msg and "outside the engine's optimisation profile (batch 1..4)" in msg and "--max-batch 5" in msg
    with pytest.raises(InputError):
        b.infer(frames(1, H + 8, W))
    # the context itself refuses out-of-profile shapes too (what the check above pre-empts)
    assert b.context.set_input_shape("images", (5, H, W, 3)) is False
    b.close()


def test_sidecar_mismatch_fails_before_deserialising(fake, monkeypatch):
    trt, drv, engine = fake

    def boom(self, data):  # pragma: no cover - must not be reached
        raise AssertionError("deserialised a foreign engine")

    monkeypatch.setattr(trt.Runtime, "deserialize_cuda_engine", boom)
    monkeypatch.setattr(trt, "__version__", "11.4.0.106")
    with pytest.raises(NovumError) as e:
        load(engine)
    msg = str(e.value)
    assert "\n" not in msg and "TensorRT 10.3.0.26" in msg and "11.4.0.106" in msg and "rebuild with" in msg
    monkeypatch.setattr(trt, "__version__", "10.3.0.26")
    monkeypatch.setattr(drv, "COMPUTE_CAPABILITY", (9, 0))
    with pytest.raises(NovumError) as e:
        load(engine)
    assert "sm_90" in str(e.value) and "rebuild with" in str(e.value)


def test_foreign_plan_or_missing_sidecar_is_one_line(fake, tmp_path):
    trt, drv, engine = fake
    bad = tmp_path / "other.engine"
    bad.write_bytes(trt.build_plan(small_onnx(), 1, 1, 4, version="10.0.1.6"))   # sidecar says 10.3, plan is 10.0
    (tmp_path / "other.engine.json").write_text((tmp_path / "small.engine.json").read_text())
    with pytest.raises(NovumError) as e:
        load(bad)
    assert "\n" not in str(e.value) and "could not deserialise" in str(e.value)
    (tmp_path / "other.engine.json").unlink()
    with pytest.raises(NovumError) as e:
        load(bad)
    assert "no sidecar" in str(e.value) and "rebuild with" in str(e.value)


def test_pipeline_runs_the_engine_on_its_inference_thread(fake, tmp_path):
    """CUDA contexts are per thread: the backend makes the primary context current where it runs."""
    from novum.runtime.run import run

    trt, drv, engine = fake
    video = write_video(tmp_path / "v.avi", frames(5, 150, 200, seed=4))
    s = run(str(video), engine, show=False, quiet=True, jsonl=tmp_path / "o.jsonl")
    assert s.frames == 5
    recs = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in recs] == list(range(5))
    with load(small_onnx(), intra_op_threads=1) as ref:
        from novum.contracts.framing import Framer
        from novum.runtime.sources import open_source

        framer = Framer(ref.input_size)
        with open_source(video) as src:
            imgs = np.stack([framer(f.image)[0] for f in src])
        scores = ref.infer(imgs)["scores"]
    for r, sc in zip(recs, scores):
        assert r["class_index"] == int(np.argmax(sc))
        assert r["topk"][0]["score"] == pytest.approx(float(sc.max()), abs=1e-6)


def test_no_context_on_a_foreign_thread_is_caught_by_the_fake(fake):
    """The fake enforces per-thread contexts, so the test above proves the push/pop."""
    trt, drv, engine = fake
    err = []

    def alloc():
        try:
            drv.mem_alloc(16)
        except drv.LogicError as e:
            err.append(str(e))
    t = threading.Thread(target=alloc)
    t.start()
    t.join()
    assert err and "no currently active context" in err[0]


def test_without_tensorrt_installed(tmp_path):
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here")
    (tmp_path / "m.engine").write_bytes(b"plan")
    with pytest.raises(NovumError) as e:
        load(tmp_path / "m.engine")
    assert "TensorRT is not installed" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.gpu
def test_real_engine_matches_onnxruntime(tmp_path):
    from novum.export.tensorrt import EngineOptions, build_engine

    engine = build_engine(small_onnx(), tmp_path / "small.engine", options=EngineOptions(max_batch=4, strict_fp32=True),
                          log=lambda s: None)
    imgs = frames(4, H, W, seed=2)
    with load(engine) as b:
        out = b.infer(imgs)
        assert b.infer(imgs[:1])["scores"].shape == (1, 12)
    ref = _ort_reference(imgs)
    np.testing.assert_allclose(out["scores"], ref["scores"], atol=1e-4)
    assert (out["scores"].argmax(1) == ref["scores"].argmax(1)).all()
    assert (out["vertex"] == ref["vertex"]).mean() > 0.95
