"""novum-checks: the environment report (runs here, on a CPU box, and with the TensorRT fakes)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from fakes import JETPACK6, TRT11, install
from novum.checks import collect, main, render
from novum.gpu import cuda_driver, import_tensorrt


def test_on_this_cpu_box_tensorrt_is_unavailable_and_why(capsys):
    """What CI sees: no driver, no TensorRT (at most its type stubs): the report says so and why,
    and that ONNX Runtime's CPU provider runs a session."""
    assert main([]) == 0
    out = capsys.readouterr().out
    rep = collect()
    trt = rep.backend("tensorrt")
    assert trt is not None and not trt.works
    assert trt.detail in (import_tensorrt()[1], cuda_driver().error) and trt.detail
    assert f"| tensorrt | no | - | {trt.detail} |" in out
    assert "libcuda" in next(c.detail for c in rep.components if c.name == "cuda-driver")
    cpu = rep.backend("onnxruntime-cpu")
    assert cpu.works and cpu.precisions == ["fp32", "fp16", "int8"] and "probed" in cpu.detail
    torch = next(c for c in rep.components if c.name == "torch")
    assert torch.version and "CPU" in torch.detail
    assert main(["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {b["backend"] for b in data["backends"]} >= {"tensorrt", "onnxruntime-cpu", "torch"}


def test_a_provider_compiled_in_but_not_loading_is_not_reported_as_working(monkeypatch):
    """get_available_providers() lists what was compiled in; a CUDA provider whose libraries are
    missing falls back to the CPU. Only a probed session counts."""
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    rep = collect()
    cuda = rep.backend("onnxruntime-cuda")
    assert cuda is not None and not cuda.works and "falls back to the CPU" in cuda.detail
    assert rep.backend("onnxruntime-cpu").works


def test_with_tensorrt_pycuda_and_a_gpu(monkeypatch):
    """With TensorRT 10.3 (the fake of JetPack 6), pycuda and a GPU (sm_87): TensorRT works, and the
    report says what 10.3 cannot do."""
    install(monkeypatch, JETPACK6)
    rep = collect()
    trt = rep.backend("tensorrt")
    assert trt.works and trt.precisions == ["fp32", "fp16", "int8", "tf32"]
    comps = {c.name: c for c in rep.components}
    assert comps["tensorrt"].version == JETPACK6 and comps["cuda-driver"].version == "12.6"
    assert comps["gpu0"].version == "NVIDIA Fake Orin" and "sm_87" in comps["gpu0"].detail
    assert any("same_compute_capability needs 10.9" in n for n in rep.notes)
    text = render(rep)
    assert "| tensorrt | yes | fp32, fp16, int8, tf32 |" in text


def test_tensorrt_without_pycuda_builds_but_cannot_run(monkeypatch):
    install(monkeypatch, TRT11)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    trt = collect().backend("tensorrt")
    assert not trt.works and "built here, but not run" in trt.detail and "pycuda" in trt.detail


def test_never_crashes_when_pieces_are_missing(tmp_path):
    """torch, ONNX Runtime, OpenCV, TensorRT and pycuda all unimportable: still a full report."""
    code = textwrap.dedent(f"""
        import sys, importlib.metadata
        for m in ("torch", "onnxruntime", "cv2", "tensorrt", "pycuda", "pycuda.driver"):
            sys.modules[m] = None
        real = importlib.metadata.version
        def version(name):
            if name in ("torch", "onnxruntime", "onnxruntime-gpu", "pycuda"):
                raise importlib.metadata.PackageNotFoundError(name)
            return real(name)
        importlib.metadata.version = version
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from novum.checks import main
        sys.exit(main([]))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout
    assert "torch        unavailable  - not installed" in out
    assert "| onnxruntime-cpu | no | - | not installed" in out
    assert "| tensorrt | no | - | TensorRT is not installed" in out
    assert "| torch | no | - | not installed" in out
    assert "opencv       unavailable" in out
