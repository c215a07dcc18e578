"""Faithful stand-ins for ``tensorrt`` and ``pycuda`` (documented API surface only), for CI.

``install(monkeypatch)`` puts them in ``sys.modules`` under their real names; see
:mod:`fakes.fake_tensorrt` and :mod:`fakes.fake_pycuda.driver`.
"""
from __future__ import annotations

import sys
from types import ModuleType


def install(monkeypatch) -> tuple[ModuleType, ModuleType]:
    """Inject fake ``tensorrt``, ``pycuda``, ``pycuda.driver``, ``pycuda.autoprimaryctx``; returns (trt, driver).

    Each call starts from a clean device (no allocations, no streams, no context).
    """
    from fakes import fake_pycuda, fake_tensorrt
    from fakes.fake_pycuda import driver

    driver.reset()
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt)
    monkeypatch.setitem(sys.modules, "pycuda", fake_pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    monkeypatch.delitem(sys.modules, "pycuda.autoprimaryctx", raising=False)  # re-import = context activation
    monkeypatch.setattr(fake_pycuda, "driver", driver, raising=False)
    return fake_tensorrt, driver
