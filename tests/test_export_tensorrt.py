"""TensorRT builder (against the fake tensorrt of each release in CI, the real one on a GPU) and the
engine sidecar."""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fakes import JETPACK6, VERSIONS, install
from fakes.fake_tensorrt import vtuple
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


@pytest.fixture(params=VERSIONS)
def trt(request, monkeypatch, tmp_path):
    """The fake tensorrt of each release (JetPack 6's 10.3, 10.13 as in the stubs, 11.x)."""
    fake_trt, _ = install(monkeypatch, request.param)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return fake_trt


def spy_builder(trt, monkeypatch, fail: bool = False) -> dict[str, list]:
    """Replace ``trt.Builder`` by a subclass that keeps the networks and configs the code made."""
    seen: dict[str, list] = {"networks": [], "configs": []}
    base = trt.Builder

    class Builder(base):
        def create_network(self, flags=0):
            seen["networks"].append(super().create_network(flags))
            return seen["networks"][-1]

        def create_builder_config(self):
            seen["configs"].append(super().create_builder_config())
            return seen["configs"][-1]

        def build_serialized_network(self, network, config):
            return None if fail else super().build_serialized_network(network, config)

    monkeypatch.setattr(trt, "Builder", Builder)
    return seen


def build(trt, onnx_path, engine_path, tmp_path, monkeypatch, fail=False, **opts):
    seen = spy_builder(trt, monkeypatch, fail)
    logs: list[str] = []
    opts.setdefault("timing_cache", tmp_path / "timing.cache")
    path = build_engine(onnx_path, engine_path, options=EngineOptions(**opts), gpu=FAKE_GPU, trt=trt,
                        rebuild_command="novum-export --checkpoint m.safetensors --engine", log=logs.append)
    return path, seen, logs


def test_build_strongly_typed_engine_with_sidecar(trt, onnx_pair, small_model, tmp_path, monkeypatch):
    eng = tmp_path / "m_fp16.engine"
    path, seen, logs = build(trt, onnx_pair["fp16"], eng, tmp_path, monkeypatch, max_batch=4, workspace_gib=1.0)
    assert path == eng and eng.is_file()
    net, cfg = seen["networks"][0], seen["configs"][0]
    assert net.get_flag(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert cfg.get_memory_pool_limit(trt.MemoryPoolType.WORKSPACE) == 1 << 30
    assert cfg.get_flag(trt.BuilderFlag.TF32) and not cfg.get_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    assert cfg._profiles[0].get_shape("images") == [(1, 128, 160, 3), (4, 128, 160, 3), (4, 128, 160, 3)]
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
    assert t.error is None, t.error
    assert t.backend == "tensorrt" and t.precision == "fp32" and rep.ok, rep.table()


def test_strict_fp32_version_and_hardware_compat(trt, onnx_pair, tmp_path, monkeypatch):
    _, seen, _ = build(trt, onnx_pair["fp32"], tmp_path / "a.engine", tmp_path, monkeypatch, strict_fp32=True,
                       version_compatible=True, hardware_compatible="ampere_plus")
    cfg = seen["configs"][0]
    assert not cfg.get_flag(trt.BuilderFlag.TF32)
    assert cfg.get_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    assert cfg.hardware_compatibility_level == trt.HardwareCompatibilityLevel.AMPERE_PLUS
    side = json.loads(sidecar_path(tmp_path / "a.engine").read_text())
    assert side["strict_fp32"] and side["version_compatible"] and side["hardware_compatibility"] == "ampere_plus"


def test_same_compute_capability_needs_tensorrt_10_9(trt, onnx_pair, tmp_path, monkeypatch):
    """Defect 1: the level arrived in TensorRT 10.9; JetPack 6's 10.3 gets a one-line error, not an
    AttributeError, and no files."""
    out = tmp_path / "o"
    out.mkdir()
    if vtuple(trt.__version__) < (10, 9):
        with pytest.raises(EngineBuildError) as e:
            build(trt, onnx_pair["fp32"], out / "m.engine", tmp_path, monkeypatch, hardware_compatible="same_compute_capability")
        msg = str(e.value)
        assert "\n" not in msg and "10.9" in msg and trt.__version__ in msg and "ampere_plus" in msg
        assert list(out.iterdir()) == []
    else:
        _, seen, _ = build(trt, onnx_pair["fp32"], out / "m.engine", tmp_path, monkeypatch,
                           hardware_compatible="same_compute_capability")
        assert seen["configs"][0].hardware_compatibility_level == trt.HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY


def test_timing_cache_persists(trt, onnx_pair, tmp_path, monkeypatch):
    cache = tmp_path / "tc.cache"
    _, _, logs1 = build(trt, onnx_pair["fp32"], tmp_path / "a.engine", tmp_path, monkeypatch, timing_cache=cache)
    assert cache.is_file() and json.loads(cache.read_bytes())["entries"]
    _, _, logs2 = build(trt, onnx_pair["fp32"], tmp_path / "b.engine", tmp_path, monkeypatch, timing_cache=cache)
    assert not any("timing cache warm" in m for m in logs1)
    assert any("timing cache warm" in m for m in logs2)
    assert len(json.loads(cache.read_bytes())["entries"]) == 2


@pytest.mark.parametrize("foreign", ["device", "version"])
def test_rejected_timing_cache_is_replaced(trt, onnx_pair, tmp_path, monkeypatch, foreign):
    """Defect 5: a cache TensorRT refuses (another GPU, another version) is reported, the build uses
    a fresh cache, and that fresh cache replaces the refused one (it was saved again unchanged)."""
    from fakes.fake_tensorrt import CACHE_MAGIC

    cache = tmp_path / "tc.cache"
    header = {"version": trt.__version__, "device": ["NVIDIA GeForce RTX 4090", [8, 9]]} if foreign == "device" else \
        {"version": "10.0.1.6", "device": [FAKE_GPU[0], [8, 7]]}
    cache.write_text(json.dumps({"magic": CACHE_MAGIC, "header": header, "entries": {"old": 1}}))
    _, _, logs = build(trt, onnx_pair["fp32"], tmp_path / "a.engine", tmp_path, monkeypatch, timing_cache=cache)
    assert any("timing cache" in m and "refused" in m for m in logs), logs
    assert not any("timing cache warm" in m for m in logs)
    saved = json.loads(cache.read_bytes())
    assert saved["header"] == {"version": trt.__version__, "device": [FAKE_GPU[0], [8, 7]]}
    assert "old" not in saved["entries"] and len(saved["entries"]) == 1
    _, _, logs = build(trt, onnx_pair["fp32"], tmp_path / "b.engine", tmp_path, monkeypatch, timing_cache=cache)
    assert any("timing cache warm" in m for m in logs)   # the replacement is accepted next time


def test_failed_build_leaves_nothing(trt, onnx_pair, tmp_path, monkeypatch):
    out = tmp_path / "o"
    out.mkdir()
    with pytest.raises(EngineBuildError, match="failed to build") as e:
        build(trt, onnx_pair["fp32"], out / "m.engine", tmp_path, monkeypatch, fail=True)
    assert "\n" not in str(e.value)
    assert list(out.iterdir()) == []
    with pytest.raises(EngineBuildError, match="batch profile"):
        build(trt, onnx_pair["fp32"], out / "m.engine", tmp_path, monkeypatch, max_batch=2, opt_batch=3)


@pytest.fixture(scope="module")
def native_small(small_model, tmp_path_factory):
    from novum.checkpoint import save_native

    return save_native(small_model, tmp_path_factory.mktemp("native_trt") / "small.safetensors")


def test_export_cli_finds_the_gpu_without_torch_cuda(trt, native_small, tmp_path, capsys):
    """Defect 3: the GPU is found through the CUDA driver (here the fake libcuda), not torch.cuda
    (a CPU-only torch, as on this machine and on many Jetsons): --fp16 builds the fp16 engine."""
    import torch

    from novum.export.cli import main

    assert not torch.cuda.is_available()
    out = tmp_path / "e"
    assert main(["--checkpoint", str(native_small), "--output-dir", str(out), "--fp16", "--batch", "2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["small.onnx", "small_fp16.engine", "small_fp16.engine.json",
                                                     "small_fp16.onnx"]
    side = json.loads(sidecar_path(out / "small_fp16.engine").read_text())
    assert side["gpu_name"] == "NVIDIA Fake Orin" and side["tensorrt_version"] == trt.__version__
    assert list((tmp_path / "xdg" / "novum").glob("timing-trt*-sm87.cache"))


def test_no_engine_without_a_driver_says_why(monkeypatch, native_small, tmp_path):
    from fakes.fake_libcuda import no_driver

    from novum.api import export

    install(monkeypatch, JETPACK6, libcuda=no_driver)
    res = export(native_small, tmp_path / "e", log=lambda s: None)
    assert res.engines == {} and "libcuda" in res.engine_skipped and "no NVIDIA driver" in res.engine_skipped


def _parse_export_args(cmd: str):
    from novum.export.cli import parser

    words = shlex.split(cmd.removesuffix(" on this machine"))
    assert words[0] == "novum-export"
    return parser().parse_args(words[1:])


def test_rebuild_command_repeats_every_engine_flag(trt, native_small, tmp_path, monkeypatch):
    """Defect 8: the sidecar's rebuild command, parsed by novum-export's own parser, gives back every
    option that shapes the ONNX files and the engine (it dropped the calibration, int8 gate,
    strict-fp32, compatibility, workspace, fp16-head, opset and mesh options)."""
    from novum import api
    from novum.export.cli import main, parser

    calls = {}

    def fake_int8(src, dst, **kw):   # the calibration itself is tested elsewhere: only the options matter
        from types import SimpleNamespace

        from novum.contracts.onnx_file import copy_onnx

        calls.update(kw)
        dst = Path(dst)
        return {t: SimpleNamespace(path=copy_onnx(src, dst.with_name(dst.stem + suffix + ".onnx")))
                for t, suffix in (("onnxruntime", ""), ("tensorrt", "_trt")) if t in kw["targets"]}

    monkeypatch.setattr(api, "quantize_targets", fake_int8)
    monkeypatch.setattr(api, "engine_unavailable_reason", lambda: None)   # this test is about the command only
    out = tmp_path / "e"
    argv = ["--checkpoint", str(native_small), "--output-dir", str(out), "--name", "m", "--fp16", "--int8",
            "--calib", str(tmp_path), "--calib-method", "minmax", "--calib-samples", "16", "--calib-seed", "3",
            "--calib-holdout", "20", "--int8-threshold", "0.5", "--int8-fallback", "2", "--allow-degraded",
            "--batch", "2", "--imgsz", "64", "80", "--force-imgsz", "--workspace", "1.5", "--strict-fp32", "--version-compatible",
            "--hardware-compatible", "ampere_plus", "--features", "--fp16-head", "fp32", "--exporter", "torchscript", "--opset", "17",
            "--int8-target", "tensorrt", "--int8-speed-rounds", "0"]
    assert main(argv) == 0
    given = parser().parse_args(argv)
    for engine in ("m_fp16.engine", "m_int8.engine"):
        side = json.loads(sidecar_path(out / engine).read_text())
        again = _parse_export_args(side["rebuild_command"])
        differ = {k: (getattr(given, k), getattr(again, k)) for k in vars(given)
                  if k not in ("engine", "timing_cache", "int8_speed_rounds") and getattr(given, k) != getattr(again, k)}
        assert differ == {}, differ
        assert again.engine is True


def test_rebuild_command_covers_every_option_of_the_parser():
    """Every novum-export option is either repeated by the rebuild command or listed as not
    shaping the engine: a new option cannot be forgotten silently."""
    from novum.api import REBUILD_FLAGS, REBUILD_IGNORES
    from novum.export.cli import parser

    known = set(REBUILD_FLAGS.values()) | set(REBUILD_IGNORES)
    options = [a.option_strings for a in parser()._actions if a.dest != "help"]
    assert [o for o in options if not set(o) & known] == []
    assert {f for o in options for f in o} >= known


def _changed(action) -> object:
    """A value for ``action`` that differs from its default (and survives shell quoting)."""
    if action.nargs == 0:
        return True
    if action.choices:
        return [c for c in action.choices if c != action.default][-1]
    if action.nargs == 2:
        return [72, 88]
    if action.type is int:
        return (action.default or 0) + 3
    if action.type is float:
        return (action.default or 0) + 0.25
    return f"some dir/{action.dest}"


@pytest.mark.parametrize("source", ["checkpoint", "onnx"])
def test_rebuild_command_round_trips_every_option(source):
    """Defect 8, option by option: each option the rebuild command repeats, set to a value other than
    its default, comes back unchanged when novum-export parses the command."""
    from novum.api import REBUILD_FLAGS, REBUILD_IGNORES, rebuild_command
    from novum.export.cli import parser

    key_of = {flag: key for key, flag in REBUILD_FLAGS.items()}
    other = "--onnx" if source == "checkpoint" else "--checkpoint"
    shaping = [a for a in parser()._actions if a.dest != "help" and not set(a.option_strings) & {*REBUILD_IGNORES, other}]
    missing = [a.option_strings[0] for a in shaping if not set(a.option_strings) & set(key_of)]
    assert missing == []
    values = {a.dest: _changed(a) for a in shaping}
    again = _parse_export_args(rebuild_command(
        {key_of[next(f for f in a.option_strings if f in key_of)]: values[a.dest] for a in shaping}))
    for a in shaping:
        assert values[a.dest] != a.default and getattr(again, a.dest) == values[a.dest], a.option_strings[0]
    assert again.engine is True


def test_engine_from_onnx_with_torch_hidden(onnx_pair, tmp_path):
    """Defect 3: an engine builds from an existing .onnx (and runs) with torch unimportable."""
    tests = Path(__file__).parent
    out = tmp_path / "e"
    code = textwrap.dedent(f"""
        import sys, json
        sys.modules["torch"] = None          # import torch -> ImportError
        sys.path.insert(0, {str(tests)!r})
        from fakes import install_modules
        install_modules({JETPACK6!r})
        from novum.export.cli import main
        rc = main(["--onnx", {str(onnx_pair['fp16'])!r}, "--output-dir", {str(out)!r}, "--batch", "2"])
        import numpy as np
        from novum.runtime.backends import load
        with load({str(out / 'm_fp16.engine')!r}) as b:
            s = b.infer(np.zeros((2, 128, 160, 3), np.uint8))["scores"]
        print(json.dumps({{"rc": rc, "torch": sys.modules.get("torch") is not None, "scores": list(s.shape)}}))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
                       env={**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {"rc": 0, "torch": False, "scores": [2, 12]}
    assert sorted(p.name for p in out.iterdir()) == ["m_fp16.engine", "m_fp16.engine.json"]
    side = json.loads(sidecar_path(out / "m_fp16.engine").read_text())
    assert side["precision"] == "fp16" and side["onnx_sha256"] == onnx_sha256(onnx_pair["fp16"])
    assert _parse_export_args(side["rebuild_command"]).onnx == str(onnx_pair["fp16"])


def test_verify_fails_when_its_engine_cannot_run(monkeypatch, native_small, tmp_path):
    """Defect 7: an engine that --verify just built but cannot load (or run) fails the export (it was
    "skipped", and skipped targets did not count)."""
    from novum.export.cli import main

    trt, _ = install(monkeypatch, JETPACK6)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(trt.Runtime, "deserialize_cuda_engine", lambda self, data: None)
    argv = ["--checkpoint", str(native_small), "--output-dir", str(tmp_path / "e"), "--batch", "2", "--verify",
            "--verify-frames", "2"]
    assert main(argv) == 1


def test_unknown_precision_has_no_tolerance():
    """Defect 7: a precision without a stated tolerance fails the comparison (it silently got the
    loosest, int8's)."""
    from novum.export.verify import compare

    rng = np.random.default_rng(0)
    ref = {"scores": rng.random((4, 12)).astype(np.float32)}
    rep = compare(ref, {k: v.copy() for k, v in ref.items()}, "m.onnx", "onnxruntime", "bf16", 320, 12 * 100)
    assert not rep.ok
    assert "bf16" in (rep.error or "") and "tolerance" in rep.error
    assert compare(ref, {k: v.copy() for k, v in ref.items()}, "m.onnx", "onnxruntime", "fp32", 320, 1200).ok


# -- sidecar checks --------------------------------------------------------------------------


def write_side(tmp_path, **kw):
    from novum.contracts.sidecar import write_sidecar

    eng = tmp_path / "m.engine"
    eng.write_bytes(b"plan")
    info = {"tensorrt_version": "10.3.0.30", "gpu_name": "NVIDIA Jetson AGX Orin", "compute_capability": [8, 7],
            "precision": "fp16", "rebuild_command": "novum-export --checkpoint x.pth --fp16 --engine"}
    info.update(kw)
    write_sidecar(eng, info)
    return eng


def test_sidecar_match_and_same_arch_warning(tmp_path):
    eng = write_side(tmp_path)
    side = check_sidecar(eng, "10.3.0.30", "NVIDIA Jetson AGX Orin", (8, 7))
    assert side["precision"] == "fp16" and side["warnings"] == []
    side = check_sidecar(eng, "10.3.0.30", "NVIDIA Jetson Orin NX", (8, 7))
    assert side["warnings"] and "Orin NX" in side["warnings"][0]


@pytest.mark.parametrize("version,gpu,cc,what", [
    ("10.7.0.23", "NVIDIA Jetson AGX Orin", (8, 7), "TensorRT 10.3.0.30"),
    ("11.1.0.106", "NVIDIA Jetson AGX Orin", (8, 7), "TensorRT 10.3.0.30"),
    ("10.3.0.26", "NVIDIA Jetson AGX Orin", (8, 7), "TensorRT 10.3.0.30"),
    ("10.3.0.30", "NVIDIA GeForce RTX 4090", (8, 9), "sm_87"),
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
    check_sidecar(eng, "10.9.0.34", "NVIDIA Jetson AGX Orin", (8, 7))    # later 10.x
    check_sidecar(eng, "11.1.0.106", "NVIDIA Jetson AGX Orin", (8, 7))   # 10 -> 11 hop
    with pytest.raises(EngineMismatchError):
        check_sidecar(eng, "10.2.0", "NVIDIA Jetson AGX Orin", (8, 7))    # older runtime
    eng = write_side(tmp_path, hardware_compatibility="ampere_plus")
    check_sidecar(eng, "10.3.0.30", "NVIDIA H100", (9, 0))
    with pytest.raises(EngineMismatchError):
        check_sidecar(eng, "10.3.0.30", "Tesla T4", (7, 5))


@pytest.mark.parametrize("built,here", [("10.3.0.26", "10.3.0"), ("10.3.0", "10.3.0.26"), ("10.3.0.26", "10.3.0.26")])
@pytest.mark.parametrize("vc", [True, False])
def test_sidecar_versions_compare_on_the_parts_both_report(tmp_path, built, here, vc):
    """Defect 6: the pip wheel of 10.3 reports "10.3.0", JetPack's build "10.3.0.x": the same
    release. A version-compatible plan recorded as 10.3.0.26 was refused by a 10.3.0 runtime."""
    eng = write_side(tmp_path, tensorrt_version=built, version_compatible=vc)
    assert check_sidecar(eng, here, "NVIDIA Jetson AGX Orin", (8, 7))["tensorrt_version"] == built


def test_sidecar_missing_or_corrupt(tmp_path):
    eng = tmp_path / "m.engine"
    eng.write_bytes(b"plan")
    with pytest.raises(EngineMismatchError, match="no sidecar"):
        check_sidecar(eng, "10.3.0.30", "x", (8, 7))
    sidecar_path(eng).write_text("{not json")
    with pytest.raises(EngineMismatchError, match="sidecar is not valid JSON"):
        check_sidecar(eng, "10.3.0.30", "x", (8, 7))


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
    assert t.error is None, t.error
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
    assert all(t.error is None for t in rep.targets) and rep.ok, rep.table()
    assert np.isfinite([c.max_abs or 0 for t in rep.targets for c in t.checks]).all()
