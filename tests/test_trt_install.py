"""The TensorRT install paths in pyproject.toml: no CUDA 13-only TensorRT on CUDA 12 or Jetson machines."""
from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _extra(name: str) -> list[Requirement]:
    data = tomllib.loads(PYPROJECT.read_text())
    return [Requirement(r) for r in data["project"]["optional-dependencies"][name]]


def _installs(reqs: list[Requirement], machine: str, system: str = "linux") -> dict[str, Requirement]:
    env = {"platform_machine": machine, "sys_platform": system, "python_version": "3.11"}
    return {r.name: r for r in reqs if r.marker is None or r.marker.evaluate(env)}


def test_trt_extra_takes_cuda12_wheels_on_desktops_and_none_on_jetson():
    """`tensorrt` on PyPI is a metapackage of the CUDA 13 build (driver r580+); [trt] must not name
    it. The CUDA 12 wheels run on any driver r535+; on aarch64 (Jetson) JetPack brings TensorRT."""
    x86 = _installs(_extra("trt"), "x86_64")
    assert "tensorrt" not in x86 and "tensorrt-cu13" not in x86
    cu12 = x86["tensorrt-cu12"]
    assert cu12.specifier.contains("10.3.0") and cu12.specifier.contains("11.4.0.106")
    assert not cu12.specifier.contains("10.2.0") and not cu12.specifier.contains("12.0.0")
    assert set(_installs(_extra("trt"), "AMD64", "win32")) == set(x86)   # Windows names x86_64 "AMD64"
    jetson = _installs(_extra("trt"), "aarch64")
    assert not any(n.startswith("tensorrt") for n in jetson) and "pycuda" in jetson


def test_explicit_cuda_extras():
    cu12 = _installs(_extra("trt-cu12"), "aarch64")   # explicit: also for aarch64 servers (SBSA)
    cu13 = _installs(_extra("trt-cu13"), "x86_64")
    assert set(cu12) == {"tensorrt-cu12", "pycuda"} and set(cu13) == {"tensorrt-cu13", "pycuda"}
    assert not cu13["tensorrt-cu13"].specifier.contains("10.13.0.35")   # the first cu13 wheels are 10.13.2
    assert cu13["tensorrt-cu13"].specifier.contains("11.4.0.106") and not cu13["tensorrt-cu13"].specifier.contains("12.0")
