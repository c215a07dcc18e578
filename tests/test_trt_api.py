"""novum's TensorRT code and the TensorRT fake, checked against the real API surface:
``tensorrt-stubs`` (generated from the TensorRT 10.13 bindings) and ``fakes/trt_surface.json`` (read
from the bindings of 10.3, 10.13 and 11.x). No TensorRT needed."""
from __future__ import annotations

import inspect
import json
import os
import re
from pathlib import Path

import pytest

from fakes.fake_tensorrt import SURFACE, VERSIONS, _IMPLS, _Absent, module, public_names
from trt_api_check import Checker, tensorrt_files
from trt_stubs import INSTALL_HINT, load_stubs, stubs_dir

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def stubs():
    if stubs_dir() is None:
        if os.environ.get("NOVUM_REQUIRE_TRT_STUBS"):
            pytest.fail(f"tensorrt-stubs are required here (CI): {INSTALL_HINT}")
        pytest.skip(f"needs tensorrt-stubs for the real TensorRT API surface: {INSTALL_HINT}")
    s = load_stubs()
    assert s.version == "10.13.0.35", s.version
    return s


# what novum's engine path must use (so the check below cannot pass by checking nothing)
EXPECTED = {
    ("module", "Logger"), ("module", "Builder"), ("module", "OnnxParser"), ("module", "Runtime"), ("module", "nptype"),
    ("module", "__version__"), ("Builder", "create_network"), ("Builder", "create_builder_config"),
    ("Builder", "create_optimization_profile"), ("Builder", "build_serialized_network"),
    ("NetworkDefinitionCreationFlag", "STRONGLY_TYPED"), ("OnnxParser", "parse_from_file"), ("OnnxParser", "num_errors"),
    ("OnnxParser", "get_error"), ("IBuilderConfig", "set_memory_pool_limit"), ("MemoryPoolType", "WORKSPACE"),
    ("IBuilderConfig", "builder_optimization_level"), ("IBuilderConfig", "clear_flag"), ("BuilderFlag", "TF32"),
    ("IBuilderConfig", "set_flag"), ("BuilderFlag", "VERSION_COMPATIBLE"), ("IBuilderConfig", "hardware_compatibility_level"),
    ("HardwareCompatibilityLevel", "AMPERE_PLUS"), ("HardwareCompatibilityLevel", "SAME_COMPUTE_CAPABILITY"),
    ("IOptimizationProfile", "set_shape"), ("IBuilderConfig", "add_optimization_profile"),
    ("IBuilderConfig", "create_timing_cache"), ("IBuilderConfig", "set_timing_cache"), ("ITimingCache", "serialize"),
    ("Runtime", "engine_host_code_allowed"), ("Runtime", "deserialize_cuda_engine"),
    ("ICudaEngine", "create_execution_context"), ("ICudaEngine", "num_io_tensors"), ("ICudaEngine", "get_tensor_name"),
    ("ICudaEngine", "get_tensor_mode"), ("TensorIOMode", "INPUT"), ("ICudaEngine", "get_tensor_dtype"),
    ("ICudaEngine", "get_tensor_shape"), ("ICudaEngine", "get_tensor_profile_shape"),
    ("IExecutionContext", "set_input_shape"), ("IExecutionContext", "infer_shapes"),
    ("IExecutionContext", "get_tensor_shape"), ("IExecutionContext", "set_tensor_address"),
    ("IExecutionContext", "execute_async_v3"),
}


def test_novum_tensorrt_calls_exist_in_every_release(stubs):
    """Every TensorRT name novum uses exists, with a fitting signature, in the 10.13 stubs and in the
    10.3 / 10.13 / 11.x bindings (names guarded by getattr(..., default) in at least one)."""
    files = tensorrt_files(ROOT)
    assert {f.relative_to(ROOT).as_posix() for f in files} >= {"export/tensorrt.py", "runtime/backends/trt.py"}
    checker = Checker(stubs)
    for f in files:
        checker.check_file(f, f.relative_to(ROOT).as_posix())
    bad = [str(u) for u in checker.uses if u.problems]
    assert bad == [], "\n".join(bad)
    used = {(u.cls, u.name) for u in checker.uses}
    assert EXPECTED <= used, sorted(EXPECTED - used)


def test_the_check_catches_misuse(stubs):
    """The checker fails on the mistakes it exists for (so a clean run above means something)."""
    snippet = '''
def f(trt, onnx):
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    config.max_workspace_size = 1 << 30
    cache = config.create_timing_cache(b"")
    config.set_timing_cache(cache, ignore=False)
    config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY
    parser = trt.OnnxParser(network, logger)
    n = parser.num_errors()
    engine = trt.Runtime(logger).deserialize_cuda_engine(b"")
    engine.num_bindings
    ctx = engine.create_execution_context()
    ctx.execute_async_v2([], 0)
    ctx.set_input_shape("images")
    engine.num_io_tensors = 3
    x = engine.get_tensor_name
    y = trt.Nonexistent
'''
    uses = Checker(stubs).check_source(snippet)
    flagged = {u.name: " ".join(u.problems) for u in uses if u.problems}
    assert "not in TensorRT 11.1.0.106" in flagged["EXPLICIT_BATCH"]            # gone in 11
    assert "not in TensorRT 11.1.0.106" in flagged["FP16"]                      # weak typing gone in 11
    assert "not in TensorRT 10.3.0.30" in flagged["SAME_COMPUTE_CAPABILITY"]    # arrived in 10.9
    assert "no 'max_workspace_size'" in flagged["max_workspace_size"]          # gone in 10
    assert "no parameter named 'ignore'" in flagged["set_timing_cache"]
    assert "property, not a method" in flagged["num_errors"]
    assert "no 'num_bindings'" in flagged["num_bindings"] and "no 'execute_async_v2'" in flagged["execute_async_v2"]
    assert "missing shape" in flagged["set_input_shape"]
    assert "cannot be assigned" in flagged["num_io_tensors"]
    assert "read without calling" in flagged["get_tensor_name"]
    assert "not in tensorrt" in flagged["Nonexistent"]


def _visible(cls: type) -> set[str]:
    return {n for n in public_names(cls.__mro__[1]) if not isinstance(inspect.getattr_static(cls, n), _Absent)}


def test_fake_10_13_is_a_subset_of_the_stubs(stubs):
    """The fake of 10.13: the same enums (members and values) as the stubs, and only methods and
    properties the stubs have, with their parameter names."""
    trt = module("10.13.0.35")
    for name in SURFACE["10.13.0.35"]["enums"]:
        fake = {k: int(v) for k, v in getattr(trt, name).__members__.items()}
        assert fake == stubs.classes[name].enum_members, name
    assert {s.name: int(s) for s in trt.Logger.Severity} == stubs.classes["Severity"].enum_members
    for name in _IMPLS:
        cls = getattr(trt, name)
        for attr in sorted(_visible(cls)):
            real = stubs.lookup(name, attr)
            assert real is not None, f"the fake's {name}.{attr} is not in TensorRT 10.13"
            fake = inspect.getattr_static(cls, attr)
            if isinstance(fake, property):
                assert real.kind in ("property", "attribute"), f"{name}.{attr}: a {real.kind} in TensorRT"
                assert (fake.fset is not None) == real.settable, f"{name}.{attr}: settable differs"
            else:
                assert real.kind == "method", f"{name}.{attr}: a {real.kind} in TensorRT, a method in the fake"
                params = [p for p in inspect.signature(fake).parameters if p != "self"]
                assert any(params == [p.name for p in o] for o in real.overloads), \
                    f"{name}.{attr}{tuple(params)} matches no overload of the stubs {[[p.name for p in o] for o in real.overloads]}"
    module_names = {n for n in vars(trt) if not n.startswith("_")} | {"__version__"}
    assert module_names <= stubs.module_names, sorted(module_names - stubs.module_names)


@pytest.mark.parametrize("version", VERSIONS)
def test_fake_has_exactly_the_release_surface(version):
    """Each fake release: its enums as the bindings of that release define them, and no method or
    property the release lacks (e.g. 10.3: no SAME_COMPUTE_CAPABILITY; 11: no BuilderFlag.FP16,
    no EXPLICIT_BATCH, STRONGLY_TYPED == 0)."""
    trt, rel = module(version), SURFACE[version]
    for name, members in rel["enums"].items():
        assert {k: int(v) for k, v in getattr(trt, name).__members__.items()} == members, name   # aliases too
    for name in _IMPLS:
        cls = getattr(trt, name)
        assert _visible(cls) <= set(rel["classes"][name]), sorted(_visible(cls) - set(rel["classes"][name]))
        for hidden in public_names(cls.__mro__[1]) - _visible(cls):
            assert not hasattr(cls, hidden)
        for attr in _visible(cls):   # methods take the parameters of that release's binding
            fake, sigs = inspect.getattr_static(cls, attr), rel["signatures"][name].get(attr)
            if sigs and not isinstance(fake, property):
                params = [p for p in inspect.signature(fake).parameters if p != "self"]
                assert any(params == [n.rstrip("=") for n in o] for o in sigs), (name, attr, params, sigs)
    major = int(version.split(".")[0])
    assert hasattr(trt.BuilderFlag, "FP16") == (major < 11)
    assert hasattr(trt.HardwareCompatibilityLevel, "SAME_COMPUTE_CAPABILITY") == (version != "10.3.0.30")


def test_surface_file_agrees_with_the_stubs(stubs):
    """trt_surface.json is read from TensorRT's binding sources; for 10.13 it must say what the
    independently generated stubs say (this checks the reading)."""
    rel = json.loads((ROOT / "tests" / "fakes" / "trt_surface.json").read_text())["10.13.0.35"]
    for name, members in rel["enums"].items():
        assert members == stubs.classes[name].enum_members, name
    for name, members in rel["classes"].items():
        missing = [m for m in members if stubs.lookup(name, m) is None and m not in rel["write_only"][name]]
        assert missing == [], (name, missing)
    for name, methods in rel["signatures"].items():
        for method, overloads in methods.items():
            real = stubs.lookup(name, method)
            if real is None or real.kind != "method":
                continue
            for r in real.overloads:   # what the stubs show, the bindings read must have (they may have more)
                names = [p.name for p in r]
                if any(re.fullmatch(r"arg\d+", n) for n in names):
                    continue   # a parameter the binding leaves unnamed (the stubs call it argN)
                assert any([n.rstrip("=") for n in o] == names for o in overloads), (name, method, names, overloads)
