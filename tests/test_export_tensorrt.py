"""TensorRT builder (against the fake tensorrt API in CI, the real one on a GPU) and the engine sidecar."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fakes.fake_tensorrt import Builder as FakeBuilder
from novum.contracts.onnx_file import onnx_sha256
from novum.contracts.sidecar import EngineMismatchError, check_sidecar, sidecar_path
from novum.export.fp16 import convert_fp16
from novum.export.onnx import export_onnx
from novum.export.tensorrt import EngineBuildError, EngineOptions, build_engine

FAKE_GPU = ("NVIDIA Fake Orin", (8, 7))


@pytest.fixture(scope="module")
def onnx_pair(small_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("trt_onnx")
    fp32 = export_onnx(small_model, d / "m.onnx", max_batch=4)
    return {"fp32": fp32, "fp16": convert_fp16(fp32, d / "m_fp16.onnx")}


@pytest.fixture
def trt(monkeypatch):
    from fakes import install

    fake_trt, _ = install(monkeypatch)
    return fake_trt


class SpyBuilder:
    """Wraps the fake Builder and keeps what the export code configured."""

    configs: list = []
    networks: list = []

    def __init__(self, trt, fail=False):
        self.trt, self.fail = trt, fail

    def __call__(self, logger):
        spy = self
        base = FakeBuilder(logger)

        class B:
            def create_network(self, flags=0):
                n = base.create_network(flags)
                spy.networks.append(n)
                return n

            def create_builder_config(self):
                c = base.create_builder_config()
                spy.configs.append(c)
                return c

            def create_optimization_profile(self):
                return base.create_optimization_profile()

            def build_serialized_network(self, network, config):
                return None if spy.fail else base.build_serialized_network(network, config)

        return B()


def build(trt, onnx_path, engine_path, tmp_path, monkeypatch, fail=False, **opts):
    spy = SpyBuilder(trt, fail)
    spy.configs, spy.networks = [], []
    monkeypatch.setattr(trt, "Builder", spy)
    logs: list[str] = []
    opts.setdefault("timing_cache", tmp_path / "timing.cache")
    path = build_engine(onnx_path, engine_path, options=EngineOptions(**opts), gpu=FAKE_GPU, trt=trt,
                        rebuild_command="novum-export --checkpoint m.safetensors --engine", log=logs.append)
    return path, spy, logs


def test_build_strongly_typed_engine_with_sidecar(trt, onnx_pair, small_model, tmp_path, monkeypatch):
    eng = tmp_path / "m_fp16.engine"
    path, spy, logs = build(trt, onnx_pair["fp16"], eng, tmp_path, monkeypatch, max_batch=4, workspace_gib=1.0)
    assert path == eng and eng.is_file()
    net, cfg = spy.networks[0], spy.configs[0]
    assert net.get_flag(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert cfg.get_memory_pool_limit(trt.MemoryPoolType.WORKSPACE) == 1 << 30
    assert cfg.get_flag(trt.BuilderFlag.TF32) and not cfg.get_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    assert cfg.profiles[0].get_shape("images") == [(1, 128, 160, 3), (4, 128, 160, 3), (4, 128, 160, 3)]
    side = json.loads(sidecar_path(eng).read_text())
    assert side["tensorrt_version"] == trt.__version__ and side["gpu_name"] == FAKE_GPU[0]
    assert side["compute_capability"] == [8, 7] and side["precision"] == "fp16"
    assert side["onnx_sha256"] == onnx_sha256(onnx_pair["fp16"])
    assert side["classes"] == list(small_model.classes) and side["config"]["input_size"] == [128, 160]
    assert side["profile"]["images"][2] == [4, 128, 160, 3]
    assert any("this can take minutes" in m for m in logs)


def test_engine_runs_in_the_runtime_and_verifies(trt, onnx_pair, small_model, tmp_path, monkeypatch):
    """Build (fake) -> novum.runtime TensorRT backend (checks the sidecar) -> verify against torch."""
    from novum.export.frames import render_frames
    from novum.export.verify import verify

    eng = tmp_path / "m.engine"
    build(trt, onnx_pair["fp32"], eng, tmp_path, monkeypatch, max_batch=4, strict_fp32=True)
    rep = verify(small_model, [eng], frames=render_frames(6, 128, 160, seed=2))
    t = rep.targets[0]
    assert t.skipped is None, t.skipped
    assert t.backend == "tensorrt" and t.precision == "fp32" and rep.ok, rep.table()


def test_strict_fp32_version_and_hardware_compat(trt, onnx_pair, tmp_path, monkeypatch):
    _, spy, _ = build(trt, onnx_pair["fp32"], tmp_path / "a.engine", tmp_path, monkeypatch, strict_fp32=True,
                      version_compatible=True, hardware_compatible="ampere_plus")
    cfg = spy.configs[0]
    assert not cfg.get_flag(trt.BuilderFlag.TF32)
    assert cfg.get_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    assert cfg.hardware_compatibility_level == trt.HardwareCompatibilityLevel.AMPERE_PLUS
    side = json.loads(sidecar_path(tmp_path / "a.engine").read_text())
    assert side["strict_fp32"] and side["version_compatible"] and side["hardware_compatibility"] == "ampere_plus"


def test_timing_cache_persists(trt, onnx_pair, tmp_path, monkeypatch):
    cache = tmp_path / "tc.cache"
    _, _, logs1 = build(trt, onnx_pair["fp32"], tmp_path / "a.engine", tmp_path, monkeypatch, timing_cache=cache)
    assert cache.is_file() and json.loads(cache.read_bytes())
    _, _, logs2 = build(trt, onnx_pair["fp32"], tmp_path / "b.engine", tmp_path, monkeypatch, timing_cache=cache)
    assert not any("timing cache warm" in m for m in logs1)
    assert any("timing cache warm" in m for m in logs2)
    assert len(json.loads(cache.read_bytes())) == 2


def test_failed_build_leaves_nothing(trt, onnx_pair, tmp_path, monkeypatch):
    out = tmp_path / "o"
    out.mkdir()
    with pytest.raises(EngineBuildError, match="failed to build") as e:
        build(trt, onnx_pair["fp32"], out / "m.engine", tmp_path, monkeypatch, fail=True)
    assert "\n" not in str(e.value)
    assert list(out.iterdir()) == []
    with pytest.raises(EngineBuildError, match="batch profile"):
        build(trt, onnx_pair["fp32"], out / "m.engine", tmp_path, monkeypatch, max_batch=2, opt_batch=3)


def test_export_cli_builds_engine_when_tensorrt_present(trt, native_small, tmp_path, monkeypatch, capsys):
    """With TensorRT and a GPU present, --fp16 builds the fp16 engine next to the ONNX files."""
    import novum.export.tensorrt as T
    from novum.export.cli import main

    monkeypatch.setattr(T, "gpu_info", lambda: FAKE_GPU)
    monkeypatch.setattr(T, "import_tensorrt", lambda: trt)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "e"
    assert main(["--checkpoint", str(native_small), "--output-dir", str(out), "--fp16", "--batch", "2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["small.onnx", "small_fp16.engine", "small_fp16.engine.json",
                                                     "small_fp16.onnx"]
    side = json.loads(sidecar_path(out / "small_fp16.engine").read_text())
    assert "--fp16" in side["rebuild_command"] and "--batch 2" in side["rebuild_command"]
    assert list((tmp_path / "cache" / "novum").glob("timing-trt*-sm87.cache"))


@pytest.fixture(scope="module")
def native_small(small_model, tmp_path_factory):
    from novum.checkpoint import save_native

    return save_native(small_model, tmp_path_factory.mktemp("native_trt") / "small.safetensors")


# -- sidecar checks --------------------------------------------------------------------------


def write_side(tmp_path, **kw):
    from novum.contracts.sidecar import write_sidecar

    eng = tmp_path / "m.engine"
    eng.write_bytes(b"plan")
    info = {"tensorrt_version": "10.3.0.26", "gpu_name": "NVIDIA Jetson AGX Orin", "compute_capability": [8, 7],
            "precision": "fp16", "rebuild_command": "novum-export --checkpoint x.pth --fp16 --engine"}
    info.update(kw)
    write_sidecar(eng, info)
    return eng


def test_sidecar_match_and_same_arch_warning(tmp_path):
    eng = write_side(tmp_path)
    side = check_sidecar(eng, "10.3.0.26", "NVIDIA Jetson AGX Orin", (8, 7))
    assert side["precision"] == "fp16" and side["warnings"] == []
    side = check_sidecar(eng, "10.3.0.26", "NVIDIA Jetson Orin NX", (8, 7))
    assert side["warnings"] and "Orin NX" in side["warnings"][0]


@pytest.mark.parametrize("version,gpu,cc,what", [
    ("10.7.0.23", "NVIDIA Jetson AGX Orin", (8, 7), "TensorRT 10.3.0.26"),
    ("11.4.0.106", "NVIDIA Jetson AGX Orin", (8, 7), "TensorRT 10.3.0.26"),
    ("10.3.0.26", "NVIDIA GeForce RTX 4090", (8, 9), "sm_87"),
])
def test_sidecar_mismatch_one_line(tmp_path, version, gpu, cc, what):
    eng = write_side(tmp_path)
    with pytest.raises(EngineMismatchError) as e:
        check_sidecar(eng, version, gpu, cc)
    msg = str(e.value)
    assert "\n" not in msg and what in msg
    assert "rebuild with novum-export --checkpoint x.pth --fp16 --engine" in msg


def test_sidecar_version_and_hardware_compatible(tmp_path):
    eng = write_side(tmp_path, version_compatible=True)
    check_sidecar(eng, "10.9.0.1", "NVIDIA Jetson AGX Orin", (8, 7))    # later 10.x
    check_sidecar(eng, "11.4.0.106", "NVIDIA Jetson AGX Orin", (8, 7))  # 10 -> 11 hop
    with pytest.raises(EngineMismatchError):
        check_sidecar(eng, "10.2.0.1", "NVIDIA Jetson AGX Orin", (8, 7))  # older runtime
    eng = write_side(tmp_path, hardware_compatibility="ampere_plus")
    check_sidecar(eng, "10.3.0.26", "NVIDIA H100", (9, 0))
    with pytest.raises(EngineMismatchError):
        check_sidecar(eng, "10.3.0.26", "Tesla T4", (7, 5))


def test_sidecar_missing_or_corrupt(tmp_path):
    eng = tmp_path / "m.engine"
    eng.write_bytes(b"plan")
    with pytest.raises(EngineMismatchError, match="no sidecar"):
        check_sidecar(eng, "10.3.0.26", "x", (8, 7))
    sidecar_path(eng).write_text("{not json")
    with pytest.raises(EngineMismatchError, match="sidecar is not valid JSON"):
        check_sidecar(eng, "10.3.0.26", "x", (8, 7))


# -- real TensorRT (GPU machines only) ---------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("precision,strict", [("fp32", True), ("fp32", False), ("fp16", False)])
def test_real_tensorrt_engine_matches_torch(onnx_pair, small_model, tmp_path, precision, strict):
    from novum.export.frames import render_frames
    from novum.export.verify import verify

    eng = build_engine(onnx_pair[precision], tmp_path / f"m_{precision}.engine",
                       options=EngineOptions(max_batch=4, strict_fp32=strict, timing_cache=tmp_path / "tc"))
    rep = verify(small_model, [eng], frames=render_frames(8, 128, 160, seed=1))
    t = rep.targets[0]
    assert t.skipped is None, t.skipped
    assert t.precision == ("fp32" if strict else "tf32") if precision == "fp32" else t.precision == "fp16"
    assert rep.ok, rep.table()


@pytest.mark.gpu
def test_real_tensorrt_upstream_arch(upstream_model, tmp_path):
    import dataclasses

    from novum.export.frames import render_frames
    from novum.export.verify import verify

    upstream_model.config = dataclasses.replace(upstream_model.config, input_size=(128, 160))
    try:
        fp32 = export_onnx(upstream_model, tmp_path / "u.onnx", max_batch=4)
        fp16 = convert_fp16(fp32, tmp_path / "u_fp16.onnx")
        engines = [build_engine(p, p.with_suffix(".engine"), options=EngineOptions(max_batch=4))
                   for p in (fp32, fp16)]
        rep = verify(upstream_model, engines, frames=render_frames(8, 128, 160))
    finally:
        upstream_model.config = dataclasses.replace(upstream_model.config, input_size=(640, 800))
    assert all(t.skipped is None for t in rep.targets) and rep.ok, rep.table()
    assert np.isfinite([c.max_abs or 0 for t in rep.targets for c in t.checks]).all()
