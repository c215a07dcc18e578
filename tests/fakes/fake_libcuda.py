"""Fake CUDA driver library (what ``novum.gpu`` calls through ctypes), backed by the fake pycuda device.

``FakeLibcuda()`` answers like ``libcuda.so.1`` on a machine with the fake GPU
(``fakes.fake_pycuda.driver.DEVICE_NAME`` / ``COMPUTE_CAPABILITY``); ``init_error`` makes
``cuInit`` fail with that CUresult (100 = CUDA_ERROR_NO_DEVICE). Arguments arrive as ctypes
objects, by reference, exactly as the real calls receive them.
"""
from __future__ import annotations

import ctypes

ERRORS = {0: "CUDA_SUCCESS", 3: "CUDA_ERROR_NOT_INITIALIZED", 35: "CUDA_ERROR_INSUFFICIENT_DRIVER",
          100: "CUDA_ERROR_NO_DEVICE", 101: "CUDA_ERROR_INVALID_DEVICE"}


class FakeLibcuda:
    def __init__(self, init_error: int = 0, count: int = 1) -> None:
        self.init_error, self.count, self.initialised = init_error, count, False

    @staticmethod
    def _set(ref, value) -> None:
        ref._obj.value = value

    def cuInit(self, flags: int) -> int:
        if self.init_error:
            return self.init_error
        self.initialised = True
        return 0

    def cuDriverGetVersion(self, ref) -> int:
        from fakes.fake_pycuda import driver

        self._set(ref, driver.DRIVER_VERSION)
        return 0

    def cuDeviceGetCount(self, ref) -> int:
        if not self.initialised:
            return 3
        self._set(ref, self.count)
        return 0

    def cuDeviceGet(self, ref, ordinal: int) -> int:
        if not self.initialised:
            return 3
        if not 0 <= ordinal < self.count:
            return 101
        self._set(ref, ordinal)
        return 0

    def cuDeviceGetName(self, buf, length: int, dev) -> int:
        from fakes.fake_pycuda import driver

        buf.value = driver.DEVICE_NAME.encode()[: length - 1]
        return 0

    def cuDeviceGetAttribute(self, ref, attribute: int, dev) -> int:
        from fakes.fake_pycuda import driver

        values = {75: driver.COMPUTE_CAPABILITY[0], 76: driver.COMPUTE_CAPABILITY[1]}
        if attribute not in values:
            return 1
        self._set(ref, values[attribute])
        return 0

    def cuDeviceTotalMem_v2(self, ref, dev) -> int:
        from fakes.fake_pycuda import driver

        self._set(ref, driver.TOTAL_MEMORY)
        return 0

    def cuGetErrorName(self, code: int, ref) -> int:
        if code not in ERRORS:
            return 1
        self._set(ref, ERRORS[code].encode())
        return 0


def no_driver() -> ctypes.CDLL:
    raise OSError("libcuda.so.1: cannot open shared object file: No such file or directory")
