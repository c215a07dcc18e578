"""Faithful stand-ins for ``tensorrt``, ``pycuda`` and the CUDA driver library, for CI.

``install(monkeypatch, version)`` puts a fresh fake TensorRT of that release
(:mod:`fakes.fake_tensorrt`), the fake pycuda (:mod:`fakes.fake_pycuda.driver`) and the fake
``libcuda`` (:mod:`fakes.fake_libcuda`, what :mod:`novum.gpu` reads) in place, under their real
names; :func:`install_modules` does the same without pytest (for subprocesses).
"""
from __future__ import annotations

import inspect
import sys
from types import ModuleType

from fakes.fake_tensorrt import DEFAULT_VERSION, JETPACK6, STUBS, TRT11, VERSIONS  # noqa: F401 - re-exported


def _modules(version: str) -> dict[str, ModuleType]:
    from fakes import fake_pycuda, fake_tensorrt
    from fakes.fake_pycuda import driver

    driver.reset()
    fake_pycuda.driver = driver
    return {"tensorrt": fake_tensorrt.module(version), "pycuda": fake_pycuda, "pycuda.driver": driver}


def install(monkeypatch, version: str = DEFAULT_VERSION, libcuda=None) -> tuple[ModuleType, ModuleType]:
    """Inject the fakes; returns (tensorrt, pycuda.driver). Each call starts from a clean device
    (no allocations, no streams, no context). ``libcuda``: a loader for :func:`novum.gpu.load_libcuda`
    (default: the fake GPU)."""
    from fakes.fake_libcuda import FakeLibcuda

    mods = _modules(version)
    # inspect.getmodule remembers each sys.modules name's file; left holding the fakes' files for
    # 'tensorrt', a later getmodule (torch runs one when torch.onnx is first imported) fails on the
    # file-less namespace package that tensorrt-stubs leaves under that name. Forget them afterwards.
    monkeypatch.setattr(inspect, "_filesbymodname", dict(inspect._filesbymodname))
    monkeypatch.setattr(inspect, "modulesbyfile", dict(inspect.modulesbyfile))
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.delitem(sys.modules, "pycuda.autoprimaryctx", raising=False)  # re-import = context activation
    try:
        import novum.gpu
    except ImportError:   # an older tree (the tests also run against it to show they fail there)
        pass
    else:
        monkeypatch.setattr(novum.gpu, "load_libcuda", libcuda or (lambda: FakeLibcuda()))
    return mods["tensorrt"], mods["pycuda.driver"]


def install_modules(version: str = DEFAULT_VERSION) -> tuple[ModuleType, ModuleType]:
    """:func:`install` for a subprocess: no monkeypatch, nothing to undo."""
    from fakes.fake_libcuda import FakeLibcuda

    mods = _modules(version)
    sys.modules.update(mods)
    import novum.gpu

    novum.gpu.load_libcuda = lambda: FakeLibcuda()
    return mods["tensorrt"], mods["pycuda.driver"]
