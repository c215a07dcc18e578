"""benchmarks/gpu_acceptance.py, run end to end against the TensorRT fake (real TensorRT: on a GPU box)."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from fakes import JETPACK6, install

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_acceptance.py"


def _script():
    spec = importlib.util.spec_from_file_location("gpu_acceptance", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, mod)   # dataclasses look their module up there
    spec.loader.exec_module(sys.modules[spec.name])
    return sys.modules[spec.name]


def _run_against_fake(monkeypatch, tmp_path, models: list[str]) -> tuple[int, dict, str]:
    from novum import api
    from novum.contracts.onnx_file import copy_onnx

    install(monkeypatch, JETPACK6)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    out = tmp_path / "acc"
    real = api.quantize_targets

    def int8(src, dst, **kw):   # novum-bench's own int8 rows: the files the run made already (tested elsewhere)
        if "bench" not in str(dst):   # 16 calibration frames, 20 gate frames: one flip fails the gate, which
            return real(src, dst, **{**kw, "allow_degraded": True})   # is not what this test checks
        from types import SimpleNamespace

        dst = Path(dst)
        return {t: SimpleNamespace(path=copy_onnx(out / "demo" / f"demo_int8{sfx}.onnx", dst.with_name(dst.stem + sfx + ".onnx")))
                for t, sfx in (("onnxruntime", ""), ("tensorrt", "_trt"))}

    monkeypatch.setattr(api, "quantize_targets", int8)
    test = "tests/test_runtime_tensorrt.py::test_real_engine_matches_onnxruntime"
    rc = _script().main(["--out", str(out), "--models", *models, "--upstream-imgsz", "128", "160", "--frames", "4",
                         "--calib-samples", "16", "--calib-holdout", "20", "--runs", "3", "--warmup", "1", "--rounds", "1",
                         "--batch", "4", "--tests", test])
    return rc, json.loads((out / "acceptance.json").read_text()), (out / "acceptance.md").read_text()


def _check(rc: int, data: dict, md: str, models: list[str]) -> None:
    assert rc == 1 and not data["passed"]
    # what fails: the gpu test skipped in its fresh process (no TensorRT there); the fake engines compute
    # exactly their ONNX graph, so no engine may fail where its ONNX file passes ("recipe" failures
    # are the precision's own, on ONNX Runtime too)
    assert any(f.startswith("gpu tests: all 1 skipped") for f in data["failures"])
    allowed = ("gpu tests: all 1 skipped", "recipe: ", "upstream: left out")
    assert [f for f in data["failures"] if not f.startswith(allowed)] == [], data["failures"]
    assert not any(f.startswith("recipe:") and ("fp32" in f or "fp16" in f) for f in data["failures"])
    assert data["gpu_tests"]["tests"] == 1 and data["gpu_tests"]["skipped"] == 1
    assert [m["name"] for m in data["models"]] == models
    for m in data["models"]:
        assert sorted(m["engines"]) == ["fp16", "fp32", "fp32_strict", "int8"], m["name"]
        assert all(Path(p).is_file() and Path(p + ".json").is_file() for p in m["engines"].values())
        assert m["verify_table"].count("| tensorrt |") >= 4 and "FAILED" not in m["verify_table"]
    assert "| tensorrt | fp32 | ok |" in data["bench_table"] and data["bench_failures"] == []
    assert md.startswith("# novum GPU acceptance: FAIL") and "| tensorrt | yes |" in md and "## Verdict" in md


def test_acceptance_run_against_the_fake(monkeypatch, tmp_path):
    """Every step runs on the demo model: engines fp32 strict / fp32 / fp16 / int8, the comparison
    with torch, the gpu tests (in a fresh process, where there is no TensorRT: they skip, and the
    verdict says so), the benchmark with the engines as extra rows, one report."""
    rc, data, md = _run_against_fake(monkeypatch, tmp_path, ["demo"])
    _check(rc, data, md, ["demo"])


@pytest.mark.slow
def test_acceptance_run_with_the_upstream_layout_against_the_fake(monkeypatch, tmp_path):
    """The same with the upstream-layout model (ResNet-50, the release's bank) at 128x160: minutes on CPU."""
    rc, data, md = _run_against_fake(monkeypatch, tmp_path, ["demo", "upstream"])
    _check(rc, data, md, ["demo", "upstream"])
    upstream = data["models"][1]
    assert sorted(upstream["latency"]) == ["fp16", "fp32", "fp32_strict", "int8"]


def test_acceptance_stops_where_tensorrt_cannot_run(tmp_path, capsys):
    """On this machine (no TensorRT, no driver): exit 2, and the report says why."""
    rc = _script().main(["--out", str(tmp_path / "acc"), "--no-pytest"])
    data = json.loads((tmp_path / "acc" / "acceptance.json").read_text())
    assert rc == 2 and data["models"] == []
    assert data["failures"][0].startswith("TensorRT cannot build and run engines here:")
