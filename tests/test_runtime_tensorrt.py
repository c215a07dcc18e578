"""The TensorRT/pycuda backend's bookkeeping, in CI, against the fake tensorrt of each release and the
fake pycuda (tests/fakes: the releases' API surface, real computation through ONNX Runtime, device
memory by address, pycuda's per-thread contexts); and one real-GPU test marked ``gpu``."""
from __future__ import annotations

import json
import sys
import threading

import numpy as np
import pytest

from fakes import JETPACK6, VERSIONS, install
from fakes.fake_tensorrt import build_plan
from fakes.runtime_assets import H, W, frames, small_onnx, write_video
from novum.errors import InputError, NovumError
from novum.runtime.backends import load


def _ort_reference(imgs: np.ndarray) -> dict[str, np.ndarray]:
    with load(small_onnx(), intra_op_threads=1) as b:
        return b.infer(imgs)


def _build(trt, drv, path, **opts):
    from novum.export.tensorrt import EngineOptions, build_engine

    return build_engine(small_onnx(), path, trt=trt, gpu=(drv.DEVICE_NAME, drv.COMPUTE_CAPABILITY),
                        options=EngineOptions(**{"min_batch": 1, "opt_batch": 2, "max_batch": 4, **opts}),
                        log=lambda s: None)


@pytest.fixture(params=VERSIONS)
def fake(request, monkeypatch, tmp_path):
    """(trt, driver, engine path): the fakes of one TensorRT release, a batch 1..4 engine built by novum.export."""
    trt, drv = install(monkeypatch, request.param)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield trt, drv, _build(trt, drv, tmp_path / "small.engine")
    assert drv.STATE.fatal == [] and drv.STATE.leaks == []


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
    assert b.context._executions == 1
    b.close()
    assert not drv.STATE.allocations                               # everything freed


@pytest.mark.parametrize("version", VERSIONS)
def test_version_compatible_engine_needs_the_users_opt_in(monkeypatch, tmp_path, version):
    """Issue 14.1: a version-compatible plan embeds host code that TensorRT runs. It loads only when
    the user allows it (the API's allow_engine_host_code / --allow-engine-host-code), never
    because the sidecar next to it says so; without it: one line saying why and how to opt in."""
    trt, drv = install(monkeypatch, version)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    engine = _build(trt, drv, tmp_path / "vc.engine", max_batch=2, opt_batch=1, version_compatible=True)
    assert json.loads((tmp_path / "vc.engine.json").read_text())["version_compatible"] is True
    calls = []
    real = trt.Runtime.deserialize_cuda_engine
    monkeypatch.setattr(trt.Runtime, "deserialize_cuda_engine", lambda self, data: calls.append(1) or real(self, data))
    with pytest.raises(NovumError) as e:
        load(engine)
    msg = str(e.value)
    assert "\n" not in msg and "host code" in msg and "--allow-engine-host-code" in msg and "trust" in msg
    assert calls == []                                   # refused before TensorRT saw the plan
    with load(engine, allow_engine_host_code=True) as b:
        assert b.runtime.engine_host_code_allowed is True
        assert b.infer(frames(1, H, W, seed=3))["scores"].shape == (1, 12)


@pytest.mark.parametrize("version", [JETPACK6])
def test_a_sidecar_that_hides_host_code_cannot_enable_it(monkeypatch, tmp_path, version):
    """A plan with host code behind a sidecar that says it has none: host code stays off, and
    TensorRT's refusal is reported in one line that names the opt-in."""
    trt, drv = install(monkeypatch, version)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    engine = _build(trt, drv, tmp_path / "vc.engine", max_batch=2, opt_batch=1, version_compatible=True)
    side = json.loads((tmp_path / "vc.engine.json").read_text())
    (tmp_path / "vc.engine.json").write_text(json.dumps({**side, "version_compatible": False}))
    with pytest.raises(NovumError) as e:
        load(engine)
    assert "\n" not in str(e.value) and "could not deserialise" in str(e.value) and "--allow-engine-host-code" in str(e.value)
    side_true = {**side, "version_compatible": True}
    (tmp_path / "vc.engine.json").write_text(json.dumps(side_true))
    with pytest.raises(NovumError, match="allow-engine-host-code"):
        load(engine)                                     # a sidecar saying "version_compatible" enables nothing


def test_run_and_bench_take_the_host_code_opt_in(monkeypatch, tmp_path):
    """The opt-in on the CLIs: novum-run and novum-bench (its --engines rows)."""
    from fakes.runtime_assets import small_native
    from novum import api
    from novum.runtime.cli import bench_main
    from novum.runtime.cli import main as run_main

    trt, drv = install(monkeypatch, JETPACK6)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    engine = _build(trt, drv, tmp_path / "vc.engine", max_batch=2, opt_batch=1, version_compatible=True)
    video = write_video(tmp_path / "v.avi", frames(3, 150, 200, seed=4))
    args = ["--model", str(engine), "--source", str(video), "--no-show", "--quiet", "--jsonl", str(tmp_path / "o.jsonl")]
    assert run_main(args) == 2
    assert not (tmp_path / "o.jsonl").exists()
    assert run_main(args + ["--allow-engine-host-code"]) == 0
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 3

    def no_int8(*a, **kw):
        raise RuntimeError("not measured in this test")

    monkeypatch.setattr(api, "quantize_targets", no_int8)
    argv = ["--model", str(small_native()), "--source", str(video), "--frames", "3", "--runs", "2", "--warmup", "1",
            "--rounds", "1", "--threads", "1", "--engines", str(engine), "--out", str(tmp_path / "b")]
    bench_main(argv)
    rows = {r["file"]: r for r in json.loads((tmp_path / "b.json").read_text())["rows"]}
    assert "allow-engine-host-code" in rows[str(engine)]["status"]
    bench_main(argv + ["--allow-engine-host-code"])
    rows = {r["file"]: r for r in json.loads((tmp_path / "b.json").read_text())["rows"]}
    assert rows[str(engine)]["status"] == "ok" and rows[str(engine)]["top1_agreement"] == 1.0
    assert rows[str(engine)]["precision"] == "fp32"


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
    built = trt.__version__

    def boom(self, data):  # pragma: no cover - must not be reached
        raise AssertionError("deserialised a foreign engine")

    monkeypatch.setattr(trt.Runtime, "deserialize_cuda_engine", boom)
    monkeypatch.setattr(trt, "__version__", "9.3.0.1")
    with pytest.raises(NovumError) as e:
        load(engine)
    msg = str(e.value)
    assert "\n" not in msg and f"TensorRT {built}" in msg and "9.3.0.1" in msg and "rebuild with" in msg
    monkeypatch.setattr(trt, "__version__", built)
    monkeypatch.setattr(drv, "COMPUTE_CAPABILITY", (9, 0))
    with pytest.raises(NovumError) as e:
        load(engine)
    assert "sm_90" in str(e.value) and "rebuild with" in str(e.value)


def test_foreign_plan_or_missing_sidecar_is_one_line(fake, tmp_path):
    trt, drv, engine = fake
    bad = tmp_path / "other.engine"
    bad.write_bytes(build_plan(small_onnx(), 1, 1, 4, version="10.0.1.6"))   # the sidecar says this version, the plan 10.0
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


def _in_thread(fn):
    box: dict = {}

    def body():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            box["error"] = e
    t = threading.Thread(target=body, name="worker")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def test_backend_made_on_a_worker_thread_leaves_no_context_pushed(fake):
    """Defect 4a: pycuda.autoprimaryctx pushed the primary context on the thread that imported it
    and never popped it; a backend made on a worker thread aborted the process when the thread
    ended (pycuda: "context stack was not empty"). The fake records that abort."""
    trt, drv, engine = fake
    b = _in_thread(lambda: load(engine))
    assert drv.STATE.fatal == []
    out = _in_thread(lambda: b.infer(frames(2, H, W, seed=5)))
    np.testing.assert_allclose(out["scores"], _ort_reference(frames(2, H, W, seed=5))["scores"], atol=1e-6)
    assert drv.STATE.fatal == []
    b.close()
    assert drv.STATE.fatal == [] and not drv.STATE.allocations


def test_second_backend_on_another_thread(fake):
    """Defect 4b: a second backend made on another thread asked the current context for the device
    with no context current there. Each backend now makes its context current around every call,
    infers from any thread, and frees everything from yet another one."""
    trt, drv, engine = fake
    first = load(engine)
    first.infer(frames(1, H, W, seed=1))
    second = _in_thread(lambda: load(engine))
    imgs = frames(3, H, W, seed=6)
    a = _in_thread(lambda: first.infer(imgs))
    b = _in_thread(lambda: second.infer(imgs))
    np.testing.assert_array_equal(a["scores"], b["scores"])
    _in_thread(first.close)
    second.close()
    assert not drv.STATE.allocations and drv.STATE.leaks == [] and drv.STATE.fatal == []


def test_the_fake_enforces_pycudas_thread_rules(fake):
    """What the two tests above rely on: the fake pycuda refuses work on a thread with no context,
    records the abort of a thread ending with a context pushed, and the leak of memory freed from a
    foreign thread."""
    trt, drv, engine = fake
    drv.init()
    ctx = drv.Device(0).retain_primary_context()
    with pytest.raises(drv.LogicError, match="no currently active context"):
        _in_thread(lambda: drv.mem_alloc(16))
    _in_thread(ctx.push)                                  # pushed, never popped, thread ends
    assert len(drv.STATE.fatal) == 1 and "context stack was not empty" in drv.STATE.fatal[0]
    ctx.push()
    mem = drv.mem_alloc(16)
    drv.Context.pop()
    with pytest.warns(UserWarning, match="out-of-thread context"):
        _in_thread(mem.free)
    assert len(drv.STATE.leaks) == 1
    drv.STATE.fatal.clear()
    drv.STATE.leaks.clear()
    drv.STATE.allocations.clear()


def test_missing_libcuda_is_not_reported_as_missing_pycuda(monkeypatch, tmp_path):
    """Defect 9: pycuda is installed but its driver module cannot load libcuda (no NVIDIA driver):
    the message says so, instead of "pycuda is not installed"."""
    import importlib.abc
    import importlib.machinery

    from fakes import fake_pycuda

    trt, drv = install(monkeypatch, JETPACK6)
    engine = _build(trt, drv, tmp_path / "m.engine")

    class BrokenDriver(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path, target=None):
            return importlib.machinery.ModuleSpec(name, self) if name == "pycuda.driver" else None

        def create_module(self, spec):
            raise ImportError("libcuda.so.1: cannot open shared object file: No such file or directory")

        def exec_module(self, module):  # pragma: no cover
            pass

    monkeypatch.delitem(sys.modules, "pycuda.driver")
    monkeypatch.delattr(fake_pycuda, "driver", raising=False)
    monkeypatch.setattr(sys, "meta_path", [BrokenDriver(), *sys.meta_path])
    with pytest.raises(NovumError) as e:
        load(engine)
    msg = str(e.value)
    assert "\n" not in msg and "not installed" not in msg
    assert "libcuda.so.1" in msg and "NVIDIA driver" in msg


def test_without_tensorrt_installed(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)   # not importable, whatever this machine has
    (tmp_path / "m.engine").write_bytes(b"plan")
    with pytest.raises(NovumError) as e:
        load(tmp_path / "m.engine")
    assert "TensorRT is not installed" in str(e.value) and "\n" not in str(e.value)


def test_type_stubs_are_not_mistaken_for_tensorrt(tmp_path, monkeypatch):
    """tensorrt-stubs installs a bare 'tensorrt' folder of .pyi files: it imports (a namespace
    package) but is not TensorRT."""
    from novum.gpu import import_tensorrt

    (tmp_path / "tensorrt").mkdir()
    (tmp_path / "tensorrt" / "__init__.pyi").write_text("__version__: str = '10.13.0.35'\n")
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    trt, why = import_tensorrt()
    assert trt is None and "not TensorRT" in why and "stubs" in why


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


@pytest.mark.gpu
def test_real_engine_on_worker_threads(tmp_path):
    """The real pycuda: a backend made, used and closed on different threads (process survives)."""
    from novum.export.tensorrt import EngineOptions, build_engine

    engine = build_engine(small_onnx(), tmp_path / "small.engine", options=EngineOptions(max_batch=2), log=lambda s: None)
    b = _in_thread(lambda: load(engine))
    out = _in_thread(lambda: b.infer(frames(2, H, W, seed=7)))
    second = load(engine)
    np.testing.assert_array_equal(second.infer(frames(2, H, W, seed=7))["scores"], out["scores"])
    _in_thread(b.close)
    second.close()
